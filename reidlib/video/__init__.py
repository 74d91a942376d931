"""Video and tracklets (course chapter 5; survey §3.2-3.3: TAUDL, UTAL, TSSL, JVTC, TFusion).

- ``benchmark``: the synthetic world as a video benchmark in the MARS protocol, its export
  to the MARS release layout, and tracker noise;
- ``pooling``: tracklet bookkeeping, temporal average and attention pooling, tracklet-level
  evaluation;
- ``tracklet_learning``: tracklets as free positives (UTAL, TAUDL) and clustering on
  tracklets (BUC, any frame clustering);
- ``spatiotemporal``: transit-time histograms from confident matches and their fusion with
  visual similarity (TFusion, st-ReID / JVTC+);
- ``compare``: chapter 5's methods built, trained and scored one way for the notebook and
  the benchmark.

Each module names its paper.
"""

from reidlib.video.benchmark import (
    corrupt_tracklets,
    export_mars,
    mars_name,
    tracklet_purity,
    tracklet_summary,
    video_splits,
)
from reidlib.video.pooling import (
    TemporalAttention,
    evaluate_tracklets,
    evaluate_video,
    fit_temporal_attention,
    temporal_average,
    tracklet_index,
    tracklet_labels,
    tracklet_times,
)
from reidlib.video.spatiotemporal import (
    bayesian_fusion,
    confident_matches,
    joint_similarity,
    rerank_st,
    transit_histograms,
    true_transit_histograms,
)
from reidlib.video.tracklet_learning import (
    TAUDL,
    UTAL,
    association_precision,
    cross_camera_associations,
    tracklet_buc,
    tracklet_classes,
    tracklet_cluster,
)

__all__ = [
    "TAUDL",
    "UTAL",
    "TemporalAttention",
    "association_precision",
    "bayesian_fusion",
    "confident_matches",
    "corrupt_tracklets",
    "cross_camera_associations",
    "evaluate_tracklets",
    "evaluate_video",
    "export_mars",
    "fit_temporal_attention",
    "joint_similarity",
    "mars_name",
    "rerank_st",
    "temporal_average",
    "tracklet_buc",
    "tracklet_classes",
    "tracklet_cluster",
    "tracklet_index",
    "tracklet_labels",
    "tracklet_purity",
    "tracklet_summary",
    "tracklet_times",
    "transit_histograms",
    "true_transit_histograms",
    "video_splits",
]
