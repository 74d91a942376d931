"""Recorded runs for the instructor's demo mode: replay clustering dynamics in seconds.

A chapter that trains (1b's cluster -> train loop, 2's Cluster Contrast and friends, survey
§3.1-3.2) calls ``save_replay(session.cache_dir / "replays", name, history, images)`` once;
in class, ``demo(directory)`` opens the live explorer (``reidlib.viz.scatter``) on that run
with Play, without training or UMAP, and ``compare(directory, a, b)`` puts two runs of the
same images side by side under one slider.

One replay is one ``<name>.npz`` file, written atomically (a temporary file, then a
rename), holding for each snapshot of the run: the 2-D layout, the features (float16, at
most ``MAX_DIMS`` principal components: enough for nearest neighbours, and small), the
pseudo-labels, identities and cameras, the title and the metrics (the clustering's pairwise
F, outlier share and cluster count over all training images, validation mAP when
evaluated); every epoch's record (losses, lr, seconds, quality, validation); and the crops
of the snapshot rows, scaled to at most ``CROP_HEIGHT`` pixels tall.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reidlib.data.imageset import ImageSet
from reidlib.utils import atomic_path
from reidlib.viz.explorer import EmbeddingExplorer, Snapshot, as_snapshot, history_snapshots

FORMAT = 1
MAX_DIMS = 128
CROP_HEIGHT = 64
MISSING = "run chapter 02 first: make course (or open it and run it)"


@dataclass
class Replay:
    """A recorded run: ``snapshots`` with ``layouts`` (one (N, 2) each), the crops
    ``images`` (N, h, w, 3) uint8, ``epochs`` (one dict per epoch record) and ``info``
    (name, layout method, seed, when it was saved)."""

    name: str
    snapshots: list[Snapshot]
    layouts: list[np.ndarray]
    images: np.ndarray
    epochs: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def explorer(self) -> EmbeddingExplorer:
        """An ``EmbeddingExplorer`` on the stored layouts: nothing is refitted."""
        return EmbeddingExplorer(self.snapshots, images=self.images,
                                 method=self.info.get("method", "pca"),
                                 seed=self.info.get("seed", 0), cache_dir=None,
                                 layouts=self.layouts)

    def column(self, key: str) -> list:
        """One value per epoch: ``"pairwise_f"`` / ``"outlier_share"`` / ``"n_clusters"``
        (from the quality), ``"val_mAP"``, a loss name, or a record field (``"lr"``...)."""
        out = []
        for record in self.epochs:
            if key.startswith("val_"):
                out.append(None if record.get("val") is None else record["val"].get(key[4:]))
            elif key in record:
                out.append(record[key])
            elif record.get("quality") is not None and key in record["quality"]:
                out.append(record["quality"][key])
            else:
                out.append(record.get("losses", {}).get(key))
        return out


def replay_path(directory: str | os.PathLike, name: str) -> Path:
    """Where replay ``name`` lives: ``directory/<name>.npz`` (the name made file-safe)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip()).strip("-.")
    if not safe:
        raise ValueError(f"a replay needs a name with letters or digits, got {name!r}")
    return Path(directory) / f"{safe}.npz"


def save_replay(directory: str | os.PathLike, name: str, history, images: ImageSet | np.ndarray,
                *, after: Snapshot | dict | None = None, method: str | None = None,
                seed: int = 0, cache_dir: str | os.PathLike | None = "default",
                layout: bool = True) -> Path:
    """Record ``history`` (``reidlib.training.fit``'s, or a list of snapshots) for ``demo``.

    ``images``: the crops of the snapshot rows (an ``ImageSet``, e.g.
    ``train.subset(rows)``, or (N, H, W, 3) uint8). ``after``: a last snapshot (the features
    after training). ``method``: the layout ("umap"; default "pca" in the smoke profile,
    where UMAP's one-minute compile would dominate); layouts are computed here once, with
    the explorer's disk cache, so a chapter that showed the same explorer pays nothing.
    ``layout=False`` defers them: the file keeps the full features, and the first
    :func:`load_replay` computes the layouts (exactly as here) and rewrites the file, so a
    chapter that records many runs does not pay for the ones nobody opens.
    Returns the file written.
    """
    if isinstance(history, (list, tuple)):
        snapshots = [as_snapshot(s, f"snapshot {i}") for i, s in enumerate(history)]
        if after is not None:
            snapshots.append(as_snapshot(after, "after training"))
        epochs = []
    else:
        snapshots = history_snapshots(history, after)
        epochs = [_record_dict(r) for r in history]
    if method is None:
        from reidlib.profiles import get_profile

        method = "pca" if get_profile().name == "smoke" else "umap"
    return _write(replay_path(directory, name), name, snapshots, images, epochs, method, seed,
                  cache_dir, layout)


