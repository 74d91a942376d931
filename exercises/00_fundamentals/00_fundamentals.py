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
# # Exercises, chapter 0: how Re-ID is measured
#
# Four small functions that sit behind every results table in person re-identification
# (survey §4.2): the average precision of one query, the CMC curve, the Market-1501 rule for
# which gallery images count, and a colour histogram, the oldest way to describe a person.
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. numpy is all you need.

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
# ## Where you stand
#
# All four checks at once. The course's library does the same work at scale:
# `reidlib.evaluation.evaluate` computes AP, CMC and the Market-1501 rule for thousands of
# queries, and `reidlib.handcrafted` builds colour-texture histograms per body stripe.

# %%
questions = ["q1", "q2", "q3", "q4"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
