"""Embedding explorer: watch features and pseudo-labels move across epochs / rounds.

Each snapshot (e.g. the features after epoch 3, or after clustering round 2) is laid out
in 2-D and coloured by identity, camera, pseudo-label (survey §3.1, Eq. 2-3: outliers with
pseudo-label -1 in grey) or pseudo-label correctness. The layouts of consecutive snapshots
are kept in one frame so that motion on screen is motion of the features:

- UMAP (McInnes et al., 2018): the first snapshot is fitted from UMAP's spectral start,
  each later one warm-starts from the previous layout (``UMAP(init=previous)``) and is then
  rotated / scaled / shifted onto it (similarity Procrustes). We chose this over
  ``umap.AlignedUMAP`` because (measured on 4 snapshots x 200 points, 2 CPU cores) it was
  about 15x faster (1 s vs 13-18 s), gives each snapshot a layout that depends only on its
  own features and the previous layout (so it can be cached per snapshot and a new epoch
  does not refit the old ones), and kept consecutive layouts close (Procrustes disparity
  0.2-0.6, against 0.85-0.93 for independent fits; AlignedUMAP: 0.1-0.3) with the same
  trustworthiness as independent fits.
- PCA: deterministic and instant, for the smoke profile and tests.

UMAP layouts are cached on disk (key: the features' bytes, the UMAP parameters and the
initial layout), so re-running a notebook does not refit. ``umap`` is imported only when a
fit is needed: its import (numba) takes seconds.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Transform
from scipy.linalg import orthogonal_procrustes
from tqdm.auto import tqdm

from reidlib.data.imageset import ImageSet
from reidlib.utils import atomic_path
from reidlib.viz.grids import MATCH_COLOR, QUERY_COLOR, WRONG_COLOR, image_grid, new_figure

COLOUR_BY = ("pid", "camid", "pseudo_label", "correct")
METHODS = ("umap", "pca")
METRICS = ("euclidean", "cosine")
OUTLIER_GREY = (0.72, 0.72, 0.72, 1.0)
_LAYOUT_VERSION = 2  # bump when the layout procedure changes, so old cache entries are ignored


@dataclass
class Snapshot:
    """Features of N points at one moment, with optional per-point labels.

    ``features``: (N, D); ``pid``, ``camid``, ``pseudo_label``: (N,) integers (pseudo-label
    -1 = outlier); ``correct``: (N,) bools (e.g. "the point's pseudo-label is right").
    """

    features: np.ndarray
    title: str = ""
    pid: np.ndarray | None = None
    camid: np.ndarray | None = None
    pseudo_label: np.ndarray | None = None
    correct: np.ndarray | None = None

    def __post_init__(self) -> None:
        if hasattr(self.features, "detach"):  # a torch tensor, possibly on a GPU
            self.features = self.features.detach().cpu().numpy()
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim != 2 or self.features.shape[1] < 2:
            raise ValueError(
                f"snapshot {self.title!r}: features must be (N, D) with D >= 2, "
                f"got shape {self.features.shape}"
            )
        if not np.isfinite(self.features).all():
            raise ValueError(f"snapshot {self.title!r}: features contain NaN or inf")
        n = len(self.features)
        for name in COLOUR_BY:
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
            if value.shape != (n,):
                raise ValueError(
                    f"snapshot {self.title!r}: {name} must have shape ({n},) like the "
                    f"features, got {value.shape}"
                )
            if name == "correct":
                if value.dtype != bool and not np.isin(value, (0, 1)).all():
                    raise ValueError(f"snapshot {self.title!r}: correct must be booleans")
                value = value.astype(bool)
            else:
                value = value.astype(np.int64)
            setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.features)

    def available(self) -> list[str]:
        """The colourings this snapshot has arrays for."""
        return [name for name in COLOUR_BY if getattr(self, name) is not None]


def as_snapshot(obj, default_title: str = "") -> Snapshot:
    """A ``Snapshot`` from a Snapshot, a dict or any dataclass with the same field names."""
    if isinstance(obj, Snapshot):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if not isinstance(obj, dict):
        raise TypeError(f"a snapshot must be a dict or a dataclass, got {type(obj).__name__}")
    valid = [f.name for f in dataclasses.fields(Snapshot)]
    unknown = sorted(set(obj) - set(valid))
    if unknown:
        raise ValueError(f"unknown snapshot keys {unknown}: expected some of {valid}")
    if "features" not in obj:
        raise ValueError(f"a snapshot needs 'features' (N, D); got keys {sorted(obj)}")
    return Snapshot(**{"title": default_title, **obj})


def align_layout(layout: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate (or reflect), scale and shift ``layout`` to best match ``reference``.

    Procrustes rotation: the 2-D picture is unchanged up to these moves, so aligning each
    snapshot onto the previous one removes motion that is not in the data. The scale makes
    both layouts equally spread (RMS) rather than the least-squares scale, which shrinks a
    layout towards its centre when it agrees little with the previous one (handcrafted
    features -> a trained model), leaving the new picture a dot in the middle.
    """
    mean_l, mean_r = layout.mean(0), reference.mean(0)
    a, b = layout - mean_l, reference - mean_r
    norm = (a**2).sum()
    if norm == 0:  # every point at one place: nothing to rotate
        return np.broadcast_to(mean_r, layout.shape).copy()
    rotation, _ = orthogonal_procrustes(a, b)
    scale = np.sqrt((b**2).sum() / norm)
    return (a @ rotation * scale + mean_r).astype(np.float32)


