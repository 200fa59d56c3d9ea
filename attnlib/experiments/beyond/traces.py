"""What the studies beyond the paper share: their seeds, t_0.1 and the traced-word tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.experiments.base import long_table
from attnlib.experiments.synthetic import LOSS_THRESHOLD
from attnlib.train import TrainResult

BEYOND_SEEDS = (0, 1, 2)


def first_below(loss: np.ndarray, threshold: float = LOSS_THRESHOLD) -> float:
    """The first epoch whose loss is below ``threshold`` (t_0.1 by default); NaN if none is."""
    below = np.flatnonzero(loss < threshold)
    return float(below[0]) if len(below) else float("nan")


def traced_table(run: TrainResult, labels: dict, m: float | np.ndarray, seeds: Sequence | None = None) -> pd.DataFrame:
    """Per recorded epoch, seed index and traced word: score, |q||v|, the identity's general-init
    prediction from the word's own start, and the residual. ``m`` is a scalar or one value per seed."""
    seeds = run.seeds if seeds is None else seeds
    m_per_seed = np.broadcast_to(np.asarray(m, dtype=float), (len(seeds),))
    predicted = theory.sen_norm(run.traced_scores, m_per_seed[None, :, None], run.traced_scores[:1], run.traced_norms[:1])
    return long_table(labels, {"epoch": run.record_epochs, "seed": np.asarray(seeds), "word": run.traced_words},
                      {"m": m_per_seed[None, :, None], "score": run.traced_scores, "norm": run.traced_norms,
                       "theory": predicted, "residual": run.traced_norms - predicted},
                      order=("seed", "m", "epoch", "word"))


def topic_means_table(run: TrainResult, labels: dict) -> pd.DataFrame:
    """Per recorded epoch and seed: the mean score and |q||v| over the traced words, and the loss."""
    return long_table(labels, {"epoch": run.record_epochs, "seed": run.seeds},
                      {"score": run.traced_scores.mean(2), "norm": run.traced_norms.mean(2),
                       "loss": run.loss[run.record_epochs]}, order=("seed", "epoch"))
