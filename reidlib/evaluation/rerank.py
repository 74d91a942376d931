"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li: "Re-ranking person re-identification
with k-reciprocal encoding", CVPR 2017); chapter 0, a refinement of the §4.2 ranking.
Reciprocal neighbours come back in the survey's §3.1 (SMP [71] filters pseudo-labels with
them), and clustering methods such as SSG [56] and SpCL [119] cluster on this Jaccard
distance.

The idea, on the joint set of N = Q + G images:

1. R(i, k): the *k-reciprocal* neighbours of i, the j in i's k nearest neighbours that
   also have i in their own k nearest neighbours (paper Eq. 4).
2. R*(i, k1): R(i, k1) grown by R(c, k1/2) for every candidate c in R(i, k1) whose own
   half-size set overlaps R(i, k1) in more than 2/3 of its elements (Eq. 6).
3. V_i: a sparse vector over the N images with weight exp(-d(i, j)) on R*(i), normalised
   to sum 1 (Eq. 7); then local query expansion, V_i <- mean of V over i's k2 nearest
   neighbours (Eq. 11).
4. Jaccard distance d_J(i, j) = 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk)
   (Eq. 10), and the final distance (1 - lambda) d_J + lambda d (Eq. 12).

This follows the authors' reference code step for step (squared, row-normalised
distances; ``round(k1 / 2)``; the ``> 2/3`` test), but keeps V sparse and vectorises the
loops, and builds the joint N x N distance only one block of rows at a time. Why by hand:
no maintained library ships this re-ranking.

