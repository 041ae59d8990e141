"""The Errors page's triage cards, label-error list and audit review; the import page (AppTest)."""

from __future__ import annotations

import pandas as pd
import pytest

from core import files
from core.runs import store as runs
from core.runs.importer import guess_spec
from core.runs.status import set_status
from core.taxonomy.formats import taxonomy_from_labels
from core.training import audit
from core.training.audit import corrections
from tests.conftest import app_test


@pytest.fixture
def audit_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    store = runs.RunStore(tmp_path / "runs")
    run_dir = store.create({"kind": "audit", "folds": 3}, name="audit").path
    frame = pd.DataFrame({
        "id": ["p1", "p2", "p3", "p4", "p5"], "text": ["tripod", "kettle", "boots", "lens", "mug"],
        "true_label": ["K > Coffee", "K > Kettle", "F > Boots", "E > Lens", "K > Mug"],
        "pred_1": ["E > Tripod", "K > Coffee", "F > Boots", "E > Tripod", "K"],
        "prob_1": [0.97, 0.5, 0.9, 0.6, 0.4], "sim_1": [0.1, 0.5, 1.0, 0.6, 0.7],
        "correct": [False, False, True, False, False], "tree_distance": [2, 1, 0, 1, 1],
        "semantic_distance": [0.9, 0.5, 0.0, 0.4, 0.3],
        "triage": ["cross-department", "sibling", "correct", "sibling", "too general"],
        "label_issue": [True, False, False, True, False], "label_quality": [0.01, 0.3, 0.9, 0.04, 0.2],
        "audit_priority": [1.98, 0.7, 0.0, 0.96, 0.8],
    })
    taxonomy = taxonomy_from_labels(pd.concat([frame.true_label, frame.pred_1]))
    classes = sorted(set(frame.true_label) | set(frame.pred_1))
    runs.Run(run_dir).finish(frame, {"plain": {"top1": 0.2}, "crm": {}}, taxonomy=taxonomy, classes=classes,
                             nodes=[taxonomy.resolve(c) for c in classes])  # as the audit writes it
    return frame


@pytest.mark.slow
def test_errors_page_triage_cards_label_errors_and_audit_review(audit_run):
    at = app_test("errors", 60).run()
    assert not at.exception
    cards = {m.label: m.value for m in at.metric}
    assert cards["Sibling"] == "2" and cards["Cross-department"] == "1" and cards["Too general"] == "1"
    headers = [s.value for s in at.subheader]
    assert "2 mistakes of 5 test items" in headers  # the two likely label errors are listed apart
    assert "2 likely label errors" in headers and any("the label may be wrong; the model may be right" in w.value for w in at.warning)
    assert "Audit: 2 likely label errors among 5 products" in headers
    assert any(c.value.startswith("Every product of the catalog (5): a 3-fold audit") for c in at.caption), [c.value for c in at.caption]


@pytest.mark.slow
def test_audit_review_decisions_saved_in_the_run_survive_a_reload(audit_run, tmp_path):
    """A relabel decision saved in the run folder (as the review table does at each change) is what a
    fresh session (a reload) shows and exports."""
    (run,) = runs.RunStore(tmp_path / "runs").runs()
    audit.save_decisions(run.path, {"p1": "relabel"})
    at = app_test("errors", 60).run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Export 1 corrections (CSV)" in labels and "Export the 2 reviewed flags (CSV)" in labels
    at.multiselect(key="errors_triage").set_value(["too general"]).run()
    assert "1 mistakes of 5 test items" in [s.value for s in at.subheader]


def test_corrections_keep_only_relabelled_products(audit_run):
    issues = audit_run[audit_run.label_issue]
    fixes = corrections(issues, pd.Series({"p1": "relabel", "p4": "keep"}))
    assert fixes.to_dict("records") == [{"id": "p1", "current_label": "K > Coffee", "corrected_label": "E > Tripod"}]


def test_column_guesses():
    guess = guess_spec(["sku", "title", "category_path", "pred_2", "pred_1", "prob_1", "prob_2", "price"])
    assert guess == {"true_column": "category_path", "pred_columns": ["pred_1", "pred_2"], "score_columns": ["prob_1", "prob_2"],
                     "id_column": "sku", "text_columns": ["title"]}


