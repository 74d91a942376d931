import numpy as np
import pytest

from reidlib.evaluation.camera_bias import same_camera_nearest_share


def brute_force(d, qp, gp, qc, gc):
    hits, chances = [], []
    for i in range(len(qp)):
        valid = [
            j for j in range(len(gp)) if gp[j] >= 0 and not (gp[j] == qp[i] and gc[j] == qc[i])
        ]
        best = min(valid, key=lambda j: d[i, j])
        hits.append(gc[best] == qc[i])
        chances.append(np.mean([gc[j] == qc[i] for j in valid]))
    return np.mean(hits), np.mean(chances)


def test_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    qp, gp = rng.integers(1, 6, 40), rng.integers(-1, 6, 120)
    qc, gc = rng.integers(0, 4, 40), rng.integers(0, 4, 120)
    d = rng.random((40, 120))
    share, chance = same_camera_nearest_share(d, qp, gp, qc, gc)
    ref_share, ref_chance = brute_force(d, qp, gp, qc, gc)
    assert share == pytest.approx(ref_share) and chance == pytest.approx(ref_chance)


def test_hand_case_same_camera_match_is_ignored():
    # query: pid 1 cam 0. gallery: [pid1 cam0 (ignored), pid2 cam0, pid1 cam1]
    d = np.array([[0.0, 0.5, 0.2]])
    share, chance = same_camera_nearest_share(d, [1], [1, 2, 1], [0], [0, 0, 1])
    assert share == 0.0  # nearest valid is the cam-1 image
    assert chance == pytest.approx(0.5)


def test_shape_error():
    with pytest.raises(ValueError, match="num_query, num_gallery"):
        same_camera_nearest_share(np.zeros((2, 3)), [1], [1, 2, 3], [0], [0, 0, 0])
