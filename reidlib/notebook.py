"""The one setup call at the top of every course notebook.

A notebook starts with::

    from reidlib.notebook import setup
    session = setup("00")

which picks the run profile and the device, seeds everything, sets one plotting style
and prints one line saying what it chose. ``session.record(map=0.42, rank1=0.61)`` saves
the chapter's headline numbers to ``<results_dir>/<chapter>.json``; the course runner
(``python -m reidlib.course run``) gathers those files into ``build/results.json``.

Paths: ``cache_dir`` is ``data/cache`` under the repository root (``$REID_CACHE``
overrides it) and ``results_dir`` is ``build/results`` (``$REID_BUILD/results`` when
``$REID_BUILD`` names another build folder).

Data: ``session.world("A")`` is the chapter's world A, rendered at the profile's size;
with ``$REID_DATASET`` set to a real release (``market1501:PATH``, ``mars:PATH``, ...;
see :func:`reidlib.recipes.datasets.parse_dataset`) it is that dataset instead, and
``session.on_real_data`` tells a chapter to skip what only a rendered world knows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from reidlib.profiles import Profile, get_profile
from reidlib.utils import atomic_path, default_device, progress_enabled, seed_everything

if TYPE_CHECKING:  # imported lazily: training is not needed to set a notebook up
    from reidlib.training.loop import History

_CHAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# A results file holds headline numbers, not data: a list longer than this belongs in
# the cache as an array, not in results.json.
MAX_RECORD_ITEMS = 1000
#: names a real dataset that replaces world A in every chapter (``market1501:PATH``, ...)
DATASET_VARIABLE = "REID_DATASET"


@dataclass
class Session:
    """What a notebook's setup chose; pass its fields explicitly to library calls."""

    chapter: str
    profile: Profile
    device: torch.device
    seed: int
    cache_dir: Path
    results_dir: Path
    dataset: str | None = None

    @property
    def on_real_data(self) -> bool:
        """Whether ``$REID_DATASET`` replaces world A by a real dataset (``self.dataset``):
        then the renderer's knowledge (attributes, camera styles, transit times, the dials)
        is unknown and the numbers are not comparable with the course's."""
        return self.dataset is not None

    @property
    def replay_dir(self) -> Path:
        """Where chapters record runs for the instructor's demo: one folder per profile, so a
        smoke run never overwrites the quick profile's recordings (and one per dataset on
        real data, so a real run never overwrites the synthetic world's)."""
        if self.dataset is None:
            return self.cache_dir / "replays" / self.profile.name
        return self.cache_dir / "replays" / f"{self.profile.name}-{self.dataset_tag}"

    @property
    def dataset_tag(self) -> str | None:
        """A file-name-safe tag of ``self.dataset`` (its kind, folder name and a hash of its
        path), for cache files a chapter writes about it; None on the synthetic world."""
        if self.dataset is None:
            return None
        kind, path = _parse_real_dataset(self.dataset)
        return f"{kind}-{_path_tag(path)}"

    def world(self, domain: str = "A", **dials):
        """The chapter's data: world ``domain`` at the profile's size, or the real dataset.

        Without ``$REID_DATASET`` (``self.dataset``), or for another world than A, or with
        the renderer's dials (``camera_style``, ``domain_gap``), this is
        :func:`reidlib.data.synthetic.load_world` with the session's cache. With it, world A
        is that dataset (:func:`reidlib.recipes.datasets.load_dataset`, decoded at the
        profile's image size and cached under ``cache_dir/datasets``), a ``ReidSplits``
        without the rendered world's attributes, camera styles or transit times; one line
        says so. A missing or malformed tree raises
        :class:`~reidlib.data.datasets.DatasetLayoutError` showing the layout expected, an
        invalid spec a ValueError listing the valid forms; neither leaves a cache file.
        """
        if self.dataset is None or domain != "A" or dials:
            from reidlib.data.synthetic import load_world

            return load_world(domain, self.profile.name, cache_dir=self.cache_dir, **dials)
        from reidlib.recipes.datasets import load_dataset

        _parse_real_dataset(self.dataset)
        splits = load_dataset(self.dataset, self.profile, self.cache_dir,
                              progress=progress_enabled())
        print(f"world A is {splits.name} from {self.dataset} ($REID_DATASET), decoded at "
              f"{self.profile.image_size[0]}x{self.profile.image_size[1]}: its numbers are not "
              "comparable with the course's synthetic world")
        return splits

    @property
    def results_path(self) -> Path:
        return self.results_dir / f"{self.chapter}.json"

    def record(self, **numbers) -> dict:
        """Merge ``numbers`` into ``<results_dir>/<chapter>.json`` and return the whole file.

        Values must be numbers, strings, booleans or short (nested) lists of them; numpy
        scalars are converted. The file is replaced atomically, so a crash never leaves
        it half written.
        """
        if not numbers:
            raise ValueError("record() needs at least one keyword, e.g. record(map=0.42)")
        clean = {key: _plain_value(key, value) for key, value in numbers.items()}
        if self.dataset is not None:  # a reader of the file must see what the numbers are of
            clean["dataset"] = self.dataset
        merged = {**read_results(self.results_path), **clean}
        with atomic_path(self.results_path) as tmp:
            tmp.write_text(json.dumps(merged, indent=2, allow_nan=False) + "\n")
        return merged

    def upper_bound(self, world, progress: bool = True) -> torch.nn.Module:
        """Chapter 0's supervised model of ``world`` (its training identities), in eval mode.

        Every chapter holds its methods against this one model: the same recipe (the
        profile's supervised settings, from the world-P backbone) and the same cache file,
        so no chapter can silently train a different "upper bound". The first call trains
        it (and caches it under ``cache_dir``); later calls read the cache. The profile's
        epoch count is the plateau of the validation mAP (``benchmarks/upper_bound_epochs.py``)
        and the weights kept are those of the best validation epoch, never a test score.
        """
        return self._upper_bound(world, progress)[0].eval()

    def upper_bound_run(self, world, progress: bool = True) -> tuple[torch.nn.Module, History]:
        """:meth:`upper_bound` and its training :class:`~reidlib.training.loop.History`
        (losses and validation mAP per epoch) from one read of the cache (trains first if
        the cache has no model)."""
        model, history = self._upper_bound(world, progress)
        return model.eval(), history

    def _upper_bound(self, world, progress: bool):
        from reidlib.training.supervised import train_or_load

        p = self.profile
        return train_or_load(world.train, arch=p.arch, cache_dir=self.cache_dir,
                             epochs=p.epochs, p=p.p, k=p.k, lr=p.lr, weights="synthetic",
                             device=self.device, progress=progress_enabled(progress))

    def score(self, model: torch.nn.Module, world, flip: bool = True,
              camera_norm: bool = True) -> dict:
        """mAP, rank-1 and mINP of ``model`` on ``world``'s test split (Market-1501 rules).

        The one test-set scorer of the course, with the same test-time options for every
        model a chapter compares (the upper bound included): features of the image and its
        mirror image averaged (``flip``) and, with ``camera_norm``, each camera's mean and
        scale removed from query and gallery features together (survey §3.3; it uses camera
        ids, never identities). Report only: choose nothing on these numbers.
        """
        from reidlib.training.features import extract_features
        from reidlib.training.loop import score_features

        qf = extract_features(model, world.query, flip=flip, progress=False)
        gf = extract_features(model, world.gallery, flip=flip, progress=False)
        result = score_features(qf, gf, world.query, world.gallery, camera_norm=camera_norm)
        return {"mAP": float(result["mAP"]), "rank1": float(result["cmc"][0]),
                "mINP": float(result["mINP"])}


