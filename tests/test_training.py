"""Batch augmentation, feature extraction, checkpoints and supervised training (CPU, tiny data)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reidlib.data import augment
from reidlib.data.imageset import ImageSet
from reidlib.models import build_model
from reidlib.training import (
    extract_features,
    load_checkpoint,
    save_checkpoint,
    split_validation,
    train_or_load,
    train_supervised,
)
from reidlib.training import supervised as supervised_module
from reidlib.training.loop import lr_at


def tiny_imageset(n_ids=12, per_id=8, cams=4, size=(64, 32), seed=0) -> ImageSet:
    """Identities = a colour + noise, so a few epochs separate them; cameras cycle per id."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(1, n_ids + 1), per_id)
    camids = np.tile(np.arange(per_id) % cams, n_ids)
    colour = rng.integers(0, 256, (n_ids + 1, 1, 1, 3))
    noise = rng.normal(0, 40, (len(pids), *size, 3))
    return ImageSet(np.clip(colour[pids] + noise, 0, 255).astype(np.uint8), pids, camids)


def uint8_batch(n=6, h=16, w=8, seed=0):
    return torch.randint(
        0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


# ----------------------------------------------------------------------- augment


def test_to_float_normalises_per_channel():
    x = uint8_batch()
    y = augment.to_float(x, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y[:, 0], (x[:, 0].float() / 255 - 0.5) / 0.5)
    torch.testing.assert_close(y[:, 1], (x[:, 1].float() / 255 - 0.25) / 0.25)
    torch.testing.assert_close(y[:, 2], x[:, 2].float() / 255)


def test_flip_really_flips():
    x = uint8_batch()
    assert torch.equal(augment.random_flip(x, p=1.0), x.flip(-1))
    assert torch.equal(augment.random_flip(x, p=0.0), x)
    half = augment.random_flip(x, p=0.5, generator=torch.Generator().manual_seed(3))
    flipped = [torch.equal(half[i], x[i].flip(-1)) for i in range(len(x))]
    kept = [torch.equal(half[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))


def test_random_crop_is_a_window_of_the_padded_image():
    x = uint8_batch(n=8)
    pad = 3
    out = augment.random_crop(x, pad, generator=torch.Generator().manual_seed(0))
    padded = F.pad(x, (pad,) * 4)
    offsets = set()
    for i in range(len(x)):
        hits = [
            (t, l)
            for t in range(2 * pad + 1)
            for l in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, t : t + 16, l : l + 8])
        ]
        assert hits, f"image {i} is not a crop of its padded version"
        offsets.add(hits[0])
    assert len(offsets) > 1  # offsets vary across the batch
    assert torch.equal(augment.random_crop(x, 0), x)


def test_random_erasing_fills_one_rectangle_within_scale():
    x = torch.randn(16, 3, 32, 16)
    out = augment.random_erasing(
        x, p=1.0, scale=(0.1, 0.3), value=7.0, generator=torch.Generator().manual_seed(0)
    )
    for i in range(len(x)):
        erased = (out[i] == 7.0).all(0)
        assert torch.equal(out[i][:, ~erased], x[i][:, ~erased])
        rows, cols = torch.nonzero(erased, as_tuple=True)
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert h * w == int(erased.sum())  # a full rectangle
        assert 0.05 <= h * w / (32 * 16) <= 0.4  # ~scale, up to rounding and clipping
    assert torch.equal(augment.random_erasing(x, p=0.0), x)


def test_train_augment_shape_dtype_and_determinism():
    x = uint8_batch(n=10, h=64, w=32)
    a = augment.train_augment(x, torch.Generator().manual_seed(5))
    b = augment.train_augment(x, torch.Generator().manual_seed(5))
    c = augment.train_augment(x, torch.Generator().manual_seed(6))
    assert a.shape == (10, 3, 64, 32) and a.dtype == torch.float32 and a.device == x.device
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert augment.default_pad(256) == 10 and augment.default_pad(64) == 2
    resized = augment.train_augment(x, size=(32, 16))
    assert resized.shape == (10, 3, 32, 16)
    assert augment.eval_transform(x, size=(128, 64)).shape == (10, 3, 128, 64)
    torch.testing.assert_close(augment.eval_transform(x), augment.to_float(x))


def test_augment_rejects_float_or_channels_last_layout():
    with pytest.raises(ValueError, match=r"uint8 image batch of shape \(B, 3, H, W\)"):
        augment.train_augment(torch.rand(2, 3, 8, 4))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        augment.to_float(torch.zeros(2, 8, 4, 3, dtype=torch.uint8))


# ---------------------------------------------------------------------- features


