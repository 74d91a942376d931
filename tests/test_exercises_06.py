"""exercises/06_benchmark: the otter checks, the student notebook and the instructor grader.

Shared tests: ExerciseChecks in tests/exercise_harness.py, given the wrong answers below.
Chapter 6's own: the failure messages, and the notebook's hand-made examples checked against
reidlib (the survey tables' best_per_year, gap_recovered, SimCLR's nt_xent, the text
Vocabulary and text_to_image_map).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import ExerciseChecks, check, load_exercise

from reidlib.benchmark.survey import best_per_year, load_survey_tables
from reidlib.directions.selfsup import nt_xent
from reidlib.directions.text import Vocabulary, text_to_image_map
from reidlib.domain_adaptation.compare import gap_recovered

QUESTIONS = {
    "q1": "approach_frontier",
    "q2": "gap_closed",
    "q3": "nt_xent_loss",
    "q4": "bag_of_words",
    "q5": "text_average_precision",
}
EX = load_exercise("06_benchmark", QUESTIONS, "ex06")
solutions = EX.solutions


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks do.
def _frontier_with(results, target, tie="first", order="year", nan="skip", scope="approach"):
    rows = results[results["target"] == target]
    if nan == "skip":
        rows = rows[rows["mAP"].notna()]
    elif nan == "zero":
        rows = rows.assign(mAP=rows["mAP"].fillna(0.0))
    rows = rows.reset_index(drop=True)
    if tie == "last":
        rows = rows.iloc[::-1]
    best = rows.loc[rows.groupby(["approach", "year"], sort=order == "year",
                                 dropna=False)["mAP"].idxmax()]
    best = best[["approach", "year", "method", "mAP"]].reset_index(drop=True)
    if scope == "approach":
        best["frontier"] = best.groupby("approach")["mAP"].cummax()
    else:  # one frontier over all approaches
        best["frontier"] = best.sort_values("year")["mAP"].cummax()
    return best.sort_values(["approach", "year"], kind="stable").reset_index(drop=True)


def _frontier_last_of_ties(results, target):
    return _frontier_with(results, target, tie="last")


def _frontier_nan_as_zero(results, target):
    return _frontier_with(results, target, nan="zero")


def _frontier_across_approaches(results, target):
    return _frontier_with(results, target, scope="all")


def _frontier_every_target(results, target):
    return solutions.approach_frontier(results.assign(target=target), target)


def _frontier_yearly_best_only(results, target):
    best = solutions.approach_frontier(results, target)
    return best.assign(frontier=best["mAP"])


def _frontier_in_row_order(results, target):  # running best over the rows as listed
    rows = results[(results["target"] == target) & results["mAP"].notna()]
    rows = rows.reset_index(drop=True)
    best = rows.loc[rows.groupby(["approach", "year"], sort=False)["mAP"].idxmax()]
    best = best[["approach", "year", "method", "mAP"]].reset_index(drop=True)
    best["frontier"] = best.groupby("approach")["mAP"].cummax()
    return best.sort_values(["approach", "year"], kind="stable").reset_index(drop=True)


def _frontier_mean_of_year(results, target):
    rows = results[(results["target"] == target) & results["mAP"].notna()]
    best = rows.groupby(["approach", "year"], as_index=False).agg(
        method=("method", "first"), mAP=("mAP", "mean"))
    best["frontier"] = best.groupby("approach")["mAP"].cummax()
    return best


def _frontier_helper_column(results, target):  # a column added to the caller's table
    results["best"] = results.groupby(["approach", "year"])["mAP"].transform("max")
    return solutions.approach_frontier(results, target)


def _frontier_keeps_empty_years(results, target):  # a year with no mAP still gets a row
    rows = results[results["target"] == target].reset_index(drop=True)
    keys = rows[["approach", "year"]].drop_duplicates().sort_values(["approach", "year"])
    out = []
    for approach, year in keys.itertuples(index=False):
        mine = rows[(rows.approach == approach) & (rows.year == year) & rows.mAP.notna()]
        if mine.empty:
            out.append((approach, year, "", math.nan))
        else:
            top = mine.loc[mine["mAP"].idxmax()]
            out.append((approach, year, top["method"], top["mAP"]))
    best = pd.DataFrame(out, columns=["approach", "year", "method", "mAP"])
    best["frontier"] = best.groupby("approach")["mAP"].cummax()
    return best


def _gap_share_of_upper(adapted, direct, supervised):
    if not supervised > direct:
        raise ValueError("no gap")
    return adapted / supervised


def _gap_over_supervised(adapted, direct, supervised):
    if not supervised > direct:
        raise ValueError("no gap")
    return (adapted - direct) / supervised


def _gap_no_error(adapted, direct, supervised):
    return (adapted - direct) / (supervised - direct)


def _gap_percent(adapted, direct, supervised):
    return 100 * solutions.gap_closed(adapted, direct, supervised)


def _gap_direct_first(adapted, direct, supervised):  # arguments read as (direct, adapted, ...)
    return solutions.gap_closed(direct, adapted, supervised)


def _gap_strictly_below(adapted, direct, supervised):
    if supervised < direct:
        raise ValueError("no gap")
    return (adapted - direct) / (supervised - direct)


def _gap_clipped(adapted, direct, supervised):
    return min(max(solutions.gap_closed(adapted, direct, supervised), 0.0), 1.0)


def _gap_rounded(adapted, direct, supervised):
    return round(solutions.gap_closed(adapted, direct, supervised), 3)


def _xent_with(z1, z2, temperature, normalise=True, mask=True, anchors="both",
               negatives="all", keep_positive=True, reduce="mean", scale="divide"):
    if normalise:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = len(z1)
    if negatives == "other view":  # CLIP-style: each view against the other view only
        logits = z1 @ z2.T / temperature
        target = torch.arange(n)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    z = torch.cat([z1, z2])
    logits = z @ z.T * temperature if scale == "multiply" else z @ z.T / temperature
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    if mask:
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    if not keep_positive:  # decoupled: the positive left out of the denominator
        pos = logits[torch.arange(2 * n), positive]
        denominator = logits.masked_fill(F.one_hot(positive, 2 * n).bool(), float("-inf"))
        losses = -pos + torch.logsumexp(denominator, dim=1)
    else:
        losses = F.cross_entropy(logits, positive, reduction="none")
    if anchors == "first":
        losses = losses[:n]
    return losses.sum() if reduce == "sum" else losses.mean()


def _xent_unnormalised(z1, z2, t):
    return _xent_with(z1, z2, t, normalise=False)


def _xent_self_in_denominator(z1, z2, t):
    return _xent_with(z1, z2, t, mask=False)


def _xent_first_view_anchors(z1, z2, t):
    return _xent_with(z1, z2, t, anchors="first")


def _xent_other_view_negatives(z1, z2, t):
    return _xent_with(z1, z2, t, negatives="other view")


def _xent_positive_not_in_denominator(z1, z2, t):
    return _xent_with(z1, z2, t, keep_positive=False)


def _xent_sum(z1, z2, t):
    return _xent_with(z1, z2, t, reduce="sum")


def _xent_temperature_multiplies(z1, z2, t):
    return _xent_with(z1, z2, t, scale="multiply")


def _xent_positive_is_self_index(z1, z2, t):  # row i's positive taken as column i
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / t).masked_fill(torch.eye(2 * len(z1), dtype=torch.bool), -1e9)
    return F.cross_entropy(logits[:len(z1), len(z1):], torch.arange(len(z1)))


def _xent_exp_overflow(z1, z2, t):  # exp then log, in the inputs' dtype
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    e = torch.exp(z @ z.T / t) * (1 - torch.eye(2 * n, dtype=z.dtype))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return -torch.log(e[torch.arange(2 * n), positive] / e.sum(dim=1)).mean()


def _xent_item(z1, z2, t):  # right number, no gradient
    return solutions.nt_xent_loss(z1, z2, t).item()


def _xent_normalised_in_place(z1, z2, t):
    z1.div_(z1.norm(dim=1, keepdim=True))
    z2.div_(z2.norm(dim=1, keepdim=True))
    return solutions.nt_xent_loss(z1, z2, t)


def _bag_with(texts, tokens, modifiers, heads, separators=",;.", lower=True, pairs="last",
              longest=True, filler=True, unknown="error", counts=True, dtype=torch.float32,
              match_pairs=False):
    pair_set = {f"{m} {h}" for h in heads for m in modifiers}
    words = set(tokens) if match_pairs else {t for t in tokens if t not in pair_set}
    fillers = ("a", "an", "and", "the", "with", "wearing", "in", "of") if filler else ()
    bow = torch.zeros(len(texts), len(tokens), dtype=dtype)
    for row, text in enumerate(texts):
        text = text.lower() if lower else text
        for phrase in re.split(f"[{re.escape(separators)}]", text):
            raw, found, i = phrase.split(), [], 0
            while i < len(raw):
                sizes = (2, 1) if longest else (1, 2)
                n = next((n for n in sizes if i + n <= len(raw)
                          and " ".join(raw[i:i + n]) in words), 0)
                if n:
                    found.append(" ".join(raw[i:i + n]))
                elif raw[i] not in fillers and unknown == "error":
                    raise ValueError(f"unknown word {raw[i]!r}")
                i += max(n, 1)
            if pairs == "last" and found and found[-1] in heads:
                found += [f"{m} {found[-1]}" for m in found[:-1] if m in modifiers]
            elif pairs == "any head":
                for head in [w for w in found if w in heads]:
                    found += [f"{m} {head}" for m in found if m in modifiers]
            elif pairs == "previous word":
                found += [f"{a} {b}" for a, b in zip(found[:-1], found[1:], strict=True)
                          if b in heads and a in modifiers]
            for token in found:
                if counts:
                    bow[row, tokens.index(token)] += 1
                else:
                    bow[row, tokens.index(token)] = 1
    return bow


def _bag_words_only(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, pairs="none")


def _bag_not_lowered(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, lower=False, unknown="drop")


def _bag_shortest_first(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, longest=False, unknown="drop")


def _bag_unknown_dropped(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, unknown="drop")


def _bag_commas_only(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, separators=",", unknown="drop")


def _bag_previous_word_pairs(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, pairs="previous word")


def _bag_pairs_matched_as_words(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, match_pairs=True)


def _bag_presence(texts, tokens, modifiers, heads):  # 0/1 instead of counts
    return _bag_with(texts, tokens, modifiers, heads, counts=False)


def _bag_any_head(texts, tokens, modifiers, heads):  # modifiers bound to any head of the phrase
    return _bag_with(texts, tokens, modifiers, heads, pairs="any head")


def _bag_filler_unknown(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, filler=False)


def _bag_float64(texts, tokens, modifiers, heads):
    return _bag_with(texts, tokens, modifiers, heads, dtype=torch.float64)


def _ap_with(similarities, query_pid, pids, order="descending", junk=True, distractors=True,
             none_value=math.nan, top=None, ties="sort"):
    s, pids = np.asarray(similarities), np.asarray(pids)
    keep = np.ones(len(s), dtype=bool)
    if not junk:
        keep &= pids != -1
    if not distractors:
        keep &= pids != 0
    s, pids = s[keep], pids[keep]
    relevant = pids == query_pid
    if not relevant.any():
        return none_value
    if ties == "optimistic":  # ties resolved in the query's favour
        precisions = [(relevant & (s >= v)).sum() / ((s > v).sum() + (relevant & (s == v)).sum())
                      for v in s[relevant]]
        return float(np.mean(precisions))
    ranking = np.argsort(-s if order == "descending" else s, kind="stable")
    if top is not None:
        ranking = ranking[:top]
    hits = relevant[ranking]
    if not hits.any():
        return 0.0
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def _ap_ascending(*args):
    return _ap_with(*args, order="ascending")


def _ap_junk_dropped(*args):
    return _ap_with(*args, junk=False)


def _ap_distractors_dropped(*args):
    return _ap_with(*args, distractors=False)


def _ap_zero_without_relevant(*args):
    return _ap_with(*args, none_value=0.0)


def _ap_sorted_ties(*args):  # a stable sort breaks ties by gallery order
    return _ap_with(*args)


def _ap_optimistic_ties(*args):
    return _ap_with(*args, ties="optimistic")


def _ap_top_50(*args):
    return _ap_with(*args, top=50)


def _ap_sorted_in_place(similarities, query_pid, gallery_pids):
    order = np.argsort(-similarities, kind="stable")
    similarities[:] = similarities[order]
    gallery_pids[:] = gallery_pids[order]
    return solutions.text_average_precision(similarities, query_pid, gallery_pids)


WRONG = [
    ("q1", _frontier_last_of_ties, False),
    ("q1", _frontier_nan_as_zero, False),
    ("q1", _frontier_across_approaches, False),
    ("q1", _frontier_every_target, False),
    ("q1", _frontier_yearly_best_only, False),
    ("q1", _frontier_mean_of_year, False),
    ("q1", _frontier_in_row_order, True),
    ("q1", _frontier_helper_column, True),
    ("q1", _frontier_keeps_empty_years, False),
    ("q2", _gap_share_of_upper, False),
    ("q2", _gap_over_supervised, False),
    ("q2", _gap_no_error, False),
    ("q2", _gap_percent, False),
    ("q2", _gap_direct_first, False),
    ("q2", _gap_strictly_below, True),
    ("q2", _gap_clipped, True),
    ("q2", _gap_rounded, False),
    ("q3", _xent_unnormalised, False),
    ("q3", _xent_self_in_denominator, False),
    ("q3", _xent_first_view_anchors, False),
    ("q3", _xent_other_view_negatives, False),
    ("q3", _xent_positive_not_in_denominator, False),
    ("q3", _xent_sum, False),
    ("q3", _xent_temperature_multiplies, False),
    ("q3", _xent_positive_is_self_index, False),
    ("q3", _xent_exp_overflow, True),
    ("q3", _xent_item, True),
    ("q3", _xent_normalised_in_place, True),
    ("q4", _bag_words_only, False),
    ("q4", _bag_not_lowered, False),
    ("q4", _bag_shortest_first, False),
    ("q4", _bag_unknown_dropped, False),
    ("q4", _bag_commas_only, False),
    ("q4", _bag_pairs_matched_as_words, False),
    ("q4", _bag_previous_word_pairs, False),
    ("q4", _bag_presence, True),
    ("q4", _bag_any_head, True),
    ("q4", _bag_filler_unknown, True),
    ("q4", _bag_float64, True),
    ("q5", _ap_ascending, False),
    ("q5", _ap_junk_dropped, False),
    ("q5", _ap_distractors_dropped, False),
    ("q5", _ap_zero_without_relevant, False),
    ("q5", _ap_sorted_ties, True),
    ("q5", _ap_optimistic_ties, True),
    ("q5", _ap_top_50, True),
    ("q5", _ap_sorted_in_place, True),
]


class TestBenchmark(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 25


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"approach_frontier": _frontier_last_of_ties}).summary()
    assert "H and I tie at 50.0" in summary and "Hint: rows = results[" in summary
    summary = check(EX.hidden("q1"), {"approach_frontier": _frontier_in_row_order}).summary()
    assert "not in the order of the rows" in summary
    summary = check(EX.public("q2"), {"gap_closed": _gap_share_of_upper}).summary()
    assert "expected 0.5644" in summary and "Hint: if not supervised > direct" in summary
    summary = check(EX.hidden("q2"), {"gap_closed": _gap_strictly_below}).summary()
    assert "raised ZeroDivisionError" in summary
    summary = check(EX.public("q3"), {"nt_xent_loss": _xent_self_in_denominator}).summary()
    assert "expected 1.5107" in summary and "never itself" in summary
    summary = check(EX.hidden("q3"), {"nt_xent_loss": _xent_item}).summary()
    assert "has no gradient" in summary
    summary = check(EX.public("q4"), {"bag_of_words": _bag_words_only}).summary()
    assert "'red top': 1" in summary and "Hint: pairs = " in summary
    summary = check(EX.hidden("q4"), {"bag_of_words": _bag_presence}).summary()
    assert "counts twice" in summary
    summary = check(EX.public("q5"), {"text_average_precision": _ap_junk_dropped}).summary()
    assert "expected 0.4778" in summary
    summary = check(EX.hidden("q5"), {"text_average_precision": _ap_sorted_ties}).summary()
    assert "tied similarities are one step" in summary
    summary = check(EX.public("q5"), {"text_average_precision": lambda *a: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_example_and_survey_agree_with_reidlib():
    example = pd.DataFrame(
        [("A", 2018, "Cluster", "Market", 40.0), ("B", 2018, "Cluster", "Market", 45.0),
         ("C", 2019, "Cluster", "Market", 43.0), ("D", 2019, "Cluster", "Duke", 70.0),
         ("E", 2018, "IT", "Market", 30.0), ("F", 2020, "IT", "Market", math.nan),
         ("G", 2020, "IT", "Market", 38.0), ("H", 2020, "Cluster", "Market", 50.0),
         ("I", 2020, "Cluster", "Market", 50.0)],
        columns=["method", "year", "approach", "target", "mAP"],
    )
    library = best_per_year(example.assign(setting="uda", source="X"), "uda", "Market")
    ours = solutions.approach_frontier(example, "Market")
    assert list(library.itertuples(index=False)) == list(ours.drop(columns="frontier")
                                                         .itertuples(index=False))
    assert [tuple(r) for r in ours.itertuples(index=False)] == [
        ("Cluster", 2018, "B", 45.0, 45.0), ("Cluster", 2019, "C", 43.0, 45.0),
        ("Cluster", 2020, "H", 50.0, 50.0), ("IT", 2018, "E", 30.0, 30.0),
        ("IT", 2020, "G", 38.0, 38.0)]
    survey = load_survey_tables()
    table3 = survey[(survey["table"] == 3) & (survey["source"] == "Market-1501")]
    ours = solutions.approach_frontier(table3, "DukeMTMC-reID")
    library = best_per_year(survey, "uda", "DukeMTMC-reID", source="Market-1501")
    assert list(ours["method"]) == list(library["method"])
    assert np.allclose(ours["frontier"], library.groupby("family")["mAP"].cummax())


def test_q2_example_agrees_with_reidlib():
    assert gap_recovered(66.1, 44.2, 83.0) == pytest.approx(21.9 / 38.8) == pytest.approx(
        0.5644, abs=1e-4)
    assert solutions.gap_closed(66.1, 44.2, 83.0) == gap_recovered(66.1, 44.2, 83.0)
    with pytest.raises(ValueError):
        gap_recovered(50.0, 60.0, 55.0)
    with pytest.raises(ValueError):
        solutions.gap_closed(1.0, 0.5, 0.5)


def test_q3_example_agrees_with_reidlib():
    z1 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    z2 = torch.tensor([[4.0, 3.0], [0.0, 2.0]])
    image0 = -math.log(math.exp(1.92) / (math.exp(1.92) + math.exp(1.2) + math.exp(1.6)))
    image1 = -math.log(1 / (1 + math.exp(1.2) + math.exp(1.6)))
    assert [round(image0, 3), round(image1, 3)] == [0.794, 2.227]
    by_hand = (2 * image0 + 2 * image1) / 4
    assert float(nt_xent(z1, z2, 0.5)) == pytest.approx(by_hand, rel=1e-6)
    assert float(solutions.nt_xent_loss(z1, z2, 0.5)) == pytest.approx(by_hand, rel=1e-6)
    assert round(by_hand, 3) == 1.511


def test_q4_examples_agree_with_reidlib():
    vocabulary = Vocabulary()
    tokens = dict.fromkeys(vocabulary.tokenize("Red hstripes top, blue trousers"))
    assert list(tokens) == ["red", "hstripes", "top", "red top", "hstripes top", "blue",
                            "trousers", "blue trousers"]
    assert vocabulary.tokenize("slate blue top; long hair") == [
        "slate blue", "top", "slate blue top", "long", "hair", "long hair"]
    assert vocabulary.tokenize("top red") == ["top", "red"]
    assert len(vocabulary) == 252 and len(vocabulary.modifiers) * len(vocabulary.heads) == 210
    texts = ["Red hstripes top, blue trousers", "blue hstripes top, red trousers"]
    bags = solutions.bag_of_words(texts, vocabulary.tokens, vocabulary.modifiers,
                                  vocabulary.heads)
    assert torch.equal(bags, vocabulary.encode(texts)) and not torch.equal(bags[0], bags[1])
    words = len(vocabulary) - 210
    assert torch.equal(bags[0, :words], bags[1, :words])  # the same words, other pairs
    with pytest.raises(ValueError, match="trosers"):
        vocabulary.encode(["red trosers"])


def test_q5_example_agrees_with_reidlib():
    similarities = torch.tensor([[0.9, 0.2, 0.7, 0.8, 0.1, 0.5]])
    gallery = torch.eye(6)  # text (1, 6) @ eye: the similarities themselves
    pids = np.array([0, 4, 4, -1, 7, 4])
    result = text_to_image_map(similarities, np.array([4]), gallery, pids)
    expected = (1 / 3 + 2 / 4 + 3 / 5) / 3
    assert result["mAP"] == pytest.approx(expected) and round(expected, 3) == 0.478
    assert solutions.text_average_precision(similarities[0].numpy(), 4, pids) == \
        pytest.approx(expected)
