import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.evaluation.crm import crm_rerank
from core.labels.codes import feature_codes
from core.labels.kinds import TARGET_KINDS, readers, shaping_settings
from core.labels.targets import (
    KINDS,
    alpha_schedule,
    build_targets,
    effective_neighbors,
)

S = np.array([[1.0, 0.8, 0.3, 0.1],
              [0.8, 1.0, 0.4, 0.2],
              [0.3, 0.4, 1.0, 0.6],
              [0.1, 0.2, 0.6, 1.0]], dtype=np.float32)
# tree distances between the leaves a, b, c, d of the conftest tree
D = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [2, 2, 0, 3], [3, 3, 3, 0]], dtype=np.uint8)


def all_kinds(alpha=0.1, temperature=0.5, k=2, beta=3.0, mix=0.5):
    return {kind: build_targets(kind, similarity=S, distance=D, alpha=alpha, temperature=temperature, k=k, beta=beta, mix=mix)
            for kind in KINDS}


def test_each_kind_reads_exactly_the_settings_the_registry_names():
    """Changing a setting a kind reads (core/labels/kinds.py) moves its targets; any other leaves them
    as they are (the tree kind ignores alpha: its legend must not show it)."""
    base = {"alpha": 0.2, "temperature": 0.5, "k": 2, "beta": 3.0, "mix": 0.5}
    other = {"alpha": 0.4, "temperature": 2.0, "k": 3, "beta": 1.0, "mix": 0.2}
    assert set(TARGET_KINDS) == set(KINDS) and set(shaping_settings()) == set(base)
    for key, kind in TARGET_KINDS.items():
        ref = np.asarray(build_targets(key, similarity=S, distance=D, **base))
        for name in base:
            moved = np.asarray(build_targets(key, similarity=S, distance=D, **(base | {name: other[name]})))
            assert np.allclose(ref, moved) == (name not in kind.reads), (key, name)
    assert readers("alpha") == {"uniform", "knn-uniform", "semantic", "hybrid"} and readers("beta") == {"tree", "hybrid"}


def test_a_setting_the_kind_reads_must_be_given():
    with pytest.raises(ValueError, match="tree targets read beta"):
        build_targets("tree", distance=D)
    with pytest.raises(ValueError, match="semantic targets read alpha, temperature"):
        build_targets("semantic", similarity=S, k=2)
    assert np.allclose(np.asarray(build_targets("onehot", n_classes=4)), np.eye(4))  # one-hot reads nothing


def test_semantic_row_worked_by_hand():
    t = build_targets("semantic", similarity=S, alpha=0.1, temperature=1.0, k=2)
    w = 1 / (1 + math.exp(-0.5))  # softmax of (0.8, 0.3) at T = 1
    assert np.allclose(np.asarray(t)[0], [0.9, 0.1 * w, 0.1 * (1 - w), 0.0], atol=1e-6)
    assert t.neighbors[0].tolist() == [1, 2]


def test_uniform_and_knn_rows_by_hand():
    u = np.asarray(build_targets("uniform", similarity=S, alpha=0.2))
    assert np.allclose(u[2], [0.05, 0.05, 0.85, 0.05])
    knn = np.asarray(build_targets("knn-uniform", similarity=S, alpha=0.2, k=2))
    assert np.allclose(knn[3], [0.0, 0.1, 0.1, 0.8])  # N_2(d) = {c, b}


def test_tree_row_by_hand():
    t = build_targets("tree", distance=D, beta=3.0)
    z = np.exp(-3.0 * np.array([0, 1, 2, 3]) / 3.0)
    assert np.allclose(np.asarray(t)[0], z / z.sum(), atol=1e-6)


def test_limits_from_method():
    knn = np.asarray(build_targets("knn-uniform", similarity=S, alpha=0.3, k=3))
    hot = np.asarray(build_targets("semantic", similarity=S, alpha=0.3, k=3, temperature=1e6))
    assert np.allclose(hot, knn, atol=1e-5)  # T -> infinity
    cold = np.asarray(build_targets("semantic", similarity=S, alpha=0.3, k=3, temperature=1e-4))
    assert np.allclose(cold[0], [0.7, 0.3, 0, 0]) and np.allclose(cold[3], [0, 0, 0.3, 0.7])  # T -> 0
    assert np.allclose(np.asarray(build_targets("tree", distance=D, beta=1e4)), np.eye(4))  # beta -> infinity
    for kind, t in all_kinds(alpha=0.0).items():  # alpha = 0 is one-hot for every kind
        one_hot = t.annealed(0.0) if kind == "tree" else t
        assert np.allclose(np.asarray(one_hot), np.eye(4)), kind


