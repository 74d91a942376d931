# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/notebooks/01a_pseudo_labels.ipynb)
#
# # Chapter 1a — Pseudo-labels: who is who, without labels
#
# **Learning goals.** After this part you can
# 1. say why unsupervised re-id starts by *estimating* identity labels, and why not knowing
#    the number of identities is the heart of the difficulty (survey §3.1);
# 2. build the k-reciprocal Jaccard distance step by step, and measure whether it ranks the
#    same person nearer than the plain cosine distance does;
# 3. write the core of K-means (PUL), BUC's merge cost (Eq. 2), HCT's average linkage
#    (Eq. 3) and SMP's reciprocal filter in a few lines each, check them against `reidlib`,
#    and then use the library on every crop, alongside DBSCAN on the Jaccard distance;
# 4. score pseudo-labels against hidden identities (pairwise precision and recall, outliers,
#    merged and split identities) and explain where each method goes wrong.
#
# Part 1b (`01b_pseudo_label_loop`) continues with sensitivity to the knobs, camera bias
# and the cluster → train → re-cluster loop.
#
# **Recap.** Chapter 0: re-id ranks a gallery by feature distance; mAP scores the ranking
# (Market-1501 protocol); features carry a strong camera signature (camera bias). We also
# met the *generic pretrained backbone*: weights learnt on another synthetic world, on
# clothing attributes, never on our identities. This chapter starts from it.
#
# **On a real dataset.** With `REID_DATASET=market1501:PATH` (or another layout of
# `data/README.md`) the chapter runs on that dataset in place of world A, every section
# included: it needs only images, camera ids and the identities that score the results. The
# numbers are those of that dataset at the profile's image size, not comparable with the
# synthetic world's or with the prose, which quotes the synthetic world.

# %%
# Colab, or a Jupyter without the course: fetch and install it (once).
# Where the course is installed (make lab, make course) this cell does nothing.
import importlib.util
import os
import sys

COURSE = "https://github.com/reid-course/unsupervised-reid-hands-on"
if importlib.util.find_spec("reidlib") is None:
    print(f"installing the course from {COURSE} (a few minutes)")
    # !git clone --quiet --depth 1 {COURSE} reid-course
    # %pip install --quiet ./reid-course
    importlib.invalidate_caches()
# work inside the clone, also after a kernel restart
if os.path.isdir("reid-course/notebooks"):
    os.chdir("reid-course/notebooks")
if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from reidlib.notebook import setup

session = setup("01a")

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from reidlib.models import build_model
from reidlib.pseudo_labels import (
    buc_labels,
    dbscan_labels,
    hct_labels,
    jaccard_distance,
    kmeans_labels,
    label_quality,
    reciprocal_filter,
)
from reidlib.pseudo_labels.jaccard import (
    expand_sets,
    gaussian_weights,
    jaccard_from_weights,
    nearest_neighbours,
    query_expansion,
    reciprocal_sets,
)
from reidlib.pseudo_labels.neighbours import identities_upto, precision_at_k, ranked_by_sparse
from reidlib.pseudo_labels.quality import majority_correct
from reidlib.pseudo_labels.settings import cluster_settings
from reidlib.pseudo_labels.states import STATE_COLOURS, STATE_LABELS, STATES, label_states
from reidlib.training.features import extract_features
from reidlib.training.supervised import split_validation
from reidlib.viz import image_grid

profile = session.profile

# %% [markdown]
# ## 1. The problem: no labels, and no idea how many people (survey §3.1)
#
# Supervised re-id (Eq. 1) is a classification problem: every training crop comes with the
# identity it shows. Take the identities away and two things are missing at once: *which*
# crops belong together, and *how many* people there are. A classifier needs both (its
# last layer has one output per identity). Clustering-based methods therefore guess: they
# group the unlabelled crops by visual similarity and use the group ids as **pseudo-labels**
# in place of identities. Everything later in the course trains on such guesses, so their
# quality matters.
#
# In our synthetic world the true identities of the training crops are known, but we
# *hide* them from every method: they are used only to score pseudo-labels and to colour
# pictures. Junk crops (pid −1) are dropped first, as a real pipeline's detector would.
#
# Every method clusters the generic backbone's features of the training crops. BUC and
# HCT keep a dense N × N distance matrix, so the comparisons use at most 5,000 crops: all
# of them in the `smoke` and `quick` profiles, whole identities drawn at random in `full`.

# %%
world = session.world("A")
train = world.train.subset(world.train.pids >= 0)
MAX_COMPARE = 5000  # BUC's dense N x N float64 matrix: 200 MB at N = 5000
compare = train.subset(np.isin(train.pids, identities_upto(train.pids, MAX_COMPARE,
                                                            session.seed)))
