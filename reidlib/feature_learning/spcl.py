"""SpCL (Ge, Zhu, Chen, Zhao, Li, "Self-paced Contrastive Learning with Hybrid Memory for
Domain Adaptive Object Re-ID", NeurIPS 2020; survey §3.2): a hybrid memory of cluster
centroids *and* un-clustered instances, fed by a self-paced, reliability-checked clustering.

As SpCL's code (``spcl_train_usl.py``) does it:

- the memory holds every training image's feature, initialised from one extraction, and
  each epoch it is the *memory's* features that are clustered (no re-extraction);
- one Jaccard distance (k1 = 30, k2 = 6), DBSCAN at eps, at eps - 0.02 ("tight") and at
  eps + 0.02 ("loose"); outliers count as clusters of their own;
- per image, R_comp = 1 - IoU(its cluster at eps, its cluster when tight) and R_indep =
  1 - IoU(its cluster at eps, its cluster when loose); per cluster, the minimum of each
  over its members;
- a cluster is independent enough when its R_indep is at most a threshold fixed in
  epoch 0: the 90th percentile of the R_indep of clusters with more than one member; an
  image keeps its cluster if the cluster is independent enough and its own R_comp is at
  most the cluster's (i.e. it is among the cluster's most compact members); every other
  image becomes an un-clustered instance (:func:`reliable_labels`);
- batches come from the reference sampler, where each un-clustered image is a label of
  its own and so enters a pass *once*, as a single instance (not topped up to k copies);
  400 iterations of 16 x 4 per epoch; memory momentum 0.2, temperature 0.05; Adam 3.5e-4,
  weight decay 5e-4 on every parameter, StepLR(20) over 50 epochs.

Deliberate difference: the reference picks its model on the test set; we never do.
"""

from __future__ import annotations

import numpy as np

from reidlib.feature_learning.contrast import MemoryMethod
from reidlib.feature_learning.memory import HybridMemory
from reidlib.pseudo_labels.generators import dbscan_labels
from reidlib.pseudo_labels.jaccard import jaccard_distance
from reidlib.pseudo_labels.labels import OUTLIER, outliers_as_classes


def _iou_loss(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row i: 1 - |A_i & B_i| / |A_i | B_i|, A_i = rows sharing i's label in ``a``."""
    _, pair = np.unique(np.stack([a, b]), axis=1, return_inverse=True)
    both = np.bincount(pair.ravel())[pair.ravel()]
    size_a = np.bincount(a)[a]
    size_b = np.bincount(b)[b]
    return 1.0 - both / (size_a + size_b - both)


def reliable_labels(labels: np.ndarray, tight: np.ndarray, loose: np.ndarray,
                    indep_threshold: float | None = None) -> tuple[np.ndarray, float]:
    """SpCL's cluster-reliability criterion: (labels with unreliable rows -1, threshold).

    ``labels``, ``tight``, ``loose``: DBSCAN labels at eps, eps - delta, eps + delta (-1 =
    outlier; each outlier counts as its own cluster). ``indep_threshold``: None in the
    first epoch, which sets it (module docstring); pass the returned value afterwards.
    """
    own = [outliers_as_classes(x) for x in (labels, tight, loose)]
    r_comp = _iou_loss(own[0], own[1])
    r_indep = _iou_loss(own[0], own[2])
    n_classes = int(own[0].max()) + 1
    cluster_comp = np.full(n_classes, np.inf)
    cluster_indep = np.full(n_classes, np.inf)
    np.minimum.at(cluster_comp, own[0], r_comp)
    np.minimum.at(cluster_indep, own[0], r_indep)
    if indep_threshold is None:
        multi = cluster_indep[np.bincount(own[0]) > 1]
        indep_threshold = 1.0 if len(multi) == 0 else float(
            np.sort(multi)[min(len(multi) - 1, int(np.round(len(multi) * 0.9)))])
    keep = (cluster_indep[own[0]] <= indep_threshold) & (r_comp <= cluster_comp[own[0]])
    return np.where(keep & (labels != OUTLIER), labels, OUTLIER), indep_threshold


class SpCL(MemoryMethod):
    """SpCL: hybrid memory, self-paced clustering, outliers as instances (module docstring).

    Train it with its own clustering: ``fit(spcl, train, cluster=spcl.cluster, ...)``.
    """

    name = "SpCL (hybrid memory)"
    memory_class = HybridMemory
    recipe = {"epochs": 50, "iters": 400, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "step", "milestones": (20, 40), "p": 16, "k": 4}

    def __init__(self, model, eps: float = 0.6, eps_gap: float = 0.02, k1: int = 30,
                 k2: int = 6, min_samples: int = 4, momentum: float = 0.2,
                 temperature: float = 0.05, sampler: str = "multi_gallery",
                 other_cameras: bool = True):
        super().__init__(model, momentum, temperature, sampler=sampler,
                         other_cameras=other_cameras)
        self.eps, self.eps_gap, self.k1, self.k2 = eps, eps_gap, k1, k2
        self.min_samples = min_samples
        self.indep_threshold: float | None = None

    def cluster(self, features: np.ndarray) -> np.ndarray:
        """Self-paced clustering: DBSCAN at eps, then the reliability criterion."""
        # DBSCAN reads no pair farther than its eps: keep the pairs within the loose one
        dist = jaccard_distance(features, k1=self.k1, k2=self.k2, progress=False,
                                max_distance=self.eps + self.eps_gap)
        at = [dbscan_labels(dist, eps, self.min_samples)
              for eps in (self.eps, self.eps - self.eps_gap, self.eps + self.eps_gap)]
        labels, self.indep_threshold = reliable_labels(*at, self.indep_threshold)
        return labels

    def cluster_features(self):
        return None if self.memory is None else self.memory.features

    def new_labels(self, features, labels, train) -> None:
        if self.memory is None:  # instance features persist across epochs
            self.memory = HybridMemory(features, labels, momentum=self.momentum,
                                       temperature=self.temperature)
        else:
            self.memory.set_labels(labels)

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        """The sampler over clusters *and* un-clustered images, each one a label."""
        return super().batches(outliers_as_classes(labels), camids, p=p, k=k, iters=iters,
                               seed=seed, epoch=epoch)

    def config(self) -> dict:
        return {**super().config(), "eps": self.eps, "eps_gap": self.eps_gap, "k1": self.k1,
                "k2": self.k2, "min_samples": self.min_samples}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "indep_threshold": self.indep_threshold}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.indep_threshold = state["indep_threshold"]
