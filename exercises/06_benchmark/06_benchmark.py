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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/reid-course/unsupervised-reid-hands-on/blob/main/exercises/06_benchmark/06_benchmark.ipynb)
#
# # Exercises, chapter 6: the benchmark and open directions
#
# The survey ends by comparing what the methods reached (§4.3, Tables 3-5: mAP and rank-1
# on Market-1501, DukeMTMC-reID, MSMT17 and the video sets, method by method and year by
# year) and by naming the directions still open (§5). Five small pieces of that chapter.
# Two read results: each approach's best mAP per year and its running best, the
# "frontier" of the survey's Table 3 (q1), and the share of the direct-transfer gap a
# domain-adaptation method closes (q2). One is the loss of a self-supervised start when no
# pretrained weights exist: SimCLR's NT-Xent (Chen et al., ICML 2020; q3). Two are
# text-to-image retrieval, the survey's "text-based" direction (Li et al., CVPR 2017): a
# bag-of-words encoding of attribute descriptions (q4) and the average precision of one
# text query against an image gallery (q5). Then your functions read the survey's tables
# and the course's recorded runs, score two SimCLR views of world A and retrieve world A's
# people from their descriptions, next to the library's; an open question asks you to
# measure something yourself.
#
# **How it works.** Each exercise has a cell with a function for you to write: replace the
# `raise NotImplementedError(...)` line with your code. The cell below it runs the checks,
# `grader.check("q1")`, and tells you what it expected, what your function returned, and a
# hint. The checks never stop the notebook, so you can run all cells at any time. Your
# instructor has more checks that try other inputs: make the function right, not just the
# examples shown. q1 works on pandas DataFrames, q2 on numbers, q3 and q4 on torch tensors
# (on the CPU), q5 on numpy arrays.

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
if os.path.isdir("reid-course/exercises/06_benchmark"):
    os.chdir("reid-course/exercises/06_benchmark")
if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
from reidlib.notebook import setup

session = setup("ex06")

# %%
import re

import numpy as np
import otter
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display

from reidlib.directions.text import FILLER_WORDS

grader = otter.Notebook(tests_dir="tests")

# %% [markdown]
# ## q1. The frontier of each approach
#
# The survey's Table 3 lists domain-adaptation methods with their year and their
# *approach*: feature alignment (FA), image translation (IT) or clustering (Cluster). Which
# approach led, and when? Two numbers per approach and year answer it: the **best mAP**
# any of its methods reached that year, and the **frontier**, the best it had reached in
# that year or any earlier one (a running maximum: a weaker paper in a later year does not
# move the state of the art back).
#
# `results` is a pandas DataFrame with (at least) the columns `method`, `year` (int),
# `approach`, `target` and `mAP` (float, NaN where the survey prints "-"), one row per
# method and target; `target` names one target dataset. Return a DataFrame with the columns
# `approach`, `year`, `method`, `mAP` and `frontier`:
#
# - one row per (approach, year) that has at least one mAP on `target` (rows of other
#   targets, and rows without an mAP, are skipped);
# - `mAP` the best of that year and `method` the method that reached it; on a **tie**, the
#   method listed **first** in `results`;
# - `frontier` the largest `mAP` of that approach's rows up to and including that year;
# - rows sorted by approach, then year, with a fresh index 0, 1, 2, ...
#
# Leave `results` as it is (no change in place).
#
# Example (target "Market"): Cluster has A 40.0 and B 45.0 in 2018, C 43.0 in 2019, H and I
# 50.0 each in 2020 (and D, 70.0 in 2019, but on "Duke"); IT has E 30.0 in 2018, F without
# an mAP and G 38.0 in 2020. The rows: (Cluster, 2018, B, 45.0, 45.0), (Cluster, 2019, C,
# 43.0, **45.0**), (Cluster, 2020, **H**, 50.0, 50.0), (IT, 2018, E, 30.0, 30.0), (IT, 2020,
# G, 38.0, 38.0).

# %%
def approach_frontier(results, target):
    """Per (approach, year) on target: the best mAP, its method (first listed on ties) and
    the approach's running best up to that year; sorted by approach, then year."""
    raise NotImplementedError("q1: write approach_frontier here")


