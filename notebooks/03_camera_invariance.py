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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/notebooks/03_camera_invariance.ipynb)
#
# # Chapter 3 — Camera-invariant features
#
# **Learning goals.** After this chapter you can
# 1. measure how much of a feature is the *camera* rather than the person: same-camera
#    nearest neighbours, clusters that hold one camera only, per-camera feature statistics
#    (survey §3.3, challenge 3);
# 2. remove camera statistics without learning (SCCT's colour transform of the images,
#    per-camera centring of the features) and with a network that keeps one set of
#    BatchNorm statistics per camera (camera-based BN);
# 3. write the camera-aware look-up-table losses: the intra- and inter-camera softmaxes of
#    survey Eq. 8-10, CAP's camera-aware proxies, ICE's hard instance contrast, IICS's
#    intra-then-inter-camera association and MetaCam's look-ahead across cameras;
# 4. check each against `reidlib` on a real batch, train it with the one loop from the
#    same start as chapter 2, and read the results against Cluster Contrast and the
#    supervised upper bound, over seeds and as the world's camera bias grows.
#
# **Recap.** Chapter 2 trained every method on pseudo-labels from one clustering. Its
# results stall well below the supervised model (Cluster Contrast at about 62% of it), and
# one reason is in its clusters: about one in five holds the images of one camera only, as
# this chapter measures. A camera adds its light, colour cast, background and viewpoint to
# every image it takes, so two strangers seen by one camera can look closer than one person
# seen by two. This chapter measures that bias and builds the survey's remedies for it.
#
# **On a real dataset.** With `REID_DATASET=market1501:PATH` (or another layout of
# `data/README.md`) the chapter runs on that dataset in place of world A: the diagnosis and
# every method need only images and camera ids (identities only score). Skipped there, each
# with a sentence saying so: the recorded seeds and longer runs (they are the synthetic
# world's) and the camera-bias dial (it renders the synthetic world). The numbers are those
# of that dataset at the profile's image size, not comparable with the synthetic world's or
# with the prose, which quotes the synthetic world.

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

session = setup("03")

# %%
import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.testing import assert_close

from reidlib.camera.association import (
    IICS,
    camera_dbscan,
    inter_camera_distance,
    inter_camera_labels,
    intra_camera_labels,
    score_jaccard,
)
from reidlib.camera.camera_bn import CameraBatchNorm, CameraBNContrast, cameras
from reidlib.camera.cap import CAP, CameraProxyMemory
from reidlib.camera.compare import (
    camera_bn_features,
    camera_bn_score,
    centred_clustering,
)
from reidlib.camera.diagnosis import (
    camera_bias_report,
    same_camera_neighbour_share,
    single_camera_cluster_share,
)
from reidlib.camera.ice import ICE, hard_instance_loss
from reidlib.camera.memory import CameraExemplarMemory
from reidlib.camera.metacam import MetaCam, look_ahead
from reidlib.camera.normalisation import (
    camera_colour_stats,
    normalise_camera_colours,
    per_camera_normalise,
)
from reidlib.data.augment import eval_transform
from reidlib.data.sampler import iteration_batches
from reidlib.data.synthetic import camera_colour_gap, load_world
from reidlib.feature_learning import ClusterContrast, results_table, train_and_score
from reidlib.feature_learning.compare import TABLE_FORMAT, chapter_settings
from reidlib.models import build_model
from reidlib.notebook import find_repo_root
from reidlib.profiles import get_profile
from reidlib.pseudo_labels.labels import contiguous
from reidlib.pseudo_labels.quality import label_quality
from reidlib.training.features import extract_features
from reidlib.viz import EmbeddingExplorer
from reidlib.viz.explorer import widgets_wanted
from reidlib.viz.replay import save_replay

profile = session.profile

# %% [markdown]
# ## 1. The world, the start, the target and chapter 2's settings
#
# Everything is held fixed as in chapter 2: world A's training images without their
# identities, the generic backbone pretrained on world P as the start, chapter 0's
# supervised model as the upper bound, the one test scorer `session.score` (flip averaging
# and per-camera feature normalisation: the scorer already centres each camera's test
# features, for every method), and chapter 2's clustering and budget.
# `chapter_settings` is chapter 2's section 1 in one function: Jaccard + DBSCAN with k1
# and eps chosen on the validation split, and the same short budget (3 epochs in the quick
# profile; each paper's published recipe in the full profile).

# %%
world = session.world("A")
settings, train, cluster = chapter_settings(profile, world, seed=session.seed)
camids = train.camids


def generic_backbone():
    """The shared start: the backbone pretrained on world P's attributes."""
    return build_model(profile.arch, weights="synthetic").to(session.device)


def score(model):
    return session.score(model, world)


upper_model = session.upper_bound(world)
upper, start = score(upper_model), score(generic_backbone().eval())
start_features = extract_features(generic_backbone().eval(), train, flip=False, progress=False)
start_labels = contiguous(cluster(start_features.numpy()))[0]
print(f"{len(train)} training images from {len(np.unique(camids))} cameras; test mAP: "
      f"generic start {start['mAP']:.1%}, supervised upper bound {upper['mAP']:.1%}")
print(", ".join(f"{key} = {value}" for key, value in settings.items()))


def budget(method):
    """fit() arguments: the paper's recipe in the full profile, else chapter 2's budget."""
    if profile.name == "full":
        return dict(method.recipe)
    return {"epochs": settings["epochs"], "p": settings["p"], "k": settings["k"],
            "lr": settings["lr"],
            "iters": settings["iters"] if method.sampler == "multi_gallery" else None}


# %% [markdown]
# ## 2. Diagnosis: how much of a feature is the camera?
#
# Three measurements, none of which needs an identity label:
#
# - **neighbours**: how many of an image's 10 nearest neighbours come from its own camera,
#   against the share a camera-blind feature would give (each camera's share of the other
#   images). A person's images in one camera are a tracklet of near-duplicates (3 per
#   camera on average here), so the single nearest neighbour is almost always one of
#   them: we look at 10;
# - **clusters**: among the clusters of two or more images, the share that hold one camera
#   only. Such a cluster teaches the network nothing about matching across cameras, which
#   is the whole task;
# - **statistics**: how far apart the cameras' mean features lie, in units of the spread
#   of the features within a camera.
#
# We write the first two in plain torch / numpy and check them against `reidlib`.

