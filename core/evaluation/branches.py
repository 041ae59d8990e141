"""Which branches suffer: one row per top-level branch of the true categories, the figures a
merchandiser sorts by (how many mistakes, how often, how far off, how lost, how many labels to check)."""

from __future__ import annotations

import pandas as pd

from core.evaluation.triage import CLASSES
from core.taxonomy.tree import top_level

CROSS = CLASSES[-1]
COLUMNS = ("branch", "items", "mistakes", "error rate", "mean severity", "cross-department share", "label issues")


def branch_table(frame: pd.DataFrame, pred_column: str = "pred_1", distance_column: str = "tree_distance",
                 triage_column: str = "triage") -> pd.DataFrame:
    """Per top-level branch of `true_label`: items, mistakes (`pred_column` != truth), error rate, mean
    tree distance of the mistakes (NaN without any), share of the mistakes that are cross-department
    (NaN without mistakes or a triage column) and likely label errors (0 without a `label_issue`
    column); most mistakes first."""
    wrong = frame[pred_column] != frame["true_label"]
    parts = pd.DataFrame({
        "branch": frame["true_label"].map(top_level),
        "wrong": wrong,
        "severity": frame[distance_column].astype(float).where(wrong),
        "cross": (frame[triage_column] == CROSS).astype(float).where(wrong) if triage_column in frame else float("nan"),
        "issue": frame["label_issue"].astype(bool) if "label_issue" in frame else False,
    })
    grouped = parts.groupby("branch", sort=True)
    table = pd.DataFrame({
        "items": grouped.size(),
        "mistakes": grouped["wrong"].sum().astype(int),
        "error rate": grouped["wrong"].mean(),
        "mean severity": grouped["severity"].mean(),
        "cross-department share": grouped["cross"].mean(),
        "label issues": grouped["issue"].sum().astype(int),
    }).reset_index()
    return table.sort_values(["mistakes", "branch"], ascending=[False, True], kind="stable").reset_index(drop=True)[list(COLUMNS)]
