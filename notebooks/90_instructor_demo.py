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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/notebooks/90_instructor_demo.ipynb)
#
# # Instructor's demo: replaying clustering dynamics in class
#
# This page is for the person at the front of the room. It trains nothing: chapters 1b, 2
# and 3 record their runs as they train (`reidlib.viz.replay.save_replay`), and this page
# replays them in seconds, so the class can watch the loop of survey §3.1-3.3 happen:
# cluster the features, train on the clusters as if they were identities, cluster again,
# and see where the cameras go.
#
# **In JupyterLab** (live kernel) each view is a WebGL scatter plot (jupyter-scatter):
# - **Play** (or drag the slider) moves every crop from its place at one epoch to its place
#   at the next, so merges and splits are seen happening; the strip under the slider gives
#   the clustering's pairwise F, its number of clusters, its outlier share and, when the
#   run was validated, the validation mAP;
# - **colour by** identity, camera, pseudo-label or label state (the four states used in
#   every chapter: correct, merged into another person's cluster, split fragment, outlier);
# - **hover** a point to see its crop; **click** it to select its whole cluster (the caption
#   says how many people that cluster holds); **lasso** (toolbar) to select a region;
# - in the comparison, one slider drives both runs, and a click in either view selects the
#   point and its nearest neighbours in both: does the other method keep them together?
#
# **In the built HTML** (no kernel) the same views are static figures: a panel per epoch,
# a row for pseudo-labels (a few identities in colour, the rest grey) and a row for the
# four label states. `docs/instructor/demo.md` suggests what to point out.

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

session = setup("90")

# %%
import json

import matplotlib.pyplot as plt
import numpy as np

from reidlib.notebook import find_repo_root
from reidlib.viz.replay import compare, demo, list_replays, load_replay, replay_path

replays = session.replay_dir
recorded = list_replays(replays)
print(f"replays in {replays}: {recorded or 'none'}")
if session.on_real_data:  # $REID_DATASET: say which views are of that dataset
    print(f"On {session.dataset}: the replays are the runs chapters 1b-4 recorded on it; the "
          "stand-in run (when they are missing) and the dials of sections 4 and 5 are the "
          "synthetic worlds'.")

# %% [markdown]
# ## 1. Which runs to show
#
# Chapter 2 records each method it trains on the crops of the same 40 identities, so any
# two of its runs can be compared point by point. Cluster Contrast is the run to demo; the
# comparison puts it next to SpCL, which keeps the images Cluster Contrast leaves out (a
# different grey in the state view), else next to CE + triplet, else next to any other
# run of the same images. When chapter 2 has not run
# yet, this page says so and records a tiny run of its own (the smoke world, three epochs,
# about a minute) so that it always works; the numbers of that tiny run mean nothing.

# %%
def find(names, *words):
    """The replay named by ``words`` exactly, else the first whose name holds them all
    (case and separators ignored)."""
    flat = {name: " ".join(name.lower().replace("-", " ").replace("_", " ").split())
            for name in names}
    exact = [name for name in names if flat[name] == " ".join(words)]
    return exact[0] if exact else next(
        (name for name in names if all(w in flat[name].split() for w in words)), None)


def same_images(a, b):
    first, second = load_replay(replays, a), load_replay(replays, b)
    return len(first.images) == len(second.images) and np.array_equal(
        first.snapshots[0].pid, second.snapshots[0].pid)


main = find(recorded, "cluster", "contrast")
partner = None
if main is not None:
    partners = [find(recorded, "spcl"), find(recorded, "ce", "triplet"), *recorded]
    partner = next((n for n in partners if n and n != main and same_images(main, n)), None)
if main is None or partner is None:
    print("Chapter 2's Cluster Contrast replay (and a second run of the same images) is "
          "missing: run chapter 02 first (make course). Recording a tiny stand-in run now.")

# %% [markdown]
# The stand-in, only when chapter 2's replays are missing: the same loop as chapter 2
# (`reidlib.training.fit` with DBSCAN on the Jaccard distance), on the smoke world.

