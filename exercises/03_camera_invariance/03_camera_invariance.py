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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/exercises/03_camera_invariance/03_camera_invariance.ipynb)
#
# # Exercises, chapter 3: camera-invariant features
#
# Two strangers seen by one camera can look more alike than one person seen by two: each
# camera adds its own light, colour cast, background and viewpoint to all its images, and a
# network trained on pseudo-labels learns that camera signature as readily as the person
# (survey §3.3, camera-aware invariance learning). Five small pieces of the methods that work
# against it: the camera-aware proxies of CAP (Wang et al., AAAI 2021), one per cluster and
# camera; CAP's intra-camera loss (the own-camera softmax of survey Eq. 8) and its
# inter-camera loss with hard negatives (the cross-camera term of Eq. 9-10, on proxies); the
# per-camera BatchNorm statistics of camera-based BN (Zhuang et al., ECCV 2020); and the
# score similarity with which IICS (Xuan & Zhang, CVPR 2021) associates the clusters of
# different cameras. Then your proxies and your two losses train a real network for a few
# steps, next to the library's CAP, and an open question asks you to measure something
# yourself.
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. Every exercise works on torch tensors (on the CPU); q4 also on a torch
# model.

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
if os.path.isdir("reid-course/exercises/03_camera_invariance"):
    os.chdir("reid-course/exercises/03_camera_invariance")
if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from reidlib.notebook import setup

session = setup("ex03")

# %%
import copy

import numpy as np
import otter
import torch
import torch.nn.functional as F
from torch import nn

grader = otter.Notebook(tests_dir="tests")

# %% [markdown]
# ## q1. Camera-aware proxies
#
# Cluster Contrast (chapter 2) keeps one centroid per cluster. A cluster that holds one
# person seen by three cameras is really three tight groups, one per camera, and its centroid
# sits between them, close to none. CAP (Wang et al., AAAI 2021; survey §3.3) splits every
# cluster into one **camera-aware proxy** per (cluster, camera) pair: the centroid of the
# cluster's images *from that camera*, built as Cluster Contrast builds a centroid (the mean
# of the L2-normalised features, put back on the unit sphere).
#
# `features` is an (N, D) torch tensor (rows of any length: L2-normalise them first),
# `labels` the N cluster ids (−1: an outlier, which belongs to no proxy) and `camids` the N
# camera ids; both are lists, numpy arrays or tensors of ints, with any ids (not necessarily
# 0, 1, 2, ...). Return a tuple `(proxies, clusters, cameras)`: the (P, D) tensor of proxies,
# rows of length 1, and two int64 tensors of length P holding each proxy's cluster id and
# camera id as given. There is one proxy per (camera, cluster) pair that holds at least one
# clustered image, **ordered by camera id, then by cluster id** (the order of CAP's memory).
# At least one image is clustered. Leave the inputs unchanged.
#
# Example: five images with 2-D features (3, 4), (0, 5), (2, 0), (1, 1), (−4, 3), labels
# [7, 2, 7, −1, 7] and cameras [0, 1, 0, 0, 1]. Camera 0 holds cluster 7 (images 0 and 2,
# normalised (0.6, 0.8) and (1, 0), mean (0.8, 0.4), proxy (0.894, 0.447)); camera 1 holds
# cluster 2 (image 1: proxy (0, 1)) and cluster 7 (image 4: proxy (−0.8, 0.6)); image 3 is
# an outlier. So `proxies` is [(0.894, 0.447), (0, 1), (−0.8, 0.6)], `clusters` [7, 2, 7]
# and `cameras` [0, 1, 1].

# %%
def camera_proxies(features, labels, camids):
    """(proxies, clusters, cameras): one unit proxy per (camera, cluster) pair, in that order."""
    raise NotImplementedError("q1: write camera_proxies here")


# %%
grader.check("q1")

