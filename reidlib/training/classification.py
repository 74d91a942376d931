"""Labels as identities: cross-entropy and / or batch-hard triplet (survey Eq. 1, 5, 12).

One class serves three chapters, because the loss does not care where the labels came
from: chapter 0's supervised upper bound (true identities, survey Eq. 1 with the Eq. 5
triplet, Luo et al.'s *Bag of tricks* recipe), chapter 1's PUL-style rounds and chapter 2's
CE on pseudo-labels (Eq. 12) and the batch-hard triplet (Eq. 5, the batch-hard form of
Eq. 4's plain triplet loss).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.models.heads import ReidModel
from reidlib.pseudo_labels.labels import OUTLIER, class_count
from reidlib.training.features import autocast_for
from reidlib.training.losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from reidlib.training.method import Method

CLASSIFIER_INITS = ("random", "centroids")


def check_reid_model(model) -> ReidModel:
    if not isinstance(model, ReidModel):
        raise TypeError(f"expected a reidlib ReidModel (build_model(...)), got "
                        f"{type(model).__name__}")
    return model


def centroid_classifier(model: ReidModel, features: torch.Tensor, labels: np.ndarray) -> None:
    """A fresh classifier whose rows are the L2-normalised cluster centroids (MMT's init).

    Starting from the centroids, the classifier agrees with the clustering from the first
    step instead of spending the epoch's first batches learning it from random weights.
    ``labels``: 0..C-1, -1 = outlier.
    """
    keep = labels != OUTLIER
    model.reset_classifier(class_count(labels))
    index = torch.as_tensor(labels[keep], device=features.device)
    sums = torch.zeros(model.num_classes, features.shape[1], device=features.device)
    sums.index_add_(0, index, features[torch.as_tensor(keep, device=features.device)].float())
    with torch.no_grad():
        model.classifier.weight.copy_(F.normalize(sums, dim=1))


class PseudoLabelClassification(Method):
    """CE with label smoothing and / or the batch-hard triplet loss on (pseudo-)labels.

    A fresh classifier whenever the labels change (the number of pseudo-identities changes
    at every clustering). ``classifier_init="random"``: N(0, 0.001^2) drawn from ``seed``
    (Bag of tricks; chapter 0 and PUL's rounds, which re-initialise the classification
    layer after each clustering); ``"centroids"``: the cluster centroids
    (:func:`centroid_classifier`, as MMT does), whose small first gradients do not undo
    the backbone when the loop re-clusters every epoch (chapter 2).
    """

    def __init__(self, model: ReidModel, ce: bool = True, triplet: bool = True,
                 margin: float | None = 0.3, epsilon: float = 0.1,
                 classifier_init: str = "centroids", seed: int = 0, **sampler):
        if not (ce or triplet):
            raise ValueError("choose at least one loss: ce=True and / or triplet=True")
        if classifier_init not in CLASSIFIER_INITS:
            raise ValueError(f"classifier_init must be one of {CLASSIFIER_INITS}, "
                             f"got {classifier_init!r}")
        super().__init__(check_reid_model(model), **sampler)
        self.ce, self.triplet, self.margin, self.epsilon = ce, triplet, margin, epsilon
        self.classifier_init, self.seed = classifier_init, seed
        self.name = " + ".join(n for n, on in (("CE", ce), ("triplet", triplet)) if on)

    def new_labels(self, features, labels, train) -> None:
        if not self.ce:
            self.model.reset_classifier(0)
        elif self.classifier_init == "centroids":
            centroid_classifier(self.model, features, labels)
        else:
            self.model.reset_classifier(class_count(labels),
                                        generator=torch.Generator().manual_seed(self.seed))

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        parts = {}
        if self.ce:
            parts["ce"] = cross_entropy_label_smooth(out.logits.float(), batch.labels,
                                                     self.epsilon)
        if self.triplet:
            parts["triplet"] = batch_hard_triplet_loss(out.features.float(), batch.labels,
                                                       self.margin)
        return sum(parts.values()), parts

    def config(self) -> dict:
        return {**super().config(), "ce": self.ce, "triplet": self.triplet,
                "margin": self.margin, "epsilon": self.epsilon,
                "classifier_init": self.classifier_init, "seed": self.seed}
