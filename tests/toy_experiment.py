"""A toy experiment that lives in the tests only: what CONTRIBUTING's "Add an experiment" asks for and
nothing more (one config, one table, one figure, one check). ``tests/test_registry.py`` registers it
as ``attnlib/experiments/__init__.py`` registers the package's own, and runs it through the command line
and the scorecard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import Dataset, generate_synthetic
from attnlib.experiments.base import Check, ExperimentResult, long_table, train_grid
from attnlib.train import TrainResult

NAME = "toy"
SUMMARY = "a toy: Attn-FC on a tiny synthetic corpus"
DEFAULT_SEEDS = (0, 1)
MAX_SEEDS = 3
CLAIMS = {"X1": 100}
"""X1: the loss falls; after the paper's claims in the scorecard."""


def PRESET() -> RunConfig:  # noqa: N802 - the registry's name for the config an experiment starts from
    return RunConfig(data=SyntheticDataConfig(n_nontopic=40, n_train=30, n_test=10), train=TrainConfig(epochs=20))


@dataclass
class ToyResult(ExperimentResult):
    runs: dict[str, TrainResult]
    datasets: list[Dataset] = field(repr=False)

    def losses(self) -> pd.DataFrame:
        run = self.runs["Attn-FC"]
        return long_table({"model": "Attn-FC"}, {"epoch": np.arange(run.loss.shape[0]), "seed": run.seeds},
                          {"loss": run.loss}, order=("seed", "epoch"))

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"losses": self.losses()}

    def figures(self) -> dict:
        return {"toy_losses": partial(plot_losses, self)}

    def checks(self) -> list[Check]:
        loss = self.runs["Attn-FC"].loss
        fell = loss[-1] < loss[0]
        return [Check("X1", "the training loss falls", "(a toy)", f"{loss[-1].mean():.3f} from {loss[0].mean():.3f}",
                      "last epoch below the first, every seed", int(fell.sum()), len(fell), len(fell))]

    def measures(self) -> dict:
        return {"Attn-FC.final_train_loss": float(self.runs["Attn-FC"].loss[-1].mean())}


def plot_losses(result: ToyResult):
    import matplotlib.pyplot as plt  # noqa: PLC0415 - only drawing needs pyplot

    fig, ax = plt.subplots()
    for seed, g in result.losses().groupby("seed"):
        ax.plot(g.epoch, g.loss, label=f"seed {seed}")
    ax.set(xlabel="epoch", ylabel="training loss")
    ax.legend()
    return fig


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None, quiet: bool = True) -> ToyResult:
    config = config or PRESET()
    seeds = [int(s) for s in (DEFAULT_SEEDS if seeds is None else seeds)]
    datasets = [generate_synthetic(config.data, seed) for seed in seeds]
    runs = train_grid({"Attn-FC": (config, datasets)}, seeds, datasets[0].topic_words, quiet)
    return ToyResult(config, seeds, runs, datasets)
