"""Chapter 1's sensitivity sweeps and the re-clustering slider (reidlib.pseudo_labels.sweep)."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.cluster import DBSCAN  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from reidlib.pseudo_labels import label_quality  # noqa: E402
from reidlib.pseudo_labels.sweep import ReclusterView, sensitivity_sweep  # noqa: E402
from reidlib.viz import EmbeddingExplorer, Snapshot  # noqa: E402


def blobs(ids=6, per_id=8, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, 8)) * 3
    pids = np.repeat(np.arange(ids), per_id)
    x = centres[pids] + spread * rng.standard_normal((len(pids), 8))
    camids = np.tile(np.arange(per_id) % 3, ids)
    return x.astype(np.float32), pids, camids


def dbscan_at(x):
    return lambda eps: DBSCAN(eps=eps, min_samples=3).fit_predict(x)


def test_sweep_scores_each_value_like_label_quality():
    x, pids, camids = blobs()
    values = [0.01, 0.5, 100.0]
    rows = sensitivity_sweep(dbscan_at(x), values, pids, camids, progress=False)
    assert [r["value"] for r in rows] == values
    for row, eps in zip(rows, values, strict=True):
        expected = label_quality(dbscan_at(x)(eps), pids, camids)
        got = {k: v for k, v in row.items() if k != "value"}
        assert got == pytest.approx(expected, nan_ok=True)
    # far too small: everything is an outlier; right: the ids; far too large: one cluster
    assert rows[0]["outlier_share"] == 1.0
    assert rows[1]["n_clusters"] == 6 and rows[1]["ari"] == pytest.approx(1.0)
    assert rows[2]["n_clusters"] == 1


def test_sweep_rejects_bad_cluster_output_and_empty_values():
    x, pids, _ = blobs()
    with pytest.raises(ValueError, match="integer labels"):
        sensitivity_sweep(lambda v: np.zeros(3, dtype=int), [1], pids, progress=False)
    with pytest.raises(ValueError, match="integer labels"):
        sensitivity_sweep(lambda v: np.zeros(len(pids)), [1], pids, progress=False)
    with pytest.raises(ValueError, match="empty"):
        sensitivity_sweep(dbscan_at(x), [], pids, progress=False)


def test_relabelled_explorer_shares_the_layout():
    x, pids, camids = blobs()
    ex = EmbeddingExplorer([Snapshot(x, "features", pid=pids, camid=camids)], method="pca",
                           cache_dir=None)
    labels = np.where(pids < 3, pids, -1)
    twin = ex.relabelled(0, title="relabelled", pseudo_label=labels)
    assert twin.layout(0) is ex.layout(0)
    assert np.array_equal(twin.snapshots[0].pseudo_label, labels)
    assert np.array_equal(twin.snapshots[0].pid, pids) and twin.snapshots[0].title == "relabelled"
    assert ex.snapshots[0].pseudo_label is None  # the original is untouched
    with pytest.raises(ValueError, match="unknown label arrays"):
        ex.relabelled(0, cluster=labels)
    with pytest.raises(IndexError):
        ex.relabelled(1, pseudo_label=labels)


def test_recluster_view_clusters_each_value_once_and_redraws():
    x, pids, camids = blobs()
    ex = EmbeddingExplorer([Snapshot(x, "features")], method="pca", cache_dir=None)
    calls = []

    def cluster(eps):
        calls.append(eps)
        return dbscan_at(x)(eps)

    view = ReclusterView(ex, cluster, [0.01, 0.5, 100.0], "eps", pids, camids)
    assert view.quality(0.5)["n_clusters"] == 6
    assert adjusted_rand_score(view.view(0.5).snapshots[0].pseudo_label, pids) == 1.0
    view.view(0.5)
    assert calls == [0.5]
    assert "eps = 0.5\n6 clusters" in view.view(0.5).snapshots[0].title
    fig = view.static()
    assert len(fig.axes) == 3 and sorted(calls) == [0.01, 0.5, 100.0]

    box = view.widget("pseudo_label")
    slider, menu = box.children[0].children
    plot = box.children[1]

    def png():
        return base64.b64decode(bytes(plot.value).decode().split(",", 1)[1])

    first = png()
    slider.value = 0.5
    assert png() != first and png()[:8] == b"\x89PNG\r\n\x1a\n"
    at_half = png()
    menu.value = "correct"
    assert png() != at_half
    with pytest.raises(ValueError, match="colour_by"):
        view.widget("nope")


def test_recluster_view_checks_its_inputs():
    x, pids, _ = blobs()
    ex = EmbeddingExplorer([Snapshot(x, "features")], method="pca", cache_dir=None)
    with pytest.raises(ValueError, match="one entry per point"):
        ReclusterView(ex, dbscan_at(x), [0.5], "eps", pids[:-1])
    with pytest.raises(ValueError, match="empty"):
        ReclusterView(ex, dbscan_at(x), [], "eps", pids)
    view = ReclusterView(ex, lambda v: np.zeros(2, dtype=int), [1], "k", pids)
    with pytest.raises(ValueError, match="integer labels"):
        view.view(1)
