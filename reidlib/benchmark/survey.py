"""The survey's result tables as data (course chapter 6; survey §4.3, Tables 3, 4 and 5).

Lin et al., *Unsupervised Person Re-Identification: A Systematic Survey of Challenges and
Solutions* (arXiv:2109.06057) print three result tables: Table 3 (image-based unsupervised
cross-domain re-ID, i.e. UDA), Table 4 (image-based fully unsupervised) and Table 5 (video-based
fully unsupervised). ``data/survey_tables.csv`` holds them in long format, one row per
(method, dataset block), exactly as printed; ``data/later_methods.csv`` holds a few later methods
with public code, kept apart. ``data/README.md`` lists the columns, sources and our readings.

Supervised reference numbers: the survey prints no supervised mAP, only supervised Rank-1 in its
introduction (98.5 on Market-1501, "over 95" on DukeMTMC-reID), so there is no constant here;
``gap_to_supervised`` takes the supervised numbers from the caller.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reidlib.viz.grids import new_figure

SURVEY_TABLES_VERSION = "1"

DATA_DIR = Path(__file__).with_name("data")
SURVEY_CSV = DATA_DIR / "survey_tables.csv"
LATER_CSV = DATA_DIR / "later_methods.csv"
SUPERVISED_CSV = DATA_DIR / "supervised_references.csv"

COLUMNS = ("table", "method", "ref", "year", "approach", "setting", "source", "target",
           "rank1", "rank5", "rank10", "mAP", "note")
LATER_COLUMNS = COLUMNS + ("source_url",)
METRICS = ("rank1", "rank5", "rank10", "mAP")

SETTING_OF_TABLE = {3: "uda", 4: "unsupervised", 5: "video"}
TARGETS_OF_TABLE = {
    3: ("Market-1501", "DukeMTMC-reID", "MSMT17"),
    4: ("Market-1501", "DukeMTMC-reID", "MSMT17", "CUHK03"),
    5: ("MARS", "DukeMTMC-VideoReID", "PRID2011", "iLIDS-VID"),
}
SOURCES_OF_TABLE_3 = ("Market-1501", "DukeMTMC-reID")
APPROACHES = ("FA", "IT", "Cluster")  # Table 3's approach column; Tables 4 and 5 have none
TABLE_TITLES = {
    3: "Survey Table 3: image-based unsupervised cross-domain (UDA)",
    4: "Survey Table 4: image-based fully unsupervised",
    5: "Survey Table 5: video-based fully unsupervised",
}
NO_FAMILY = "all methods"  # the family of rows whose family column is empty (Tables 4 and 5)

# Cells of the survey that are misprinted, with the reading that ``correct_misprints`` applies.
# HCT (Zeng et al., CVPR 2020) evaluates on Market-1501 and DukeMTMC-reID only and reports
# 50.7 mAP on DukeMTMC-reID (its abstract); the survey's Table 4 row is shifted by one cell.
MISPRINTS = {
    (4, "HCT", "DukeMTMC-reID"): {"rank10": 87.4, "mAP": 50.7},
    (4, "HCT", "MSMT17"): None,  # not a result: the row is dropped
}


def load_survey_tables(path: str | Path | None = None) -> pd.DataFrame:
    """Survey Tables 3-5 as a long frame (one row per method and dataset block).

    Columns are ``COLUMNS``: ``table``, ``ref`` and ``year`` are ints, the four metrics are
    floats in percent with NaN where the survey prints "-", the text columns are strings
    ("" when empty). Every row is validated; a bad file raises ``ValueError`` naming the file,
    the line and what was expected.
    """
    path = Path(path) if path is not None else SURVEY_CSV
    return _load(path, COLUMNS, survey=True)


def load_later_methods(path: str | Path | None = None) -> pd.DataFrame:
    """Later methods with public code (not in the survey), same columns plus ``source_url``.

    ``table`` says which survey table the row extends (3 for UDA, 4 for fully unsupervised);
    ``ref`` is empty (<NA>): these methods have no reference number in the survey.
    """
    path = Path(path) if path is not None else LATER_CSV
    return _load(path, LATER_COLUMNS, survey=False)


def supervised_references(path: str | Path | None = None) -> dict[str, float]:
    """Target dataset -> a supervised model's published mAP (%), the reference that
    :func:`gap_to_supervised` divides by. The survey prints none (only rank-1 in its text),
    so the file holds AGW's (Ye et al., TPAMI 2021: ResNet-50 from ImageNet, supervised on
    each dataset; the numbers of its official README, cited per row). Validated like the
    tables: a clear ``ValueError`` naming the file and line."""
    path = Path(path) if path is not None else SUPERVISED_CSV
    if not path.exists():
        raise ValueError(f"{path}: no such file (expected the supervised references CSV)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected = ["method", "target", "rank1", "mAP", "mINP", "note", "source_url"]
    if list(frame.columns) != expected:
        raise ValueError(f"{path}: expected the columns {expected}, got {list(frame.columns)}")
    out = {}
    for line, row in enumerate(frame.to_dict("records"), start=2):
        where = f"{path}, line {line}"
        if row["target"] not in {t for ts in TARGETS_OF_TABLE.values() for t in ts}:
            raise ValueError(f"{where}: unknown target {row['target']!r}")
        if row["target"] in out:
            raise ValueError(f"{where}: a second reference for {row['target']!r}")
        if not row["source_url"].startswith("http"):
            raise ValueError(f"{where}: source_url must cite where the number is printed")
        out[row["target"]] = _metric(row["mAP"], "mAP", where)
    return out


def _load(path: Path, columns: tuple[str, ...], survey: bool) -> pd.DataFrame:
    """Read ``path`` as plain CSV, check its header and every row, and build typed columns."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != columns:
        got = rows[0] if rows else "an empty file"
        raise ValueError(f"{path}: line 1: expected the header {','.join(columns)}, got {got}")
    records, seen = [], {}
    for line, cells in enumerate(rows[1:], start=2):
        if len(cells) != len(columns):
            raise ValueError(f"{path}: line {line}: expected {len(columns)} cells, "
                             f"got {len(cells)}")
        record = _parse_row(dict(zip(columns, cells, strict=True)), survey, f"{path}: line {line}")
        key = (record["table"], record["method"], record["source"], record["target"])
        if key in seen:
            raise ValueError(f"{path}: line {line}: duplicate of line {seen[key]} "
                             f"(same table, method, source and target)")
        seen[key] = line
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=list(columns))
    frame = frame.astype({"table": "int64", "year": "int64", "ref": "Int64"})
    return frame.astype({m: "float64" for m in METRICS})


