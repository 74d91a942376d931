"""Hidden checks of q5 (instructors; exercises/grade.py): the AP of one text query against
reidlib.directions.text.text_to_image_map (one query) and a loop, with tied similarities,
long galleries and junk, and the inputs left unchanged."""

import math

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.directions.text import text_to_image_map

OK_FORMAT = False
name = "q5_hidden"


def _ap(function, *args):
    assert callable(function), "define a function called text_average_precision"
    got = function(*args)
    if hasattr(got, "item") and np.size(got) == 1:
        got = got.item()
    assert isinstance(got, float | int) and not isinstance(got, bool), (
        f"expected one number (or float('nan')), got {got!r}"
    )
    return float(got)


def _loop(similarities, query_pid, pids):
    """Tied similarities are one step: precision at each relevant image, then the mean."""
    precisions = []
    for s, p in zip(similarities, pids, strict=True):
        if p == query_pid:
            above = sum(1 for t in similarities if t >= s)
            hits = sum(1 for t, q in zip(similarities, pids, strict=True)
                       if q == query_pid and t >= s)
            precisions.append(hits / above)
    return sum(precisions) / len(precisions) if precisions else float("nan")


def _case(gen, size, dim, levels):
    """Integer-valued features: their dot products tie often, and exactly in float32."""
    text = torch.from_numpy(gen.integers(-levels, levels + 1, (1, dim))).float()
    gallery = torch.from_numpy(gen.integers(-levels, levels + 1, (size, dim))).float()
    pids = gen.choice([7, 7, 7, 0, -1, 3, 4, 5, 6], size=size)
    return text, gallery, pids


@test_case(name="q5_hidden - tied similarities against reidlib's text_to_image_map",
           hidden=True)
def against_reidlib(text_average_precision):
    gen = np.random.default_rng(165)
    for size, dim, levels in ((12, 2, 1), (40, 3, 1), (200, 4, 2), (600, 8, 3)):
        text, gallery, pids = _case(gen, size, dim, levels)
        similarities = (text @ gallery.T)[0].numpy()
        got = _ap(text_average_precision, similarities.copy(), 7, pids.copy())
        library = text_to_image_map(text, np.array([7]), gallery, pids)["mAP"]
        expected = _loop(similarities.tolist(), 7, pids.tolist())
        assert abs(got - library) < 1e-9 and abs(got - expected) < 1e-9, (
            f"text_average_precision({size} gallery images, many similarities tied) returned "
            f"{got:.6f}, but reidlib's text_to_image_map gives {library:.6f} (a loop: "
            f"{expected:.6f}): tied similarities are one step, the precision at a relevant "
            "image counts every image at least as similar, whatever order a sort puts them in"
        )


@test_case(name="q5_hidden - long galleries, distinct similarities, one relevant image",
           hidden=True)
def long_gallery(text_average_precision):
    gen = np.random.default_rng(166)
    similarities = gen.permutation(300) / 300.0
    pids = np.full(300, 9)
    pids[np.argsort(-similarities)[[2, 70, 150]]] = 4
    pids[np.argsort(-similarities)[[0, 1]]] = -1
    got = _ap(text_average_precision, similarities.copy(), 4, pids.copy())
    expected = (1 / 3 + 2 / 71 + 3 / 151) / 3
    assert abs(got - expected) < 1e-9, (
        f"text_average_precision(relevant images at ranks 3, 71 and 151 of 300, junk at "
        f"ranks 1-2) returned {got:.6f}, expected {expected:.6f}: rank the whole gallery "
        "(not its first 50), junk included as negatives"
    )
    pids[pids == 4] = 9
    pids[np.argsort(-similarities)[10]] = 4
    got = _ap(text_average_precision, similarities.copy(), 4, pids.copy())
    assert abs(got - 1 / 11) < 1e-9, (
        f"text_average_precision(one relevant image, at rank 11) returned {got:.6f}, "
        f"expected {1 / 11:.6f}"
    )
    got = _ap(text_average_precision, similarities.copy(), 5, pids.copy())
    assert math.isnan(got), f"no image of pid 5: expected NaN, got {got!r}"


@test_case(name="q5_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(text_average_precision):
    gen = np.random.default_rng(167)
    similarities = gen.uniform(-1, 1, 30)
    pids = gen.choice([2, 2, 0, -1, 8], size=30)
    copies = (similarities.copy(), pids.copy())
    _ap(text_average_precision, similarities, 2, pids)
    assert np.array_equal(similarities, copies[0]) and np.array_equal(pids, copies[1]), (
        "text_average_precision changed the similarities or pids it was given (sort or mask "
        "into new arrays)"
    )
