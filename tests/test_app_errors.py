"""Issue 20's Errors page items through AppTest, on a copy of the shared finished run: the kind cards
follow the filters and the CRM choice (item 6), which branches suffer as a table (11), the metric glossary
in tooltips (13), taller labelled heatmaps (15) and an address that restores the run and its filters (17)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from core.evaluation import triage
from core.evaluation.branches import branch_table
from core.evaluation.crm import answer_semantic_distance
from core.evaluation.registry import explain, glossary
from core.runs import store as runs
from core.runs.store import write_parquet
from core.taxonomy.tree import top_level
from tests.conftest import app_page, app_test

pytestmark = pytest.mark.slow
RUN = "20990101-000000-good"
CRM = "Re-rank answers by conditional risk (CRM)"


def kind_cards(at) -> dict[str, int]:
    return {m.label.lower(): int(m.value.replace(",", "")) for m in at.metric if m.label.lower() in triage.CLASSES}


def widget(at, kind: str, label: str):
    return next(w for w in getattr(at, kind) if w.label == label)


def mistakes(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "semantic distance" in d.value.columns)


def test_kind_cards_count_the_filtered_items(good_store):
    run = runs.Run(good_store / RUN)
    frame = run.predictions()
    branch = frame.true_label.map(top_level)
    at = app_page("errors")
    whole = kind_cards(at)
    assert whole == triage.counts(frame).to_dict()
    # a branch whose kinds differ from the whole run's (the cards used to stay on the whole run)
    chosen = next(b for b in sorted(branch.unique()) if triage.counts(frame[branch == b]).to_dict() != whole)
    widget(at, "multiselect", "True branch").set_value([chosen]).run()
    assert kind_cards(at) == triage.counts(frame[branch == chosen]).to_dict()
    wrong = frame[(branch == chosen) & ~frame.correct]
    assert any(f"mistakes of {(branch == chosen).sum():,} test items" in s.value for s in at.subheader)
    assert sum(kind_cards(at).values()) == len(wrong)


def test_with_crm_the_cards_and_the_kind_filter_classify_the_reranked_answer(good_store):
    run = runs.Run(good_store / RUN)
    frame, tax = run.predictions(), run.taxonomy()
    # CRM answers one correctly answered item with a category of another department: a cross-department
    # mistake of the re-ranked answer only (its plain answer's kind is 'correct')
    item = frame.index[frame.correct & ~frame.get("label_issue", False)][0]
    truth = frame.at[item, "true_label"]
    elsewhere = next(t for t in frame.true_label.unique() if top_level(t) != top_level(truth))
    frame.at[item, "crm_pred_1"] = elsewhere
    frame.at[item, "crm_tree_distance"] = int(tax.distance([tax.resolve(truth)], [tax.resolve(elsewhere)])[0])
    write_parquet(run.path / "predictions.parquet", frame)

    at = app_page("errors")
    widget(at, "toggle", CRM).set_value(True).run()
    crm_kinds = triage.triage_column(frame, tax, "crm_pred_1")
    assert kind_cards(at) == triage.counts(frame.assign(triage=crm_kinds)).to_dict() != triage.counts(frame).to_dict()
    widget(at, "multiselect", "Kind of mistake").set_value(["cross-department"]).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = mistakes(at)
    assert frame.at[item, "text"] in shown["product"].tolist()
    # its semantic distance is the re-ranked answer's (from the ranked similarities, else unknown), not 0 for the plain one
    distance = shown.set_index("product").at[frame.at[item, "text"], "semantic distance"]
    expected_distance = answer_semantic_distance(frame)[item]
    assert (pd.isna(distance) and pd.isna(expected_distance)) or distance == pytest.approx(expected_distance, abs=1e-3)
    expected = frame[(crm_kinds == "cross-department") & ~frame.get("label_issue", False)]
    assert len(shown) == min(len(expected), 100)


def test_which_branches_suffer_is_a_table_with_a_bar_chart(good_store):
    frame = runs.Run(good_store / RUN).predictions()
    at = app_page("errors")
    assert any(s.value == "Which branches suffer" for s in at.subheader)
    table = next(d.value for d in at.dataframe if "cross-department share" in d.value.columns)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), branch_table(frame), check_dtype=False)
    bars = json.loads(next(c for c in at.get("plotly_chart") if "branch_bars" in c.proto.id).proto.spec)
    assert bars["data"][0]["type"] == "bar"
    assert sorted(bars["data"][0]["x"]) == sorted(table.branch)


def test_metrics_carry_the_glossary(good_store, monkeypatch):
    at = app_page("errors")
    top1 = next(m for m in at.metric if m.label == "Top-1 accuracy")
    assert top1.proto.help == explain("top1") and "higher is better" in top1.proto.help
    rows = {e.label: e for e in at.expander}["What the metrics mean"]
    assert rows.table[0].value.reset_index().to_dict("records") == glossary()
    config = json.loads(next(d for d in at.dataframe if "semantic distance" in d.value.columns).proto.columns)
    assert config["semantic distance"]["help"] and config["tree distance"]["help"]

    training = app_page("training")
    runs_table = next(d for d in training.dataframe if d.proto.id.endswith("runs_table") or "status" in d.value.columns)
    config = json.loads(runs_table.proto.columns)
    for column in ("top1", "hdist@5", "semsim@5", "neighbor_hits@5", "ece", "hier_f1", "calibration_temperature"):
        assert config[column]["help"] == explain(column), column
    assert any(e.label == "What the metrics mean" for e in training.expander)


def test_key_columns_come_first_in_the_label_error_and_suspicious_pair_tables(good_store):
    at = app_page("errors")
    issues = [d for d in at.dataframe if "label quality" in d.value.columns]
    for table in issues:  # the copy may hold none
        assert list(table.proto.column_order)[:3] == ["product", "label quality", "kind"]
        widths = {k: v.get("width") for k, v in json.loads(table.proto.columns).items() if k != "_index"}
        assert all(isinstance(w, int) for w in widths.values()) and sum(widths.values()) <= 1000
    config = json.loads(mistakes_table_proto(at).columns)
    assert sum(v["width"] for k, v in config.items() if k != "_index") <= 1000


def mistakes_table_proto(at):
    return next(d for d in at.dataframe if "semantic distance" in d.value.columns).proto


def test_the_address_restores_the_run_and_its_filters_and_follows_changes(good_store):
    older = "20980101-000000-older"
    shutil.copytree(good_store / RUN, good_store / older)
    frame = runs.Run(good_store / older).predictions()
    branches = sorted(frame.true_label.map(top_level).unique())
    at = app_test("errors")
    at.query_params.update({"run": older, "true": branches[0], "crm": "1", "confidence": "0.2,0.9", "kind": "sibling",
                            "rank": "tree distance"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox[0].value == older  # not the newest run, the default
    assert widget(at, "multiselect", "True branch").value == [branches[0]]
    assert widget(at, "toggle", CRM).value is True
    assert widget(at, "slider", "Confidence of the top answer").value == (0.2, 0.9)
    assert widget(at, "multiselect", "Kind of mistake").value == ["sibling"]
    assert widget(at, "radio", "Rank by").value == "tree distance"

    widget(at, "multiselect", "True branch").set_value(branches[:2]).run()
    widget(at, "toggle", CRM).set_value(False).run()
    assert at.query_params["true"] == branches[:2] and "crm" not in at.query_params
    at.selectbox[0].set_value(RUN).run()
    assert at.query_params["run"] in (RUN, [RUN])
    assert widget(at, "multiselect", "True branch").value == branches[:2]  # the filters stay on another run


def test_a_link_to_a_deleted_run_or_unknown_branch_opens_the_newest_run(good_store):
    at = app_test("errors")
    at.query_params.update({"run": "19990101-gone", "true": "No such branch", "confidence": "x"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox[0].value == RUN and widget(at, "multiselect", "True branch").value == []


def test_sample_heatmap_labels_every_row(run_store):
    at = app_test("similarity")
    at.session_state["encoder_kind"] = "minilm"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(next(c for c in at.get("plotly_chart") if "heatmap" in c.proto.id).proto.spec)
    rows = len(spec["data"][0]["y"])
    assert rows > 80  # the sample's 104 categories
    yaxis = spec["layout"]["yaxis"]
    assert yaxis.get("showticklabels", True) and len(yaxis["ticktext"]) == rows
    assert spec["layout"]["height"] >= 12 * rows  # a readable line per row
    assert any("hover a cell" in c.value for c in at.caption)
