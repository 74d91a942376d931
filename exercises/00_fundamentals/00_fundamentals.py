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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/exercises/00_fundamentals/00_fundamentals.ipynb)
#
# # Exercises, chapter 0: how Re-ID is measured
#
# Six small functions that sit behind every results table in person re-identification
# (survey §4.2): the average precision of one query, the CMC curve, the Market-1501 rule for
# which gallery images count, a colour histogram (the oldest way to describe a person), the
# inverse negative penalty behind mINP, and the per-camera normalisation that every chapter's
# scorer applies. Then your functions score a real retrieval, next to the library's numbers,
# and an open question asks you to measure something yourself.
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
if os.path.isdir("reid-course/exercises/00_fundamentals"):
    os.chdir("reid-course/exercises/00_fundamentals")
if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from reidlib.notebook import setup

session = setup("ex00")

# %%
import numpy as np
import otter
from matplotlib.colors import rgb_to_hsv  # for q4

grader = otter.Notebook(tests_dir="tests")

# %% [markdown]
# ## q1. Average precision of one query
#
# A query image is compared with every gallery image and the gallery is sorted, most similar
# first. Mark each position 1 if that image shows the query's person (a *match*), else 0:
# `matches = [1, 0, 1, 0]`. The *precision at rank k* is the share of matches among the first
# k images. Average precision averages it over the ranks where the matches are:
#
# $$\mathrm{AP} = \frac{1}{M} \sum_{k:\ \text{matches}[k] = 1} \mathrm{precision@}k,
# \qquad M = \text{number of matches}.$$
#
# For `[1, 0, 1, 0]`: precision 1/1 at rank 1 and 2/3 at rank 3, so AP = (1 + 2/3) / 2 = 0.833.
# The mAP of a paper is the mean of AP over all queries. You may assume at least one match;
# `matches` may be a list, a tuple or a numpy array of 0/1 or booleans.

# %%
def average_precision(matches):
    """AP of one query from its 0/1 match flags in rank order (a float in [0, 1])."""
    raise NotImplementedError("q1: write average_precision here")


# %%
grader.check("q1")

# %% [markdown]
# ## q2. The CMC curve
#
# CMC (cumulative matching characteristics) asks: for what share of the queries is a correct
# match among the top k images? Given each query's *first-match rank* (1 when the top image
# is a match), the curve has one value per k = 1, ..., `max_rank`:
#
# `cmc[k - 1]` = share of queries whose first-match rank is ≤ k.
#
# `cmc[0]`, the *rank-1 accuracy*, is the number papers report next to mAP. A query whose
# first match comes after `max_rank` is a miss at every rank shown.

# %%
def cmc_curve(first_match_ranks, max_rank):
    """CMC curve: a numpy array of length max_rank from the queries' 1-based first-match ranks."""
    raise NotImplementedError("q2: write cmc_curve here")


# %%
grader.check("q2")

# %% [markdown]
# ## q3. Which gallery images count: the Market-1501 rule
#
# Before AP and CMC are computed, some gallery images are taken out of a query's list:
#
# - *junk* images (pid -1: bad detections), and
# - images of the query's own person taken by the query's own camera: finding those is
#   tracking, not re-identification across cameras.
#
# Everything else stays: other people, also in the query's camera, and distractors (pid 0)
# count as wrong answers. Return a boolean numpy array with one value per gallery image,
# `True` for the images that count.

# %%
def valid_gallery_mask(query_pid, query_camid, gallery_pids, gallery_camids):
    """True for the gallery images that count for this query (lists or numpy arrays in)."""
    raise NotImplementedError("q3: write valid_gallery_mask here")


# %%
grader.check("q3")

# %% [markdown]
# ## q4. A hue histogram
#
# Before deep networks, a person was described by colour histograms (survey §1-2): counting
# how much of each colour a picture holds ignores pose and position. The *hue* of a pixel is
# its place on the colour circle: `rgb_to_hsv(image / 255)[..., 0]` gives it in [0, 1]
# (red 0, green 1/3, blue 2/3; grey pixels get 0). Split [0, 1] into `bins` equal bins, a
# pixel with hue h going to bin floor(h × bins) (hue 1 to the last bin), and return the share
# of the pixels in each bin: `bins` numbers that sum to 1. `image` is (H, W, 3) uint8 RGB.

