"""Classifier capacity: final topic scores and attention weights for Attn-FC, Attn-TC and Attn-TL with
hidden widths 2 to 200, on the same data, query and embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.config import RunConfig, synthetic_preset
from attnlib.data import Dataset, generate_synthetic
from attnlib.experiments.base import ExperimentResult, train_grid
from attnlib.experiments.beyond.traces import BEYOND_SEEDS, first_below, topic_means_table
from attnlib.formatting import mean_range
from attnlib.train import TrainResult


def topic_attention(scores: np.ndarray, dataset: Dataset, split: str = "train") -> np.ndarray:
    """Each sentence's total attention weight on its topic words, from every word's score (V,)."""
    counts = dataset.splits[split].counts
    weights = np.exp(scores - scores.max())
    topic = dataset.topic_words
    return (counts[:, topic] @ weights[topic]) / (counts @ weights)


@dataclass
class CapacityResult(ExperimentResult):
    """Attn-FC, Attn-TC and Attn-TL with several hidden widths, at the synthetic preset."""

    runs: dict[str, TrainResult]
    """Keyed by classifier label, e.g. ``Attn-FC``, ``Attn-TL (h=50)``."""
    datasets: list[Dataset] = field(repr=False)

    def summary(self) -> pd.DataFrame:
        """One row per classifier and seed.

        Columns: classifier, head, hidden_units (NaN for the linear heads), trainable_head_parameters,
        seed, query_norm, final_train_loss, test_accuracy, epochs_to_train_loss_0.1, topic_score_mean,
        topic_score_min, topic_score_max, topic_norm_mean, attention_mean (mean over training sentences
        of the weight on the sentence's topic word, from the final scores), attention_min,
        sen_max_abs_residual (general-init identity over the recorded epochs and topic words).
        """
        rows = []
        m = self.config.data.m
        for label, run in self.runs.items():
            predicted = theory.sen_norm(run.traced_scores, m, run.traced_scores[:1], run.traced_norms[:1])
            residual = np.abs(run.traced_norms - predicted).max(axis=(0, 2))
            head, width = run.model.head, run.model.hidden_units
            k_classes, d = self.datasets[0].n_classes, run.model.d_embed
            n_head = {"FC": 0, "TC": d * k_classes}.get(head, d * width + width + width * k_classes + k_classes)
            for k, seed in enumerate(run.seeds):
                topic = self.datasets[k].topic_words
                attention = topic_attention(run.final_scores[k], self.datasets[k])
                rows.append({
                    "classifier": label, "head": head, "hidden_units": float(width) if head == "TL" else float("nan"),
                    "trainable_head_parameters": n_head, "seed": seed, "query_norm": run.query_norm[k],
                    "final_train_loss": run.loss[-1, k], "test_accuracy": run.final_test_accuracy[k],
                    "epochs_to_train_loss_0.1": first_below(run.loss[:, k]),
                    "topic_score_mean": run.final_scores[k, topic].mean(),
                    "topic_score_min": run.final_scores[k, topic].min(),
                    "topic_score_max": run.final_scores[k, topic].max(),
                    "topic_norm_mean": run.final_norms[k, topic].mean(),
                    "attention_mean": attention.mean(), "attention_min": attention.min(),
                    "sen_max_abs_residual": residual[k],
                })
        return pd.DataFrame(rows)

    def curves(self) -> pd.DataFrame:
        """Columns: classifier, seed, epoch, score (mean over topic words), norm (mean), loss."""
        return pd.concat([topic_means_table(run, {"classifier": label}) for label, run in self.runs.items()],
                         ignore_index=True)


def capacity_study(seeds: Sequence[int] = BEYOND_SEEDS, widths: Sequence[int] = (2, 10, 50, 200),
                   epochs: int = 5000, record_every: int = 50, base: RunConfig | None = None,
                   quiet: bool = True) -> CapacityResult:
    """Train Attn-FC, Attn-TC and Attn-TL for each hidden width on the same data, query and embeddings."""
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    settings = [("FC", None), ("TC", None)] + [("TL", int(w)) for w in widths]
    grid = {}
    for head, width in settings:
        changes = {"head": head} if width is None else {"head": head, "hidden_units": width}
        config = base.replace(model=changes)
        label = config.model.name if width is None else f"{config.model.name} (h={width})"
        grid[label] = (config, datasets)
    return CapacityResult(base, seeds, train_grid(grid, seeds, datasets[0].topic_words, quiet), datasets)


def capacity_table(result: CapacityResult) -> pd.DataFrame:
    """Per classifier: trainable head parameters, final topic score, attention weight, t_0.1, final loss
    and the identity's residual, as mean (min–max) over seeds."""
    s = result.summary()
    rows = []
    for label, part in s.groupby("classifier", sort=False):
        rows.append({
            "classifier": label, "trainable head parameters": int(part.trainable_head_parameters.iloc[0]),
            "final topic score": mean_range(part.topic_score_mean, 2),
            "attention on the topic word": mean_range(part.attention_mean, 2),
            "t_0.1 (epochs)": mean_range(part["epochs_to_train_loss_0.1"], 0),
            "final training loss": mean_range(part.final_train_loss, 4),
            "identity max |residual|": f"{part.sen_max_abs_residual.max():.4f}",
        })
    return pd.DataFrame(rows).set_index("classifier")

