"""Detection metrics, calibration and threshold choice, on top of scikit-learn.

Labels are 1 for fake, 0 for real; scores are ``p_fake`` in [0, 1] or log-odds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, roc_auc_score, roc_curve

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
