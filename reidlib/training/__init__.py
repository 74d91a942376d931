"""Training (chapter 0 on): losses (survey Eq. 4-5), features, supervised training, checkpoints."""

from reidlib.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from reidlib.training.features import extract_features
from reidlib.training.losses import (
    batch_hard_triplet_loss,
    cross_entropy_label_smooth,
    euclidean_dist,
    triplet_loss,
)
from reidlib.training.supervised import (
    split_validation,
    train_one_epoch,
    train_or_load,
    train_step,
    train_supervised,
    validate,
)

__all__ = [
    "batch_hard_triplet_loss",
    "cross_entropy_label_smooth",
    "euclidean_dist",
    "extract_features",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "split_validation",
    "train_one_epoch",
    "train_or_load",
    "train_step",
    "train_supervised",
    "triplet_loss",
    "validate",
]