def _write(path: Path, name: str, snapshots: list[Snapshot], images, epochs: list[dict],
           method: str, seed: int, cache_dir, layout: bool) -> Path:
    crops = images.images if isinstance(images, ImageSet) else np.asarray(images)
    explorer = EmbeddingExplorer(snapshots, images=images, method=method, seed=seed,
                                 cache_dir=cache_dir)
    snapshots = explorer.snapshots  # with identities / cameras filled from the ImageSet
    n = len(snapshots[0])
    if layout:
        layouts = np.stack(explorer.layouts()).astype(np.float32)
        features = np.stack([_reduced(s.features) for s in snapshots])
    else:  # the layouts are computed from the full features when first loaded
        layouts = np.zeros((len(snapshots), n, 2), np.float32)
        features = np.stack([np.asarray(s.features, np.float32) for s in snapshots])
    arrays = {
        "format": np.array(FORMAT),
        "layouts": layouts,
        "features": features,
        "images": _small(crops),
        "meta": np.array(json.dumps({
            "name": name, "method": method, "seed": seed, "saved": time.time(),
            "titles": [s.title for s in snapshots],
            "metrics": [s.metrics for s in snapshots], "epochs": epochs,
            "laid_out": bool(layout),
        }, default=_plain)),
    }
    for key in ("pid", "camid", "pseudo_label"):
        present = [getattr(s, key) is not None for s in snapshots]
        arrays[f"has_{key}"] = np.array(present)
        arrays[key] = np.stack([np.full(n, -1) if getattr(s, key) is None else getattr(s, key)
                                for s in snapshots]).astype(np.int32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # np.savez(path) would add .npz
        np.savez_compressed(f, **arrays)
    return path


def load_replay(directory: str | os.PathLike, name: str) -> Replay:
    """Read replay ``name`` from ``directory``; a clear error says what to run if missing."""
    path = replay_path(directory, name)
    if not path.exists():
        available = list_replays(directory)
        raise FileNotFoundError(
            f"no replay {name!r}: expected {path}. "
            + (f"Recorded there: {available}. " if available else "No replay is recorded "
               "there yet. ") + f"To record it, {MISSING}."
        )
    with np.load(path, allow_pickle=False) as data:
        if int(data["format"]) != FORMAT:
            raise ValueError(f"{path} has replay format {int(data['format'])}, this reidlib "
                             f"reads {FORMAT}: record it again ({MISSING})")
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files}
    snapshots = []
    for i, title in enumerate(meta["titles"]):
        labels = {key: arrays[key][i] if arrays[f"has_{key}"][i] else None
                  for key in ("pid", "camid", "pseudo_label")}
        correct = None
        if labels["pseudo_label"] is not None and labels["pid"] is not None:
            from reidlib.pseudo_labels.quality import majority_correct

            correct = majority_correct(labels["pseudo_label"], labels["pid"])
        snapshots.append(Snapshot(arrays["features"][i].astype(np.float32), title,
                                  correct=correct, metrics=meta["metrics"][i], **labels))
    if not meta.get("laid_out", True):  # recorded with layout=False: lay out once, rewrite
        _write(path, meta["name"], snapshots, arrays["images"], meta["epochs"], meta["method"],
               meta["seed"], "default", layout=True)
        return load_replay(directory, name)
    info = {k: meta[k] for k in ("name", "method", "seed", "saved")}
    return Replay(meta["name"], snapshots, list(arrays["layouts"]), arrays["images"],
                  meta["epochs"], {**info, "path": str(path)})


