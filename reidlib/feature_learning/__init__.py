"""Feature learning with noisy pseudo-labels (course chapter 2; survey §3.2, Eq. 4-5, and
§3.3's look-up-table loss, Eq. 6-7).

One small class per paper, each trained by the course's one loop,
:func:`reidlib.training.fit`:

- :class:`ECN` (exemplar memory), :class:`ClusterContrast` (centroid memory),
  :class:`SpCL` (hybrid memory, self-paced clustering): the look-up-table loss of §3.3 (Eq. 6-7),
  on :class:`~reidlib.feature_learning.contrast.MemoryMethod`;
- :class:`MutualMeanTeaching` (MMT): two networks taught by each other's mean teacher;
- :class:`PartContrast` (SSG / PAST): global + upper / lower body features;
- :func:`credible_selector` (DCML): only credible samples train;
- CE and triplet on pseudo-labels: :class:`reidlib.training.PseudoLabelClassification`;
- :func:`train_and_score` / :func:`results_table`: the chapter's fair comparison.

Building blocks: :mod:`~reidlib.feature_learning.memory` (the three memories),
:mod:`~reidlib.feature_learning.mean_teacher`, :mod:`~reidlib.feature_learning.parts`,
:mod:`~reidlib.feature_learning.selection`, :mod:`~reidlib.feature_learning.noise`.
"""

from reidlib.feature_learning.cluster_contrast import ClusterContrast
from reidlib.feature_learning.compare import (
    MethodResult,
    clustering_on_validation,
    results_table,
    train_and_score,
)
from reidlib.feature_learning.dcml import CredibleSelector, credible_selector
from reidlib.feature_learning.ecn import ECN
from reidlib.feature_learning.mean_teacher import MeanTeacherPair, ema_update, make_teacher
from reidlib.feature_learning.memory import ClusterMemory, HybridMemory, InstanceMemory
from reidlib.feature_learning.mmt import MutualMeanTeaching
from reidlib.feature_learning.noise import inject_label_noise
from reidlib.feature_learning.part_contrast import PartContrast
from reidlib.feature_learning.parts import PartReidModel, extract_part_features
from reidlib.feature_learning.selection import credible_mask
from reidlib.feature_learning.spcl import SpCL

__all__ = [
    "ECN",
    "ClusterContrast",
    "ClusterMemory",
    "CredibleSelector",
    "HybridMemory",
    "InstanceMemory",
    "MeanTeacherPair",
    "MethodResult",
    "MutualMeanTeaching",
    "PartContrast",
    "PartReidModel",
    "SpCL",
    "clustering_on_validation",
    "credible_mask",
    "credible_selector",
    "ema_update",
    "extract_part_features",
    "inject_label_noise",
    "make_teacher",
    "results_table",
    "train_and_score",
]