# %%
def hue_histogram(image, bins):
    """Share of the image's pixels in each of `bins` equal hue bins (a numpy array)."""
    raise NotImplementedError("q4: write hue_histogram here")


# %%
grader.check("q4")

# %% [markdown]
# ## q5. The inverse negative penalty (mINP)
#
# AP rewards finding the *easy* matches early; it says little about the hardest one. A user
# who must find **every** image of a person (a missing-person search) has to read down the
# list until the last match. The *inverse negative penalty* (Ye et al., "Deep learning for
# person re-identification: a survey and outlook", TPAMI 2021) measures that cost:
#
# $$\mathrm{INP} = \frac{M}{R_\text{hard}}, \qquad M = \text{number of matches},\quad
# R_\text{hard} = \text{rank of the last match (1-based)}.$$
#
# INP is 1 when every match comes before any wrong image; mINP is its mean over the queries.
# For `[1, 0, 1, 0]`: 2 matches, the last at rank 3, so INP = 2/3 (AP was 0.833). `matches`
# is as in q1, with at least one match.

# %%
def inverse_negative_penalty(matches):
    """INP of one query from its 0/1 match flags in rank order (a float in (0, 1])."""
    raise NotImplementedError("q5: write inverse_negative_penalty here")


# %%
grader.check("q5")

# %% [markdown]
# ## q6. Per-camera feature normalisation
#
# Each camera has its own light, colour cast and background, and a network's features carry
# them: two people seen by one camera can look more alike than one person seen by two
# (chapter 0 measures this *camera bias*; survey §3.3 is about methods against it). A cheap
# cure that needs only camera ids, never identities: describe each image *relative to its
# camera*. For the rows of each camera c, subtract the camera's mean feature and divide
# every dimension by the camera's standard deviation,
#
# $$x \leftarrow \frac{x - \mu_c}{\sigma_c + 10^{-6}}
# \quad (\mu_c, \sigma_c \text{ per dimension, over camera } c\text{'s rows;
# population std, `np.std`'s default}),$$
#
# then divide every row by its length (L2 norm) so that distances compare directions; a row
# of zeros (a camera with a single image) stays zero. `features` is an (N, D) array (or
# nested lists) and `camids` its N camera ids (any integers). Return a new (N, D) numpy array
# and leave the inputs unchanged. This is what `session.score(..., camera_norm=True)` does to
# query and gallery features together in every chapter.

# %%
def camera_normalise(features, camids):
    """Each camera's rows minus its mean, over its std (+ 1e-6), then each row L2-normalised."""
    raise NotImplementedError("q6: write camera_normalise here")


# %%
grader.check("q6")

# %% [markdown]
# ## Your functions on a real retrieval
#
# Now your code does the library's job. The cell below takes the course's generic backbone
# (pretrained on clothing attributes, never on identities), extracts features of world A's
# query and gallery images, and scores the retrieval twice: with **your** functions (q3 picks
# each query's valid gallery images, q1 and q5 score its ranked list, q2 turns the
# first-match ranks into rank-1, q6 normalises the features per camera) and with
# `reidlib.evaluation.evaluate` (and `reidlib.handcrafted.per_camera_normalise`). When your
# functions are right, the two columns agree to the last digit. Until then the cell says
# which function is missing or what went wrong.

# %%
from reidlib.data.synthetic import load_world
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.handcrafted import per_camera_normalise
from reidlib.models import build_model
from reidlib.training.features import extract_features

world = load_world("A", session.profile.name)
backbone = build_model(session.profile.arch, weights="synthetic").to(session.device).eval()
query_features = extract_features(backbone, world.query, progress=False).numpy()
gallery_features = extract_features(backbone, world.gallery, progress=False).numpy()
q_pids, g_pids = world.query.pids, world.gallery.pids
q_cams, g_cams = world.query.camids, world.gallery.camids


