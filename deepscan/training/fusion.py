"""Train the shipped cue-fusion detector on the harvest: scan, collect cues, fit per kind, calibrate.

1. A seeded subsample of the harvest files on disk, spread over source pages (:func:`sample_files`),
   is scanned as ``deepscan check`` scans it, with every expert and no encoders: each file gives its
   media kind and its file-level cues.
2. Cues of the learned experts were fitted on many of these same files: their in-sample scores would
   be over-trusted. For a file that a learned expert trained on, its score is the out-of-fold one
   that ``python -m bench.oof`` wrote (``bench/results/<cue>_oof.json``: a model refitted without the
   file's source page); a file the expert never saw (its training files are listed by SHA-256 in its
   weights) keeps the score the scan gave it; a trained-on file without an out-of-fold score has the
   cue left out.
3. Per media kind, logistic regressions (scikit-learn, L2) on the log-odds of candidate cue sets
   (:data:`CANDIDATES`), with sample weights that balance classes and pages (:func:`page_weights`),
   are compared on source pages they did not see; the best is refitted on all files
   (:func:`fit_fusion`). Its out-of-fold scores over folds grouped by pair give the kind's AUC, EER,
   AP and ECE, and the threshold at the target false positive rate of real files.
4. Around each threshold, the band where the verdict is ``uncertain`` is set from the same
   out-of-fold scores (:func:`uncertain_band_from_oof`): where the local precision of either call
   falls below :data:`BAND_PRECISION`.

Files byte-identical to ../shared/realworld files (:data:`deepscan.training.expert_speech.EXCLUDED_SHA256`)
are left out. Nothing here reads ../shared/realworld.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from deepscan.labelled import LabelledFile, read_manifest
from deepscan.model.fusion import FusionDetector, KindModel, cue_features

__all__ = ["page_weights", "CANDIDATES", "harvest_files", "sample_files", "rows_from_records", "learned_training_files", "stamp_real_media", "av_offset_copy", "av_offset_pseudo_fakes", "fit_fusion", "fit_and_save", "train", "LEARNED_CUES",
           "FOLDS", "TARGET_FPR", "PER_KIND", "BAND_PRECISION", "BAND_WINDOW", "BAND_STEP", "BAND_RULE",
           "uncertain_band_from_oof", "stamp_uncertain_band"]

FOLDS = 5
TARGET_FPR = 0.05
LEARNED_CUES = ("synthetic_speech", "generated_image", "face_forgery")
OOF_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
MIN_FILES_PER_KIND = 20  # a kind with fewer labelled files of each class gets no model
MIN_OOF_AUC = 0.6  # a kind whose out-of-fold AUC is below this ships no model: its verdicts stay "unknown"
PAGE_WEIGHT_POWER = 0.5  # a file of a page with n files of its class weighs n ** -0.5 (see page_weights)
C_L2 = 1.0  # inverse L2 strength of the logistic regressions
PUBLISHED_CUES = ("aasist", "meso4", "av_sync")
# Outside the uncertain band, each call is right at least this often locally (out of fold, at a balanced mix). The
# highest level both calls reach on every kind of the shipped fusion's training data, for windows of 10-20% of the
# files alike: at 0.8 a "real" call is never reached on audio or images there (real files are at most ~76% of those
# scored alike), so the band would run to 0 and no such file could be called real.
BAND_PRECISION = 0.7
BAND_WINDOW = 0.15  # the local window: this fraction of a kind's out-of-fold files nearest in score (at least 15)
BAND_STEP = 0.0025  # the band's edges are sought on a grid of p_fake this fine
BAND_RULE = (
    "per media kind, from the out-of-fold p_fake of the files the fusion learned from (folds grouped by pair): the "
    f"local precision at a score is measured on the {BAND_WINDOW:.0%} of those files nearest to it in score (at "
    "least 15), with page-balanced weights (so at the harvest's balanced mix of real and fake); going up from the "
    f"threshold in steps of {BAND_STEP}, the band ends at the first score where the precision of a 'fake' call (the "
    f"share of fakes) reaches {BAND_PRECISION}; going down, at the first score where the precision of a 'real' call "
    f"(the share of reals) reaches {BAND_PRECISION}; where it never does, the band runs to 0 or 1; it is never "
    "narrower than 0.05 on each side of the threshold")
# cue sets each media kind's fusion chooses from (None: every cue that scored a file of the kind)
CANDIDATES = {"all cues": None, "learned cues": LEARNED_CUES, "published cues": PUBLISHED_CUES,
              **{cue: (cue,) for cue in PUBLISHED_CUES + LEARNED_CUES}}


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


def _oof_overrides() -> dict:
    """Learned cue -> {file SHA-256: out-of-fold P(fake) or None} from ``bench/results/<cue>_oof.json``."""
    overrides = {}
    for cue in LEARNED_CUES:
        path = OOF_DIR / f"{cue}_oof.json"
        if path.is_file():
            record = json.loads(path.read_text())
            scores = record["scores"] if "scores" in record else record
            overrides[cue] = {k: (None if v is None else float(v)) for k, v in scores.items()}
    return overrides


def learned_training_files() -> dict:
    """Learned cue -> set of SHA-256 of the files its shipped weights were trained on.

    Read from each packaged expert's safetensors metadata (``training_files``); a cue whose weights
    are absent maps to ``None`` (unknown: every file counts as seen).
    """
    from safetensors import safe_open

    from deepscan.experts.runner import LEARNED
    from deepscan.weights import find_model

    out = {}
    for cue in LEARNED_CUES:
        path = find_model(cue) if cue in LEARNED else None
        if path is None:
            out[cue] = None
            continue
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
        files = []
        for value in meta.values():
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if isinstance(record, dict):
                files += record.get("training_files") or []
        out[cue] = {f["sha256"] for f in files if isinstance(f, dict) and f.get("sha256")}
    return out


def page_weights(labels: np.ndarray, groups: np.ndarray, power: float = PAGE_WEIGHT_POWER) -> np.ndarray:
    """Sample weights that balance the classes and stop a large source page from outweighing the rest.

    Parameters
    ----------
    labels : np.ndarray
        int ``(N,)``, 1 = fake.
    groups : np.ndarray
        ``(N,)`` source page of each file.
    power : float
        A file of a page holding ``n`` files of its class weighs ``n ** -power`` before the classes
        are balanced: 0 weighs files equally, 1 weighs pages equally.

    Returns
    -------
    np.ndarray
        float64 ``(N,)``; each class sums to ``N / 2``.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    w = np.zeros(len(labels))
    for c in (0, 1):
        m = labels == c
        if not m.any():
            continue
        pages, counts = np.unique(groups[m], return_counts=True)
        size = dict(zip(pages, counts))
        w[m] = [float(size[g]) ** -power for g in groups[m]]
        w[m] *= 0.5 * len(labels) / w[m].sum()
    return w


