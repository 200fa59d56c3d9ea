"""A deliberately straightforward padded per-token implementation of the model, for checking.

This is the model as a reader of the paper would first write it: look up every token's embedding
and key in a (sentences x longest sentence) tensor, softmax over positions with padding masked to
-inf, and let autograd differentiate. The tests compare the count-matrix engine against it, and the
benchmark (:mod:`attnlib.benchmark`) times the engine against :class:`PaddedModel`, which trains it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from attnlib.data.corpus import Corpus
    from attnlib.model import Params

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


class PaddedModel:
    """The naive baseline the engine is timed against: the padded model above, trained the way a reader
    of the paper would first train it (autograd, a plain ``torch.optim.SGD`` step), one seed, full keys."""

    def __init__(self, kind: str, params: Params, seed: int, corpus: Corpus, lr: float, train_head: bool) -> None:
        """Seed ``seed`` of the engine's parameters, copied into fresh autograd leaves."""
        device = params.query.device
        self.kind = kind
        self.token_ids, self.mask = (torch.from_numpy(a).to(device) for a in corpus.padded(pad_id=0))
        self.labels = torch.from_numpy(corpus.labels).to(device)
        self.embeddings = params.embedding_vectors()[seed].clone().requires_grad_()
        self.keys = params.key_vectors()[seed].clone().requires_grad_()
        self.query = params.query[seed].clone()
        self.head = {n: t[seed].clone().requires_grad_(train_head) for n, t in params.head.items()}
        trainable = [self.embeddings, self.keys] + (list(self.head.values()) if train_head else [])
        self.optimizer = torch.optim.SGD(trainable, lr=lr)

    def epoch(self) -> None:
        """One full-batch step: forward, autograd backward, SGD update."""
        self.optimizer.zero_grad(set_to_none=True)
        padded_loss(self.token_ids, self.mask, self.labels, self.embeddings, self.keys, self.query, self.kind,
                    self.head).backward()
        self.optimizer.step()

    def logits(self) -> Tensor:
        """Logits (n, K) at the current parameters."""
        with torch.no_grad():
            return padded_logits(self.token_ids, self.mask, self.embeddings, self.keys, self.query, self.kind,
                                 self.head)
