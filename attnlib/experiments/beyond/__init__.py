"""Beyond the paper: studies on the synthetic data that the paper does not make, one module each.

1. :mod:`~attnlib.experiments.beyond.suppression`: mutual suppression early in training (prediction P4):
   which topic words' scores and norms dip before they rise, how deep, for how long, for which heads and inits.
2. :mod:`~attnlib.experiments.beyond.sweeps` and :mod:`~attnlib.experiments.beyond.breaking`: the identity
   across m and the query scale, and where it breaks when an assumption is violated on purpose.
3. :mod:`~attnlib.experiments.beyond.capacity`: final topic scores and attention weights for Attn-FC,
   Attn-TC and Attn-TL with hidden widths 2 to 200.
4. :mod:`~attnlib.experiments.beyond.growth`: how score, norm and loss evolve over long runs with the
   fixed classifier.

Every study trains its settings through :func:`attnlib.experiments.base.train_grid` (all seeds of a
setting in one call; a setting that several studies train, such as the preset's own run, is trained once
and then read from the cache) and returns a result object with tidy DataFrames whose columns are listed
in each method's docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd

from attnlib.config import RunConfig, synthetic_preset
from attnlib.experiments.base import ExperimentResult
from attnlib.experiments.beyond.breaking import (
    BREAKING_CASES,
    BreakingResult,
    breaking_cases,
    breaking_hashes,
    breaking_table,
    share_topic_word,
)
from attnlib.experiments.beyond.capacity import CapacityResult, capacity_study, capacity_table, topic_attention
from attnlib.experiments.beyond.growth import GrowthResult, growth_study, growth_table
from attnlib.experiments.beyond.suppression import SuppressionResult, suppression_hashes, suppression_study
from attnlib.experiments.beyond.sweeps import SweepResult, identity_sweeps, sweep_hashes, sweep_table
from attnlib.experiments.beyond.traces import BEYOND_SEEDS
from attnlib.provenance import run_config_hashes

NAME = "beyond"
SUMMARY = "beyond the paper: mutual suppression, the identity's sensitivity, classifier capacity, growth"
PRESET = synthetic_preset
"""The config every study starts from (and ``attnlib run beyond --config FILE`` changes)."""
DEFAULT_SEEDS = BEYOND_SEEDS
MAX_SEEDS = 100
"""``--seeds`` at most: the seeds train together in one batched call, whose memory and time grow with their number."""
SETS_ITSELF = {"train.epochs": "each study has its own epoch count",
               "train.record_every": "each study has its own recording interval",
               "model.head": "the studies train every head in turn"}

__all__ = ["NAME", "SUMMARY", "run", "BeyondResult", "BEYOND_SEEDS", "BREAKING_CASES",
           "BreakingResult", "CapacityResult", "GrowthResult", "SuppressionResult", "SweepResult",
           "breaking_cases", "breaking_table", "capacity_study", "capacity_table", "growth_study", "growth_table",
           "identity_sweeps", "share_topic_word", "suppression_study", "sweep_table", "topic_attention"]


@dataclass
class BeyondResult(ExperimentResult):
    """The four studies together, with the flat metrics of ``attnlib run beyond``."""

    suppression: SuppressionResult
    sweeps: SweepResult
    breaking: BreakingResult
    capacity: CapacityResult
    growth: GrowthResult

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every tidy table, by file name."""
        return {
            "suppression_dips": self.suppression.dips(), "suppression_summary": self.suppression.summary(),
            "suppression_curves": self.suppression.curves(),
            "sweep_curves": self.sweeps.curves(), "sweep_summary": self.sweeps.summary(),
            "breaking_curves": self.breaking.curves(), "breaking_summary": self.breaking.summary(),
            "capacity_summary": self.capacity.summary(), "capacity_curves": self.capacity.curves(),
            "growth_curves": self.growth.curves(), "growth_fits": self.growth.fits(),
            "growth_local_slopes": self.growth.local_slopes(),
        }

    def figures(self) -> dict:
        """One figure per study, two for suppression (names without dots: :func:`attnlib.plots.style.save_figure`
        replaces the suffix)."""
        from attnlib.plots.beyond import plot_breaking, plot_capacity, plot_growth, plot_suppression, plot_sweeps  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only drawing needs them

        return {"suppression_init_std_large": partial(plot_suppression, self.suppression, 0.1),
                "suppression_init_std_default": partial(plot_suppression, self.suppression, 1e-3),
                "identity_sweeps": partial(plot_sweeps, self.sweeps), "identity_breaking": partial(plot_breaking, self.breaking),
                "capacity": partial(plot_capacity, self.capacity), "growth": partial(plot_growth, self.growth)}

    def measures(self) -> dict[str, Any]:
        """Flat metrics: worst residual per sweep value and breaking case, dip depths, capacity means, fit slopes."""
        out: dict[str, Any] = {}
        for row in self.suppression.summary().itertuples():
            key = f"suppression.{row.model}.std{row.init_std:g}"
            out[f"{key}.max_score_dip"] = float(row.max_score_dip)
            out[f"{key}.score_dips"] = int(row.score_dips)
            out[f"{key}.max_dip_over_bound"] = float(row.max_dip_over_bound)
        sweep = self.sweeps.summary().groupby(["sweep", "model", "value"], sort=False)["max_abs_residual"].max()
        for (name, model, value), residual in sweep.items():
            out[f"sweep.{name}={value:.4g}.{model}.max_abs_residual"] = float(residual)
        breaking = self.breaking.summary().groupby(["case", "model"], sort=False)["max_abs_residual"].max()
        for (case, model), residual in breaking.items():
            out[f"breaking.{case.replace(' ', '_')}.{model}.max_abs_residual"] = float(residual)
        capacity = self.capacity.summary().groupby("classifier", sort=False)[["topic_score_mean", "attention_mean"]].mean()
        for label, row in capacity.iterrows():
            out[f"capacity.{label}.topic_score_mean"] = float(row.topic_score_mean)
            out[f"capacity.{label}.attention_mean"] = float(row.attention_mean)
        last = self.growth.fits().groupby(["first_epoch", "last_epoch"]).mean().iloc[-1]
        for key in ("score_power", "norm_power", "loss_power", "norm_per_log_t", "score_per_loglog_t"):
            out[f"growth.last_window.{key}"] = float(last[key])
        return out

    def config_hashes(self) -> dict[str, str]:
        """Config hash of every run of the four studies, named like their metrics (``suppression.Attn-FC.std0.001``,
        ``sweep.m=10.Attn-FC``, ``breaking.variable_m.Attn-TC``, ``capacity.Attn-TL (h=50)``, ``growth``)."""
        return {**suppression_hashes(self.suppression), **sweep_hashes(self.sweeps), **breaking_hashes(self.breaking),
                **run_config_hashes(self.capacity.runs, self.capacity.config.data, lambda key: f"capacity.{key}"),
                **self.growth.config_hashes()}


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None, quiet: bool = True) -> BeyondResult:
    """All four studies at their default (book) settings, each derived from ``config`` (default: the synthetic preset)."""
    seeds = [int(s) for s in (BEYOND_SEEDS if seeds is None else seeds)]
    return BeyondResult(config or synthetic_preset(), seeds, suppression_study(seeds, quiet=quiet, base=config),
                        identity_sweeps(seeds, quiet=quiet, base=config), breaking_cases(seeds, quiet=quiet, base=config),
                        capacity_study(seeds, quiet=quiet, base=config), growth_study(seeds, quiet=quiet, base=config))

