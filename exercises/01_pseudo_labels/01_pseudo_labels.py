# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/exercises/01_pseudo_labels/01_pseudo_labels.ipynb)
#
# # Exercises, chapter 1: pseudo-labels
#
# Without labels, unsupervised Re-ID methods *make* labels: they group the training images by
# feature similarity and treat each group as one person (survey §3.1). Nine small functions
# behind that step: the k-reciprocal neighbours that SSG, SpCL and Cluster Contrast build their
# clustering distance on, the merge criterion of bottom-up clustering (BUC, survey Eq. 2) and
# the merge it picks, two scores that say how good pseudo-labels are when the true identities
# are known, the last three steps of the k-reciprocal Jaccard distance, and a way to choose
# DBSCAN's eps without any label. Then your functions build the Jaccard distance of real
# features and DBSCAN clusters on it, next to the library's result, and an open question asks
# you to measure something yourself.
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. numpy is all you need.

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
if os.path.isdir("reid-course/exercises/01_pseudo_labels"):
    os.chdir("reid-course/exercises/01_pseudo_labels")
if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from reidlib.notebook import setup

session = setup("ex01")

# %%
import numpy as np
import otter

grader = otter.Notebook(tests_dir="tests")

# %% [markdown]
# ## q1. k-reciprocal neighbours
#
# Two images of one person usually have each other among their nearest neighbours; an image
# of someone else that happens to look close often does not (its own neighbours are elsewhere).
# Keeping only the neighbours that *return the favour* removes many such hard negatives
# (Zhong et al., CVPR 2017; SMP [71] in the survey filters labels the same way).
#
# `dist` is an (N, N) numpy array of distances, `dist[p, q]` between images p and q. Define
#
# - N(p, k): p itself **and** the k images other than p that are nearest to p. Leave
#   `dist[p, p]` out of the ranking: p is always in N(p, k), even when another image sits at
#   distance 0 from it. When two images are at the same distance from p, the one with the
#   lower index comes first (what `np.argsort(..., kind="stable")` does).
# - R(i, k) = { j in N(i, k) : i in N(j, k) }, the *k-reciprocal neighbours* of i.
#
# So i itself is always in R(i, k), and R(i, k) has at most k + 1 members. Return R(i, k) as
# a sorted numpy array of integer indices; `1 <= k <= N - 1`.
#
# Example: six images on a line at positions 0, 1, 2.5, 6, 7, 12, with `dist[p, q]` =
# |position p - position q|, and k = 2. N(3, 2) = {3, 4, 2}; image 4 has 3 among its own
# nearest two (N(4, 2) = {4, 3, 2}) but image 2 does not (N(2, 2) = {2, 1, 0}), so
# R(3, 2) = [3, 4].

# %%
def k_reciprocal_set(dist, i, k):
    """R(i, k): sorted numpy int array of the j in N(i, k) that have i in N(j, k)."""
    raise NotImplementedError("q1: write k_reciprocal_set here")


# %%
grader.check("q1")

# %% [markdown]
# ## q2. The BUC merge criterion
#
# Bottom-up clustering (BUC [52]) starts with every image as a cluster of its own and merges
# two clusters at a time. Which two? The pair with the smallest criterion (survey Eq. 2)
#
# $$D(A, B) = \min_{x_a \in A,\ x_b \in B} d(x_a, x_b) + \lambda\,(|A| + |B|).$$
#
# The first term is the distance between the two closest images, one from each cluster
# (single linkage): if two images are very similar their clusters should merge. The second is
# BUC's *diversity* term: |A| is the number of images in A, so big clusters cost more to grow,
# small ones are absorbed first, and no dominant cluster swallows the data set.
#
# `dist` is the (N, N) numpy array of distances between images, `labels` an (N,) array or list
# of cluster ids (any integers, one per image; BUC has no outliers), `a` and `b` two different
# ids present in `labels`, `lam` the λ ≥ 0. Return D(A, B) as a float.

# %%
def buc_merge_cost(dist, labels, a, b, lam):
    """Eq. 2: min distance between clusters a and b plus lam * (|a| + |b|), as a float."""
    raise NotImplementedError("q2: write buc_merge_cost here")


# %%
grader.check("q2")