def setup(chapter: str, seed: int = 0, profile: str | None = None) -> Session:
    """Prepare a notebook: profile, device, seeds, plot style, torch threads; print one line.

    ``chapter`` names the results file: a chapter's two-digit number ("00"), an
    exercise's number after "ex" ("ex00"); the course runner reads them by these names.
    ``profile`` defaults to ``$REID_PROFILE``, else the machine default (see
    ``reidlib.profiles.get_profile``); an unknown name raises a ValueError listing the
    valid ones.
    ``$REID_DATASET`` (``market1501:PATH``, ...; a relative PATH is taken from the
    repository root) becomes ``session.dataset``, which ``session.world("A")`` loads in
    place of world A; an invalid one raises a ValueError listing the valid forms.
    """
    if not isinstance(chapter, str) or not _CHAPTER_NAME.fullmatch(chapter):
        raise ValueError(
            f"chapter must be a short name of letters, digits, '-' or '_' such as '00', "
            f"got {chapter!r}"
        )
    chosen = get_profile(profile)
    device = default_device()
    seed_everything(seed)
    set_torch_threads()
    set_plot_style()
    root = find_repo_root()
    dataset = os.environ.get(DATASET_VARIABLE, "").strip() or None
    if dataset is not None:  # a bad spec fails here, before anything is written
        kind, path = _parse_real_dataset(dataset)
        # relative to the repository root, where `make course` is typed (kernels run elsewhere)
        dataset = f"{kind}:{path if path.is_absolute() else (root / path).resolve()}"
    session = Session(
        chapter=chapter,
        profile=chosen,
        device=device,
        seed=seed,
        cache_dir=_env_path("REID_CACHE", root / "data" / "cache"),
        results_dir=_env_path("REID_BUILD", root / "build") / "results",
        dataset=dataset,
    )
    print(
        f"chapter {chapter} | profile {chosen.name} | device {device} | torch {torch.__version__}"
        + (f" | dataset {session.dataset}" if session.dataset else "")
    )
    return session


