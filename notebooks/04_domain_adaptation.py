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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/notebooks/04_domain_adaptation.ipynb)
#
# # Chapter 4 — Unsupervised domain adaptation
#
# **Learning goals.** After this chapter you can
# 1. train a *source model* on a labelled world (survey Eq. 11), measure its **direct
#    transfer** to an unlabelled target world and name the **domain gap** (survey §3.4,
#    challenge 4);
# 2. write the survey's three families of remedies and check each against `reidlib`:
#    - *mid-level feature alignment* (§3.4.1): domain-specific batch normalisation, the
#      maximum mean discrepancy between source and target features, alignment in an
#      attribute space (MMFA / TJ-AIDL);
#    - *image style transfer* (§3.4.2): a colour transfer and AdaIN, a small CycleGAN-style
#      translator with SPGAN's identity-preserving term, and camera-style augmentation
#      (CamStyle / HHL);
#    - *clustering-based adaptation* (§3.4.3, Eq. 12): chapter 2-3's methods started from
#      the source model, SSG's global + part clusters, MMT's two source networks, SpCL's
#      hybrid memory with the source classes in it, and cross-domain mixup;
# 3. read how much of the gap each recovers, over seeds, in both directions, and as the
#    gap between the worlds grows (a domain-gap dial).
#
# **Recap.** Chapters 2-3 learned from nothing but the target's own images, starting from a
# generic backbone. Here a second world with labels is available: world B (winter, eight
# cameras, cold light, darker clothes, people closer to the camera) is labelled; world A
# (summer, six cameras) is not. Knowing B's identities teaches what makes a person a
# person, but B's model also learns B's palette, light and cameras, and part of that does
# not carry over to A.
#
# **On a real dataset.** With `REID_DATASET=market1501:PATH` (or another layout of
# `data/README.md`) the target, world A, is that dataset, and the source stays world B:
# synthetic-to-real adaptation, where "A" in the tables below names the dataset. Both are
# read at the profile's image size, B's attribute labels are the source's (the target's are
# never used), and the B-to-A translator is trained for that dataset (its own cache file).
# Skipped there, with a sentence saying so: the recorded seeds and the domain-gap dial
# (they are the synthetic worlds' runs). The numbers are those of that dataset, not
# comparable with the synthetic world's or with the prose, which quotes the synthetic
# worlds.

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

session = setup("04")

# %%
import copy
import dataclasses
import json
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.patches import Patch
from torch import nn
from torch.testing import assert_close

from reidlib.data.augment import eval_transform
from reidlib.domain_adaptation.align import (
    MMFA,
    CrossDomainMixup,
    estimate_domain_bn,
    row_attributes,
)
from reidlib.domain_adaptation.alignment import default_bandwidths, mmd2
from reidlib.domain_adaptation.camstyle import CameraStyles, CamStyle, camera_styles, restyle
from reidlib.domain_adaptation.compare import gap_recovered, source_model
from reidlib.domain_adaptation.dsbn import convert_domain_bn, domains
from reidlib.domain_adaptation.mixup import cross_domain_mixup, mixup_loss
from reidlib.domain_adaptation.spcl_uda import (
    SOURCE,
    TARGET,
    SourceHybridMemory,
    SpCLUDA,
    source_target_set,
)
from reidlib.domain_adaptation.style import adain, colour_transfer
from reidlib.domain_adaptation.translator import train_translator, translate_set
from reidlib.feature_learning import ClusterContrast, results_table, train_and_score
from reidlib.feature_learning.compare import TABLE_FORMAT, chapter_settings
from reidlib.feature_learning.mmt import MutualMeanTeaching
from reidlib.feature_learning.part_contrast import PartContrast
from reidlib.models import build_model
from reidlib.notebook import find_repo_root
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.features import extract_features
from reidlib.viz import EmbeddingExplorer
from reidlib.viz.grids import image_rows
from reidlib.viz.replay import save_replay

profile = session.profile

# %% [markdown]
# ## 1. Two worlds, a source model and the gap
#
# The target is world A, exactly as in chapters 2-3: its training images without
# identities, chapter 2's clustering (Jaccard + DBSCAN, k1 and eps chosen on its validation
# split), chapter 2's budget and the one test scorer. The source is world B with its
# identities. Below: one image of each of eight people of each world.

# %%
source_world, target_world = session.world("B"), session.world("A")
settings, train, cluster = chapter_settings(profile, target_world, seed=session.seed)
source_train = source_world.train.subset(source_world.train.pids >= 0)
camids = train.camids


def first_of_people(images, n=8):
    """Rows of one image of each of the first ``n`` identities."""
    return [np.flatnonzero(images.pids == p)[0] for p in np.unique(images.pids)[:n]]


both = np.concatenate([source_train.images[first_of_people(source_train)],
                       train.images[first_of_people(train)]])
image_rows(both, [range(8), range(8, 16)],
           row_labels=["source: world B (labelled)", "target: world A (unlabelled)"])

# %% [markdown]
# **Source pre-training (Eq. 11).** The survey writes the source model as the minimiser of
# a supervised loss over the labelled source images,
# $\min_\theta \sum_{i} \ell(f_\theta(x^s_i), y^s_i)$: chapter 0's recipe (label-smoothed
# cross-entropy on the BNNeck embedding + batch-hard triplet, P x K batches, from the
# world-P backbone) on world B. It is world B's supervised model, so `source_model` reads
# the same cache file as `session.upper_bound(source_world)`. Its score on A, with no
# adaptation at all, is **direct transfer**.

# %%
def generic_backbone():
    """The start of chapters 2-3: the backbone pretrained on world P's attributes."""
    return build_model(profile.arch, weights="synthetic").to(session.device)


def score(model):
    return session.score(model, target_world)


source = source_model(session, source_world)
upper_model = session.upper_bound(target_world)
upper, direct, generic = score(upper_model), score(source), score(generic_backbone().eval())
gap_table = pd.DataFrame({
    "B -> A": {"supervised on the target": upper["mAP"], "direct transfer": direct["mAP"]},
    "A -> B": {"supervised on the target": session.score(source, source_world)["mAP"],
               "direct transfer": session.score(upper_model, source_world)["mAP"]},
}).T
gap_table["drop"] = 1 - gap_table["direct transfer"] / gap_table["supervised on the target"]
gap_table["needed for 90% of the gap"] = gap_table["direct transfer"] + 0.9 * (
    gap_table["supervised on the target"] - gap_table["direct transfer"])
print(f"the generic start of chapters 2-3 on A: {generic['mAP']:.1%} mAP")
gap_table.style.format("{:.1%}")