def pca_layout(features: np.ndarray) -> np.ndarray:
    """The first two principal components (full SVD: deterministic, signs fixed by sklearn)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, svd_solver="full").fit_transform(features).astype(np.float32)


def umap_layout(
    features: np.ndarray,
    init: np.ndarray | None = None,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    metric: str = "euclidean",
) -> np.ndarray:
    """A 2-D UMAP layout of ``features``, from ``init`` (N, 2) if given, else spectral."""
    import umap  # slow import (numba): only when a layout is not cached

    reducer = umap.UMAP(
        n_neighbors=min(n_neighbors, len(features) - 1), min_dist=min_dist, metric=metric,
        random_state=seed, n_jobs=1,  # a seeded UMAP runs on one thread anyway; say so
        init="spectral" if init is None else np.asarray(init, dtype=np.float32),
    )
    return reducer.fit_transform(features).astype(np.float32)


def layout_cache_key(features: np.ndarray, params: dict, init: np.ndarray | None) -> str:
    """SHA-256 of the features' bytes, the layout parameters and the initial layout."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    features = np.ascontiguousarray(features, dtype=np.float32)
    h.update(repr(features.shape).encode() + features.tobytes())
    if init is None:
        h.update(b"init=spectral")
    else:
        h.update(b"init=" + np.ascontiguousarray(init, dtype=np.float32).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class PlotGeometry:
    """Where a rendered plot's data lie in its PNG: the bridge from a mouse click to a point.

    ``data_to_display``: the axes' data transform frozen right after the PNG was saved
    (matplotlib display pixels at the saving dpi, origin bottom-left); ``width`` and ``height``:
    the PNG's size in pixels; ``xlim``, ``ylim``: the axes' limits. PNG pixels have their
    origin top-left (as a browser's click coordinates), so y is flipped.
    """

    data_to_display: Transform
    width: int
    height: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) data coordinates -> (N, 2) PNG pixels (x right, y down)."""
        display = self.data_to_display.transform(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        return np.column_stack([display[:, 0], self.height - display[:, 1]])

    def to_data(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) PNG pixels (x right, y down) -> (N, 2) data coordinates."""
        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        display = np.column_stack([pixels[:, 0], self.height - pixels[:, 1]])
        return self.data_to_display.inverted().transform(display)

    def inside(self, pixel: tuple[float, float]) -> bool:
        """Whether a PNG pixel lies inside the axes (not on the title, legend or margin)."""
        x, y = self.to_data([pixel])[0]
        return bool(self.xlim[0] <= x <= self.xlim[1] and self.ylim[0] <= y <= self.ylim[1])

    def nearest(self, layout: np.ndarray, pixel: tuple[float, float]) -> int:
        """Row of the point of ``layout`` (N, 2) drawn nearest to ``pixel`` on screen.

        Measured in pixels, not data units: the axes stretch x and y differently, and
        "nearest" must mean what the eye sees. Ties go to the lowest row.
        """
        d = ((self.to_pixels(layout) - np.asarray(pixel, dtype=np.float64)) ** 2).sum(1)
        return int(np.argmin(d))