n_ids = len(np.unique(compare.pids))  # hidden: a real method does not know it
generic = build_model(profile.arch, weights="synthetic").to(session.device).eval()
# flip=False: the features the training loop of part 1b clusters in its first round
features = extract_features(generic, compare, flip=False, progress=False).numpy()
print(f"{len(compare)} unlabelled crops from {len(np.unique(compare.camids))} cameras, "
      f"features {features.shape[1]}-d (hidden: {n_ids} identities)")

# %% [markdown]
# Each method's core is written below in plain numpy and checked against `reidlib` on a
# small set of real crops, a few dozen whole identities (dense N × N matrices stay tiny
# there); the library then runs on every crop.

# %%
core = np.flatnonzero(np.isin(compare.pids, identities_upto(compare.pids, 400, session.seed)))
x = features[core].astype(np.float64)
core_ids = len(np.unique(compare.pids[core]))
print(f"core set: {len(core)} crops of {core_ids} identities")


def first_seen(labels):
    """Cluster ids renumbered 0, 1, ... in order of first appearance (to compare partitions)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse.ravel()]


# %% [markdown]
# ## 2. Neighbours you can trust: the k-reciprocal Jaccard distance
#
# Clustering starts from "who is near whom". The plain distance has a weakness: in a crowd
# of similar-looking people, the nearest neighbours of a crop include impostors. Zhong et
# al. (*re-ranking with k-reciprocal encoding*, CVPR 2017) observed that true matches tend
# to be **reciprocal**: if *j* is among the *k* nearest neighbours of *i*, then *i* is
# usually among those of *j* too, while an impostor near *i* has its own true matches
# nearer to it. The survey (§3.1) names SMP's reciprocal neighbour search for the same
# purpose; SSG, SpCL and Cluster Contrast cluster on the distance built below.
#
# The settings are those of `reidlib.pseudo_labels.settings` (its docstring says why:
# $k_1$ should be about the number of crops one person has, hence smaller than the papers'
# 20–30 in our small worlds). As in SpCL / Cluster Contrast, $k_1$ and $k_2$ count the crop
# itself.

# %%
c = cluster_settings(profile.name)
k1, k2, eps, min_samples = c.k1, c.k2, c.eps, c.min_samples
print(f"k1 = {k1}, k2 = {k2}, eps = {eps}, min_samples = {min_samples}")

# %% [markdown]
# **Steps 1–2: neighbours and reciprocal neighbours.** $N(i, k_1)$: the $k_1$ nearest
# crops of $i$ by cosine distance (on L2-normalised features the squared Euclidean distance
# is $2 - 2\cos$), $i$ itself first. $R(i, k_1) = \{ j \in N(i, k_1) : i \in N(j, k_1) \}$.

# %%
def neighbours_core(x):
    """Step 1: squared distances (2 - 2 cos on unit rows) and every row's rows, nearest first."""
    dist = 2 - 2 * x @ x.T
    return dist, np.argsort(dist, axis=1, kind="stable")


def reciprocal_core(neighbours):
    """Step 2: R(i, k) as a boolean matrix from the (N, k) lists N(i, k)."""
    n = len(neighbours)
    in_knn = np.zeros((n, n), dtype=bool)
    in_knn[np.arange(n)[:, None], neighbours] = True   # j in N(i, k)
    return in_knn & in_knn.T                            # ... and i in N(j, k)


dist, rank = neighbours_core(x)
recip = reciprocal_core(rank[:, :k1])
lib_dist, lib_rank = nearest_neighbours(x.astype(np.float32), max(k1, k2), "cosine")
np.testing.assert_array_equal(rank[:, :k1], lib_rank[:, :k1])
np.testing.assert_array_equal(recip, reciprocal_sets(lib_rank[:, :k1]).toarray())
print("steps 1-2 agree with reidlib")

# %% [markdown]
# On all crops, with the library's search: are reciprocal neighbours more often the same
# person than plain neighbours?

# %%
sq_dist, ranked = nearest_neighbours(features, k1, "cosine")
is_recip = reciprocal_sets(ranked).toarray()[np.arange(len(ranked))[:, None], ranked][:, 1:]
same_id = compare.pids[ranked[:, 1:]] == compare.pids[:, None]
print(f"same identity among the {k1 - 1} nearest neighbours: {same_id.mean():.1%}; among the "
      f"reciprocal ones: {same_id[is_recip].mean():.1%} ({is_recip.mean():.0%} are reciprocal)")

# %% [markdown]
# One crop's neighbours, nearest first. Green frame: the same person (hidden label), red:
# someone else; "R" marks the reciprocal neighbours. We show a crop where the reciprocal
# check has work to do: several impostors among the nearest.

# %%
dropped_wrong = (~same_id & ~is_recip).sum(1)
kept_right = (same_id & is_recip).sum(1)
probe = int(np.argmax(np.where(kept_right >= 2, dropped_wrong, -1)))
row = ranked[probe]
titles = ["probe"] + [f"{'R ' if r else ''}c{compare.camids[j] + 1}"
                      for j, r in zip(row[1:], is_recip[probe], strict=True)]