# %%
def same_camera_share(features, camids, k=10):
    """Share of the k nearest other images (Euclidean) that come from the image's camera."""
    d = torch.cdist(features, features)
    d.fill_diagonal_(float("inf"))  # not itself
    cams = torch.as_tensor(camids)
    nearest = d.topk(k, dim=1, largest=False).indices
    return (cams[nearest] == cams[:, None]).double().mean().item()


def single_camera_share(labels, camids):
    """Among clusters of >= 2 images (-1 = outlier), the share from one camera only."""
    clusters = [camids[labels == c] for c in np.unique(labels[labels >= 0])]
    return np.mean([len(np.unique(c)) == 1 for c in clusters if len(c) >= 2])


share, chance = same_camera_neighbour_share(start_features, camids, k=10)
assert abs(same_camera_share(start_features, camids) - share) < 1e-12
assert single_camera_share(start_labels, camids) == single_camera_cluster_share(start_labels,
                                                                                  camids)
print("both equal reidlib's")

# %% [markdown]
# The same measurements for the generic start and for the supervised model (which was
# trained *with* identities across cameras): how much camera is left in a feature that
# was taught to ignore it? One more column uses the hidden identities, to explain, never to
# choose: how often an image's nearest *valid* match (itself and its own person in its own
# camera left out, as the test protocol does) is a stranger from its own camera.

# %%
upper_features = extract_features(upper_model, train, flip=False, progress=False)
diagnosis = {}
for name, features in [("generic backbone (start)", start_features),
                       ("supervised (upper bound)", upper_features)]:
    labels = cluster(features.numpy())
    report = camera_bias_report(features, camids, labels, train.pids, k=10)
    diagnosis[name] = {
        "same camera among 10 nearest": report["same_camera_share"],
        "chance": report["chance_share"],
        "nearest valid match: stranger, own camera": report["nearest_valid_same_camera"],
        "its chance": report["nearest_valid_chance"],
        "single-camera clusters": report["single_camera_clusters"],
        "camera separation": report["mean_separation"],
        "pairwise F": label_quality(labels, train.pids, camids)["pairwise_f"]}
diagnosis_table = pd.DataFrame(diagnosis).T
diagnosis_table.style.format({"camera separation": "{:.2f}", "pairwise F": "{:.3f}",
                              **{c: "{:.0%}" for c in diagnosis[name] if c not in (
                                  "camera separation", "pairwise F")}})

# %% [markdown]
# Read the first row: the start's 10 nearest neighbours come from the image's own camera
# more than twice as often as chance, its nearest valid match is a stranger from its own
# camera more often than chance, and the chapter's clustering of its features makes many
# one-camera clusters. The supervised model keeps a weaker preference among its 10
# nearest neighbours (a person's own tracklet fills several of them), but its nearest
# valid match is almost never a stranger from the same camera, and its clusters almost
# never hold one camera only.
# "Camera separation" is the distance between two cameras' mean features divided by the
# spread within a camera: a camera shifts every feature it produces by a fixed amount,
# which is what the remedies below remove.
#
# **Hidden camera use.** Chapter 2 kept the reference sampler of Cluster Contrast, SpCL
# and MMT: it fills a pseudo-identity's slots in a batch preferring images from *other
# cameras* than the anchor's. That is a quiet use of camera labels in methods reported as
# camera-free. On the chapter's start clustering: how many cameras does a pseudo-identity
# show in a batch, with and without that preference?

# %%
def cameras_per_identity(other_cameras):
    """Mean number of distinct cameras among a pseudo-identity's images in a batch of the
    reference sampler (the one ``ClusterContrast`` uses), with or without the preference."""
    batches = iteration_batches(start_labels, camids, settings["p"] * settings["k"],
                                settings["k"], settings["iters"], session.seed, 0,
                                other_cameras=other_cameras)
    counts = [len(np.unique(camids[rows[start_labels[rows] == c]]))
              for rows in batches for c in np.unique(start_labels[rows])]
    return np.mean(counts)


with_preference, without = cameras_per_identity(True), cameras_per_identity(False)
print(f"distinct cameras per pseudo-identity in a batch of {settings['k']}: "
      f"{with_preference:.2f} with the other-camera preference, {without:.2f} without")

# %% [markdown]
# `benchmarks/chapter3_runs.py` trains Cluster Contrast both ways over three seeds; section
# 10 shows what the preference is worth in mAP.
#
# ## 3. Removing camera statistics without learning
#
# **Images (SCCT).** Fit each camera's colour statistics over all its images, then map
# every camera onto a shared reference with one linear colour transform per camera. Per
# channel: $y = \frac{\sigma_{ref}}{\sigma_c}(x - \mu_c) + \mu_{ref}$, the reference being
# the average of the cameras. SCCT's second-order version also whitens the correlation
# between channels (`second_order=True`).

# %%
def colour_normalise(images, camids):
    """(N, H, W, 3) uint8 -> the same, each camera's channels mapped onto the average camera."""
    x = torch.as_tensor(images, dtype=torch.float64)
    cams = np.unique(camids)
    mean = torch.stack([x[camids == c].mean(dim=(0, 1, 2)) for c in cams])
    std = torch.stack([x[camids == c].std(dim=(0, 1, 2), correction=0) for c in cams])
    out = torch.empty_like(x)
    for i, c in enumerate(cams):
        rows = torch.as_tensor(camids == c)
        out[rows] = std.mean(0) / std[i] * (x[rows] - mean[i]) + mean.mean(0)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


sample = train.subset(np.flatnonzero(np.isin(train.pids, np.unique(train.pids)[:60])))
ours = colour_normalise(sample.images, sample.camids)
library = normalise_camera_colours(sample, camera_colour_stats(sample)).images
print(f"largest difference from reidlib's: {np.abs(ours.astype(int) - library).max()} grey "
      f"level (rounding)")
assert np.abs(ours.astype(int) - library).max() <= 1

# %%
colour_stats = camera_colour_stats(train)
normalised = normalise_camera_colours(train, colour_stats)
gaps = {"as rendered": camera_colour_gap(train), "SCCT, per channel": camera_colour_gap(
    normalised), "SCCT, second order": camera_colour_gap(
    normalise_camera_colours(train, camera_colour_stats(train, second_order=True)))}
