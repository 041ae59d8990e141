"""Likely label errors: cleanlab's selection narrowed by the stated quality bound, on planted errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.evaluation import label_issues


def planted(seed: int = 0):
    """120 items over 4 classes. The model is right and sure on most; 4 labels are planted wrong (the
    model gives the given label 0.5%, under the 1% bound); 10 are model mistakes that cleanlab alone
    would also list (the model prefers another class, but still gives the right label 3%: an honest
    confusion, under the previous 5% bound)."""
    rng = np.random.default_rng(seed)
    real = np.repeat(np.arange(4), 30)
    probs = np.full((120, 4), 0.005)
    probs[np.arange(120), real] = 0.985
    given = real.copy()
    wrong = np.array([3, 33, 63, 93])
    given[wrong] = (real[wrong] + 1 + rng.integers(0, 3, size=len(wrong))) % 4
    hesitant = np.array([5, 15, 35, 45, 65, 75, 95, 105, 110, 25])
    other = (real[hesitant] + 1) % 4
    probs[hesitant] = 0.015
    probs[hesitant, real[hesitant]] = 0.03
    probs[hesitant, other] = 0.94
    return probs / probs.sum(1, keepdims=True), given, wrong, hesitant


def test_planted_errors_are_flagged_and_honest_mistakes_are_not():
    probs, given, wrong, hesitant = planted()
    flags = label_issues.find_issues(probs, given)
    assert set(np.flatnonzero(flags)) == set(wrong)
    quality = label_issues.label_quality(probs, given)
    assert quality[wrong] == pytest.approx(probs[wrong, given[wrong]])  # self-confidence
    assert quality[wrong].max() < quality[hesitant].min()  # the ranking puts planted errors first


def test_flags_are_found_without_forking_a_process_pool(monkeypatch):
    """A forked pool can hang forever under a threaded caller (a Ray Tune trial hung so in
    cleanlab's Pool.terminate); the flags must come from this process alone."""
    import multiprocessing

    def no_pool(*args, **kwargs):
        raise AssertionError("find_issues started a multiprocessing pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    probs, given, wrong, _ = planted()
    assert set(np.flatnonzero(label_issues.find_issues(probs, given))) == set(wrong)


def test_quality_bound_narrows_cleanlab():
    probs, given, wrong, hesitant = planted()
    loose = label_issues.find_issues(probs, given, max_quality=1.0, max_share=1.0)  # cleanlab's own selection
    assert set(np.flatnonzero(loose)) >= set(wrong)
    assert loose[hesitant].any()  # cleanlab alone also lists hesitant mistakes: the bound removes them
    assert not label_issues.find_issues(probs, given)[hesitant].any()


def test_the_share_caps_the_list_lowest_quality_first():
    """10 confident disagreements in 120 items: the 3% budget keeps ceil(3.6) = 4, the four the model
    doubts most (given label at 0.1%) before the six it doubts a little less (0.5%)."""
    probs, given, _, _ = planted()
    extra = np.array([10, 40, 70, 100, 11, 41, 71, 101, 12, 42])
    given[extra] = (given[extra] + 2) % 4
    doubt_most = extra[:4]
    probs[doubt_most, given[doubt_most]] = 0.001
    flags = label_issues.find_issues(probs, given)
    assert flags.sum() == 4 and set(np.flatnonzero(flags)) == set(doubt_most)
    assert label_issues.find_issues(probs, given, max_share=1.0).sum() == 14


def test_classes_absent_from_the_labels_are_handled():
    probs, given, wrong, _ = planted()
    wide = np.hstack([probs * 0.99, np.full((len(probs), 2), 0.005)])  # two classes no item carries
    assert set(np.flatnonzero(label_issues.find_issues(wide, given))) == set(wrong)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one row per label"):
        label_issues.find_issues(np.full((3, 2), 0.5), np.array([0, 1]))
    with pytest.raises(ValueError, match="index the 2 probability columns"):
        label_issues.label_quality(np.full((2, 2), 0.5), np.array([0, 2]))


def test_audit_priority_puts_cross_department_first():
    quality = np.array([0.02, 0.03, 0.9])
    distance = np.array([2, 6, 0])  # sibling, cross-department, correct
    assert list(np.argsort(-label_issues.audit_priority(quality, distance))) == [1, 0, 2]


def test_precision_recall():
    out = label_issues.precision_recall(pd.Series(["a", "b", "z"]), pd.Series(["a", "c", "q"]), pd.Series(["a", "b", "c"]))
    assert out == {"scored": 3, "mislabelled": 2, "flagged": 2, "true_flags": 1, "precision": 0.5, "recall": 0.5}
