"""Full-batch gradient descent for several seeds at once, with recording and early stopping.

This is the one training engine of attnlib: every experiment calls :func:`train`. It records what
the figures need and nothing more: per-epoch loss and accuracy, the score and |q| |v| of traced
words every ``record_every`` epochs (and at any extra epochs asked for), and every word's final
score and norm. :func:`update` is the one gradient-descent step, which :func:`train` and the
benchmark's engine model both take.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from attnlib.config import ModelConfig, TrainConfig
from attnlib.data.corpus import Dataset
from attnlib.device import default_device
from attnlib.model import (
    Batch,
    Forward,
    Gradients,
    Params,
    attention_inputs,
    backward,
    first_layer,
    forward,
    init_params,
    key_and_query_gradients,
    span_expanded,
    span_reduced,
    step_projected_embeddings,
)

Tensor = torch.Tensor
Result = TypeVar("Result")


SMALL_EPOCH = 1 << 26
"""Below this many values touched per epoch, training on CPU runs on one thread (see :func:`cpu_threads`)."""
HUGE_EPOCH_THREADS = 2
"""CPU threads of the epochs of larger problems: a fixed count, not the machine's or the scheduler's, because
the thread count sets the order of float32 sums and so the bytes of the result (2: the cores this project
measures on; more cores go to settings trained side by side, see :mod:`attnlib.sweep`)."""


class TrainingDiverged(FloatingPointError):
    """Raised when the loss or the parameters stop being finite."""


@dataclass
class TrainResult:
    """What one call of :func:`train` recorded, as NumPy arrays with a seed axis."""

    model: ModelConfig
    train_config: TrainConfig
    seeds: list[int]
    loss: np.ndarray  # (T + 1, S) training loss at parameters theta_t; NaN after a seed stopped
    train_accuracy: np.ndarray  # (T + 1, S)
    record_epochs: np.ndarray  # (R,)
    test_loss: np.ndarray  # (R, S)
    test_accuracy: np.ndarray  # (R, S)
    traced_words: np.ndarray  # (W,)
    traced_scores: np.ndarray  # (R, S, W)
    traced_norms: np.ndarray  # (R, S, W) |q| |v_w|
    final_scores: np.ndarray  # (S, V) at the returned parameters
    final_norms: np.ndarray  # (S, V) |q| |v_w| at the returned parameters
    query_norm: np.ndarray  # (S,)
    final_test_accuracy: np.ndarray  # (S,) at the returned parameters
    stopped_epoch: np.ndarray  # (S,) last epoch trained
    best_epoch: np.ndarray  # (S,) epoch of the returned parameters
    dev_loss: np.ndarray | None = None  # (T + 1, S) when early stopping
    params: Params | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.model.name


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[name]


def frozen_groups(model: ModelConfig, config: TrainConfig) -> set[str]:
    """The parameter groups gradient descent leaves alone: the configured ones, a fixed query, Attn-FC's head."""
    frozen = set(config.freeze)
    if not model.train_query:
        frozen.add("query")
    if model.head == "FC":
        frozen.add("head")  # the fixed classifier is part of the model's definition
    return frozen


def apply_gradients(params: Params, grads: Gradients, lr: Tensor, frozen: set[str]) -> None:
    """One gradient-descent update in place; ``lr`` is (S,) so stopped seeds can get a rate of 0."""
    rate = -lr
    if "keys" not in frozen or "query" not in frozen:
        if params.scores is not None:
            # keys stay parallel to q: kappa -= lr * ds * q  <=>  s -= lr * |q|^2 * ds
            if "keys" not in frozen:
                params.scores.addcmul_(grads.scores, rate[:, None] * (params.query * params.query).sum(1, keepdim=True))
        else:
            d_keys, d_query = key_and_query_gradients(params, grads.scores)
            if "query" not in frozen:
                params.query.addcmul_(d_query, rate[:, None])
            if "keys" not in frozen:
                params.keys.addcmul_(d_keys, rate[:, None, None])
    if "head" not in frozen:
        for name, grad in grads.head.items():
            params.head[name].addcmul_(grad, rate.reshape(-1, *([1] * (grad.dim() - 1))))
    if "embeddings" not in frozen:  # after the head, so that the R formed with E's update has the new U1
        _step_embeddings(params, grads, rate[:, None, None])