def click_pixel(event: dict, geometry: PlotGeometry) -> tuple[float, float]:
    """The PNG pixel of an ``ipyevents`` mouse event on an ``ipywidgets.Image``.

    ipyevents gives ``dataX`` / ``dataY`` for an Image: the position in the picture's own
    pixels, already corrected for the picture being shown smaller or larger than its natural
    size. Without them (another front end), ``relativeX`` / ``relativeY`` are scaled by the
    shown size ``boundingRectWidth`` / ``boundingRectHeight``.
    """
    if event.get("dataX") is not None and event.get("dataY") is not None:
        return float(event["dataX"]), float(event["dataY"])
    needed = ("relativeX", "relativeY", "boundingRectWidth", "boundingRectHeight")
    if any(event.get(k) is None for k in needed) or not event["boundingRectWidth"] \
            or not event["boundingRectHeight"]:
        raise ValueError(f"a click event needs dataX/dataY or {list(needed)}; "
                         f"got keys {sorted(event)}")
    return (event["relativeX"] * geometry.width / event["boundingRectWidth"],
            event["relativeY"] * geometry.height / event["boundingRectHeight"])


class EmbeddingExplorer:
    """2-D views of a sequence of feature snapshots of the same N points.

    ``snapshots``: Snapshots, dicts or dataclasses (see ``Snapshot``), all with the same N
    points in the same order. ``images``: optional (N, H, W, 3) uint8 thumbnails, or an
    ``ImageSet`` (whose pids / camids then fill snapshots that lack them). ``method``:
    "umap" or "pca". ``cache_dir``: where UMAP layouts are kept ("default": ``$REID_CACHE/umap`` or
    ``data/cache/umap`` at the repository root; None: no cache).
    ``n_thumbs``: how many nearest neighbours the widget shows for a chosen point.
    """

    def __init__(
        self,
        snapshots: Sequence[Snapshot | dict],
        images: np.ndarray | ImageSet | None = None,
        *,
        method: str = "umap",
        seed: int = 0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        cache_dir: str | os.PathLike | None = "default",
        n_thumbs: int = 8,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if isinstance(snapshots, (dict, Snapshot)) or len(snapshots) == 0:
            raise ValueError("snapshots must be a non-empty list of snapshots")
        self.snapshots = [as_snapshot(s, f"snapshot {i}") for i, s in enumerate(snapshots)]
        n = len(self.snapshots[0])
        if n < (5 if method == "umap" else 3):  # UMAP's spectral start fails on fewer
            raise ValueError(f"a {method} layout needs at least {5 if method == 'umap' else 3} "
                             f"points, got {n}" + (" (try method='pca')" if n >= 3 else ""))
        for i, s in enumerate(self.snapshots):
            if len(s) != n:
                raise ValueError(
                    f"snapshot {i} ({s.title!r}) has {len(s)} points but snapshot 0 has {n}: "
                    "every snapshot must hold the same points in the same order"
                )
        if isinstance(images, ImageSet):  # its labels fill in what the snapshots lack
            self.snapshots = [
                dataclasses.replace(s, pid=images.pids if s.pid is None else s.pid,
                                    camid=images.camids if s.camid is None else s.camid)
                for s in self.snapshots
            ]
            images = images.images
        self.images = _check_thumbnails(images, n)
        self.method, self.seed, self.metric = method, seed, metric
        self.n_neighbors, self.min_dist, self.n_thumbs = n_neighbors, min_dist, n_thumbs
        if cache_dir == "default":  # the course's shared cache, wherever the notebook runs
            from reidlib.data.synthetic.world import default_cache_dir

            cache_dir = default_cache_dir() / "umap"
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.fit_count = 0  # UMAP fits actually run (cache misses), for tests and curiosity
        self._layouts: list[np.ndarray] = []

    # ---------------------------------------------------------------- layouts
    def __len__(self) -> int:
        return len(self.snapshots)

    def layout(self, index: int) -> np.ndarray:
        """The (N, 2) layout of snapshot ``index`` (computing earlier ones first: warm starts)."""
        if not 0 <= index < len(self):
            raise IndexError(f"snapshot index {index} out of range [0, {len(self)})")
        todo = range(len(self._layouts), index + 1)
        quiet = self.method == "pca" or len(todo) < 2  # PCA takes milliseconds: no bar
        for i in tqdm(todo, desc="UMAP layouts", disable=quiet, leave=False):
            previous = self._layouts[i - 1] if i else None
            self._layouts.append(self._compute_layout(self.snapshots[i].features, previous))
        return self._layouts[index]

    def layouts(self) -> list[np.ndarray]:
        """Every snapshot's (N, 2) layout, in one frame."""
        self.layout(len(self) - 1)
        return list(self._layouts)

    def _compute_layout(self, features: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        if self.method == "pca":
            layout = pca_layout(features)
            return layout if previous is None else align_layout(layout, previous)
        params = {
            "version": _LAYOUT_VERSION, "umap": version("umap-learn"), "seed": self.seed,
            "n_neighbors": self.n_neighbors, "min_dist": self.min_dist, "metric": self.metric,
        }
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{layout_cache_key(features, params, previous)}.npy"
            if path.exists():
                return np.load(path)
        layout = umap_layout(
            features, previous, n_neighbors=self.n_neighbors, min_dist=self.min_dist,
            seed=self.seed, metric=self.metric,
        )
        self.fit_count += 1
        if previous is not None:
            layout = align_layout(layout, previous)
        if path is not None:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:  # np.save(path) would add .npy
                np.save(f, layout)
        return layout

    def _limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Axis limits shared by every snapshot, so motion is not hidden by rescaling."""
        points = np.concatenate(self.layouts())
        lo, hi = points.min(0), points.max(0)
        pad = 0.05 * np.maximum(hi - lo, 1e-6)
        return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])

    def relabelled(self, index: int, title: str | None = None, **labels) -> EmbeddingExplorer:
        """A copy whose snapshot ``index`` has new labels (e.g. ``pseudo_label=...``).

        The features are the same, so the copy shares the layouts already computed: no
        refit. Chapter 1's eps / k sliders re-cluster and recolour a layout this way.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"snapshot index {index} out of range [0, {len(self)})")
        unknown = sorted(set(labels) - set(COLOUR_BY))
        if unknown:
            raise ValueError(f"unknown label arrays {unknown}: expected some of {COLOUR_BY}")
        old = self.snapshots[index]
        new = Snapshot(old.features, old.title if title is None else title,
                       **{name: labels.get(name, getattr(old, name)) for name in COLOUR_BY})
        twin = copy.copy(self)
        twin.snapshots = [*self.snapshots[:index], new, *self.snapshots[index + 1:]]
        self.layout(index)  # computed once here, shared by every copy
        twin._layouts = self._layouts
        return twin

    # ---------------------------------------------------------------- colours
    def _values(self, index: int, colour_by: str) -> np.ndarray:
        if colour_by not in COLOUR_BY:
            raise ValueError(f"colour_by must be one of {COLOUR_BY}, got {colour_by!r}")
        snapshot = self.snapshots[index]
        values = getattr(snapshot, colour_by)
        if values is None:
            raise ValueError(
                f"snapshot {index} ({snapshot.title!r}) has no {colour_by!r} array; "
                f"it can be coloured by {snapshot.available()}"
            )
        return values

    def colours(self, index: int, colour_by: str) -> tuple[np.ndarray, list[tuple[str, tuple]]]:
        """RGBA per point (N, 4) and the legend entries (label, colour) for snapshot ``index``."""
        import seaborn as sns  # imports pandas: only when something is drawn

        values = self._values(index, colour_by)
        if colour_by == "correct":
            table = {True: ("correct", to_rgba(MATCH_COLOR)),
                     False: ("wrong", to_rgba(WRONG_COLOR))}
            rgba = np.array([table[bool(v)][1] for v in values]).reshape(-1, 4)
            return rgba, list(table.values())
        # -1 is "no label": an outlier of the clustering, or a junk image
        labels = np.unique(values[values != -1])
        few = colour_by == "camid" and len(labels) <= 10  # colorblind has 10 distinct colours
        palette = sns.color_palette("colorblind" if few else "husl", max(len(labels), 1))
        lookup = {label: (*palette[j], 1.0) for j, label in enumerate(labels)}
        lookup[-1] = OUTLIER_GREY
        rgba = np.array([lookup[v] for v in values.tolist()]).reshape(-1, 4)
        prefix = {"pid": "id ", "camid": "c", "pseudo_label": "cluster "}[colour_by]
        shown = labels + 1 if colour_by == "camid" else labels  # cameras 1-based, as in file names
        pairs = zip(shown, labels, strict=True)
        legend = [(f"{prefix}{name}", lookup[label]) for name, label in pairs]
        if (values == -1).any():
            legend.append(("outlier" if colour_by == "pseudo_label" else "junk", OUTLIER_GREY))
        return rgba, legend

    # ---------------------------------------------------------------- drawing
    def draw(self, ax: Axes, index: int, colour_by: str = "pid", selected: int | None = None,
             neighbours: np.ndarray | None = None, legend: bool = True) -> None:
        """Scatter snapshot ``index`` on ``ax``; ring ``neighbours`` and star ``selected``."""
        rgba, entries = self.colours(index, colour_by)
        xy = self.layout(index)
        ax.scatter(xy[:, 0], xy[:, 1], c=rgba, s=14, linewidths=0)
        if neighbours is not None and len(neighbours):
            ax.scatter(*xy[neighbours].T, s=70, facecolors="none", edgecolors="black", lw=1.2)
        if selected is not None:
            ax.scatter(*xy[selected], s=220, marker="*", c=QUERY_COLOR, edgecolors="black")
        (x0, x1), (y0, y1) = self._limits()
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        # the view on its own line: long titles (chapter 1's sweeps) then still fit a panel
        ax.set_title(f"{self.snapshots[index].title}\n({self.method}, by {colour_by})",
                     fontsize=8)
        if legend and len(entries) <= 12:  # a legend of 100 identities says nothing
            handles = [Line2D([], [], ls="", marker="o", markersize=5, color=c) for _, c in entries]
            ax.legend(handles, [label for label, _ in entries], fontsize=7, frameon=False,
                      loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: hides no point

    def static(self, colour_by: str = "pid", snapshots: Sequence[int] | None = None,
               ncols: int = 4, panel_size: float = 3.2) -> Figure:
        """One panel per snapshot (all, or the indices ``snapshots``) in a new Figure.

        The fallback when widgets cannot be shown (headless runs, HTML export).
        """
        indices = list(range(len(self))) if snapshots is None else list(snapshots)
        if not indices:
            raise ValueError("snapshots is empty: pick at least one snapshot index")
        for i in indices:
            if not 0 <= i < len(self):
                raise IndexError(f"snapshot index {i} out of range [0, {len(self)})")
        for i in indices:
            self._values(i, colour_by)  # fail before drawing anything
        ncols = min(ncols, len(indices))
        nrows = -(-len(indices) // ncols)
        fig = new_figure(figsize=(ncols * panel_size, nrows * panel_size), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for k, (ax, i) in enumerate(zip(axes, indices, strict=False)):
            self.draw(ax, i, colour_by, legend=k == len(indices) - 1)
        for ax in axes[len(indices):]:
            fig.delaxes(ax)
        return fig

    def nearest(self, index: int, point: int, k: int) -> np.ndarray:
        """The ``k`` points nearest to ``point`` in snapshot ``index``'s feature space.

        One query row against N points is a single matrix-vector product; numpy does it in
        microseconds, so a faiss index would add nothing here.
        """
        features = self.snapshots[index].features
        if self.metric == "cosine":
            features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True),
                                              1e-12)
        d = ((features - features[point]) ** 2).sum(1)
        d[point] = np.inf
        k = min(k, len(d) - 1)
        candidates = np.argpartition(d, k - 1)[:k]
        return candidates[np.lexsort((candidates, d[candidates]))]

    def plot(self, index: int, colour_by: str = "pid", point: int | None = None,
             dpi: int = 100) -> tuple[bytes, PlotGeometry]:
        """The widget's picture of snapshot ``index`` as PNG bytes, and its ``PlotGeometry``.

        The geometry is read after saving, when the constrained layout has placed the axes
        at this dpi, so it maps the PNG's own pixels (the figure is made at the saving dpi).
        """
        neighbours = None if point is None else self.nearest(index, point, self.n_thumbs)
        fig = Figure(figsize=(6.0, 5.2), dpi=dpi, layout="constrained")
        ax = fig.add_subplot()
        self.draw(ax, index, colour_by, selected=point, neighbours=neighbours)
        png = _png(fig, dpi)
        width, height = _png_size(png)
        geometry = PlotGeometry(ax.transData.frozen(), width, height,
                                tuple(ax.get_xlim()), tuple(ax.get_ylim()))
        return png, geometry

    def _thumbs_png(self, index: int, point: int) -> bytes:
        neighbours = self.nearest(index, point, self.n_thumbs)
        rows = np.concatenate([[point], neighbours])
        pid = self.snapshots[index].pid
        camid = self.snapshots[index].camid
        titles, colours = [], [QUERY_COLOR]
        for j, r in enumerate(rows):
            parts = ([f"id {pid[r]}"] if pid is not None else [])
            parts += [f"c{camid[r] + 1}"] if camid is not None else []
            titles.append(f"#{r}\n" + " ".join(parts))
            if j:
                same = None if pid is None else pid[r] == pid[point]
                colours.append(None if same is None else MATCH_COLOR if same else WRONG_COLOR)
        fig = image_grid(self.images[rows], titles, ncols=len(rows), border_colors=colours,
                         panel_height=1.3)
        return _png(fig)

    # ---------------------------------------------------------------- widgets
    def widget(self, colour_by: str = "pid"):
        """An ipywidgets view: a "snapshot" slider, a colour-by menu and a point chooser.

        Moving the slider or changing the menu redraws the plot (an ``Image`` inside a box
        with CSS class ``reid-explorer-plot``). Clicking the plot chooses the point drawn
        nearest to the click (clicks on the title, legend or margins are ignored); typing a
        row in the "point" box does the same (-1 for none). The chosen point is starred, its
        nearest neighbours in feature space ringed and, with images, their thumbnails shown
        (green frame: same identity as the chosen point, red: another). The returned box's
        ``plot_events`` is the ``ipyevents.Event`` that receives the clicks.
        """
        import ipywidgets as w
        from ipyevents import Event

        options = [c for c in COLOUR_BY if all(getattr(s, c) is not None for s in self.snapshots)]
        self._values(0, colour_by)  # a clear error for a bad or missing colouring
        if colour_by not in options:
            raise ValueError(f"colour_by {colour_by!r} is missing from some snapshots; "
                             f"every snapshot has {options}")
        self.layouts()  # every layout now, so the slider only redraws
        slider = w.IntSlider(value=0, min=0, max=len(self) - 1, description="snapshot",
                             continuous_update=False)
        slider.add_class("reid-explorer-slider")
        menu = w.Dropdown(options=options, value=colour_by, description="colour by")
        point = w.BoundedIntText(value=-1, min=-1, max=len(self.snapshots[0]) - 1,
                                 description="point", tooltip="row of a point; -1 for none")
        caption = w.HTML()
        # A data: URL rather than format="png": the front end would show PNG bytes through a
        # blob: URL that it revokes on the next redraw, leaving nothing to compare or save.
        plot = w.Image(format="url", layout=w.Layout(max_width="100%"))
        plot_box = w.Box([plot])  # the class is on a container: ".reid-explorer-plot img"
        plot_box.add_class("reid-explorer-plot")
        geometry: list[PlotGeometry] = []  # the geometry of the picture now shown
        thumbs = w.Image(format="png", layout=w.Layout(max_width="100%"))
        thumbs.add_class("reid-explorer-thumbs")

        def redraw(_change=None) -> None:
            chosen = None if point.value < 0 else point.value
            title = self.snapshots[slider.value].title
            caption.value = f"<b>{title}</b> ({slider.value + 1} / {len(self)})"
            png, shown = self.plot(slider.value, menu.value, chosen)
            geometry[:] = [shown]
            plot.value = png_data_url(png).encode("ascii")
            if self.images is not None and chosen is not None:
                thumbs.value = self._thumbs_png(slider.value, chosen)
                thumbs.layout.display = None
            else:
                thumbs.layout.display = "none"

        def clicked(event: dict) -> None:
            pixel = click_pixel(event, geometry[0])
            if geometry[0].inside(pixel):  # setting the box redraws, as typing a row does
                point.value = geometry[0].nearest(self.layout(slider.value), pixel)

        for control in (slider, menu, point):
            control.observe(redraw, names="value")
        redraw()
        events = Event(source=plot, watched_events=["click"])
        events.on_dom_event(clicked)
        box = w.VBox([w.HBox([slider, caption]), w.HBox([menu, point]), plot_box, thumbs])
        box.add_class("reid-explorer")
        box.plot_events = events  # also keeps the Event alive as long as the view
        return box

    def show(self, colour_by: str = "pid") -> None:
        """Display the widget in a live Jupyter kernel, else the static figure.

        Static when ``REID_STATIC_PLOTS`` is set (the course runner sets it for headless
        runs and HTML export), outside IPython, in a terminal IPython, or without
        ipywidgets. Displays and returns None, so a cell ending in ``show()`` shows it once
        (in a script, save ``static()`` with ``savefig`` instead).
        """
        from IPython.display import display

        view = self.widget(colour_by) if widgets_wanted() else self.static(colour_by)
        display(view)


def _check_thumbnails(images: np.ndarray | None, n: int) -> np.ndarray | None:
    if images is None:
        return None
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}"
        )
    if len(images) != n:
        raise ValueError(f"images has {len(images)} rows but the snapshots have {n} points")
    return images


def widgets_wanted() -> bool:
    """True in a Jupyter kernel (ZMQ shell) with ipywidgets, unless REID_STATIC_PLOTS=1."""
    if os.environ.get("REID_STATIC_PLOTS", "").strip() not in ("", "0"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _png(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which always comes first."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG: expected the PNG signature and an IHDR chunk")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def png_data_url(png: bytes) -> str:
    """PNG bytes as a data: URL for an ipywidgets ``Image(format="url")`` (see ``widget``)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
