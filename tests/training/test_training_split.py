"""Diverse data splitting and cluster purity."""

import numpy as np

from ditmos.training.stages import cluster_purity, split_clusters


def _blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    y = np.repeat([0, 1, 2], 40)
    feats = centres[y] + rng.normal(scale=0.5, size=(120, 2))
    return feats, y


def test_cluster_purity_by_hand():
    clusters = np.array([0, 0, 0, 1, 1, 1])
    y = np.array([0, 0, 1, 2, 2, 2])
    p = cluster_purity(clusters, y, 2, 3)
    assert p["purity"] == 5 / 6
    assert p["per_cluster"] == [2 / 3, 1.0]
    assert p["sizes"] == [3, 3] and p["majority_class"] == [0, 2]


def test_kmeans_split_finds_the_class_blobs_and_is_deterministic():
    feats, y = _blobs()
    a = split_clusters("kmeans", y, 3, feats=feats, n_init=3, seed=1)
    b = split_clusters("kmeans", y, 3, feats=feats, n_init=3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert cluster_purity(a, y, 3, 3)["purity"] == 1.0  # the collapse, in miniature


def test_class_kmeans_puts_every_class_in_every_cluster():
    feats, y = _blobs()
    c = split_clusters("class_kmeans", y, 3, feats=feats, n_init=3, seed=1)
    for k in range(3):
        assert set(y[c == k]) == {0, 1, 2}
    assert cluster_purity(c, y, 3, 3)["purity"] < 0.5


def test_random_split_is_balanced():
    y = np.zeros(100, np.int64)
    c = split_clusters("random", y, 3, seed=5)
    assert sorted(np.bincount(c).tolist()) == [33, 33, 34]
