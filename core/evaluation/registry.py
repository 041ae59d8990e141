"""The metrics, declared once (METHOD.md, 'Metrics'): key, label for people, which direction is
better and what the number means in plain words. `metrics.evaluate`, the CLI, the run tables, sweeps,
comparisons and the pages read these; a test checks that `evaluate` returns exactly the evaluated keys.

Pure Python (no numpy), so the CLI and the pages can read it without importing the maths."""

from __future__ import annotations

from dataclasses import dataclass

TOP_K = 5  # the k of top-k, hdist@k, semsim@k and neighbor_hits@k, and the answers a run keeps per item
NEIGHBORS = 20  # METHOD.md's N_20: the semantic neighbourhood that neighbor_hits counts
TARGET_ACCURACY = 0.95  # the guaranteed-accuracy target every run reports (METHOD.md; more on request)
RESAMPLES = 2000  # item resamples of the paired bootstrap that compares two runs (comparison.py)


def selective_names(target: float) -> tuple[str, str, str]:
    """The keys of the metrics at target accuracy `target`: hacc@a, coverage@a, leaf_rate@a."""
    return f"hacc@{target:g}", f"coverage@{target:g}", f"leaf_rate@{target:g}"


@dataclass(frozen=True)
class Metric:
    """`direction`: "max" when higher is better, "min" when lower is, None for a count or a fitted
    value that is not a score. `evaluated`: returned by `metrics.evaluate` (else added by the run).
    `shown`: printed in a run's report and kept in its summary (the others are details)."""

    key: str
    label: str
    direction: str | None
    meaning: str
    evaluated: bool = True
    shown: bool = True
    selective: bool = False  # added by the run's guaranteed-accuracy answers (core/evaluation/selective.py)

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "min"


METRICS: dict[str, Metric] = {m.key: m for m in (  # in the order evaluate returns them and a report prints them
    Metric("n", "Items", None, "items scored", shown=False),
    Metric("top1", "Top-1 accuracy", "max", "share of items whose first answer is the true category"),
    Metric(f"top{TOP_K}", f"Top-{TOP_K} accuracy", "max", f"share of items whose true category is among the first {TOP_K} answers"),
    Metric("mistake_severity", "Mistake severity (tree distance)", "min",
           "mean tree distance from a wrong first answer to the true category (how far off a mistake is)"),
    Metric(f"hdist@{TOP_K}", f"hdist@{TOP_K}", "min",
           f"mean tree distance of the first {TOP_K} answers to the true category (a correct answer counts 0)"),
    Metric(f"semsim@{TOP_K}", f"semsim@{TOP_K}", "max",
           f"mean semantic similarity of the first {TOP_K} answers to the true category"),
    Metric(f"neighbor_hits@{TOP_K}", f"neighbor_hits@{TOP_K}", "max",
           f"how many of the first {TOP_K} answers are the true category or one of its {NEIGHBORS} nearest neighbours in meaning"),
    Metric("ece", "Calibration error", "min", "expected calibration error of the calibrated top-1 confidence"),
    Metric("ece_raw", "Calibration error before scaling", "min",
           "expected calibration error of the top-1 confidence before temperature scaling", evaluated=False),
    Metric("temperature", "Calibration temperature", None, "the softmax temperature fitted on the validation split",
           evaluated=False),
    Metric("hier_precision", "Hierarchical precision", "max",
           "share of the first answer's ancestors that are the true category's", shown=False),
    Metric("hier_recall", "Hierarchical recall", "max", "share of the true category's ancestors that the first answer has",
           shown=False),
    Metric("hier_f1", "Hierarchical F1", "max", "F1 of the first answer with each category counted with its ancestors"),
    *(Metric(key, label, "max", meaning, evaluated=False, selective=True) for key, label, meaning in zip(
        selective_names(TARGET_ACCURACY),
        (f"Hierarchical accuracy @{TARGET_ACCURACY:g}", f"Coverage @{TARGET_ACCURACY:g}", f"Leaf rate @{TARGET_ACCURACY:g}"),
        (f"share of answers that are right at the level given (the true category or an ancestor) when answers back off "
         f"up the tree to guarantee {TARGET_ACCURACY:g} accuracy",
         "mean specificity of those answers (1 at a leaf, 0 for 'no category')",
         "share of those answers given at a leaf"), strict=True)),
    Metric("hAURC", "hAURC", "min", "area under the hierarchical risk-coverage curve (error against coverage as the "
           "back-off threshold rises)", evaluated=False, selective=True),
)}
# accuracy and how far off the mistakes are: what CRM re-ranking changes, what the paired bootstrap
# compares, what a runs listing shows; HEADLINE adds the top-k's meaning (the Errors page's cards)
KEY_METRICS = ("top1", "mistake_severity", f"hdist@{TOP_K}")
HEADLINE = (*KEY_METRICS, f"semsim@{TOP_K}")
# a run's summary: the shown metrics that `evaluate` computes
SUMMARY_KEYS = tuple(m.key for m in METRICS.values() if m.shown and (m.evaluated or m.selective))
SELECTIVE_KEYS = tuple(m.key for m in METRICS.values() if m.selective)
SELECTIVE_PREFIXES = ("hacc@", "coverage@", "leaf_rate@")  # the keys of targets beyond the default one


def evaluated_keys() -> tuple[str, ...]:
    """The keys `metrics.evaluate` returns (with ancestors given), in registry order."""
    return tuple(m.key for m in METRICS.values() if m.evaluated)


def objective_keys() -> tuple[str, ...]:
    """What a sweep trial reports and an objective may name: evaluate's keys and the guaranteed-accuracy ones."""
    return (*evaluated_keys(), *SELECTIVE_KEYS)


def shown_keys() -> tuple[str, ...]:
    """What a run's report prints, in order: the summary with the calibration details."""
    return tuple(m.key for m in METRICS.values() if m.shown)


BETTER = {"max": "higher is better", "min": "lower is better", None: "not a score"}
# what a table column holds beside the metric's own key: the runs table and a run's history name some
# columns after where the number comes from (CRM's re-ranked answers, the validation split)
PREFIXES = {"crm_": "after CRM re-ranking", "val_": "on the validation split"}
ALIASES = {"calibration_temperature": "temperature", "semsim5": f"semsim@{TOP_K}"}


def metric_for(column: str) -> tuple[Metric, str] | None:
    """(the metric a column holds, where it comes from or "") for a metric key or a prefixed or
    aliased column name ('crm_mistake_severity', 'val_top1', 'calibration_temperature'); None otherwise."""
    where = ""
    for prefix, words in PREFIXES.items():
        if column.startswith(prefix) and column not in METRICS:
            column, where = column[len(prefix):], words
            break
    metric = METRICS.get(ALIASES.get(column, column))
    return None if metric is None else (metric, where)


def explain(column: str) -> str | None:
    """A column's plain meaning for a tooltip: 'Top-1 accuracy (higher is better): share of ...'."""
    found = metric_for(column)
    if found is None:
        return None
    metric, where = found
    return f"{metric.label}{' ' + where if where else ''} ({BETTER[metric.direction]}): {metric.meaning}"


def glossary() -> list[dict[str, str]]:
    """Every metric once, for a glossary table: key, label, which direction is better, plain meaning."""
    return [{"metric": m.key, "name": m.label, "better": BETTER[m.direction], "meaning": m.meaning} for m in METRICS.values()]
