"""T1, F5-F7 as a registered experiment: a thin adapter over :mod:`attnlib.experiments.sst.serving`.

It gives the SST result the surface every experiment has (:class:`attnlib.experiments.base.ExperimentResult`),
holds the SST criteria, which the scorecard reads, and what ``attnlib run sst`` does (its own options:
``--only``, ``--store``, ``--store-dir``, ``--retrain``, ``--jobs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from attnlib import paper
from attnlib.config import HEADS, RunConfig
from attnlib.experiments.base import ORDER_MARGIN, Check, ExperimentResult, Option, ordering, positive_int
from attnlib.experiments.sst.analysis import SSTResult
from attnlib.experiments.sst.serving import run_planned, run_sst
from attnlib.experiments.sst.settings import (
    F5_TARGET,
    F5_TOP,
    F6_RISE,
    F6_WORDS_NEEDED,
    SETTINGS,
    SST_SEEDS,
    T1_TOLERANCE,
)
from attnlib.formatting import mean_spread

NAME = "sst"
SUMMARY = "T1, F5-F7: Attn-FC / Attn-TC on SST2 and SST5 (paper setting, patience 2000, unmasked padding)"
PRESET = None
"""No config file: each SST setting is its own preset (:func:`attnlib.config.sst_preset`)."""
DEFAULT_SEEDS = SST_SEEDS
MAX_SEEDS = 10
"""``--seeds`` at most: each seed is one more model in the batch (memory and time grow with it); the book uses 3."""
OPTIONS = (
    Option("--store", "retrain and store the reduced runs under STORE/sst (e.g. --store results/)", type=Path),
    Option("--only", "comma-separated settings, e.g. SST2_FC_default,SST2_TC_patience2000"),
    Option("--store-dir", "the folder stored runs are served from (default: $ATTNLIB_STORE_DIR, else the "
                          "checkout's results/sst when there is one)", type=Path),
    Option("--retrain", "retrain the selected settings even where a stored run exists (for instance one refused "
                        "by its checks); slow settings only with --only", switch=True),
    Option("--jobs", "settings trained at once in separate processes (default: one after another; a joblib "
                     "backend context such as Dask's takes over from the API, see attnlib.sweep)", type=positive_int),
    Option("--scheduler", "train the settings on the Dask cluster whose scheduler is at ADDRESS (e.g. "
                          "tcp://10.0.0.5:8786), one setting per worker thread; the same bytes as a local run. "
                          "Needs attnlib[dask]; every worker needs attnlib and the SST data"),
)
CLAIMS = {"T1": 5, "F5": 6, "F6": 7, "F7": 8}
"""Claim id -> place in the scorecard (see :data:`attnlib.experiments.synthetic.CLAIMS`)."""

CARD_SETTINGS = tuple((kind, head, variant) for kind in ("SST2", "SST5") for head in ("FC", "TC")
                      for variant in ("default", "patience2000") if variant == "default" or kind == "SST2")
"""The settings the scorecard reads: T1 and F5 use the paper's setting; F6 also the patience-2000 runs on
SST2, the authors' code's patience, with which attention moves further."""
CARD_OPTIONS = {"settings": CARD_SETTINGS}


class SSTExperimentResult(SSTResult, ExperimentResult):
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
        from attnlib.plots.sst import (  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only drawing needs them
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
        from attnlib.plots.sst import t1_markdown  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only drawing needs them

        return {"t1.md": t1_markdown(self.table()) + "\n"}


def check_options(only: str | None = None, **_: Any) -> None:
    """``--only`` names known settings (checked before anything runs); a ValueError says which are not."""
    if only:
        known = ["_".join(setting) for setting in SETTINGS]
        unknown = [name for name in only.split(",") if name not in known]
        if unknown:
            raise ValueError(f"--only names unknown SST settings {', '.join(map(repr, unknown))}; "
                             f"known settings: {', '.join(known)}")


def run(config: RunConfig | None = None, seeds: Sequence[int] | None = None, quiet: bool = True,
        settings: Sequence[tuple[str, str, str]] | None = None, only: str | None = None, store: Path | None = None,
        store_dir: Path | None = None, retrain: bool = False, jobs: int | None = None,
        scheduler: str | None = None) -> SSTExperimentResult:
    """The SST runs, served from storage or trained.

    With ``settings`` (the scorecard's and the chapters' call): those settings, each served when a stored
    run has the seeds and retrained otherwise (:func:`~attnlib.experiments.sst.serving.run_sst`). Without: what
    ``attnlib run sst`` does (:func:`~attnlib.experiments.sst.serving.plan_runs`): every setting (or those
    ``only`` names, comma-separated), stored runs served after their checks, the others trained (``jobs`` at
    once), slow unstored ones skipped unless named; ``retrain`` retrains the selected ones, ``store`` also
    writes them to STORE/sst; ``scheduler`` trains them on that Dask cluster (:func:`attnlib.sweep.on_cluster`);
    each step says what it did in one line on stdout.

    ``config`` is not used: each SST setting is its own preset (:func:`attnlib.config.sst_preset`).
    """
    if config is not None:
        raise ValueError("the sst experiment takes no config: each setting is a preset (see attnlib.config.sst_preset)")
    seeds = SST_SEEDS if seeds is None else seeds
    if settings is not None:
        if only or store or store_dir or retrain or jobs or scheduler:
            raise ValueError("run(settings=...) serves or retrains those settings; --only, --store, --store-dir, "
                             "--retrain, --jobs and --scheduler are the command line's")
        return SSTExperimentResult(run_sst(settings=list(settings), seeds=seeds, quiet=quiet).runs)
    return SSTExperimentResult(run_planned(tuple(int(s) for s in seeds), quiet, only, store, store_dir, retrain, jobs,
                                           scheduler))


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
    rows += t1_ordering_checks(result)
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


def t1_ordering(result: SSTResult, kind: str):
    """T1's secondary claim on ``kind``: Attn-TC's test accuracy (%) above Attn-FC's, by :func:`ordering`
    (None when either default cell is missing)."""
    runs = [result.runs.get((kind, head, "default")) for head in ("FC", "TC")]
    if None in runs:
        return None
    return ordering(("FC", 100 * runs[0].final_test_accuracy), ("TC", 100 * runs[1].final_test_accuracy))


def t1_ordering_checks(result: SSTResult) -> list[Check]:
    """One row for T1's secondary claim: Attn-TC ahead of Attn-FC on each dataset (the units), judged on the
    difference itself, because the cells' ±T1_TOLERANCE bands allow twice that swing in their difference."""
    found = {kind: t1_ordering(result, kind) for kind in ("SST2", "SST5")}
    found = {kind: o for kind, o in found.items() if o is not None}
    if not found:
        return []
    paper_gap = {kind: 100 * (paper.SST_TEST_ACCURACY[(kind, "Attn-TC")] - paper.SST_TEST_ACCURACY[(kind, "Attn-FC")])
                 for kind in found}
    published = "; ".join(f"{kind} {gap:+.2f}" for kind, gap in paper_gap.items())
    return [Check("T1", "Attn-TC beats Attn-FC in test accuracy (points)", f"TC − FC: {published}",
                  "; ".join(f"{kind} {o.describe()}" for kind, o in found.items()),
                  f"TC − FC > {ORDER_MARGIN:g} standard errors of the difference of seed means, each dataset",
                  sum(o.holds for o in found.values()), len(found), len(found), key="tc_over_fc")]


