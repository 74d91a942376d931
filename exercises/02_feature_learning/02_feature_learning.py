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
# # Exercises, chapter 2: learning features from pseudo-labels
#
# Once the images carry pseudo-labels, a network is trained on them as if they were true
# identities (survey §3.2). Four small pieces of that training: the hard-example mining of the
# batch-hard triplet loss (survey Eq. 5), the contrastive loss against a memory of cluster
# centroids (Eq. 6-7, as in Cluster Contrast), the momentum update that keeps such a memory
# current, and the temporal average that makes MMT's "mean teachers".
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. q1 needs numpy; q2 and q3 work on torch tensors (on the CPU); q4 works on
# either.

# %%
from reidlib.notebook import setup

session = setup("ex02")

# %%
import numpy as np
import otter
import torch
import torch.nn.functional as F

grader = otter.Notebook(tests_dir="tests")

# %% [markdown]
# ## q1. Batch-hard mining
#
# The triplet loss (survey Eq. 4) asks an *anchor* image to be closer to a *positive* (same
# identity) than to a *negative* (another identity) by a margin m. Most triplets already are,
# and teach nothing. The batch-hard loss (Eq. 5, Hermans et al. 2017; HCT trains on it) picks,
# for every anchor of a batch of P identities × K images, the triplet that is hardest:
#
# $$\big[\, m + \max_{p} D(a, p) - \min_{n} D(a, n) \,\big]_+$$
#
# the **farthest** positive and the **closest** negative. Write the mining step: `dist` is a
# (B, B) numpy array of distances between the batch's images and `labels` their B
# (pseudo-)labels. Return a tuple `(positives, negatives)` of two integer numpy arrays of
# length B:
#
# - `positives[a]`: the index of the image with the anchor's label that is farthest from the
#   anchor, **the anchor itself left out**; `-1` when the anchor is the only image of its
#   identity in the batch;
# - `negatives[a]`: the index of the image with another label that is closest to the anchor
#   (you may assume the batch holds at least two identities).
#
# On ties the lower index wins (what `np.argmax` and `np.argmin` do). Leave `dist` and
# `labels` unchanged.
#
# Example: five images on a line at positions 0, 2, 3, 5, 6.5 with labels 1, 1, 2, 1, 5 and
# `dist[p, q]` = |position p − position q|. Anchor 0's positives are images 1 (distance 2)
# and 3 (distance 5), its negatives images 2 (distance 3) and 4 (distance 6.5): it gets
# positive 3 and negative 2. Anchor 2 is alone with label 2: its positive is −1.

# %%
def batch_hard_mining(dist, labels):
    """(positives, negatives): per anchor, its farthest other positive and closest negative."""
    raise NotImplementedError("q1: write batch_hard_mining here")


# %%
grader.check("q1")

# %% [markdown]
# ## q2. The cluster contrast loss
#
# A *memory* keeps one vector per pseudo-identity: the L2-normalised centroid c_1, ..., c_C of
# each cluster (Cluster Contrast, Dai et al. 2021). An image's embedding x, also L2-normalised,
# is compared with every centroid, and a softmax turns the similarities into the probability
# that the image belongs to cluster j (the look-up table of survey Eq. 6, §3.3, with the
# scale s = 1 / τ):
#
# $$p_j = \frac{\exp(c_j^\top x / \tau)}{\sum_{k=1}^{C} \exp(c_k^\top x / \tau)},
# \qquad \mathcal{L} = -\log p_{y} \quad \text{(Eq. 7)},$$
#
# y the image's cluster. The *temperature* τ (0.05 in Cluster Contrast) sharpens the softmax.
# This is the InfoNCE loss: the own centroid is the positive, all the others the negatives.
#
# `embedding` is one embedding, a torch tensor of shape (D,), with an int `target`, or a
# batch of shape (B, D) with a (B,) integer tensor `target`. The embeddings may have any
# length: L2-normalise them first (`F.normalize`). `centroids` is a (C, D) tensor whose rows
# have length 1 already. Return the loss as a torch scalar, the mean over the batch, built from
# torch operations so that autograd can differentiate it with respect to `embedding`.
#
# Example: centroids (1, 0) and (0, 1), embedding (3, 4) (normalised: (0.6, 0.8)), τ = 0.1:
# the logits are 6 and 8, so the loss for target 0 is −log(e⁶ / (e⁶ + e⁸)) = log(1 + e²) ≈ 2.127.

