"""Multi-kernel MMD (Gretton et al. 2012) and D-MMD (Mekhazni et al., ECCV 2020) against
references written from the equations: double loops over pairs in float64, a hand-computed
case, and D-MMD's distance blocks built per identity as its code does (P x K batches).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reidlib.domain_adaptation.alignment import (
    DMMD_BANDWIDTHS,
    default_bandwidths,
    distance_distribution_mmd,
    gaussian_kernel_mixture,
    mmd2,
)

H = [0.5, 2.0, 7.0]
SIGMAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 5, 10, 15, 20, 25, 30, 35, 100,
          1e3, 1e4, 1e5, 1e6]  # D-MMD's list, in its own convention exp(-d / (2 sigma))


def _rand(n, d, seed, shift=0.0, grad=False):
    x = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return (x + shift).requires_grad_(grad)


def _k(a, b, hs):
    d2 = sum((a[t] - b[t]) ** 2 for t in range(len(a)))
    return sum(torch.exp(-d2 / h) for h in hs)


def _mmd_loop(x, y, hs, unbiased):
    """Gretton et al. Eq. 3 (unbiased) / Eq. 5 (biased), one pair at a time."""
    m, n = len(x), len(y)
    sxx = sum(_k(x[i], x[j], hs) for i in range(m) for j in range(m) if i != j or not unbiased)
    syy = sum(_k(y[i], y[j], hs) for i in range(n) for j in range(n) if i != j or not unbiased)
    sxy = sum(_k(x[i], y[j], hs) for i in range(m) for j in range(n))
    cx, cy = (m * (m - 1), n * (n - 1)) if unbiased else (m * m, n * n)
    return sxx / cx + syy / cy - 2 * sxy / (m * n)


def _dan_bandwidths(x, y, mul=2.0, num=5):
    pooled = torch.cat([x, y]).detach()
    pairs = [((a - b) ** 2).sum() for i, a in enumerate(pooled)
             for j, b in enumerate(pooled) if i != j]
    base = float(sum(pairs) / len(pairs))
    return [base * mul ** (i - num // 2) for i in range(num)]


# ------------------------------------------------------------------ kernel and MMD


def test_kernel_mixture_equals_a_double_loop():
    x, y = _rand(4, 3, 0), _rand(5, 3, 1)
    k = gaussian_kernel_mixture(x, y, H)
    expected = torch.stack([torch.stack([_k(a, b, H) for b in y]) for a in x])
    torch.testing.assert_close(k, expected)


@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_equals_a_double_loop_with_unequal_sizes(unbiased):
    x, y = _rand(5, 3, 0), _rand(7, 3, 1, shift=0.5)
    torch.testing.assert_close(mmd2(x, y, H, unbiased=unbiased), _mmd_loop(x, y, H, unbiased))


@pytest.mark.parametrize("unbiased", [False, True])
def test_default_bandwidths_follow_dan_around_the_mean_squared_distance(unbiased):
    x, y = _rand(4, 2, 3), _rand(6, 2, 4, shift=1.0)
    expected = _dan_bandwidths(x, y)
    torch.testing.assert_close(default_bandwidths(x, y), torch.tensor(expected,
                                                                      dtype=torch.float64))
    torch.testing.assert_close(mmd2(x, y, unbiased=unbiased),
                               _mmd_loop(x, y, expected, unbiased))
    same = torch.ones(3, 2, dtype=torch.float64)  # every row one point: base 1, MMD 0
    torch.testing.assert_close(default_bandwidths(same, same)[2], torch.tensor(1.0).double())
    assert float(mmd2(same, same)) == 0.0


def test_hand_computed_cases():
    x, y = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    # biased, one point each, h = 1: k(x,x) + k(y,y) - 2 k(x,y) = 2 - 2 / e
    assert float(mmd2(x, y, [1.0])) == pytest.approx(2 - 2 / math.e, rel=1e-6)
    # two kernels add up: h = 1 and h = 4 give 2 (1 - e^-1) + 2 (1 - e^-1/4)
    assert float(mmd2(x, y, [1.0, 4.0])) == pytest.approx(
        2 * (1 - math.exp(-1)) + 2 * (1 - math.exp(-0.25)), rel=1e-6)
    # unbiased, x = {0, 1}, y = {0, 3}, h = 1
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [3.0]])
    e = math.exp
    expected = e(-1) + e(-9) - 2 * (1 + e(-9) + e(-1) + e(-4)) / 4
    assert float(mmd2(x, y, [1.0], unbiased=True)) == pytest.approx(expected, rel=1e-6)


def test_identical_samples_biased_is_zero_unbiased_is_zero_in_expectation():
    x = _rand(6, 4, 5)
    assert float(mmd2(x, x.clone())) == pytest.approx(0.0, abs=1e-12)
    g = torch.Generator().manual_seed(0)
    unbiased, biased = [], []
    for _ in range(300):  # two samples of one distribution, fixed bandwidths
        a = torch.randn(5, 2, generator=g, dtype=torch.float64)
        b = torch.randn(7, 2, generator=g, dtype=torch.float64)
        unbiased.append(float(mmd2(a, b, [1.0, 4.0], unbiased=True)))
        biased.append(float(mmd2(a, b, [1.0, 4.0])))
    mean, se = np.mean(unbiased), np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(mean) < 4 * se
    assert min(unbiased) < 0 < np.mean(biased) - 10 * se  # the V-statistic is biased upwards


@pytest.mark.parametrize("unbiased", [False, True])
def test_gradients_flow_to_both_samples_as_the_loop_reference(unbiased):
    x1, y1 = _rand(4, 3, 6, grad=True), _rand(5, 3, 7, shift=0.3, grad=True)
    x2, y2 = _rand(4, 3, 6, grad=True), _rand(5, 3, 7, shift=0.3, grad=True)
    mmd2(x1, y1, H, unbiased=unbiased).backward()
    _mmd_loop(x2, y2, H, unbiased).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(y1.grad, y2.grad)
    assert not torch.isnan(x1.grad).any() and x1.grad.abs().sum() > 0


def test_half_precision_and_mixed_dtypes_are_computed_in_float32_or_wider():
    x, y = _rand(4, 3, 10).float(), _rand(5, 3, 11, shift=0.5).float()
    xb, yb = x.bfloat16(), y.bfloat16()
    got = mmd2(xb, yb, H)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, mmd2(xb.float(), yb.float(), H))
    mixed = mmd2(x, y.double(), H)
    assert mixed.dtype == torch.float64
    torch.testing.assert_close(mixed, _mmd_loop(x.double(), y.double(), H, False))


def test_minimising_the_mmd_moves_the_target_onto_the_source():
    source = _rand(16, 2, 8)
    target = _rand(16, 2, 9, shift=3.0, grad=True)
    opt = torch.optim.SGD([target], lr=2.0)
    start = float(mmd2(source, target).detach())
    gap = float((target.mean(0) - source.mean(0)).norm().detach())
    for _ in range(100):
        opt.zero_grad()
        mmd2(source, target).backward()
        opt.step()
    assert float(mmd2(source, target).detach()) < 0.1 * start
    assert float((target.mean(0) - source.mean(0)).norm().detach()) < 0.5 * gap


# ------------------------------------------------------------------ D-MMD


def _sq(a, b):
    """torchreid's 'euclidean' distance matrix (squared), one pair at a time."""
    return torch.stack([torch.stack([((u - v) ** 2).sum() for v in b]) for u in a])