@pytest.mark.slow
def test_import_page_asks_for_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    at = app_test("import", 60).run()
    assert not at.exception and at.title[0].value == "Import predictions"


@pytest.mark.slow
def test_training_page_compares_two_runs_against_a_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    store = runs.RunStore(tmp_path / "runs")
    true = ["A > a", "A > b", "B > c", "B > d"] * 10
    for name, pred in (("base", ["A > b", "A > b", "B > c", "A > a"] * 10), ("cand", ["A > a", "A > b", "B > c", "A > a"] * 10)):
        run = store.create({"targets": name}, name=name)
        frame = pd.DataFrame({"id": [f"i{n}" for n in range(40)], "true_label": true, "pred_1": pred,
                              "correct": [t == p for t, p in zip(true, pred, strict=True)],
                              "tree_distance": [0 if t == p else (1 if t[0] == p[0] else 2) for t, p in zip(true, pred, strict=True)]})
        runs.write_parquet(run.path / "predictions.parquet", frame)
        files.write_json(run.path / "metrics.json", {"plain": {"top1": float(frame.correct.mean())}, "crm": {}})
        set_status(run.path, "done")
    at = app_test("training", 60).run()
    assert not at.exception
    at.selectbox(key="compare_baseline").set_value(sorted(p.name for p in store.runs())[0]).run()
    assert not at.exception and any("2 better" in m.value and "0 worse" in m.value for m in at.markdown)


@pytest.mark.slow
def test_import_page_upload_map_import_and_land_on_errors(tmp_path, monkeypatch, tree_run):
    """Upload another model's predictions, keep the guessed mapping, import: an imported run appears."""
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    theirs = runs.Run(tree_run["run_dir"]).predictions()
    upload = pd.DataFrame({"sku": theirs.id, "category": theirs.true_label, "prediction_1": theirs.pred_1,
                           "prediction_2": theirs.pred_2, "score_1": theirs.prob_1, "score_2": theirs.prob_2})
    at = app_test("import", 300).run()
    at.file_uploader(key="import_upload").upload("their predictions.csv", upload.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe[0].value) == 10  # the preview
    at.selectbox(key="import_encoder").select("minilm")
    at.button(key="import_go").click().run()
    (imported,) = runs.RunStore(tmp_path / "runs").runs()
    assert imported.kind == "imported" and imported.state == "done"
    assert imported.metrics()["plain"]["top1"] == pytest.approx((theirs.pred_1 == theirs.true_label).mean())
    assert at.session_state["selected_run"] == imported.name


def _scored(scores: list[float]) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame({"sku": [f"s{i}" for i in range(n)], "category": ["A > a", "B > b"] * (n // 2),
                         "prediction_1": ["A > a"] * n, "score_1": scores})


def test_scores_a_rounding_above_one_are_clipped_and_counted():
    """fastText's probabilities reach 1.00001: clipped to 1 with a note, not the whole file refused."""
    from core.runs.importer import ImportSpec, build

    imported = build(_scored([1.00001, 0.4, 1.000002, 0.9]), ImportSpec("category", ["prediction_1"], ["score_1"], "sku"))
    assert imported.scores[:, 0].tolist() == [1.0, 0.4, 1.0, 0.9]
    assert any(note.startswith("2 rows had scores above 1") and "clipped to 1" in note for note in imported.report.lines())


def test_scores_out_of_range_name_the_first_row_column_and_value():
    from core.data.tables import DataError
    from core.runs.importer import ImportSpec, build

    with pytest.raises(DataError, match=r"2 rows do not, the first is id 's1', whose score_1 is '1\.2'"):
        build(_scored([0.5, 1.2, 0.3, -0.1]), ImportSpec("category", ["prediction_1"], ["score_1"], "sku"))


@pytest.mark.slow
def test_import_page_previews_fasttext_scores_and_says_how_many_were_clipped(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_RUNS", str(tmp_path / "runs"))
    at = app_test("import", 60).run()
    upload = _scored([1.00001, 0.4, 1.000002, 0.9]).to_csv(index=False).encode()
    at.file_uploader(key="import_upload").upload("fasttext.csv", upload, "text/csv").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.dataframe[0].value["prob_1"].max() == 1.0
    assert any("2 rows had scores above 1" in c.value for c in at.caption)
    assert at.button(key="import_go")
