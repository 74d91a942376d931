"""exercises/03_camera_invariance: the otter checks, the student notebook and the instructor
grader.

Shared tests: ExerciseChecks in tests/exercise_harness.py, given the wrong answers below.
Chapter 3's own: the failure messages, and the notebook's hand-made examples checked against
reidlib.camera (CAP's proxies and losses, camera-based BN, IICS's distance).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import ExerciseChecks, check, load_exercise
from torch import nn

from reidlib.camera.association import inter_camera_distance
from reidlib.camera.camera_bn import convert_camera_bn, reestimate_camera_bn
from reidlib.camera.cap import camera_proxies, inter_camera_loss, intra_camera_loss
from reidlib.data.augment import IMAGENET_MEAN, IMAGENET_STD

QUESTIONS = {
    "q1": "camera_proxies",
    "q2": "intra_camera_loss",
    "q3": "inter_camera_loss",
    "q4": "camera_bn_statistics",
    "q5": "iics_distance",
}
EX = load_exercise("03_camera_invariance", QUESTIONS, "ex03")
solutions = EX.solutions


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks catch them.
def _ids(labels, camids):
    return np.asarray(labels).tolist(), np.asarray(camids).tolist()


def _proxies_with(features, labels, camids, key, unit_first=True, renormalise=True):
    """Proxies of the pairs of clustered rows, ordered by ``key(camera, cluster)``."""
    x = F.normalize(features, dim=1) if unit_first else features
    labels, camids = _ids(labels, camids)
    pairs = sorted({(c, y) for y, c in zip(labels, camids, strict=True) if y >= 0}, key=key)
    means = torch.stack([x[[i for i, (y, c) in enumerate(zip(labels, camids, strict=True))
                            if (c, y) == pair]].mean(dim=0) for pair in pairs])
    return (F.normalize(means, dim=1) if renormalise else means,
            torch.tensor([y for _, y in pairs]), torch.tensor([c for c, _ in pairs]))


def _proxies_raw_mean(features, labels, camids):
    return _proxies_with(features, labels, camids, None, unit_first=False)


def _proxies_not_renormalised(features, labels, camids):
    return _proxies_with(features, labels, camids, None, renormalise=False)


def _proxies_cluster_first(features, labels, camids):
    return _proxies_with(features, labels, camids, lambda pair: (pair[1], pair[0]))


def _proxies_outliers_kept(features, labels, camids):
    labels = np.asarray(labels).copy()
    labels[labels < 0] = 10**6  # the outliers become one more cluster
    proxies, clusters, cameras = solutions.camera_proxies(features, labels, camids)
    return proxies, torch.where(clusters == 10**6, -1, clusters), cameras


def _proxies_contiguous_clusters(features, labels, camids):
    proxies, clusters, cameras = solutions.camera_proxies(features, labels, camids)
    return proxies, torch.unique(clusters, return_inverse=True)[1], cameras


def _proxies_first_seen(features, labels, camids):
    labels, camids = _ids(labels, camids)
    seen = [(c, y) for y, c in zip(labels, camids, strict=True) if y >= 0]
    order = {pair: seen.index(pair) for pair in set(seen)}
    return _proxies_with(features, labels, camids, order.get)


def _proxies_camera_index(features, labels, camids):
    # cameras numbered 0..K-1 among all the camids: right only when they already are
    proxies, clusters, cameras = solutions.camera_proxies(features, labels, camids)
    present = np.unique(np.asarray(camids))
    return proxies, clusters, torch.as_tensor(np.searchsorted(present, cameras.numpy()))


def _proxies_in_place(features, labels, camids):
    features.div_(features.norm(dim=1, keepdim=True))  # changes the caller's tensor
    return solutions.camera_proxies(features, labels, camids)


def _per_camera(values, camids, reduce="sum"):
    means = torch.stack([values[camids == c].mean() for c in torch.unique(camids)])
    return means.sum() if reduce == "sum" else means.mean()


def _intra_logits(embeddings, proxies, proxy_camera, camids, temperature, fill=float("-inf"),
                  normalise=True):
    x = F.normalize(embeddings, dim=1) if normalise else embeddings
    logits = x @ proxies.T / temperature
    return logits.masked_fill(camids[:, None] != proxy_camera[None, :], fill)


def _intra_all_proxies(embeddings, proxies, proxy_camera, targets, camids, temperature):
    logits = F.normalize(embeddings, dim=1) @ proxies.T / temperature
    return _per_camera(F.cross_entropy(logits, targets, reduction="none"), camids)


def _intra_batch_mean(embeddings, proxies, proxy_camera, targets, camids, temperature):
    logits = _intra_logits(embeddings, proxies, proxy_camera, camids, temperature)
    return F.cross_entropy(logits, targets)


def _intra_mean_of_cameras(embeddings, proxies, proxy_camera, targets, camids, temperature):
    logits = _intra_logits(embeddings, proxies, proxy_camera, camids, temperature)
    return _per_camera(F.cross_entropy(logits, targets, reduction="none"), camids, "mean")


def _intra_no_normalise(embeddings, proxies, proxy_camera, targets, camids, temperature):
    logits = _intra_logits(embeddings, proxies, proxy_camera, camids, temperature,
                           normalise=False)
    return _per_camera(F.cross_entropy(logits, targets, reduction="none"), camids)


def _intra_zero_mask(embeddings, proxies, proxy_camera, targets, camids, temperature):
    logits = _intra_logits(embeddings, proxies, proxy_camera, camids, temperature, fill=0.0)
    return _per_camera(F.cross_entropy(logits, targets, reduction="none"), camids)


def _intra_item(embeddings, proxies, proxy_camera, targets, camids, temperature):
    return torch.tensor(solutions.intra_camera_loss(embeddings, proxies, proxy_camera, targets,
                                                    camids, temperature).item())


def _intra_in_place(embeddings, proxies, proxy_camera, targets, camids, temperature):
    embeddings.div_(embeddings.norm(dim=1, keepdim=True))
    return solutions.intra_camera_loss(embeddings, proxies, proxy_camera, targets, camids,
                                       temperature)


def _inter_with(embeddings, proxies, proxy_cluster, clusters, camids, temperature, k,
                negatives="hard", positives="mean", reduce="sum", normalise=True):
    x = F.normalize(embeddings, dim=1) if normalise else embeddings
    logits = x @ proxies.T / temperature
    positive = clusters[:, None] == proxy_cluster[None, :]
    if negatives == "all":
        chosen = torch.ones_like(positive)
    else:
        sims = logits.detach()
        if negatives == "easy":
            sims = -sims
        if negatives == "unmasked":  # top-k over every proxy, positives included
            top = sims.topk(min(k, sims.shape[1]), dim=1).indices
        elif negatives == "row_min":  # one k for the batch: the smallest count of negatives
            count = min(k, int((~positive).sum(dim=1).min()))
            top = sims.masked_fill(positive, float("-inf")).topk(count, dim=1).indices
        else:
            top = sims.masked_fill(positive, float("-inf")).topk(min(k, sims.shape[1]),
                                                                 dim=1).indices
        chosen = positive | torch.zeros_like(positive).scatter_(1, top, True)
    log_norm = logits.masked_fill(~chosen, float("-inf")).logsumexp(dim=1)
    if positives == "mean":
        values = log_norm - (logits * positive).sum(dim=1) / positive.sum(dim=1)
    else:  # -log of the summed probability of the positives
        values = log_norm - logits.masked_fill(~positive, float("-inf")).logsumexp(dim=1)
    return values.mean() if reduce == "batch" else _per_camera(values, camids)


def _inter_all_negatives(*args):
    return _inter_with(*args, negatives="all")


def _inter_easy_negatives(*args):
    return _inter_with(*args, negatives="easy")


def _inter_log_of_sum(*args):
    return _inter_with(*args, positives="sum")


def _inter_batch_mean(*args):
    return _inter_with(*args, reduce="batch")


def _inter_topk_unmasked(*args):
    return _inter_with(*args, negatives="unmasked")


def _inter_no_normalise(*args):
    return _inter_with(*args, normalise=False)


def _inter_k_min_over_rows(*args):
    return _inter_with(*args, negatives="row_min")


def _inter_item(*args):
    return torch.tensor(solutions.inter_camera_loss(*args).item())


def _bn_with(model, name, images, camids, batch_size, momentum=None, train=True, reset=True,
             batches="full", unbiased=True, copy_model=True, int_keys=True):
    model = copy.deepcopy(model) if copy_model else model
    model.train(train)
    layer = dict(model.named_modules())[name]
    layer.momentum = momentum
    camids = torch.as_tensor(np.asarray(camids))
    stats = {}
    with torch.no_grad():
        for camera in torch.unique(camids):
            rows = torch.nonzero(camids == camera).flatten()
            if batches == "full":
                rows = rows[:len(rows) // batch_size * batch_size or len(rows)]
            chunks = [rows] if batches == "one" else rows.split(batch_size)
            if reset:
                layer.reset_running_stats()
            for chunk in chunks:
                model(images[chunk])
            var = layer.running_var.clone()
            if not unbiased:  # the batch's own (biased) variance, one batch at a time
                var = torch.stack([images[c].reshape(len(c), -1).var(0, unbiased=False)
                                   for c in chunks]).mean(0) if name == "0" else var * 0.9
            stats[int(camera) if int_keys else camera] = (layer.running_mean.clone(), var)
    return stats


def _bn_default_momentum(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, momentum=0.1)


def _bn_eval_mode(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, train=False)


def _bn_no_reset(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, reset=False)


def _bn_one_batch(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, batches="one")


def _bn_partial_last(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, batches="all")


def _bn_biased_var(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, unbiased=False)


def _bn_tensor_keys(model, name, images, camids, batch_size):
    return _bn_with(model, name, images, camids, batch_size, int_keys=False)


def _bn_in_place(model, name, images, camids, batch_size):
    # the model itself trained in place; its mode put back, its statistics not
    was = model.training
    stats = _bn_with(model, name, images, camids, batch_size, copy_model=False)
    model.train(was)
    return stats


def _iics_with(features, scores, camids, mix, same_too=False, sign=-1, normalise=True,
               similarity="jaccard"):
    x = F.normalize(features, dim=1) if normalise else features
    cams = torch.as_tensor(np.asarray(camids))
    a, b = scores[:, None, :], scores[None, :, :]
    if similarity == "jaccard":
        sim = torch.minimum(a, b).sum(2) / torch.maximum(a, b).sum(2)
    elif similarity == "cosine":
        unit = F.normalize(scores, dim=1)
        sim = unit @ unit.T
    elif similarity == "dice":
        sim = 2 * torch.minimum(a, b).sum(2) / (a.sum(2) + b.sum(2))
    else:  # each row rescaled to sum 1 first
        p = scores / scores.sum(dim=1, keepdim=True)
        sim = torch.minimum(p[:, None], p[None]).sum(2) / torch.maximum(p[:, None], p[None]).sum(2)
    other = torch.ones_like(sim) if same_too else (cams[:, None] != cams[None, :]).to(sim)
    return 1 - x @ x.T + sign * mix * other * sim


def _iics_all_pairs(*args):
    return _iics_with(*args, same_too=True)


def _iics_plus(*args):
    return _iics_with(*args, sign=1)


def _iics_no_normalise(*args):
    return _iics_with(*args, normalise=False)


def _iics_cosine_scores(*args):
    return _iics_with(*args, similarity="cosine")


def _iics_dice(*args):
    return _iics_with(*args, similarity="dice")


def _iics_rows_rescaled(*args):
    return _iics_with(*args, similarity="rescaled")


WRONG = [
    ("q1", _proxies_raw_mean, False),
    ("q1", _proxies_not_renormalised, False),
    ("q1", _proxies_cluster_first, False),
    ("q1", _proxies_outliers_kept, False),
    ("q1", _proxies_contiguous_clusters, False),
    ("q1", _proxies_first_seen, False),
    ("q1", _proxies_camera_index, True),
    ("q1", _proxies_in_place, True),
    ("q2", _intra_all_proxies, False),
    ("q2", _intra_batch_mean, False),
    ("q2", _intra_mean_of_cameras, False),
    ("q2", _intra_no_normalise, False),
    ("q2", _intra_zero_mask, False),
    ("q2", _intra_item, True),
    ("q2", _intra_in_place, True),
    ("q3", _inter_all_negatives, False),
    ("q3", _inter_easy_negatives, False),
    ("q3", _inter_log_of_sum, False),
    ("q3", _inter_batch_mean, False),
    ("q3", _inter_topk_unmasked, False),
    ("q3", _inter_no_normalise, False),
    ("q3", _inter_k_min_over_rows, True),
    ("q3", _inter_item, True),
    ("q4", _bn_default_momentum, False),
    ("q4", _bn_eval_mode, False),
    ("q4", _bn_no_reset, False),
    ("q4", _bn_one_batch, False),
    ("q4", _bn_partial_last, False),
    ("q4", _bn_biased_var, False),
    ("q4", _bn_tensor_keys, False),
    ("q4", _bn_in_place, True),
    ("q5", _iics_all_pairs, False),
    ("q5", _iics_plus, False),
    ("q5", _iics_no_normalise, False),
    ("q5", _iics_cosine_scores, False),
    ("q5", _iics_dice, False),
    ("q5", _iics_rows_rescaled, True),
]


class TestCameraInvariance(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 30


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"camera_proxies": _proxies_raw_mean}).summary()
    assert "expected [[0.8944, 0.4472], [0.0, 1.0], [-0.8, 0.6]]" in summary
    assert "Hint: x = F.normalize(features, dim=1)" in summary
    summary = check(EX.public("q1"), {"camera_proxies": _proxies_cluster_first}).summary()
    assert "expected [(0, 7), (1, 2), (1, 7)]" in summary
    summary = check(EX.hidden("q1"), {"camera_proxies": _proxies_in_place}).summary()
    assert "changed the features, labels or camids" in summary
    summary = check(EX.public("q2"), {"intra_camera_loss": _intra_all_proxies}).summary()
    assert "expected 2.1269" in summary and "camera 1 stay out of the softmax" in summary
    summary = check(EX.hidden("q2"), {"intra_camera_loss": _intra_item}).summary()
    assert "has no gradient" in summary
    summary = check(EX.public("q3"), {"inter_camera_loss": _inter_all_negatives}).summary()
    assert "expected 1.1513" in summary and "hardest negative (0, 1)" in summary
    summary = check(EX.hidden("q3"), {"inter_camera_loss": _inter_k_min_over_rows}).summary()
    assert "min(k, its own number of negatives)" in summary
    summary = check(EX.public("q4"), {"camera_bn_statistics": _bn_one_batch}).summary()
    assert "(mean 5, variance 6.667), expected (mean 5, variance 2)" in summary
    summary = check(EX.public("q4"), {"camera_bn_statistics": _bn_tensor_keys}).summary()
    assert "as keys (Python ints" in summary
    summary = check(EX.hidden("q4"), {"camera_bn_statistics": _bn_in_place}).summary()
    assert "work on copy.deepcopy(model)" in summary
    summary = check(EX.public("q5"), {"iics_distance": _iics_all_pairs}).summary()
    assert "share camera 0" in summary and "Hint: x = F.normalize" in summary
    summary = check(EX.public("q5"), {"iics_distance": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_example_agrees_with_reidlib():
    features = torch.tensor([[3.0, 4.0], [0.0, 5.0], [2.0, 0.0], [1.0, 1.0], [-4.0, 3.0]])
    labels, camids = np.array([7, 2, 7, -1, 7]), np.array([0, 1, 0, 0, 1])
    proxies, row_proxy, proxy_cluster, proxy_camera = camera_proxies(features, labels, camids)
    r = 1 / math.sqrt(5)
    assert torch.allclose(proxies, torch.tensor([[2 * r, r], [0.0, 1.0], [-0.8, 0.6]]))
    assert proxy_cluster.tolist() == [1, 0, 1] and proxy_camera.tolist() == [0, 1, 1]
    assert row_proxy.tolist() == [0, 1, 0, -1, 2]  # reidlib numbers clusters 2, 7 as 0, 1
    got, clusters, cameras = solutions.camera_proxies(features, labels, camids)
    assert torch.allclose(got, proxies) and clusters.tolist() == [7, 2, 7]


def test_q2_q3_examples_agree_with_reidlib():
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]], dtype=torch.float64)
    x = F.normalize(torch.tensor([[3.0, 4.0], [0.0, 5.0], [4.0, -3.0]], dtype=torch.float64))
    intra = intra_camera_loss(x, proxies, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2]),
                              torch.tensor([0, 0, 1]), 0.1)
    expected = (math.log(1 + math.e**2) + math.log(1 + math.e**-10)) / 2 + \
        math.log(1 + math.e**10)
    assert float(intra) == pytest.approx(expected) and expected == pytest.approx(11.0635, abs=1e-4)
    proxies = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, -0.6], [-1.0, 0.0]],
                           dtype=torch.float64)
    x = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    for k, expected in ((1, 1.1513), (2, 1.2131)):
        inter = inter_camera_loss(x, proxies, torch.tensor([0, 0, 1, 2, 1]), torch.tensor([0]),
                                  torch.tensor([0]), 0.5, k)
        assert float(inter) == pytest.approx(expected, abs=1e-4)


def test_q4_example_agrees_with_reidlib():
    # The example's values as pixel 0 of uint8 images (ten times the value); the model reads
    # that pixel back through the inverse of reidlib's eval_transform.
    class Pixel(nn.Module):
        def forward(self, x):
            return (x[:, :1, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 25.5

    model = nn.Sequential(Pixel(), nn.BatchNorm1d(1)).eval()
    values = [1, 3, 2, 4, 6, 8]
    images = torch.zeros(6, 3, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor(values) * 10
    camids = np.array([0, 0, 1, 1, 1, 1])
    converted = convert_camera_bn(copy.deepcopy(model), 2)
    # batch size 4: one batch per camera, so reidlib's shuffling of the rows cannot matter
    reestimate_camera_bn(converted, images, camids, batch_size=4, flip=False)
    bn = converted[1]
    assert bn.running_mean.flatten().tolist() == pytest.approx([2.0, 5.0], abs=1e-4)
    assert bn.running_var.flatten().tolist() == pytest.approx([2.0, 20 / 3], abs=1e-4)
    inputs = torch.tensor(values, dtype=torch.float32)[:, None]
    got = solutions.camera_bn_statistics(nn.Sequential(nn.BatchNorm1d(1)), "0", inputs, camids, 4)
    assert [float(got[c][i]) for c in (0, 1) for i in (0, 1)] == pytest.approx(
        [2.0, 2.0, 5.0, 20 / 3], abs=1e-4)


def test_q5_example_agrees_with_reidlib():
    features = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    scores = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.3, 0.2], [0.0, 0.2, 0.8]])
    d = inter_camera_distance(features, scores, [0, 1, 0], 0.5)
    expected = torch.tensor([[0.0, 0.4 - 1 / 3, 1.0], [0.4 - 1 / 3, 0.0, 0.075],
                             [1.0, 0.075, 0.0]])
    assert torch.allclose(d, expected, atol=1e-6)