# %%
if main is None or partner is None:
    from reidlib.data.synthetic import load_world
    from reidlib.feature_learning import ClusterContrast
    from reidlib.models import build_model
    from reidlib.pseudo_labels.generators import jaccard_dbscan
    from reidlib.training import PseudoLabelClassification, fit
    from reidlib.viz.replay import save_replay

    replays = session.replay_dir / "stand-in"
    tiny = load_world("A", "smoke")
    train = tiny.train.subset(tiny.train.pids >= 0)
    rows = np.flatnonzero(np.isin(train.pids, np.unique(train.pids)[:30]))
    for name, make in (("Cluster Contrast (stand-in)", ClusterContrast),
                       ("CE + triplet (stand-in)", PseudoLabelClassification)):
        if not replay_path(replays, name).exists():
            method = make(build_model("small", weights="synthetic").to(session.device))
            history = fit(method, train, cluster=jaccard_dbscan(k1=20, k2=6, eps=0.5),
                          epochs=3, lr=1e-3, p=8, k=4, seed=session.seed,
                          snapshot_rows=rows, progress=False)
            save_replay(replays, name, history, train.subset(rows), method="pca")
    main, partner = "Cluster Contrast (stand-in)", "CE + triplet (stand-in)"
print(f"demo: {main}; compared with: {partner}")

# %% [markdown]
# ## 2. One run, epoch by epoch
#
# Press Play. Colour by *pseudo-label* first (clusters form and merge), then by *state*
# (where the labels are wrong, and how), then by *camera* (do clusters still follow the
# cameras?). Click a red (merged) point: the caption names how many people its cluster
# holds.

# %%
demo(replays, main)

# %% [markdown]
# The same run as curves: how good the labels were at each epoch (pairwise F over all
# training images), how many images the clustering left out, and the validation mAP where
# the run measured it.

# %%
run = load_replay(replays, main)
epochs = run.column("epoch")
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
left.plot(epochs, run.column("pairwise_f"), "o-", label="pairwise F")
left.plot(epochs, run.column("outlier_share"), "s--", label="outlier share")
left.set(xlabel="epoch", ylim=(0, 1), title=f"{run.name}: pseudo-label quality")
left.legend(fontsize=8)
val = [(e, m) for e, m in zip(epochs, run.column("val_mAP"), strict=True) if m is not None]
if val:
    right.plot(*zip(*val, strict=True), "o-")
    right.set(xlabel="epoch", ylabel="validation mAP", title="validation mAP")
else:
    right.plot(epochs, run.column("n_clusters"), "o-")
    right.set(xlabel="epoch", ylabel="clusters", title="number of clusters (no validation)")
for ax in (left, right):
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
plt.show()

# %% [markdown]
# ## 3. Two runs of the same images, side by side
#
# One slider moves both. Click a point in either view: it and its eight nearest neighbours
# (in that run's features) are selected in both. Pick a point whose neighbours are all one
# person in one run; are they still together in the other?

# %%
compare(replays, main, partner)

# %% [markdown]
# ## 4. Chapter 3: where the camera goes
#
# Chapter 3 records its runs under "chapter 3, ...". Side by side: Cluster Contrast and
# the same method with camera-based BatchNorm, on the same 40 people. Colour by *camera*
# and play: look for groups of one colour, a person whose images from different cameras
# never met. Then show the camera-bias dial that chapter 3 recorded (quick profile): mAP
# and one-camera clusters as the world's camera style grows.

# %%
def chapter_pair(chapter, first, second):
    """Chapter ``chapter``'s two recorded runs named by the words ``first`` and ``second``
    (the exact name first), side by side; a note when the chapter has not run."""
    a = find(recorded, "chapter", chapter, *first)
    b = next((r for words in second if (r := find(recorded, "chapter", chapter, *words))),
             None)
    if a and b and a != b:
        compare(replays, a, b)
    else:
        print(f"Chapter {chapter}'s replays are not recorded in this profile yet: run chapter "
              f"{int(chapter):02d} first (make course).")


