"""Browser: a merchandiser audits a whole uploaded catalog from the Training page, follows it live,
reviews a flag on the Errors page (the decision is saved in the run) and exports the flags (issue 20,
item 4). Screenshots at 1440 px land in $TAXOLENS_SCREENSHOTS (audit-*.png)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, SAMPLE_PRODUCTS
from tests.test_browser import CHROMIUM, SERVER_RUNS, server  # noqa: F401 - the served app, a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium not installed (apt-get install chromium)")]


def test_audit_a_catalog_from_the_page_then_review_and_export_a_flag(server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from core.runs.store import RunStore
    from core.training.audit import load_decisions

    shots = Path(os.environ.get("TAXOLENS_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    catalog = tmp_path / "my catalog.csv"
    pd.read_csv(SAMPLE_PRODUCTS, dtype=str).head(800)[["id", "title", "category_path"]].to_csv(catalog, index=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        page.goto(f"{server}/training")
        page.get_by_text("Upload a product table").wait_for(timeout=240_000)
        page.get_by_text("Upload a product table").click()
        page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
        page.locator('input[type="file"]').set_input_files(str(catalog))
        folds = page.get_by_label("Folds K")
        folds.wait_for(timeout=60_000)
        folds.fill("2")
        folds.press("Tab")
        page.get_by_role("button", name="Audit the whole catalog").click()
        page.get_by_text("of every product started (2 folds)").wait_for(timeout=120_000)
        page.get_by_text("audit,").first.wait_for(timeout=60_000)  # the live bar of the audit run
        page.screenshot(path=str(shots / "audit-progress.png"), full_page=True)
        (run,) = [r for r in RunStore(SERVER_RUNS[server]).runs() if r.kind == "audit"]
        page.get_by_text("No run in progress.").wait_for(timeout=900_000)  # the fragment follows it to the end
        assert RunStore(SERVER_RUNS[server]).runs()[0].state == "done" or run.state == "done"
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Errors", exact=True).click()
        page.get_by_text("likely label errors among 800 products").wait_for(timeout=240_000)
        page.get_by_text("Every product of my catalog.csv (800): a 2-fold audit").first.wait_for(timeout=30_000)
        page.wait_for_timeout(2000)
        assert page.locator('[data-testid="stException"]').count() == 0
        review = page.get_by_text("Audit: ").first
        review.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "audit-review.png"), full_page=True)
        # relabel the first flag: the decision cell of the review table's first row
        grid = page.locator('[class*="st-key-audit_"] [data-testid="stDataFrame"]')  # the review table, by its key
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        page.mouse.dblclick(box["x"] + 130, box["y"] + 35 + 17)  # the decision column, right of the id
        page.wait_for_timeout(800)
        page.get_by_role("option", name="relabel").click() if page.get_by_role("option", name="relabel").count() \
            else page.keyboard.type("relabel\n")
        page.keyboard.press("Escape")
        page.get_by_text("Export 1 corrections (CSV)").wait_for(timeout=60_000)
        assert "relabel" in load_decisions(run.path).values()  # saved in the run: a reload keeps it
        with page.expect_download() as download:
            page.get_by_text("reviewed flags (CSV)").click()
        rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
        assert rows and {"id", "given label", "suggested", "decision"} <= set(rows[0]) and "relabel" in {r["decision"] for r in rows}
        page.reload()
        page.get_by_text("Export 1 corrections (CSV)").wait_for(timeout=120_000)
        page.screenshot(path=str(shots / "audit-reviewed.png"), full_page=True)
        browser.close()
