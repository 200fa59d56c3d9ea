"""The one plotting style of attnlib: colours per model, labels as in the paper, seed bands, saving.

Every figure is drawn for the book's text column: at most :data:`FIG_WIDTH` inches wide, no text
smaller than :data:`MIN_FONT_PT`, no wider than :data:`MAX_ASPECT` : 1. The column of the book is
about 770 CSS px wide in a 1400 px window, so a 7.5-inch figure shown at column width renders one
point of text as 770 / (72 x 7.5) = 1.4 CSS px, and 8-point text as about 11 px (at least 9 px is
legible). The smallest font size and the dpi go into every PNG (text chunks :data:`FONT_KEY` and
:data:`DPI_KEY`), so a browser test can compute the size at which the text renders on the page.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.text
import pandas as pd
import seaborn as sns

from attnlib.files import atomic_write, write_json

MODEL_COLORS = {"Attn-FC": "#1f77b4", "Attn-TC": "#ff7f0e", "Attn-TL": "#2ca02c"}
"""Each model keeps its colour on every page; other contrasts use :data:`CONTRAST_COLORS` or line styles."""
CONTRAST_COLORS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
"""Colours for contrasts that are not models (cases, words, quantities): none of them is a model colour."""
THEORY_COLOR = "#222222"
FIG_WIDTH = 7.5
"""Inches: the width of a figure that fills the book's text column."""
PANEL_WIDTH = FIG_WIDTH / 2
MIN_FONT_PT = 8.0
MAX_ASPECT = 3.0
DPI = 150
NORM_LABEL = r"$\|q\|\,\|v_w\|$"
SCORE_LABEL = r"score $s_w$"


def use_style() -> None:
    """The one plotting style of attnlib: readable at the book's column width (see the module docstring)."""
    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": DPI, "axes.titleweight": "bold",
                         "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "xtick.labelsize": 8,
                         "ytick.labelsize": 8, "legend.fontsize": 8, "legend.title_fontsize": 8,
                         "figure.titlesize": 10, "figure.labelsize": 9,
                         "legend.frameon": False, "svg.hashsalt": "attnlib"})


def band(ax: plt.Axes, table: pd.DataFrame, x: str, y: str, color: str, label: str, lead_seed: int,
         **line) -> None:
    """Seed ``lead_seed`` as a line (``line``: extra styles such as ``ls``), the min-max over seeds as a band."""
    spread = table.groupby(x)[y].agg(["min", "max"])
    ax.fill_between(spread.index, spread["min"], spread["max"], color=color, alpha=0.25, linewidth=0)
    lead = table[table.seed == lead_seed]
    ax.plot(lead[x], lead[y], **{"color": color, "lw": 1.6, "label": label, **line})


FONT_KEY = "attnlib-min-font-pt"
"""PNG text chunk: the smallest font size (points) of any text drawn in the figure."""
DPI_KEY = "attnlib-dpi"
"""PNG text chunk: the dots per inch the PNG was rendered at (one point is ``dpi / 72`` pixels)."""


@contextlib.contextmanager
def _recording_text_sizes() -> Iterator[list[float]]:
    """Record the font size of every text matplotlib draws inside the block (hidden axes draw none)."""
    sizes: list[float] = []
    original = matplotlib.text.Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            sizes.append(float(self.get_fontsize()))
        return original(self, renderer)

    matplotlib.text.Text.draw = draw
    try:
        yield sizes
    finally:
        matplotlib.text.Text.draw = original


def min_font_pt(fig: plt.Figure) -> float:
    """The smallest font size (points) of the texts drawn in ``fig``: ticks, legends, labels, titles."""
    with _recording_text_sizes() as sizes:
        fig.canvas.draw()
    return min(sizes) if sizes else float("nan")


def figure_png(fig: plt.Figure, dpi: int = DPI, metadata: dict[str, str | None] | None = None) -> bytes:
    """``fig`` as PNG bytes without a timestamp, its smallest font size and dpi in the text chunks."""
    smallest = min_font_pt(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight",
                metadata={"Software": None, FONT_KEY: f"{smallest:g}", DPI_KEY: str(dpi), **(metadata or {})})
    return buffer.getvalue()


def glue_figure(name: str, fig: plt.Figure) -> None:
    """Glue ``fig`` (as :func:`figure_png`) for a ``{glue:figure}`` directive of the book, and close it.

    The book shows the PNG made here, not the notebook backend's, so its text chunks tell the browser
    test the figure's smallest font size and dpi."""
    from IPython.display import Image  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues figures
    from myst_nb import glue  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues figures

    glue(name, Image(data=figure_png(fig), format="png"), display=False)
    plt.close(fig)


def glue_md(name: str, text: str) -> None:
    """Glue Markdown ``text`` (a table, a list of names) for a ``{glue:md}`` directive of the book."""
    from IPython.display import Markdown  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues text
    from myst_nb import glue  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues text

    glue(name, Markdown(text), display=False)


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
    png: dict[str, str | None] = {"Software": None, FONT_KEY: f"{min_font_pt(fig):g}", DPI_KEY: str(DPI)}
    pdf: dict[str, str | None] = {"CreationDate": None, "Producer": None}
    if provenance is not None:
        text = provenance_json(provenance)
        png[PROVENANCE_KEY] = text
        pdf["Keywords"] = text
    paths = []
    for suffix, metadata in ((".png", png), (".pdf", pdf)):
        path = path_stem.with_suffix(suffix)
        atomic_write(path, lambda target, fmt=suffix[1:], meta=metadata:
                      fig.savefig(target, format=fmt, metadata=meta, dpi=DPI, bbox_inches="tight"))
        paths.append(path)
    if provenance is not None:
        sidecar = path_stem.with_suffix(SIDECAR_SUFFIX)
        write_json(sidecar, provenance, sort_keys=True, default=str)
        paths.append(sidecar)
    return paths