person = np.unique(train.pids)[0]
shown = [np.flatnonzero((train.pids == person) & (camids == c))[0]
         for c in np.unique(camids[train.pids == person])]
fig, axes = plt.subplots(2, len(shown), figsize=(1.3 * len(shown), 4.6), squeeze=False)
for j, row in enumerate(shown):
    for i, (images, what) in enumerate([(train.images, "as rendered"),
                                        (normalised.images, "SCCT")]):
        axes[i, j].imshow(images[row])
        axes[i, j].set_title(f"{what}\ncamera {camids[row]}", fontsize=8)
        axes[i, j].axis("off")
fig.suptitle("One person in every camera that saw them, before and after SCCT", fontsize=10)
plt.show()
print("spread of the cameras' mean colour (grey levels): " +
      ", ".join(f"{k} {v:.1f}" for k, v in gaps.items()))

# %% [markdown]
# The colour transform removes each camera's colour cast, but not its light direction,
# background, blur or viewpoint: those are not a linear map of the pixel colours.
#
# **Features.** The same idea one level up: remove each camera's mean feature (and scale)
# before clustering. It needs only the camera of each image, never an identity. The course
# scorer already does this to the *test* features of every method; here we also do it to
# the *training* features before each clustering. This is the trick every camera-aware
# method below has to beat.

# %%
def centre_per_camera(features, camids):
    """Each camera's mean removed and each dimension divided by its std, then L2-normalised."""
    out = torch.empty_like(features)
    for c in np.unique(camids):
        rows = torch.as_tensor(camids == c)
        f = features[rows]
        out[rows] = (f - f.mean(0)) / (f.std(0, correction=0) + 1e-6)
    return F.normalize(out, dim=1)


assert_close(centre_per_camera(start_features, camids),
             per_camera_normalise(start_features, camids))
centred_labels = centred_clustering(cluster, camids)(start_features.numpy())
start_diagnosis = diagnosis["generic backbone (start)"]
print(f"single-camera clusters of the start: {start_diagnosis['single-camera clusters']:.0%} "
      f"as it is, "
      f"{single_camera_cluster_share(centred_labels, camids):.0%} after centring")

# %% [markdown]
# Now train. `train_and_score` is chapter 2's: the one loop from the shared start with the
# chapter's budget, scored by the one scorer, its final features clustered for the table.
# Cluster Contrast as published (with its camera-preferring sampler) is the baseline;
# the centred version clusters centred features each epoch and is otherwise identical.

# %%
shown_rows = np.flatnonzero(np.isin(train.pids, np.unique(train.pids)[:40]))  # 40 people
results = {}


def run(method, score=score, **extra):
    """Train ``method`` from the shared start with the chapter's budget; keep the result."""
    result = train_and_score(method, train, cluster=cluster, score=score, seed=session.seed,
                             snapshot_rows=shown_rows, **{**budget(method), **extra})
    results[result.name] = result
    print(f"{result.name}: test mAP {result.scores['mAP']:.1%}, single-camera clusters "
          f"{result.quality['single_camera_share']:.0%}, {result.seconds / 60:.1f} min")
    return result


cluster_contrast = run(ClusterContrast(generic_backbone()))
centred = ClusterContrast(generic_backbone())
centred.name = "Cluster Contrast, cameras centred"
_ = run(centred, clustering=centred_clustering(cluster, camids))

# %% [markdown]
# ## 4. Camera-based batch normalisation
#
# Centring removes a camera's mean from the *last* feature. Zhuang et al. remove it at
# *every* normalisation layer: each camera gets its own BatchNorm statistics. In training,
# each camera's images in a batch are normalised with their own batch mean and variance
# (the affine weights are shared); at test time, each camera's statistics are re-estimated
# from its own unlabelled images, so every camera, seen or new, is mapped onto the same
# zero-mean, unit-variance distribution. It needs no loss at all.
#
# The core, one BatchNorm layer on the real activations of a batch of world A's images
# from four cameras:

# %%
def camera_batch_norm(x, camids, weight, bias, eps=1e-5):
    """(B, C, H, W): each camera's rows normalised with that camera's batch statistics."""
    out = torch.empty_like(x)
    for c in np.unique(camids):
        rows = torch.as_tensor(camids == c)
        mean = x[rows].mean(dim=(0, 2, 3), keepdim=True)
        var = x[rows].var(dim=(0, 2, 3), keepdim=True, correction=0)
        out[rows] = (x[rows] - mean) / (var + eps).sqrt()
    return out * weight[None, :, None, None] + bias[None, :, None, None]


batch_rows = np.concatenate([np.flatnonzero(camids == c)[:16] for c in np.unique(camids)[:4]])
stem = generic_backbone().eval()
activations = {}
first_bn = next(m for m in stem.modules() if isinstance(m, nn.BatchNorm2d))
first_bn.register_forward_hook(lambda module, inputs, out: activations.update(x=inputs[0]))
with torch.no_grad():
    stem(eval_transform(torch.as_tensor(train.images[batch_rows]).permute(0, 3, 1, 2)))
x_bn = activations["x"]
layer = CameraBatchNorm(first_bn, num_cameras=int(camids.max()) + 1).train()
with cameras(layer, camids[batch_rows]):
    library_out = layer(x_bn)
assert_close(camera_batch_norm(x_bn, camids[batch_rows], first_bn.weight, first_bn.bias),
             library_out, atol=1e-4, rtol=1e-4)
print(f"per-camera batch norm of {tuple(x_bn.shape)} activations equals reidlib's")

# %% [markdown]
# What the first layer's statistics look like per camera: the mean activation of its
# first 16 channels in each camera, minus the mean over cameras. Each camera's colour cast
# and light show up as a row of its own; camera-based BN subtracts exactly these.

# %%
per_camera_mean = torch.stack([x_bn[torch.as_tensor(camids[batch_rows] == c)].mean(dim=(0, 2, 3))
                               for c in np.unique(camids[batch_rows])])[:, :16]
fig, ax = plt.subplots(figsize=(8, 2.4))
departure = (per_camera_mean - per_camera_mean.mean(0)).numpy()
limit = np.abs(departure).max()
image = ax.imshow(departure, cmap="RdBu_r", aspect="auto", vmin=-limit, vmax=limit)
ax.grid(False)
ax.set(xlabel="channel of the first BatchNorm layer", ylabel="camera",
       yticks=range(len(per_camera_mean)), yticklabels=np.unique(camids[batch_rows]),
       title="Each camera's mean activation, minus the mean over cameras (16 images each)")
