"""mAP, CMC and mINP under the Market-1501 protocol (survey §4.2, course chapter 0).

For one query, the *valid* gallery items are all gallery items except

- junk images (pid -1), and
- images of the query's own identity taken by the query's own camera: matching them is
  tracking, not re-identification.

Items of other identities, including distractors (pid 0), stay in the ranked list as
negatives. A query with no valid positive is skipped.

Ties. Distances can tie (integer distances, duplicate images, quantised features). Every
metric here treats a group of tied distances as one threshold step, so the result does
not depend on how a sort happens to order tied items:

- AP  = mean over positives j of  (#positives with d <= d_j) / (#valid with d <= d_j).
  This equals ``sklearn.metrics.average_precision_score`` on the valid items with
  score = -distance.
- INP = #positives / (#valid with d <= the largest positive distance)  (Ye et al.,
  "Deep learning for person re-identification: a survey and outlook", TPAMI 2021): the
  share of the list a user must inspect to find the *hardest* match.
- CMC: the rank of the first match is pessimistic, #valid with d <= the smallest
  positive distance, i.e. negatives tied with the first match count against the query.
  ``cmc[r - 1]`` is the fraction of (valid) queries whose first match is within rank r.

Speed. A full sort of each gallery row is what classic implementations do, and is the
slow part (Market-1501: 3,368 x 15,913). Only the items no farther than a query's
farthest positive matter for any of the three metrics, so we count how many there are
(m, one comparison pass) and take just the m smallest valid distances with ``topk``
(a full sort only where m is more than half the row: a poor model). The positives
themselves are gathered through an index of the gallery by identity, never by scanning
the row.
"""

from __future__ import annotations

import numpy as np
import torch

# Smallest topk size: below it, topk costs about the same whatever k.
_MIN_TOPK = 16
_JUNK_PID = -1