def t1_head_pattern(result: SSTResult) -> str:
    """How each head's default cells sit against the paper (within the tolerance, above or below it, with the
    differences in points), one clause per head, e.g. "both Attn-TC cells are within the tolerance, on both
    sides of the paper (SST2 +0.13, SST5 -0.24 points)"."""
    table = result.table()
    default = table[table.variant == "default"]
    clauses = []
    for model, g in default.groupby("model", sort=True):
        inside = (g["diff"].abs() <= T1_TOLERANCE).to_numpy()
        sides = "above" if (g["diff"] > 0).all() else "below" if (g["diff"] < 0).all() else "on both sides of"
        count = "both" if len(g) == 2 else f"all {len(g)}" if len(g) > 2 else "the"
        cells = f"{model} cell{'s' * (len(g) > 1)}"
        diffs = ", ".join(f"{r.dataset} {r.diff:+.2f}" for r in g.itertuples())
        if inside.all() or not inside.any():
            state = f"{'is' if len(g) == 1 else 'are'} {'within' if inside.all() else 'outside'} the tolerance"
            clauses.append(f"{count} {cells} {state}, {sides} the paper ({diffs} points)")
            continue
        within = ", ".join(g["dataset"].to_numpy()[inside])
        clauses.append(f"{int(inside.sum())} of the {len(g)} {cells} {'is' if inside.sum() == 1 else 'are'} within "
                       f"the tolerance ({within}), and {count} {'lie' if sides.startswith('on') else 'are'} "
                       f"{sides} the paper ({diffs} points)")
    return "; ".join(clauses)


def t1_ordering_sentence(result: SSTResult) -> str:
    """Where T1's secondary claim (Attn-TC ahead of Attn-FC) stands, in one sentence, for the book's text."""
    found = {kind: t1_ordering(result, kind) for kind in ("SST2", "SST5")}
    found = {kind: o for kind, o in found.items() if o is not None}
    if not found:
        return "The Attn-TC against Attn-FC ordering is not judged in this build (a default cell is missing)."
    holds = [kind for kind, o in found.items() if o.holds]
    paper_gap = {kind: 100 * (paper.SST_TEST_ACCURACY[(kind, "Attn-TC")] - paper.SST_TEST_ACCURACY[(kind, "Attn-FC")])
                 for kind in found}
    verdict = ("holds on neither dataset" if not holds else "holds on both datasets" if len(holds) == len(found)
               else f"holds on {holds[0]} only")
    parts = [f"{kind} {paper_gap[kind]:+.2f} points in the paper, {o.difference:+.2f} (standard error "
             f"{o.standard_error:.2f}) in ours" for kind, o in found.items()]
    return (f"The paper's secondary claim that Attn-TC is more accurate than Attn-FC {verdict} in our runs "
            f"(TC − FC: {'; '.join(parts)}; the ordering must exceed {ORDER_MARGIN:g} standard errors).")


def _head(model: str) -> str:
    return next(h for h, name in HEADS.items() if name == model)
