"""Triage (METHOD.md, 'Triage'): hand-built pairs where each class is known, on the shared small tree."""

from __future__ import annotations

import pandas as pd
import pytest

from core.evaluation import triage


@pytest.mark.parametrize(("true", "pred", "expected"), [
    ("A > A1 > a", "A > A1 > a", "correct"),
    ("A > A1 > a", "A > A1", "too general"),        # parent of the truth
    ("A > A1 > a", "A", "too general"),             # grandparent: still an ancestor
    ("A > A1", "A > A1 > b", "too specific"),       # child of the truth
    ("A", "A > A2 > c", "too specific"),            # grandchild
    ("A > A1 > a", "A > A1 > b", "sibling"),        # same parent A1
    ("A > A1", "A > A2", "sibling"),                # same parent A
    ("A > A1 > a", "A > A2 > c", "same branch"),    # cousins under A
    ("A > A1 > a", "A > A2", "same branch"),        # an uncle is neither ancestor nor sibling
    ("A > A1 > a", "B > d", "cross-department"),
    ("A", "B", "cross-department"),                 # two top-level nodes: not siblings
    ("B > d", "A", "cross-department"),
])
def test_each_class(small_tree, true, pred, expected):
    assert triage.triage_labels(small_tree, [true], [pred]).tolist() == [expected]


def test_vectorised_frame_and_counts(small_tree):
    frame = pd.DataFrame({"true_label": ["A > A1 > a", "A > A1 > a", "A > A1 > b", "B > d", "A > A2 > c"],
                          "pred_1": ["A > A1 > a", "A > A1 > b", "A > A1", "A > A1 > a", "A > A1 > a"]})
    frame["triage"] = triage.triage_column(frame, small_tree)
    assert frame["triage"].tolist() == ["correct", "sibling", "too general", "cross-department", "same branch"]
    assert triage.counts(frame).to_dict() == {"too general": 1, "too specific": 0, "sibling": 1, "same branch": 1,
                                              "cross-department": 1}


def test_ids_and_unknown_labels(small_tree):
    a, a1 = small_tree.resolve("A > A1 > a"), small_tree.resolve("A > A1")
    ids = [small_tree.ids[a], small_tree.ids[a1]]
    assert triage.triage_labels(small_tree, [ids[0], "A > A1 > a"], [ids[1], "Z > nowhere"]).tolist() == ["too general", "unknown"]