def evaluate(
    distmat,
    query_pids,
    gallery_pids,
    query_camids,
    gallery_camids,
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> dict:
    """Market-1501 evaluation of a query-gallery distance matrix (survey §4.2).

    Args:
        distmat: (Q, G) distances, torch tensor (any device) or numpy array; smaller is
            more similar. Computation runs on ``distmat``'s device.
        query_pids, gallery_pids, query_camids, gallery_camids: 1-D integer labels of
            lengths Q, G, Q, G (tensor or array). Gallery pid -1 marks junk.
        max_rank: length of the returned CMC curve.
        chunk_size: queries processed at once (memory ~ chunk_size x G); default keeps
            a chunk near 8M distances.

    Returns:
        dict with ``mAP`` (float in [0, 1]), ``cmc`` (numpy float64 array of length
        ``max_rank``), ``mINP`` (float), ``num_valid_queries`` (int), and per-query
        ``AP`` / ``INP`` / ``first_match_rank`` numpy arrays of length Q (NaN / -1 for
        skipped queries), handy for drawing ranked lists. See the module docstring for
        the protocol and the tie rules.
    """
    distmat, labels = _check_inputs(
        distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank, chunk_size
    )
    q_pids, g_pids, q_cams, g_cams = labels
    num_q, num_g = distmat.shape
    if chunk_size is None:
        chunk_size = max(1, (1 << 23) // max(num_g, 1))
    gallery_index = _index_gallery_by_pid(g_pids)
    junk_cols = torch.nonzero(g_pids == _JUNK_PID).flatten()

    ap = torch.full((num_q,), float("nan"), dtype=torch.float64, device=distmat.device)
    inp = ap.clone()
    first = torch.full((num_q,), -1, dtype=torch.int64, device=distmat.device)
    for start in range(0, num_q, chunk_size):
        rows = slice(start, min(start + chunk_size, num_q))
        ap[rows], inp[rows], first[rows] = _evaluate_chunk(
            distmat[rows], q_pids[rows], q_cams[rows], g_pids, g_cams, gallery_index, junk_cols
        )

    valid = first > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            "evaluate: no query has a valid match in the gallery (a gallery image with the "
            "query's pid taken by a different camera, pid != -1); check the pids and camids"
        )
    ranks = torch.arange(1, max_rank + 1, device=distmat.device)
    cmc = (first[valid, None] <= ranks[None, :]).double().mean(0)
    return {
        "mAP": float(ap[valid].mean()),
        "cmc": cmc.cpu().numpy(),
        "mINP": float(inp[valid].mean()),
        "num_valid_queries": num_valid,
        "AP": ap.cpu().numpy(),
        "INP": inp.cpu().numpy(),
        "first_match_rank": first.cpu().numpy(),
    }


def _evaluate_chunk(dist, q_pids, q_cams, g_pids, g_cams, gallery_index, junk_cols):
    """AP, INP and pessimistic first-match rank for a block of queries (NaN / -1 if none)."""
    inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
    cols, same_pid = _same_pid_columns(q_pids, gallery_index)
    same_cam = g_cams[cols] == q_cams[:, None]
    is_pos = same_pid & ~same_cam & (q_pids[:, None] != _JUNK_PID)

    # Sorted positive distances, padded with +inf (distances are checked to be finite).
    pos_dist = torch.where(is_pos, dist.gather(1, cols), inf).sort(dim=1).values
    n_pos = is_pos.sum(1)
    width = max(int(n_pos.max()), 1)
    pos_dist = pos_dist[:, :width].contiguous()

    # Valid distances: junk and same-camera same-identity items pushed to +inf.
    valid_dist = dist.index_fill(1, junk_cols, float("inf"))
    row, slot = torch.nonzero(same_pid & same_cam, as_tuple=True)
    valid_dist[row, cols[row, slot]] = inf

    has_pos = n_pos > 0
    farthest = pos_dist.gather(1, (n_pos - 1).clamp(min=0)[:, None])
    # The prefix: valid items no farther than the farthest positive (INP's denominator).
    prefix = _count_true(valid_dist <= farthest)

    # counts[i, j] = #valid items of query i with distance <= its j-th positive distance;
    # all of them lie in the prefix, i.e. among the `prefix` smallest distances.
    counts = torch.zeros_like(pos_dist, dtype=torch.int64)
    for rows, top in _sorted_prefixes(valid_dist, prefix, has_pos):
        counts[rows] = torch.searchsorted(top, pos_dist[rows], right=True)

    # #positives with distance <= the j-th positive distance (tied positives share it).
    pos_le = torch.searchsorted(pos_dist, pos_dist, right=True).clamp(max=n_pos[:, None])
    slot = torch.arange(width, device=dist.device)[None, :] < n_pos[:, None]
    precision = torch.where(slot, pos_le.double() / counts.clamp(min=1), 0.0)
    ap = torch.where(has_pos, precision.sum(1) / n_pos.clamp(min=1), float("nan"))
    inp = torch.where(has_pos, n_pos / prefix.clamp(min=1).double(), float("nan"))
    first = torch.where(has_pos, counts[:, 0], -1)
    return ap, inp, first


def _count_true(mask: torch.Tensor) -> torch.Tensor:
    """Row-wise number of True values, as int64.

    Summing a bool tensor directly takes a slow generic path on CPU (about 6x slower
    here); viewing it as uint8 and accumulating in int32 is vectorised.
    """
    return mask.view(torch.uint8).sum(1, dtype=torch.int32).long()


def _sorted_prefixes(valid_dist, prefix, has_pos):
    """Yield (rows, ascending distances of those rows) covering at least each row's prefix.

    Rows are grouped by their prefix size rounded up to a power of two, so a chunk needs
    only a few ``topk`` calls of about the right size; ``topk`` beats a full sort up to
    about half the row.
    """
    num_g = valid_dist.shape[1]
    size = 2 ** torch.log2(prefix.clamp(min=_MIN_TOPK).double()).ceil().long()
    for k in torch.unique(size[has_pos]).tolist():
        rows = torch.nonzero(has_pos & (size == k)).flatten()
        if 2 * k < num_g:
            yield rows, valid_dist[rows].topk(k, dim=1, largest=False).values
        else:
            yield rows, valid_dist[rows].sort(dim=1).values


def _index_gallery_by_pid(g_pids):
    """Gallery columns sorted by pid, so one identity's images are a contiguous run."""
    order = torch.argsort(g_pids, stable=True)
    return order, g_pids[order]


def _same_pid_columns(q_pids, gallery_index):
    """(n, w) gallery columns holding each query's pid, padded; and the mask of real ones."""
    order, sorted_pids = gallery_index
    lo = torch.searchsorted(sorted_pids, q_pids, right=False)
    hi = torch.searchsorted(sorted_pids, q_pids, right=True)
    width = max(int((hi - lo).max()) if len(q_pids) else 0, 1)
    offset = torch.arange(width, device=q_pids.device)[None, :]
    real = offset < (hi - lo)[:, None]
    position = (lo[:, None] + offset).clamp(max=len(order) - 1)
    return order[position], real


def _as_tensor(x, name: str, device=None) -> torch.Tensor:
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    return x if device is None else x.to(device)


def _check_inputs(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, chunk_size):
    distmat = _as_tensor(distmat, "distmat")
    if distmat.ndim != 2:
        raise ValueError(
            f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(distmat.shape)}"
        )
    if not torch.is_floating_point(distmat):
        # Integer distances are fine (and handy for tests); float64 keeps them exact.
        distmat = distmat.double()
    elif distmat.dtype not in (torch.float32, torch.float64):
        distmat = distmat.float()  # half precision: not every kernel used here takes it
    num_q, num_g = distmat.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat is empty: shape {tuple(distmat.shape)}")
    # NaN and +-inf propagate into the extremes: one cheap pass instead of isfinite().
    if not bool(torch.isfinite(torch.stack(torch.aminmax(distmat))).all()):
        raise ValueError("distmat contains NaN or infinite distances; all must be finite")
    labels = []
    for name, x, n, side in (
        ("query_pids", q_pids, num_q, "num_query"),
        ("gallery_pids", g_pids, num_g, "num_gallery"),
        ("query_camids", q_cams, num_q, "num_query"),
        ("gallery_camids", g_cams, num_g, "num_gallery"),
    ):
        x = _as_tensor(x, name, distmat.device)
        if x.ndim != 1 or len(x) != n:
            raise ValueError(
                f"{name} must be 1-D of length {side}={n} (distmat is {num_q} x {num_g}), "
                f"got shape {tuple(x.shape)}"
            )
        if torch.is_floating_point(x) or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold integers, got dtype {x.dtype}")
        labels.append(x.long())
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    return distmat.contiguous(), labels