def update(head: str, params: Params, batch: Batch, fwd: Forward, frozen: set[str], lr: Tensor) -> None:
    """One epoch's gradient-descent step in place: the gradients at the forward pass ``fwd`` (taken on
    ``batch`` at the current parameters), then :func:`apply_gradients`."""
    apply_gradients(params, backward(head, params, batch, fwd, frozen), lr, frozen)


def _step_embeddings(params: Params, grads: Gradients, rate: Tensor) -> None:
    """E += rate dL/dE. Projecting, that is the rank-K1 update E += rate dL/dR U1^T (U1 where the
    gradient was taken, ``grads.first_layer``), which also forms the next R = E U1 (see
    :func:`attnlib.model.step_projected_embeddings`); under the span reduction, Z += rate dL/dR and
    R += rate dL/dR U1^T U1 (E itself is never touched)."""
    d_words = grads.word_vectors
    if not params.projects:
        params.embeddings.addcmul_(d_words, rate)
        return
    if params.coords is None:
        step_projected_embeddings(params, d_words, grads.first_layer, rate)
    else:
        u = grads.first_layer
        params.coords.addcmul_(d_words, rate)
        # R^T += (rate U1^T U1) dL/dR^T on the class-major storage (see attnlib.model.class_major)
        params.projected.transpose(1, 2).baddbmm_((u.transpose(1, 2) @ u) * rate, d_words.transpose(1, 2))


def _copy_seeds(dst: Params, src: Params, seeds: Tensor) -> None:
    """Copy the parameters of the seeds in the boolean mask ``seeds`` from ``src`` into ``dst``
    (E(0) of the span reduction never changes, so it is not copied)."""
    pairs = [(dst.query, src.query)] + [(dst.head[k], src.head[k]) for k in dst.head]
    optional = [(dst.keys, src.keys), (dst.scores, src.scores), (dst.coords, src.coords),
                (dst.projected, src.projected)]
    pairs += [(d, s) for d, s in optional if d is not None]
    if dst.coords is None:
        pairs.append((dst.embeddings, src.embeddings))
    every = bool(seeds.all())
    for d, s in pairs:
        if every:
            d.copy_(s)  # one pass, where masked indexing makes several
        else:
            d[seeds] = s[seeds]


def _traced(params: Params, words: Tensor, constants: tuple[Tensor, ...] | None = None) -> tuple[Tensor, Tensor]:
    """Scores and |q| |v_w| of the traced words, shape (S, W) each (``constants``: see
    :meth:`attnlib.model.Params.norm_constants`)."""
    scores = params.word_scores()[:, words]
    norms = params.embedding_norms(words, constants) * params.query_norm()[:, None]
    return scores, norms


def epoch_size(params: Params, batch: Batch) -> int:
    """Values one training epoch touches: the sparse products' nonzeros times their width, plus the
    per-word arrays updated in place (all of E unless the span reduction carries it)."""
    width = first_layer(params.head).shape[2] if params.projects else params.embeddings.shape[2]
    carried = params.projected if params.coords is not None else params.embeddings
    return batch.product_size(width + 1) + carried.numel()


@contextmanager
def cpu_threads(device: torch.device, size: int) -> Iterator[None]:
    """Run all but huge problems (``size`` < :data:`SMALL_EPOCH`) on one CPU thread, huge ones on
    :data:`HUGE_EPOCH_THREADS`, restoring the setting after. An epoch is a few dozen sub-millisecond ops;
    on those OpenMP's synchronisation costs more than a second thread gains, and far more when another
    process holds a core (measured on 2 shared cores: SST2 Attn-TC epochs 5 ms on one thread, 60-110 ms
    on two)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1 if size < SMALL_EPOCH else HUGE_EPOCH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


KEPT_FREE_BYTES = 32 << 20
"""Blocks up to this size come from malloc's heap, not from fresh pages of the system (glibc's largest such
setting on 64-bit systems); see :func:`reuse_freed_memory`."""
TRIM_BYTES = 256 << 20
"""Free memory at the top of malloc's heap is handed back to the system only beyond this size."""


