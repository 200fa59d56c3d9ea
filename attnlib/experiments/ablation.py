"""F4, the ablation: Attn-FC and Attn-TC with everything trainable, keys frozen (-KF), embeddings frozen (-EF).

Freezing is configuration only (:attr:`attnlib.config.TrainConfig.freeze`); this module builds the six
configurations from :func:`attnlib.config.ablation_preset`, trains each one for all seeds in one
call of :func:`attnlib.train.train` (every run of a seed sees the same dataset, query and initial
embeddings), and returns tidy tables, the checks of F4 and the N2 residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from attnlib import paper, theory
from attnlib.config import RunConfig, ablation_preset
from attnlib.data import Dataset, generate_synthetic
from attnlib.experiments.base import Check, ExperimentResult, long_table, train_grid
from attnlib.experiments.synthetic import DEFAULT_SEEDS
from attnlib.formatting import mean_spread
from attnlib.train import TrainResult

NAME = "ablation"
SUMMARY = "F4: Attn-FC and Attn-TC with everything trainable, keys frozen, embeddings frozen"
PRESET = ablation_preset
"""The config ``run`` starts from (and ``attnlib run ablation --config FILE`` changes)."""
MAX_SEEDS = 100
"""``--seeds`` at most: the seeds train together in one batched call, whose memory and time grow with their number."""
SETS_ITSELF = {"model.head": "it trains Attn-FC and Attn-TC in turn",
               "train.freeze": "its variants freeze the keys, then the embeddings",
               "train.record_every": "run's record_every argument, 10 by default"}
CLAIMS = {"F4": 4, "N2": 10}
"""Claim id -> place in the scorecard (see :data:`attnlib.experiments.synthetic.CLAIMS`)."""

VARIANTS: dict[str, tuple[str, ...]] = {"": (), "-KF": ("keys",), "-EF": ("embeddings",)}
"""Run-name suffix -> frozen parameter groups, as the paper's F4 names its runs."""
VARIANT_LABELS = {"": "all trainable", "-KF": "keys frozen", "-EF": "embeddings frozen"}
KF_ABOVE_FROM_EPOCH = 2000
"""The KF loss must stay above the full model's from this epoch on: in the paper's F4 both curves share
the plateau early on (where they may touch) and have separated by epoch 2000."""
KF_FINAL_LOSS_RANGE = {"Attn-FC": (0.3, 0.9), "Attn-TC": (0.01, 0.3)}
"""Final KF loss: around the published F4 values at epoch 6000 (FC about 0.55, TC about 0.05), which are
read by eye off one run and so get a wide band."""
FULL_FINAL_LOSS_MAX = 0.05
"""The full models' loss is near 0 at epoch 6000 in the paper's F4."""
EF_FINAL_LOSS_MIN = 1.2
"""With frozen embeddings the published F4 loss stays flat near ln 4 (1.39); above 1.2 is flat to the eye."""
EF_VISIBLE_DROP = 0.01
"""An EF run's final loss this far below ln 4 is visibly off the plateau on F4's loss axis (0 to 1.4)."""
CONSTANT_TOLERANCE = 1e-12
"""EF norms count as constant when no |q||v| moves by more than this (relative to its start)."""