def _folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list:
    """Folds grouped by source page, with the classes spread over them as evenly as pages allow."""
    from sklearn.model_selection import StratifiedGroupKFold

    n = min(folds, len(np.unique(groups)))
    return list(StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(labels, labels, groups))


def _fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C_L2, max_iter=2000).fit(x, y, sample_weight=w)


def _out_of_fold(x, labels, weights, splits) -> np.ndarray:
    oof = np.full(len(labels), np.nan)
    for train_idx, test_idx in splits:
        if len(np.unique(labels[train_idx])) < 2:
            continue
        oof[test_idx] = _fit_logistic(x[train_idx], labels[train_idx], weights[train_idx]).predict_proba(x[test_idx])[:, 1]
    return oof


def _within_fold_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, splits) -> float:
    """Page-weighted AUC of real against fake files held out in the same fold, pooled over folds by pairs.

    Pooling out-of-fold scores across folds compares files scored by different models. Where source
    pages hold one class each (most of the harvest), removing a page moves the refitted intercept
    against that page's class, and the pooled AUC falls below chance even for a cue that ranks well
    (the known bias of cross-validated AUC with class-pure groups). Here only files scored by the
    same model are compared.
    """
    from sklearn.metrics import roc_auc_score

    total, pairs = 0.0, 0.0
    for _, test in splits:
        y, s, w = labels[test], scores[test], weights[test]
        ok = ~np.isnan(s)
        y, s, w = y[ok], s[ok], w[ok]
        if len(np.unique(y)) < 2:
            continue
        n = w[y == 0].sum() * w[y == 1].sum()
        total += roc_auc_score(y, s, sample_weight=w) * n
        pairs += n
    return total / pairs if pairs else float("nan")