frames = [None] + ["#2ca02c" if s else "#d62728" for s in same_id[probe]]
image_grid(compare.images[row], titles=titles, ncols=len(row), border_colors=frames)

# %% [markdown]
# **Step 3: expansion.** A person's crops from another camera are often not reciprocal
# neighbours of crop $i$ itself, but of its reciprocal neighbours. So $R(i, k_1)$ is grown
# by the smaller set $R(c, \tfrac{k_1}{2})$ of each member $c$, when that set overlaps
# $R(i, k_1)$ in more than two thirds of its members (Zhong et al., Eq. 6; the half-size
# neighbourhood is drawn from $c$ and `round(k1 / 2)` others, as in the reference code).

# %%
def expansion_core(recip, recip_half):
    """Step 3: R*(i) = R(i, k1) grown by each member's R(c, k1 / 2) overlapping it > 2/3."""
    expanded = recip.copy()
    for i in range(len(recip)):
        for member in np.flatnonzero(recip[i]):
            candidate = recip_half[member]
            if 3 * (candidate & recip[i]).sum() > 2 * candidate.sum():
                expanded[i] |= candidate
    return expanded


half = int(np.around(k1 / 2))
expanded = expansion_core(recip, reciprocal_core(rank[:, :half + 1]))
lib_expanded = expand_sets(reciprocal_sets(lib_rank[:, :k1]),
                           reciprocal_sets(lib_rank[:, :half + 1]))
np.testing.assert_array_equal(expanded, lib_expanded.toarray())
print(f"step 3 agrees with reidlib: {recip.sum(1).mean():.1f} -> "
      f"{expanded.sum(1).mean():.1f} members per set")

# %% [markdown]
# **Step 4: Gaussian weights.** Instead of a set, a vector: $V_{ij} = e^{-d(i,j)}$ for
# $j \in R^*(i)$ and 0 elsewhere, normalised to sum 1 (Eq. 7). Near members weigh more.

# %%
def weights_core(dist, sets):
    """Step 4: V_ij = exp(-d(i, j)) on j in R*(i), 0 elsewhere, rows normalised to sum 1."""
    weights = np.where(sets, np.exp(-dist), 0.0)
    return weights / weights.sum(1, keepdims=True)


v = weights_core(dist, expanded)

lib_v = gaussian_weights(x.astype(np.float32), lib_expanded, lib_rank, lib_dist)
np.testing.assert_allclose(v, lib_v.toarray(), rtol=1e-5, atol=1e-7)
print("step 4 agrees with reidlib")

# %% [markdown]
# **Step 5: local query expansion.** $V_i \leftarrow$ the mean of $V_j$ over $i$'s $k_2$
# nearest neighbours (Eq. 11): a crop borrows its neighbours' view of the crowd.

# %%
def query_expansion_core(v, neighbours):
    """Step 5: each row of V replaced by the mean of its (N, k2) neighbours' rows."""
    return v[neighbours].mean(axis=1)


v_qe = query_expansion_core(v, rank[:, :k2])

lib_v_qe = query_expansion(lib_v, lib_rank[:, :k2])
np.testing.assert_allclose(v_qe, lib_v_qe.toarray(), rtol=1e-5, atol=1e-7)
print("step 5 agrees with reidlib")

# %% [markdown]
# **Step 6: the Jaccard distance** of two weighted sets,
# $d_J(i, j) = 1 - \sum_k \min(V_{ik}, V_{jk}) / \sum_k \max(V_{ik}, V_{jk})$ (Eq. 10): two
# crops are close when their *neighbourhoods* overlap, not just their features.

# %%
def jaccard_core(v):
    """Step 6: 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk) for every pair."""
    shared = np.stack([np.minimum(row, v).sum(1) for row in v])
    union = np.stack([np.maximum(row, v).sum(1) for row in v])
    return 1 - shared / union


d_jaccard = jaccard_core(v_qe)

stored = jaccard_from_weights(lib_v_qe).tocoo()  # sparse: absent pairs are at distance 1
np.testing.assert_allclose(d_jaccard[stored.row, stored.col], stored.data, atol=1e-6)
np.testing.assert_allclose(d_jaccard, jaccard_distance(x, k1=k1, k2=k2, dense=True,
                                                       progress=False), atol=1e-6)
print("step 6 and the whole jaccard_distance agree with reidlib")

# %% [markdown]
# The library computes the same thing sparsely: only pairs whose neighbourhoods overlap are
# stored, the others are at distance 1, so memory grows as N·k, not N². Now on every crop:
# is the neighbour it ranks k-th more often the same person than the cosine distance's
# k-th? Left, all neighbours; right, only neighbours from *other* cameras, the ones that
# link a person's tracklets across the camera network.

