"""What a synthetic world is made of: domains, sizes and the attribute vocabulary.

A *domain* (a "world") fixes the clothing palette, the season (which garments are
likely) and the camera network's style. Two course worlds, ``A`` (summer, six
cameras, warm light) and ``B`` (winter, eight cameras, cold light and darker clothes),
make the domain gap of survey challenge 4 (§3.4) real; ``P`` is a separate world used
only to pretrain the generic backbone (no identity is shared with ``A`` or ``B``).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def get_size(profile: str) -> WorldSize:
    try:
        return SIZES[profile]
    except KeyError:
        raise ValueError(
            f"unknown profile {profile!r} for a world: expected one of {', '.join(SIZES)}"
        ) from None
