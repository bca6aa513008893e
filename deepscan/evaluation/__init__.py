"""Evaluation: how well a detector, an expert or a cue tells real from fake on labelled media.

:mod:`deepscan.evaluation.media` scans labelled media as ``deepscan check`` does and tabulates every
scorer per kind, method and subset with intervals (``deepscan evaluate``, ``python -m bench.quality``);
:mod:`deepscan.evaluation.detector` evaluates a trained detector checkpoint over cached features and
fits its threshold (``deepscan train --evaluate``). Labelled media are read by
:mod:`deepscan.labelled`, metrics computed by :mod:`deepscan.metrics`; the names of both are
re-exported here, where earlier versions had them.
"""

from __future__ import annotations

from deepscan.evaluation.media import evaluate_media, result_scores, score_table, verdict_counts
from deepscan.labelled import (
    KNOWN_DATA_SETS, MANIFEST_NAME, REALWORLD, KnownDataSet, LabelledFile, LabelledSet, pair_subsets, parse_subsets,
    read_folder, read_labelled, read_manifest,
)
from deepscan.metrics import (
    BOOTSTRAP_ROUNDS, CONFIDENCE, CUE_THRESHOLD, METRICS, auc, average_precision, bootstrap_metric, bootstrap_metrics,
    detection_values,
)

__all__ = ["LabelledFile", "LabelledSet", "KnownDataSet", "KNOWN_DATA_SETS", "REALWORLD", "read_manifest",
           "read_folder", "read_labelled", "parse_subsets", "pair_subsets", "bootstrap_metric", "bootstrap_metrics",
           "detection_values", "score_table", "result_scores", "verdict_counts", "evaluate_media", "auc", "average_precision",
           "BOOTSTRAP_ROUNDS", "CONFIDENCE", "METRICS", "CUE_THRESHOLD", "MANIFEST_NAME"]
