"""Cross-domain mixup (Luo, Song, Zhang, ECCV 2020) against hand-computed cases and a loop."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from reidlib.domain_adaptation.mixup import cross_domain_mixup, mixup_loss, sample_lambda


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_mixup_hand_computed():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    mix = cross_domain_mixup(s, torch.tensor([2, 0]), t, torch.tensor([10, 11]), lam=0.25)
    assert torch.equal(mix.x, torch.tensor([[4.0, 5.0], [6.0, 7.0]]))  # .25 s + .75 t
    assert mix.lam == 0.25
    assert mix.soft_labels(3).tolist() == [[0, 0, 0.25, 0.75], [0.25, 0, 0, 0.75]]
    assert mix.target_y.tolist() == [10, 11]


def test_mixup_of_images_keeps_shape_and_pairs_by_position():
    s, t = _rand(3, 3, 4, 2, seed=0), _rand(3, 3, 4, 2, seed=1)
    mix = cross_domain_mixup(s, torch.tensor([0, 1, 2]), t, torch.tensor([5, 6, 7]), rng=3)
    for i in range(3):
        torch.testing.assert_close(mix.x[i], mix.lam * s[i] + (1 - mix.lam) * t[i])


def test_mixup_loss_hand_computed():
    # f = (1, 0), W = [[2, 0], [0, 1]], y_s = 0, target slot m = (.6, .8), lam = .25:
    # scores = [f.W0, f.W1, (f.m) |W0|] = [2, 0, 1.2]
    f = torch.tensor([[1.0, 0.0]])
    w = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    mix = cross_domain_mixup(f, torch.tensor([0]), f, torch.tensor([0]), lam=0.25)
    loss = mixup_loss(f, w, torch.tensor([[0.6, 0.8]]), mix)
    lse = math.log(math.exp(2) + 1 + math.exp(1.2))
    assert loss.item() == pytest.approx(0.25 * (lse - 2) + 0.75 * (lse - 1.2), rel=1e-6)


def loop_reference(f, w, agents, ys, lam):
    """Per sample: lam * CE(scores, y_s) + (1 - lam) * CE(scores, virtual), the virtual
    logit (f . m) * |W_y| with the norm taken as a constant."""
    total = 0
    for fi, ai, y in zip(f, agents, ys.tolist(), strict=True):
        logits = [fi @ w[c] for c in range(len(w))]
        logits.append((fi @ ai) * w[y].detach().norm())
        logits = torch.stack(logits)
        lse = torch.logsumexp(logits, 0)
        total = total + lam * (lse - logits[y]) + (1 - lam) * (lse - logits[-1])
    return total / len(f)


def test_mixup_loss_and_gradients_match_the_loop():
    f, w = _rand(5, 4, seed=0).requires_grad_(), _rand(3, 4, seed=1).requires_grad_()
    agents = torch.nn.functional.normalize(_rand(5, 4, seed=2), dim=1)
    ys = torch.tensor([0, 2, 2, 1, 0])
    mix = cross_domain_mixup(f.detach(), ys, f.detach(), torch.arange(5), rng=0)
    loss = mixup_loss(f, w, agents, mix)
    f2 = f.detach().double().requires_grad_()
    w2 = w.detach().double().requires_grad_()
    ref = loop_reference(f2, w2, agents.double(), ys, mix.lam)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(f.grad.double(), f2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w.grad.double(), w2.grad, rtol=1e-4, atol=1e-6)


def test_lambda_is_seeded_and_beta_distributed():
    assert sample_lambda(0.6, 7) == sample_lambda(0.6, 7)
    assert sample_lambda(0.6, 7) != sample_lambda(0.6, 8)
    rng = np.random.default_rng(0)
    draws = np.array([sample_lambda(0.6, rng) for _ in range(2000)])
    assert ((draws >= 0) & (draws <= 1)).all()
    assert scipy.stats.kstest(draws, scipy.stats.beta(0.6, 0.6).cdf).pvalue > 0.01
    # Beta(a, a) with a < 1 is U-shaped: much of its mass near 0 and 1, not a uniform
    assert scipy.stats.kstest(draws, "uniform").pvalue < 0.01
    s, t, y = _rand(2, 3, seed=0), _rand(2, 3, seed=1), torch.tensor([0, 1])
    assert cross_domain_mixup(s, y, t, y, rng=5).lam == sample_lambda(0.6, 5)


def test_argument_checks():
    s, t, y = _rand(2, 3, seed=0), _rand(2, 3, seed=1), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="alpha"):
        cross_domain_mixup(s, y, t, y, alpha=0)
    with pytest.raises(ValueError, match="one shape"):
        cross_domain_mixup(s, y, _rand(3, 3, seed=1), y)
    with pytest.raises(ValueError, match="floating-point"):
        cross_domain_mixup(s.to(torch.uint8), y, t, y)
    with pytest.raises(ValueError, match=r"source_y must be a \(2,\) integer"):
        cross_domain_mixup(s, y.float(), t, y)
    with pytest.raises(ValueError, match="target_y"):
        cross_domain_mixup(s, y, t, torch.tensor([0]))
    with pytest.raises(ValueError, match="lam"):
        cross_domain_mixup(s, y, t, y, lam=1.5)
    mix = cross_domain_mixup(s, y, t, y, lam=0.5)
    with pytest.raises(ValueError, match="classifier_weight"):
        mixup_loss(s, _rand(2, 4, seed=2), t, mix)
    with pytest.raises(ValueError, match="target_agents"):
        mixup_loss(s, _rand(2, 3, seed=2), t[:1], mix)
    with pytest.raises(ValueError, match="num_source_classes"):
        mix.soft_labels(1)
