"""Which branches suffer (core/evaluation/branches.py): a hand-worked table on the shared small tree."""

from __future__ import annotations

import math

import pandas as pd

from core.evaluation import triage
from core.evaluation.branches import COLUMNS, branch_table


def test_branch_table_by_hand(small_tree):
    # A: 4 items, 3 wrong: a sibling (d 1), a cross-department one (d 3) and a too-general one (d 1);
    # B: 2 items, 1 wrong, cross-department (d 3), its label flagged; CRM answers the truth for A's cross one
    frame = pd.DataFrame({
        "true_label": ["A > A1 > a", "A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d", "B > d"],
        "pred_1": ["A > A1 > a", "A > A1 > b", "B > d", "A > A2", "B > d", "A > A1 > a"],
        "tree_distance": [0, 1, 3, 1, 0, 3],
        "crm_pred_1": ["A > A1 > a", "A > A1 > b", "A > A1 > b", "A > A2", "B > d", "A > A1 > a"],
        "crm_tree_distance": [0, 1, 1, 1, 0, 3],
        "label_issue": [False, False, False, False, False, True],
    })
    frame["triage"] = triage.triage_column(frame, small_tree)
    table = branch_table(frame)
    assert table.columns.tolist() == list(COLUMNS)
    assert table.branch.tolist() == ["A", "B"]  # most mistakes first
    a, b = table.iloc[0], table.iloc[1]
    assert (a["items"], a["mistakes"], a["label issues"]) == (4, 3, 0)
    assert a["error rate"] == 0.75 and math.isclose(a["mean severity"], 5 / 3) and math.isclose(a["cross-department share"], 1 / 3)
    assert (b["items"], b["mistakes"], b["error rate"], b["mean severity"], b["cross-department share"], b["label issues"]) == \
        (2, 1, 0.5, 3.0, 1.0, 1)

    crm = frame.assign(triage=triage.answer_triage(frame, small_tree, "crm_pred_1"))
    a = branch_table(crm, "crm_pred_1", "crm_tree_distance").set_index("branch").loc["A"]
    assert (a["mistakes"], a["mean severity"], a["cross-department share"]) == (2, 1.0, 0.0)


def test_a_branch_without_mistakes_and_a_table_without_triage():
    frame = pd.DataFrame({"true_label": ["X > x", "Y > y"], "pred_1": ["X > x", "X > x"], "tree_distance": [0, 2]})
    table = branch_table(frame).set_index("branch")
    assert table.loc["X", "mistakes"] == 0 and math.isnan(table.loc["X", "mean severity"])
    assert math.isnan(table.loc["Y", "cross-department share"]) and table.loc["Y", "label issues"] == 0


def test_answer_triage_uses_the_stored_column_for_the_plain_answer_only(small_tree):
    frame = pd.DataFrame({"true_label": ["A > A1 > a"], "pred_1": ["B > d"], "crm_pred_1": ["A > A1 > b"],
                          "triage": ["stored"]})
    assert triage.answer_triage(frame, small_tree).tolist() == ["stored"]
    assert triage.answer_triage(frame, small_tree, "crm_pred_1").tolist() == ["sibling"]
