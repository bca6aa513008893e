"""Detection metrics in one place: AUC, EER, AP, accuracy, ECE, calibration, thresholds, intervals.

Labels are 1 for fake, 0 for real; scores are ``p_fake`` in [0, 1] or log-odds. Curves and areas
come from scikit-learn (no hand-rolled ROC). :func:`bootstrap_metric` and :func:`bootstrap_metrics`
give a metric with a percentile bootstrap interval, resampling whole pairs (Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993), so that the real and fake versions of one source stay
together. ECE follows Guo et al., "On Calibration of Modern Neural Networks", ICML 2017. Training and
evaluation both use this module; it imports nothing from deepscan.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, roc_auc_score, roc_curve

__all__ = ["ECE_BINS", "BOOTSTRAP_ROUNDS", "CONFIDENCE", "METRICS", "CUE_THRESHOLD", "equal_error_rate",
           "eer_from_roc", "expected_calibration_error", "fit_temperature", "threshold_at_fpr", "detection_metrics",
           "auc", "average_precision", "bootstrap_metric", "bootstrap_metrics", "detection_values"]

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate: the point of the ROC curve where false positive and false negative rates meet.

    Parameters
    ----------
    labels : np.ndarray
        int ``(N,)``, 1 = fake, 0 = real; both classes present.
    scores : np.ndarray
        float ``(N,)``, higher = more likely fake.

    Returns
    -------
    eer : float
        In [0, 1], interpolated linearly between the two ROC points that bracket FPR = FNR.
    threshold : float
        The score threshold at that point.

    Raises
    ------
    ValueError
        When only one class is present.
    """
    return eer_from_roc(*roc_curve(labels, scores))


