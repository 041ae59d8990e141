"""Cost-aware answers (METHOD.md, 'Post-hoc re-ranking'): conditional-risk re-ranking of the classes and the expected
tree distance of an answer, which flags answers for review."""

from __future__ import annotations

import numpy as np

from core.checks import check_finite


def crm_rerank(probs: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Conditional-risk re-ranking: R_k = sum_j p_j c(k, j); returns class indices by increasing risk
    (ties: lower index first), shape (N, C)."""
    p = check_finite("probs", probs)
    c = np.asarray(cost, dtype=np.float32)
    if p.ndim != 2 or c.shape != (p.shape[1], p.shape[1]):
        raise ValueError(f"cost must be ({p.shape[-1]}, {p.shape[-1]}) to match probs; got {c.shape}")
    risk = p @ c.T
    return np.argsort(risk, axis=1, kind="stable")



def answer_risk(probs: np.ndarray, answers: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """METHOD.md's R_k for each row's answer: the expected tree distance sum_j p_j d(answer, j)."""
    return np.einsum("nc,nc->n", probs.astype(np.float64), np.asarray(distance)[answers].astype(np.float64))