# %%
grader.check("q1")

# %% [markdown]
# ## q2. The share of the gap closed
#
# A domain-adaptation method starts from a model trained on a labelled source world and
# scored on the target as it is (**direct transfer**, survey §3.4), and is bounded, in
# practice, by a model **supervised** on the target's own labels. Its raw mAP says little
# across datasets: 60% is excellent where direct transfer gives 20%, and poor where it
# gives 58%. Chapter 4 compares methods by the share of the gap they close,
#
# $$\text{share} = \frac{\text{adapted} - \text{direct}}{\text{supervised} - \text{direct}},$$
#
# 0 for no gain over direct transfer, 1 for as good as supervised; below 0 (worse than doing
# nothing) and above 1 are possible and must be kept. When the supervised model does not
# beat direct transfer there is no gap, and a share would be meaningless: raise a
# `ValueError`, as the course's `reidlib.domain_adaptation.compare.gap_recovered` does.
#
# The three arguments are mAPs, all in percent or all as fractions. Return a float.
#
# Example: chapter 4's Cluster Contrast from world A's source model, 12 epochs on world B
# (seed 0): adapted 66.1, direct 44.2, supervised 83.0: 21.9 / 38.8 ≈ 0.564 (its share of
# the upper bound, 66.1 / 83.0 ≈ 0.796, is another number).

# %%
def gap_closed(adapted, direct, supervised):
    """(adapted - direct) / (supervised - direct); ValueError when supervised <= direct."""
    raise NotImplementedError("q2: write gap_closed here")


# %%
grader.check("q2")

# %% [markdown]
# ## Your frontier on the survey's tables, your gap on the course's runs
#
# `reidlib.benchmark.survey` holds the survey's Tables 3-5 as a long table, one row per
# method and dataset, exactly as printed. The cell runs **your** `approach_frontier` on
# Table 3 in both directions between Market-1501 and DukeMTMC-reID (the survey's two UDA
# benchmarks with the most methods), next to the library's `best_per_year` (with a running
# maximum), and plots the frontiers. Then it reads the course's own recorded runs
# (`reidlib.benchmark.table.recorded_rows`, the quick profile's seeds) and computes, with
# **your** `gap_closed`, the share of the gap each domain-adaptation method of chapter 4
# closes (averaged over its seeds, one line per training budget), next to the library's
# `gap_recovered`. Your functions are right when every row agrees.

# %%
from reidlib.benchmark.survey import best_per_year, load_survey_tables
from reidlib.benchmark.table import recorded_rows
from reidlib.domain_adaptation.compare import gap_recovered
from reidlib.notebook import find_repo_root
from reidlib.viz.grids import new_figure

survey = load_survey_tables()
table3 = survey[survey["table"] == 3]
runs = recorded_rows(find_repo_root() / "benchmarks" / "results", "quick")
runs = runs.assign(upper_mAP=pd.to_numeric(runs["upper_mAP"]))
uda = runs[(runs["setting"] == "domain adaptation") & runs["upper_mAP"].notna()]
direct = uda[uda["method"] == "direct transfer"].groupby(["dataset", "source"])["mAP"].mean()
uda = (uda[uda["method"] != "direct transfer"]
       .groupby(["dataset", "source", "method", "budget"], as_index=False)[["mAP", "upper_mAP"]]
       .mean()  # over seeds
       .join(direct.rename("direct"), on=["dataset", "source"], how="inner"))
