"""``python -m reidlib.recipes``: see :mod:`reidlib.recipes.cli`."""

import sys

from reidlib.recipes.cli import main

if __name__ == "__main__":
    sys.exit(main())
