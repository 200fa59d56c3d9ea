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


VERDICT_WORDS = ("yes", "no")
"""How a True/False column reads in a book table unless ``verdicts`` names other words."""


def _number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; tiny non-zero values in scientific notation (not as 0.000)."""
    if value != 0 and abs(value) < 0.5 * 10.0 ** -digits:
        return f"{value:.1e}"
    return f"{value:,.{digits}f}"


def _cell(value, digits: int, words: tuple[str, str]) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return words[0] if value else words[1]
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return _number(float(value), digits)
    return str(value)


def book_table(table: pd.DataFrame, columns: dict[str, str] | None = None, digits: int | dict[str, int] = 3,
               verdicts: dict[str, tuple[str, str]] | None = None):
    """``table`` as the book shows it: a pandas Styler without the index column.

    ``columns`` maps column names to the headings shown (and picks and orders the columns; default: all,
    underscores as spaces); ``digits`` is the number of decimals, for all columns or per column (by the
    original name); True/False read as ``verdicts[column]`` (default "yes"/"no"); a missing value as "–";
    integers get thousands separators. The values are formatted as text, so nothing is truncated.
    """
    columns = dict(columns) if columns is not None else {c: str(c).replace("_", " ") for c in table.columns}
    verdicts = verdicts or {}
    shown = pd.DataFrame({
        heading: [_cell(v, digits.get(column, 3) if isinstance(digits, dict) else digits,
                        verdicts.get(column, VERDICT_WORDS)) for v in table[column].tolist()]
        for column, heading in columns.items()})
    return shown.style.hide(axis="index")
