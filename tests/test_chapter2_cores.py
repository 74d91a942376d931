"""Chapter 2's cores, as the notebook writes them in plain torch, agree with reidlib.

The functions are taken out of ``notebooks/02_feature_learning.py`` itself (its top-level
``def``s named in ``CORES``), so a change to either side that breaks the agreement fails
here without running the notebook. Each check runs on a real batch: 16 pseudo-identities x 4
images of the smoke world A, with features from the generic backbone and pseudo-labels from
DBSCAN on the Jaccard distance, as in the notebook's section 3.
"""

import ast
from pathlib import Path
from types import SimpleNamespace

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

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_feature_learning.py"
CORES = ("ecn_loss", "centroids_of", "cluster_contrast_loss", "momentum_update", "spcl_targets",
         "soft_ce", "soft_triplet", "part_embeddings", "credible")


@pytest.fixture(scope="module")
def nb():
    """The notebook's core functions, compiled from its own source (torch, F and np bound)."""
    tree = ast.parse(NOTEBOOK.read_text())
    wanted = [node for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name in CORES]
    namespace = {"np": np, "torch": torch, "F": F}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(NOTEBOOK), "exec"), namespace)
    missing = [name for name in CORES if name not in namespace]
    assert not missing, f"the notebook no longer defines {missing}"
    return SimpleNamespace(**{name: namespace[name] for name in CORES})


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


def test_ecn_core_equals_instance_memory(nb, real):
    x, rows, f = real["x"], real["rows"], real["features"]
    memory = InstanceMemory(f, momentum=0.5, temperature=0.05, k=6)
    assert_close(nb.ecn_loss(x, F.normalize(f, dim=1), rows, k=6), memory(x, rows))
    memory.k = 0  # exemplar invariance alone: each image's own slot as a hard target
    assert_close(F.cross_entropy(F.normalize(x, dim=1) @ F.normalize(f, dim=1).T / 0.05, rows),
                 memory(x, rows))


def test_cluster_contrast_core_equals_cluster_memory(nb, real):
    x, y, rows = real["x"], real["y"], real["rows"]
    labels = torch.as_tensor(real["labels"])
    centroids = nb.centroids_of(real["features"], labels)
    memory = ClusterMemory(real["features"], real["labels"], momentum=0.1, temperature=0.05)
    assert_close(centroids, memory.centroids)
    assert_close(nb.cluster_contrast_loss(x, centroids, y), memory(x, rows))
    memory.update(x, rows)
    updated = nb.momentum_update(centroids, y, x)
    assert_close(updated, memory.centroids)
    assert not torch.allclose(updated, centroids)  # the update moved something


def test_spcl_core_equals_hybrid_memory(nb, real):
    labels = torch.as_tensor(real["labels"])
    assert (labels < 0).any(), "the check needs un-clustered images in the table"
    table, target = nb.spcl_targets(F.normalize(real["features"], dim=1), labels)
    memory = HybridMemory(real["features"], real["labels"], momentum=0.2, temperature=0.05)
    assert_close(table, memory.targets())
    assert_close(target, memory.labels)
    outlier_rows = (labels < 0).nonzero().flatten()[:8]  # outliers are their own targets
    for rows in (real["rows"], outlier_rows):
        x = real["features"][rows]
        assert_close(nb.cluster_contrast_loss(x, table, target[rows]), memory(x, rows))


def test_mmt_soft_losses_equal_reidlib(nb, real):
    train, rows, y = real["train"], real["rows"], real["y"]
    student = build_model("small", weights="synthetic")
    centroid_classifier(student, real["features"], real["labels"])
    teacher = make_teacher(student)
    images = train.tensor()[rows]
    with torch.no_grad():
        s = student.train()(train_augment(images, torch.Generator().manual_seed(1)))
        t = teacher.train()(train_augment(images, torch.Generator().manual_seed(2)))
    assert_close(nb.soft_ce(s.logits, t.logits), soft_cross_entropy(s.logits, t.logits))
    assert_close(nb.soft_triplet(s.features, t.features, y),
                 soft_triplet_loss(s.features, y, t.features), rtol=1e-4, atol=1e-5)


def test_part_split_equals_part_model(nb, real):
    model = PartReidModel(build_model("small", weights="synthetic"), output="raw").eval()
    batch = train_augment(real["train"].tensor()[real["rows"]], torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine = nb.part_embeddings(model, batch)
        _, upper, lower = model(batch).split(model.embedding_dim, dim=1)
    assert_close(mine["upper"], upper)
    assert_close(mine["lower"], lower)


def test_dcml_core_equals_credible_selector(nb, real):
    select = credible_selector(k=5, drop_share=0.2)
    labels = real["labels"]
    kept = select(real["features"].numpy(), labels)
    mine, _ = nb.credible(real["features"], torch.as_tensor(labels))  # labels, prototype cos
    assert_close(mine.numpy(), kept)
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