def _dmmd_kernel_mmd(x, y):
    """D-MMD's ``maximum_mean_discrepancy``: mean k(x,x) + mean k(y,y) - 2 mean k(x,y) with
    k = sum over sigma of exp(-|a - b|^2 / (2 sigma))."""
    def k(a, b):
        d = _sq(a, b)
        return sum(torch.exp(-d / (2 * s)) for s in SIGMAS)
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def _dmmd_reference(source, target, p, k):
    """D-MMD's forward for P x K batches ordered by identity, every ordered pair of classes."""
    def blocks(f):
        groups = f.reshape(p, k, -1)
        within = torch.cat([_sq(g, g) for g in groups])
        between = torch.cat([_sq(groups[a], groups[b]) for a in range(p) for b in range(p)
                             if a != b])
        return within, between
    ws, bs = blocks(source)
    wt, bt = blocks(target)
    return (_dmmd_kernel_mmd(ws.detach(), wt), _dmmd_kernel_mmd(bs.detach(), bt),
            _dmmd_kernel_mmd(source, target))


def _pk(p, k, d, seed, shift=0.0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(p, 1, d, generator=g, dtype=torch.float64) * 2
    f = centres + spread * torch.randn(p, k, d, generator=g, dtype=torch.float64) + shift
    return f.reshape(p * k, d), torch.arange(p).repeat_interleave(k)


def test_dmmd_rows_equal_the_reference_blocks_and_gradients():
    s, ys = _pk(4, 3, 5, 0)
    t, yt = _pk(4, 3, 5, 1, shift=0.4, spread=1.5)
    s1, t1 = s.clone().requires_grad_(), t.clone().requires_grad_()
    s2, t2 = s.clone().requires_grad_(), t.clone().requires_grad_()
    ours = distance_distribution_mmd(s1, ys, t1, yt)
    ref = _dmmd_reference(s2, t2, 4, 3)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)
    ours.total.backward()
    sum(ref).backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)
    assert len(DMMD_BANDWIDTHS) == 19 and DMMD_BANDWIDTHS[0] == pytest.approx(2e-6)


