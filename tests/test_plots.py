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