# %% [markdown]
# ## q2. The intra-camera loss
#
# The look-up-table loss of chapter 2 (survey Eq. 6-7) puts every memory entry into one
# softmax. Within one camera, two people share light, background and viewpoint, so an image's
# most similar entries are mostly from its own camera, and a softmax over all of them teaches
# the camera as much as the person. Survey Eq. 8 takes the softmax over the entries of the
# sample's **own camera** only, O_intra(i):
#
# $$p^\text{intra}_{ij} = \frac{\exp(m_j^\top x_i / \tau)}
# {\sum_{k \in O^\text{intra}_i} \exp(m_k^\top x_i / \tau)} \qquad \text{(Eq. 8)}.$$
#
# CAP's intra-camera loss is Eq. 8 on its proxies: −log p^intra of the sample's own proxy
# (the proxy of its cluster in its camera). Within one camera the proxies differ by the
# person only. CAP's code reduces a batch **camera by camera**: the mean of the loss over the
# batch's images of each camera, then the **sum** over the cameras present in the batch.
#
# `embeddings` is a (B, D) torch tensor (L2-normalise its rows first), `proxies` a (P, D)
# tensor with unit rows, `proxy_camera` a (P,) integer tensor (each proxy's camera),
# `targets` a (B,) integer tensor (each sample's proxy, as a row index into `proxies`; always
# a proxy of the sample's own camera) and `camids` a (B,) integer tensor (each sample's
# camera). Return the loss as a torch scalar built from torch operations, so that autograd
# can differentiate it with respect to `embeddings`.
#
# Example: proxies (1, 0) and (0, 1) of camera 0, (0.6, 0.8) and (0.8, −0.6) of camera 1,
# τ = 0.1. The embedding (3, 4) of camera 0 with target 0 is normalised to (0.6, 0.8); its
# camera's logits are 6 and 8 (camera 1's proxies are left out) and its loss is
# log(1 + e²) ≈ 2.127. Add (0, 5) of camera 0 with target 1 (loss log(1 + e⁻¹⁰) ≈ 0.00005)
# and (4, −3) of camera 1 with target 2 (logits 0 and 10, loss log(1 + e¹⁰) ≈ 10.00005):
# the batch's loss is (2.127 + 0.00005) / 2 + 10.00005 ≈ 11.0635.

# %%
def intra_camera_loss(embeddings, proxies, proxy_camera, targets, camids, temperature):
    """Per camera of the batch the mean -log softmax over its own proxies, summed."""
    raise NotImplementedError("q2: write intra_camera_loss here")


# %%
grader.check("q2")

# %% [markdown]
# ## q3. The inter-camera loss
#
# Eq. 8 never brings a person's images from two cameras together: that is the job of the
# second, inter-camera term of survey Eq. 10. CAP's version: a sample's **positives** 𝒫 are
# the proxies of its cluster in *every* camera, its **negatives** 𝒬 the k proxies of other
# clusters that are most similar to it (*hard negatives*: with hundreds of clusters the far
# ones teach nothing and would swamp the denominator), and
#
# $$\mathcal{L}^\text{inter}_i = -\frac{1}{|\mathcal{P}|} \sum_{p \in \mathcal{P}}
# \log \frac{\exp(a_p^\top x_i / \tau)}{\sum_{u \in \mathcal{P} \cup \mathcal{Q}}
# \exp(a_u^\top x_i / \tau)},$$
#
# which pulls the sample towards its person's proxies in the other cameras too. A batch is
# reduced as in q2: the mean per camera, summed over the cameras of the batch.
#
# `embeddings` (B, D) (L2-normalise them), `proxies` (P, D) with unit rows, `proxy_cluster`
# a (P,) integer tensor (each proxy's cluster), `clusters` a (B,) integer tensor (each
# sample's cluster), `camids` (B,), `temperature`, and the int `k`. The negatives are chosen
# by similarity, the largest cosine first, and no gradient flows through the choice
# (`.detach()`); a sample with fewer than k negatives takes them all. Return a torch scalar.
#
# Example: proxies (1, 0), (0.6, 0.8), (0, 1), (0.8, −0.6), (−1, 0) of clusters 0, 0, 1, 2,
# 1, and one embedding (0.6, 0.8) of cluster 0 and camera 0, τ = 0.5. Its cosines are 0.6
# and 1 to its two positives, 0.8, 0 and −0.6 to the three negatives. With k = 1 only (0, 1)
# joins the softmax: the loss is log(e^1.2 + e^2 + e^1.6) − (1.2 + 2) / 2 ≈ 1.1513. With
# k = 2, (0.8, −0.6) joins too (logit 0) and the loss is ≈ 1.2131.

