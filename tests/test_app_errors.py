"""Errors page at a glance: verdict columns first, a product's detail one click away, cards that follow the filters."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core import runs
from core.metrics import metrics_from_predictions
from tests.conftest import ROOT

TIMEOUT = 300


@pytest.fixture
def store(tmp_path, monkeypatch, tree_run):
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(tree_run["run_dir"], root / "20990101-000000-good")
    monkeypatch.setenv("TAXOLENS_RUNS", str(root))
    return root


def errors() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "errors.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def cards(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric if m.label in ("Top-1 accuracy", "Mistake severity (tree distance)", "hdist@5", "semsim@5")}


def test_table_shows_the_verdict_columns_and_a_products_detail(store):
    at = errors()
    table = next(d for d in at.dataframe if d.key == "errors_table").value
    assert list(table.columns) == ["product", "true category", "predicted", "confidence", "tree distance", "semantic distance"]
    assert not table["true category"].str.contains(" > ").any()  # leaf names; the full path is in the detail
    top5 = next(d.value for d in at.dataframe if "similarity to the truth" in d.value)
    assert top5["rank"].tolist() == [1, 2, 3, 4, 5] and top5["probability"].is_monotonic_decreasing
    assert " > " in top5["category"].iloc[0]
    assert table["product"].iloc[0] in [t.value for t in at.text]  # the first mistake's full text is shown


def test_metric_cards_follow_the_branch_filter(store):
    run = runs.Run(store / "20990101-000000-good")
    frame, plain = run.predictions(), run.metrics()["plain"]
    full = metrics_from_predictions(frame, run.taxonomy())
    for key in ("top1", "mistake_severity", "hdist@5", "semsim@5"):  # the recomputation agrees with the run's metrics
        assert full[key] == pytest.approx(plain[key], abs=1e-6), key
    at = errors()
    assert cards(at)["Top-1 accuracy"] == f"{plain['top1']:.3f}"
    branch = frame.true_label.str.split(" > ").str[0].value_counts().index[0]
    at.multiselect(key="errors_true_branch").set_value([branch]).run()
    assert not at.exception, [e.value for e in at.exception]
    subset = metrics_from_predictions(frame[frame.true_label.str.startswith(branch + " > ")], run.taxonomy())
    assert cards(at) == {"Top-1 accuracy": f"{subset['top1']:.3f}", "Mistake severity (tree distance)": f"{subset['mistake_severity']:.3f}",
                         "hdist@5": f"{subset['hdist@5']:.3f}", "semsim@5": f"{subset['semsim@5']:.3f}"}
    assert any(f"of {len(frame):,} test items that match the filters" in c.value for c in at.caption)