triples = list(uda[["mAP", "direct", "upper_mAP"]].itertuples(index=False, name=None))
library_shares = [gap_recovered(*triple) for triple in triples]
frontier_agrees = gap_agrees = False
try:
    fig = new_figure(figsize=(10, 3.6), layout="constrained")
    for ax, (source, target) in zip(fig.subplots(1, 2, sharey=True),
                                    (("DukeMTMC-reID", "Market-1501"),
                                     ("Market-1501", "DukeMTMC-reID")), strict=True):
        yours = approach_frontier(table3[table3["source"] == source], target)
        library = best_per_year(survey, "uda", target, source=source)
        same = (list(yours["approach"]) == list(library["family"])
                and list(yours["year"]) == list(library["year"])
                and list(yours["method"]) == list(library["method"])
                and np.allclose(yours["mAP"], library["mAP"])
                and np.allclose(yours["frontier"], library.groupby("family")["mAP"].cummax()))
        frontier_agrees = same if source == "DukeMTMC-reID" else frontier_agrees and same
        for approach, rows in yours.groupby("approach"):
            ax.step(rows["year"], rows["frontier"], where="post", marker="o", label=approach)
        ax.set(title=f"survey Table 3: {source} -> {target}", xlabel="year",
               ylabel="frontier mAP (%)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small")
        print(f"{source} -> {target}: your frontier in the last year: "
              + ", ".join(f"{a} {r['frontier'].iloc[-1]:.1f} ({r['year'].iloc[-1]})"
                          for a, r in yours.groupby("approach")))
    display(fig)
    yours = [gap_closed(*triple) for triple in triples]
    shown = uda.assign(yours=yours, library=library_shares)
    shown = shown.sort_values(["dataset", "budget", "yours"], ascending=[True, True, False])
    print(shown.to_string(index=False, float_format="{:.3f}".format))
    gap_agrees = bool(np.allclose(yours, library_shares, rtol=1e-12, atol=1e-12))
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q1 and q2 (grader.check passes), then run this cell again.")
print("your frontier reproduces the library:", bool(frontier_agrees))
print("your shares of the gap reproduce the library:", gap_agrees)

# %% [markdown]
# ## q3. SimCLR's NT-Xent loss
#
# Every method of chapters 1-5 clusters the features of a network that already means
# something. Without pretrained weights, a network can first learn from the unlabelled
# images alone by *instance discrimination* (survey §5): SimCLR (Chen et al., ICML 2020)
# makes two random augmentations, two **views**, of each of N images and trains a network
# (with a small projection head) so that each view finds its partner among the 2N − 1 other
# views of the batch. Its loss, NT-Xent (normalised temperature-scaled cross-entropy):
#
# $$\ell_{a} = -\log \frac{\exp(s_{a,p(a)} / \tau)}{\sum_{k \ne a} \exp(s_{a,k} / \tau)},
# \qquad \mathcal{L} = \frac{1}{2N} \sum_{a=1}^{2N} \ell_a,$$
#
# over the 2N views: each view a is an **anchor**; its positive p(a) is the other view of
# the same image; the other **2N − 2** views (of both augmentations) are its negatives; the
# sum in the denominator runs over every view **but a itself** (the positive included);
# s is the **cosine** similarity and τ the temperature.
#
# `z1` and `z2` are (N, D) float tensors, row i of each a view of image i; `temperature` a
# float > 0. Return the loss as a scalar torch tensor, built from torch operations so that
# a network can train through it. Small temperatures are common (0.1, 0.07): exp(s / τ)
# computed directly overflows, so let a log-softmax do the exponentials.
#
# Example, τ = 0.5: z1 = (3, 4), (1, 0) and z2 = (4, 3), (0, 2). The unit views are
# (0.6, 0.8), (1, 0), (0.8, 0.6), (0, 1). Image 0's views have cosine 0.96 and their
# negatives 0.6 and 0.8: ℓ = −log(e^1.92 / (e^1.92 + e^1.2 + e^1.6)) ≈ 0.794 for both.
# Image 1's views are orthogonal (cosine 0) and look more like image 0's (0.6, 0.8): ℓ ≈
# 2.227 for both. 𝓛 ≈ (2 · 0.794 + 2 · 2.227) / 4 ≈ 1.511.

# %%
def nt_xent_loss(z1, z2, temperature):
    """SimCLR's NT-Xent over the 2N views: cosine / temperature, the other view the positive,
    the other 2N - 2 views the negatives, the mean over the 2N anchors."""
    raise NotImplementedError("q3: write nt_xent_loss here")


# %%
grader.check("q3")