# %% [markdown]
# ## q2b. Which clusters merge next?
#
# One BUC step: among all pairs of clusters present in `labels`, find the pair with the
# smallest D(A, B) of q2. Return it as a tuple `(a, b)` of cluster ids with `a < b`. If several
# pairs tie, return the one with the smallest `a`, then the smallest `b`. There are at least
# two clusters. You may call your `buc_merge_cost`.
#
# With λ = 0 this is plain single linkage. Try it by hand on five images on a line at positions
# 0, 0.25, 0.5, 1.5 and 3, after BUC has merged the first three into one cluster: single
# linkage joins the image at 1.5 to the big cluster (distance 1), but with λ = 0.5 the two
# single images merge first (1.5 + 0.5 × 2 = 2.5 against 1 + 0.5 × 4 = 3).

# %%
def buc_next_merge(dist, labels, lam):
    """The pair (a, b), a < b, of cluster ids with the smallest BUC criterion."""
    raise NotImplementedError("q2b: write buc_next_merge here")


# %%
grader.check("q2b")

# %% [markdown]
# ## q3. Purity of pseudo-labels
#
# In the course we know the true identities of the training images (the method does not), so
# we can measure how noisy its pseudo-labels are. *Purity*: give each cluster the identity that
# most of its images have (its majority identity); purity is the share of images that carry
# their cluster's majority identity.
#
# `pred` holds the cluster ids, with **-1 for an outlier** (DBSCAN's label for an image it
# leaves out of every cluster), `true` the identities (any integers). Outliers belong to no
# cluster: leave them out entirely, both from the count and from the total (so purity is a
# share of the clustered images; how many images were discarded is a separate number, the
# outlier share). If every image is an outlier, return `float("nan")`.
#
# Example: `pred = [0, 0, 0, 1, 1, 2, -1]`, `true = [5, 5, 7, 7, 7, 7, 5]`. Cluster 0 holds
# identities 5, 5, 7 (majority 5: two images), cluster 1 holds 7, 7 (two), cluster 2 holds 7
# (one); the outlier is left out, so purity = (2 + 2 + 1) / 6 = 0.833.
#
# Purity alone is easy to fool: putting every image in a cluster of its own gives purity 1.
# That is why q4 counts pairs.

# %%
def purity(pred, true):
    """Share of the non-outlier images (pred != -1) that carry their cluster's majority id."""
    raise NotImplementedError("q3: write purity here")


# %%
grader.check("q3")

# %% [markdown]
# ## q4. Pairwise precision and recall
#
# Look at pairs of images instead. Among the non-outlier images (again, leave every image with
# `pred == -1` out), count each unordered pair {p, q}, p ≠ q, once:
#
# - *precision* = (pairs in one cluster that are the same person) / (pairs in one cluster):
#   wrong merges lower it;
# - *recall* = (pairs in one cluster that are the same person) / (pairs that are the same
#   person): identities split over several clusters lower it.
#
# Return the tuple `(precision, recall)` of floats. A ratio whose denominator is 0 (no two
# images share a cluster, or no two share an identity) is `float("nan")`, not 0 or 1.
#
# Example (the q3 data): the clustered images are the first six. Pairs in one cluster: 3 in
# cluster 0 and 1 in cluster 1, of which 2 are the same person, so precision = 2/4. Same-person
# pairs: 1 for identity 5 and 6 for identity 7, so recall = 2/7.

# %%
def pairwise_precision_recall(pred, true):
    """(precision, recall) over the unordered pairs of non-outlier images."""
    raise NotImplementedError("q4: write pairwise_precision_recall here")


# %%
grader.check("q4")