# %%
jaccard = jaccard_distance(features, k1=k1, k2=k2, progress=False)
depth = 3 * k1  # deep enough to find several neighbours from other cameras for most crops
_, cosine_ranked = nearest_neighbours(features, depth + 1, "cosine")
rankings = {"cosine": cosine_ranked[:, 1:], "Jaccard": ranked_by_sparse(jaccard, depth)}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True, layout="constrained")
for ax, other in zip(axes, (False, True), strict=True):
    for name, r in rankings.items():
        curve = precision_at_k(r, compare.pids, compare.camids, other_camera=other)
        ax.plot(np.arange(1, depth + 1), curve, label=name)
    ax.axvline(k1 - 1, color="grey", lw=0.8)
    ax.set(xlabel="k" + (" (neighbours from other cameras)" if other else ""),
           title="other cameras only" if other else "all neighbours", xscale="log")
axes[0].set(ylabel="same person among the first k")
axes[0].legend()
fig.suptitle("Precision of the neighbour lists (grey: k1 - 1 neighbours)")
plt.show()

# %% [markdown]
# The very nearest neighbour is usually another frame of the same tracklet, easy for the
# plain distance; the Jaccard distance, which smooths over whole neighbourhoods, need not
# do better there. Clustering depends more on the rest of the list and on the neighbours
# from other cameras: compare the curves beyond the first few. The Jaccard distance also
# gives a threshold a uniform meaning: it compares neighbourhoods, so a fixed `eps` means
# the same in dense and in sparse regions of the feature space. (These curves depend on
# the features only, not on any random seed.)
#
# **Question 1.** The reciprocal check throws away neighbours. Which kind of true match is
# it most likely to throw away with them? (Think of a person seen by one camera only
# briefly.)
#
# ## 3. Four ways to pseudo-labels
#
# ### 3.1 K-means (PUL)
#
# PUL (Fan et al.) clusters the features with K-means and fine-tunes on the cluster ids.
# K-means must be told $k$, the number of identities, which is precisely what we do not
# know; PUL used the true number, and so do we here: **K-means is handed the hidden number
# of identities**, an advantage no real method has (part 1b shows what a wrong $k$ costs).
# Every crop gets a cluster: no outliers, so every hard crop is forced into some group.
#
# The core is Lloyd's algorithm: assign every crop to its nearest centroid, move each
# centroid to the mean of its crops, repeat. faiss does the same from the same start.

# %%
def kmeans_core(x, centroids, iterations):
    """Lloyd's K-means from the given centroids; returns each row's final centroid."""
    for _ in range(iterations):
        assign = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
        counts = np.bincount(assign, minlength=len(centroids))
        if counts.min() == 0:
            raise RuntimeError("a centroid lost all its rows (faiss would re-seed it)")
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, x)
        centroids = sums / counts[:, None]
    return ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)


start = x[np.random.default_rng(session.seed).choice(len(x), core_ids, replace=False)]
np.testing.assert_array_equal(kmeans_core(x, start, 20),
                              kmeans_labels(x, core_ids, niter=20, init=start))
print("K-means agrees with reidlib (faiss) on the core set")

# %% [markdown]
# The library on every crop, from faiss's own random start. The start matters: three seeds
# give three clusterings (all three are scored in section 4).

# %%
kmeans_seeds = {seed: kmeans_labels(features, n_ids, seed=seed) for seed in (0, 1, 2)}
kmeans = kmeans_seeds[session.seed]

# %% [markdown]
# ### 3.2 DBSCAN on the Jaccard distance (SSG, SpCL, Cluster Contrast)
#
# DBSCAN (Ester et al.) needs no $k$. A crop is a *core* point when at least `min_samples`
# crops (itself included) lie within `eps` of it; core points within `eps` of each other
# share a cluster, non-core crops near a core point join it, and the rest are
# **outliers** (label −1), left out of training. The number of clusters comes out of the
# data; the price is two other knobs, `eps` and `min_samples` (and the Jaccard distance's
# $k_1$, $k_2$). scikit-learn's DBSCAN reads the sparse distance directly.

# %%
dbscan = dbscan_labels(jaccard, eps=eps, min_samples=min_samples)

# %% [markdown]
# ### 3.3 Bottom-up clustering with a diversity term (BUC, Eq. 2)
#
# BUC (Lin et al.) starts with every crop as its own cluster and repeatedly merges the two
# clusters with the smallest
#
# $$D(A, B) = \min_{x_a \in A,\, x_b \in B} d(x_a, x_b) + \lambda\,(|A| + |B|) \qquad (2)$$
#
# The first term is single linkage: two clusters merge as soon as *one* pair of their crops
# is similar. Alone it chains everything into a giant cluster; the **diversity term**
# $\lambda(|A| + |B|)$ makes large clusters expensive to grow, so small ones are absorbed
# first. The survey calls $d$ the Euclidean distance; BUC's code uses the *squared*
# Euclidean distance between L2-normalised features, and $\lambda = 0.005$ is its value on
# that scale, so we follow the code. BUC merges a share of all pairs per training stage; on
# fixed features we merge one pair at a time. BUC also needs to know where to stop: the
# number of identities, again an oracle.
#
# The core keeps a cluster-level matrix of single-linkage distances: merging $A$ and $B$,
# the distance of $A \cup B$ to any $C$ is the smaller of the two.

