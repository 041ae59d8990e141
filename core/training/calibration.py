"""Temperature scaling (METHOD.md, 'Calibration'): one scalar tau > 0 fitted on the validation split
by minimising the negative log-likelihood of softmax(z / tau). It changes no ranking, only how far
the probabilities a user sees can be trusted."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

TAU_BOUNDS = (0.05, 20.0)  # log-space search range; soft targets rarely need tau beyond a few


def nll(logits: np.ndarray, labels: np.ndarray, tau: float) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits / tau)."""
    z = np.asarray(logits, dtype=np.float64) / tau
    return float(-log_softmax(z, axis=1)[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The tau minimising validation NLL (1.0 when there is nothing to fit on)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(labels) == 0 or logits.shape[1] < 2:
        return 1.0
    lo, hi = (math.log(b) for b in TAU_BOUNDS)
    result = minimize_scalar(lambda t: nll(logits, labels, math.exp(t)), bounds=(lo, hi), method="bounded",
                             options={"xatol": 1e-4})
    return float(math.exp(result.x))


def calibrated_probabilities(logits: np.ndarray, tau: float) -> np.ndarray:
    """softmax(logits / tau) in float32."""
    if not tau > 0 or not math.isfinite(tau):
        raise ValueError(f"temperature must be a positive finite number; got {tau}")
    return softmax(np.asarray(logits, dtype=np.float64) / tau, axis=1).astype(np.float32)