# %%
def inter_camera_loss(embeddings, proxies, proxy_cluster, clusters, camids, temperature, k):
    """Per camera of the batch the mean -1/|P| sum_p log softmax over P and k hard negatives."""
    raise NotImplementedError("q3: write inter_camera_loss here")


# %%
grader.check("q3")

# %% [markdown]
# ## Your proxies and your losses train a network
#
# CAP is q1-q3 plus plumbing. The class below is the library's `CAP` (clustering,
# proxy-balanced sampler, optimiser, schedule: `reidlib.training.fit`) with its three pieces
# replaced by yours: after the clustering, **your** `camera_proxies` fills the proxy memory
# (the library then moves each proxy towards its images after every step, as chapter 2's
# memory does), and the loss of each batch is **your** `intra_camera_loss` plus λ = 0.5 times
# **your** `inter_camera_loss` (CAP's weights; CAP's code switches the inter-camera term on at
# epoch 5, here both run from the first step). The cell trains the course's generic backbone
# for a short epoch with yours and, from the same start and seed, with the library's, and
# scores both on world A's test split (`session.score`: flip and per-camera normalisation, as
# every chapter). When your functions are right, the two runs are the same run: equal losses
# and equal mAP, up to the last digits (your sums may add the same numbers in another order).
# The short epoch tests the plumbing; do not read its mAP as a result: chapter 3 trains the
# camera-aware methods for longer.

# %%
from reidlib.camera.cap import CAP
from reidlib.data.synthetic import load_world
from reidlib.models import build_model
from reidlib.pseudo_labels import jaccard_dbscan
from reidlib.training import fit
from reidlib.training.features import autocast_for

profile = session.profile
world = load_world("A", profile.name)
train = world.train.subset(world.train.pids >= 0)  # junk crops have no identity to score
if profile.name == "full":  # CAP's Market-1501 clustering
    clustering = jaccard_dbscan(k1=20, k2=6, eps=0.5, min_samples=4)
else:  # the smaller worlds' setting of chapters 1 and 2
    clustering = jaccard_dbscan(k1=10, k2=6, eps=0.5, min_samples=4)
steps = {"smoke": 5, "quick": 40, "full": 200}[profile.name]


class YourCAP(CAP):
    """CAP whose proxies are your q1 and whose two losses are your q2 and q3."""

    def new_labels(self, features, labels, train):
        super().new_labels(features, labels, train)  # the library's memory, then yours in it
        memory, device = self.memory, self.memory.features.device
        proxies, clusters, cameras = camera_proxies(features.cpu(), labels, train.camids)
        clusters, cameras = torch.as_tensor(clusters).tolist(), torch.as_tensor(cameras).tolist()
        # the memory numbers the clusters 0..C-1 in sorted id order, and points each
        # clustered training image to the proxy of its (cluster, camera) pair
        ids = np.unique(labels[labels >= 0])
        proxy_of = {pair: p for p, pair in enumerate(zip(clusters, cameras, strict=True))}
        pairs = zip(labels.tolist(), train.camids.tolist(), strict=True)  # each row's pair
        rows = [proxy_of.get(pair, -1) for pair in pairs]
        memory.features = proxies.float().to(device)
        memory.proxy_cluster = torch.as_tensor(np.searchsorted(ids, clusters), device=device)
        memory.proxy_camera = torch.as_tensor(cameras, device=device)
        memory.labels = torch.as_tensor(rows, device=device)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        embeddings, rows, memory = out.embeddings.float(), batch.indices, self.memory
        intra = intra_camera_loss(embeddings, memory.proxies, memory.proxy_camera,
                                  memory.labels[rows], batch.camids, memory.temperature)
        inter = inter_camera_loss(embeddings, memory.proxies, memory.proxy_cluster,
                                  memory.row_cluster[rows], batch.camids, memory.temperature,
                                  memory.k)
        self._last = (out.embeddings.detach(), rows)  # the library's proxy update reads it
        return intra + self.inter_weight * inter, {"intra": intra, "inter": inter}


def short_run(method_class):
    """A fresh generic backbone, one short epoch of method_class, the test scores after."""
    torch.manual_seed(session.seed)
    model = build_model(profile.arch, weights="synthetic").to(session.device)
    method = method_class(model, inter_epoch=0)  # both losses from the first step
    history = fit(method, train, cluster=clustering, epochs=1, iters=steps, p=profile.p,
                  k=profile.k, lr=profile.lr, seed=session.seed, progress=False)
    return history[0].losses, session.score(method.model, world)


