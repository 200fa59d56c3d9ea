"""The one plotting style of attnlib: colours per model, labels as in the paper, seed bands, saving.

Every figure is drawn for the book's text column: at most :data:`FIG_WIDTH` inches wide, no text
smaller than :data:`MIN_FONT_PT`, no wider than :data:`MAX_ASPECT` : 1. The column of the book is
about 770 CSS px wide in a 1400 px window, so a 7.5-inch figure shown at column width renders one
point of text as 770 / (72 x 7.5) = 1.4 CSS px, and 8-point text as about 11 px (at least 9 px is
legible). The smallest font size and the dpi go into every PNG (text chunks :data:`FONT_KEY` and
:data:`DPI_KEY`), so a browser test can compute the size at which the text renders on the page.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import struct
import textwrap
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.layout_engine import ConstrainedLayoutEngine

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
    """Seed ``lead_seed`` as a line (``line``: extra styles such as ``ls``), the min-max over seeds as a band
    with thin edges (seed ``lead_seed`` is one of the seeds, so its line never leaves the band)."""
    spread = table.groupby(x)[y].agg(["min", "max"])
    ax.fill_between(spread.index, spread["min"], spread["max"], color=color, alpha=0.25, linewidth=0)
    for edge in ("min", "max"):  # the band's edges drawn, so a seed on an edge is seen to be on it
        ax.plot(spread.index, spread[edge], color=color, lw=0.6, alpha=0.7)
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


NARROW_KEY = "attnlib-narrow-png"
"""PNG text chunk: the same figure with its panels stacked in one column (base64 PNG), for a phone."""
NARROW_WIDTH = 3.8
"""Inches: the width of the stacked (narrow) layout, and of a one-panel figure that should fit a phone.
At 8-point text and :data:`DPI` it keeps its smallest text at 9 CSS px down to 3.8 x 81 = 308 CSS px: the
text column of a 400 px wide window is about 350 px, a dropdown inside it about 315 px."""
NARROW_LEGEND_CHARS = 24
"""A stacked figure's legend goes in one column when a label is longer than this (two would not fit)."""
NARROW_PANEL_MAX_HEIGHT = 3.0
"""Inches: a stacked panel is at most this tall (a tall panel of the wide layout becomes a wide one)."""


def _panels(fig: plt.Figure) -> list[list[plt.Axes]] | None:
    """The visible axes of ``fig`` grouped by grid cell (an axes and its twins share one), in reading
    order; None when the figure has no grid of several columns to stack (one column, free axes,
    several grids)."""
    cells: dict[tuple[int, int], list[plt.Axes]] = {}
    grids = set()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        if not ax.axison and not (ax.lines or ax.collections or ax.patches or ax.images or ax.texts):
            ax.set_visible(False)  # an empty cell that fills out the wide grid: no row of its own
            continue
        spec = ax.get_subplotspec()
        if spec is None:
            return None
        grids.add(id(spec.get_gridspec()))
        cells.setdefault((spec.rowspan.start, spec.colspan.start), []).append(ax)
    if len(grids) != 1 or len({col for _, col in cells}) < 2:
        return None
    return [cells[key] for key in sorted(cells)]


def _carry_shared_labels(axes: list[plt.Axes]) -> None:
    """Give each panel of a wide grid the labels it shared with its neighbours, before the panels are stacked:
    an untitled panel the title of the topmost titled panel of its column (a column heading such as the
    model), a panel without a y label that of the leftmost labelled panel of its row. Stacked, a panel has
    neither the heading above it nor the neighbour beside it to name it."""
    def cell(ax: plt.Axes) -> tuple[int, int]:
        spec = ax.get_subplotspec()
        return spec.rowspan.start, spec.colspan.start

    by_cell = {cell(ax): ax for ax in axes}
    for (row, col), ax in sorted(by_cell.items()):
        if not ax.get_title():
            above = [by_cell[(r, c)] for r, c in sorted(by_cell) if c == col and r < row
                     and by_cell[(r, c)].get_title()]
            if above:
                ax.set_title(above[0].get_title())
        if ax.axison and ax.yaxis.get_visible() and not ax.get_ylabel():
            left = [by_cell[(r, c)] for r, c in sorted(by_cell, key=lambda rc: rc[1]) if r == row and c < col
                    and by_cell[(r, c)].get_ylabel()]
            if left:
                ax.set_ylabel(left[0].get_ylabel())


