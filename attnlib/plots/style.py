"""The one plotting style of attnlib: colours per model, labels as in the paper, seed bands, saving."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from attnlib.files import atomic_write, write_json

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


PROVENANCE_KEY = "attnlib-provenance"
"""PNG text chunk holding the provenance JSON (PDF: the ``Keywords`` entry; beside both: a sidecar)."""
SIDECAR_SUFFIX = ".provenance.json"


def provenance_json(provenance: dict) -> str:
    """The provenance as canonical JSON (sorted keys), so the same record always gives the same bytes."""
    return json.dumps(provenance, sort_keys=True, separators=(",", ":"), default=str)


def save_figure(fig: plt.Figure, path_stem: Path, provenance: dict | None = None) -> list[Path]:
    """Write PNG and PDF without timestamps, so the same figure gives the same bytes.

    With ``provenance`` (see :func:`attnlib.provenance.provenance`) its JSON goes into the PNG text
    chunk ``attnlib-provenance`` and the PDF ``Keywords``, and into the sidecar ``<stem>.provenance.json``.
    Every file is written atomically. Returns the paths written, figures first.
    """
    path_stem = Path(path_stem)
    png: dict[str, str | None] = {"Software": None}
    pdf: dict[str, str | None] = {"CreationDate": None, "Producer": None}
    if provenance is not None:
        text = provenance_json(provenance)
        png[PROVENANCE_KEY] = text
        pdf["Keywords"] = text
    paths = []
    for suffix, metadata in ((".png", png), (".pdf", pdf)):
        path = path_stem.with_suffix(suffix)
        atomic_write(path, lambda target, fmt=suffix[1:], meta=metadata:
                      fig.savefig(target, format=fmt, metadata=meta, bbox_inches="tight"))
        paths.append(path)
    if provenance is not None:
        sidecar = path_stem.with_suffix(SIDECAR_SUFFIX)
        write_json(sidecar, provenance, sort_keys=True, default=str)
        paths.append(sidecar)
    return paths
