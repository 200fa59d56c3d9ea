"""The built book in a real browser, offline, at a 1400 px and a 400 px wide window.

Every page loads without console errors, every image loads, math is typeset by the MathJax copy served
from the site, and nothing is fetched from another host. What a reader sees is measured too:

* every figure's smallest text renders at >= 9 CSS px, at 1400 px and at 400 px. The size is computed
  from the figure's own numbers: the smallest font size (points) and the dpi that attnlib writes into
  each PNG (see :func:`attnlib.plots.style.figure_png`), and the width at which the page displays the
  image: ``points * dpi / 72 * displayed width / native width``;
* no figure is wider than 3:1;
* no table or figure is wider than the page, at 1400 px and at 400 px: one that is wider than the
  column scrolls sideways inside its own box (a scroll box, not one that cuts it off);
* at 400 px no figure and no table scrolls sideways at all: a figure of several panels shows its stacked
  layout (book/_ext/figure_zoom.py) at the column's width, and table cells wrap;
* each page shows exactly one search box at 1400 px and at 400 px, and it finds pages of the book;
* no raw ``$...$`` math or ``{glue...}`` role is left in the text;
* no page refers to a document outside the book (a specification, a numbered decision, a project target).

Full-page screenshots at both widths go to ``$ATTNLIB_SCREENSHOT_DIR`` (default ``_build/screenshots``),
with ``report.json``: the rendered text size of every figure at both widths and the height of every page.
Runs after `make book` (the ``browser`` marker); skipped with a reason when the book is not built or Chromium
and its driver are not installed (`make browser-deps` installs them).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from figure_zoom import MIN_TEXT_PX  # noqa: E402 - the book's own floor, which sizes figures on narrow screens

HTML = Path(os.environ.get("ATTNLIB_BOOK_HTML") or ROOT / "_build" / "html")
"""The built site (``ATTNLIB_BOOK_HTML`` points the test at a book built elsewhere)."""
SCREENSHOTS = Path(os.environ.get("ATTNLIB_SCREENSHOT_DIR") or ROOT / "_build" / "screenshots")
PAGES = sorted(p.relative_to(HTML).as_posix() for p in (HTML / "book").glob("*.html")) if HTML.is_dir() else []

WIDE, NARROW = 1400, 400
FIRST_SCREEN = 1000
"""The window's height (CSS px): what a reader sees before scrolling."""
INTRO = "book/intro.html"
MAX_ASPECT = 3.0
"""Widest figure (width : height): a wider one shrinks to a strip at the width of the text column."""
SCREENSHOT_MAX_HEIGHT = 16000
"""Chromium cannot capture much taller areas in one image; a taller page is cut there (its height is
still reported in full)."""

RAW_MATH = re.compile(r"\$[^$\n]*[\\^_{}][^$\n]*\$")
"""Dollar-delimited TeX (a backslash, ^, _ or braces inside) left untypeset in the text."""
RAW_GLUE = re.compile(r"\{glue(?::\w+)?\}")
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
"""A Markdown table's rule (``| --- |``) left in the text: a table glued inline rather than as a block."""
OUTSIDE_DOCUMENTS = re.compile(r"\bspec\s*\u00a7|\bthe\s+spec\b|\bspec\Ws\b|\bdecision\s+\d+|\bproject\s+target", re.IGNORECASE)
"""Phrases that point the reader at a document outside the book: every criterion is stated on the page."""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not PAGES, reason="the book is not built: run `make book` first"),
]