# %% [markdown]
# ## Your NT-Xent on two views of world A
#
# The cell takes 32 training images of world A, draws two SimCLR views of each
# (`simclr_augment`: a random resized crop with a mirror, then colour distortion) and
# passes both through chapter 2's generic start (the world-P backbone): z1 and z2 are the
# two views' features. It computes **your** `nt_xent_loss` at τ = 0.1 and its gradient
# with respect to the features, next to the library's `nt_xent`. Two yardsticks: a network
# that sees every view as equally like the 2N − 1 = 63 others scores log(63) ≈ 4.14, and
# finds the partner as a view's nearest other view for 1 view in 63 (`agreement`). The
# backbone was trained with labels on another world, not to tell instances apart: compare.
# Your function is right when the loss and its gradient agree with the library's to 1e-5.

# %%
from reidlib.data.synthetic import load_world
from reidlib.directions.selfsup import agreement, nt_xent, simclr_augment
from reidlib.models import build_model

profile = session.profile
world = load_world("A", profile.name)
start = build_model(profile.arch, weights="synthetic").to(session.device).eval()
images = world.train.subset(np.arange(32)).tensor(session.device)
views = torch.Generator(device=images.device).manual_seed(session.seed)
with torch.no_grad():
    z1, z2 = (start(simclr_augment(images, views)).float() for _ in range(2))
a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
library_loss = nt_xent(a, b, 0.1)
library_loss.backward()
print(f"two views of {len(z1)} images, {z1.shape[1]}-D features; chance: "
      f"log(2N - 1) = {np.log(2 * len(z1) - 1):.3f}; each view's nearest other view is its "
      f"partner for {float(agreement(z1, z2)):.0%} of the views")
print(f"{'library':>8}: NT-Xent {library_loss.item():.4f}")
selfsup_agrees = False
try:
    c, d = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    your_loss = nt_xent_loss(c, d, 0.1)
    your_loss.backward()
    largest = max(float((c.grad - a.grad).abs().max()), float((d.grad - b.grad).abs().max()))
    print(f"{'yours':>8}: NT-Xent {your_loss.item():.4f}; your gradient differs from the "
          f"library's by up to {largest:.1e}")
    selfsup_agrees = bool(abs(your_loss.item() - library_loss.item()) < 1e-5 and largest < 1e-5)
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q3 (grader.check passes), then run this cell again.")
print("your NT-Xent reproduces the library:", selfsup_agrees)

# %% [markdown]
# ## q4. A bag of words for attribute descriptions
#
# Text-based person search (Li et al., CVPR 2017) looks for a person from a description
# when no query image exists. The synthetic world knows every person's clothing, so each
# identity has a description such as "red hstripes top, short sleeves, blue trousers,
# backpack, short hair". The course encodes a description as a **bag of words** over a
# fixed vocabulary, as `reidlib.directions.text.Vocabulary.encode` does. A plain bag loses
# which colour goes with which garment ("red top, blue trousers" and "blue top, red
# trousers" hold the same words), so the vocabulary also has one token per
# **modifier-head pair** ("red top", "blue trousers"): the usual n-gram trick.
#
# `texts` is a list of N strings; `tokens` the V tokens of the vocabulary in column order:
# its **words** (single words and a few two-word colours such as "slate blue"), then every
# pair `f"{m} {h}"` of a modifier m and a head h; `modifiers` and `heads` are the tuples of
# modifiers (colours, patterns, "long", "short", "no") and of head nouns ("top",
# "trousers", "hair", "bag", ...). Return an (N, V) **float32** tensor whose entry (i, v)
# **counts** token v in text i, with exactly the library's rules:
#
# 1. lower-case the text and cut it into **phrases** at every `,`, `;` and `.`;
# 2. in each phrase, read the space-separated words left to right, matching the
#    vocabulary's words (the tokens that are not pairs) **longest first**: "slate blue" is
#    one word, and so is "blue" when "slate" does not precede it; skip the filler words
#    `FILLER_WORDS` (a, an, and, the, with, wearing, in, of); any other word is a
#    **ValueError** naming it (a typo such as "trosers" must not silently change a query);
# 3. when the phrase's **last** matched word is a head, every *other* matched word of the
#    phrase that is a modifier also gives the pair token "modifier head";
# 4. count every word and pair token (a word twice in a text counts 2).
#
# Example: "Red hstripes top, blue trousers" gives red, hstripes, top, **red top**,
# **hstripes top** (phrase 1), blue, trousers, **blue trousers** (phrase 2), one each;
# "blue hstripes top, red trousers" has the same five words but the pairs blue top,
# hstripes top and red trousers. "slate blue top; long hair" gives slate blue, top, slate
# blue top, long, hair, long hair. "top red" gives top and red only: its last word is not a
# head.

