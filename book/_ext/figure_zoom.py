"""Sphinx extension: click a figure to open its image at full size; tables scroll inside their own box.

Every ``<img>`` inside a ``<figure>`` of a page is wrapped in a link to the image file itself, so a click
opens the full-resolution PNG (the page shows it scaled to the text column). Images that already sit
inside a link are left alone. The extension also serves ``book/_static/attnlib.css``: wide tables
(pandas output and Markdown tables alike) scroll horizontally inside their own box instead of widening
the page on narrow screens, and a linked figure shows a zoom-in cursor.
"""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "_static"
CSS = "attnlib.css"
_FIGURE = re.compile(r"<figure\b.*?</figure>", re.DOTALL)
_IMAGE = re.compile(r'(<a\b[^>]*>\s*)?(<img\b[^>]*\bsrc="([^"]+)"[^>]*>)')


def link_images(html: str) -> str:
    """Wrap each image of each ``<figure>`` in ``html`` in a link to the image, unless it is linked already."""
    def image(match: re.Match) -> str:
        if match.group(1):
            return match.group(0)
        return (f'<a class="reference internal image-reference attnlib-zoom" href="{match.group(3)}" '
                f'title="Open the figure at full size">{match.group(2)}</a>')

    return _FIGURE.sub(lambda figure: _IMAGE.sub(image, figure.group(0)), html)


def _page(app, pagename, templatename, context, doctree) -> None:
    if "body" in context:
        context["body"] = link_images(context["body"])


def _static_path(app) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _static_path)
    app.connect("html-page-context", _page)
    app.add_css_file(CSS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