@functools.cache
def reuse_freed_memory() -> bool:
    """Let glibc's malloc reuse freed blocks for the engine's per-epoch temporaries (True where it was set).

    An epoch allocates and frees the same few arrays of a few MB (a TL head's hidden layer, the SST
    products' outputs). By default glibc hands such blocks back to the system and maps fresh, zeroed pages for
    the next, so every epoch pays page faults for memory it just freed. With blocks up to
    :data:`KEPT_FREE_BYTES` served from the heap and the heap kept up to :data:`TRIM_BYTES`, the same
    blocks are reused. Measured on 2 cores, 3 seeds: Attn-TL with 200 hidden units on the synthetic preset
    14.3 -> 9.2 ms per epoch, SST2 Attn-FC 9.2 -> 7.2 ms; every result bit for bit the same (where a value
    is computed does not change how). Process-wide and harmless elsewhere; a no-op off glibc (macOS,
    Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, KEPT_FREE_BYTES)) and bool(mallopt(m_trim_threshold, TRIM_BYTES))


def pinned_threads(function: Callable[..., Result]) -> Callable[..., Result]:
    """``function`` (:func:`train`, and whatever computes a stored result around it) with torch on one CPU
    thread from start to end (building the batches,
    initialising, the span reduction's products, the final evaluation), restoring the setting after; the
    epochs run on :func:`cpu_threads`' count. So a result's bytes never depend on the thread count the
    caller had set: a Dask worker runs torch on one thread, a local process on every core, and float32
    sums over threads are added in another order (SST5 Attn-FC's loss curve moved by 2.4e-7)."""
    @functools.wraps(function)
    def pinned(*args: Any, **kwargs: Any) -> Result:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return pinned


def _check_finite(loss: Tensor, epoch: int, lr: float, model: ModelConfig | None = None) -> None:
    """Non-finite parameters make the loss non-finite, so checking the loss each epoch suffices. The sum
    over seeds is finite exactly when every seed's loss is (a loss is at most a few hundred, far from
    overflowing), and it is one operation where ``isfinite(loss).all()`` is five."""
    if not math.isfinite(float(loss.sum())):
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}: the training loss is no longer finite "
            f"(loss per seed {loss.tolist()}); {_likely_cause(lr, model)}"
        )


INIT_SCALE_LIMIT = 10.0
"""An initial scale above this is far beyond any setting of the paper (query std 0.3, embedding std <= 0.1)."""


def _likely_cause(lr: float, model: ModelConfig | None) -> str:
    """What most likely made training diverge: an initial scale far too large (a huge query or huge
    embeddings make the scores or logits overflow whatever the step size), else the learning rate."""
    scales = {} if model is None else {"model.query_std": model.query_std, "model.embed_init_std": model.embed_init_std,
                                       "model.key_init_std": model.key_init_std}
    large = [f"{name} = {value:g}" for name, value in scales.items() if value > INIT_SCALE_LIMIT]
    if large:
        return f"the initial scale ({', '.join(large)}) is most likely too large, not the learning rate ({lr})"
    return f"the learning rate ({lr}) is most likely too large"


PROGRESS_EVERY_S = 30.0
"""Outside a terminal, long work prints a progress line at least this often (on stderr): often enough that
a CI log, nohup.out or a subprocess's output shows the run is alive, rarely enough not to flood them."""

_clock = {"line": float("-inf"), "active": float("-inf")}
"""Monotonic times of the last plain progress line and of the last training step reported, shared by
consecutive calls: many short trainings in a row report as one long one does, and the clock starts
again after a pause in training longer than :data:`PROGRESS_EVERY_S`."""


