"""Paired bootstrap and per-branch comparison (METHOD.md, 'Comparing two runs') on constructed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.evaluation import comparison


def test_constant_paired_shift_has_a_zero_width_interval():
    """Every item's value moves by exactly 0.5: every resample's paired difference is 0.5, so the
    interval is [0.5, 0.5] however spread the values are (an unpaired interval would be wide)."""
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 6, size=500)
    out = comparison.paired_bootstrap(a, a + 0.5, resamples=1000)
    assert out["diff"] == pytest.approx(0.5)
    assert out["lo"] == pytest.approx(0.5) and out["hi"] == pytest.approx(0.5)


def test_top1_interval_matches_the_binomial_answer():
    """The candidate fixes 100 of 1,000 items and breaks none: the paired difference on a resample is
    Binomial(1000, 0.1) / 1000, whose 95% interval is 0.1 +- 1.96 * sqrt(0.1 * 0.9 / 1000) = [0.081, 0.119]."""
    a = np.zeros(1000)
    b = a.copy()
    b[:100] = 1.0
    out = comparison.paired_bootstrap(a, b, resamples=4000, seed=3)
    assert out["diff"] == pytest.approx(0.1)
    half = 1.96 * np.sqrt(0.1 * 0.9 / 1000)
    assert out["lo"] == pytest.approx(0.1 - half, abs=0.004)
    assert out["hi"] == pytest.approx(0.1 + half, abs=0.004)


def test_severity_is_a_mean_over_mistakes_only():
    a = np.array([np.nan, 2.0, 4.0, np.nan])  # NaN: correct items
    b = np.array([np.nan, 2.0, 2.0, np.nan])
    out = comparison.paired_bootstrap(a, b, resamples=200)
    assert (out["baseline"], out["candidate"], out["diff"]) == (3.0, 2.0, -1.0)
    assert out["lo"] <= -0.0 and out["hi"] <= 0.0


def _table(true, preds):
    frame = pd.DataFrame({"id": [f"i{n}" for n in range(len(true))], "true_label": true})
    for r, column in enumerate(zip(*preds, strict=True)):
        frame[f"pred_{r + 1}"] = list(column)
    frame["correct"] = frame["pred_1"] == frame["true_label"]
    return frame


def test_compare_metrics_and_subtrees(small_tree):
    paths = ["A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d"]
    true = ["A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d"]
    base = _table(true, [[p] + [q for q in paths if q != p] + ["A"] for p in ["A > A1 > b", "A > A1 > b", "B > d", "B > d"]])
    cand = _table(true, [[p] + [q for q in paths if q != p] + ["A"] for p in ["A > A1 > a", "A > A1 > a", "B > d", "B > d"]])
    for frame in (base, cand):
        y = [small_tree.resolve(t) for t in frame["true_label"]]
        p = [small_tree.resolve(t) for t in frame["pred_1"]]
        frame["tree_distance"] = small_tree.distance(p, y)
    table = comparison.compare_metrics(base, cand, small_tree, resamples=300)
    # baseline: a->b wrong (d=1), b->b right, c->d wrong (d=3), d right; candidate: a right, b->a wrong (1)
    assert table.loc["top1", "baseline"] == 0.5 and table.loc["top1", "candidate"] == 0.5
    assert table.loc["mistake_severity", "baseline"] == 2.0 and table.loc["mistake_severity", "candidate"] == 2.0
    assert table.loc["hdist@5", "diff"] == pytest.approx(0.0)
    subtrees = comparison.compare_subtrees(base, cand).set_index("path")
    assert subtrees.loc["A > A1", "error_rate_change"] == 0.0  # one mistake each, moved from a to b
    assert subtrees.loc["A > A2", "verdict"] == "same"
    assert set(subtrees["depth"]) == {1, 2}


def test_top1_only_tables_give_no_hdist(small_tree):
    frame = _table(["A > A1 > a", "B > d"], [["A > A1 > b"], ["B > d"]])
    frame["tree_distance"] = [1, 0]
    table = comparison.compare_metrics(frame, frame, small_tree, resamples=50)
    assert table.loc["hdist@5", "diff"] is None
    assert table.loc["top1", "diff"] == 0.0


def test_different_items_are_refused(small_tree):
    a = _table(["A > A1 > a", "B > d"], [["A > A1 > a"], ["B > d"]])
    b = a.assign(id=["i0", "other"])
    with pytest.raises(comparison.DifferentItems, match="different items"):
        comparison.compare_metrics(a, b, small_tree)
    with pytest.raises(comparison.DifferentItems, match="different true label"):
        comparison.align(a, a.assign(true_label=["A > A1 > b", "B > d"]))
