"""Public checks of q1, each approach's best mAP per year and its running best, the
"frontier" (students run grader.check("q1"))."""

import math

import pandas as pd
from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: rows = results[(results['target'] == target) & results['mAP'].notna()]."
    "reset_index(drop=True); best = rows.loc[rows.groupby(['approach', 'year'])['mAP']."
    "idxmax()] (idxmax keeps the first of tied rows); keep the columns approach, year, "
    "method, mAP, sorted by approach then year, reset_index(drop=True); then best['frontier'] "
    "= best.groupby('approach')['mAP'].cummax()."
)
COLUMNS = ["approach", "year", "method", "mAP", "frontier"]

# The notebook's example: a small table of results on two targets.
EXAMPLE = pd.DataFrame(
    [("A", 2018, "Cluster", "Market", 40.0), ("B", 2018, "Cluster", "Market", 45.0),
     ("C", 2019, "Cluster", "Market", 43.0), ("D", 2019, "Cluster", "Duke", 70.0),
     ("E", 2018, "IT", "Market", 30.0), ("F", 2020, "IT", "Market", math.nan),
     ("G", 2020, "IT", "Market", 38.0), ("H", 2020, "Cluster", "Market", 50.0),
     ("I", 2020, "Cluster", "Market", 50.0)],
    columns=["method", "year", "approach", "target", "mAP"],
)
EXPECTED = [("Cluster", 2018, "B", 45.0, 45.0), ("Cluster", 2019, "C", 43.0, 45.0),
            ("Cluster", 2020, "H", 50.0, 50.0), ("IT", 2018, "E", 30.0, 30.0),
            ("IT", 2020, "G", 38.0, 38.0)]


def _frontier(function, results, target, what):
    assert callable(function), "define a function called approach_frontier (run its cell first)"
    got = function(results, target)
    assert got is not None, "approach_frontier returned None: did you forget the return?"
    assert isinstance(got, pd.DataFrame), (
        f"approach_frontier({what}) should return a pandas DataFrame, got {type(got).__name__}"
    )
    missing = [c for c in COLUMNS if c not in got.columns]
    assert not missing, (
        f"approach_frontier({what}) returned the columns {list(got.columns)}: expected "
        f"{COLUMNS} (missing {missing})"
    )
    return [(str(a), int(y), str(m), float(v), float(f))
            for a, y, m, v, f in got[COLUMNS].itertuples(index=False)]


def _same(got, expected):
    return len(got) == len(expected) and all(
        g[:3] == e[:3] and math.isclose(g[3], e[3]) and math.isclose(g[4], e[4])
        for g, e in zip(got, expected, strict=True))


@test_case(name="q1 - the notebook's example", failure_message=HINT)
def worked_example(approach_frontier):
    got = _frontier(approach_frontier, EXAMPLE.copy(), "Market", "the notebook's example, "
                    "target 'Market'")
    assert _same(got, EXPECTED), (
        f"approach_frontier(the notebook's example, 'Market') returned the rows {got}, "
        f"expected {EXPECTED}: one row per (approach, year) with a result on Market (D is on "
        "Duke; F has no mAP, so IT has no row in 2019 and G is IT's best of 2020), the year's "
        "best method (H and I tie at 50.0: H is listed first), and the frontier, the best mAP "
        "of that approach in that year or any earlier one (Cluster's 2019 best, 43.0, is "
        "below its 2018 best, 45.0: the frontier stays at 45.0). Rows sorted by approach, "
        "then year"
    )


@test_case(name="q1 - the frontier never falls; one row per approach and year",
           failure_message=HINT)
def running_best(approach_frontier):
    results = pd.DataFrame(
        [("P", 2017, "FA", "MSMT17", 20.0), ("Q", 2018, "FA", "MSMT17", 12.5),
         ("R", 2018, "FA", "MSMT17", 15.0), ("S", 2019, "FA", "MSMT17", 18.0),
         ("T", 2020, "FA", "MSMT17", 31.0), ("U", 2019, "FA", "MSMT17", 11.0),
         ("V", 2016, "FA", "MSMT17", math.nan)],
        columns=["method", "year", "approach", "target", "mAP"],
    )
    got = _frontier(approach_frontier, results, "MSMT17", "five FA years on MSMT17")
    expected = [("FA", 2017, "P", 20.0, 20.0), ("FA", 2018, "R", 15.0, 20.0),
                ("FA", 2019, "S", 18.0, 20.0), ("FA", 2020, "T", 31.0, 31.0)]
    assert _same(got, expected), (
        f"approach_frontier(FA's results on MSMT17: no mAP in 2016; 20.0 in 2017; 12.5 and "
        f"15.0 in 2018; 18.0 and 11.0 in 2019; 31.0 in 2020) returned {got}, expected "
        f"{expected}: no row for 2016 (its only result has no mAP: skip it, do not count it "
        "as 0), the year's best is the largest mAP of that year (15.0 in 2018), and the "
        "frontier is the running maximum of those yearly bests, so it stays at 20.0 until 2020"
    )