def test_extract_features_matches_manual_forward():
    torch.manual_seed(0)
    model = build_model("small", num_classes=3)
    data = tiny_imageset(n_ids=3, per_id=4)
    feats = extract_features(model, data, batch_size=5, flip=False, progress=False)
    assert model.training  # mode restored
    model.eval()
    x = augment.to_float(data.tensor())
    expected = F.normalize(model(x), dim=1)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"

    flipped = extract_features(model, data.tensor(), batch_size=256, flip=True, progress=False)
    expected = F.normalize(model(x) + model(x.flip(-1)), dim=1)
    torch.testing.assert_close(flipped, expected, rtol=1e-4, atol=1e-5)
    raw = extract_features(model, data, flip=False, normalize=False, progress=False)
    torch.testing.assert_close(raw, model(x), rtol=1e-4, atol=1e-5)


def test_extract_features_bad_input():
    model = build_model("small")
    with pytest.raises(ValueError, match=r"ImageSet or a uint8 \(N, 3, H, W\)"):
        extract_features(model, torch.rand(2, 3, 64, 32), progress=False)


# -------------------------------------------------------------------- checkpoint


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = build_model("small", num_classes=4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3, 64, 32)).logits.sum().backward()
    opt.step()
    path = tmp_path / "run" / "ckpt.pt"
    save_checkpoint(path, model, opt, epoch=3, history={"loss": [1.0, 0.5]}, extra={"a": 1})
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left

    other = build_model("small", num_classes=4)
    opt2 = torch.optim.Adam(other.parameters(), lr=1e-3)
    info = load_checkpoint(path, other, opt2)
    assert info == {"epoch": 3, "history": {"loss": [1.0, 0.5]}, "extra": {"a": 1}}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[k], v)
    assert opt2.state_dict()["state"][0]["step"] == 1

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", other)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(RuntimeError, match="corrupt or not a torch file"):
        load_checkpoint(tmp_path / "bad.pt", other)
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(RuntimeError, match="not a reidlib checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", other)
    with pytest.raises(RuntimeError, match="shape mismatches: classifier.weight"):
        load_checkpoint(path, build_model("small", num_classes=9))


# ---------------------------------------------------------- validation split, lr


def test_validation_split_holds_out_identities_market_style():
    data = tiny_imageset(n_ids=20, per_id=8)
    part, query, gallery = split_validation(data, val_fraction=0.2, seed=0)
    val_ids = set(query.pids.tolist())
    assert len(val_ids) == 4 and set(gallery.pids.tolist()) == val_ids
    assert not val_ids & set(part.pids.tolist())
    assert len(part) + len(query) + len(gallery) == len(data)
    keys = list(zip(query.pids.tolist(), query.camids.tolist(), strict=True))
    assert len(keys) == len(set(keys)) == 4 * 4  # one query per (identity, camera)
    for pid, cam in keys:  # each query keeps a cross-camera match in the gallery
        assert ((gallery.pids == pid) & (gallery.camids != cam)).any()
    again = split_validation(data, val_fraction=0.2, seed=0)[1]
    assert np.array_equal(again.pids, query.pids)

    whole, q, g = split_validation(data, val_fraction=0.0, seed=0)
    assert len(whole) == len(data) and q is None and g is None
    one_camera = ImageSet(data.images, data.pids, np.zeros_like(data.camids))
    with pytest.raises(ValueError, match="two cameras with two images each"):
        split_validation(one_camera, 0.2, 0)


def test_lr_schedule():
    assert lr_at(0, 1.0, 10, 2, "cosine") == pytest.approx(0.1)
    assert lr_at(1, 1.0, 10, 2, "cosine") == pytest.approx(0.55)
    assert lr_at(2, 1.0, 10, 2, "cosine") == pytest.approx(1.0)
    assert lr_at(6, 1.0, 10, 2, "cosine") == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_at(10, 1.0, 10, 2, "cosine") == pytest.approx(0.01)
    steps = [lr_at(t, 1.0, 10, 0, "step", (4, 7)) for t in (3.9, 4, 7)]
    assert steps == pytest.approx([1, 0.1, 0.01])
    assert lr_at(9.5, 1.0, 10, 0, "step") == 1.0  # no milestones: constant
    assert lr_at(9.5, 2.0, 10, 0, "constant") == 2.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(5, 1.0, 10, 0, "linear")


# ------------------------------------------------------------------------ training

TRAIN_ARGS = {
    "epochs": 2,
    "p": 4,
    "k": 4,
    "lr": 1e-3,
    "val_fraction": 0.25,
    "seed": 0,
    "progress": False,
}


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return build_model("small")


def test_train_supervised_learns_and_keeps_the_best_model(tmp_path):
    data = tiny_imageset(n_ids=12, per_id=8)
    model = fresh_model()
    history = train_supervised(
        model, data, **{**TRAIN_ARGS, "epochs": 3}, checkpoint=tmp_path / "c.pt"
    )
    losses, val = history.column("loss"), history.column("val_mAP")
    assert losses[-1] < losses[0]
    assert len(val) == 3 and all(0 < m <= 1 for m in val)
    assert history.best_mAP == max(val)
    assert val[history.best_epoch] == history.best_mAP
    assert history.finished and history.images_per_s > 0 and history.wall_time > 0
    assert model.num_classes == 9 and not model.training  # 12 ids - 3 held out
    best = torch.load(tmp_path / "c.pt", weights_only=True)["best"]["models"][0]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best[k])