def your_scores(dist):
    """mAP, rank-1 and mINP from your q1, q2, q3 and q5, query by query."""
    aps, inps, first_ranks = [], [], []
    for q in range(len(dist)):
        keep = np.asarray(valid_gallery_mask(q_pids[q], q_cams[q], g_pids, g_cams), dtype=bool)
        order = np.argsort(dist[q][keep], kind="stable")
        matches = (g_pids[keep][order] == q_pids[q]).astype(int)
        if matches.sum() == 0:
            continue  # no valid match in the gallery: the query is skipped, as in evaluate
        aps.append(average_precision(matches))
        inps.append(inverse_negative_penalty(matches))
        first_ranks.append(int(np.argmax(matches)) + 1)
    cmc = cmc_curve(np.array(first_ranks), 10)
    return {"mAP": np.mean(aps), "rank1": cmc[0], "mINP": np.mean(inps)}


def library_scores(dist):
    result = evaluate(dist, q_pids, g_pids, q_cams, g_cams)
    return {"mAP": result["mAP"], "rank1": result["cmc"][0], "mINP": result["mINP"]}


both_cams = np.concatenate([q_cams, g_cams])
# float64 distances: float32 ones tie now and then among thousands of gallery images, and
# evaluate breaks ties pessimistically where a plain argsort does not
both_features = np.concatenate([query_features, gallery_features]).astype(np.float64)
n_query = len(query_features)
rows, gap = [], np.inf
try:
    yours_norm = np.asarray(camera_normalise(both_features, both_cams), dtype=np.float64)
    gap = np.abs(yours_norm - per_camera_normalise(both_features, both_cams).numpy()).max()
    print(f"q6 against per_camera_normalise: largest difference {gap:.1e}")
    for name, features in (("raw features", both_features),
                           ("per-camera normalised", yours_norm)):
        dist = pairwise_distance(features[:n_query], features[n_query:]).numpy()
        rows.append((name, your_scores(dist), library_scores(dist)))
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q1, q2, q3, q5 and q6 (grader.check passes), then run this cell again.")
for name, yours, library in rows:
    print(f"{name:>22}:  " + "   ".join(
        f"{key} yours {yours[key]:.2%} / library {library[key]:.2%}" for key in yours))
agree = bool(rows) and gap < 1e-5 and all(
    abs(yours[key] - library[key]) < 1e-9 for _, yours, library in rows for key in yours)
session.record(plug_back_agrees=agree)
print("your functions reproduce the library:", agree)

# %% [markdown]
# ## Open question: whom does per-camera normalisation help?
#
# The table above shows what per-camera normalisation does for a backbone that never saw an
# identity. Does it help a model trained **with** identity labels as much? Measure it:
#
# 1. get the supervised upper bound, `upper = session.upper_bound(world)` (chapter 0's model;
#    trained once and cached), and its query / gallery features (`extract_features`);
# 2. fill a 2 × 2 table of mAP and mINP: {generic backbone, upper bound} × {raw,
#    per-camera normalised} (your `your_scores`, or `library_scores`);
# 3. for the same four, the share of queries whose nearest gallery image comes from the
#    query's own camera: `reidlib.evaluation.camera_bias.same_camera_nearest_share(dist,
#    q_pids, g_pids, q_cams, g_cams)`;
# 4. answer in three sentences: which model gains more from the normalisation, and what in
#    the same-camera shares explains it? Would you expect the gain to shrink or grow on a
#    world with stronger camera styles (chapter 3's dial)?

# %% [markdown]
# ## Where you stand
#
# All six checks at once. The course's library does the same work at scale:
# `reidlib.evaluation.evaluate` computes AP, CMC, mINP and the Market-1501 rule for thousands
# of queries, `reidlib.handcrafted` builds colour-texture histograms per body stripe and
# `per_camera_normalise` is q6.

# %%
questions = ["q1", "q2", "q3", "q4", "q5", "q6"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
