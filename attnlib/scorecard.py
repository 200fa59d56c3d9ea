"""The reproduction scorecard: one row per claim and headline number of the paper.

Each row holds the paper's value or statement, ours (mean ± std and range over seeds), the criterion,
and a verdict that follows mechanically from two counts: how many units (seeds, model-seed pairs,
cells) meet the criterion (``passed``) and how many must (``needed``, out of ``total``). A row with
``total == 0`` is *reported* only: it has no pass condition (e.g. F7, N2). The rows are the checks of
the registered experiments that declare claims (:attr:`attnlib.experiments.base.Experiment.claims`),
the same objects the chapters' verdict tables are made from, so the page and the chapters cannot
disagree; the rows follow the places the experiments give their claims.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attnlib.experiments import EXPERIMENTS
from attnlib.experiments.base import Check, ExperimentResult, checks_table, verdict
from attnlib.experiments.sst.storage import checkout_store_dir
from attnlib.files import write_text
from attnlib.formatting import combine_verdicts
from attnlib.provenance import provenance

Row = Check
"""A scorecard row is an experiment's check."""
VERDICTS = ("reproduced", "partly", "not reproduced", "reported")

__all__ = ["Row", "Check", "verdict", "VERDICTS", "scored", "claim_ids", "beyond_ids", "paper_rows", "beyond_rows",
           "Scorecard", "assemble", "build_scorecard",
           "scorecard_table", "run_scored", "run_scorecard", "verdict_counts", "experiment_verdicts", "to_markdown",
           "to_json", "from_json", "stored_path", "load_stored", "store", "differences", "require_stored_current",
           "StoredScorecardError"]


def scored() -> list[str]:
    """The registered experiments whose checks make the scorecard (those that declare claims), in registry order."""
    return [name for name, entry in EXPERIMENTS.items() if entry.scored]


def _places() -> dict[str, int]:
    return {id_: place for name in scored() for id_, place in EXPERIMENTS[name].claims.items()}


def beyond_ids() -> set[str]:
    """Claim ids of the experiments that test the paper beyond what it did (``BEYOND_THE_PAPER``)."""
    return {id_ for entry in EXPERIMENTS.values() if entry.beyond for id_ in entry.claims}


def paper_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's own claims: what the reproduction's counts and verdicts are made of."""
    return table[~table["id"].isin(beyond_ids())].reset_index(drop=True)


def beyond_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows beyond the paper (e.g. TREC), listed on the scorecard beside the paper's."""
    return table[table["id"].isin(beyond_ids())].reset_index(drop=True)


def claim_ids() -> tuple[str, ...]:
    """Every claim the scored experiments declare, in scorecard order (every one must have at least one row)."""
    places = _places()
    return tuple(sorted(places, key=places.__getitem__))


def scorecard_table(rows: Iterable[Check]) -> pd.DataFrame:
    """Rows in the order of their claims' places (for the paper: F1-F7, T1 as in the paper, then N1-N6),
    rows of one claim in the order given, with the verdict column."""
    frame = checks_table(rows)
    places = _places()
    return frame.sort_values("id", key=lambda ids: ids.map(lambda i: places.get(i, math.inf)),
                             kind="stable").reset_index(drop=True)


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
        outputs = {"scorecard.json": self.json_text(),
                   "scorecard.csv": self.table.to_csv(index=False),
                   "scorecard.md": to_markdown(self.table) + "\n"}
        for name, text in outputs.items():
            write_text(folder / name, text)
        return [folder / name for name in outputs]

    def json_text(self) -> str:
        """``scorecard.json``'s text: :func:`to_json` of the table, with the provenance."""
        return json.dumps({**to_json(self.table), "provenance": self.provenance}, indent=2, ensure_ascii=False) + "\n"


def run_scored(seeds: Mapping[str, Sequence[int]] | None = None, quiet: bool = True) -> dict[str, ExperimentResult]:
    """Run (or fetch from the result cache and the stored SST runs) every scored experiment as the scorecard
    reads it (its ``card_options``); ``seeds`` maps a name to its seeds (default: the experiment's own)."""
    seeds = seeds or {}
    return {name: EXPERIMENTS[name].run(seeds=seeds.get(name), quiet=quiet, **EXPERIMENTS[name].card_options)
            for name in scored()}


def run_scorecard(seeds: Mapping[str, Sequence[int]] | None = None, quiet: bool = True) -> Scorecard:
    """The scorecard of :func:`run_scored`'s results."""
    return assemble(run_scored(seeds, quiet))


