"""Hidden checks of q3 (instructors; exercises/grade.py): SpCL's UDA memory loss against
reidlib.domain_adaptation.spcl_uda.SourceHybridMemory (value and gradient) and against a loop
that builds the memory entry by entry."""

import math

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.domain_adaptation.spcl_uda import SourceHybridMemory

OK_FORMAT = False
name = "q3_hidden"


def _loss(function, *args):
    assert callable(function), "define a function called source_hybrid_loss"
    got = function(*args)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"expected a torch scalar (the batch's loss), got {got!r}"
    )
    return got.reshape(())


def _case(gen, n, d, source_ids, target_ids, dtype=torch.float64):
    """n rows, the first half source (ids from source_ids), the rest target (ids from
    target_ids, -1 included); target ids may equal source ids."""
    features = 2 * torch.randn(n, d, generator=gen, dtype=dtype)
    is_source = np.arange(n) < n // 2
    pick = torch.randint(0, 10**6, (n,), generator=gen).numpy()
    labels = np.where(is_source, np.asarray(source_ids)[pick % len(source_ids)],
                      np.asarray(target_ids)[pick % len(target_ids)])
    return features, labels, is_source


def _loop(embeddings, rows, features, labels, is_source, tau):
    """SpCL's UDA softmax, entry by entry."""
    unit = [np.asarray(f) / np.linalg.norm(f) for f in features.tolist()]
    entries, positive = [], {}
    groups = [(True, y) for y in sorted(set(labels[is_source].tolist()))]
    groups += [(False, y) for y in sorted(set(labels[~is_source].tolist())) if y >= 0]
    for source, y in groups:
        members = [i for i in range(len(unit)) if is_source[i] == source and labels[i] == y]
        mean = np.mean([unit[i] for i in members], axis=0)
        for i in members:
            positive[i] = len(entries)
        entries.append(mean / np.linalg.norm(mean) if source else mean)
    for i in range(len(unit)):
        if not is_source[i] and labels[i] < 0:
            positive[i] = len(entries)
            entries.append(unit[i])
    total = 0.0
    for x, row in zip(embeddings.tolist(), rows.tolist(), strict=True):
        x = np.asarray(x) / np.linalg.norm(x)
        logits = [float(e @ x) / tau for e in entries]
        top = max(logits)
        total += top + math.log(sum(math.exp(v - top) for v in logits)) - logits[positive[row]]
    return total / len(rows)


@test_case(name="q3_hidden - random memories against a loop", hidden=True)
def against_loop(source_hybrid_loss):
    gen = torch.Generator().manual_seed(147)
    for tau in (0.05, 0.2, 1.0):
        for n, d, source_ids, target_ids in ((20, 6, [0, 1, 2], [0, 1, -1]),
                                             (16, 4, [7, 3], [3, 9, 12, -1, -1]),
                                             (12, 8, [5], [-1]), (18, 5, [0, 2, 4], [2, 5])):
            features, labels, is_source = _case(gen, n, d, source_ids, target_ids)
            rows = torch.randint(0, n, (9,), generator=gen)
            embeddings = 3 * torch.randn(9, d, generator=gen, dtype=torch.float64)
            expected = _loop(embeddings, rows, features, labels, is_source, tau)
            got = float(_loss(source_hybrid_loss, embeddings.clone(), rows.clone(),
                              features.clone(), labels.copy(), is_source.copy(), tau))
            assert abs(got - expected) < 1e-6 * max(1.0, abs(expected)), (
                f"source_hybrid_loss({n} rows, source ids {source_ids}, target labels "
                f"{target_ids}, temperature={tau}) returned {got:.6f}, expected {expected:.6f}"
            )


@test_case(name="q3_hidden - reidlib's SourceHybridMemory and its gradient", hidden=True)
def against_reidlib(source_hybrid_loss):
    gen = torch.Generator().manual_seed(148)
    for n, d, source_ids, target_ids in ((64, 16, list(range(8)), [0, 1, 2, 3, -1]),
                                         (30, 8, [4, 5, 6], [4, -1, -1, 9])):
        features, labels, is_source = _case(gen, n, d, source_ids, target_ids, torch.float32)
        rows = torch.randint(0, n, (16,), generator=gen)
        e0 = torch.randn(16, d, generator=gen)
        x = e0.clone().requires_grad_(True)
        got = _loss(source_hybrid_loss, x, rows, features.clone(), labels.copy(),
                    torch.as_tensor(is_source))
        assert got.requires_grad, (
            "source_hybrid_loss's result has no gradient: build it from torch operations on "
            "the embeddings (no .item(), .numpy() or float() inside)"
        )
        got.backward()
        y = e0.clone().requires_grad_(True)
        expected = SourceHybridMemory(features, labels, is_source)(y, rows)
        expected.backward()
        assert abs(float(got) - float(expected)) < 1e-4 * max(1.0, float(expected)), (
            f"source_hybrid_loss({n} rows, 16 embeddings) returned {float(got):.5f}, but "
            f"reidlib's SourceHybridMemory gives {float(expected):.5f}"
        )
        assert torch.allclose(x.grad, y.grad, atol=1e-5), (
            "the gradient of source_hybrid_loss with respect to the embeddings differs from "
            "reidlib's"
        )


@test_case(name="q3_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(source_hybrid_loss):
    gen = torch.Generator().manual_seed(149)
    features, labels, is_source = _case(gen, 10, 3, [0, 1], [0, -1])
    embeddings, rows = torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.tensor(
        [0, 5, 8, 9])
    copies = (embeddings.clone(), features.clone(), labels.copy(), is_source.copy())
    _loss(source_hybrid_loss, embeddings, rows, features, labels, is_source)
    assert torch.equal(embeddings, copies[0]) and torch.equal(features, copies[1]) and \
        np.array_equal(labels, copies[2]) and np.array_equal(is_source, copies[3]), (
            "source_hybrid_loss changed the embeddings, features, labels or is_source it was "
            "given (normalise into new tensors, not in place)"
        )
