"""Pictures for the notebooks: image grids, ranked lists and the embedding explorer.

- ``grids``: ``image_grid``, ``ranked_list`` and ``ranked_lists`` (chapter 0, survey §4.1:
  the Market-1501 ranked list with correct / wrong matches framed green / red).
- ``explorer``: ``EmbeddingExplorer``, UMAP or PCA views of feature snapshots over epochs
  or clustering rounds, coloured by identity, camera, pseudo-label or correctness
  (chapters 1-5), as an ipywidgets view or a static figure.

Functions return matplotlib Figures and never call ``plt.show``.
"""

from reidlib.viz.explorer import COLOUR_BY, EmbeddingExplorer, Snapshot
from reidlib.viz.grids import image_grid, market1501_ranking, ranked_list, ranked_lists

__all__ = [
    "COLOUR_BY",
    "EmbeddingExplorer",
    "Snapshot",
    "image_grid",
    "market1501_ranking",
    "ranked_list",
    "ranked_lists",
]
