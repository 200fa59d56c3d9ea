"""T1, F5-F7 as a registered experiment: a thin adapter over :func:`attnlib.experiments.sst.run_sst`.

It gives the SST result the surface every experiment has (:class:`attnlib.experiments.base.ExperimentResult`)
and holds the SST criteria, which the scorecard reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from attnlib.config import HEADS, RunConfig
from attnlib.experiments import sst
from attnlib.experiments.base import Check
from attnlib.experiments.sst import SST_SEEDS, SSTResult, available_settings, run_sst
from attnlib.experiments.sst_store import stored_seeds
from attnlib.report import mean_spread

NAME = "sst"
SUMMARY = "T1, F5-F7: Attn-FC / Attn-TC on SST2 and SST5 (paper setting, patience 2000, unmasked padding)"
PRESET = None
"""No config file: each SST setting is its own preset (:func:`attnlib.config.sst_preset`)."""

T1_TOLERANCE = 2.0
"""T1: percentage points between our mean test accuracy and the paper's; the paper reports one number per
cell, with no spread over seeds to compare against, so the band is a fixed one."""
F5_TOP, F5_TARGET = 20, 0.25
"""F5: the median relative gap to the identity over the 20 words with the largest scores. The paper claims
the points lie close to the curve (its assumptions hold only roughly on SST), not on it; this is our target."""
F6_RISE, F6_WORDS_NEEDED = 0.3, 4
"""F6: a traced word's purity rises by at least 0.3 while its occurrence falls, for 4 of the 5 words the
paper traces (it shows one run, so one word may differ)."""
CARD_SETTINGS = tuple((kind, head, variant) for kind in ("SST2", "SST5") for head in ("FC", "TC")
                      for variant in ("default", "patience2000") if variant == "default" or kind == "SST2")
"""The settings the scorecard reads: T1 and F5 use the paper's setting; F6 also the patience-2000 runs on
SST2, the authors' code's patience, with which attention moves further."""


class SSTExperimentResult(SSTResult):
    """:class:`~attnlib.experiments.sst.SSTResult` with the common surface and the SST checks."""

    @property
    def seeds(self) -> list[int]:
        return sorted({int(s) for run in self.runs.values() for s in run.seeds})

    def card(self) -> SSTExperimentResult:
        return SSTExperimentResult({s: self.runs[s] for s in CARD_SETTINGS if s in self.runs})

    def checks(self) -> list[Check]:
        return sst_checks(self)

    def _sst2(self) -> list:
        return [r for (kind, _, _), r in self.runs.items() if kind == "SST2"]

    def tables(self) -> dict[str, pd.DataFrame]:
        """T1 (per setting and per seed), F6's checks, the loss curves, F5's gaps and curves; on SST2 also F6's
        and F7's curves and F7's crossings."""
        runs = list(self.runs.values())
        tables = {"t1": self.table(), "t1_per_seed": self.per_seed(), "f6_checks": self.f6_checks(),
                  "losses": pd.concat([r.losses() for r in runs], ignore_index=True),
                  "f5_gaps": pd.concat([r.sen_gaps() for r in runs], ignore_index=True),
                  "f5_curves": pd.concat([r.sen_curves() for r in runs], ignore_index=True)}
        sst2 = self._sst2()
        if sst2:
            tables["f6_curves"] = pd.concat([r.shift_curves() for r in sst2], ignore_index=True)
            tables["f7_sentence"] = pd.concat([r.single_sentence() for r in sst2], ignore_index=True)
            tables["f7_crossings"] = pd.concat([r.f7_crossings() for r in sst2], ignore_index=True)
        return tables

    def figures(self) -> dict:
        """T1's loss curves, F5's gaps and its top-12 / top-100 grids per setting; on SST2 F6 and F7."""
        from attnlib.plots.sst import (  # noqa: PLC0415 - cycle: attnlib.plots.sst imports the sst experiment
            plot_attention_shift,
            plot_sen_gaps,
            plot_sen_grid,
            plot_single_sentence,
            plot_sst_losses,
        )

        figures = {"t1_losses": partial(plot_sst_losses, self), "f5_gaps": partial(plot_sen_gaps, self)}
        for (kind, head, variant), run in self.runs.items():
            figures[f"f5_top12_{kind}_{head}_{variant}"] = partial(plot_sen_grid, run, 12)
            figures[f"f5_top100_{kind}_{head}_{variant}"] = partial(plot_sen_grid, run, 100)
        sst2 = self._sst2()
        if sst2:
            figures["f6_attention_shift"] = partial(plot_attention_shift, sst2)
            figures["f7_single_sentence"] = partial(plot_single_sentence, sst2)
        return figures

    def texts(self) -> dict[str, str]:
        """T1 as a Markdown table in the paper's layout (t1.md)."""
        from attnlib.plots.sst import t1_markdown  # noqa: PLC0415 - cycle: attnlib.plots.sst imports the sst experiment

        return {"t1.md": t1_markdown(self.table()) + "\n"}


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None,
        settings: Sequence[tuple[str, str, str]] | None = None, quiet: bool = True, **options: Any) -> SSTExperimentResult:
    """The stored or retrained runs of ``settings`` (default: every setting with a stored run).

    ``config`` is not used: each SST setting is its own preset (:func:`attnlib.config.sst_preset`).
    """
    if config is not None:
        raise ValueError("the sst experiment takes no config: each setting is a preset (see attnlib.config.sst_preset)")
    chosen = available_settings()[0] if settings is None else settings
    result = run_sst(settings=list(chosen), seeds=SST_SEEDS if seeds is None else seeds, quiet=quiet,
                     **options)
    return SSTExperimentResult(result.runs)