@dataclass
class AblationResult(ExperimentResult):
    """Six runs per seed: model x {all trainable, -KF, -EF} (the paper's F4)."""

    runs: dict[str, TrainResult]
    """Keyed by run name, e.g. ``Attn-FC``, ``Attn-FC-KF``, ``Attn-TC-EF``."""
    datasets: list[Dataset] = field(repr=False)

    @property
    def models(self) -> list[str]:
        """The full models (``Attn-FC``, ``Attn-TC``) in run order."""
        return [name for name in self.runs if not name.endswith(("-KF", "-EF"))]

    @staticmethod
    def split_name(run: str) -> tuple[str, str]:
        """``Attn-FC-KF`` -> (``Attn-FC``, ``-KF``)."""
        for suffix in ("-KF", "-EF"):
            if run.endswith(suffix):
                return run[: -len(suffix)], suffix
        return run, ""

    def _labels(self, run: str) -> dict[str, str]:
        model, suffix = self.split_name(run)
        return {"run": run, "model": model, "variant": VARIANT_LABELS[suffix]}

    def losses(self) -> pd.DataFrame:
        """Training loss per epoch and seed. Columns: run, model, variant, seed, epoch, loss, train_accuracy."""
        return pd.concat([long_table(self._labels(name), {"epoch": np.arange(run.loss.shape[0]), "seed": run.seeds},
                                     {"loss": run.loss, "train_accuracy": run.train_accuracy}, order=("seed", "epoch"))
                          for name, run in self.runs.items()], ignore_index=True)

    def curves(self) -> pd.DataFrame:
        """Every topic word's score and |q||v| at the recorded epochs, with the N2 prediction.

        Columns: run, model, variant, seed, epoch, word, score, norm, theory (general-init form of the
        identity, from the word's own s(0) and |q||v(0)|), residual (norm - theory).
        """
        frames = []
        m = self.config.data.m
        for name, run in self.runs.items():
            predicted = theory.sen_norm(run.traced_scores, m, run.traced_scores[:1], run.traced_norms[:1])
            frames.append(long_table(
                self._labels(name), {"epoch": run.record_epochs, "seed": run.seeds, "word": run.traced_words},
                {"score": run.traced_scores, "norm": run.traced_norms, "theory": predicted,
                 "residual": run.traced_norms - predicted}, order=("seed", "epoch", "word")))
        return pd.concat(frames, ignore_index=True)

    def topic_means(self) -> pd.DataFrame:
        """The mean over the topic words per seed and recorded epoch (what the F4 figure plots).

        Columns: run, model, variant, seed, epoch, score, norm, loss.
        """
        return pd.concat([long_table(self._labels(name), {"epoch": run.record_epochs, "seed": run.seeds},
                                     {"score": run.traced_scores.mean(axis=2), "norm": run.traced_norms.mean(axis=2),
                                      "loss": run.loss[run.record_epochs]}, order=("seed", "epoch"))
                          for name, run in self.runs.items()], ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """One row per run and seed with the quantities the F4 criteria and N2 are judged by."""
        rows = []
        m = self.config.data.m
        for name, run in self.runs.items():
            model, suffix = self.split_name(name)
            full = self.runs[model]
            start = min(KF_ABOVE_FROM_EPOCH, run.loss.shape[0] - 1)
            predicted = theory.sen_norm(run.traced_scores, m, run.traced_scores[:1], run.traced_norms[:1])
            default_form = theory.sen_norm(run.traced_scores, m)
            for k, seed in enumerate(run.seeds):
                topic = self.datasets[k].topic_words
                initial_norm = run.traced_norms[0, k]
                rows.append({
                    **self._labels(name), "seed": seed, "query_norm": run.query_norm[k],
                    "initial_train_loss": run.loss[0, k], "final_train_loss": run.loss[-1, k],
                    "test_accuracy": run.final_test_accuracy[k],
                    "final_topic_score_mean": run.final_scores[k, topic].mean(),
                    "final_topic_score_min": run.final_scores[k, topic].min(),
                    "final_topic_score_max": run.final_scores[k, topic].max(),
                    "final_topic_norm_mean": run.final_norms[k, topic].mean(),
                    "initial_topic_norm_mean": initial_norm.mean(),
                    "max_abs_score": np.abs(run.traced_scores[:, k]).max(),
                    "max_abs_score_all_words": np.abs(run.final_scores[k]).max(),
                    "max_relative_norm_change": (np.abs(run.traced_norms[:, k] - initial_norm) / initial_norm).max(),
                    "loss_gap_to_full_min": np.nanmin(run.loss[start:, k] - full.loss[start:, k]),
                    "n2_max_abs_residual": np.abs(run.traced_norms[:, k] - predicted[:, k]).max(),
                    "n1_max_abs_residual": np.abs(run.traced_norms[:, k] - default_form[:, k]).max(),
                    "min_topic_score": run.traced_scores[:, k].min(),
                })
        return pd.DataFrame(rows)

    def measures(self) -> dict[str, Any]:
        """The flat metrics of ``attnlib run ablation`` (means over seeds)."""
        keys = ["final_train_loss", "final_topic_score_mean", "final_topic_norm_mean"]
        summary = self.summary()
        means = summary.groupby("run", sort=False)[keys].mean()
        out: dict[str, Any] = {}
        for name, row in means.iterrows():
            for key in keys:
                out[f"{name}.{key}"] = float(row[key])
        for model in self.models:
            out[f"{model}.n2_max_abs_residual"] = float(summary.loc[summary.run == model, "n2_max_abs_residual"].max())
        return out

    @property
    def variant_labels(self) -> dict[str, str]:
        """Run-name suffix -> what the variant freezes, in the paper's order (:data:`VARIANT_LABELS`)."""
        return VARIANT_LABELS

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"losses": self.losses(), "curves": self.curves(), "topic_means": self.topic_means(),
                "summary": self.summary(),
                "published": published_comparison(self).reset_index()}

    def figures(self) -> dict:
        """F4 (over all seeds and for one run) and N2."""
        from attnlib.plots.ablation import plot_ablation, plot_general_identity  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only drawing needs them

        return {"f4_ablation": partial(plot_ablation, self), "n2_general_identity": partial(plot_general_identity, self),
                "f4_ablation_single_run": partial(plot_ablation, self, single_run=True)}

    def checks(self) -> list[Check]:
        """F4's criteria (:func:`ablation_checks`, each over every seed) and N2 (the general-init identity, reported)."""
        rows = []
        for check in ablation_checks(self).itertuples():
            run = check.criterion.split(":")[0]
            published = paper.ABLATION_FINAL.get(run, {})
            quantity = next((key for word, key in _PUBLISHED_QUANTITY.items() if word in check.criterion), None)
            stated = f"{published[quantity]} at epoch 6000 (one run)" if quantity in published else "see F4"
            rows.append(Check("F4", check.criterion, stated, check.measured, "as stated, every seed",
                              check.passed, check.total, check.total))
        s = self.summary()
        full = s[s.run == s.model]  # the all-trainable runs
        for model, g in full.groupby("model", sort=False):
            rows.append(Check("N2", f"{model}: general-init identity (with ‖v(0)‖ and s(0)), embeddings std 0.1",
                              "approximate (A2 weaker)", f"largest residual {mean_spread(g.n2_max_abs_residual, 4)}",
                              "reported", 0, 0, 0))
        return rows


