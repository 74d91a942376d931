"""Visualisation: image grids, Market-1501 ranked lists, the embedding explorer."""

import base64
import io
import os

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.spatial import procrustes  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors  # noqa: E402

from reidlib.data.imageset import ImageSet  # noqa: E402
from reidlib.viz import (  # noqa: E402
    COLOUR_BY,
    EmbeddingExplorer,
    Snapshot,
    image_grid,
    market1501_ranking,
    ranked_list,
    ranked_lists,
)
from reidlib.viz.explorer import OUTLIER_GREY, align_layout, click_pixel  # noqa: E402
from reidlib.viz.grids import MATCH_COLOR, QUERY_COLOR, WRONG_COLOR  # noqa: E402

GREEN, RED, BLUE = to_rgba(MATCH_COLOR), to_rgba(WRONG_COLOR), to_rgba(QUERY_COLOR)


def solid_images(n, h=16, w=8):
    """n images, each one flat colour whose red channel is its row: panels can be identified."""
    images = np.zeros((n, h, w, 3), np.uint8)
    images[..., 0] = np.arange(n)[:, None, None]
    images[..., 1] = 200
    return images


def shown_rows(ax):
    """Which image row an axes shows (the red channel of its flat picture)."""
    return int(np.asarray(ax.images[0].get_array())[0, 0, 0])


def border(ax):
    return to_rgba(ax.spines["top"].get_edgecolor()) if ax.spines["top"].get_visible() else None


def camera_marks(ax):
    return [t.get_text() for t in ax.texts]


# ------------------------------------------------------------------ image grids
def test_image_grid_layout_titles_and_borders():
    images = solid_images(5)
    fig = image_grid(
        images,
        titles=list("abcde"),
        ncols=3,
        border_colors=[MATCH_COLOR, WRONG_COLOR, None, MATCH_COLOR, WRONG_COLOR],
    )
    assert len(fig.axes) == 6  # 2 rows x 3 columns, the last one blank
    drawn = [ax for ax in fig.axes if ax.images]
    assert [shown_rows(ax) for ax in drawn] == [0, 1, 2, 3, 4]
    assert [ax.get_title() for ax in drawn] == list("abcde")
    assert [border(ax) for ax in drawn] == [GREEN, RED, None, GREEN, RED]
    assert not fig.axes[5].axison


