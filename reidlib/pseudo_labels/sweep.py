"""Sensitivity of pseudo-labels to a clustering parameter, as a table and as a slider.

Every clustering method of survey §3.1 has a knob that decides how many pseudo-identities
come out: K-means' k (PUL), DBSCAN's eps and min_samples, the Jaccard distance's k1 / k2
(SSG, SpCL, Cluster Contrast), BUC's and HCT's number of merges (Eq. 2-3). Without labels
nobody can tune it on the target data, so how fast quality falls away from the best value
matters as much as the best value itself.

- :func:`sensitivity_sweep`: :func:`~reidlib.pseudo_labels.label_quality` at each value.
- :class:`ReclusterView`: an embedding layout that a slider re-clusters and recolours, for
  live demonstrations; its static form (HTML export, headless runs) is one panel per value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from reidlib.pseudo_labels.loop import majority_correct
from reidlib.pseudo_labels.quality import label_quality
from reidlib.utils import progress_enabled
from reidlib.viz.explorer import EmbeddingExplorer, png_data_url, widgets_wanted
from reidlib.viz.grids import new_figure

VIEW_COLOURS = ("pseudo_label", "correct", "pid", "camid")


def _labels_or_error(cluster: Callable, value, n: int | None) -> np.ndarray:
    labels = np.asarray(cluster(value))
    if labels.ndim != 1 or (n is not None and len(labels) != n) or (
            labels.size and not np.issubdtype(labels.dtype, np.integer)):
        want = f"({n},)" if n is not None else "(N,)"
        raise ValueError(f"cluster({value!r}) must return {want} integer labels (-1 = outlier), "
                         f"got {labels.dtype} {labels.shape}")
    return labels.astype(np.int64)


def sensitivity_sweep(cluster: Callable[[float], np.ndarray], values: Sequence, pids,
                      camids=None, progress: bool = True) -> list[dict]:
    """Quality of ``cluster(value)`` against the hidden ids, for each of ``values``.

    ``cluster``: ``value -> (N,) int labels``, e.g. ``lambda eps: dbscan_labels(dist, eps)``.
    Returns one :func:`label_quality` dict per value, with the value under ``"value"``.
    """
    values = list(values)
    if not values:
        raise ValueError("values is empty: give at least one parameter value to try")
    pids = np.asarray(pids)
    rows = []
    for value in tqdm(values, desc="sweep", disable=not progress_enabled(progress), leave=False):
        labels = _labels_or_error(cluster, value, len(pids))
        rows.append({"value": value, **label_quality(labels, pids, camids)})
    return rows


class ReclusterView:
    """A fixed embedding layout, re-clustered at each value of one parameter.

    Args:
        explorer: an :class:`~reidlib.viz.EmbeddingExplorer` whose snapshot ``snapshot``
            holds the features that ``cluster`` clusters (its layout is computed once).
        cluster: ``value -> (N,) int labels`` (-1 = outlier); each value is run once and
            remembered, so moving the slider back is instant.
        values: the slider's stops, e.g. ``[0.3, 0.35, 0.4]``; ``name``: the parameter's name.
        pids, camids: the hidden true ids (to score and colour) and the cameras.
    """

    def __init__(self, explorer: EmbeddingExplorer, cluster: Callable[[float], np.ndarray],
                 values: Sequence, name: str, pids, camids=None, snapshot: int = 0) -> None:
        self.values = list(values)
        if not self.values:
            raise ValueError("values is empty: give at least one parameter value for the slider")
        if not 0 <= snapshot < len(explorer):
            raise IndexError(f"snapshot {snapshot} out of range [0, {len(explorer)})")
        self.pids = np.asarray(pids)
        if self.pids.shape != (len(explorer.snapshots[snapshot]),):
            raise ValueError(f"pids must have one entry per point "
                             f"({len(explorer.snapshots[snapshot])}), got {self.pids.shape}")
        self.camids = None if camids is None else np.asarray(camids)
        self.explorer, self.cluster, self.name, self.snapshot = explorer, cluster, name, snapshot
        self._views: dict = {}

    def view(self, value) -> EmbeddingExplorer:
        """The explorer recoloured by the clustering at ``value`` (computed once per value)."""
        if value not in self._views:
            labels = _labels_or_error(self.cluster, value, len(self.pids))
            q = label_quality(labels, self.pids, self.camids)
            title = (f"{self.name} = {value}\n{q['n_clusters']} clusters, "
                     f"{q['outlier_share']:.0%} outliers, F {q['pairwise_f']:.2f}")
            self._views[value] = (self.explorer.relabelled(
                self.snapshot, title=title, pid=self.pids, camid=self.camids,
                pseudo_label=labels, correct=majority_correct(labels, self.pids)), q)
        return self._views[value][0]

    def quality(self, value) -> dict:
        """:func:`label_quality` of the clustering at ``value``."""
        self.view(value)
        return self._views[value][1]

    def static(self, colour_by: str = "pseudo_label", values: Sequence | None = None,
               ncols: int = 3, panel_size: float = 3.4):
        """One panel per value (default: every value), for HTML export and headless runs."""
        chosen = self.values if values is None else list(values)
        ncols = min(ncols, len(chosen))
        nrows = -(-len(chosen) // ncols)
        fig = new_figure(figsize=(ncols * panel_size, nrows * panel_size), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, value in zip(axes, chosen, strict=False):
            self.view(value).draw(ax, self.snapshot, colour_by, legend=False)
        for ax in axes[len(chosen):]:
            fig.delaxes(ax)
        return fig

    def widget(self, colour_by: str = "pseudo_label"):
        """A slider over ``values`` and a colour menu; each move re-clusters and redraws."""
        import ipywidgets as w

        if colour_by not in VIEW_COLOURS or (colour_by == "camid" and self.camids is None):
            raise ValueError(f"colour_by must be one of {VIEW_COLOURS} (camid needs camids), "
                             f"got {colour_by!r}")
        slider = w.SelectionSlider(options=self.values, value=self.values[0],
                                   description=self.name, continuous_update=False)
        slider.add_class("reid-recluster-slider")
        options = [c for c in VIEW_COLOURS if c != "camid" or self.camids is not None]
        menu = w.Dropdown(options=options, value=colour_by, description="colour by")
        plot = w.Image(format="url", layout=w.Layout(max_width="100%"))
        plot.add_class("reid-recluster-plot")

        def redraw(_change=None) -> None:
            png, _ = self.view(slider.value).plot(self.snapshot, menu.value)
            plot.value = png_data_url(png).encode("ascii")

        slider.observe(redraw, names="value")
        menu.observe(redraw, names="value")
        redraw()
        return w.VBox([w.HBox([slider, menu]), plot])

    def show(self, colour_by: str = "pseudo_label") -> None:
        """The widget in a live Jupyter kernel, else the static panels (see the explorer)."""
        from IPython.display import display

        display(self.widget(colour_by) if widgets_wanted() else self.static(colour_by))
