import numpy as np
import pytest

from core.similarity import cosine_similarity, suspicious_pairs, topk_neighbors, tree_agreement


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


def test_suspicious_pairs_rank_by_similarity_times_tree_distance(small_tree):
    """Issue 12 item 5 in miniature: a fairly similar pair two levels apart (a, c: 0.699, d = 2) outranks a
    weakly similar pair three apart (c, d: 0.335, d = 3). suspicion = s d / d_max, d_max = 3 here."""
    t = small_tree
    leaves = [t.resolve(p) for p in ("A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d")]
    y = 0.335 / np.sqrt(1 - 0.699**2)
    e = np.array([[1, 0, 0], [0, 0, -1], [0.699, np.sqrt(1 - 0.699**2), 0], [0, y, np.sqrt(1 - y**2)]], dtype=np.float32)
    pairs = suspicious_pairs(e, t, leaves, k=2)
    top = pairs.head(2)
    assert top[["category_a", "category_b"]].values.tolist() == [["A > A1 > a", "A > A2 > c"], ["A > A2 > c", "B > d"]]
    assert np.allclose(top.suspicion, [round(0.699 * 2 / 3, 3), round(0.335 * 3 / 3, 3)])
    assert pairs.suspicion.is_monotonic_decreasing


def test_heatmap_branch_choices_and_short_labels():
    from core.similarity import branch_sizes, default_branch, short_labels

    paths = ["A > x > 1", "A > x > 2", "A > y", "B > z > 1", "B > z > 2", "B > z > 3", "C"]
    sizes = branch_sizes(paths)
    assert sizes.to_dict() == {"A > x": 2, "B > z": 3}  # single leaves (A > y, C) are never offered
    assert default_branch(sizes, max_rows=3) == "B > z" and default_branch(sizes, max_rows=2) == "A > x"
    assert default_branch(sizes, max_rows=1) == "A > x"  # nothing fits whole: the smallest
    assert short_labels(["A > x > 1", "B > z > 1", "B > z > 3"]) == ["x > 1", "z > 1", "3"]
