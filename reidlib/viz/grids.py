"""Image grids and ranked-list galleries (chapter 0: "what does the model retrieve?").

A ranked list is the query followed by its top-k gallery images under the Market-1501
protocol (survey §4.1): gallery images of the query's identity seen by the query's own
camera are removed (they are too easy: same scene, often the same tracklet), and so are
junk images (pid -1). A correct match gets a green frame, a wrong one a red frame.

Every function builds a ``matplotlib.figure.Figure`` directly, not through ``pyplot``:
the figure is not registered with a backend, so a notebook shows it exactly once (as the
cell's value or through ``display``), loops do not leak open figures, and nothing here
ever calls ``plt.show``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reidlib.data.imageset import ImageSet

MATCH_COLOR = "#2ca02c"  # green: the shown gallery image has the query's identity
WRONG_COLOR = "#d62728"  # red: another identity (or a distractor)
QUERY_COLOR = "#1f77b4"  # blue: the query itself
BORDER_WIDTH = 3.0


def new_figure(**kwargs) -> Figure:
    """A pyplot-free ``Figure`` that a notebook can still show as a PNG.

    IPython knows how to show a Figure only once the inline backend has set itself up (on
    the first ``pyplot`` use). Figures made here bypass pyplot, so register a PNG formatter
    when IPython has none for them yet; a formatter set by the user (``%matplotlib inline``,
    ``%config InlineBackend.figure_formats``) is left alone.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return Figure(**kwargs)
    shell = get_ipython()
    if shell is not None:
        formatters = shell.display_formatter.formatters
        for name in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
            try:
                formatters[name].lookup_by_type(Figure)
                break
            except KeyError:
                continue
        else:
            formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png"))
    return Figure(**kwargs)


def _check_images(images: np.ndarray, name: str) -> np.ndarray:
    """Return ``images`` if it is a uint8 (N, H, W, 3) array, else raise a clear error."""
    if isinstance(images, ImageSet):
        raise TypeError(f"{name}: pass the pixel array (imageset.images), not the ImageSet")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 array of shape (N, H, W, 3), got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    return images


def _frame(ax: Axes, color: str | None) -> None:
    """Hide the ticks and draw the axes' spines as a coloured frame (none if ``color`` is None)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_edgecolor(color)
            spine.set_linewidth(BORDER_WIDTH)


def _camera_mark(ax: Axes, camid: int) -> None:
    """Write "c<camid>" in the image's top-left corner, readable on any background."""
    ax.text(
        0.04, 0.97, f"c{int(camid) + 1}", transform=ax.transAxes, ha="left", va="top",
        fontsize=7, color="white",
        bbox={"boxstyle": "round,pad=0.15", "facecolor": "black", "alpha": 0.6, "linewidth": 0},
    )


def _layout(nrows: int, ncols: int, image_hw: tuple[int, int], panel_height: float,
            left: float = 0.0):
    """A fresh figure sized for ``nrows x ncols`` image panels and its GridSpec of cells.

    Sizes are in inches: each panel keeps the images' aspect ratio, with room above it for
    two title lines and ``left`` inches at the left for row labels.
    """
    h, w = image_hw
    panel_width = panel_height * w / h
    title, gap, margin = 0.4, 0.06, 0.05  # inches: room for two title lines, between panels
    fig_w = left + ncols * panel_width + (ncols - 1) * gap + 2 * margin
    fig_h = nrows * (panel_height + title) + margin
    fig = new_figure(figsize=(fig_w, fig_h))
    cells = fig.add_gridspec(
        nrows, ncols, left=(left + margin) / fig_w, right=1 - margin / fig_w,
        bottom=margin / fig_h, top=1 - title / fig_h, wspace=gap / panel_width,
        hspace=title / panel_height,
    )
    return fig, cells


def _new_axes(nrows: int, ncols: int, image_hw: tuple[int, int], panel_height: float) -> np.ndarray:
    """A fresh figure of ``nrows x ncols`` image panels; returns the (nrows, ncols) axes array."""
    _, cells = _layout(nrows, ncols, image_hw, panel_height)
    return cells.subplots(squeeze=False)


