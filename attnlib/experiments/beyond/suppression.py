"""Mutual suppression early in training (prediction P4): which topic words' scores and norms dip before
they rise, how deep, for how long, for which heads and embedding inits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from attnlib import theory
from attnlib.config import HEADS, RunConfig, synthetic_preset
from attnlib.data import Dataset, generate_synthetic
from attnlib.experiments.base import ExperimentResult, train_grid
from attnlib.experiments.beyond.traces import BEYOND_SEEDS, traced_table
from attnlib.model import init_params
from attnlib.provenance import run_config_hashes
from attnlib.theory import p4_score_dip_bound
from attnlib.train import TrainResult

DIP_TOLERANCE = 1e-12
"""A fall below the starting value counts as a dip when it exceeds this (float64 rounding is ~1e-16)."""


def _dip(path: np.ndarray, epochs: np.ndarray) -> tuple[float, float, float]:
    """Depth (start minus minimum, 0 if never below the start), epoch of the minimum, epoch of recovery.

    Recovery is the first recorded epoch after the minimum at which the path is back at its start
    value (NaN if it never is; NaN for both epochs when there is no dip).
    """
    start, lowest = path[0], int(np.argmin(path))
    depth = float(start - path[lowest])
    if depth <= DIP_TOLERANCE:
        return 0.0, float("nan"), float("nan")
    back = np.flatnonzero(path[lowest:] >= start)
    return depth, float(epochs[lowest]), float(epochs[lowest + back[0]]) if len(back) else float("nan")




@dataclass
class SuppressionResult(ExperimentResult):
    """Early training of every head at two embedding inits, every epoch recorded."""

    runs: dict[tuple[str, float], TrainResult]
    """Keyed by (model name, embedding init std)."""
    datasets: list[Dataset] = field(repr=False)

    def curves(self) -> pd.DataFrame:
        """Columns: model, init_std, seed, m, epoch, word, score, norm, theory, residual (general-init identity)."""
        return pd.concat([traced_table(run, {"model": model, "init_std": std}, self.config.data.m)
                          for (model, std), run in self.runs.items()], ignore_index=True)

    def dips(self) -> pd.DataFrame:
        """One row per model, init, seed and topic word.

        Columns: model, init_std, seed, word, initial_norm (|q||v(0)|), score_dip, score_dip_epoch,
        score_recovery_epoch, norm_dip, norm_dip_relative (to the initial norm), norm_dip_epoch,
        norm_recovery_epoch, p4_bound (the deepest score dip the identity allows), dip_over_bound,
        norm_dip_from_identity (the norm dip the identity predicts from the measured score dip),
        initial_margin and predicted_dip (linear heads only, else NaN / None: with u = U^T v_w(0), the
        margin u_y - mean_k u_k; at uniform attention and near-uniform predictions G_w has the sign of
        minus this margin, so P4 predicts a dip exactly when the margin is negative).
        """
        m = self.config.data.m
        rows = []
        for (model, std), run in self.runs.items():
            epochs = run.record_epochs
            margins = self._initial_margins(run)
            for k, seed in enumerate(run.seeds):
                for j, word in enumerate(run.traced_words):
                    score, norm = run.traced_scores[:, k, j], run.traced_norms[:, k, j]
                    s_depth, s_at, s_back = _dip(score, epochs)
                    n_depth, n_at, n_back = _dip(norm, epochs)
                    bound = float(p4_score_dip_bound(norm[0], m, score[0]))
                    lowest = theory.sen_norm(score[0] - s_depth, m, score[0], norm[0])
                    rows.append({
                        "model": model, "init_std": std, "seed": seed, "word": int(word), "initial_norm": norm[0],
                        "score_dip": s_depth, "score_dip_epoch": s_at, "score_recovery_epoch": s_back,
                        "norm_dip": n_depth, "norm_dip_relative": n_depth / norm[0], "norm_dip_epoch": n_at,
                        "norm_recovery_epoch": n_back, "p4_bound": bound, "dip_over_bound": s_depth / bound,
                        "norm_dip_from_identity": float(norm[0] - lowest),
                        "initial_margin": margins[k, j],
                        "predicted_dip": None if np.isnan(margins[k, j]) else bool(margins[k, j] < 0),
                    })
        return pd.DataFrame(rows)

    def _initial_margins(self, run: TrainResult) -> np.ndarray:
        """(S, W) margins u_y - mean_k u_k of the traced words at initialisation; NaN for Attn-TL."""
        out = np.full((len(run.seeds), len(run.traced_words)), np.nan)
        if run.model.head not in ("FC", "TC"):
            return out
        for k, seed in enumerate(run.seeds):
            data = self.datasets[k]
            params = init_params(run.model, len(data.vocab), data.n_classes, [seed], torch.float64, torch.device("cpu"))
            u = (params.embeddings[0] @ params.head["U"][0]).numpy()
            for j, word in enumerate(run.traced_words):
                topic = data.topic_of_word[int(word)]
                out[k, j] = u[word, topic] - u[word].mean()
        return out

    def summary(self) -> pd.DataFrame:
        """One row per model and init (over seeds and topic words).

        Columns: model, init_std, words, score_dips (how many topic words' scores dip), norm_dips,
        max_score_dip, max_norm_dip_relative, max_dip_over_bound, latest_dip_epoch (epoch of the
        latest score minimum), latest_recovery_epoch, max_epoch_gap (largest |epoch of the score
        minimum - epoch of the norm minimum| where both dip), max_abs_residual (general-init identity),
        predicted_right (how many words' dip / no dip the initial margin predicts correctly; NaN for TL).
        """
        dips = self.dips()
        curves = self.curves()
        residual = curves.assign(r=curves.residual.abs()).groupby(["model", "init_std"], sort=False)["r"].max()
        rows = []
        for (model, std), part in dips.groupby(["model", "init_std"], sort=False):
            both = part[(part.score_dip > 0) & (part.norm_dip > 0)]
            rows.append({
                "model": model, "init_std": std, "words": len(part),
                "score_dips": int((part.score_dip > 0).sum()), "norm_dips": int((part.norm_dip > 0).sum()),
                "max_score_dip": part.score_dip.max(), "max_norm_dip_relative": part.norm_dip_relative.max(),
                "max_dip_over_bound": part.dip_over_bound.max(),
                "latest_dip_epoch": part.score_dip_epoch.max(), "latest_recovery_epoch": part.score_recovery_epoch.max(),
                "max_epoch_gap": (both.score_dip_epoch - both.norm_dip_epoch).abs().max() if len(both) else float("nan"),
                "max_abs_residual": residual[(model, std)],
                "predicted_right": float((part.predicted_dip == (part.score_dip > 0)).sum())
                if part.predicted_dip.notna().all() else float("nan"),
            })
        return pd.DataFrame(rows)


def suppression_study(seeds: Sequence[int] = BEYOND_SEEDS, heads: Sequence[str] = tuple(HEADS),
                      init_stds: Sequence[float] = (1e-3, 0.1), epochs: int = 2000,
                      base: RunConfig | None = None, quiet: bool = True) -> SuppressionResult:
    """Train every head at each embedding init std for ``epochs`` epochs, recording every epoch."""
    base = (base or synthetic_preset()).replace(train={"epochs": epochs, "record_every": 1})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    settings = {}
    for std in init_stds:
        for head in heads:
            config = base.replace(model={"head": head, "embed_init_std": float(std)})
            settings[(config.model.name, float(std))] = (config, datasets)
    return SuppressionResult(base, seeds, train_grid(settings, seeds, datasets[0].topic_words, quiet), datasets)


def suppression_hashes(result: SuppressionResult) -> dict[str, str]:
    """Config hashes named like the metrics, e.g. ``suppression.Attn-FC.std0.001``."""
    return run_config_hashes(result.runs, result.config.data, lambda key: f"suppression.{key[0]}.std{key[1]:g}")