# %% [markdown]
# The source labels are worth a lot: B's model on A beats the generic start by a wide
# margin before A's images are even looked at. But it falls well short of A's own
# supervised model, and more so in the other direction. The rest of the chapter tries to
# close that gap without a single label of the target. The bar: recover 90% of it.
#
# ## 2. Where the gap lives: batch-norm statistics (DSBN, AdaBN)
#
# A network's BatchNorm layers store the mean and variance of their inputs *on the
# source*. On the target, B's colder light and darker clothes shift those inputs, so
# every layer normalises them with the wrong statistics. Domain-specific BN (Chang et al.,
# CVPR 2019) keeps one set of BN statistics and affine weights per domain; its simplest
# use needs no training at all: re-estimate the target's statistics from its unlabelled
# images (AdaBN, Li et al. 2017) and evaluate with them. The core, for every BN layer:
# reset its running statistics and average the batch statistics over the target's images.

# %%
def target_bn(model, images, batch=64):
    """A copy of ``model`` whose BN layers hold ``images``' statistics (cumulative means)."""
    model = copy.deepcopy(model)
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            bn.reset_running_stats()
            bn.momentum = None  # the plain average over the batches seen
    rows = np.random.default_rng(0).permutation(len(images))[:3200]  # up to 50 batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(rows) - batch + 1, batch):  # full batches only
            x = torch.as_tensor(images.images[rows[i:i + batch]]).permute(0, 3, 1, 2)
            model(eval_transform(x.to(session.device)))
    return model.eval()


ours = target_bn(source, train)
library = convert_domain_bn(copy.deepcopy(source), 2)
estimate_domain_bn(library, train, TARGET)
probe = train.subset(np.arange(64))
with domains(library, TARGET):
    library_features = extract_features(library, probe, flip=False, progress=False)
assert_close(extract_features(ours, probe, flip=False, progress=False), library_features,
             atol=1e-4, rtol=1e-4)
adabn = score(ours)
print(f"direct transfer {direct['mAP']:.1%} -> with A's BN statistics {adabn['mAP']:.1%} "
      "(the target branch of reidlib's DSBN gives the same features)")

# %% [markdown]
# Re-estimating the statistics is free, and on our worlds it does *not* help: direct
# transfer loses a point or two with A's statistics. Two reasons. The course's scorer
# already removes each camera's mean feature at the output (chapter 3's per-camera
# normalisation), which takes away most of what a first-order shift does to retrieval; and
# A's statistics pooled over all its cameras re-centre every layer by A's *average*
# camera, while the later layers were trained on B's per-layer statistics, so what the
# network learnt to read shifts too. DSBN avoids the second problem by *training* the
# target branch (SpCL below uses it). The methods below all start from the source model,
# and each is trained with the chapter's budget on the target's images (and, where the
# method uses them, the source's labelled images alongside).
#
# **One runner for every method.** `train_and_score` (chapter 2) trains a method with the
# one loop and scores it with the one scorer; the final training features of the target
# are clustered with the chapter's clustering, so every method gets a pairwise F. Methods
# that also learn from the source train on `joined`: B's labelled rows first, then A's
# rows (`source_target_set`; `domain_ids` 0 = source, 1 = target), and take their fixed
# labels (B's identities, -1 on A's rows) instead of a clustering.

# %%
joined, domain_ids = source_target_set(source_train, train)
source_labels = np.where(domain_ids == SOURCE, joined.pids, -1)
shown_rows = np.flatnonzero(np.isin(train.pids, np.unique(train.pids)[:40]))  # 40 people
results, replayable = {}, []


def start():
    """A fresh copy of the source model: where every adaptation begins."""
    return copy.deepcopy(source).to(session.device)


def budget(method):
    """fit() arguments: chapter 2's budget, or in the full profile the method's recipe
    (MMT's UDA recipe for the methods that publish none of their own)."""
    if profile.name == "full":
        return dict(method.recipe or MutualMeanTeaching.recipe)
    return {"epochs": settings["epochs"], "p": settings["p"], "k": settings["k"],
            "lr": settings["lr"],
            "iters": settings["iters"] if method.sampler == "multi_gallery" else None}


def run(method, fit_train=train, score=score, **extra):
    """Train ``method`` from the source model with the chapter's budget; keep the result."""
    on_target = fit_train is train and "labels" not in extra  # clusters A's images only
    rows = shown_rows if on_target else None
    result = train_and_score(method, fit_train, cluster=cluster, score=score,
                             seed=session.seed, snapshot_rows=rows, scored=train,
                             **{**budget(method), **extra})
    results[result.name] = result
    if on_target:
        replayable.append(result.name)
    recovered = gap_recovered(result.scores["mAP"], direct["mAP"], upper["mAP"])
    print(f"{result.name}: test mAP {result.scores['mAP']:.1%} ({recovered:.0%} of the gap), "
          f"{result.seconds / 60:.1f} min")
    return result


# %% [markdown]
# ## 3. Mid-level feature alignment (survey §3.4.1)
#
# **Maximum mean discrepancy.** If the network mapped both worlds to one feature
# distribution, a classifier of B's identities would work on A's features as well. The
# squared MMD measures how far two samples' distributions are apart through a kernel $k$:
# $$\mathrm{MMD}^2(X, Y) = \frac{1}{m^2}\sum_{i,j} k(x_i, x_j) + \frac{1}{n^2}\sum_{i,j}
# k(y_i, y_j) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j).$$
# With a Gaussian kernel it is zero only when the distributions agree. The re-ID methods
# (MMFA, Lin et al. BMVC 2018, after DAN's multi-kernel MMD) use a *mixture* of Gaussians
# $k(a, b) = \sum_h e^{-\lVert a - b \rVert^2 / h}$ with five bandwidths around the mean
# squared distance. The core, on the source model's features of 64 images of each world:

# %%
def mmd_squared(x, y, bandwidths):
    """Biased squared MMD with the kernel sum_h exp(-|a - b|^2 / h)."""
    def k(a, b):
        d2 = torch.cdist(a, b).square()
        return sum(torch.exp(-d2 / h) for h in bandwidths)
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def mean_squared_distance(x, y):
    pooled = torch.cat([x, y])
    d2 = torch.cdist(pooled, pooled).square()
    return d2.sum() / (len(pooled) ** 2 - len(pooled))


rng = np.random.default_rng(session.seed)
source_probe = source_train.subset(rng.choice(len(source_train), 64, replace=False))
target_probe = train.subset(rng.choice(len(train), 64, replace=False))
fs = extract_features(source, source_probe, flip=False, progress=False).double()
ft = extract_features(source, target_probe, flip=False, progress=False).double()
bandwidths = mean_squared_distance(fs, ft) * 2.0 ** torch.arange(-2, 3, dtype=torch.float64)
assert_close(bandwidths, default_bandwidths(fs, ft))
assert_close(mmd_squared(fs, ft, bandwidths), mmd2(fs, ft))
print(f"MMD^2 between B's and A's features under the source model: {mmd2(fs, ft):.3f} "
      f"(= reidlib's); between two halves of B: "
      f"{mmd2(fs[:32], fs[32:], bandwidths):.3f}")

