"""Labelled media sets and metrics with confidence intervals: the harvest, ../realworld, folders.

:func:`read_manifest` reads a ``MANIFEST.tsv`` (``../shared/harvest/<kind>/MANIFEST.tsv`` or
``../shared/realworld/MANIFEST.tsv``) into :class:`LabelledFile` rows with their paths, kinds,
labels, methods, systems and the group / pair that ties files of one source together.
:func:`bootstrap_metric` gives a metric (AUC, AP, EER...) with a percentile bootstrap interval,
resampling whole pairs (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993), so that the
real and fake versions of one source stay together, as ../realworld/README.md asks.
Metrics come from scikit-learn (no hand-rolled ROC).

:func:`evaluate_media` is what ``deepscan evaluate MANIFEST.tsv`` and ``python -m bench.quality`` run:
read a labelled set (:func:`read_labelled`: a ``MANIFEST.tsv`` or ``real/`` and ``fake/`` folders),
scan it as ``deepscan check`` does, and tabulate (:func:`score_table`) per media kind, per fake
method and per named subset AUC, EER, AP, accuracy at the threshold and ECE, each with its
pair-bootstrap interval, for the fused ``p_fake`` and for each cue alone. Subsets are groups of
pairs named by pair-id prefixes: a data set deepscan knows (:data:`KNOWN_DATA_SETS`, e.g. the clean
comparisons of ../shared/realworld) brings its own; a user names theirs with
:func:`parse_subsets` (``deepscan evaluate --subset NAME=PREFIX``).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

__all__ = ["LabelledFile", "LabelledSet", "KnownDataSet", "KNOWN_DATA_SETS", "read_manifest", "read_folder",
           "read_labelled", "parse_subsets", "pair_subsets", "bootstrap_metric", "bootstrap_metrics",
           "detection_values", "score_table", "result_scores", "evaluate_media", "auc", "average_precision",
           "BOOTSTRAP_ROUNDS", "METRICS", "CUE_THRESHOLD", "MANIFEST_NAME"]

BOOTSTRAP_ROUNDS = 2000  # resamples per interval
CONFIDENCE = 0.95
METRICS = ("auc", "eer", "ap", "accuracy", "ece")  # what score_table gives for every scorer, with intervals
# A cue's own decision threshold for accuracy: each expert's p_fake is a probability (softmax or sigmoid).
CUE_THRESHOLD = 0.5
MANIFEST_NAME = "MANIFEST.tsv"  # the labelled-media manifest in a folder (../shared/realworld, a harvest kind)


@dataclass(frozen=True)
class KnownDataSet:
    """What deepscan knows about a published labelled data set: how to recognise it, its named subsets.

    Attributes
    ----------
    name : str
        The data set's name.
    columns : frozenset of str
        Manifest columns that, all present, mark a manifest as this data set's.
    subsets : dict
        Subset name -> pair-id prefixes: the pairs (files of one source, real and fake) it holds.
    """

    name: str
    columns: frozenset
    subsets: dict = field(default_factory=dict)

    def matches(self, columns: Iterable[str], pairs: Iterable[str]) -> bool:
        """Whether a manifest with these columns and pair ids is this data set.

        Every column must be present and every subset must name at least one of the pairs, so that
        a manifest that merely shares the layout gets no subsets that mean nothing for it.
        """
        pairs = set(pairs)
        return self.columns <= set(columns) and all(
            any(p.startswith(prefix) for p in pairs for prefix in prefixes) for prefixes in self.subsets.values())


# ../shared/realworld (its README): the clean comparisons have the same container, codec and sample
# rate on both sides, so a cue cannot separate them by format alone. Pair ids: wf<N> (WaveFake), ns1_<N>
# (NaturalSpeech 1), fs2_<N> (the FastSpeech 2 page).
REALWORLD = KnownDataSet(
    "realworld",
    frozenset({"name", "kind", "label", "method", "repo", "commit", "path_in_repo", "sha256", "license", "note"}),
    {"WaveFake (clean)": ("wf",), "NaturalSpeech 1 (clean)": ("ns1_",), "FastSpeech 2 page (clean)": ("fs2_",)},
)
KNOWN_DATA_SETS = (REALWORLD,)


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
        for line, row in enumerate(reader, start=2):
            if None in row.values() or not (row.get("name") or "").strip():
                raise ValueError(f"{manifest}: line {line}: fewer fields than the header, or no name")
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


@dataclass
class LabelledSet:
    """Labelled media to evaluate on, and where they came from.

    Attributes
    ----------
    files : list of LabelledFile
        The files, in manifest (or walk) order.
    root : Path
        The folder the files are in.
    manifest : Path or None
        The ``MANIFEST.tsv`` read, ``None`` for ``real/`` and ``fake/`` folders.
    known : KnownDataSet or None
        The published data set the manifest was recognised as (:data:`KNOWN_DATA_SETS`).
    """

    files: list
    root: Path
    manifest: Path | None = None
    known: KnownDataSet | None = None

    @property
    def subsets(self) -> dict:
        """The known data set's subsets (name -> pair-id prefixes); empty when none."""
        return dict(self.known.subsets) if self.known else {}


