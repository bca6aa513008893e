"""Scan labelled media as ``deepscan check`` does and tabulate detection per kind, method, subset and cue.

:func:`evaluate_media` is what ``deepscan evaluate MANIFEST.tsv`` and ``python -m bench.quality`` run:
read a labelled set (:func:`deepscan.labelled.read_labelled`: a ``MANIFEST.tsv`` or ``real/`` and
``fake/`` folders), scan it, and tabulate (:func:`score_table`) per media kind, per fake method and
per named subset AUC, EER, AP, accuracy at the threshold and ECE, each with its pair-bootstrap
interval (:mod:`deepscan.metrics`), for the fused ``p_fake`` and for each cue alone; and
(:func:`verdict_counts`) per media kind and label how many files got each verdict, ``uncertain``
(within the band around the threshold) among them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np

from deepscan.labelled import LabelledFile, LabelledSet, pair_subsets
from deepscan.metrics import BOOTSTRAP_ROUNDS, CONFIDENCE, CUE_THRESHOLD, METRICS, bootstrap_metrics

__all__ = ["score_table", "result_scores", "verdict_counts", "evaluate_media"]

VERDICT_COLUMNS = ("fake", "uncertain", "real", "unknown", "error")

def score_table(files: list[LabelledFile], scores: dict, subsets: dict | None = None, threshold=None,
                rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0, cue_threshold: float = CUE_THRESHOLD) -> dict:
    """Per kind, per method and per subset: each scorer's AUC, EER, AP, accuracy and ECE with intervals.

    Parameters
    ----------
    files : list of LabelledFile
        The labelled files that were scored.
    scores : dict
        Scorer name (``"p_fake"``, ``"aasist"``, ...) -> ``{path str: score or None}``; higher means
        more likely fake. A file a scorer leaves ``None`` (the cue did not apply, the verdict was
        ``unknown``, the file could not be read) is left out of that scorer's metrics, and the coverage
        says how many were scored.
    subsets : dict, optional
        Subset name -> predicate ``LabelledFile -> bool`` (:func:`pair_subsets`).
    threshold : float or dict, optional
        Decision threshold of the ``"p_fake"`` scorer for accuracy: one value, or ``{path str:
        threshold}`` where it depends on the file (one per media kind); default 0.5.
    rounds, seed : int
        Bootstrap resamples (over pairs) and their seed.
    cue_threshold : float
        Threshold of every other scorer (a cue alone) for accuracy.

    Returns
    -------
    dict
        ``{"kinds": {kind: {scorer: metrics}}, "methods": {kind: {method: {scorer: metrics}}},
        "subsets": {name: {scorer: metrics}}}``. ``metrics`` is ``{"n", "n_real", "n_fake", "coverage",
        "threshold"}`` and, for each of :data:`METRICS` (``auc``, ``eer``, ``ap``, ``accuracy``, ``ece``),
        the value and its ``<metric>_lo`` / ``<metric>_hi`` 95% bounds: None unless both real and
        fake files were scored. ``threshold`` is the one value used, or ``"per kind"``. A method's
        rows are its fakes against all reals of the kind.
    """

    def metrics(rows: list[LabelledFile], scorer: str) -> dict:
        values = scores[scorer]
        kept = [(r, values.get(str(r.path))) for r in rows]
        kept = [(r, v) for r, v in kept if v is not None]
        labels = np.array([r.label for r, _ in kept], dtype=int)
        score = np.array([v for _, v in kept], dtype=np.float64)
        if scorer != "p_fake" or threshold is None:
            cut = np.full(len(kept), cue_threshold if scorer != "p_fake" else 0.5)
        elif isinstance(threshold, dict):
            cut = np.array([threshold.get(str(r.path), 0.5) for r, _ in kept], dtype=np.float64)
        else:
            cut = np.full(len(kept), float(threshold))
        out = {"n": len(kept), "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
               "coverage": f"{len(kept)}/{len(rows)}",
               "threshold": (float(cut[0]) if cut.size and np.all(cut == cut[0]) else "per kind" if cut.size else None)}
        for name in METRICS:
            out.update({name: None, f"{name}_lo": None, f"{name}_hi": None})
        if out["n_real"] and out["n_fake"]:
            found = bootstrap_metrics(labels, score, [r.pair for r, _ in kept], cut, rounds, seed)
            for name, (point, lo, hi) in found.items():
                out.update({name: point, f"{name}_lo": None if np.isnan(lo) else lo,
                            f"{name}_hi": None if np.isnan(hi) else hi})
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


def result_scores(results: Iterable, fused: bool = True) -> dict:
    """Scores of scan results, per scorer: the fused ``p_fake`` and each cue's own ``p_fake``.

    Parameters
    ----------
    results : iterable of deepscan.results.ScanResult
    fused : bool
        Include the detector's ``p_fake`` (leave it out for an untrained detector: its scores mean nothing).

    Returns
    -------
    dict
        ``{"p_fake": {path: p or None}, cue: {path: p or None}, ...}``, cues in name order; a cue that
        applied to no file (its weights absent, say) has no entry. Files that could not be scanned
        score ``None`` everywhere.
    """
    results = list(results)
    ok = [r for r in results if r.status == "ok"]
    scores: dict = {}
    if fused:
        scores["p_fake"] = {r.path: r.p_fake for r in ok}
    for name in sorted({n for r in ok for n in (r.cues or {})}):
        values = {r.path: (r.cues.get(name) or {}).get("p_fake") for r in ok}
        if any(v is not None for v in values.values()):
            scores[name] = values
    return scores


def verdict_counts(files: list[LabelledFile], results: dict) -> dict:
    """Per media kind and label, how many files got each verdict, and the uncertain band they were judged with.

    Parameters
    ----------
    files : list of LabelledFile
        The labelled files (their ``kind`` as tabulated).
    results : dict
        Path str -> :class:`deepscan.results.ScanResult`.

    Returns
    -------
    dict
        ``{kind: {"real": counts, "fake": counts, "band": [lo, hi] or "per file" or None,
        "threshold": float or "per file" or None}}``, ``counts`` being ``{"files", "fake",
        "uncertain", "real", "unknown", "error"}`` (``error``: could not be scanned, or no result);
        ``uncertain`` counts the files whose ``p_fake`` fell within the band around their threshold.
    """
    out: dict = {}
    for f in files:
        row = out.setdefault(f.kind, {"real": dict.fromkeys(("files",) + VERDICT_COLUMNS, 0),
                                      "fake": dict.fromkeys(("files",) + VERDICT_COLUMNS, 0),
                                      "bands": set(), "thresholds": set()})
        counts = row["fake" if f.label else "real"]
        counts["files"] += 1
        r = results.get(str(f.path))
        verdict = "error" if r is None or r.status != "ok" else r.verdict
        counts[verdict if verdict in VERDICT_COLUMNS else "unknown"] += 1
        if r is not None and r.uncertain_band:
            row["bands"].add(tuple(r.uncertain_band))
        if r is not None and r.threshold is not None:
            row["thresholds"].add(r.threshold)
    for row in out.values():
        bands, thresholds = row.pop("bands"), row.pop("thresholds")
        row["band"] = list(next(iter(bands))) if len(bands) == 1 else "per file" if bands else None
        row["threshold"] = next(iter(thresholds)) if len(thresholds) == 1 else "per file" if thresholds else None
    return out


def evaluate_media(labelled: LabelledSet, scanner, subsets: dict | None = None, rounds: int = BOOTSTRAP_ROUNDS,
                   seed: int = 0, on_result: Callable | None = None) -> dict:
    """Scan labelled media as ``deepscan check`` does and tabulate detection per kind, method, subset and cue.

    Parameters
    ----------
    labelled : LabelledSet
        From :func:`read_labelled`.
    scanner : deepscan.scanner.Scanner
        Detector and experts to judge; the fused ``p_fake`` is left out when the detector is untrained.
    subsets : dict, optional
        Subset name -> pair-id prefixes (:func:`parse_subsets`); default: the known data set's own.
    rounds, seed : int
        Bootstrap resamples over pairs, and their seed.
    on_result : callable(ScanResult), optional
        Called as each file's result arrives (progress).

    Returns
    -------
    dict
        ``{"data", "files", "detector", "fused", "rounds", "confidence", "subsets", "errors", "unknown",
        "elapsed_s", "table", "verdicts", "per_file"}``: ``table`` is :func:`score_table`'s, ``verdicts``
        :func:`verdict_counts`' (files in the uncertain band per kind and label); ``errors`` maps files that
        could not be scanned to their reason and ``unknown`` files without a fused verdict to theirs;
        ``per_file`` lists each file's label, method, pair, verdict, threshold and scores (a scorer's
        ``None``: it did not apply).
    """
    import time

    subsets = labelled.subsets if subsets is None else dict(subsets)
    start = time.perf_counter()
    results = {}
    for result in scanner.scan([str(f.path) for f in labelled.files], recursive=False):
        results[result.path] = result
        if on_result is not None:
            on_result(result)
    elapsed = time.perf_counter() - start
    files = labelled.files
    if labelled.manifest is None:  # a folder: the kind the probe found (an animated WebP is a video)
        files = [dataclasses.replace(f, kind=(results[str(f.path)].media or {}).get("kind") or f.kind)
                 if str(f.path) in results else f for f in files]
    detector = dict(scanner.detector_info or {})
    fused = detector.get("trained_on") != "untrained"
    scores = result_scores(results.values(), fused=fused)
    thresholds = {p: r.threshold for p, r in results.items() if r.threshold is not None}
    table = score_table(files, scores, pair_subsets(subsets), thresholds or None, rounds=rounds, seed=seed)
    return {
        "data": str(labelled.manifest or labelled.root),
        "known_data_set": labelled.known.name if labelled.known else None,
        "files": len(files),
        "detector": {k: detector.get(k) for k in ("name", "sha256", "trained_on", "label", "kind")},
        "fused": fused,
        "cue_threshold": CUE_THRESHOLD,
        "rounds": rounds,
        "confidence": CONFIDENCE,
        "subsets": {name: list(prefixes) for name, prefixes in subsets.items()},
        "errors": {p: r.reason for p, r in results.items() if r.status != "ok"},
        "unknown": {p: r.reason for p, r in results.items() if r.status == "ok" and r.p_fake is None},
        "elapsed_s": round(elapsed, 1),
        "table": table,
        "verdicts": verdict_counts(files, results),
        "per_file": [{"path": str(f.path), "kind": f.kind, "label": "fake" if f.label else "real", "method": f.method,
                      "pair": f.pair, "verdict": getattr(results.get(str(f.path)), "verdict", None),
                      "threshold": thresholds.get(str(f.path)),
                      "uncertain_band": getattr(results.get(str(f.path)), "uncertain_band", None),
                      "scores": {s: values.get(str(f.path)) for s, values in scores.items()}} for f in files],
    }