def test_image_grid_draws_into_given_axes():
    outer = Figure()
    axes = outer.subplots(2, 2)
    fig = image_grid(solid_images(2), axes=axes[1])
    assert fig is outer and shown_rows(axes[1, 0]) == 0 and shown_rows(axes[1, 1]) == 1
    assert not axes[0, 0].images
    with pytest.raises(ValueError, match="at least 3 axes"):
        image_grid(solid_images(3), axes=axes[0])


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match=r"uint8 array of shape \(N, H, W, 3\)"):
        image_grid(np.zeros((2, 8, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        image_grid(np.zeros((8, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="titles has 1 entries for 2 images"):
        image_grid(solid_images(2), titles=["x"])


# ------------------------------------------------------------------ ranked lists
# A hand-made gallery; the query is pid 1 seen by camera 1.
G_PIDS = np.array([1, 1, 2, -1, 1, 0, 3, 1])
G_CAMS = np.array([1, 2, 1, 2, 1, 2, 2, 3])
#   row:      0    1    2    3    4    5    6    7
DIST = np.array([0.1, 0.5, 0.2, 0.05, 0.3, 0.4, 0.9, 0.6])
# by distance: 3 (junk), 0 (pid 1 cam 1: removed), 2, 4 (pid 1 cam 1: removed), 5, 1, 7, 6
EXPECTED_ORDER = [2, 5, 1, 7, 6]
EXPECTED_MATCH = [False, False, True, True, False]


def test_market1501_ranking_hand_made_case():
    order, matches = market1501_ranking(DIST, 1, 1, G_PIDS, G_CAMS)
    assert order.tolist() == EXPECTED_ORDER
    assert matches.tolist() == EXPECTED_MATCH


def test_market1501_ranking_matches_brute_force():
    rng = np.random.default_rng(3)
    g_pids, g_cams = rng.integers(-1, 6, 60), rng.integers(1, 4, 60)
    for _ in range(20):
        dist, q_pid, q_cam = rng.random(60), int(rng.integers(1, 6)), int(rng.integers(1, 4))
        expected = [
            j
            for j in sorted(range(60), key=lambda j: (dist[j], j))
            if g_pids[j] != -1 and not (g_pids[j] == q_pid and g_cams[j] == q_cam)
        ]
        order, matches = market1501_ranking(dist, q_pid, q_cam, g_pids, g_cams)
        assert order.tolist() == expected
        assert matches.tolist() == [g_pids[j] == q_pid for j in expected]


def test_ranked_lists_filters_and_colours():
    gallery = ImageSet(solid_images(8), G_PIDS, G_CAMS)
    query = ImageSet(solid_images(2) + 100, np.array([2, 1]), np.array([2, 1]))
    distmat = np.stack([np.linspace(1, 0, 8), DIST])  # row 0: farthest row first
    top_k = 4
    fig = ranked_lists(distmat, query, gallery, [1, 0], top_k=top_k)
    assert len(fig.axes) == 2 * (1 + top_k)
    row = fig.axes[: 1 + top_k]  # query 1: the hand-made case
    assert shown_rows(row[0]) == 101 and border(row[0]) == BLUE
    assert camera_marks(row[0]) == ["c2"] and "pid 1" in row[0].get_title()  # camid 1 -> "c2"
    assert [shown_rows(ax) for ax in row[1:]] == EXPECTED_ORDER[:top_k]
    assert [border(ax) for ax in row[1:]] == [GREEN if m else RED for m in EXPECTED_MATCH[:top_k]]
    expected = [[f"c{G_CAMS[j] + 1}"] for j in EXPECTED_ORDER[:4]]
    assert [camera_marks(ax) for ax in row[1:]] == expected
    assert [ax.get_title() for ax in row[1:]] == ["1", "2", "3", "4"]
    # query 0 (pid 2, camera 2): gallery 7, 6, 5, 4 by distance; no junk, row 2 is pid 2 in cam 1
    row = fig.axes[1 + top_k :]
    assert [shown_rows(ax) for ax in row[1:]] == [7, 6, 5, 4]
    assert [border(ax) for ax in row[1:]] == [RED] * 4


def test_ranked_lists_short_rows_and_errors():
    gallery = ImageSet(solid_images(8), G_PIDS, G_CAMS)
    query = ImageSet(solid_images(1), np.array([1]), np.array([1]))
    fig = ranked_lists(DIST[None], query, gallery, 0, top_k=7)  # only 5 valid gallery images
    assert len(fig.axes) == 8
    assert [ax.axison for ax in fig.axes] == [True] * 6 + [False] * 2
    with pytest.raises(ValueError, match=r"distmat must have shape .* \(1, 8\), got \(8,\)"):
        ranked_lists(DIST, query, gallery, [0])
    with pytest.raises(ValueError, match=r"query_indices must lie in \[0, 1\)"):
        ranked_lists(DIST[None], query, gallery, [1])


def test_ranked_list_direct_use():
    gallery = solid_images(8)
    fig = ranked_list(gallery[0], gallery, [5, 3, 1], top_k=10)
    assert len(fig.axes) == 4  # query + the 3 ranked items
    assert [border(ax) for ax in fig.axes[1:]] == [None] * 3  # no matches given: no frames
    assert all(not camera_marks(ax) for ax in fig.axes)
    fig = ranked_list(gallery[0], gallery, [5, 3, 1, 2], [True, False], 4, G_CAMS, top_k=2)
    assert len(fig.axes) == 3 and [border(ax) for ax in fig.axes[1:]] == [GREEN, RED]
    assert [camera_marks(ax) for ax in fig.axes] == [["c5"], ["c3"], ["c3"]]
    with pytest.raises(ValueError, match="matches has 1 entries but 2 ranked items"):
        ranked_list(gallery[0], gallery, [5, 3], [True])
    with pytest.raises(ValueError, match=r"ranked_index must hold gallery rows in \[0, 8\)"):
        ranked_list(gallery[0], gallery, [8])


# ------------------------------------------------------------------ explorer
def clustered_snapshots(n_ids=10, per_id=20, dim=16, steps=3, seed=0):
    """Features of the same points over "training": identity clusters tighten step by step."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_ids), per_id)
    centres, noise = rng.normal(size=(n_ids, dim)) * 3, rng.normal(size=(len(pid), dim))
    snapshots = []
    for t in range(steps):
        labels = pid.copy()
        labels[rng.random(len(pid)) < 0.3] = -1
        snapshots.append(
            {
                "features": (centres[pid] + 4.0 / (1 + t) * noise).astype(np.float32),
                "title": f"epoch {t}",
                "pid": pid,
                "camid": pid % 3 + 1,
                "pseudo_label": labels,
                "correct": rng.random(len(pid)) < 0.7,
            }
        )
    return snapshots


def test_align_layout_recovers_a_similarity_transform():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(50, 2))
    theta = 0.7
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    for flip in (np.eye(2), np.diag([1.0, -1.0])):  # reflections are allowed too
        moved = reference @ rotation @ flip * 3.5 + np.array([10.0, -4.0])
        np.testing.assert_allclose(align_layout(moved, reference), reference, atol=1e-5)


def test_pca_layouts_are_deterministic_and_aligned():
    snaps = clustered_snapshots(per_id=6)
    a = EmbeddingExplorer(snaps, method="pca").layouts()
    b = EmbeddingExplorer(snaps, method="pca").layouts()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # snapshot 0 is plain PCA; later ones are their own PCA moved rigidly (distances scaled)
    reference = PCA(n_components=2).fit_transform(snaps[0]["features"])
    assert procrustes(a[0], reference)[2] < 1e-8
    for snap, layout in zip(snaps[1:], a[1:], strict=True):
        own = PCA(n_components=2).fit_transform(snap["features"])
        ratio = pdist(layout) / pdist(own)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)


def test_umap_layout_warm_start_and_disk_cache(tmp_path):
    snaps = clustered_snapshots(steps=2)  # 200 points
    first = EmbeddingExplorer(snaps, method="umap", cache_dir=tmp_path)
    layouts = first.layouts()
    assert first.fit_count == 2 and len(list(tmp_path.glob("*.npy"))) == 2
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files
    # the layout keeps identities apart: 1-NN in 2-D recovers them (held-out half)
    knn = KNeighborsClassifier(1).fit(layouts[1][::2], snaps[1]["pid"][::2])
    assert knn.score(layouts[1][1::2], snaps[1]["pid"][1::2]) > 0.9
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npy")}

    again = EmbeddingExplorer(snaps, method="umap", cache_dir=tmp_path)
    for x, y in zip(again.layouts(), layouts, strict=True):
        np.testing.assert_array_equal(x, y)
    assert again.fit_count == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npy")} == mtimes

    # a changed last snapshot refits only itself; the first layout comes from disk
    changed = [snaps[0], {**snaps[1], "features": snaps[1]["features"] + 0.5}]
    partial = EmbeddingExplorer(changed, method="umap", cache_dir=tmp_path)
    partial.layouts()
    assert partial.fit_count == 1 and len(list(tmp_path.glob("*.npy"))) == 3

    # why warm starts: consecutive layouts move much less than independent fits do
    alone = EmbeddingExplorer(snaps[1:], method="umap", cache_dir=None).layout(0)
    assert procrustes(layouts[0], layouts[1])[2] < 0.75 * procrustes(layouts[0], alone)[2]


def test_colours():
    snaps = clustered_snapshots(per_id=4)
    ex = EmbeddingExplorer(snaps, method="pca")
    rgba, legend = ex.colours(0, "pseudo_label")
    outliers = snaps[0]["pseudo_label"] == -1
    assert outliers.any() and (rgba[outliers] == OUTLIER_GREY).all()
    assert ("outlier", OUTLIER_GREY) in legend
    assert len({tuple(c) for c in rgba[~outliers]}) == len(np.unique(snaps[0]["pseudo_label"])) - 1
    rgba, _ = ex.colours(0, "correct")
    expected = np.where(snaps[0]["correct"][:, None], GREEN, RED)
    np.testing.assert_array_equal(rgba, expected)
    rgba, legend = ex.colours(0, "camid")
    assert [label for label, _ in legend] == ["c2", "c3", "c4"]  # camids 1..3, shown 1-based
    assert len({tuple(c) for c in rgba}) == 3


def test_nearest_matches_sklearn():
    snaps = clustered_snapshots(per_id=5)
    for metric in ("euclidean", "cosine"):
        ex = EmbeddingExplorer(snaps, method="pca", metric=metric)
        nn = NearestNeighbors(n_neighbors=7, metric=metric).fit(snaps[1]["features"])
        expected = nn.kneighbors(snaps[1]["features"][[12]], return_distance=False)[0]
        assert ex.nearest(1, 12, 6).tolist() == expected[expected != 12][:6].tolist()


def test_static_has_a_panel_per_snapshot_and_a_row_per_colouring():
    snaps = clustered_snapshots(per_id=4, steps=3)
    ex = EmbeddingExplorer(snaps, method="pca")
    fig = ex.static("pseudo_label")
    assert len(fig.axes) == 6  # pseudo-labels and label states, 3 snapshots each
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["pseudo-labels",
                                                                      "label states"]
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["epoch 0", "epoch 1",
                                                                  "epoch 2"] * 2
    # no empty panel: every axes draws all 40 points
    assert [len(ax.collections[0].get_offsets()) for ax in fig.axes] == [40] * 6
    assert ex.static_rows("pid") == ["pid"] and ex.static_rows("state") == ["pseudo_label",
                                                                           "state"]
    assert len(ex.static("camid", snapshots=[0, 2]).axes) == 2
    # more snapshots than columns: evenly spaced ones, the first and the last included
    many = EmbeddingExplorer(clustered_snapshots(per_id=2, steps=9), method="pca")
    titles = [ax.get_title().split("\n")[0] for ax in many.static("pid", max_columns=4).axes]
    assert titles == ["epoch 0", "epoch 3", "epoch 5", "epoch 8"]


def test_static_titles_carry_pairwise_f_and_outlier_share():
    from reidlib.pseudo_labels.quality import label_quality

    snaps = clustered_snapshots(per_id=4, steps=2)
    ex = EmbeddingExplorer(snaps, method="pca")
    for ax, snap in zip(ex.static("pseudo_label").axes, snaps * 2, strict=True):
        q = label_quality(snap["pseudo_label"], snap["pid"])
        assert ax.get_title().split("\n")[1] == (
            f"F {q['pairwise_f']:.2f} · {q['outlier_share']:.0%} outliers")
    # whole-run metrics, when the snapshot carries them, win over the shown points' own
    with_metrics = [{**s, "metrics": {"pairwise_f": 0.123, "outlier_share": 0.4, "mAP": 0.5}}
                    for s in snaps]
    fig = EmbeddingExplorer(with_metrics, method="pca").static("state")
    assert fig.axes[0].get_title().split("\n")[1] == "F 0.12 · 40% outliers · mAP 50%"


def test_static_axes_follow_the_quantiles_of_each_layout():
    from reidlib.viz.explorer import quantile_limits

    snaps = clustered_snapshots(per_id=4, steps=2)
    snaps[1]["features"][0] += 500.0  # one straggler far away
    ex = EmbeddingExplorer(snaps, method="pca")
    fig = ex.static("pid", quantiles=(1, 99))
    for ax, i in zip(fig.axes, (0, 1), strict=True):
        xy = ex.layout(i)
        lo, hi = np.percentile(xy, [1, 99], axis=0)
        pad = 0.08 * (hi - lo)
        np.testing.assert_allclose(ax.get_xlim(), (lo[0] - pad[0], hi[0] + pad[0]), rtol=1e-6)
        np.testing.assert_allclose(ax.get_ylim(), (lo[1] - pad[1], hi[1] + pad[1]), rtol=1e-6)
        assert (ax.get_xlim(), ax.get_ylim()) == quantile_limits(xy, (1, 99))
        inside = ((xy[:, 0] >= ax.get_xlim()[0]) & (xy[:, 0] <= ax.get_xlim()[1])
                  & (xy[:, 1] >= ax.get_ylim()[0]) & (xy[:, 1] <= ax.get_ylim()[1]))
        assert inside.mean() >= 0.95  # the bulk fills the panel
    # the straggler is left outside rather than shrinking everything else
    assert fig.axes[1].get_xlim()[1] - fig.axes[1].get_xlim()[0] < np.ptp(ex.layout(1)[:, 0])


def test_highlighted_identities_and_state_colours():
    from reidlib.pseudo_labels.states import STATE_COLOURS, label_states
    from reidlib.viz.explorer import BACKGROUND_GREY

    snaps = clustered_snapshots(per_id=4)
    ex = EmbeddingExplorer(snaps, method="pca")
    chosen = ex.chosen_identities(3)
    assert chosen.tolist() == [0, 1, 2]  # equal counts: the smallest ids
    for view in ("pid", "pseudo_label"):
        rgba, _ = ex.colours(0, view, highlight=chosen)
        others = ~np.isin(snaps[0]["pid"], chosen)
        assert (rgba[others] == BACKGROUND_GREY).all()
        assert not (rgba[~others] == BACKGROUND_GREY).all(1).any()
    rgba, legend = ex.colours(1, "state")
    states = label_states(snaps[1]["pseudo_label"], snaps[1]["pid"])
    expected = np.array([to_rgba(STATE_COLOURS[s]) for s in states])
    np.testing.assert_array_equal(rgba, expected)
    assert {label for label, _ in legend} <= {"correct", "merged", "split fragment", "outlier"}


def test_an_after_training_snapshot_without_pseudo_labels_is_never_an_empty_panel():
    snaps = clustered_snapshots(per_id=4, steps=2)
    after = {"features": snaps[1]["features"] * 0.5, "title": "after training",
             "pid": snaps[1]["pid"]}
    ex = EmbeddingExplorer([*snaps, after], method="pca")
    fig = ex.static("pseudo_label")
    assert len(fig.axes) == 6
    assert all(len(ax.collections[0].get_offsets()) == 40 for ax in fig.axes)
    assert fig.axes[2].get_title() == "after training (no pseudo_label)"
    assert fig.axes[5].get_title() == "after training (no state)"


def test_history_snapshots_carry_the_whole_runs_metrics():
    from reidlib.training.loop import EpochRecord, History
    from reidlib.viz.explorer import history_snapshots

    snaps = [Snapshot(**s) for s in clustered_snapshots(per_id=4, steps=2)]
    quality = {"pairwise_f": 0.5, "outlier_share": 0.25, "n_clusters": 7, "nmi": 0.9}
    history = History([
        EpochRecord(0, {"loss": 1.0}, 1e-3, 1.0, 0.5, 40, snaps[0].pseudo_label, quality,
                    snaps[0], {"mAP": 0.3}),
        EpochRecord(1, {"loss": 0.9}, 1e-3, 1.0, 0.0, 40),  # no re-clustering, no snapshot
        EpochRecord(2, {"loss": 0.8}, 1e-3, 1.0, 0.5, 40, snaps[1].pseudo_label, quality,
                    snaps[1]),
    ])
    out = history_snapshots(history, after={"features": snaps[1].features})
    assert [s.title for s in out] == ["epoch 0", "epoch 1", "after training"]
    assert out[0].metrics == {"pairwise_f": 0.5, "outlier_share": 0.25, "n_clusters": 7,
                              "mAP": 0.3}
    assert "mAP" not in out[1].metrics and out[2].metrics is None
    with pytest.raises(ValueError, match="no snapshot"):
        history_snapshots(History([history[1]]))


def test_invalid_colour_by_and_missing_arrays():
    snaps = clustered_snapshots(per_id=4)
    ex = EmbeddingExplorer(snaps, method="pca")
    with pytest.raises(ValueError, match="colour_by must be one of") as err:
        ex.static("identity")
    assert all(name in str(err.value) for name in COLOUR_BY)
    bare = EmbeddingExplorer(
        [{"features": s["features"], "pid": s["pid"]} for s in snaps], method="pca"
    )
    with pytest.raises(ValueError, match=r"has no 'camid' array; it can be coloured by \['pid'\]"):
        bare.static("camid")
    with pytest.raises(ValueError, match="colour_by must be one of"):
        bare.widget("nope")


def test_mismatched_lengths_and_bad_snapshots():
    snaps = clustered_snapshots(per_id=4)
    with pytest.raises(ValueError, match=r"pid must have shape \(40,\) like the features"):
        EmbeddingExplorer([{**snaps[0], "pid": snaps[0]["pid"][:-1]}])
    with pytest.raises(ValueError, match="snapshot 1 .* has 39 points but snapshot 0 has 40"):
        EmbeddingExplorer(
            [
                snaps[0],
                {
                    **snaps[1],
                    "features": snaps[1]["features"][:-1],
                    "pid": None,
                    "camid": None,
                    "pseudo_label": None,
                    "correct": None,
                },
            ]
        )
    with pytest.raises(ValueError, match="images has 3 rows but the snapshots have 40"):
        EmbeddingExplorer(snaps, solid_images(3))
    with pytest.raises(ValueError, match=r"unknown snapshot keys \['labels'\]"):
        EmbeddingExplorer([{"features": snaps[0]["features"], "labels": snaps[0]["pid"]}])
    with pytest.raises(ValueError, match=r"features must be \(N, D\)"):
        Snapshot(np.zeros(10))
    with pytest.raises(ValueError, match=r"umap layout needs at least 5 points, got 4 \(try"):
        EmbeddingExplorer([{"features": np.eye(4)}], method="umap")
    with pytest.raises(ValueError, match="method must be one of"):
        EmbeddingExplorer(snaps, method="tsne")


def test_imageset_fills_labels():
    snaps = [{"features": s["features"]} for s in clustered_snapshots(per_id=4)]
    images = ImageSet(solid_images(40), np.arange(40) // 4, np.arange(40) % 2 + 1)
    ex = EmbeddingExplorer(snaps, images, method="pca")
    assert ex.snapshots[1].pid.tolist() == (np.arange(40) // 4).tolist()
    assert "camid" in ex.snapshots[0].available() and "pid" not in snaps[0]


def png_of(plot_box):
    """The PNG shown in the explorer's plot box (an Image holding a data: URL)."""
    (image,) = plot_box.children
    prefix = b"data:image/png;base64,"
    url = bytes(image.value)  # ipywidgets keeps it as a memoryview
    assert image.format == "url" and url.startswith(prefix)
    return base64.b64decode(url[len(prefix):])


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def test_widget_slider_and_menu_redraw():
    snaps = clustered_snapshots(per_id=4)
    ex = EmbeddingExplorer(snaps, solid_images(40), method="pca", n_thumbs=5)
    box = ex.widget("pid")
    controls = {w.description: w for w in walk(box) if getattr(w, "description", "")}
    slider, menu, point = controls["snapshot"], controls["colour by"], controls["point"]
    plot = next(w for w in walk(box) if "reid-explorer-plot" in w._dom_classes)
    thumbs = next(w for w in walk(box) if "reid-explorer-thumbs" in w._dom_classes)
    assert list(menu.options) == list(COLOUR_BY) and slider.max == 2
    first = png_of(plot)
    slider.value = 1  # the observer runs and replaces the plot's picture
    moved = png_of(plot)
    assert moved != first and moved[:8] == b"\x89PNG\r\n\x1a\n"
    slider.value = 0
    assert png_of(plot) == first  # rendering is deterministic: same snapshot, same picture
    menu.value = "correct"
    assert png_of(plot) != first
    assert thumbs.layout.display == "none"
    with_point = png_of(plot)
    point.value = 7  # star the point, ring its neighbours, show their thumbnails
    assert png_of(plot) != with_point and thumbs.layout.display is None
    thumb = Image.open(io.BytesIO(thumbs.value))
    assert thumb.format == "PNG" and thumb.width > 2 * thumb.height  # 6 thumbnails in a row
    point.value = 30
    assert thumbs.value != thumb.fp.getvalue()
    point.value = -1
    assert thumbs.layout.display == "none" and png_of(plot) == with_point
    assert len(plot.children) == 1


def explorer_view(ex, colour_by="pid"):
    """The widget and its parts: point box, slider, plot box, thumbnails, click events."""
    box = ex.widget(colour_by)
    controls = {w.description: w for w in walk(box) if getattr(w, "description", "")}
    plot = next(w for w in walk(box) if "reid-explorer-plot" in w._dom_classes)
    thumbs = next(w for w in walk(box) if "reid-explorer-thumbs" in w._dom_classes)
    return box, controls["point"], controls["snapshot"], plot, thumbs


def click(box, x, y, **extra):
    """A click as ipyevents' front end sends it for an Image (dataX/dataY: picture pixels)."""
    message = {"event": "click", "type": "click", "dataX": x, "dataY": y, **extra}
    box.plot_events._handle_mouse_msg(None, message, None)  # the kernel side of the comm


def test_plot_geometry_puts_points_where_they_are_drawn():
    ex = EmbeddingExplorer(clustered_snapshots(per_id=4), method="pca", n_thumbs=3)
    xy = ex.layout(1)
    for dpi in (100, 50):
        png, geometry = ex.plot(1, "pid", point=7, dpi=dpi)
        picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
        assert (geometry.width, geometry.height) == (picture.shape[1], picture.shape[0])
        assert geometry.width == round(6.0 * dpi)
        # the star of point 7 is drawn on top of everything: its centre pixel is the star's
        x, y = np.round(geometry.to_pixels(xy[7])[0]).astype(int)
        assert np.abs(picture[y, x] / 255 - np.array(BLUE)).max() < 0.02, picture[y, x]
        assert geometry.inside((x, y))
        np.testing.assert_allclose(geometry.to_data(geometry.to_pixels(xy)), xy, atol=1e-4)
    # the PNG's corners are margins: outside the axes
    assert not geometry.inside((0, 0)) and not geometry.inside((geometry.width - 1, 0))
    assert ex.plot(1, "pid", point=7, dpi=50)[0] == png  # deterministic


def test_click_on_a_point_selects_it_and_shows_its_thumbnails():
    ex = EmbeddingExplorer(clustered_snapshots(per_id=4), solid_images(40), method="pca",
                           n_thumbs=5)
    box, point, slider, plot, thumbs = explorer_view(ex)
    png, geometry = ex.plot(0, "pid", None)
    assert png_of(plot) == png  # the geometry is that of the picture shown
    pixels = geometry.to_pixels(ex.layout(0))
    # a point with no other point within 3 pixels: the click's rounding cannot change it
    gaps = NearestNeighbors(n_neighbors=2).fit(pixels).kneighbors(pixels)[0][:, 1]
    target = int(np.flatnonzero(gaps > 3)[0])
    assert point.value == -1 and thumbs.layout.display == "none"
    click(box, *np.round(pixels[target]).astype(int).tolist())
    assert point.value == target and thumbs.layout.display is None
    assert png_of(plot) == ex.plot(0, "pid", target)[0]  # starred, neighbours ringed
    # exactly the thumbnails the point box shows when the row is typed
    _, typed_point, _, _, typed_thumbs = explorer_view(ex)
    typed_point.value = target
    assert thumbs.value == typed_thumbs.value
    shown = Image.open(io.BytesIO(thumbs.value))
    assert shown.width > 2 * shown.height  # the point and its 5 neighbours in a row
    # another point: the thumbnails change
    other = int(np.flatnonzero((gaps > 3) & (np.arange(40) // 4 != target // 4))[0])
    before = thumbs.value
    click(box, *np.round(pixels[other]).astype(int).tolist())
    assert point.value == other and thumbs.value != before
    # the box still works as a fallback, and a click after it still selects
    point.value = 3
    assert thumbs.value == ex._thumbs_png(0, 3)
    click(box, *np.round(pixels[target]).astype(int).tolist())
    assert point.value == target


def test_click_away_from_points_selects_the_nearest_on_screen():
    ex = EmbeddingExplorer(clustered_snapshots(per_id=4), solid_images(40), method="pca")
    box, point, slider, plot, thumbs = explorer_view(ex)
    slider.value = 2  # the click must use the layout and picture now shown
    png, geometry = ex.plot(2, "pid", None)
    assert png_of(plot) == png
    pixels = geometry.to_pixels(ex.layout(2))
    (x0, x1), (y0, y1) = geometry.xlim, geometry.ylim
    corners = geometry.to_pixels([[x0, y0], [x0, y1], [x1, y0], [x1, y1]])
    # the axes' corner farthest from every point, nudged 2 pixels inside the axes
    gaps = NearestNeighbors(n_neighbors=1).fit(pixels).kneighbors(corners)[0][:, 0]
    corner = corners[np.argmax(gaps)]
    centre = corners.mean(0)
    spot = corner + 2 * np.sign(centre - corner)
    assert gaps.max() > 20 and geometry.inside(spot)
    # reference: brute force over every point's pixel, ties to the lowest row
    d = np.hypot(*(pixels - np.round(spot)).T)
    expected = int(np.flatnonzero(d == d.min())[0])
    click(box, *np.round(spot).astype(int).tolist())
    assert point.value == expected and thumbs.layout.display is None
    # the picture shown at half its size: only relativeX/Y and the shown size are known
    point.value = -1
    x, y = pixels[expected] / 2
    message = {"relativeX": x, "relativeY": y, "boundingRectWidth": geometry.width / 2,
               "boundingRectHeight": geometry.height / 2}
    box.plot_events._handle_mouse_msg(None, {"event": "click", **message}, None)
    assert point.value == expected


def test_clicks_outside_the_axes_are_ignored_and_bad_events_explained():
    ex = EmbeddingExplorer(clustered_snapshots(per_id=4), method="pca")
    box, point, slider, plot, thumbs = explorer_view(ex)
    geometry = ex.plot(0, "pid", None)[1]
    point.value = 5
    shown = png_of(plot)
    for pixel in [(2, 2), (geometry.width - 3, 10), (geometry.width // 2, 3)]:
        assert not geometry.inside(pixel)  # margins, title, legend
        click(box, *pixel)
        assert point.value == 5 and png_of(plot) == shown
    assert click_pixel({"dataX": 4, "dataY": 9}, geometry) == (4.0, 9.0)
    with pytest.raises(ValueError, match="a click event needs dataX/dataY or"):
        click_pixel({"clientX": 3, "clientY": 4}, geometry)


def test_show_in_a_headless_kernel(tmp_path):
    """show() in nbclient: the live view without REID_STATIC_PLOTS, a PNG figure with it."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cells = [
        f"import os, sys; sys.path.insert(0, {root!r})\n"
        "import numpy as np\nfrom reidlib.viz import EmbeddingExplorer, image_grid\n"
        "rng = np.random.default_rng(0)\n"
        "snaps = [dict(features=rng.normal(size=(30, 4)), pid=np.arange(30) % 3)\n"
        "         for _ in range(2)]\n"
        "ex = EmbeddingExplorer(snaps, method='pca', cache_dir=None)",
        "os.environ['REID_STATIC_PLOTS'] = '0'\nex.show()",
        "os.environ['REID_STATIC_PLOTS'] = '1'\nex.show()",
        "os.environ['REID_STATIC_PLOTS'] = '0'; os.environ['REID_PROGRESS'] = '0'\nex.show()",
        "image_grid(rng.integers(0, 255, (3, 8, 4, 3), dtype=np.uint8))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    kinds = [[sorted(o.get("data", {})) for o in cell.outputs] for cell in nb.cells]
    assert kinds[1] == [["application/vnd.jupyter.widget-view+json", "text/plain"]]
    assert nb.cells[1].outputs[0]["data"]["text/plain"].startswith("VBox(")
    assert kinds[2] == [["image/png", "text/plain"]]
    assert kinds[3] == [["image/png", "text/plain"]]  # REID_PROGRESS=0: a static render too
    assert kinds[4] == [["image/png", "text/plain"]]


# ------------------------------------------------------------------ live view (jupyter-scatter)
def live_view(colour_by="pseudo_label", steps=3):
    snaps = clustered_snapshots(per_id=4, steps=steps)
    ex = EmbeddingExplorer(snaps, solid_images(40), method="pca")
    return snaps, ex, ex.live(colour_by)


def test_live_view_play_moves_points_and_updates_the_metrics_strip():
    from reidlib.pseudo_labels.quality import label_quality

    snaps, ex, live = live_view()
    assert live.options == ["pid", "camid", "pseudo_label", "state"]
    assert live.play.max == live.slider.max == 2 and live.play.interval >= 1000
    assert "(1 / 3)" in live.caption.value
    before = live.scatter.widget.points.copy()
    live.slider.value = 2  # what Play does, one step at a time
    assert live.index == 2 and "(3 / 3)" in live.caption.value
    assert live.scatter.widget.transition_points  # animated from the old layout
    data = live.scatter._data
    np.testing.assert_allclose(data["x"], ex.layout(2)[:, 0])
    np.testing.assert_allclose(data["y"], ex.layout(2)[:, 1])
    assert not np.array_equal(live.scatter.widget.points, before)
    labels = snaps[2]["pseudo_label"]
    expected = np.where(labels == -1, "outlier", [f"cluster {v}" for v in labels])
    assert data["pseudo-label"].astype(str).tolist() == expected.tolist()
    q = label_quality(labels, snaps[2]["pid"])
    assert f"pairwise F <b>{q['pairwise_f']:.2f}</b>" in live.strip.value
    assert f"<b>{q['outlier_share']:.0%}</b> outliers" in live.strip.value
    # Play is linked to the slider in the front end (no kernel round trip per frame)
    assert live.view.live is live


def test_live_view_click_selects_the_whole_cluster():
    snaps, ex, live = live_view()
    labels = snaps[0]["pseudo_label"]
    row = int(np.flatnonzero(labels >= 0)[0])
    live.scatter.widget.selection = np.array([row], dtype="uint32")  # a click, as the front end
    assert live.selection().tolist() == np.flatnonzero(labels == labels[row]).tolist()
    assert f"cluster {labels[row]}" in live.info.value
    outlier = int(np.flatnonzero(labels == -1)[0])
    live.scatter.widget.selection = np.array([outlier], dtype="uint32")
    assert live.selection().tolist() == [outlier] and "outlier" in live.info.value
    lasso = np.array([1, 2, 3], dtype="uint32")
    live.scatter.widget.selection = lasso  # a lasso is left as it is
    assert live.selection().tolist() == [1, 2, 3] and "lasso" in live.info.value
    # the selected images stay selected on another snapshot: where did they go?
    live.go(1)
    assert live.selection().tolist() == [1, 2, 3]


def test_live_view_colours_and_previews():
    from reidlib.pseudo_labels.states import STATE_COLOURS

    snaps, ex, live = live_view("correct")  # shown as the four states
    assert live.colour_by == "state"
    assert live.colour_map("state") == [STATE_COLOURS[s] for s in live.categories["state"]]
    mapping = live.colour_map("pseudo_label")
    assert mapping[live.categories["pseudo_label"].index("outlier")] == "#b8b8b8"
    live.menu.value = "camid"
    assert live.scatter.color()["by"] == "camera"
    previews = live.scatter._data["preview"]
    assert previews[0].startswith("data:image/png;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(previews[0].split(",", 1)[1])))
    assert picture.height == 64 and np.asarray(picture)[0, 0, 1] == 200
    # categories stay fixed over snapshots, so each colour keeps its meaning
    live.go(2)
    assert list(live.scatter._data["pseudo-label"].cat.categories) == live.categories[
        "pseudo_label"]
    with pytest.raises(ValueError, match="colour_by must be one of"):
        ex.live("nope")


def test_compare_shares_one_slider_and_the_selection():
    from reidlib.viz.scatter import Compare

    snaps = clustered_snapshots(per_id=4, steps=3)
    a = EmbeddingExplorer(snaps, solid_images(40), method="pca")
    b = EmbeddingExplorer(snaps[::-1], solid_images(40), method="pca")
    view = Compare(a, b, ("A", "B"), k=4)
    view.slider.value = 2
    assert [v.index for v in view.views] == [2, 2]
    view.views[1].scatter.widget.selection = np.array([7], dtype="uint32")  # click on the right
    expected = [7, *b.nearest(2, 7, 4).tolist()]
    assert [v.selection().tolist() for v in view.views] == [expected, expected]
    assert "selected in both" in view.info.value
    other = [dict(s, features=s["features"][:-1], pid=s["pid"][:-1], camid=None,
                  pseudo_label=None, correct=None) for s in snaps]
    with pytest.raises(ValueError, match="different images"):
        Compare(a, EmbeddingExplorer(other, method="pca"))
