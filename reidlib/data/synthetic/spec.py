"""What a synthetic world is made of: domains, sizes and the attribute vocabulary.

A *domain* (a "world") fixes the clothing palette, the season (which garments are
likely) and the camera network's style. Two course worlds, ``A`` (summer, six
cameras, warm light) and ``B`` (winter, eight cameras, cold light and darker clothes),
make the domain gap of survey challenge 4 (§3.4) real; ``P`` is a separate world used
only to pretrain the generic backbone (no identity is shared with ``A`` or ``B``).
``shifted_domain`` turns that gap into a dial: A or B with its style moved toward the
other's by any amount, its people unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real

import numpy as np

# Attribute vocabulary (stored per identity; used by attribute-based chapters and text queries).
UPPER_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "split", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
BAG_TYPES = ("none", "backpack", "handbag")
HAIR_LENGTHS = ("short", "long")
VIEWPOINTS = ("front", "back", "side")

SKIN_TONES = (
    (0.96, 0.80, 0.69),
    (0.90, 0.72, 0.58),
    (0.78, 0.58, 0.44),
    (0.62, 0.44, 0.32),
    (0.45, 0.31, 0.22),
    (0.33, 0.22, 0.16),
)
HAIR_COLOURS = (
    (0.08, 0.06, 0.05),
    (0.25, 0.16, 0.09),
    (0.48, 0.32, 0.17),
    (0.85, 0.72, 0.45),
    (0.60, 0.60, 0.60),
    (0.55, 0.20, 0.08),
)

SUMMER_PALETTE = (  # bright, saturated
    (0.90, 0.15, 0.15),
    (0.95, 0.55, 0.10),
    (0.95, 0.85, 0.15),
    (0.30, 0.75, 0.20),
    (0.10, 0.55, 0.85),
    (0.55, 0.25, 0.80),
    (0.95, 0.45, 0.70),
    (0.95, 0.95, 0.95),
    (0.15, 0.75, 0.70),
    (0.70, 0.90, 0.35),
    (0.35, 0.35, 0.38),
    (0.85, 0.70, 0.50),
)
WINTER_PALETTE = (  # dark and muted, with a few bright winter accents
    (0.10, 0.12, 0.30),
    (0.06, 0.06, 0.06),
    (0.40, 0.40, 0.42),
    (0.40, 0.24, 0.12),
    (0.55, 0.08, 0.12),
    (0.25, 0.35, 0.12),
    (0.70, 0.62, 0.48),
    (0.20, 0.35, 0.50),
    (0.45, 0.22, 0.40),
    (0.85, 0.85, 0.88),
    (0.05, 0.35, 0.32),
    (0.75, 0.55, 0.10),
)

# Everyday names of the palette colours, for people reading attributes (not used to render).
COLOUR_NAMES = {
    **dict(zip(SUMMER_PALETTE, ("red", "orange", "yellow", "green", "blue", "purple", "pink",
                                "white", "teal", "lime", "grey", "beige"), strict=True)),
    **dict(zip(WINTER_PALETTE, ("navy", "black", "grey", "brown", "maroon", "olive", "beige",
                                "slate blue", "plum", "white", "dark teal", "mustard"),
               strict=True)),
}




def colour_name(rgb: tuple[float, float, float]) -> str:
    """Everyday name of a palette colour; for a mixed colour (``shifted_domain``), the
    name of the nearest named colour (straight-line distance in rgb)."""
    if rgb in COLOUR_NAMES:
        return COLOUR_NAMES[rgb]
    named = list(COLOUR_NAMES)
    dist = ((np.asarray(named) - np.asarray(rgb)) ** 2).sum(1)
    return COLOUR_NAMES[named[int(dist.argmin())]]


@dataclass(frozen=True)
class Domain:
    """The style of one world. Probabilities are per identity unless named per image."""

    name: str
    palette: tuple[tuple[float, float, float], ...] | None  # None: random colours (world P)
    n_cameras: int
    p_lower: tuple[float, float, float]  # trousers, shorts, skirt
    p_pattern: tuple[float, ...]  # over UPPER_PATTERNS: fashion differs between worlds
    p_long_sleeve: float
    p_hat: float
    p_coat: float  # upper garment reaching the thighs (winter)
    p_scarf: float  # a coloured band at the neck (winter)
    light: tuple[float, float, float]  # mean colour of the light (a cast all cameras share)
    light_spread: float  # how much each camera's light departs from the mean (log-gain std)
    brightness: float
    person_height: tuple[float, float]  # range of the person's height in the crop, per camera
    background: tuple[float, float, float]  # mean scene colour
    seed: int  # base seed: identities, cameras and images draw from it


DOMAINS: dict[str, Domain] = {
    "A": Domain(
        "A",
        SUMMER_PALETTE,
        n_cameras=6,
        p_lower=(0.55, 0.30, 0.15),
        p_pattern=(0.15, 0.10, 0.25, 0.05, 0.20, 0.25),
        p_long_sleeve=0.25,
        p_hat=0.10,
        p_coat=0.0,
        p_scarf=0.0,
        light=(1.08, 1.0, 0.88),
        light_spread=0.12,
        brightness=1.0,
        person_height=(0.74, 0.86),
        background=(0.55, 0.52, 0.45),
        seed=11,
    ),
    "B": Domain(
        "B",
        WINTER_PALETTE,
        n_cameras=8,
        p_lower=(0.85, 0.0, 0.15),
        p_pattern=(0.25, 0.30, 0.05, 0.30, 0.10, 0.0),
        p_long_sleeve=0.95,
        p_hat=0.45,
        p_coat=0.4,
        p_scarf=0.6,
        light=(0.88, 0.97, 1.12),
        light_spread=0.12,
        brightness=0.95,
        person_height=(0.84, 0.95),
        background=(0.72, 0.74, 0.78),
        seed=23,
    ),
    "P": Domain(
        "P",
        None,
        n_cameras=5,
        p_lower=(0.6, 0.25, 0.15),
        p_pattern=(1 / 6,) * 6,
        p_long_sleeve=0.5,
        p_hat=0.25,
        p_coat=0.25,
        p_scarf=0.2,
        light=(1.0, 1.0, 1.0),
        light_spread=0.15,
        brightness=0.95,
        person_height=(0.75, 0.95),
        background=(0.5, 0.5, 0.5),
        seed=97,
    ),
}


@dataclass(frozen=True)
class WorldSize:
    """How many people, how many images each, at what resolution."""

    n_train: int
    n_test: int
    n_distractors: int  # gallery-only people, labelled 0 as Market-1501's distractors
    cams_per_id: tuple[int, int]  # inclusive range of cameras one person walks past
    frames_per_visit: tuple[int, int]  # inclusive range of tracklet length
    height: int
    width: int
    junk_fraction: float = 0.02  # gallery crops with no person, labelled -1 (junk)


SIZES: dict[str, WorldSize] = {
    "smoke": WorldSize(60, 60, 10, (2, 3), (2, 3), 64, 32),
    "quick": WorldSize(500, 500, 100, (2, 4), (2, 4), 64, 32),
    "full": WorldSize(750, 750, 200, (2, 6), (3, 6), 256, 128),
}


def get_domain(name: str) -> Domain:
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"unknown world {name!r}: expected one of {', '.join(DOMAINS)}") from None


# The chapter's target world of each course world: B is adapted to A and A to B (§3.4).
PARTNERS = {"A": "B", "B": "A"}
MAX_DOMAIN_GAP = 3.0  # beyond this the extrapolated style is mostly clipping


def _mix(partner, own, gap: float) -> np.ndarray:
    """``(1 - gap) * partner + gap * own``, element by element (exact at gap 0 and 1)."""
    return (1 - gap) * np.asarray(partner, np.float64) + gap * np.asarray(own, np.float64)


def _probabilities(partner, own, gap: float) -> tuple[float, ...]:
    """Mixed probabilities; where extrapolation made one negative, clipped at 0 and
    renormalised to sum 1 (otherwise they already do, and gap 0 keeps the partner's bits)."""
    p = _mix(partner, own, gap)
    if (p < 0).any():
        p = np.clip(p, 0, None)
        p = p / p.sum()
    return _floats(p)


def _floats(x: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in x)


def check_domain_gap(name: str, gap: float) -> float:
    """``gap`` as a float, or a ValueError unless it is a finite number in [0, 3] and
    ``name`` has a partner (only worlds A and B have a gap dial; any world accepts 1)."""
    ok = isinstance(gap, Real) and not isinstance(gap, bool)
    if not ok or not math.isfinite(gap) or not 0 <= gap <= MAX_DOMAIN_GAP:
        raise ValueError(
            f"domain_gap must be a finite number in [0, {MAX_DOMAIN_GAP:g}] (0: the style of "
            f"the target world, 1: the default world, 2: twice the default gap), got {gap!r}"
        )
    get_domain(name)
    if gap != 1 and name not in PARTNERS:
        raise ValueError(
            f"only worlds {' and '.join(PARTNERS)} have a domain-gap dial (each is the other's "
            f"target); world {name!r} takes only domain_gap=1, got {gap!r}"
        )
    return float(gap)


def shifted_domain(name: str, gap: float) -> Domain:
    """World ``name`` with its style ``gap`` of the way from its target's (survey §3.4).

    The domain-gap dial of chapter 4 (issue #14): a source world whose distance to the
    target world ``PARTNERS[name]`` is set by ``gap``. Every numeric style field ``f``
    becomes ``(1 - gap) * f_target + gap * f_own``: 0 gives the target's style, 1 the
    world itself (the very ``Domain`` object, so the default world keeps every bit), above
    1 extrapolates to a stronger shift than B vs A (up to 3).

    What moves: the palette (colour ``i`` with colour ``i``, clipped to [0.02, 1], as
    garment colours are), the season and fashion (``p_lower`` and ``p_pattern`` clipped at
    0 and renormalised; ``p_long_sleeve``, ``p_hat``, ``p_coat``, ``p_scarf`` in [0, 1]),
    the light (colour cast >= 0.05, per-camera spread >= 0, brightness >= 0.05), camera
    distance (``person_height`` in [0.5, 1], low end <= high end), the background colour
    (in [0, 1]) and the number of cameras (rounded, at least 2: a camera network is a
    style of the place, not of the people). What never moves: ``name`` and ``seed``. The
    people are always drawn from the world's own seed, so a shifted B still holds B's
    identities, never A's: a source world shares no one with its target, as in the
    cross-dataset setting of §3.4; only their looks follow the dial.
    """
    gap = check_domain_gap(name, gap)
    own = DOMAINS[name]
    if gap == 1:
        return own
    other = DOMAINS[PARTNERS[name]]
    lo, hi = np.clip(_mix(other.person_height, own.person_height, gap), 0.5, 1.0)
    return replace(
        own,
        palette=tuple(
            _floats(np.clip(_mix(c_other, c_own, gap), 0.02, 1.0))
            for c_other, c_own in zip(other.palette, own.palette, strict=True)
        ),
        n_cameras=max(2, round((1 - gap) * other.n_cameras + gap * own.n_cameras)),
        p_lower=_probabilities(other.p_lower, own.p_lower, gap),
        p_pattern=_probabilities(other.p_pattern, own.p_pattern, gap),
        **{
            key: float(np.clip(_mix(getattr(other, key), getattr(own, key), gap), 0, 1))
            for key in ("p_long_sleeve", "p_hat", "p_coat", "p_scarf")
        },
        light=_floats(np.clip(_mix(other.light, own.light, gap), 0.05, None)),
        light_spread=float(max(0.0, _mix(other.light_spread, own.light_spread, gap))),
        brightness=float(max(0.05, _mix(other.brightness, own.brightness, gap))),
        person_height=(float(min(lo, hi)), float(hi)),
        background=_floats(np.clip(_mix(other.background, own.background, gap), 0, 1)),
    )


def gap_tag(domain_gap: float) -> str:
    """Suffix naming a world's gap setting: empty at 1, so default names never change."""
    return "" if domain_gap == 1 else f"-gap{float(domain_gap)!r}"


def get_size(profile: str) -> WorldSize:
    try:
        return SIZES[profile]
    except KeyError:
        raise ValueError(
            f"unknown profile {profile!r} for a world: expected one of {', '.join(SIZES)}"
        ) from None
