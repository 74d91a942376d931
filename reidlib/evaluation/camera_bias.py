"""Diagnose camera bias (survey §3.3): do nearest neighbours come from the query's camera?

If features encode the camera (its light, colour cast, background) more than the person,
a query's nearest valid gallery image tends to come from the query's own camera, far more
often than the share of that camera in the gallery would give by chance.
"""

from __future__ import annotations

import torch


def same_camera_nearest_share(distmat, query_pids, gallery_pids, query_camids, gallery_camids):
    """Return ``(share, chance)``.

    ``share``: fraction of queries whose nearest *valid* gallery image (the Market-1501
    rule: not junk, not the query's identity seen by the query's camera) was taken by
    the query's camera. ``chance``: the mean, over queries, of the fraction of valid gallery
    images from the query's camera - the share a camera-blind feature would give.
    """
    d = torch.as_tensor(distmat, dtype=torch.float32)
    qp, gp = torch.as_tensor(query_pids), torch.as_tensor(gallery_pids)
    qc, gc = torch.as_tensor(query_camids), torch.as_tensor(gallery_camids)
    if d.shape != (len(qp), len(gp)) or len(qc) != len(qp) or len(gc) != len(gp):
        raise ValueError(
            f"distmat must be (num_query, num_gallery) = ({len(qp)}, {len(gp)}) with matching "
            f"camera arrays, got distmat {tuple(d.shape)}, {len(qc)} query and "
            f"{len(gc)} gallery camids"
        )
    same_cam = qc[:, None] == gc[None, :]
    invalid = (same_cam & (qp[:, None] == gp[None, :])) | (gp[None, :] < 0)
    d = d.masked_fill(invalid, float("inf"))
    nearest = d.argmin(dim=1)
    share = same_cam.gather(1, nearest[:, None]).float().mean().item()
    valid = ~invalid
    chance = ((same_cam & valid).sum(1).float() / valid.sum(1).clamp_min(1)).mean().item()
    return share, chance


def camera_confusions(distmat, pids, camids) -> dict:
    """For every image, its nearest look-alike in its own camera and its nearest self elsewhere.

    ``distmat`` is the (N, N) distance matrix of one set of images with identities ``pids``
    and cameras ``camids`` (pass only real people: junk and distractors, pid <= 0, have no
    identity to compare). For image ``i``:

    - ``other_person[i]``: the nearest image of *another* identity taken by ``i``'s camera,
      at distance ``other_person_dist[i]``;
    - ``same_person[i]``: the nearest image of ``i``'s identity taken by *another* camera,
      at ``same_person_dist[i]`` (-1 and +inf when there is none, and likewise above);
    - ``confused[i]``: the look-alike is nearer than the person's own cross-camera image,
      the camera bias of survey §3.3 in one pair (False when either is missing).
    """
    d = torch.as_tensor(distmat, dtype=torch.float32)
    p, c = torch.as_tensor(pids), torch.as_tensor(camids)
    if d.shape != (len(p), len(p)) or len(c) != len(p):
        raise ValueError(f"distmat must be (N, N) = ({len(p)}, {len(p)}) with N camids, got "
                         f"distmat {tuple(d.shape)} and {len(c)} camids")
    if bool((p <= 0).any()):
        raise ValueError("camera_confusions compares identities: drop junk and distractors "
                         "(pid <= 0) first")
    same_pid, same_cam = p[:, None] == p[None, :], c[:, None] == c[None, :]
    out = {}
    for name, mask in (("other_person", same_cam & ~same_pid),
                       ("same_person", same_pid & ~same_cam)):
        masked = d.masked_fill(~mask, float("inf"))
        dist, index = masked.min(dim=1)
        out[name] = torch.where(torch.isinf(dist), -1, index).numpy()
        out[f"{name}_dist"] = dist.numpy()
    both = (out["other_person"] >= 0) & (out["same_person"] >= 0)
    out["confused"] = both & (out["other_person_dist"] < out["same_person_dist"])
    return out
