"""Every method of chapters 1-5 as a command-line recipe on any dataset (course chapter 6).

``python -m reidlib.recipes list`` prints them; ``python -m reidlib.recipes METHOD
--dataset synthetic:A --out results.json`` trains one and writes its chapter-6 table row
(:mod:`reidlib.recipes.cli`). :mod:`.core` says what a recipe is, :mod:`.datasets` which
datasets it reads, :mod:`.image` holds chapters 1-3 (``adaptation`` and ``video`` hold
chapters 4 and 5).
"""

from reidlib.recipes.core import (
    ROW_KEYS,
    Recipe,
    RecipeInputError,
    RecipeResult,
    RecipeRun,
    model_selection,
    result_row,
)

__all__ = ["ROW_KEYS", "Recipe", "RecipeInputError", "RecipeResult", "RecipeRun",
           "model_selection", "result_row"]