def assemble(results: Mapping[str, ExperimentResult]) -> Scorecard:
    """The scorecard of the scored experiments among ``results`` (name -> result), with the provenance of
    the runs it reads (their config hashes, named ``experiment:run``, and all seeds)."""
    parts = {name: results[name].card() for name in scored() if name in results}
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
        out.append({"id": id_, "rows": len(g), "reproduced": int((g.verdict == "reproduced").sum()),
                    "gated": int((g.verdict != "reported").sum()), "verdict": combine_verdicts(g.verdict.tolist())})
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


# --------------------------------------------------------------------------- the stored scorecard

STORED_NAME = "scorecard.json"
"""The stored scorecard's file name, in the checkout's ``results/`` beside the stored SST and TREC runs."""
COMPARED = ("id", "claim", "paper", "ours", "criterion", "passed", "needed", "total", "note", "verdict")
"""The columns a stored scorecard must match a fresh one in, each exactly as text: everything a reader sees."""
STORE_COMMAND = "attnlib scorecard --store"
"""What rewrites the stored scorecard after a deliberate change of a result or a criterion."""


class StoredScorecardError(ValueError):
    """The stored scorecard is missing, unreadable, or no longer the one this code computes."""


def stored_path() -> Path:
    """``results/scorecard.json`` of the checkout this package is imported from (absent in a wheel)."""
    return checkout_store_dir().parent / STORED_NAME


def from_json(payload: Mapping) -> Scorecard:
    """The :class:`Scorecard` of a ``scorecard.json`` payload (:meth:`Scorecard.write`)."""
    rows = [{**{k: v for k, v in row.items() if k != "tolerance"}, "criterion": row["tolerance"]}
            for row in payload["rows"]]
    table = pd.DataFrame(rows, columns=list(COMPARED))
    return Scorecard(table, dict(payload.get("provenance", {})))


def load_stored(path: str | Path | None = None) -> Scorecard:
    """The stored scorecard (default :func:`stored_path`); :class:`StoredScorecardError`, in one line, if there is
    none or it cannot be read."""
    path = Path(path) if path is not None else stored_path()
    try:
        return from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise StoredScorecardError(f"no stored scorecard at {path}; write it with: {STORE_COMMAND}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StoredScorecardError(f"the stored scorecard {path} cannot be read ({error}); "
                                   f"rewrite it with: {STORE_COMMAND}") from None


def store(card: Scorecard, path: str | Path | None = None) -> Path:
    """Write ``card`` as the stored scorecard (atomically: the previous one or the new one, never a mix)."""
    path = Path(path) if path is not None else stored_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, card.json_text())
    return path


def differences(fresh: Scorecard, stored: Scorecard) -> list[str]:
    """How ``stored`` differs from ``fresh``, one short phrase each: a row's :data:`COMPARED` cells as text, the
    rows themselves, and the runs behind them (their config hashes and seeds). Empty when they agree."""
    def rows(card: Scorecard) -> list[tuple[str, ...]]:
        return [tuple(str(getattr(r, c)) for c in COMPARED) for r in card.table.itertuples()]

    out = []
    now, then = rows(fresh), rows(stored)
    if len(now) != len(then) or [r[0] for r in now] != [r[0] for r in then]:
        out.append(f"rows: stored {', '.join(r[0] for r in then)}; now {', '.join(r[0] for r in now)}")
    else:
        for a, b in zip(now, then):
            for column, x, y in zip(COMPARED, a, b):
                if x != y:
                    out.append(f"{a[0]} {column}: stored {y!r}, now {x!r}")
    for key in ("config_hashes", "seeds"):
        if fresh.provenance.get(key) != stored.provenance.get(key):
            out.append(f"the runs' {key.replace('_', ' ')} differ")
    return out


def require_stored_current(fresh: Scorecard, path: str | Path | None = None) -> Scorecard:
    """The stored scorecard if it is ``fresh`` in every cell a reader sees and in the runs behind it; else
    :class:`StoredScorecardError` naming the first differences and the command that rewrites it."""
    stored = load_stored(path)
    found = differences(fresh, stored)
    if found:
        shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
        raise StoredScorecardError(f"the stored scorecard {Path(path) if path else stored_path()} is not this "
                                   f"code's ({len(found)} difference{'s' if len(found) > 1 else ''}: {shown}); "
                                   f"after a deliberate change, rewrite it with: {STORE_COMMAND}")
    return stored