# %% [markdown]
# ## From reciprocal sets to the Jaccard distance
#
# SSG, SpCL and Cluster Contrast do not run DBSCAN on the feature distance but on the
# *k-reciprocal Jaccard distance* (Zhong et al., CVPR 2017; survey §3.1): two images are
# close when their reciprocal *neighbourhoods* overlap. Its steps, on N images:
#
# 1. N(i, k): i and its k nearest others;
# 2. R(i, k): the reciprocal ones (your q1);
# 3. R*(i): R(i, k) grown by the reciprocal sets of its members when they overlap it by more
#    than 2/3 (the library's `expand_sets`; the cell after q7 calls it for you);
# 4. a vector V_i over all N images with Gaussian weights on R*(i), averaged over i's nearest
#    neighbours (q5 and q6);
# 5. d_J(i, j) from V_i and V_j (q7).
#
# In q5 to q8 every N × N quantity is a plain numpy array (the library keeps them sparse, so
# that N can be 100,000; the algebra is the same).
#
# ## q5. Gaussian-weighted neighbourhood vectors (step 4, first half)
#
# `sq_dist` is an (N, N) array of squared distances (`sq_dist[i, i] = 0`) and `sets` an
# (N, N) boolean array whose row i marks the members of R*(i) (i itself among them). Row i
# of the result V gives each member j a weight that falls with its distance, normalised so
# that the row sums to 1, and every non-member weight 0 (Zhong et al., Eq. 7):
#
# $$V_{ij} = \frac{e^{-d(i, j)}}{\sum_{k \in R^*(i)} e^{-d(i, k)}}
# \ \text{ for } j \in R^*(i), \qquad V_{ij} = 0 \text{ otherwise}.$$
#
# i itself is in R*(i), at distance 0 from itself. Return V as a float numpy array; leave the
# inputs unchanged.
#
# Example: `sq_dist[0] = [0, 1, 2]`, R*(0) = {0, 1}: V_0 = [1, e^{-1}, 0] / (1 + e^{-1})
# = [0.731, 0.269, 0].

# %%
def gaussian_vectors(sq_dist, sets):
    """V: exp(-sq_dist[i, j]) on the members j of row i of `sets`, each row summing to 1."""
    raise NotImplementedError("q5: write gaussian_vectors here")


# %%
grader.check("q5")

# %% [markdown]
# ## q6. Local query expansion (step 4, second half)
#
# One image's vector is noisy; its nearest neighbours probably show the same person. So
# replace each V_i by the mean of the vectors of i's k2 nearest neighbours (Zhong et al.,
# Eq. 11; k2 = 6 in SpCL and Cluster Contrast):
#
# $$V_i \leftarrow \frac{1}{k_2} \sum_{j \in N(i, k_2)} V_j .$$
#
# `v` is the (N, N) array of q5, `neighbours` an (N, k2) integer array whose row i lists i's
# k2 nearest images (i itself first, so k2 = 1 changes nothing). Return the new (N, N)
# array; leave `v` unchanged (every new row is built from the *old* rows).
#
# Example: `v = [[1, 0], [0, 1]]`, `neighbours = [[0, 1], [1, 0]]`: both rows become
# [0.5, 0.5].

# %%
def local_query_expansion(v, neighbours):
    """Each row of v replaced by the mean of the rows of v listed in neighbours[i]."""
    raise NotImplementedError("q6: write local_query_expansion here")


# %%
grader.check("q6")

# %% [markdown]
# ## q7. The Jaccard distance (step 5)
#
# Two images are close when their vectors put weight on the same images. The Jaccard
# distance of two weighted sets (Zhong et al., Eq. 10):
#
# $$d_J(i, j) = 1 - \frac{\sum_k \min(V_{ik}, V_{jk})}{\sum_k \max(V_{ik}, V_{jk})}.$$
#
# It is 0 for identical vectors and 1 when they share no image. `v` is an (N, N) array with
# non-negative rows that each sum to 1; return the (N, N) array of d_J. Avoid an (N, N, N)
# array: N = 500 would need a gigabyte; a loop over the rows i, each compared with all rows
# at once, is fast enough.
#
# Example: V_0 = [0.5, 0.5, 0], V_1 = [0, 0.5, 0.5]: min sums to 0.5, max to 1.5, so
# d_J = 1 − 1/3 = 0.667.

# %%
def jaccard_from_vectors(v):
    """(N, N) Jaccard distances 1 - sum min / sum max between the rows of v."""
    raise NotImplementedError("q7: write jaccard_from_vectors here")


# %%
grader.check("q7")