def _parse_row(row: dict[str, str], survey: bool, where: str) -> dict:
    """One CSV row as typed values; ``where`` ("file: line n") starts every error message."""
    table = _integer(row["table"], "table", where)
    if table not in SETTING_OF_TABLE:
        raise ValueError(f"{where}: column 'table' must be 3, 4 or 5, got {table}")
    setting = row["setting"]
    if setting != SETTING_OF_TABLE[table]:
        raise ValueError(f"{where}: column 'setting' must be {SETTING_OF_TABLE[table]!r} for "
                         f"table {table}, got {setting!r}")
    if not row["method"].strip():
        raise ValueError(f"{where}: column 'method' must not be empty")
    year = _integer(row["year"], "year", where)
    if not 2000 <= year <= 2100:
        raise ValueError(f"{where}: column 'year' must be a year (2000-2100), got {year}")
    ref = _integer(row["ref"], "ref", where) if (survey or row["ref"]) else None
    _check_datasets(table, row["source"], row["target"], where)
    _check_approach(table, row["approach"], survey, where)
    metrics = {m: _metric(row[m], m, where) for m in METRICS}
    if all(np.isnan(v) for v in metrics.values()):
        raise ValueError(f"{where}: all four metrics are empty; such blocks are left out")
    if not survey and not row["source_url"].startswith("https://"):
        raise ValueError(f"{where}: column 'source_url' must be an https:// address, "
                         f"got {row['source_url']!r}")
    return {**row, "table": table, "year": year, "ref": ref, **metrics}