def test_no_external_scripts_or_styles() -> None:
    """Every script and stylesheet comes from the built site (MathJax included), so the book works offline."""
    for page in PAGES:
        html = (HTML / page).read_text(encoding="utf-8")
        external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', html)
        external = [url for url in external if not url.startswith(("https://github.com", "https://mybinder.org"))]
        assert not external, f"{page} loads {external}"
        if "\\(" in html or "\\[" in html or "math notranslate" in html:
            assert "_static/mathjax/tex-chtml.js" in html, f"{page} has math but not the local MathJax"


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no line per request in a failing test's output
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Chromium and chromedriver are not installed (`make browser-deps` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--hide-scrollbars", f"--window-size={WIDE},{FIRST_SCREEN}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(browser, script: str, seconds: float = 30.0) -> bool:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        WebDriverWait(browser, seconds, poll_frequency=0.2).until(lambda d: d.execute_script(script))
        return True
    except TimeoutException:
        return False


def _set_width(browser, width: int) -> None:
    """Make the page's layout viewport ``width`` CSS px wide (the window's frame is not counted)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": FIRST_SCREEN, "deviceScaleFactor": 1, "mobile": False})


def _png_font(src: str) -> tuple[float | None, float | None]:
    """The smallest font size (pt) and dpi that attnlib wrote into the PNG served at ``src``."""
    from PIL import Image

    from attnlib.plots.style import DPI_KEY, FONT_KEY
    path = HTML / unquote(urlparse(src).path).lstrip("/")
    if path.suffix.lower() != ".png" or not path.is_file():
        return None, None
    with Image.open(path) as image:
        text = getattr(image, "text", {}) or {}
    font, dpi = text.get(FONT_KEY), text.get(DPI_KEY)
    return (float(font) if font else None), (float(dpi) if dpi else None)


SEARCH_CONTROLS = ("input[type=search], input[name=q], .search-button__button, .search-button, "
                   ".search-button-field, form.bd-search")
"""Whatever the theme draws to search the book with: a field, or a button that opens the search dialog."""

MEASURE = """
const SEARCH_CONTROLS = arguments[0];
const article = document.querySelector('.bd-article') || document.body;
const viewport = document.documentElement.clientWidth;
function box(element) {
  // the box a reader sees: the element itself, or the nearest ancestor that scrolls or clips it
  for (let e = element.parentElement; e && e !== document.body; e = e.parentElement) {
    const overflow = getComputedStyle(e).overflowX;
    if (overflow === 'auto' || overflow === 'scroll' || overflow === 'hidden') return e;
  }
  return element;
}
function placed(element) {
  // where the element's box ends, and whether the element is cut off there instead of scrolling
  const outer = box(element), own = element.getBoundingClientRect(), seen = outer.getBoundingClientRect();
  const clipped = outer !== element && own.width > seen.width + 1 && getComputedStyle(outer).overflowX === 'hidden';
  return {right: seen.right, clipped: clipped};
}
function scrolls(element) {
  // the element is wider than the box it sits in, so a reader has to scroll that box sideways to see it
  const outer = box(element);
  return outer !== element && element.getBoundingClientRect().width > outer.clientWidth + 1;
}
const images = Array.from(article.querySelectorAll('img')).filter(i => i.src.includes('/_images/')).map(i => ({
  // currentSrc: the file the browser chose (a <picture> shows its stacked layout on a narrow screen)
  src: i.currentSrc || i.src, id: (i.closest('figure') || {}).id || '', natural_width: i.naturalWidth,
  natural_height: i.naturalHeight, shown_width: i.getBoundingClientRect().width, scrolls: scrolls(i),
  ...placed(i)}));
const tables = Array.from(article.querySelectorAll('table')).map((t, k) => ({
  index: k, width: t.getBoundingClientRect().width, scrolls: scrolls(t), ...placed(t),
  head: (t.innerText || '').slice(0, 60).replace(/\\s+/g, ' ')}));
function visible(element) {
  // drawn, and at least partly inside the window (an off-canvas sidebar is not)
  const style = getComputedStyle(element), rect = element.getBoundingClientRect();
  return rect.width > 0 && rect.height > 0 && style.visibility !== 'hidden' && parseFloat(style.opacity) > 0
    && rect.right > 0 && rect.left < viewport && rect.bottom > 0;
}
const shown = Array.from(document.querySelectorAll(SEARCH_CONTROLS)).filter(visible);
// a field inside a search form is one search box, not two
const searches = shown.filter(e => !shown.some(o => o !== e && o.contains(e))).map(e => ({
  html: e.outerHTML.slice(0, 160).replace(/\\s+/g, ' '), left: Math.round(e.getBoundingClientRect().left),
  top: Math.round(e.getBoundingClientRect().top)}));
const clean = article.cloneNode(true);
clean.querySelectorAll('script, style, mjx-container, .cell_input, pre, .MathJax_Preview').forEach(e => e.remove());
const all = article.cloneNode(true);
all.querySelectorAll('script, style, mjx-container').forEach(e => e.remove());
function span(selector) {
  // where the first element matching ``selector`` starts and ends on the page (null: there is none)
  const e = article.querySelector(selector);
  if (!e) return null;
  const r = e.getBoundingClientRect();
  return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY};
}
return {viewport: viewport, page_width: document.documentElement.scrollWidth,
        first_verdict: span('.attnlib-verdict'), first_table: span('table'),
        height: document.documentElement.scrollHeight, images: images, tables: tables, searches: searches,
        prose: clean.textContent, text: all.textContent};
