"""Labelled media sets and metrics with confidence intervals: the harvest, ../realworld, folders.

:func:`read_manifest` reads a ``MANIFEST.tsv`` (``../shared/harvest/<kind>/MANIFEST.tsv`` or
``../shared/realworld/MANIFEST.tsv``) into :class:`LabelledFile` rows with their paths, kinds,
labels, methods, systems and the group / pair that ties files of one source together.
:func:`bootstrap_metric` gives a metric (AUC, AP, EER...) with a percentile bootstrap interval,
resampling whole pairs (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993), so that the
real and fake versions of one source stay together, as ../realworld/README.md asks.
Metrics come from scikit-learn (no hand-rolled ROC).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["LabelledFile", "read_manifest", "bootstrap_metric", "auc", "average_precision", "BOOTSTRAP_ROUNDS"]

BOOTSTRAP_ROUNDS = 2000  # resamples per interval
CONFIDENCE = 0.95


@dataclass(frozen=True)
class LabelledFile:
    """One labelled media file.

    Attributes
    ----------
    path : Path
        Where the file is on disk (it may be absent: :attr:`exists`).
    kind : str
        ``"audio"``, ``"image"`` or ``"video"``.
    label : int
        1 for fake, 0 for real.
    method : str
        The generator or real source as the manifest names it.
    system : str
        The generator's system name (harvest), else the method.
    group : str
        The source page (harvest ``group``) or the pair id (realworld); files of one group share a source.
    pair : str
        The pair id: a real file and the fakes made from the same source share it.
    sha256 : str
        The file's SHA-256 as the manifest gives it.
    licence : str
        The manifest's ``license`` column (empty when absent).
    """

    path: Path
    kind: str
    label: int
    method: str
    system: str
    group: str
    pair: str
    sha256: str
    licence: str = ""

    @property
    def exists(self) -> bool:
        """Whether the file is on disk."""
        return self.path.is_file()


def _pair_from_note(note: str) -> str | None:
    if note.startswith("pair="):
        return note.split(";", 1)[0][len("pair="):].strip()
    return None


def read_manifest(manifest: str | os.PathLike, root: str | os.PathLike | None = None) -> list[LabelledFile]:
    """Read a manifest of labelled media (tab-separated, header row).

    Parameters
    ----------
    manifest : str or os.PathLike
        A ``MANIFEST.tsv`` with at least ``name``, ``kind``, ``label`` (``real``/``fake``) and
        ``method`` or ``system``; optional ``group``, ``pair``, ``sha256``, ``note`` (``pair=ID; ...``).
    root : str or os.PathLike, optional
        Folder holding ``<kind>/<label>/<name>`` (realworld) or ``<label>/<name>`` (a harvest kind);
        default: the manifest's folder. The layout is detected per file.

    Returns
    -------
    list of LabelledFile
        In manifest order; files missing on disk are kept (see :attr:`LabelledFile.exists`).

    Raises
    ------
    ValueError
        If a row has a label other than ``real`` or ``fake``, or required columns are missing.
    """
    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent
    rows = []
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"name", "kind", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{manifest}: missing columns {sorted(missing)}")
        for row in reader:
            label = row["label"].strip()
            if label not in ("real", "fake"):
                raise ValueError(f"{manifest}: {row['name']}: label {label!r} is neither real nor fake")
            note = row.get("note") or ""
            pair = (row.get("pair") or "").strip() or _pair_from_note(note) or row["name"]
            group = (row.get("group") or "").strip() or pair
            method = (row.get("method") or row.get("system") or "").strip()
            system = (row.get("system") or "").strip() or method
            candidates = [root / row["kind"] / label / row["name"], root / label / row["name"]]
            path = next((c for c in candidates if c.is_file()), candidates[0] if (root / row["kind"]).is_dir()
                        else candidates[1])
            rows.append(LabelledFile(path, row["kind"], int(label == "fake"), method, system, group, pair,
                                     (row.get("sha256") or "").strip(), (row.get("license") or "").strip()))
    return rows


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
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.size == 0:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be non-empty and of one length")
    groups = np.arange(labels.size) if groups is None else np.asarray(groups)
    names, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        value = metric(labels[rows], scores[rows])
        if not np.isnan(value):
            values.append(value)
    point = metric(labels, scores)
    if not values:
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(values, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return point, float(lo), float(hi)


def score_table(files: list[LabelledFile], scores: dict, subsets: dict | None = None, threshold: float | None = None,
                rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """Per kind, per method and per subset: each scorer's AUC, EER, AP (and accuracy, ECE) with intervals.

    Parameters
    ----------
    files : list of LabelledFile
        The labelled files that were scored.
    scores : dict
        Scorer name (``"p_fake"``, ``"aasist"``, ...) -> ``{path str: score or None}``; higher means
        more likely fake. A file a scorer leaves ``None`` (the cue did not apply) is left out of that
        scorer's metrics, and the coverage says how many were scored.
    subsets : dict, optional
        Subset name -> predicate ``LabelledFile -> bool`` (e.g. the clean comparisons of a data set).
    threshold : float, optional
        Decision threshold of the ``"p_fake"`` scorer, for accuracy at the threshold.
    rounds, seed : int
        Bootstrap resamples (over pairs) and their seed.

    Returns
    -------
    dict
        ``{"kinds": {kind: {scorer: metrics}}, "methods": {kind: {method: {scorer: metrics}}},
        "subsets": {name: {scorer: metrics}}}``, metrics being ``{"n", "n_real", "n_fake", "coverage",
        "auc", "auc_lo", "auc_hi", "eer", "ap", "accuracy", "ece"}`` (None where undefined).
    """
    from deepscan.training.metrics import detection_metrics

    def metrics(rows: list[LabelledFile], scorer: str) -> dict:
        values = scores[scorer]
        kept = [(r, values.get(str(r.path))) for r in rows]
        kept = [(r, v) for r, v in kept if v is not None]
        labels = np.array([r.label for r, _ in kept], dtype=int)
        score = np.array([v for _, v in kept], dtype=np.float64)
        out = {"n": len(kept), "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
               "coverage": f"{len(kept)}/{len(rows)}", "auc": None, "auc_lo": None, "auc_hi": None, "eer": None,
               "ap": None, "accuracy": None, "ece": None}
        if out["n_real"] and out["n_fake"]:
            point, lo, hi = bootstrap_metric(labels, score, [r.pair for r, _ in kept], auc, rounds, seed)
            out.update(auc=point, auc_lo=lo, auc_hi=hi)
            full = detection_metrics(labels, score, threshold if threshold is not None else 0.5)
            out.update(eer=full["eer"], ap=full["ap"])
            if scorer == "p_fake" and threshold is not None:
                out.update(accuracy=full["accuracy"], ece=full["ece"])
        return out

    kinds = sorted({r.kind for r in files})
    table = {"kinds": {}, "methods": {}, "subsets": {}}
    for kind in kinds:
        rows = [r for r in files if r.kind == kind]
        table["kinds"][kind] = {s: metrics(rows, s) for s in scores}
        reals = [r for r in rows if r.label == 0]
        table["methods"][kind] = {
            method: {s: metrics(reals + [r for r in rows if r.label == 1 and r.method == method], s) for s in scores}
            for method in sorted({r.method for r in rows if r.label == 1})}
    for name, keep in (subsets or {}).items():
        rows = [r for r in files if keep(r)]
        table["subsets"][name] = {s: metrics(rows, s) for s in scores}
    return table
