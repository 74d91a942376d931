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

Speed. Classic implementations sort every gallery row, the slow part (Market-1501:
3,368 x 15,913). None of the three metrics needs the order of the negatives: all of them
follow from each positive's count #valid with d <= d_j above. A query has few positives
(Market-1501: ~14), so these counts are taken with one vectorised comparison of the row
against each positive distance, summed: about #positives x G operations per query,
whatever the model's quality (a sort, or a top-k down to the farthest positive, costs
more the worse the model). Queries are grouped by their number of positives so that a
chunk wastes no comparisons on padding; a query with hundreds of positives sorts its row
instead. The positives themselves are gathered through an index of the gallery by
identity, never by scanning the row.
"""

from __future__ import annotations

import numpy as np
import torch

# Elements of the (queries x positives x gallery) comparison block done at once: on CPU
# small enough to stay in cache between the comparison and the sum that reads it back.
_CPU_BLOCK = 1 << 20
_CUDA_BLOCK = 1 << 26
# Elements of the per-query (queries x images of one identity) tensors made at once.
_SLICE = 1 << 22
# More positives than this: sorting the row (~G log G, with a large constant) beats one
# comparison pass per positive.
_MAX_COMPARE_WIDTH = 256
# float32 sums of 0/1 are exact below 2**24 items.
_EXACT_FLOAT32_COUNT = 1 << 24
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
        chunk_size: at most this many queries compared with their gallery rows at once;
            by default (and in any case) a chunk's work space stays near 1M distances
            on CPU, 64M on CUDA.

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
    device = distmat.device
    gallery_index = _index_gallery_by_pid(g_pids)
    keep_cols = torch.nonzero(g_pids != _JUNK_PID).flatten()
    num_kept = len(keep_cols)
    if num_kept == num_g:
        keep_cols = None  # no junk: compare whole rows, without a copy
    if num_kept >= _EXACT_FLOAT32_COUNT:
        distmat = distmat.double()
    # Queries handled together for their per-positive bookkeeping: (slice x images of
    # one identity) tensors stay near _SLICE elements.
    slice_rows = max(1, _SLICE // _largest_identity(gallery_index))

    # The plan, on the host (one transfer): queries ordered by their number of positives,
    # those without any left out.
    n_pos = _count_positives(q_pids, q_cams, g_cams, gallery_index, slice_rows)
    n_pos = n_pos.cpu().numpy()
    order = np.argsort(n_pos, kind="stable")
    order = order[n_pos[order] > 0]
    if len(order) == 0:
        raise ValueError(
            "evaluate: no query has a valid match in the gallery (a gallery image with the "
            "query's pid taken by a different camera, pid != -1); check the pids and camids"
        )
    block = _CUDA_BLOCK if distmat.is_cuda else _CPU_BLOCK
    order_on_device = torch.from_numpy(order).to(device)

    ap = torch.full((num_q,), float("nan"), dtype=torch.float64, device=device)
    inp = ap.clone()
    first = torch.full((num_q,), -1, dtype=torch.int64, device=device)
    for start in range(0, len(order), slice_rows):
        rows = order_on_device[start : start + slice_rows]
        chunks = _plan_chunks(n_pos[order[start : start + slice_rows]], num_kept, block,
                              chunk_size)
        ap[rows], inp[rows], first[rows] = _evaluate_rows(
            distmat, rows, chunks, q_pids[rows], q_cams[rows], g_cams, gallery_index,
            keep_cols, block,
        )

    # Summaries on the host, from exact integer counts where possible: the same on every
    # device (CUDA divides by a scalar through its reciprocal, which can round otherwise).
    ap, inp, first = ap.cpu().numpy(), inp.cpu().numpy(), first.cpu().numpy()
    valid = first > 0
    within = (first[valid, None] <= np.arange(1, max_rank + 1)[None, :]).sum(0)
    return {
        "mAP": float(ap[valid].mean()),
        "cmc": within / len(order),
        "mINP": float(inp[valid].mean()),
        "num_valid_queries": len(order),
        "AP": ap,
        "INP": inp,
        "first_match_rank": first,
    }


def _evaluate_rows(distmat, rows, chunks, q_pids, q_cams, g_cams, gallery_index, keep_cols,
                   block):
    """AP, INP and pessimistic first-match rank of queries ``rows``, all with a positive.

    ``chunks``: (start, stop, width) blocks of ``rows`` to compare with their gallery
    rows at once, ``width`` being the block's largest number of positives.
    """
    cols, is_pos, is_excluded = _query_columns(q_pids, q_cams, g_cams, gallery_index)
    gathered = distmat[rows[:, None], cols]
    inf = torch.tensor(float("inf"), dtype=distmat.dtype, device=distmat.device)
    width = chunks[-1][2]
    # Sorted positive distances, padded with +inf (distances are checked to be finite).
    pos_dist = torch.where(is_pos, gathered, inf).sort(dim=1).values[:, :width].contiguous()
    n_pos = is_pos.sum(1)

    # counts[i, j] = #valid items of query i with distance <= its j-th positive distance:
    # all items of the row (junk columns dropped) less its same-camera same-identity ones.
    # Both counts are exact integers in the distances' float dtype. Slots past a query's
    # own positives (+inf, or left untouched by a narrower chunk) are never read.
    excluded = torch.where(is_excluded, gathered, inf)
    counts = torch.zeros_like(pos_dist)
    for start, stop, chunk_width in chunks:
        dist = distmat.index_select(0, rows[start:stop])
        if keep_cols is not None:
            dist = dist.index_select(1, keep_cols)
        _count_at_most(dist, pos_dist[start:stop, :chunk_width], block,
                       out=counts[start:stop, :chunk_width])
    counts -= _count_at_most(excluded, pos_dist, block, out=torch.empty_like(pos_dist))
    counts = counts.long()

    # #positives with distance <= the j-th positive distance (tied positives share it).
    pos_le = torch.searchsorted(pos_dist, pos_dist, right=True).clamp(max=n_pos[:, None])
    slot = torch.arange(width, device=distmat.device)[None, :] < n_pos[:, None]
    precision = torch.where(slot, pos_le.double() / counts.clamp(min=1), 0.0)
    ap = precision.sum(1) / n_pos
    # INP's denominator: the valid items no farther than the farthest positive.
    prefix = counts.gather(1, (n_pos - 1)[:, None]).squeeze(1)
    return ap, n_pos / prefix.double(), counts[:, 0]


def _count_at_most(values, thresholds, block, out):
    """Write into ``out`` (n, w) how many entries of ``values[i]`` are <= ``thresholds[i, j]``.

    One comparison of the row per threshold, written as 0.0 / 1.0 in the values' float
    dtype and summed (exact: fewer than 2**24 entries): PyTorch's CPU comparison kernels
    are vectorised only for such an output, not for a bool one (~50x slower here). The
    work space stays near ``block`` elements. Past ``_MAX_COMPARE_WIDTH`` thresholds, a
    sort of the rows is cheaper.
    """
    n, m = values.shape
    w = thresholds.shape[1]
    if w > _MAX_COMPARE_WIDTH:
        ordered = values.sort(dim=1).values
        return out.copy_(torch.searchsorted(ordered, thresholds.contiguous(), right=True))
    step = max(1, block // max(n * m, 1))
    for j in range(0, w, step):
        part = thresholds[:, j : j + step, None]
        hits = torch.empty((n, part.shape[1], m), dtype=values.dtype, device=values.device)
        torch.le(values[:, None, :], part, out=hits)
        torch.sum(hits, dim=2, out=out[:, j : j + step])
    return out


def _plan_chunks(widths, num_cols, block, chunk_size):
    """(start, stop, width) chunks of queries sorted by their number of positives ``widths``.

    Comparing a chunk costs (#queries x its largest width x ``num_cols``) elements; each
    takes as many queries as fit in ``block`` (at least one, at most ``chunk_size``).
    Queries past ``_MAX_COMPARE_WIDTH`` sort their rows: a chunk of them costs
    (#queries x ``num_cols``) and never holds the others.
    """
    boundary = int(np.searchsorted(widths, _MAX_COMPARE_WIDTH, side="right"))
    limit = len(widths) if chunk_size is None else int(chunk_size)
    chunks, start = [], 0
    while start < boundary:  # binary search: the largest stop whose chunk fits in block
        low, high = start + 1, min(boundary, start + limit)
        while low < high:
            mid = (low + high + 1) // 2
            if (mid - start) * int(widths[mid - 1]) * num_cols <= block:
                low = mid
            else:
                high = mid - 1
        chunks.append((start, low, int(widths[low - 1])))
        start = low
    rows = max(1, min(limit, block // max(num_cols, 1)))
    for start in range(boundary, len(widths), rows):
        stop = min(start + rows, len(widths))
        chunks.append((start, stop, int(widths[stop - 1])))
    return chunks


def _count_positives(q_pids, q_cams, g_cams, gallery_index, step):
    """Number of valid positives of every query, ``step`` queries at a time."""
    counts = [
        _query_columns(
            q_pids[start : start + step], q_cams[start : start + step], g_cams, gallery_index
        )[1].sum(1)
        for start in range(0, len(q_pids), step)
    ]
    return torch.cat(counts)


def _largest_identity(gallery_index):
    """Most gallery images of one (non-junk) identity; at least 1."""
    _, sorted_pids = gallery_index
    runs = torch.unique_consecutive(sorted_pids[sorted_pids != _JUNK_PID], return_counts=True)
    return max(int(runs[1].max()) if len(runs[1]) else 1, 1)


def _query_columns(q_pids, q_cams, g_cams, gallery_index):
    """Gallery columns of each query's identity (n, w), padded; masks of its valid
    positives (other cameras) and of its excluded same-camera images. A junk query
    (pid -1) has neither."""
    cols, same_pid = _same_pid_columns(q_pids, gallery_index)
    same_pid &= (q_pids != _JUNK_PID)[:, None]
    same_cam = g_cams[cols] == q_cams[:, None]
    return cols, same_pid & ~same_cam, same_pid & same_cam


def _index_gallery_by_pid(g_pids):
    """Gallery columns sorted by pid, so one identity's images are a contiguous run."""
    order = torch.argsort(g_pids, stable=True)
    return order, g_pids[order]


def _same_pid_columns(q_pids, gallery_index):
    """(n, w) gallery columns holding each query's pid, padded; and the mask of real ones.

    Junk queries (pid -1) get no columns: the junk run can be most of the gallery.
    """
    order, sorted_pids = gallery_index
    lo = torch.searchsorted(sorted_pids, q_pids, right=False)
    hi = torch.searchsorted(sorted_pids, q_pids, right=True)
    length = torch.where(q_pids == _JUNK_PID, 0, hi - lo)
    width = max(int(length.max()) if len(q_pids) else 0, 1)
    offset = torch.arange(width, device=q_pids.device)[None, :]
    real = offset < length[:, None]
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