# %% [markdown]
# `MMDAlignment` trains the source model on batches of a source half (P x K of B's
# identities: Eq. 11's cross-entropy + triplet) and a target half (random A images), and
# adds the MMD between the two halves' pooled features: the network is pushed to keep B's
# identities apart *and* to make A's features look like B's. MMFA uses this term together
# with a second one, in attribute space, so we train the two together below (the
# exercise of this chapter trains `MMDAlignment` alone, with your own MMD).
#
# **Attributes as a shared language (MMFA / TJ-AIDL).** Both worlds dress people in upper
# and lower garments of some colour and pattern, with or without a bag: attributes mean
# the same thing in both. MMFA and TJ-AIDL train attribute classifiers on the *source*
# (its attribute labels) and align the domains in that attribute space. Here: one linear
# head per attribute on the embedding, trained on B's attribute labels only, plus the MMD
# between the two halves' attribute predictions. The core, the attribute part of the loss
# on one batch:

# %%
source_attributes = row_attributes(source_world, np.where(domain_ids == SOURCE, joined.pids,
                                                           -1))
attribute_method = MMFA(start(), domain_ids, source_attributes)
print("attributes:", ", ".join(f"{name} ({int(v.max()) + 1} values)"
                               for name, v in source_attributes.items()))


def attribute_terms(embeddings, rows, heads, attributes, half):
    """(CE of the source half's known attributes, summed over attributes; MMD^2 between
    the two halves' concatenated attribute predictions)."""
    logits = {name: head(embeddings) for name, head in heads.items()}
    ce = 0.0
    for name, scores in logits.items():
        y = attributes[name][rows[:half]]
        known = y >= 0
        ce = ce + F.cross_entropy(scores[:half][known], y[known])
    p = torch.cat([v.softmax(dim=1) for v in logits.values()], dim=1).double()
    return ce, mmd_squared(p[:half], p[half:], default_bandwidths(p[:half], p[half:]))


batch_rows = torch.as_tensor(np.concatenate([np.flatnonzero(domain_ids == SOURCE)[:32],
                                             np.flatnonzero(domain_ids == TARGET)[:32]]))
with torch.no_grad():
    embeddings = attribute_method.model.eval()(eval_transform(torch.as_tensor(
        joined.images[batch_rows.numpy()]).permute(0, 3, 1, 2).to(session.device)))
    ce, attribute_mmd = attribute_terms(embeddings, batch_rows, attribute_method.heads,
                                        attribute_method.attributes, 32)
    logits = {name: head(embeddings) for name, head in attribute_method.heads.items()}
    assert_close(ce, attribute_method.attribute_loss({k: v[:32] for k, v in logits.items()},
                                                     batch_rows[:32]))
    predictions = torch.cat([v.softmax(dim=1) for v in logits.values()], dim=1).double()
    assert_close(attribute_mmd, mmd2(predictions[:32], predictions[32:]))
print(f"before training: attribute CE {ce:.3f}, attribute MMD^2 {attribute_mmd:.5f} "
      "(= reidlib's; the fresh heads predict near-uniform attributes in both worlds)")

# %% [markdown]
# `MMFA` is the paper's whole loss: Eq. 11 on B's identities, the attribute cross-entropy
# on B's attribute labels, and the two alignments, the MMD of the attribute predictions
# (above) plus `MMDAlignment`'s MMD of the pooled features (the core before it), each with
# weight 1. Trained with the chapter's budget:

# %%
mmfa = run(attribute_method, fit_train=joined, labels=source_labels, domains=domain_ids)

# %% [markdown]
# ## 4. Image style transfer (survey §3.4.2)
#
# Instead of aligning features, change the *images*: render B's labelled images in A's
# style and train on them with B's labels (PTGAN, SPGAN, CR-GAN). The cheapest style is
# colour statistics. Reinhard's colour transfer shifts and scales each colour channel to
# the mean and standard deviation of a reference; applied to all of B's images at once
# (`per_image=False`), it moves B's palette and light onto A's and keeps the differences
# between B's people. The core, on 64 images of B with A's training images as reference:

# %%
def colour_to(images, reference):
    """uint8 (N, 3, H, W): the channels of the whole batch moved to ``reference``'s."""
    x, ref = images.double(), reference.double()
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), correction=0)
    ref_mean, ref_std = ref.mean(dim=(0, 2, 3)), ref.std(dim=(0, 2, 3), correction=0)
    out = (x - mean[:, None, None]) / std[:, None, None] * ref_std[:, None, None] \
        + ref_mean[:, None, None]
    return out.round().clamp(0, 255).to(torch.uint8)


def chw(images):
    """An ImageSet's (N, H, W, 3) uint8 images as a (N, 3, H, W) tensor."""
    return torch.as_tensor(images.images).permute(0, 3, 1, 2)


target_pixels = chw(train)
ours = colour_to(chw(source_probe), target_pixels)
assert torch.equal(ours, colour_transfer(chw(source_probe), target_pixels, per_image=False))
recoloured_source = dataclasses.replace(source_train, images=colour_transfer(
    chw(source_train), target_pixels, per_image=False).permute(0, 2, 3, 1).numpy())
print("colour transfer equals reidlib's")

# %% [markdown]
# **AdaIN** (Huang & Belongie, ICCV 2017) is the same operation on a network's feature
# maps, per image: each channel of the content map takes the mean and standard deviation
# of the style map's channel. On the first block's maps of a B image (content) and an A
# image (style):

# %%
def adaptive_instance_norm(content, style, eps=1e-5):
    c_mean, s_mean = content.mean(dim=(2, 3), keepdim=True), style.mean(dim=(2, 3), keepdim=True)
    c_std = (content.var(dim=(2, 3), keepdim=True) + eps).sqrt()
    s_std = (style.var(dim=(2, 3), keepdim=True) + eps).sqrt()
    return (content - c_mean) / c_std * s_std + s_mean


stem = source.backbone
maps = {}
first_block = next(m for m in stem.modules() if isinstance(m, nn.Conv2d))
first_block.register_forward_hook(lambda module, inputs, out: maps.update(x=out))
with torch.no_grad():
    stem(eval_transform(chw(source_probe)[:1].to(session.device)))
    content = maps["x"]
    stem(eval_transform(chw(target_probe)[:1].to(session.device)))
    style = maps["x"]
assert_close(adaptive_instance_norm(content, style), adain(content, style))
print(f"AdaIN of a {tuple(content.shape)} map equals reidlib's")

# %% [markdown]
# **A small translator (CycleGAN / SPGAN).** A colour transfer cannot add a scarf or move
# the camera closer. The GAN methods learn a generator $G: B \to A$ and its inverse
# $F: A \to B$ with an adversarial loss per domain, a cycle-consistency loss
# $\lVert F(G(x)) - x \rVert_1$ (weight 10), and SPGAN's *target-domain identity* term
# $\lVert G(y) - y \rVert_1$ for $y$ from A (weight 5), which keeps $G$ from changing what
# already looks like A (colours included) and so helps keep the person. Ours is a
# CycleGAN generator scaled down (width 16, 2 residual blocks instead of 64 and 9; the
# full profile uses CycleGAN's) to train in minutes on a CPU in the quick profile.