_PUBLISHED_QUANTITY = {"loss": "loss", "|q||v|": "norm", "score": "score"}
"""A word in an F4 criterion -> the published quantity it is compared with."""


def ablation_configs(head: str, base: RunConfig | None = None) -> dict[str, RunConfig]:
    """The three variants of one head, named as in the paper: ``Attn-XX``, ``Attn-XX-KF``, ``Attn-XX-EF``."""
    base = base or ablation_preset()
    out = {}
    for suffix, freeze in VARIANTS.items():
        config = base.replace(model={"head": head}, train={"freeze": freeze})
        out[config.model.name + suffix] = config
    return out


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None, quiet: bool = True,
        heads: Sequence[str] = ("FC", "TC"), record_every: int = 10) -> AblationResult:
    """Train every head in its three F4 variants; all seeds of one variant train in one call.

    ``config`` defaults to :func:`attnlib.config.ablation_preset` (embedding std 0.1, 6000 epochs).
    Topic words are recorded every ``record_every`` epochs; the loss is recorded every epoch.
    """
    config = (config or ablation_preset()).replace(train={"record_every": record_every})
    seeds = [int(s) for s in (DEFAULT_SEEDS if seeds is None else seeds)]
    datasets = [generate_synthetic(config.data, seed) for seed in seeds]
    settings = {name: (variant, datasets) for head in heads for name, variant in ablation_configs(head, config).items()}
    return AblationResult(config, seeds, train_grid(settings, seeds, datasets[0].topic_words, quiet), datasets)