# %%
def buc_core(x, n_clusters, lam):
    """Greedy bottom-up merging on Eq. 2 until n_clusters remain."""
    m = ((x[:, None] - x[None]) ** 2).sum(-1)          # d: squared Euclidean, as BUC's code
    np.fill_diagonal(m, np.inf)
    size, owner = np.ones(len(x)), np.arange(len(x))
    alive = np.ones(len(x), dtype=bool)
    for _ in range(len(x) - n_clusters):
        cost = m + lam * (size[:, None] + size[None])  # Eq. 2 for every pair of clusters
        cost[~alive] = np.inf
        cost[:, ~alive] = np.inf
        a, b = sorted(np.unravel_index(np.argmin(cost), cost.shape))
        m[a] = m[:, a] = np.minimum(m[a], m[b])        # single linkage of A + B
        m[a, a] = np.inf
        size[a] += size[b]
        alive[b] = False
        owner[owner == b] = a
    return first_seen(owner)


np.testing.assert_array_equal(buc_core(x, core_ids, 0.005),
                              buc_labels(x, n_clusters=core_ids, diversity=0.005))
print("BUC agrees with reidlib on the core set")

# %%
buc = buc_labels(features, n_clusters=n_ids, diversity=0.005)
single = buc_labels(features, n_clusters=n_ids, diversity=0.0)  # Eq. 2 without its term

# %% [markdown]
# ### 3.4 Average linkage (HCT, Eq. 3)
#
# HCT (Zeng et al.) replaces the minimum by the *mean* of all pairwise Euclidean distances
# between two clusters (the survey writes it with a minus sign, as a similarity),
#
# $$D_{ab} = \frac{1}{n_a n_b} \sum_{i \in C_a,\, j \in C_b} D(C_a^i, C_b^j) \qquad (3)$$
#
# so one look-alike pair can no longer glue two people together. In the paper this
# clustering alternates with training on P×K batches with a batch-hard triplet loss; here
# we look at the clustering alone. The core: after merging $a$ and $b$, the mean distance
# of $a \cup b$ to any $c$ is the size-weighted mean of theirs.

# %%
def hct_core(x, n_clusters):
    """Greedy average-linkage merging on Eq. 3 until n_clusters remain."""
    m = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))  # D: Euclidean distance
    np.fill_diagonal(m, np.inf)
    size, owner = np.ones(len(x)), np.arange(len(x))
    for _ in range(len(x) - n_clusters):
        a, b = sorted(np.unravel_index(np.argmin(m), m.shape))
        m[a] = m[:, a] = (size[a] * m[a] + size[b] * m[b]) / (size[a] + size[b])
        m[a, a] = np.inf
        m[b] = m[:, b] = np.inf                         # b is gone
        size[a] += size[b]
        owner[owner == b] = a
    return first_seen(owner)


np.testing.assert_array_equal(hct_core(x, core_ids), hct_labels(x, n_clusters=core_ids))
print("HCT agrees with reidlib (scipy's average linkage) on the core set")

# %%
hct = hct_labels(features, n_clusters=n_ids)
sizes = np.bincount(hct)
in_largest = np.unique(compare.pids[hct == sizes.argmax()])
print(f"HCT: largest cluster {sizes.max()} crops of {len(in_largest)} identities; the largest "
      f"identity has {np.bincount(compare.pids).max()} crops")

# %% [markdown]
# That is not what the survey's description promises ("it effectively alleviate[s] the
# impact of the hard samples, resulting in better clustering results"). Two things are true
# at once, and the next figure shows both. Average linkage *does* fix single linkage's
# chaining: follow the largest cluster as merging proceeds from N singletons down to the
# number of identities. Single linkage (Eq. 2 with $\lambda = 0$) lets one cluster swallow a
# large part of the data; average linkage keeps its largest cluster an order of magnitude
# smaller. But average linkage has no term against size, and in the generic features a
# group of different people under one camera's light can be as tight, on average, as one
# person seen by two cameras (chapter 0's camera bias; part 1b counts single-camera
# clusters, and HCT's are the most often single-camera of the four methods). Forced down to
# one cluster per identity, it merges such groups and keeps growing them. BUC's diversity
# term is what stops that.

# %%
trees = {"single linkage (Eq. 2, λ = 0)": linkage(features.astype(np.float64), "single"),
         "average linkage (HCT, Eq. 3)": linkage(features.astype(np.float64), "average")}
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for name, tree in trees.items():
    left = len(features) - 1 - np.arange(len(tree))  # clusters left after each merge
    ax.plot(left, np.maximum.accumulate(tree[:, 3]), label=name)
