"""A deliberately straightforward padded per-token implementation of the model, for checking.

This is the model as a reader of the paper would first write it: look up every token's embedding
and key in a (sentences x longest sentence) tensor, softmax over positions with padding masked to
-inf, and let autograd differentiate. The tests compare the count-matrix engine against it, and the
benchmark times the engine against it.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def padded_logits(token_ids: Tensor, mask: Tensor, embeddings: Tensor, keys: Tensor, query: Tensor,
                  kind: str, head: dict[str, Tensor]) -> Tensor:
    """Logits (n, K) of one model on padded sentences (n, L); ``mask`` is True on real tokens."""
    token_embeddings = embeddings[token_ids]  # (n, L, d)
    token_scores = keys[token_ids] @ query  # (n, L)
    token_scores = token_scores.masked_fill(~mask, float("-inf"))
    attention = torch.softmax(token_scores, dim=1)
    context = (attention[:, :, None] * token_embeddings).sum(1)
    if kind in ("FC", "TC"):
        return context @ head["U"]
    hidden = torch.relu(context @ head["U1"] + head["b1"])
    return hidden @ head["U2"] + head["b2"]


def padded_loss(token_ids: Tensor, mask: Tensor, labels: Tensor, embeddings: Tensor, keys: Tensor,
                query: Tensor, kind: str, head: dict[str, Tensor]) -> Tensor:
    """Mean cross-entropy of the padded model."""
    logits = padded_logits(token_ids, mask, embeddings, keys, query, kind, head)
    return torch.nn.functional.cross_entropy(logits, labels)
