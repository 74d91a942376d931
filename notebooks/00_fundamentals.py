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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/notebooks/00_fundamentals.ipynb)
#
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
#
# **On a real dataset.** With `REID_DATASET=market1501:PATH` (or another layout of
# `data/README.md`) the chapter runs on that dataset in place of world A. What only the
# renderer knows is skipped, each time with a sentence saying so: the people's attributes
# and the export of world A to Market-1501's layout (the dataset already is in its layout).
# The tour shows one crop per camera where a dataset has no tracklets. The numbers are
# those of that dataset at the profile's image size, not comparable with the synthetic
# world's or with the prose below, which quotes the synthetic world.

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

session = setup("00")

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from reidlib.data.datasets import read_dataset
from reidlib.data.synthetic import export_market1501
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.evaluation.camera_bias import camera_confusions, same_camera_nearest_share
from reidlib.handcrafted import colour_texture_features, per_camera_normalise
from reidlib.models import build_model
from reidlib.training.features import extract_features
from reidlib.training.supervised import split_validation
from reidlib.viz import EmbeddingExplorer, Snapshot, ranked_lists
from reidlib.viz.grids import MATCH_COLOR, WRONG_COLOR, image_rows

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
world = session.world("A")
print(world.summary())

# %% [markdown]
# The same person through several cameras, one row per person and one crop per tracklet
# (a tracklet is one pass in front of one camera). People are seen by different numbers of
# cameras, so the rows differ in length. Look at what changes (light, colour cast,
# background, viewpoint, occluders) and what stays (the clothes).

# %%
train = world.train
people = np.unique(train.pids)[:4]
rows = []
for pid in people:
    idx = np.flatnonzero(train.pids == pid)
    # a dataset without tracklets (-1) shows one crop per camera instead
    passes = train.camids[idx] if (train.tracklets[idx] < 0).all() else train.tracklets[idx]
    _, first = np.unique(passes, return_index=True)
    rows.append(idx[first][:6])
image_rows(train.images, rows, titles=[[f"c{train.camids[i] + 1}" for i in r] for r in rows],
           row_labels=[f"id {pid}" for pid in people])

# %% [markdown]
# The renderer knows each person's attributes (it drew them); a model never sees them.
# Here they are for the four people above, in words. Chapter 4 uses them for attribute
# alignment and chapter 6 for text queries.

# %%
if session.on_real_data:
    print("skipped on a real dataset: its people's attributes were never labelled here")
else:
    display(pd.DataFrame(world.describe_people(people), index=[f"id {pid}" for pid in people]))

# %% [markdown]
# And one camera at a time (different people in each row). Each camera paints everyone
# with its own light and background: two *different* people in one camera can look more
# alike than *one* person in two cameras. Section 4 finds such pairs by distance.

# %%
cams = np.unique(train.camids)[:4]
rows = [np.flatnonzero(train.camids == c)[::7][:6] for c in cams]
image_rows(train.images, rows, row_labels=[f"camera {c + 1}" for c in cams])

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
if session.on_real_data:
    print(f"skipped on a real dataset: {session.dataset} was read from its own layout already")
else:
    export_dir = session.results_dir.parent / f"market1501-{world.name}"
    if not export_dir.exists():
        export_market1501(world, export_dir, progress=False)
    records = read_dataset("market1501", export_dir)
    print(records.summary())
    print("first query file:", records.query[0].path.split("/")[-1])
    junk = int((world.gallery.pids == -1).sum())
    print(f"gallery: {len(world.gallery)} crops exported, {junk} of them junk ('-1_c...' "
          f"files); {len(records.gallery)} read back")
    assert len(records.gallery) == len(world.gallery) - junk
    assert len(records.query) == len(world.query)

# %% [markdown]
# Two counts differ between the world and what the reader returns, and both are the
# protocol at work, not lost files. The junk crops are written to disk (as in the real
# Market-1501) and dropped by the reader, as the official evaluation ignores them. And the
# world counts distractor id `0` as one more "identity" in the gallery, while the reader
# counts only real people (id > 0): distractors are many different people sharing one
# label, so they stay in the gallery as negatives but are never an identity to find.

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
# so the Market-1501 protocol removes them from the query's list, and the junk crops too.
# A query left with no match at all is skipped.
#
# Here is the whole protocol in plain numpy, one query at a time:

