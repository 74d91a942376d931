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
# # Demo chapter (for the course runner's tests only)
#
# A tiny notebook with the shape of a real chapter: the setup call, a computation,
# a figure and the recorded headline numbers.

# %%
from reidlib.notebook import setup

session = setup("00", seed=7)

# %%
import matplotlib.pyplot as plt
import numpy as np

sample = np.random.default_rng(session.seed).normal(size=1000)
fig, ax = plt.subplots()
ax.hist(sample, bins=30)
ax.set_title("a normal sample")
plt.show()

# %%
session.record(mean=float(sample.mean()), n=int(sample.size), profile=session.profile.name)
