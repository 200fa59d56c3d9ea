"""Rate of growth under the fixed classifier: how score, norm and loss evolve over long Attn-FC runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from attnlib.config import RunConfig, synthetic_preset
from attnlib.data import generate_synthetic
from attnlib.experiments.base import ExperimentResult, train_grid
from attnlib.experiments.beyond.traces import BEYOND_SEEDS, topic_means_table
from attnlib.formatting import mean_range
from attnlib.provenance import run_config_hashes
from attnlib.train import TrainResult

HEURISTIC = """as in logistic regression on separable data, |v| grows like ln t once the topic words dominate,
so s ~ 2 ln |v| grows like 2 ln ln t and the loss falls like 1/t (a heuristic, not from the paper)"""


@dataclass
class GrowthResult(ExperimentResult):
    """A long Attn-FC run: how score, norm and loss evolve with the epoch t (see :data:`HEURISTIC`)."""

    run: TrainResult

    @property
    def windows(self) -> list[tuple[int, int]]:
        """Fit windows (first, last epoch): T/15 to T/6, T/6 to T/2, T/2 to T."""
        t = self.config.train.epochs
        return [(t // 15, t // 6), (t // 6, t // 2), (t // 2, t)]

    def curves(self) -> pd.DataFrame:
        """Columns: seed, epoch, score (mean over topic words), norm (mean |q||v|), loss."""
        return topic_means_table(self.run, {})

    def config_hashes(self) -> dict[str, str]:
        return run_config_hashes({"growth": self.run}, self.config.data)

    def local_slopes(self, min_epoch: int = 100) -> pd.DataFrame:
        """The local log-log slope d log y / d log t of score, norm and loss per seed (central differences).

        Columns: seed, epoch, score, norm, loss. A power law t^p has constant slope p; the heuristic
        (:data:`HEURISTIC`) has score and norm slopes falling towards 0 like 1 / ln t and a loss slope
        tending to -1.
        """
        curves = self.curves()
        curves = curves[curves.epoch >= max(min_epoch, 1)]
        frames = []
        for seed, part in curves.groupby("seed"):
            log_t = np.log(part.epoch.to_numpy(dtype=float))
            frames.append(pd.DataFrame({"seed": seed, "epoch": part.epoch.to_numpy(),
                                        **{q: np.gradient(np.log(part[q].to_numpy()), log_t)
                                           for q in ("score", "norm", "loss")}}))
        return pd.concat(frames, ignore_index=True)

    def fits(self) -> pd.DataFrame:
        """Least-squares fits per seed and window.

        Columns: seed, first_epoch, last_epoch, score_power (slope of log s against log t),
        norm_power (log |q||v| against log t), loss_power (log loss against log t), norm_per_log_t
        (slope of |q||v| against ln t), score_per_loglog_t (slope of s against ln ln t).
        The heuristic (:data:`HEURISTIC`) predicts, for large t: powers tending to 0 for score and norm,
        norm_per_log_t constant, score_per_loglog_t tending to 2, loss_power tending to -1.
        """
        curves = self.curves()
        rows = []
        for seed, part in curves.groupby("seed"):
            for first, last in self.windows:
                window = part[(part.epoch >= max(first, 1)) & (part.epoch <= last)]
                log_t = np.log(window.epoch.to_numpy(dtype=float))
                slope = lambda x, y: float(np.polyfit(x, y, 1)[0])  # noqa: E731
                rows.append({
                    "seed": seed, "first_epoch": first, "last_epoch": last,
                    "score_power": slope(log_t, np.log(window.score)), "norm_power": slope(log_t, np.log(window.norm)),
                    "loss_power": slope(log_t, np.log(window.loss)),
                    "norm_per_log_t": slope(log_t, window.norm.to_numpy()),
                    "score_per_loglog_t": slope(np.log(log_t), window.score.to_numpy()),
                })
        return pd.DataFrame(rows)


def growth_study(seeds: Sequence[int] = BEYOND_SEEDS, epochs: int = 30000, record_every: int = 50,
                 head: str = "FC", base: RunConfig | None = None, quiet: bool = True) -> GrowthResult:
    """Train one head (default the fixed classifier) for ``epochs`` epochs, all seeds in one call."""
    base = (base or synthetic_preset()).replace(model={"head": head},
                                                train={"epochs": epochs, "record_every": record_every})
    seeds = [int(s) for s in seeds]
    datasets = [generate_synthetic(base.data, seed) for seed in seeds]
    run = train_grid({"growth": (base, datasets)}, seeds, datasets[0].topic_words, quiet)["growth"]
    return GrowthResult(base, seeds, run)


def growth_table(result: GrowthResult) -> pd.DataFrame:
    """Per fit window: the fitted slopes, mean (min–max) over seeds."""
    fits = result.fits()
    rows = []
    for (first, last), part in fits.groupby(["first_epoch", "last_epoch"]):
        rows.append({
            "epochs": f"{first}–{last}",
            "score power (log s vs log t)": mean_range(part.score_power, 3),
            "norm power (log n vs log t)": mean_range(part.norm_power, 3),
            "loss power (log L vs log t)": mean_range(part.loss_power, 2),
            "d n / d ln t": mean_range(part.norm_per_log_t, 3),
            "d s / d ln ln t": mean_range(part.score_per_loglog_t, 2),
        })
    return pd.DataFrame(rows).set_index("epochs")

