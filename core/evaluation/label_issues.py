"""Likely label errors (METHOD.md, 'Triage'): the given label, not the model, is probably wrong.

Confident learning on out-of-sample probabilities, through cleanlab (the field's standard):
`label_quality` is cleanlab's self-confidence score (the probability the model gives the given
label). cleanlab's own selection (`find_label_issues`) is a long list: with a ~75%-accurate model it
flags a sixth of the items at precision 0.1-0.2 (BENCHMARKS.md, 'Label errors'), mostly the model's
own mistakes. The flag is confident learning's own membership test, made absolute:

    label_issue = the given label's probability is below its class's threshold t_y
                  AND the model's best other class j reaches its own threshold t_j
                  AND the given label's probability is below MAX_QUALITY (0.05)

where t_c is cleanlab's per-class threshold (the mean probability the model gives class c on the items
labelled c): the first two are the off-diagonal of cleanlab's confident joint (the model confidently
puts the item in another class, by that class's own standard, and doubts the given one by its class's
standard); the third keeps a weak model's honest confusions out (calibrated probabilities: the
model gives the given label under 1 in 20). No share cap: the list is as long as the doubts are.
Probabilities must be out-of-sample (a test split, or K-fold out-of-fold): a model scores its own
training labels too well to doubt them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from core.checks import check_finite

MAX_QUALITY = 0.05  # flag only where the model gives the given label under 5% (BENCHMARKS.md, 'Label errors')


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = check_finite("probabilities", probs)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probabilities must be (N, C) with one row per label; got {p.shape} for {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must index the {p.shape[1]} probability columns")
    return p, y


def label_quality(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's self-confidence label quality in [0, 1]: low means the label is likely wrong."""
    from cleanlab.rank import get_label_quality_scores

    p, y = _check(probs, labels)
    if not len(y):
        return np.zeros(0)
    return np.asarray(get_label_quality_scores(y, p, method="self_confidence"), dtype=np.float64)


def find_issues(probs: np.ndarray, labels: np.ndarray, max_quality: float = MAX_QUALITY) -> np.ndarray:
    """Boolean per row: below its class's confident threshold, the best other class above its own, and the
    given label's probability under `max_quality` (the module docstring says why)."""
    from cleanlab.count import get_confident_thresholds

    p, y = _check(probs, labels)
    flagged = np.zeros(len(y), dtype=bool)
    present = np.unique(y)
    if len(y) < 2 or len(present) < 2:
        return flagged  # confident learning needs at least two classes to compare
    # thresholds exist only for classes that occur: restrict (and renormalise) to those
    sub = p[:, present]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    y_sub = np.searchsorted(present, y)
    thresholds = np.asarray(get_confident_thresholds(y_sub, sub), dtype=np.float64)
    rows = np.arange(len(y))
    given = sub[rows, y_sub]
    others = sub.copy()
    others[rows, y_sub] = -1.0
    best = others.argmax(axis=1)  # the model's best answer other than the given label
    confident = (given < thresholds[y_sub]) & (others[rows, best] >= thresholds[best])
    return confident & (label_quality(p, y) < max_quality)


def issue_columns(probs: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The `label_issue` and `label_quality` columns of a predictions table, rows in the given order."""
    return pd.DataFrame({"label_issue": find_issues(probs, labels),
                         "label_quality": label_quality(probs, labels)})


def with_label_issues(frame: pd.DataFrame, probs: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The predictions table with `label_issue` and `label_quality` added (probs and labels row-aligned)."""
    return pd.concat([frame.reset_index(drop=True), issue_columns(probs, labels)], axis=1)


def audit_priority(label_quality: np.ndarray, tree_distance: np.ndarray) -> np.ndarray:
    """Review order for an audit, highest first: how sure the model is that the label is wrong,
    times how far its answer is from the label, so a confident cross-department disagreement comes
    before an equally confident sibling one (a correct answer, distance 0, scores 0)."""
    return (1.0 - np.asarray(label_quality, dtype=np.float64)) * np.asarray(tree_distance, dtype=np.float64)


def precision_recall(flagged_ids: pd.Series, noisy_ids: pd.Series, scored_ids: pd.Series) -> dict:
    """Precision and recall of flagged ids against the known mislabelled ids, over the scored items."""
    scored = set(scored_ids)
    truth = set(noisy_ids) & scored
    flagged = set(flagged_ids) & scored
    hits = len(flagged & truth)
    return {"scored": len(scored), "mislabelled": len(truth), "flagged": len(flagged), "true_flags": hits,
            "precision": hits / len(flagged) if flagged else None, "recall": hits / len(truth) if truth else None}
