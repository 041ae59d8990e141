"""Cosine similarity between label embeddings, block-wise top-k neighbours (never a dense C x C at
large C), agreement with the tree, and 'suspicious pairs' that are close in meaning but far apart in the tree."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from core.checks import check_finite
from core.taxonomy.tree import PATH_SEP


def cosine_similarity(embeddings: np.ndarray) -> np.ndarray:
    """Dense (C, C) cosine similarity; for small class sets (a heatmap, a branch)."""
    e = check_finite("embeddings", embeddings)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.where(norms > 0, norms, 1.0)
    return e @ e.T


def _topk_exact(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference selection: everything above the k-th value, then the lowest-index ties."""
    n = rows.shape[0]
    kth = -np.partition(-rows, k - 1, axis=1)[:, k - 1]
    above = rows > kth[:, None]
    ties = rows == kth[:, None]
    room = k - above.sum(axis=1)
    chosen = above | (ties & (np.cumsum(ties, axis=1) <= room[:, None]))
    cols = np.nonzero(chosen)[1].reshape(n, k)
    return cols, np.take_along_axis(rows, cols, axis=1)


def topk_from_rows(rows: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row by value, ties broken by the lower column index (METHOD.md's N_k).
    `exclude[r]` is a column to leave out of row r (the class itself).

    torch.topk does the selection; only rows whose k-th value is tied with columns left outside
    the selection (where torch's choice is unspecified) are redone by the exact reference path."""
    import torch

    rows = np.array(rows, dtype=np.float32, copy=True)
    n = rows.shape[0]
    if exclude is not None:
        rows[np.arange(n), exclude] = -np.inf
    extra = int(k < rows.shape[1])  # one more value shows whether the k-th is tied with a column left out
    vals_t, cols_t = torch.topk(torch.from_numpy(rows), k + extra, dim=1)
    vals, cols = vals_t.numpy(), cols_t.numpy()
    ambiguous = vals[:, k - 1] == vals[:, k] if extra else np.zeros(n, dtype=bool)
    vals, cols = vals[:, :k].copy(), cols[:, :k].copy()
    if ambiguous.any():
        cols[ambiguous], vals[ambiguous] = _topk_exact(rows[ambiguous], k)
    order = np.lexsort((cols, -vals), axis=1)
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(vals, order, axis=1)


def topk_neighbors(*, embeddings: np.ndarray | None = None, similarity: np.ndarray | None = None, k: int = 20,
                   block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(C, k) neighbour indices and similarities, excluding each class itself, computed in row blocks."""
    if (embeddings is None) == (similarity is None):
        raise ValueError("pass exactly one of embeddings or similarity")
    source = check_finite("embeddings" if similarity is None else "similarity",
                          embeddings if similarity is None else similarity)
    c = source.shape[0]
    if similarity is not None and source.shape != (c, c):
        raise ValueError(f"similarity must be square, got shape {source.shape}")
    if not 1 <= k < c:
        raise ValueError(f"k must be between 1 and C-1 = {c - 1}, got {k}")
    idx = np.empty((c, k), dtype=np.int64)
    val = np.empty((c, k), dtype=np.float32)
    for start in range(0, c, block):
        stop = min(start + block, c)
        rows = source[start:stop] if similarity is not None else source[start:stop] @ source.T
        idx[start:stop], val[start:stop] = topk_from_rows(rows, k, exclude=np.arange(start, stop))
    return idx, val


def sample_pairs(c: int, max_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All i < j pairs when few enough, else a uniform sample of distinct pairs."""
    total = c * (c - 1) // 2
    if total <= max_pairs:
        i, j = np.triu_indices(c, k=1)
        return i, j
    rng = np.random.default_rng(seed)
    i = rng.integers(0, c, size=max_pairs)
    j = rng.integers(0, c - 1, size=max_pairs)
    j = j + (j >= i)
    return i, j


def tree_agreement(embeddings: np.ndarray, taxonomy: object, classes: Sequence[int], max_pairs: int = 200_000,
                   seed: int = 0) -> dict:
    """Spearman correlation between semantic similarity and negative tree distance over class pairs."""
    e = check_finite("embeddings", embeddings)
    i, j = sample_pairs(len(classes), max_pairs, seed)
    sims = np.einsum("nd,nd->n", e[i], e[j])
    dist = taxonomy.distance(i, j, classes=classes)
    rho = spearmanr(sims, -dist).statistic if len(np.unique(dist)) > 1 else float("nan")
    return {"spearman": float(rho), "pairs": int(len(i)), "sampled": bool(len(i) < len(classes) * (len(classes) - 1) // 2)}


def suspicious_pairs(embeddings: np.ndarray, taxonomy: object, classes: Sequence[int], k: int = 5,
                     limit: int = 50) -> pd.DataFrame:
    """Neighbour pairs that the encoder finds close but the tree puts far apart (candidate mis-filed or
    ambiguously named categories), ranked by suspicion = similarity x tree distance / deepest level:
    1 for identical meaning at the far ends of the tree. Sorting by distance first would rank a weak
    pair (0.33) across departments above a strong one (0.70) across aisles."""
    classes = np.asarray(classes)
    k = min(k, len(classes) - 1)
    idx, val = topk_neighbors(embeddings=embeddings, k=k)
    a = np.repeat(np.arange(len(classes)), k)
    frame = pd.DataFrame({"lo": np.minimum(a, idx.ravel()), "hi": np.maximum(a, idx.ravel()), "similarity": val.ravel()})
    frame = frame.drop_duplicates(["lo", "hi"])
    frame["tree_distance"] = taxonomy.distance(frame.lo.to_numpy(), frame.hi.to_numpy(), classes=classes)
    frame["suspicion"] = frame.similarity * frame.tree_distance / max(taxonomy.max_depth, 1)
    far = frame[frame.tree_distance >= 2].sort_values(["suspicion", "similarity"], ascending=False).head(limit)
    return pd.DataFrame({
        "category_a": [taxonomy.path_str(int(classes[x])) for x in far.lo],
        "category_b": [taxonomy.path_str(int(classes[x])) for x in far.hi],
        "suspicion": far.suspicion.round(3).to_numpy(),
        "similarity": far.similarity.round(3).to_numpy(),
        "tree_distance": far.tree_distance.to_numpy(),
    })


def heatmap_branches(paths: Sequence[str], sep: str = PATH_SEP) -> pd.Series:
    """Leaf count of every branch (a path prefix) holding at least two of the leaf `paths`, in path order:
    the heatmap's choices. A single leaf would be a 1x1 heatmap, which shows nothing."""
    counts: dict[str, int] = {}
    for path in paths:
        parts = path.split(sep)
        for d in range(1, len(parts)):
            prefix = sep.join(parts[:d])
            counts[prefix] = counts.get(prefix, 0) + 1
    series = pd.Series(counts, dtype=np.int64).sort_index()
    return series[series >= 2]


def default_branch(branches: pd.Series, max_rows: int) -> str:
    """The branch the heatmap opens on: the largest that fits in `max_rows` (the first such in path
    order on ties), else the smallest branch of all."""
    fits = branches[branches <= max_rows]
    return str(fits.idxmax() if len(fits) else branches.idxmin())


def label_map(embeddings: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """2-D coordinates of the label embeddings for a map: UMAP (cosine), or PCA when asked or when
    there are too few classes for UMAP's neighbourhood graph."""
    e = check_finite("embeddings", embeddings)
    if method == "umap" and len(e) >= 10:
        import umap

        # 200 epochs from a PCA start: the layout of 5,000 labels in ~2 s once numba has compiled
        return umap.UMAP(n_neighbors=min(15, len(e) - 1), metric="cosine", random_state=seed, n_jobs=1, n_epochs=200,
                         init="pca").fit_transform(e)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(e)
