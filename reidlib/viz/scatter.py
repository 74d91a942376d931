"""The live embedding explorer on jupyter-scatter (WebGL), for instructors in class.

``LiveExplorer`` shows the snapshots of an ``EmbeddingExplorer`` (the features and
pseudo-labels of the same images epoch by epoch, survey §3.1-3.2) in one jupyter-scatter
plot (Lekschas, 2024; regl-scatterplot underneath, so thousands of points stay fluid):

- an ``ipywidgets.Play`` button and a slider over the snapshots; moving to another snapshot
  moves every point from its old place to its new one (jupyter-scatter's animated
  transition: ``Scatter.data(frame, animate=True)``, which keeps the points' order), so a
  merge or a split is seen happening, not inferred from two pictures;
- a metrics strip under the slider: pairwise F, clusters, outliers, and mAP when the run
  recorded one (``Snapshot.metrics``, else computed on the shown points);
- colour by identity, camera, pseudo-label or label state (``reidlib.pseudo_labels.states``);
- hovering a point shows its crop (the tooltip's image preview, a ``data:`` URL per point) and
  its identity, camera, pseudo-label and state; lasso and pan / zoom are jupyter-scatter's;
- clicking a point selects its whole cluster in that snapshot (an outlier: itself), with a
  caption saying what was selected and how many of the cluster are its majority person.

``Compare`` puts two recorded runs of the same images side by side under one slider; a click
in either selects that point and its nearest neighbours (in that run's features) in both,
so one can see whether the other method keeps the same people together.

What jupyter-scatter cannot do, and the next best used here: it has no frame / slider API of
its own (hence ``ipywidgets.Play`` driving ``Scatter.data``); it cannot fix a per-category
colour map while the categories change every epoch (cluster ids are new each epoch), so each
snapshot's categorical map is rebuilt (outliers always grey, states always
``STATE_COLOURS``); its click selects one point only, so the cluster is selected from Python
on the ``selection`` change, which needs a live kernel (not a static HTML export).
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from matplotlib.colors import to_hex

from reidlib.viz.explorer import OUTLIER_GREY, EmbeddingExplorer

LIVE_VIEWS = {"pid": "identity", "camid": "camera", "pseudo_label": "pseudo-label",
              "state": "state"}
OUTLIER = "outlier"
TRANSITION_MS = 600  # short enough that Play's steps (PLAY_MS) show each layout at rest
PLAY_MS = 1200


def preview_urls(images: np.ndarray, height: int = 64) -> list[str]:
    """One PNG ``data:`` URL per (H, W, 3) uint8 crop, scaled to ``height`` pixels tall."""
    from PIL import Image

    urls = []
    for image in images:
        picture = Image.fromarray(image)
        width = max(1, round(picture.width * height / picture.height))
        buffer = io.BytesIO()
        picture.resize((width, height), Image.NEAREST).save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


def metrics_line(numbers: dict) -> str:
    """The metrics strip's text: pairwise F, clusters, outliers, mAP (what is known)."""
    parts = []
    if numbers.get("pairwise_f") is not None:
        parts.append(f"pairwise F <b>{numbers['pairwise_f']:.2f}</b>")
    if numbers.get("n_clusters") is not None:
        parts.append(f"<b>{numbers['n_clusters']}</b> clusters")
    if numbers.get("outlier_share") is not None:
        parts.append(f"<b>{numbers['outlier_share']:.0%}</b> outliers")
    if numbers.get("mAP") is not None:
        parts.append(f"val mAP <b>{numbers['mAP']:.1%}</b>")
    if parts and numbers.get("scope"):
        parts.append(f"<i>({numbers['scope']})</i>")
    return " &nbsp;|&nbsp; ".join(parts) or "<i>no pseudo-labels in this snapshot</i>"


