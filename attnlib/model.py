"""The attention classifier, computed on the count-matrix engine, for several seeds at once.

A sentence's context vector is ``c = sum_w n_w e^{s_w} v_w / sum_w n_w e^{s_w}`` (n_w counts word w in
the sentence), so a whole corpus needs two sparse-dense products per forward pass, stacked into one:
``N @ [e * V | e]``; the backward pass is one product with the transposed count matrix. Seeds are
stacked block-diagonally: seed k's sentences only touch seed k's rows of the parameters, so one
product trains every seed and each seed's gradient is exactly its own.

Gradients are written out by hand (the head's part too) and checked against autograd on the padded
per-token model of :mod:`attnlib.reference` by the tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from attnlib.config import ModelConfig
from attnlib.data.corpus import Corpus

Tensor = torch.Tensor


# ----------------------------------------------------------------------------------------------
# Data for the engine
# ----------------------------------------------------------------------------------------------


def _to_torch_csr(matrix: sp.csr_matrix, dtype: torch.dtype, device: torch.device) -> Tensor:
    matrix = matrix.tocsr()
    # int32 indices take the fast MKL path on CPU (about 3x faster than int64 here).
    index_dtype = np.int32 if matrix.nnz < 2**31 else np.int64
    with warnings.catch_warnings():  # torch flags CSR support as beta; the tests check our use of it
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(index_dtype)),
            torch.from_numpy(matrix.indices.astype(index_dtype)),
            torch.from_numpy(matrix.data).to(dtype),
            size=matrix.shape,
            device=device,
            check_invariants=False,
        )


@dataclass
class Batch:
    """One split of S seeds' corpora, stacked block-diagonally for the engine."""

    counts: Tensor
    """(S * n, S * V) sparse CSR count matrix."""
    counts_t: Tensor
    """Its transpose, precomputed (a transposed CSR product is slow)."""
    labels: Tensor
    """(S, n) class labels."""
    n_seeds: int
    n_sentences: int
    vocab_size: int

    @classmethod
    def from_corpora(cls, corpora: Sequence[Corpus], dtype: torch.dtype, device: torch.device) -> Batch:
        sizes = {(len(c), c.vocab_size) for c in corpora}
        if len(sizes) != 1:
            raise ValueError(f"Batch: every seed's corpus must have the same size and vocabulary, got {sorted(sizes)}")
        (n_sentences, vocab_size), = sizes
        stacked = sp.block_diag([c.counts for c in corpora], format="csr")
        labels = torch.from_numpy(np.stack([c.labels for c in corpora])).to(device)
        return cls(_to_torch_csr(stacked, dtype, device), _to_torch_csr(stacked.T.tocsr(), dtype, device),
                   labels, len(corpora), n_sentences, vocab_size)


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------


@dataclass
class Params:
    """Parameters of S models, one per seed, stacked along a leading seed axis.

    With a fixed query and keys starting at 0, every key stays parallel to the query (spec §2.4),
    so the keys are carried as one score per word (``scores``) and ``keys`` is None; otherwise the
    full keys are carried and ``scores`` is None.
    """

    embeddings: Tensor  # (S, V, d_embed)
    query: Tensor  # (S, d_key)
    head: dict[str, Tensor]
    keys: Tensor | None = None  # (S, V, d_key)
    scores: Tensor | None = None  # (S, V)

    def word_scores(self) -> Tensor:
        """Every word's score s_w = q . kappa_w, shape (S, V)."""
        if self.scores is not None:
            return self.scores
        return torch.einsum("svk,sk->sv", self.keys, self.query)

    def key_vectors(self) -> Tensor:
        """Every word's key, shape (S, V, d_key); recovered exactly as (s_w / |q|^2) q when carried as scores."""
        if self.keys is not None:
            return self.keys
        q = self.query
        return self.scores[:, :, None] * (q / (q * q).sum(1, keepdim=True))[:, None, :]

    def query_norm(self) -> Tensor:
        return self.query.norm(dim=1)

    def clone(self) -> Params:
        copy = lambda t: None if t is None else t.clone()  # noqa: E731
        return Params(copy(self.embeddings), copy(self.query), {k: v.clone() for k, v in self.head.items()},
                      copy(self.keys), copy(self.scores))


def _fc_matrix(rng: np.random.Generator, d: int, k: int, kind: str) -> np.ndarray:
    """The fixed classifier of Attn-FC (spec decision 12 and its alternatives)."""
    if kind == "randn_unit_diag":
        u = rng.standard_normal((d, k))
        idx = np.arange(min(d, k))
        u[idx, idx] = 1.0
        return u
    if d < k:
        raise ValueError(f"ModelConfig.fc_init={kind!r} needs d_embed >= number of classes ({d} < {k})")
    if kind == "orthonormal":
        return np.linalg.qr(rng.standard_normal((d, k)))[0]
    return np.eye(d, k)


