"""Real-browser smoke test: the app served by `streamlit run`, each page opened in headless Chromium.
Screenshots land in $TAXOLENS_SCREENSHOTS (default: a temporary folder); README's come from here."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_file

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# page url -> text that appears once the page has rendered to its end; Taxonomy, the default page, lives at
# the root (Streamlit answers /taxonomy with a "Page not found" dialog that makes the rest of the page inert)
PAGES = {"": "Search a category", "similarity": "Agreement with the tree", "smoothing": "Export these targets",
         "training": "All runs", "errors": re.compile("Start a demo run on the sample catalog|Where the errors are")}
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium not installed (apt-get install chromium)")]


SERVER_RUNS: dict[str, str] = {}  # server url -> the run store it serves


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(runs_dir: str):
    """The app served by `streamlit run` on a free port with `runs_dir` as its run store; yields its url."""
    port = free_port()
    env = os.environ | {"TAXOLENS_RUNS": runs_dir, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    SERVER_RUNS[url] = runs_dir
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # an existing run store (e.g. for README screenshots) may be given; by default the app starts empty
    with serve(os.environ.get("TAXOLENS_BROWSER_RUNS") or str(tmp_path_factory.mktemp("runs"))) as url:
        yield url


def test_every_page_renders_in_chromium(server):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("TAXOLENS_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        outside = []  # the app must work offline: no request may leave this machine (was: a favicon font)
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server, "data:", "blob:")) else None)
        # nothing else may fail either, except Streamlit's own probe of a deep link's folder: its frontend
        # tries /errors/_stcore/health (and host-config) before /_stcore/health, by design
        probe = re.compile(rf"^{re.escape(server)}/[a-z_]+/_stcore/(health|host-config)$")
        failing = []
        page.on("response", lambda r: failing.append(f"{r.status} {r.url}") if r.status >= 400 and not probe.match(r.url) else None)
        page.on("requestfailed", lambda r: failing.append(f"failed {r.url}"))
        for path, last_text in PAGES.items():
            page.goto(f"{server}/{path}")  # a deep link on a fresh server, as a bookmark would be
            page.get_by_text(last_text).first.wait_for(timeout=240_000)
            page.wait_for_timeout(2000)  # let the plots paint
            assert page.locator('[data-testid="stException"]').count() == 0, f"{path} shows an exception"
            dialogs = page.locator('[role="dialog"]')
            assert dialogs.count() == 0, f"/{path} opens a dialog: {dialogs.first.inner_text()!r}"
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Similarity" in nav and "shared" not in nav, f"{path}: app.py's navigation is missing: {nav!r}"
            shot = shots / f"{path or 'taxonomy'}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        browser.close()
    assert not outside, outside
    assert not failing, failing



def test_google_taxonomy_upload_then_similarity_and_smoothing(server):
    """The large-taxonomy path a new user takes: upload on the Taxonomy page, then the analysis pages,
    reached through the sidebar so the session keeps the upload. Screenshots: *-google.png."""
    from playwright.sync_api import sync_playwright

    google = shared_file("taxonomies/google-product-taxonomy-with-ids.en-US.txt")
    shots = Path(os.environ.get("TAXOLENS_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)

    def settle(page, text, timeout):
        page.get_by_text(text).first.wait_for(timeout=timeout)
        page.wait_for_timeout(2000)  # let the plots paint
        assert page.locator('[data-testid="stException"]').count() == 0, f"{text!r}: the page shows an exception"
        assert page.locator('[role="dialog"]').count() == 0, f"{text!r}: a dialog covers the page"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(server)  # the Taxonomy page
        settle(page, "Search a category", 240_000)
        page.get_by_text("Upload a file").click()
        page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
        page.locator('input[type="file"]').set_input_files(str(google))
        settle(page, "google-product-taxonomy-with-ids", 240_000)
        assert page.get_by_text("5,595").count() >= 1
        page.screenshot(path=str(shots / "taxonomy-google.png"), full_page=True)
        for name, last_text in (("Similarity", "Agreement with the tree"), ("Smoothing", "Export these targets")):
            page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
            settle(page, last_text, 480_000)  # first visit embeds the 4,719 leaf names
            page.screenshot(path=str(shots / f"{name.lower()}-google.png"), full_page=True)
        browser.close()


def test_runs_table_follows_a_run_without_a_reload(server):
    """A run that finishes while the Training page is open shows up in Compare by itself (issue 12, item 7)."""
    from playwright.sync_api import sync_playwright

    from core import files
    from core.runs import store as runs
    from core.runs.status import set_status

    run = runs.RunStore(SERVER_RUNS[server]).create({"targets": "semantic", "epochs": 2, "data": "products.csv"},
                                                     name="browser-follow")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                         "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{server}/training")
            page.get_by_text("All runs").first.wait_for(timeout=240_000)
            page.wait_for_timeout(3000)  # the live part has seen the queued run
            assert page.get_by_text("Compare runs").count() == 0
            files.write_json(run.path / "metrics.json", {"plain": {"top1": 0.9, "mistake_severity": 1.5}, "crm": {}})
            set_status(run.path, "done")
            page.get_by_text("Compare runs").first.wait_for(timeout=30_000)  # no reload: the live part noticed
            browser.close()
    finally:
        shutil.rmtree(run.path)
