"""The rendered book in headless Chromium at 1280 px (Debian's chromium + chromium-driver; the
tests are skipped, naming the install command, where they are missing: a test does not install
anything): every chapter page loads with no console errors, every figure is
present and decoded (naturalWidth > 0), every sidebar link resolves, no code input is visible
until its toggle is clicked (one click is checked to open it), the math is typeset by the book's
own MathJax with every request outside the book refused (no `\\(` or `$$` left in the visible
text), every chapter of Sections 4 and B shows at least two exercises, nothing in a page's text
column reaches past the viewport (the scorecard's verdict table included: its last column is
visible at 1280 px without scrolling); screenshots of the scorecard and two chapters at reading
width are saved under _build/screenshots/. The book checked is the smoke one (what CI builds), or the
one named by ARREG_BROWSER_BOOK (e.g. cpu, after `make book`)."""
import functools
import http.server
import os
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from arreg_core.book import NOTEBOOKS, build_book, html_dir

ROOT = Path(__file__).resolve().parents[1]
PROFILE = os.environ.get("ARREG_BROWSER_BOOK", "smoke")
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = ("sec4_1", "secB4", "scorecard")
WIDTH = 1280  # the reading width checked: a laptop's browser window
INSTALL = "apt-get install -y chromium chromium-driver"
EXERCISE_CHAPTERS = ("sec4_1", "sec4_2_1", "sec4_2_2", "secB3", "secB4", "secB5", "secB6")


def ensure_chromium():
    """Skip, naming the install command, where Chromium or its driver is missing: a test never
    changes the machine."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip(f"Debian's chromium and chromium-driver are not installed: {INSTALL}")


@pytest.fixture(scope="module")
def site():
    html = html_dir(PROFILE)
    if not (html / "index.html").exists():
        if PROFILE != "smoke":
            pytest.skip(f"no {PROFILE} book built: run `arreg book --profile {PROFILE}` first")
        build_book("smoke")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    ensure_chromium()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={WIDTH},1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    # the book must not need the network: every host but the local server resolves nowhere
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.book
@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_chapter_loads_with_figures_and_working_sidebar(site, browser, chapter):
    url = f"{site}/chapters/{chapter}.html"
    browser.get(url)
    browser.execute_script("return document.readyState")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors on {chapter}: {errors}"
    # math typeset offline by the book's own MathJax (Sphinx loads it on pages with math)
    has_math = browser.execute_script("return document.querySelector('main .math') !== null")
    typeset = not has_math or browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const wait = (n) => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        "  ? MathJax.startup.promise.then(() => done(true)) : (n > 0 ? setTimeout(() => wait(n - 1), 100) : done(false));"
        "wait(100);")
    assert typeset, f"{chapter}: MathJax did not load from the book"
    scripts = browser.execute_script("return Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax'))")
    assert all(s.startswith(site) for s in scripts) and (scripts or not has_math), f"MathJax not served by the book: {scripts}"
    text = browser.execute_script("return document.querySelector('main').innerText")
    assert "\\(" not in text and "$$" not in text, f"{chapter}: untypeset math in the visible text"
    # results first: every code input hidden until its toggle is clicked
    inputs = browser.execute_script(
        "return Array.from(document.querySelectorAll('div.cell div.cell_input')).map(e => e.checkVisibility()"
        "  && !(e.closest('details') && !e.closest('details').open))")
    assert inputs and not any(inputs), f"{chapter}: a code input is visible before its toggle is clicked"
    if chapter in EXERCISE_CHAPTERS:
        exercises = browser.execute_script("return document.querySelectorAll('div.exercise').length")
        assert exercises >= 2, f"{chapter}: {exercises} exercises"
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert all(complete and width > 0 for _, complete, width in images), f"undecoded figures: {images}"
    if chapter != "scorecard":
        assert images, f"{chapter} shows no figure"
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('.bd-sidebar-primary a')).map(a => a.href)")
    internal = {urllib.parse.urldefrag(h)[0] for h in links if h.startswith(site)}
    assert len(internal) >= len(NOTEBOOKS)
    broken = [h for h in sorted(internal) if status(h) != 200]
    assert not broken, f"sidebar links that do not resolve: {broken}"
    # nothing in the text column reaches past the viewport: no horizontal scrolling at 1280 px
    # (a table wider than its output box, scrolled or clipped there, counts too: its columns are out of sight)
    overflow = browser.execute_script(
        "const w = document.documentElement.clientWidth;"
        "const shown = e => e.checkVisibility() && !e.closest('details:not([open])') && !e.closest('.cell_input');"
        "const wide = Array.from(document.querySelectorAll('main table, main img'))"
        "  .filter(e => shown(e) && e.getBoundingClientRect().right > w + 1);"
        "const clipped = Array.from(document.querySelectorAll('main .cell_output .output'))"
        "  .filter(e => shown(e) && e.querySelector('table') && e.scrollWidth > e.clientWidth + 1);"
        "return wide.concat(clipped).map(e => e.tagName + ' ' + (e.className || '') + ' right='"
        "  + Math.round(e.getBoundingClientRect().right) + ' scrollWidth=' + e.scrollWidth);")
    assert not overflow, f"{chapter}: reaches past the {WIDTH}-px viewport: {overflow}"
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth"), \
        f"{chapter}: the page scrolls sideways at {WIDTH} px"
    if chapter in SCREENSHOTS:
        out = ROOT / "_build" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(out / f"{PROFILE}-{chapter}.png"))


@pytest.mark.book
def test_a_hidden_input_opens_when_its_toggle_is_clicked(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{site}/chapters/sec4_1.html")
    cell = browser.find_element(By.CSS_SELECTOR, "div.cell.tag_hide-input")
    code = cell.find_element(By.CSS_SELECTOR, "div.cell_input")
    shown = "return arguments[0].checkVisibility() && arguments[0].closest('details').open"
    assert not browser.execute_script(shown, code)
    button = cell.find_element(By.CSS_SELECTOR, "summary, button.toggle-button")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    assert browser.execute_script(shown, code)
    assert "profile = " in browser.execute_script("return arguments[0].textContent", code)


@pytest.mark.book
def test_the_scorecards_verdict_column_is_visible_at_reading_width(site, browser):
    """The scorecard's table at 1280 px: every column, the last (the regime) included, lies inside
    the viewport and inside the page's text column, and no row is taller than a few lines."""
    browser.get(f"{site}/chapters/scorecard.html")
    assert browser.execute_script("return window.innerWidth") == WIDTH
    box = browser.execute_script(
        "const t = document.querySelector('table.arreg-scorecard');"
        "if (!t) return null;"
        "const cells = Array.from(t.querySelectorAll('thead th'));"
        "const main = document.querySelector('main').getBoundingClientRect();"
        "const rows = Array.from(t.querySelectorAll('tbody tr')).map(r => r.getBoundingClientRect().height);"
        "const line = parseFloat(getComputedStyle(t).lineHeight) || 16;"
        "return {names: cells.map(c => c.innerText), right: cells[cells.length - 1].getBoundingClientRect().right,"
        "        main: main.right, viewport: document.documentElement.clientWidth, tallest: Math.max(...rows), line: line,"
        "        scrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth};")
    assert box is not None, "no scorecard table (table.arreg-scorecard) on the page"
    assert box["names"][-2:] == ["verdict", "regime (needs)"], box["names"]
    assert box["right"] <= box["viewport"] and box["right"] <= box["main"] + 1, box
    assert not box["scrolls"], box
    assert box["tallest"] <= 7 * box["line"], f"a row is {box['tallest']:.0f} px tall ({box['line']:.0f}-px lines)"
