"""Chapter 2's cores, written in plain torch as the notebook writes them, against reidlib.

Each check runs on a real batch: 16 pseudo-identities x 4 images of the smoke world A, with
features from the generic backbone and pseudo-labels from DBSCAN on the Jaccard distance,
as in ``notebooks/02_feature_learning.py`` section 3.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from reidlib.data.augment import train_augment
from reidlib.data.synthetic import load_world
from reidlib.feature_learning import (
    ClusterMemory,
    HybridMemory,
    InstanceMemory,
    PartReidModel,
    clustering_on_validation,
    credible_selector,
    make_teacher,
    results_table,
)
from reidlib.feature_learning.compare import MethodResult
from reidlib.models import build_model
from reidlib.pseudo_labels.generators import jaccard_dbscan
from reidlib.pseudo_labels.labels import contiguous
from reidlib.training.classification import centroid_classifier
from reidlib.training.features import extract_features
from reidlib.training.loop import History
from reidlib.training.losses import soft_cross_entropy, soft_triplet_loss

# --- the notebook's cores ---------------------------------------------------------------------


def ecn_loss(x, slots, rows, k, tau=0.05):
    logits = F.normalize(x, dim=1) @ slots.T / tau
    weights = torch.zeros_like(logits)
    weights.scatter_(1, logits.topk(k, dim=1).indices, 1.0 / k)
    weights.scatter_(1, rows[:, None], 1.0)
    return -(weights * logits.log_softmax(dim=1)).sum(dim=1).mean()


def centroids_of(features, labels):
    f = F.normalize(features, dim=1)
    return torch.stack([F.normalize(f[labels == c].mean(0), dim=0)
                        for c in range(int(labels.max()) + 1)])


def cluster_contrast_loss(x, centroids, y, tau=0.05):
    return F.cross_entropy(F.normalize(x, dim=1) @ centroids.T / tau, y)


def momentum_update(centroids, y, x, m=0.1):
    c = centroids.clone()
    for label, f in zip(y.tolist(), F.normalize(x, dim=1), strict=True):
        c[label] = F.normalize(m * c[label] + (1 - m) * f, dim=0)
    return c


def spcl_targets(instances, labels):
    n_clusters = int(labels.max()) + 1
    centroids = torch.stack([instances[labels == c].mean(0) for c in range(n_clusters)])
    outliers = (labels < 0).nonzero().flatten()
    target = labels.clone()
    target[outliers] = n_clusters + torch.arange(len(outliers))
    return torch.cat([centroids, instances[outliers]]), target


def soft_ce(student_logits, teacher_logits):
    return -(teacher_logits.softmax(dim=1) * student_logits.log_softmax(dim=1)).sum(1).mean()


def soft_triplet(f_student, f_teacher, y):
    d, d_t = torch.cdist(f_student, f_student), torch.cdist(f_teacher, f_teacher)
    same = y[:, None] == y[None, :]
    pos = d.detach().masked_fill(~same, -np.inf).argmax(1)
    neg = d.detach().masked_fill(same, np.inf).argmin(1)
    i = torch.arange(len(y))
    log_t = torch.stack([d[i, pos], d[i, neg]], 1).log_softmax(1)
    q = torch.stack([d_t[i, pos], d_t[i, neg]], 1).softmax(1)
    return -(q * log_t).sum(1).mean()


def part_embeddings(model, images):
    fmap = model.base.backbone(images)
    h = fmap.shape[2]
    halves = {"upper": fmap[:, :, : (h + 1) // 2], "lower": fmap[:, :, h // 2 :]}
    return {name: model.part_necks[name](model.part_pools[name](half))
            for name, half in halves.items()}


def credible(features, labels, k=5, drop=0.2):
    f = F.normalize(features, dim=1)
    proto, knn = torch.full((len(f),), np.nan), torch.full((len(f),), np.nan)
    for c in range(int(labels.max()) + 1):
        members = (labels == c).nonzero().flatten()
        fc = f[members]
        proto[members] = fc @ F.normalize(fc.mean(0), dim=0)
        sim = (fc @ fc.T).fill_diagonal_(-np.inf)
        knn[members] = sim.topk(min(k, len(members) - 1), dim=1).values.mean(1)
    keep = labels >= 0
    for measure in (proto, knn):
        keep &= measure >= measure[labels >= 0].nanquantile(drop)
    return torch.where(keep, labels, -1)


# --- a real batch -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    world = load_world("A", "smoke")
    train = world.train.subset(world.train.pids >= 0)
    model = build_model("small", weights="synthetic").eval()
    features = extract_features(model, train, flip=False, progress=False)
    labels = contiguous(jaccard_dbscan(k1=10, k2=6, eps=0.5, min_samples=4)(features.numpy()))[0]
    rng = np.random.default_rng(0)
    big = [c for c in np.unique(labels[labels >= 0]) if (labels == c).sum() >= 4]
    assert len(big) >= 4, "the smoke world should give a few clusters of 4 or more"
    chosen = rng.choice(big, min(16, len(big)), replace=False)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), 4, replace=False)
                           for c in chosen])
    return {"train": train, "features": features, "labels": labels,
            "rows": torch.as_tensor(rows), "x": features[rows],
            "y": torch.as_tensor(labels[rows])}


def test_ecn_core_equals_instance_memory(real):
    x, rows, f = real["x"], real["rows"], real["features"]
    memory = InstanceMemory(f, momentum=0.5, temperature=0.05, k=6)
    assert_close(ecn_loss(x, F.normalize(f, dim=1), rows, k=6), memory(x, rows))
    memory.k = 0  # exemplar invariance alone: each image's own slot as a hard target
    assert_close(F.cross_entropy(F.normalize(x, dim=1) @ F.normalize(f, dim=1).T / 0.05, rows),
                 memory(x, rows))


def test_cluster_contrast_core_equals_cluster_memory(real):
    x, y, rows = real["x"], real["y"], real["rows"]
    labels = torch.as_tensor(real["labels"])
    centroids = centroids_of(real["features"], labels)
    memory = ClusterMemory(real["features"], real["labels"], momentum=0.1, temperature=0.05)
    assert_close(centroids, memory.centroids)
    assert_close(cluster_contrast_loss(x, centroids, y), memory(x, rows))
    memory.update(x, rows)
    updated = momentum_update(centroids, y, x)
    assert_close(updated, memory.centroids)
    assert not torch.allclose(updated, centroids)  # the update moved something


def test_spcl_core_equals_hybrid_memory(real):
    labels = torch.as_tensor(real["labels"])
    assert (labels < 0).any(), "the check needs un-clustered images in the table"
    table, target = spcl_targets(F.normalize(real["features"], dim=1), labels)
    memory = HybridMemory(real["features"], real["labels"], momentum=0.2, temperature=0.05)
    assert_close(table, memory.targets())
    assert_close(target, memory.labels)
    outlier_rows = (labels < 0).nonzero().flatten()[:8]  # outliers are their own targets
    for rows in (real["rows"], outlier_rows):
        x = real["features"][rows]
        assert_close(cluster_contrast_loss(x, table, target[rows]), memory(x, rows))


def test_mmt_soft_losses_equal_reidlib(real):
    train, rows, y = real["train"], real["rows"], real["y"]
    student = build_model("small", weights="synthetic")
    centroid_classifier(student, real["features"], real["labels"])
    teacher = make_teacher(student)
    images = train.tensor()[rows]
    with torch.no_grad():
        s = student.train()(train_augment(images, torch.Generator().manual_seed(1)))
        t = teacher.train()(train_augment(images, torch.Generator().manual_seed(2)))
    assert_close(soft_ce(s.logits, t.logits), soft_cross_entropy(s.logits, t.logits))
    assert_close(soft_triplet(s.features, t.features, y),
                 soft_triplet_loss(s.features, y, t.features), rtol=1e-4, atol=1e-5)


def test_part_split_equals_part_model(real):
    model = PartReidModel(build_model("small", weights="synthetic"), output="raw").eval()
    batch = train_augment(real["train"].tensor()[real["rows"]], torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine = part_embeddings(model, batch)
        _, upper, lower = model(batch).split(model.embedding_dim, dim=1)
    assert_close(mine["upper"], upper)
    assert_close(mine["lower"], lower)


def test_dcml_core_equals_credible_selector(real):
    select = credible_selector(k=5, drop_share=0.2)
    labels = real["labels"]
    kept = select(real["features"].numpy(), labels)
    assert_close(credible(real["features"], torch.as_tensor(labels)).numpy(), kept)
    clustered = labels >= 0
    assert 0.2 <= select.dropped[0] <= 0.4  # each measure drops ~20%, partly the same images
    assert select.dropped[0] == pytest.approx(((kept < 0) & clustered).sum() / clustered.sum())


def test_credible_selector_checks_its_arguments():
    with pytest.raises(ValueError, match="not both"):
        credible_selector(drop_share=0.2, proto_threshold=0.5)
    with pytest.raises(ValueError, match="drop_share"):
        credible_selector(drop_share=1.5)
    with pytest.raises(ValueError, match="similarity"):
        credible_selector(drop_share=0.2, knn="agreement")


def test_clustering_on_validation_scores_only_validation_rows(real):
    pids = real["train"].pids
    val_rows = np.isin(pids, np.unique(pids)[:10])
    sweep = clustering_on_validation(real["features"].numpy(), pids, val_rows,
                                     k1_values=(10,), eps_values=(0.4, 0.6))
    assert len(sweep) == 2 and sweep["pairwise F"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="boolean mask"):
        clustering_on_validation(real["features"].numpy(), pids, np.flatnonzero(val_rows))


def test_results_table_orders_and_divides():
    def result(name, m_ap):
        scores = {"mAP": m_ap, "rank1": m_ap, "mINP": m_ap}
        quality = {"pairwise_f": 0.5, "n_clusters": 3, "outlier_share": 0.1}
        return MethodResult(name, scores, quality, 60.0, History(), None)

    upper = {"mAP": 0.8, "rank1": 0.9, "mINP": 0.5}
    table = results_table([result("a", 0.2), result("b", 0.4)], {"upper": upper}, upper="upper")
    assert list(table.index) == ["b", "a", "upper"]
    assert table.loc["b", "of upper bound"] == pytest.approx(0.5)
    assert table.loc["a", "minutes"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="references"):
        results_table([result("a", 0.2)], {"upper": upper}, upper="start")
