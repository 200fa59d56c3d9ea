"""Formatting of results for the book and the command line: mean, spread and range over seeds."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def mean_spread(values: Sequence[float] | np.ndarray | pd.Series, digits: int = 2, scale: float = 1.0) -> str:
    """``mean ± std (min–max)`` over seeds, e.g. ``3.45 ± 0.35 (2.92–3.91)``; a single value is shown alone."""
    v = np.asarray(values, dtype=float) * scale
    if np.isnan(v).any():
        return f"not reached in {int(np.isnan(v).sum())} of {len(v)} seeds"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f} ({v.min():.{digits}f}–{v.max():.{digits}f})"


def per_model_table(summary: pd.DataFrame, columns: dict[str, tuple[str, int, float]]) -> pd.DataFrame:
    """One row per model; ``columns`` maps a summary column to (heading, digits, scale)."""
    rows = {}
    for model, part in summary.groupby("model", sort=False):
        rows[model] = {heading: mean_spread(part[column], digits, scale)
                       for column, (heading, digits, scale) in columns.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy (a fraction in [0, 1]) measured on ``n`` independent test
    examples: the spread that the finite test set alone adds to the number (as a fraction)."""
    if n <= 0 or not 0.0 <= accuracy <= 1.0:
        raise ValueError("attnlib: the accuracy must be a fraction in [0, 1] on at least one example")
    return float(np.sqrt(accuracy * (1.0 - accuracy) / n))


def t1_paper_layout(table: pd.DataFrame, tolerance: float, variant: str = "default",
                    datasets: Sequence[str] = ("SST2", "SST5"),
                    models: Sequence[str] = ("Attn-FC", "Attn-TC")) -> pd.DataFrame:
    """The paper's T1 layout: one row per dataset, per model our mean ± std over seeds beside the paper's value.

    ``table`` is :meth:`attnlib.experiments.sst.SSTResult.table` (accuracies in %). Our cell also says how far
    the mean is from the paper's and whether that is within ``tolerance`` points; a cell with no run in
    ``table`` reads "not run". Columns: ``dataset``, then ``<model>: ours (%)`` and ``<model>: paper (%)``.
    """
    part = table[table.variant == variant].set_index(["dataset", "model"])
    rows = []
    for kind in datasets:
        row = {"dataset": kind}
        for model in models:
            if (kind, model) in part.index:
                r = part.loc[(kind, model)]
                verdict = "within" if abs(r["diff"]) <= tolerance else "outside"
                row[f"{model}: ours (%)"] = (f"{r.test_mean:.2f} ± {r.test_std:.2f} "
                                             f"({r['diff']:+.2f}, {verdict} ±{tolerance:g})")
                row[f"{model}: paper (%)"] = f"{r.paper:.2f}"
            else:
                row[f"{model}: ours (%)"] = "not run"
                row[f"{model}: paper (%)"] = ""
        rows.append(row)
    return pd.DataFrame(rows)
