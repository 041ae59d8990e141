"""Each page through streamlit.testing.v1.AppTest, with real interactions on the sample catalog."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core import files
from core.runs import store as runs
from core.runs.process import wait_for
from core.runs.status import set_status, status
from tests.conftest import app_page as page
from tests.conftest import app_test

# every page test runs the app (AppTest: slow) with an empty run store of its own
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("run_store")]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_taxonomy_page_sample_then_upload():
    at = page("taxonomy")
    assert metric(at, "Leaf categories") == "104" and metric(at, "Depth") == "4"
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].upload("shop.txt", b"Shoes > Boots\nShoes > Sandals\nBags > Totes\n", "text/plain").run()
    assert not at.exception and not at.error
    assert metric(at, "Leaf categories") == "3" and metric(at, "Top-level branches") == "2"
    assert any("created" in w.value for w in at.warning)  # "Shoes" and "Bags" have no line of their own
    at.text_input[0].set_value("boot").run()
    assert at.dataframe[-1].value["path"].tolist() == ["Shoes > Boots"]


def test_bad_upload_shows_error_and_keeps_the_previous_taxonomy():
    at = page("taxonomy")
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].upload("good.txt", b"A > B\nA > C\n", "text/plain").run()
    assert metric(at, "Leaf categories") == "2"
    at.file_uploader[0].upload("cycle.csv", b"id,parent_id,name\n1,2,A\n2,1,B\n", "text/csv").run()
    assert not at.exception
    assert any("cycle" in e.value for e in at.error)
    assert metric(at, "Leaf categories") == "2"  # the good taxonomy is still active


def test_a_product_table_uploaded_as_a_taxonomy_asks_for_its_category_column():
    at = page("taxonomy")
    at.radio[0].set_value("Upload a file").run()
    table = b"id,title,brand,type\n1,Rain boots,Acme,Shoes > Boots\n2,Sandal,Acme,Shoes > Sandals\n3,Tote,Bee,Bags\n"
    at.file_uploader[0].upload("products.csv", table, "text/csv").run()
    assert not at.exception and any("table with a header" in w.value for w in at.warning)
    assert metric(at, "Leaf categories") == "104"  # nothing replaced until a column is chosen
    at.selectbox(key="taxonomy_column").set_value("type").run()
    assert metric(at, "Top-level branches") == "2" and metric(at, "Leaf categories") == "3"


def test_similarity_page_neighbours_follow_the_chosen_category():
    at = page("similarity")
    assert any("Active encoder" in i.value for i in at.info)
    at.selectbox(key="nn_category").select("Footwear > Boots > Rain Boots").run()
    table = at.dataframe[0].value
    assert "Footwear > Boots > Snow Boots" in table["neighbour"].head(5).tolist()
    assert at.metric[0].label.startswith("Spearman")


def test_smoothing_temperature_slider_changes_the_target():
    at = page("smoothing")
    at.selectbox(key="smooth_category").select("Footwear > Boots > Rain Boots").run()

    def effective():
        return float(next(c.value for c in at.caption if "Effective number" in c.value).split(":")[-1])

    at.select_slider[0].set_value(0.01).run()
    cold = effective()
    at.select_slider[0].set_value(10.0).run()
    hot = effective()
    assert not at.exception
    assert cold < 2 and hot > 15  # T -> 0: one neighbour; T large: close to k = 20
    assert at.session_state["_persist"]["temperature"] == 10.0  # what the Training page starts from
    next(b for b in at.button if b.label == "Prepare the export").click().run()
    assert not at.exception and at.get("download_button")  # the CSV export goes through core.data.export.write_csv


def test_smoothing_export_says_it_is_preparing_then_how_large_it_is():
    at = page("smoothing")
    next(b for b in at.button if b.label == "Prepare the export").click().run()
    assert not at.exception
    (status,) = at.status
    assert status.label.startswith("Export ready: ") and status.label.endswith(" MB") and status.state == "complete"


def test_training_launch_short_run_then_errors_page(run_store):
    at = page("training")
    next(n for n in at.number_input if n.label == "Epochs").set_value(2)
    next(m for m in at.multiselect if m.label == "Text column(s)").set_value(["title"])
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and any("started" in s.value for s in at.success)
    (run,) = runs.RunStore(run_store).runs()
    assert json.loads((run.path / "config.json").read_text())["epochs"] == 2
    assert wait_for(run.path, timeout=600)["state"] == "done", status(run.path)
    at.run()
    assert "done" in at.dataframe[0].value["status"].tolist()

    errors = page("errors")
    assert any("mistakes of" in s.value for s in errors.subheader)
    plain = errors.metric[1].value
    errors.toggle[0].set_value(True).run()
    assert not errors.exception and errors.metric[1].value != "" and plain != ""
    assert errors.get("download_button")


def test_errors_page_offers_a_demo_run_when_there_are_none():
    at = page("errors")
    assert any("no finished training runs" in i.value for i in at.info)
    assert at.button[0].label == "Start a demo run on the sample catalog"


def test_uploaded_product_table_with_unusable_rows_is_refused_before_any_run(run_store):
    at = page("training")
    at.radio[0].set_value("Upload a product table").run()
    at.file_uploader[0].upload("products.csv", b"id,title,category_path\n1,,Shoes > Boots\n2,,Shoes > Sandals\n", "text/csv").run()
    at.button[0].click().run()
    assert not at.exception
    assert any("no usable rows" in e.value and "empty text" in e.value for e in at.error)
    assert runs.RunStore(run_store).runs() == []


def test_labels_outside_the_uploaded_taxonomy_name_distinct_labels_and_the_box_to_untick(run_store):
    at = page("training")
    at.session_state["taxonomy_source"] = {"bytes": b"Garden > Hoses\nGarden > Rakes\n", "format": None, "name": "garden.txt"}
    at.radio[0].set_value("Upload a product table").run()
    table = b"id,title,category_path\n1,a,Shoes > Boots\n2,b,Shoes > Boots\n3,c,Bags > Totes\n"
    at.file_uploader[0].upload("products.csv", table, "text/csv").run()
    at.button[0].click().run()
    assert not at.exception
    (error,) = [e.value.replace("\\", "") for e in at.error if "no usable rows" in e.value]
    assert "Shoes > Boots, Bags > Totes)" in error and "untick 'Check the labels against the taxonomy'" in error
    assert runs.RunStore(run_store).runs() == []


def test_errors_page_shows_only_real_images_from_the_run_folder(run_store, tmp_path):
    """An image column value that leaves the image folder is not read (defect: /etc/passwd was embedded)."""
    import pandas as pd
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (60, 80), (200, 30, 30)).save(images / "ok.jpg")
    store = runs.RunStore(run_store)
    run_dir = store.create({"targets": "onehot", "image_dir": str(images)}).path
    truth = ["Shoes > Boots", "Shoes > Sandals", "Kitchen > Knives"]
    frame = pd.DataFrame({"id": ["1", "2", "3"], "text": ["=HYPERLINK(\"http://evil.example\",\"x\")", "b", "c"],
                          "true_label": truth, "image_path": [str(images / "ok.jpg"), str(images / "../../../../../etc/passwd"),
                                                              "/etc/passwd"]})
    for r in range(1, 4):
        frame[f"pred_{r}"] = truth[r:] + truth[:r]
        frame[f"prob_{r}"] = [0.5, 0.3, 0.2][r - 1]
        frame[f"sim_{r}"] = 0.5
    frame["correct"] = False
    frame["tree_distance"] = 2
    frame["semantic_distance"] = 0.5
    runs.write_parquet(run_dir / "predictions.parquet", frame)
    files.write_json(run_dir / "metrics.json", {"plain": {"top1": 0.0}, "crm": {}, "encoder": "test"})
    set_status(run_dir, "done")
    at = page("errors")
    shown = at.dataframe[0].value
    by_id = dict(zip(shown["product"], shown["image"], strict=True))
    assert pd.isna(by_id["b"]) and pd.isna(by_id["c"])
    assert str(by_id['=HYPERLINK("http://evil.example","x")']).startswith("data:image/jpeg;base64,")


def test_a_bug_in_a_page_is_shown_as_a_bug_with_its_traceback(monkeypatch):
    """app.py's one guard: a user's mistake is an st.error (above); anything else is not blamed on the input."""
    from core.taxonomy.tree import Taxonomy
    from tests.conftest import app_test

    def broken(self):
        raise KeyError("plain")

    monkeypatch.setattr(Taxonomy, "summary", broken)
    at = app_test("taxonomy").run()
    assert not at.exception
    (error,) = at.error
    assert error.value.replace("\\", "") == "Internal error (a bug in Taxolens, not your input): KeyError: 'plain'"
    assert "Traceback" in at.expander[0].code[0].value and "in broken" in at.expander[0].code[0].value


def test_adopted_settings_show_in_the_training_form_and_reset_to_defaults():
    """Issue 20, items 7 and 16: Tune's 'use these settings' set template = name, which the form did not
    show (a one-hot vs semantic comparison silently mixed templates); one-hot left the smoothing
    settings enabled as if they mattered."""
    at = app_test("training", 120)
    at.session_state["_persist"] = {"targets": "onehot", "template": "name", "alpha": 0.3587435924002349}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    template = next(s for s in at.selectbox if s.label == "Prompt template")
    assert template.value == "name"
    assert any("template name" in c.value and "targets onehot" in c.value for c in at.caption)
    alpha = next(n for n in at.number_input if n.label == "Smoothing mass α")
    assert alpha.disabled and next(n for n in at.number_input if n.label == "Tree β").disabled
    next(s for s in at.selectbox if s.label == "Targets").set_value("semantic").run()
    assert not next(n for n in at.number_input if n.label == "Smoothing mass α").disabled
    next(b for b in at.button if b.label == "Reset to defaults").click().run()
    assert next(s for s in at.selectbox if s.label == "Prompt template").value == "path"
    assert next(s for s in at.selectbox if s.label == "Targets").value == "semantic"  # the declared default
    assert next(n for n in at.number_input if n.label == "Smoothing mass α").value == 0.1
    assert any("every setting at its default" in c.value for c in at.caption)


def test_a_refresh_keeps_the_uploaded_taxonomy_and_the_adopted_settings(run_store):
    """Issue 20, item 17: a browser refresh (a new session) lost both."""
    at = page("taxonomy")
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].upload("shop.txt", b"Shoes > Boots\nShoes > Sandals\nBags > Totes\n", "text/plain").run()
    at.session_state["_persist"] = {"targets": "tree", "beta": 4.5, "template": "name"}
    at.run()
    assert metric(at, "Leaf categories") == "3"
    again = page("taxonomy")  # a new session, as after a refresh
    assert metric(again, "Leaf categories") == "3" and again.session_state["taxonomy_source"]["name"] == "shop.txt"
    training = page("training")
    assert next(s for s in training.selectbox if s.label == "Prompt template").value == "name"
    assert next(n for n in training.number_input if n.label == "Tree β").value == 4.5
    again.radio[0].set_value("Sample catalog").run()  # back to the sample: a refresh keeps that too
    assert metric(page("taxonomy"), "Leaf categories") == "104"


def test_after_launch_the_training_progress_is_at_the_top(run_store, monkeypatch):
    """Issue 20, item 16: after Launch the progress bar was below the fold, under the open form."""
    import pages.shared

    monkeypatch.setattr(pages.shared, "launch_background", lambda run_dir, **kw: None)  # the run stays queued
    at = page("training")
    next(m for m in at.multiselect if m.label == "Text column(s)").set_value(["title"])
    next(b for b in at.button if b.label == "Launch training run").click().run()
    assert not at.exception and any("started" in s.value for s in at.success)
    order = [node.type for node in at.main if node.type in ("progress", "expander")]  # in page order
    assert order[0] == "progress" and "expander" in order, order


def test_the_training_form_launches_a_fine_tuning_run_with_its_encoder_learning_rate(run_store, monkeypatch):
    """Issue 18, item 2: fine-tuning was reachable from the CLI only. The learning rate is shown in
    scientific notation: two decimals would show the default 5e-05 as 0.00."""
    import pages.shared

    monkeypatch.setattr(pages.shared, "launch_background", lambda run_dir, **kw: None)  # the run stays queued
    at = page("training")
    tick = next(c for c in at.checkbox if c.label == "Fine-tune the text encoder")
    rate = next(n for n in at.number_input if n.label == "Encoder learning rate")
    assert tick.value is False and rate.value == 5e-5 and rate.format == "%.1e"
    tick.check()
    rate.set_value(2e-4)
    next(m for m in at.multiselect if m.label == "Text column(s)").set_value(["title"])
    next(b for b in at.button if b.label == "Launch training run").click().run()
    assert not at.exception and any("started" in s.value for s in at.success)
    (run,) = runs.RunStore(run_store).runs()
    assert run.config["finetune_encoder"] is True and run.config["encoder_lr"] == pytest.approx(2e-4)
