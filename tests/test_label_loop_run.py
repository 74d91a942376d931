"""pseudo_label_loop: the rounds of pseudo_label_rounds plus the final re-clustering, with
snapshots of chosen rows only (chapter 1b), and slice_snapshot."""

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

import reidlib.training.loop as training_loop
from reidlib.models import build_model
from reidlib.pseudo_labels import kmeans_labels, label_quality
from reidlib.pseudo_labels.loop import pseudo_label_loop, pseudo_label_rounds, slice_snapshot
from reidlib.training.checkpoint import read_checkpoint
from reidlib.viz import Snapshot


def test_loop_run_matches_rounds_and_scores_the_final_model():
    train = colour_identity_set(12, 6, 3, (32, 16), 0)
    rows = np.flatnonzero(train.pids < 4)

    def cluster(f):
        return kmeans_labels(f, 12, seed=0)

    torch.manual_seed(0)
    run = pseudo_label_loop(build_model("small"), train, cluster, rounds=2, epochs_per_round=1,
                            p=4, k=2, lr=1e-3, seed=0, rows=rows, progress=False)
    torch.manual_seed(0)
    rounds = pseudo_label_rounds(build_model("small"), train, cluster, rounds=2,
                                 epochs_per_round=1, p=4, k=2, lr=1e-3, seed=0, progress=False)
    # same training: the per-round qualities (of all rows) agree with the plain rounds
    assert [q["pairwise_f"] for q in run.qualities[:2]] == [r.quality["pairwise_f"]
                                                           for r in rounds]
    assert len(run.qualities) == len(run.snapshots) == 3
    assert all(len(s) == len(rows) for s in run.snapshots)  # only the chosen rows
    np.testing.assert_array_equal(run.snapshots[-1].pid, train.pids[rows])
    assert run.quality == label_quality(run.labels, train.pids, train.camids)
    assert run.labels.min() >= -1 and run.seconds > 0


def test_a_resumed_loop_counts_the_epochs_trained_before_its_kill(tmp_path, monkeypatch):
    """A loop resumed from its finished checkpoint trains nothing, and its ``seconds`` are
    still those of the epochs the checkpoint records (plus the final clustering), not the
    moment it took to read them: a kill must not make a method look faster."""
    train = colour_identity_set(12, 6, 3, (32, 16), 0)

    def cluster(f):
        return kmeans_labels(f, 12, seed=0)

    def run():
        torch.manual_seed(0)
        return pseudo_label_loop(build_model("small"), train, cluster, rounds=2,
                                 epochs_per_round=1, p=4, k=2, lr=1e-3, seed=0,
                                 progress=False, checkpoint=tmp_path / "fit.pt")

    first = run()
    epochs = sum(r["seconds"] for r in read_checkpoint(tmp_path / "fit.pt")["history"]["records"])

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed finished loop must not train again")

    monkeypatch.setattr(training_loop, "_fit_epoch", no_training)
    again = run()
    assert again.quality == first.quality
    assert epochs > 0 and again.seconds >= epochs
    with pytest.raises(AssertionError, match="must not train"):  # the patch is live
        pseudo_label_loop(build_model("small"), train, cluster, rounds=1, epochs_per_round=1,
                          p=4, k=2, lr=1e-3, seed=0, progress=False)


def test_slice_snapshot_slices_every_per_point_field():
    rng = np.random.default_rng(0)
    snap = Snapshot(rng.normal(size=(6, 3)), "t", pid=np.arange(6), camid=np.arange(6) % 2,
                    pseudo_label=np.array([0, 0, 1, -1, 1, 2]),
                    correct=np.array([1, 0, 1, 0, 1, 1], bool))
    out = slice_snapshot(snap, [4, 1], title="two")
    np.testing.assert_array_equal(out.features, snap.features[[4, 1]])
    np.testing.assert_array_equal(out.pid, [4, 1])
    np.testing.assert_array_equal(out.pseudo_label, [1, 0])
    np.testing.assert_array_equal(out.correct, [True, False])
    assert out.title == "two" and slice_snapshot(snap, [0]).title == "t"
