"""Full-batch gradient descent for several seeds at once, with recording and early stopping.

This is the one training engine of attnlib: every experiment calls :func:`train`. It records what
the figures need and nothing more: per-epoch loss and accuracy, the score and |q| |v| of traced
words every ``record_every`` epochs, and every word's final score and norm.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from attnlib.config import ModelConfig, TrainConfig
from attnlib.data.corpus import Dataset
from attnlib.device import default_device
from attnlib.model import (Batch, Params, attention_inputs, backward, forward, init_params,
                           key_and_query_gradients)

Tensor = torch.Tensor


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


def _frozen_groups(model: ModelConfig, config: TrainConfig) -> set[str]:
    frozen = set(config.freeze)
    if not model.train_query:
        frozen.add("query")
    if model.head == "FC":
        frozen.add("head")  # the fixed classifier is part of the model's definition
    return frozen


def _step(params: Params, grads, lr: Tensor, frozen: set[str]) -> None:
    """One gradient-descent update in place; ``lr`` is (S,) so stopped seeds can get a rate of 0."""
    lr_v = lr[:, None]
    lr_m = lr[:, None, None]
    if "keys" not in frozen or "query" not in frozen:
        if params.scores is not None:
            # keys stay parallel to q: kappa -= lr * ds * q  <=>  s -= lr * |q|^2 * ds
            if "keys" not in frozen:
                params.scores -= lr_v * (params.query * params.query).sum(1, keepdim=True) * grads.scores
        else:
            d_keys, d_query = key_and_query_gradients(params, grads.scores)
            if "query" not in frozen:
                params.query -= lr_v * d_query
            if "keys" not in frozen:
                params.keys -= lr_m * d_keys
    if "embeddings" not in frozen:
        params.embeddings.addcmul_(grads.embeddings, -lr_m)
    if "head" not in frozen:
        for name, grad in grads.head.items():
            params.head[name] -= lr.reshape(-1, *([1] * (grad.dim() - 1))) * grad


def _copy_seeds(dst: Params, src: Params, seeds: Tensor) -> None:
    """Copy the parameters of the seeds in the boolean mask ``seeds`` from ``src`` into ``dst``."""
    pairs = [(dst.embeddings, src.embeddings), (dst.query, src.query)]
    pairs += [(dst.head[k], src.head[k]) for k in dst.head]
    pairs += [(d, s) for d, s in ((dst.keys, src.keys), (dst.scores, src.scores)) if d is not None]
    for d, s in pairs:
        d[seeds] = s[seeds]


def _traced(params: Params, words: Tensor) -> tuple[Tensor, Tensor]:
    """Scores and |q| |v_w| of the traced words, shape (S, W) each."""
    scores = params.word_scores()[:, words]
    norms = params.embeddings[:, words, :].norm(dim=2) * params.query_norm()[:, None]
    return scores, norms


def _check_finite(loss: Tensor, epoch: int, lr: float) -> None:
    """Non-finite parameters make the loss non-finite, so checking the loss each epoch suffices."""
    if not bool(torch.isfinite(loss).all()):
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}: the training loss is no longer finite "
            f"(loss per seed {loss.tolist()}); the learning rate ({lr}) is most likely too large"
        )


def _progress(total: int, description: str, quiet: bool):
    return tqdm(total=total, desc=description, unit="epoch", disable=quiet or not sys.stderr.isatty(),
                mininterval=0.5, leave=False)


def train(model: ModelConfig, config: TrainConfig, datasets: Sequence[Dataset], seeds: Sequence[int],
          trace_words: Sequence[int] | np.ndarray = (), quiet: bool = False,
          device: torch.device | None = None, keep_params: bool = False) -> TrainResult:
    """Train one model per seed (seed k on ``datasets[k]``) by full-batch gradient descent.

    With ``config.patience`` set, each seed stops on its own once its dev loss has not improved for
    that many epochs, and its best parameters are restored. Raises :class:`TrainingDiverged` when
    the loss stops being finite.
    """
    seeds = [int(s) for s in seeds]
    if len(datasets) != len(seeds):
        raise ValueError(f"train: got {len(datasets)} datasets for {len(seeds)} seeds; pass one dataset per seed")
    if not seeds:
        raise ValueError("train: seeds must name at least one seed")
    if config.patience is not None and any("dev" not in d.splits for d in datasets):
        raise ValueError("TrainConfig.patience needs a 'dev' split in every dataset (early stopping monitors the dev loss)")
    device = device or default_device()
    dtype = _dtype(config.dtype)
    batches = {name: Batch.from_corpora([d.splits[name] for d in datasets], dtype, device) for name in datasets[0].splits}
    train_batch, test_batch = batches["train"], batches["test"]
    params = init_params(model, train_batch.vocab_size, datasets[0].n_classes, seeds, dtype, device)
    frozen = _frozen_groups(model, config)
    words = torch.as_tensor(np.asarray(trace_words, dtype=np.int64), device=device)

    n_seeds, epochs = len(seeds), config.epochs
    record_epochs = np.unique(np.r_[np.arange(0, epochs + 1, config.record_every), epochs])
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
    with _progress(epochs, f"{model.name} x{n_seeds} seed{'s' if n_seeds > 1 else ''}", quiet) as bar, torch.no_grad():
        for epoch in range(epochs + 1):
            inputs = attention_inputs(params)
            fwd = forward(model.head, params, train_batch, inputs)
            _check_finite(fwd.loss, epoch, config.lr)
            loss_log[epoch] = torch.where(active, fwd.loss, loss_log[epoch])
            accuracy_log[epoch] = torch.where(active, fwd.accuracy, accuracy_log[epoch])
            if record_index < len(record_epochs) and record_epochs[record_index] == epoch:
                test = forward(model.head, params, test_batch, inputs)
                test_loss_log[record_index], test_accuracy_log[record_index] = test.loss, test.accuracy
                score_log[record_index], norm_log[record_index] = _traced(params, words)
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
            _step(params, backward(model.head, params, train_batch, fwd), lr, frozen)
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
        params=params if keep_params else None,
    )
