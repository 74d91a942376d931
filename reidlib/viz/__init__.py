"""Pictures for the notebooks: image grids, ranked lists and the embedding explorer.

- ``grids``: ``image_grid``, ``ranked_list`` and ``ranked_lists`` (chapter 0, survey §4.1:
  the Market-1501 ranked list with correct / wrong matches framed green / red).
- ``explorer``: ``EmbeddingExplorer``, UMAP or PCA views of feature snapshots over epochs
  or clustering rounds, coloured by identity, camera, pseudo-label, correctness or label
  state (chapters 0-5), as a static figure or a live view; ``history_snapshots`` takes
  them from a training ``History``.
- ``scatter``: the live view on jupyter-scatter (WebGL): Play over epochs, animated
  moves, metrics strip, hover previews, click-to-select a cluster; ``Compare`` for two runs.
- ``replay``: recorded runs for the instructor's demo mode: ``save_replay``,
  ``load_replay``, ``demo``, ``compare``.

Functions return matplotlib Figures and never call ``plt.show``.
"""

from reidlib.viz.explorer import COLOUR_BY, VIEWS, EmbeddingExplorer, Snapshot, history_snapshots
from reidlib.viz.grids import (
    image_grid,
    image_rows,
    market1501_ranking,
    ranked_list,
    ranked_lists,
)

__all__ = [
    "COLOUR_BY",
    "EmbeddingExplorer",
    "Snapshot",
    "VIEWS",
    "history_snapshots",
    "image_grid",
    "image_rows",
    "market1501_ranking",
    "ranked_list",
    "ranked_lists",
]
