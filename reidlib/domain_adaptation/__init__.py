"""Unsupervised domain adaptation (course chapter 4; survey challenge 4, §3.4, Eq. 11-12).

A model trained on a labelled source domain (Eq. 11) is adapted to an unlabelled target
domain (Eq. 12, pseudo-labels). The survey groups the methods into mid-level feature
alignment (multi-kernel MMD, D-MMD's alignment of pairwise-distance distributions), image
style transfer (AdaIN, colour statistics transfer: the CPU-sized stand-ins for the GANs of
§3.4.2) and clustering-based adaptation; domain-specific batch normalisation (DSBN) keeps
each domain's statistics apart. Each module names its paper; import from the module itself.
"""
