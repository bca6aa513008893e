"""Evaluating a detector checkpoint on a labelled data set, and fitting its threshold.

Files are scored exactly as ``deepscan check`` scores them: window log-odds from the detector,
divided by the checkpoint's temperature, averaged per file (:func:`deepscan.results.aggregate_windows`),
then ``p_fake = sigmoid``. Metrics come from :mod:`deepscan.metrics` (scikit-learn):
AUC, EER, AP, accuracy and confusion at the checkpoint's threshold, ECE (Guo et al., ICML 2017),
overall and per fake kind (each kind against all reals).
"""

from __future__ import annotations

import os
import numpy as np

from deepscan import metrics
from deepscan.model import check_encoders, load_detector, read_metadata, with_threshold
from deepscan.training.data import DataSet, FeatureStore, build_samples
from deepscan.training.train import evaluate_samples

__all__ = ["expected_encoders", "evaluate_detector", "fit_threshold"]


def expected_encoders(extractors) -> dict:
    """``{m: {"id", "dim"}}`` of the loaded extractors, as ``check`` compares them with a checkpoint."""
    return {m: {"id": extractors.config[m]["id"], "dim": int(extractors.config[m]["dim"])} for m in ("image", "audio")}


def evaluate_detector(detector: str | os.PathLike, dataset: DataSet, store: FeatureStore, split: str = "test",
                      progress=None) -> tuple[dict, list]:
    """Load a checkpoint (refusing other encoders, as ``check``) and evaluate it on a split.

    Parameters
    ----------
    detector : str or os.PathLike
        Checkpoint file.
    dataset : DataSet
    store : FeatureStore
        Its extractors must be those the detector was trained on.
    split : str
        ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
    progress : callable(done, total), optional

    Returns
    -------
    (dict, list)
        The metrics of :func:`evaluate_samples` with ``split`` and ``detector`` added, and the samples.

    Raises
    ------
    CheckpointError, CheckpointMismatchError
        For a bad checkpoint or one trained on other encoders.
    ValueError
        When the split holds no file.
    """
    checkpoint = read_metadata(detector)
    expected = expected_encoders(store.extractors)
    check_encoders(checkpoint, expected)
    model, checkpoint = load_detector(detector, expected_encoders=expected)
    sampling = checkpoint.sampling or {}
    if (float(sampling.get("window_s", store.window_s)), float(sampling.get("visual_fps", store.visual_fps))) != (
            store.window_s, store.visual_fps):
        raise ValueError(f"the store samples {store.sampling} but the detector was trained with {sampling}")
    splits = ("train", "val", "test") if split == "all" else (split,)
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"split must be train, val, test or all, not {split!r}")
    samples = build_samples(dataset, store, splits=splits, progress=progress)
    result = evaluate_samples(model, checkpoint, samples)
    result["split"] = split
    result["detector"] = {"name": checkpoint.name, "sha256": checkpoint.sha256, "trained_on": checkpoint.trained_on,
                          "synthetic": checkpoint.is_synthetic}
    return result, samples


def fit_threshold(detector: str | os.PathLike, out: str | os.PathLike, result: dict, target_fpr: float) -> float:
    """Write a copy of the checkpoint whose threshold gives at most ``target_fpr`` on the evaluated files.

    Parameters
    ----------
    detector, out : str or os.PathLike
        Source checkpoint and the copy to write.
    result : dict
        :func:`evaluate_detector`'s metrics (its ``files`` give labels and ``p_fake``).
    target_fpr : float
        In [0, 1].

    Returns
    -------
    float
        The threshold written.

    Raises
    ------
    ValueError
        When ``target_fpr`` is outside [0, 1] or no real file was evaluated.
    """
    labels = np.array([1 if f["label"] == "fake" else 0 for f in result["files"]])
    p = np.array([f["p_fake"] for f in result["files"]])
    threshold = metrics.threshold_at_fpr(labels, p, target_fpr)
    with_threshold(detector, out, threshold)
    return threshold