class _Progress:
    """Progress of one :func:`train` call: ``update(n)`` after ``n`` more epochs. A tqdm bar when stderr is a
    terminal; otherwise a plain line (what trains, epoch, elapsed seconds) at least every
    :data:`PROGRESS_EVERY_S` of training, and none in a Jupyter kernel (whose cells' output the book shows)
    or when ``quiet``."""

    def __init__(self, total: int, description: str, quiet: bool) -> None:
        self.total, self.description, self.done = total, description, 0
        self.started = time.monotonic()
        terminal = _isatty(sys.stderr)
        self.bar = tqdm(total=total, desc=description, unit="epoch", mininterval=0.5, leave=False,
                        disable=quiet or not terminal)
        self.plain = not quiet and not terminal and "ipykernel" not in sys.modules
        if self.plain and self.started - _clock["active"] > PROGRESS_EVERY_S:
            _clock["line"] = self.started
        if self.plain:
            _clock["active"] = self.started

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        if not self.plain:
            return
        now = _clock["active"] = time.monotonic()
        if now - _clock["line"] >= PROGRESS_EVERY_S:
            print(f"{self.description}: epoch {min(self.done, self.total)} of {self.total}, "
                  f"{now - self.started:.0f} s", file=sys.stderr, flush=True)
            _clock["line"] = now

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.plain:
            _clock["active"] = time.monotonic()


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _progress(total: int, description: str, quiet: bool) -> _Progress:
    return _Progress(total, description, quiet)


