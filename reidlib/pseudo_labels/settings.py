"""Chapter 1's clustering and loop settings per profile, in one place (survey §3.1).

Notebooks 01a / 01b and ``benchmarks/chapter01_seeds.py`` read them from here, so the
benchmark's recorded seeds are runs of exactly the notebook's settings.

- Jaccard k1 should be about the number of crops one person has: the papers' k1 = 20-30
  suits Market-1501 (~17 crops per identity, the ``full`` world) but lumps people together
  in the smaller worlds (~6-9 crops per identity), hence k1 = 10 there. k2 = 6 and
  min_samples = 4 are the papers' values.
- eps: the papers' 0.55-0.6 for ``full``; 0.5 for ``smoke`` / ``quick``, read from chapter
  1's eps sweep with the hidden training identities (a choice no real method can make;
  chapter 1b says so and shows how much it matters).
- The loop: ``rounds`` x ``epochs_per_round`` epochs of CE + batch-hard triplet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterSettings:
    """DBSCAN on the Jaccard distance: k1, k2 (self counted), eps, min_samples."""

    k1: int
    k2: int
    eps: float
    min_samples: int


@dataclass(frozen=True)
class LoopSettings:
    """The cluster -> train loop's length."""

    rounds: int
    epochs_per_round: int


def cluster_settings(profile: str) -> ClusterSettings:
    """Chapter 1's DBSCAN-on-Jaccard settings for ``profile`` (module docstring)."""
    if profile == "full":
        return ClusterSettings(k1=20, k2=6, eps=0.55, min_samples=4)
    if profile in ("smoke", "quick"):
        return ClusterSettings(k1=10, k2=6, eps=0.5, min_samples=4)
    raise ValueError(f"unknown profile {profile!r}: expected smoke, quick or full")


def loop_settings(profile: str, supervised_epochs: int) -> LoopSettings:
    """Rounds x epochs of chapter 1's loop: smoke only checks that it runs; full spends
    half of chapter 0's supervised epoch budget."""
    table = {"smoke": (2, 1), "quick": (4, 2), "full": (6, max(1, supervised_epochs // 12))}
    if profile not in table:
        raise ValueError(f"unknown profile {profile!r}: expected one of {sorted(table)}")
    return LoopSettings(*table[profile])