What k1 and k2 mean, as in the paper and the authors' ``re_ranking``: k1 counts neighbours
*besides* the image, so R(i, k1) is drawn from i and its k1 nearest others, R(c, k1/2) from
c and round(k1 / 2) others; k2 counts the image itself (k2 = 1: no expansion). The
clustering distance :func:`reidlib.pseudo_labels.jaccard_distance` follows SpCL / Cluster
Contrast instead, whose k1 counts the image itself: its k1 = 21 draws R(i, k1) from the
same 21 images as k1 = 20 here.
"""

from __future__ import annotations

import numpy as np
import torch

from reidlib.evaluation.distance import METRICS, as_2d_float


def re_ranking(
    q_g_dist,
    q_q_dist,
    g_g_dist,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 512,
) -> torch.Tensor:
    """Re-ranked (Q, G) distance (Zhong et al. 2017, Eq. 12).

    Args:
        q_g_dist, q_q_dist, g_g_dist: (Q, G), (Q, Q), (G, G) plain (not squared) distances,
            tensors on one device or numpy arrays; ``q_q_dist`` and ``g_g_dist`` symmetric.
            Like the reference code, the distances are squared and each row is divided by
            its maximum first.
        k1: size of the k-reciprocal neighbourhood, not counting the image itself (the
            paper's meaning; module docstring); k2: size of the query expansion, the image
            included (1 switches it off); lambda_value: weight of the original distance.
        chunk_size: rows of the joint matrix processed at once.

    Returns:
        float tensor (Q, G) on the inputs' device.
    """
    blocks = _check_inputs(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, chunk_size)
    num_q, num_g = blocks[0].shape
    n = num_q + num_g
    half = int(np.around(k1 / 2.0))
    rank = _nearest_neighbours(blocks, max(k1 + 1, half + 1, k2), chunk_size)
    v = _k_reciprocal_vectors(blocks, rank, k1, half, chunk_size)
    if k2 != 1:
        v = _local_query_expansion(v, rank[:, :k2], n)
    jaccard = _jaccard_query_gallery(v, num_q, n, chunk_size)
    original = _joint_rows(blocks, 0, num_q)[:, num_q:]
    return jaccard * (1.0 - lambda_value) + original * lambda_value


def re_ranking_from_features(
    query_features,
    gallery_features,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    tile: int = 2048,
) -> torch.Tensor:
    """:func:`re_ranking` of the (Q, G), (Q, Q), (G, G) ``metric`` distances of the features,
    without building them: the same result up to float rounding (and the order of exactly
    tied neighbours).

    The joint N x N distance matrix is only ever seen one tile at a time, by the exact
    k-NN search of :func:`reidlib.pseudo_labels.jaccard.tiled_search`, which also keeps
    each row's maximum (the reference code divides each row by it) and the (Q, G) block.
    The k-reciprocal sets, weights and query expansion are the sparse ones of
    :mod:`reidlib.pseudo_labels.jaccard`, called with this module's meaning of k1 (k1 + 1
    neighbours with the image itself). All "euclidean", "sqeuclidean" and "cosine"
    distances rank like the squared Euclidean distance e (of L2-normalised rows for
    "cosine"); the reference's squared, row-normalised distance is (e / max_row e) ** p
    with p = 1 for "euclidean" and 2 for the other two.

    Returns:
        float tensor (Q, G) on the features' device, float64 for float64 features.
    """
    import torch.nn.functional as F

    from reidlib.pseudo_labels import jaccard as jac

    qf = as_2d_float(query_features, "query_features")
    gf = as_2d_float(gallery_features, "gallery_features")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if qf.shape[1] != gf.shape[1] or qf.device != gf.device:
        raise ValueError(
            f"query and gallery features must share dimension and device, got "
            f"{tuple(qf.shape)} on {qf.device} and {tuple(gf.shape)} on {gf.device}"
        )
    if int(k1) < 1 or int(k2) < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    dtype = torch.float64 if torch.float64 in (qf.dtype, gf.dtype) else torch.float32
    x = torch.cat([qf.to(dtype), gf.to(dtype)])
    if not bool(torch.isfinite(x).all()):
        raise ValueError("features contain NaN or infinite values")
    if metric == "cosine":
        x = F.normalize(x, dim=1)
    num_q, n = len(qf), len(x)
    power = 1.0 if metric == "euclidean" else 2.0

    q_g = torch.empty(num_q, n - num_q, dtype=dtype, device=x.device)

    def keep_query_gallery(row_start, col_start, dist):
        # Query rows come first, so every (query, gallery) pair lies in a tile on or above
        # the diagonal, which on_tile sees as it is (not transposed).
        row_stop = min(row_start + dist.shape[0], num_q)
        col_stop = col_start + dist.shape[1]
        if row_start < num_q and col_stop > num_q:
            lo = max(col_start, num_q)
            q_g[row_start:row_stop, lo - num_q : col_stop - num_q] = (
                dist[: row_stop - row_start, lo - col_start :])

    half = int(np.around(k1 / 2.0))
    dist, rank, row_max = jac.tiled_search(x, max(k1 + 1, k2), tile, keep_query_gallery)
    dist, rank = jac.self_first(np.maximum(dist.cpu().numpy(), 0.0),
                                rank.cpu().numpy().astype(np.int64))
    row_max = np.maximum(row_max.cpu().numpy().astype(np.float64), np.finfo(np.float64).tiny)
    x_np = x.cpu().numpy()
    recip = jac.reciprocal_sets(rank[:, : k1 + 1])
    recip_half = jac.reciprocal_sets(rank[:, : half + 1])
    expanded = jac.expand_sets(recip, recip_half)
    v = jac.gaussian_weights(x_np, expanded, rank, dist, row_scale=row_max, power=power)
    del x_np, expanded, recip, recip_half
    if k2 != 1:
        v = jac.query_expansion(v, rank[:, :k2])
    scale = torch.from_numpy(row_max[:num_q, None]).to(device=x.device, dtype=dtype)
    # Block by block, in place over the kept (Q, G) distances: no second Q x G array.
    for start, stop, shared in jac.shared_mass_blocks(v, num_q, num_q):
        jaccard = torch.from_numpy(1.0 - shared / (2.0 - shared)).to(x.device, dtype)
        block = q_g[start:stop].clamp_(min=0).div_(scale[start:stop]).pow_(power)
        block.mul_(lambda_value).add_(jaccard, alpha=1.0 - lambda_value)
    return q_g


def _joint_rows(blocks, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of the joint [[qq, qg], [qg^T, gg]] matrix, squared, each row
    divided by its maximum (as the reference code does, for symmetric input)."""
    q_g, q_q, g_g = blocks
    num_q = q_q.shape[0]
    parts = []
    if start < num_q:
        top = slice(start, min(stop, num_q))
        parts.append(torch.cat([q_q[top], q_g[top]], dim=1))
    if stop > num_q:
        bottom = slice(max(start, num_q) - num_q, stop - num_q)
        parts.append(torch.cat([q_g[:, bottom].T, g_g[bottom]], dim=1))
    rows = torch.cat(parts).pow(2)
    return rows / rows.amax(dim=1, keepdim=True).clamp(min=torch.finfo(rows.dtype).tiny)


