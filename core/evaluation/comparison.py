"""Comparing two runs on the same items (METHOD.md, 'Comparing two runs').

A difference in top-1 of half a point means nothing without its uncertainty; because both runs
scored the same items, the paired bootstrap (resample items, recompute both runs' metric on the
same resample) gives a far tighter, honest interval than two separate ones. A per-branch table says
where the candidate got better or worse. Runs on different items are refused, never aligned loosely."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from core.errors import TaxolensError
from core.evaluation.metrics import rollup_from_predictions
from core.evaluation.registry import KEY_METRICS, RESAMPLES, TOP_K
from core.evaluation.schema import ranked
from core.taxonomy.formats import taxonomy_from_labels
from core.taxonomy.tree import PATH_SEP, Taxonomy

HDIST = f"hdist@{TOP_K}"


class DifferentItems(TaxolensError, ValueError):
    """The two runs were not evaluated on the same items."""


def align(baseline: pd.DataFrame, candidate: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables in the same item order, or DifferentItems saying how they differ."""
    a, b = baseline.set_index(baseline["id"].astype(str)), candidate.set_index(candidate["id"].astype(str))
    only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
    if len(only_a) or len(only_b):
        raise DifferentItems(f"the runs were evaluated on different items ({len(only_a)} only in the baseline, "
                             f"{len(only_b)} only in the other run; e.g. {(list(only_a) + list(only_b))[0]!r}): "
                             "compare runs made on the same data and split")
    b = b.loc[a.index]
    relabelled = (a["true_label"].to_numpy() != b["true_label"].to_numpy()).sum()
    if relabelled:
        raise DifferentItems(f"{relabelled} items have a different true label in the two runs: compare runs made on the same labels")
    return a.reset_index(drop=True), b.reset_index(drop=True)


def per_item(frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Per item the quantities whose mean is each bootstrapped metric: correct (top1), the severity of
    a mistake (NaN when correct: mistake_severity is their mean over mistakes) and the mean tree
    distance of the top k (hdist@k; NaN for every item when the table has fewer than k answers)."""
    out = pd.DataFrame({"top1": frame["correct"].astype(float),
                        "mistake_severity": frame["tree_distance"].where(~frame["correct"].astype(bool)).astype(float)})
    preds = ranked(frame, "pred")
    if len(preds) < TOP_K:
        out[HDIST] = np.nan
        return out
    labels = set(frame["true_label"]).union(*(set(frame[c]) for c in preds[:TOP_K]))
    node = {label: taxonomy.resolve(label) for label in labels}
    if any(v is None for v in node.values()):
        out[HDIST] = np.nan
        return out
    y = frame["true_label"].map(node).to_numpy(dtype=np.int64)
    dists = [taxonomy.distance(frame[c].map(node).to_numpy(dtype=np.int64), y) for c in preds[:TOP_K]]
    out[HDIST] = np.mean(dists, axis=0)
    return out


def _mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (not a warning) where a row has no values."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=-1)
    total = np.where(valid, values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def paired_bootstrap(baseline: np.ndarray, candidate: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                     statistic: Callable[[np.ndarray], np.ndarray] = _mean, chunk: int = 250) -> dict:
    """Difference candidate - baseline of `statistic` (a NaN-ignoring mean by default) with the 2.5 and
    97.5 percentiles of that difference over `resamples` item resamples shared by both runs."""
    a, b = np.asarray(baseline, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two equal-length vectors; got {a.shape} and {b.shape}")
    diff = float(statistic(b) - statistic(a))
    if np.isnan(diff) or len(a) == 0:
        return {"baseline": float(statistic(a)), "candidate": float(statistic(b)), "diff": None, "lo": None, "hi": None}
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, len(a), size=(min(chunk, resamples - start), len(a)))
        diffs.append(statistic(b[idx]) - statistic(a[idx]))
    d = np.concatenate(diffs)
    d = d[~np.isnan(d)]
    lo, hi = np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan)
    return {"baseline": float(statistic(a)), "candidate": float(statistic(b)), "diff": diff,
            "lo": float(lo), "hi": float(hi)}


def paths_taxonomy(*frames: pd.DataFrame) -> Taxonomy:
    """The tree spanned by the full paths in predictions tables: tree distances between those paths
    are the taxonomy's own (they depend only on depths and shared prefixes)."""
    labels = set()
    for frame in frames:
        for column in ["true_label", *ranked(frame, "pred")]:
            labels.update(frame[column].astype(str))
    return taxonomy_from_labels(labels, sep=PATH_SEP)


def compare_runs(baseline: pd.DataFrame, candidate: pd.DataFrame, resamples: int = RESAMPLES,
                 seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The metric differences with intervals and the per-branch table of two predictions tables."""
    taxonomy = paths_taxonomy(baseline, candidate)
    return compare_metrics(baseline, candidate, taxonomy, resamples, seed), compare_subtrees(baseline, candidate)


def compare_metrics(baseline: pd.DataFrame, candidate: pd.DataFrame, taxonomy: Taxonomy,
                    resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per metric: both values, the difference (candidate - baseline) and its 95% interval;
    None where a metric cannot be computed for one of the runs (e.g. hdist@5 for a top-1-only import)."""
    a, b = align(baseline, candidate)
    ia, ib = per_item(a, taxonomy), per_item(b, taxonomy)
    rows = [{"metric": m} | paired_bootstrap(ia[m].to_numpy(), ib[m].to_numpy(), resamples, seed)
            for m in KEY_METRICS]
    table = pd.DataFrame(rows).set_index("metric")
    return table.astype(object).where(table.notna(), None)


def compare_subtrees(baseline: pd.DataFrame, candidate: pd.DataFrame, max_depth: int = 2) -> pd.DataFrame:
    """Per branch (taxonomy nodes down to `max_depth`, from the true labels): support, error rate and
    mean mistake severity in both runs and their change, most improved first; `verdict` is better /
    worse / same by error rate, then severity."""
    a, b = align(baseline, candidate)
    ra, rb = rollup_from_predictions(a), rollup_from_predictions(b)
    keep = ["path", "support", "errors", "error_rate", "mean_severity"]
    table = ra[keep].merge(rb[keep], on=["path", "support"], suffixes=("_baseline", "_candidate"))
    table.insert(1, "depth", table["path"].str.count(PATH_SEP) + 1)
    table = table[table["depth"] <= max_depth].copy()
    table["error_rate_change"] = table["error_rate_candidate"] - table["error_rate_baseline"]
    table["severity_change"] = table["mean_severity_candidate"] - table["mean_severity_baseline"]
    sign = np.sign(table["error_rate_change"].round(12)).where(table["error_rate_change"].round(12) != 0,
                                                                np.sign(table["severity_change"].round(12)))
    table["verdict"] = sign.map({-1.0: "better", 1.0: "worse", 0.0: "same"})
    return table.sort_values(["error_rate_change", "severity_change", "path"], ignore_index=True)