def described(scores, losses):
    return (f"mAP {scores['mAP']:.2%}, rank-1 {scores['rank1']:.2%}, mean intra loss "
            f"{losses['intra']:.4f}, inter {losses['inter']:.4f}")


start = session.score(build_model(profile.arch, weights="synthetic").to(session.device), world)
library_losses, library_after = short_run(CAP)
agree = False
print(f"{steps} steps of {profile.p} proxies x {profile.k} images on {len(train)} training "
      "images")
print(f"{'generic backbone, before':>26}: mAP {start['mAP']:.2%}, rank-1 {start['rank1']:.2%}")
print(f"{'library CAP':>26}: {described(library_after, library_losses)}")
try:
    your_losses, your_after = short_run(YourCAP)
    print(f"{'your q1 + q2 + q3':>26}: {described(your_after, your_losses)}")
    agree = all(abs(your_losses[key] - library_losses[key]) <= 1e-4 * abs(library_losses[key])
                for key in ("intra", "inter"))  # relative: 40 steps amplify rounding
    agree = agree and abs(your_after["mAP"] - library_after["mAP"]) < 1e-3
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q1, q2 and q3 (grader.check passes), then run this cell again.")
session.record(plug_back_agrees=bool(agree))
print("your functions reproduce the library:", bool(agree))

# %% [markdown]
# ## q4. Per-camera BatchNorm statistics
#
# A BatchNorm layer normalises each channel with a mean and a variance, kept during training
# as a running average over *all* images. Each camera shifts those statistics its own way (a
# bluish camera raises the blue channel's mean, a dark one lowers every mean), so one set of
# statistics for all cameras leaves a camera signature in every layer. Camera-based BN
# (Zhuang et al., ECCV 2020; survey §3.3) keeps **one set of statistics per camera**. At
# test time it re-estimates each camera's set from that camera's images, without any label:
# reset the statistics (mean 0, variance 1: `layer.reset_running_stats()`), set the layer's
# `momentum = None` (PyTorch then keeps the *cumulative* average over the batches instead of
# an exponential one), forward the camera's images in training mode, read the statistics.
#
# Write that for one layer. `model` is a torch model, `name` the name of one of its
# `nn.BatchNorm1d` / `nn.BatchNorm2d` layers (`dict(model.named_modules())[name]`), `images`
# a float tensor of inputs ready for the model (its first dimension indexes the images),
# `camids` their camera ids (a list, numpy array or tensor) and `batch_size` an int. Each
# camera's images are forwarded in the order given, in consecutive batches of `batch_size`;
# **only full batches** count (a smaller last one is dropped), except that a camera with
# fewer than `batch_size` images is forwarded as one batch of all of them. Return a dict from
# each camera id (a Python int) to the tuple `(running_mean, running_var)` of the layer after
# that camera's batches. Work on a copy of the model (`copy.deepcopy`): a forward pass in
# training mode changes the statistics of *every* BatchNorm layer, and the model you are
# given must come back unchanged. No gradients are needed (`torch.no_grad()`).
#
# Example: the one-layer model `nn.Sequential(nn.BatchNorm1d(1))` (its layer is called
# "0"), inputs 1, 3 of camera 0 and 2, 4, 6, 8 of camera 1 (a (6, 1) tensor), batch size 2.
# Camera 0: one batch, mean 2 and variance 2 (BatchNorm keeps the *unbiased* variance).
# Camera 1: batches (2, 4) and (6, 8) with means 3 and 7 and variances 2 and 2, so its
# statistics are (5, 2), not the mean and variance of all four inputs (5, 6.67). With batch
# size 3, camera 0 is one batch of two (2, 2) and camera 1 one full batch (2, 4, 6): (4, 4).

# %%
def camera_bn_statistics(model, name, images, camids, batch_size):
    """{camera: (running_mean, running_var)} of layer `name`, re-estimated per camera."""
    raise NotImplementedError("q4: write camera_bn_statistics here")


# %%
grader.check("q4")

