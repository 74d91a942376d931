"""The generic backbone pretrained on world P's attributes (no identities of A or B)."""

import numpy as np
import pytest
import torch

from reidlib.data.synthetic import load_world
from reidlib.models import build_model
from reidlib.models.pretrained import (
    ATTRIBUTE_CLASSES,
    attribute_targets,
    colour_family,
    synthetic_backbone,
    synthetic_weights_path,
)
from reidlib.profiles import get_profile


def test_colour_family_by_hand():
    rgb = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.05, 0.05, 0.05], [0.8, 0.8, 0.8]])
    # red: hue 0 -> bin 0; blue: hue 2/3 -> bin 5; dark -> 8; unsaturated -> 9
    assert colour_family(rgb).tolist() == [0, 5, 8, 9]


def test_targets_are_within_their_class_counts():
    world = load_world("P", "smoke", progress=False)
    targets = attribute_targets(world.people)
    assert set(targets) == set(ATTRIBUTE_CLASSES)
    for name, values in targets.items():
        assert 0 <= values.min() and values.max() < ATTRIBUTE_CLASSES[name], name


def test_world_p_shares_no_person_with_course_worlds():
    p, a = load_world("P", "smoke", progress=False), load_world("A", "smoke", progress=False)
    # different palettes and seeds: no identical person appearance vector
    rows_p = {tuple(np.round(r, 6)) for r in p.people["rgb_upper"]}
    rows_a = {tuple(np.round(r, 6)) for r in a.people["rgb_upper"]}
    assert not rows_p & rows_a


@pytest.mark.slow
def test_synthetic_weights_load_and_are_cached():
    state = synthetic_backbone("small")  # trains once per machine (about a minute), then cached
    assert synthetic_weights_path("small").exists()
    model = build_model("small", weights="synthetic")
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, state[k]), k
    fresh = build_model("small")
    assert any(not torch.equal(v, fresh.backbone.state_dict()[k]) for k, v in state.items())


def test_damaged_weights_file_is_retrained_not_used(tmp_path, monkeypatch):
    import reidlib.models.pretrained as pre

    path = synthetic_weights_path("small", tmp_path)
    path.write_bytes(b"not a checkpoint")
    calls = []
    monkeypatch.setattr(
        pre,
        "pretrain_backbone",
        lambda arch, **kw: (calls.append(arch) or {"w": torch.ones(1)}, {}),
    )
    assert torch.equal(synthetic_backbone("small", cache_dir=tmp_path)["w"], torch.ones(1))
    assert calls == ["small"]
    with pytest.raises(ValueError, match="no synthetic pretraining recipe"):
        synthetic_backbone("vgg")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="expected one of full, quick, smoke"):
        get_profile("huge")
    monkeypatch.setenv("REID_PROFILE", "smoke")
    assert get_profile().name == "smoke"
