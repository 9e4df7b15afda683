"""The rendered book in headless Chromium (Debian's chromium + chromium-driver, installed here
when missing and we are root): every chapter page loads with no console errors, every figure is
present and decoded (naturalWidth > 0), every sidebar link resolves; screenshots of two chapters
are saved under _build/screenshots/. The book checked is the smoke one (what CI builds), or the
one named by ARREG_BROWSER_BOOK (e.g. cpu, after `make book`)."""
import functools
import http.server
import os
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from arreg_core.book import NOTEBOOKS, build_book, html_dir

ROOT = Path(__file__).resolve().parents[1]
PROFILE = os.environ.get("ARREG_BROWSER_BOOK", "smoke")
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = ("sec4_1", "secB5")


def ensure_chromium():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=600, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], env=env, timeout=900,
                       check=False, stdout=subprocess.DEVNULL)
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")


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
                 "--window-size=1280,1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
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
    # this machine is offline: a CDN script (MathJax) that cannot be fetched is not the book's error
    offline = ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_INTERNET_DISCONNECTED")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and not (e["message"].startswith("https://") and any(o in e["message"] for o in offline))]
    assert not errors, f"console errors on {chapter}: {errors}"
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
    if chapter in SCREENSHOTS:
        out = ROOT / "_build" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(out / f"{PROFILE}-{chapter}.png"))
