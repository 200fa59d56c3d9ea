"""The naive baseline the engine is timed against: the padded per-token model, autograd, torch SGD.

This is how a reader of the paper would first train the model: pad every sentence to the longest
one, look up each token's embedding and key (:mod:`attnlib.reference`), let autograd differentiate
and take a plain ``torch.optim.SGD`` step. It trains one seed, with the full keys and a fixed query.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlib.data.corpus import Corpus
from attnlib.model import Params
from attnlib.reference import padded_logits, padded_loss

Tensor = torch.Tensor


@dataclass
class PaddedModel:
    """One seed's parameters as autograd leaves, its padded training data and its optimiser."""

    kind: str
    token_ids: Tensor  # (n, L)
    mask: Tensor  # (n, L) True on real tokens
    labels: Tensor  # (n,)
    embeddings: Tensor  # (V, d) leaf
    keys: Tensor  # (V, d_key) leaf
    query: Tensor  # (d_key,) fixed
    head: dict[str, Tensor]
    optimizer: torch.optim.Optimizer

    @classmethod
    def from_params(cls, kind: str, params: Params, seed: int, corpus: Corpus, lr: float,
                    train_head: bool) -> PaddedModel:
        """Seed ``seed`` of the engine's parameters, copied into fresh leaves."""
        device = params.query.device
        ids, mask = (torch.from_numpy(a).to(device) for a in corpus.padded(pad_id=0))
        embeddings = params.embedding_vectors()[seed].clone().requires_grad_()
        keys = params.key_vectors()[seed].clone().requires_grad_()
        head = {n: t[seed].clone().requires_grad_(train_head) for n, t in params.head.items()}
        trainable = [embeddings, keys] + (list(head.values()) if train_head else [])
        labels = torch.from_numpy(corpus.labels).to(device)
        return cls(kind, ids, mask, labels, embeddings, keys, params.query[seed].clone(), head,
                   torch.optim.SGD(trainable, lr=lr))

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
