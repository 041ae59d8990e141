"""Severity-aware evaluation (METHOD.md, 'Metrics'): accuracy alongside how far off the mistakes are."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from core.checks import check_finite, check_labels
from core.evaluation.registry import NEIGHBORS, TOP_K
from core.labels.similarity import topk_from_rows
from core.taxonomy.tree import PATH_SEP

Pairwise = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]
ECE_BINS = 15


def pairwise(matrix: Pairwise, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """matrix[a, b] elementwise, for a dense (C, C) array or a function of two index arrays."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    if callable(matrix):
        return np.asarray(matrix(a.ravel(), b.ravel()), dtype=np.float64).reshape(a.shape)
    return np.asarray(matrix)[a, b].astype(np.float64)


def ranked_predictions(probs: np.ndarray, k: int, ranking: np.ndarray | None = None) -> np.ndarray:
    """(N, k) class indices: the given ranking, or the most probable first (ties: lower index)."""
    if ranking is not None:
        return np.asarray(ranking)[:, :k]
    return topk_from_rows(probs, k)[0]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """sum_b |acc_b - conf_b| * n_b / N over equal-width bins (lo, hi] of the top-1 confidence."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += abs(correct[in_bin].mean() - confidence[in_bin].mean()) * in_bin.mean()
    return float(ece)


def hierarchical_f1(y_true: np.ndarray, y_pred: np.ndarray, ancestors: Sequence[set]) -> dict[str, float]:
    """hP, hR, hF with each label augmented by its ancestors (virtual root excluded)."""
    inter = sum(len(ancestors[p] & ancestors[t]) for p, t in zip(y_pred, y_true, strict=True))
    pred_size = sum(len(ancestors[p]) for p in y_pred)
    true_size = sum(len(ancestors[t]) for t in y_true)
    hp = inter / pred_size if pred_size else 0.0
    hr = inter / true_size if true_size else 0.0
    return {"hier_precision": hp, "hier_recall": hr, "hier_f1": 2 * hp * hr / (hp + hr) if hp + hr else 0.0}


def neighbor_table(y_unique: np.ndarray, similarity: np.ndarray | None, embeddings: np.ndarray | None,
                   neighbors: int) -> np.ndarray:
    """(len(y_unique), n) array: row r holds N_n(y_unique[r]), computed only for the classes that occur."""
    if similarity is not None:
        rows = np.asarray(similarity, dtype=np.float32)[y_unique]
    else:
        rows = embeddings[y_unique] @ embeddings.T
    return topk_from_rows(rows, neighbors, exclude=y_unique)[0]


def evaluate(probs: np.ndarray, y_true: Sequence[int], *, distance: Pairwise, similarity: np.ndarray | None = None,
             embeddings: np.ndarray | None = None, ancestors: Sequence[set] | None = None, k: int = TOP_K,
             neighbors: int = NEIGHBORS, ranking: np.ndarray | None = None) -> dict[str, float]:
    """The evaluated metrics of core/evaluation/registry.py (METHOD.md). Semantic similarity comes from a (C, C) `similarity` matrix, or
    from normalised label `embeddings` (C, D) when C is too large for a dense matrix. `ranking`
    (N, >=k) overrides the order of answers, e.g. a CRM re-ranking; confidence stays probs[top-1]."""
    p = check_finite("probs", probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be (N, C); got shape {p.shape}")
    n, c = p.shape
    y = check_labels(y_true, c, "y_true")
    if len(y) != n:
        raise ValueError(f"y_true has {len(y)} labels but probs has {n} rows")
    if (similarity is None) == (embeddings is None):
        raise ValueError("pass exactly one of similarity (C, C) or embeddings (C, D)")
    if similarity is not None:
        similarity = check_finite("similarity", similarity)
        if similarity.shape != (c, c):
            raise ValueError(f"similarity must be ({c}, {c}) to match probs; got {similarity.shape}")
    else:
        embeddings = check_finite("embeddings", embeddings)
        if embeddings.shape[0] != c:
            raise ValueError(f"embeddings must have {c} rows to match probs; got {embeddings.shape[0]}")
    if not callable(distance) and np.shape(distance) != (c, c):
        raise ValueError(f"distance must be ({c}, {c}) to match probs; got {np.shape(distance)}")
    k = min(k, c)
    if not 1 <= neighbors < c:
        neighbors = c - 1
    if ranking is not None and (np.shape(ranking)[0] != n or np.shape(ranking)[1] < k):
        raise ValueError(f"ranking must be ({n}, >= {k}); got {np.shape(ranking)}")

    top = ranked_predictions(p, k, ranking)
    correct_at = top == y[:, None]
    wrong = ~correct_at[:, 0]
    dist = pairwise(distance, top, y[:, None])
    if similarity is not None:
        sims = pairwise(similarity, top, y[:, None])
    else:
        sims = np.einsum("nkd,nd->nk", embeddings[top], embeddings[y])
    hits = correct_at.sum(axis=1)
    if neighbors >= 1:  # a single class has no neighbours
        uniq = np.unique(y)
        hood = neighbor_table(uniq, similarity, embeddings, neighbors)[np.searchsorted(uniq, y)]
        hits = hits + (top[:, :, None] == hood[:, None, :]).any(axis=2).sum(axis=1)
    confidence = p[np.arange(n), top[:, 0]]
    out = {
        "n": int(n),
        "top1": float(correct_at[:, 0].mean()),
        f"top{k}": float(correct_at.any(axis=1).mean()),
        "mistake_severity": float(dist[wrong, 0].mean()) if wrong.any() else math.nan,
        f"hdist@{k}": float(dist.mean()),
        f"semsim@{k}": float(sims.mean()),
        f"neighbor_hits@{k}": float(hits.mean()),
        "ece": expected_calibration_error(confidence, correct_at[:, 0]),
    }
    if ancestors is not None:
        if len(ancestors) != c:
            raise ValueError(f"ancestors must list {c} sets, one per class; got {len(ancestors)}")
        out.update(hierarchical_f1(y, top[:, 0], ancestors))
    return out


def _aggregate_per_class(cls: np.ndarray, correct: np.ndarray, severity: np.ndarray) -> pd.DataFrame:
    """Per true class: support, accuracy, errors, and the mean severity over its mistakes only."""
    frame = pd.DataFrame({"cls": cls, "correct": correct, "severity": np.where(correct, np.nan, severity)})
    grouped = frame.groupby("cls").agg(support=("correct", "size"), accuracy=("correct", "mean"),
                                       mean_severity=("severity", "mean")).reset_index()
    grouped["errors"] = (grouped.support * (1 - grouped.accuracy)).round().astype(int)
    return grouped


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, distance: Pairwise, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per class that occurs: support, accuracy, and the mean severity of its mistakes."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    grouped = _aggregate_per_class(y_true, y_true == y_pred, pairwise(distance, y_pred, y_true))
    grouped.insert(1, "category", [class_names[i] for i in grouped.cls])
    return grouped.sort_values(["errors", "mean_severity"], ascending=False, ignore_index=True)


def subtree_rollup(per_class: pd.DataFrame, taxonomy: object, classes: Sequence[int]) -> pd.DataFrame:
    """Support, errors and error-weighted severity summed over every taxonomy node above the classes:
    rows with id/parent/name that a sunburst or treemap draws directly."""
    support: dict[int, float] = {}
    errors: dict[int, float] = {}
    severity_mass: dict[int, float] = {}
    for row in per_class.itertuples():
        node = int(classes[row.cls])
        sev = 0.0 if math.isnan(row.mean_severity) else row.mean_severity * row.errors
        for a in taxonomy.ancestors(node, include_self=True):
            support[a] = support.get(a, 0) + row.support
            errors[a] = errors.get(a, 0) + row.errors
            severity_mass[a] = severity_mass.get(a, 0.0) + sev
    nodes = sorted(support, key=lambda i: (taxonomy.depth[i], i))
    return pd.DataFrame({
        "id": [taxonomy.ids[i] for i in nodes],
        "parent": [taxonomy.ids[taxonomy.parent[i]] if taxonomy.parent[i] >= 0 else "" for i in nodes],
        "name": [taxonomy.names[i] for i in nodes],
        "path": [taxonomy.path_str(i) for i in nodes],
        "support": [support[i] for i in nodes],
        "errors": [errors[i] for i in nodes],
        "error_rate": [errors[i] / support[i] if support[i] else 0.0 for i in nodes],
        "mean_severity": [severity_mass[i] / errors[i] if errors[i] else 0.0 for i in nodes],
    })


def jsonable(metrics: dict) -> dict:
    """NaN (e.g. no mistakes, so no severity) becomes None so the dict is valid JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def rollup_from_predictions(predictions: pd.DataFrame, pred_column: str = "pred_1",
                            distance_column: str = "tree_distance") -> pd.DataFrame:
    """Error mass over the taxonomy, rebuilt from a predictions file's class paths (the errors page)."""
    from core.taxonomy.formats import taxonomy_from_labels

    taxonomy = taxonomy_from_labels(predictions["true_label"], sep=PATH_SEP)
    classes = np.array([taxonomy.resolve(p) for p in sorted(predictions["true_label"].unique())])
    index = {taxonomy.path_str(int(c)): n for n, c in enumerate(classes)}
    per_class = _aggregate_per_class(predictions["true_label"].map(index).to_numpy(),
                                     (predictions[pred_column] == predictions["true_label"]).to_numpy(),
                                     predictions[distance_column].to_numpy(dtype=float))
    return subtree_rollup(per_class, taxonomy, classes)


