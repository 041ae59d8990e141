"""Categorizing at a guaranteed accuracy (METHOD.md, 'Categorizing at a guaranteed accuracy'): the
climbing rule of hierarchical selective classification over calibrated class probabilities, the
threshold for a target accuracy from a one-sided Clopper-Pearson bound, the hierarchical
risk-coverage curve and hAURC.

An item's climb is kept as the subtree probability P(v) at each depth of its top-1 class's ancestor
chain (column 0 is the virtual root), so N items never become an N x nodes matrix: with the classes
in depth-first order every subtree is a contiguous run of columns, and one cumulative sum per row
gives every P(v) on the chain."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import TaxolensError
from core.evaluation.registry import SELECTIVE_KEYS, TARGET_ACCURACY
from core.evaluation.registry import selective_names as metric_names

DEFAULT_TARGETS = (TARGET_ACCURACY,)  # the targets every run reports; more on request (train --target-accuracy)
ABOVE_ONE = math.nextafter(1.0, 2.0)  # the threshold that leaves every item at the virtual root
CLIMBS_FILE = "selective.parquet"  # a run's validation climbs, for refitting thresholds without the training data
CELLS = 2**21  # rows x classes summed at a time (16 MB of float64)


class SelectiveError(TaxolensError, ValueError):
    """A target, a confidence or a run that cannot give a guaranteed-accuracy answer; says what to do."""


METRIC_KEYS = SELECTIVE_KEYS


def check_target(target: float, confidence: float) -> None:
    """Both must lie strictly between 0 and 1 (1 would ask for certainty no finite sample gives)."""
    for name, value in (("target accuracy", target), ("confidence", confidence)):
        if not (isinstance(value, int | float) and 0 < value < 1):
            raise SelectiveError(f"the {name} must be strictly between 0 and 1; got {value}")


@dataclass(frozen=True)
class ClassTree:
    """The run's C classes placed in the taxonomy. `order` lists the classes depth-first; for class j
    and depth d+1, `lo[j, d]:hi[j, d]` is the run of `order` positions under j's ancestor at that
    depth (-1 below j's depth), so `hi - lo` is L(v); `node[j, d]` is that ancestor's taxonomy index."""

    order: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    node: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.order)

    @property
    def max_depth(self) -> int:
        return self.node.shape[1]


def class_tree(taxonomy: object, classes: Sequence[int]) -> ClassTree:
    """ClassTree of the taxonomy node indices `classes` (internal nodes allowed)."""
    table = taxonomy.ancestor_table(classes)
    order = np.lexsort(table.T[::-1])  # by the depth-1 ancestor, then depth 2, ...: subtrees are contiguous
    ranked = table[order]
    lo, hi = np.full_like(table, -1), np.full_like(table, -1)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    for d in range(table.shape[1]):
        col = ranked[:, d]
        change = np.r_[True, col[1:] != col[:-1]]
        starts = np.flatnonzero(change)
        ends = np.r_[starts[1:], len(col)]
        run = np.cumsum(change) - 1
        have = table[:, d] >= 0
        lo[:, d] = np.where(have, starts[run][position], -1)
        hi[:, d] = np.where(have, ends[run][position], -1)
    return ClassTree(order, lo, hi, table)


def subtree_probabilities(probs: np.ndarray, top: np.ndarray, tree: ClassTree) -> np.ndarray:
    """(N, D+1) P(v) along each item's chain: column d is the ancestor of its top-1 class at depth d
    (column 0 the virtual root, 1.0), NaN below the class's own depth. A parent never reads below its
    child (float sums are made monotone)."""
    probs, top = np.asarray(probs), np.asarray(top, dtype=np.int64)
    n, c = probs.shape
    out = np.full((n, tree.max_depth + 1), np.nan)
    out[:, 0] = 1.0
    rows = max(1, CELLS // max(c, 1))
    for start in range(0, n, rows):
        block = probs[start:start + rows, tree.order].astype(np.float64)
        cum = np.zeros((len(block), c + 1))
        np.cumsum(block, axis=1, out=cum[:, 1:])
        lo, hi = tree.lo[top[start:start + rows]], tree.hi[top[start:start + rows]]
        have = lo >= 0
        sums = np.take_along_axis(cum, np.where(have, hi, 0), 1) - np.take_along_axis(cum, np.where(have, lo, 0), 1)
        out[start:start + rows, 1:] = np.where(have, sums, np.nan)
    out = np.fmax.accumulate(out[:, ::-1], axis=1)[:, ::-1]
    return np.where(np.isnan(out), np.nan, np.minimum(out, 1.0))


@dataclass(frozen=True)
class Climbs:
    """Items' climbs: `prob` from `subtree_probabilities`, the top-1 class and (for evaluation) the
    true class of each item, on the classes of `tree`. This is what a run stores to refit a threshold."""

    prob: np.ndarray
    top: np.ndarray
    true: np.ndarray | None
    tree: ClassTree

    def __len__(self) -> int:
        return len(self.top)

    @property
    def nodes(self) -> np.ndarray:
        """(N, D+1) taxonomy index of the chain's node at each depth (-1 for the virtual root and below)."""
        return np.c_[np.full(len(self), -1), self.tree.node[self.top]]

    @property
    def sizes(self) -> np.ndarray:
        """(N, D+1) L(v) at each depth: C at the virtual root, 0 below the top-1's depth."""
        size = self.tree.hi[self.top] - self.tree.lo[self.top]
        return np.c_[np.full(len(self), self.tree.n_classes), size]

    @property
    def correct(self) -> np.ndarray:
        """(N, D+1): the chain's node is the true class or one of its ancestors (the root always is)."""
        if self.true is None:
            raise SelectiveError("these climbs have no true classes; correctness cannot be computed")
        mine, theirs = self.tree.node[self.top], self.tree.node[np.asarray(self.true)]
        return np.c_[np.ones(len(self), dtype=bool), (mine == theirs) & (mine >= 0)]

    def specificity(self) -> np.ndarray:
        """(N, D+1) 1 - log L(v) / log C at each depth (0 at the root and below the chain)."""
        size = self.sizes
        return np.where(size > 0, 1.0 - np.log(np.maximum(size, 1)) / math.log(self.tree.n_classes), 0.0)


def climbs(probs: np.ndarray, tree: ClassTree, true: np.ndarray | None = None) -> Climbs:
    """The climbs of items with calibrated class probabilities `probs` (N, C); top-1 ties: lower index."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != tree.n_classes:
        raise SelectiveError(f"probabilities must be (N, {tree.n_classes}); got shape {probs.shape}")
    top = probs.argmax(axis=1)
    return Climbs(subtree_probabilities(probs, top, tree), top, None if true is None else np.asarray(true), tree)


def answer_depth(prob: np.ndarray, theta: float) -> np.ndarray:
    """The climbing rule: from the top-1 class move to the parent while P(v) < theta; the depth where
    it stops (0 = the virtual root, no category). P never decreases upwards, so this is the deepest
    depth whose P reaches theta."""
    reach = np.nan_to_num(prob, nan=-1.0) >= theta
    reach[:, 0] = True
    return prob.shape[1] - 1 - np.argmax(reach[:, ::-1], axis=1)


@dataclass(frozen=True)
class Answers:
    depth: np.ndarray  # 0 = no category
    node: np.ndarray  # taxonomy index; -1 for no category
    prob: np.ndarray  # P(v) of the answer (1.0 at the root)
    specificity: np.ndarray
    leaf: np.ndarray  # the answer is a class with no class under it (L(v) = 1)
    correct: np.ndarray | None


def answers(c: Climbs, theta: float) -> Answers:
    """Each item's answer at threshold theta, with what the metrics need."""
    depth = answer_depth(c.prob, theta)
    at = (np.arange(len(c)), depth)
    return Answers(depth, c.nodes[at], c.prob[at], c.specificity()[at], c.sizes[at] == 1,
                   None if c.true is None else c.correct[at])


def candidate_thresholds(prob: np.ndarray) -> np.ndarray:
    """Every threshold at which some answer changes: 0 (plain top-1), the distinct P values, and just
    above 1 (everything left for a person)."""
    values = prob[:, 1:][~np.isnan(prob[:, 1:])]
    return np.unique(np.r_[0.0, values, ABOVE_ONE])


def totals_at(prob: np.ndarray, values: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """For each theta, the sum over items of `values` (N, D+1) read at each item's answer depth.
    A value's change from depth d-1 to d counts exactly while P(d) >= theta, so sorting the (P, change)
    pairs once prices every threshold (no loop over thresholds)."""
    steps = np.diff(values.astype(np.float64), axis=1)
    p = prob[:, 1:]
    keep = ~np.isnan(p)
    p, steps = p[keep], steps[keep]
    order = np.argsort(p, kind="stable")
    p = p[order]
    tail = np.r_[np.cumsum(steps[order][::-1])[::-1], 0.0]
    return values[:, 0].sum() + tail[np.searchsorted(p, thetas, side="left")]


def risk_coverage(c: Climbs) -> pd.DataFrame:
    """The hierarchical risk-coverage curve: per candidate theta (ascending), hierarchical accuracy,
    risk = 1 - accuracy, coverage (mean specificity) and leaf rate."""
    thetas = candidate_thresholds(c.prob)
    n = len(c)
    hacc = totals_at(c.prob, c.correct, thetas) / n
    return pd.DataFrame({"theta": thetas, "hacc": hacc, "risk": 1.0 - hacc,
                         "coverage": totals_at(c.prob, c.specificity(), thetas) / n,
                         "leaf_rate": totals_at(c.prob, c.sizes == 1, thetas) / n})


def haurc(curve: pd.DataFrame) -> float:
    """Area under risk against coverage (trapezoids, coverage from 0 where every item is at the root
    and risk is 0, to the plain top-1's coverage); lower is better."""
    points = curve.sort_values(["coverage", "risk"])
    return float(np.trapezoid(points["risk"], points["coverage"]))


def lower_bound(correct: np.ndarray | int, n: int, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound at level `confidence` on a success rate from `correct`
    successes in n trials: the delta quantile of Beta(k, n - k + 1) (0 when k = 0)."""
    from scipy.stats import beta  # scipy.stats takes a while to import; only fitting needs it

    k = np.asarray(correct, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1.0 - confidence, k, n - k + 1)
    return np.where(k > 0, bound, 0.0)


def items_needed(target: float, confidence: float) -> int:
    """The fewest calibration items whose bound can reach `target` (all of them correct)."""
    n = max(1, math.ceil(math.log(1.0 - confidence) / math.log(target)))
    while float(lower_bound(n, n, confidence)) < target:
        n += 1
    return n


@dataclass(frozen=True)
class Threshold:
    theta: float
    target: float
    confidence: float
    n: int  # calibration items
    hacc: float  # their hierarchical accuracy at theta
    bound: float  # its Clopper-Pearson lower bound

    def to_dict(self) -> dict:
        return {"threshold": self.theta, "target_accuracy": self.target, "confidence": self.confidence,
                "calibration_items": self.n, "calibration_hacc": self.hacc, "calibration_bound": self.bound}


def fit_threshold(calibration: Climbs, target: float, confidence: float) -> Threshold:
    """The smallest candidate theta whose lower bound on the calibration items' hierarchical accuracy
    is at least `target` (accuracy never falls as theta rises, so the first one is the answer)."""
    check_target(target, confidence)
    n = len(calibration)
    need = items_needed(target, confidence)
    if n < need:
        raise SelectiveError(f"the run has {n} validation items; a guaranteed accuracy of {target:g} at confidence "
                             f"{confidence:g} needs at least {need}: retrain with more data or a larger --val-fraction, "
                             "or ask for a lower target or confidence")
    thetas = candidate_thresholds(calibration.prob)
    right = totals_at(calibration.prob, calibration.correct, thetas)
    bound = lower_bound(np.rint(right), n, confidence)
    i = int(np.argmax(bound >= target))  # the last candidate (all at the root) always reaches it when n >= need
    return Threshold(float(thetas[i]), target, confidence, n, float(right[i] / n), float(bound[i]))


def metrics_at(c: Climbs, thresholds: Sequence[Threshold]) -> dict[str, float]:
    """hacc@a, coverage@a and leaf_rate@a at each fitted threshold, and hAURC, of evaluated climbs."""
    out: dict[str, float] = {}
    for t in thresholds:
        a = answers(c, t.theta)
        hacc, coverage, leaf = metric_names(t.target)
        out |= {hacc: float(a.correct.mean()), coverage: float(a.specificity.mean()), leaf: float(a.leaf.mean())}
    out["hAURC"] = haurc(risk_coverage(c))
    return out


def climbs_frame(c: Climbs, split: str) -> pd.DataFrame:
    """What a run stores: per item of a split ('val' to refit thresholds later, 'test' for the curve and
    the answers the Errors page shows) its top-1 and true class and P at each depth."""
    frame = pd.DataFrame({"split": split, "pred_index": c.top, "true_index": c.true})
    for d in range(1, c.prob.shape[1]):
        frame[f"p_{d}"] = c.prob[:, d]
    return frame


def climbs_from_frame(frame: pd.DataFrame, tree: ClassTree, split: str = "val") -> Climbs:
    """The inverse of `climbs_frame` for one split, on the run's own classes."""
    depths = tree.max_depth
    cols = [f"p_{d}" for d in range(1, depths + 1)]
    missing = [c for c in ("split", "pred_index", "true_index", *cols) if c not in frame]
    if missing:
        raise SelectiveError(f"the stored climbs lack {', '.join(missing)}; retrain the run to store them again")
    frame = frame[frame["split"] == split]
    prob = np.c_[np.ones(len(frame)), frame[cols].to_numpy(dtype=np.float64)]
    return Climbs(prob, frame["pred_index"].to_numpy(np.int64), frame["true_index"].to_numpy(np.int64), tree)


def level_counts(a: Answers, max_depth: int) -> pd.DataFrame:
    """How many answers land at each depth (0 = left for a person) and how many of them are leaves."""
    depth = pd.Series(a.depth)
    counts = depth.value_counts().reindex(range(max_depth + 1), fill_value=0)
    leaves = depth[a.leaf].value_counts().reindex(range(max_depth + 1), fill_value=0)
    return pd.DataFrame({"depth": counts.index, "items": counts.to_numpy(), "leaves": leaves.to_numpy()})


def report_targets(requested: float | None = None) -> list[float]:
    """The targets a run reports: the defaults and the one asked for."""
    return sorted({*DEFAULT_TARGETS, *([requested] if requested is not None else [])})


def guaranteed_accuracy(calibration: Climbs, evaluated: Climbs, targets: Sequence[float],
                        confidence: float) -> tuple[dict, dict, list[dict], list[str]]:
    """Thresholds fitted on `calibration` and the metrics they give on `evaluated` and on the
    calibration items themselves, the thresholds' records, and a note for each target that could
    not be fitted (its metrics are None, so every run lists the same keys)."""
    fitted, notes = [], []
    evaluated_metrics: dict = {}
    for target in targets:
        try:
            fitted.append(fit_threshold(calibration, target, confidence))
        except SelectiveError as exc:
            notes.append(f"{metric_names(target)[0]} not computed: {exc}")
            evaluated_metrics |= dict.fromkeys(metric_names(target))
    calibration_metrics = dict(evaluated_metrics) | (metrics_at(calibration, fitted) if len(calibration) else {})
    evaluated_metrics |= metrics_at(evaluated, fitted)
    return evaluated_metrics, calibration_metrics, [t.to_dict() for t in fitted], notes


def stored_climbs(run: object, split: str = "val") -> Climbs:
    """A trained run's stored climbs of one split ('val' or 'test'), on its own classes and taxonomy."""
    path = run.path / CLIMBS_FILE
    if not path.is_file():
        raise SelectiveError(f"run {run.name} predates guaranteed-accuracy answers: it has no stored validation "
                             f"climbs ({CLIMBS_FILE}); retrain it to get them")
    return climbs_from_frame(pd.read_parquet(path), class_tree(run.taxonomy(), run.class_nodes()), split)


def node_path(taxonomy: object, node: int) -> str:
    """A node's path; "" for the virtual root (no category)."""
    return taxonomy.path_str(int(node)) if node >= 0 else ""


def climb_steps(c: Climbs, row: int, theta: float, taxonomy: object) -> pd.DataFrame:
    """One item's climb from its top-1 class up to its answer: why it backed off (each category's
    subtree probability against theta)."""
    stop = int(answer_depth(c.prob[row:row + 1], theta)[0])
    top = int((~np.isnan(c.prob[row])).sum()) - 1
    steps = [{"depth": d, "category": node_path(taxonomy, c.nodes[row, d]) or "(no category: left for a person)",
              "subtree probability": float(c.prob[row, d]),
              "verdict": "answer" if d == stop else f"below {theta:.3f}: back off"} for d in range(top, stop - 1, -1)]
    return pd.DataFrame(steps)


GROUP_LEAF, GROUP_PERSON = "at a leaf", "left for a person"


def answered_items(predictions: pd.DataFrame, c: Climbs, theta: float, taxonomy: object) -> pd.DataFrame:
    """The predictions table (rows in the climbs' order) with each item's answer at theta, its subtree
    probability, depth, whether it is right, and its group: at a leaf, at level d, or left for a person."""
    a = answers(c, theta)
    group = [GROUP_PERSON if d == 0 else GROUP_LEAF if leaf else f"at level {d}" for d, leaf in zip(a.depth, a.leaf, strict=True)]
    return predictions.reset_index(drop=True).assign(
        answer=[node_path(taxonomy, n) for n in a.node], answer_prob=a.prob, answer_depth=a.depth, answer_correct=a.correct,
        group=group)


def group_counts(answered: pd.DataFrame) -> pd.DataFrame:
    """Items per group (leaf first, deepest level next, a person last), their share and hierarchical accuracy."""
    table = answered.groupby("group").agg(items=("answer_depth", "size"), depth=("answer_depth", "max"),
                                          hacc=("answer_correct", "mean")).reset_index()
    table["order"] = np.where(table.group == GROUP_LEAF, -1, -table.depth)
    table["share"] = table["items"] / table["items"].sum()
    return table.sort_values("order").drop(columns=["order", "depth"]).reset_index(drop=True)[["group", "items", "share", "hacc"]]