# %%
def cluster_contrast_loss(embedding, centroids, target, temperature):
    """Mean over the embeddings of -log softmax(centroids @ x / temperature)[target]."""
    raise NotImplementedError("q2: write cluster_contrast_loss here")


# %%
grader.check("q2")

# %% [markdown]
# ## q3. The momentum update of a memory
#
# The memory's vectors are not trained by backpropagation. After each optimiser step, each
# image of the batch pulls the vector of its cluster (or, in an instance memory, its own slot)
# towards its embedding f, and the vector is put back on the unit sphere:
#
# $$m \leftarrow \mu\, m + (1 - \mu)\, f, \qquad m \leftarrow m / \lVert m \rVert.$$
#
# The momentum μ is the weight the *old* vector keeps: μ = 0 replaces it by f, μ = 1 leaves it
# as it is (Cluster Contrast uses μ = 0.1, SpCL 0.2).
#
# `memory` is an (N, D) torch tensor with unit rows. `index` is an int with `feature` of shape
# (D,), or a sequence (list, numpy array or tensor) of B ints with `feature` of shape (B, D);
# the features have length 1. Apply the pairs `(index[b], feature[b])` **one after the other,
# in order**: when a row occurs twice, its second update starts from the result of the first.
# Return the updated memory as a new tensor and leave `memory` unchanged (`memory.clone()`).
#
# Example: memory rows (1, 0) and (0, 1), index 0, feature (0, 1), μ = 0.5: row 0 becomes
# (0.5, 0.5), normalised (0.7071, 0.7071); row 1 stays (0, 1).

# %%
def momentum_update(memory, index, feature, momentum):
    """A copy of memory with each (index, feature) pair applied in order, rows re-normalised."""
    raise NotImplementedError("q3: write momentum_update here")


# %%
grader.check("q3")

# %% [markdown]
# ## q4. The mean teacher's average
#
# Pseudo-labels are noisy. Mutual mean teaching (MMT, Ge et al. 2020, survey §3.1-3.2) trains
# a network against the soft predictions of a *mean teacher*: a copy of the network whose
# weights are a temporal average of the trained ("student") weights, updated after every step:
#
# $$\theta_\text{teacher} \leftarrow \alpha\, \theta_\text{teacher} +
# (1 - \alpha)\, \theta_\text{student} \qquad (\alpha \approx 0.999).$$
#
# An average over many steps forgets the mistakes any one batch of wrong labels taught, so the
# teacher's predictions are steadier targets than the student's own.
#
# `teacher` and `student` are dicts from a parameter's name to its value (torch tensors, as in
# `dict(model.named_parameters())`, or numpy arrays). Return a **new** dict with the same names
# holding the averaged values, and leave both inputs unchanged. If the two dicts do not hold
# exactly the same names (the usual cause: one network's classifier was rebuilt and the
# other's was not), raise a `ValueError` that names them.
#
# Example: teacher `{"w": [1, 2], "b": 0}`, student `{"w": [3, 6], "b": 1}`, α = 0.75:
# `{"w": [1.5, 3.0], "b": 0.25}`.

# %%
def ema_update(teacher, student, alpha):
    """A new dict: alpha * teacher[name] + (1 - alpha) * student[name] for every name."""
    raise NotImplementedError("q4: write ema_update here")


# %%
grader.check("q4")

# %% [markdown]
# ## Where you stand
#
# All four checks at once. The course's library does the same work at scale:
# `reidlib.training.losses.batch_hard_triplet_loss` mines and scores a whole batch on the GPU,
# `reidlib.feature_learning.memory.ClusterMemory` holds the centroids, computes the loss and
# runs the momentum update, and `reidlib.feature_learning.mean_teacher.ema_update` averages a
# whole network (its BatchNorm statistics too).

# %%
questions = ["q1", "q2", "q3", "q4"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
