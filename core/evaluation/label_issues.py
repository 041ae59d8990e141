"""Likely label errors (METHOD.md, 'Triage'): the given label, not the model, is probably wrong.

Confident learning on out-of-sample probabilities, through cleanlab (the field's standard):
`label_quality` is cleanlab's self-confidence score (the probability the model gives the given
label). cleanlab's own selection (`find_label_issues`) is a long list: with a ~75%-accurate model it
flags a sixth of the items at precision 0.1-0.17 (BENCHMARKS.md, 'Label errors'), mostly the model's
own mistakes and items of tiny classes. Its quality *ranking* is good, so the flag is a short list
taken from it by a stated rule:

    label_issue = cleanlab selects the item AND label_quality < MAX_QUALITY (0.01),
                  keeping at most ceil(MAX_SHARE * N) items (3%), lowest quality first.

The quality bound keeps only confident disagreements; the share is a reviewer's budget that stops a
weak model from flooding the list. Measured on the sample's recorded noise and on a real catalog with
4% planted errors (BENCHMARKS.md). Probabilities must be out-of-sample (a test split, or K-fold
out-of-fold): a model scores its own training labels too well to doubt them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from core.checks import check_finite

# flag only where the (calibrated) model gives the given label under 1%: at 5%, a test split of a catalog with
# ~1,000 classes flagged as many of the model's own confident mistakes as wrong labels (BENCHMARKS.md, 'Label errors')
MAX_QUALITY = 0.01
MAX_SHARE = 0.03  # and at most 3% of the scored items, lowest quality first


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


def find_issues(probs: np.ndarray, labels: np.ndarray, max_quality: float = MAX_QUALITY,
                max_share: float = MAX_SHARE) -> np.ndarray:
    """Boolean per row: cleanlab's `find_label_issues` AND label quality below `max_quality`, at most
    ceil(max_share * N) rows, the lowest quality first."""
    from cleanlab.filter import find_label_issues

    p, y = _check(probs, labels)
    flagged = np.zeros(len(y), dtype=bool)
    present = np.unique(y)
    if len(y) < 2 or len(present) < 2:
        return flagged  # confident learning needs at least two classes to compare
    # cleanlab wants every column to be a class that occurs: restrict (and renormalise) to those
    sub = p[:, present]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    y_sub = np.searchsorted(present, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about classes with few items; expected on a test split
        # n_jobs=1: cleanlab's default forks a multiprocessing pool, which can hang forever when the caller
        # has threads (a Ray Tune trial, the app's server); the per-class pruning is cheap in one process
        flagged = np.asarray(find_label_issues(y_sub, sub, filter_by="prune_by_noise_rate", n_jobs=1), dtype=bool)
    quality = label_quality(p, y)
    flagged &= quality < max_quality
    budget = int(np.ceil(max_share * len(y)))
    if flagged.sum() > budget:
        candidates = np.flatnonzero(flagged)
        flagged[:] = False
        flagged[candidates[np.argsort(quality[candidates], kind="stable")[:budget]]] = True
    return flagged


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