# %%
translator_steps = {"smoke": 20, "quick": 300, "full": 20000}[profile.name]
started = time.perf_counter()
# cached like the supervised models: a re-run reads the finished translator, a killed one
# resumes from its last checkpoint
translator = train_translator(
    source_train, train, steps=translator_steps, seed=session.seed, device=session.device,
    width=16 if profile.name != "full" else 64, blocks=2 if profile.name != "full" else 9,
    checkpoint=session.cache_dir / f"translator-B-to-{session.dataset_tag or 'A'}-"
                                   f"{profile.name}-{translator_steps}.pt")
translated_source = translate_set(translator, source_train)
translator_minutes = (time.perf_counter() - started) / 60
print(f"translator: {translator_steps} steps in {translator_minutes:.1f} min")

# %%
shown_source = first_of_people(source_train)
strip = np.concatenate([source_train.images[shown_source],
                        recoloured_source.images[shown_source],
                        translated_source.images[shown_source],
                        train.images[first_of_people(train)]])
image_rows(strip, [range(8), range(8, 16), range(16, 24), range(24, 32)],
           row_labels=["B as rendered", "B, A's colours", "B, translated to A",
                       "A (reference)"])

# %% [markdown]
# Train on the restyled source: B's source model fine-tuned with the chapter's budget on
# B's images in A's style, with B's labels (the PTGAN / SPGAN recipe, shortened: they
# train from ImageNet on the translated images; we fine-tune the source model). No image
# of A enters training except through the style.

# %%
def fine_tune(images, name, wrap=None):
    """The source model fine-tuned on ``images`` with their (source) identities; ``wrap``
    wraps the method (camera-style augmentation)."""
    method = PseudoLabelClassification(start(), classifier_init="centroids")
    method.name = name
    return run(wrap(method) if wrap is not None else method, fit_train=images,
               labels=images.pids)


_ = fine_tune(source_train, "source fine-tuned on B as rendered (control)")
_ = fine_tune(recoloured_source, "style: B in A's colours")
_ = fine_tune(translated_source, "style: B translated by the GAN")

# %% [markdown]
# Read the three against each other, not against direct transfer alone. The control (the
# same fine-tuning on B as rendered) *loses* several points on A: more epochs on B fit the
# source model further to B. Against that control, both styles gain, and the GAN's
# translation gains most, although the picture above shows how rough a 300-step, width-16
# translator on a CPU is: blotchy images that keep each person's silhouette and take on A's
# bright palette, with much of B's detail lost (the full profile trains CycleGAN's own
# generator for 20,000 steps on a GPU). Against direct transfer, they barely break even.
# Style transfer helps a model learn from the source for the target, but learning from the
# source alone has little left to give.
#
# ## 5. Camera style as augmentation (CamStyle, HHL)
#
# A target camera has a style of its own (chapter 3). HHL (Zhong et al., ECCV 2018)
# renders each *source* image in the style of each *target camera* and trains on them with
# the source labels; CamStyle (Zhong et al., CVPR 2018) renders each target image in the
# styles of the target's *other* cameras as augmentation. Ours uses each camera's colour
# statistics as its style (a colour transfer per camera, not a GAN per camera). The
# wrapper `CamStyle(method, styles, p)` adds the restyling to any method's batches; we train
# HHL's use of it below. CamStyle's own use, `CamStyle(ClusterContrast(...), styles,
# exclude_own_camera=True)` on A's clusters, is left out of this notebook to keep it under
# 15 minutes (`tests/test_da_camstyle.py` checks and trains it). One A image in the
# style of each of A's cameras:

# %%
styles = camera_styles(train)
one = torch.as_tensor(train.images[:1]).permute(0, 3, 1, 2)
generator = torch.Generator().manual_seed(session.seed)
restyled = [restyle(one, CameraStyles(styles.cameras[i:i + 1], styles.mean[i:i + 1],
                                       styles.std[i:i + 1]), generator, p=1.0)
            for i in range(len(styles))]
image_rows(np.concatenate([train.images[:1]] + [r.permute(0, 2, 3, 1).numpy()
                                                 for r in restyled]),
           [range(len(restyled) + 1)],
           titles=[[f"camera {train.camids[0]}"] + [f"as camera {c}"
                                                    for c in styles.cameras]])

# %%
_ = fine_tune(source_train, "style: B in A's camera styles (HHL)",
              wrap=lambda m: CamStyle(m, styles, p=0.5))

# %% [markdown]
# ## 6. Clustering-based adaptation (survey §3.4.3, Eq. 12)
#
# The strongest family in the survey's Table 3 treats the source model as a good *start*
# and then does what chapters 2-3 do on the target: cluster its features, train on the
# pseudo-labels (Eq. 12), repeat. Three of them are chapter 2-3 methods started from B's
# model instead of the generic backbone; two use the source further:
#
# - **Cluster Contrast from the source model**: the chapter's baseline (chapter 2's method,
#   chapter 2's budget and clustering, only the start differs);
# - **camera-based BN** from the source model (chapter 3's strongest method: each camera's
#   statistics, which also replaces B's statistics by A's): it costs twice the baseline on
#   2 cores, so this notebook reads it from the recorded runs of section 9;
# - **SSG** (Fu et al., ICCV 2019): global, upper-body and lower-body features, each
#   clustered and contrasted on its own (chapter 2's `PartContrast`);
# - **MMT** (Ge et al., ICLR 2020): two networks, each taught by the other's mean teacher
#   (chapter 2); for domain adaptation the paper starts them from *two source models
#   pre-trained with different seeds*, so their errors on the target differ from the first
#   step. The second source model is trained here (seed 1 of the same recipe);
# - **SpCL** (Ge et al., NeurIPS 2020): the source's labelled classes join the target's
#   clusters and un-clustered images in one hybrid memory (below).

# %%
baseline = run(ClusterContrast(start()))
ssg = PartContrast(start(), cluster)
ssg.name = "SSG (global + parts)"
_ = run(ssg)

# %%
second_source = source_model(session, source_world, seed=1)
first_f = extract_features(source, target_probe, flip=False, progress=False)
second_f = extract_features(second_source, target_probe, flip=False, progress=False)


def nearest(features):
    d = torch.cdist(features, features).fill_diagonal_(float("inf"))
    return d.argmin(dim=1)


print(f"second source model (seed 1): direct transfer {score(second_source)['mAP']:.1%} "
      f"(seed 0: {direct['mAP']:.1%}); the two disagree on the nearest neighbour of "
      f"{(nearest(first_f) != nearest(second_f)).float().mean():.0%} of 64 A images")
mmt = MutualMeanTeaching(start(), model2=copy.deepcopy(second_source).to(session.device))
mmt.name = "MMT (two source models)"
_ = run(mmt)

