"""Hidden checks of q1 (instructors; exercises/grade.py): each approach's yearly best and
running best against reidlib.benchmark.survey.best_per_year (plus a running maximum) on the
survey's own tables, against a loop on shuffled tables with ties and missing mAPs, and the
input left unchanged."""

import math

import numpy as np
import pandas as pd
from otter.test_files import test_case

from reidlib.benchmark.survey import NO_FAMILY, best_per_year, load_survey_tables

OK_FORMAT = False
name = "q1_hidden"

COLUMNS = ["approach", "year", "method", "mAP", "frontier"]


def _rows(function, results, target):
    assert callable(function), "define a function called approach_frontier"
    got = function(results, target)
    assert isinstance(got, pd.DataFrame) and set(COLUMNS) <= set(got.columns), (
        f"expected a DataFrame with the columns {COLUMNS}, got {got!r}"
    )
    return [(str(a), int(y), str(m), float(v), float(f))
            for a, y, m, v, f in got[COLUMNS].itertuples(index=False)]


def _same(got, expected):
    return len(got) == len(expected) and all(
        g[:3] == e[:3] and math.isclose(g[3], e[3]) and math.isclose(g[4], e[4])
        for g, e in zip(got, expected, strict=True))


def _loop(results, target):
    """The yearly best (first listed on ties) and the running best, with plain Python."""
    best = {}
    for method, year, approach, row_target, value in results[
            ["method", "year", "approach", "target", "mAP"]].itertuples(index=False):
        if row_target != target or value != value:  # NaN != NaN: a missing mAP
            continue
        key = (str(approach), int(year))
        if key not in best or value > best[key][1]:
            best[key] = (str(method), float(value))
    rows, frontier = [], {}
    for approach, year in sorted(best):
        method, value = best[(approach, year)]
        frontier[approach] = max(frontier.get(approach, -math.inf), value)
        rows.append((approach, year, method, value, frontier[approach]))
    return rows


@test_case(name="q1_hidden - the survey's tables against reidlib's best_per_year", hidden=True)
def against_reidlib(approach_frontier):
    survey = load_survey_tables()
    checked = 0
    for (table, setting, source, target), rows in survey.groupby(
            ["table", "setting", "source", "target"], sort=True):
        if rows["mAP"].isna().all():  # PRID2011 and iLIDS-VID: rank-1 only
            continue
        if table != 3:  # Tables 4 and 5 print no approach: one family for all methods
            rows = rows.assign(approach=NO_FAMILY)
        library = best_per_year(survey, setting, target, source=source or None)
        library["frontier"] = library.groupby("family")["mAP"].cummax()
        expected = [(str(f), int(y), str(m), float(v), float(b)) for f, y, m, v, b in
                    library[["family", "year", "method", "mAP", "frontier"]].itertuples(
                        index=False)]
        got = _rows(approach_frontier, rows.copy(), target)
        assert _same(got, expected), (
            f"approach_frontier(survey Table {table}, {source or 'no source'} -> {target}) "
            f"returned {got}, but reidlib's best_per_year (and a running maximum) gives "
            f"{expected}"
        )
        assert _same(expected, _loop(rows, target))
        checked += 1
    assert checked >= 10


@test_case(name="q1_hidden - shuffled tables, years out of order, ties, missing mAPs",
           hidden=True)
def shuffled_tables(approach_frontier):
    gen = np.random.default_rng(160)
    for size in (12, 40, 90):
        results = pd.DataFrame({
            "method": [f"M{i}" for i in range(size)],
            "year": gen.integers(2015, 2022, size),
            "approach": gen.choice(["Cluster", "FA", "IT"], size),
            "target": gen.choice(["Market-1501", "MSMT17"], size, p=[0.8, 0.2]),
            "mAP": gen.choice([20.0, 35.5, 35.5, 41.0, 50.25, 60.0, math.nan], size),
            "ref": gen.integers(1, 100, size),
        })
        results.index = gen.permutation(size) + 1000  # labels that are not positions
        # a year whose only result is missing: no row for it
        results.loc[results.index[0], ["approach", "year", "target", "mAP"]] = \
            ["FA", 2013, "Market-1501", math.nan]
        expected = _loop(results, "Market-1501")
        got = _rows(approach_frontier, results.copy(), "Market-1501")
        assert _same(got, expected), (
            f"approach_frontier({size} results in random order, tied mAPs, missing mAPs) "
            f"returned {got}, expected {expected}: on a tie the method listed first (the "
            "first row, whatever the index labels), no row for a year without an mAP, and the "
            "frontier a running maximum in year order, not in the order of the rows"
        )


@test_case(name="q1_hidden - the input table left unchanged", hidden=True)
def input_unchanged(approach_frontier):
    results = pd.DataFrame(
        [("A", 2019, "IT", "Duke", 30.0), ("B", 2018, "IT", "Duke", math.nan),
         ("C", 2018, "FA", "Duke", 25.0), ("D", 2020, "IT", "Market", 44.0)],
        columns=["method", "year", "approach", "target", "mAP"],
    )
    copy = results.copy()
    _rows(approach_frontier, results, "Duke")
    assert results.equals(copy) and list(results.columns) == list(copy.columns), (
        "approach_frontier changed the table it was given (a dropna(inplace=True), a new "
        "column or a sort in place): work on a filtered copy"
    )
