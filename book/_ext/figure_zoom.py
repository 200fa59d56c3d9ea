"""Sphinx extension: click a figure to open its image at full size; figures and tables stay legible.

Every ``<img>`` inside a ``<figure>`` of a page is wrapped in a link to the image file itself, so a click
opens the full-resolution PNG (the page shows it scaled to the text column). Images that already sit
inside a link are left alone.

A figure that attnlib glued (:func:`attnlib.plots.style.glue_figure`) records its smallest font size and
its dpi in the PNG. From them the extension gives the image a minimum displayed width, at which that
text renders at :data:`MIN_TEXT_PX` CSS px: on a wide screen the column is wider and nothing changes; on
a narrow one the image keeps that width and scrolls horizontally inside its own box (the link around
it) instead of shrinking to illegible text or widening the page.

A figure glued with a stacked layout for narrow screens (:func:`attnlib.plots.style.figure_png_with_narrow`
puts it inside the PNG) is written beside the image as ``<name>-narrow.png`` and offered to the browser in
a ``<picture>``: below :data:`NARROW_BELOW_PX` of window width the browser shows the stacked panels, each at
the width of the column, instead of the wide figure scrolling sideways one panel at a time.

The extension also serves ``book/_static/attnlib.css``: those scroll boxes, wide tables (pandas output
and Markdown tables alike) scrolling inside their own box, and a zoom-in cursor on a linked figure; and
``book/_static/attnlib-tables.js``, which on a narrow screen stacks the rows of a table of many columns.
"""

from __future__ import annotations

import base64
import io
import math
import posixpath
import re
import urllib.parse
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "_static"
CSS = "attnlib.css"
TABLES_JS = "attnlib-tables.js"
"""Stacks the rows of a table of many columns on a narrow screen (see the file)."""
MIN_TEXT_PX = 9.0
"""Smallest legible text in CSS px: tick labels and legends below this are hard to read on a screen. The
browser test (tests/test_browser.py) checks every rendered figure against this value."""
NARROW_BELOW_PX = 720
"""Window width (CSS px) below which a figure with a stacked layout shows it. Above it the book's column is
at least about 680 px wide, more than the 607 px at which a full-width figure (7.5 in, 8-point text at
150 dpi) keeps its smallest text at :data:`MIN_TEXT_PX`."""
_FIGURE = re.compile(r"<figure\b.*?</figure>", re.DOTALL)
_IMAGE = re.compile(r'(<a\b[^>]*>\s*)?(<img\b[^>]*\bsrc="([^"]+)"[^>]*>)')


def _png_text(source) -> tuple[dict[str, str], int] | None:
    """The text chunks and the width of the PNG at ``source`` (a path or a file object); None if unreadable."""
    from PIL import Image
    try:
        with Image.open(source) as image:
            return dict(getattr(image, "text", {}) or {}), image.width
    except (OSError, ValueError):
        return None


def min_width(path) -> int | None:
    """The narrowest displayed width (CSS px) at which the PNG at ``path`` (a path or a file object) shows
    its smallest text at :data:`MIN_TEXT_PX`: ``MIN_TEXT_PX * 72 / (points * dpi) * native width``. None
    when it is not a PNG with the font size and dpi that attnlib writes (see
    :func:`attnlib.plots.style.figure_png`)."""
    from attnlib.plots.style import DPI_KEY, FONT_KEY
    read = _png_text(path)
    if read is None:
        return None
    text, width = read
    try:
        font, dpi = float(text[FONT_KEY]), float(text[DPI_KEY])
    except (KeyError, ValueError):
        return None
    if not (font > 0 and dpi > 0):  # also refuses nan: a figure without text
        return None
    return math.ceil(MIN_TEXT_PX * 72 / (font * dpi) * width)


def _with_style(img: str, rule: str) -> str:
    """The ``<img>`` tag ``img`` with ``rule`` in its inline style (added to its own style, if it has one)."""
    if re.search(r'\bstyle="', img):
        return re.sub(r'\bstyle="', f'style="{rule} ', img, count=1)
    return re.sub(r"^<img\b", f'<img style="{rule}"', img)


def link_images(html: str, min_widths: dict[str, int] | None = None,
                narrow: dict[str, tuple[str, int | None]] | None = None) -> str:
    """Wrap each image of each ``<figure>`` in ``html`` in a link to the image, unless it is linked already.

    An image whose ``src`` is in ``min_widths`` gets that minimum width (CSS px, the custom property
    ``--attnlib-min-width`` that attnlib.css applies). One whose ``src`` is in ``narrow`` (the stacked
    layout's ``src`` and minimum width) becomes a ``<picture>`` that shows that layout below
    :data:`NARROW_BELOW_PX` (``--attnlib-min-width-narrow`` there)."""
    min_widths, narrow = min_widths or {}, narrow or {}

    def image(match: re.Match) -> str:
        img, src = match.group(2), match.group(3)
        rules = []
        if src in min_widths:
            rules.append(f"--attnlib-min-width: {min_widths[src]}px;")
        if src in narrow and narrow[src][1]:
            rules.append(f"--attnlib-min-width-narrow: {narrow[src][1]}px;")
        if rules:
            img = _with_style(img, " ".join(rules))
        if src in narrow:
            img = (f'<picture><source media="(max-width: {NARROW_BELOW_PX - 0.02}px)" srcset="{narrow[src][0]}">'
                   f"{img}</picture>")
        if match.group(1):
            return match.group(1) + img
        return (f'<a class="reference internal image-reference attnlib-zoom" href="{src}" '
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


def narrow_png(path: Path) -> bytes | None:
    """The stacked layout that attnlib put inside the PNG at ``path``
    (:func:`attnlib.plots.style.figure_png_with_narrow`), or None."""
    from attnlib.plots.style import NARROW_KEY
    read = _png_text(path)
    if read is None or NARROW_KEY not in read[0]:
        return None
    return base64.b64decode(read[0][NARROW_KEY])


def _narrow_name(src: str) -> str:
    return re.sub(r"(\.png)?$", "-narrow.png", src, count=1)


def _page(app, pagename, templatename, context, doctree) -> None:
    if "body" not in context:
        return
    files = _image_files(app)
    widths, narrow = {}, {}
    for src in set(re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', context["body"])):
        if src not in files:
            continue
        width = min_width(files[src])
        if width:
            widths[src] = width
        stacked = narrow_png(files[src])
        if stacked is not None:
            target = Path(app.outdir) / "_images" / _narrow_name(Path(urllib.parse.unquote(src)).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(stacked)
            narrow[src] = (_narrow_name(src), min_width(io.BytesIO(stacked)))
    context["body"] = link_images(context["body"], widths, narrow)


def _static_path(app) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _static_path)
    app.connect("html-page-context", _page)
    app.add_css_file(CSS)
    app.add_js_file(TABLES_JS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