# %% [markdown]
# **SpCL's memory with the source in it.** One softmax over three kinds of entries: each
# labelled *source identity* (its centroid), each *target cluster* (the mean of its
# members' instance features) and each *un-clustered target image* (its own feature). A
# source image's positive is its identity, a target image's its cluster or, un-clustered,
# itself (SpCL's Eq. 1-2, the survey's Eq. 6-7 over a mixed table):
# $$\mathcal{L} = -\log \frac{\exp(\langle f, z^+ \rangle / \tau)}{\sum_{k=1}^{n^s}
# \exp(\langle f, w_k \rangle / \tau) + \sum_{k=1}^{n^t_c} \exp(\langle f, c_k \rangle /
# \tau) + \sum_{k=1}^{n^t_o} \exp(\langle f, v_k \rangle / \tau)}.$$
# The core, on a batch of 32 source and 32 target images, with the source model's features
# and the chapter's clustering of the target:

# %%
joined_features = F.normalize(extract_features(source, joined, flip=False, progress=False),
                              dim=1)
is_source = domain_ids == SOURCE
target_labels = cluster(joined_features[~is_source].numpy())
source_ids, source_class = np.unique(joined.pids[is_source], return_inverse=True)


def source_hybrid_loss(x, rows, tau=0.05):
    """SpCL's UDA loss of embeddings ``x`` of joined rows ``rows``."""
    centroids = torch.stack([F.normalize(joined_features[is_source][source_class == c].mean(0),
                                         dim=0) for c in range(len(source_ids))])
    slots = joined_features[~is_source]
    clusters = np.unique(target_labels[target_labels >= 0])
    centres = torch.stack([slots[target_labels == c].mean(0) for c in clusters])
    outliers = np.flatnonzero(target_labels < 0)
    table = torch.cat([centroids, centres, slots[outliers]])
    positive = []
    for row in rows:
        if is_source[row]:
            positive.append(source_class[row])
        else:
            t = row - is_source.sum()
            positive.append(len(centroids) + (np.searchsorted(clusters, target_labels[t])
                                              if target_labels[t] >= 0 else
                                              len(clusters) + np.searchsorted(outliers, t)))
    logits = F.normalize(x, dim=1) @ table.T / tau
    return F.cross_entropy(logits, torch.as_tensor(positive))


memory_labels = np.concatenate([source_class, np.where(target_labels >= 0, target_labels, -1)])
memory = SourceHybridMemory(joined_features, memory_labels, is_source)
spcl_rows = np.concatenate([np.flatnonzero(is_source)[:32], np.flatnonzero(~is_source)[:32]])
x = joined_features[spcl_rows] + 0.05 * torch.randn(64, joined_features.shape[1],
                                                    generator=torch.Generator().manual_seed(0))
assert_close(source_hybrid_loss(x, spcl_rows), memory(x, torch.as_tensor(spcl_rows)))
print(f"{len(source_ids)} source identities + {len(np.unique(target_labels[target_labels >= 0]))}"
      f" target clusters + {(target_labels < 0).sum()} un-clustered target images; the loss "
      "of the batch equals reidlib's")

# %% [markdown]
# `SpCLUDA` trains it as SpCL's UDA script does: every batch holds a source half (16 x 4
# of B's identities) and a target half (the same sampler over A's clusters), both halves'
# losses are added, the memory's target part is re-clustered each epoch with SpCL's
# self-paced criterion, and the network has domain-specific BN (`convert_domain_bn`): the
# source half goes through B's BN, the target half and every evaluation through A's.

# %%
spcl_model = convert_domain_bn(start(), 2)
spcl = SpCLUDA(spcl_model, joined, domain_ids, eps=settings["eps"], k1=settings["k1"])
spcl.name = "SpCL (source classes + DSBN)"


def target_branch(extract):
    """``extract(model, ...)`` with every BN routed to the target's statistics."""
    def routed(model, *args):
        with domains(model, TARGET):
            return extract(model, *args)
    return routed


_ = run(spcl, fit_train=joined, domains=domain_ids, clustering=spcl.cluster, iters=None,
        score=target_branch(lambda model, _=None: score(model)),
        extract=target_branch(lambda model, images: extract_features(
            model, images, flip=False, progress=False)))

# %% [markdown]
# ## 7. Cross-domain mixup
#
# Luo, Song and Zhang (ECCV 2020) add a bridge between the domains: each source image
# is blended with a target image, $\tilde x = \lambda x^s + (1 - \lambda) x^t$ with
# $\lambda \sim \mathrm{Beta}(0.6, 0.6)$ once per batch, and labelled by the same blend
# of their labels: weight $\lambda$ on the source identity and $1 - \lambda$ on the target
# image's own *virtual class* (its slot in an exemplar memory). The classifier gets one
# extra logit for that class, the target slot scaled to the source class weight's length.
# The core, on eight real pairs:

# %%
def mixup_cross_entropy(f, weight, agents, source_y, lam):
    """-[lam log p(source class) + (1 - lam) log p(virtual class)], averaged."""
    scale = weight[source_y].norm(dim=1)
    virtual = (f * agents).sum(dim=1) * scale
    log_p = torch.cat([f @ weight.T, virtual[:, None]], dim=1).log_softmax(dim=1)
    rows = torch.arange(len(f))
    return -(lam * log_p[rows, source_y] + (1 - lam) * log_p[:, -1]).mean()


pair_s, pair_t = chw(source_probe)[:8].float(), chw(target_probe)[:8].float()
ys = torch.as_tensor(np.searchsorted(source_ids, source_probe.pids[:8]))
mix = cross_domain_mixup(pair_s, ys, pair_t, torch.arange(8), lam=0.3)
assert_close(mix.x, 0.3 * pair_s + 0.7 * pair_t)
f = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
weight = torch.randn(len(source_ids), 16, generator=torch.Generator().manual_seed(2))
agents = F.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(3)), dim=1)
assert_close(mixup_cross_entropy(f, weight, agents, ys, 0.3), mixup_loss(f, weight, agents, mix))
image_rows(np.concatenate([source_probe.images[:4], mix.x[:4].round().byte().permute(
    0, 2, 3, 1).numpy(), target_probe.images[:4]]), [range(4), range(4, 8), range(8, 12)],
    row_labels=["source (B)", "mixed, lambda = 0.3", "target (A)"])

# %%
_ = run(CrossDomainMixup(start(), domain_ids), fit_train=joined, labels=source_labels,
        domains=domain_ids)

# %% [markdown]
# ## 8. Results
#
# Every method from B's source model with the chapter's budget, scored on A's test split
# by the one scorer; "gap recovered" is $(\mathrm{mAP} - \mathrm{mAP}_{direct}) /
# (\mathrm{mAP}_{supervised} - \mathrm{mAP}_{direct})$: 0 is direct transfer, 1 is A's own
# supervised model. Pairwise F scores the chapter's clustering of each method's final
# features of A's training images.

# %%
FAMILIES = {"alignment": ("MMFA",), "style": ("style:", "control"),
            "mixup": ("mixup",)}


