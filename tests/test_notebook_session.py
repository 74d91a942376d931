"""Session.upper_bound and Session.score: one upper bound and one test-set scorer per course."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from reidlib.data.augment import eval_transform
from reidlib.data.imageset import ImageSet
from reidlib.notebook import Session
from reidlib.profiles import get_profile


def session(tmp_path, profile="smoke"):
    return Session(chapter="t", profile=get_profile(profile), device=torch.device("cpu"),
                   seed=0, cache_dir=tmp_path, results_dir=tmp_path)


class Linear(torch.nn.Module):
    """A model whose features a test can recompute by hand: one linear map of the pixels."""

    def __init__(self, h, w, dim=4):
        super().__init__()
        self.fc = torch.nn.Linear(3 * h * w, dim)

    def forward(self, x):
        return self.fc(x.flatten(1))


def tiny_world():
    rng = np.random.default_rng(0)
    h, w = 6, 4

    def images(cams):
        base = rng.integers(0, 256, (len(cams), h, w, 3))
        cast = np.asarray(cams)[:, None, None, None] * 40  # each camera tints its crops
        return np.clip(base // 2 + cast, 0, 255).astype(np.uint8)

    q_cams, g_cams = [0, 1, 2], [1, 0, 2, 2, 0, 1, 1]
    query = ImageSet(images(q_cams), np.array([1, 2, 3]), np.array(q_cams))
    gallery = ImageSet(images(g_cams), np.array([1, 1, 2, 3, 3, 0, -1]), np.array(g_cams))
    return SimpleNamespace(query=query, gallery=gallery), (h, w)


def hand_features(model, images, flip):
    x = eval_transform(torch.from_numpy(images.images).permute(0, 3, 1, 2))
    with torch.no_grad():
        f = model(x) if not flip else 0.5 * (model(x) + model(x.flip(-1)))
    f = f.numpy().astype(np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def hand_camera_norm(f, cams, eps=1e-6):
    out = np.empty_like(f)
    for c in np.unique(cams):
        rows = cams == c
        centred = f[rows] - f[rows].mean(0)
        out[rows] = centred / (np.sqrt((centred ** 2).mean(0)) + eps)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def hand_scores(world, model, flip, camera_norm):
    qf, gf = hand_features(model, world.query, flip), hand_features(model, world.gallery, flip)
    if camera_norm:
        both = hand_camera_norm(np.concatenate([qf, gf]),
                                np.concatenate([world.query.camids, world.gallery.camids]))
        qf, gf = both[: len(qf)], both[len(qf):]
    aps, inps, firsts = [], [], []
    for i in range(len(qf)):
        d = np.sqrt(((gf - qf[i]) ** 2).sum(1))
        pid, cam = world.query.pids[i], world.query.camids[i]
        ranked = []  # the Market-1501 list: no junk, no own identity from own camera
        for j in np.argsort(d):
            g_pid, g_cam = world.gallery.pids[j], world.gallery.camids[j]
            if g_pid == -1 or (g_pid == pid and g_cam == cam):
                continue
            ranked.append(g_pid == pid)
        hits = [r + 1 for r, m in enumerate(ranked) if m]
        if not hits:
            continue
        aps.append(np.mean([(n + 1) / r for n, r in enumerate(hits)]))
        inps.append(len(hits) / hits[-1])
        firsts.append(hits[0])
    return {"mAP": np.mean(aps), "rank1": np.mean(np.array(firsts) == 1), "mINP": np.mean(inps)}


@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("camera_norm", [True, False])
def test_score_equals_a_hand_computation(tmp_path, flip, camera_norm):
    world, (h, w) = tiny_world()
    torch.manual_seed(1)
    model = Linear(h, w)
    got = session(tmp_path).score(model, world, flip=flip, camera_norm=camera_norm)
    want = hand_scores(world, model, flip, camera_norm)
    assert got == pytest.approx(want, rel=1e-5)


def test_score_options_change_the_numbers(tmp_path):
    """The hand computation sees the options: a scorer ignoring them would fail above."""
    world, (h, w) = tiny_world()
    torch.manual_seed(1)
    model = Linear(h, w)
    scores = [hand_scores(world, model, flip, norm)["mAP"]
              for flip in (True, False) for norm in (True, False)]
    assert len({round(s, 6) for s in scores}) >= 3


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_upper_bound_trains_with_the_profile_settings(tmp_path, monkeypatch, profile):
    import reidlib.training.supervised as supervised

    calls = []
    model = torch.nn.Linear(2, 2).train()

    def fake_train_or_load(train, **kwargs):
        calls.append((train, kwargs))
        return model, "history"

    monkeypatch.setattr(supervised, "train_or_load", fake_train_or_load)
    monkeypatch.setenv("REID_PROGRESS", "0")
    s = session(tmp_path, profile)
    world = SimpleNamespace(train="the training set")
    assert s.upper_bound(world) is model and not model.training
    assert s.upper_bound_run(world) == (model, "history")
    p = get_profile(profile)
    for train, kwargs in calls:
        assert train == "the training set"
        assert kwargs["epochs"] == p.epochs and kwargs["arch"] == p.arch
        assert (kwargs["p"], kwargs["k"], kwargs["lr"]) == (p.p, p.k, p.lr)
        assert kwargs["weights"] == "synthetic" and kwargs["cache_dir"] == tmp_path
        assert kwargs["progress"] is False  # static builds: no per-epoch log
