"""The Errors and Similarity pages in headless Chromium at 1440 px (issue 20, items 12, 15 and 17): the key
columns of every table on screen, heatmap rows labelled, an address that restores a run's filters.
Screenshots land in $TAXOLENS_SCREENSHOTS (default .pytest_cache/screenshots), to be looked at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.taxonomy.tree import PATH_SEP
from tests.conftest import ROOT, shared_file
from tests.test_browser import CHROMIUM, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium not installed (apt-get install chromium)")]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(os.environ.get("TAXOLENS_SCREENSHOTS", ROOT / ".pytest_cache" / "screenshots"))
GOOGLE = "taxonomies/google-product-taxonomy-with-ids.en-US.txt"


def google_predictions(taxonomy: Path, out: Path, n: int = 1500, seed: int = 0) -> Path:
    """Another model's answers on the Google taxonomy's long paths, made up but shaped like real ones:
    mostly right, else a sibling, a cousin or another department, with a score per answer."""
    from core.taxonomy.formats import load_taxonomy

    tax = load_taxonomy(taxonomy)
    leaves = [tax.path_str(i) for i in tax.leaves]
    rng = np.random.default_rng(seed)
    true = rng.choice(leaves, n)
    by_parent: dict[str, list[str]] = {}
    for leaf in leaves:
        by_parent.setdefault(leaf.rpartition(PATH_SEP)[0], []).append(leaf)
    pred = []
    for t in true:
        roll = rng.random()
        siblings = by_parent[t.rpartition(PATH_SEP)[0]]
        pred.append(t if roll < 0.6 else rng.choice(siblings) if roll < 0.85 else rng.choice(leaves))
    frame = pd.DataFrame({"sku": [f"g{i}" for i in range(n)], "title": [f"item {i}: {t.rpartition(PATH_SEP)[2]}" for i, t in enumerate(true)],
                          "category": true, "predicted": pred, "score": np.round(rng.uniform(0.2, 1.0, n), 4)})
    frame.to_csv(out, index=False)
    return out


def import_run(store: Path, predictions: Path, taxonomy: Path, name: str) -> None:
    subprocess.run([sys.executable, "-m", "core", "evaluate", "--predictions", str(predictions), "--true-column", "category",
                    "--pred-columns", "predicted", "--score-columns", "score", "--id-column", "sku", "--text-column", "title",
                    "--taxonomy", str(taxonomy), "--encoder", "minilm", "--name", name, "--out", str(store), "--quiet"],
                   cwd=ROOT, check=True, capture_output=True)


# the tables whose verdict columns must be on screen, by the subheader above them (issue 20, item 12)
TABLES = {"mistakes of": "mistakes", "likely label errors": "label errors", "Which branches suffer": "branches",
          "Agreement with the tree": "suspicious pairs"}
OVERFLOW = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(d => {
    const heads = [...document.querySelectorAll('h2, h3')].filter(h => h.compareDocumentPosition(d) & Node.DOCUMENT_POSITION_FOLLOWING);
    const sc = d.querySelector('.dvn-scroller');
    return {heading: heads.length ? heads[heads.length - 1].textContent : '', visible: d.getBoundingClientRect().width > 0,
            overflow: sc ? sc.scrollWidth - sc.clientWidth : 0};
})"""


def hidden_columns(page, expected: set[str] = frozenset()) -> dict[str, int]:
    """Pixels of columns scrolled out of sight in each checked table (0: every column on screen), once the
    `expected` tables have been drawn (a grid paints a moment after its page)."""
    found: dict[str, int] = {}
    for _ in range(30):
        found = {}
        for table in page.evaluate(OVERFLOW):
            name = next((v for k, v in TABLES.items() if k in table["heading"]), None)
            if name and table["visible"]:
                found[name] = max(found.get(name, 0), table["overflow"])
        if expected <= set(found):
            break
        page.wait_for_timeout(1000)
    return found


def settle(page, text: str, timeout: int = 240_000) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout)
    page.wait_for_timeout(2500)  # let the grids and plots paint
    assert page.locator('[data-testid="stException"]').count() == 0, f"{text!r}: the page shows an exception"


