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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/exercises/04_domain_adaptation/04_domain_adaptation.ipynb)
#
# # Exercises, chapter 4: domain adaptation
#
# A model trained with the labels of one world (the *source*) loses much of its accuracy on
# another (the *target*), whose light, colours and people differ. Unsupervised domain
# adaptation (survey §3.4) keeps the source's labels (Eq. 11) and learns from the target's
# images without any: it aligns the two worlds' feature distributions (§3.4.1), translates
# images from one style into the other (§3.4.2), or clusters the target and trains on both
# (§3.4.3, Eq. 12). Four small pieces of those methods: the squared maximum mean discrepancy
# (MMD) with a mixture of Gaussian kernels and DAN's choice of bandwidths, the distance that
# MMFA (Lin et al., BMVC 2018) minimises between the worlds' features; adaptive instance
# normalisation (AdaIN, Huang & Belongie, ICCV 2017), a style transfer in one line; and the
# loss of SpCL's hybrid memory (Ge et al., NeurIPS 2020) in its domain-adaptation setting,
# where labelled source classes and target clusters share one softmax. Then your MMD trains
# a real network on world B's labels and world A's images, next to the library's, and an
# open question asks you to measure something yourself.
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. Every exercise works on torch tensors (on the CPU).

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
if os.path.isdir("reid-course/exercises/04_domain_adaptation"):
    os.chdir("reid-course/exercises/04_domain_adaptation")
if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from reidlib.notebook import setup

session = setup("ex04")

# %%
import copy

import numpy as np
import otter
import torch
import torch.nn.functional as F

grader = otter.Notebook(tests_dir="tests")

# %% [markdown]
# ## q1. The squared MMD with a Gaussian kernel mixture
#
# Are two samples X = {x_1 .. x_m} and Y = {y_1 .. y_n} drawn from one distribution? The
# maximum mean discrepancy (Gretton et al., JMLR 2012) compares their means in the feature
# space of a kernel k. Its biased estimate is
#
# $$\mathrm{MMD}^2_b(X, Y) = \frac{1}{m^2}\sum_{i,j} k(x_i, x_j)
# + \frac{1}{n^2}\sum_{i,j} k(y_i, y_j) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j),$$
#
# every sum over *all* pairs, the pairs (i, i) included. With a Gaussian kernel it is 0 for
# two identical samples and grows as the samples move apart. One Gaussian only sees distances
# near its width, so DAN (Long et al., ICML 2015) and the re-ID methods after it (MMFA; the
# survey's §3.4.1) use a **mixture**, the **sum** of one Gaussian per bandwidth h:
#
# $$k(a, b) = \sum_h \exp\left(-\frac{\lVert a - b\rVert^2}{h}\right).$$
#
# The bandwidth h **divides** the *squared* distance (h = 2σ² of the textbook Gaussian).
# `x` is an (m, D) and `y` an (n, D) float tensor (m and n may differ), `bandwidths` a list
# or 1-D tensor of positive numbers. Return MMD²_b as a torch scalar built from torch
# operations, so that autograd can differentiate it with respect to `x` and `y`.
#
# Example: X = {(0, 0), (1, 0)}, Y = {(0, 1)}, bandwidths [1]. Within X the squared distances
# are 0, 1, 1, 0, so the first term is (2 + 2e⁻¹) / 4 ≈ 0.6839; within Y it is 1; across,
# the squared distances are 1 and 2, so the last term is 2 (e⁻¹ + e⁻²) / 2 ≈ 0.5032:
# MMD² ≈ 1.1807. With bandwidths [0.5, 4] it is ≈ 1.9181.

# %%
def mmd_squared(x, y, bandwidths):
    """Biased squared MMD between the rows of x and y, kernel sum_h exp(-|a - b|^2 / h)."""
    raise NotImplementedError("q1: write mmd_squared here")


# %%
grader.check("q1")

