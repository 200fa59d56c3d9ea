"""The one plotting style of attnlib: colours per model, labels as in the paper, seed bands, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

MODEL_COLORS = {"Attn-FC": "#1f77b4", "Attn-TC": "#ff7f0e", "Attn-TL": "#2ca02c"}
THEORY_COLOR = "#222222"
PANEL_WIDTH = 3.6
NORM_LABEL = r"$\|q\|\,\|v_w\|$"
SCORE_LABEL = r"score $s_w$"


def use_style() -> None:
    """The one plotting style of attnlib: readable at book width."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titleweight": "bold",
                         "legend.frameon": False, "svg.hashsalt": "attnlib"})


def band(ax: plt.Axes, table: pd.DataFrame, x: str, y: str, color: str, label: str, lead_seed: int) -> None:
    """Seed ``lead_seed`` as a line, the min-max over seeds as a band."""
    spread = table.groupby(x)[y].agg(["min", "max"])
    ax.fill_between(spread.index, spread["min"], spread["max"], color=color, alpha=0.25, linewidth=0)
    lead = table[table.seed == lead_seed]
    ax.plot(lead[x], lead[y], color=color, lw=1.6, label=label)


def save_figure(fig: plt.Figure, path_stem: Path) -> list[Path]:
    """Write PNG and PDF without timestamps, so the same figure gives the same bytes."""
    paths = []
    for suffix, metadata in ((".png", {"Software": None}), (".pdf", {"CreationDate": None, "Producer": None})):
        path = path_stem.with_suffix(suffix)
        fig.savefig(path, metadata=metadata, bbox_inches="tight")
        paths.append(path)
    return paths
