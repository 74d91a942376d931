"""reidlib.benchmark.table: the chapter-6 table regenerated from recorded runs, checked
against numbers written by hand into small results files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from reidlib.benchmark.table import benchmark_table, missing_cells, read_rows, recorded_rows
from reidlib.recipes.core import ROW_KEYS

REPO = Path(__file__).resolve().parent.parent


def _write(path: Path, data) -> None:
    path.write_text(json.dumps(data))


def _fake_results(folder: Path) -> None:
    settings3 = {"profile": "quick", "epochs": 3}
    _write(folder / "chapter01-seeds-quick.json", {
        "settings": {"rounds": 4, "epochs_per_round": 2}, "upper_bound": {"mAP": 0.8},
        "runs": [{"method": "DBSCAN-Jaccard loop", "seed": s, "mAP": m, "rank1": 0.5,
                  "mINP": 0.3, "pairwise_f": 0.6, "seconds": 120.0}
                 for s, m in [(0, 0.5), (1, 0.6), (2, 0.7)]]})
    _write(folder / "ch2-seeds.json", {
        "seeds": [0, 1], "settings": settings3,
        "mAP": {"MMT": [0.4, 0.5], "ECN (exemplar memory)": [0.2, 0.3]}})
    _write(folder / "ch3-runs-quick.json", {"runs": [
        {"method": "camera BN", "style": 1.0, "seed": 0, "settings": settings3, "mAP": 0.55,
         "rank1": 0.6, "mINP": 0.4, "pairwise_f": 0.5, "minutes": 2.0},
        {"method": "camera BN", "style": 2.0, "seed": 0, "settings": settings3, "mAP": 0.1,
         "rank1": 0.1, "mINP": 0.1, "pairwise_f": 0.1, "minutes": 2.0},  # a dial run: left out
        {"method": "camera BN", "world": "B", "style": 1.0, "seed": 0, "settings": settings3,
         "mAP": 0.45, "rank1": 0.5, "mINP": 0.3, "pairwise_f": 0.7, "minutes": 3.0},
        {"method": "MMT", "style": 1.0, "seed": 0, "settings": settings3, "mAP": 0.9,
         "rank1": 0.9, "mINP": 0.9, "pairwise_f": 0.9, "minutes": 1.0},
    ]})
    _write(folder / "ch4-runs-quick.json", {
        "runs": [{"source": "B", "target": "A", "gap": g, "method": "Cluster Contrast",
                  "seed": 0, "settings": {"profile": "quick", "epochs": 12}, "mAP": m,
                  "rank1": 0.7, "mINP": 0.5, "pairwise_f": 0.6, "minutes": 5.0}
                 for g, m in [(1.0, 0.74), (2.0, 0.5)]],
        "references": [{"source": "B", "target": "A", "gap": 1.0,
                        "direct": {"mAP": 0.52, "rank1": 0.6, "mINP": 0.35},
                        "supervised": {"mAP": 0.77, "rank1": 0.8, "mINP": 0.6}}]})


def test_rows_from_each_chapter_file_and_dials_left_out(tmp_path):
    _fake_results(tmp_path)
    rows = recorded_rows(tmp_path)
    assert set(rows.columns) >= set(ROW_KEYS) | {"setting", "budget"}
    # 3 (ch1) + 4 (ch2) + 3 (ch3, the style-2 run left out) + 1 (ch4 gap 1) + 1 (direct),
    # less MMT's seed 0, which chapters 2 and 3 both recorded
    assert len(rows) == 11
    assert not ((rows.method == "camera BN") & (rows.mAP == 0.1)).any()
    b = rows[(rows.method == "camera BN") & (rows.dataset == "synthetic:B")]
    assert len(b) == 1 and b.mAP.iloc[0] == 0.45
    uda = rows[rows.setting == "domain adaptation"]
    assert set(uda.method) == {"Cluster Contrast", "direct transfer"}
    assert (uda.source == "synthetic:B").all() and (uda.dataset == "synthetic:A").all()
    assert uda[uda.method == "Cluster Contrast"].mAP.iloc[0] == 0.74  # gap-2 run left out
    # of_upper: A's upper bound from chapter 1's file (0.8) unless the row brought its own
    ch1 = rows[rows.chapter == "1"]
    np.testing.assert_allclose(ch1.of_upper, ch1.mAP / 0.8)
    # budgets in words
    assert set(ch1.budget) == {"4 rounds x 2 epochs"}
    assert set(rows[rows.chapter == "2"].budget) == {"3 epochs"}


def test_the_same_run_in_two_files_counts_once_and_recipes_win(tmp_path):
    _fake_results(tmp_path)
    rows = recorded_rows(tmp_path)
    mmt = rows[(rows.method == "MMT") & (rows.seed == 0)]
    assert len(mmt) == 1 and mmt.mAP.iloc[0] == 0.9  # chapter 3's file, read after chapter 2's
    recipe = dict.fromkeys(ROW_KEYS)
    recipe.update(method="MMT", chapter="2", dataset="synthetic:A", source="", seed=0,
                  profile="quick", mAP=0.33, rank1=0.4, mINP=0.2, pairwise_f=0.5, minutes=1.5,
                  settings={"profile": "quick", "epochs": 3}, command="x", date="y")
    selected = {**recipe, "mAP": 0.44, "settings": {"profile": "quick", "epochs": 3,
                                                    "best_epoch": 2}}
    uda = {**recipe, "method": "Cluster Contrast (from the source)", "chapter": "4",
           "source": "synthetic:B", "settings": {"profile": "quick", "epochs": 12}}
    _write(tmp_path / "ch6-runs-quick.json", {"rows": [recipe, selected, uda]})
    rows = recorded_rows(tmp_path)
    mmt = rows[(rows.method == "MMT") & (rows.seed == 0)]
    last = mmt[mmt.budget == "3 epochs"]
    assert len(last) == 1 and last.mAP.iloc[0] == 0.33 and last.minutes.iloc[0] == 1.5
    # the best validation epoch is another protocol: its own line, never merged with the last
    best = mmt[mmt.budget == "3 epochs, best on validation"]
    assert len(best) == 1 and best.mAP.iloc[0] == 0.44
    # a recipe's title is the table's name: it replaces chapter 4's row of the same run
    cc = rows[(rows.setting == "domain adaptation") & (rows.method == "Cluster Contrast")]
    assert len(cc) == 1 and cc.mAP.iloc[0] == 0.33 and cc.recipe.iloc[0]
    # the table counts a line's grid runs: chapter 3's MMT seed 0 was replaced by the recipe's
    table = benchmark_table(rows)
    assert table.loc[("fully unsupervised", "synthetic:A", "", "3 epochs", "MMT"),
                     "grid runs"] == 1
    assert table.loc[("fully unsupervised", "synthetic:A", "", "3 epochs", "ECN (exemplar memory)"),
                     "grid runs"] == 0


def test_table_means_and_spread_by_hand(tmp_path):
    _fake_results(tmp_path)
    table = benchmark_table(recorded_rows(tmp_path))
    line = table.loc[("fully unsupervised", "synthetic:A", "", "4 rounds x 2 epochs",
                      "DBSCAN-Jaccard loop")]
    assert line["mAP"] == pytest.approx((0.5 + 0.6 + 0.7) / 3)
    assert line["mAP std"] == pytest.approx(0.1)  # sample std of 0.5, 0.6, 0.7
    assert line["seeds"] == 3 and line["minutes"] == pytest.approx(2.0)
    assert line["of_upper"] == pytest.approx(0.6 / 0.8)
    ecn = table.loc[("fully unsupervised", "synthetic:A", "", "3 epochs", "ECN (exemplar memory)")]
    assert ecn["mAP"] == pytest.approx(0.25) and math.isnan(ecn["rank1"])  # mAP only
    one = table.loc[("fully unsupervised", "synthetic:B", "", "3 epochs", "camera BN")]
    assert one["seeds"] == 1 and math.isnan(one["mAP std"])  # one seed: no spread
    direct = table.loc[("domain adaptation", "synthetic:A", "synthetic:B", "", "direct transfer")]
    assert direct["of_upper"] == pytest.approx(0.52 / 0.77) and direct["family"] == "Direct"
    # best mAP first within a block
    block = table.loc[("fully unsupervised", "synthetic:A", "", "3 epochs")]
    assert list(block["mAP"]) == sorted(block["mAP"], reverse=True)


def test_course_build_rows_use_the_table_names(tmp_path):
    _fake_results(tmp_path)
    _write(tmp_path / "course-quick.json", {
        "03_camera_invariance": {"profile": "quick", "results": {
            "epochs": 3, "methods": ["CAP (camera-aware proxies)", "camera BN"],
            "methods_mAP": [0.47, 0.2], "methods_minutes": [0.5, 1.0]}},
        "04_domain_adaptation": {"profile": "full", "results": {  # another profile: left out
            "epochs": 3, "methods": ["MMFA (attributes + features aligned)"],
            "methods_mAP": [0.5]}}})
    rows = recorded_rows(tmp_path)
    cap = rows[rows.method == "CAP"]
    assert len(cap) == 1 and cap.mAP.iloc[0] == 0.47 and cap.minutes.iloc[0] == 0.5
    assert cap.budget.iloc[0] == "3 epochs" and cap.dataset.iloc[0] == "synthetic:A"
    # chapter 3's seeds file holds camera BN's seed 0 too: the later file wins
    bn = rows[(rows.method == "camera BN") & (rows.dataset == "synthetic:A")]
    assert len(bn) == 1 and bn.mAP.iloc[0] == 0.55
    assert "MMFA" not in set(rows.method)


def test_missing_cells_name_seeds_and_columns(tmp_path):
    _fake_results(tmp_path)
    rows = recorded_rows(tmp_path)
    grid = [("1", "DBSCAN-Jaccard loop", "synthetic:A", ""),
            ("2", "ECN (exemplar memory)", "synthetic:A", ""),
            ("3", "camera BN", "synthetic:B", ""), ("3", "ICE", "synthetic:A", "")]
    missing = missing_cells(rows, grid).set_index("method")
    assert "DBSCAN-Jaccard loop" not in missing.index  # 3 seeds, every column
    assert missing.loc["ECN (exemplar memory)", "seeds missing"] == [2]
    assert "rank1" in missing.loc["ECN (exemplar memory)", "columns missing"]
    assert missing.loc["camera BN", "seeds missing"] == [1, 2]
    assert missing.loc["ICE", "seeds missing"] == [0, 1, 2]


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no recorded runs"):
        recorded_rows(tmp_path)
    (tmp_path / "ch6-runs-quick.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        recorded_rows(tmp_path)
    _write(tmp_path / "ch6-runs-quick.json", {"rows": [{"method": "x"}]})
    with pytest.raises(ValueError, match="row 0 should have exactly the keys"):
        read_rows(tmp_path / "ch6-runs-quick.json")
    _write(tmp_path / "ch6-runs-quick.json", [1, 2])
    with pytest.raises(ValueError, match="list 'rows'"):
        read_rows(tmp_path / "ch6-runs-quick.json")


def test_the_course_recorded_results_make_a_table():
    rows = recorded_rows(REPO / "benchmarks" / "results")
    table = benchmark_table(rows)
    assert {"fully unsupervised", "domain adaptation", "video"} <= set(
        table.index.get_level_values("setting"))
    assert (table["mAP"].between(0, 1)).all()


def _recipe_row(seed: int, minutes: float, concurrent: int | None, mAP: float = 0.5) -> dict:
    row = dict.fromkeys(ROW_KEYS)
    settings = {"profile": "quick", "epochs": 3}
    if concurrent is not None:
        settings.update(threads=2 // concurrent, concurrent_runs=concurrent)
    row.update(method="ICE", chapter="3", dataset="synthetic:B", source="", seed=seed,
               profile="quick", mAP=mAP, rank1=0.5, mINP=0.3, pairwise_f=0.4, minutes=minutes,
               settings=settings, command="x", date="y")
    return row


def test_minutes_come_from_the_runs_made_alone(tmp_path):
    # seed 0 alone (2.0 min, no concurrency recorded), seeds 1-2 two at a time (3.0, 3.4 min)
    _write(tmp_path / "ch6-runs-quick.json", {"rows": [
        _recipe_row(0, 2.0, None, 0.4), _recipe_row(1, 3.0, 2, 0.5), _recipe_row(2, 3.4, 2, 0.6)]})
    line = benchmark_table(recorded_rows(tmp_path)).loc[
        ("fully unsupervised", "synthetic:B", "", "3 epochs", "ICE")]
    assert line["minutes"] == pytest.approx(2.0) and line["minutes alone"]
    assert line["mAP"] == pytest.approx(0.5) and line["seeds"] == 3  # every seed's accuracy
    assert line["grid runs"] == 3
    # no run alone: the concurrent runs' minutes, marked as such
    _write(tmp_path / "ch6-runs-quick.json", {"rows": [
        _recipe_row(1, 3.0, 2), _recipe_row(2, 3.4, 2)]})
    line = benchmark_table(recorded_rows(tmp_path)).loc[
        ("fully unsupervised", "synthetic:B", "", "3 epochs", "ICE")]
    assert line["minutes"] == pytest.approx(3.2) and not line["minutes alone"]


def test_the_grid_merges_each_run_once_with_its_threads(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("chapter6_runs",
                                                  REPO / "benchmarks" / "chapter6_runs.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    out, parts = tmp_path / "out.json", tmp_path / ".out.json.parts"
    parts.mkdir()
    first = _recipe_row(0, 2.0, None)
    _write(out, {"rows": [first]})
    for i, seed in [(1, 1), (2, 2)]:
        row = _recipe_row(seed, 3.0, None)
        row["command"] = f"python -m reidlib.recipes ice --out {parts / f'run-{i}.json'}"
        _write(parts / f"run-{i}.json", {"rows": [row]})
    assert grid.collect(parts, out, threads=1, concurrent=2) == 2
    rows = json.loads(out.read_text())["rows"]
    assert [r["seed"] for r in rows] == [0, 1, 2] and not list(parts.glob("run-*.json"))
    assert rows[0]["settings"] == first["settings"]  # a row already merged is left as it was
    assert rows[1]["settings"]["threads"] == 1 and rows[1]["settings"]["concurrent_runs"] == 2
    assert rows[2]["command"] == f"python -m reidlib.recipes ice --out {out}"
    assert grid.collect(parts, out) == 0 and json.loads(out.read_text())["rows"] == rows
