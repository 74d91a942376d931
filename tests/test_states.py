"""The four pseudo-label states: hand-made cases and a brute-force loop as the reference."""

from collections import Counter

import numpy as np
import pytest

from reidlib.pseudo_labels.quality import majority_correct
from reidlib.pseudo_labels.states import (
    STATE_COLOURS,
    STATE_LABELS,
    STATES,
    label_states,
    state_shares,
)


def brute_force_states(pseudo, pids):
    """The docstring's definitions, one image at a time, with dicts and loops."""
    members = {}
    for c, p in zip(pseudo, pids, strict=True):
        if c != -1:
            members.setdefault(c, []).append(p)
    majority = {}
    for c, ps in members.items():
        counts = Counter(ps)
        best = max(counts.values())
        majority[c] = min(p for p, n in counts.items() if n == best)
    home = {}
    for p in set(majority.values()):
        led = [c for c in members if majority[c] == p]
        best = max(members[c].count(p) for c in led)
        home[p] = min(c for c in led if members[c].count(p) == best)
    out = []
    for c, p in zip(pseudo, pids, strict=True):
        if c == -1:
            out.append("outlier")
        elif majority[c] != p:
            out.append("merged")
        elif home[p] != c:
            out.append("split")
        else:
            out.append("correct")
    return np.array(out)


def test_hand_made_case():
    #        identity 0: 3 in cluster 5 (home), 2 in cluster 7 (it leads 7 too: split)
    #        identity 1: 3 in cluster 9, 1 merged into cluster 5, 1 outlier
    pids = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    pseudo = np.array([5, 5, 5, 7, 7, 9, 9, 9, 5, -1])
    expected = ["correct"] * 3 + ["split"] * 2 + ["correct"] * 3 + ["merged", "outlier"]
    assert label_states(pseudo, pids).tolist() == expected


def test_ties_go_to_the_smallest_id_and_cluster():
    # cluster 3 holds one image of identities 4 and 2: identity 2 leads it, 4 is merged
    states = label_states(np.array([3, 3]), np.array([4, 2]))
    assert states.tolist() == ["merged", "correct"]
    # identity 0 leads clusters 8 and 6 with two images each: 6 (the smaller id) is home
    states = label_states(np.array([8, 8, 6, 6]), np.array([0, 0, 0, 0]))
    assert states.tolist() == ["split", "split", "correct", "correct"]


def test_an_identity_leading_one_cluster_has_no_split_fragments():
    # identity 0 leads cluster 0; its other images are merged into identity 1's cluster
    pids = np.array([0, 0, 1, 1, 1, 0])
    pseudo = np.array([0, 0, 1, 1, 1, 1])
    assert label_states(pseudo, pids).tolist() == ["correct"] * 5 + ["merged"]


def test_edge_cases_and_errors():
    assert label_states(np.array([-1, -1]), np.array([0, 1])).tolist() == ["outlier"] * 2
    assert label_states(np.array([], dtype=int), np.array([], dtype=int)).tolist() == []
    with pytest.raises(ValueError, match="one length"):
        label_states(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="integers"):
        label_states(np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="-1 for an outlier"):
        label_states(np.array([-2]), np.array([0]))


@pytest.mark.parametrize("seed", range(20))
def test_matches_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    pids = rng.integers(0, int(rng.integers(1, 12)), n)
    noise = rng.random(n)
    pseudo = np.where(noise < 0.6, pids * 2 + rng.integers(0, 2, n), rng.integers(-1, 20, n))
    states = label_states(pseudo, pids)
    np.testing.assert_array_equal(states, brute_force_states(pseudo, pids))
    # correct or split exactly where the majority identity is the image's own
    np.testing.assert_array_equal(np.isin(states, ["correct", "split"]),
                                  majority_correct(pseudo, pids))
    shares = state_shares(states)
    assert list(shares) == list(STATES)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_one_palette_for_every_state():
    assert set(STATE_COLOURS) == set(STATES) == set(STATE_LABELS)
    assert len(set(STATE_COLOURS.values())) == len(STATES)
