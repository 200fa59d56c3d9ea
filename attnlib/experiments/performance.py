"""The engine's speed as a registered experiment: :mod:`attnlib.benchmark`'s measurements with the surface
every experiment has (tables, figures, checks, metrics, provenance).

Unlike the other experiments it reproduces nothing of the paper: it times this machine, so its numbers
differ from run to run and from machine to machine, and the scorecard does not read it. Its checks are
the engine's speed targets (:data:`attnlib.benchmark.TARGETS`), each against the measured value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pandas as pd

from attnlib import benchmark
from attnlib.config import RunConfig
from attnlib.experiments.base import Check, ExperimentResult
from attnlib.provenance import provenance

NAME = "performance"
SUMMARY = "the engine's speed: bag-of-words engine vs a padded reference, seeds, corpus scaling (this machine)"
PRESET = None
"""No config file: the benchmark's problem sizes are its own (:mod:`attnlib.benchmark`)."""

TABLES = {"sst2_vs_padded": "sst2", "synthetic_vs_padded": "synthetic", "seeds": "seeds",
          "sst2_shared_corpus": "sst2_shared", "corpus_size": "corpus_size"}
"""File name -> the key of :func:`attnlib.benchmark.run_all`'s results that holds the table's rows."""
TARGET_LABELS = {"sst2_fc_speedup_vs_padded": "SST2 Attn-FC epoch: engine over the padded reference (x faster)",
                 "sst2_tc_speedup_vs_padded": "SST2 Attn-TC epoch: engine over the padded reference (x faster)",
                 "sst2_fc_roofline_fraction": "SST2 Attn-FC epoch: fraction of the machine's roofline",
                 "synthetic_seeds20_over_seeds1_time": "synthetic: 20 seeds batched over 1 seed (time ratio)"}


class PerformanceResult(ExperimentResult):
    """What :func:`attnlib.benchmark.run_all` measured (``results``, its JSON-ready dictionary)."""

    def __init__(self, results: dict) -> None:
        self.results = results
        self.config = None
        self.seeds: list[int] = []

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: pd.DataFrame(self.results[key]) for name, key in TABLES.items()}

    def figures(self) -> dict[str, Callable[[], Any]]:
        """The epoch time against the corpus size, with the fitted cost model."""
        from attnlib.plots.performance import plot_scaling  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only drawing needs them

        return {"scaling": partial(plot_scaling, self.results["corpus_size"], self.results["epoch_time_linear_fit"])}

    def checks(self) -> list[Check]:
        """One per speed target: the measured value against its bound (met or not on this machine)."""
        met = benchmark.verdicts(self.results)
        return [Check("P", TARGET_LABELS.get(key, key), "(not in the paper)", f"{self.results[key]:.3g}",
                      f"{op} {bound:g}", int(met[key]), 1, 1, key=key)
                for key, (op, bound) in benchmark.TARGETS.items()]

    def measures(self) -> dict[str, Any]:
        """The results' scalar entries (speed-ups, ratios, the scaling exponent, the run's seconds)."""
        return {k: v for k, v in self.results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def provenance(self) -> dict:
        return provenance({}, [])


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None, quiet: bool = True,
        quick: bool = False, reps: int = 5, log: Callable[[str], object] = lambda _: None) -> PerformanceResult:
    """Every benchmark (:func:`attnlib.benchmark.run_all`); ``quick`` runs each once at a tiny size."""
    if config is not None:
        raise ValueError("the performance experiment takes no config: its problem sizes are the benchmark's own")
    return PerformanceResult(benchmark.run_all(quick, reps, log=log))
