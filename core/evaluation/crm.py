"""Cost-aware answers (METHOD.md, 'Post-hoc re-ranking'): conditional-risk re-ranking of the classes and the expected
tree distance of an answer, which flags answers for review."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.checks import check_finite
from core.evaluation.schema import top_k


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


def answer_semantic_distance(frame: pd.DataFrame, pred_column: str = "crm_pred_1") -> pd.Series:
    """1 - cosine similarity of the answer in `pred_column` to the truth, read from `sim_r` of the ranked
    answer it equals (the table keeps the similarities of the ranked answers only); NaN where it is none
    of them, so ranking the re-ranked mistakes by semantic distance never shows the plain answer's."""
    out = pd.Series(np.nan, index=frame.index, name="semantic_distance")
    for r in range(1, top_k(frame) + 1):
        sim, pred = f"sim_{r}", f"pred_{r}"
        if sim in frame and pred in frame:
            hit = out.isna() & (frame[pred] == frame[pred_column])
            out[hit] = 1.0 - frame.loc[hit, sim]
    return out