def full_shot(page, name: str) -> Path:
    """A screenshot of the whole page at 1440 px wide (the main area scrolls inside, so the window grows)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 50, 12_000)})
    page.wait_for_timeout(1500)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), timeout=180_000)  # a tall page on a busy machine
    page.set_viewport_size({"width": 1440, "height": 1000})
    return path


def heatmap_ticks(page) -> tuple[int, float]:
    """(labelled rows of the heatmap, smallest vertical gap in px between two row labels)."""
    ys = page.evaluate("""() => { const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.querySelector('.heatmaplayer .hm, .heatmaplayer image'));
        return plot ? [...plot.querySelectorAll('.yaxislayer-above .ytick text')].map(t => t.getBoundingClientRect().top) : []; }""")
    ys = sorted(ys)
    return len(ys), min((b - a for a, b in zip(ys, ys[1:], strict=False)), default=0.0)


@pytest.fixture(scope="module")
def errors_store(tmp_path_factory, tree_run):
    """A run store holding the shared sample run and another model's answers on the Google taxonomy."""
    store = tmp_path_factory.mktemp("browser-errors")
    shutil.copytree(tree_run["run_dir"], store / "20990101-000000-sample")
    taxonomy = shared_file(GOOGLE)
    import_run(store, google_predictions(taxonomy, store / "google-answers.csv"), taxonomy, "google")
    return store


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser.new_page(viewport={"width": 1440, "height": 1000})
        browser.close()


@pytest.fixture(scope="module")
def app(errors_store):
    with serve(str(errors_store)) as url:
        yield url


def run_names(store: Path) -> dict[str, str]:
    return {"sample": "20990101-000000-sample", "google": next(p.name for p in store.iterdir() if "-google-" in p.name)}


@pytest.mark.parametrize("which", ["sample", "google"])
def test_errors_tables_show_their_key_columns_at_1440(app, errors_store, browser_page, which):
    page = browser_page
    page.goto(f"{app}/errors?run={run_names(errors_store)[which]}")
    settle(page, "Where the errors are")
    hidden = hidden_columns(page, {"mistakes", "branches"})
    full_shot(page, f"errors-{which}")
    assert {"mistakes", "branches"} <= set(hidden), hidden
    assert not any(hidden.values()), f"columns cut off at 1440 px: {hidden}"


def test_the_address_restores_a_runs_filters_and_follows_them(app, errors_store, browser_page):
    page = browser_page
    run = run_names(errors_store)["sample"]
    page.goto(f"{app}/errors?run={run}&true=Footwear&kind=sibling")
    settle(page, "Where the errors are")
    chips = page.locator('[data-testid="stMultiSelect"] [data-tag]').all_inner_texts()
    assert "Footwear" in chips and "sibling" in chips, chips
    assert "true=Footwear" in page.url and f"run={run}" in page.url
    page.get_by_text("tree distance", exact=True).first.click()  # Rank by
    page.wait_for_function("() => location.search.includes('rank=tree')", timeout=30_000)
    shared = page.url
    page.goto(f"{app}/taxonomy")
    settle(page, "Search a category")
    page.goto(shared)  # the shared address, opened afresh
    settle(page, "Where the errors are")
    assert page.get_by_role("radio", name="tree distance").is_checked()
    assert "Footwear" in page.locator('[data-testid="stMultiSelect"] [data-tag]').all_inner_texts()
    full_shot(page, "errors-from-address")


def test_heatmaps_label_every_row_with_the_sample_and_the_google_taxonomy(app, browser_page):
    page = browser_page
    page.goto(f"{app}/similarity")
    settle(page, "Agreement with the tree", 480_000)
    rows, gap = heatmap_ticks(page)
    assert rows == 104 and gap >= 10, (rows, gap)  # the sample's 104 leaf categories, one readable label each
    hidden = hidden_columns(page, {"suspicious pairs"})
    assert hidden.get("suspicious pairs") == 0, hidden
    full_shot(page, "similarity-sample")

    page.goto(app)  # the Taxonomy page: upload the Google taxonomy, then Similarity through the sidebar
    settle(page, "Search a category")
    page.get_by_text("Upload a file").click()
    page.locator('input[type="file"]').wait_for(state="attached", timeout=60_000)
    page.locator('input[type="file"]').set_input_files(str(shared_file(GOOGLE)))
    settle(page, "google-product-taxonomy-with-ids")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Similarity", exact=True).click()
    settle(page, "Agreement with the tree", 600_000)  # embeds the 4,719 leaf names on a first visit
    rows, gap = heatmap_ticks(page)
    assert rows > 80 and gap >= 10, (rows, gap)  # the largest branch that fits: 145 categories
    hidden = hidden_columns(page, {"suspicious pairs"})
    assert hidden.get("suspicious pairs") == 0, hidden
    full_shot(page, "similarity-google")