def family(name):
    for key, starts in FAMILIES.items():
        if any(word in name for word in starts):
            return key
    return "clustering"


references = {"direct transfer (source model)": direct,
              "direct transfer, A's BN statistics": adabn,
              "generic backbone (chapters 2-3's start)": generic,
              "supervised on A (upper bound)": upper}
table = results_table(results.values(), references, upper="supervised on A (upper bound)")
table.insert(3, "gap recovered", (table["mAP"] - direct["mAP"]) / (upper["mAP"] - direct["mAP"]))
table.insert(0, "family", [family(name) if name in results else "reference"
                           for name in table.index])
table.style.format({**TABLE_FORMAT, "gap recovered": "{:.0%}"}, na_rep="")

# %%
colours = {"clustering": "C0", "alignment": "C1", "style": "C2", "mixup": "C3"}
trained = table.drop(list(references)).sort_values("gap recovered")
fig, ax = plt.subplots(figsize=(8, 0.32 * len(trained) + 1.2))
ax.barh(trained.index, trained["gap recovered"], color=[colours[f] for f in trained["family"]])
ax.axvline(0, color="grey", lw=1)
ax.axvline(0.9, color="grey", ls=":", lw=1)
ax.axvline((adabn["mAP"] - direct["mAP"]) / (upper["mAP"] - direct["mAP"]), color="C1",
           ls="--", lw=1)
ax.legend(handles=[Patch(color=colour, label=fam) for fam, colour in colours.items()],
          fontsize=8, loc="lower right")
ax.set(xlabel="share of the direct-transfer gap recovered (B -> A, this run)",
       title=f"{settings['epochs'] or 'recipe'} epochs from the source model; dotted: the "
             "90% bar, dashed: A's BN statistics alone")
plt.show()

# %% [markdown]
# **Reading the results.** Clustering-based adaptation is the strongest family by far, as
# in the survey's Table 3: every method that clusters A's images recovers a large share of
# the gap within 3 epochs, while feature alignment (MMFA), the style rows and
# cross-domain mixup stay near direct transfer or below it. Alignment and style learn from
# B's labels only; nothing in their losses sorts A's people. Two rows need a word. MMT and
# SpCL, the strongest published methods of the family, trail plain Cluster Contrast after
# 3 epochs: MMT learns through mean teachers that move slowly by design (its recipe runs 40
# epochs), and SpCL's self-paced criterion leaves many of A's images un-clustered, each an
# instance of its own, in the first rounds. Cross-domain mixup has only two epochs of
# mixing here, and its target side treats each of A's images as a class of its own (an
# exemplar memory), which pushes A's images of one person apart at first, as ECN's start
# did in chapter 2. Short budgets favour the simplest method; section 9 gives the baseline
# the 12 epochs.
#
# ## 9. Over seeds, in both directions
#
# `benchmarks/chapter4_runs.py` reruns the chapter's baseline (Cluster Contrast from the
# source model) for seeds 0, 1 and 2 in both directions, B -> A and A -> B, with 12 epochs:
# the budget the issue calibrated its targets with, fixed in advance, not chosen on the
# test split. Camera-based BN from the source model, chapter 3's strongest method and this
# chapter's candidate fixed before any chapter-4 run, was run for seed 0 in each
# direction: on 2 cores it costs four times the baseline. The fully unsupervised bars are
# chapters 2-3's methods on the same target with the same 12 epochs
# (`benchmarks/chapter3_runs.py`: three seeds on each world). The targets:
# the best UDA method recovers at least 90% of the direct-transfer gap, and beats the best
# fully unsupervised method: the source labels must pay off.

# %%
results_dir = find_repo_root() / "benchmarks" / "results"


def read_runs(name):
    path = results_dir / f"{name}-{profile.name}.json"
    return json.loads(path.read_text()) if path.exists() else {"runs": [], "references": []}


uda_record, unsupervised_record = read_runs("ch4-runs"), read_runs("ch3-runs")
if session.on_real_data:  # the runs were recorded on the synthetic worlds
    print("the recorded runs are the synthetic worlds': not shown on a real dataset")
    uda_record = unsupervised_record = {"runs": [], "references": []}
uda = pd.DataFrame(uda_record["runs"])
if len(uda):
    refs = {(r["source"], r["target"], r["gap"]): r for r in uda_record["references"]}
    uda["direction"] = uda["source"] + " -> " + uda["target"]
    uda["epochs"] = uda["settings"].map(lambda s: s["epochs"])
    keys = list(zip(uda["source"], uda["target"], uda["gap"], strict=True))
    uda["direct"] = [refs[key]["direct"]["mAP"] for key in keys]
    uda["supervised"] = [refs[key]["supervised"]["mAP"] for key in keys]
    gap_size = uda["supervised"] - uda["direct"]
    # undefined where there is no gap: a source model as good as the target's own labels
    uda["gap recovered"] = (uda["mAP"] - uda["direct"]) / gap_size.where(gap_size > 0.01)
unsupervised = pd.DataFrame(unsupervised_record["runs"])
if len(unsupervised):
    unsupervised["world"] = unsupervised.get("world", pd.Series("A", unsupervised.index)) \
        .fillna("A")
    unsupervised["epochs"] = unsupervised["settings"].map(lambda s: s["epochs"])
    unsupervised = unsupervised[unsupervised["style"] == 1.0]

seeds_view = uda[(uda["gap"] == 1.0)] if len(uda) else uda
if seeds_view.empty or seeds_view.groupby(["direction", "method"])["seed"].nunique().max() < 2:
    print("No spread over seeds is recorded: run benchmarks/chapter4_runs.py (its docstring "
          "has the commands).")
else:
    long_budget = seeds_view["epochs"].max()
    seeds_view = seeds_view[seeds_view["epochs"] == long_budget]
    display(seeds_view.pivot_table(index=["direction", "seed"], columns="method",
                                   values=["mAP", "gap recovered"])
            .style.format("{:.1%}").set_caption(f"{long_budget} epochs, recorded"))
    verdicts = []
    for direction, rows in seeds_view.groupby("direction"):
        target = direction[-1]
        mean_gap = rows.groupby("method")["gap recovered"].mean()
        best = mean_gap.idxmax()
        best_rows = rows[rows["method"] == best]
        free = unsupervised[(unsupervised["world"] == target)
                            & (unsupervised["epochs"] == long_budget)]
        free_best = free.groupby("method")["mAP"].mean().idxmax() if len(free) else None
        free_map = free[free["method"] == free_best]["mAP"] if free_best else pd.Series()
        verdicts.append({
            "direction": direction, "best UDA method": best,
            "gap recovered, lowest seed": best_rows["gap recovered"].min(),
            "gap recovered, mean": best_rows["gap recovered"].mean(),
            "UDA mAP, mean": best_rows["mAP"].mean(),
            "best fully unsupervised": f"{free_best} ({len(free_map)} seeds)" if free_best
            else "not recorded",
            "its mAP, mean": free_map.mean() if len(free_map) else np.nan,
            "90% of the gap": "reached" if best_rows["gap recovered"].min() >= 0.9
            else "not reached",
            "beats fully unsupervised": ("yes, every seed" if len(free_map) and
                                         best_rows["mAP"].min() > free_map.max() else
                                         "on average" if len(free_map) and
                                         best_rows["mAP"].mean() > free_map.mean() else
                                         "no" if len(free_map) else "not recorded")})
    verdict = pd.DataFrame(verdicts).set_index("direction")
    display(verdict.style.format({"gap recovered, lowest seed": "{:.0%}",
                                  "gap recovered, mean": "{:.0%}", "UDA mAP, mean": "{:.1%}",
                                  "its mAP, mean": "{:.1%}"}, na_rep="-"))