def test_training_without_validation_keeps_last_epoch():
    history = train_supervised(
        fresh_model(),
        tiny_imageset(n_ids=6, per_id=4),
        **{**TRAIN_ARGS, "epochs": 1, "val_fraction": 0.0},
    )
    assert history.column("val_mAP") == [None] and history.finished
    assert math.isnan(history.best_mAP)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    data = tiny_imageset(n_ids=8, per_id=6)
    straight = fresh_model()
    h_straight = train_supervised(straight, data, **TRAIN_ARGS)

    def interrupt(record):
        raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_supervised(fresh_model(), data, **TRAIN_ARGS, checkpoint=path, on_epoch_end=interrupt)
    assert len(torch.load(path, weights_only=True)["history"]["records"]) == 1
    resumed = fresh_model(seed=123)  # its own init is overwritten by the checkpoint
    h_resumed = train_supervised(resumed, data, **TRAIN_ARGS, checkpoint=path)
    assert h_resumed.column("epoch") == [0, 1]
    assert h_resumed.column("loss") == pytest.approx(h_straight.column("loss"), rel=1e-5)
    assert h_resumed.column("val_mAP") == pytest.approx(h_straight.column("val_mAP"), rel=1e-5)
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match="other settings.*'lr'"):
        train_supervised(fresh_model(), data, **{**TRAIN_ARGS, "lr": 5e-4}, checkpoint=path)


def test_train_or_load_trains_once_then_loads(tmp_path, monkeypatch):
    data = tiny_imageset(n_ids=8, per_id=6)
    args = {
        "arch": "small",
        "cache_dir": tmp_path,
        "epochs": 1,
        "p": 4,
        "k": 4,
        "lr": 1e-3,
        "device": "cpu",
        "progress": False,
        "val_fraction": 0.25,
    }
    model, history = train_or_load(data, **args)
    assert len(list(tmp_path.glob("supervised-small-*.pt"))) == 1

    def must_not_train(*a, **kw):
        raise AssertionError("train_or_load retrained a cached model")

    monkeypatch.setattr(supervised_module, "train_supervised", must_not_train)
    cached, cached_history = train_or_load(data, **args)
    assert cached_history.column("loss") == history.column("loss") and not cached.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[k], v)
    with pytest.raises(AssertionError, match="retrained"):  # other arguments: another key
        train_or_load(data, **{**args, "lr": 2e-3})


def test_train_or_load_cache_hit_skips_the_starting_weights(tmp_path, monkeypatch):
    from reidlib.models import backbones as backbones_module

    reference = build_model("small")
    calls = []

    def source(arch):
        calls.append(arch)
        return reference.backbone.state_dict()

    monkeypatch.setattr(backbones_module, "_WEIGHT_SOURCES", {"unit-test": source})
    data = tiny_imageset(n_ids=8, per_id=6)
    args = {"arch": "small", "cache_dir": tmp_path, "epochs": 1, "p": 4, "k": 4, "lr": 1e-3,
            "weights": "unit-test", "device": "cpu", "progress": False, "val_fraction": 0}
    model, _ = train_or_load(data, **args)
    assert calls == ["small"]  # training started from the named weights
    cached, _ = train_or_load(data, **args)
    assert calls == ["small"], "a finished cache must not load the starting weights again"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[k], v)


def test_train_or_load_retrains_when_the_named_weights_change_version(tmp_path, monkeypatch):
    """A re-pretrained backbone (new version) must not reuse models trained from the old one."""
    from reidlib.models import backbones as backbones_module

    reference = build_model("small")
    version = ["v1"]
    monkeypatch.setattr(backbones_module, "_WEIGHT_SOURCES",
                        {"unit-test": lambda arch: reference.backbone.state_dict()})
    monkeypatch.setattr(backbones_module, "_WEIGHT_VERSIONS",
                        {"unit-test": lambda arch: f"{arch}-{version[0]}"})
    assert backbones_module.weights_identity("small", "unit-test") == "unit-test@small-v1"
    assert backbones_module.weights_identity("small", None) is None
    data = tiny_imageset(n_ids=8, per_id=6)
    args = {"arch": "small", "cache_dir": tmp_path, "epochs": 1, "p": 4, "k": 4, "lr": 1e-3,
            "weights": "unit-test", "device": "cpu", "progress": False, "val_fraction": 0}
    train_or_load(data, **args)
    train_or_load(data, **args)
    assert len(list(tmp_path.glob("supervised-*.pt"))) == 1  # same version: the cache
    version[0] = "v2"
    train_or_load(data, **args)
    assert len(list(tmp_path.glob("supervised-*.pt"))) == 2  # new version: trained anew
