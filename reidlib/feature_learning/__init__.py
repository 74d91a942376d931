"""Feature learning with noisy pseudo-labels (course chapter 2, survey §3.2, Eq. 4-7).

- :mod:`~reidlib.feature_learning.memory`: ECN's exemplar memory, Cluster Contrast's
  centroid memory and SpCL's hybrid memory, with momentum updates and a temperature.
- :mod:`~reidlib.feature_learning.mean_teacher`: temporal-average teachers (MMT).
- :mod:`~reidlib.feature_learning.parts`: global + upper / lower body features (SSG, PAST).
- :mod:`~reidlib.feature_learning.selection`: DCML's credible-sample scores.
- :mod:`~reidlib.feature_learning.noise`: controlled label noise for the chapter's study.
- :func:`train_unsupervised` and :mod:`~reidlib.feature_learning.methods`: one loop
  (cluster, build the memory, train) and each method as a small class.
"""

from reidlib.feature_learning.loop import Batch, Epoch, train_unsupervised
from reidlib.feature_learning.mean_teacher import MeanTeacherPair, ema_update, make_teacher
from reidlib.feature_learning.memory import ClusterMemory, HybridMemory, InstanceMemory
from reidlib.feature_learning.methods import (
    MemoryContrast,
    MutualMeanTeaching,
    PartContrast,
    PseudoLabelClassification,
    credible_selector,
)
from reidlib.feature_learning.noise import inject_label_noise
from reidlib.feature_learning.parts import PartReidModel, extract_part_features
from reidlib.feature_learning.selection import credible_mask

__all__ = [
    "Batch",
    "ClusterMemory",
    "Epoch",
    "HybridMemory",
    "InstanceMemory",
    "MeanTeacherPair",
    "MemoryContrast",
    "MutualMeanTeaching",
    "PartContrast",
    "PartReidModel",
    "PseudoLabelClassification",
    "credible_mask",
    "credible_selector",
    "ema_update",
    "extract_part_features",
    "inject_label_noise",
    "make_teacher",
    "train_unsupervised",
]