# %%
def valid_gallery(q_pid, q_cam, g_pids, g_cams):
    """Market-1501: drop junk (pid -1) and the query's own identity seen by its own camera."""
    return (g_pids != -1) & ~((g_pids == q_pid) & (g_cams == q_cam))


def match_ranks(dist_row, q_pid, q_cam, g_pids, g_cams):
    """1-based ranks of the query's matches in its ranked list, after the protocol's filter."""
    keep = valid_gallery(q_pid, q_cam, g_pids, g_cams)
    order = np.argsort(dist_row[keep], kind="stable")
    return np.flatnonzero(g_pids[keep][order] == q_pid) + 1


def metrics_by_hand(dist, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    aps, inps, firsts = [], [], []
    for row, pid, cam in zip(dist, q_pids, q_cams, strict=True):
        hits = match_ranks(row, pid, cam, g_pids, g_cams)
        if len(hits) == 0:
            continue  # no valid match: the query is skipped
        aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))  # precision at each match
        inps.append(len(hits) / hits[-1])  # |P| / rank of the hardest match
        firsts.append(hits[0])
    cmc = [np.mean(np.array(firsts) <= r) for r in range(1, max_rank + 1)]
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "cmc": np.array(cmc)}

# %% [markdown]
# To check it on real distances we need features. Take the colour-texture histograms
# that section 4 looks at closely, compare every query with every gallery crop, and hold
# our code against `reidlib.evaluation.evaluate`, which computes the same numbers without
# sorting a single row (see its docstring) and is what the rest of the course uses.
#
# One detail: two gallery crops at *exactly* the same distance have no order. `evaluate`
# counts such a tie as one step; our `argsort` puts them in file order. In float32 a few
# thousand distances here tie by rounding alone, so the check uses float64 distances,
# where none do, and then the two agree to the last digit.

# %%
labels = (world.query.pids, world.gallery.pids, world.query.camids, world.gallery.camids)
q_hand = colour_texture_features(world.query.images)
g_hand = colour_texture_features(world.gallery.images)
dist64 = pairwise_distance(q_hand.double(), g_hand.double()).numpy()

ours, library = metrics_by_hand(dist64, *labels), evaluate(dist64, *labels)
for key in ("mAP", "mINP", "cmc"):
    np.testing.assert_allclose(ours[key], library[key], rtol=1e-12)
print(f"{len(dist64)} queries x {dist64.shape[1]} gallery crops: our mAP "
      f"{ours['mAP']:.6f} = reidlib's {library['mAP']:.6f}; mINP and the CMC curve agree too")

# %% [markdown]
# ## 4. The handcrafted baseline, and a first sight of camera bias
#
# Before deep learning, a person was described by colour and texture histograms over
# horizontal stripes (ELF, LOMO; survey §1). `colour_texture_features` computes joint HSV
# histograms and LBP texture codes per stripe, weighted towards the crop's centre.
#
# First, the claim of section 2, measured. Put every test crop of a real person (queries
# and gallery together) in one pool, and for each crop find (a) the nearest crop of
# *another* person in the *same* camera and (b) the nearest crop of the *same* person in
# *another* camera. When (a) is nearer than (b), the camera has beaten the person.

# %%
pool_pids = np.concatenate([world.query.pids, world.gallery.pids])
pool_cams = np.concatenate([world.query.camids, world.gallery.camids])
real = pool_pids > 0
pool = {"images": np.concatenate([world.query.images, world.gallery.images])[real],
        "pids": pool_pids[real], "cams": pool_cams[real]}
hand = torch.cat([q_hand, g_hand])[real]
found = camera_confusions(pairwise_distance(hand, hand), pool["pids"], pool["cams"])
print(f"for {found['confused'].mean():.0%} of {real.sum()} crops, another person in the same "
      "camera is nearer than the person's own nearest crop from another camera")

# %% [markdown]
# Three of those crops, drawn at random: the crop, its look-alike in the same camera (red
# frame) and the same person's nearest crop in another camera (green frame), each with its
# distance $d$ to the crop on the left.

# %%
picked = np.random.default_rng(session.seed).choice(np.flatnonzero(found["confused"]), 3,
                                                   replace=False)