def sst_checks(result: SSTResult) -> list[Check]:
    """T1's four cells (and its secondary claim), F5's median gap, F6's shift, F7's crossing."""
    rows = []
    table = result.table()
    default = table[table.variant == "default"]
    for r in default.itertuples():
        per_seed = 100 * result.runs[(r.dataset, _head(r.model), "default")].final_test_accuracy
        rows.append(Check("T1", f"{r.dataset} {r.model}: test accuracy (%)", f"{r.paper:.2f}",
                          mean_spread(per_seed, 2), f"mean within ±{T1_TOLERANCE:g} points",
                          int(abs(r.test_mean - r.paper) <= T1_TOLERANCE), 1, 1, note=f"difference {r.diff:+.2f}"))
    means = default.set_index(["dataset", "model"]).test_mean
    for kind in sorted({d for d, _ in means.index}):
        if (kind, "Attn-FC") in means and (kind, "Attn-TC") in means:
            tc, fc = means[(kind, "Attn-TC")], means[(kind, "Attn-FC")]
            rows.append(Check("T1", f"{kind}: Attn-TC beats Attn-FC (secondary)", "TC ahead",
                              f"TC − FC = {tc - fc:+.2f} points", "reported, not gated", 0, 0, 0))
    for (kind, head, variant), run in result.runs.items():
        if variant != "default":
            continue
        gaps = run.sen_gaps()
        medians = gaps[gaps["rank"] <= F5_TOP].groupby("seed").rel_gap.median()
        rows.append(Check("F5", f"{kind} {HEADS[head]}: the identity on the top {F5_TOP} words (median relative gap)",
                          "approximately (plots)", mean_spread(medians, 3), f"≤ {F5_TARGET} in every seed",
                          int((medians <= F5_TARGET).sum()), len(medians), len(medians)))
    f6 = result.f6_checks()
    if not f6.empty:
        for (model, variant), g in f6.groupby(["model", "variant"], sort=False):
            words = g.groupby("seed")["pass"].sum()
            n_words = g.word.nunique()
            rows.append(Check("F6", f"SST2 {model} ({variant}): attention moves from frequent to pure words",
                              "purity rises, occurrence falls",
                              f"words meeting it per seed: {', '.join(str(int(v)) for v in words)} of {n_words}",
                              f"Π rises ≥ {F6_RISE} and Ω̃ falls for ≥ {F6_WORDS_NEEDED} of {n_words} words, every seed",
                              int((words >= F6_WORDS_NEEDED).sum()), len(words), len(words)))
    for (kind, head, variant), run in result.runs.items():
        if kind != "SST2" or variant != "default":
            continue
        crossings = run.f7_crossings()
        epochs = ", ".join("none" if pd.isna(c) else str(int(c)) for c in crossings.first_crossing)
        rows.append(Check("F7", f"SST2 {HEADS[head]}: 'powerful' and 'best' weights cross in one sentence",
                          "'best' first, 'powerful' overtakes (expected)", f"first crossing per seed: {epochs}",
                          "reported (qualitative)", 0, 0, 0, note="leader at the end: " + ", ".join(crossings.leader_last)))
    return rows