def test_uniform_loss_equals_torch_label_smoothing():
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 4), torch.randint(0, 4, (16,))
    ours = build_targets("uniform", similarity=S, alpha=0.15).loss(logits, labels)
    ref = torch.nn.CrossEntropyLoss(label_smoothing=0.15)(logits, labels)
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_loss_equals_dense_soft_cross_entropy(kind):
    torch.manual_seed(1)
    t = all_kinds()[kind]
    logits, labels = torch.randn(8, 4), torch.randint(0, 4, (8,))
    dense = -(t.gather(labels) * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(t.loss(logits, labels), dense, atol=1e-5)


def test_embeddings_path_matches_similarity_path():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(50, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    a = build_targets("semantic", embeddings=e, alpha=0.2, k=5, temperature=0.2)
    b = build_targets("semantic", similarity=e @ e.T, alpha=0.2, k=5, temperature=0.2)
    assert np.allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert a.nbytes == 50 * 5 * (8 + 4)  # C x k indices and weights, no C x C


@settings(max_examples=40, deadline=None)
@given(c=st.integers(3, 30), d=st.integers(2, 12), seed=st.integers(0, 10_000), alpha=st.floats(0, 1),
       temperature=st.floats(0.01, 10), data=st.data())
def test_rows_are_distributions(c, d, seed, alpha, temperature, data):
    k = data.draw(st.integers(1, c - 1))
    e = np.random.default_rng(seed).normal(size=(c, d)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    for kind in ("uniform", "knn-uniform", "semantic"):
        dense = np.asarray(build_targets(kind, embeddings=e, alpha=alpha, temperature=temperature, k=k))
        assert (dense >= 0).all() and np.allclose(dense.sum(1), 1, atol=1e-5)
        if alpha <= 0.5 or kind == "uniform":  # the true class keeps the largest mass (a neighbour may tie at 0.5)
            assert (np.diagonal(dense) >= dense.max(1) - 1e-6).all()
    dist = np.random.default_rng(seed).integers(1, 5, size=(c, c))
    dist = np.triu(dist, 1) + np.triu(dist, 1).T
    tree = np.asarray(build_targets("tree", distance=dist, beta=data.draw(st.floats(0, 50))))
    assert (tree >= 0).all() and np.allclose(tree.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"similarity": np.where(np.eye(4) > 0, np.nan, S)}, "similarity"),
    ({"embeddings": np.array([[np.inf, 0.0], [0, 1], [1, 0]])}, "embeddings"),
    ({"similarity": S, "k": 4}, "k must"),
    ({"similarity": S, "k": 2, "alpha": 1.5}, "alpha"),
    ({"similarity": S, "k": 2, "temperature": 0.0}, "temperature"),
    ({"similarity": S[:3]}, "square"),
])
def test_bad_input_names_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        build_targets("semantic", **({"alpha": 0.1, "temperature": 0.1, "k": 20} | kwargs))


def test_bad_labels_and_tree_shape():
    with pytest.raises(ValueError, match="labels"):
        build_targets("onehot", n_classes=4).rows([0, 4])
    with pytest.raises(ValueError, match="distance"):
        build_targets("tree", distance=D[:3], beta=3.0)