def caption(i, who=None):
    crop = f"id {pool['pids'][i]}, c{pool['cams'][i] + 1}"
    if who is None:
        return crop
    j, d = found[who][i], found[f"{who}_dist"][i]
    return f"{who.replace('_', ' ')}, c{pool['cams'][j] + 1}\nd = {d:.2f}"


image_rows(
    pool["images"],
    [[i, found["other_person"][i], found["same_person"][i]] for i in picked],
    titles=[[caption(i), caption(i, "other_person"), caption(i, "same_person")] for i in picked],
    border_colors=[[None, WRONG_COLOR, MATCH_COLOR]] * len(picked),
    panel_height=2.4,
)

# %% [markdown]
# How does such a feature retrieve? We score it as it is, and after the simplest
# camera-aware trick: subtract each camera's mean feature (it uses only camera ids, never
# identities, so it is fair in the unsupervised setting). The last column is the share of
# queries whose *nearest* valid gallery crop comes from the query's own camera.

# %%
cams_all = np.concatenate([world.query.camids, world.gallery.camids])
centred = per_camera_normalise(torch.cat([q_hand, g_hand]).double(), cams_all, standardise=False)
dist_centred = pairwise_distance(centred[: len(q_hand)], centred[len(q_hand):]).numpy()

table = {}
for name, dist in (("handcrafted", dist64), ("handcrafted, camera mean removed", dist_centred)):
    r = evaluate(dist, *labels)
    share, chance = same_camera_nearest_share(dist, *labels)
    table[name] = {"mAP": r["mAP"], "rank-1": r["cmc"][0], "mINP": r["mINP"],
                   "nearest from own camera": share}
print(f"a camera-blind feature would take its nearest match from the query's camera "
      f"{chance:.0%} of the time")
pd.DataFrame(table).T.style.format("{:.1%}")

# %% [markdown]
# For many queries the nearest valid gallery crop comes from the query's own camera, far
# more often than chance: the features describe the camera as much as the person.
# Removing each camera's mean takes part of that away and mAP rises. Keep this picture in
# mind for chapter 3.
#
# ## 5. The supervised upper bound
#
# With identity labels, a CNN learns what stays the same across cameras. Our baseline is
# the strong recipe of Luo et al. (*Bag of tricks*): a backbone with GeM pooling and a
# BNNeck, cross-entropy with label smoothing (Eq. 1) plus batch-hard triplet loss (Eq. 5)
# on P x K batches (P identities, K images each). The backbone starts from weights
# pretrained on a separate synthetic world, on clothing attributes rather than identities:
# our honest stand-in for ImageNet weights (see `reidlib.models.pretrained`).
#
# An upper bound must be trained to its plateau, or every later method looks closer to it
# than it is. How many epochs is that? Not a question for the test set: 10% of the
# *training* identities are held out as a validation query / gallery, and
# `benchmarks/upper_bound_epochs.py` traced their mAP over a long run to find where it
# stops rising; the profile's epoch count comes from there, and the weights kept are those
# of the best validation epoch. `session.upper_bound_run` trains once and caches the model
# with its history; every chapter calls `session.upper_bound` and gets this same model.

# %%
model, history = session.upper_bound_run(world)
_, val_query, val_gallery = split_validation(world.train, val_fraction=0.1, seed=0)  # its split
print(f"validation: {val_query.num_ids} held-out training identities, {len(val_query)} queries, "
      f"{len(val_gallery)} gallery crops; test: {world.query.num_ids} identities, "
      f"{len(world.query)} queries, {len(world.gallery)} gallery crops")

# %% [markdown]
# Every model in the course is scored on the test split by one function,
# `session.score`, with the same test-time options: each crop's feature is averaged with
# its mirror image's (flip), and each camera's mean and scale are removed from query and
# gallery features together (camera ids only). Written out, and checked against it with
# our own metric code of section 3:

# %%
def test_distances(model):
    """The distances session.score ranks by: flip-averaged features, camera-normalised."""
    qf = extract_features(model, world.query, flip=True, progress=False)
    gf = extract_features(model, world.gallery, flip=True, progress=False)
    both = per_camera_normalise(torch.cat([qf, gf]), cams_all)  # mean and scale, per camera
    return pairwise_distance(both[: len(qf)], both[len(qf):]).numpy()


