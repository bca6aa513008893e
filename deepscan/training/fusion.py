"""Train the shipped cue-fusion detector on the harvest: scan, collect cues, fit per kind, calibrate.

1. Every harvest file on disk is scanned as ``deepscan check`` scans it, with every expert
   (``experts="auto"``) and no encoders (:func:`collect_cues`): each file gives its media kind and its
   file-level cues.
2. Cues of the learned experts were fitted on these same files: their in-sample scores would be
   over-trusted. Where a learned expert's training wrote out-of-fold scores
   (``bench/results/<cue>_oof.json``: ``{sha256: p_fake}``), those replace the scanned ones; a learned
   cue without them is left out of the fusion (it stays in the output as a cue of its own).
3. Per media kind, a logistic regression on :func:`deepscan.model.fusion.cue_features`
   (scikit-learn, L2) is scored out of fold with folds grouped by source page, so that no page is on
   both sides (:func:`fit_fusion`); the out-of-fold scores give the kind's AUC, EER, AP and ECE and the
   threshold at the target false positive rate; the final model is refitted on all files.

Nothing here reads ../shared/realworld.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from deepscan.evaluation import LabelledFile, read_manifest
from deepscan.model.fusion import FusionDetector, KindModel, cue_features

__all__ = ["collect_cues", "fit_fusion", "train", "LEARNED_CUES", "FOLDS", "TARGET_FPR"]

FOLDS = 5
TARGET_FPR = 0.05
LEARNED_CUES = ("synthetic_speech", "generated_image", "face_forgery")
OOF_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
MIN_FILES_PER_KIND = 20  # a kind with fewer labelled files of each class gets no model


def harvest_files(harvest_root: str | os.PathLike, extra_roots=()) -> list[LabelledFile]:
    """Labelled harvest files found on disk, from ``<root>/<kind>/MANIFEST.tsv``.

    Parameters
    ----------
    harvest_root : str or os.PathLike
        The harvest (``audio/``, ``image/``, ``video/``, each with ``MANIFEST.tsv``).
    extra_roots : sequence of path
        Further folders laid out as ``<kind>/<label>/<name>`` (e.g. where ``refetch.sh`` extracted the
        rest); the first place a file exists wins.

    Returns
    -------
    list of LabelledFile
        Only files present on disk, each once.
    """
    root = Path(harvest_root)
    out = []
    for kind in ("audio", "image", "video"):
        manifest = root / kind / "MANIFEST.tsv"
        if not manifest.is_file():
            continue
        for f in read_manifest(manifest):
            candidates = [f.path] + [Path(r) / kind / ("fake" if f.label else "real") / f.path.name for r in extra_roots]
            found = next((c for c in candidates if c.is_file()), None)
            if found is not None:
                out.append(LabelledFile(found, f.kind, f.label, f.method, f.system, f.group, f.pair, f.sha256,
                                        f.licence))
    return out


def collect_cues(files: list[LabelledFile], models_dir=None, workers: int | None = None, cache=True,
                 on_result=None) -> list[tuple[LabelledFile, object]]:
    """Scan files with every expert and no encoders; return ``(file, ScanResult)`` for those scanned.

    Parameters
    ----------
    files : list of LabelledFile
    models_dir : path, optional
        Folder of the published experts' weights.
    workers : int, optional
        Decoding processes (default: the scanner's).
    cache : bool or path
        Feature cache, as :class:`deepscan.scanner.Scanner` takes it.
    on_result : callable(ScanResult), optional
        Called per result (progress).

    Returns
    -------
    list of (LabelledFile, ScanResult)
        Files whose scan succeeded.
    """
    from deepscan.scanner import Scanner

    with tempfile.TemporaryDirectory() as tmp:
        empty = FusionDetector({}, {"trained_on": "untrained"}).save(Path(tmp) / "cues-only.safetensors")
        scanner = Scanner(detector=empty, experts="auto", models_dir=models_dir, workers=workers, cache=cache)
        by_path = {str(f.path): f for f in files}
        out = []
        for result in scanner.scan([str(f.path) for f in files], recursive=False):
            if on_result is not None:
                on_result(result)
            if result.status == "ok" and result.path in by_path:
                out.append((by_path[result.path], result))
        scanner.close()
    return out


def _oof_overrides() -> dict:
    overrides = {}
    for cue in LEARNED_CUES:
        path = OOF_DIR / f"{cue}_oof.json"
        if path.is_file():
            overrides[cue] = {k: float(v) for k, v in json.loads(path.read_text()).items() if v is not None}
    return overrides


def fit_fusion(rows: list[tuple[LabelledFile, dict, str]], seed: int = 0, folds: int = FOLDS,
               target_fpr: float = TARGET_FPR) -> tuple[dict, dict]:
    """Fit one logistic regression per media kind, scored out of fold grouped by source page.

    Parameters
    ----------
    rows : list of (LabelledFile, cues dict, media kind)
        The file, its file-level cues (cue -> ``{"p_fake": ...}``) and the kind the scanner gave it.
    seed : int
        Seed of the fold assignment.
    folds : int
        Grouped folds.
    target_fpr : float
        False positive rate the threshold keeps to on the out-of-fold scores of real files.

    Returns
    -------
    (dict, dict)
        Kind -> :class:`KindModel`, and kind -> out-of-fold ``{"labels", "p_fake", "groups", "systems"}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from deepscan.training.metrics import detection_metrics, threshold_at_fpr

    models, oof_out = {}, {}
    for kind in sorted({k for _, _, k in rows}):
        subset = [(f, c) for f, c, k in rows if k == kind]
        labels = np.array([f.label for f, _ in subset])
        if min((labels == 0).sum(), (labels == 1).sum()) < MIN_FILES_PER_KIND // 2:
            continue
        names = sorted({n for _, c in subset for n, v in c.items() if (v or {}).get("p_fake") is not None})
        if not names:
            continue
        x = np.stack([cue_features(c, names) for _, c in subset])
        groups = np.array([f.group for f, _ in subset])
        rng = np.random.default_rng(seed)
        unique = np.unique(groups)
        shuffled = dict(zip(unique, rng.permutation(len(unique))))
        order_groups = np.array([shuffled[g] for g in groups])
        n_folds = min(folds, len(unique))
        oof = np.full(len(subset), np.nan)
        for train_idx, test_idx in GroupKFold(n_splits=n_folds).split(x, labels, order_groups):
            if len(np.unique(labels[train_idx])) < 2:
                continue
            model = LogisticRegression(C=1.0, max_iter=2000).fit(x[train_idx], labels[train_idx])
            oof[test_idx] = model.predict_proba(x[test_idx])[:, 1]
        ok = ~np.isnan(oof)
        threshold = threshold_at_fpr(labels[ok], oof[ok], target_fpr)
        metrics = detection_metrics(labels[ok], oof[ok], threshold)
        final = LogisticRegression(C=1.0, max_iter=2000).fit(x, labels)
        models[kind] = KindModel(names, final.coef_[0].astype(np.float64), float(final.intercept_[0]), threshold,
                                 {"auc": metrics["auc"], "eer": metrics["eer"], "ap": metrics["ap"],
                                  "ece": metrics["ece"], "fpr": metrics["fpr"], "fnr": metrics["fnr"],
                                  "n_real": metrics["n_real"], "n_fake": metrics["n_fake"],
                                  "folds": f"{n_folds} grouped by source page (out of fold)"})
        oof_out[kind] = {"labels": labels[ok].tolist(), "p_fake": oof[ok].tolist(),
                         "groups": groups[ok].tolist(), "systems": [f.system for (f, _), k in zip(subset, ok) if k]}
    return models, oof_out


def train(harvest_root, output, models_dir=None, seed: int = 0, extra_roots=(), workers=None, quiet: bool = False,
          target_fpr: float = TARGET_FPR) -> dict:
    """Scan the harvest, fit the cue fusion per kind and write the checkpoint.

    Parameters
    ----------
    harvest_root : path
        The harvest with ``<kind>/MANIFEST.tsv``.
    output : path
        The ``.safetensors`` to write.
    models_dir : path, optional
        Folder of the published experts' weights.
    seed : int
        Seed of the folds.
    extra_roots : sequence of path
        More folders holding harvest files (``<kind>/<label>/<name>``).
    workers : int, optional
        Decoding processes.
    quiet : bool
        No progress output.
    target_fpr : float
        False positive rate of the thresholds.

    Returns
    -------
    dict
        Per kind: the cues used and the out-of-fold metrics.

    Raises
    ------
    ValueError
        If no kind has enough labelled files scanned.
    """
    import sys

    files = harvest_files(harvest_root, extra_roots)
    done = [0]

    def progress(result):
        done[0] += 1
        if not quiet and done[0] % 25 == 0:
            print(f"scanned {done[0]}/{len(files)}", file=sys.stderr)

    scanned = collect_cues(files, models_dir=models_dir, workers=workers, on_result=progress)
    overrides = _oof_overrides()
    rows = []
    for f, result in scanned:
        cues = {n: dict(c) for n, c in (result.cues or {}).items()}
        for cue in LEARNED_CUES:
            if cue in cues and cues[cue].get("p_fake") is not None:
                cues[cue]["p_fake"] = overrides.get(cue, {}).get(f.sha256)  # None without an out-of-fold score
        rows.append((f, cues, result.media.get("kind")))
    models, _ = fit_fusion(rows, seed=seed, target_fpr=target_fpr)
    if not models:
        raise ValueError("no media kind had enough labelled files with cues to fit a fusion model")
    licences = sorted({f.licence or "none stated" for f, _ in scanned})
    provenance = {
        "trained_on": "harvest (real media and published generators' output, ../shared/harvest)",
        "data": {kind: {"real": m.metrics["n_real"], "fake": m.metrics["n_fake"]} for kind, m in models.items()},
        "files": [{"sha256": f.sha256, "kind": f.kind, "label": f.label, "system": f.system, "group": f.group,
                   "licence": f.licence} for f, _ in scanned],
        "licences": licences,
        "method": "per-kind logistic regression on cue log-odds and presence flags; out-of-fold grouped by page",
        "learned_cues_out_of_fold": sorted(overrides),
        "seed": seed,
    }
    detector = FusionDetector(models, provenance, target_fpr)
    detector.save(output)
    return {kind: {"cues": m.cues, **m.metrics, "threshold": m.threshold} for kind, m in models.items()}