def _nearest_neighbours(blocks, k: int, chunk_size: int) -> torch.Tensor:
    """(N, min(k, N)) indices of each row's nearest neighbours, nearest first."""
    n = sum(blocks[0].shape)
    k = min(k, n)
    out = []
    for start in range(0, n, chunk_size):
        rows = _joint_rows(blocks, start, min(start + chunk_size, n))
        out.append(rows.topk(k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(out)


def _reciprocal_mask(neighbours: torch.Tensor) -> torch.Tensor:
    """mask[i, a]: is i among the neighbours of its neighbour j = neighbours[i, a]?"""
    own = torch.arange(len(neighbours), device=neighbours.device)[:, None, None]
    return (neighbours[neighbours] == own).any(dim=-1)


def _k_reciprocal_vectors(blocks, rank, k1: int, half: int, chunk_size: int) -> torch.Tensor:
    """Sparse (N, N) V: Gaussian weights on the expanded k-reciprocal sets R*(i, k1)."""
    n = len(rank)
    fwd, fwd_half = rank[:, : k1 + 1], rank[:, : half + 1]
    recip, recip_half = _reciprocal_mask(fwd), _reciprocal_mask(fwd_half)
    half_size = recip_half.sum(1).double()
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, n, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, n), device=rank.device)
        c = len(idx)
        # R(i, k1) of each row in the block, as a dense boolean row.
        member = torch.zeros(c, n, dtype=torch.bool, device=rank.device)
        member.scatter_(1, fwd[idx], recip[idx])
        # For every candidate in R(i, k1): its half-size set R(cand, k1/2) and overlap.
        cand = fwd[idx]
        cand_sets, cand_mask = fwd_half[cand], recip_half[cand]
        overlap = member.gather(1, cand_sets.reshape(c, -1)).reshape(cand_sets.shape)
        overlap = (overlap & cand_mask).sum(-1).double()
        accept = recip[idx] & (overlap > 2.0 / 3.0 * half_size[cand])
        grow = accept[:, :, None] & cand_mask
        block_row = torch.arange(c, device=rank.device)[:, None, None].expand_as(cand_sets)
        member[block_row[grow], cand_sets[grow]] = True
        # Gaussian kernel weights on R*(i, k1), normalised per row (Eq. 7).
        r, col = torch.nonzero(member, as_tuple=True)
        weight = torch.exp(-_joint_rows(blocks, start, start + c)[r, col])
        total = torch.zeros(c, dtype=weight.dtype, device=weight.device).index_add_(0, r, weight)
        rows_out.append(r + start)
        cols_out.append(col)
        vals_out.append(weight / total[r])
    index = torch.stack([torch.cat(rows_out), torch.cat(cols_out)])
    return _sparse(index, torch.cat(vals_out), n)