# %%
def bag_of_words(texts, tokens, modifiers, heads):
    """(N, V) float32 token counts of texts: per phrase (, ; .), the vocabulary's words
    (longest first, filler skipped, unknown words a ValueError) and modifier-head pairs."""
    raise NotImplementedError("q4: write bag_of_words here")


# %%
grader.check("q4")

# %% [markdown]
# ## q5. The average precision of one text query
#
# A text query embeds its description into the image feature space and ranks the whole
# image gallery by **similarity** (the dot product of unit vectors: larger means more
# alike). The relevant images are those of the described person. A text has **no camera**,
# so the Market-1501 rule that leaves out the query's person in the query's camera does not
# apply: nothing is left out. Distractors (pid 0) and junk crops (pid −1, no person at all)
# stay in the list as negatives, like everyone else who is not the query's person.
#
# Similarities can **tie** (two identical crops, two people with the same description
# score alike...). As `reidlib.evaluation.evaluate` does, count a group of tied images as
# one step, so that the AP does not depend on how a sort orders them: the precision at a
# relevant image with similarity s is
#
# $$P(s) = \frac{\#\{\text{relevant images with similarity} \ge s\}}{\#\{\text{images with
# similarity} \ge s\}},$$
#
# and the AP is the mean of P over the relevant images (without ties: the usual mean of
# m / r_m). A text whose person has no image in the gallery has no AP: return
# `float("nan")` (the mAP skips it).
#
# `similarities` is a (G,) float numpy array, `query_pid` an integer (> 0), `gallery_pids`
# a (G,) integer numpy array. Return the AP as a float.
#
# Example: similarities [0.9, 0.2, 0.7, 0.8, 0.1, 0.5], pids [0, 4, 4, −1, 7, 4], query pid
# 4. By similarity: the distractor, junk, then person 4 at ranks 3, 4 and 5, then person 7:
# AP = (1/3 + 2/4 + 3/5) / 3 ≈ 0.478.

# %%
def text_average_precision(similarities, query_pid, gallery_pids):
    """AP of one text query: the gallery images of its pid relevant, everything else a
    negative (no camera rule), tied similarities one step; NaN without a relevant image."""
    raise NotImplementedError("q5: write text_average_precision here")


# %%
grader.check("q5")

# %% [markdown]
# ## Your bag of words and AP: text-to-image retrieval on world A
#
# The cell trains the course's text encoder (`TextEncoder`: the bag of words through a
# two-layer MLP into the image feature space) on world A's **training** identities, with
# CLIP's symmetric contrastive loss (`fit_text_encoder`; Radford et al., ICML 2021)
# between each identity's description and one of its images, whose features come from the
# frozen generic start (two training images per identity, so that the cell stays short;
# seeded: the same encoder every run). Then every test identity's description is a query:
# **your** `bag_of_words` encodes them, the encoder embeds your bags, and **your**
# `text_average_precision` scores each query's ranking of the gallery; the library's
# `Vocabulary.encode` and `text_to_image_map` do the same. Your functions are right when
# your bags equal the library's and the text mAP agrees to 1e-9.

# %%
from reidlib.directions.text import (
    TextEncoder,
    Vocabulary,
    fit_text_encoder,
    identity_texts,
    text_queries,
    text_to_image_map,
)
from reidlib.training.features import extract_features

pids = world.train.pids
first_two = np.concatenate([np.flatnonzero(pids == p)[:2] for p in np.unique(pids[pids > 0])])
train_images = world.train.subset(np.sort(first_two))
train_features = extract_features(start, train_images, flip=False, progress=False).cpu()
gallery_features = extract_features(start, world.gallery, flip=False, progress=False).cpu()
vocabulary = Vocabulary()
torch.manual_seed(session.seed)
encoder = TextEncoder(vocabulary, train_features.shape[1]).to(session.device)
fit_text_encoder(encoder, identity_texts(world, train_images.pids), train_features,
                 train_images.pids, epochs=60, seed=session.seed, progress=False)
