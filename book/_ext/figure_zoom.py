"""Sphinx extension: click a figure to open its image at full size; figures and tables stay legible.

Every ``<img>`` inside a ``<figure>`` of a page is wrapped in a link to the image file itself, so a click
opens the full-resolution PNG (the page shows it scaled to the text column). Images that already sit
inside a link are left alone.

A figure that attnlib glued (:func:`attnlib.plots.style.glue_figure`) records its smallest font size and
its dpi in the PNG. From them the extension gives the image a minimum displayed width, at which that
text renders at :data:`MIN_TEXT_PX` CSS px: on a wide screen the column is wider and nothing changes; on
a narrow one the image keeps that width and scrolls horizontally inside its own box (the link around
it) instead of shrinking to illegible text or widening the page.

The extension also serves ``book/_static/attnlib.css``: those scroll boxes, wide tables (pandas output
and Markdown tables alike) scrolling inside their own box, and a zoom-in cursor on a linked figure.
"""

from __future__ import annotations

import math
import posixpath
import re
import urllib.parse
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "_static"
CSS = "attnlib.css"
MIN_TEXT_PX = 9.0
"""Smallest legible text in CSS px: tick labels and legends below this are hard to read on a screen. The
browser test (tests/test_browser.py) checks every rendered figure against this value."""
_FIGURE = re.compile(r"<figure\b.*?</figure>", re.DOTALL)
_IMAGE = re.compile(r'(<a\b[^>]*>\s*)?(<img\b[^>]*\bsrc="([^"]+)"[^>]*>)')


def min_width(path: Path) -> int | None:
    """The narrowest displayed width (CSS px) at which the PNG at ``path`` shows its smallest text at
    :data:`MIN_TEXT_PX`: ``MIN_TEXT_PX * 72 / (points * dpi) * native width``. None when the file is not
    a PNG with the font size and dpi that attnlib writes (see :func:`attnlib.plots.style.figure_png`)."""
    from PIL import Image

    from attnlib.plots.style import DPI_KEY, FONT_KEY
    try:
        with Image.open(path) as image:
            text, width = dict(getattr(image, "text", {}) or {}), image.width
    except (OSError, ValueError):
        return None
    try:
        font, dpi = float(text[FONT_KEY]), float(text[DPI_KEY])
    except (KeyError, ValueError):
        return None
    if not (font > 0 and dpi > 0):  # also refuses nan: a figure without text
        return None
    return math.ceil(MIN_TEXT_PX * 72 / (font * dpi) * width)


def _with_min_width(img: str, width: int) -> str:
    """The ``<img>`` tag ``img`` with an inline ``min-width`` (added to its own style, if it has one)."""
    rule = f"min-width: {width}px;"
    if re.search(r'\bstyle="', img):
        return re.sub(r'\bstyle="', f'style="{rule} ', img, count=1)
    return re.sub(r"^<img\b", f'<img style="{rule}"', img)


def link_images(html: str, min_widths: dict[str, int] | None = None) -> str:
    """Wrap each image of each ``<figure>`` in ``html`` in a link to the image, unless it is linked already;
    an image whose ``src`` is in ``min_widths`` gets that minimum width (CSS px)."""
    min_widths = min_widths or {}

    def image(match: re.Match) -> str:
        img = match.group(2)
        if match.group(3) in min_widths:
            img = _with_min_width(img, min_widths[match.group(3)])
        if match.group(1):
            return match.group(1) + img
        return (f'<a class="reference internal image-reference attnlib-zoom" href="{match.group(3)}" '
                f'title="Open the figure at full size">{img}</a>')

    return _FIGURE.sub(lambda figure: _IMAGE.sub(image, figure.group(0)), html)


def _image_files(app) -> dict[str, Path]:
    """The ``src`` of each image the HTML builder has seen so far, relative to a page, and its file."""
    builder = app.builder
    images = getattr(builder, "images", {}) or {}
    imgpath = getattr(builder, "imgpath", "") or ""
    # the same ``src`` as Sphinx's HTML writer gives the image (sphinx.writers.html5 visit_image)
    return {posixpath.join(imgpath, urllib.parse.quote(name)): Path(app.srcdir) / source
            for source, name in images.items()}


def _page(app, pagename, templatename, context, doctree) -> None:
    if "body" not in context:
        return
    files = _image_files(app)
    widths = {}
    for src in set(re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', context["body"])):
        width = min_width(files[src]) if src in files else None
        if width:
            widths[src] = width
    context["body"] = link_images(context["body"], widths)


def _static_path(app) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _static_path)
    app.connect("html-page-context", _page)
    app.add_css_file(CSS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
