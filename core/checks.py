"""Input checks shared by every layer (targets, similarity, metrics, label issues): one message per
kind of bad array, raised before any work is done."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_finite(name: str, array: np.ndarray) -> np.ndarray:
    """`array` as float32, or ValueError when it holds NaN or inf (a silent NaN would poison every score)."""
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return array


def check_labels(labels: Sequence[int] | np.ndarray, n_classes: int, name: str = "labels") -> np.ndarray:
    """Class indices as a flat int64 array, or ValueError naming the range they must lie in."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes - 1}]; got values from {labels.min()} to {labels.max()}")
    return labels
