"""The built book in a real browser, offline: pages load without console errors, every image has loaded
with a non-zero size, math is typeset by the MathJax copy served from the site, and nothing is fetched
from another host. Runs after `make book` (the `browser` marker); skipped with a reason when the book is
not built or Chromium and its driver are not installed (`make browser-deps` installs them)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
# Every page's screenshot, taken before its checks so that a failing page has one too (CI uploads them).
SCREENSHOTS = Path(os.environ.get("ATTNLIB_SCREENSHOT_DIR") or ROOT / "_build" / "screenshots")
PAGES = sorted(p.relative_to(HTML).as_posix() for p in (HTML / "book").glob("*.html")) if HTML.is_dir() else []

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
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
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
                 "--disable-quic", "--window-size=1280,2000"):
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


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str, server: str, browser) -> None:
    browser.get(f"{server}/{page}")
    assert _wait(browser, "return document.readyState === 'complete'")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{Path(page).stem}.png"))
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    has_math = browser.execute_script("return document.querySelectorAll('.math, .MathJax_Preview').length > 0")
    if has_math:
        assert _wait(browser, "return document.querySelectorAll('mjx-container').length > 0"), "math was not typeset"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"console errors on {page}: {errors}"