def test_alpha_schedule():
    assert [alpha_schedule(0.2, t, 10) for t in (0, 5, 10, 12)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert alpha_schedule(0.2, 5, 10, "cosine") == pytest.approx(0.1)
    assert alpha_schedule(0.2, 3, 0) == 0.2  # no curriculum
    t = build_targets("semantic", similarity=S, alpha=0.4, k=2, temperature=0.1)
    assert t.annealed(alpha_schedule(1.0, 5, 10)).alpha == pytest.approx(0.2)


def test_effective_neighbors():
    assert effective_neighbors(build_targets("knn-uniform", similarity=S, alpha=0.1, k=3), 0) == pytest.approx(3.0)
    assert effective_neighbors(build_targets("semantic", similarity=S, alpha=0.1, k=3, temperature=1e-4), 0) == pytest.approx(1.0)


def test_taxonomy_feature_codes_by_hand(small_tree):
    leaves = [small_tree.resolve(p) for p in ("A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d")]
    codes = feature_codes("taxonomy", taxonomy=small_tree, classes=leaves)
    assert codes.codes.tolist() == [[1, 0, 1, 0, 0], [1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [0, 1, 0, 0, 1]]
    assert codes.boundaries == [(0, 2), (2, 5)] and codes.names == ["depth 1", "depth 2"]


def test_cluster_feature_codes_have_one_one_per_partition():
    e = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    codes = feature_codes("clusters", embeddings=e, ks=(4, 8, 128))
    assert len(codes.boundaries) == 2  # K=128 > C is skipped
    assert (codes.codes.sum(1) == 2).all() and codes.codes.shape[1] == 12


def test_crm_rerank_by_hand():
    p = np.array([[0.4, 0.35, 0.25]])
    cost = np.array([[0, 3, 3], [3, 0, 1], [3, 1, 0]])
    # risks: R0 = 1.8, R1 = 1.45, R2 = 1.55
    assert crm_rerank(p, cost)[0].tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="cost"):
        crm_rerank(p, cost[:2])


def test_hybrid_row_worked_by_hand():
    """METHOD.md: (1 - a) onehot + a (l w + (1 - l) v), v the tree row without its diagonal, renormalised."""
    t = build_targets("hybrid", similarity=S, distance=D, alpha=0.2, temperature=1.0, k=2, beta=3.0, mix=0.25)
    w = 1 / (1 + math.exp(-0.5))  # semantic weights of row a over N_2(a) = {b, c} at T = 1
    z = np.exp(-3.0 * np.array([1, 2, 3]) / 3.0)  # tree row of a over b, c, d (d_max = 3), diagonal removed
    v = z / z.sum()
    expected = np.array([0.8, 0.2 * (0.25 * w + 0.75 * v[0]), 0.2 * (0.25 * (1 - w) + 0.75 * v[1]), 0.2 * 0.75 * v[2]])
    assert np.allclose(np.asarray(t)[0], expected, atol=1e-6)
    assert t.nbytes == t.neighbors.nbytes + t.neighbor_weights.nbytes + D.nbytes  # sparse w + the uint8 distances


def test_hybrid_limits_from_method():
    semantic = np.asarray(build_targets("semantic", similarity=S, alpha=0.3, k=2, temperature=0.5))
    hybrid = lambda mix, alpha=0.3: np.asarray(build_targets("hybrid", similarity=S, distance=D, alpha=alpha, k=2,  # noqa: E731
                                                             temperature=0.5, beta=3.0, mix=mix))
    assert np.allclose(hybrid(1.0), semantic, atol=1e-6)  # l = 1 is semantic smoothing
    tree = np.asarray(build_targets("tree", distance=D, beta=3.0))
    off = tree * (1 - np.eye(4))
    spread = 0.7 * np.eye(4) + 0.3 * off / off.sum(1, keepdims=True)
    assert np.allclose(hybrid(0.0), spread, atol=1e-6)  # l = 0 spreads the mass by tree distance
    assert np.allclose(hybrid(0.4, alpha=0.0), np.eye(4))  # a = 0 is one-hot
    sharp = np.asarray(build_targets("hybrid", similarity=S, distance=D, alpha=0.3, k=2, temperature=0.1, beta=1e4, mix=0.0))
    assert np.isfinite(sharp).all() and np.allclose(sharp[0], [0.7, 0.3, 0, 0], atol=1e-6)  # large beta: nearest in the tree


def test_hybrid_needs_distance_and_a_valid_mix():
    hybrid = {"alpha": 0.1, "temperature": 0.1, "k": 2, "beta": 10.0}
    with pytest.raises(ValueError, match="distance"):
        build_targets("hybrid", similarity=S, mix=0.5, **hybrid)
    with pytest.raises(ValueError, match="mix"):
        build_targets("hybrid", similarity=S, distance=D, mix=1.5, **hybrid)


def test_kind_labels_fit_a_select_box():
    """Issue 20, item 16: 'Semantic (similarity-weighted neighb' and 'Hybrid (semant' were cut off at 1440 px."""
    from core.labels.kinds import LABEL_CHARS

    assert all(len(kind.label) <= LABEL_CHARS for kind in TARGET_KINDS.values()), [k.label for k in TARGET_KINDS.values()]
    assert len({kind.label for kind in TARGET_KINDS.values()}) == len(TARGET_KINDS)  # still told apart
