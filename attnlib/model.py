"""The attention classifier, computed on the count-matrix engine, for several seeds at once.

A sentence's context vector is ``c = sum_w n_w e^{s_w} v_w / sum_w n_w e^{s_w}`` (n_w counts word w
in the sentence). Every head starts with a linear layer U1 (d x K: K classes for Attn-FC and
Attn-TC, K hidden units for Attn-TL) and only ``c U1`` reaches the rest of the head, so the engine
never forms c: with every word's projected embedding ``R = E U1`` (V x K),
``c U1 = (N @ (e * R)) / (N @ e)``, i.e. one sparse product ``N @ [e * R | e]`` with K + 1 columns
instead of d + 1. The backward pass is one product with the transposed count matrix, K + 1 columns
again; the embeddings' gradient is ``(e * N^T g) U1^T``, applied as one rank-K update. On SST
(d = 200, two classes) that is 3 columns instead of 201. When U1 is not narrower than E (Attn-TL
with as many hidden units as dimensions) the product pools E itself and the head applies U1.

When U1 is fixed (Attn-FC, or any frozen head) the embeddings only move inside span(U1):
``E(t) = E(0) + Z(t) U1^T``. Training then carries Z and R (V x K each) and never touches E; the
norms ``|v_w|`` follow exactly from E(0), Z and U1 (:meth:`Params.embedding_norms`).

Seeds are stacked block-diagonally: seed k's sentences only touch seed k's rows of the parameters,
so one product trains every seed and each seed's gradient is exactly its own. When every seed trains
on the same corpus (all SST runs), the batch keeps that one count matrix and multiplies it by the
seeds' columns side by side, ``N @ [X_1 | ... | X_S]``: the same sums, but the matrix is read once
instead of S times (:class:`Batch`). Gradients are written out by hand and checked against autograd
on the padded per-token model of :mod:`attnlib.padded_reference`.

With E carried in full and projected (Attn-TC, Attn-TL), the dense products with E dominate an epoch:
R = E U1, dU1 = E^T dL/dR and the update E += rate dL/dR U1^T each read all of E, and a few seeds'
E outgrow the CPU's cache (SST2, three seeds: 42 MB in float32), so that each product reads E from
memory. They therefore run seed by seed and in blocks of :data:`ROW_BLOCK` rows, and the update forms
the next epoch's R as it goes (:func:`step_projected_embeddings`): two passes over E per epoch instead
of three, the second mostly finding each seed's E still in cache (SST2 Attn-TC, three seeds on one
corpus, float32, one thread: ~28 ms per epoch before, ~16 ms after).
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from attnlib.config import ModelConfig
from attnlib.data.corpus import Corpus

Tensor = torch.Tensor

BLOCK_SENTENCES = 8192
"""Sentences per block of the transposed count matrix (see :attr:`Batch.transposed_blocks`)."""

ROW_BLOCK = 2048
"""Rows of one seed's embeddings per block in the dense products with E (see :func:`_row_blocks`)."""

SMALL_EMBEDDINGS = 1 << 22
"""Bytes of all seeds' embeddings up to which the dense products with E run as one batched product over
every seed instead of seed by seed in blocks of rows (:func:`_batched`): E then sits in the CPU's cache
anyway, and one call replaces dozens whose fixed cost dominates (the synthetic problem, five seeds'
5,008 x 10 embeddings in float64: 2 MB, 45 calls an epoch otherwise)."""


# ----------------------------------------------------------------------------------------------
# Data for the engine
# ----------------------------------------------------------------------------------------------