generic = build_model(profile.arch, weights="synthetic").to(session.device).eval()
distances = {}
for name, net in (("generic backbone", generic), ("supervised upper bound", model)):
    distances[name] = test_distances(net)
    ours, scored = metrics_by_hand(distances[name], *labels), session.score(net, world)
    assert np.allclose([ours["mAP"], ours["cmc"][0], ours["mINP"]],  # float32: ties aside
                       [scored["mAP"], scored["rank1"], scored["mINP"]], rtol=1e-4)
    share, _ = same_camera_nearest_share(distances[name], *labels)
    table[f"{name} (flip, camera norm)"] = {"mAP": scored["mAP"], "rank-1": scored["rank1"],
                                            "mINP": scored["mINP"],
                                            "nearest from own camera": share}
pd.DataFrame(table).T.style.format("{:.1%}")

# %% [markdown]
# The generic backbone is the same network before any identity training: the gap to the
# upper bound is what labels buy. The curve below is the upper bound's training: the
# validation mAP per epoch (held-out *training* identities) and, for comparison only, the
# test mAP of the kept model. Nothing was chosen on the test line.

# %%
val = history.column("val_mAP")
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.plot(range(1, len(val) + 1), val, marker=".", label="validation mAP (held-out training ids)")
ax.axhline(table["supervised upper bound (flip, camera norm)"]["mAP"], color="grey", ls="--",
           label="test mAP of the kept model")
ax.axvline(history.best_epoch + 1, color="grey", lw=0.8)
ax.set(xlabel="epoch", ylabel="mAP", ylim=(0.5, 1),
       title=f"Upper bound: {len(val)} epochs, weights of epoch {history.best_epoch + 1} kept")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# Every later chapter reads its numbers against this upper bound: an unsupervised method
# that reaches, say, 80% of the supervised mAP without a single label is doing well.

# %%
sup = table["supervised upper bound (flip, camera norm)"]
session.record(
    handcrafted_mAP=table["handcrafted"]["mAP"],
    handcrafted_camnorm_mAP=table["handcrafted, camera mean removed"]["mAP"],
    handcrafted_same_camera_share=table["handcrafted"]["nearest from own camera"],
    handcrafted_confused_share=float(found["confused"].mean()),
    pretrained_mAP=table["generic backbone (flip, camera norm)"]["mAP"],
    supervised_mAP=sup["mAP"], supervised_rank1=sup["rank-1"], supervised_mINP=sup["mINP"],
    supervised_epochs=len(val), supervised_best_epoch=history.best_epoch + 1,
)
print(f"recorded to {session.results_path.name}")

# %% [markdown]
# ## 6. Ranked lists
#
# The query (blue) and its top matches under the supervised model: green frames are the
# same person, red are not; `cN` is the camera. Same-camera matches and junk are already
# removed.

# %%
ranked_lists(distances["supervised upper bound"], world.query, world.gallery,
             query_indices=[0, 5, 10, 15], top_k=8)

# %% [markdown]
# ## 7. The embedding explorer
#
# Each point is one crop of 25 test identities, placed by UMAP so that nearby features are
# nearby points. The slider moves from handcrafted features through the generic backbone to
# the supervised model; colour by identity to see identities gather, by camera to see
# camera bias fade. (In an HTML export you see the three panels side by side, coloured by
# identity, then by camera.)

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

# %%
explorer.static("camid")

# %% [markdown]
# ## Questions
# 1. In section 4, why does subtracting each camera's mean feature help? What would it do
#    if every camera saw a different set of people (no person in two cameras)?
# 2. In section 5, the validation mAP during training is higher than the test mAP. Give
#    two reasons.
# 3. In section 7, coloured by camera: in which snapshot do cameras form their own
#    clusters?
# 4. In the table of section 5, the supervised model takes its nearest valid match from
#    the query's own camera *less* often than a camera-blind feature would by chance.
#    How can a good model fall below chance?
# 5. For every row of that table mINP is well below mAP. What does that say about a
#    query's hardest match?
#
# ## Summary
# - Re-id ranks a gallery by feature distance to a query; mAP, CMC and mINP score the
#   ranking under the Market-1501 protocol, ignoring same-camera matches and junk. You
#   wrote them in twenty lines of numpy; `reidlib.evaluation.evaluate` gives the same
#   numbers.
# - Handcrafted colour features are dominated by the camera: camera bias.
# - The supervised model, trained to its validation plateau and scored like every other
#   model (`session.score`), sets the upper bound for the rest of the course.
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
