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
# # Chapter 0 — Person re-identification fundamentals
#
# **Learning goals.** After this chapter you can
# 1. state the re-identification task as retrieval, and say why *unsupervised* re-id matters;
# 2. find your way around a multi-camera dataset: identities, cameras, tracklets, the
#    Market-1501 query / gallery protocol and its on-disk layout;
# 3. compute AP, CMC, mAP and mINP by hand and with `reidlib`, and explain why a query's
#    matches *from its own camera* are ignored;
# 4. see camera bias with your own eyes in a handcrafted colour-texture baseline;
# 5. train the supervised upper bound that every later chapter is measured against.
#
# **Recap.** You know PyTorch basics (tensors, modules, a training loop) and what a
# convolutional network and a feature embedding are. Nothing about re-id is assumed.
#
# The course follows the survey *Unsupervised Person Re-Identification: A Systematic Survey
# of Challenges and Solutions* (Lin et al., arXiv:2109.06057); section and equation numbers
# below refer to it.

# %%
from reidlib.notebook import setup

session = setup("00")

# %%
import numpy as np
import torch

from reidlib.data.datasets import read_dataset
from reidlib.data.synthetic import export_market1501, load_world
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.evaluation.camera_bias import same_camera_nearest_share
from reidlib.handcrafted import colour_texture_features, per_camera_normalise
from reidlib.models import build_model
from reidlib.training.features import extract_features
from reidlib.training.supervised import train_or_load
from reidlib.viz import EmbeddingExplorer, Snapshot, image_grid, ranked_lists

profile = session.profile

# %% [markdown]
# ## 1. The task (survey §1–2, Eq. 1)
#
# A person walks past several cameras that do not overlap. Given one crop of them (the
# **query**), re-identification ranks every crop in a collection (the **gallery**) by how
# likely it shows the same person. A model $f$ maps an image to a feature, and the ranking
# is by distance: the best match is $\arg\min_{g} d(f(q), f(g))$. Supervised re-id learns
# $f$ from crops labelled with identities (Eq. 1: a classification loss over those labels).
#
# Labels are the problem: someone must tell, for thousands of people, which crops in which
# cameras show the same person. A new camera network means labelling again, and a model
# trained on one network drops sharply on another. **Unsupervised re-id** learns $f$ from
# unlabelled crops of the target cameras. The survey organises it around four challenges,
# one chapter each: no identity labels (pseudo-labels, ch. 1), learning from *noisy*
# pseudo-labels (ch. 2), camera-invariant features (ch. 3), and the domain gap (ch. 4).

# %% [markdown]
# ## 2. A tour of the synthetic world
#
# Real datasets cannot be downloaded on our machines, so `reidlib` renders its own
# multi-camera world. Each person keeps their clothes, hair and bag in every camera; each
# camera has its own light, colour cast, background, blur and viewpoints; people walk the
# camera network and are filmed in short tracklets. World `A` is a summer campus with six
# cameras, world `B` a winter one with eight (chapter 4 uses the gap between them).

# %%
world = load_world("A", profile.name)
print(world.summary())

# %% [markdown]
# The same person through several cameras, one row per person. Look at what changes
# (light, colour cast, background, viewpoint, occluders) and what stays (the clothes).

# %%
train = world.train
rows = []
for pid in np.unique(train.pids)[:4]:
    idx = np.flatnonzero(train.pids == pid)
    # one image per tracklet: each tracklet is one pass in front of one camera
    _, first = np.unique(train.tracklets[idx], return_index=True)
    rows.append(idx[first][:6])
shown = np.concatenate([np.pad(r, (0, 6 - len(r)), constant_values=-1) for r in rows])
titles = [f"id {train.pids[i]} c{train.camids[i] + 1}" if i >= 0 else "" for i in shown]
images = np.stack([train.images[i] if i >= 0 else np.zeros_like(train.images[0]) for i in shown])
image_grid(images, titles=titles, ncols=6)

# %% [markdown]
# And one camera at a time: different people in one camera can look more alike than one
# person in two cameras. That is camera bias, the subject of chapter 3.

# %%
cams = np.unique(train.camids)[:4]
picks = np.concatenate([np.flatnonzero(train.camids == c)[::7][:6] for c in cams])
image_grid(train.images[picks], titles=[f"c{train.camids[i] + 1}" for i in picks], ncols=6)

# %% [markdown]
# The renderer knows each person's attributes (it drew them); a model never sees them.
# Chapter 4 uses them for attribute alignment and chapter 6 for text queries.