def _to_torch_csr(matrix: sp.csr_matrix, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A scipy CSR matrix as a torch CSR tensor with int32 indices (MKL's fast path, ~3x over int64)."""
    matrix = matrix.tocsr()
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


def same_corpus(corpora: Sequence[Corpus]) -> bool:
    """Whether every corpus is the first: the same object, or the same labels and count matrix, all
    the engine reads of a corpus (equal data, as :meth:`attnlib.data.corpus.Dataset.fingerprint` sees
    it, gives equal counts). Cheap when they differ: the labels and sizes usually already do."""
    first = corpora[0]
    return all(corpus is first or _equal_counts(corpus, first) for corpus in corpora[1:])


def _equal_counts(a: Corpus, b: Corpus) -> bool:
    """Same vocabulary size, labels and count matrix (scipy keeps it canonical: sorted, summed)."""
    if a.vocab_size != b.vocab_size or len(a) != len(b) or not np.array_equal(a.labels, b.labels):
        return False
    x, y = a.counts, b.counts
    return (x.nnz == y.nnz and np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
            and np.array_equal(x.data, y.data))


@dataclass
class Batch:
    """One split of S seeds' corpora, in the form the engine's sparse products read.

    The products multiply per-seed operands: (S, rows, width) tensors, one (rows, width) matrix per
    seed. Two forms give the same sums:

    - *block-diagonal* (the corpora differ): ``counts`` stacks them into one (S n, S V) matrix, and an
      operand is stored seed after seed, i.e. as the (S rows, width) matrix it multiplies;
    - *shared* (every seed's corpus is the same, see :func:`same_corpus`): ``counts`` is that one
      (n, V) matrix, and an operand is stored row by row with the seeds side by side, i.e. as the
      (rows, S width) matrix ``[X_1 | ... | X_S]``. Each nonzero is read once for all seeds rather
      than once per seed: on SST2, three seeds' products take about as long as one seed's.

    :meth:`operand` allocates an operand in the batch's form, and :meth:`seeds_product` multiplies one.
    """

    counts: Tensor
    """(S * n, S * V) block-diagonal sparse CSR count matrix, or the one corpus's (n, V) when ``shared``."""
    transposed_blocks: tuple[Tensor, ...]
    """Its transpose, precomputed (a transposed CSR product is several times slower), cut into
    blocks of :data:`BLOCK_SENTENCES` columns so that each block's slice of the backward product's
    input stays in cache (10^6 sentences: 6x faster)."""
    labels: Tensor
    """(S, n) class labels."""
    n_seeds: int
    n_sentences: int
    vocab_size: int
    shared: bool = False
    """Every seed's corpus is the same one: ``counts`` is that corpus's, multiplied by all seeds at once."""
    _cache: dict[tuple, Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_corpora(cls, corpora: Sequence[Corpus], dtype: torch.dtype, device: torch.device,
                     share: bool = True) -> Batch:
        """The batch of seed k training on ``corpora[k]``: shared when they are all the same corpus and
        ``share`` (False forces the block-diagonal form, to compare the two), block-diagonal otherwise."""
        sizes = {(len(c), c.vocab_size) for c in corpora}
        if len(sizes) != 1:
            raise ValueError(f"Batch: every seed's corpus must have the same size and vocabulary, got {sorted(sizes)}")
        (n_sentences, vocab_size), = sizes
        shared = share and same_corpus(corpora)
        matrix = corpora[0].counts if shared else sp.block_diag([c.counts for c in corpora], format="csr")
        labels = torch.from_numpy(np.stack([c.labels for c in corpora])).to(device)
        blocks = tuple(_to_torch_csr(matrix[start:start + BLOCK_SENTENCES].T.tocsr(), dtype, device)
                       for start in range(0, matrix.shape[0], BLOCK_SENTENCES))
        return cls(_to_torch_csr(matrix, dtype, device), blocks, labels, len(corpora), n_sentences, vocab_size,
                   shared)

    def targets(self, n_classes: int, dtype: torch.dtype) -> Tensor:
        """One-hot labels divided by n (S, n, K): the target term of the mean loss's gradient, built once."""
        key = ("targets", n_classes, dtype)
        if key not in self._cache:
            onehot = torch.nn.functional.one_hot(self.labels, n_classes).to(dtype)
            self._cache[key] = onehot / self.n_sentences
        return self._cache[key]

    def product_size(self, width: int) -> int:
        """Multiply-adds of one product with ``width`` columns per seed: nonzeros times columns."""
        return self.counts.values().numel() * width * (self.n_seeds if self.shared else 1)

    def operand(self, rows: int, width: int, like: Tensor) -> Tensor:
        """An empty (S, rows, width) operand of the products (dtype and device of ``like``), stored as
        the 2-D matrix the batch multiplies (see the class docstring), so that no product copies it."""
        if self.shared:
            return like.new_empty(rows, self.n_seeds, width).transpose(0, 1)
        return like.new_empty(self.n_seeds, rows, width)

    def seeds_product(self, transposed: bool, operand: Tensor) -> Tensor:
        """``counts @ X`` (or ``counts^T @ X``) of every seed's matrix in an (S, rows, width) operand:
        (S, rows', width), stored as :meth:`operand` stores it. An operand stored the other way (from
        another batch) is copied first. The result is a buffer overwritten by the next product of its shape."""
        n_seeds, rows, width = operand.shape
        rows_out = self.vocab_size if transposed else self.n_sentences
        if self.shared:
            out = self.product(transposed, operand.transpose(0, 1).reshape(rows, n_seeds * width))
            return out.view(rows_out, n_seeds, width).transpose(0, 1)
        return self.product(transposed, operand.reshape(n_seeds * rows, width)).view(n_seeds, rows_out, width)

    def product(self, transposed: bool, dense: Tensor) -> Tensor:
        """``counts @ dense`` (or ``counts^T @ dense``) of a 2-D ``dense``, into a buffer kept for the next
        call of the same shape: no per-epoch allocation, zero-filling or page faults. The result is
        overwritten by that call."""
        rows = self.counts.shape[1] if transposed else self.counts.shape[0]
        key = ("product", transposed, dense.shape[1], dense.dtype)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = dense.new_empty(rows, dense.shape[1])
        if not transposed:
            return torch.addmm(out, self.counts, dense, beta=0.0, out=out)
        for index, block in enumerate(self.transposed_blocks):
            start = index * BLOCK_SENTENCES
            torch.addmm(out, block, dense[start:start + block.shape[1]], beta=0.0 if index == 0 else 1.0, out=out)
        return out


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------


def first_layer_name(head: dict[str, Tensor]) -> str:
    """Name of the head's first linear layer U1: ``U`` of Attn-FC/TC, ``U1`` of Attn-TL."""
    return "U" if "U" in head else "U1"


def first_layer(head: dict[str, Tensor]) -> Tensor:
    """The head's first linear layer U1 (S, d, K1)."""
    return head[first_layer_name(head)]


def _row_blocks(embeddings: Tensor) -> list[slice]:
    """The blocks of :data:`ROW_BLOCK` rows that the dense products with (S, V, d) ``embeddings`` walk
    through, one seed at a time. On CPU a block of E (1.6 MB at d = 200 in float32) is read from memory
    by the first product and stays in cache for the next one; MKL's skinny products (K1 = 2 to 4
    columns) also read E from memory about 1.5x faster in such blocks than in one call over a seed's
    whole E. Elsewhere (GPU) one block per seed, so as not to multiply kernel launches."""
    rows = embeddings.shape[1]
    if embeddings.device.type != "cpu":
        return [slice(0, rows)]
    return [slice(start, start + ROW_BLOCK) for start in range(0, rows, ROW_BLOCK)]


def _project_rows(embeddings: Tensor, u_t: Tensor, out: Tensor) -> None:
    """One seed's block of R = E U1: ``out`` (K1, rows), a slice of class-major R's storage, gets
    U1^T E^T for ``embeddings`` (rows, d) and ``u_t`` = U1^T (K1, d). :func:`_project` and
    :func:`step_projected_embeddings` both form R this way, so a recomputed R equals a kept one bit for bit."""
    torch.mm(u_t, embeddings.T, out=out)


def _batched(embeddings: Tensor) -> bool:
    """Whether the dense products with (S, V, d) ``embeddings`` run batched over all seeds at once: E small
    (:data:`SMALL_EMBEDDINGS`), or not on the CPU (one kernel rather than a launch per seed)."""
    return embeddings.device.type != "cpu" or embeddings.numel() * embeddings.element_size() <= SMALL_EMBEDDINGS


def _project(embeddings: Tensor, u: Tensor) -> Tensor:
    """E U1 (S, V, K1), laid out class-major (see :func:`class_major`); seed by seed in blocks of rows,
    or in one batched product when E is small (:func:`_batched`)."""
    n_seeds, vocab_size, _ = embeddings.shape
    projection = class_major(n_seeds, vocab_size, u.shape[2], embeddings)
    storage, u_t = projection.transpose(1, 2), _transposed(u)
    if _batched(embeddings):
        torch.bmm(u_t, embeddings.transpose(1, 2), out=storage)
        return projection
    for seed in range(n_seeds):
        for rows in _row_blocks(embeddings):
            _project_rows(embeddings[seed, rows], u_t[seed], storage[seed, :, rows])
    return projection


def _t_times(embeddings: Tensor, right: Tensor) -> Tensor:
    """E^T right (S, d, K1) for a per-word (S, V, K1) ``right``: seed by seed, first to last, summed over
    blocks of rows (:func:`step_projected_embeddings` then walks the seeds back, last to first)."""
    n_seeds, _, d = embeddings.shape
    out = right.new_empty(n_seeds, right.shape[2], d)
    if _batched(embeddings):
        return torch.bmm(right.transpose(1, 2), embeddings, out=out).transpose(1, 2)
    for seed in range(n_seeds):
        for index, rows in enumerate(_row_blocks(embeddings)):
            torch.addmm(out[seed], right[seed, rows].T, embeddings[seed, rows], beta=1.0 if index else 0.0,
                        out=out[seed])
    return out.transpose(1, 2)


def step_projected_embeddings(params: Params, d_words: Tensor, gradient_layer: Tensor, rate: Tensor) -> None:
    """The update E += rate dL/dR U1^T of embeddings carried in full (``gradient_layer``: the U1 the
    gradient was taken at, ``rate``: (S, 1, 1)), followed by R = E U1 with the current U1, which is
    kept for the next forward pass (:meth:`Params.keep_projection`).

    Each block of rows is projected right after its update, while still in cache: E is read from
    memory once here instead of twice (update, then next epoch's projection). Seeds run last to first:
    backward's E^T dL/dR (:func:`_t_times`) read them first to last, so the last seeds' E are still in
    cache, and the first seed's, read last here, is still there when the next backward starts with it.
    """
    embeddings, u = params.embeddings, first_layer(params.head)
    n_seeds, vocab_size, _ = embeddings.shape
    weights = (gradient_layer.transpose(1, 2) * rate).contiguous()  # MKL: 3x slower on strided
    projection = class_major(n_seeds, vocab_size, u.shape[2], embeddings)
    storage, u_t = projection.transpose(1, 2), _transposed(u)
    if _batched(embeddings):
        embeddings.baddbmm_(d_words, weights)
        torch.bmm(u_t, embeddings.transpose(1, 2), out=storage)
        params.keep_projection(projection)
        return
    for seed in reversed(range(n_seeds)):
        for rows in _row_blocks(embeddings):
            block = embeddings[seed, rows]
            block.addmm_(d_words[seed, rows], weights[seed])
            _project_rows(block, u_t[seed], storage[seed, :, rows])
    params.keep_projection(projection)


def class_major(n_seeds: int, vocab_size: int, width: int, like: Tensor) -> Tensor:
    """An empty (S, V, K1) tensor stored as (S, K1, V). Per-word K1-vectors (R, Z, dL/dR) live this way:
    with V innermost, MKL multiplies them by K1 x K1 or K1 x d matrices ~5x faster when K1 is 2 to 4,
    and scaling them by a per-word weight vectorises."""
    return like.new_empty(n_seeds, width, vocab_size).transpose(1, 2)


@dataclass
class Params:
    """Parameters of S models, one per seed, stacked along a leading seed axis.

    With a fixed query and keys starting at 0, every key stays parallel to the query (the
    gradient with respect to a key is the score's gradient times q), so the keys are carried as one score per word
    (``scores``) and ``keys`` is None; otherwise the
    full keys are carried and ``scores`` is None.

    With ``coords`` set (the span reduction, see the module docstring), ``embeddings`` holds E(0)
    and stays fixed, the embeddings are ``E(0) + coords U1^T`` and ``projected`` carries ``E U1``.
    """

    embeddings: Tensor  # (S, V, d_embed); E(0) when coords is set
    query: Tensor  # (S, d_key)
    head: dict[str, Tensor]
    keys: Tensor | None = None  # (S, V, d_key)
    scores: Tensor | None = None  # (S, V)
    coords: Tensor | None = None  # (S, V, K1) Z of E = E(0) + Z U1^T, class-major
    projected: Tensor | None = None  # (S, V, K1) R = E U1, carried together with coords, class-major
    kept_projection: tuple | None = field(default=None, repr=False)
    """R = E U1 of embeddings carried in full, kept by :meth:`keep_projection` with what it was formed from."""

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

    @property
    def projects(self) -> bool:
        """Whether the engine pools R = E U1 rather than E: U1 narrower than E, or the span reduction."""
        return self.coords is not None or first_layer(self.head).shape[2] < self.embeddings.shape[2]

    def word_vectors(self) -> Tensor:
        """What the sparse product pools for each word (S, V, width): R = E U1 when projecting, else E.
        With E carried in full, R is the one the last update formed, while E and U1 are unchanged."""
        if self.projected is not None:
            return self.projected
        if not self.projects:
            return self.embeddings
        kept = self._kept_projection()
        return kept if kept is not None else _project(self.embeddings, first_layer(self.head))

    def keep_projection(self, projection: Tensor) -> None:
        """Keep R = E U1 (formed from the current E and U1) for :meth:`word_vectors`, which saves a pass
        over E. It is stamped with E and U1 and their version counters (torch bumps them on every
        in-place change), so it is dropped, and R recomputed, once either changes or is replaced."""
        self.kept_projection = (projection, self._projection_stamp())

    def _projection_stamp(self) -> tuple:
        u = first_layer(self.head)
        return self.embeddings, self.embeddings._version, u, u._version

    def _kept_projection(self) -> Tensor | None:
        """The kept R if E and U1 are the very tensors, unchanged, that it was formed from; else None."""
        if self.kept_projection is None:
            return None
        projection, (embeddings, e_version, u, u_version) = self.kept_projection
        now_embeddings, now_e_version, now_u, now_u_version = self._projection_stamp()
        if embeddings is now_embeddings and u is now_u and (e_version, u_version) == (now_e_version, now_u_version):
            return projection
        self.kept_projection = None
        return None

    def embedding_vectors(self) -> Tensor:
        """Every word's embedding (S, V, d), materialised from E(0) and Z under the span reduction."""
        if self.coords is None:
            return self.embeddings
        return torch.baddbmm(self.embeddings, self.coords, first_layer(self.head).transpose(1, 2))

    def embedding_norms(self, words: Tensor, constants: tuple[Tensor, ...] | None = None) -> Tensor:
        """|v_w| of the given words (S, W); under the span reduction exactly, from
        |E0_w + Z_w U^T|^2 = |E0_w|^2 + 2 (E0_w U) . Z_w + Z_w (U^T U) Z_w^T, without forming E.
        ``constants``, :meth:`norm_constants` of the same words, saves recomputing the terms that E(0)
        and the fixed U1 alone give (the same values, so the same result to the bit)."""
        if self.coords is None:
            return self.embeddings[:, words].norm(dim=2)
        base_square, base_u, gram = constants if constants is not None else self.norm_constants(words)
        z = self.coords[:, words]
        cross = torch.linalg.vecdot(base_u, z)
        square = torch.linalg.vecdot(torch.bmm(z, gram), z)
        return (base_square + 2 * cross + square).clamp_min(0.0).sqrt()

    def norm_constants(self, words: Tensor) -> tuple[Tensor, ...] | None:
        """Under the span reduction, the terms of :meth:`embedding_norms` that do not change while training
        (E(0) and U1 are fixed): |E0_w|^2, E0_w U1 and U1^T U1. None when the embeddings are carried in full."""
        if self.coords is None:
            return None
        base, u = self.embeddings[:, words], first_layer(self.head)
        return (base * base).sum(2), torch.bmm(base, u), u.transpose(1, 2) @ u

    def clone(self) -> Params:
        copy = lambda t: None if t is None else t.clone()  # noqa: E731
        return Params(copy(self.embeddings), copy(self.query), {k: v.clone() for k, v in self.head.items()},
                      copy(self.keys), copy(self.scores), copy(self.coords), copy(self.projected))


def span_reduced(params: Params) -> Params:
    """The same parameters under the span reduction (Z = 0, R = E U1); exact while U1 stays fixed."""
    if params.coords is not None:
        return params
    reduced = params.clone()
    reduced.projected = _project(params.embeddings, first_layer(params.head))
    reduced.coords = torch.zeros_like(reduced.projected)  # keeps the class-major layout
    return reduced


def span_expanded(params: Params) -> Params:
    """The same parameters with the embeddings carried in full again (undoes :func:`span_reduced`)."""
    if params.coords is None:
        return params
    full = params.clone()
    full.embeddings, full.coords, full.projected = params.embedding_vectors(), None, None
    return full


def _fc_matrix(rng: np.random.Generator, d: int, k: int, kind: str) -> np.ndarray:
    """The fixed classifier of Attn-FC: by default, as in the authors' code, a standard-normal matrix with
    its diagonal set to 1 (the paper does not give it); orthonormal or one-hot columns as alternatives."""
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
    the three heads of one seed start from the same attention block and differ only in the classifier (the
    authors' code reseeds before creating the embeddings to the same effect)."""
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
# Heads after their first linear layer: forward and hand-written backward, batched over seeds
# ----------------------------------------------------------------------------------------------


def head_forward(kind: str, head: dict[str, Tensor], pooled: Tensor, projected: bool) -> tuple[Tensor, tuple]:
    """Logits (S, n, K) from the pooled sentence vectors: ``c U1`` when ``projected`` (the engine
    applied U1 per word), else ``c``; plus what the backward pass needs."""
    first = pooled if projected else torch.bmm(pooled, first_layer(head))
    if kind in ("FC", "TC"):
        return first, (pooled,)
    pre = first + head["b1"][:, None, :]
    hidden = torch.relu(pre)
    logits = torch.baddbmm(head["b2"][:, None, :], hidden, head["U2"])
    return logits, (pooled, pre, hidden)


def head_backward(kind: str, head: dict[str, Tensor], saved: tuple, d_logits: Tensor,
                  projected: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """Gradient with respect to the pooled sentence vectors, and the head's own gradients (U1's only
    when not ``projected``; otherwise the engine forms it from the per-word gradient)."""
    if kind in ("FC", "TC"):
        d_first, grads = d_logits, {}
    else:
        _, pre, hidden = saved
        d_first = torch.bmm(d_logits, _transposed(head["U2"])).mul_(pre > 0)
        grads = {"U2": _transposed(torch.bmm(d_logits.transpose(1, 2), hidden)), "b2": d_logits.sum(1),
                 "b1": d_first.sum(1)}
    if projected:
        return d_first, grads
    grads[first_layer_name(head)] = torch.bmm(saved[0].transpose(1, 2), d_first)
    return torch.bmm(d_first, _transposed(first_layer(head))), grads


def _transposed(matrices: Tensor) -> Tensor:
    """Each matrix of a small (S, a, b) stack transposed and made contiguous: MKL's batched products
    run up to 3x slower on a strided operand."""
    return matrices.transpose(1, 2).contiguous()


# ----------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------


@dataclass
class Forward:
    """One forward pass over a batch: per-seed mean loss and accuracy, plus what backward needs."""

    loss: Tensor  # (S,)
    accuracy: Tensor  # (S,)
    logits: Tensor  # (S, n, K)
    log_probs: Tensor  # (S, n, K)
    pooled: Tensor  # (S, n, width) c U1 when projecting, else the context vectors c
    inverse_denominator: Tensor  # (S, n, 1) 1 / sum_w n_w e_w
    weights: Tensor  # (S, V) exp(s - max s), the unnormalised attention weight of each word
    stacked: Tensor  # (S, V, width + 1) [e * R | e], the operand of the forward product (see Batch.operand)
    head_saved: tuple = field(repr=False)


def attention_inputs(params: Params, batch: Batch | None = None) -> tuple[Tensor, Tensor]:
    """Each word's unnormalised attention weight e^{s_w - max s} (S, V), and the stacked operand
    ``[e * R | e]`` (S, V, width + 1) that one sparse product turns into ``c U1`` numerators and the
    softmax denominators (R = E when not projecting). It depends on the parameters only, so one
    computation serves every split; it is stored as ``batch``'s products read it (:meth:`Batch.operand`;
    seed after seed when ``batch`` is None), and a batch stored the other way copies it.
    """
    scores = params.word_scores()
    # A shift by a per-seed constant leaves every sentence's softmax unchanged and keeps exp() finite.
    weights = torch.exp(scores - scores.amax(dim=1, keepdim=True))
    vectors = params.word_vectors()
    n_seeds, vocab_size, width = vectors.shape
    if batch is None:
        stacked = vectors.new_empty(n_seeds, vocab_size, width + 1)
    else:
        stacked = batch.operand(vocab_size, width + 1, vectors)
    _scale_rows(vectors, weights[:, :, None], out=stacked[:, :, :width])
    stacked[:, :, width] = weights
    return weights, stacked


def forward(kind: str, params: Params, batch: Batch, inputs: tuple[Tensor, Tensor] | None = None) -> Forward:
    """Mean cross-entropy and accuracy of every seed's model on the batch.

    ``inputs`` is :func:`attention_inputs` of ``params``, passed in when several splits share it.
    """
    weights, stacked = inputs if inputs is not None else attention_inputs(params, batch)
    width = stacked.shape[2] - 1
    pooled = batch.seeds_product(False, stacked)  # (S, n, width + 1)
    inverse_denominator = pooled[:, :, width:].reciprocal()
    sentences = pooled[:, :, :width] * inverse_denominator
    logits, head_saved = head_forward(kind, params.head, sentences, params.projects)
    log_probs = _log_softmax(logits)
    loss = -log_probs.gather(2, batch.labels[:, :, None]).squeeze(2).mean(1)
    accuracy = (logits.max(2).indices == batch.labels).to(logits.dtype).mean(1)  # first maximum, as argmax
    return Forward(loss, accuracy, logits, log_probs, sentences, inverse_denominator, weights, stacked, head_saved)


def _log_softmax(logits: Tensor) -> Tensor:
    """log_softmax over the classes (S, n, K), computed class-major: ~5x faster when K is 2 to 5."""
    return torch.log_softmax(logits.transpose(1, 2), dim=1).transpose(1, 2)


def _scale_rows(a: Tensor, scale: Tensor, out: Tensor) -> Tensor:
    """``out = a * scale`` for (S, rows, k) ``a`` and ``out`` and an (S, rows, 1) ``scale``; one column
    at a time when ``a`` is class-major (see :func:`class_major`). Torch loops innermost over the k
    entries of a row, which a class-major ``a`` keeps V or n apart: into a shared corpus's operand
    (:meth:`Batch.operand`) that runs 5 to 6 times slower than k products of whole columns."""
    if a.stride(2) == 1:
        return torch.mul(a, scale, out=out)
    for column in range(a.shape[2]):
        torch.mul(a[:, :, column], scale[:, :, 0], out=out[:, :, column])
    return out


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """Dot products along a short last axis (S, rows, k) -> (S, rows): a product, then a matrix-vector
    product with ones, several times faster than torch's sum over a last axis of 2 to 11 entries.
    Computed in the order ``a`` is stored in (rows outermost for a shared corpus, see
    :meth:`Batch.operand`): the matrix-vector product would otherwise copy ``a * b`` into seed order."""
    if a.stride(0) < a.stride(1):
        return _rowdot(a.transpose(0, 1), b.transpose(0, 1)).transpose(0, 1)
    return torch.matmul(a * b, a.new_ones(a.shape[-1]))


@dataclass
class Gradients:
    """Gradients of the sum over seeds of each seed's mean loss (so each seed gets its own gradient)."""

    word_vectors: Tensor | None  # (S, V, width) dL/dR for R = E U1 (class-major) when projecting, else dL/dE;
    # None when nothing reads it (embeddings frozen, and U1 frozen or not fed by it)
    scores: Tensor | None  # (S, V): dL/ds_w; the keys' gradient is dL/ds_w * q; None when keys and query are frozen
    head: dict[str, Tensor]
    first_layer: Tensor | None = field(default=None, repr=False)  # U1 at the gradient's point, when projecting

    @property
    def embeddings(self) -> Tensor | None:
        """dL/dE (S, V, d), materialised on request (training applies dL/dR U1^T as a rank-K1 update)."""
        if self.first_layer is None or self.word_vectors is None:
            return self.word_vectors
        return torch.bmm(self.word_vectors, self.first_layer.transpose(1, 2))


def _embeddings_t_times(params: Params, right: Tensor) -> Tensor:
    """E^T @ right (S, d, K1), reading E once; under the span reduction E(0)^T right + U1 (Z^T right)."""
    product = _t_times(params.embeddings, right)
    if params.coords is not None:
        product = product + first_layer(params.head) @ torch.bmm(params.coords.transpose(1, 2), right)
    return product


def backward(kind: str, params: Params, batch: Batch, fwd: Forward, frozen: Collection[str] = ()) -> Gradients:
    """Hand-written backward pass of :func:`forward`: one sparse product with the transposed counts.

    What nothing would read is skipped: when projecting, the gradient of U1 (which reads all of E) if
    ``"head"`` is in ``frozen``; the scores' gradient (a pass over every word), left None, if both ``"keys"``
    and ``"query"`` are; the words' gradient, left None, if ``"embeddings"`` is and U1's gradient does not
    need it (``"head"`` frozen too, or not projecting: the head's gradients then come from the sentences).
    """
    n_seeds, n_sentences, n_classes = fwd.logits.shape
    d_logits = torch.exp(fwd.log_probs).div_(n_sentences).sub_(batch.targets(n_classes, fwd.logits.dtype))
    d_pooled, head_grads = head_backward(kind, params.head, fwd.head_saved, d_logits, params.projects)
    width = d_pooled.shape[2]
    # Through pooled = P / D: dL/dP = dL/dpooled / D and dL/dD = -dL/dP . pooled.
    stacked = batch.operand(n_sentences, width + 1, d_logits)
    d_numerator = _scale_rows(d_pooled, fwd.inverse_denominator, out=stacked[:, :, :width])
    stacked[:, :, width] = _rowdot(d_numerator, fwd.pooled).neg_()
    spread = batch.seeds_product(True, stacked)  # (S, V, width + 1)
    d_scores = None if {"keys", "query"} <= set(frozen) else _rowdot(spread, fwd.stacked)
    spread = spread[:, :, :width]
    if "embeddings" in frozen and ("head" in frozen or not params.projects):
        return Gradients(None, d_scores, head_grads)
    # class-major when projecting (K1-vectors, see class_major); row-major like E when pooling E itself
    vocab_size = spread.shape[1]
    d_words = class_major(n_seeds, vocab_size, width, spread) if params.projects else spread.new_empty(spread.shape)
    torch.mul(spread, fwd.weights[:, :, None], out=d_words)
    if not params.projects:
        return Gradients(d_words, d_scores, head_grads)
    if "head" not in frozen:
        head_grads[first_layer_name(params.head)] = _embeddings_t_times(params, d_words)
    return Gradients(d_words, d_scores, head_grads, first_layer(params.head).clone())


def key_and_query_gradients(params: Params, d_scores: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of the full keys (dL/ds_w q) and of the query (sum_w dL/ds_w kappa_w)."""
    d_keys = d_scores[:, :, None] * params.query[:, None, :]
    d_query = torch.einsum("sv,svk->sk", d_scores, params.key_vectors())
    return d_keys, d_query