def read_folder(root: str | os.PathLike) -> list[LabelledFile]:
    """Labelled files of a folder holding ``real/`` and ``fake/`` (walked recursively).

    A fake's method is its first sub-folder under ``fake/`` (``fake/lipsync/a.mp4`` -> ``"lipsync"``),
    else ``"fake"``; a real file's method is ``"real"``. The pair is the file-name stem less a leading
    ``real_``, ``fake_`` or ``<method>_`` (``real/real_0007.mp4`` and ``fake/swap/swap_0007.mp4`` share
    ``0007``), as :func:`deepscan.training.data.source_of` names sources. The media kind is what the
    file's first bytes say (:func:`deepscan.media.sniff_kind`); :func:`evaluate_media` replaces it with
    the probed kind once the file is scanned (an animated WebP is a video).

    Parameters
    ----------
    root : str or os.PathLike

    Returns
    -------
    list of LabelledFile
        Reals first, then fakes, each in walk order.
    """
    from deepscan.errors import DeepscanError
    from deepscan.media import iter_media_files, sniff_kind
    from deepscan.training.data import source_of

    root = Path(root)
    files = []
    for label in ("real", "fake"):
        folder = root / label
        for path in iter_media_files([folder], recursive=True, on_error=lambda p, e: None):
            rel = Path(path).relative_to(folder)
            method = "real" if label == "real" else (rel.parts[0] if len(rel.parts) > 1 else "fake")
            try:
                kind = sniff_kind(path) or "unknown"
            except DeepscanError:
                kind = "unknown"
            pair = source_of(Path(path), method)
            files.append(LabelledFile(Path(path), kind, int(label == "fake"), method, method, pair, pair, ""))
    return files


def read_labelled(data: str | os.PathLike) -> LabelledSet:
    """Read labelled media: a ``MANIFEST.tsv``, a folder holding one, or a folder with ``real/`` and ``fake/``.

    Parameters
    ----------
    data : str or os.PathLike
        The manifest (:func:`read_manifest`'s layout) or the folder.

    Returns
    -------
    LabelledSet
        With the published data set it is, when deepscan knows it (its subsets come with it).

    Raises
    ------
    ValueError
        When ``data`` is neither, the manifest cannot be read or is malformed, files it lists are
        missing, or real or fake files are missing altogether.
    """
    path = Path(data)
    manifest = path if path.is_file() else path / MANIFEST_NAME if (path / MANIFEST_NAME).is_file() else None
    known = None
    if manifest is not None:
        try:
            files = read_manifest(manifest)
            with open(manifest, newline="", encoding="utf-8") as f:
                columns = next(csv.reader(f, delimiter="\t"), [])
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"{manifest}: cannot read the manifest ({error})") from error
        missing = [f for f in files if not f.exists]
        if missing:
            shown = ", ".join(str(f.path) for f in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise ValueError(f"{manifest}: {len(missing)} of {len(files)} listed files are missing ({shown}); "
                             "files are looked for at <kind>/<label>/<name> or <label>/<name> beside the manifest")
        known = next((d for d in KNOWN_DATA_SETS if d.matches(columns, (f.pair for f in files))), None)
        root = manifest.parent
    elif path.is_dir() and (path / "real").is_dir() and (path / "fake").is_dir():
        files, root = read_folder(path), path
    else:
        raise ValueError(f"{path}: not labelled media: give a {MANIFEST_NAME} (columns name, kind, label, method; "
                         "files at <kind>/<label>/<name>), a folder holding one, or a folder with real/ and fake/")
    for label, name in ((0, "real"), (1, "fake")):
        if not any(f.label == label for f in files):
            raise ValueError(f"{manifest or path}: no {name} file: evaluation needs both real and fake media")
    return LabelledSet(files, root, manifest, known)


def parse_subsets(specs: Iterable[str]) -> dict:
    """Subsets named on the command line: ``NAME=PREFIX[,PREFIX...]`` (pair-id prefixes).

    Parameters
    ----------
    specs : iterable of str
        E.g. ``["WaveFake=wf", "LJSpeech TTS=ns1_,fs2_"]``.

    Returns
    -------
    dict
        Name -> tuple of prefixes, in the order given.

    Raises
    ------
    ValueError
        When a spec has no ``=``, an empty name, no prefix, or a name given twice.
    """
    subsets: dict = {}
    for spec in specs:
        name, sep, prefixes = spec.partition("=")
        name = name.strip()
        prefixes = tuple(p.strip() for p in prefixes.split(",") if p.strip())
        if not sep or not name or not prefixes:
            raise ValueError(f"subset {spec!r}: write NAME=PREFIX[,PREFIX...] (files whose pair id starts with a PREFIX)")
        if name in subsets:
            raise ValueError(f"subset {name!r} is named twice")
        subsets[name] = prefixes
    return subsets


def pair_subsets(subsets: dict) -> dict:
    """Subset predicates for :func:`score_table` from ``name -> pair-id prefixes``.

    Parameters
    ----------
    subsets : dict
        Name -> iterable of prefixes.

    Returns
    -------
    dict
        Name -> ``LabelledFile -> bool``: whether the file's pair starts with one of the prefixes.
    """
    return {name: (lambda f, p=tuple(prefixes): f.pair.startswith(p)) for name, prefixes in subsets.items()}


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
    (:func:`deepscan.training.metrics.eer_from_roc`), AP ``sum (R_n - R_n-1) P_n`` as
    ``average_precision_score`` defines it; ECE is
    :func:`deepscan.training.metrics.expected_calibration_error` (15 equal-width bins). One call
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

    from deepscan.training.metrics import eer_from_roc, expected_calibration_error

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
        "elapsed_s", "table", "per_file"}``: ``table`` is :func:`score_table`'s; ``errors`` maps files that
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
        "per_file": [{"path": str(f.path), "kind": f.kind, "label": "fake" if f.label else "real", "method": f.method,
                      "pair": f.pair, "verdict": getattr(results.get(str(f.path)), "verdict", None),
                      "threshold": thresholds.get(str(f.path)),
                      "scores": {s: values.get(str(f.path)) for s, values in scores.items()}} for f in files],
    }
