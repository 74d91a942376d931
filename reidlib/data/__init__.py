"""Data for the course: the synthetic world, real-dataset readers, image sets and samplers."""

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.data.records import Record

__all__ = ["ImageSet", "ReidSplits", "Record"]
