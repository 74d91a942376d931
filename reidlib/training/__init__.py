"""Training (chapter 0 on): the one loop, the method interface, losses, features, checkpoints.

- :func:`fit`: the course's one training loop (fixed labels, or re-clustering every n
  epochs), with checkpoints and resuming; :class:`Batch`, :class:`History`.
- :class:`Method`: the interface a method implements (one small class per paper).
- :class:`PseudoLabelClassification`: CE + batch-hard triplet on (pseudo-)labels.
- :func:`train_supervised` / :func:`train_or_load`: chapter 0's supervised upper bound.
"""

from reidlib.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.features import extract_features
from reidlib.training.loop import Batch, EpochRecord, History, fit, lr_at, validate
from reidlib.training.losses import (
    batch_hard_triplet_loss,
    cross_entropy_label_smooth,
    euclidean_dist,
    triplet_loss,
)
from reidlib.training.method import Method
from reidlib.training.supervised import split_validation, train_or_load, train_supervised

__all__ = [
    "Batch",
    "EpochRecord",
    "History",
    "Method",
    "PseudoLabelClassification",
    "batch_hard_triplet_loss",
    "cross_entropy_label_smooth",
    "euclidean_dist",
    "extract_features",
    "fit",
    "load_checkpoint",
    "lr_at",
    "read_checkpoint",
    "save_checkpoint",
    "split_validation",
    "train_or_load",
    "train_supervised",
    "triplet_loss",
    "validate",
]