# %%
if not seeds_view.empty and seeds_view["seed"].nunique() >= 2:
    directions = sorted(seeds_view["direction"].unique())
    fig, axes = plt.subplots(1, len(directions), figsize=(6.5 * len(directions), 3.8),
                             squeeze=False, layout="constrained")
    for ax, direction in zip(axes[0], directions, strict=True):
        rows = seeds_view[seeds_view["direction"] == direction]
        free = unsupervised[(unsupervised["world"] == direction[-1])
                            & (unsupervised["epochs"] == long_budget)]
        def seeds_label(kind, name, values):
            return f"{kind}: {name}" + (" (seed 0)" if len(values) == 1 else "")

        bars = {seeds_label("UDA", m, v): v for m in rows["method"].unique()
                for v in [rows[rows["method"] == m]["mAP"]]}
        bars.update({seeds_label("fully unsupervised", m, v): v
                     for m in free["method"].unique()
                     for v in [free[free["method"] == m]["mAP"]]})
        names = list(bars)
        means = [bars[n].mean() for n in names]
        spread = np.array([[bars[n].mean() - bars[n].min() for n in names],
                           [bars[n].max() - bars[n].mean() for n in names]])
        ax.barh(names, means, xerr=spread, capsize=3,
                color=["C0" if n.startswith("UDA") else "C7" for n in names])
        ax.axvline(rows["direct"].iloc[0], color="C3", ls="--", lw=1, label="direct transfer")
        ax.axvline(rows["supervised"].iloc[0], color="grey", ls=":", lw=1,
                   label="supervised on the target")
        ax.axvline(rows["direct"].iloc[0] + 0.9 * (rows["supervised"].iloc[0]
                                                   - rows["direct"].iloc[0]),
                   color="k", lw=0.8, label="90% of the gap")
        ax.set(xlabel="test mAP (mean, bar: lowest to highest seed)", title=direction,
               xlim=(min(means + [rows["direct"].iloc[0]]) - 0.05,
                     rows["supervised"].iloc[0] + 0.03))
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{long_budget} epochs, seeds "
                 f"{', '.join(map(str, sorted(seeds_view['seed'].unique())))}", fontsize=10)
    plt.show()

# %% [markdown]
# **What the targets say.** From B to A, Cluster Contrast from the source model recovers
# 92%, 86% and 94% of the gap in seeds 0-2, 90% on average: the 90% target is reached on
# average, not in every seed. It beats the best fully unsupervised method on A (camera BN,
# 69-70% with the same 12 epochs) in every seed, by 3 to 5 points. Camera BN from the
# source model does not beat the baseline here (86% at seed 0); a likely reason: B's
# supervised model already learnt to look past camera style, and the scorer's per-camera
# normalisation removes much of what is left.
#
# From A to B, the target is **not reached**: 56%, 42% and 60% of the gap for the baseline,
# 62% for camera BN at seed 0. The source labels still pay off, barely in the worst seed:
# the baseline beats the best fully unsupervised method on B (camera BN: 60.5%, 59.5% and
# 61.1%) in every seed, by 1.1 to 6.2 points against the same seed. B is the harder
# target: eight cameras with a strong camera bias (fully unsupervised Cluster Contrast
# reaches 45% on B at seed 0, camera BN 60% on average), winter clothes A's
# model never saw, and a higher bar (B's supervised model, 83%). We report the miss rather
# than tune the worlds or pick a budget on the test split; the real-data anchors
# (over 90% recovered on Duke -> Market) come from 40-50 epoch recipes on a GPU, which the
# full profile owes.
#
# ## 10. The domain-gap dial
#
# The synthetic world can render a source world closer to or further from the target:
# `load_world("B", domain_gap=g)` gives B's people (B's seed, never A's) in a style that is
# A's at $g = 0$ (A's palette, fashion, light, background, camera distance and number of
# cameras), B's at $g = 1$ (the worlds above) and beyond B's for $g > 1$ (every style
# difference extrapolated). `benchmarks/chapter4_runs.py --gaps` trains a source model on
# each and adapts it to A with the baseline, 12 epochs, seed 0. No
# benchmark of real data can turn this dial: each real dataset pair is one fixed gap.

# %%
dial = uda[(uda["direction"] == "B -> A") & (uda["seed"] == 0)] if len(uda) else uda
if len(dial):
    dial = dial[dial["epochs"] == dial[dial["gap"] != 1.0]["epochs"].max()] \
        if (dial["gap"] != 1.0).any() else dial.iloc[:0]
    dialled = dial.groupby("method")["gap"].nunique()  # methods run at several gaps
    dial = dial[dial["method"].isin(dialled[dialled >= 2].index)]
if len(dial) == 0 or dial["gap"].nunique() < 2:
    print("No dial runs recorded: run benchmarks/chapter4_runs.py --gaps (see its docstring).")
else:
    dial_refs = pd.DataFrame([{"gap": r["gap"], "direct": r["direct"]["mAP"],
                               "supervised": r["supervised"]["mAP"]}
                              for r in uda_record["references"]
                              if r["source"] == "B" and r["target"] == "A"]).sort_values("gap")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(dial_refs["gap"], dial_refs["direct"], marker="o", color="C3",
                 label="direct transfer")
    for name in sorted(dial["method"].unique()):
        line = dial[dial["method"] == name].sort_values("gap")
        axes[0].plot(line["gap"], line["mAP"], marker="o", label=f"UDA: {name}")
        axes[1].plot(line["gap"], line["gap recovered"], marker="o", label=name)
    axes[0].axhline(dial_refs["supervised"].iloc[0], color="grey", ls=":", lw=1,
                    label="supervised on A")
    axes[0].set(xlabel="domain gap g (0: A's style, 1: B's)", ylabel="test mAP on A",
                title="Direct transfer and adaptation as the gap grows")
    axes[1].axhline(0.9, color="grey", ls=":", lw=1, label="90%")
    axes[1].set(xlabel="domain gap g", ylabel="share of the gap recovered",
                title="What adaptation recovers", ylim=(0, 1.05), xlim=axes[0].get_xlim())
    for ax in axes:
        ax.legend(fontsize=8)
    plt.show()
    dial_table = dial.pivot(index="gap", columns="method", values="mAP").add_prefix(
        "mAP, ").join(dial.pivot(index="gap", columns="method", values="gap recovered")
                      .add_prefix("gap recovered, ")).join(dial_refs.set_index("gap").rename(
                          columns={"direct": "direct transfer", "supervised": "supervised on A"}))
    display(dial_table.style.format("{:.1%}", na_rep="-"))

