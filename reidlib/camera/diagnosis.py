"""Diagnose camera bias in features (survey §3.3): how much of a feature is the camera?

A feature that encodes the camera (its light, colour cast, background) more than the person
shows it in three ways, each measured here without any identity label:

- **neighbours**: an image's nearest neighbours come from its own camera far more often
  than the cameras' sizes would give by chance (:func:`same_camera_neighbour_share`);
- **clusters**: clustering groups images by camera, so many clusters hold one camera only
  (:func:`single_camera_cluster_share`, the score of :mod:`reidlib.pseudo_labels.quality`);
- **statistics**: the cameras' mean features lie apart by more than the spread of the
  features within a camera (:func:`camera_feature_stats`).

With the hidden identities, :func:`reidlib.evaluation.camera_bias.same_camera_nearest_share`
adds the retrieval view: how often an image's nearest *valid* match (not itself, not its own
identity in its own camera) is another person in its own camera.
:func:`camera_bias_report` gathers all of them; :func:`describe_camera_bias` prints them.
"""

from __future__ import annotations

import numpy as np
import torch

from reidlib.checks import as_numpy, int_in_range, labels_1d
from reidlib.evaluation.camera_bias import same_camera_nearest_share
from reidlib.evaluation.distance import as_2d_float, pairwise_distance

# the share of single-camera clusters is defined once, with the pseudo-label scores
from reidlib.pseudo_labels.quality import _single_camera_share

__all__ = ["camera_bias_report", "camera_feature_stats", "describe_camera_bias",
           "same_camera_neighbour_share", "single_camera_cluster_share"]


def _check(features, camids) -> tuple[torch.Tensor, np.ndarray]:
    """(N, D) float tensor and (N,) int64 camera ids, N >= 2."""
    features = as_2d_float(features, "features")
    if len(features) < 2:
        raise ValueError(f"features must have at least 2 rows to compare, got {len(features)}")
    return features, labels_1d(camids, len(features), "camids (one per feature row)",
                               allow_outliers=False)


def same_camera_neighbour_share(features, camids, k: int = 1,
                                chunk_size: int = 1024) -> tuple[float, float]:
    """``(share, chance)`` for the k nearest neighbours of every image (Euclidean).

    ``share``: over all images and their k nearest *other* images, the fraction taken by
    the image's own camera. ``chance``: the share a camera-blind feature would give, neighbours
    drawn at random among the other images: the mean over images of
    (images of its camera - 1) / (N - 1).
    """
    features, camids = _check(features, camids)
    n = len(features)
    k = int_in_range(k, "k", 1, n - 1, "N - 1")
    cams = torch.as_tensor(camids, device=features.device)
    same = 0
    for start in range(0, n, chunk_size):
        d = pairwise_distance(features[start:start + chunk_size], features)
        rows = torch.arange(start, start + len(d), device=d.device)
        d[torch.arange(len(d), device=d.device), rows] = float("inf")  # not itself
        nearest = d.topk(k, dim=1, largest=False).indices
        same += int((cams[nearest] == cams[rows][:, None]).sum())
    sizes = np.bincount(camids)[camids]
    return same / (n * k), float(np.mean((sizes - 1) / (n - 1)))


def single_camera_cluster_share(labels, camids) -> float:
    """Among clusters of >= 2 images (-1 = outlier), the share whose images all come from
    one camera (NaN when there is no such cluster): clusters that teach no cross-camera
    match."""
    labels = labels_1d(labels, len(as_numpy(camids)), "labels (one per camid)")
    camids = labels_1d(camids, len(labels), "camids", allow_outliers=False)
    return _single_camera_share(labels, camids)


