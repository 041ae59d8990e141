"""The pages that read runs: Categorize with a finished run, and Training/Errors with damaged runs in the store."""

import shutil

import pandas as pd

from core.runs import store as runs
from tests.conftest import app_page as page


def test_categorize_a_typed_product(good_store):
    at = page("categorize")
    at.text_input[0].set_value("Waterproof leather hiking boots with a lug sole")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, [e.value for e in at.exception]
    answer = at.dataframe[0].value
    assert answer["rank"].tolist() == [1, 2, 3, 4, 5]
    assert answer["category"].iloc[0].startswith("Footwear > Boots")
    assert answer["tree distance to the answer"].iloc[0] == 0
    assert answer["probability (calibrated)"].is_monotonic_decreasing
    assert at.success or at.warning  # the review verdict is shown either way


def test_categorize_an_uploaded_file(good_store):
    at = page("categorize")
    table = pd.DataFrame({"sku": ["a", "b", "c"], "title": ["chef knife 8 inch", "rain boots for kids", "cast iron wok"]})
    at.file_uploader[0].upload("new products.csv", table.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="categorize_run")  # the model picker stays available
    next(m for m in at.multiselect if m.label == "Text column(s)").set_value(["title"]).run()
    next(b for b in at.button if b.label == "Categorize the file").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("3 products categorized" in s.value for s in at.success), ([e.value for e in at.error], [s.value for s in at.success])
    shown = at.dataframe[-1].value
    assert shown["id"].tolist() == ["0", "1", "2"] and "pred_1" in shown and "review" in shown


def test_damaged_runs_are_marked_and_pages_still_render(good_store, tree_run):
    for name, file, content in (("20980101-000000-bad-status", "status.json", "1"),
                                ("20970101-000000-bad-metrics", "metrics.json", '{"plain": null}')):
        shutil.copytree(tree_run["run_dir"], good_store / name)
        (good_store / name / file).write_text(content)
    training = page("training")
    table = training.dataframe[0].value
    assert dict(zip(table.run_id, table.status, strict=True)) == {
        "20990101-000000-good": "done", "20980101-000000-bad-status": "damaged", "20970101-000000-bad-metrics": "damaged"}
    errors = page("errors")
    assert any("run file problem" in w.value for w in errors.warning)
    assert errors.selectbox[0].options == ["20990101-000000-good"]
    assert any("mistakes of" in s.value for s in errors.subheader)
    assert [r.name for r in runs.RunStore(good_store).finished()] == ["20990101-000000-good"]


def test_compare_opens_on_runs_of_the_same_data_and_names_it(good_store, tree_run):
    """Issue 20, item 8: Compare opened on the newest 4 runs across catalogs (a legend of 'nan' and
    'not compared'); it opens on the newest run's data and says which data each run used."""
    from core import files

    other = good_store / "20991231-000000-other"
    shutil.copytree(tree_run["run_dir"], other)
    config = files.read_json(other / "config.json")
    files.write_json(other / "config.json", config | {"data": "/elsewhere/google-catalog.csv"})
    training = page("training")
    chosen = training.multiselect(key="compare_runs")
    assert chosen.value == ["20991231-000000-other"]  # the newest, alone: the other run read other data
    assert "20990101-000000-good (products.csv)" in chosen.options
    settings = next(d.value for d in training.dataframe if "template" in d.value.index)  # "Settings of these runs"
    assert settings.loc["data", "20991231-000000-other"] == "google-catalog.csv"


def test_categorize_results_survive_a_download_and_show_each_products_text(good_store):
    """A download reruns the page: the table, the message and both buttons must still be there."""
    at = page("categorize")
    table = pd.DataFrame({"sku": ["a", "b"], "title": ["chef knife 8 inch", "rain boots for kids"]})
    at.file_uploader[0].upload("new products.csv", table.to_csv(index=False).encode(), "text/csv").run()
    next(m for m in at.multiselect if m.label == "Text column(s)").set_value(["title"]).run()
    next(b for b in at.button if b.label == "Categorize the file").click().run()
    at.run()  # what clicking "Download CSV" does: the page runs again, the Categorize button unpressed
    assert not at.exception, [e.value for e in at.exception]
    assert any("2 products categorized" in s.value for s in at.success)
    assert len(at.get("download_button")) == 2
    shown = at.dataframe[-1].value
    assert shown[["id", "text"]].to_dict("records") == [{"id": "0", "text": "chef knife 8 inch"},
                                                        {"id": "1", "text": "rain boots for kids"}]
    assert list(shown.columns[:3]) == ["id", "text", "pred_1"]
