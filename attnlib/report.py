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