def camera_feature_stats(features, camids) -> dict:
    """Per-camera feature statistics, float64 numpy arrays in sorted camera order.

    ``cameras`` (K,), ``counts`` (K,); ``mean_norm`` (K,): mean L2 norm of a camera's
    features; ``spread`` (K,): root-mean-square distance of a camera's features to its
    mean; ``centre_distance`` (K, K): distance between camera means; ``separation``
    (K, K): that distance divided by the pair's typical spread,
    sqrt((spread_a^2 + spread_b^2) / 2) (inf where both spreads are 0);
    ``mean_separation``: its mean over camera pairs (NaN with one camera). A separation
    well below 1 means the camera hardly moves a feature; above 1, the camera alone
    separates the features more than the images within a camera differ.
    """
    features, camids = _check(features, camids)
    x = features.double().cpu()
    cameras, slot = np.unique(camids, return_inverse=True)
    slot = torch.from_numpy(slot)
    counts = torch.bincount(slot, minlength=len(cameras)).double()
    means = x.new_zeros(len(cameras), x.shape[1]).index_add_(0, slot, x) / counts[:, None]
    norms = x.new_zeros(len(cameras)).index_add_(0, slot, x.norm(dim=1)) / counts
    squared = ((x - means[slot]) ** 2).sum(1)
    spread = (x.new_zeros(len(cameras)).index_add_(0, slot, squared) / counts).sqrt()
    centre = torch.cdist(means, means)
    typical = ((spread[:, None] ** 2 + spread[None, :] ** 2) / 2).sqrt()
    separation = torch.where(centre == 0, torch.zeros_like(centre), centre / typical)
    pairs = torch.triu_indices(len(cameras), len(cameras), offset=1)
    mean_sep = separation[pairs[0], pairs[1]].mean().item() if pairs.shape[1] else float("nan")
    return {"cameras": cameras, "counts": counts.numpy().astype(np.int64),
            "mean_norm": norms.numpy(), "spread": spread.numpy(),
            "centre_distance": centre.numpy(), "separation": separation.numpy(),
            "mean_separation": mean_sep}


def camera_bias_report(features, camids, labels=None, pids=None, k: int = 1) -> dict:
    """Every camera-bias number of a chapter in one dict (module docstring).

    Always: ``k``, ``same_camera_share`` and ``chance_share`` (of the k nearest
    neighbours), and the :func:`camera_feature_stats` entries. With pseudo-``labels``:
    ``single_camera_clusters``. With identities ``pids`` (the hidden ones; junk < 0 is
    never a valid match): ``nearest_valid_same_camera`` and ``nearest_valid_chance`` from
    :func:`reidlib.evaluation.camera_bias.same_camera_nearest_share`, every image a query
    against all the others (an N x N distance matrix: keep N to a few thousand).
    """
    features, camids = _check(features, camids)
    if labels is not None:
        labels = labels_1d(labels, len(camids), "labels (one per feature row)")
    if pids is not None:
        pids = np.asarray(pids)
        if pids.shape != camids.shape or not np.issubdtype(pids.dtype, np.integer):
            raise ValueError(f"pids must be (N,) = ({len(camids)},) integers, got "
                             f"{pids.dtype} {pids.shape}")
    share, chance = same_camera_neighbour_share(features, camids, k)
    report = {"k": k, "same_camera_share": share, "chance_share": chance,
              **camera_feature_stats(features, camids)}
    if labels is not None:
        report["single_camera_clusters"] = _single_camera_share(labels, camids)
    if pids is not None:
        dist = pairwise_distance(features, features)
        nearest, nearest_chance = same_camera_nearest_share(dist, pids, pids, camids, camids)
        report["nearest_valid_same_camera"] = nearest
        report["nearest_valid_chance"] = nearest_chance
    return report


def describe_camera_bias(report: dict) -> str:
    """The report of :func:`camera_bias_report` as a few printable lines."""
    lines = [f"same camera among the {report['k']} nearest neighbours: "
             f"{report['same_camera_share']:.0%} (chance {report['chance_share']:.0%})"]
    if "nearest_valid_same_camera" in report:
        lines.append(f"nearest valid match from the same camera: "
                     f"{report['nearest_valid_same_camera']:.0%} "
                     f"(chance {report['nearest_valid_chance']:.0%})")
    if "single_camera_clusters" in report:
        lines.append(f"clusters of one camera only: {report['single_camera_clusters']:.0%}")
    lines.append(f"camera means apart by {report['mean_separation']:.2f} within-camera "
                 "spreads on average")
    for cam, count, norm, spread in zip(report["cameras"], report["counts"],
                                        report["mean_norm"], report["spread"], strict=True):
        lines.append(f"  camera {cam}: {count} images, mean norm {norm:.3f}, "
                     f"spread {spread:.3f}")
    return "\n".join(lines)