# %% [markdown]
# Read the recorded dial. At $g = 0$ the source world has A's style and 500 other people:
# direct transfer is already as good as A's own supervised model (there is no gap to
# recover, so the right panel has no point there), and adapting on A's images goes
# *beyond* the supervised model: twice as many people seen, in one style. As the gap
# grows, direct transfer falls fast (at $g = 2$ it keeps less than half of the supervised
# mAP), while adaptation falls slowly: the share of the gap it recovers stays near 90%
# from $g = 1$ to $g = 2$. The stronger the shift, the more the target's own clusters are
# worth.
#
# ## 11. Where the domain went
#
# The explorer shows the final features of 40 of A's people after the chapter's baseline
# and after the best other method that clusters A's images alone, coloured by identity.
# Run live, colour by camera or by pseudo-label.

# %%
def titled(result):
    return dataclasses.replace(result.final, title=f"{result.name} (after training)")


best_name = table.drop(list(references))["mAP"].idxmax()
runner_up = max((name for name in replayable if name != baseline.name),
                key=lambda name: results[name].scores["mAP"])
shown = [baseline, results[runner_up]]
explorer = EmbeddingExplorer([titled(r) for r in shown], images=train.subset(shown_rows),
                             method="pca" if profile.name == "smoke" else "umap",
                             seed=session.seed)
explorer.show(colour_by="pid")

# %%
_ = session.record(
    upper_bound_mAP=upper["mAP"], direct_mAP=direct["mAP"], adabn_mAP=adabn["mAP"],
    generic_mAP=generic["mAP"], direct_A_to_B_mAP=gap_table.loc["A -> B", "direct transfer"],
    supervised_B_mAP=gap_table.loc["A -> B", "supervised on the target"],
    epochs=settings["epochs"], k1=settings["k1"], eps=settings["eps"],
    translator_steps=translator_steps, translator_minutes=translator_minutes,
    best_method=best_name, best_mAP=table.loc[best_name, "mAP"],
    best_gap_recovered=table.loc[best_name, "gap recovered"],
    baseline_mAP=baseline.scores["mAP"],
    methods=list(results), methods_mAP=[r.scores["mAP"] for r in results.values()],
    methods_minutes=[r.seconds / 60 for r in results.values()],
    seeds_recorded=bool(len(seeds_view)),
)

# %% [markdown]
# For the instructor's demo mode, the runs that cluster A's images alone are recorded on
# the explorer's 40 people under "chapter 4, " and the method's name:
# `demo(replays, "chapter 4, Cluster Contrast")` replays one without training.

# %%
replays = session.replay_dir
saved = [save_replay(replays, f"chapter 4, {name}", result.history, train.subset(shown_rows),
                     after=result.final, seed=session.seed, layout=False).stem
         for name, result in results.items() if name in replayable]
print(f"{len(saved)} runs recorded in {replays}: {', '.join(saved)}")

# %% [markdown]
# ## Questions
# 1. Section 1: direct transfer drops more from A to B than from B to A. Looking at the
#    two worlds' pictures, which differences would you expect to hurt a model trained on
#    A most when it meets B?
# 2. Section 2 re-estimates A's BatchNorm statistics without any training. Why does that
#    help, and why can it not close the whole gap?
# 3. MMD alignment makes A's features *look like* B's in distribution. Why does that not
#    guarantee that A's features of one person end up close together?
# 4. The colour transfer and the translator change B's images towards A's. What does the
#    control row (fine-tuning on B as rendered) tell you about how to read their gains?
# 5. Section 9: the baseline itself already closes most of the gap on our worlds. What
#    does that say about where the source labels help, and why is the real-data picture
#    (direct transfer near 30% on Duke -> Market) harder?
#
# ## Summary
# - A labelled source world gives a much better start than a generic backbone, but a
#   model also learns its source's style: the domain gap.
# - Feature statistics carry part of the gap (BatchNorm re-estimation, DSBN). Aligning
#   feature or attribute distributions (MMD, MMFA / TJ-AIDL) and restyling the source
#   images (colour transfer, AdaIN, a CycleGAN-style translator, CamStyle / HHL) move
#   direct transfer, without any target pseudo-label.
# - Clustering-based adaptation (Eq. 12) is the strongest family here as in the survey's
#   Table 3: chapter 2-3's methods started from the source model, SSG, MMT with two
#   source models, SpCL with the source classes in its memory, and cross-domain mixup.
#
# ## References
# - The survey, §3.4 (Eq. 11-12), Table 3.
# - W.-G. Chang et al., *Domain-Specific Batch Normalization for Unsupervised Domain
#   Adaptation*, CVPR 2019; Y. Li et al., *Revisiting Batch Normalization for Practical
#   Domain Adaptation* (AdaBN), 2017.
# - M. Long et al., *Learning Transferable Features with Deep Adaptation Networks* (DAN),
#   ICML 2015; S. Lin et al., *Multi-task Mid-level Feature Alignment Network for
#   Unsupervised Cross-Dataset Person Re-Identification* (MMFA), BMVC 2018; J. Wang et al.,
#   *Transferable Joint Attribute-Identity Deep Learning* (TJ-AIDL), CVPR 2018.
# - E. Reinhard et al., *Color Transfer between Images*, IEEE CG&A 2001; X. Huang, S.
#   Belongie, *Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization*,
#   ICCV 2017; J.-Y. Zhu et al., *Unpaired Image-to-Image Translation using
#   Cycle-Consistent Adversarial Networks*, ICCV 2017; W. Deng et al., *Image-Image Domain
#   Adaptation with Preserved Self-Similarity and Domain-Dissimilarity for Person
#   Re-identification* (SPGAN), CVPR 2018; L. Wei et al., *Person Transfer GAN* (PTGAN),
#   CVPR 2018.
# - Z. Zhong et al., *Camera Style Adaptation for Person Re-identification* (CamStyle),
#   CVPR 2018; Z. Zhong et al., *Generalizing A Person Retrieval Model Hetero- and
#   Homogeneously* (HHL), ECCV 2018.
# - Y. Fu et al., *Self-similarity Grouping* (SSG), ICCV 2019; Y. Ge et al., *Mutual
#   Mean-Teaching* (MMT), ICLR 2020; Y. Ge et al., *Self-paced Contrastive Learning with
#   Hybrid Memory* (SpCL), NeurIPS 2020; C. Luo, C. Song, Z. Zhang, *Generalizing Person
#   Re-Identification by Camera-Aware Invariance Learning and Cross-Domain Mixup*, ECCV 2020.