# %% [markdown]
# ## q5. IICS's cross-camera similarity
#
# Intra- then inter-camera association (UGA, Wu et al., ICCV 2019; IICS, Xuan & Zhang, CVPR
# 2021; survey §3.3) first clusters each camera's images on their own, where no cross-camera
# pair can be wrong, and trains one classifier per camera on those per-camera identities.
# Every image then gets a score vector s_i: each camera's classifier's softmax, concatenated
# over the cameras. Two images of one person get similar predictions from camera c's
# classifier whichever camera took them, so the scores bridge the gap the features leave
# between cameras. IICS compares two score vectors by their Jaccard similarity and subtracts
# it from the cosine distance of **cross-camera pairs only**:
#
# $$J(s_i, s_j) = \frac{\sum_k \min(s_{ik}, s_{jk})}{\sum_k \max(s_{ik}, s_{jk})}, \qquad
# d_{ij} = 1 - \cos(f_i, f_j) - \mu\, [c_i \ne c_j]\, J(s_i, s_j).$$
#
# `features` is an (N, D) tensor (rows of any length), `scores` an (N, C) tensor of
# non-negative scores, `camids` the N camera ids (a list, numpy array or tensor) and `mix`
# the weight μ ≥ 0. Return the (N, N) tensor d. (The library then computes the k-reciprocal
# Jaccard distance of chapter 1 from d and clusters on it:
# `reidlib.camera.association.inter_camera_labels`.)
#
# Example: features (1, 0), (3, 4), (0, 1) of cameras 0, 1, 0 with scores (0.5, 0.5, 0),
# (0.5, 0.3, 0.2), (0, 0.2, 0.8), μ = 0.5. d₀₁ = 1 − 0.6 − 0.5 · 0.8 / 1.2 ≈ 0.0667,
# d₁₂ = 1 − 0.8 − 0.5 · 0.4 / 1.6 = 0.075, d₀₂ = 1 − 0 = 1 (one camera: no score term),
# and 0 on the diagonal.

# %%
def iics_distance(features, scores, camids, mix):
    """(N, N): 1 - cos(f_i, f_j) - mix * [cam_i != cam_j] * Jaccard(s_i, s_j)."""
    raise NotImplementedError("q5: write iics_distance here")


# %%
grader.check("q5")

# %% [markdown]
# ## Open question: how much of the camera gap sits in BatchNorm?
#
# q4 re-estimates BatchNorm statistics per camera. Measure what that does **without any
# training**, on the generic backbone of the plug-back cell (`build_model(profile.arch,
# weights="synthetic")`; the functions below are in `reidlib.camera.camera_bn` and
# `reidlib.training.loop`):
#
# 1. score it on world A's test split four ways: as it is (`session.score(model, world,
#    camera_norm=False)`); with per-camera normalisation of the final features
#    (`session.score(model, world)`, what every chapter reports); with camera-based BN
#    (`convert_camera_bn(model, 6)` for world A's six cameras, then
#    `evaluate_camera_bn(model, world.query, world.gallery)`: query and gallery each
#    re-estimate their cameras' statistics from their own images); and with both
#    (`evaluate_camera_bn(..., camera_norm=True)`);
# 2. re-estimate from only n images per camera, n = 4, 16, 64 and all
#    (`reestimate_camera_bn(model, split, max_images=n)` for the query and the gallery split,
#    then `extract_camera_features(model, split)` and `score_features(qf, gf, world.query,
#    world.gallery)`), and plot the mAP against n;
# 3. answer in three sentences: how many points does each correction give, and do the two
#    add up or overlap (what does each one remove)? How many images does a camera need, and
#    what does that mean for a camera installed after training?

# %% [markdown]
# ## Where you stand
#
# All five checks at once. The course's library does the same work at scale:
# `reidlib.camera.cap` holds CAP (`camera_proxies`, `intra_camera_loss`, `inter_camera_loss`,
# the `CameraProxyMemory` and the proxy-balanced sampler), `reidlib.camera.camera_bn` turns
# every BatchNorm of a model into a camera-aware one (`convert_camera_bn`,
# `reestimate_camera_bn`, `CameraBNContrast`), `reidlib.camera.association` is IICS
# (`inter_camera_distance`, `inter_camera_labels`) and `reidlib.camera.memory` the
# neighbourhood version of Eq. 8-10 on an exemplar memory (`camera_neighbourhood_loss`).

# %%
questions = ["q1", "q2", "q3", "q4", "q5"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