chapter_pair("3", ("cluster", "contrast"), [("camera", "bn")])

# %%
dial_path = find_repo_root() / "benchmarks" / "results" / "ch3-runs-quick.json"
if dial_path.exists():
    runs = [r for r in json.loads(dial_path.read_text())["runs"]
            if r["seed"] == 0 and r["settings"]["epochs"] == 3]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    for name in ("Cluster Contrast", "camera BN"):
        line = sorted((r["style"], r["mAP"], r["single_camera_share"]) for r in runs
                      if r["method"] == name)
        if len(line) > 1:
            styles, maps, shares = zip(*line, strict=True)
            left.plot(styles, maps, "o-", label=name)
            right.plot(styles, shares, "o-", label=name)
    left.set(xlabel="camera style s", ylabel="test mAP", title="the dial: mAP (quick, seed 0)")
    right.set(xlabel="camera style s", ylabel="share", title="one-camera clusters")
    left.legend(fontsize=8)
    plt.show()
else:
    print(f"{dial_path} is missing: run benchmarks/chapter3_runs.py (chapter 3, section 11)")

# %% [markdown]
# ## 5. Chapter 4: a source model adapts to a new world
#
# Chapter 4 records its clustering-based runs under "chapter 4, ...", every one started
# from world B's supervised model and trained on world A. Side by side: the chapter's
# baseline (Cluster Contrast from the source model) and MMT with two source models. Colour
# by *identity*: B's model already groups many of A's people at epoch 0; watch which run
# gathers the rest first. Then the domain-gap dial that chapter 4 recorded: direct
# transfer and adaptation as the source world moves away from A.

# %%
chapter_pair("4", ("cluster", "contrast"), [("mmt",), ("ssg",)])

# %%
gap_path = find_repo_root() / "benchmarks" / "results" / "ch4-runs-quick.json"
if gap_path.exists():
    record_4 = json.loads(gap_path.read_text())
    refs = {(r["source"], r["gap"]): r for r in record_4["references"]}
    line = sorted((r["gap"], refs[(r["source"], r["gap"])]["direct"]["mAP"], r["mAP"])
                  for r in record_4["runs"] if r["source"] == "B" and r["seed"] == 0
                  and r["method"] == "Cluster Contrast" and r["settings"]["epochs"] == 12)
    if len(line) > 1:
        gaps, direct, adapted = zip(*line, strict=True)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(gaps, direct, "o-", label="direct transfer")
        ax.plot(gaps, adapted, "o-", label="Cluster Contrast from the source model")
        ax.set(xlabel="domain gap g (1 = world B)", ylabel="test mAP on A",
               title="the domain-gap dial (quick, seed 0, 12 epochs)")
        ax.legend(fontsize=8)
        plt.show()
else:
    print(f"{gap_path} is missing: run benchmarks/chapter4_runs.py --gaps (chapter 4)")

# %% [markdown]
# ## 6. Chapter 5: tracklets as free positives
#
# Chapter 5 records its runs under "chapter 5, ...". Side by side: Cluster Contrast on
# single frames and UTAL, which learns from the tracklets a tracker cut. Colour by
# *identity*: the frames of one tracklet start together in both; watch whether a person's
# tracklets from different cameras meet.

# %%
chapter_pair("5", ("cluster", "contrast"), [("utal",)])

# %% [markdown]
# ## 7. Recording your own runs
#
# Any run of `reidlib.training.fit` can be replayed: pass the rows to keep in each snapshot
# (a few dozen identities read best) and save the history with the crops of those rows:
#
# ```python
# history = fit(method, train, cluster=..., snapshot_rows=rows, ...)
# save_replay(session.cache_dir / "replays", "my run", history, train.subset(rows))
# demo(session.cache_dir / "replays", "my run")
# ```
