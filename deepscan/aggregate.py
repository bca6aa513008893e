"""From a file's window scores to its :class:`~deepscan.results.ScanResult`.

:class:`FileState` is the bookkeeping of one file while the scanner scores its windows (media facts,
face counts, window scores, expert cues, thumbnails); :func:`build_result` aggregates it into the
per-file result, and :func:`describe_detector` is the ``detector`` block every result carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepscan.errors import DeepscanError
from deepscan.experts.provenance import P_DECLARED_AI, Provenance, cue as provenance_cue, prov_column
from deepscan.media import MediaInfo
from deepscan.results import (
    MODALITIES, STATUS_OK, VERDICT_UNKNOWN, ScanResult, aggregate_windows, decide, logit_to_p, uncertain_band,
)

__all__ = ["FileState", "build_result", "build_fusion_result", "describe_detector", "apply_provenance"]


@dataclass
class FileState:
    """Bookkeeping of one file while its windows are scored."""

    path: str
    info: MediaInfo | None = None
    error: DeepscanError | None = None
    windows: list = field(default_factory=list)  # WindowScore
    started: float | None = None  # perf_counter() when its first message arrived
    frames: int = 0
    frames_with_face: int = 0
    n_faces_max: int = 0
    audio_reasons: set = field(default_factory=set)
    thumbnails: list = field(default_factory=list)  # (p_fake, window index, start_s, end_s, JPEG base64)
    done: bool = False  # all its windows have been produced (or it failed)
    unscored: int = 0  # windows produced but not scored yet
    key: str | None = None  # feature-cache key; None when caching is off or the file is unreadable
    from_cache: bool = False
    cached: list = field(default_factory=list)  # (window meta dict, Features) to store when done
    too_long_to_cache: bool = False  # more than MAX_CACHED_WINDOWS windows: features are not kept
    face_detector: str | None = None  # name of the face detector that ran
    sync: list = field(default_factory=list)  # (window index, [frame times, mouth motion, envelope]) for av_sync


def build_result(state: FileState, checkpoint, detector_info: dict, elapsed_s: float,
                 experts_config=None) -> ScanResult:
    """Aggregate a file's window scores into its :class:`ScanResult`.

    The file's ``p_fake`` comes from :func:`deepscan.results.aggregate_windows`; a modality's
    ``p_fake`` is the mean of its window probabilities where present. The verdict compares
    ``p_fake`` with the checkpoint's threshold and the minimum uncertain band around it
    (:func:`deepscan.results.decide`: such checkpoints record no band), except for an untrained
    detector, whose verdict is ``"unknown"``. Cues are aggregated by :func:`file_cues`.
    """
    windows = sorted(state.windows, key=lambda w: w.index)
    p_fake = logit_to_p(aggregate_windows([w.logit for w in windows]))
    no_face = state.frames > 0 and state.frames_with_face == 0
    modalities = {}
    for m in MODALITIES:
        scores = [w.modalities[m] for w in windows if w.modalities.get(m) is not None]
        reason = None
        if m == "audio" and not scores:
            reason = ", ".join(sorted(state.audio_reasons)) or "no audio"
        elif m in ("image", "video") and state.frames == 0:
            reason = "no frames"
        elif m == "video" and not scores:
            reason = "single frame: no motion"
        elif m in ("image", "video") and no_face:
            reason = "no face"
        modalities[m] = {"present": bool(scores), "p_fake": float(np.mean(scores)) if scores else None,
                         "reason": reason}
    present = {m: v["p_fake"] for m, v in modalities.items() if v["p_fake"] is not None}
    top = max(present, key=present.get) if present else None
    reason = "no face" if no_face else None
    verdict = decide(p_fake, checkpoint.threshold)
    band = list(uncertain_band(checkpoint.threshold))
    if checkpoint.trained_on == "untrained":
        verdict, reason = VERDICT_UNKNOWN, "untrained detector: its scores mean nothing"
    return ScanResult(
        path=state.path, status=STATUS_OK, reason=reason, verdict=verdict, p_fake=p_fake,
        threshold=checkpoint.threshold, uncertain_band=band, modalities=modalities, top_modality=top, windows=windows,
        media=state.info.to_dict(),
        faces={"frames": state.frames, "frames_with_face": state.frames_with_face,
               "max_faces": state.n_faces_max, "no_face": no_face, "detector": state.face_detector},
        detector=detector_info, elapsed_s=elapsed_s,
        thumbnails=[{"window": i, "start_s": a, "end_s": b, "p_fake": p, "jpeg_base64": data}
                    for p, i, a, b, data in state.thumbnails],
        cues=file_cues(windows, state.sync, experts_config) if experts_config is not None else {},
    )


def build_fusion_result(state: FileState, fusion, detector_info: dict, elapsed_s: float, experts_config) -> ScanResult:
    """A file's result under the cue-fusion detector (:mod:`deepscan.model.fusion`).

    The file's cues (:func:`file_cues`) go through the fusion model of its media kind; the verdict
    compares the fused ``p_fake`` with that kind's threshold and uncertain band
    (:meth:`deepscan.model.fusion.FusionDetector.band`, :func:`deepscan.results.decide`). Where none of the model's cues applies
    (no face, no speech, no expert for this kind of fake), the verdict is ``"unknown"`` with the
    cues' reasons, never a guess. Where a cue the model uses could not run because its expert's
    weights could not be had, and the file has what that cue reads (an audio stream for the audio
    cues, frames for the visual ones, both for lip-sync), the verdict is ``"unknown"`` too: the
    model and its threshold were fitted with that cue, and without it the fused score would read
    its absence as no evidence. Each modality's ``p_fake`` is the mean of the scores of its cues
    that the kind's model uses (the ones the verdict rests on); a modality whose cues it does not
    use says so.
    """
    from deepscan.model.fusion import CUE_MODALITY

    windows = sorted(state.windows, key=lambda w: w.index)
    cues = file_cues(windows, state.sync, experts_config)
    kind = state.info.kind
    logit = fusion.logit(kind, cues)
    threshold = fusion.threshold(kind)
    band = fusion.band(kind)
    no_face = state.frames > 0 and state.frames_with_face == 0
    used = set(fusion.kinds[kind].cues) if kind in fusion.kinds else None  # the cues the verdict rests on
    modalities = {}
    for m in MODALITIES:
        mine = {n: c for n, c in cues.items() if CUE_MODALITY.get(n) == m}
        scores = [c["p_fake"] for n, c in mine.items() if c.get("p_fake") is not None and (used is None or n in used)]
        reasons = sorted({c.get("reason") for c in mine.values() if c.get("reason")})
        if scores:
            reason = None
        elif m == "video" and kind == "image":
            reason = "a still image"
        elif any(c.get("p_fake") is not None for c in mine.values()):
            reason = f"its cues are not used by the detector for {kind} media"
        else:
            reason = ", ".join(reasons) or "no cue"
        modalities[m] = {"present": bool(scores), "p_fake": float(np.mean(scores)) if scores else None,
                         "reason": reason}
    present = {m: v["p_fake"] for m, v in modalities.items() if v["p_fake"] is not None}
    top = max(present, key=present.get) if present else None
    has_audio, has_frames = bool(state.info.has_audio), kind != "audio"
    could_apply = {"audio": has_audio, "image": has_frames, "video": has_audio and has_frames}
    missing = [n for n in (fusion.kinds[kind].cues if kind in fusion.kinds else ())
               if n in experts_config.unavailable and could_apply.get(CUE_MODALITY.get(n), True)]
    if kind not in fusion.kinds:
        why = (fusion.provenance.get("kinds_without_a_model") or {}).get(kind, "no training data")
        verdict, p_fake, reason = VERDICT_UNKNOWN, None, f"no validated model for {kind} media ({why})"
    elif missing:
        verdict, p_fake = VERDICT_UNKNOWN, None
        reason = f"{', '.join(missing)}: {experts_config.unavailable[missing[0]]}"
    elif logit is None:
        why = sorted({c["reason"] for c in cues.values() if c.get("reason")})
        verdict, p_fake, reason = VERDICT_UNKNOWN, None, "no cue applies: " + ("; ".join(why) or "none ran")
    else:
        p_fake = logit_to_p(logit)
        verdict, reason = decide(p_fake, threshold, band), ("no face" if no_face else None)
    return ScanResult(
        path=state.path, status=STATUS_OK, reason=reason, verdict=verdict, p_fake=p_fake, threshold=threshold,
        uncertain_band=list(band),
        modalities=modalities, top_modality=top, windows=windows, media=state.info.to_dict(),
        faces={"frames": state.frames, "frames_with_face": state.frames_with_face,
               "max_faces": state.n_faces_max, "no_face": no_face, "detector": state.face_detector},
        detector=detector_info, elapsed_s=elapsed_s,
        thumbnails=[{"window": i, "start_s": a, "end_s": b, "p_fake": p if p >= 0 else None, "jpeg_base64": data}
                    for p, i, a, b, data in state.thumbnails],
        cues=cues,
    )


def pooled_sync(curves: list[dict]):
    """The file-level lag from per-window correlation curves, weighted by their frames.

    Parameters
    ----------
    curves : list of dict
        ``{"n": frames used, "r": correlations over deepscan.experts.sync.DEFAULT_LAGS_MS}`` per window.

    Returns
    -------
    deepscan.experts.sync.SyncEstimate or None
        ``None`` when fewer than :data:`deepscan.experts.sync.MIN_FRAMES` frames were used in all.
    """
    from deepscan.experts.sync import DEFAULT_LAGS_MS, MIN_FRAMES, SyncEstimate

    curves = [c for c in curves if c and len(c.get("r") or ()) == len(DEFAULT_LAGS_MS)]
    n = sum(int(c["n"]) for c in curves)
    if n < MIN_FRAMES:
        return None
    pooled = sum(np.asarray(c["r"], dtype=np.float64) * int(c["n"]) for c in curves) / n
    return SyncEstimate.from_curve(DEFAULT_LAGS_MS, np.clip(pooled, -1.0, 1.0), n)


def file_cues(windows: list, sync_signals: list, experts_config) -> dict:
    """Each expert's file-level cue from its window cues, with its provenance.

    A cue's file ``p_fake`` is the mean of its window scores where it applies; where it applies in no
    window, ``p_fake`` is ``None`` and ``reason`` the most frequent window reason. ``av_sync`` is
    estimated once over the whole file from the windows' correlation curves, pooled by frames used
    (:func:`pooled_sync`), so that a constant offset shows even where single windows are too short to tell.

    Parameters
    ----------
    windows : list of WindowScore
        In time order, with their ``cues``.
    sync_signals : list
        ``(window index, {"n": frames, "r": correlation curve})`` per window with an ``av_sync`` estimate.
    experts_config : deepscan.experts.runner.ExpertsConfig

    Returns
    -------
    dict
        Cue name -> ``{"p_fake", "reason", "windows", **provenance, ...}``.
    """
    from collections import Counter

    cues = {}
    for name in experts_config.cues:
        scores = [w.cues[name]["p_fake"] for w in windows if (w.cues.get(name) or {}).get("p_fake") is not None]
        reasons = Counter(w.cues[name].get("reason") for w in windows if w.cues.get(name) and
                          w.cues[name].get("p_fake") is None)
        entry = {"p_fake": float(np.mean(scores)) if scores else None,
                 "reason": None if scores else (reasons.most_common(1)[0][0] if reasons else "not run"),
                 "windows": len(scores), **experts_config.provenance[name]}
        if name == "av_sync":
            estimate = pooled_sync([signal for _, signal in sorted(sync_signals, key=lambda s: s[0])])
            if estimate is not None:
                from deepscan.experts.sync import sync_score

                entry.update(p_fake=sync_score(estimate), reason=None, lag_ms=round(float(estimate.lag_ms), 1),
                             correlation=round(float(estimate.correlation), 4))
        cues[name] = entry
    for name, why in experts_config.unavailable.items():
        cues[name] = {"p_fake": None, "reason": why, "windows": 0}
    return cues


def describe_detector(checkpoint, debug_encoders: bool = False) -> dict:
    """The ``detector`` block of every result: name, hash, what it was trained on, and a label.

    The label is set whenever the detector is not a real one (untrained, trained on synthetic or
    debug data, or run on debug encoders), so every output format says so.
    """
    synthetic = checkpoint.is_synthetic or debug_encoders
    label = None
    if checkpoint.trained_on == "untrained":
        label = "UNTRAINED detector: scores are meaningless, verdicts withheld"
    elif synthetic:
        label = (f"DEMO detector trained on {checkpoint.trained_on} data"
                 + (" with debug encoders" if debug_encoders else "")
                 + ": verdicts are a demonstration, not a real judgement")
    return {"name": checkpoint.name, "sha256": checkpoint.sha256, "trained_on": checkpoint.trained_on,
            "synthetic": synthetic, "label": label,
            "data": (checkpoint.provenance or {}).get("data"),
            "metrics": (checkpoint.provenance or {}).get("metrics")}


def apply_provenance(result: ScanResult, prov: Provenance) -> ScanResult:
    """Add what a file says about itself (:mod:`deepscan.experts.provenance`) to its result.

    The ``provenance`` cue joins the result's cues with its ``p_fake``, ``reason``, the compact
    ``column`` text of the table and every fact found (``facts``). A declared AI origin (a C2PA or
    IPTC ``trainedAlgorithmicMedia`` source type, a generator's metadata, an open generator's
    watermark) makes the verdict ``fake`` with the declaration as the reason, whatever the pixels
    scored: ``p_fake`` becomes at least :data:`~deepscan.experts.provenance.P_DECLARED_AI` and the
    detector's own score stays in ``modalities``. No mark found, a capture claim or an invalid
    manifest leave ``p_fake`` and the verdict as they were: the absence of a mark is no evidence.

    Parameters
    ----------
    result : ScanResult
        A scanned file's result (``status="ok"``); an error result is returned unchanged.
    prov : Provenance
        :func:`deepscan.experts.provenance.read_provenance` of the same file.

    Returns
    -------
    ScanResult
        ``result``, updated in place.
    """
    if result.status != STATUS_OK:
        return result
    p_fake, reason = provenance_cue(prov)
    result.cues = {**(result.cues or {}), "provenance": {
        "p_fake": p_fake, "reason": reason, "column": prov_column(prov), "expert": "provenance",
        "weights_sha256": None, "licence": None, "trained_on": "none: reads what the file declares",
        "detects": "declared AI origin: C2PA, IPTC source type, generator metadata, watermarks",
        "facts": {k: v for k, v in prov.as_dict().items() if k != "elapsed_s"}}}
    if p_fake is not None and p_fake >= P_DECLARED_AI:
        result.verdict = "fake"
        result.reason = reason
        result.p_fake = max(float(result.p_fake or 0.0), float(p_fake))
        result.margin = ScanResult.margin_of(result.p_fake, result.threshold)
    return result

