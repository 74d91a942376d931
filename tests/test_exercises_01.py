"""exercises/01_pseudo_labels: the otter checks, the student notebook and the instructor grader.

ExerciseChecks (tests/exercise_harness.py) runs what every exercise is tested for on this one,
with the wrong answers below; this file adds chapter 1's failure messages and checks its
hand-made examples (k-reciprocal sets, BUC merges, purity and pair counts) against reidlib.
"""

from __future__ import annotations

import numpy as np
import pytest
from exercise_harness import ExerciseChecks, check, load_exercise, load_module

from reidlib.pseudo_labels import buc_labels, label_quality
from reidlib.pseudo_labels.jaccard import reciprocal_sets

QUESTIONS = {
    "q1": "k_reciprocal_set",
    "q2": "buc_merge_cost",
    "q2b": "buc_next_merge",
    "q3": "purity",
    "q4": "pairwise_precision_recall",
    "q5": "gaussian_vectors",
    "q6": "local_query_expansion",
    "q7": "jaccard_from_vectors",
    "q8": "knee_eps",
}
EX = load_exercise("01_pseudo_labels", QUESTIONS, "ex01")
solutions = EX.solutions
public_q1 = load_module(EX.public("q1"), "exercises_01_public_q1")
public_q2b = load_module(EX.public("q2b"), "exercises_01_public_q2b")


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks catch them.
def _neighbours(dist, p, k):
    others = np.delete(np.arange(len(dist)), p)
    return {p, *others[np.argsort(dist[p, others], kind="stable")][:k].tolist()}


def _recip_k_with_self(dist, i, k):
    # SpCL / Cluster Contrast code's convention: k neighbours self included (one too few).
    near = [set(np.argsort(dist[p], kind="stable")[:k].tolist()) for p in range(len(dist))]
    return np.array(sorted(j for j in near[i] if i in near[j]))


def _recip_forgets_reciprocity(dist, i, k):
    return np.array(sorted(_neighbours(dist, i, k)))


def _recip_without_self(dist, i, k):
    return np.array(sorted(j for j in _neighbours(dist, i, k) if j != i and i in
                           _neighbours(dist, j, k)), dtype=int)


def _recip_ties_to_higher_index(dist, i, k):
    def near(p):
        others = np.delete(np.arange(len(dist)), p)[::-1]
        return {p, *others[np.argsort(dist[p, others], kind="stable")][:k].tolist()}

    return np.array(sorted(j for j in near(i) if i in near(j)))


def _recip_ranks_the_diagonal(dist, i, k):
    # Sorts the whole row and keeps k + 1: right unless another image is at distance 0.
    near = [set(np.argsort(dist[p], kind="stable")[: k + 1].tolist()) for p in range(len(dist))]
    return np.array(sorted(j for j in near[i] if i in near[j]), dtype=int)