def _integer(text: str, column: str, where: str) -> int:
    """``text`` as an int, else a ValueError saying which column wanted one."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} must be an integer, got {text!r}") from None


def _metric(text: str, column: str, where: str) -> float:
    """A metric cell: empty (missing) or a number of percent in [0, 100]."""
    if text == "":
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{where}: column {column!r} must be empty or a number in [0, 100] "
                         f"(percent), got {text!r}")
    return value


def _check_datasets(table: int, source: str, target: str, where: str) -> None:
    """Targets must use the normalised spellings; only Table 3 (UDA) has a source."""
    if target not in TARGETS_OF_TABLE[table]:
        raise ValueError(f"{where}: column 'target' must be one of {TARGETS_OF_TABLE[table]} "
                         f"for table {table}, got {target!r}")
    if table != 3 and source:
        raise ValueError(f"{where}: column 'source' must be empty for table {table}, "
                         f"got {source!r}")
    if table == 3 and (source not in SOURCES_OF_TABLE_3 or source == target):
        raise ValueError(f"{where}: column 'source' must be one of {SOURCES_OF_TABLE_3} and "
                         f"differ from the target {target!r}, got {source!r}")


def _check_approach(table: int, approach: str, survey: bool, where: str) -> None:
    """Table 3 prints FA / IT / Cluster; Tables 4-5 print no approach (the later file may)."""
    if table == 3 or (not survey and approach):
        if approach not in APPROACHES:
            raise ValueError(f"{where}: column 'approach' must be one of {APPROACHES}, "
                             f"got {approach!r}")
    elif approach:
        raise ValueError(f"{where}: column 'approach' must be empty for table {table} "
                         f"(the survey prints none), got {approach!r}")


def correct_misprints(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with the survey's known misprints (``MISPRINTS``) read as intended.

    The CSV keeps the survey exactly as printed; call this before ranking methods, or HCT's
    shifted Table 4 row puts an 87.4 mAP on DukeMTMC-reID and a Rank-1 on MSMT17 that HCT
    never reported.
    """
    out = df.copy()
    keep = np.ones(len(out), dtype=bool)
    for (table, method, target), fix in MISPRINTS.items():
        hit = ((out["table"] == table) & (out["method"] == method)
               & (out["target"] == target)).to_numpy()
        if fix is None:
            keep &= ~hit
        for column, value in (fix or {}).items():
            out.loc[hit, column] = value
    return out.loc[keep].reset_index(drop=True)


def select(df: pd.DataFrame, setting: str, target: str, source: str | None = None,
           metric: str = "mAP") -> pd.DataFrame:
    """The rows of one benchmark (setting, target and, for UDA, source) that report ``metric``.

    A UDA target reached from several sources (MSMT17 in Table 3) needs ``source``: results
    from different sources are different benchmarks.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    rows = df[(df["setting"] == setting) & (df["target"] == target)]
    if source is not None:
        rows = rows[rows["source"] == source]
    sources = sorted(set(rows["source"]))
    if len(sources) > 1:
        raise ValueError(f"target {target!r} in setting {setting!r} has several sources "
                         f"{sources}; pass source=")
    rows = rows[rows[metric].notna()]
    if rows.empty:
        raise ValueError(f"no row reports {metric!r} for setting={setting!r}, "
                         f"target={target!r}, source={source!r}")
    return rows


def _families(rows: pd.DataFrame, family_col: str | None) -> pd.Series:
    """Each row's family; rows with no family (Tables 4-5 print no approach) share one."""
    if family_col is None:
        return pd.Series(NO_FAMILY, index=rows.index)
    if family_col not in rows.columns:
        raise ValueError(f"family_col must be a column of the frame, got {family_col!r}")
    return rows[family_col].fillna("").astype(str).replace("", NO_FAMILY)


def best_per_year(df: pd.DataFrame, setting: str, target: str, family_col: str | None = "approach",
                  metric: str = "mAP", source: str | None = None) -> pd.DataFrame:
    """The best ``metric`` per year within each family (survey §4.3's comparison, by year).

    Returns columns ``family, year, method, <metric>`` sorted by family and year; a tie keeps
    the method listed first. ``family_col=None`` treats all methods as one family.
    """
    rows = select(df, setting, target, source, metric).assign(
        family=lambda r: _families(r, family_col))
    best = rows.loc[rows.groupby(["family", "year"], sort=True)[metric].idxmax()]
    return best[["family", "year", "method", metric]].reset_index(drop=True)


def family_trend(df: pd.DataFrame, setting: str, target: str, family_col: str | None = "approach",
                 metric: str = "mAP", source: str | None = None) -> pd.DataFrame:
    """How each family's best result moved over the years (from ``best_per_year``).

    One row per family: ``first_year``, ``first_best`` (best in its first year), ``last_year``,
    ``last_best``, ``gain`` (last minus first) and ``slope``, the least-squares slope of the
    yearly best against the year in points per year (NaN with a single year).
    """
    best = best_per_year(df, setting, target, family_col, metric, source)
    rows = []
    for family, group in best.groupby("family", sort=True):
        years, values = group["year"].to_numpy(float), group[metric].to_numpy(float)
        slope = np.polyfit(years, values, 1)[0] if len(years) > 1 else float("nan")
        rows.append({"family": family, "first_year": int(years[0]), "first_best": values[0],
                     "last_year": int(years[-1]), "last_best": values[-1],
                     "gain": values[-1] - values[0], "slope": slope})
    return pd.DataFrame(rows)