# %% [markdown]
# ## q1b. DAN's bandwidths
#
# Which bandwidths? Features of a network have no natural scale, so DAN's code picks them
# from the data, batch by batch: the base is the **mean squared distance between distinct
# rows** of the pooled sample X ∪ Y (the m + n rows together; a row's distance to itself is
# left out, so the sum over all pairs is divided by (m + n)² − (m + n)), and the five
# bandwidths are base · 2⁻², base · 2⁻¹, base, base · 2, base · 2². The bandwidths are a
# choice, not something to learn: compute them **without gradient** (`torch.no_grad()` or
# `.detach()`), as DAN's code does.
#
# `x` (m, D) and `y` (n, D) as in q1. Return a 1-D tensor of the five bandwidths, smallest
# first.
#
# Example: X = {(0, 0), (1, 0)}, Y = {(0, 1)}. The three distinct pairs of the pooled sample
# are at squared distances 1, 1 and 2, a mean of 4/3, so the bandwidths are 1/3, 2/3, 4/3,
# 8/3 and 16/3.

# %%
def dan_bandwidths(x, y):
    """(5,): the mean squared distance between distinct rows of x and y pooled, x 2^-2..2^2."""
    raise NotImplementedError("q1b: write dan_bandwidths here")


# %%
grader.check("q1b")

# %% [markdown]
# ## Your MMD aligns two worlds
#
# MMFA's feature alignment (survey §3.4.1) is q1 and q1b plus plumbing. The class below is
# the library's `MMDAlignment` with its alignment term replaced by yours. It starts from the
# *source model*, chapter 0's supervised model of world B, and trains on batches of a source
# half (P identities x K images of B, with their labels: Eq. 11's cross-entropy and triplet
# loss) and a target half (as many random images of A, without labels); the loss adds
# **your** `mmd_squared` between the two halves' pooled features, with **your**
# `dan_bandwidths`. The cell first compares your MMD² with the library's on the source
# model's features of 128 images of each world, then trains one epoch (one pass over B's
# identities) with yours and, from the same start and seed, with the library's, and scores
# both on world A's test split (`session.score`), next to the source model as it is
# (*direct transfer*). It also measures the MMD² between the two worlds' features after
# each run: the term the training minimises. Your functions are right when the MMD² of the
# probe agrees with the library's to 1e-5 and the two runs' mean losses agree to 1%: they
# are the same run, but an optimiser amplifies the last digits of every step (your sums may
# add the same numbers in another order), so after an epoch they drift apart a little,
# and so does the mAP. One epoch tests the plumbing; do not read its mAP as a result:
# chapter 4 trains the methods for longer.

# %%
from reidlib.data.synthetic import load_world
from reidlib.domain_adaptation.align import MMDAlignment, source_loss
from reidlib.domain_adaptation.alignment import mmd2
from reidlib.domain_adaptation.compare import source_model
from reidlib.domain_adaptation.spcl_uda import SOURCE, source_target_set
from reidlib.training import fit
from reidlib.training.features import extract_features

profile = session.profile
source_world, target_world = load_world("B", profile.name), load_world("A", profile.name)
source_train = source_world.train.subset(source_world.train.pids >= 0)  # no junk crops
target_train = target_world.train.subset(target_world.train.pids >= 0)
joined, domain_ids = source_target_set(source_train, target_train)  # B's rows, then A's
source_labels = np.where(domain_ids == SOURCE, joined.pids, -1)  # A's rows: no label
source = source_model(session, source_world)
rng = np.random.default_rng(session.seed)
probes = [part.subset(rng.choice(len(part), 128, replace=False))
          for part in (source_train, target_train)]


class YourMMDAlignment(MMDAlignment):
    """MMDAlignment whose alignment term is your q1 with your q1b's bandwidths."""

    def loss(self, batch):
        half = len(batch.indices) // 2  # the source half, then the target half
        out = self.forward(batch.augmented(), half)
        parts = source_loss(out, batch.labels, half, self.epsilon, self.margin)
        fs, ft = out.features[:half].float(), out.features[half:].float()
        parts["mmd"] = self.weight * mmd_squared(fs, ft, dan_bandwidths(fs, ft))
        return sum(parts.values()), parts


def probe_mmd(model, yours=False):
    """MMD^2 between the model's features of the B probe and the A probe."""
    fs, ft = (extract_features(model, p, flip=False, progress=False).double() for p in probes)
    return float(mmd_squared(fs, ft, dan_bandwidths(fs, ft)) if yours else mmd2(fs, ft))


def one_epoch(method_class):
    """The source model, one epoch of method_class on B -> A, the test scores after."""
    torch.manual_seed(session.seed)
    method = method_class(copy.deepcopy(source).to(session.device), domain_ids)
    history = fit(method, joined, labels=source_labels, domains=domain_ids, epochs=1,
                  p=profile.p, k=profile.k, lr=profile.lr, seed=session.seed, progress=False)
    model = method.model.eval()
    return history[0].losses, session.score(model, target_world), probe_mmd(model)


