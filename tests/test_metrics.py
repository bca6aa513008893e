"""Metrics, calibration and threshold choice against independent computations."""

import numpy as np
import pytest

from deepscan.metrics import (
    detection_metrics, equal_error_rate, expected_calibration_error, fit_temperature, threshold_at_fpr,
)


def test_perfect_separation_gives_auc_one_and_zero_eer():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    m = detection_metrics(labels, scores, threshold=0.5)
    assert m["auc"] == 1.0 and m["ap"] == 1.0 and m["eer"] == 0.0
    assert m["accuracy"] == 1.0
    assert m["confusion"] == {"tn": 3, "fp": 0, "fn": 0, "tp": 3}


def test_eer_of_random_scores_is_near_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    eer, _ = equal_error_rate(labels, rng.random(4000))
    assert abs(eer - 0.5) < 0.05


def test_eer_matches_brute_force_crossing():
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(300), np.ones(300)].astype(int)
    scores = np.r_[rng.normal(0, 1, 300), rng.normal(1.5, 1, 300)]
    eer, _ = equal_error_rate(labels, scores)
    grid = np.sort(scores)
    fpr = np.array([(scores[labels == 0] >= t).mean() for t in grid])
    fnr = np.array([(scores[labels == 1] < t).mean() for t in grid])
    brute = fpr[np.argmin(np.abs(fpr - fnr))]
    assert abs(eer - brute) < 0.01


def test_threshold_at_fpr_respects_target():
    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(1000), np.ones(200)].astype(int)
    p = np.r_[rng.beta(2, 5, 1000), rng.beta(5, 2, 200)]
    for target in (0.0, 0.01, 0.05, 0.2):
        t = threshold_at_fpr(labels, p, target)
        fpr = (p[labels == 0] >= t).mean()
        assert fpr <= target + 1e-12
        # the next lower real score would exceed the target: the threshold is as low as allowed
        lower = np.sort(p[labels == 0])[::-1][int(np.floor(target * 1000))]
        assert t > lower and (p[labels == 0] >= lower).mean() > target
    with pytest.raises(ValueError):
        threshold_at_fpr(labels, p, 1.5)


def test_ece_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 200_000)
    labels = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert expected_calibration_error(labels, p) < 0.01
    overconfident = np.where(p >= 0.5, 0.999, 0.001)
    assert expected_calibration_error(labels, overconfident) > 0.2


def test_temperature_recovers_known_scaling():
    rng = np.random.default_rng(4)
    true_logits = rng.normal(0, 2, 50_000)
    labels = (rng.uniform(size=true_logits.size) < 1 / (1 + np.exp(-true_logits))).astype(int)
    t = fit_temperature(labels, true_logits * 3.0)  # overconfident by a factor of 3
    assert abs(t - 3.0) < 0.15
