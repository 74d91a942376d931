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
# # Exercises, chapter 1: pseudo-labels
#
# Without labels, unsupervised Re-ID methods *make* labels: they group the training images by
# feature similarity and treat each group as one person (survey §3.1). Five small functions
# behind that step: the k-reciprocal neighbours that SSG, SpCL and Cluster Contrast build their
# clustering distance on, the merge criterion of bottom-up clustering (BUC, survey Eq. 2) and
# the merge it picks, and two scores that say how good pseudo-labels are when the true
# identities are known.
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. numpy is all you need.

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
# ## Where you stand
#
# All checks at once. The course's library does the same work at scale:
# `reidlib.pseudo_labels.jaccard_distance` builds on k-reciprocal sets for thousands of images,
# `buc_labels` runs the whole bottom-up clustering, and `label_quality` reports purity, pairwise
# precision / recall, NMI and ARI of a set of pseudo-labels.

# %%
questions = ["q1", "q2", "q2b", "q3", "q4"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
