"""exercises/04_domain_adaptation: the otter checks, the student notebook and the instructor
grader.

Shared tests: ExerciseChecks in tests/exercise_harness.py, given the wrong answers below.
Chapter 4's own: the failure messages, and the notebook's hand-made examples checked against
reidlib.domain_adaptation (the MMD and DAN's bandwidths, AdaIN, SpCL's UDA memory).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import ExerciseChecks, check, load_exercise

from reidlib.domain_adaptation.alignment import default_bandwidths, mmd2
from reidlib.domain_adaptation.spcl_uda import SourceHybridMemory
from reidlib.domain_adaptation.style import adain

QUESTIONS = {
    "q1": "mmd_squared",
    "q1b": "dan_bandwidths",
    "q2": "adaptive_instance_norm",
    "q3": "source_hybrid_loss",
}
EX = load_exercise("04_domain_adaptation", QUESTIONS, "ex04")
solutions = EX.solutions


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks do.
def _sq(a, b):
    return (a[:, None, :] - b[None, :, :]).square().sum(dim=2)


def _mmd_with(x, y, bandwidths, unbiased=False, combine="sum", width="divide", squared=True,
              cross=2.0):
    def kernel(a, b):
        d2 = _sq(a, b) if squared else _sq(a, b).sqrt()
        terms = [torch.exp(-d2 / h) if width == "divide" else
                 torch.exp(-d2 * h) if width == "multiply" else torch.exp(-d2 / (2 * h))
                 for h in bandwidths]
        return sum(terms) / (len(terms) if combine == "mean" else 1)

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    if unbiased:
        m, n = len(x), len(y)
        return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
                + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)) - 2 * kxy.mean())
    return kxx.mean() + kyy.mean() - cross * kxy.mean()


def _mmd_unbiased(x, y, bandwidths):
    return _mmd_with(x, y, bandwidths, unbiased=True)


def _mmd_mean_of_kernels(x, y, bandwidths):
    return _mmd_with(x, y, bandwidths, combine="mean")


def _mmd_h_multiplies(x, y, bandwidths):
    return _mmd_with(x, y, bandwidths, width="multiply")


def _mmd_two_sigma_squared(x, y, bandwidths):  # exp(-d2 / (2 h)): h read as sigma^2
    return _mmd_with(x, y, bandwidths, width="sigma")


def _mmd_distance_not_squared(x, y, bandwidths):
    return _mmd_with(x, y, bandwidths, squared=False)


def _mmd_cross_once(x, y, bandwidths):
    return _mmd_with(x, y, bandwidths, cross=1.0)


def _mmd_item(x, y, bandwidths):
    return torch.tensor(solutions.mmd_squared(x, y, bandwidths).item())


def _mmd_centred_in_place(x, y, bandwidths):  # MMD is translation-invariant, x and y are not
    centre = torch.cat([x, y]).mean(dim=0)
    return solutions.mmd_squared(x.sub_(centre), y.sub_(centre), bandwidths)


def _bw_with(x, y, base="mean_distinct", powers=range(-2, 3), detach=True):
    pooled = torch.cat([x, y])
    n = len(pooled)
    d2 = _sq(pooled, pooled)
    if base == "mean_all":
        b = d2.mean()
    elif base == "x_only":
        b = _sq(x, x).sum() / max(len(x) ** 2 - len(x), 1)
    elif base == "cross":
        b = _sq(x, y).mean()
    elif base == "median":
        b = d2[~torch.eye(n, dtype=torch.bool)].median()
    elif base == "distance":
        b = d2.sqrt().sum() / (n * n - n)
    else:
        b = d2.sum() / (n * n - n)
    if detach:
        b = b.detach()
    return b * 2.0 ** torch.tensor(list(powers), dtype=pooled.dtype)


def _bw_diagonal_included(x, y):
    return _bw_with(x, y, base="mean_all")


def _bw_x_only(x, y):
    return _bw_with(x, y, base="x_only")


def _bw_cross_only(x, y):
    return _bw_with(x, y, base="cross")


def _bw_median(x, y):
    return _bw_with(x, y, base="median")


def _bw_distance(x, y):
    return _bw_with(x, y, base="distance")


def _bw_powers_0_to_4(x, y):
    return _bw_with(x, y, powers=range(5))


def _bw_with_gradient(x, y):
    return _bw_with(x, y, detach=False)


def _adain_with(content, style, eps, unbiased=True, place="variance", over=(2,), detach=False):
    def mean_std(t):
        flat = t.flatten(2)
        if over == (0, 2):  # statistics of the whole batch, per channel
            flat = flat.transpose(0, 1).flatten(1)[None].expand(len(t), -1, -1)
        var = flat.var(dim=2, unbiased=unbiased)
        std = (var + eps).sqrt() if place == "variance" else var.sqrt() + eps
        return flat.mean(dim=2)[:, :, None, None], std[:, :, None, None]

    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    if detach:
        s_mean, s_std = s_mean.detach(), s_std.detach()
    return (content - c_mean) / c_std * s_std + s_mean


def _adain_population_variance(content, style, eps=1e-5):
    return _adain_with(content, style, eps, unbiased=False)


def _adain_eps_on_std(content, style, eps=1e-5):
    return _adain_with(content, style, eps, place="std")


def _adain_batch_statistics(content, style, eps=1e-5):
    return _adain_with(content, style, eps, over=(0, 2))


def _adain_swapped(content, style, eps=1e-5):
    c_mean, s_mean = content.mean(dim=(2, 3), keepdim=True), style.mean(dim=(2, 3), keepdim=True)
    c_std = (content.flatten(2).var(2)[..., None, None] + eps).sqrt()
    s_std = (style.flatten(2).var(2)[..., None, None] + eps).sqrt()
    return (content - c_mean) / s_std * c_std + s_mean


def _adain_style_detached(content, style, eps=1e-5):
    return _adain_with(content, style, eps, detach=True)


def _adain_in_place(content, style, eps=1e-5):
    flat = content.flatten(2)
    mean = flat.mean(dim=2)[:, :, None, None]
    std = (flat.var(dim=2) + eps).sqrt()[:, :, None, None]
    s = style.flatten(2)
    s_mean = s.mean(dim=2)[:, :, None, None]
    s_std = (s.var(dim=2) + eps).sqrt()[:, :, None, None]
    return content.sub_(mean).div_(std).mul_(s_std).add_(s_mean)


def _hybrid_with(embeddings, rows, features, labels, is_source, temperature=0.05,
                 target_norm=False, source_norm=True, outliers="own", unit_first=True,
                 unit_embeddings=True, tau="divide", reduce="mean", merge_ids=False,
                 source_as="centroid"):
    f = F.normalize(features, dim=1) if unit_first else features
    labels = torch.as_tensor(np.asarray(labels))
    is_source = torch.as_tensor(np.asarray(is_source), dtype=torch.bool)
    owner = torch.full((len(f),), -1, dtype=torch.long)
    entries = []

    def add(members, normalise):
        owner[members] = len(entries)
        mean = f[members].mean(dim=0)
        entries.append(F.normalize(mean, dim=0) if normalise else mean)

    if merge_ids:  # one entry per id, source and target rows together
        for y in torch.unique(labels[labels >= 0]):
            add(labels == y, bool(is_source[labels == y].all()))
    else:
        if source_as == "instances":
            for row in torch.nonzero(is_source).flatten():
                add(torch.arange(len(f)) == row, False)
        else:
            for y in torch.unique(labels[is_source]):
                add(is_source & (labels == y), source_norm)
        for y in torch.unique(labels[~is_source & (labels >= 0)]):
            add(~is_source & (labels == y), target_norm)
    loose = ~is_source & (labels < 0)
    if outliers == "own":
        for row in torch.nonzero(loose).flatten():
            add(torch.arange(len(f)) == row, False)
    elif outliers == "one":
        add(loose, False)
    if source_as == "instances":
        owner[torch.as_tensor(rows)] = torch.where(
            is_source[rows], torch.as_tensor(rows), owner[rows])  # a source row's own slot
    x = F.normalize(embeddings, dim=1) if unit_embeddings else embeddings
    sims = x @ torch.stack(entries).T
    logits = sims / temperature if tau == "divide" else sims * temperature
    targets = owner[torch.as_tensor(rows)]
    keep = targets >= 0
    return F.cross_entropy(logits[keep], targets[keep], reduction=reduce)


def _hybrid_target_renormalised(*args):
    return _hybrid_with(*args, target_norm=True)


def _hybrid_source_not_renormalised(*args):
    return _hybrid_with(*args, source_norm=False)


def _hybrid_outliers_dropped(*args):
    return _hybrid_with(*args, outliers="drop")


def _hybrid_outliers_one_class(*args):
    return _hybrid_with(*args, outliers="one")


def _hybrid_raw_mean(*args):
    return _hybrid_with(*args, unit_first=False)


def _hybrid_embeddings_raw(*args):
    return _hybrid_with(*args, unit_embeddings=False)


def _hybrid_tau_multiplies(*args):
    return _hybrid_with(*args, tau="multiply")


def _hybrid_sum(*args):
    return _hybrid_with(*args, reduce="sum")


def _hybrid_merged_ids(*args):
    return _hybrid_with(*args, merge_ids=True)


def _hybrid_source_renormalised_only_when_needed(*args):
    # source and target centroids both re-normalised and merged by id: two slips at once
    return _hybrid_with(*args, merge_ids=True, target_norm=True)


def _hybrid_temperature_fixed(embeddings, rows, features, labels, is_source, temperature=0.05):
    return solutions.source_hybrid_loss(embeddings, rows, features, labels, is_source)


def _hybrid_item(*args):
    return torch.tensor(solutions.source_hybrid_loss(*args).item())


def _hybrid_in_place(embeddings, rows, features, labels, is_source, temperature=0.05):
    features.div_(features.norm(dim=1, keepdim=True))
    return solutions.source_hybrid_loss(embeddings, rows, features, labels, is_source,
                                        temperature)


WRONG = [
    ("q1", _mmd_unbiased, False),
    ("q1", _mmd_mean_of_kernels, False),
    ("q1", _mmd_h_multiplies, False),
    ("q1", _mmd_two_sigma_squared, False),
    ("q1", _mmd_distance_not_squared, False),
    ("q1", _mmd_cross_once, False),
    ("q1", _mmd_item, True),
    ("q1", _mmd_centred_in_place, True),
    ("q1b", _bw_diagonal_included, False),
    ("q1b", _bw_x_only, False),
    ("q1b", _bw_cross_only, False),
    ("q1b", _bw_median, False),
    ("q1b", _bw_distance, False),
    ("q1b", _bw_powers_0_to_4, False),
    ("q1b", _bw_with_gradient, True),
    ("q2", _adain_population_variance, False),
    ("q2", _adain_eps_on_std, False),
    ("q2", _adain_batch_statistics, False),
    ("q2", _adain_swapped, False),
    ("q2", _adain_style_detached, True),
    ("q2", _adain_in_place, True),
    ("q3", _hybrid_target_renormalised, False),
    ("q3", _hybrid_source_not_renormalised, False),
    ("q3", _hybrid_outliers_dropped, False),
    ("q3", _hybrid_outliers_one_class, False),
    ("q3", _hybrid_raw_mean, False),
    ("q3", _hybrid_embeddings_raw, False),
    ("q3", _hybrid_tau_multiplies, False),
    ("q3", _hybrid_sum, False),
    ("q3", _hybrid_temperature_fixed, False),
    ("q3", _hybrid_merged_ids, True),
    ("q3", _hybrid_item, True),
    ("q3", _hybrid_in_place, True),
]


class TestDomainAdaptation(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 18


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"mmd_squared": _mmd_cross_once}).summary()
    assert "expected 1.1807" in summary and "Hint: d2 = " in summary
    summary = check(EX.public("q1"), {"mmd_squared": _mmd_mean_of_kernels}).summary()
    assert "expected 1.9181" in summary and "the sum" in summary
    summary = check(EX.hidden("q1"), {"mmd_squared": _mmd_item}).summary()
    assert "has no gradient" in summary
    summary = check(EX.public("q1b"), {"dan_bandwidths": _bw_diagonal_included}).summary()
    assert "expected [0.3333, 0.6667, 1.3333, 2.6667, 5.3333]" in summary
    summary = check(EX.hidden("q1b"), {"dan_bandwidths": _bw_with_gradient}).summary()
    assert "torch.no_grad()" in summary
    summary = check(EX.public("q2"), {"adaptive_instance_norm": _adain_eps_on_std}).summary()
    assert "expected [-0.655, 0.448, 1.552, 2.655]" in summary
    summary = check(EX.hidden("q2"), {"adaptive_instance_norm": _adain_style_detached}).summary()
    assert "no gradient reaches the style" in summary
    summary = check(EX.public("q3"), {"source_hybrid_loss": _hybrid_target_renormalised}).summary()
    assert "expected 0.9481" in summary and "(0.6, 0)" in summary
    summary = check(EX.public("q3"), {"source_hybrid_loss": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_examples_agree_with_reidlib():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    e = math.e
    assert float(mmd2(x, y, [1.0])) == pytest.approx((1 + 1 / e) / 2 + 1 - (1 / e + e**-2))
    assert float(mmd2(x, y, [1.0])) == pytest.approx(1.1807, abs=1e-4)
    assert float(mmd2(x, y, [0.5, 4.0])) == pytest.approx(1.9181, abs=1e-4)
    expected = [1 / 3, 2 / 3, 4 / 3, 8 / 3, 16 / 3]
    assert default_bandwidths(x, y).tolist() == pytest.approx(expected)
    assert solutions.dan_bandwidths(x, y).tolist() == pytest.approx(expected)
    pooled = default_bandwidths(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.tensor([[4.0, 5.0]]))
    assert pooled.tolist() == pytest.approx([100 / 6 * 2.0**p for p in range(-2, 3)])


def test_q2_example_agrees_with_reidlib():
    content = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]], dtype=torch.float64)
    style = torch.tensor([[[[0.0, 0.0], [2.0, 2.0]]]], dtype=torch.float64)
    by_hand = (content - 4) / math.sqrt(5) + 1
    assert torch.allclose(adain(content, style, 1e-12), by_hand, atol=1e-6)
    assert torch.allclose(by_hand.flatten(), torch.tensor([-0.342, 0.553, 1.447, 2.342],
                                                          dtype=torch.float64), atol=1e-3)
    ratio = math.sqrt((4 / 3 + 1) / (20 / 3 + 1))
    with_eps = adain(content, style, 1.0).flatten()
    assert torch.allclose(with_eps, (content.flatten() - 4) * ratio + 1)
    assert with_eps.tolist() == pytest.approx([-0.655, 0.448, 1.552, 2.655], abs=1e-3)


def test_q3_example_agrees_with_reidlib():
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [0.6, -0.8], [-1.0, 0.0],
                             [0.0, -5.0]])
    labels = np.array([4, 4, 0, 0, -1, -1])
    is_source = np.array([True, True, False, False, False, False])
    memory = SourceHybridMemory(features, labels, is_source, temperature=0.5)
    r = 1 / math.sqrt(2)
    assert torch.allclose(memory.targets(), torch.tensor([[r, r], [0.6, 0.0], [-1.0, 0.0],
                                                          [0.0, -1.0]]), atol=1e-6)
    logits = [math.sqrt(2), 1.2, -2.0, 0.0]
    by_hand = math.log(sum(math.exp(v) for v in logits)) - 1.2
    one = memory(torch.tensor([[1.0, 0.0]]), torch.tensor([2]))
    assert float(one) == pytest.approx(by_hand, abs=1e-6) and by_hand == pytest.approx(0.9481,
                                                                                      abs=1e-4)
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]])
    rows = torch.tensor([2, 0, 4])
    assert float(memory(embeddings, rows)) == pytest.approx(0.5187, abs=1e-4)
    assert float(solutions.source_hybrid_loss(embeddings, rows, features, labels, is_source,
                                              0.5)) == pytest.approx(0.5187, abs=1e-4)
