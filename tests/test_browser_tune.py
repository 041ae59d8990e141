"""Issue 20 in a real browser, as the analyst does it: upload a product table, tune on it (a small sweep),
watch the live status at the top of the page until the sweep ends (no reload), adopt a trial's settings,
see them in the Training form, and keep them (and an uploaded taxonomy) through a browser refresh.
Screenshots at 1440 px in $TAXOLENS_SCREENSHOTS (default .pytest_cache/screenshots): tune-*.png."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from core.settings import TARGET_KINDS, TEMPLATES
from tests.conftest import ROOT, SAMPLE_PRODUCTS, shared_file
from tests.test_browser import CHROMIUM, server  # noqa: F401 - the served app, a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium not installed (apt-get install chromium)")]
VIEWPORT = {"width": 1440, "height": 1000}


def shots() -> Path:
    folder = Path(os.environ.get("TAXOLENS_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def settle(page, text, timeout=240_000) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout)
    page.wait_for_timeout(1500)  # let the plots paint
    assert page.locator('[data-testid="stException"]').count() == 0, f"{text!r}: the page shows an exception"


def uncut(texts) -> bool:
    """Every element shows its whole text and lies inside the page's width (no chip or option cut off)."""
    return all(texts.nth(i).evaluate("e => e.scrollWidth <= e.clientWidth && e.getBoundingClientRect().right <= innerWidth")
               for i in range(texts.count()))


def open_page(page, name: str, text) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
    settle(page, text)


def test_tune_an_uploaded_table_live_then_adopt_and_refresh(server, tmp_path):  # noqa: F811 - the fixture
    from playwright.sync_api import sync_playwright

    own = tmp_path / "my-shop.csv"  # the analyst's own table: fewer rows, other columns than the sample
    pd.read_csv(SAMPLE_PRODUCTS).sample(n=500, random_state=1)[["id", "title", "category_path"]].to_csv(own, index=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{server}/tune")
        settle(page, "No sweeps yet")
        page.get_by_text("Upload a product table").click()
        page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
        page.locator('input[type="file"]').set_input_files(str(own))
        settle(page, "Launch sweep")
        for label, value in (("Trials", "2"), ("Epochs", "2"), ("Seeds for the test report (0 = none)", "0")):
            box = page.get_by_label(label, exact=True)
            box.fill(value)
            box.press("Tab")
        kinds = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Target kinds")
        assert kinds.locator("[data-tag]").count() == 4 and uncut(kinds.locator("[data-tag] span[title]"))  # was: 2 of 4 shown
        page.screenshot(path=str(shots() / "tune-form-upload.png"), full_page=True)
        page.get_by_role("button", name="Launch sweep").click()

        bar = page.locator('[data-testid="stProgress"]').first
        bar.wait_for(timeout=60_000)
        assert "my-shop.csv" in bar.inner_text()
        box = bar.bounding_box()
        assert box is not None and box["y"] + box["height"] <= VIEWPORT["height"], box  # seen without scrolling
        assert page.get_by_text("No sweeps yet").count() == 0
        page.screenshot(path=str(shots() / "tune-started.png"))
        # the first trial seen finished (both may end between two redraws: the trials of a sweep run side by side)
        page.get_by_text(re.compile(r"trial [12] of 2 finished|2 trials done|done: 2 of 2 trials")).first.wait_for(timeout=600_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots() / "tune-live.png"), full_page=True)
        page.get_by_text(re.compile(r"done: 2 of 2 trials")).first.wait_for(timeout=600_000)  # no reload
        settle(page, "Use these settings")
        page.screenshot(path=str(shots() / "tune-done.png"), full_page=True)
        page.get_by_role("button", name="Use these settings").click()
        settle(page, "are now the Smoothing and Training pages' defaults")
        adopted = page.get_by_text("are now the Smoothing and Training pages' defaults").first.inner_text()
        template, kind = re.search(r"template (\w+)", adopted).group(1), re.search(r"targets (\w+)", adopted).group(1)

        open_page(page, "Training", "New training run")
        page.get_by_text("New training run").first.click()  # folded: the trials are runs
        settle(page, "Launch training run")
        remembered = page.get_by_text("Remembered from Tune or Smoothing").first.inner_text()
        assert uncut(page.locator('[data-testid="stSelectbox"] input[role="combobox"]'))  # was 'Semantic (similarity-weighted neighb'
        page.screenshot(path=str(shots() / "tune-training-adopted.png"), full_page=True)
        page.reload()  # a refresh: a new session, the adopted settings stay
        settle(page, "New training run")
        page.get_by_text("New training run").first.click()
        settle(page, "Launch training run")
        assert page.get_by_text("Remembered from Tune or Smoothing").first.inner_text() == remembered
        shown = page.locator('[data-testid="stSelectbox"]').filter(has_text="Prompt template").locator("input").input_value()
        assert shown == TEMPLATES[template], (template, shown)
        shown = page.locator('[data-testid="stSelectbox"]').filter(has_text="Targets").locator("input").input_value()
        assert shown == TARGET_KINDS[kind], (kind, shown)  # the box shows the kind the form uses (once showed One-hot)
        browser.close()


def test_google_taxonomy_survives_a_refresh_and_the_pages_read_it(server, tmp_path):  # noqa: F811 - the fixture
    """Issue 20, item 17 and the pages this work touches, with the Google taxonomy: Tune and Training offer
    to check an upload against it, and a refresh keeps it. Screenshots: tune-google.png, training-google.png."""
    from playwright.sync_api import sync_playwright

    google = shared_file("taxonomies/google-product-taxonomy-with-ids.en-US.txt")
    own = tmp_path / "my-shop.csv"
    pd.read_csv(SAMPLE_PRODUCTS, nrows=50)[["id", "title", "category_path"]].to_csv(own, index=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(server)
        settle(page, "Search a category")
        page.get_by_text("Upload a file").click()
        page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
        page.locator('input[type="file"]').set_input_files(str(google))
        settle(page, "google-product-taxonomy-with-ids")
        page.reload()
        settle(page, "google-product-taxonomy-with-ids")  # still the Google taxonomy after a refresh
        assert page.get_by_text("5,595").count() >= 1
        for name, last in (("Tune", "New sweep"), ("Training", "New training run")):
            open_page(page, name, last)
            if page.get_by_text("Upload a product table").count() == 0 or not page.get_by_text("Upload a product table").first.is_visible():
                page.get_by_text(last).first.click()  # a folded expander
            page.get_by_text("Upload a product table").first.click()
            page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
            page.locator('input[type="file"]').set_input_files(str(own))
            settle(page, "Check the labels against the taxonomy from the Taxonomy page (google-product-taxonomy")
            if name == "Training":  # the box shows the kind the form uses (it once showed One-hot beside semantic settings)
                shown = page.locator('[data-testid="stSelectbox"]').filter(has_text="Targets").locator("input").input_value()
                heading = page.locator("p").filter(has_text="Label representation").first.inner_text()
                assert shown in TARGET_KINDS.values() and f"({shown};" in heading, (shown, heading)
            page.screenshot(path=str(shots() / f"{name.lower()}-google.png"))
        browser.close()
