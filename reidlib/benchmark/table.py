"""Our own benchmark table, regenerated from the course's recorded runs (chapter 6, §4.3).

Nothing here is typed by hand: every number comes from a results file a benchmark script or a
recipe wrote (``benchmarks/results/*.json``). :func:`recorded_rows` reads them all into rows of
one format (``reidlib.recipes.core.ROW_KEYS``), :func:`benchmark_table` averages the seeds of
each (method, dataset, source) and :func:`missing_cells` lists the cells of the planned grid
that no file holds yet, so a reader sees what was measured and what was not.

The chapters recorded their runs before this table existed, each in its own shape:

- ``chapter01-seeds-quick.json`` (chapter 1's two loops on world A);
- ``ch2-seeds.json`` (chapter 2's eight methods on A: test mAP only);
- ``ch3-runs-quick.json`` (chapter 3 on A at camera style 1, and on B: ``world``);
- ``ch4-runs-quick.json`` (chapter 4, both directions, domain gap 1; its ``references`` hold
  direct transfer and the target's supervised model);
- ``ch5-runs-quick.json`` (chapter 5 on A's tracklets, no tracklet noise);
- ``course-quick.json`` (the chapters' own builds, seed 0: chapter 3's and 4's methods
  that no seeds file repeats; mAP and minutes only);
- ``ch6-runs-<profile>.json`` (``benchmarks/chapter6_runs.py``: the recipes' rows, complete).

Runs at another setting of a dial (camera style, domain gap, tracklet noise) are not the
default world and are left out. Where two files hold the same (method, dataset, source, seed),
budget and seed, the recipes' row wins: it has every column. Runs of one method at two
budgets (chapter 3 trained camera BN for 3 and for 12 epochs) are two lines of the table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from reidlib.recipes.core import ROW_KEYS

__all__ = ["FAMILIES", "SURVEY_FAMILY", "benchmark_table", "missing_cells", "read_rows",
           "recorded_rows"]

#: the survey's approach family of each of our methods (Tables 3-5: "Cluster", "FA", "IT";
#: "Camera" marks the camera-aware clustering methods of §3.3, "Video" Table 5's tracklet
#: methods); a method not listed here is shown as "other"
FAMILIES = {
    "DBSCAN-Jaccard loop": "Cluster", "PUL loop (K-means)": "Cluster",
    "CE + triplet": "Cluster", "triplet": "Cluster", "ECN (exemplar memory)": "Cluster",
    "Cluster Contrast": "Cluster", "SpCL (hybrid memory)": "Cluster", "MMT": "Cluster",
    "parts (global + upper + lower)": "Cluster", "Cluster Contrast + DCML selection": "Cluster",
    "SSG": "Cluster", "SpCL": "Cluster",
    "Cluster Contrast, camera-free sampler": "Camera",
    "Cluster Contrast, cameras centred": "Camera", "camera BN": "Camera", "CAP": "Camera",
    "ICE": "Camera", "MetaCam": "Camera", "IICS": "Camera",
    "BUC loop": "Cluster", "HCT loop": "Cluster",
    "SMP loop (K-means + reciprocal filter)": "Cluster",
    "direct transfer": "Direct", "source fine-tuned (control)": "Direct", "AdaBN": "Direct",
    "MMD": "FA", "MMFA": "FA", "attribute alignment": "FA",
    "colour transfer": "IT", "AdaIN transfer": "IT", "translator": "IT", "CamStyle": "IT",
    "HHL + CamStyle": "IT", "cross-domain mixup": "Cluster",
    "Cluster Contrast, tracklets": "Video", "BUC, tracklets": "Video", "UTAL": "Video",
    "TAUDL": "Video",
}
#: the survey table each setting is compared with
SURVEY_FAMILY = {"fully unsupervised": 4, "domain adaptation": 3, "video": 5}

#: the chapters' table names (as their notebooks print them) -> the names used here
ALIASES = {
    "Cluster Contrast + camera BN": "camera BN", "CAP (camera-aware proxies)": "CAP",
    "ICE (inter-instance contrast)": "ICE", "IICS (intra- / inter-camera)": "IICS",
    "MMFA (attributes + features aligned)": "MMFA",
    "source fine-tuned on B as rendered (control)": "source fine-tuned (control)",
    "style: B in A's colours": "colour transfer", "style: B translated by the GAN": "translator",
    "style: B in A's camera styles (HHL) + CamStyle": "HHL + CamStyle",
    "SSG (global + parts)": "SSG", "MMT (two source models)": "MMT",
    "SpCL (source classes + DSBN)": "SpCL", "UTAL (tracklets)": "UTAL",
    "TAUDL (tracklets)": "TAUDL",
    # the recipes' titles (python -m reidlib.recipes list)
    "direct transfer (source model)": "direct transfer",
    "direct transfer, target BN statistics (AdaBN)": "AdaBN",
    "CamStyle + Cluster Contrast": "CamStyle", "style: colour transfer": "colour transfer",
    "style: CycleGAN / SPGAN translation": "translator",
    "style: target camera styles (HHL)": "HHL + CamStyle", "MMD alignment": "MMD",
    "MMFA (features + attributes)": "MMFA", "camera BN (from the source)": "camera BN",
    "Cluster Contrast, cameras centred (from the source)": "Cluster Contrast, cameras centred",
    "Cluster Contrast (from the source)": "Cluster Contrast",
    "Cluster Contrast, frames": "Cluster Contrast",
}
#: chapters whose quick build (``course-quick.json``) ran methods no seeds file repeats:
#: chapter 3's CAP, ICE, IICS, MetaCam and chapter 4's alignment and style methods (B -> A)
_COURSE_CHAPTERS = {"03_camera_invariance": ("3", "synthetic:A", ""),
                    "04_domain_adaptation": ("4", "synthetic:A", "synthetic:B")}

_RUN_FILES = ("chapter01-seeds-{p}.json", "ch2-seeds.json", "ch3-runs-{p}.json",
              "ch4-runs-{p}.json", "ch5-runs-{p}.json")


def _row(**values) -> dict:
    row = dict.fromkeys(ROW_KEYS)
    row.update(source="", settings={}, command="", date="")
    unknown = set(values) - set(ROW_KEYS)
    if unknown:
        raise ValueError(f"unknown row keys {sorted(unknown)}: expected {ROW_KEYS}")
    row.update(values)
    return row


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def _chapter1(data: dict, profile: str) -> list[dict]:
    upper = data.get("upper_bound", {}).get("mAP")
    return [_row(method=r["method"], chapter="1", dataset="synthetic:A", seed=int(r["seed"]),
                 profile=profile, mAP=r["mAP"], rank1=r["rank1"], mINP=r["mINP"],
                 pairwise_f=r["pairwise_f"], minutes=r["seconds"] / 60, upper_mAP=upper,
                 settings=data.get("settings", {}))
            for r in data["runs"]]


def _chapter2(data: dict, profile: str) -> list[dict]:
    if data.get("settings", {}).get("profile", profile) != profile:
        return []
    return [_row(method=ALIASES.get(name, name), chapter="2", dataset="synthetic:A", seed=int(seed),
                 profile=profile, mAP=value, settings=data["settings"],
                 command=data.get("command", ""), date=data.get("date", ""))
            for name, values in data["mAP"].items()
            for seed, value in zip(data["seeds"], values, strict=True)]


def _runs(data: dict, profile: str, chapter: str) -> list[dict]:
    rows = []
    for r in data["runs"]:
        if r.get("settings", {}).get("profile", profile) != profile:
            continue
        style, noise, gap = r.get("style", 1.0), r.get("noise", 0.0), r.get("gap", 1.0)
        if chapter == "3":
            if style != 1.0:
                continue
            dataset, source = f"synthetic:{r.get('world', 'A')}", ""
        elif chapter == "4":
            if gap != 1.0:
                continue
            dataset, source = f"synthetic:{r['target']}", f"synthetic:{r['source']}"
        else:
            if noise != 0.0:
                continue
            dataset, source = "synthetic:A", ""
        rows.append(_row(method=ALIASES.get(r["method"], r["method"]), chapter=chapter,
                         dataset=dataset, source=source,
                         seed=int(r["seed"]), profile=profile, mAP=r["mAP"], rank1=r["rank1"],
                         mINP=r["mINP"], pairwise_f=r.get("pairwise_f"),
                         minutes=r.get("minutes"), settings=r.get("settings", {}),
                         command=r.get("command", ""), date=r.get("date", "")))
    if chapter == "4":  # direct transfer: the source model, scored once per direction
        for ref in data.get("references", []):
            if ref.get("gap", 1.0) != 1.0:
                continue
            upper = ref["supervised"]["mAP"]
            rows.append(_row(method="direct transfer", chapter="4",
                             dataset=f"synthetic:{ref['target']}",
                             source=f"synthetic:{ref['source']}", seed=0, profile=profile,
                             mAP=ref["direct"]["mAP"], rank1=ref["direct"]["rank1"],
                             mINP=ref["direct"]["mINP"], upper_mAP=upper,
                             command=ref.get("command", ""), date=ref.get("date", "")))
            for row in rows:
                if row["dataset"] == f"synthetic:{ref['target']}" and row["upper_mAP"] is None:
                    row["upper_mAP"] = upper
    return rows


def _course(data: dict, profile: str) -> list[dict]:
    """Seed 0 of the chapters' own builds (``course-quick.json``): mAP and minutes only."""
    rows = []
    for name, (chapter, dataset, source) in _COURSE_CHAPTERS.items():
        entry = data.get(name, {})
        results = entry.get("results", {})
        if entry.get("profile") != profile or "methods" not in results:
            continue
        minutes = results.get("methods_minutes", [None] * len(results["methods"]))
        for method, value, spent in zip(results["methods"], results["methods_mAP"], minutes,
                                        strict=True):
            rows.append(_row(method=ALIASES.get(method, method), chapter=chapter,
                             dataset=dataset, source=source, seed=0, profile=profile,
                             mAP=value, minutes=spent,
                             settings={"profile": profile, "epochs": results.get("epochs")},
                             command=f"python -m reidlib.course run {name[:2]}"))
    return rows


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of one recipes results file (``{"rows": [...]}``, as ``--out`` writes),
    each checked to have exactly :data:`ROW_KEYS`."""
    path = Path(path)
    data = _read(path)
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON object with a list 'rows' of table rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != set(ROW_KEYS):
            raise ValueError(f"{path}: row {i} should have exactly the keys {ROW_KEYS}")
    return rows


def recorded_rows(results_dir: str | os.PathLike, profile: str = "quick",
                  upper: dict[str, float] | None = None) -> pd.DataFrame:
    """Every recorded run of ``profile`` under ``results_dir`` as one frame of table rows,
    with three derived columns: ``setting`` ("fully unsupervised", "domain adaptation",
    "video": chapter 5 scores tracklets on its own split), ``budget`` (the training length)
    and ``recipe`` (the row is one of the grid's ``python -m reidlib.recipes`` runs).

    ``upper``: dataset -> supervised mAP, filling ``upper_mAP`` where a file did not record
    it (chapter 0's model of world A is in every chapter's file; B's in chapter 4's
    references); ``of_upper`` is then mAP / upper_mAP. Files that are absent are skipped.
    """
    results_dir = Path(results_dir)
    readers = (_chapter1, _chapter2, lambda d, p: _runs(d, p, "3"),
               lambda d, p: _runs(d, p, "4"), lambda d, p: _runs(d, p, "5"))
    course = results_dir / f"course-{profile}.json"
    rows = _course(_read(course), profile) if course.exists() else []
    for pattern, reader in zip(_RUN_FILES, readers, strict=True):
        path = results_dir / pattern.format(p=profile)
        if path.exists():
            rows += reader(_read(path), profile)
    recipes = results_dir / f"ch6-runs-{profile}.json"
    recipe_rows = [{**r, "method": ALIASES.get(r["method"], r["method"])}
                   for r in (read_rows(recipes) if recipes.exists() else [])]
    if not rows and not recipe_rows:
        raise ValueError(f"no recorded runs of profile {profile!r} under {results_dir}")
    frame = pd.DataFrame(rows + recipe_rows, columns=list(ROW_KEYS))
    frame["recipe"] = [False] * len(rows) + [True] * len(recipe_rows)
    frame["setting"] = [_setting(c, s) for c, s in zip(frame.chapter, frame.source, strict=True)]
    frame["budget"] = [_budget(s) for s in frame.settings]
    key = ["setting", "method", "dataset", "source", "budget", "seed"]
    # a recipe's row (last) replaces a chapter's row of the same run
    frame = frame.drop_duplicates(subset=key, keep="last").reset_index(drop=True)
    uppers = {} if upper is None else dict(upper)
    for dataset, value in frame.groupby("dataset")["upper_mAP"].first().items():
        if value is not None and not pd.isna(value):
            uppers.setdefault(dataset, float(value))
    frame["upper_mAP"] = [u if u is not None and not pd.isna(u) else uppers.get(d)
                          for u, d in zip(frame.upper_mAP, frame.dataset, strict=True)]
    frame["of_upper"] = [m / u if u else None
                         for m, u in zip(frame.mAP, frame.upper_mAP, strict=True)]
    return frame


def _budget(settings: dict) -> str:
    """A run's training budget in words: "3 epochs", "4 rounds x 2 epochs", or "" (none);
    ", best on validation" is added where the weights kept are those of the best validation
    epoch (the recipes), not the last (the chapters)."""
    if settings.get("rounds"):
        budget = f"{settings['rounds']} rounds x {settings['epochs_per_round']} epochs"
    else:
        budget = f"{settings['epochs']} epochs" if settings.get("epochs") else ""
    # a recipe that kept its best validation epoch is another protocol than the last epoch
    return f"{budget}, best on validation" if settings.get("best_epoch") is not None else budget


def _setting(chapter: str, source: str) -> str:
    if chapter == "5":
        return "video"
    return "domain adaptation" if source else "fully unsupervised"


def benchmark_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (setting, dataset, source, budget, method): the mean and standard deviation over
    seeds of mAP, rank-1, mINP, pairwise F, minutes and share of the upper bound, the number
    of seeds, how many of them are the grid's recipe runs (``grid runs``), the chapter and the
    survey family. A column a run did not record stays NaN (chapter 2's seeds recorded test
    mAP only); the std of one seed is NaN, not 0. Minutes are averaged over the runs made
    alone on the machine where a line has any (``minutes alone`` True), else over the runs
    made two at a time (``settings["concurrent_runs"]``)."""
    if rows.empty:
        raise ValueError("benchmark_table needs at least one row")
    frame = rows.copy()
    frame["family"] = [FAMILIES.get(m, "other") for m in frame.method]
    metrics = ["mAP", "rank1", "mINP", "pairwise_f", "minutes", "of_upper"]
    for column in metrics:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    keys = ["setting", "dataset", "source", "budget", "method"]
    # minutes of runs made alone on the machine, where a line has any: the grid ran some cells
    # two at a time on half the cores each (benchmarks/chapter6_runs.py --jobs), slower per run
    alone = frame.settings.map(lambda s: s.get("concurrent_runs", 1) == 1).astype(bool)
    frame["timed alone"] = frame.minutes.notna() & alone
    has_alone = frame.groupby(keys)["timed alone"].transform("any")
    frame.loc[has_alone & ~frame["timed alone"], "minutes"] = float("nan")
    grouped = frame.groupby(keys, sort=False)
    table = grouped[metrics].mean()
    spread = grouped[metrics].std(ddof=1).add_suffix(" std")
    table = table.join(spread)
    table["minutes alone"] = grouped["timed alone"].any()
    table["seeds"] = grouped["seed"].nunique()
    # how many of the line's runs are the grid's recipe runs (the benchmark proper)
    table["grid runs"] = grouped["recipe"].sum().astype(int)
    table["chapter"] = grouped["chapter"].first()
    table["family"] = grouped["family"].first()
    return table.sort_values(["setting", "dataset", "source", "budget", "mAP"],
                             ascending=[True, True, True, True, False])


def missing_cells(rows: pd.DataFrame, grid: Iterable[tuple[str, str, str, str]],
                  seeds: Iterable[int] = (0, 1, 2),
                  columns: Iterable[str] = ("mAP", "rank1", "mINP", "pairwise_f", "minutes")
                  ) -> pd.DataFrame:
    """The runs of the planned ``grid`` ((chapter, method, dataset, source) tuples) that no
    recorded row holds for some seed, or holds without one of ``columns``: one line per
    (chapter, method, dataset, source) with the seeds missing and the columns missing."""
    seeds, columns = list(seeds), list(columns)
    out = []
    for chapter, method, dataset, source in grid:
        mine = rows[(rows.method == method) & (rows.dataset == dataset) & (rows.source == source)]
        absent = [s for s in seeds if s not in set(mine.seed)]
        empty = [c for c in columns
                 if mine.empty or pd.to_numeric(mine[c], errors="coerce").isna().any()]
        if absent or empty:
            out.append({"chapter": chapter, "method": method, "dataset": dataset,
                        "source": source, "seeds missing": absent, "columns missing": empty})
    return pd.DataFrame(out, columns=["chapter", "method", "dataset", "source", "seeds missing",
                                      "columns missing"])

