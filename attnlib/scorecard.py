"""The reproduction scorecard: one row per claim and headline number of the paper.

Each row holds the paper's value or statement, ours (mean ± std and range over seeds), the criterion,
and a verdict that follows mechanically from two counts: how many units (seeds, model-seed pairs,
cells) meet the criterion (``passed``) and how many must (``needed``, out of ``total``). A row with
``total == 0`` is *reported* only: it has no pass condition (e.g. F7, N2). The rows are the checks of
the registered experiments (:data:`attnlib.experiments.EXPERIMENTS`), the same objects the chapters'
verdict tables are made from, so the page and the chapters cannot disagree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attnlib.experiments import EXPERIMENTS
from attnlib.experiments.base import Check, ExperimentResult, checks_table, verdict
from attnlib.files import write_text
from attnlib.provenance import provenance

Row = Check
"""A scorecard row is an experiment's check."""
VERDICTS = ("reproduced", "partly", "not reproduced", "reported")
EXPERIMENT_IDS = ("F1", "F2", "F3", "F4", "T1", "F5", "F6", "F7", "N1", "N2", "N3", "N4", "N5", "N6")
"""The paper's figures and table in its order (F1-F7, T1), then the numerical checks of the theory
(N1-N6); every one must have at least one row."""
SCORED = ("synthetic", "ablation", "sst")
"""The registered experiments whose checks make the scorecard (the studies beyond the paper have none)."""

__all__ = ["Row", "Check", "verdict", "VERDICTS", "EXPERIMENT_IDS", "SCORED", "Scorecard", "assemble",
           "build_scorecard", "scorecard_table", "run_scorecard", "verdict_counts", "experiment_verdicts",
           "to_markdown", "to_json"]


def scorecard_table(rows: Iterable[Check]) -> pd.DataFrame:
    """Rows in the paper's order (F1-F7, T1 as in the paper, then N1-N6), with the verdict column."""
    frame = checks_table(rows)
    order = {id_: k for k, id_ in enumerate(EXPERIMENT_IDS)}
    return frame.sort_values("id", key=lambda ids: ids.map(order), kind="stable").reset_index(drop=True)


def build_scorecard(results: Mapping[str, ExperimentResult]) -> pd.DataFrame:
    """The scorecard from the experiments' results (the chapters' own result objects), by experiment name."""
    return scorecard_table([row for result in results.values() for row in result.card().checks()])


@dataclass
class Scorecard:
    """The scorecard table and the provenance of every run behind it."""

    table: pd.DataFrame
    provenance: dict

    def write(self, folder: Path) -> list[Path]:
        """``scorecard.json`` (rows, counts, provenance), ``scorecard.csv`` and ``scorecard.md``, each atomic."""
        folder.mkdir(parents=True, exist_ok=True)
        payload = {**to_json(self.table), "provenance": self.provenance}
        outputs = {"scorecard.json": json.dumps(payload, indent=2, ensure_ascii=False) + "\n",
                   "scorecard.csv": self.table.to_csv(index=False),
                   "scorecard.md": to_markdown(self.table) + "\n"}
        for name, text in outputs.items():
            write_text(folder / name, text)
        return [folder / name for name in outputs]


def run_scorecard(seeds: Sequence[int] | None = None, sst_seeds: Sequence[int] | None = None,
                  quiet: bool = True) -> Scorecard:
    """Run (or fetch from the result cache and the stored SST runs) every scored experiment at its defaults."""
    results = {}
    for name in SCORED:
        options = {"settings": EXPERIMENTS[name].CARD_SETTINGS} if name == "sst" else {}
        results[name] = EXPERIMENTS[name].run(seeds=sst_seeds if name == "sst" else seeds, quiet=quiet, **options)
    return assemble(results)


def assemble(results: Mapping[str, ExperimentResult]) -> Scorecard:
    """The scorecard of the scored experiments among ``results`` (name -> result), with the provenance of
    the runs it reads (their config hashes, named ``experiment:run``, and all seeds)."""
    parts = {name: results[name].card() for name in SCORED if name in results}
    hashes = {f"{name}:{run}": value for name, part in parts.items()
              for run, value in part.provenance()["config_hashes"].items()}
    seeds = sorted({int(s) for part in parts.values() for s in part.seeds})
    return Scorecard(build_scorecard(parts), provenance(hashes, seeds))


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many rows have each verdict."""
    return {v: int((table.verdict == v).sum()) for v in VERDICTS}


def experiment_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One line per experiment ID: its rows' verdicts summarised (reproduced only if every gated row is)."""
    out = []
    for id_, g in table.groupby("id", sort=False):
        gated = g[g.verdict != "reported"]
        if gated.empty:
            overall = "reported"
        elif (gated.verdict == "reproduced").all():
            overall = "reproduced"
        elif (gated.verdict == "not reproduced").all():
            overall = "not reproduced"
        else:
            overall = "partly"
        out.append({"id": id_, "rows": len(g), "reproduced": int((g.verdict == "reproduced").sum()),
                    "gated": len(gated), "verdict": overall})
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame, columns: Sequence[str] = ("id", "claim", "paper", "ours", "criterion",
                                                                 "verdict")) -> str:
    """A Markdown table (pipes in cells escaped)."""
    def cell(value: object) -> str:
        return re.sub(r"\|", r"\\|", str(value))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(getattr(r, c)) for c in columns) + " |" for r in table.itertuples()]
    return "\n".join(lines)


def to_json(table: pd.DataFrame) -> dict:
    """``scorecard.json``: rows with id, claim, paper value, ours, tolerance (criterion) and verdict."""
    rows = [{"id": r.id, "claim": r.claim, "paper": r.paper, "ours": r.ours, "tolerance": r.criterion,
             "verdict": r.verdict, "passed": int(r.passed), "needed": int(r.needed), "total": int(r.total),
             "note": r.note} for r in table.itertuples()]
    return json.loads(json.dumps({"rows": rows, "counts": verdict_counts(table)}))