def test_dmmd_class_order_in_the_batch_does_not_matter_and_labels_are_any_ids():
    s, ys = _pk(3, 4, 4, 2)
    t, yt = _pk(3, 4, 4, 3, shift=1.0)
    base = distance_distribution_mmd(s, ys, t, yt)
    order = torch.cat([(yt == c).nonzero().flatten() for c in (2, 0, 1)])  # classes moved
    relabelled = torch.tensor([7, 3, 9])[yt[order]]
    # rows of the classes interleaved, each class's images in their order
    inter = torch.tensor([r * 4 + k for k in range(4) for r in range(3)])
    for terms in (distance_distribution_mmd(s, ys, t[order], relabelled),
                  distance_distribution_mmd(s[inter], ys[inter], t, yt)):
        for a, b in zip(base, terms, strict=True):
            torch.testing.assert_close(a, b)


def test_dmmd_pairs_are_the_distances_between_distinct_images():
    s, ys = _pk(3, 3, 4, 4)
    t = _rand(8, 4, 5, shift=0.5)
    yt = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])  # classes of different sizes
    within_s = [((s[i] - s[j]) ** 2).sum() for i in range(9) for j in range(i + 1, 9)
                if ys[i] == ys[j]]
    between_s = [((s[i] - s[j]) ** 2).sum() for i in range(9) for j in range(i + 1, 9)
                 if ys[i] != ys[j]]
    within_t = [((t[i] - t[j]) ** 2).sum() for i in range(8) for j in range(i + 1, 8)
                if yt[i] == yt[j]]
    between_t = [((t[i] - t[j]) ** 2).sum() for i in range(8) for j in range(i + 1, 8)
                 if yt[i] != yt[j]]
    ours = distance_distribution_mmd(s, ys, t, yt, samples="pairs")
    ws, wt, bs, bt = (torch.stack(v)[:, None] for v in (within_s, within_t, between_s,
                                                           between_t))
    torch.testing.assert_close(ours.within, _dmmd_kernel_mmd(ws, wt))
    torch.testing.assert_close(ours.between, _dmmd_kernel_mmd(bs, bt))
    torch.testing.assert_close(ours.features, _dmmd_kernel_mmd(s, t))


