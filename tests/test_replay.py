"""Replays for the instructor's demo mode: save, load, demo and compare recorded runs."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reidlib.data.imageset import ImageSet  # noqa: E402
from reidlib.training.loop import EpochRecord, History  # noqa: E402
from reidlib.viz import replay as rp  # noqa: E402
from reidlib.viz.explorer import Snapshot  # noqa: E402


def fake_history(n_ids=8, per_id=5, dim=16, epochs=3, seed=0):
    """A History as ``fit`` leaves it: a snapshot and a quality per epoch, some validations."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_ids), per_id)
    centres = rng.normal(size=(n_ids, dim)) * 3
    records = []
    for t in range(epochs):
        labels = np.where(rng.random(len(pid)) < 0.2, -1, pid // 2 + t)
        features = (centres[pid] + rng.normal(size=(len(pid), dim)) / (1 + t)).astype(np.float32)
        snapshot = Snapshot(features, f"Cluster Contrast, epoch {t}\n...", pid=pid,
                            camid=pid % 3, pseudo_label=labels, correct=labels == pid)
        quality = {"pairwise_f": 0.5 + 0.1 * t, "outlier_share": 0.2, "n_clusters": 4 + t,
                   "purity": np.float64(0.7)}
        records.append(EpochRecord(t, {"memory": 2.0 - t}, 3.5e-4, 10.0, 2.0, 64, labels,
                                   quality, snapshot, {"mAP": 0.3 + t / 10} if t % 2 else None))
    images = ImageSet(rng.integers(0, 255, (len(pid), 128, 64, 3), dtype=np.uint8), pid,
                      pid % 3)
    return History(records), images


def test_save_and_load_round_trip(tmp_path):
    history, images = fake_history()
    path = rp.save_replay(tmp_path / "replays", "Cluster Contrast", history, images,
                          method="pca")
    assert path == tmp_path / "replays" / "Cluster-Contrast.npz"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    replay = rp.load_replay(tmp_path / "replays", "Cluster Contrast")
    assert replay.name == "Cluster Contrast" and len(replay.snapshots) == 3
    for record, snap, layout in zip(history, replay.snapshots, replay.layouts, strict=True):
        np.testing.assert_array_equal(snap.pseudo_label, record.snapshot.pseudo_label)
        np.testing.assert_array_equal(snap.pid, record.snapshot.pid)
        np.testing.assert_array_equal(snap.camid, record.snapshot.camid)
        np.testing.assert_allclose(snap.features, record.snapshot.features, atol=1e-2)
        assert snap.title == record.snapshot.title and layout.shape == (40, 2)
    assert replay.snapshots[1].metrics == {"pairwise_f": 0.6, "outlier_share": 0.2,
                                           "n_clusters": 5, "mAP": 0.4}
    assert replay.column("pairwise_f") == [0.5, 0.6, 0.7]
    assert replay.column("val_mAP") == [None, 0.4, None]
    assert replay.column("memory") == [2.0, 1.0, 0.0] and replay.column("epoch") == [0, 1, 2]
    # crops are kept small: 64 pixels tall, aspect kept
    assert replay.images.shape == (40, 64, 32, 3) and replay.images.dtype == np.uint8
    # the explorer uses the stored layouts: nothing is refitted
    explorer = replay.explorer()
    for a, b in zip(explorer.layouts(), replay.layouts, strict=True):
        np.testing.assert_array_equal(a, b)
    assert explorer.fit_count == 0


def test_layouts_are_the_explorers_and_features_are_reduced(tmp_path):
    from reidlib.viz.explorer import EmbeddingExplorer

    history, images = fake_history(dim=300, n_ids=30)  # 150 points of 300 dimensions
    rp.save_replay(tmp_path, "wide", history, images, method="pca")
    replay = rp.load_replay(tmp_path, "wide")
    assert replay.snapshots[0].features.shape == (150, rp.MAX_DIMS)
    reference = EmbeddingExplorer([r.snapshot for r in history], method="pca").layouts()
    for a, b in zip(replay.layouts, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # principal components keep the neighbours that compare() highlights
    full = EmbeddingExplorer([history[2].snapshot], method="pca").nearest(0, 5, 8)
    small = replay.explorer().nearest(2, 5, 8)
    assert len(set(full.tolist()) & set(small.tolist())) >= 7


def test_a_failed_save_keeps_the_old_replay(tmp_path, monkeypatch):
    history, images = fake_history()
    path = rp.save_replay(tmp_path, "run", history, images, method="pca")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        rp.save_replay(tmp_path, "run", history, images, method="pca")
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_missing_replays_say_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run chapter 02 first: make course"):
        rp.demo(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match=r"no replay 'b'.*No replay is recorded"):
        rp.load_replay(tmp_path, "b")
    history, images = fake_history()
    rp.save_replay(tmp_path, "a", history, images, method="pca")
    with pytest.raises(FileNotFoundError, match=r"expected .*b\.npz\. Recorded there: \['a'\]"):
        rp.compare(tmp_path, "a", "b")
    with pytest.raises(ValueError, match="a replay needs a name"):
        rp.replay_path(tmp_path, " / ")


def test_demo_and_compare_static_and_live(tmp_path):
    history, images = fake_history()
    rp.save_replay(tmp_path, "first", history, images, method="pca")
    other, _ = fake_history(seed=1)
    rp.save_replay(tmp_path, "second", other, images, method="pca")
    assert rp.list_replays(tmp_path)[0] == "second"  # newest first: demo's default
    figure = rp.demo(tmp_path, show=False, live=False)
    assert isinstance(figure, Figure) and figure.get_suptitle() == "second"
    assert len(figure.axes) == 6  # pseudo-labels and states, 3 epochs
    live = rp.demo(tmp_path, "first", show=False, live=True)
    assert live.play.max == 2 and "val mAP" not in live.strip.value
    live.slider.value = 1
    assert "val mAP <b>40.0%</b>" in live.strip.value and "(all images)" in live.strip.value
    figure = rp.compare(tmp_path, "first", "second", show=False, live=False)
    assert [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()] == ["first", "second"]
    assert all(len(ax.collections[0].get_offsets()) == 40 for ax in figure.axes)
    view = rp.compare(tmp_path, "first", "second", show=False, live=True, k=3)
    view.views[0].scatter.widget.selection = np.array([4], dtype="uint32")
    assert len(view.views[1].selection()) == 4  # the point and its 3 neighbours, in both


def test_compare_refuses_runs_of_different_images(tmp_path):
    history, images = fake_history()
    rp.save_replay(tmp_path, "a", history, images, method="pca")
    small, small_images = fake_history(n_ids=6)
    rp.save_replay(tmp_path, "b", small, small_images, method="pca")
    with pytest.raises(ValueError, match="different images"):
        rp.compare(tmp_path, "a", "b", show=False, live=False)


def test_a_list_of_snapshots_records_too(tmp_path):
    history, images = fake_history()
    snaps = [r.snapshot for r in history]
    rp.save_replay(tmp_path, "rounds", snaps, images.images, method="pca",
                   after={"features": snaps[-1].features, "pid": snaps[-1].pid})
    replay = rp.load_replay(tmp_path, "rounds")
    assert [s.title.split("\n")[0] for s in replay.snapshots][-1] == "after training"
    assert replay.snapshots[-1].pseudo_label is None and replay.epochs == []


def test_deferred_layouts_are_computed_once_at_first_load(tmp_path, monkeypatch):
    """layout=False records without laying out; the first load lays out exactly as an eager
    save would (from the full features) and rewrites the file; later loads refit nothing."""
    history, images = fake_history(dim=300, n_ids=30)
    eager = rp.load_replay(rp.save_replay(tmp_path / "eager", "run", history, images,
                                          method="pca").parent, "run")
    path = rp.save_replay(tmp_path / "lazy", "run", history, images, method="pca",
                          layout=False)
    with np.load(path) as data:
        assert data["features"].shape == (3, 150, 300)  # full features kept until laid out
    first = rp.load_replay(tmp_path / "lazy", "run")
    for a, b in zip(first.layouts, eager.layouts, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first.snapshots, eager.snapshots, strict=True):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.pseudo_label, b.pseudo_label)
    assert first.epochs == eager.epochs and first.column("pairwise_f") == [0.5, 0.6, 0.7]
    with np.load(path) as data:
        assert data["features"].shape == (3, 150, rp.MAX_DIMS)  # rewritten, laid out
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    def no_refit(*args, **kwargs):
        raise AssertionError("a laid-out replay must not be laid out again")

    monkeypatch.setattr(rp, "_write", no_refit)
    again = rp.load_replay(tmp_path / "lazy", "run")
    for a, b in zip(again.layouts, eager.layouts, strict=True):
        np.testing.assert_array_equal(a, b)