# %% [markdown]
# ## Your Jaccard distance on real features, then DBSCAN
#
# The cell below takes features of the course's generic backbone (pretrained on clothing
# attributes, never on identities) for the training images of 60 people of world A, and
# builds the Jaccard distance with **your** q1 (steps 1-2), the library's `expand_sets`
# (step 3), your q5 and q6 (step 4) and your q7 (step 5), with the chapter's settings
# (k1 = 10 images in a neighbourhood counting the image itself, so your k = 9; k2 = 6; the
# distance is 2 − 2 cos, the squared Euclidean distance of unit vectors). It compares the
# result with `reidlib.pseudo_labels.jaccard_distance`, runs DBSCAN (eps = 0.5,
# min_samples = 4, the chapter's values) on both, and scores the pseudo-labels against the
# hidden identities with `label_quality`.

# %%
import scipy.sparse as sp

from reidlib.data.synthetic import load_world
from reidlib.models import build_model
from reidlib.pseudo_labels import dbscan_labels, jaccard_distance, label_quality
from reidlib.pseudo_labels.jaccard import expand_sets
from reidlib.training.features import extract_features

world = load_world("A", session.profile.name)
train = world.train.subset(world.train.pids >= 0)
people = train.subset(np.isin(train.pids, np.unique(train.pids)[:60]))
backbone = build_model(session.profile.arch, weights="synthetic").to(session.device).eval()
features = extract_features(backbone, people, flip=False, progress=False).numpy()
k1, k2, eps, min_samples = 10, 6, 0.5, 4
sq_dist = np.maximum(2 - 2 * features.astype(np.float64) @ features.T.astype(np.float64), 0)
n_images = len(features)
print(f"{n_images} training images of {len(np.unique(people.pids))} people")


def as_sets(k):
    """Your R(i, k) for every i, as an (N, N) boolean matrix."""
    sets = np.zeros((n_images, n_images), dtype=bool)
    for i in range(n_images):
        sets[i, k_reciprocal_set(sq_dist, i, k)] = True
    return sets


def describe(name, labels):
    quality = label_quality(labels, people.pids)
    print(f"{name:>26}: {quality['n_clusters']:3d} clusters, "
          f"{quality['outlier_share']:.0%} outliers, pairwise F {quality['pairwise_f']:.3f}, "
          f"ARI {quality['ari']:.3f}")


library_jaccard = jaccard_distance(features, k1=k1, k2=k2, dense=True, progress=False)
describe("library Jaccard + DBSCAN", dbscan_labels(library_jaccard, eps, min_samples))
your_jaccard, gap = None, np.inf
try:
    recip = sp.csr_matrix(as_sets(k1 - 1))
    recip_half = sp.csr_matrix(as_sets(int(np.around(k1 / 2))))
    expanded = expand_sets(recip, recip_half).toarray()  # step 3, the library's
    # i's k2 nearest images, i itself first (a tie with i cannot push it out)
    order = np.argsort(sq_dist + np.diag(np.full(n_images, -np.inf)), axis=1, kind="stable")
    v = local_query_expansion(gaussian_vectors(sq_dist, expanded), order[:, :k2])
    # float32, as the library stores it: a pair at d_J = 0.5 exactly must not fall on either
    # side of eps by a rounding error
    your_jaccard = np.asarray(jaccard_from_vectors(v), dtype=np.float32)
    gap = np.abs(your_jaccard - library_jaccard).max()
    describe("your Jaccard + DBSCAN", dbscan_labels(your_jaccard, eps, min_samples))
    print(f"largest difference from the library's distance: {gap:.1e}")
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q1, q5, q6 and q7 (grader.check passes), then run this cell again.")
plain = np.sqrt(sq_dist)  # for comparison: DBSCAN on the plain feature distance
describe("plain distance + DBSCAN", dbscan_labels(plain, np.quantile(plain, 0.01), min_samples))

