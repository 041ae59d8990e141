"""Triage of a mistake (METHOD.md, 'Triage'): what kind of wrong the top answer is.

A merchandiser reads "too general" (the model stopped one level short) very differently from
"cross-department" (the model is lost), so every predictions table carries the class of its top
answer. The rules are applied in METHOD.md's order, the first that holds wins. Two top-level nodes
hang from the virtual root, which is not a category: they count as `cross-department`, not siblings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.taxonomy.tree import Taxonomy

CORRECT = "correct"
CLASSES = ("too general", "too specific", "sibling", "same branch", "cross-department")
UNKNOWN = "unknown"  # a label the taxonomy does not know (never produced for validated tables)


def triage_nodes(taxonomy: Taxonomy, true_nodes: Sequence[int], pred_nodes: Sequence[int]) -> np.ndarray:
    """Triage class per pair of taxonomy node indices; 'correct' where they are equal."""
    y = np.asarray(true_nodes, dtype=np.int64)
    p = np.asarray(pred_nodes, dtype=np.int64)
    if y.shape != p.shape:
        raise ValueError(f"true and predicted nodes differ in length: {len(y)} and {len(p)}")
    out = np.full(len(y), CLASSES[-1], dtype=object)
    if not len(y):
        return out
    table = taxonomy.ancestor_table()  # (nodes, max_depth): ancestor at each depth
    ty, tp = table[y], table[p]
    dy, dp = taxonomy.depth[y], taxonomy.depth[p]
    rows = np.arange(len(y))
    general = (dp < dy) & (ty[rows, dp - 1] == p)
    specific = (dy < dp) & (tp[rows, dy - 1] == y)
    parent_y, parent_p = taxonomy.parent[y], taxonomy.parent[p]
    sibling = (parent_y == parent_p) & (parent_y >= 0)
    same_branch = ty[:, 0] == tp[:, 0]
    # np.select takes the first condition that holds, as METHOD.md's table does
    out = np.select([y == p, general, specific, sibling, same_branch], [CORRECT, *CLASSES[:4]], default=CLASSES[-1])
    return out.astype(object)


def triage_labels(taxonomy: Taxonomy, true_labels: Sequence[str], pred_labels: Sequence[str]) -> np.ndarray:
    """Triage class per pair of labels (paths or ids the taxonomy resolves); 'unknown' where one does not."""
    lookup = {label: taxonomy.resolve(label) for label in set(true_labels) | set(pred_labels)}
    y = np.array([lookup[v] if lookup[v] is not None else -1 for v in true_labels], dtype=np.int64)
    p = np.array([lookup[v] if lookup[v] is not None else -1 for v in pred_labels], dtype=np.int64)
    known = (y >= 0) & (p >= 0)
    out = np.full(len(y), UNKNOWN, dtype=object)
    out[known] = triage_nodes(taxonomy, y[known], p[known])
    return out


def triage_column(frame: pd.DataFrame, taxonomy: Taxonomy, pred_column: str = "pred_1") -> pd.Series:
    """The `triage` column of a predictions table (true_label against `pred_column`)."""
    return pd.Series(triage_labels(taxonomy, frame["true_label"].tolist(), frame[pred_column].tolist()),
                     index=frame.index, name="triage")


def answer_triage(frame: pd.DataFrame, taxonomy: Taxonomy, pred_column: str = "pred_1") -> pd.Series:
    """The triage of the answer the reader is looking at: the stored column for the plain answer, else
    computed for `pred_column` (CRM's re-ranked answer is another mistake, often of another kind)."""
    if pred_column == "pred_1" and "triage" in frame:
        return frame["triage"]
    return triage_column(frame, taxonomy, pred_column)


def counts(frame: pd.DataFrame) -> pd.Series:
    """Mistakes per triage class, every class listed (0 when absent), in METHOD.md's order."""
    wrong = frame.loc[frame["triage"] != CORRECT, "triage"]
    return wrong.value_counts().reindex(list(CLASSES), fill_value=0)


def with_triage(frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """The predictions table with its `triage` column (after `correct`, where the reader looks)."""
    out = frame.drop(columns=["triage"], errors="ignore")
    out.insert(out.columns.get_loc("correct") + 1 if "correct" in out.columns else len(out.columns), "triage",
               triage_column(out, taxonomy))
    return out