ax.axhline(np.bincount(compare.pids).max(), color="k", ls=":", label="largest identity")
ax.axvline(n_ids, color="grey", lw=0.8)
ax.text(n_ids, 1.5, " #identities", color="grey", fontsize=8)
ax.set(xscale="log", yscale="log", xlabel="clusters left (merging runs left to right)",
       ylabel="largest cluster (crops)", title="Chaining: the largest cluster while merging")
ax.invert_xaxis()
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Is HCT then simply stopped at the wrong place? Its knob is where to stop, and nobody may
# read it off the hidden identities of the crops it clusters. We choose it the honest way:
# hold out a fifth of the identities (`split_validation`, identities seen by two cameras),
# cluster their crops alone at several stopping points, expressed as *clusters per crop*
# so that the choice carries over to a set of another size, and keep the best pairwise F;
# then cut the tree of all crops there.

# %%
_, val_query, val_gallery = split_validation(compare, 0.2, session.seed)
held_out = np.isin(compare.pids, np.union1d(val_query.pids, val_gallery.pids))
ratios = np.array([0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.25, 0.3])
val_tree = linkage(features[held_out].astype(np.float64), "average")
val_f = [label_quality(fcluster(val_tree, max(1, round(r * held_out.sum())), "maxclust"),
                       compare.pids[held_out])["pairwise_f"] for r in ratios]
best_ratio = ratios[int(np.argmax(val_f))]
hct_val = hct_labels(features, n_clusters=round(best_ratio * len(features)))
print(f"chosen on {held_out.sum()} held-out crops: {best_ratio} clusters per crop "
      f"({hct_val.max() + 1} clusters for {n_ids} identities; the oracle is "
      f"{n_ids / len(features):.2f} per crop)")

# %% [markdown]
# Stopping earlier, with more clusters than people, trades some recall for much precision;
# its point in section 4 shows how far that brings HCT.
#
# ### 3.5 Reciprocal-neighbour filtering (SMP)
#
# SMP (Liu et al., *step-wise metric promotion*, for video tracklets) uses reciprocal
# nearest neighbours to drop the samples likely to carry false labels (survey §3.1). Our
# version is a filter on top of any clustering: crop $i$ keeps its cluster id if one of its
# reciprocal nearest neighbours ($j$ among $i$'s $k$ nearest and $i$ among $j$'s) has the
# same id, and becomes an outlier otherwise. We try it on HCT and on K-means, which label
# every crop and so have the most to filter.

# %%
def smp_core(x, labels, k):
    """Keep a label only where a mutual k-nearest neighbour carries the same label."""
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)                        # a crop is not its own neighbour
    knn = np.zeros(d.shape, dtype=bool)
    np.put_along_axis(knn, np.argsort(d, axis=1)[:, :k], True, axis=1)
    mutual = knn & knn.T
    same = (labels[:, None] == labels[None]) & (labels[:, None] >= 0)
    return np.where((mutual & same).any(1), labels, -1)


smp_k = 3  # reciprocal neighbours consulted; 1 (mutual nearest neighbours) is much stricter
core_hct = hct_labels(x, n_clusters=core_ids)
np.testing.assert_array_equal(smp_core(x, core_hct, smp_k),
                              reciprocal_filter(x, core_hct, k=smp_k))
print("SMP agrees with reidlib on the core set")

# %%
hct_smp = reciprocal_filter(features, hct, k=smp_k)
kmeans_smp = reciprocal_filter(features, kmeans, k=smp_k)
for name, before, after in (("HCT", hct, hct_smp), ("K-means", kmeans, kmeans_smp)):
    dropped = after == -1
    wrong = ~majority_correct(before, compare.pids)
    print(f"SMP on {name:<8}: drops {dropped.mean():4.1%} of the crops; "
          f"{wrong[dropped].mean():.0%} of those were wrongly labelled, "
          f"against {wrong.mean():.0%} of all crops")

# %% [markdown]
# SMP helps where the errors are *lonely*: a K-means crop put in a stranger's cluster
# rarely has a reciprocal neighbour there, so the crops it drops are mostly wrong ones.
# HCT's errors are *groups*: it merged whole tracklets of different people, and every crop
# of such a tracklet has its own tracklet-mates as reciprocal neighbours in the same
# cluster, so SMP confirms them. It drops few HCT crops, and those are no more often wrong
# than the rest: "HCT + SMP" scores almost exactly like HCT. A filter that only
# removes crops cannot undo a merge.
#
# ## 4. How good are the pseudo-labels?
#
# `label_quality` compares a clustering with the hidden identities:
# - **pairwise precision / recall / F** over the pairs of labelled crops: precision is the
#   share of same-cluster pairs that are really the same person (wrong merges lower it),
#   recall the share of same-person pairs put in one cluster (splits lower it). Outliers
#   are left out, so F alone rewards throwing hard crops away;
# - **outlier share**: crops a method refuses to label (DBSCAN's −1);
# - **NMI** and **ARI** (scikit-learn) over *all* crops, each outlier counted as a cluster of
#   one: they charge for every crop thrown away.
#
# Precision against recall, one point per method; the point's size is the share of crops
# kept (labelled). Grey curves: equal pairwise F. K-means is drawn for three seeds.