# %% [markdown]
# The last line is DBSCAN on the plain feature distance, with eps at the 1% quantile of all
# pairwise distances (a plain distance has no natural scale): compare how many identities
# each distance keeps together. The next question removes the last use of labels from this
# pipeline: the choice of eps.
#
# ## q8. Choosing eps without labels
#
# The chapter chose eps by scoring clusterings against the hidden identities, which an
# unsupervised method cannot do. A label-free rule from the DBSCAN paper (Ester et al., KDD
# 1996) reads eps off the data's own density. For every image take its *k-distance*, the
# distance to its k-th nearest **other** image, with k = `min_samples` − 1 (DBSCAN's
# `min_samples` counts the image itself: an image is a core point when k others lie within
# eps). Sort the N k-distances increasingly: y_0 ≤ y_1 ≤ … ≤ y_{N−1}. Images in dense
# regions form the long flat start of this curve, outliers its steep end; eps goes at the
# **knee** between them. We find the knee geometrically: scale both axes to [0, 1],
#
# $$x_t = \frac{t}{N - 1}, \qquad \hat y_t = \frac{y_t - y_0}{y_{N-1} - y_0},$$
#
# and take the point farthest below the straight line from the first point to the last,
# t* = argmax (x_t − ŷ_t) (the first such t on ties). Return eps = y_{t*} as a float; if
# all k-distances are equal, return that value.
#
# `dist` is an (N, N) array of distances (ignore `dist[i, i]`), 2 ≤ `min_samples` ≤ N.
#
# Example: six images on a line at 0, 1, 2, 3, 10, 30 and min_samples = 2 (k = 1): the
# k-distances sorted are [1, 1, 1, 1, 7, 20], x − ŷ = [0, 0.2, 0.4, 0.6, 0.48, 0], so the
# knee is t* = 3 and eps = 1: the four images at unit spacing are dense, 10 and 30 are noise.

# %%
def knee_eps(dist, min_samples):
    """eps at the knee of the sorted distances to the (min_samples - 1)-th nearest other."""
    raise NotImplementedError("q8: write knee_eps here")


# %%
grader.check("q8")

# %% [markdown]
# ## How close does the knee land?
#
# On your Jaccard distance of the 60 people: eps from q8 (no labels) against the eps a
# sweep picks with the hidden identities (the best ARI, outliers counted as clusters of one
# so that discarding images is not rewarded), and the chapter's eps = 0.5.

# %%
sweep = np.round(np.arange(0.1, 0.96, 0.05), 2)
agree = False
try:
    knee = knee_eps(your_jaccard, min_samples)
    ari = [label_quality(dbscan_labels(your_jaccard, e, min_samples), people.pids)["ari"]
           for e in sweep]
    best = float(sweep[int(np.argmax(ari))])
    print(f"knee eps {knee:.3f} (no labels); eps with the best ARI {best:.2f} (labels)")
    describe(f"DBSCAN at the knee {knee:.2f}", dbscan_labels(your_jaccard, knee, min_samples))
    describe(f"DBSCAN at the best {best:.2f}", dbscan_labels(your_jaccard, best, min_samples))
    describe(f"DBSCAN at the chapter's {eps}", dbscan_labels(your_jaccard, eps, min_samples))
    agree = bool(gap < 1e-4 and np.isfinite(knee))
except Exception as error:
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q1 and q5 to q8 (grader.check passes), then run this cell again.")
session.record(plug_back_agrees=agree)
print("your functions reproduce the library's Jaccard distance and give an eps:", agree)

# %% [markdown]
# ## Open question: k1 against the number of crops per person
#
# The papers use k1 = 20 or 30 on Market-1501 (about 17 crops per identity); the chapter
# uses k1 = 10 on our smaller worlds. Measure why. With the library's
# `jaccard_distance(features, k1=..., k2=6, dense=True)` on the 60 people above:
#
# 1. for k1 in 5, 10, 20, 30, find the knee eps (q8) and the ARI-best eps (the sweep above),
#    and the ARI, pairwise F and outlier share of DBSCAN at each;
# 2. print the mean number of crops per person (`np.unique(people.pids, return_counts=True)`);
# 3. plot ARI against k1, one line for the knee eps and one for the ARI-best eps;
# 4. answer in three sentences: which k1 works best here and how does it relate to the
#    crops per person? Does the knee rule's gap to the label-chosen eps grow or shrink with
#    k1, and would you trust it to set eps in a new domain?

# %% [markdown]
# ## Where you stand
#
# All checks at once. The course's library does the same work at scale:
# `reidlib.pseudo_labels.jaccard_distance` runs steps 1-5 sparsely for a hundred thousand
# images, `buc_labels` runs the whole bottom-up clustering, and `label_quality` reports purity,
# pairwise precision / recall, NMI and ARI of a set of pseudo-labels.

# %%
questions = ["q1", "q2", "q2b", "q3", "q4", "q5", "q6", "q7", "q8"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
