"""One glossary of the metrics (core/evaluation/registry.py; issue 20, item 13): every column a page shows
that holds a metric gets its plain meaning and better direction from the registry, and no page restates one."""

from __future__ import annotations

from pathlib import Path

from core.evaluation.registry import METRICS, TOP_K, explain, glossary, metric_for

ROOT = Path(__file__).resolve().parents[1]


def test_glossary_lists_every_metric_once_with_its_direction():
    rows = glossary()
    assert [r["metric"] for r in rows] == list(METRICS)
    top1 = next(r for r in rows if r["metric"] == "top1")
    assert top1 == {"metric": "top1", "name": "Top-1 accuracy", "better": "higher is better", "meaning": METRICS["top1"].meaning}
    assert next(r for r in rows if r["metric"] == "ece")["better"] == "lower is better"
    assert next(r for r in rows if r["metric"] == "temperature")["better"] == "not a score"


def test_the_runs_tables_column_names_are_explained():
    assert explain("top1") == f"Top-1 accuracy (higher is better): {METRICS['top1'].meaning}"
    assert explain("crm_mistake_severity").startswith("Mistake severity (tree distance) after CRM re-ranking (lower is better)")
    assert explain("calibration_temperature").startswith("Calibration temperature (not a score)")
    assert metric_for("val_top1") == (METRICS["top1"], "on the validation split")
    assert metric_for("val_semsim5")[0] is METRICS[f"semsim@{TOP_K}"]
    assert explain("hier_f1") and explain(f"neighbor_hits@{TOP_K}") and explain(f"hdist@{TOP_K}")
    assert explain("status") is None and explain("run_id") is None


def test_no_page_restates_a_metric_meaning():
    pages = {p.name: p.read_text() for p in [*ROOT.glob("pages/*.py"), ROOT / "app.py"]}
    restated = [(name, m.key) for name, text in pages.items() for m in METRICS.values()
                if len(m.meaning) > 20 and m.meaning.split("{")[0] in text]
    assert not restated, restated