def test_dmmd_source_distances_are_detached_unless_asked():
    s, ys = _pk(3, 2, 4, 6)
    t, yt = _pk(3, 2, 4, 7, shift=0.5)
    for detach in (True, False):
        src, tgt = s.clone().requires_grad_(), t.clone().requires_grad_()
        terms = distance_distribution_mmd(src, ys, tgt, yt, detach_source=detach)
        (terms.within + terms.between).backward()
        assert tgt.grad.abs().sum() > 0
        if detach:
            assert src.grad is None
        else:
            assert src.grad.abs().sum() > 0


def test_dmmd_is_zero_for_identical_domains():
    s, ys = _pk(3, 3, 4, 8)
    terms = distance_distribution_mmd(s, ys, s.clone(), ys.clone())
    assert float(terms.total) == pytest.approx(0.0, abs=1e-10)


# ------------------------------------------------------------------ argument checks


@pytest.mark.parametrize("x, y, match", [
    (torch.zeros(3), torch.zeros(3, 2), "2-D"),
    (torch.zeros(3, 2), torch.zeros(3, 4), "same number of columns"),
    (torch.zeros(0, 2), torch.zeros(3, 2), "rows >= 1"),
    (torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 2), "floating-point"),
    (np.zeros((3, 2)), torch.zeros(3, 2), "floating-point torch tensor"),
])
def test_mmd_shape_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        mmd2(x, y)


@pytest.mark.parametrize("bandwidths", [[1.0, 0.0], [-1.0], [], [float("nan")],
                                        torch.ones(2, 2), "wide", ["a"]])
def test_bandwidth_errors(bandwidths):
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="bandwidths"):
        mmd2(x, x, bandwidths)
    with pytest.raises(ValueError, match="bandwidths"):
        gaussian_kernel_mixture(x, x, bandwidths)


def test_other_mmd_errors():
    with pytest.raises(ValueError, match=">= 2 rows"):
        mmd2(torch.zeros(1, 2), torch.zeros(3, 2), unbiased=True)
    with pytest.raises(ValueError, match="unbiased"):
        mmd2(torch.zeros(2, 2), torch.zeros(3, 2), unbiased=1)
    with pytest.raises(ValueError, match="kernel_mul"):
        default_bandwidths(torch.zeros(2, 2), torch.zeros(2, 2), kernel_mul=0)
    with pytest.raises(ValueError, match="kernel_num"):
        default_bandwidths(torch.zeros(2, 2), torch.zeros(2, 2), kernel_num=0)


def test_dmmd_errors():
    s, ys = _pk(3, 2, 4, 0)
    t, yt = _pk(3, 2, 4, 1)
    with pytest.raises(ValueError, match="same number of images K"):
        distance_distribution_mmd(s, ys, t, torch.tensor([0, 0, 0, 1, 1, 2]))
    with pytest.raises(ValueError, match="outliers"):
        distance_distribution_mmd(s, ys, t, torch.tensor([0, 0, 1, 1, -1, -1]))
    with pytest.raises(ValueError, match=">= 2 classes"):
        distance_distribution_mmd(s, ys, t, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 2 classes"):  # no class with two images
        distance_distribution_mmd(s, ys, t, torch.arange(6), samples="pairs")
    with pytest.raises(ValueError, match="same K"):
        distance_distribution_mmd(s, ys, t, torch.tensor([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="shape"):
        distance_distribution_mmd(s, ys[:5], t, yt)
    with pytest.raises(ValueError, match="samples"):
        distance_distribution_mmd(s, ys, t, yt, samples="blocks")
    with pytest.raises(ValueError, match="bandwidths"):
        distance_distribution_mmd(s, ys, t, yt, bandwidths=[0.0])