# %%
methods = {
    "K-means (k = #ids)": kmeans, "K-means + SMP": kmeans_smp,
    "DBSCAN on Jaccard": dbscan, "BUC (Eq. 2)": buc, "single linkage (λ = 0)": single,
    "HCT (Eq. 3)": hct, "HCT + SMP": hct_smp, "HCT, stop chosen on held-out ids": hct_val,
}
quality = {name: label_quality(labels, compare.pids, compare.camids)
           for name, labels in methods.items()}
kmeans_spread = [label_quality(labels, compare.pids) for labels in kmeans_seeds.values()]

markers = {"K-means": "o", "DBSCAN": "s", "BUC": "D", "single": "D", "HCT": "^"}
fig, ax = plt.subplots(figsize=(7.5, 4.8))
grid = np.linspace(0.01, 1, 200)
for f_level in (0.2, 0.4, 0.6, 0.8):
    recall_curve = f_level * grid / (2 * grid - f_level)
    ok = (recall_curve > 0) & (recall_curve <= 1)
    ax.plot(recall_curve[ok], grid[ok], color="0.85", lw=0.8, zorder=0)
    ax.text(recall_curve[ok][-1], 1.0, f"F {f_level}", fontsize=7, color="0.6")
for i, (name, q) in enumerate(quality.items()):
    ax.scatter(q["pairwise_recall"], q["pairwise_precision"], s=160 * (1 - q["outlier_share"]),
               color=plt.cm.tab10(i), marker=markers[name.split()[0].rstrip(",")],
               label=f"{name}: F {q['pairwise_f']:.2f}", edgecolor="k", lw=0.5, alpha=0.85)
ax.scatter([q["pairwise_recall"] for q in kmeans_spread],
           [q["pairwise_precision"] for q in kmeans_spread], marker="+", color="k", s=40,
           label="K-means, seeds 0, 1, 2", zorder=3)
ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="pairwise recall (splits lower it)",
       ylabel="pairwise precision (merges lower it)", title="Pseudo-labels of the generic features")
ax.legend(fontsize=7, loc="lower left")
plt.show()

# %% [markdown]
# Precision and recall pull against each other: every method trades one for the other
# through its knob. Look for the methods that sit furthest up and to the right, and at what
# each paid for it (DBSCAN's point is smaller: it left crops out).
#
# Two more views explain the points. Cluster sizes, largest first, against the true
# identity sizes (a curve far above the black line at the left means dominant clusters
# swallowing several people; a long tail of tiny clusters means people cut into pieces);
# and the **four states** of a crop's label (`reidlib.pseudo_labels.states`): *correct*,
# *merged* into a cluster led by another person, a *split fragment* of its person away from
# that person's main cluster, or an *outlier*.

# %%
fig, (ax, ax_states) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained",
                                    gridspec_kw={"width_ratios": [1, 1.3]})
truth = np.sort(np.bincount(compare.pids))[::-1]
ax.plot(np.arange(1, len(truth[truth > 0]) + 1), truth[truth > 0], "k-", lw=2.5,
        label="true identities")
for i, (name, labels) in enumerate(methods.items()):
    if name in ("K-means (k = #ids)", "DBSCAN on Jaccard", "BUC (Eq. 2)", "HCT (Eq. 3)",
                "single linkage (λ = 0)"):
        cluster_sizes = np.sort(np.bincount(labels[labels >= 0]))[::-1]
        ax.plot(np.arange(1, len(cluster_sizes) + 1), cluster_sizes, color=plt.cm.tab10(i),
                label=name)
ax.set(xscale="log", yscale="log", xlabel="cluster rank (largest first)",
       ylabel="crops in the cluster", title="Cluster sizes")
ax.legend(fontsize=7, loc="lower left")

names = list(methods)
left = np.zeros(len(names))
for state in STATES:
    share = np.array([np.mean(label_states(methods[m], compare.pids) == state) for m in names])
    ax_states.barh(names, share, left=left, color=STATE_COLOURS[state],
                   label=STATE_LABELS[state])
    left += share
ax_states.invert_yaxis()
ax_states.set(xlim=(0, 1), xlabel="share of crops", title="The four label states")
ax_states.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.07))
plt.show()

