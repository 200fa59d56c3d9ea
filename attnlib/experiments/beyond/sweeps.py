"""The identity across the sentence length m and the query scale: how well it holds, and how wrong the
m = 20 curve is when the data's m differs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from attnlib import theory
from attnlib.config import RunConfig, synthetic_preset
from attnlib.data import generate_synthetic
from attnlib.experiments.base import ExperimentResult, train_grid
from attnlib.experiments.beyond.traces import BEYOND_SEEDS, first_below, traced_table
from attnlib.formatting import mean_range
from attnlib.provenance import run_config_hashes
from attnlib.train import TrainResult


@dataclass
class SweepResult(ExperimentResult):
    """The identity across m and the query std, one varied at a time from the synthetic preset."""

    runs: dict[tuple[str, str, float], tuple[TrainResult, list[int], list[float]]]
    """(sweep, model, value) -> (run, the seed of each of its batch entries, the m of each entry)."""

    def curves(self) -> pd.DataFrame:
        """Columns: sweep ('m' or 'query_std'), value, model, seed, m, epoch, word, score, norm (|q||v|),
        raw_norm (|v|), query_norm, theory (general-init identity with the run's m), residual,
        residual_m20 (against the m = 20 curve instead)."""
        frames = []
        for (sweep, model, value), (run, seeds, ms) in self.runs.items():
            table = traced_table(run, {"sweep": sweep, "value": value, "model": model}, ms, seeds)
            query_norm = np.broadcast_to(run.query_norm[None, :, None], run.traced_scores.shape).ravel()
            table["query_norm"] = query_norm
            table["raw_norm"] = table["norm"] / query_norm
            twenty = theory.sen_norm(run.traced_scores, 20.0, run.traced_scores[:1], run.traced_norms[:1])
            table["residual_m20"] = (run.traced_norms - twenty).ravel()
            frames.append(table)
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per sweep, value, model and seed.

        Columns: sweep, value, model, seed, m, query_norm, max_abs_residual, max_abs_residual_m20,
        final_topic_score_mean, final_topic_norm_mean, final_train_loss, epochs_to_train_loss_0.1.
        """
        curves = self.curves()
        worst = curves.assign(a=curves.residual.abs(), b=curves.residual_m20.abs()).groupby(
            ["sweep", "value", "model", "seed"], sort=False)[["a", "b"]].max()
        rows = []
        for (sweep, model, value), (run, seeds, ms) in self.runs.items():
            for k, seed in enumerate(seeds):
                rows.append({
                    "sweep": sweep, "value": value, "model": model, "seed": seed, "m": ms[k],
                    "query_norm": run.query_norm[k],
                    "max_abs_residual": worst.loc[(sweep, value, model, seed), "a"],
                    "max_abs_residual_m20": worst.loc[(sweep, value, model, seed), "b"],
                    "final_topic_score_mean": run.traced_scores[-1, k].mean(),
                    "final_topic_norm_mean": run.traced_norms[-1, k].mean(),
                    "final_train_loss": run.loss[-1, k],
                    "epochs_to_train_loss_0.1": first_below(run.loss[:, k]),
                })
        return pd.DataFrame(rows)


def identity_sweeps(seeds: Sequence[int] = BEYOND_SEEDS, heads: Sequence[str] = ("FC", "TC"),
                    ms: Sequence[int] = (5, 10, 20, 40),
                    query_stds: Sequence[float] = (0.1, 0.3, math.sqrt(0.3), 1.0),
                    epochs: int = 3000, record_every: int = 10, base: RunConfig | None = None,
                    quiet: bool = True) -> SweepResult:
    """Sweep m (data) and the query std (model), one at a time, from ``base`` (the synthetic preset).

    Each value is one call per head; the m = 20 setting and the query std 0.3 setting are the same
    training (the preset's), trained once, and the same call as the baseline of :func:`breaking_cases`.
    """
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    m_settings, q_settings, entries = {}, {}, {}
    for head in heads:
        config = base.replace(model={"head": head})
        for m in ms:
            key = ("m", config.model.name, float(m))
            m_settings[key] = (config, [generate_synthetic(base.replace(data={"m": int(m)}).data, s) for s in seeds])
            entries[key] = [float(m)] * len(seeds)
        for std in query_stds:
            config = base.replace(model={"head": head, "query_std": float(std)})
            key = ("query_std", config.model.name, float(std))
            q_settings[key], entries[key] = (config, datasets), [float(base.data.m)] * len(seeds)
    runs = train_grid({**m_settings, **q_settings}, seeds, datasets[0].topic_words, quiet)
    runs = {key: runs[key] for key in entries}  # the book's order: per head, the m sweep then the query std
    return SweepResult(base, seeds, {key: (run, seeds, entries[key]) for key, run in runs.items()})


def sweep_hashes(result: SweepResult) -> dict[str, str]:
    """Config hashes named like the metrics, e.g. ``sweep.m=10.Attn-FC``; the m sweep hashes its own m."""
    hashes = {}
    for (sweep, model, value), (run, _, ms) in result.runs.items():
        hashes.update(run_config_hashes({f"sweep.{sweep}={value:.4g}.{model}": run},
                                        replace(result.config.data, m=int(ms[0]))))
    return hashes


def sweep_table(result: SweepResult) -> pd.DataFrame:
    """Per sweep, value and model: the worst residual over seeds, against the matching curve and against
    the m = 20 curve, the final mean topic score and t_0.1, as mean (min–max) over seeds."""
    s = result.summary()
    rows = []
    for (sweep, value, model), part in s.groupby(["sweep", "value", "model"], sort=False):
        rows.append({
            "sweep": "m" if sweep == "m" else "query std", "value": f"{value:.3g}", "model": model,
            "|q| (seeds)": f"{part.query_norm.min():.2f}–{part.query_norm.max():.2f}",
            "max |residual|": f"{part.max_abs_residual.max():.4f}",
            "max |residual| vs the m = 20 curve": f"{part.max_abs_residual_m20.max():.4f}",
            "final topic score": mean_range(part.final_topic_score_mean, 2),
            "t_0.1 (epochs)": mean_range(part["epochs_to_train_loss_0.1"], 0),
        })
    return pd.DataFrame(rows).set_index(["sweep", "value", "model"])