def described(scores, losses, gap):
    return (f"mAP {scores['mAP']:.2%}, rank-1 {scores['rank1']:.2%}, MMD^2 B-A {gap:.4f}; "
            f"mean losses: ce {losses['ce']:.4f}, triplet {losses['triplet']:.4f}, "
            f"mmd {losses['mmd']:.4f}")


direct, direct_gap = session.score(source, target_world), probe_mmd(source)
library_losses, library_after, library_gap = one_epoch(MMDAlignment)
agree = False
print(f"one epoch of {profile.p} identities x {profile.k} images of B + {profile.p * profile.k} "
      f"images of A per batch ({len(source_train)} B, {len(target_train)} A training images)")
print(f"{'direct transfer (B model)':>26}: mAP {direct['mAP']:.2%}, rank-1 "
      f"{direct['rank1']:.2%}, MMD^2 B-A {direct_gap:.4f}")
print(f"{'library MMDAlignment':>26}: {described(library_after, library_losses, library_gap)}")
try:
    your_gap = probe_mmd(source, yours=True)
    print(f"{'your q1 + q1b, B-A probe':>26}: MMD^2 {your_gap:.6f} (library {direct_gap:.6f})")
    your_losses, your_after, your_gap_after = one_epoch(YourMMDAlignment)
    print(f"{'your q1 + q1b':>26}: {described(your_after, your_losses, your_gap_after)}")
    agree = abs(your_gap - direct_gap) <= 1e-5 * abs(direct_gap) and all(
        abs(your_losses[key] - library_losses[key]) <= 1e-2 * abs(library_losses[key])
        for key in ("ce", "triplet", "mmd"))  # relative: an epoch amplifies rounding
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q1 and q1b (grader.check passes), then run this cell again.")
session.record(plug_back_agrees=bool(agree))
print("your functions reproduce the library:", bool(agree))

# %% [markdown]
# ## q2. Adaptive instance normalisation
#
# Image-level methods (survey §3.4.2) render the source's images in the target's style and
# train on them with the source's labels; PTGAN and SPGAN train a CycleGAN for it. Huang &
# Belongie (ICCV 2017) found that much of what we call "style" is the mean and the spread of
# each channel of a feature map: **AdaIN** gives each channel of a *content* map the mean
# and standard deviation of the matching channel of a *style* map,
#
# $$\mathrm{AdaIN}(x, y) = \sigma(y)\,\frac{x - \mu(x)}{\sigma(x)} + \mu(y) \qquad
# \text{(their Eq. 8)},$$
#
# with μ and σ computed **per image and per channel**, over the H x W positions. As in the
# authors' code, σ² is the **unbiased** variance (divide by H·W − 1) and `eps` is added to
# the variance **before** the square root: σ = sqrt(var + eps).
#
# `content` is a (B, C, H, W) float tensor, `style` a (B, C, H', W') or (1, C, H', W') one
# (one style map per content map, or one for all of them; H' x W' may differ from H x W).
# Return the (B, C, H, W) tensor, differentiable with respect to both.
#
# Example: one 2 x 2 map of one channel, content [[1, 3], [5, 7]] (mean 4, unbiased
# variance 20/3) and style [[0, 0], [2, 2]] (mean 1, variance 4/3), eps = 0: σ(y) / σ(x) =
# 1/√5, so the result is [[−0.342, 0.553], [1.447, 2.342]]. With eps = 1 it is
# [[−0.655, 0.448], [1.552, 2.655]] (the ratio is sqrt((4/3 + 1) / (20/3 + 1))).

# %%
def adaptive_instance_norm(content, style, eps=1e-5):
    """AdaIN: each image's channels take the style's mean and std over H x W."""
    raise NotImplementedError("q2: write adaptive_instance_norm here")


# %%
grader.check("q2")