# %% [markdown]
# **Question 2.** Which method finds about the right number of groups *without* being told
# it? Which one has the highest pairwise precision, and what did it pay for it?
#
# **Question 3.** HCT's largest cluster holds many people. In the state bars, which state
# do the crops of such a cluster fall into, and why does SMP not change that?
#
# **Question 4.** BUC and HCT were given the true number of identities, DBSCAN was not. Is
# the comparison fair? What would happen to BUC if we stopped at half that number?
#
# ## 5. Reading the results against the survey
#
# The survey's tables report real benchmarks, so compare *directions*, not values. Among
# fully unsupervised methods on Market-1501 (Table 4), BUC reaches 38.3% mAP, HCT 56.4%
# and SpCL, which clusters with DBSCAN on the Jaccard distance, 73.1%; among
# domain-adaptive ones (Table 3, Duke → Market), PUL's K-means loop reaches 20.1% while the
# DBSCAN-based SSG reaches 68.7%. Those are mAPs after training, a whole method each; here
# we only compare the first clustering of generic features. DBSCAN on the Jaccard distance,
# not told the number of people, has the best pairwise precision and F of all; on ARI,
# which charges it for its outliers, it only ties with BUC, which was told the number.
# K-means, also told, stays below both for each of the three seeds. HCT's rank
# is the reverse of the survey's: its paper's gain comes with training (hard-batch triplet
# on P×K batches, chapter 2), not from average linkage on raw generic features, where it
# trails BUC. Part 1b trains on these labels.

# %%
def headline(prefix, q):
    keys = ("pairwise_f", "pairwise_precision", "pairwise_recall", "ari", "n_clusters",
            "outlier_share", "single_camera_share")
    return {f"{prefix}_{key}": float(q[key]) for key in keys if np.isfinite(q[key])}


numbers = {"hct_largest_cluster": int(sizes.max()), "hct_val_ratio": float(best_ratio),
           "kmeans_f_seeds": [float(q["pairwise_f"]) for q in kmeans_spread]}
for prefix, name in (("kmeans", "K-means (k = #ids)"), ("dbscan_jaccard", "DBSCAN on Jaccard"),
                     ("buc", "BUC (Eq. 2)"), ("hct", "HCT (Eq. 3)")):
    states = label_states(methods[name], compare.pids)
    numbers.update({f"{prefix}_{state}_share": float(np.mean(states == state))
                    for state in STATES})
for prefix, name in (("kmeans", "K-means (k = #ids)"), ("kmeans_smp", "K-means + SMP"),
                     ("dbscan_jaccard", "DBSCAN on Jaccard"), ("buc", "BUC (Eq. 2)"),
                     ("single_linkage", "single linkage (λ = 0)"), ("hct", "HCT (Eq. 3)"),
                     ("hct_smp", "HCT + SMP"), ("hct_val", "HCT, stop chosen on held-out ids")):
    numbers.update(headline(prefix, quality[name]))
_ = session.record(**numbers)

# %% [markdown]
# ## Summary
# - Without labels, identities must be guessed, and so must their *number*. Clustering
#   turns features into pseudo-labels; every method hides the unknown number in a knob
#   ($k$ for K-means, the stopping point of BUC and HCT, `eps` / `min_samples` / $k_1$ for
#   DBSCAN on the Jaccard distance).
# - The k-reciprocal Jaccard distance trusts neighbours that agree both ways, grows their
#   sets, weighs and averages them, and compares whole neighbourhoods; DBSCAN on it finds
#   the number of clusters itself and leaves unsure crops out as outliers.
# - BUC's diversity term stops single linkage's chaining; average linkage (HCT) reduces
#   chaining too but, with no term against size, merges groups of look-alikes when forced
#   down to one cluster per identity; stopping earlier, chosen on held-out identities,
#   helps it.
# - SMP's reciprocal filter removes lonely errors (K-means), not merged groups (HCT).
# - Quality has several faces: precision vs recall, kept vs discarded crops, merged vs
#   split. Pairwise F on kept crops alone rewards discarding.
#
# ## References
# - The survey, §3.1 (pseudo-label estimation), Eq. 2–3, Tables 3–4.
# - H. Fan, L. Zheng, C. Yan, Y. Yang, *Unsupervised Person Re-identification: Clustering and
#   Fine-tuning* (PUL), ACM TOMM 2018.
# - Y. Lin, X. Dong, L. Zheng, Y. Yan, Y. Yang, *A Bottom-up Clustering Approach to
#   Unsupervised Person Re-identification* (BUC), AAAI 2019.
# - K. Zeng, M. Ning, Y. Wang, Y. Guo, *Hierarchical Clustering with Hard-batch Triplet Loss
#   for Person Re-identification* (HCT), CVPR 2020.
# - Z. Liu, D. Wang, H. Lu, *Stepwise Metric Promotion for Unsupervised Video Person
#   Re-identification* (SMP), ICCV 2017.
# - Z. Zhong, L. Zheng, D. Cao, S. Li, *Re-ranking Person Re-identification with k-reciprocal
#   Encoding*, CVPR 2017.
# - M. Ester, H.-P. Kriegel, J. Sander, X. Xu, *A Density-Based Algorithm for Discovering
#   Clusters* (DBSCAN), KDD 1996.
# - Y. Fu et al., *Self-similarity Grouping* (SSG), ICCV 2019; Y. Ge et al., *Self-paced
#   Contrastive Learning with Hybrid Memory* (SpCL), NeurIPS 2020; Z. Dai et al., *Cluster
#   Contrast for Unsupervised Person Re-identification*, 2021.