# %%
attrs = world.attributes_of(np.unique(train.pids)[:4])
{k: v.tolist() for k, v in attrs.items() if k in ("upper_pattern", "lower_type", "bag", "hat")}

# %% [markdown]
# ### The Market-1501 protocol and layout
#
# Training and test identities are disjoint. Every test identity is seen by at least two
# cameras; one image per (identity, camera) becomes a query, the rest go to the gallery,
# together with **distractors** (people never queried, id `0`) and **junk** crops (no
# usable person, id `-1`). On disk, Market-1501 stores each crop as
# `PPPP_cCsS_FFFFFF_BB.jpg` in `bounding_box_train/`, `query/` and `bounding_box_test/`.
#
# Our world exports to exactly that layout, and the same reader that reads the real
# Market-1501 reads it back. To use a real dataset instead, put it under `data/<name>/`
# as `data/README.md` describes and call `read_dataset(name, root)`.

# %%
export_dir = session.results_dir.parent / f"market1501-{world.name}"
if not export_dir.exists():
    export_market1501(world, export_dir)
records = read_dataset("market1501", export_dir)
print(records.summary())
print("first query file:", records.query[0].path.split("/")[-1])
assert len(records.query) == len(world.query)

# %% [markdown]
# ## 3. Evaluation: AP, CMC, mAP and mINP (survey §4.2)
#
# For one query, rank the gallery by distance and mark each position as a match or not.
# **Average precision** averages the precision at the rank of every match:
# $AP = \frac{1}{|P|}\sum_{k:\,\text{match at }k} \text{precision@}k$.
# A worked example with matches at ranks 1, 3 and 6:

# %%
matches = np.array([1, 0, 1, 0, 0, 1, 0, 0])
ranks = np.flatnonzero(matches) + 1
precisions = np.cumsum(matches)[matches == 1] / ranks
print("precision at each match:", precisions.round(3), "-> AP =", precisions.mean().round(4))

# %% [markdown]
# Over all queries: **mAP** is the mean AP; **CMC@k** is the share of queries with a match
# in the top $k$ (rank-1 is CMC@1); **mINP** (Ye et al.) averages
# $|P| / \text{rank of the hardest match}$, so it punishes a model that finds the easy
# matches but buries the hard ones.
#
# **Why same-camera matches are removed.** A query and a gallery crop of the same person
# from the *same* camera are often near-duplicates (the same tracklet, the same light).
# Counting them would reward recognising a camera's frames, not a person across cameras,
# so the Market-1501 protocol ignores them (and the junk crops). `reidlib.evaluation.evaluate`
# applies that rule, vectorised in torch.

# %%
def score(qf, gf, name):
    dist = pairwise_distance(qf, gf)
    args = (world.query.pids, world.gallery.pids, world.query.camids, world.gallery.camids)
    r = evaluate(dist, *args)
    share, chance = same_camera_nearest_share(dist, *args)
    print(f"{name:<28} mAP {r['mAP']:6.1%}  rank-1 {r['cmc'][0]:6.1%}  mINP {r['mINP']:6.1%}  "
          f"nearest match from own camera {share:4.0%} (chance {chance:.0%})")
    return dist, r, share

# %% [markdown]
# ## 4. The handcrafted baseline, and a first sight of camera bias
#
# Before deep learning, a person was described by colour and texture histograms over
# horizontal stripes (ELF, LOMO; survey §1). `colour_texture_features` computes joint HSV
# histograms and LBP texture codes per stripe, weighted towards the crop's centre. We also
# try the simplest camera-aware trick: subtract each camera's mean feature (it uses only
# camera ids, never identities, so it is fair in the unsupervised setting).

# %%
q_hand = colour_texture_features(world.query.images)
g_hand = colour_texture_features(world.gallery.images)
_, hand, hand_share = score(q_hand, g_hand, "handcrafted")
both = per_camera_normalise(torch.cat([q_hand, g_hand]),
                            np.concatenate([world.query.camids, world.gallery.camids]),
                            standardise=False)
_, hand_norm, _ = score(both[: len(q_hand)], both[len(q_hand):], "handcrafted + camera norm")

