"""Issue 12 and the page items of the reliability issue, through AppTest: each test failed on the pages
before the fix (flat taxonomy, ring count, huge taxonomy, markdown in errors, similarity heatmap...)."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, app_test
from tests.conftest import app_page as page

# every page test runs the app (AppTest: slow) with an empty run store of its own
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("run_store")]


def upload_taxonomy(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].upload(name, data, "text/plain").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id).proto.spec)


def test_flat_taxonomy_shows_its_tree_without_a_one_level_slider():
    at = upload_taxonomy(page("taxonomy"), "flat.txt", b"Shoes\nBags\nHats\n")
    assert not at.error and at.metric[3].value == "1"
    assert not [s for s in at.slider if s.label == "Levels shown"]
    assert sorted(chart(at, "tree")["data"][0]["labels"]) == ["Bags", "Hats", "Shoes"]


def test_levels_shown_draws_exactly_that_many_rings():
    at = page("taxonomy")  # the sample catalog: depth 4
    levels = next(s for s in at.slider if s.label == "Levels shown")
    levels.set_value(1).run()
    parents = chart(at, "tree")["data"][0]["parents"]
    assert set(parents) == {""}  # only top-level categories: one ring
    next(s for s in at.slider if s.label == "Levels shown").set_value(3).run()
    spec = chart(at, "tree")["data"][0]
    assert spec["branchvalues"] == "total" and len(spec["ids"]) < 150  # no depth-4 leaves sent


def test_a_200k_node_taxonomy_is_drawn_capped_and_says_so():
    from synthetic_taxonomy import synthetic_paths

    at = upload_taxonomy(page("taxonomy"), "big.txt", "\n".join(synthetic_paths(170_000)).encode())
    spec = next(c for c in at.get("plotly_chart") if "tree" in c.proto.id).proto.spec
    assert len(spec) < 2_000_000, len(spec)  # was 25.5 MB
    assert any("categories:" in c.value and "Showing" in c.value for c in at.caption)


def test_user_text_in_an_error_is_shown_as_text_not_markdown():
    bad = "id,parent_id,name\n![t](http://127.0.0.1:9/t.png),2,A\n2,![t](http://127.0.0.1:9/t.png),B\n"
    at = upload_taxonomy(page("taxonomy"), "cycle.csv", bad.encode())
    (error,) = at.error
    assert "cycle" in error.value and "![t](" not in error.value and r"\!\[t\]" in error.value


@pytest.fixture(scope="module")
def google_similarity():
    """The Similarity page on the Google taxonomy (5,595 categories), embedded once for these tests."""
    from tests.conftest import shared_file

    data = shared_file("taxonomies/google-product-taxonomy-with-ids.en-US.txt").read_bytes()
    at = app_test("similarity", 300)
    at.session_state["taxonomy_source"] = {"bytes": data, "format": None, "name": "google.txt"}
    at.session_state["encoder_kind"] = "minilm"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_similarity_opens_on_the_largest_branch_that_fits_and_never_a_single_leaf(google_similarity):
    at = google_similarity
    branch = at.selectbox(key="hm_branch")
    assert branch.value != "Animals & Pet Supplies > Live Animals"
    assert "Animals & Pet Supplies > Live Animals" not in branch.options  # one leaf: a 1x1 heatmap
    heat = chart(at, "heatmap")["data"][0]
    assert 100 <= len(heat["y"]) <= 150 and heat["z"]["shape"] == f"{len(heat['y'])}, {len(heat['y'])}"


def test_a_branch_too_large_says_what_is_shown_and_how_to_see_the_rest(google_similarity):
    at = google_similarity
    at.selectbox(key="hm_branch").set_value("Sporting Goods > Outdoor Recreation").run()
    note = next(i.value for i in at.info if "Outdoor Recreation" in i.value)
    assert "376" in note and "first 150" in note and "sub\\-branches" in note
    assert len(chart(at, "heatmap")["data"][0]["y"]) == 150


def test_neighbourhood_heatmap_uses_short_names_and_is_sized_to_its_rows(google_similarity):
    at = google_similarity
    at.radio(key="hm_mode").set_value("A category's neighbourhood").run()
    ski = next(o for o in at.selectbox(key="hm_centre").options if o.endswith("> Ski Boots"))
    at.selectbox(key="hm_centre").set_value(at.selectbox(key="hm_centre").options.index(ski)).run()
    spec = chart(at, "heatmap")
    assert len(spec["data"][0]["y"]) == 41 and spec["layout"]["height"] >= 41 * 15
    ticks = spec["layout"]["yaxis"]["ticktext"]
    assert "Ski Boots" in ticks and max(map(len, ticks)) < 60 and all(" > " in y for y in spec["data"][0]["y"])
    assert "similarity" in spec["data"][0]["hovertemplate"]
    assert spec["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "similarity"


def test_training_compare_shows_numbers_first_and_tells_settings_apart(run_store):
    from core.runs import store as runs
    from tests.test_runs import finished_run

    store = runs.RunStore(run_store)
    finished_run(store, temperature=0.05), finished_run(store, temperature=0.5)
    at = page("training")
    metrics = next(d.value for d in at.dataframe if "top1" in d.value.index)
    assert metrics.index[0] == "top1" and all(pd.api.types.is_float_dtype(d) for d in metrics.dtypes)  # was strings, Arrow error
    spec = chart(at, "acc_vs_sev")
    assert sorted(t["name"] for t in spec["data"]) == ["semantic α=0.1 T=0.05 k=20", "semantic α=0.1 T=0.5 k=20"]
    lo, hi = spec["layout"]["yaxis"]["range"]
    assert lo < 0.8 < hi and hi - lo < 0.2  # around the points, not 0 to 1.5


def test_training_shows_embedding_progress_written_by_the_run_process(run_store):
    from core.runs import store as runs
    from core.runs.progress import ProgressWriter

    run = runs.RunStore(run_store).create({"epochs": 8, "data": "p.csv"})
    ProgressWriter(run.path)("embed products", 120, 600)
    at = page("training")
    (bar,) = at.get("progress")
    assert "embedding products 120/600" in bar.proto.text and bar.proto.value == 20
    assert at.dataframe[0].value["status"].tolist() == ["queued"]


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """One tiny real run (600 rows, 2 epochs, MiniLM) for the Errors page tests."""
    import subprocess

    from tests.conftest import TRAIN

    store = tmp_path_factory.mktemp("errors-runs")
    args = [str(a) for a in TRAIN] + ["--out", str(store), "--epochs", "2"]
    args[args.index("--max-rows") + 1] = "600"
    subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, check=True, capture_output=True)
    return store


def test_headline_metrics_from_the_predictions_table_match_the_run(trained_store):
    from core.evaluation.metrics import headline_from_predictions
    from core.runs import store as runs

    (run,) = runs.RunStore(trained_store).finished()
    stored = run.metrics()["plain"]
    computed = headline_from_predictions(run.predictions(), run.taxonomy())
    for key in ("top1", "mistake_severity", "hdist@5", "semsim@5"):
        assert computed[key] == pytest.approx(stored[key], abs=1e-4), key


def test_errors_cards_follow_the_filters_and_the_table_fits(trained_store, monkeypatch):
    from core.evaluation.metrics import headline_from_predictions
    from core.runs import store as runs

    monkeypatch.setenv("TAXOLENS_RUNS", str(trained_store))
    (run,) = runs.RunStore(trained_store).finished()
    at = page("errors")
    table = at.dataframe[0].value
    assert table.columns.tolist() == ["product", "true category", "answer", "confidence", "tree distance", "semantic distance"]
    assert not table["answer"].str.contains(" > ").any()  # short names; full paths are in the detail
    top5 = next(d.value for d in at.dataframe if "probability" in d.value.columns)
    assert len(top5) == 5 and top5.probability.iloc[0] >= top5.probability.iloc[-1]
    everything = at.metric[0].value
    next(m for m in at.multiselect if m.label == "True branch").set_value(["Footwear"]).run()
    frame = run.predictions()
    footwear = frame[frame.true_label.str.startswith("Footwear > ")]
    expected = headline_from_predictions(footwear, run.taxonomy())
    assert at.metric[0].value == f"{expected['top1']:.3f}" != everything
    assert at.metric[1].value == f"{expected['mistake_severity']:.3f}"
    assert any(f"{len(footwear):,} test items in the filter" in c.value for c in at.caption)


def test_column_guesses_leave_a_role_empty_when_no_column_fits(run_store):
    at = page("training")
    at.radio[0].set_value("Upload a product table").run()
    at.file_uploader[0].upload("stock.csv", b"sku,colour,price\nA1,red,3\nA2,blue,4\n", "text/csv").run()
    assert not at.exception
    label = next(m for m in at.multiselect if m.label.startswith("Label column"))
    text = next(m for m in at.multiselect if m.label == "Text column(s)")
    assert label.value == [] and text.value == []  # both were guessed as 'sku'
    assert next(s for s in at.selectbox if s.label == "Id column").value == "sku"
    assert any("looks like a category label" in i.value and "Footwear" in i.value for i in at.info)


def test_messages_name_the_users_file_not_the_stored_copy(run_store):
    at = page("training")
    at.radio[0].set_value("Upload a product table").run()
    at.file_uploader[0].upload("empty.csv", b"id,title,category_path\n", "text/csv").run()
    assert not at.exception
    (error,) = at.error
    assert error.value.replace("\\", "") == "empty.csv holds no rows"  # was '6d6c74211c17-empty.csv holds no rows'


def test_smoothing_side_by_side_charts_keep_labels_legend_and_note_apart():
    at = page("smoothing")
    at.selectbox(key="smooth_category").select("Footwear > Boots > Rain Boots").run()
    tree = chart(at, "side_tree")
    names = [y for trace in tree["data"] for y in trace["y"]]
    assert "Rain Boots" in names and not any(" > " in n for n in names)  # short names; paths on hover
    assert tree["layout"]["legend"]["orientation"] == "h" and tree["layout"]["legend"]["yanchor"] == "bottom"
    # issue 20, item 16: a note under the axis overlapped its title; it is part of the title now
    assert not tree["layout"].get("annotations") and "every other class: " in tree["layout"]["xaxis"]["title"]["text"]
