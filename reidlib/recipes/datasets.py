"""Which dataset a recipe runs on: a synthetic world or a real benchmark in its own layout.

A dataset is named on the command line as ``KIND:VALUE`` (survey §4.1, Table 2):

- ``synthetic:A`` / ``synthetic:B`` / ``synthetic:P``: a course world rendered at the
  profile's size (:func:`reidlib.data.synthetic.load_world`);
- ``market1501:PATH``, ``dukemtmc:PATH``, ``cuhk03:PATH`` (the labeled boxes of cuhk03-np),
  ``cuhk03-detected:PATH``, ``msmt17:PATH``, ``mars:PATH``: a real release in its official
  layout, read by :mod:`reidlib.data.datasets` and decoded at the profile's image size.

A missing or malformed tree raises :class:`~reidlib.data.datasets.DatasetLayoutError`, whose
message shows the layout expected (or, for a file the layout does not allow, the file and the
pattern expected); the command line prints it as one clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

from reidlib.data.datasets import DatasetLayoutError, load_splits
from reidlib.data.imageset import ReidSplits
from reidlib.data.synthetic import load_world
from reidlib.data.synthetic.spec import DOMAINS

__all__ = ["LAYOUTS", "dataset_forms", "load_dataset", "parse_dataset"]

#: real layouts: command-line kind -> (reader name, reader options)
LAYOUTS = {
    "market1501": ("market1501", {}),
    "dukemtmc": ("dukemtmc", {}),
    "cuhk03": ("cuhk03", {"cuhk03_variant": "labeled"}),
    "cuhk03-detected": ("cuhk03", {"cuhk03_variant": "detected"}),
    "msmt17": ("msmt17", {}),
    "mars": ("mars", {}),
}


def dataset_forms() -> str:
    """The valid ``--dataset`` forms, for help texts and error messages."""
    worlds = "|".join(DOMAINS)
    return ", ".join([f"synthetic:{worlds}"] + [f"{kind}:PATH" for kind in LAYOUTS])


def parse_dataset(spec: str) -> tuple[str, str | Path]:
    """``"synthetic:A"`` -> ``("synthetic", "A")``; ``"market1501:data/m"`` ->
    ``("market1501", Path("data/m"))``. Anything else: a ValueError listing the forms."""
    kind, sep, value = str(spec).partition(":")
    kind = kind.strip().lower()
    if sep and kind == "synthetic" and value in DOMAINS:
        return kind, value
    if sep and kind in LAYOUTS and value.strip():
        return kind, Path(value).expanduser()
    raise ValueError(f"dataset {spec!r}: expected one of {dataset_forms()}")


def load_dataset(spec: str, profile, cache_dir: str | os.PathLike,
                 progress: bool = True) -> ReidSplits:
    """The dataset ``spec`` names (:func:`parse_dataset`) as ``ReidSplits`` for ``profile``.

    A synthetic world is rendered at ``profile``'s world size (cached in ``cache_dir``); a
    real release is decoded at ``profile.image_size`` with its training identities
    relabelled 0..C-1, the pixels cached in ``cache_dir/datasets``. Raises
    :class:`~reidlib.data.datasets.DatasetLayoutError` for a missing or incomplete tree, or
    one holding a file its layout does not allow (the reader's ValueError, chained).
    """
    kind, value = parse_dataset(spec)
    if kind == "synthetic":
        return load_world(value, profile.name, cache_dir=cache_dir, progress=progress)
    name, options = LAYOUTS[kind]
    try:
        return load_splits(name, value, size=profile.image_size,
                           cache_dir=Path(cache_dir) / "datasets", **options)
    except DatasetLayoutError:
        raise
    except ValueError as err:  # a file the layout does not allow: its message names it
        raise DatasetLayoutError(f"{err}\nLayouts and where to get each release: "
                                 "data/README.md.") from err