"""


def _screenshot(browser, path: Path, width: int, height: int) -> None:
    """The whole page (up to :data:`SCREENSHOT_MAX_HEIGHT`): the viewport is made as tall as the page for
    the capture (capturing beyond the viewport instead lays the page out again at another width)."""
    import base64
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(height, SCREENSHOT_MAX_HEIGHT), "deviceScaleFactor": 1, "mobile": False})
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    path.write_bytes(base64.b64decode(shot["data"]))
    _set_width(browser, width)


@pytest.fixture(scope="module")
def pages(server: str, browser) -> dict[str, dict]:
    """Load every page at both widths once: what was measured, console errors, screenshots, report.json."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    measured: dict[str, dict] = {}
    for page in PAGES:
        record: dict = {}
        for width in (WIDE, NARROW):
            _set_width(browser, width)
            browser.get(f"{server}/{page}")
            loaded = _wait(browser, "return document.readyState === 'complete'")
            broken = browser.execute_script(
                "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            has_math = browser.execute_script("return document.querySelectorAll('.math, .MathJax_Preview').length > 0")
            typeset = not has_math or _wait(browser, "return document.querySelectorAll('mjx-container').length > 0")
            errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
            data = browser.execute_script(MEASURE, SEARCH_CONTROLS)
            data.update(loaded=loaded, broken=broken, typeset=typeset, errors=errors)
            _screenshot(browser, SCREENSHOTS / f"{Path(page).stem}-{width}.png", width, data["height"])
            record[width] = data
        for data in record.values():
            for image in data["images"]:
                image["font_pt"], image["dpi"] = _png_font(image["src"])
                if image["font_pt"] and image["dpi"] and image["natural_width"]:
                    image["text_px"] = (image["font_pt"] * image["dpi"] / 72
                                        * image["shown_width"] / image["natural_width"])
        measured[page] = record

    def rounded(value: float | None) -> float | None:
        return round(value, 1) if value else None

    report = {page: {"height_px_at_1400": r[WIDE]["height"], "height_px_at_400": r[NARROW]["height"],
                     "figures": [{"figure": wide["id"] or Path(urlparse(wide["src"]).path).name,
                                  "min_text_px": rounded(wide.get("text_px")),
                                  "min_text_px_at_400": rounded(narrow.get("text_px")),
                                  "font_pt": wide["font_pt"], "dpi": wide["dpi"],
                                  "native": f"{wide['natural_width']}x{wide['natural_height']}",
                                  "shown_width": round(wide["shown_width"]),
                                  "shown_width_at_400": round(narrow["shown_width"]),
                                  "image_at_400": Path(urlparse(narrow["src"]).path).name,
                                  "scrolls_at_400": narrow["scrolls"]}
                                 for wide, narrow in zip(r[WIDE]["images"], r[NARROW]["images"], strict=True)]}
              for page, r in measured.items()}
    (SCREENSHOTS / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return measured


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str, pages) -> None:
    for width, data in pages[page].items():
        assert data["loaded"], f"{page} at {width} px did not finish loading"
        assert not data["broken"], f"images that did not load on {page}: {data['broken']}"
        assert data["typeset"], f"math was not typeset on {page}"
        assert not data["errors"], f"console errors on {page}: {data['errors']}"


@pytest.mark.parametrize("page", PAGES)
def test_figures_are_legible(page: str, pages) -> None:
    """At 1400 px and at 400 px every figure's smallest text is >= 9 CSS px; no figure is wider than 3:1."""
    problems = []
    for width, data in pages[page].items():
        for image in data["images"]:
            name = image["id"] or image["src"]
            if image.get("text_px") is None:
                problems.append(f"{name}: no font size and dpi in the PNG (glue it with attnlib.plots.glue_figure)")
            elif image["text_px"] < MIN_TEXT_PX:
                problems.append(f"{name} at {width} px: smallest text {image['text_px']:.1f} px ({image['font_pt']:g} "
                                f"pt at {image['dpi']:g} dpi, {image['natural_width']} px shown at "
                                f"{image['shown_width']:.0f})")
    for image in pages[page][WIDE]["images"]:
        name = image["id"] or image["src"]
        if image["natural_height"] and image["natural_width"] / image["natural_height"] > MAX_ASPECT:
            problems.append(f"{name}: {image['natural_width']}x{image['natural_height']} px is wider than "
                            f"{MAX_ASPECT:g}:1")
    assert not problems, f"{page}: " + "; ".join(dict.fromkeys(problems))  # a PNG without its record: once


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("page", PAGES)
def test_nothing_wider_than_the_page(page: str, width: int, pages) -> None:
    """No table or figure runs past the window; a wide one scrolls inside its own box (its right edge is the
    box's), and none is cut off by a box that clips instead of scrolling."""
    data = pages[page][width]
    limit = data["viewport"] + 1
    wide = [f"figure {i['id'] or i['src']} (right edge {i['right']:.0f} px)" for i in data["images"]
            if i["right"] > limit]
    wide += [f"table {t['index']} '{t['head']}' (right edge {t['right']:.0f} px)" for t in data["tables"]
             if t["right"] > limit]
    wide += [f"figure {i['id'] or i['src']} is cut off by a box that does not scroll" for i in data["images"]
             if i["clipped"]]
    wide += [f"table {t['index']} '{t['head']}' is cut off by a box that does not scroll" for t in data["tables"]
             if t["clipped"]]
    assert not wide, f"{page} at {width} px, window {data['viewport']} px: " + "; ".join(wide)
    assert data["page_width"] <= limit, f"{page} at {width} px scrolls sideways ({data['page_width']} px wide)"


@pytest.mark.parametrize("page", PAGES)
def test_nothing_scrolls_sideways_on_a_phone(page: str, pages) -> None:
    """At 400 px a reader sees every figure whole (a figure of several panels in its stacked layout) and
    every table whole (its cells wrap): nothing has to be scrolled sideways inside its box."""
    data = pages[page][NARROW]
    sideways = [f"figure {i['id'] or i['src']} ({i['shown_width']:.0f} px shown)" for i in data["images"]
                if i["scrolls"]]
    sideways += [f"table {t['index']} '{t['head']}' ({t['width']:.0f} px)" for t in data["tables"] if t["scrolls"]]
    assert not sideways, f"{page} at {NARROW} px, window {data['viewport']} px, scroll sideways: " + "; ".join(sideways)


@pytest.mark.skipif(INTRO not in PAGES, reason="the book has no intro page")
def test_the_intro_tables_fit_the_column_on_a_wide_screen(pages) -> None:
    """At 1400 px every table of the intro (T1 beside the paper's values) is seen whole: none is wider than
    the box it sits in, so none has to be scrolled sideways to read its last column."""
    data = pages[INTRO][WIDE]
    sideways = [f"table {t['index']} '{t['head']}' ({t['width']:.0f} px)" for t in data["tables"] if t["scrolls"]]
    assert not sideways, f"{INTRO} at {WIDE} px, tables wider than their box: " + "; ".join(sideways)


@pytest.mark.skipif(INTRO not in PAGES, reason="the book has no intro page")
def test_the_first_screen_gives_the_answer(pages) -> None:
    """The intro's first screen at 1400 px holds the verdicts per claim and the paper's table T1 (the first
    table); at 400 px the verdicts come before any table."""
    for width, data in pages[INTRO].items():
        verdict, table = data["first_verdict"], data["first_table"]
        assert verdict is not None and table is not None, f"{INTRO} at {width} px has no verdicts or no table"
        assert verdict["top"] < table["top"], f"{INTRO} at {width} px: a table comes before the verdicts"
    wide = pages[INTRO][WIDE]["first_table"]
    assert wide["bottom"] <= FIRST_SCREEN, (f"{INTRO} at {WIDE} px: T1 ends at {wide['bottom']:.0f} px, below the "
                                            f"first screen ({FIRST_SCREEN} px)")


@pytest.mark.parametrize("page", PAGES)
def test_no_raw_markup(page: str, pages) -> None:
    """Math is typeset, glue is resolved and tables are tables: no ``$...$`` TeX, ``{glue...}`` role or
    Markdown table rule left in the text."""
    text = pages[page][WIDE]["prose"].replace("$PAD$", "PAD")  # the padding token's name is not math
    raw = RAW_MATH.findall(text) + RAW_GLUE.findall(text) + RAW_TABLE.findall(text)
    assert not raw, f"{page} shows raw markup: {raw[:5]}"


@pytest.mark.parametrize("page", PAGES)
def test_no_reference_to_documents_outside_the_book(page: str, pages) -> None:
    text = pages[page][WIDE]["text"]
    found = sorted({m.group(0) for m in OUTSIDE_DOCUMENTS.finditer(text)})
    assert not found, f"{page} refers to a document outside the book: {found}"


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("page", PAGES)
def test_one_search_box(page: str, width: int, pages) -> None:
    """A reader sees exactly one search box (a field, or the button that opens the search dialog)."""
    found = pages[page][width]["searches"]
    assert len(found) == 1, (f"{page} at {width} px shows {len(found)} search boxes, not one: "
                             + "; ".join(f"at ({s['left']}, {s['top']}) {s['html']}" for s in found))


SEARCH_WORD = "attention"
"""A word on many pages of the book: searching for it must list pages."""


VISIBLE = """
const viewport = document.documentElement.clientWidth;
return Array.from(document.querySelectorAll(arguments[0])).filter(e => {
  const r = e.getBoundingClientRect(), style = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && r.right > 0 && r.left < viewport;
});
"""
"""The elements matching a selector that are drawn inside the window."""


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_search_box_finds_pages(width: int, server: str, browser) -> None:
    """The visible search box works: a click opens a field, and a query there lists pages of the book."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    page = "book/intro.html" if "book/intro.html" in PAGES else PAGES[0]
    _set_width(browser, width)
    browser.get(f"{server}/{page}")
    assert _wait(browser, "return document.readyState === 'complete'"), f"{page} did not load"
    controls = browser.execute_script(VISIBLE, SEARCH_CONTROLS)
    assert controls, f"no visible search box on {page} at {width} px"
    controls[0].click()
    fields = WebDriverWait(browser, 10, poll_frequency=0.2).until(
        lambda d: d.execute_script(VISIBLE, "input[type=search], input[name=q]"),
        f"clicking the search box at {width} px shows no field to type in")
    fields[0].send_keys(SEARCH_WORD + Keys.ENTER)
    assert _wait(browser, "return location.pathname.endsWith('/search.html')", 10), (
        f"searching at {width} px did not open the search page ({browser.current_url})")
    assert _wait(browser, "return document.querySelectorAll('#search-results li a').length > 0"), (
        f"searching for {SEARCH_WORD!r} at {width} px found no page")
