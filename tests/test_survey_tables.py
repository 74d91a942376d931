"""The survey's Tables 3-5 as data (chapter 6): counts and cells against the printed survey,
validation of malformed files, and the analysis and plotting helpers on tiny frames."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from reidlib.benchmark import survey  # noqa: E402

HEADER = ",".join(survey.COLUMNS)
GOOD_ROW = "4,BUC,52,2019,,unsupervised,,Market-1501,66.20,79.60,84.50,38.30,"


@pytest.fixture(scope="module")
def tables():
    return survey.load_survey_tables()


def test_row_counts_per_table_and_block(tables):
    # Counted by hand from the survey text (lines 1296-1419): per table the method rows, and per
    # dataset block the rows whose four cells are not all "-".
    # Table 3 (40 method rows): Duke->Market all but SPCL (39); Market->Duke all but CAMEL, DAS
    # and SPCL (37); Market->MSMT PTGAN ECN SSG DG-Net++ D-MMD DAAM SCCT JVTC MMT Mixup SPCL (11);
    # Duke->MSMT the same with MMCL instead of SPCL (11).
    # Table 4 (13 rows): Market 13; Duke all but SpCL (12); MSMT17 UGA UTAL JVTC HCT MMCL SpCL
    # DSCE IICS (8); CUHK03 TAUDL UGA UTAL (3).
    # Table 5 (9 rows): MARS 9; DukeMTMC-VideoReID BUC TSSL SSL (3); PRID2011 and iLIDS-VID
    # SMP TAUDL UGA UTAL (4 each).
    expected = {
        (3, "DukeMTMC-reID", "Market-1501"): 39, (3, "Market-1501", "DukeMTMC-reID"): 37,
        (3, "Market-1501", "MSMT17"): 11, (3, "DukeMTMC-reID", "MSMT17"): 11,
        (4, "", "Market-1501"): 13, (4, "", "DukeMTMC-reID"): 12, (4, "", "MSMT17"): 8,
        (4, "", "CUHK03"): 3,
        (5, "", "MARS"): 9, (5, "", "DukeMTMC-VideoReID"): 3, (5, "", "PRID2011"): 4,
        (5, "", "iLIDS-VID"): 4,
    }
    counts = tables.groupby(["table", "source", "target"]).size().to_dict()
    assert counts == expected
    assert len(tables) == 154
    methods = tables.groupby("table")[["method", "ref"]].apply(lambda g: len(g.drop_duplicates()))
    assert methods.to_dict() == {3: 40, 4: 13, 5: 9}


def cell(df, table, method, target, source=""):
    rows = df[(df.table == table) & (df.method == method) & (df.target == target)
              & (df.source == source)]
    assert len(rows) == 1, (table, method, source, target)
    return rows.iloc[0]


@pytest.mark.parametrize("table,method,source,target,column,value", [
    (3, "SSG", "DukeMTMC-reID", "Market-1501", "rank1", 86.2),
    (3, "SSG", "DukeMTMC-reID", "Market-1501", "mAP", 68.7),
    (3, "ECN", "Market-1501", "MSMT17", "mAP", 8.5),
    (3, "PTGAN", "DukeMTMC-reID", "MSMT17", "rank10", 27.4),
    (3, "DCML", "Market-1501", "DukeMTMC-reID", "mAP", 63.5),
    (3, "PAST", "DukeMTMC-reID", "Market-1501", "mAP", 54.62),
    (3, "GLT", "Market-1501", "DukeMTMC-reID", "rank5", 90.2),
    (4, "IICS", "", "MSMT17", "rank10", 73.4),
    (4, "TAUDL", "", "CUHK03", "mAP", 31.2),
    (5, "SMP", "", "MARS", "rank1", 23.59),
    (5, "SSL", "", "DukeMTMC-VideoReID", "mAP", 69.3),
])
def test_hand_picked_cells_match_the_survey(tables, table, method, source, target, column, value):
    assert cell(tables, table, method, target, source)[column] == pytest.approx(value)


def test_types_markers_and_missing_values(tables):
    assert tables["year"].dtype == np.int64 and tables["table"].dtype == np.int64
    assert all(tables[m].dtype == np.float64 for m in survey.METRICS)
    ptgan = cell(tables, 3, "PTGAN", "Market-1501", "DukeMTMC-reID")
    assert math.isnan(ptgan["rank5"]) and math.isnan(ptgan["mAP"]) and ptgan["rank1"] == 38.6
    das = cell(tables, 3, "DAS", "Market-1501", "DukeMTMC-reID")
    assert das[["rank5", "rank10", "mAP"]].isna().all() and das["note"].startswith("marker *")
    assert cell(tables, 3, "SSG", "MSMT17", "Market-1501")["ref"] == 56
    # markers live in the note, never in the method name
    assert not tables["method"].str.contains(r"\(|\*").any()
    assert set(tables.loc[tables.table == 3, "approach"]) == {"FA", "IT", "Cluster"}
    assert set(tables.loc[tables.table > 3, "approach"]) == {""}


def test_misprint_reading_fixes_hct_only(tables):
    fixed = survey.correct_misprints(tables)
    assert len(fixed) == len(tables) - 1
    hct = cell(fixed, 4, "HCT", "DukeMTMC-reID")
    assert (hct["rank1"], hct["rank10"], hct["mAP"]) == (69.6, 87.4, 50.7)
    assert not ((fixed.method == "HCT") & (fixed.target == "MSMT17")).any()
    assert cell(tables, 4, "HCT", "DukeMTMC-reID")["mAP"] == 87.4  # the file stays as printed
    others = fixed[fixed.method != "HCT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, tables[tables.method != "HCT"].reset_index(drop=True))


def test_later_methods_are_separate_and_cite_a_source(tables):
    later = survey.load_later_methods()
    assert list(later.columns) == list(survey.LATER_COLUMNS)
    assert later["source_url"].str.startswith("https://").all()
    assert later["ref"].isna().all()
    assert set(later["method"]).isdisjoint(set(tables["method"]))
    assert cell(later, 4, "ICE", "Market-1501")["mAP"] == 82.3


def write(tmp_path, *lines, header=HEADER):
    path = tmp_path / "tables.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


@pytest.mark.parametrize("row,message", [
    ("4,BUC,52,2019,,unsupervised,,Market-1501,66.20,abc,84.50,38.30,", "'rank5'"),
    ("4,BUC,52,2019,,unsupervised,,Market-1501,166.2,,,38.30,", "[0, 100]"),
    ("4,BUC,52,2019,,unsupervised,,Market1501,66.20,,,38.30,", "'target'"),
    ("4,BUC,52,2019,,uda,,Market-1501,66.20,,,38.30,", "'setting'"),
    ("4,BUC,52,19,,unsupervised,,Market-1501,66.20,,,38.30,", "'year'"),
    ("4,BUC,x,2019,,unsupervised,,Market-1501,66.20,,,38.30,", "'ref'"),
    ("6,BUC,52,2019,,unsupervised,,Market-1501,66.20,,,38.30,", "'table'"),
    ("4,BUC,52,2019,,unsupervised,,Market-1501,,,,,", "all four metrics"),
    ("4,BUC,52,2019,Cluster,unsupervised,,Market-1501,66.20,,,38.30,", "'approach'"),
    ("4,BUC,52,2019,,unsupervised,Market-1501,Market-1501,66.20,,,38.30,", "'source'"),
    ("3,BUC,52,2019,GAN,uda,DukeMTMC-reID,Market-1501,66.20,,,38.30,", "'approach'"),
    ("3,BUC,52,2019,IT,uda,Market-1501,Market-1501,66.20,,,38.30,", "'source'"),
    ("4,BUC,52,2019,,unsupervised,,Market-1501,66.20,,,38.30", "13 cells"),
    (GOOD_ROW, "duplicate of line 2"),
])
def test_malformed_rows_raise_naming_file_line_and_column(tmp_path, row, message):
    path = write(tmp_path, GOOD_ROW, row)
    with pytest.raises(ValueError, match="line 3") as info:
        survey.load_survey_tables(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_bad_header_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="line 1: expected the header"):
        survey.load_survey_tables(write(tmp_path, GOOD_ROW, header="# survey tables"))
    with pytest.raises(ValueError, match="no such file"):
        survey.load_later_methods(tmp_path / "absent.csv")
    ok = survey.load_survey_tables(write(tmp_path, GOOD_ROW))
    assert len(ok) == 1 and ok["rank10"].iloc[0] == 84.5


def tiny():
    """Six UDA results on one benchmark and one elsewhere, numbers chosen for by-hand sums."""
    rows = [  # method, year, approach, source, target, mAP
        ("a", 2018, "IT", "DukeMTMC-reID", "Market-1501", 20.0),
        ("b", 2018, "IT", "DukeMTMC-reID", "Market-1501", 30.0),
        ("c", 2020, "IT", "DukeMTMC-reID", "Market-1501", 25.0),
        ("d", 2019, "Cluster", "DukeMTMC-reID", "Market-1501", 40.0),
        ("e", 2021, "Cluster", "DukeMTMC-reID", "Market-1501", 70.0),
        ("f", 2021, "Cluster", "DukeMTMC-reID", "Market-1501", float("nan")),
        ("g", 2019, "Cluster", "Market-1501", "DukeMTMC-reID", 45.0),
    ]
    frame = pd.DataFrame(rows, columns=["method", "year", "approach", "source", "target", "mAP"])
    return frame.assign(table=3, setting="uda", rank1=np.nan, note="")


def test_best_per_year_and_trend_by_hand():
    best = survey.best_per_year(tiny(), "uda", "Market-1501")
    assert best.to_dict("records") == [
        {"family": "Cluster", "year": 2019, "method": "d", "mAP": 40.0},
        {"family": "Cluster", "year": 2021, "method": "e", "mAP": 70.0},
        {"family": "IT", "year": 2018, "method": "b", "mAP": 30.0},
        {"family": "IT", "year": 2020, "method": "c", "mAP": 25.0},
    ]
    trend = survey.family_trend(tiny(), "uda", "Market-1501").set_index("family")
    # two points per family: the slope is the rise over the run
    assert trend.loc["Cluster", "slope"] == pytest.approx((70 - 40) / (2021 - 2019))
    assert trend.loc["IT", "slope"] == pytest.approx((25 - 30) / (2020 - 2018))
    assert trend.loc["IT", "gain"] == pytest.approx(-5.0)
    assert trend.loc["Cluster", ["first_year", "last_year"]].tolist() == [2019, 2021]
    one = survey.best_per_year(tiny(), "uda", "Market-1501", family_col=None)
    assert one["method"].tolist() == ["b", "d", "c", "e"] and set(one.family) == {survey.NO_FAMILY}


def test_trend_slope_matches_least_squares_by_hand(tables):
    trend = survey.family_trend(tables, "video", "MARS").iloc[0]
    # Table 5 MARS, best mAP per year: 2017 SMP 10.54, 2018 TAUDL 29.10, 2019 UGA 39.30,
    # 2020 SSL 43.60; slope = sum((x - mean x)(y - mean y)) / sum((x - mean x)^2)
    x, y = np.array([2017, 2018, 2019, 2020.0]), np.array([10.54, 29.10, 39.30, 43.60])
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert trend["slope"] == pytest.approx(slope)
    assert (trend["first_best"], trend["last_best"]) == (10.54, 43.60)


def test_select_needs_a_source_when_a_target_has_several(tables):
    with pytest.raises(ValueError, match="several sources"):
        survey.best_per_year(tables, "uda", "MSMT17")
    best = survey.best_per_year(tables, "uda", "MSMT17", source="Market-1501")
    assert best.set_index(["family", "year"]).loc[("Cluster", 2020), "method"] == "SPCL"
    with pytest.raises(ValueError, match="metric"):
        survey.best_per_year(tables, "uda", "Market-1501", metric="top1")
    with pytest.raises(ValueError, match="no row"):
        survey.best_per_year(tables, "video", "Market-1501")


def test_gap_to_supervised_by_hand():
    gap = survey.gap_to_supervised(tiny(), {"Market-1501": 80.0})
    assert gap["method"].tolist() == ["a", "b", "c", "d", "e"]  # f has no mAP, g other target
    assert gap["share"].tolist() == pytest.approx([0.25, 0.375, 0.3125, 0.5, 0.875])
    assert (gap["supervised"] == 80.0).all()
    with pytest.raises(ValueError, match="percentage"):
        survey.gap_to_supervised(tiny(), {"Market-1501": 0.0})
    with pytest.raises(ValueError, match="at least one"):
        survey.gap_to_supervised(tiny(), {})


def test_plot_over_years_draws_every_method_and_a_running_best(tables):
    fig = survey.plot_map_over_years(tables, "uda", "Market-1501")
    ax = fig.axes[0]
    assert "Table 3" in ax.get_title()
    dots = np.concatenate([c.get_offsets() for c in ax.collections])
    market = tables[(tables.target == "Market-1501") & (tables.setting == "uda")].dropna(
        subset=["mAP"])
    assert len(dots) == len(market)
    lines = {line.get_label(): line for line in ax.get_lines()}
    cluster = lines["Cluster: running best"]
    # the running best never falls and ends at the family's overall best (GLT, 79.5)
    assert np.all(np.diff(cluster.get_ydata()) >= 0) and cluster.get_ydata()[-1] == 79.5


def test_plot_family_gap_bars_are_best_shares(tables):
    supervised = {"Market-1501": 80.0, "DukeMTMC-reID": 70.0}
    fig = survey.plot_family_gap(tiny(), supervised, "uda")
    ax = fig.axes[0]
    assert "Table 3" in ax.get_title()
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    # Market: IT best 30/80, Cluster best 70/80; Duke: Cluster 45/70, no IT bar
    assert heights == sorted([0.375, 0.875, round(45 / 70, 6)])
    fig = survey.plot_family_gap(survey.correct_misprints(tables), supervised, "unsupervised")
    assert len(fig.axes[0].patches) == 2 and "Table 4" in fig.axes[0].get_title()


def test_supervised_references_are_agw_as_published(tmp_path):
    from reidlib.benchmark.survey import supervised_references

    ref = supervised_references()
    # AGW's official README (Ye et al., TPAMI 2021), mAP in percent, read by hand
    assert ref == {"Market-1501": 87.8, "DukeMTMC-reID": 79.6, "MSMT17": 49.3, "CUHK03": 62.0}
    bad = tmp_path / "ref.csv"
    bad.write_text("method,target,rank1,mAP,mINP,note,source_url\n"
                   "AGW,Atlantis,1,2,3,x,https://example.org\n")
    with pytest.raises(ValueError, match="line 2: unknown target 'Atlantis'"):
        supervised_references(bad)
    bad.write_text("method,target,rank1,mAP,mINP,note,source_url\n"
                   "AGW,MSMT17,1,200,3,x,https://example.org\n")
    with pytest.raises(ValueError, match="number in \\[0, 100\\]"):
        supervised_references(bad)
    with pytest.raises(ValueError, match="no such file"):
        supervised_references(tmp_path / "absent.csv")