def uncertain_band_from_oof(labels, p_fake, threshold: float, weights=None, precision: float = BAND_PRECISION,
                            window: float = BAND_WINDOW, min_window: int = 15, step: float = BAND_STEP) -> dict:
    """The band around a threshold where neither call is reliable, from out-of-fold scores (:data:`BAND_RULE`).

    The local precision at a score ``s`` is measured on the ``window`` fraction of the files
    nearest to ``s`` in score (at least ``min_window``), with ``weights`` (page-balanced, classes of
    equal weight: the precision at a balanced mix). Going up from ``threshold`` in steps of
    ``step``, the band ends at the first score where the share of fakes (the precision of a
    ``fake`` call) reaches ``precision``; going down, at the first score where the share of reals
    (the precision of a ``real`` call) does. Where it never does, the band runs to 1 (or 0). The
    band is then widened to at least :data:`deepscan.results.MIN_UNCERTAIN_MARGIN` each side of
    ``threshold``.

    Parameters
    ----------
    labels : array-like
        int ``(N,)``, 1 = fake.
    p_fake : array-like
        float ``(N,)``: out-of-fold scores (NaN: left out).
    threshold : float
        The kind's decision threshold.
    weights : array-like, optional
        ``(N,)`` sample weights (default: equal).
    precision : float
        The local precision a call must reach outside the band.
    window : float
        Fraction of the files in the local window.
    min_window : int
        Fewest files in the window.
    step : float
        Spacing of the scores at which the precision is measured.

    Returns
    -------
    dict
        ``{"band": [lo, hi], "raw": [lo, hi] before widening, "precision", "window_files", "oof_files",
        "oof_in_band": {"real": n, "fake": n}, "rule"}``; the edges are rounded to 4 decimals outwards.

    Raises
    ------
    ValueError
        Without scores.
    """
    import math

    from deepscan.results import uncertain_band

    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(p_fake, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = ~np.isnan(s)
    y, s, w = y[keep], s[keep], w[keep]
    n = len(s)
    if n == 0:
        raise ValueError("setting an uncertain band needs out-of-fold scores")
    k = min(n, max(min_window, int(round(window * n))))

    def fake_share(at: float) -> float:
        near = np.argsort(np.abs(s - at), kind="stable")[:k]
        return float((w[near] * y[near]).sum() / w[near].sum())

    ups = np.append(np.arange(threshold, 1.0, step), 1.0)
    downs = np.append(np.arange(threshold, 0.0, -step), 0.0)
    hi_raw = next((float(at) for at in ups if fake_share(at) >= precision), 1.0)
    lo_raw = next((float(at) for at in downs if 1.0 - fake_share(at) >= precision), 0.0)
    lo, hi = uncertain_band(threshold, (lo_raw, hi_raw))
    lo, hi = math.floor(lo * 1e4) / 1e4, math.ceil(hi * 1e4) / 1e4
    inside = (s >= lo) & (s <= hi)
    return {"band": [lo, hi], "raw": [round(lo_raw, 4), round(hi_raw, 4)], "precision": precision,
            "window_files": int(k), "oof_files": int(n),
            "oof_in_band": {"real": int((inside & (y == 0)).sum()), "fake": int((inside & (y == 1)).sum())},
            "rule": BAND_RULE}


def fit_fusion(rows: list[tuple[LabelledFile, dict, str]], seed: int = 0, folds: int = FOLDS,
               target_fpr: float = TARGET_FPR, candidates: dict | None = None) -> tuple[dict, dict]:
    """Fit one logistic regression per media kind, choosing its cues out of fold, folds grouped by page.

    Per kind, each candidate cue set (default :data:`CANDIDATES`: all cues, the learned ones, the
    published ones, each cue alone) is a logistic regression on the cues' log-odds (:func:`page_weights` as sample
    weights; presence flags held at 0). The candidate kept is the one with the best AUC on source
    pages it did not see (folds grouped by page, stratified by class; :func:`_within_fold_auc`); it
    is refitted on all files. Its out-of-fold scores over folds grouped by pair give the kind's AUC,
    EER, AP, ECE, the threshold at ``target_fpr`` of the real files and the uncertain band around
    it (:func:`uncertain_band_from_oof`).

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
    candidates : dict, optional
        Name -> cue names (or ``None``: every cue that scored some file of the kind).

    Returns
    -------
    (dict, dict)
        Kind -> :class:`KindModel`, and kind -> out-of-fold ``{"labels", "p_fake", "groups", "systems",
        "weights", "candidates"}`` (``candidates``: each candidate's out-of-fold AUCs).
    """
    from sklearn.metrics import roc_auc_score

    from deepscan.metrics import detection_metrics, threshold_at_fpr

    candidates = CANDIDATES if candidates is None else candidates
    models, oof_out = {}, {}
    for kind in sorted({k for _, _, k in rows}):
        subset = [(f, c) for f, c, k in rows if k == kind]
        labels = np.array([f.label for f, _ in subset])
        if min((labels == 0).sum(), (labels == 1).sum()) < MIN_FILES_PER_KIND // 2:
            continue
        scored = {n for _, c in subset for n, v in c.items() if (v or {}).get("p_fake") is not None}
        groups = np.array([f.group for f, _ in subset])
        weights = page_weights(labels, groups)
        pairs = np.array([f.pair or f.sha256 or str(f.path) for f, _ in subset])
        page_splits = _folds(labels, groups, folds, seed)
        pair_splits = _folds(labels, pairs, folds, seed)
        tried = {}
        for name, wanted in candidates.items():
            names = sorted(scored if wanted is None else scored & set(wanted))
            if not names or any(names == t["cues"] for t in tried.values()):
                continue
            x = np.stack([cue_features(c, names) for _, c in subset])
            x[:, 1::2] = 0.0  # presence flags weigh nothing: whether a face or speech is there is the data set's trait
            page_oof = _out_of_fold(x, labels, weights, page_splits)
            oof = _out_of_fold(x, labels, weights, pair_splits)
            ok = ~np.isnan(oof)
            tried[name] = {"cues": names, "x": x, "oof": oof, "ok": ok,
                           "auc": float(roc_auc_score(labels[ok], oof[ok])),
                           "auc_within_page_folds": _within_fold_auc(labels, page_oof, weights, page_splits)}
        if not tried:
            continue
        best = max(tried, key=lambda n: tried[n]["auc_within_page_folds"])
        chosen = tried[best]
        ok, oof = chosen["ok"], chosen["oof"]
        threshold = threshold_at_fpr(labels[ok], oof[ok], target_fpr)
        metrics = detection_metrics(labels[ok], oof[ok], threshold)
        band = uncertain_band_from_oof(labels[ok], oof[ok], threshold, weights[ok])
        final = _fit_logistic(chosen["x"], labels, weights)
        summary = {n: {"cues": t["cues"], "auc": round(t["auc"], 4),
                       "auc_within_page_folds": round(t["auc_within_page_folds"], 4)} for n, t in tried.items()}
        models[kind] = KindModel(chosen["cues"], final.coef_[0].astype(np.float64), float(final.intercept_[0]), threshold,
                                 {"auc": metrics["auc"], "auc_within_page_folds": round(chosen["auc_within_page_folds"], 4),
                                  "eer": metrics["eer"], "ap": metrics["ap"],
                                  "ece": metrics["ece"], "fpr": metrics["fpr"], "fnr": metrics["fnr"],
                                  "n_real": metrics["n_real"], "n_fake": metrics["n_fake"], "cue_set": best,
                                  "candidates": summary,
                                  "folds": (f"{len(pair_splits)} grouped by pair, stratified by class: AUC, EER, AP, ECE "
                                            f"and the threshold; {len(page_splits)} grouped by source page: the cue "
                                            "set, by the page-weighted AUC of real and fake files held out together")},
                                 band["band"], {k: v for k, v in band.items() if k not in ("band", "rule")})
        oof_out[kind] = {"labels": labels[ok].tolist(), "p_fake": oof[ok].tolist(), "weights": weights[ok].tolist(),
                         "groups": groups[ok].tolist(), "systems": [f.system for (f, _), k in zip(subset, ok) if k],
                         "candidates": summary}
    return models, oof_out


PER_KIND = {"audio": 240, "image": 240, "video": 120}  # files per kind the shipped fusion learned from
AV_OFFSETS_S = (-0.4, 0.4)  # audio shifts of the audio-visual offset pseudo-fakes, seconds (+: audio late)


def av_offset_copy(source: str | os.PathLike, target: str | os.PathLike, offset_s: float) -> Path:
    """Write a copy of a video whose audio is shifted against its frames: an audio-visual offset pseudo-fake.

    Packets are copied, not re-encoded (PyAV remux): the frames and the voice are the source's, only
    the audio timestamps move by ``offset_s``; audio packets pushed before 0 are dropped. Lip-sync
    fakes that replace a mouth or a voice break the same correspondence between mouth motion and
    speech that the ``av_sync`` cue measures (pseudo-fakes as in Chugh et al., "Not made for each
    other", ACM MM 2020, who train on such offsets).

    Parameters
    ----------
    source : path
        A video with a video and an audio stream.
    target : path
        The copy to write (same container format as its suffix says).
    offset_s : float
        Seconds the audio is moved; positive: it plays later than the frames.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    ValueError
        If the source has no video or no audio stream.
    av.error.FFmpegError
        If the source cannot be read or the target written.
    """
    import av

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as inp:
        if not inp.streams.video or not inp.streams.audio:
            raise ValueError(f"{source}: needs a video and an audio stream")
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        with av.open(str(target), "w") as out:
            vout = out.add_stream_from_template(vin)
            aout = out.add_stream_from_template(ain)
            shift = int(round(offset_s / float(ain.time_base)))
            for packet in inp.demux(vin, ain):
                if packet.dts is None:
                    continue  # the demuxer's flush packet
                if packet.stream is ain:
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts += shift
                    if packet.dts < 0 or (packet.pts is not None and packet.pts < 0):
                        continue
                    packet.stream = aout
                else:
                    packet.stream = vout
                out.mux(packet)
    return target


def av_offset_pseudo_fakes(files: list[LabelledFile], folder: str | os.PathLike,
                           offsets: tuple = AV_OFFSETS_S) -> list[tuple[LabelledFile, str]]:
    """Audio-visual offset pseudo-fakes of the real videos with sound among ``files``.

    Parameters
    ----------
    files : list of LabelledFile
        The sample; its real videos with an audio stream are copied once per offset.
    folder : path
        Where the copies go (``<source stem>.offset<+-ms>.<suffix>``); existing copies are reused.
    offsets : tuple of float
        Audio shifts in seconds (:func:`av_offset_copy`).

    Returns
    -------
    list of (LabelledFile, str)
        Each copy, labelled fake with its source's page, pair and licence, and its source's SHA-256.
    """
    from deepscan.cache import file_sha256
    from deepscan.media import probe

    out = []
    for f in files:
        if f.kind != "video" or f.label != 0:
            continue
        try:
            info = probe(f.path)
        except Exception:  # noqa: BLE001 - an unreadable source makes no pseudo-fake; the scan reports it
            continue
        if not info.has_audio or not info.has_video:
            continue
        for offset in offsets:
            target = Path(folder) / f"{f.path.stem}.offset{int(round(offset * 1000)):+d}ms{f.path.suffix}"
            if not target.is_file():
                try:
                    av_offset_copy(f.path, target, offset)
                except Exception:  # noqa: BLE001 - a container PyAV cannot remux: no copy
                    target.unlink(missing_ok=True)
                    continue
            sha = file_sha256(target)
            out.append((LabelledFile(target, "video", 1, f"pseudo-fake: audio shifted {offset:+.1f} s",
                                     "pseudo-fake: audio-visual offset", f.group, f.pair, sha, f.licence), f.sha256))
    return out


ALL_CUES = "auto"


def sample_files(files: list[LabelledFile], per_kind: dict, seed: int = 0) -> list[LabelledFile]:
    """A seeded subsample spread over source pages: per kind up to half its quota real, the rest fake.

    Within a kind and label, pages (the manifest's ``group``) are visited in a seeded order, one
    file from each in turn, so that a page that holds most of a class (one StyleGAN-like site holds
    most harvested fake images) cannot fill the quota alone.

    Parameters
    ----------
    files : list of LabelledFile
    per_kind : dict
        Kind -> files wanted.
    seed : int

    Returns
    -------
    list of LabelledFile
    """
    import random

    rng = random.Random(seed)

    def spread(rows: list, n: int) -> list:
        pages: dict = {}
        for f in rows:
            pages.setdefault(f.group, []).append(f)
        queues = [pages[g] for g in sorted(pages)]
        rng.shuffle(queues)
        for queue in queues:
            rng.shuffle(queue)
        out = []
        while len(out) < n and any(queues):
            for queue in queues:
                if queue and len(out) < n:
                    out.append(queue.pop())
        return out

    chosen = []
    for kind, n in per_kind.items():
        rows = sorted((f for f in files if f.kind == kind), key=lambda f: str(f.path))
        real = spread([f for f in rows if f.label == 0], n // 2)
        fake = spread([f for f in rows if f.label == 1], n - len(real))
        chosen += real + fake
    return chosen


def rows_from_records(records: list[dict], overrides: dict, trained_on: dict | None = None
                      ) -> list[tuple[LabelledFile, dict, str]]:
    """Fusion rows from scanned records (``{"path", "sha256", "label", "system", "group", "pair", "kind", "cues"}``).

    Parameters
    ----------
    records : list of dict
        Scanned files with their labels and file-level cues.
    overrides : dict
        Learned cue -> {SHA-256: out-of-fold P(fake) or None}.
    trained_on : dict, optional
        Learned cue -> set of SHA-256 its weights saw (``None``: unknown, every file counts as seen);
        default: every file counts as seen.

    Returns
    -------
    list of (LabelledFile, dict, str)
        Per file its labelled record, its cues and its media kind. A learned cue keeps its scanned
        score on a file its weights never saw, takes the out-of-fold score on one they saw, and
        is left out (``p_fake`` None) when a seen file has no out-of-fold score.
    """
    trained_on = trained_on or {}
    rows = []
    for rec in records:
        if rec.get("status", "ok") != "ok" or rec.get("label") is None:
            continue
        cues = {n: dict(c) for n, c in (rec.get("cues") or {}).items()}
        sha = rec.get("source_sha256") or rec.get("sha256")  # a pseudo-fake shows its source's frames and voice
        for cue in LEARNED_CUES:
            seen = trained_on.get(cue)
            if seen is not None and sha not in seen:
                continue  # the shipped expert never saw this file: its scanned score is out of sample
            score = overrides.get(cue, {}).get(sha)
            if score is not None:
                cues[cue] = {"p_fake": score}
            elif cue in cues:
                cues[cue]["p_fake"] = None
        f = LabelledFile(Path(rec["path"]), rec.get("kind") or "", int(rec["label"]), rec.get("method") or "",
                         rec.get("system") or "", rec.get("group") or "", rec.get("pair") or "",
                         rec.get("sha256") or "", rec.get("licence") or "")
        rows.append((f, cues, rec.get("kind")))
    return rows


def fit_and_save(rows, output, seed: int = 0, target_fpr: float = TARGET_FPR, sources: str = "") -> dict:
    """Fit the fusion on rows (:func:`rows_from_records`) and write the checkpoint with its provenance.

    Returns
    -------
    dict
        Per kind: the cues used, the out-of-fold metrics, the threshold and the uncertain band.

    Raises
    ------
    ValueError
        If no kind had enough labelled files with cues.
    """
    models, _ = fit_fusion(rows, seed=seed, target_fpr=target_fpr)
    rejected = {kind: {"auc": m.metrics.get("auc"), "cues": m.cues} for kind, m in models.items()
                if (m.metrics.get("auc") or 0.0) < MIN_OOF_AUC}
    models = {kind: m for kind, m in models.items() if kind not in rejected}
    if not models:
        raise ValueError(f"no media kind reached out-of-fold AUC {MIN_OOF_AUC} on the harvest: {rejected}")
    provenance = {
        "trained_on": "harvest: real media and published generators' output (../shared/harvest)",
        "data": {kind: {"real": m.metrics["n_real"], "fake": m.metrics["n_fake"]} for kind, m in models.items()},
        "files": [{"sha256": f.sha256, "kind": f.kind, "label": f.label, "system": f.system, "group": f.group,
                   "licence": f.licence} for f, _, _ in rows],
        "licences": sorted({f.licence or "none stated" for f, _, _ in rows}),
        "method": "per media kind, a logistic regression on the cues' log-odds (page-balanced sample weights); "
                  "the cue set chosen by AUC on held-out source pages; AUC, EER, AP, ECE and the threshold (at the "
                  "target false positive rate of real files) out of fold, folds grouped by pair",
        "uncertain_band_rule": BAND_RULE,
        "cues_out_of_fold": sorted({c for _, cues, _ in rows for c in cues if c in LEARNED_CUES
                                    and cues[c].get("p_fake") is not None}),
        "sources": sources,
        "seed": seed,
        "kinds_without_a_model": {k: f"out-of-fold AUC {v['auc']:.3f} < {MIN_OOF_AUC} with cues {v['cues']}"
                                  for k, v in rejected.items()},
        "limits": "misses vocoder copies of real speech, resized or re-compressed generated images, talking "
                  "heads and lip-sync; unknown where no cue applies (see the README)",
    }
    FusionDetector(models, provenance, target_fpr).save(output)
    return {kind: {"cues": m.cues, **m.metrics, "threshold": m.threshold, "uncertain_band": m.band}
            for kind, m in models.items()}


def train(harvest_root, output, models_dir=None, seed: int = 0, extra_roots=(), workers=None, quiet: bool = False,
          target_fpr: float = TARGET_FPR, per_kind: dict | None = None, experts: str = ALL_CUES,
          records_path: str | os.PathLike | None = None, pseudo_fakes: bool = True) -> dict:
    """Scan a seeded subsample of the harvest, fit the cue fusion per kind and write the checkpoint.

    Parameters
    ----------
    harvest_root : path
        The harvest with ``<kind>/MANIFEST.tsv``.
    output : path
        The ``.safetensors`` to write.
    models_dir : path, optional
        Folder of the published experts' weights.
    seed : int
        Seed of the subsample and the folds.
    extra_roots : sequence of path
        More folders holding harvest files (``<kind>/<label>/<name>``).
    workers : int, optional
        Decoding processes.
    quiet : bool
        No progress output.
    target_fpr : float
        False positive rate of the thresholds.
    per_kind : dict, optional
        Files per kind (default :data:`PER_KIND`).
    experts : str
        Experts scanned (default every one installed; see :func:`rows_from_records` for which learned
        scores are used).
    records_path : path, optional
        JSON Lines of scanned records: read where present (files already there are not scanned again)
        and appended to, so that an interrupted run resumes.
    pseudo_fakes : bool
        Add audio-visual offset copies of the sample's real videos with sound
        (:func:`av_offset_pseudo_fakes`), kept beside ``records_path`` (``<records>.pseudo/``).

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

    from deepscan.scanner import Scanner

    files = sample_files(harvest_files(harvest_root, extra_roots), per_kind or PER_KIND, seed)
    sources: dict = {}
    if pseudo_fakes:
        folder = Path(str(records_path) + ".pseudo") if records_path is not None else Path(tempfile.mkdtemp())
        for fake, source_sha in av_offset_pseudo_fakes(files, folder):
            files.append(fake)
            sources[str(fake.path)] = source_sha
    by_path = {str(f.path): f for f in files}
    records = []
    if records_path is not None and Path(records_path).is_file():
        for line in Path(records_path).read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interrupted run: scanned again
            if rec.get("path") in by_path:
                records.append(rec)
    done = {r["path"] for r in records}
    todo = [p for p in by_path if p not in done]
    sink = open(records_path, "a") if records_path is not None else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            empty = FusionDetector({}, {"trained_on": "untrained"}).save(Path(tmp) / "cues-only.safetensors")
            with Scanner(detector=empty, experts=experts, models_dir=models_dir, workers=workers) as scanner:
                for i, result in enumerate(scanner.scan(todo, recursive=False) if todo else ()):
                    f = by_path.get(result.path)
                    if f is not None:
                        rec = {"path": result.path, "status": result.status, "kind": result.media.get("kind"),
                               "cues": result.cues, "label": f.label, "sha256": f.sha256, "system": f.system,
                               "group": f.group, "pair": f.pair, "method": f.method, "licence": f.licence}
                        if result.path in sources:
                            rec["source_sha256"] = sources[result.path]
                        records.append(rec)
                        if sink is not None:
                            sink.write(json.dumps(rec) + "\n")
                            sink.flush()
                    if not quiet and i % 25 == 0:
                        print(f"scanned {i + 1}/{len(todo)}", file=sys.stderr)
    finally:
        if sink is not None:
            sink.close()
    from deepscan.training.expert_speech import EXCLUDED_SHA256  # byte-identical to ../shared/realworld files

    records = [r for r in records if r.get("sha256") not in EXCLUDED_SHA256]
    rows = rows_from_records(records, _oof_overrides(), learned_training_files())
    return fit_and_save(rows, output, seed, target_fpr,
                        sources=f"{harvest_root} + {list(map(str, extra_roots))}, per kind {per_kind or PER_KIND}")


def stamp_real_media(detector_path, report: dict, source: str = "real media (../shared/realworld, never trained on)"
                     ) -> dict:
    """Record the fused verdict's per-kind metrics on real media in a cue-fusion checkpoint's provenance.

    The coefficients, thresholds and calibration are untouched: the numbers only describe the file
    (they are what ``deepscan check`` prints on its detector line). Only the metadata changes, so
    the checkpoint's SHA-256 does too.

    Parameters
    ----------
    detector_path : path
        The cue-fusion checkpoint that was evaluated.
    report : dict
        :func:`deepscan.evaluation.evaluate_media` of that checkpoint (``report["table"]["kinds"]``).
    source : str
        What the numbers were measured on, as printed.

    Returns
    -------
    dict
        Kind -> ``{"auc", "ci95", "ece", "n_real", "n_fake", "coverage"}`` as recorded.

    Raises
    ------
    ValueError
        If the report did not score this checkpoint's fused verdict.
    """
    detector = FusionDetector.load(detector_path)
    if not report.get("fused") or (report.get("detector") or {}).get("sha256") != detector.sha256:
        raise ValueError("the report is not an evaluation of this checkpoint's fused verdict")
    real = {}
    for kind, scorers in (report["table"].get("kinds") or {}).items():
        m = scorers.get("p_fake") or {}
        if m.get("auc") is None:
            continue
        real[kind] = {"auc": round(m["auc"], 3), "ci95": [round(m["auc_lo"], 3), round(m["auc_hi"], 3)],
                      "ece": None if m.get("ece") is None else round(m["ece"], 3),
                      "n_real": m.get("n_real"), "n_fake": m.get("n_fake"), "coverage": m.get("coverage")}
    detector.provenance["real_media"] = real
    detector.provenance["real_media_source"] = source
    detector.provenance["real_media_measured_on_sha256"] = detector.sha256
    detector.save(detector_path)
    return real


def stamp_uncertain_band(detector_path, rows, seed: int = 0, tolerance: float = 1e-4) -> dict:
    """Record the uncertain band per kind in a cue-fusion checkpoint, from its training data's out-of-fold scores.

    The fusion is fitted again on ``rows`` (the files it learned from, with their cues, as
    :func:`train` scans them) to get its out-of-fold scores; the refit must reproduce the
    checkpoint (same cues per kind, coefficients and thresholds within ``tolerance``), or nothing is
    written. Only the metadata changes: the coefficients, intercepts and thresholds are the
    checkpoint's own, so every ``p_fake`` stays what it was; the verdicts change where a file falls
    in the band. The band is measured around the checkpoint's threshold (:func:`uncertain_band_from_oof`).
    Nothing here reads ../shared/realworld.

    Parameters
    ----------
    detector_path : path
        The cue-fusion checkpoint; rewritten in place.
    rows : list of (LabelledFile, dict, str)
        :func:`rows_from_records` of the scanned training files.
    seed : int
        The seed the checkpoint was fitted with (its provenance's ``seed``).
    tolerance : float
        Largest difference allowed between the refit's coefficients, intercepts or thresholds and
        the checkpoint's.

    Returns
    -------
    dict
        Kind -> :func:`uncertain_band_from_oof`'s result, with ``"threshold"``.

    Raises
    ------
    ValueError
        If the refit does not reproduce the checkpoint.
    """
    detector = FusionDetector.load(detector_path)
    refit, oof = fit_fusion(rows, seed=seed, target_fpr=detector.target_fpr)
    problems = []
    for kind, model in detector.kinds.items():
        again = refit.get(kind)
        if again is None or list(again.cues) != list(model.cues):
            problems.append(f"{kind}: cues {None if again is None else again.cues} != {model.cues}")
            continue
        gaps = {"coefficients": float(np.max(np.abs(np.asarray(again.coef) - np.asarray(model.coef)))),
                "intercept": abs(again.intercept - model.intercept), "threshold": abs(again.threshold - model.threshold)}
        problems += [f"{kind}: {what} differ by {gap:.2g}" for what, gap in gaps.items() if gap > tolerance]
    if problems:
        raise ValueError("these rows do not reproduce the checkpoint: " + "; ".join(problems))
    out = {}
    for kind, model in detector.kinds.items():
        band = uncertain_band_from_oof(oof[kind]["labels"], oof[kind]["p_fake"], model.threshold, oof[kind]["weights"])
        model.band, model.band_detail = band["band"], {k: v for k, v in band.items() if k not in ("band", "rule")}
        out[kind] = {**band, "threshold": model.threshold}
    detector.provenance["uncertain_band_rule"] = BAND_RULE
    detector.provenance["uncertain_band_added_to_sha256"] = detector.sha256
    detector.save(detector_path)
    return out