def published_comparison(result: AblationResult) -> pd.DataFrame:
    """Ours (mean and range over seeds) next to the values read from the authors' F4 figure."""
    s = result.summary()
    rows = []
    for name in result.runs:
        part = s[s.run == name]
        published = paper.ABLATION_FINAL.get(name, {})
        row = {"run": name}
        for key, column in (("loss", "final_train_loss"), ("score", "final_topic_score_mean"),
                            ("norm", "final_topic_norm_mean")):
            row[f"{key} (ours)"] = f"{part[column].mean():.3f} ({part[column].min():.3f}–{part[column].max():.3f})"
            row[f"{key} (published)"] = published.get(key, float("nan"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


PUBLISHED_MARGIN = 0.005
"""A published F4 value (read off the figure to two decimals) within this of our range over seeds rounds into it."""


def published_outside(result: AblationResult) -> list[str]:
    """``"RUN QUANTITY"`` for every value read off the authors' F4 figure that lies outside our range over seeds
    (widened by :data:`PUBLISHED_MARGIN`); a published loss of 0 ("near 0") is judged by the checks instead."""
    s = result.summary()
    outside = []
    for name in result.runs:
        part = s[s.run == name]
        for quantity, column in (("score", "final_topic_score_mean"), ("norm", "final_topic_norm_mean"),
                                 ("loss", "final_train_loss")):
            published = paper.ABLATION_FINAL[name][quantity]
            if quantity == "loss" and published == 0.0:
                continue
            if not part[column].min() - PUBLISHED_MARGIN <= published <= part[column].max() + PUBLISHED_MARGIN:
                outside.append(f"{name} {quantity}")
    return outside


def ablation_checks(result: AblationResult) -> pd.DataFrame:
    """F4's criteria per model (thresholds above), each with the measured value, the seeds meeting it
    (``passed`` of ``total``: seeds are the units, as in every other experiment) and whether all do.

    Columns: experiment, criterion, measured, passed, total, reproduced.
    """
    s = result.summary().set_index(["run", "seed"])
    rows = []

    def add(criterion: str, value: str, per_seed: pd.Series) -> None:
        passed, total = int(per_seed.sum()), len(per_seed)
        rows.append({"experiment": "F4", "criterion": criterion, "measured": value, "passed": passed, "total": total,
                     "reproduced": passed == total})

    for model in result.models:
        full, kf, ef = (s.loc[model + suffix] for suffix in ("", "-KF", "-EF"))
        final = full.final_train_loss.max()
        add(f"{model}: full-model loss < {FULL_FINAL_LOSS_MAX} at the last epoch, every seed", f"max {final:.4f}",
            full.final_train_loss < FULL_FINAL_LOSS_MAX)
        start = min(KF_ABOVE_FROM_EPOCH, result.config.train.epochs)
        gap = kf.loss_gap_to_full_min.min()
        add(f"{model}-KF: loss above the full model's at every epoch from {start} on, every seed",
            f"smallest gap {gap:.4f}", kf.loss_gap_to_full_min > 0)
        if model in KF_FINAL_LOSS_RANGE:
            lo, hi = KF_FINAL_LOSS_RANGE[model]
            add(f"{model}-KF: final loss in [{lo}, {hi}], every seed",
                f"{kf.final_train_loss.min():.3f} to {kf.final_train_loss.max():.3f}",
                (kf.final_train_loss >= lo) & (kf.final_train_loss <= hi))
        add(f"{model}-EF: final loss >= {EF_FINAL_LOSS_MIN}, every seed",
            f"min {ef.final_train_loss.min():.3f}; {int((ef.final_train_loss >= EF_FINAL_LOSS_MIN).sum())} of "
            f"{len(ef)} seeds", ef.final_train_loss >= EF_FINAL_LOSS_MIN)
        largest = np.maximum(kf.max_abs_score, kf.max_abs_score_all_words)
        add(f"{model}-KF: every score exactly 0 throughout", f"max |s| {largest.max():.1e}", largest == 0.0)
        drift = ef.max_relative_norm_change
        add(f"{model}-EF: topic |q||v| constant throughout", f"max relative change {drift.max():.1e}",
            drift <= CONSTANT_TOLERANCE)
        excess = kf.final_topic_norm_mean - full.final_topic_norm_mean
        add(f"{model}-KF: final topic |q||v| above the full model's, every seed", f"smallest excess {excess.min():.3f}",
            excess > 0)
    return pd.DataFrame(rows)