fig.colorbar(image, ax=ax, fraction=0.03)
plt.show()

# %% [markdown]
# `CameraBNContrast` is Cluster Contrast with every BatchNorm converted (`convert_camera_bn`),
# each batch normalised per camera, and the training features re-estimated per camera
# before each clustering; its test step re-estimates each test camera's statistics
# (`camera_bn_score`) before the course scorer's flip and per-camera normalisation.

# %%
camera_bn = run(CameraBNContrast(generic_backbone(), train),
                score=lambda model: camera_bn_score(model, world), extract=camera_bn_features)

# %% [markdown]
# ## 5. Intra- and inter-camera softmaxes (survey Eq. 8-10)
#
# Chapter 2's look-up-table loss normalises a sample's similarity to an entry over *every*
# entry (Eq. 6). Within one camera, strangers can look more alike than one person across
# cameras, so the easy same-camera entries dominate that softmax. The survey's Eq. 8-10
# (Luo et al.'s camera-aware invariance learning) splits it by camera: for a sample $x_i$
# of camera $c$ and entries $m_k$,
#
# $$p_{intra}(j|x_i) = \frac{e^{m_j^\top x_i/\tau}}{\sum_{k \in O_{intra}}
# e^{m_k^\top x_i/\tau}}, \quad p_{inter}(t|x_i) = \frac{e^{m_t^\top x_i/\tau}}{\sum_{k \in
# O_{inter}} e^{m_k^\top x_i/\tau}},$$
# $$L = -\sum_j w_{ij} \log p_{intra}(j|x_i) - \sum_t w_{it} \log p_{inter}(t|x_i),$$
#
# with $O_{intra}$ the entries of camera $c$, $O_{inter}$ those of the other cameras. The
# weights follow Luo et al.'s code: weight 1 on the sample's own entry, and $1/n$ on each of
# the $n$ entries of a set whose cosine exceeds 0.8 times that of the set's nearest entry.
# We write it with one exemplar entry per image, on a real batch (16 pseudo-identities x 4
# images of the start clustering), and check it against `CameraExemplarMemory`.

# %%
rng = np.random.default_rng(session.seed)
big = [c for c in np.unique(start_labels[start_labels >= 0]) if (start_labels == c).sum() >= 4]
rows = np.concatenate([rng.choice(np.flatnonzero(start_labels == c), 4, replace=False)
                       for c in rng.choice(big, 16, replace=False)])
rows_t = torch.as_tensor(rows)
x = start_features[rows]  # (64, D) real features
y = torch.as_tensor(start_labels[rows])  # their pseudo-labels
cams_t = torch.as_tensor(camids)


def camera_split_loss(x, memory, rows, camids, tau=0.1, eps=0.8):
    """(intra, inter) of Eq. 10 for embeddings x of training rows ``rows``."""
    sims = F.normalize(x, dim=1) @ memory.T
    same = camids[rows][:, None] == camids[None, :]
    own = F.one_hot(rows, len(memory)).bool()
    terms = []
    for allowed, extra in [(same, own), (~same, torch.zeros_like(own))]:
        candidates = allowed & ~own
        nearest = sims.masked_fill(~candidates, -np.inf).max(dim=1, keepdim=True).values
        neighbours = candidates & (sims > eps * nearest)
        w = neighbours / neighbours.sum(1, keepdim=True).clamp(min=1) + extra.float()
        log_p = (sims / tau).masked_fill(~allowed, -np.inf).log_softmax(dim=1)
        terms.append(-(w * log_p.masked_fill(w == 0, 0)).sum(1).mean())
    return tuple(terms)


table_entries = F.normalize(start_features, dim=1)
exemplar_memory = CameraExemplarMemory(start_features, camids)
intra, inter = camera_split_loss(x, table_entries, rows_t, cams_t)
assert_close((intra, inter), exemplar_memory(x, rows_t))
print(f"Eq. 10 on the real batch: intra {intra:.3f}, inter {inter:.3f} (= reidlib's)")

# %% [markdown]
# The chapter trains this idea in its proxy form, which the methods below (CAP, ICE) use:
# the entries are per-camera class centres rather than one per image.
#
# ## 6. Camera-aware proxies (CAP)
#
# CAP splits every cluster into one **proxy per camera**: the mean of the cluster's images
# in that camera. Its **intra-camera loss** is Eq. 8 with proxies as entries: each sample
# against the proxies of its own camera only, where proxies differ by person, not by
# camera. Its **inter-camera loss** pulls a sample towards its cluster's proxies in *all*
# cameras, against the 50 proxies of other clusters most similar to it (hard negatives):
# $-\frac{1}{|P|}\sum_{p \in P} \log \frac{e^{A_p^\top x/\tau}}{\sum_{u \in P \cup Q}
# e^{A_u^\top x/\tau}}$.
# Both are averaged within each camera of the batch and summed over cameras (CAP's code);
# the total is intra + 0.5 inter, $\tau = 0.07$.

# %%
def camera_proxies(features, labels, camids):
    """(proxies, proxy_cluster, proxy_camera, row_proxy), proxies ordered by camera then
    cluster: the normalised mean of each (cluster, camera) pair's normalised features."""
    f = F.normalize(features, dim=1)
    kept = labels >= 0
    pairs = sorted(set(zip(camids[kept].tolist(), labels[kept].tolist(), strict=True)))
    row_proxy = torch.full((len(labels),), -1)
    for i, (c, label) in enumerate(pairs):
        row_proxy[(camids == c) & (labels == label)] = i
    proxies = torch.stack([F.normalize(f[row_proxy == i].mean(0), dim=0)
                           for i in range(len(pairs))])
    proxy_camera, proxy_cluster = torch.tensor(pairs).T
    return proxies, proxy_cluster, proxy_camera, row_proxy


def per_camera_mean_sum(values, camids):
    return sum(values[camids == c].mean() for c in camids.unique())


