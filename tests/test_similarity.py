import numpy as np
import pytest

from core.labels.similarity import (
    cosine_similarity,
    default_branch,
    heatmap_branches,
    suspicious_pairs,
    topk_neighbors,
    tree_agreement,
)


def test_topk_breaks_ties_by_lower_index():
    s = np.array([[1.0, 0.5, 0.5, 0.5, 0.9],
                  [0.5, 1.0, 0.2, 0.2, 0.2],
                  [0.5, 0.2, 1.0, 0.7, 0.1],
                  [0.5, 0.2, 0.7, 1.0, 0.1],
                  [0.9, 0.2, 0.1, 0.1, 1.0]], dtype=np.float32)
    idx, val = topk_neighbors(similarity=s, k=3)
    assert idx[0].tolist() == [4, 1, 2]
    assert idx[1].tolist() == [0, 2, 3]
    assert np.allclose(val[0], [0.9, 0.5, 0.5])


def test_blocked_embeddings_path_equals_dense_argsort():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(300, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    idx, _ = topk_neighbors(embeddings=e, k=7, block=64)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    expect = np.argsort(-s, axis=1, kind="stable")[:, :7]
    assert (idx == expect).all()


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="k must be"):
        topk_neighbors(similarity=np.eye(3), k=3)
    with pytest.raises(ValueError, match="NaN"):
        cosine_similarity(np.array([[np.nan, 1.0]]))


def test_agreement_and_suspicious_pairs(small_tree):
    t = small_tree
    leaves = [t.resolve(p) for p in ("A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d")]
    # a~b close (siblings), c close to d although they sit in different departments
    e = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0.05, 0, 0.99]], dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    agree = tree_agreement(e, t, leaves)
    assert agree["pairs"] == 6 and not agree["sampled"]
    pairs = suspicious_pairs(e, t, leaves, k=1)
    assert pairs.iloc[0][["category_a", "category_b"]].tolist() == ["A > A2 > c", "B > d"]
    assert pairs.iloc[0]["tree_distance"] == 3


def test_suspicious_pairs_rank_by_similarity_times_distance(small_tree):
    """b~c (0.95, distance 2) is more suspicious than a~d (0.40, distance 3): 0.95*2/3 = 0.633 > 0.40*3/3."""
    t = small_tree
    leaves = [t.resolve(p) for p in ("A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d")]
    e = np.array([[1, 0, 0], [0, 1, 0], [0, 0.95, np.sqrt(1 - 0.95**2)], [0.4, 0, np.sqrt(1 - 0.4**2)]], dtype=np.float32)
    pairs = suspicious_pairs(e, t, leaves, k=1)
    assert pairs[["category_a", "category_b"]].values.tolist() == [["A > A1 > b", "A > A2 > c"], ["A > A1 > a", "B > d"]]
    assert pairs.suspicion.tolist() == pytest.approx([0.633, 0.4], abs=1e-3)
    assert pairs.tree_distance.tolist() == [2, 3]


def test_heatmap_branches_skip_single_leaves_and_open_on_the_largest_that_fits():
    paths = ["A > x > 1", "A > x > 2", "A > y", "B > z", "C > p", "C > q", "C > r"]
    branches = heatmap_branches(paths)
    assert branches.to_dict() == {"A": 3, "A > x": 2, "C": 3}  # B and B's only leaf: a 1x1 heatmap
    assert default_branch(branches, 3) == "A" and default_branch(branches, 2) == "A > x" and default_branch(branches, 1) == "A > x"