def _uniform(rng: np.random.Generator, fan_in: int, shape: tuple[int, ...]) -> np.ndarray:
    """PyTorch's default initialisation of a linear layer: uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


def _init_one_seed(config: ModelConfig, vocab_size: int, n_classes: int, seed: int) -> dict[str, np.ndarray]:
    """One seed's initial parameters. Query and embeddings depend only on the seed and the shapes, so
    the three heads of one seed start from the same attention block (spec §2.2, "seeding")."""
    attention_rng = np.random.default_rng([seed, 1])
    out = {
        "query": attention_rng.normal(0.0, config.query_std, config.d_key),
        "embeddings": attention_rng.normal(0.0, config.embed_init_std, (vocab_size, config.d_embed)),
    }
    key_rng = np.random.default_rng([seed, 2])
    out["keys"] = key_rng.normal(0.0, config.key_init_std, (vocab_size, config.d_key))
    head_rng = np.random.default_rng([seed, 3])
    d, h, k = config.d_embed, config.hidden_units, n_classes
    if config.head == "FC":
        out["U"] = _fc_matrix(head_rng, d, k, config.fc_init)
    elif config.head == "TC":
        out["U"] = _uniform(head_rng, d, (d, k))
    else:
        out["U1"], out["b1"] = _uniform(head_rng, d, (d, h)), _uniform(head_rng, d, (h,))
        out["U2"], out["b2"] = _uniform(head_rng, h, (h, k)), _uniform(head_rng, h, (k,))
    return out


def carries_scores(config: ModelConfig) -> bool:
    """Whether keys are carried as one score per word: asked for, the query fixed and keys starting at 0."""
    return config.reduce_keys and not config.train_query and config.key_init_std == 0.0


def init_params(config: ModelConfig, vocab_size: int, n_classes: int, seeds: Sequence[int],
                dtype: torch.dtype, device: torch.device, reduce_keys: bool | None = None) -> Params:
    """Initial parameters for each seed, stacked. ``reduce_keys`` defaults to :func:`carries_scores`."""
    per_seed = [_init_one_seed(config, vocab_size, n_classes, int(s)) for s in seeds]
    stack = lambda name: torch.from_numpy(np.stack([p[name] for p in per_seed])).to(device=device, dtype=dtype)  # noqa: E731
    head = {name: stack(name) for name in per_seed[0] if name not in ("query", "embeddings", "keys")}
    params = Params(stack("embeddings"), stack("query"), head)
    keys = stack("keys")
    if carries_scores(config) if reduce_keys is None else reduce_keys:
        if config.key_init_std != 0.0:
            raise ValueError("keys can be carried as scores only when they start at 0 (ModelConfig.key_init_std = 0)")
        params.scores = torch.einsum("svk,sk->sv", keys, params.query)
    else:
        params.keys = keys
    return params


# ----------------------------------------------------------------------------------------------
# Heads: forward and hand-written backward, batched over seeds
# ----------------------------------------------------------------------------------------------


def head_forward(kind: str, head: dict[str, Tensor], context: Tensor) -> tuple[Tensor, tuple]:
    """Logits (S, n, K) from context vectors (S, n, d), and what the backward pass needs."""
    if kind in ("FC", "TC"):
        return torch.bmm(context, head["U"]), (context,)
    pre = torch.baddbmm(head["b1"][:, None, :], context, head["U1"])
    hidden = torch.relu(pre)
    logits = torch.baddbmm(head["b2"][:, None, :], hidden, head["U2"])
    return logits, (context, pre, hidden)


def head_backward(kind: str, head: dict[str, Tensor], saved: tuple, d_logits: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Gradient with respect to the context vectors, and the head's own gradients."""
    if kind in ("FC", "TC"):
        (context,) = saved
        return torch.bmm(d_logits, head["U"].transpose(1, 2)), {"U": torch.bmm(context.transpose(1, 2), d_logits)}
    context, pre, hidden = saved
    d_hidden = torch.bmm(d_logits, head["U2"].transpose(1, 2))
    d_pre = d_hidden * (pre > 0)
    grads = {
        "U2": torch.bmm(hidden.transpose(1, 2), d_logits),
        "b2": d_logits.sum(1),
        "U1": torch.bmm(context.transpose(1, 2), d_pre),
        "b1": d_pre.sum(1),
    }
    return torch.bmm(d_pre, head["U1"].transpose(1, 2)), grads