def cap_losses(x, proxies, proxy_cluster, proxy_camera, target, cluster_of, camids,
               tau=0.07, k=50):
    x = F.normalize(x, dim=1)
    logits = x @ proxies.T / tau
    own_camera = camids[:, None] == proxy_camera[None, :]
    intra = F.cross_entropy(logits.masked_fill(~own_camera, -np.inf), target, reduction="none")
    positive = cluster_of[:, None] == proxy_cluster[None, :]
    hard = logits.detach().masked_fill(positive, -np.inf).topk(k, dim=1).indices
    chosen = positive | torch.zeros_like(positive).scatter_(1, hard, True)
    inter = torch.logsumexp(logits.masked_fill(~chosen, -np.inf), 1) \
        - (logits * positive).sum(1) / positive.sum(1)
    return per_camera_mean_sum(intra, camids), per_camera_mean_sum(inter, camids)


proxies, proxy_cluster, proxy_camera, row_proxy = camera_proxies(
    start_features, torch.as_tensor(start_labels), cams_t)
proxy_memory = CameraProxyMemory(start_features, start_labels, camids)
assert_close(proxies, proxy_memory.proxies)
ours = cap_losses(x, proxies, proxy_cluster, proxy_camera, row_proxy[rows_t], y, cams_t[rows_t])
assert_close(ours, proxy_memory(x, rows_t))
print(f"{len(proxies)} proxies for {int(start_labels.max()) + 1} clusters; intra "
      f"{ours[0]:.3f}, inter {ours[1]:.3f} (= reidlib's)")

# %% [markdown]
# CAP draws its batches proxy by proxy (8 proxies x 4 images in the paper; here the
# chapter's 16 x 4), so a person seen briefly by one camera is drawn as often as a large
# proxy. Its code starts the inter-camera loss at epoch 5 of 50; a 3-epoch budget has no
# room for that warm-up, so it starts at once here (`inter_epoch=0`).

# %%
_ = run(CAP(generic_backbone(), **({"inter_epoch": 0} if profile.name != "full" else {})),
        iters=None)

# %% [markdown]
# ## 7. Instance contrast on top of camera-aware proxies (ICE)
#
# CAP's successors add terms around its proxies: O2CAP offline and online associations,
# PPLR part features, ICE two losses between the *instances* of a batch. We build ICE: one
# network and its mean teacher, and a few lines on top of CAP's pieces. Its **hard
# instance contrast** takes each student embedding against the teacher's embeddings of
# the batch's other view; the positive is the *least* similar teacher embedding of its own
# cluster (the hardest positive), the negatives every other cluster's, temperature 0.1.
# ICE adds CAP's inter-camera loss, a centroid loss and a soft consistency between views.