def gap_to_supervised(df: pd.DataFrame, supervised: dict[str, float],
                      metric: str = "mAP") -> pd.DataFrame:
    """Each result as a share of a supervised reference on its target dataset.

    ``supervised`` maps a target name to the supervised ``metric`` in percent (the caller's
    choice: the survey prints no supervised mAP). Returns the rows whose target is in
    ``supervised`` and that report ``metric``, with two new columns: ``supervised`` and
    ``share`` (``metric / supervised``, 1.0 = as good as supervised).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not supervised:
        raise ValueError("supervised must map at least one target dataset to a number")
    for name, value in supervised.items():
        if not 0.0 < float(value) <= 100.0:
            raise ValueError(f"supervised[{name!r}] must be a percentage in (0, 100], "
                             f"got {value!r}")
    rows = df[df["target"].isin(list(supervised)) & df[metric].notna()].copy()
    if rows.empty:
        raise ValueError(f"no row reports {metric!r} on any of {sorted(supervised)}")
    rows["supervised"] = rows["target"].map(supervised).astype(float)
    rows["share"] = rows[metric] / rows["supervised"]
    return rows.reset_index(drop=True)


def _table_of(rows: pd.DataFrame) -> int:
    """The survey table a selection comes from (its title names it)."""
    return int(rows["table"].iloc[0])


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new pyplot-free figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def plot_map_over_years(df: pd.DataFrame, setting: str, target: str, ax: Axes | None = None,
                        metric: str = "mAP", family_col: str | None = "approach",
                        source: str | None = None) -> Figure:
    """Each method's ``metric`` by year (dots) and each family's running best (step line).

    The running best of a family in year y is the best it reached in any year up to y.
    """
    rows = select(df, setting, target, source, metric)
    families = _families(rows, family_col)
    fig, ax = _axes(ax, (7.0, 4.0))
    for i, family in enumerate(sorted(families.unique())):
        colour = f"C{i}"
        mine = rows[families == family]
        name = "" if family == NO_FAMILY else f"{family} "  # no "all methods methods"
        ax.scatter(mine["year"], mine[metric], color=colour, alpha=0.6, label=f"{name}methods")
        best = mine.groupby("year")[metric].max().cummax()
        # one more step half a year on, so that the last year's level shows as a line
        years = np.r_[best.index.to_numpy(float), best.index.max() + 0.5]
        ax.step(years, np.r_[best.to_numpy(), best.iloc[-1]], where="post", color=colour,
                label=f"{family}: running best" if name else "running best")
    pair = f"{rows['source'].iloc[0]} -> {target}" if setting == "uda" else target
    ax.set_title(f"{TABLE_TITLES[_table_of(rows)]}\n{metric} on {pair}")
    ax.set_xlabel("year")
    ax.set_ylabel(f"{metric} (%)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="small")
    return fig


def plot_family_gap(df: pd.DataFrame, supervised: dict[str, float], setting: str,
                    ax: Axes | None = None, metric: str = "mAP",
                    family_col: str | None = "approach") -> Figure:
    """Per target dataset, each family's best ``metric`` as a share of the supervised one.

    Grouped bars (one group per target in ``supervised`` that the setting covers, one bar per
    family); the dashed line at 1.0 is the supervised reference. UDA results from different
    sources count toward the same target.
    """
    rows = gap_to_supervised(df[df["setting"] == setting], supervised, metric)
    rows = rows.assign(family=_families(rows, family_col))
    best = rows.groupby(["target", "family"])["share"].max().unstack("family")
    targets = [t for t in supervised if t in best.index]
    best = best.loc[targets]
    fig, ax = _axes(ax, (7.0, 4.0))
    width = 0.8 / best.shape[1]
    x = np.arange(len(targets))
    for i, family in enumerate(best.columns):
        has = best[family].notna().to_numpy()  # no bar where a family has no result
        ax.bar((x + (i - (best.shape[1] - 1) / 2) * width)[has], best[family][has], width,
               color=f"C{i}", label=family)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="supervised")
    ax.set_xticks(x, targets)
    ax.set_ylabel(f"best {metric} / supervised {metric}")
    ax.set_title(f"{TABLE_TITLES[_table_of(rows)]}\nbest {metric} as a share of supervised")
    ax.legend(fontsize="small")
    return fig