def list_replays(directory: str | os.PathLike) -> list[str]:
    """The names of the replays in ``directory``, newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.stem for p in files]


def demo(directory: str | os.PathLike, name: str | None = None, *,
         colour_by: str = "pseudo_label", show: bool = True, live: bool | None = None):
    """Open the explorer on a recorded run: Play through its epochs, in seconds.

    ``name``: which replay (default: the newest in ``directory``). With a live Jupyter
    front end, the jupyter-scatter view (``LiveExplorer``); in a static render, the static
    figure (pseudo-labels and label states, a panel per snapshot). ``show``: display it
    and return None; else return it (``live`` forces one or the other).
    """
    replay = _pick(directory, name)
    return _present(replay.explorer(), colour_by, show, live, title=replay.name)


def compare(directory: str | os.PathLike, a: str, b: str, *, colour_by: str = "state",
            show: bool = True, live: bool | None = None, k: int = 8):
    """Two recorded runs of the same images side by side, one slider for both.

    Live: clicking a point in either view selects it and its ``k`` nearest neighbours in
    both (``reidlib.viz.scatter.Compare``). Static: one row per run, a panel per epoch.
    """
    from reidlib.viz.explorer import widgets_wanted

    first, second = load_replay(directory, a), load_replay(directory, b)
    if live is None:
        live = widgets_wanted()
    if live:
        from reidlib.viz.scatter import Compare

        view = Compare(first.explorer(), second.explorer(), (first.name, second.name),
                       colour_by=colour_by, k=k)
        return _display(view.view) if show else view
    figure = compare_figure(first, second, colour_by)
    return _display(figure) if show else figure


def compare_figure(first: Replay, second: Replay, colour_by: str = "state",
                   max_columns: int = 6, panel_size: float = 2.5):
    """Static twin of ``compare``: a row per run, the same snapshot indices in columns."""
    from reidlib.viz.grids import new_figure

    if len(first.images) != len(second.images):
        raise ValueError(f"the two runs show different images ({len(first.images)} and "
                         f"{len(second.images)}): record both on the same rows")
    length = min(len(first.snapshots), len(second.snapshots))
    indices = np.unique(np.linspace(0, length - 1, min(length, max_columns)).round()).astype(int)
    fig = new_figure(figsize=(len(indices) * panel_size + 1.6, 2 * panel_size),
                     layout="constrained")
    axes = fig.subplots(2, len(indices), squeeze=False)
    for r, replay in enumerate((first, second)):
        explorer = replay.explorer()
        highlight = explorer.chosen_identities(8)
        for c, i in enumerate(indices):
            view = explorer._row_view(int(i), colour_by)
            explorer.draw(axes[r, c], int(i), view, legend=c == len(indices) - 1,
                          highlight=highlight, title=explorer.panel_title(int(i)),
                          limits=_quantile_limits(explorer.layout(int(i))))
        axes[r, 0].set_ylabel(replay.name, fontsize=8)
    return fig


# ------------------------------------------------------------------------- helpers
def _pick(directory, name: str | None) -> Replay:
    if name is None:
        available = list_replays(directory)
        if not available:
            raise FileNotFoundError(f"no replay in {Path(directory)} (expected <name>.npz "
                                    f"files there): {MISSING}")
        name = available[0]
    return load_replay(directory, name)


def _present(explorer: EmbeddingExplorer, colour_by: str, show: bool, live: bool | None,
             title: str = ""):
    from reidlib.viz.explorer import widgets_wanted

    if live is None:
        live = widgets_wanted()
    if live:
        view = explorer.live(colour_by, title=title)
        return _display(view.view) if show else view
    figure = explorer.static(colour_by)
    if title:
        figure.suptitle(title, fontsize=10)
    return _display(figure) if show else figure


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def _quantile_limits(xy):
    from reidlib.viz.explorer import quantile_limits

    return quantile_limits(xy)


def _reduced(features: np.ndarray) -> np.ndarray:
    """At most ``MAX_DIMS`` principal components (float16): small, neighbours kept."""
    features = np.asarray(features, dtype=np.float32)
    if features.shape[1] > MAX_DIMS and len(features) > MAX_DIMS:
        centred = features - features.mean(0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        features = u[:, :MAX_DIMS] * s[:MAX_DIMS]
    return features.astype(np.float16)


def _small(images: np.ndarray) -> np.ndarray:
    """The crops scaled to at most ``CROP_HEIGHT`` pixels tall (one size for all)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} "
                         f"{tuple(images.shape)}")
    height, width = images.shape[1:3]
    if height <= CROP_HEIGHT:
        return images
    from PIL import Image

    size = (max(1, round(width * CROP_HEIGHT / height)), CROP_HEIGHT)
    return np.stack([np.asarray(Image.fromarray(x).resize(size, Image.BILINEAR))
                     for x in images])


def _record_dict(record) -> dict:
    """An epoch record as plain JSON types, without its labels and snapshot arrays."""
    return {"epoch": record.epoch, "losses": dict(record.losses), "lr": record.lr,
            "seconds": record.seconds, "cluster_seconds": record.cluster_seconds,
            "images": record.images, "quality": record.quality, "val": record.val}


def _plain(value):
    """JSON for numpy scalars and arrays (json's ``default``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "item"):  # a 0-d tensor
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a replay")
