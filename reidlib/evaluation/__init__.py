"""Evaluation (course chapter 0, survey §4.2): distances, mAP / CMC / mINP, re-ranking."""

from reidlib.evaluation.distance import pairwise_distance
from reidlib.evaluation.metrics import evaluate
from reidlib.evaluation.rerank import re_ranking

__all__ = ["evaluate", "pairwise_distance", "re_ranking"]