def stack_panels(fig: plt.Figure) -> bool:
    """Lay the panels of ``fig`` out again one above the other, :data:`NARROW_WIDTH` inches wide, for a
    narrow screen; False (and ``fig`` unchanged) when it has a single column of panels.

    Each panel keeps the height of its row in the wide layout (its share of the figure's height); tick
    labels that the wide layout left to the outer panels are shown on every panel, and empty cells that
    only filled out the wide grid are dropped."""
    panels = _panels(fig)
    if panels is None:
        return False
    _carry_shared_labels([group[0] for group in panels])
    old = panels[0][0].get_subplotspec().get_gridspec()
    ratios = old.get_height_ratios() or [1] * old.nrows
    row_height = fig.get_size_inches()[1] / sum(ratios)
    heights = [min(ratios[group[0].get_subplotspec().rowspan.start] * row_height, NARROW_PANEL_MAX_HEIGHT)
               for group in panels]
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    for i, group in enumerate(panels):
        for ax in group:
            ax.set_subplotspec(grid[i, 0])
            if ax.xaxis.get_visible():
                ax.xaxis.set_tick_params(which="both", labelbottom=True)
            if ax.axison and ax.yaxis.get_visible():  # no neighbour to read the values from any more
                side = ax.yaxis.get_label_position()
                ax.yaxis.set_tick_params(which="major", **{side: True, f"label{side}": True})
    for legend in list(fig.legends):  # a figure legend above the panels, again in at most two columns
        handles = getattr(legend, "legend_handles", None) or legend.legendHandles
        labels = [text.get_text() for text in legend.get_texts()]
        title = legend.get_title().get_text() or None
        columns = 1 if max(map(len, labels), default=0) > NARROW_LEGEND_CHARS else min(2, legend._ncols)
        if title:
            title = textwrap.fill(title, 2 * NARROW_LEGEND_CHARS)
        legend.remove()
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=columns, title=title)
    fig.set_size_inches(NARROW_WIDTH, sum(heights) * 1.1)
    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        fig.tight_layout()
    return True


def _with_text_chunk(png: bytes, key: str, value: str) -> bytes:
    """``png`` with a tEXt chunk ``key``: ``value`` added before its end chunk (IEND)."""
    data = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    end = png.rindex(b"IEND") - 4
    return png[:end] + chunk + png[end:]


def figure_png_with_narrow(fig: plt.Figure) -> bytes:
    """:func:`figure_png`, and where ``fig`` has several columns of panels, its stacked layout
    (:func:`stack_panels`, which changes ``fig``) as a second PNG inside it (text chunk :data:`NARROW_KEY`),
    for the book to serve to narrow screens."""
    wide = figure_png(fig)
    if not stack_panels(fig):
        return wide
    return _with_text_chunk(wide, NARROW_KEY, base64.b64encode(figure_png(fig)).decode("ascii"))


def glue_figure(name: str, fig: plt.Figure) -> None:
    """Glue ``fig`` (as :func:`figure_png_with_narrow`) for a ``{glue:figure}`` directive of the book, and
    close it.

    The book shows the PNG made here, not the notebook backend's, so its text chunks tell the browser
    test the figure's smallest font size and dpi, and give a phone the stacked layout."""
    from IPython.display import Image  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues figures
    from myst_nb import glue  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues figures

    glue(name, Image(data=figure_png_with_narrow(fig), format="png"), display=False)
    plt.close(fig)


def glue_md(name: str, text: str) -> None:
    """Glue Markdown ``text`` (a table, a list of names) for a ``{glue:md}`` directive of the book."""
    from IPython.display import Markdown  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues text
    from myst_nb import glue  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues text

    glue(name, Markdown(text), display=False)


def glue_values(values: Mapping[str, str | int | float]) -> None:
    """Glue every entry of ``values`` under its name: text as Markdown (:func:`glue_md`, for ``{glue:md}``),
    a number as itself (for ``{glue:text}``, which can format it). A numpy scalar
    is glued as the Python number it holds, so the notebook records ``0.25`` and not ``np.float64(0.25)``;
    anything else (a table, a figure) is refused: glue those with :func:`glue_md` or :func:`glue_figure`."""
    from myst_nb import glue  # noqa: PLC0415 - the book's extra dependencies: only a chapter glues values

    for name, value in values.items():
        if isinstance(value, str):
            glue_md(name, value)
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
            glue(name, value.item() if isinstance(value, np.generic) else value, display=False)
        else:
            raise TypeError(f"glue_values: {name!r} is a {type(value).__name__}, neither text nor a number")


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