def _cost_average_linkage(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    block = np.asarray(dist)[np.ix_(labels == a, labels == b)]
    return float(block.mean() + lam * ((labels == a).sum() + (labels == b).sum()))  # HCT, Eq. 3


def _cost_no_diversity(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    return float(np.asarray(dist)[np.ix_(labels == a, labels == b)].min())


def _cost_product_of_sizes(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    block = np.asarray(dist)[np.ix_(labels == a, labels == b)]
    return float(block.min() + lam * (labels == a).sum() * (labels == b).sum())


def _cost_ids_as_indices(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    return float(np.asarray(dist)[a, b] + lam * ((labels == a).sum() + (labels == b).sum()))


def _next_ignores_lam(dist, labels, lam):
    return solutions.buc_next_merge(dist, labels, 0.0)


def _next_last_of_ties(dist, labels, lam):
    ids = np.unique(labels).tolist()
    pairs = [(a, b) for n, a in enumerate(ids) for b in ids[n + 1 :]]
    costs = [solutions.buc_merge_cost(dist, labels, a, b, lam) for a, b in pairs]
    return pairs[len(costs) - 1 - int(np.argmin(costs[::-1]))]


def _next_first_seen_order(dist, labels, lam):
    ids = list(dict.fromkeys(np.asarray(labels).tolist()))  # order of appearance, not sorted
    pairs = [(a, b) for n, a in enumerate(ids) for b in ids[n + 1 :]]
    costs = [solutions.buc_merge_cost(dist, labels, a, b, lam) for a, b in pairs]
    return pairs[int(np.argmin(costs))]


def _purity_outliers_as_cluster(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    majority = sum(np.unique(true[pred == c], return_counts=True)[1].max() for c in set(pred))
    return float(majority / len(pred))


def _purity_over_all_images(pred, true):
    pred = np.asarray(pred)
    kept = (pred != -1).sum()
    return solutions.purity(pred, true) * kept / len(pred)  # outliers counted as wrong


def _purity_mean_of_clusters(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    pred, true = pred[keep], true[keep]
    if not keep.any():
        return float("nan")
    shares = [np.unique(true[pred == c], return_counts=True)[1].max() / (pred == c).sum()
              for c in np.unique(pred)]
    return float(np.mean(shares))  # every cluster weighs the same, whatever its size


def _purity_swapped(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    return solutions.purity(true[keep], pred[keep])  # majority cluster of each identity


def _purity_first_member(pred, true):
    # "A cluster's identity is the one of its first image": right whenever that one is the
    # majority, as in every public example.
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    if not keep.any():
        return float("nan")
    pred, true = pred[keep], true[keep]
    right = sum((true[pred == c] == true[pred == c][0]).sum() for c in np.unique(pred))
    return float(right / len(pred))


def _pairs_outliers_as_cluster(pred, true):
    pred = np.where(np.asarray(pred) == -1, 10**6, np.asarray(pred))
    return solutions.pairwise_precision_recall(pred, true)


def _pairs_ordered_with_self(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    pred, true = pred[keep], true[keep]
    cluster = pred[:, None] == pred[None, :]
    person = true[:, None] == true[None, :]
    both = (cluster & person).sum()
    with np.errstate(invalid="ignore"):  # 0 / 0 when every image is an outlier
        return float(both / cluster.sum()), float(both / person.sum())


def _pairs_swapped(pred, true):
    precision, recall = solutions.pairwise_precision_recall(pred, true)
    return recall, precision


def _pairs_zero_not_nan(pred, true):
    return tuple(0.0 if np.isnan(x) else x for x in solutions.pairwise_precision_recall(pred, true))


def _gauss_squared_weights(sq_dist, sets):
    weights = np.where(sets, np.exp(-np.asarray(sq_dist)), 0.0) ** 2  # exp(-2d): too sharp
    return weights / weights.sum(axis=1, keepdims=True)


def _gauss_all_images(sq_dist, sets):
    weights = np.exp(-np.asarray(sq_dist))  # the whole row, not only R*(i)
    return weights / weights.sum(axis=1, keepdims=True)


def _gauss_not_normalised(sq_dist, sets):
    return np.where(sets, np.exp(-np.asarray(sq_dist)), 0.0)


def _gauss_plain_distance(sq_dist, sets):
    return solutions.gaussian_vectors(np.sqrt(sq_dist), sets)  # exp(-d) of the distance


def _lqe_sum(v, neighbours):
    return np.asarray(v)[np.asarray(neighbours)].sum(axis=1)


def _lqe_columns(v, neighbours):
    return np.asarray(v)[:, np.asarray(neighbours)].mean(axis=2).T  # the columns, transposed


def _lqe_in_place(v, neighbours):
    for i, row in enumerate(np.asarray(neighbours)):
        v[i] = v[row].mean(axis=0)  # later rows read rows already expanded
    return v


def _jaccard_min_over_sum(v):
    v = np.asarray(v, dtype=float)  # the Dice-like 1 - sum min / (sum V_i + sum V_j)
    return np.array([1 - np.minimum(row, v).sum(1) / (row.sum() + v.sum(1)) for row in v])


def _jaccard_similarity(v):
    return 1 - solutions.jaccard_from_vectors(v)


def _jaccard_mean_ratio(v):
    v = np.asarray(v, dtype=float)
    with np.errstate(invalid="ignore"):
        ratio = [np.nan_to_num(np.minimum(row, v) / np.maximum(row, v), nan=0.0) for row in v]
    return 1 - np.array(ratio).mean(axis=2)  # the mean of the per-image ratios


def _knee_k_equals_min_samples(dist, min_samples):
    return solutions.knee_eps(dist, min_samples + 1)  # the min_samples-th other: one too far


def _knee_with_self(dist, min_samples):
    dist = np.asarray(dist, dtype=float)  # sorts the diagonal in: right only when it is 0
    k_dist = np.sort(np.sort(dist, axis=1)[:, min_samples - 1])
    if k_dist[-1] == k_dist[0]:
        return float(k_dist[0])
    x = np.arange(len(k_dist)) / (len(k_dist) - 1)
    return float(k_dist[np.argmax(x - (k_dist - k_dist[0]) / (k_dist[-1] - k_dist[0]))])


def _knee_above_chord(dist, min_samples):
    dist = np.asarray(dist, dtype=float)
    others = np.where(np.eye(len(dist), dtype=bool), np.inf, dist)
    k_dist = np.sort(np.sort(others, axis=1)[:, min_samples - 2])
    x = np.arange(len(k_dist)) / (len(k_dist) - 1)
    span = k_dist[-1] - k_dist[0] or 1.0
    return float(k_dist[np.argmax((k_dist - k_dist[0]) / span - x)])  # above the chord


def _knee_median(dist, min_samples):
    dist = np.asarray(dist, dtype=float)
    others = np.where(np.eye(len(dist), dtype=bool), np.inf, dist)
    return float(np.median(np.sort(others, axis=1)[:, min_samples - 2]))


WRONG = [
    ("q1", _recip_k_with_self, False),
    ("q1", _recip_forgets_reciprocity, False),
    ("q1", _recip_without_self, False),
    ("q1", _recip_ties_to_higher_index, False),
    ("q1", _recip_ranks_the_diagonal, True),
    ("q2", _cost_average_linkage, False),
    ("q2", _cost_no_diversity, False),
    ("q2", _cost_product_of_sizes, False),
    ("q2", _cost_ids_as_indices, False),
    ("q2b", _next_ignores_lam, False),
    ("q2b", _next_last_of_ties, False),
    ("q2b", _next_first_seen_order, False),
    ("q3", _purity_outliers_as_cluster, False),
    ("q3", _purity_over_all_images, False),
    ("q3", _purity_mean_of_clusters, False),
    ("q3", _purity_swapped, False),
    ("q3", _purity_first_member, True),
    ("q4", _pairs_outliers_as_cluster, False),
    ("q4", _pairs_ordered_with_self, False),
    ("q4", _pairs_swapped, False),
    ("q4", _pairs_zero_not_nan, False),
    ("q5", _gauss_squared_weights, False),
    ("q5", _gauss_all_images, False),
    ("q5", _gauss_not_normalised, False),
    ("q5", _gauss_plain_distance, False),
    ("q6", _lqe_sum, False),
    ("q6", _lqe_columns, False),
    ("q6", _lqe_in_place, False),
    ("q7", _jaccard_min_over_sum, False),
    ("q7", _jaccard_similarity, False),
    ("q7", _jaccard_mean_ratio, False),
    ("q8", _knee_k_equals_min_samples, False),
    ("q8", _knee_with_self, True),
    ("q8", _knee_above_chord, False),
    ("q8", _knee_median, True),
]


class TestPseudoLabels(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 20


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"k_reciprocal_set": _recip_forgets_reciprocity}).summary()
    assert "k_reciprocal_set(line, i=3, k=2) returned [2, 3, 4], expected [3, 4]" in summary
    assert "N(2, 2) = {2, 1, 0} does not hold 3" in summary and "Hint: write a helper" in summary
    summary = check(EX.public("q1"), {"k_reciprocal_set": lambda d, i, k: [3, 1]}).summary()
    assert "return the indices sorted" in summary
    summary = check(EX.hidden("q1"), {"k_reciprocal_set": _recip_ranks_the_diagonal}).summary()
    assert "three identical images" in summary and "dist[p, p] left out" in summary
    summary = check(EX.public("q2b"), {"buc_next_merge": _next_ignores_lam}).summary()
    assert "returned (0, 1), expected (1, 2)" in summary and "D(1, 2) = 1.5" in summary
    summary = check(EX.public("q3"), {"purity": _purity_outliers_as_cluster}).summary()
    assert "returned 0.8571, expected 0.8333" in summary and "outlier is left out" in summary
    summary = check(EX.public("q4"), {"pairwise_precision_recall": _pairs_zero_not_nan}).summary()
    assert "expected (nan, 0.0000)" in summary and "precision is undefined" in summary
    summary = check(EX.public("q2"), {"buc_merge_cost": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_hand_made_answers_agree_with_reidlib():
    # The line example's expected sets, from reidlib's reciprocal_sets on a stable argsort.
    order = np.argsort(public_q1.LINE, axis=1, kind="stable")
    assert (order[:, 0] == np.arange(6)).all()  # every image is its own nearest
    for k, expected in ((2, [[0, 1, 2]] * 3 + [[3, 4]] * 2 + [[5]]),
                        (1, [[0, 1], [0, 1], [2], [3, 4], [3, 4], [5]])):
        sets = reciprocal_sets(order[:, : k + 1])
        assert [sets[i].indices.tolist() for i in range(6)] == expected


def test_q2b_hand_made_answer_agrees_with_buc_labels():
    # The notebook's example: BUC from five singletons merges the first three images, then
    # decides between (cluster, 1.5) and (1.5, 3) as the public check expects.
    positions = public_q2b.POSITIONS[:, None]
    for lam, expected in ((0.0, [0, 0, 0, 0, 1]), (0.5, [0, 0, 0, 1, 1])):
        assert buc_labels(positions, 3, lam, metric="euclidean").tolist() == [0, 0, 0, 1, 2]
        assert buc_labels(positions, 2, lam, metric="euclidean").tolist() == expected


def test_q3_q4_worked_example_agrees_with_label_quality():
    quality = label_quality([0, 0, 0, 1, 1, 2, -1], [5, 5, 7, 7, 7, 7, 5])
    assert quality["purity"] == pytest.approx(5 / 6)
    assert quality["pairwise_precision"] == pytest.approx(2 / 4)
    assert quality["pairwise_recall"] == pytest.approx(2 / 7)