# %%
def hard_instance_contrast(query, keys, labels, tau=0.1):
    q, k = F.normalize(query, dim=1), F.normalize(keys, dim=1)
    sims = q @ k.T
    same = labels[:, None] == labels[None, :]
    hardest_positive = sims.masked_fill(~same, np.inf).min(dim=1).values
    negatives = (sims / tau).masked_fill(same, -np.inf)
    logits = torch.cat([hardest_positive[:, None] / tau, negatives], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


with torch.no_grad():  # the other view: the batch's images mirrored, through the start
    keys = stem(eval_transform(torch.as_tensor(train.images[rows]).permute(0, 3, 1, 2))
                .flip(-1))
assert_close(hard_instance_contrast(x, keys, y), hard_instance_loss(x, keys, y))
print(f"hard instance contrast on the real batch: {hard_instance_contrast(x, keys, y):.3f} "
      "(= reidlib's)")

# %%
_ = run(ICE(generic_backbone()), iters=None)

# %% [markdown]
# ## 8. Intra- then inter-camera association (IICS)
#
# Another road: never compare images across cameras by raw feature distance at first.
# IICS (and UGA before it) **cluster each camera on its own**, where no cross-camera pair
# can be wrong, and train **one classifier per camera** on those per-camera identities.
# Then every image is described by the probability vectors all cameras' classifiers give
# it: two images of one person get similar predictions from camera 3's classifier whether
# they were taken by camera 1 or camera 5. IICS measures that agreement with the Jaccard
# similarity of the probability vectors, $J(s_i, s_j) = \sum_k \min(s_{ik}, s_{jk}) /
# \sum_k \max(s_{ik}, s_{jk})$, and subtracts it from the cross-camera pairs' distance,
# $d_{ij} = 1 - \cos(f_i, f_j) - \mu [c_i \ne c_j] J(s_i, s_j)$, before clustering all
# images together.
#
# The association step alone, on the start's features: per-camera clusters, then a
# logistic-regression classifier per camera on those fixed features (scikit-learn, in
# place of IICS's trained heads), then the mixed distance for a few images, checked
# against the library.

# %%
feats_np = F.normalize(start_features, dim=1).numpy()
intra_labels = intra_camera_labels(feats_np, camids, camera_dbscan(eps=0.6, k1=20))
probabilities = []
for c in np.unique(camids):
    own = (camids == c) & (intra_labels >= 0)
    if len(np.unique(intra_labels[own])) < 2:  # nothing to tell apart in this camera
        continue
    classifier = LogisticRegression(max_iter=300).fit(feats_np[own], intra_labels[own])
    probabilities.append(classifier.predict_proba(feats_np))
scores = torch.as_tensor(np.concatenate(probabilities, axis=1), dtype=torch.float32)


def probability_jaccard(a, b):
    return torch.minimum(a[:, None], b[None]).sum(-1) / torch.maximum(a[:, None], b[None]).sum(-1)


few = torch.as_tensor(rows[:12])
assert_close(probability_jaccard(scores[few], scores[few]), score_jaccard(scores[few], scores[few]))
mu = 0.02  # IICS's weight of the score term (it decays over the rounds)
f_few = torch.as_tensor(feats_np)[few]
ours = 1 - f_few @ f_few.T - mu * torch.as_tensor(
    camids[rows[:12]][:, None] != camids[rows[:12]][None, :]) * probability_jaccard(
    scores[few], scores[few])
assert_close(ours, inter_camera_distance(f_few, scores[few], camids[rows[:12]], mix=mu))
print(f"{intra_labels.max() + 1} per-camera clusters; {scores.shape[1]} classifier outputs per "
      "image; Jaccard and mixed distance equal reidlib's")

# %%
associated = inter_camera_labels(feats_np, scores, camids, mix=mu, eps=settings["eps"],
                                  k1=settings["k1"])
rows_q = {"chapter's clustering of the start": start_labels,
          "per-camera clusters (stage 1)": intra_labels,
          "associated across cameras (stage 2)": associated}
pd.DataFrame({name: {"pairwise F": label_quality(lab, train.pids, camids)["pairwise_f"],
                     "single-camera clusters": single_camera_cluster_share(lab, camids),
                     "clusters": int(lab.max()) + 1}
              for name, lab in rows_q.items()}).T.style.format(
    {"pairwise F": "{:.3f}", "single-camera clusters": "{:.0%}"})

# %% [markdown]
# Stage 1 can only make one-camera clusters; stage 2 joins them across cameras, with fewer
# one-camera clusters than the chapter's clustering of the same features but a lower
# pairwise F: on the generic start's features the per-camera classifiers (here a logistic
# regression on fixed features, not IICS's trained heads) have little to say yet, and
# IICS's weight $\mu$ on their agreement is small. IICS gets its effect from training the
# backbone through many rounds of both stages.
#
# Training alternates the stages, one per clustering (intra first): in 3 epochs, intra,
# inter, intra. IICS's recipe runs 40 rounds of each.

# %%
iics = IICS(generic_backbone(), train, rounds=settings["epochs"] or 40, seed=session.seed)
_ = run(iics, clustering=iics.cluster, iters=None)

# %% [markdown]
# IICS ends far below its start. Its last epoch trained one classifier per camera on
# per-camera clusters: that teaches the network to tell apart the people *within* each
# camera, and nothing across cameras. Its recipe alternates the two stages for 40 rounds;
# 3 epochs end on the intra-camera stage. We keep the published alternation rather than
# reorder it to suit our budget, and read this row as "IICS cut short", not as IICS.
#
# ## 9. Meta-learning across cameras (MetaCam)
#
# MetaCam asks that what is learnt on some cameras also works on the others. Each epoch it
# splits the cameras into two groups; each step takes a batch from the *meta-train*
# cameras, computes its loss $L_{tr}(\theta)$, takes one look-ahead SGD step
# $\theta' = \theta - \alpha \nabla L_{tr}(\theta)$ without changing the model, and
# evaluates a batch of the *meta-test* cameras at $\theta'$. It minimises
# $L_{tr}(\theta) + L_{te}(\theta')$: the gradient of the second term flows through
# $\theta'$ into $\nabla L_{tr}$ (a second-order gradient), so it rewards steps that also
# help cameras the step did not see. The core is the look-ahead:

# %%
model = generic_backbone().train()
params = {n: p for n, p in model.named_parameters() if p.requires_grad}  # BNNeck's shift is not
out = model(eval_transform(torch.as_tensor(train.images[rows[:32]]).permute(0, 3, 1, 2)))
loss = (out.embeddings ** 2).mean()  # any differentiable loss of the meta-train batch
grads = torch.autograd.grad(loss, list(params.values()), create_graph=True,  # differentiable
                            retain_graph=True, allow_unused=True)  # the classifier is unused
ours = {n: p if g is None else p - 0.1 * g for (n, p), g in zip(params.items(), grads,
                                                                 strict=True)}
library = look_ahead(model, loss, lr=0.1)
assert all(torch.equal(ours[n], library[n]) for n in ours)
assert library[next(iter(library))].requires_grad  # still connected to theta
print(f"look-ahead over {len(ours)} parameter tensors equals reidlib's")

# %%
_ = run(MetaCam(generic_backbone(), inner_lr=settings["lr"]))

# %% [markdown]
# ## 10. Results
#
# Every method from the same start, with chapter 2's budget, clustering and seed; test
# mAP, rank-1 and mINP from the one scorer; the pairwise F and the **single-camera
# cluster share** of the chapter's clustering of each method's final training features;
# the training time; and the share of the supervised upper bound.

# %%
references = {"generic backbone (start)": start, "supervised (upper bound)": upper}
table = results_table(results.values(), references, upper="supervised (upper bound)")
table.insert(4, "single-camera clusters", pd.Series(
    {name: r.quality["single_camera_share"] for name, r in results.items()}))
table.style.format({**TABLE_FORMAT, "single-camera clusters": "{:.0%}"}, na_rep="")

# %% [markdown]
# **Seeds.** `benchmarks/chapter3_runs.py` reruns the chapter's baseline, the centring
# trick and camera-based BN (the best camera-aware method in our calibration,
# `benchmarks/results/ch3-calibration-quick.json`) with these settings for seeds 0, 1 and
# 2, and Cluster Contrast without its camera-preferring sampler. The cell reads them and
# checks the targets: the best camera-aware method at 90% of the upper bound and 5
# points over Cluster Contrast in every seed, and fewer than 10% single-camera clusters.

# %%
runs_path = find_repo_root() / "benchmarks" / "results" / f"ch3-runs-{profile.name}.json"
all_runs = json.loads(runs_path.read_text())["runs"] if runs_path.exists() else []
if session.on_real_data:  # the runs were recorded on the synthetic world
    print(f"{runs_path.name} holds the synthetic world's runs: not shown on a real dataset")
    all_runs = []
# the dial's worlds choose their own k1 and eps on their validation split: all else is ours
budget_keys = [key for key in settings if key not in ("k1", "eps")]
recorded = pd.DataFrame([r for r in all_runs if all(r["settings"][key] == settings[key]
                                                    for key in budget_keys)])
here = recorded[(recorded["style"] == 1.0) & (recorded["settings"].map(
    lambda s: s == settings))] if len(recorded) else recorded
seeds = (here.pivot(index="seed", columns="method", values="mAP") if len(here)
         else pd.DataFrame())
if len(seeds) < 2:
    print(f"No spread over seeds is recorded for these settings in {runs_path.name}: run "
          "benchmarks/chapter3_runs.py (its docstring has the commands).")
else:
    display(seeds.style.format("{:.1%}").set_caption("test mAP per seed (recorded)"))
    gap = seeds["camera BN"] - seeds["Cluster Contrast"]
    share = here[here["method"] == "camera BN"]
    print(f"camera BN - Cluster Contrast: {gap.mean():+.1%} on average over seeds "
          f"{list(seeds.index)}, lowest {gap.min():+.1%}; target +5 points in every seed: "
          f"{'reached' if gap.min() >= 0.05 else 'not reached'}")
    print(f"camera BN's share of the upper bound: "
          f"{(seeds['camera BN'] / upper['mAP']).mean():.0%} (target 90%); its single-camera "
          f"clusters {share['single_camera_share'].mean():.0%} (target below 10%)")
    if "Cluster Contrast, camera-free sampler" in seeds:
        hidden = seeds["Cluster Contrast"] - seeds["Cluster Contrast, camera-free sampler"]
        print(f"the camera-preferring sampler is worth {hidden.mean():+.1%} mAP to Cluster "
              f"Contrast (lowest {hidden.min():+.1%}, highest {hidden.max():+.1%})")

# %% [markdown]
# **A longer budget.** The issue that set these targets calibrated them with 12 epochs, not
# 3. `benchmarks/chapter3_runs.py --epochs 12` reruns Cluster Contrast and camera-based BN
# with everything else as here (12 epochs fixed in advance, not chosen on the test split).

# %%
longer = pd.DataFrame([r for r in all_runs if r["style"] == 1.0 and settings["epochs"]
                       and r["settings"]["epochs"] > settings["epochs"]
                       and all(r["settings"][key] == value for key, value in settings.items()
                               if key != "epochs")])
if len(longer) == 0:
    print(f"No longer-budget runs recorded for these settings in {runs_path.name}.")
else:
    long_map = longer.pivot(index="seed", columns="method", values="mAP")
    long_share = longer.pivot(index="seed", columns="method", values="single_camera_share")
    summary = pd.concat({"test mAP": long_map, "of upper bound": long_map / upper["mAP"],
                         "one-camera clusters": long_share}, axis=1)
    display(summary.style.format("{:.1%}").set_caption(
        f"{int(longer['settings'].iloc[0]['epochs'])} epochs (recorded)"))
    if {"camera BN", "Cluster Contrast"} <= set(long_map):
        long_gap = (long_map["camera BN"] - long_map["Cluster Contrast"]).dropna()
        print(f"camera BN - Cluster Contrast: {long_gap.mean():+.1%} on average over seeds "
              f"{list(long_gap.index)}, lowest {long_gap.min():+.1%}")

# %% [markdown]
# **What the targets say.** The course set camera-aware methods three targets on this
# world: beat Cluster Contrast by 5 points in every seed, reach 90% of the upper bound, and
# leave fewer than 10% one-camera clusters. After chapter 2's 3 epochs, camera-based BN
# reaches the first in each recorded seed, but not the other two: it ends near three
# quarters of the upper bound, with about one cluster in eight still single-camera. With
# the 12 epochs of the longer runs it reaches all three in each recorded seed: 90-92%
# of the upper bound, 5 to 8 points ahead of Cluster Contrast trained as long, and
# about 8% one-camera clusters. Chapter 2's validation curves already showed every method
# still climbing after 3 epochs: the short budget is a laptop's, and it is what holds the
# 3-epoch numbers back. We report both rather than tune the world or the test split.
#
# **Where the camera went.** The explorer shows the final training features of 40 people
# after Cluster Contrast and after camera-based BN, coloured by camera (the panel titles
# quote the clustering of all training images). Look for groups of one colour: a person
# seen by several cameras whose images did not meet. On 40 people both methods join most
# people across cameras; the whole training set's single-camera share in the table is
# where they differ. Run live, colour by identity or by pseudo-label to see who is grouped
# with whom.

# %%
def titled(result):
    return dataclasses.replace(result.final, title=f"{result.name} (after training)")


explorer = EmbeddingExplorer([titled(cluster_contrast), titled(camera_bn)],
                             images=train.subset(shown_rows),
                             method="pca" if profile.name == "smoke" else "umap",
                             seed=session.seed)
explorer.show(colour_by="camid")

# %% [markdown]
# ## 11. The camera-bias dial
#
# The synthetic world can be rendered with more or less camera style:
# `load_world("A", camera_style=s)` multiplies every camera's departure from the shared
# style (colour cast, light, background, blur) by $s$; $s = 0$ leaves only viewpoint and
# placement, $s = 1$ is the world of every chapter. `benchmarks/chapter3_runs.py` trained
# Cluster Contrast and camera-based BN on world A at four settings of the dial, with the
# chapter's protocol (each world's k1 and eps chosen on its own validation split). The
# figure reads those recorded runs.

# %%
dial = recorded[recorded["seed"] == 0] if len(recorded) else pd.DataFrame()
dial_methods = ["Cluster Contrast", "camera BN"]
if len(dial) == 0 or dial["style"].nunique() < 2:
    print(f"No dial runs recorded for these settings in {runs_path.name}.")
else:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name in dial_methods:
        line = dial[dial["method"] == name].sort_values("style")
        axes[0].plot(line["style"], line["mAP"], marker="o", label=name)
        axes[1].plot(line["style"], line["single_camera_share"], marker="o", label=name)
    axes[0].axhline(upper["mAP"], color="grey", ls=":", lw=1,
                    label="supervised upper bound (s = 1)")
    axes[0].set(xlabel="camera style s", ylabel="test mAP", title="mAP as camera bias grows")
    axes[1].axhline(0.10, color="grey", ls=":", lw=1, label="target: 10%")
    axes[1].set(xlabel="camera style s", ylabel="share of clusters",
                title="Clusters that hold one camera only")
    for ax in axes:
        ax.legend(fontsize=8)
    plt.show()
    display(dial.pivot(index="style", columns="method", values=["mAP", "single_camera_share"])
            .style.format("{:.1%}"))

# %% [markdown]
# Read the recorded dial (seed 0). With no camera style (s = 0) the two methods are within
# about 2 points, Cluster Contrast slightly ahead: with nothing to remove, per-camera
# statistics only cost a little (they also remove what the people one camera happens to
# see have in common). As s grows, Cluster Contrast loses about 29 points between s = 0 and
# s = 2 and its one-camera clusters rise from 12% to about half; camera-based BN loses
# about 15 points and its share stays between 12% and 18%. Even at s = 0 about one cluster
# in eight holds one camera: viewpoint and placement alone keep some people's images apart.

# %% [markdown]
# **Turn the dial live.** `dial_run(s, method)` renders a *smoke-size* world A at camera
# style s (seconds) and trains one method for one epoch, so an instructor can try a value
# in class; the recorded runs above are the quick-profile answer. Run live, the slider
# calls it.

# %%
def dial_run(style, method="camera BN"):
    small = load_world("A", "smoke", camera_style=style)
    small_settings, small_train, small_cluster = chapter_settings(get_profile("smoke"), small)
    net = build_model(get_profile("smoke").arch, weights="synthetic").to(session.device)
    if method == "camera BN":
        chosen, extra = CameraBNContrast(net, small_train), {"extract": camera_bn_features}
        scorer = lambda m: camera_bn_score(m, small)  # noqa: E731
    else:
        chosen, extra = ClusterContrast(net), {}
        scorer = lambda m: session.score(m, small)  # noqa: E731
    result = train_and_score(chosen, small_train, cluster=small_cluster, score=scorer,
                             seed=session.seed, progress=False, epochs=1,
                             p=small_settings["p"], k=small_settings["k"],
                             lr=small_settings["lr"], **extra)
    return {"style": style, "method": method, "mAP": result.scores["mAP"],
            "single-camera clusters": result.quality["single_camera_share"]}


if session.on_real_data:
    print("skipped on a real dataset: the dial renders the synthetic world, whose camera "
          "style a real camera network does not have")
else:
    run = dial_run(2.0)
    print(f"camera style {run['style']}: {run['method']}, mAP {run['mAP']:.1%}, "
          f"{run['single-camera clusters']:.0%} of the final clusters in one camera")

# %%
if widgets_wanted():  # a live kernel with a front end, not a static build
    import ipywidgets as widgets

    widgets.interact_manual(dial_run, style=widgets.FloatSlider(1.0, min=0, max=3, step=0.5),
                            method=["camera BN", "Cluster Contrast"])

# %%
best = table.drop(list(references))["mAP"].idxmax()
_ = session.record(
    upper_bound_mAP=upper["mAP"], generic_mAP=start["mAP"], k1=settings["k1"],
    eps=settings["eps"], epochs=settings["epochs"],
    cluster_contrast_mAP=results["Cluster Contrast"].scores["mAP"],
    best_method=best, best_mAP=table.loc[best, "mAP"],
    best_of_upper=table.loc[best, "mAP"] / upper["mAP"],
    methods=list(results), methods_mAP=[r.scores["mAP"] for r in results.values()],
    methods_single_camera=[r.quality["single_camera_share"] for r in results.values()],
    methods_minutes=[r.seconds / 60 for r in results.values()],
    start_same_camera_10nn=start_diagnosis["same camera among 10 nearest"],
    start_single_camera_clusters=start_diagnosis["single-camera clusters"],
    seeds_recorded=len(seeds) >= 2,
)

# %% [markdown]
# For the instructor's demo mode, every run is recorded on the explorer's 40 people, under
# "chapter 3, " and the method's name: `demo(replays, "chapter 3, Cluster Contrast +
# camera BN")` replays one without training, and `notebooks/90_instructor_demo` puts
# chapter 3's Cluster Contrast and camera-based BN side by side under one slider (colour
# by camera).

# %%
replays = session.replay_dir
saved = [save_replay(replays, f"chapter 3, {name}", result.history, train.subset(shown_rows),
                     after=result.final, seed=session.seed, layout=False).stem
         for name, result in results.items()]
print(f"{len(saved)} runs recorded in {replays}: {', '.join(saved)}")

# %% [markdown]
# ## Questions
# 1. Section 2's table: the supervised model was trained with identities across cameras,
#    yet its nearest neighbours still prefer the image's own camera more than chance. Why
#    can a feature that is good for retrieval still carry the camera?
# 2. SCCT's colour transform shrinks the spread of the cameras' mean colours (section 3).
#    Which parts of a camera's style can it not remove, and why does that matter more for
#    the synthetic world's dial above s = 1?
# 3. Camera-based BN re-estimates each test camera's statistics from that camera's
#    unlabelled images. What does this need from a deployment, and what happens for a
#    camera that has seen only a handful of people?
# 4. CAP splits a cluster into per-camera proxies. If the clustering is already
#    camera-pure (every cluster one camera), what do its intra- and inter-camera losses
#    become?
# 5. Read section 10's seeds: is the gap between camera-based BN and Cluster Contrast
#    larger than the spread over seeds? Which targets are reached after 3 epochs, which
#    after 12, and what does the 12-epoch Cluster Contrast tell you about where the gain
#    comes from?
#
# ## Summary
# - Camera bias is measurable without labels: same-camera nearest neighbours, one-camera
#   clusters and the distance between camera means. The generic start shows all three.
# - The cheapest remedies remove camera statistics: per camera colour transforms of the
#   images (SCCT), centring of the features, and, inside the network, per-camera
#   BatchNorm statistics. Camera-based BN is the strongest method of this chapter in our
#   runs, and needs no loss at all.
# - The camera-aware losses (Eq. 8-10, CAP, ICE), association through per-camera
#   classifiers (IICS) and meta-learning across cameras (MetaCam) are each a few lines on
#   top of chapter 2's look-up table; after chapter 2's short budget, read section 10 for
#   which of them beat Cluster Contrast here.
#
# ## References
# - The survey, §3.3 (camera-aware invariance learning, Eq. 8-10), Table 4.
# - Z. Zhuang et al., *Rethinking the Distribution Gap of Person Re-identification with
#   Camera-based Batch Normalization*, ECCV 2020.
# - C. Luo, C. Song, Z. Zhang, *Generalizing Person Re-Identification by Camera-Aware
#   Invariance Learning and Cross-Domain Mixup*, ECCV 2020.
# - W. Xiang et al., *Second-order Camera-aware Color Transformation for Cross-domain
#   Person Re-identification* (SCCT), ACCV 2020.
# - M. Wang et al., *Camera-aware Proxies for Unsupervised Person Re-Identification*
#   (CAP), AAAI 2021.
# - H. Chen, B. Lagadec, F. Bremond, *ICE: Inter-instance Contrastive Encoding for
#   Unsupervised Person Re-identification*, ICCV 2021.
# - S. Xuan, S. Zhang, *Intra-Inter Camera Similarity for Unsupervised Person
#   Re-Identification* (IICS), CVPR 2021.
# - F. Yang et al., *Joint Noise-Tolerant Learning and Meta Camera Shift Adaptation for
#   Unsupervised Person Re-Identification* (MetaCam), CVPR 2021.