def eer_from_roc(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """:func:`equal_error_rate` from a ROC curve that :func:`sklearn.metrics.roc_curve` already gave.

    Parameters
    ----------
    fpr, tpr, thresholds : np.ndarray
        ``roc_curve``'s outputs, in its order.

    Returns
    -------
    eer : float
        In [0, 1].
    threshold : float
        The score threshold at that point.
    """
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    # interpolate between i and its neighbour on the other side of the crossing
    j = i + 1 if i + 1 < len(fpr) and (fnr[i] - fpr[i]) * (fnr[i + 1] - fpr[i + 1]) <= 0 else max(i - 1, 0)
    d_i, d_j = fnr[i] - fpr[i], fnr[j] - fpr[j]
    w = 0.0 if d_i == d_j else d_i / (d_i - d_j)
    eer = float(fpr[i] + w * (fpr[j] - fpr[i]))
    return eer, float(thresholds[i])


def expected_calibration_error(labels: np.ndarray, p_fake: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the binary prediction (confidence of the predicted class).

    Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017, eq. 3:
    ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over equal-width confidence bins.

    Parameters
    ----------
    labels : np.ndarray
        int ``(N,)``, 1 = fake.
    p_fake : np.ndarray
        float ``(N,)`` probabilities of fake.
    n_bins : int
        Number of equal-width bins over [0, 1] (bins below 0.5 stay empty for a binary task).

    Returns
    -------
    float
        ECE in [0, 1].
    """
    labels = np.asarray(labels).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    predicted = (p_fake >= 0.5).astype(int)
    confidence = np.where(predicted == 1, p_fake, 1.0 - p_fake)
    correct = (predicted == labels).astype(np.float64)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """Temperature scaling: the ``T > 0`` that minimises the log loss of ``sigmoid(logit / T)``.

    Guo et al., ICML 2017, section 4.2, for a binary detector whose log-odds are ``logit``.

    Parameters
    ----------
    labels : np.ndarray
        int ``(N,)``, 1 = fake.
    logits : np.ndarray
        float ``(N,)`` uncalibrated log-odds of fake.

    Returns
    -------
    float
        The temperature, searched in [0.05, 20] (log scale).
    """
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))

    found = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(found.x))


def threshold_at_fpr(labels: np.ndarray, p_fake: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold on ``p_fake`` whose false positive rate is at most ``target_fpr``.

    Parameters
    ----------
    labels : np.ndarray
        int ``(N,)``, 1 = fake; at least one real.
    p_fake : np.ndarray
        float ``(N,)``.
    target_fpr : float
        In [0, 1].

    Returns
    -------
    float
        Threshold in [0, 1]; a file is fake when ``p_fake >= threshold``.

    Raises
    ------
    ValueError
        When ``target_fpr`` is outside [0, 1] or there are no real samples.
    """
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target FPR must be in [0, 1], not {target_fpr}")
    labels = np.asarray(labels).astype(int)
    real = np.sort(np.asarray(p_fake, dtype=np.float64)[labels == 0])
    if real.size == 0:
        raise ValueError("fitting a threshold at a false positive rate needs real samples")
    allowed = int(math.floor(target_fpr * real.size + 1e-9))  # real files that may score >= threshold
    if allowed >= real.size:
        return 0.0
    # threshold just above the (allowed+1)-th highest real score
    return float(min(1.0, np.nextafter(real[real.size - allowed - 1], np.inf)))


def detection_metrics(labels, p_fake, threshold: float = 0.5) -> dict:
    """AUC, EER, AP, accuracy at the threshold, confusion matrix and ECE.

    Parameters
    ----------
    labels : array-like
        int ``(N,)``, 1 = fake, 0 = real.
    p_fake : array-like
        float ``(N,)`` calibrated probabilities of fake.
    threshold : float
        Decision threshold: fake when ``p_fake >= threshold``.

    Returns
    -------
    dict
        ``auc``, ``eer``, ``eer_threshold``, ``ap`` (None when one class is absent), ``accuracy``,
        ``ece``, ``threshold``, ``n_real``, ``n_fake``, ``confusion`` (``{"tn","fp","fn","tp"}``),
        ``fpr`` and ``fnr`` at the threshold.
    """
    labels = np.asarray(labels).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    predicted = (p_fake >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    out = {
        "n_real": n_real, "n_fake": n_fake, "threshold": float(threshold),
        "accuracy": float(accuracy_score(labels, predicted)) if labels.size else None,
        "ece": expected_calibration_error(labels, p_fake) if labels.size else None,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "fpr": fp / n_real if n_real else None, "fnr": fn / n_fake if n_fake else None,
        "auc": None, "eer": None, "eer_threshold": None, "ap": None,
    }
    if n_real and n_fake:
        out["auc"] = float(roc_auc_score(labels, p_fake))
        out["eer"], out["eer_threshold"] = equal_error_rate(labels, p_fake)
        out["ap"] = float(average_precision_score(labels, p_fake))
    return out


BOOTSTRAP_ROUNDS = 2000  # resamples per interval
CONFIDENCE = 0.95
METRICS = ("auc", "eer", "ap", "accuracy", "ece")  # what score_table gives for every scorer, with intervals
# A cue's own decision threshold for accuracy: each expert's p_fake is a probability (softmax or sigmoid).
CUE_THRESHOLD = 0.5


def auc(labels, scores) -> float:
    """ROC AUC (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.min(initial=1) == labels.max(initial=0):
        return float("nan")
    return float(roc_auc_score(labels, scores))


def average_precision(labels, scores) -> float:
    """Average precision (scikit-learn) with fake as the positive class; NaN without a fake."""
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels)
    if labels.max(initial=0) == 0:
        return float("nan")
    return float(average_precision_score(labels, scores))


def bootstrap_metric(labels, scores, groups=None, metric: Callable = auc, rounds: int = BOOTSTRAP_ROUNDS,
                     seed: int = 0) -> tuple[float, float, float]:
    """A metric with a percentile bootstrap interval, resampling whole groups (pairs).

    Parameters
    ----------
    labels : array-like of int
        ``(N,)`` 1 = fake, 0 = real.
    scores : array-like of float
        ``(N,)`` higher = more likely fake.
    groups : array-like, optional
        ``(N,)`` group (pair) of each file; resampled as units. Default: each file its own group.
    metric : callable(labels, scores) -> float
        :func:`auc` by default.
    rounds : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.

    Returns
    -------
    (float, float, float)
        The metric on all files, and the 2.5 and 97.5 percentiles over resamples (NaN resamples,
        with one class only, are left out).

    Raises
    ------
    ValueError
        If the inputs differ in length or are empty.
    """
    labels, scores = _checked(labels, scores)
    values = []
    for rows in _resampled_rows(labels.size, groups, rounds, seed):
        value = metric(labels[rows], scores[rows])
        if not np.isnan(value):
            values.append(value)
    return (metric(labels, scores), *_percentile_interval(values))


def _checked(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.size == 0:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be non-empty and of one length")
    return labels, scores


def _resampled_rows(n: int, groups, rounds: int, seed: int):
    """Row indices of each bootstrap resample: whole groups (pairs) drawn with replacement."""
    groups = np.arange(n) if groups is None else np.asarray(groups)
    names, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        yield np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])


def _percentile_interval(values: list) -> tuple[float, float]:
    """The :data:`CONFIDENCE` percentile interval of resampled values (NaN, NaN without any)."""
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def _threshold_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives at each distinct score taken as threshold, highest first (scikit-learn).

    ``sklearn.metrics.confusion_matrix_at_thresholds`` (scikit-learn >= 1.8), else the same counts
    from ``roc_curve(drop_intermediate=False)``: one pass gives the ROC and the precision-recall curve.
    """
    try:
        from sklearn.metrics import confusion_matrix_at_thresholds
    except ImportError:  # scikit-learn < 1.8
        from sklearn.metrics import roc_curve

        fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
        return fpr[1:] * (labels == 0).sum(), tpr[1:] * (labels == 1).sum(), thresholds[1:]
    _, fps, _, tps, thresholds = confusion_matrix_at_thresholds(labels, scores)
    return fps, tps, thresholds


def detection_values(labels, scores, threshold=CUE_THRESHOLD) -> dict:
    """AUC, EER, AP, accuracy at a threshold and ECE of one set of scores, from scikit-learn's curve.

    One call to scikit-learn counts false and true positives at every threshold
    (``confusion_matrix_at_thresholds``, which ``roc_curve`` and ``precision_recall_curve`` are built
    on); the ROC curve is those counts over the class totals, AUC its trapezoidal area
    (:func:`sklearn.metrics.auc`, as ``roc_auc_score`` does), EER where it crosses FPR = FNR
    (:func:`eer_from_roc`), AP ``sum (R_n - R_n-1) P_n`` as
    ``average_precision_score`` defines it; ECE is
    :func:`expected_calibration_error` (15 equal-width bins). One call
    instead of three matters in the bootstrap, where scikit-learn's input checks are most of the cost.

    Parameters
    ----------
    labels : array-like of int
        ``(N,)`` 1 = fake, 0 = real.
    scores : array-like of float
        ``(N,)`` in [0, 1], higher = more likely fake.
    threshold : float or array-like of float
        Fake when ``score >= threshold``; one per file where thresholds differ (a detector with one
        threshold per media kind).

    Returns
    -------
    dict
        ``{"auc", "eer", "ap", "accuracy", "ece"}``; all NaN when only one class is present.
    """
    from sklearn.metrics import auc as area


    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.size == 0 or labels.min() == labels.max():
        return dict.fromkeys(METRICS, float("nan"))
    fps, tps, thresholds = _threshold_counts(labels, scores)
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    precision = tps / (tps + fps)
    return {"auc": float(area(fpr, tpr)), "eer": eer_from_roc(fpr, tpr, np.r_[np.inf, thresholds])[0],
            "ap": float(np.sum(np.diff(tpr) * precision)),
            "accuracy": float(np.mean((scores >= np.asarray(threshold, dtype=np.float64)) == labels)),
            "ece": expected_calibration_error(labels, scores)}


def bootstrap_metrics(labels, scores, groups=None, threshold=CUE_THRESHOLD, rounds: int = BOOTSTRAP_ROUNDS,
                      seed: int = 0) -> dict:
    """Every metric of :func:`detection_values` with a percentile bootstrap interval over groups (pairs).

    The resamples are drawn as :func:`bootstrap_metric` draws them (same seed, same groups: the same
    resamples), and one resample serves every metric.

    Parameters
    ----------
    labels, scores : array-like
        ``(N,)`` as :func:`detection_values`.
    groups : array-like, optional
        ``(N,)`` pair of each file, resampled as units; default: each file its own group.
    threshold : float or array-like of float
        As :func:`detection_values` (per-file thresholds are resampled with their files).
    rounds, seed : int
        Resamples and their seed.

    Returns
    -------
    dict
        Metric -> ``(value on all files, 2.5th percentile, 97.5th percentile)``; resamples holding one
        class only are left out, and a metric without resamples has NaN bounds.

    Raises
    ------
    ValueError
        If the inputs differ in length or are empty.
    """
    import sklearn

    labels, scores = _checked(labels, scores)
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), labels.shape)
    values: dict = {m: [] for m in METRICS}
    # the inputs are checked above: skip scikit-learn's per-call validation (most of its cost on small sets)
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for rows in _resampled_rows(labels.size, groups, rounds, seed):
            for name, value in detection_values(labels[rows], scores[rows], threshold[rows]).items():
                if not np.isnan(value):
                    values[name].append(value)
        point = detection_values(labels, scores, threshold)
    return {name: (point[name], *_percentile_interval(values[name])) for name in METRICS}
