"""reidlib.domain_adaptation.compare: chapter 4's methods built and trained as the notebook
does, the share of the gap recovered, the source models."""

from __future__ import annotations

import numpy as np
import pytest

from reidlib.camera.camera_bn import CameraBNContrast
from reidlib.data.synthetic import load_world
from reidlib.domain_adaptation.compare import (
    METHODS,
    build_method,
    gap_recovered,
    source_model,
    train_method,
)
from reidlib.domain_adaptation.dsbn import domain_bn_layers
from reidlib.domain_adaptation.spcl_uda import SpCLUDA
from reidlib.feature_learning import ClusterContrast, train_and_score
from reidlib.feature_learning.compare import chapter_settings
from reidlib.feature_learning.mmt import MutualMeanTeaching
from reidlib.feature_learning.part_contrast import PartContrast
from reidlib.models import build_model
from reidlib.notebook import setup
from reidlib.utils import seed_everything


def test_gap_recovered_by_hand():
    assert gap_recovered(0.5, 0.4, 0.8) == pytest.approx(0.25)
    assert gap_recovered(0.4, 0.4, 0.8) == 0.0
    assert gap_recovered(0.8, 0.4, 0.8) == pytest.approx(1.0)
    assert gap_recovered(0.3, 0.4, 0.8) == pytest.approx(-0.25)  # worse than direct transfer
    with pytest.raises(ValueError, match="must beat direct transfer"):
        gap_recovered(0.5, 0.8, 0.8)


@pytest.fixture(scope="module")
def worlds():
    """The smoke session and worlds, from the shared cache (as chapter 3's tests)."""
    session = setup("test-ch4", profile="smoke")
    return session, load_world("B", "smoke", progress=False), load_world("A", "smoke",
                                                                          progress=False)


def test_every_method_is_built_from_the_source_models(worlds):
    session, source_world, target_world = worlds
    settings, train, cluster = chapter_settings(session.profile, target_world)
    source_train = source_world.train.subset(source_world.train.pids >= 0)
    starts = []

    def start(s):
        starts.append(s)
        return build_model("small", weights=None)

    kinds = {"Cluster Contrast": ClusterContrast, "Cluster Contrast, cameras centred":
             ClusterContrast, "camera BN": CameraBNContrast, "SSG": PartContrast,
             "MMT": MutualMeanTeaching, "SpCL": SpCLUDA}
    assert set(kinds) == set(METHODS)
    for name in METHODS:
        starts.clear()
        method, extra = build_method(name, start, train, source_train, settings, cluster)
        assert isinstance(method, kinds[name])
        assert starts == ([0, 1] if name == "MMT" else [0])  # MMT: two source models
        if name == "SpCL":
            assert domain_bn_layers(method.model)  # SpCL's UDA backbone has DSBN
            assert len(extra["train"]) == len(source_train) + len(train)
            assert (extra["domains"] == np.repeat([0, 1], [len(source_train),
                                                           len(train)])).all()
        if name == "Cluster Contrast, cameras centred":
            assert "clustering" in extra
    with pytest.raises(ValueError, match="unknown method"):
        build_method("ADDA", start, train, source_train, settings, cluster)


def test_source_model_seed0_is_the_source_upper_bound(worlds):
    session, source_world, _ = worlds
    a, b = source_model(session, source_world), session.upper_bound(source_world, progress=False)
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert (p == q).all()
    other = source_model(session, source_world, seed=1)
    assert any((p != q).any() for p, q in zip(a.state_dict().values(),
                                               other.state_dict().values(), strict=True)
               if p.is_floating_point())


def test_train_method_is_the_notebooks_run(worlds):
    """The benchmark's run equals the notebook's cells: Cluster Contrast from a copy of the
    source model, the target's clustering and budget, the one scorer."""
    session, source_world, target_world = worlds
    settings, train, cluster = chapter_settings(session.profile, target_world)
    ours = train_method("Cluster Contrast", session, source_world, target_world, settings,
                        train, cluster, seed=0)
    import copy
    seed_everything(0)
    start = copy.deepcopy(source_model(session, source_world)).to(session.device)
    method = ClusterContrast(start)
    theirs = train_and_score(method, train, cluster=cluster,
                             score=lambda m: session.score(m, target_world), seed=0,
                             progress=False, epochs=settings["epochs"], p=settings["p"],
                             k=settings["k"], lr=settings["lr"], iters=settings["iters"])
    assert ours.scores == theirs.scores