# %% [markdown]
# ## q3. SpCL's memory loss across two domains
#
# Clustering-based domain adaptation (survey §3.4.3) clusters the target's features into
# pseudo-identities (Eq. 12) and trains on them next to the source's real identities
# (Eq. 11). SpCL (Ge et al., NeurIPS 2020) puts both in **one softmax** over a memory of
# three kinds of entries (chapter 2's q5 built the last two):
#
# 1. one **centroid per source class**: the mean of the class's L2-normalised features,
#    **normalised again** (a unit vector);
# 2. one **centroid per target cluster**: the *plain* mean of its members' L2-normalised
#    features, **not** normalised again (SpCL's code: a spread-out cluster pulls more
#    softly);
# 3. each **un-clustered target image** (label −1) on its own: its L2-normalised feature.
#
# Each image of the batch, source or target, is contrasted with all of them at once (the
# survey's Eq. 6-7): with x the L2-normalised embedding and τ the temperature,
# loss = −log( exp(z⁺·x / τ) / Σ_z exp(z·x / τ) ), the sum over every entry, where the
# positive z⁺ is the image's **source class** centroid, its **target cluster** centroid, or,
# un-clustered, **its own** entry. The batch's loss is the mean over its images.
#
# `embeddings` is a (B, D) tensor (the network's output for the batch), `rows` a (B,)
# integer tensor (each embedding's row in the training set), `features` the (N, D) memory
# features of all training rows (rows of any length: L2-normalise them), `labels` the N ids
# (on a source row its class, any id ≥ 0; on a target row its cluster, or −1) and
# `is_source` N booleans (a list, numpy array or tensor). A source class and a target cluster
# are different entries even when their ids are equal. Return the loss as a torch scalar
# differentiable with respect to `embeddings`. Leave the inputs unchanged.
#
# Example: features (1, 0), (0, 2) of source class 4, (3, 4) and (0.6, −0.8) of target
# cluster 0, and (−1, 0), (0, −5) un-clustered on the target. The entries are (0.707, 0.707)
# (class 4, normalised again), (0.6, 0) (cluster 0: the mean of (0.6, 0.8) and (0.6, −0.8),
# kept as it is), (−1, 0) and (0, −1). The embedding (1, 0) of row 2 (cluster 0) with τ = 0.5
# has logits 1.414, 1.2, −2 and 0, and loss log(e^1.414 + e^1.2 + e^−2 + e^0) − 1.2 ≈ 0.9481.
# Add (0, 3) of row 0 (class 4: loss ≈ 0.4181) and (−2, 0) of row 4 (its own entry:
# ≈ 0.1898): the batch's loss is their mean, ≈ 0.5187.

# %%
def source_hybrid_loss(embeddings, rows, features, labels, is_source, temperature=0.05):
    """SpCL's loss over [source class centroids, target clusters, un-clustered targets]."""
    raise NotImplementedError("q3: write source_hybrid_loss here")


# %%
grader.check("q3")

# %% [markdown]
# ## Open question: how large a batch does the MMD need?
#
# `MMDAlignment` estimates the MMD from 64 images of each world per batch. Measure what a
# sample of that size can see, under the source model of the plug-back cell (`source`), with
# its features of the training images of both worlds (`extract_features(source, images,
# flip=False, progress=False)`; `source_train.subset(rows)` picks images):
#
# 1. for n = 8, 32, 128 and 512, draw five times n images of B and n images of A and compute
#    the biased MMD² between them (your q1 with your q1b, or `mmd2`); draw as often two
#    disjoint sets of n images of B, whose true MMD is 0, and compute theirs too;
# 2. do the same with the unbiased estimate (`mmd2(x, y, unbiased=True)`: the pairs (i, i)
#    left out of the within-sample sums), and plot both estimates of both pairs against n
#    (mean and spread of the five draws);
# 3. answer in three sentences: from which n does B against A stand clear of B against B?
#    Why is the biased estimate of B against B not 0, and how does it change with n? What
#    does that mean for a loss that minimises the biased MMD² of two halves of 64?

# %% [markdown]
# ## Where you stand
#
# All four checks at once. The course's library does the same work at scale:
# `reidlib.domain_adaptation.alignment` holds the MMD (`gaussian_kernel_mixture`,
# `default_bandwidths`, `mmd2`, and D-MMD's distance-distribution MMD),
# `reidlib.domain_adaptation.align` the methods that minimise it (`MMDAlignment`,
# `AttributeAlignment`), `reidlib.domain_adaptation.style` AdaIN and a colour transfer
# (`adain`, `colour_transfer`), and `reidlib.domain_adaptation.spcl_uda` SpCL's memory and
# method in the domain-adaptation setting (`SourceHybridMemory`, `SpCLUDA`).

# %%
questions = ["q1", "q1b", "q2", "q3"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