def _seeds_text(seeds: Sequence[int]) -> str:
    """``seed 3``, ``seeds 0-4`` or ``seeds 0, 2, 7``, for progress lines."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


@pinned_threads
def train(model: ModelConfig, config: TrainConfig, datasets: Sequence[Dataset], seeds: Sequence[int],
          trace_words: Sequence[int] | np.ndarray = (), quiet: bool = False,
          device: torch.device | None = None, keep_params: bool = False,
          reduce_embeddings: bool = True, share_corpora: bool = True,
          record_at: Sequence[int] = ()) -> TrainResult:
    """Train one model per seed (seed k on ``datasets[k]``) by full-batch gradient descent.

    With ``config.patience`` set, each seed stops on its own once its dev loss has not improved for
    that many epochs, and its best parameters are restored. Raises :class:`TrainingDiverged` when
    the loss stops being finite. With a fixed head (Attn-FC, or ``"head"`` frozen) and
    ``reduce_embeddings``, the embeddings are carried in span(U1) coordinates (exact; see
    :mod:`attnlib.model`); ``keep_params`` returns them in full either way. A split on which every
    seed has the same corpus (e.g. ``[dataset] * S``) is multiplied once for all seeds rather than
    stacked block-diagonally (the same sums, see :class:`attnlib.model.Batch`); ``share_corpora=False``
    always stacks, to compare the two. On CPU all but huge problems train on one thread (see
    :func:`cpu_threads`). Traced words are recorded every ``config.record_every`` epochs, at the last
    epoch, and at the epochs in ``record_at`` (e.g. ``(1,)`` for the snapshot after the first step).
    """
    reuse_freed_memory()
    seeds = [int(s) for s in seeds]
    if len(datasets) != len(seeds):
        raise ValueError(f"train: got {len(datasets)} datasets for {len(seeds)} seeds; pass one dataset per seed")
    if not seeds:
        raise ValueError("train: seeds must name at least one seed")
    if config.patience is not None and any("dev" not in d.splits for d in datasets):
        raise ValueError("TrainConfig.patience needs a 'dev' split in every dataset (early stopping monitors the dev loss)")
    device = device or default_device()
    dtype = _dtype(config.dtype)
    batches = {name: Batch.from_corpora([d.splits[name] for d in datasets], dtype, device, share=share_corpora)
               for name in datasets[0].splits}
    train_batch, test_batch = batches["train"], batches["test"]
    params = init_params(model, train_batch.vocab_size, datasets[0].n_classes, seeds, dtype, device)
    frozen = frozen_groups(model, config)
    if reduce_embeddings and "head" in frozen:
        params = span_reduced(params)
    words = torch.as_tensor(np.asarray(trace_words, dtype=np.int64), device=device)

    n_seeds, epochs = len(seeds), config.epochs
    extra = [int(e) for e in record_at if 0 <= int(e) <= epochs]
    record_epochs = np.unique(np.r_[np.arange(0, epochs + 1, config.record_every), epochs, extra]).astype(np.int64)
    new = lambda *shape: torch.full(shape, float("nan"), dtype=dtype, device=device)  # noqa: E731
    loss_log, accuracy_log = new(epochs + 1, n_seeds), new(epochs + 1, n_seeds)
    test_loss_log, test_accuracy_log = new(len(record_epochs), n_seeds), new(len(record_epochs), n_seeds)
    score_log, norm_log = new(len(record_epochs), n_seeds, len(words)), new(len(record_epochs), n_seeds, len(words))

    early = config.patience is not None
    dev_log = new(epochs + 1, n_seeds) if early else None
    best = params.clone() if early else None
    best_loss = torch.full((n_seeds,), float("inf"), dtype=dtype, device=device)
    best_epoch = torch.zeros(n_seeds, dtype=torch.long, device=device)
    stopped_epoch = torch.full((n_seeds,), epochs, dtype=torch.long, device=device)
    active = torch.ones(n_seeds, dtype=torch.bool, device=device)
    lr = torch.full((n_seeds,), config.lr, dtype=dtype, device=device)

    record_index = 0
    constants = params.norm_constants(words)  # the traced norms' fixed terms, formed once
    description = f"{datasets[0].name} {model.name}, {_seeds_text(seeds)}"
    threads = cpu_threads(device, epoch_size(params, train_batch))
    with _progress(epochs, description, quiet) as bar, torch.no_grad(), threads:
        for epoch in range(epochs + 1):
            inputs = attention_inputs(params, train_batch)
            fwd = forward(model.head, params, train_batch, inputs)
            _check_finite(fwd.loss, epoch, config.lr, model)
            if early:  # a stopped seed keeps NaN from its stop on
                loss_log[epoch] = torch.where(active, fwd.loss, loss_log[epoch])
                accuracy_log[epoch] = torch.where(active, fwd.accuracy, accuracy_log[epoch])
            else:
                loss_log[epoch], accuracy_log[epoch] = fwd.loss, fwd.accuracy
            if record_index < len(record_epochs) and record_epochs[record_index] == epoch:
                test = forward(model.head, params, test_batch, inputs)
                test_loss_log[record_index], test_accuracy_log[record_index] = test.loss, test.accuracy
                score_log[record_index], norm_log[record_index] = _traced(params, words, constants)
                record_index += 1
            if early:
                dev_loss = forward(model.head, params, batches["dev"], inputs).loss
                dev_log[epoch] = torch.where(active, dev_loss, dev_log[epoch])
                improved = active & (dev_loss < best_loss)
                if bool(improved.any()):
                    best_loss = torch.where(improved, dev_loss, best_loss)
                    best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
                    _copy_seeds(best, params, improved)
                newly_stopped = active & (epoch - best_epoch >= config.patience)
                stopped_epoch = torch.where(newly_stopped, torch.full_like(stopped_epoch, epoch), stopped_epoch)
                active &= ~newly_stopped
                lr = torch.where(active, lr, torch.zeros_like(lr))
                if not bool(active.any()):
                    break
            if epoch == epochs:
                break
            update(model.head, params, train_batch, fwd, frozen, lr)
            if epoch % 50 == 49:
                bar.update(50)

    if early:
        params = best
    else:
        best_epoch[:] = epochs
    final = forward(model.head, params, test_batch)
    all_words = torch.arange(train_batch.vocab_size, device=device)
    final_scores, final_norms = _traced(params, all_words)
    done = record_index
    to_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return TrainResult(
        model=model, train_config=config, seeds=seeds,
        loss=to_np(loss_log), train_accuracy=to_np(accuracy_log),
        record_epochs=record_epochs[:done], test_loss=to_np(test_loss_log[:done]),
        test_accuracy=to_np(test_accuracy_log[:done]), traced_words=to_np(words),
        traced_scores=to_np(score_log[:done]), traced_norms=to_np(norm_log[:done]),
        final_scores=to_np(final_scores), final_norms=to_np(final_norms),
        query_norm=to_np(params.query_norm()), final_test_accuracy=to_np(final.accuracy),
        stopped_epoch=to_np(stopped_epoch), best_epoch=to_np(best_epoch),
        dev_loss=None if dev_log is None else to_np(dev_log),
        params=span_expanded(params) if keep_params else None,
    )