def headline_from_predictions(predictions: pd.DataFrame, taxonomy: object | None = None, pred_column: str = "pred_1",
                              distance_column: str = "tree_distance", k: int = TOP_K) -> dict:
    """top1, mistake_severity, hdist@k and semsim@k (METHOD.md) of a predictions table or a filtered part
    of it: the Errors page's cards follow the user's filters. hdist@k and semsim@k need the ranked
    answers (pred_1..k, sim_1..k) and are None for a re-ranked top answer alone or a missing column."""
    n = len(predictions)
    correct = (predictions[pred_column] == predictions["true_label"]).to_numpy()
    dist = predictions[distance_column].to_numpy(dtype=float)
    out = {"top1": float(correct.mean()) if n else None,
           "mistake_severity": float(dist[~correct].mean()) if (~correct).any() else None,
           f"hdist@{k}": None, f"semsim@{k}": None}
    ranked = pred_column == "pred_1" and n > 0
    preds, sims = [f"pred_{r}" for r in range(1, k + 1)], [f"sim_{r}" for r in range(1, k + 1)]
    if ranked and taxonomy is not None and all(c in predictions for c in preds):
        index = {taxonomy.path_str(i): i for i in range(len(taxonomy))}
        true = predictions["true_label"].map(index)
        answers = [predictions[c].map(index) for c in preds]
        if not true.isna().any() and not any(a.isna().any() for a in answers):
            d = np.stack([taxonomy.distance(a.to_numpy(int), true.to_numpy(int)) for a in answers], axis=1)
            out[f"hdist@{k}"] = float(d.mean())
    if ranked and all(c in predictions for c in sims):
        out[f"semsim@{k}"] = float(predictions[sims].to_numpy(dtype=float).mean())
    return out
