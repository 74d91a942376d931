"""Intra- / inter-camera memory losses (survey Eq. 8-10, Luo et al. ECCV 2020) against loops.

The reference is written per sample in float64 from Eq. 8-10 with Luo et al.'s weights:
neighbours are the entries of a set whose cosine exceeds eps x the nearest one's, each
weighted 1 / count, plus weight 1 on the sample's own entry in the intra term.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reidlib.camera.memory import (
    CameraExemplarMemory,
    camera_neighbourhood_loss,
    relative_neighbours,
)

TAU, EPS = 0.2, 0.8
N, D = 16, 4
CAMIDS = np.array([3, 1, 1, 3, 5, 1, 3, 5, 5, 1, 3, 3, 1, 5, 1, 3])  # ids not contiguous
BATCH = torch.tensor([0, 4, 9, 2, 15, 7, 12])


def _rand(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _unit(v):
    return v / v.norm()


def reference(entries, camids, emb, rows, tau=TAU, eps=EPS):
    """(intra, inter) of Eq. 10, one sample at a time."""
    bank = [_unit(m) for m in entries.double()]
    intra_total = inter_total = 0
    for e, r in zip(emb, rows.tolist(), strict=True):
        x, c = _unit(e.double()), camids[r]
        cos = {j: bank[j] @ x for j in range(len(bank))}
        intra_set = [j for j in cos if camids[j] == c]
        inter_set = [j for j in cos if camids[j] != c]
        intra_total = intra_total + _term(cos, intra_set, [j for j in intra_set if j != r],
                                          tau, eps) - _log_p(cos, intra_set, r, tau)
        inter_total = inter_total + _term(cos, inter_set, inter_set, tau, eps)
    return intra_total / len(rows), inter_total / len(rows)


def _log_p(cos, the_set, j, tau):
    """log p(j | x) over ``the_set`` (Eq. 8 or 9)."""
    return cos[j] / tau - torch.logsumexp(torch.stack([cos[k] / tau for k in the_set]), 0)


def _term(cos, the_set, candidates, tau, eps):
    """-sum_j w_j log p(j) over the neighbours among ``candidates`` (0 without any)."""
    if not candidates:
        return 0
    nearest = max(float(cos[j].detach()) for j in candidates)
    neighbours = [j for j in candidates if float(cos[j].detach()) > eps * nearest]
    if not neighbours:
        return 0
    return -sum(_log_p(cos, the_set, j, tau) for j in neighbours) / len(neighbours)


# --- losses -----------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.3, 0.8, 0.95])
def test_memory_loss_matches_loop_reference(eps):
    entries, emb = _rand(N, D, 0), _rand(len(BATCH), D, 1)
    memory = CameraExemplarMemory(entries, CAMIDS, temperature=TAU, eps=eps)
    intra, inter = memory(emb, BATCH)
    ref_intra, ref_inter = reference(entries, CAMIDS, emb, BATCH, eps=eps)
    assert intra.item() == pytest.approx(float(ref_intra), rel=1e-5)
    assert inter.item() == pytest.approx(float(ref_inter), rel=1e-5)


def test_gradient_matches_loop_reference():
    entries, base = _rand(N, D, 2), _rand(len(BATCH), D, 3)
    memory = CameraExemplarMemory(entries, CAMIDS, temperature=TAU)
    emb = base.clone().requires_grad_()
    intra, inter = memory(emb, BATCH)
    (intra + 0.5 * inter).backward()
    ref_emb = base.clone().double().requires_grad_()
    ref_intra, ref_inter = reference(entries, CAMIDS, ref_emb, BATCH)
    (ref_intra + 0.5 * ref_inter).backward()
    torch.testing.assert_close(emb.grad, ref_emb.grad.float(), rtol=1e-4, atol=1e-6)


def test_hand_case():
    # Entries: camera 0 holds e1 (row 0, the sample's own) and (0.8, 0.6); camera 1 holds
    # (0.6, 0.8) and e2. x = e1, tau = 1, eps = 0.8.
    # Intra: candidates = {(0.8, 0.6)} (own excluded) -> neighbour, weight 1; plus own.
    #   log-normaliser over camera 0: log(e^1 + e^0.8).
    # Inter: cosines 0.6, 0; nearest 0.6 -> neighbours: cos > 0.48 -> only (0.6, 0.8).
    entries = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    sims = entries @ torch.tensor([1.0, 0.0])
    intra, inter = camera_neighbourhood_loss(sims[None], torch.tensor([0]),
                                             torch.tensor([0, 0, 1, 1]), torch.tensor([0]),
                                             temperature=1.0, eps=0.8)
    norm0 = math.log(math.e + math.exp(0.8))
    assert intra.item() == pytest.approx((norm0 - 0.8) + (norm0 - 1.0), abs=1e-6)
    assert inter.item() == pytest.approx(math.log(math.exp(0.6) + 1.0) - 0.6, abs=1e-6)


def test_relative_neighbours():
    sims = torch.tensor([[0.9, 0.75, 0.7, 0.95, -0.2],
                         [-0.1, -0.3, -0.5, 0.0, -0.2],
                         [0.5, 0.1, 0.45, 0.3, 0.41]])
    candidates = torch.tensor([[True, True, True, False, True],
                               [True, True, True, True, True],
                               [False, False, False, False, False]])
    got = relative_neighbours(sims, candidates, eps=0.8)
    # row 0: nearest candidate 0.9 (0.95 is no candidate): > 0.72 -> 0.9 and 0.75
    assert got[0].tolist() == [True, True, False, False, False]
    assert not got[1].any()  # nearest cosine <= 0: no neighbour (Luo et al. divide by 0)
    assert not got[2].any()  # no candidate


def test_a_sample_alone_in_its_camera_has_only_its_own_entry():
    # Camera 7 holds only row 0: p_intra(own) = 1, so the intra loss is 0; the inter term
    # is the usual one.
    entries = _rand(5, D, 4)
    camids = np.array([7, 1, 1, 2, 2])
    memory = CameraExemplarMemory(entries, camids, temperature=TAU)
    emb = _rand(1, D, 5)
    intra, inter = memory(emb, torch.tensor([0]))
    assert intra.item() == pytest.approx(0.0, abs=1e-6)
    assert inter.item() == pytest.approx(
        float(reference(entries, camids, emb, torch.tensor([0]))[1]), rel=1e-5)
    assert torch.isfinite(inter)


def test_inter_set_excludes_the_own_camera():
    # Making an own-camera entry identical to x must not change the inter loss.
    entries, emb = _rand(N, D, 6), _rand(1, D, 7)
    rows = torch.tensor([0])  # camera 3
    before = CameraExemplarMemory(entries, CAMIDS, temperature=TAU)(emb, rows)[1]
    entries[3] = emb[0]  # row 3 is camera 3 too
    after = CameraExemplarMemory(entries, CAMIDS, temperature=TAU)(emb, rows)[1]
    assert after.item() == pytest.approx(before.item(), rel=1e-6)


# --- update, state ----------------------------------------------------------------------------

def test_update_matches_sequential_loop():
    entries, emb = _rand(N, D, 8), _rand(5, D, 9)
    rows = torch.tensor([2, 5, 2, 0, 5])
    memory = CameraExemplarMemory(entries, CAMIDS, momentum=0.6)
    memory.update(emb, rows)
    bank = F.normalize(entries, dim=1).double()
    for r, e in zip(rows.tolist(), emb.double(), strict=True):
        bank[r] = _unit(0.6 * bank[r] + 0.4 * _unit(e))
    torch.testing.assert_close(memory.features, bank.float(), rtol=1e-5, atol=1e-6)


def test_state_round_trip():
    memory = CameraExemplarMemory(_rand(N, D, 10), CAMIDS, momentum=0.5, eps=0.7)
    memory.update(_rand(2, D, 11), torch.tensor([1, 2]))
    clone = CameraExemplarMemory.from_state(memory.state_dict(), **memory.settings())
    assert clone.settings() == {"momentum": 0.5, "temperature": 0.1, "eps": 0.7}
    emb = _rand(len(BATCH), D, 12)
    torch.testing.assert_close(torch.stack(clone(emb, BATCH)), torch.stack(memory(emb, BATCH)))
    assert "cameras=3" in repr(memory)


# --- argument checks --------------------------------------------------------------------------

def test_bad_arguments_raise_clear_errors():
    entries = _rand(N, D, 13)
    with pytest.raises(ValueError, match="at least two cameras"):
        CameraExemplarMemory(entries, np.zeros(N, dtype=int))
    with pytest.raises(ValueError, match="one camera id per feature row"):
        CameraExemplarMemory(entries, CAMIDS[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        CameraExemplarMemory(entries, np.where(CAMIDS == 5, -1, CAMIDS))
    for eps in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="eps"):
            CameraExemplarMemory(entries, CAMIDS, eps=eps)
    with pytest.raises(ValueError, match="momentum"):
        CameraExemplarMemory(entries, CAMIDS, momentum=2.0)
    memory = CameraExemplarMemory(entries, CAMIDS)
    with pytest.raises(ValueError, match=rf"\(B, {D}\)"):
        memory(_rand(2, D + 1, 14), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=rf"\[0, {N}\)"):
        memory(_rand(2, D, 14), torch.tensor([0, N]))
    memory.eps = 1.2  # changed between steps: checked at use
    with pytest.raises(ValueError, match="eps"):
        memory(_rand(2, D, 14), torch.tensor([0, 1]))