def _target_axes(axes: Sequence[Axes] | None, n: int, shape: tuple[int, int],
                 image_hw: tuple[int, int], panel_height: float) -> list[Axes]:
    """The caller's axes (at least ``n`` of them) or a new figure's, flattened; extras hidden."""
    if axes is None:
        flat = list(_new_axes(*shape, image_hw, panel_height).ravel())
    else:
        flat = list(np.asarray(axes, dtype=object).ravel())
        if len(flat) < n:
            raise ValueError(f"need at least {n} axes to draw {n} panels, got {len(flat)}")
    for ax in flat[n:]:
        ax.axis("off")
    return flat


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    *,
    border_colors: Sequence[str | None] | None = None,
    axes: Sequence[Axes] | None = None,
    panel_height: float = 1.6,
) -> Figure:
    """Show ``images`` (uint8, (N, H, W, 3)) in a grid of ``ncols`` columns; return the Figure.

    ``titles`` and ``border_colors`` give one entry per image. With ``axes`` (any sequence of
    at least N Axes, e.g. a row of a larger figure) the images are drawn there and that
    figure is returned; otherwise a new figure is made.
    """
    images = _check_images(images, "images")
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image, got an empty array")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    for name, values in (("titles", titles), ("border_colors", border_colors)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} images")
    ncols = min(ncols, n)
    shape = (-(-n // ncols), ncols)
    flat = _target_axes(axes, n, shape, images.shape[1:3], panel_height)
    for i, ax in enumerate(flat[:n]):
        ax.imshow(images[i], interpolation="nearest")
        _frame(ax, None if border_colors is None else border_colors[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return flat[0].figure


def image_rows(
    images: np.ndarray,
    rows: Sequence[Sequence[int]],
    titles: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str] | None = None,
    *,
    border_colors: Sequence[Sequence[str | None]] | None = None,
    panel_height: float = 1.6,
) -> Figure:
    """One row of panels per entry of ``rows``: the images ``images[rows[r]]``, left to right.

    Rows may differ in length (one person seen by four cameras, another by two): only real
    images get a panel, so a short row simply ends; nothing is padded with filler tiles.
    ``titles`` and ``border_colors`` follow the shape of ``rows``; ``row_labels`` (one per
    row) are written at the left of each row.
    """
    images = _check_images(images, "images")
    rows = [np.asarray(r, dtype=np.int64).ravel() for r in rows]
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("image_rows needs at least one row, and every row at least one image")
    for r in rows:
        if r.min() < 0 or r.max() >= len(images):
            raise ValueError(f"rows must index images in [0, {len(images)}), got {r.tolist()}")
    for name, values in (("titles", titles), ("border_colors", border_colors)):
        if values is not None and [len(v) for v in values] != [len(r) for r in rows]:
            raise ValueError(f"{name} must have one entry per image of each row, shaped like rows")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"row_labels has {len(row_labels)} entries for {len(rows)} rows")

    ncols = max(len(r) for r in rows)
    label_width = 0.0 if row_labels is None else 0.25 + 0.07 * max(map(len, row_labels))
    fig, cells = _layout(len(rows), ncols, images.shape[1:3], panel_height, label_width)
    for r, row in enumerate(rows):
        for c, i in enumerate(row):
            ax = fig.add_subplot(cells[r, c])
            ax.imshow(images[i], interpolation="nearest")
            _frame(ax, None if border_colors is None else border_colors[r][c])
            if titles is not None:
                ax.set_title(titles[r][c], fontsize=8)
            if c == 0 and row_labels is not None:
                ax.text(-0.08, 0.5, row_labels[r], transform=ax.transAxes, ha="right",
                        va="center", fontsize=9)
    return fig


def ranked_list(
    query_image: np.ndarray,
    gallery_images: np.ndarray,
    ranked_index: Sequence[int] | np.ndarray,
    matches: Sequence[bool] | np.ndarray | None = None,
    q_camid: int | None = None,
    g_camids: Sequence[int] | np.ndarray | None = None,
    top_k: int = 10,
    *,
    axes: Sequence[Axes] | None = None,
    panel_height: float = 1.6,
) -> Figure:
    """The query, then gallery images ``ranked_index[:top_k]`` with their rank (survey §4.1).

    ``ranked_index`` lists gallery rows best first, already filtered by the protocol (see
    ``ranked_lists`` for the Market-1501 filter). ``matches`` says, per ranked item (at least
    the shown ones), whether it has the query's identity: green frame if so, red if not, no
    frame when ``matches`` is None. ``q_camid`` / ``g_camids`` add "c<camid>" marks. The new
    figure has ``1 + min(top_k, len(ranked_index))`` axes; with ``axes`` it draws there.
    """
    query_image = np.asarray(query_image)
    if query_image.ndim != 3:
        raise ValueError(f"query_image must be (H, W, 3) uint8, got shape {query_image.shape}")
    _check_images(query_image[None], "query_image")
    gallery_images = _check_images(gallery_images, "gallery_images")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ranked_index = np.asarray(ranked_index, dtype=np.int64).ravel()
    if ranked_index.size and (ranked_index.min() < 0 or ranked_index.max() >= len(gallery_images)):
        raise ValueError(
            f"ranked_index must hold gallery rows in [0, {len(gallery_images)}), got values "
            f"from {ranked_index.min()} to {ranked_index.max()}"
        )
    shown = ranked_index[:top_k]
    if matches is not None:
        matches = np.asarray(matches, dtype=bool).ravel()
        if len(matches) < len(shown):
            raise ValueError(
                f"matches has {len(matches)} entries but {len(shown)} ranked items are shown"
            )
    if g_camids is not None and len(g_camids) != len(gallery_images):
        raise ValueError(f"g_camids has {len(g_camids)} entries for {len(gallery_images)} images")

    n = 1 + len(shown)
    flat = _target_axes(axes, n, (1, n), gallery_images.shape[1:3], panel_height)
    flat[0].imshow(query_image, interpolation="nearest")
    _frame(flat[0], QUERY_COLOR)
    flat[0].set_title("query", fontsize=8, color=QUERY_COLOR)
    if q_camid is not None:
        _camera_mark(flat[0], q_camid)
    for rank, (ax, g) in enumerate(zip(flat[1:n], shown, strict=True), start=1):
        ax.imshow(gallery_images[g], interpolation="nearest")
        color = None if matches is None else (MATCH_COLOR if matches[rank - 1] else WRONG_COLOR)
        _frame(ax, color)
        ax.set_title(str(rank), fontsize=8, color=color or "black")
        if g_camids is not None:
            _camera_mark(ax, g_camids[g])
    return flat[0].figure


def market1501_ranking(
    distances: np.ndarray, q_pid: int, q_camid: int, g_pids: np.ndarray, g_camids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gallery order for one query under the Market-1501 rule, and which items match.

    Sorts by distance (ties by gallery row), then drops same-identity same-camera images
    and junk (pid -1). Distractors (pid 0) stay and count as wrong matches.
    """
    order = np.argsort(distances, kind="stable")
    g_pids, g_camids = np.asarray(g_pids)[order], np.asarray(g_camids)[order]
    keep = ~((g_pids == q_pid) & (g_camids == q_camid)) & (g_pids != -1)
    return order[keep], g_pids[keep] == q_pid


def ranked_lists(
    distmat: np.ndarray,
    query: ImageSet,
    gallery: ImageSet,
    query_indices: Sequence[int] | np.ndarray | int,
    top_k: int = 10,
    *,
    panel_height: float = 1.6,
) -> Figure:
    """One ranked list per query in ``query_indices``, one row each (survey §4.1).

    ``distmat`` is the (len(query), len(gallery)) distance matrix. Each row shows the query
    and its ``top_k`` nearest gallery images after the Market-1501 filter
    (``market1501_ranking``); rows with fewer valid images leave their last panels empty.
    The figure has ``len(query_indices) * (1 + top_k)`` axes.
    """
    distmat = np.asarray(distmat)
    if distmat.shape != (len(query), len(gallery)):
        raise ValueError(
            f"distmat must have shape (len(query), len(gallery)) = ({len(query)}, "
            f"{len(gallery)}), got {distmat.shape}"
        )
    query_indices = np.atleast_1d(np.asarray(query_indices, dtype=np.int64))
    if query_indices.size == 0:
        raise ValueError("query_indices is empty: pick at least one query row")
    if query_indices.min() < 0 or query_indices.max() >= len(query):
        raise ValueError(f"query_indices must lie in [0, {len(query)}), got {query_indices}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rows = _new_axes(len(query_indices), 1 + top_k, gallery.image_size, panel_height)
    for row, qi in zip(rows, query_indices, strict=True):
        order, matches = market1501_ranking(
            distmat[qi], query.pids[qi], query.camids[qi], gallery.pids, gallery.camids
        )
        ranked_list(
            query.images[qi], gallery.images, order, matches, query.camids[qi], gallery.camids,
            top_k, axes=row,
        )
        row[0].set_title(f"query (pid {query.pids[qi]})", fontsize=8, color=QUERY_COLOR)
    return rows[0, 0].figure
