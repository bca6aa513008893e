"""``python -m bench.format_probe``: how far format alone goes, the standing control of the image expert.

A detector can look good by reading the container instead of the pixels: in the harvest most fakes
are PNG (or WebP) and most photos camera JPEGs with EXIF; the old generated-image expert's
margin on ../shared/realworld was mostly PNG against JPEG (issue 22). This probe trains the same
kind of classifier as the image expert's head (a standardised, L2-regularised logistic regression)
on *format features only* (:func:`format_features`: dimensions, aspect, pixels, bytes per pixel,
PNG / JPEG / WebP / other, the JPEG quantisation tables' summary and estimated quality, chroma
subsampling, EXIF and ICC presence), never on pixels. Its AUC, on the same splits, is printed
beside the detector's on every evaluation set (``deepscan.training.expert_image`` evaluation and
``bench/generated_image.py``): a detector's figure means something only where it clearly exceeds
the probe's, or where the probe is near 0.5.

Run as a module it reads the harvest manifests and ../shared/realworld and prints the probe's
cross-validated AUC (grouped by source page) and its realworld AUC when trained on the harvest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["FEATURE_NAMES", "format_features", "fit_probe", "probe_scores", "main"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

from deepscan.training.expert_image import FORMAT_FEATURE_NAMES as FEATURE_NAMES  # noqa: E402,F401
from deepscan.training.expert_image import format_features  # noqa: E402,F401

def fit_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    """The probe: standardisation then L2 logistic regression (C = 1), balanced classes.

    Parameters
    ----------
    features : np.ndarray
        ``(N, F)`` format features.
    labels : np.ndarray
        ``(N,)`` 1 = fake.
    seed : int

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted; ``decision_function`` gives its scores.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000,
                                                               random_state=seed))
    return probe.fit(features, labels)


def probe_scores(train_x, train_y, test_x, seed: int = 0) -> np.ndarray:
    """Fit the probe on one set, score another (a constant when training lacks a class)."""
    train_y = np.asarray(train_y)
    if train_y.min() == train_y.max():
        return np.zeros(len(test_x))
    return fit_probe(np.asarray(train_x), train_y, seed).decision_function(np.asarray(test_x))


def main(argv=None) -> int:
    from deepscan.labelled import read_manifest
    from deepscan.metrics import bootstrap_metric

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harvest", action="append", default=None,
                        help="MANIFEST.tsv[:ROOT] of harvested images (repeatable; default: the shared starter "
                             "harvest and data/harvest/image with /work/harvest-ext/image)")
    parser.add_argument("--realworld", default=str(SHARED / "realworld" / "MANIFEST.tsv"))
    args = parser.parse_args(argv)
    specs = args.harvest or [str(SHARED / "harvest" / "image" / "MANIFEST.tsv"),
                             f"{ROOT / 'data/harvest/image/MANIFEST.tsv'}:/work/harvest-ext/image"]
    files = []
    for spec in specs:
        manifest, _, root = spec.partition(":")
        files += [f for f in read_manifest(manifest, root or None) if f.kind == "image" and f.exists]
    x = np.stack([format_features(f.path) for f in files])
    y = np.array([f.label for f in files])
    groups = np.array([f.group for f in files])
    from sklearn.model_selection import StratifiedGroupKFold

    oof = np.zeros(len(files))
    for train, test in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(x, y, groups):
        oof[test] = probe_scores(x[train], y[train], x[test])
    value, lo, hi = bootstrap_metric(y, oof, groups)
    out = {"harvest_grouped_5fold": {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)],
                                     "n_real": int((y == 0).sum()), "n_fake": int(y.sum())}}
    if Path(args.realworld).is_file():
        rw = [f for f in read_manifest(args.realworld) if f.kind == "image" and f.exists]
        rx = np.stack([format_features(f.path) for f in rw])
        ry = np.array([f.label for f in rw])
        scores = probe_scores(x, y, rx)
        value, lo, hi = bootstrap_metric(ry, scores, np.array([f.group for f in rw]))
        out["realworld"] = {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)],
                            "n_real": int((ry == 0).sum()), "n_fake": int(ry.sum())}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