class LiveExplorer:
    """A jupyter-scatter view of an ``EmbeddingExplorer``'s snapshots; ``.view`` displays it.

    ``colour_by``: one of ``LIVE_VIEWS`` (``"correct"`` is shown as ``"state"``, its
    four-way refinement). ``previews``: crops in the hover tooltip (needs the explorer's
    images). Methods ``go(index)``, ``colour(by)`` and ``click(row)`` do from Python what
    the slider, the menu and a click do, for tests and for scripted demos.
    """

    def __init__(self, explorer: EmbeddingExplorer, colour_by: str = "pseudo_label", *,
                 height: int = 420, previews: bool = True, title: str = "") -> None:
        import ipywidgets as w
        import jscatter

        colour_by = "state" if colour_by == "correct" else colour_by
        self.explorer = explorer
        self.options = [v for v in LIVE_VIEWS if self._available(v)]
        if colour_by not in LIVE_VIEWS:
            raise ValueError(f"colour_by must be one of {tuple(LIVE_VIEWS)}, got {colour_by!r}")
        if colour_by not in self.options:
            raise ValueError(f"colour_by {colour_by!r} is missing from some snapshots; "
                             f"every snapshot has {self.options}")
        self.layouts = explorer.layouts()
        self.previews = (preview_urls(explorer.images)
                         if previews and explorer.images is not None else None)
        self.index, self.colour_by = 0, colour_by
        self.categories = self._categories()  # fixed, so a colour keeps its meaning
        (x0, x1), (y0, y1) = explorer._limits()  # one frame for every snapshot
        self.scatter = jscatter.Scatter(
            data=self.frame(0), x="x", y="y", x_scale=(x0, x1), y_scale=(y0, y1),
            height=height, axes=False, legend=True, size=7,  # visible on a projector
        )
        self.scatter.options(transition_points_duration=TRANSITION_MS)
        self._apply_colour()
        properties = ["color", *(LIVE_VIEWS[v] for v in self.options if v != colour_by)]
        self.scatter.tooltip(True, properties=properties,
                             **({"preview": "preview", "preview_type": "image",
                                 "preview_image_height": 96} if self.previews else {}))
        self.slider = w.IntSlider(value=0, min=0, max=len(explorer) - 1,
                                  description="snapshot", continuous_update=True)
        self.slider.add_class("reid-live-slider")
        self.play = w.Play(value=0, min=0, max=len(explorer) - 1, interval=PLAY_MS,
                           description="play")
        self.play.add_class("reid-live-play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.menu = w.Dropdown(options=[(LIVE_VIEWS[v], v) for v in self.options],
                               value=colour_by, description="colour by")
        self.caption = w.HTML()
        self.caption.add_class("reid-live-caption")
        self.strip = w.HTML()
        self.strip.add_class("reid-live-metrics")
        self.info = w.HTML("<i>click a point: its whole cluster is selected</i>")
        self.info.add_class("reid-live-selection")
        self._updating = False
        self.on_click = self.click  # what a click does; Compare replaces it
        self.slider.observe(lambda change: self.go(change["new"]), names="value")
        self.menu.observe(lambda change: self.colour(change["new"]), names="value")
        self.scatter.widget.observe(self._selected, names="selection")
        self._texts()
        header = [w.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.view = w.VBox([*header, w.HBox([self.play, self.slider, self.caption]),
                            self.strip, w.HBox([self.menu]), self.scatter.widget, self.info])
        self.view.add_class("reid-live")
        self.view.live = self  # the view keeps its controller alive and reachable

    # ------------------------------------------------------------------ data
    def _available(self, view: str) -> bool:
        return all(self.explorer._row_view(i, view) == view and
                   (view == "state" or getattr(s, view) is not None)
                   for i, s in enumerate(self.explorer.snapshots))

    def _text(self, index: int, view: str) -> np.ndarray:
        values = self.explorer._values(index, view)
        if view == "pseudo_label":
            return np.where(values == -1, OUTLIER, np.char.add("cluster ", values.astype(str)))
        if view == "camid":
            return np.char.add("c", (values + 1).astype(str))  # 1-based, as in file names
        if view == "pid":
            return np.char.add("id ", values.astype(str))
        return values.astype(str)

    def _categories(self) -> dict[str, list[str]]:
        """Per colouring, the categories of every snapshot together (states: all four).

        jupyter-scatter keeps a colour map across ``data`` updates only when the categories
        stay the same; cluster ids are arbitrary per snapshot, so "cluster 3" in two epochs
        shares a colour without being the same cluster."""
        from reidlib.pseudo_labels.states import STATES

        out = {}
        for view in self.options:
            if view == "state":
                out[view] = list(STATES)
                continue
            texts = np.unique(np.concatenate([self._text(i, view)
                                              for i in range(len(self.explorer))]))
            numbers = [int(t.split(" ")[-1].lstrip("c")) if t != OUTLIER else -1 for t in texts]
            out[view] = [t for _, t in sorted(zip(numbers, texts, strict=True))]
        return out

    def frame(self, index: int):
        """The points of snapshot ``index`` as a DataFrame: x, y and one categorical text
        column per colouring (categories fixed over snapshots), plus the preview URLs."""
        import pandas as pd

        xy = self.layouts[index]
        columns = {"x": xy[:, 0], "y": xy[:, 1]}
        for view in self.options:
            columns[LIVE_VIEWS[view]] = pd.Categorical(self._text(index, view),
                                                       categories=self.categories[view])
        if self.previews is not None:
            columns["preview"] = self.previews
        return pd.DataFrame(columns)

    def colour_map(self, by: str) -> list[str]:
        """One colour per category of ``self.categories[by]``, in that order: states in
        ``STATE_COLOURS``, outliers grey, the other categories spread over husl hues.

        A list, not a dict: jupyter-scatter 1.0.1 keeps a dict map's order as category
        codes and then fails to re-apply it when ``data`` changes (KeyError); a list is
        indexed by the category code, which our fixed categories keep stable."""
        import seaborn as sns

        from reidlib.pseudo_labels.states import STATE_COLOURS

        categories = self.categories[by]
        if by == "state":
            return [STATE_COLOURS[c] for c in categories]
        labels = [c for c in categories if c != OUTLIER]
        few = by == "camid" and len(labels) <= 10
        palette = sns.color_palette("colorblind" if few else "husl", max(len(labels), 1))
        if not few:  # neighbours in id order get far-apart hues
            palette = [palette[(j * 7) % len(palette)] for j in range(len(palette))]
        colours = iter(palette)
        return [to_hex(OUTLIER_GREY) if c == OUTLIER else to_hex(next(colours))
                for c in categories]

    def _apply_colour(self) -> None:
        column = LIVE_VIEWS[self.colour_by]
        self.scatter.color(by=column, map=self.colour_map(self.colour_by))
        self.scatter.legend(self.colour_by in ("state", "camid"))  # 100 clusters: no legend

    # ------------------------------------------------------------------ actions
    def go(self, index: int) -> None:
        """Show snapshot ``index``: points move there (animated), labels and metrics follow."""
        if not 0 <= index < len(self.explorer):
            raise IndexError(f"snapshot index {index} out of range [0, {len(self.explorer)})")
        if index == self.index:
            return
        selected = self.selection()
        self.index = index
        self.scatter.data(self.frame(index), animate=True)
        if self.slider.value != index:
            self.slider.value = index
        self._texts()
        if len(selected):  # keep the same images selected: where did they go?
            self.select(selected, f"the same {len(selected)} images, now in "
                                  f"{self.explorer.snapshots[index].title.split(chr(10))[0]}")

    def colour(self, by: str) -> None:
        """Colour by one of ``self.options``."""
        if by not in self.options:
            raise ValueError(f"colour must be one of {self.options}, got {by!r}")
        self.colour_by = by
        self._apply_colour()
        if self.menu.value != by:
            self.menu.value = by

    def cluster_of(self, row: int) -> np.ndarray:
        """The rows sharing ``row``'s pseudo-label in the current snapshot (an outlier or a
        snapshot without pseudo-labels: the row alone)."""
        labels = self.explorer.snapshots[self.index].pseudo_label
        if labels is None or labels[row] == -1:
            return np.array([row])
        return np.flatnonzero(labels == labels[row])

    def click(self, row: int) -> np.ndarray:
        """What a click on point ``row`` does: select its cluster; returns the rows."""
        rows = self.cluster_of(row)
        self.select(rows, self.describe(row, rows))
        return rows

    def describe(self, row: int, rows: np.ndarray) -> str:
        snapshot = self.explorer.snapshots[self.index]
        label = None if snapshot.pseudo_label is None else int(snapshot.pseudo_label[row])
        if label is None or label == -1:
            return f"point {row}: {'an outlier' if label == -1 else 'no pseudo-labels'}"
        text = f"point {row}: cluster {label}, {len(rows)} images"
        if snapshot.pid is not None:
            ids, counts = np.unique(snapshot.pid[rows], return_counts=True)
            text += (f", {len(ids)} identities (the largest, id {ids[np.argmax(counts)]}, "
                     f"has {counts.max()})")
        return text

    def select(self, rows, text: str = "") -> None:
        """Select ``rows`` in the plot (highlighted, the rest faded) and say why."""
        rows = np.asarray(rows, dtype=np.int64)
        self._updating = True
        try:
            self.scatter.selection(rows)
        finally:
            self._updating = False
        self.info.value = html.escape(text) if text else f"{len(rows)} points selected"

    def selection(self) -> np.ndarray:
        """The rows selected now."""
        selected = self.scatter.widget.selection
        return np.array([], dtype=np.int64) if selected is None else np.asarray(selected,
                                                                              dtype=np.int64)

    def _selected(self, change) -> None:
        """A click selects one point: widen it to its cluster (a lasso is left alone)."""
        if self._updating:
            return
        new = change["new"]
        if new is not None and len(new) == 1:
            self.on_click(int(new[0]))
        elif new is not None and len(new) > 1:
            self.info.value = f"{len(new)} points selected (lasso)"

    def _texts(self) -> None:
        title = self.explorer.snapshots[self.index].title.split("\n")[0]
        where = f"({self.index + 1} / {len(self.explorer)})"
        self.caption.value = f"<b>{html.escape(title)}</b> {where}"
        self.strip.value = metrics_line(self.explorer.summary(self.index))


class Compare:
    """Two ``LiveExplorer`` views of the same images side by side, one slider for both.

    Clicking a point in either view selects it and its ``k`` nearest neighbours (in the
    features of the view clicked, at the current snapshot) in both views. ``a`` and ``b``
    must show the same images in the same order (checked on their identities).
    """

    def __init__(self, a: EmbeddingExplorer, b: EmbeddingExplorer, names=("A", "B"), *,
                 colour_by: str = "pseudo_label", k: int = 8, height: int = 380) -> None:
        import ipywidgets as w

        if len(a.snapshots[0]) != len(b.snapshots[0]):
            raise ValueError(f"the two runs show different images: {len(a.snapshots[0])} "
                             f"and {len(b.snapshots[0])} points; record both on the same rows")
        pa, pb = a.snapshots[0].pid, b.snapshots[0].pid
        if pa is not None and pb is not None and not np.array_equal(pa, pb):
            raise ValueError("the two runs show different images (their identities differ "
                             "row by row); record both on the same rows")
        self.k = k
        self.views = [LiveExplorer(e, colour_by, height=height, title=str(n))
                      for e, n in zip((a, b), names, strict=True)]
        self.length = min(len(a), len(b))
        self.slider = w.IntSlider(value=0, min=0, max=self.length - 1, description="epoch",
                                  continuous_update=True)
        self.slider.add_class("reid-compare-slider")
        self.play = w.Play(value=0, min=0, max=self.length - 1, interval=PLAY_MS)
        self.play.add_class("reid-compare-play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.info = w.HTML("<i>click a point in either view: it and its neighbours are "
                           "selected in both</i>")
        self.info.add_class("reid-compare-selection")
        self.slider.observe(lambda change: self.go(change["new"]), names="value")
        for side, view in enumerate(self.views):
            view.play.layout.display = view.slider.layout.display = "none"  # one slider
            view.on_click = lambda row, side=side: self.click(side, row)
        panes = w.HBox([v.view for v in self.views])
        self.view = w.VBox([w.HBox([self.play, self.slider]), panes, self.info])
        self.view.add_class("reid-compare")
        self.view.compare = self

    def go(self, index: int) -> None:
        """Both views to snapshot ``index``."""
        for view in self.views:
            view.go(index)
        if self.slider.value != index:
            self.slider.value = index

    def click(self, side: int, row: int) -> np.ndarray:
        """What a click on point ``row`` in view ``side`` (0 or 1) does; returns the rows."""
        view = self.views[side]
        rows = np.concatenate([[row], view.explorer.nearest(view.index, row, self.k)])
        for v in self.views:
            v.select(rows, f"point {row} and its {len(rows) - 1} nearest neighbours in "
                           f"{'the left' if side == 0 else 'the right'} run")
        same = ""
        pid = view.explorer.snapshots[view.index].pid
        if pid is not None:
            same = f"; {int((pid[rows[1:]] == pid[row]).sum())} of them the same person"
        self.info.value = (f"point {row} and its {len(rows) - 1} nearest neighbours in "
                           f"{'left' if side == 0 else 'right'} view{same}: selected in both")
        return rows
