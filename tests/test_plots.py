"""The plotting style: the PNG records its smallest font size and dpi, and figures fit the book column."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from attnlib.plots import plot_identity_family  # noqa: E402
from attnlib.plots.style import (  # noqa: E402
    DPI,
    DPI_KEY,
    FIG_WIDTH,
    FONT_KEY,
    MAX_ASPECT,
    MIN_FONT_PT,
    figure_png,
    glue_values,
    min_font_pt,
    save_figure,
    use_style,
)


def test_min_font_counts_drawn_text_only() -> None:
    use_style()
    fig, (shown, hidden) = plt.subplots(1, 2)
    shown.set_title("title", fontsize=12)
    shown.tick_params(labelsize=9)
    hidden.tick_params(labelsize=5)
    hidden.axis("off")  # its 5-pt tick labels are never drawn
    assert min_font_pt(fig) == 9
    hidden.axis("on")
    assert min_font_pt(fig) == 5
    plt.close(fig)


def test_png_records_font_and_dpi(tmp_path) -> None:
    use_style()
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([0, 1])
    ax.set_xlabel("x")
    image = Image.open(io.BytesIO(figure_png(fig)))
    assert image.text[DPI_KEY] == str(DPI)
    assert float(image.text[FONT_KEY]) == min_font_pt(fig) == 8  # the style's tick labels
    saved = save_figure(fig, tmp_path / "fig")
    assert Image.open(saved[0]).text[FONT_KEY] == "8"
    assert figure_png(fig) == figure_png(fig)  # no timestamp: same figure, same bytes
    plt.close(fig)


def test_a_book_figure_fits_the_column() -> None:
    fig = plot_identity_family()
    width, height = fig.get_size_inches()
    assert width <= FIG_WIDTH and width / height <= MAX_ASPECT
    assert min_font_pt(fig) >= MIN_FONT_PT
    plt.close(fig)


def test_a_figure_of_several_columns_carries_a_stacked_layout() -> None:
    import base64

    from attnlib.plots.style import NARROW_KEY, NARROW_WIDTH, figure_png_with_narrow, stack_panels
    use_style()
    fig, axes = plt.subplots(2, 3, figsize=(FIG_WIDTH, 4), sharey=True)
    for ax in axes.ravel():
        ax.plot([0, 1], [0, 1])
    axes[0, 1].twinx().plot([0, 1], [1, 0])  # a twin moves with its panel
    fig.tight_layout()
    image = Image.open(io.BytesIO(figure_png_with_narrow(fig)))
    narrow = Image.open(io.BytesIO(base64.b64decode(image.text[NARROW_KEY])))
    assert narrow.height > narrow.width and narrow.width < image.width
    assert float(narrow.text[FONT_KEY]) >= MIN_FONT_PT  # the stacked layout keeps the text size
    assert fig.get_size_inches()[0] == NARROW_WIDTH
    cells = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes}
    assert cells == {(row, 0) for row in range(6)}  # six panels, one per row; the twin shares its panel's row
    assert all(ax.yaxis.get_tick_params()["labelleft"] for ax in axes.ravel())  # shared y: labels on every panel
    plt.close(fig)
    single, _ = plt.subplots(2, 1)
    assert not stack_panels(single)  # one column: nothing to stack
    assert NARROW_KEY not in Image.open(io.BytesIO(figure_png_with_narrow(single))).text
    plt.close(single)


def test_a_stacked_panel_keeps_the_heading_and_y_label_it_shared() -> None:
    from attnlib.plots.style import stack_panels
    use_style()
    fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH, 4))
    for col, model in enumerate(("Attn-FC", "Attn-TC")):  # the models head the columns, as in F1
        axes[0, col].set(title=model, ylabel="norm" if col == 0 else "")
        axes[1, col].set(ylabel="residual" if col == 0 else "")
    axes[1, 1].set_title("own title")  # a panel's own title is kept
    assert stack_panels(fig)
    assert [ax.get_title() for ax in axes.ravel()] == ["Attn-FC", "Attn-TC", "Attn-FC", "own title"]
    assert [ax.get_ylabel() for ax in axes.ravel()] == ["norm", "norm", "residual", "residual"]
    plt.close(fig)


def test_the_book_offers_the_stacked_layout_to_narrow_screens(tmp_path) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
    from figure_zoom import NARROW_BELOW_PX, link_images, min_width, narrow_png

    from attnlib.plots.style import figure_png_with_narrow
    use_style()
    fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3))
    for ax in axes:
        ax.plot([0, 1], [0, 1])
    path = tmp_path / "f.png"
    path.write_bytes(figure_png_with_narrow(fig))
    plt.close(fig)
    stacked = narrow_png(path)
    assert stacked is not None and min_width(io.BytesIO(stacked)) < min_width(path)
    html = link_images('<figure><img alt="" src="_images/f.png" /></figure>', {"_images/f.png": 600},
                       {"_images/f.png": ("_images/f-narrow.png", 300)})
    assert f'<source media="(max-width: {NARROW_BELOW_PX - 0.02}px)" srcset="_images/f-narrow.png">' in html
    assert "--attnlib-min-width: 600px;" in html and "--attnlib-min-width-narrow: 300px;" in html
    assert html.index("<picture>") < html.index("<img") < html.index("</picture>") < html.index("</a>")


def test_glue_values_glues_text_as_markdown_and_numbers_as_python_numbers(monkeypatch) -> None:
    import myst_nb
    import numpy as np
    import pytest
    from IPython.display import Markdown

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    glue_values({"cells": "| a |", "n": 3, "share": np.float64(0.25), "count": np.int64(7), "gap": 1.5})
    assert isinstance(glued["cells"][0], Markdown) and glued["cells"][0].data == "| a |"
    assert glued["n"] == (3, False) and glued["gap"] == (1.5, False)
    for name, value in (("share", 0.25), ("count", 7)):  # recorded as 0.25, not np.float64(0.25)
        assert type(glued[name][0]) is type(value) and repr(glued[name][0]) == repr(value)
    assert all(display is False for _, display in glued.values())
    for wrong in (True, [1, 2], None):
        with pytest.raises(TypeError, match="neither text nor a number"):
            glue_values({"wrong": wrong})


def test_an_unavailable_figure_says_so_in_legible_text() -> None:
    from attnlib.plots.sst import unavailable_figure

    fig = unavailable_figure("SST2 Attn-TC unmasked: run not available in this build")
    assert [t.get_text() for t in fig.axes[0].texts] == ["SST2 Attn-TC unmasked: run not available in this build"]
    assert not fig.axes[0].axison
    width, height = fig.get_size_inches()
    assert width <= FIG_WIDTH and width / height <= MAX_ASPECT
    assert min_font_pt(fig) >= MIN_FONT_PT
    plt.close(fig)
