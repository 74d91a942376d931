"""Run profiles: valid names, and the quick upper bound's epochs come from the validation trace."""

import json
from pathlib import Path

import pytest

from reidlib.profiles import PROFILES, get_profile

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def test_quick_upper_bound_epochs_are_the_ones_chosen_on_the_validation_split():
    """benchmarks/upper_bound_epochs.py traced the validation mAP; the profile holds its choice."""
    result = json.loads((RESULTS / "upper-bound-quick.json").read_text())
    assert result["profile"] == "quick" and result["val_fraction"] > 0
    assert PROFILES["quick"].epochs == result["chosen_epochs"]
    trace = result["runs"]["trace"]
    assert len(trace["val_mAP"]) == trace["epochs"] > result["chosen_epochs"]
    # the plateau rule, recomputed: the first epoch within tol of the trace's best
    best = max(trace["val_mAP"])
    plateau = next(e for e, m in enumerate(trace["val_mAP"], 1) if m >= best - result["tol"])
    assert trace["plateau_epochs"] == plateau
    # the choice is the plateau, or the JSON says why not
    assert result["chosen_epochs"] == plateau or result["choice"]
    recipe = PROFILES["quick"]
    assert (result["arch"], result["p"], result["k"], result["lr"]) == \
        (recipe.arch, recipe.p, recipe.k, recipe.lr)


def test_unknown_profile_names_the_valid_ones(monkeypatch):
    monkeypatch.delenv("REID_PROFILE", raising=False)
    with pytest.raises(ValueError, match="full, quick, smoke"):
        get_profile("fast")
    monkeypatch.setenv("REID_PROFILE", "smoke")
    assert get_profile().name == "smoke"
