"""One record type for every dataset: an image path with its person and camera.

Conventions follow the official protocols: ``pid == -1`` marks junk images (ignored in
evaluation) and ``pid == 0`` marks distractors in Market-1501-style galleries. Video
datasets also fill ``tracklet`` and ``frame``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    path: str
    pid: int
    camid: int
    tracklet: int = -1
    frame: int = -1