texts, text_pids = text_queries(world)
with torch.no_grad():
    library_text = encoder.embed(texts).cpu()
library = text_to_image_map(library_text, text_pids, gallery_features, world.gallery.pids)
print(f"{len(texts)} descriptions of world A's test people, e.g. {texts[0]!r}; "
      f"{vocabulary}")
print(f"{'library':>8}: text-to-image mAP {library['mAP']:.2%}, rank-1 {library['rank1']:.2%} "
      f"over {library['n_queries']} texts (a random ranking: mAP {library['chance_mAP']:.2%})")
text_agrees = False
try:
    your_bags = bag_of_words(texts, vocabulary.tokens, vocabulary.modifiers, vocabulary.heads)
    same_bags = bool(torch.equal(your_bags.float(), vocabulary.encode(texts)))
    with torch.no_grad():
        your_text = encoder(your_bags.float().to(session.device)).cpu()
    similarities = (your_text.float() @ gallery_features.float().T).numpy()
    your_aps = np.array([text_average_precision(similarities[q], text_pids[q],
                                                world.gallery.pids)
                         for q in range(len(texts))], dtype=np.float64)
    your_map = float(np.nanmean(your_aps))
    print(f"{'yours':>8}: text-to-image mAP {your_map:.2%}; your bags of words "
          f"{'equal' if same_bags else 'differ from'} the library's")
    text_agrees = bool(same_bags and abs(your_map - library["mAP"]) < 1e-9)
except Exception as error:  # a stub or a bug: say so, and let the notebook run on
    print(f"Not yet: {type(error).__name__}: {error}")
    print("Write q4 and q5 (grader.check passes), then run this cell again.")
agree = frontier_agrees and gap_agrees and selfsup_agrees and text_agrees
session.record(plug_back_agrees=bool(agree))
print("your functions reproduce the library:", bool(agree))

# %% [markdown]
# ## Open question: what do the modifier-head pairs buy?
#
# The vocabulary's pairs ("red top") cost 210 of its 252 columns. Measure what they buy,
# with the cell's `train_images`, `train_features`, `gallery_features`, `texts` and
# `text_pids`:
#
# 1. train a second encoder on **words only**: your `bag_of_words` with `heads=()` makes
#    no pair, so the 42 words are the whole vocabulary (`words = [t for t in
#    vocabulary.tokens if " " not in t or t in ("slate blue", "dark teal")]`); a small
#    class with `__len__` and `encode` is all `TextEncoder` and `fit_text_encoder` ask of
#    a vocabulary. Compare its text mAP and rank-1 with the full vocabulary's, for seeds 0,
#    1 and 2 of both;
# 2. count the test descriptions that a bag of words alone cannot tell apart: how many
#    pairs of test identities have equal word-only bags but different full bags, and how
#    many have equal full descriptions (`ambiguous_share` in `reidlib.directions.text`);
# 3. answer in three sentences: how much do the pairs add, and why? What limits the text
#    mAP even with them? What would a real description ("a woman in a red coat carrying a
#    blue bag") need that this encoding cannot give?

# %% [markdown]
# ## Where you stand
#
# All five checks at once. The course's library does the same work at scale:
# `reidlib.benchmark.survey` holds the survey's tables and their comparisons
# (`load_survey_tables`, `best_per_year`, `family_trend`, `gap_to_supervised`, the plots),
# `reidlib.benchmark.table` the course's own benchmark table from the recorded runs;
# `reidlib.directions.selfsup` SimCLR's augmentation, loss and training
# (`simclr_augment`, `nt_xent`, `SimCLR`, `self_supervised_start`), and
# `reidlib.directions.text` the text-to-image pipeline (`Vocabulary`, `TextEncoder`,
# `fit_text_encoder`, `text_to_image_map`).

# %%
questions = ["q1", "q2", "q3", "q4", "q5"]
passed = [q for q in questions if grader.check(q).passed_all]
session.record(checks_passed=len(passed), checks_total=len(questions), passed=passed)
print(f"{len(passed)} of {len(questions)} exercises pass their checks: {passed or 'none yet'}")
