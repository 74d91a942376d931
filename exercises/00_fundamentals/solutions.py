"""Reference solutions of exercises/00_fundamentals (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``00_fundamentals.py``; ``grade.py
--solutions`` and tests/test_exercises.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import numpy as np
from matplotlib.colors import rgb_to_hsv


def average_precision(matches):
    """AP of one query (survey §4.2): mean of the precision at the rank of each match."""
    matches = np.asarray(matches, dtype=bool)
    ranks = np.flatnonzero(matches) + 1  # 1-based ranks of the matches
    hits_so_far = np.arange(1, len(ranks) + 1)
    return float(np.mean(hits_so_far / ranks))


def cmc_curve(first_match_ranks, max_rank):
    """CMC (survey §4.2): cmc[k - 1] = share of queries whose first match is within rank k."""
    first_match_ranks = np.asarray(first_match_ranks)
    ks = np.arange(1, max_rank + 1)
    return (first_match_ranks[:, None] <= ks[None, :]).mean(axis=0)


def valid_gallery_mask(query_pid, query_camid, gallery_pids, gallery_camids):
    """Market-1501 rule: drop junk (pid -1) and the query's person seen by the query's camera."""
    gallery_pids = np.asarray(gallery_pids)
    gallery_camids = np.asarray(gallery_camids)
    junk = gallery_pids == -1
    same_view = (gallery_pids == query_pid) & (gallery_camids == query_camid)
    return ~(junk | same_view)


def hue_histogram(image, bins):
    """Share of pixels per hue bin; hue as matplotlib's rgb_to_hsv, bins equal on [0, 1]."""
    hue = rgb_to_hsv(np.asarray(image, dtype=np.float64) / 255.0)[..., 0].ravel()
    which = np.minimum((hue * bins).astype(int), bins - 1)  # hue 1.0 falls in the last bin
    counts = np.bincount(which, minlength=bins)
    return counts / counts.sum()


def inverse_negative_penalty(matches):
    """INP of one query (Ye et al., TPAMI 2021): matches / rank of the last (hardest) match."""
    matches = np.asarray(matches, dtype=bool)
    hardest = np.flatnonzero(matches)[-1] + 1  # 1-based rank of the last match
    return float(matches.sum() / hardest)


def camera_normalise(features, camids):
    """Per camera: subtract its mean, divide by its std (+ 1e-6), then L2-normalise each row."""
    features = np.asarray(features, dtype=np.float64)
    camids = np.asarray(camids)
    out = np.empty_like(features)
    for camera in np.unique(camids):
        rows = camids == camera
        centred = features[rows] - features[rows].mean(axis=0)
        out[rows] = centred / (centred.std(axis=0) + 1e-6)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)  # a row of zeros stays zero