def read_results(path: str | os.PathLike) -> dict:
    """The numbers recorded in one results file; ``{}`` when it does not exist yet."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to start afresh") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object of named numbers, not {type(data)}")
    return data


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The folder whose ``pyproject.toml`` names the ``reidlib`` project.

    Looked for upwards from ``start`` (default: the current folder, which is
    ``notebooks/`` under Jupyter), then upwards from this package (an editable or
    source checkout); the current folder when neither finds it (an installed wheel).
    """
    here = Path(start or Path.cwd()).resolve()
    package_parent = Path(__file__).resolve().parent.parent
    for base in (here, package_parent):
        for folder in (base, *base.parents):
            if _is_reidlib_project(folder / "pyproject.toml"):
                return folder
    return here


def set_torch_threads() -> int:
    """Use every core this process may run on, unless ``OMP_NUM_THREADS`` says otherwise.

    torch counts the host's cores, which in a container or under a CPU quota can be far
    more than the cores granted, and oversubscribed threads run slower than fewer ones.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # the user chose; torch already honours it
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores))
    return torch.get_num_threads()


def set_plot_style(figsize: tuple[float, float] = (7.0, 4.0)) -> None:
    """One look for every figure of the course (seaborn's whitegrid, a modest size)."""
    import matplotlib.pyplot as plt  # imported here: plotting is not needed to import reidlib
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams["figure.figsize"] = figsize
    plt.rcParams["figure.dpi"] = 100
    plt.rcParams["axes.titlesize"] = "medium"


def _parse_real_dataset(spec: str) -> tuple[str, Path]:
    """``(kind, path)`` of a real release named by ``$REID_DATASET``; a ValueError otherwise.

    The synthetic forms of ``--dataset`` are refused: the chapters render their worlds
    themselves, so ``$REID_DATASET`` only ever names a real layout.
    """
    from reidlib.recipes.datasets import LAYOUTS, parse_dataset

    try:
        kind, path = parse_dataset(spec)
    except ValueError:
        kind = None
    if kind not in LAYOUTS:
        forms = ", ".join(f"{name}:PATH" for name in LAYOUTS)
        raise ValueError(f"${DATASET_VARIABLE}={spec!r}: expected a real dataset as one of "
                         f"{forms} (leave it unset for the course's synthetic world)")
    return kind, path


def _path_tag(path: Path) -> str:
    """A short, file-name-safe tag of a dataset folder: its name and a hash of its path."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", path.name).strip("-") or "root"
    return f"{name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def _env_path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def _is_reidlib_project(pyproject: Path) -> bool:
    if not pyproject.is_file():
        return False
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: a line scan is enough for one name
        text = pyproject.read_text(errors="replace")
        return re.search(r'^name\s*=\s*"reidlib"\s*$', text, re.MULTILINE) is not None
    try:
        data = tomllib.loads(pyproject.read_text(errors="replace"))
    except tomllib.TOMLDecodeError:
        return False
    return data.get("project", {}).get("name") == "reidlib"


def _plain_value(key: str, value, _count: list[int] | None = None):
    """``value`` as JSON-ready Python, or a clear error saying what record() accepts."""
    count = [0] if _count is None else _count
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list | tuple):
        return [_plain_value(key, item, count) for item in value]
    count[0] += 1
    if count[0] > MAX_RECORD_ITEMS:
        raise ValueError(
            f"record(): {key!r} holds more than {MAX_RECORD_ITEMS} values; results files hold "
            "headline numbers; save arrays under session.cache_dir instead"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"record(): {key!r} is {value}; results hold finite numbers only")
    if isinstance(value, bool | int | float | str):
        return value
    hint = (
        " (call .item() or .tolist() first)" if isinstance(value, torch.Tensor | np.ndarray) else ""
    )
    raise TypeError(
        f"record(): {key!r} is a {type(value).__name__}{hint}; expected a number, a string, "
        "a boolean or a short list of them"
    )