def _local_query_expansion(v: torch.Tensor, neighbours: torch.Tensor, n: int) -> torch.Tensor:
    """V_i <- mean of V over i's k2 nearest neighbours (Eq. 11), on the sparse entries."""
    rows, cols = v.indices()  # coalesced: sorted by row, so each row is one run
    vals = v.values()
    row_count = torch.bincount(rows, minlength=n)
    row_start = torch.cumsum(row_count, 0) - row_count
    # One segment per (i, neighbour) pair: the stored entries of row V_neighbour.
    source = neighbours.reshape(-1)
    owner, entry = _ragged_gather(row_start[source], row_count[source])
    target_row = torch.arange(n, device=v.device).repeat_interleave(neighbours.shape[1])
    index = torch.stack([target_row[owner], cols[entry]])
    # Building a COO tensor and coalescing it sums the entries landing on one (i, col).
    return _sparse(index, vals[entry] / neighbours.shape[1], n)


def _jaccard_query_gallery(v: torch.Tensor, num_q: int, n: int, chunk_size: int):
    """(Q, G) Jaccard distance 1 - sum min / sum max between query and gallery rows of V.

    Rows of V sum to 1, so sum max = 2 - sum min. sum_k min(V_ik, V_jk) is non-zero only
    for pairs (i, j) sharing a column k, so we join query entries with gallery entries
    column by column (the reference code's inverted index) instead of touching all pairs.
    """
    rows, cols = v.indices()
    vals = v.values()
    num_g = n - num_q
    is_q = rows < num_q
    # Gallery entries grouped by column: column k's entries start at col_start[k].
    order = torch.argsort(cols[~is_q], stable=True)
    g_rows, g_cols, g_vals = (x[~is_q][order] for x in (rows - num_q, cols, vals))
    col_count = torch.bincount(g_cols, minlength=n)
    col_start = torch.cumsum(col_count, 0) - col_count
    q_rows, q_cols, q_vals = rows[is_q], cols[is_q], vals[is_q]

    shared = torch.zeros(num_q, num_g, dtype=vals.dtype, device=vals.device)
    for start in range(0, num_q, chunk_size):
        sel = (q_rows >= start) & (q_rows < start + chunk_size)
        qr, qc, qv = q_rows[sel], q_cols[sel], q_vals[sel]
        owner, g_at = _ragged_gather(col_start[qc], col_count[qc])
        contrib = torch.minimum(qv[owner], g_vals[g_at])
        shared.view(-1).index_add_(0, qr[owner] * num_g + g_rows[g_at], contrib)
    return 1.0 - shared / (2.0 - shared)


def _ragged_gather(starts: torch.Tensor, counts: torch.Tensor):
    """Flatten segments [starts[s], starts[s] + counts[s]): (segment of each item, position)."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    seg_begin = torch.cumsum(counts, 0) - counts
    offset = torch.arange(len(owner), device=counts.device) - seg_begin[owner]
    return owner, starts[owner] + offset


def _sparse(index: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    # Indices are built in range by construction, so the invariant check is skipped.
    return torch.sparse_coo_tensor(index, values, (n, n), check_invariants=False).coalesce()


def _check_inputs(q_g, q_q, g_g, k1, k2, lambda_value, chunk_size):
    names = ("q_g_dist", "q_q_dist", "g_g_dist")
    q_g, q_q, g_g = (as_2d_float(x, n, "") for x, n in zip((q_g, q_q, g_g), names, strict=True))
    num_q, num_g = q_g.shape
    if q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
        raise ValueError(
            f"expected q_q_dist ({num_q}, {num_q}) and g_g_dist ({num_g}, {num_g}) for "
            f"q_g_dist {tuple(q_g.shape)}, got {tuple(q_q.shape)} and {tuple(g_g.shape)}"
        )
    if len({q_g.device, q_q.device, g_g.device}) > 1:
        raise ValueError("q_g_dist, q_q_dist and g_g_dist must be on the same device")
    if len({q_g.dtype, q_q.dtype, g_g.dtype}) > 1:
        q_g, q_q, g_g = q_g.float(), q_q.float(), g_g.float()
    # NaN and +-inf propagate into the extremes: one cheap pass per matrix.
    if not all(bool(torch.isfinite(torch.stack(torch.aminmax(x))).all()) for x in (q_g, q_q, g_g)):
        raise ValueError("distance matrices contain NaN or infinite values")
    if int(k1) < 1 or int(k2) < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return q_g, q_q, g_g