# ----------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------


@dataclass
class Forward:
    """One forward pass over a batch: per-seed mean loss and accuracy, plus what backward needs."""

    loss: Tensor  # (S,)
    accuracy: Tensor  # (S,)
    context: Tensor  # (S, n, d)
    weights: Tensor  # (S, V) exp(s - max s), the unnormalised attention weight of each word
    denominator: Tensor  # (S, n)
    logits: Tensor  # (S, n, K)
    head_saved: tuple = field(repr=False)


def attention_inputs(params: Params) -> tuple[Tensor, Tensor]:
    """Each word's unnormalised attention weight e^{s_w - max s} (S, V), and the stacked right-hand
    side ``[e * V | e]`` (S * V, d + 1) that one sparse product turns into numerators and denominators.

    It depends on the parameters only, so one computation serves the train, dev and test splits.
    """
    embeddings = params.embeddings
    n_seeds, vocab_size, d = embeddings.shape
    scores = params.word_scores()
    # A shift by a per-seed constant leaves every sentence's softmax unchanged and keeps exp() finite.
    weights = torch.exp(scores - scores.max(dim=1, keepdim=True).values)
    stacked = torch.empty(n_seeds, vocab_size, d + 1, dtype=embeddings.dtype, device=embeddings.device)
    torch.mul(embeddings, weights[:, :, None], out=stacked[:, :, :d])
    stacked[:, :, d] = weights
    return weights, stacked.reshape(n_seeds * vocab_size, d + 1)


def forward(kind: str, params: Params, batch: Batch, inputs: tuple[Tensor, Tensor] | None = None) -> Forward:
    """Mean cross-entropy and accuracy of every seed's model on the batch.

    ``inputs`` is :func:`attention_inputs` of ``params``, passed in when several splits share it.
    """
    n_seeds, _, d = params.embeddings.shape
    weights, stacked = inputs if inputs is not None else attention_inputs(params)
    pooled = torch.sparse.mm(batch.counts, stacked).reshape(n_seeds, batch.n_sentences, d + 1)
    denominator = pooled[:, :, d]
    context = pooled[:, :, :d] / denominator[:, :, None]
    logits, head_saved = head_forward(kind, params.head, context)
    log_probs = torch.log_softmax(logits, dim=2)
    loss = -log_probs.gather(2, batch.labels[:, :, None]).squeeze(2).mean(1)
    accuracy = (logits.argmax(2) == batch.labels).to(logits.dtype).mean(1)
    return Forward(loss, accuracy, context, weights, denominator, logits, head_saved)


@dataclass
class Gradients:
    """Gradients of the sum over seeds of each seed's mean loss (so each seed gets its own gradient)."""

    embeddings: Tensor  # (S, V, d)
    scores: Tensor  # (S, V): dL/ds_w; the keys' gradient is dL/ds_w * q
    head: dict[str, Tensor]


def backward(kind: str, params: Params, batch: Batch, fwd: Forward) -> Gradients:
    """Hand-written backward pass of :func:`forward` (one sparse product with the transposed counts)."""
    n_seeds, vocab_size, d = params.embeddings.shape
    d_logits = torch.softmax(fwd.logits, dim=2)
    d_logits.scatter_add_(2, batch.labels[:, :, None], -torch.ones_like(d_logits[:, :, :1]))
    d_logits /= batch.n_sentences
    d_context, head_grads = head_backward(kind, params.head, fwd.head_saved, d_logits)
    d_numerator = d_context / fwd.denominator[:, :, None]
    d_denominator = -(d_numerator * fwd.context).sum(2)
    stacked = torch.cat([d_numerator, d_denominator[:, :, None]], dim=2)
    spread = torch.sparse.mm(batch.counts_t, stacked.reshape(n_seeds * batch.n_sentences, d + 1))
    spread = spread.reshape(n_seeds, vocab_size, d + 1)
    d_weighted = spread[:, :, :d]
    d_embeddings = fwd.weights[:, :, None] * d_weighted
    d_scores = fwd.weights * (spread[:, :, d] + torch.linalg.vecdot(d_weighted, params.embeddings))
    return Gradients(d_embeddings, d_scores, head_grads)


def key_and_query_gradients(params: Params, d_scores: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of the full keys (dL/ds_w q) and of the query (sum_w dL/ds_w kappa_w)."""
    d_keys = d_scores[:, :, None] * params.query[:, None, :]
    d_query = torch.einsum("sv,svk->sk", d_scores, params.key_vectors())
    return d_keys, d_query