# %% [markdown]
# For most queries the *nearest* valid gallery crop comes from the query's own camera, far
# more often than chance: the features describe the camera as much as the person.
# Per-camera normalisation removes part of that and mAP rises. Keep this picture in mind
# for chapter 3.
#
# ## 5. The supervised upper bound
#
# With identity labels, a CNN learns what stays the same across cameras. Our baseline is
# the strong recipe of Luo et al. (*Bag of tricks*): a backbone with GeM pooling and a
# BNNeck, cross-entropy with label smoothing plus batch-hard triplet loss (survey Eq. 5)
# on P x K batches (P identities, K images each). Model selection uses a validation split
# carved from the *training* identities, never the test set.
#
# The backbone starts from weights pretrained on a separate synthetic world, on clothing
# attributes rather than identities: our honest stand-in for ImageNet weights (see
# `reidlib.models.pretrained`). `train_or_load` trains once and caches the result.

# %%
model, history = train_or_load(
    world.train, arch=profile.arch, cache_dir=session.cache_dir, epochs=profile.epochs,
    p=profile.p, k=profile.k, lr=profile.lr, weights="synthetic", device=session.device,
)
q_sup = extract_features(model, world.query)
g_sup = extract_features(model, world.gallery)
dist_sup, sup, sup_share = score(q_sup, g_sup, "supervised (upper bound)")

# %% [markdown]
# How much of that comes from the labels? The same pretrained backbone *before* any
# identity training:

# %%
generic = build_model(profile.arch, weights="synthetic").to(session.device).eval()
_, pre, _ = score(extract_features(generic, world.query), extract_features(generic, world.gallery),
                  "generic pretrained backbone")

# %% [markdown]
# Every later chapter reads its numbers against this upper bound: an unsupervised method
# that reaches, say, 80% of the supervised mAP without a single label is doing well.

# %%
session.record(
    handcrafted_mAP=hand["mAP"], handcrafted_camnorm_mAP=hand_norm["mAP"],
    handcrafted_same_camera_share=hand_share, pretrained_mAP=pre["mAP"],
    supervised_mAP=sup["mAP"], supervised_rank1=float(sup["cmc"][0]), supervised_mINP=sup["mINP"],
)

# %% [markdown]
# ## 6. Ranked lists
#
# The query (blue) and its top matches: green frames are the same person, red are not;
# `cN` is the camera. Same-camera matches and junk are already removed.

# %%
ranked_lists(dist_sup.numpy(), world.query, world.gallery, query_indices=[0, 5, 10, 15], top_k=8)

# %% [markdown]
# ## 7. The embedding explorer
#
# Each point is one crop of 25 test identities, placed by UMAP so that nearby features are
# nearby points. The slider moves from handcrafted features through the generic backbone to
# the supervised model; colour by identity to see identities gather, by camera to see
# camera bias fade. (In an HTML export you see the three panels side by side.)

# %%
keep = np.isin(world.gallery.pids, np.unique(world.query.pids)[:25])
points = world.gallery.subset(keep)
snapshots = [
    Snapshot(colour_texture_features(points.images).numpy(), "handcrafted"),
    Snapshot(extract_features(generic, points, progress=False).numpy(), "generic backbone"),
    Snapshot(extract_features(model, points, progress=False).numpy(), "supervised"),
]
method = "pca" if profile.name == "smoke" else "umap"  # UMAP's first fit compiles for ~1 min
explorer = EmbeddingExplorer(snapshots, images=points, method=method, seed=session.seed)
explorer.show(colour_by="pid")

# %% [markdown]
# ## Questions
# 1. In section 4, why does subtracting each camera's mean feature help? What would it do
#    if every camera saw a different set of people (no person in two cameras)?
# 2. The validation mAP during training is higher than the test mAP. Give two reasons.
# 3. Colour the explorer by camera: in which snapshot do cameras form their own clusters?
#
# ## Summary
# - Re-id ranks a gallery by feature distance to a query; mAP, CMC and mINP score the
#   ranking under the Market-1501 protocol, ignoring same-camera matches and junk.
# - Handcrafted colour features are dominated by the camera: camera bias.
# - The supervised model sets the upper bound for the rest of the course.
#
# ## References
# - The survey, §1–2 (the task), §4.1–4.2 (datasets, metrics), Eq. 1 and Eq. 5.
# - L. Zheng et al., *Scalable Person Re-identification: A Benchmark* (Market-1501), ICCV 2015.
# - H. Luo et al., *Bag of Tricks and a Strong Baseline for Deep Person Re-identification*,
#   CVPRW 2019.
# - S. Liao et al., *Person Re-identification by Local Maximal Occurrence Representation*
#   (LOMO), CVPR 2015.
# - M. Ye et al., *Deep Learning for Person Re-identification: A Survey and Outlook* (mINP),
#   TPAMI 2021.
# - L. McInnes et al., *UMAP*, 2018.
