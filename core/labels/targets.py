"""Training targets that carry the taxonomy's meaning (METHOD.md, 'Targets'), stored sparsely.

Row i is the target distribution when the true class is i. Every kind is kept in the form
    row_i = base + main * onehot_i + sum_k weight_ik * onehot_{neighbour_ik}   (smoothing kinds)
    row_i = (1 - alpha) * onehot_i + alpha * softmax_l(-beta * d(i, l) / d_max)  (tree; alpha = 1)
    row_i = (1 - alpha) * onehot_i + alpha * (mix * w_i + (1 - mix) * v_i)      (hybrid)
where alpha is always the mass moved off the one-hot row (the tree kind builds it at 1, METHOD.md's
tree soft labels, and only the curriculum lowers it), mix is the hybrid's semantic share l and v_i
is the tree row with its diagonal removed and renormalised. The hybrid keeps w sparse (C x k) and
the tree part as the uint8 distance matrix it shares with the tree kind, so 20,000 classes with
k = 20 take a few MB, and the loss never materialises a (batch, C) target."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from core.checks import check_finite, check_labels
from core.errors import SettingError
from core.labels.kinds import CURRICULUM_SHAPES, TARGET_KINDS
from core.labels.kinds import kind as target_kind
from core.labels.similarity import topk_neighbors

KINDS = tuple(TARGET_KINDS)


@dataclass(frozen=True)
class SoftTargets:
    kind: str
    n_classes: int
    alpha: float = 0.0  # mass moved off the true class (the tree kind: the share of its tree distribution)
    neighbors: np.ndarray | None = None  # (C, k) int64, nearest first
    neighbor_weights: np.ndarray | None = None  # (C, k) float32, each row sums to 1 (the w_ij of METHOD.md)
    distance: np.ndarray | None = None  # (C, C) uint8 tree distances, tree kind only
    beta: float = 10.0
    mix: float = 1.0  # hybrid kind: l, the share of the smoothing mass spread by semantic similarity (the setting `mix`)

    # ----- structure ---------------------------------------------------------------------------
    @property
    def smoothing(self) -> float:
        """The mass moved off the true class by construction."""
        return self.alpha

    def annealed(self, factor: float) -> SoftTargets:
        """The same targets with the smoothing scaled by `factor` in [0, 1] (the curriculum's a_t / a_0)."""
        return replace(self, alpha=self.alpha * float(min(max(factor, 0.0), 1.0)))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.neighbors, self.neighbor_weights, self.distance) if a is not None)

    def _tree_distribution(self, labels: np.ndarray, without_true: bool = False) -> np.ndarray:
        """METHOD.md's tree soft labels for these rows (dense, (B, C)); `without_true`: the hybrid's
        v_i, the same row with the true class removed and renormalised (as a softmax, so a large
        beta cannot turn it into 0/0)."""
        d = self.distance[labels].astype(np.float32)
        d_max = max(float(self.distance.max()), 1.0)
        logits = -self.beta * d / d_max
        if without_true:
            logits[np.arange(len(labels)), labels] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        rows = np.exp(logits)
        return rows / rows.sum(axis=1, keepdims=True)

    def _tree_rows(self, labels: np.ndarray) -> np.ndarray:
        rows = self._tree_distribution(labels) * self.alpha
        rows[np.arange(len(labels)), labels] += 1.0 - self.alpha
        return rows

    def rows(self, labels: Sequence[int] | np.ndarray) -> np.ndarray:
        """Dense (B, C) float32 targets for these true labels."""
        labels = check_labels(labels, self.n_classes)
        if self.kind == "tree":
            return self._tree_rows(labels)
        out = np.zeros((len(labels), self.n_classes), dtype=np.float32)
        if self.kind == "uniform":
            out += self.alpha / self.n_classes
        if self.kind == "hybrid":
            out += self.alpha * (1.0 - self.mix) * self._tree_distribution(labels, without_true=True)
        main = 1.0 if self.kind == "onehot" else 1.0 - self.alpha
        out[np.arange(len(labels)), labels] += main
        if self.neighbors is not None:
            r = np.repeat(np.arange(len(labels)), self.neighbors.shape[1])
            share = self.mix if self.kind == "hybrid" else 1.0
            np.add.at(out, (r, self.neighbors[labels].ravel()), self.alpha * share * self.neighbor_weights[labels].ravel())
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        dense = self.rows(np.arange(self.n_classes))
        return dense.astype(dtype) if dtype is not None else dense

    def gather(self, labels: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Dense targets for a batch, as a torch tensor (for inspection; the loss stays sparse)."""
        lab = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        return torch.from_numpy(self.rows(lab))

    def sparse_row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and values of row i's non-zero entries beyond a uniform floor (for display)."""
        dense = self.rows([i])[0]
        nz = np.flatnonzero(dense > dense.min()) if target_kind(self.kind).floor else np.flatnonzero(dense)
        order = nz[np.argsort(-dense[nz], kind="stable")]
        return order, dense[order]

    # ----- loss --------------------------------------------------------------------------------
    def torch_buffers(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Move the sparse parts to a device once, so each step only indexes them."""
        out = {}
        if self.neighbors is not None:
            out["neighbors"] = torch.as_tensor(self.neighbors, device=device)
            out["weights"] = torch.as_tensor(self.neighbor_weights, device=device)
        if self.distance is not None:
            d_max = max(float(self.distance.max()), 1.0)
            logits = torch.as_tensor(-self.beta * self.distance.astype(np.float32) / d_max, device=device)
            out["tree_logprob"] = torch.log_softmax(logits, dim=1)
        return out

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean soft cross-entropy  -sum_j y_j log softmax(z)_j  without a dense (B, C) target."""
        logp = torch.log_softmax(logits, dim=1)
        true_logp = logp.gather(1, labels[:, None])[:, 0]
        if self.kind == "onehot":
            return -true_logp.mean()
        if self.kind == "tree":
            buffers = buffers if buffers is not None else self.torch_buffers(logits.device)
            tree = buffers["tree_logprob"][labels].exp()
            per_sample = -(1 - self.alpha) * true_logp - self.alpha * (tree * logp).sum(dim=1)
            return per_sample.mean()
        per_sample = -(1 - self.alpha) * true_logp
        if self.kind == "uniform":
            return (per_sample - self.alpha / self.n_classes * logp.sum(dim=1)).mean()
        buffers = buffers if buffers is not None else self.torch_buffers(logits.device)
        share = self.mix if self.kind == "hybrid" else 1.0
        nb, w = buffers["neighbors"][labels], buffers["weights"][labels]
        per_sample = per_sample - self.alpha * share * (w * logp.gather(1, nb)).sum(dim=1)
        if self.kind == "hybrid" and share < 1.0:
            v = torch.softmax(buffers["tree_logprob"][labels].scatter(1, labels[:, None], -math.inf), dim=1)
            per_sample = per_sample - self.alpha * (1.0 - share) * (v * logp).sum(dim=1)
        return per_sample.mean()


def _check_range(name: str, value: float, lo: float, hi: float, lo_open: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise SettingError(f"{name} must be in {bracket}{lo}, {hi}]; got {value}")
    return value


def _neighbor_source(similarity: np.ndarray | None, embeddings: np.ndarray | None) -> tuple[int, dict]:
    if similarity is not None and embeddings is not None:
        raise SettingError("pass similarity or embeddings, not both")
    if similarity is not None:
        s = check_finite("similarity", similarity)
        if s.ndim != 2 or s.shape[0] != s.shape[1]:
            raise SettingError(f"similarity must be a square (C, C) matrix; got shape {s.shape}")
        return s.shape[0], {"similarity": s}
    if embeddings is not None:
        e = check_finite("embeddings", embeddings)
        if e.ndim != 2:
            raise SettingError(f"embeddings must be a (C, D) matrix; got shape {e.shape}")
        return e.shape[0], {"embeddings": e}
    raise SettingError("this target kind needs similarity (C, C) or label embeddings (C, D)")


def semantic_weights(similarities: np.ndarray, temperature: float) -> np.ndarray:
    """w_ij = softmax over the k neighbours of s_ij / T (row-wise, numerically stable)."""
    z = similarities.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    w = np.exp(z)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def build_targets(kind: str, *, similarity: np.ndarray | None = None, embeddings: np.ndarray | None = None,
                  distance: np.ndarray | None = None, alpha: float | None = None, temperature: float | None = None,
                  k: int | None = None, beta: float | None = None, mix: float | None = None,
                  n_classes: int | None = None) -> SoftTargets:
    """Targets of one kind (see core/labels/kinds.py and METHOD.md). The settings the kind reads must
    be given (their defaults are declared once, in core/settings.py); the others are ignored. `mix`
    is the hybrid's l (1 = semantic, 0 = tree distance). `n_classes` is needed only for onehot/uniform
    when neither similarity, embeddings nor distance says how many classes there are."""
    spec = target_kind(kind)
    given = {"alpha": alpha, "temperature": temperature, "k": k, "beta": beta, "mix": mix}
    missing = [name for name in spec.reads if given[name] is None]
    if missing:
        raise SettingError(f"{kind} targets read {', '.join(missing)}: give a value (core/settings.py declares the defaults)")
    if "alpha" in spec.reads:
        alpha = _check_range("alpha", alpha, 0.0, 1.0)
    if spec.tree:
        d = _check_distance(distance, kind)
        beta = _check_range("beta", beta, 0.0, math.inf)
    if kind == "tree":
        return SoftTargets("tree", d.shape[0], alpha=1.0, distance=d, beta=beta)
    if not spec.neighbours:
        sources = [a.shape[0] for a in (similarity, embeddings, distance) if a is not None]
        c = n_classes or (sources[0] if sources else None)
        if not c:
            raise SettingError("n_classes is needed for onehot or uniform targets without a similarity or embeddings")
        return SoftTargets(kind, int(c), alpha=alpha if spec.smooths else 0.0)
    c, source = _neighbor_source(similarity, embeddings)
    if not isinstance(k, int | np.integer) or not 1 <= k < c:
        raise SettingError(f"k must be an integer in [1, C-1] = [1, {c - 1}]; got {k}")
    idx, sims = topk_neighbors(k=int(k), **source)
    if "temperature" in spec.reads:
        weights = semantic_weights(sims, _check_range("temperature", temperature, 0.0, math.inf, lo_open=True))
    else:
        weights = np.full(idx.shape, 1.0 / k, dtype=np.float32)
    if spec.tree:
        if d.shape[0] != c:
            raise SettingError(f"distance is {d.shape[0]} x {d.shape[0]} but there are {c} classes")
        return SoftTargets(kind, c, alpha=alpha, neighbors=idx, neighbor_weights=weights, distance=d, beta=beta,
                           mix=_check_range("mix", mix, 0.0, 1.0))
    return SoftTargets(kind, c, alpha=alpha, neighbors=idx, neighbor_weights=weights)


def _check_distance(distance: np.ndarray | None, kind: str) -> np.ndarray:
    """The (C, C) tree distances as uint8 (depths are far below 256), or ValueError saying what is wrong."""
    if distance is None:
        raise SettingError(f"distance (the (C, C) tree distance matrix) is required for {kind} targets")
    d = np.asarray(distance)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise SettingError(f"distance must be a square (C, C) matrix; got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise SettingError("distance must hold finite, non-negative values")
    return d.astype(np.uint8)


def alpha_schedule(alpha0: float, epoch: int, curriculum_epochs: int, shape: str = "linear") -> float:
    """Smoothing mass at a 0-based epoch: linear a_0 * max(0, 1 - t/E_c), or its cosine variant
    (the setting `curriculum_shape`)."""
    if curriculum_epochs <= 0:
        return float(alpha0)
    progress = min(max(epoch / curriculum_epochs, 0.0), 1.0)
    if shape == "linear":
        return float(alpha0 * (1.0 - progress))
    if shape == "cosine":
        return float(alpha0 * 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"shape must be one of {', '.join(CURRICULUM_SHAPES)}; got {shape!r}")


def effective_neighbors(targets: SoftTargets, label: int) -> float:
    """exp(entropy) of the smoothing part of one row: how many classes share the mass."""
    if targets.neighbor_weights is None:
        return float(targets.n_classes if targets.kind == "uniform" else 1)
    w = targets.neighbor_weights[label].astype(np.float64)
    w = w[w > 0]
    return float(np.exp(-(w * np.log(w)).sum()))


def effective_neighbors_curve(neighbor_similarities: np.ndarray, temperatures: Sequence[float]) -> np.ndarray:
    """exp(entropy) of the semantic weights of one class's neighbours at each temperature: how many
    neighbours effectively share the smoothing mass (1 as T -> 0, k as T -> infinity)."""
    sims = np.asarray(neighbor_similarities, dtype=np.float64)[None, :]
    out = []
    for t in temperatures:
        w = semantic_weights(sims, _check_range("temperature", t, 0.0, math.inf, lo_open=True))[0].astype(np.float64)
        w = w[w > 0]
        out.append(float(np.exp(-(w * np.log(w)).sum())))
    return np.array(out)


def targets_frame(targets: SoftTargets, class_names: Sequence[str], min_weight: float = 0.0,
                  max_per_row: int | None = None) -> pd.DataFrame:
    """Long-format export: one row per (true class, target class, weight) above `min_weight`, at most
    `max_per_row` per class (largest first). Sparse kinds export their non-zero entries; uniform and
    tree export the entries above the row's floor (uniform: the floor a/C applies to every class)."""
    rows = []
    for i in range(targets.n_classes):
        idx, val = targets.sparse_row(i)
        idx, val = idx[:max_per_row], val[:max_per_row]
        keep = val > min_weight
        rows.append(pd.DataFrame({"true_class": class_names[i], "target_class": np.asarray(class_names, dtype=object)[idx[keep]],
                                  "weight": val[keep]}))
    return pd.concat(rows, ignore_index=True)
