import math

import numpy as np
import pytest

from core.evaluation.metrics import evaluate, expected_calibration_error, per_class_table, subtree_rollup
from tests.test_targets import D, S

PROBS = np.array([[0.7, 0.2, 0.1, 0.0],   # y = a: right
                  [0.1, 0.2, 0.6, 0.1],   # y = b: top-1 c (d = 2), b second
                  [0.5, 0.1, 0.1, 0.3]])  # y = d: top-1 a (d = 3), d second
Y = np.array([0, 1, 3])


@pytest.fixture()
def ancestors(small_tree):
    leaves = [small_tree.resolve(p) for p in ("A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d")]
    return small_tree.ancestor_sets(leaves), leaves


def test_every_metric_worked_by_hand(ancestors):
    m = evaluate(PROBS, Y, distance=D, similarity=S, ancestors=ancestors[0], k=2, neighbors=1)
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top2"] == pytest.approx(1.0)
    assert m["mistake_severity"] == pytest.approx(2.5)
    assert m["hdist@2"] == pytest.approx(1.0)  # mean of (0+1)/2, (2+0)/2, (3+0)/2
    assert m["semsim@2"] == pytest.approx((0.9 + 0.7 + 0.55) / 3)
    assert m["neighbor_hits@2"] == pytest.approx(4 / 3)  # N_1(a)=b, N_1(b)=a, N_1(d)=c
    assert m["ece"] == pytest.approx((0.3 + 0.6 + 0.5) / 3)
    assert m["hier_precision"] == pytest.approx(4 / 9)
    assert m["hier_recall"] == pytest.approx(0.5)
    assert m["hier_f1"] == pytest.approx(8 / 17)


def test_embeddings_and_callable_distance_give_the_same_numbers(small_tree, ancestors):
    rng = np.random.default_rng(0)
    e = rng.normal(size=(4, 5)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    leaves = ancestors[1]
    dense = evaluate(PROBS, Y, distance=D, similarity=e @ e.T, k=2, neighbors=2)
    lazy = evaluate(PROBS, Y, distance=lambda a, b: small_tree.distance(a, b, classes=leaves), embeddings=e, k=2, neighbors=2)
    assert dense == pytest.approx(lazy)


def test_perfect_predictions():
    m = evaluate(np.eye(4), np.arange(4), distance=D, similarity=S, k=2, neighbors=1)
    assert m["top1"] == 1 and math.isnan(m["mistake_severity"]) and m["ece"] == pytest.approx(0.0)


def test_crm_ranking_changes_answers_not_confidence():
    ranking = np.array([[1, 0, 2, 3], [1, 2, 0, 3], [3, 0, 1, 2]])
    m = evaluate(PROBS, Y, distance=D, similarity=S, k=2, neighbors=1, ranking=ranking)
    assert m["top1"] == pytest.approx(2 / 3) and m["mistake_severity"] == pytest.approx(1.0)


def test_ece_bins():
    assert expected_calibration_error(np.array([0.95, 0.95]), np.array([True, False])) == pytest.approx(0.45)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"y_true": [0, 1, 4]}, "y_true"),
    ({"y_true": [0, 1]}, "labels but probs"),
    ({"similarity": S[:3, :3]}, "similarity"),
    ({"distance": D[:3, :3]}, "distance"),
    ({"probs": np.full((3, 4), np.nan)}, "probs"),
])
def test_bad_input_names_the_argument(kwargs, word):
    args = {"probs": PROBS, "y_true": Y, "distance": D, "similarity": S} | kwargs
    with pytest.raises(ValueError, match=word):
        evaluate(args.pop("probs"), args.pop("y_true"), **args)


def test_per_class_and_subtree_rollup(small_tree, ancestors):
    leaves = ancestors[1]
    names = [small_tree.path_str(c) for c in leaves]
    table = per_class_table(Y, PROBS.argmax(1), D, names)
    assert table.set_index("category").loc["B > d", "mean_severity"] == 3
    roll = subtree_rollup(table, small_tree, leaves).set_index("name")
    assert roll.loc["A", "support"] == 2 and roll.loc["A", "errors"] == 1
    assert roll.loc["B", "mean_severity"] == 3 and roll.loc["d", "parent"] == small_tree.ids[small_tree.resolve("B")]


def test_evaluate_returns_exactly_the_registered_metrics(ancestors):
    """core/evaluation/registry.py declares every key `evaluate` returns, in its order, with a direction
    that matches the maths: a perfect answer scores the best value of each scored metric."""
    from core.evaluation.registry import METRICS, TOP_K, evaluated_keys

    c = 6
    eye = np.eye(c, dtype=np.float32)
    m = evaluate(eye[[0, 1, 2]], [0, 1, 2], distance=1 - np.eye(c), embeddings=eye, ancestors=[{i} for i in range(c)])
    assert tuple(m) == evaluated_keys()
    assert f"hdist@{TOP_K}" in m and {"ece_raw", "temperature"} <= set(METRICS) - set(m)  # the run adds those two
    wrong = evaluate(eye[[1, 2, 0]], [0, 1, 2], distance=1 - np.eye(c), embeddings=eye, ancestors=[{i} for i in range(c)])
    for key in ("top1", "ece", "hier_f1"):  # the scores a perfect and an always-wrong answer tell apart
        better = max if METRICS[key].direction == "max" else min
        assert m[key] != wrong[key] and better(m[key], wrong[key]) == m[key], key
