"""Binary feature-similarity codes (METHOD.md, 'Feature-similarity codes'): the auxiliary task's targets, one
one-hot block per partition of the classes (taxonomy levels, or k-means clusters of the label embeddings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.checks import check_finite


@dataclass(frozen=True)
class FeatureCodes:
    codes: np.ndarray  # (C, B) uint8, exactly one 1 per partition
    boundaries: list[tuple[int, int]]  # [start, end) columns of each partition
    names: list[str]


def _onehot_groups(groups: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(groups, return_inverse=True)
    out = np.zeros((len(groups), inverse.max() + 1), dtype=np.uint8)
    out[np.arange(len(groups)), inverse] = 1
    return out


def feature_codes(source: Literal["taxonomy", "clusters"], *, taxonomy: object = None, classes: Sequence[int] | None = None,
                  embeddings: np.ndarray | None = None, ks: Sequence[int] = (8, 32, 128), seed: int = 0) -> FeatureCodes:
    """Binary feature-similarity codes (METHOD.md): one one-hot block per partition of the classes.

    taxonomy: partition m groups classes by their ancestor at depth m (a class shallower than m is
    its own group); clusters: k-means on the label embeddings for each K in `ks`. Partitions that
    put every class alone, or all in one group, carry no auxiliary signal and are skipped."""
    blocks, names = [], []
    if source == "taxonomy":
        if taxonomy is None or classes is None:
            raise ValueError("taxonomy codes need the taxonomy and the class list")
        classes = np.asarray(classes)
        table = taxonomy.ancestor_table(classes)
        for m in range(1, table.shape[1] + 1):
            groups = np.where(table[:, m - 1] >= 0, table[:, m - 1], classes)
            blocks.append(groups)
            names.append(f"depth {m}")
    elif source == "clusters":
        if embeddings is None:
            raise ValueError("cluster codes need the label embeddings")
        from sklearn.cluster import KMeans

        e = check_finite("embeddings", embeddings)
        for k in ks:
            if 1 < k < len(e):
                blocks.append(KMeans(n_clusters=int(k), n_init=3, random_state=seed).fit_predict(e))
                names.append(f"k-means K={k}")
    else:
        raise ValueError(f"source must be 'taxonomy' or 'clusters'; got {source!r}")
    kept = [(g, n) for g, n in zip(blocks, names, strict=True) if 1 < len(np.unique(g)) < len(g)]
    if not kept:
        raise ValueError("no partition of these classes carries information (every level is one group or all singletons)")
    parts = [_onehot_groups(g) for g, _ in kept]
    edges = np.cumsum([0] + [p.shape[1] for p in parts])
    return FeatureCodes(np.concatenate(parts, axis=1), [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)],
                        [n for _, n in kept])


