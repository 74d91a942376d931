"""The embedded synthetic multi-camera world (docs/course_plan.md, "The synthetic world")."""

from reidlib.data.synthetic.export import export_market1501
from reidlib.data.synthetic.spec import DOMAINS, SIZES
from reidlib.data.synthetic.style import camera_colour_gap
from reidlib.data.synthetic.world import World, build_world, load_world

__all__ = [
    "DOMAINS",
    "SIZES",
    "World",
    "build_world",
    "camera_colour_gap",
    "export_market1501",
    "load_world",
]
