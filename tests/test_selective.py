"""Hierarchical selective classification (METHOD.md, 'Categorizing at a guaranteed accuracy'), worked
by hand on a three-level toy tree where every step of the climb is known."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from core.evaluation import selective as sel
from core.taxonomy.tree import Taxonomy

# A > A1 > {a, b};  A > A2 > {c};  B > B1 > {d, e}
IDS = ["A", "A1", "a", "b", "A2", "c", "B", "B1", "d", "e"]
PARENT = [-1, 0, 1, 1, 0, 4, -1, 6, 7, 7]
TOY = Taxonomy(IDS, IDS, PARENT)
CLASSES = [2, 3, 5, 8, 9]  # a b c d e
#                    a    b    c    d    e
PROBS = np.array([[.40, .20, .05, .30, .05],   # top a, true b: P(a)=.40 P(A1)=.60 P(A)=.65
                  [.10, .05, .05, .50, .30],   # top d, true e: P(d)=.50 P(B1)=.80 P(B)=.80
                  [.10, .10, .70, .05, .05]])  # top c, true c: P(c)=.70 P(A2)=.70 P(A)=.90
TRUE = np.array([1, 4, 2])
S2, S3 = 1 - math.log(2) / math.log(5), 1 - math.log(3) / math.log(5)  # specificity of L(v) = 2 and 3


@pytest.fixture
def toy() -> sel.Climbs:
    return sel.climbs(PROBS, sel.class_tree(TOY, CLASSES), TRUE)


def test_subtree_probabilities_along_the_top1_chain(toy):
    assert toy.top.tolist() == [0, 3, 2]
    np.testing.assert_allclose(toy.prob, [[1, .65, .60, .40], [1, .80, .80, .50], [1, .90, .70, .70]])
    assert toy.nodes.tolist() == [[-1, 0, 1, 2], [-1, 6, 7, 8], [-1, 0, 4, 5]]
    assert toy.sizes.tolist() == [[5, 3, 2, 1], [5, 2, 2, 1], [5, 3, 1, 1]]
    assert toy.correct.tolist() == [[True, True, True, False], [True, True, True, False], [True] * 4]


@pytest.mark.parametrize(("theta", "depth", "correct"), [
    (0.0, [3, 3, 3], [False, False, True]),   # plain top-1
    (0.45, [2, 3, 3], [True, False, True]),   # a (.40) backs off to A1; d (.50) stays
    (0.55, [2, 2, 3], [True, True, True]),    # d backs off to B1 (.80)
    (0.62, [1, 2, 3], [True, True, True]),    # A1 (.60) < .62: up to A (.65)
    (0.75, [0, 2, 1], [True, True, True]),    # A (.65) fails: root; c and A2 (.70) both fail: A (.90)
    (0.85, [0, 0, 1], [True, True, True]),    # B1 and B (.80) fail: root
    (0.95, [0, 0, 0], [True, True, True]),
])
def test_climbing_rule_stops_where_hand_worked(toy, theta, depth, correct):
    a = sel.answers(toy, theta)
    assert a.depth.tolist() == depth
    assert a.correct.tolist() == correct


def test_answer_specificity_leaf_and_probability(toy):
    a = sel.answers(toy, 0.62)
    np.testing.assert_allclose(a.specificity, [S3, S2, 1.0])
    assert a.leaf.tolist() == [False, False, True]
    np.testing.assert_allclose(a.prob, [.65, .80, .70])
    assert a.node.tolist() == [0, 7, 5]
    root = sel.answers(toy, sel.ABOVE_ONE)
    assert root.node.tolist() == [-1, -1, -1] and root.specificity.tolist() == [0, 0, 0] and root.prob.tolist() == [1, 1, 1]


def test_risk_coverage_curve_and_haurc_by_hand(toy):
    curve = sel.risk_coverage(toy)
    np.testing.assert_allclose(curve.theta, [0, .40, .50, .60, .65, .70, .80, .90, sel.ABOVE_ONE])
    np.testing.assert_allclose(curve.risk, [2 / 3, 2 / 3, 1 / 3, 0, 0, 0, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(curve.coverage, [1, 1, (S2 + 2) / 3, (2 * S2 + 1) / 3, (S3 + S2 + 1) / 3, (S2 + 1) / 3,
                                                (S2 + S3) / 3, S3 / 3, 0])
    np.testing.assert_allclose(curve.leaf_rate, [1, 1, 2 / 3, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0])
    # risk is non-zero only above coverage (2 S2 + 1) / 3: two trapezoids, (1 - S2) * 2 / 9 = 2 ln 2 / (9 ln 5)
    assert sel.haurc(curve) == pytest.approx(2 * math.log(2) / (9 * math.log(5)))


def test_curve_totals_match_the_rule_applied_at_every_threshold():
    rng = np.random.default_rng(3)
    names = [f"n{i}" for i in range(60)]
    parent = [-1, -1, -1] + [int(rng.integers(0, i)) for i in range(3, 60)]
    tax = Taxonomy(names, names, parent)
    classes = tax.leaves + [5, 9]  # two internal nodes as classes too
    probs = rng.dirichlet(np.ones(len(classes)) * 0.3, size=200)
    c = sel.climbs(probs, sel.class_tree(tax, classes), rng.integers(0, len(classes), 200))
    curve = sel.risk_coverage(c)
    for row in curve.iloc[::7].itertuples():
        a = sel.answers(c, row.theta)
        assert row.hacc == pytest.approx(a.correct.mean())
        assert row.coverage == pytest.approx(a.specificity.mean())
        assert row.leaf_rate == pytest.approx(a.leaf.mean())


def test_subtree_sums_match_brute_force_also_in_small_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    names = [f"n{i}" for i in range(40)]
    parent = [-1, -1] + [int(rng.integers(0, i)) for i in range(2, 40)]
    tax = Taxonomy(names, names, parent)
    classes = tax.leaves + [1, 7]
    probs = rng.dirichlet(np.ones(len(classes)), size=50).astype(np.float32)
    monkeypatch.setattr(sel, "CELLS", 3 * len(classes))  # three rows per block
    c = sel.climbs(probs, sel.class_tree(tax, classes))
    for i in range(50):
        chain = tax.ancestors(classes[c.top[i]], include_self=True)
        for depth, v in enumerate(chain, start=1):
            under = [j for j, k in enumerate(classes) if v in tax.ancestors(k, include_self=True)]
            assert c.prob[i, depth] == pytest.approx(probs[i, under].sum(), abs=1e-6)
            assert c.sizes[i, depth] == len(under)
        assert np.isnan(c.prob[i, len(chain) + 1:]).all()


def test_internal_class_answer_below_the_truth_is_wrong():
    classes = [2, 3, 1]  # a, b and their parent A1 itself
    c = sel.climbs(np.array([[.45, .30, .25]]), sel.class_tree(TOY, classes), np.array([2]))
    np.testing.assert_allclose(c.prob, [[1, 1, 1, .45]])
    assert c.correct.tolist() == [[True, True, True, False]]  # a is too specific for the truth A1
    assert sel.answers(c, 0.5).depth.tolist() == [2] and sel.answers(c, 0.5).leaf.tolist() == [False]


@pytest.mark.parametrize(("k", "n", "confidence"), [(0, 10, 0.9), (1, 10, 0.9), (45, 45, 0.9), (93, 100, 0.95),
                                                    (950, 1000, 0.9), (3, 3, 0.5)])
def test_clopper_pearson_lower_bound_matches_scipy_binomtest(k, n, confidence):
    exact = binomtest(k, n, alternative="greater").proportion_ci(confidence_level=confidence, method="exact").low
    assert float(sel.lower_bound(k, n, confidence)) == pytest.approx(exact, abs=1e-12)


def test_items_needed_is_the_first_n_whose_perfect_score_reaches_the_target():
    assert sel.items_needed(0.95, 0.9) == 45  # 0.1 ** (1 / 45) = 0.95015; 0.1 ** (1 / 44) = 0.94901
    assert sel.lower_bound(45, 45, 0.9) >= 0.95 > sel.lower_bound(44, 44, 0.9)


def test_fit_threshold_takes_the_smallest_theta_whose_bound_reaches_the_target(toy):
    # 3 items, confidence 0.5: bound(1 of 3) = 0.206, bound(2 of 3) = 0.5, bound(3 of 3) = 0.794
    low = sel.fit_threshold(toy, 0.45, 0.5)
    assert (low.theta, low.hacc, low.n) == (pytest.approx(0.5), pytest.approx(2 / 3), 3)
    assert low.bound == pytest.approx(0.5)
    high = sel.fit_threshold(toy, 0.7, 0.5)
    assert high.theta == pytest.approx(0.6) and high.hacc == 1.0 and high.bound == pytest.approx(0.5 ** (1 / 3))


def test_too_few_calibration_items_says_how_many_are_needed(toy):
    with pytest.raises(sel.SelectiveError, match="3 validation items.*needs at least 45"):
        sel.fit_threshold(toy, 0.95, 0.9)


@pytest.mark.parametrize(("target", "confidence"), [(0.0, 0.9), (1.0, 0.9), (1.5, 0.9), (0.9, 0.0), (0.9, 1.0), (0.9, -1)])
def test_target_and_confidence_must_be_strictly_inside_zero_one(toy, target, confidence):
    with pytest.raises(sel.SelectiveError, match="strictly between 0 and 1"):
        sel.fit_threshold(toy, target, confidence)


def test_metrics_at_thresholds_and_round_trip_of_the_stored_climbs(toy):
    t = sel.fit_threshold(toy, 0.45, 0.5)
    m = sel.metrics_at(toy, [t])
    assert m == pytest.approx({"hacc@0.45": 2 / 3, "coverage@0.45": (S2 + 2) / 3, "leaf_rate@0.45": 2 / 3,
                               "hAURC": 2 * math.log(2) / (9 * math.log(5))})
    back = sel.climbs_from_frame(sel.climbs_frame(toy, "test"), toy.tree, "test")
    np.testing.assert_array_equal(back.prob, toy.prob)
    assert back.top.tolist() == toy.top.tolist() and back.true.tolist() == toy.true.tolist()
    assert sel.level_counts(sel.answers(toy, 0.62), 3).to_dict("list") == {"depth": [0, 1, 2, 3], "items": [0, 1, 1, 1],
                                                                          "leaves": [0, 0, 0, 1]}


def test_large_class_count_without_a_dense_items_by_nodes_matrix():
    names = [f"n{i}" for i in range(6_110)]
    parent = [-1] * 10 + [i // 10 for i in range(100)] + [10 + i // 60 for i in range(6_000)]  # 10 > 100 > 6,000
    tax = Taxonomy(names, names, parent)
    classes = list(range(110, 6_110))
    probs = np.random.default_rng(1).dirichlet(np.ones(6_000), size=2_000).astype(np.float32)
    c = sel.climbs(probs, sel.class_tree(tax, classes))
    assert c.prob.shape == (2_000, 4)
    branch = (np.arange(6_000) // 60) == (c.top[0] // 60)
    assert c.prob[0, 2] == pytest.approx(probs[0, branch].sum(), abs=1e-5)