def _head(model: str) -> str:
    return next(h for h, name in HEADS.items() if name == model)


# --------------------------------------------------------------------------- what `attnlib run sst` does


def training_estimate(setting: tuple[str, str, str], folder: Path | None, n_seeds: int) -> str:
    """How long training ``n_seeds`` seeds of a setting takes, from the stored run's wall time."""
    path = folder / f"{'_'.join(setting)}.json" if folder else None
    try:
        meta = json.loads(path.read_text()) if path and path.is_file() else {}
    except ValueError:
        meta = {}
    wall, stored = meta.get("wall_time_s"), len(meta.get("seeds", []))
    if not wall or not stored:
        return "training time unknown (no stored run to estimate it from)"
    return (f"about {wall * n_seeds / stored / 60:.0f} min to train {n_seeds} seed{'s' * (n_seeds > 1)} "
            f"(the stored run's {stored} seeds took {wall:.0f} s on {meta.get('cpu_threads', '?')} CPU threads)")


def plan_runs(seeds: Sequence[int], folder: Path | None, where: str, only: Sequence[str] | None = None,
              retrain: bool = False):
    """What ``attnlib run sst`` does with each setting: (serve, train, notes).

    ``serve`` maps a setting to the stored seeds served; ``train`` lists the settings trained (fast ones,
    or any named in ``only``); ``notes`` are the lines saying what was skipped or why a slow one trains.
    A slow setting (:data:`~attnlib.experiments.sst.SLOW_SETTINGS`) not named in ``only`` is never
    trained: its stored seeds are served and the others skipped, with the command and the time to train them.
    """
    seeds = [int(s) for s in seeds]
    serve, train, notes = {}, [], []
    for setting in sst.SETTINGS:
        key = "_".join(setting)
        if only and key not in only:
            continue
        have = set(stored_seeds(*setting, folder=folder)) if folder and not retrain else set()
        missing = [s for s in seeds if s not in have]
        if not missing:
            serve[setting] = seeds
        elif setting in sst.SLOW_SETTINGS and not only:
            if len(missing) < len(seeds):
                serve[setting] = [s for s in seeds if s not in missing]
            plural = len(missing) > 1
            why = ("--retrain retrains slow settings only when --only names them" if retrain
                   else f"no stored run with {'them' if plural else 'it'} in {where}" if folder else where)
            notes.append(f"{key}: seed{'s' * plural} {', '.join(map(str, missing))} skipped: {why}, and Attn-TC is "
                         f"slow, {training_estimate(setting, folder, len(missing))}; train with "
                         f"`attnlib run sst --only {key} --seeds {len(seeds)}`")
        else:
            train.append(setting)
            if setting in sst.SLOW_SETTINGS:
                notes.append(f"{key}: training {len(seeds)} seeds ("
                             f"{'asked for' if retrain else f'no stored run with them in {where}' if folder else where}), "
                             f"{training_estimate(setting, folder, len(seeds))}")
    return serve, train, notes
