"""Scanning: files -> windows -> face crops -> features -> detector -> one result per file.

:class:`Scanner` loads the encoders and the detector once and scans many files; :func:`scan` is
the one-call form. Windows of many files are batched into the encoders and the detector, per-file
failures become error results, and results come back in the order the files were given.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from deepscan.errors import DeepscanError, DetectorNotConfiguredError, MediaDecodeError
from deepscan.faces import FaceCropper, FaceDetectorConfig
from deepscan.media import (
    DEFAULT_LIMITS, MIN_AUDIO_SAMPLES, VISUAL_FPS, WINDOW_SECONDS, MediaInfo, MediaLimits, iter_media_files,
    iter_windows, probe,
)
from deepscan.results import (
    MODALITIES, STATUS_OK, VERDICT_UNKNOWN, ScanResult, WindowScore, aggregate_windows, decide, logit_to_p,
)

DEFAULT_BATCH_FRAMES = 64  # face crops per image-encoder batch (windows are batched up to this)
THUMBNAIL_SIZE = 112  # px, side of the face-crop thumbnails kept for reports
THUMBNAILS_PER_FILE = 3  # thumbnails of the most suspicious windows kept per file
DETECTOR_ENV = "DEEPSCAN_DETECTOR"  # environment variable naming the default detector checkpoint

NO_DETECTOR_HELP = (
    "no detector configured: deepscan will not invent a verdict. Pass --detector FILE.safetensors "
    f"(or set {DETECTOR_ENV}). To make a demo detector from synthetic data: `deepscan demo`, or "
    "`deepscan synth DATA && deepscan train DATA --encoders debug -o detector.safetensors`; "
    "to train on your own media: `deepscan train DATA -o detector.safetensors` "
    "(DATA holding real/ and fake/, or real/ alone with --real-only)."
)


@dataclass
class PreparedWindow:
    """A decoded window with its face crops: what the encoders take.

    Attributes
    ----------
    index : int
        Window number within the file.
    start_s, end_s : float
        Window bounds in seconds.
    crops : np.ndarray
        uint8 ``(T, 224, 224, 3)`` face crops (full frame where no face).
    frame_times_s : np.ndarray
        float64 ``(T,)`` frame times in seconds from the start of the media.
    waveform : np.ndarray
        float32 ``(S,)`` mono 16 kHz audio (``S = 0`` when absent or too short for wav2vec2).
    frames_with_face : int
        Frames of the window where a face was found.
    n_faces_max : int
        Most faces seen in one frame.
    audio_reason : str or None
        Why the window has no audio (``"no audio stream"``, ``"audio too short"``).
    """

    index: int
    start_s: float
    end_s: float
    crops: np.ndarray
    frame_times_s: np.ndarray
    waveform: np.ndarray
    frames_with_face: int = 0
    n_faces_max: int = 0
    audio_reason: str | None = None


def prepare_windows(
    path: str | os.PathLike,
    info: MediaInfo,
    cropper: FaceCropper,
    window_s: float = WINDOW_SECONDS,
    visual_fps: float = VISUAL_FPS,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> Iterator[PreparedWindow]:
    """Decode a file window by window and crop the main face of every sampled frame.

    Parameters
    ----------
    path : str or os.PathLike
        The media file.
    info : MediaInfo
        Its :func:`deepscan.media.probe` result.
    cropper : FaceCropper
        Face detector and crop parameters; one tracker follows the face across the file's windows.
    window_s, visual_fps : float
        Window length (s) and visual sampling rate (fps), as the detector was trained with.
    limits : MediaLimits
        Decoding limits.

    Yields
    ------
    PreparedWindow

    Raises
    ------
    DeepscanError
        The typed media errors of :func:`deepscan.media.iter_windows`.
    """
    tracker = cropper.new_tracker()
    for window in iter_windows(path, window_s=window_s, visual_fps=visual_fps, limits=limits, info=info):
        if window.has_frames:
            faces = tracker.crop(window.frames)
            crops, with_face, n_faces = faces.crops, faces.frames_with_face, faces.n_faces_max
        else:
            crops, with_face, n_faces = np.zeros((0, cropper.crop_size, cropper.crop_size, 3), np.uint8), 0, 0
        waveform, audio_reason = window.waveform, None
        if not info.has_audio:
            audio_reason = "no audio stream"
        elif 0 < waveform.shape[0] < MIN_AUDIO_SAMPLES or waveform.shape[0] == 0:
            waveform, audio_reason = waveform[:0], "audio too short"
        yield PreparedWindow(window.index, window.start_s, window.end_s, crops, window.frame_times_s,
                             waveform, with_face, n_faces, audio_reason)


@dataclass
class _FileState:
    """Bookkeeping of one file while its windows are scored."""

    path: str
    info: MediaInfo | None = None
    error: DeepscanError | None = None
    windows: list = field(default_factory=list)  # (PreparedWindow without arrays, WindowScore)
    started: float = field(default_factory=time.perf_counter)
    frames: int = 0
    frames_with_face: int = 0
    n_faces_max: int = 0
    audio_reasons: set = field(default_factory=set)
    thumbnails: list = field(default_factory=list)  # (p_fake, window index, start_s, end_s, JPEG base64)
    done: bool = False


class Scanner:
    """Frozen encoders, face cropper and a detector checkpoint, loaded once to scan many files.

    Parameters
    ----------
    detector : str or os.PathLike or None
        Detector checkpoint (``.safetensors``); ``None`` reads ``$DEEPSCAN_DETECTOR``.
    encoders : str
        ``"default"``, ``"debug"`` or a directory (see :func:`deepscan.hub.resolve_encoders`).
    image_encoder, audio_encoder : str, optional
        Per-encoder overrides: a hub id or a local directory.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    precision : str
        ``"auto"``, ``"fp32"`` or ``"bf16"`` for the encoders (see :mod:`deepscan.precision`).
    face_config : FaceDetectorConfig, optional
        Face detector (Haar by default, YuNet with a model file).
    batch_frames : int
        Face crops per image-encoder batch; windows of several files are batched together.
    limits : MediaLimits
        Decoding limits.

    Raises
    ------
    DetectorNotConfiguredError
        When no detector is given or configured.
    CheckpointError, CheckpointMismatchError
        When the checkpoint is bad or was trained on other encoders.
    ModelLoadingError
        When an encoder cannot be loaded (offline and not cached).
    """

    def __init__(
        self,
        detector: str | os.PathLike | None = None,
        encoders: str = "default",
        image_encoder: str | None = None,
        audio_encoder: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        face_config: FaceDetectorConfig | None = None,
        batch_frames: int = DEFAULT_BATCH_FRAMES,
        limits: MediaLimits = DEFAULT_LIMITS,
    ):
        from deepscan.extractors import load_extractors
        from deepscan.hub import resolve_encoders
        from deepscan.model import load_detector, read_metadata

        detector = detector if detector is not None else os.environ.get(DETECTOR_ENV) or None
        if detector is None:
            raise DetectorNotConfiguredError(NO_DETECTOR_HELP)
        self.device = resolve_device(device)
        specs = resolve_encoders(encoders, image=image_encoder, audio=audio_encoder)
        checkpoint = read_metadata(detector)  # fails fast on a bad file, before loading encoders
        expected = {m: {"id": s.id, "dim": s.dim} for m, s in specs.items()}
        from deepscan.model.checkpoint import check_encoders

        check_encoders(checkpoint, expected)
        self.extractors = load_extractors(specs, device=self.device, precision=precision)
        self.model, self.checkpoint = load_detector(detector, expected_encoders=expected, device=self.device)
        sampling = self.checkpoint.sampling or {}
        self.window_s = float(sampling.get("window_s", WINDOW_SECONDS))
        self.visual_fps = float(sampling.get("visual_fps", VISUAL_FPS))
        self.cropper = FaceCropper(face_config)
        self.batch_frames = int(batch_frames)
        self.limits = limits
        self.detector_info = describe_detector(self.checkpoint, self.extractors.is_debug)

    # -- scanning -------------------------------------------------------------------------------

    def scan(
        self,
        paths,
        recursive: bool = True,
        skip: Callable[[str], bool] | None = None,
        on_progress: Callable[[str, float], None] | None = None,
    ) -> Iterator[ScanResult]:
        """Scan files and directories, yielding one result per file in the order found.

        Parameters
        ----------
        paths : str, os.PathLike or iterable of them
            Files and directories (walked with :func:`deepscan.media.iter_media_files`).
        recursive : bool
            Walk into subdirectories.
        skip : callable(path) -> bool, optional
            Files for which it returns True are not scanned (``--resume``).
        on_progress : callable(path, media_seconds), optional
            Called as windows are scored, with the media seconds just covered.

        Yields
        ------
        ScanResult
        """
        pending: list[_FileState] = []
        unreadable: list[tuple[Path, DeepscanError]] = []
        files = iter_media_files(paths, recursive=recursive, on_error=lambda p, e: unreadable.append((p, e)))

        def states() -> Iterator[_FileState]:
            for path in files:
                while unreadable:
                    p, e = unreadable.pop(0)
                    yield _FileState(str(p), error=e, done=True)
                if skip is not None and skip(str(path)):
                    continue
                yield _FileState(str(path))
            while unreadable:
                p, e = unreadable.pop(0)
                yield _FileState(str(p), error=e, done=True)

        batch: list[tuple[_FileState, PreparedWindow]] = []
        frames_in_batch = 0
        for state in states():
            pending.append(state)
            if not state.done:
                for prepared in self._prepare(state):
                    batch.append((state, prepared))
                    frames_in_batch += max(1, len(prepared.crops))
                    if frames_in_batch >= self.batch_frames:
                        self._score(batch, on_progress)
                        batch, frames_in_batch = [], 0
                state.done = True
            while pending and pending[0].done and not any(s is pending[0] for s, _ in batch):
                yield self._finish(pending.pop(0))
        if batch:
            self._score(batch, on_progress)
        while pending:
            yield self._finish(pending.pop(0))

    def scan_file(self, path: str | os.PathLike) -> ScanResult:
        """Scan one file.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        ScanResult
        """
        return next(iter(self.scan([path], recursive=False)))

    def _prepare(self, state: _FileState) -> Iterator[PreparedWindow]:
        try:
            state.info = probe(state.path, self.limits)
            for prepared in prepare_windows(state.path, state.info, self.cropper, self.window_s,
                                            self.visual_fps, self.limits):
                state.frames += len(prepared.crops)
                state.frames_with_face += prepared.frames_with_face
                state.n_faces_max = max(state.n_faces_max, prepared.n_faces_max)
                if prepared.audio_reason:
                    state.audio_reasons.add(prepared.audio_reason)
                if len(prepared.crops) == 0 and prepared.waveform.shape[0] == 0:
                    continue  # nothing to score in this window
                yield prepared
        except DeepscanError as error:
            state.error = error
        except Exception as error:  # an unforeseen decoder failure must not stop the batch
            state.error = MediaDecodeError(f"could not decode: {type(error).__name__}: {error}", state.path)

    @torch.inference_mode()
    def _score(self, batch, on_progress) -> None:
        items = [(pw.crops, pw.frame_times_s, pw.waveform, pw.start_s) for _, pw in batch]
        try:
            features = self.extractors.encode_many(items)
        except DeepscanError:
            features = []
            for (state, _), item in zip(batch, items):  # isolate the window that failed
                try:
                    features.append(self.extractors.encode_many([item])[0])
                except DeepscanError as error:
                    state.error = state.error or error
                    features.append(None)
        kept = [(s, pw, f) for (s, pw), f in zip(batch, features) if f is not None and s.error is None]
        if not kept:
            return
        output = self.model(**batch_features([f for _, _, f in kept], self.device))
        temperature = self.checkpoint.temperature
        fused = logit_margin(output.logits) / temperature
        per_modality = {m: logit_margin(output.modality_logits[m]) / temperature for m in MODALITIES}
        for row, (state, pw, _) in enumerate(kept):
            modalities = {
                m: (logit_to_p(float(per_modality[m][row])) if bool(output.modality_present[m][row]) else None)
                for m in MODALITIES
            }
            logit = float(fused[row])
            score = WindowScore(pw.index, pw.start_s, pw.end_s, logit_to_p(logit), logit, modalities,
                                len(pw.crops), pw.frames_with_face)
            state.windows.append(score)
            if len(pw.crops):
                state.thumbnails.append((score.p_fake, pw.index, pw.start_s, pw.end_s, thumbnail(pw.crops)))
                state.thumbnails = sorted(state.thumbnails, key=lambda t: -t[0])[:THUMBNAILS_PER_FILE]
            if on_progress is not None:
                on_progress(state.path, max(pw.end_s - pw.start_s, 0.0))

    def _finish(self, state: _FileState) -> ScanResult:
        elapsed = time.perf_counter() - state.started
        media = state.info.to_dict() if state.info is not None else {}
        if state.error is not None:
            return ScanResult.error(state.path, state.error.reason, state.error.message, media=media,
                                    detector=self.detector_info, elapsed_s=elapsed)
        if not state.windows:
            return ScanResult.error(state.path, "nothing to score", "no frames and no usable audio",
                                    media=media, detector=self.detector_info, elapsed_s=elapsed)
        return build_result(state, self.checkpoint, self.detector_info, elapsed)


def build_result(state: _FileState, checkpoint, detector_info: dict, elapsed_s: float) -> ScanResult:
    """Aggregate a file's window scores into its :class:`ScanResult`.

    The file's ``p_fake`` comes from :func:`deepscan.results.aggregate_windows`; a modality's
    ``p_fake`` is the mean of its window probabilities where present. The verdict compares
    ``p_fake`` with the checkpoint's threshold, except for an untrained detector, whose verdict
    is ``"unknown"``.
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
    if checkpoint.trained_on == "untrained":
        verdict, reason = VERDICT_UNKNOWN, "untrained detector: its scores mean nothing"
    return ScanResult(
        path=state.path, status=STATUS_OK, reason=reason, verdict=verdict, p_fake=p_fake,
        threshold=checkpoint.threshold, modalities=modalities, top_modality=top, windows=windows,
        media=state.info.to_dict(),
        faces={"frames": state.frames, "frames_with_face": state.frames_with_face,
               "max_faces": state.n_faces_max, "no_face": no_face},
        detector=detector_info, elapsed_s=elapsed_s,
        thumbnails=[{"window": i, "start_s": a, "end_s": b, "p_fake": p, "jpeg_base64": data}
                    for p, i, a, b, data in state.thumbnails],
    )


def thumbnail(crops: np.ndarray, size: int = THUMBNAIL_SIZE) -> str:
    """Base64 JPEG of the middle crop of a window, for reports.

    Parameters
    ----------
    crops : np.ndarray
        uint8 ``(T, H, W, 3)`` face crops, ``T >= 1``.
    size : int
        Side of the thumbnail in pixels.

    Returns
    -------
    str
        Base64 (ASCII) of a JPEG file.
    """
    import base64
    import io

    from PIL import Image

    image = Image.fromarray(crops[len(crops) // 2]).resize((size, size), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """Fake-vs-real log-odds from 2-class logits ``(B, 2)``: ``logits[:, 1] - logits[:, 0]`` ``(B,)``."""
    return (logits[:, 1] - logits[:, 0]).float()


def batch_features(features: list, device) -> dict:
    """Pad per-window :class:`deepscan.extractors.Features` into the detector's batched inputs.

    Parameters
    ----------
    features : list of Features
        One per window; token counts may differ and may be zero.
    device : torch.device

    Returns
    -------
    dict
        ``image``, ``audio``, ``video`` float32 ``(B, T_max, D)`` (``None`` when absent in every
        window), ``*_mask`` bool ``(B, T_max)`` and ``*_times`` float32 ``(B, T_max)`` seconds.
    """
    out = {}
    for m in MODALITIES:
        tokens = [getattr(f, m) for f in features]
        times = [getattr(f, f"{m}_times_s") for f in features]
        longest = max(t.shape[0] for t in tokens)
        if longest == 0:
            out[m] = None
            continue
        dim = tokens[0].shape[1]
        x = torch.zeros(len(tokens), longest, dim)
        mask = torch.zeros(len(tokens), longest, dtype=torch.bool)
        t = torch.zeros(len(tokens), longest)
        for i, (tok, tim) in enumerate(zip(tokens, times)):
            n = tok.shape[0]
            x[i, :n], mask[i, :n], t[i, :n] = tok.float(), True, tim.float()
        out[m], out[f"{m}_mask"], out[f"{m}_times"] = x.to(device), mask.to(device), t.to(device)
    return out


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"`` / ``"cuda"`` as given.

    Raises
    ------
    ValueError
        For ``"cuda"`` without a CUDA device, or an unknown name.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


def scan(paths, detector=None, encoders: str = "default", **options) -> list[ScanResult]:
    """Scan files and directories with one call.

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files and directories.
    detector : str or os.PathLike, optional
        Detector checkpoint; ``None`` reads ``$DEEPSCAN_DETECTOR``.
    encoders : str
        ``"default"``, ``"debug"`` or a directory of encoders.
    **options
        Other :class:`Scanner` arguments (``device``, ``precision``, ``face_config``, ...).

    Returns
    -------
    list of ScanResult
        One per file, in the order found.

    Raises
    ------
    DetectorNotConfiguredError, CheckpointError, ModelLoadingError
        As :class:`Scanner`.
    """
    scanner = Scanner(detector=detector, encoders=encoders, **options)
    return list(scanner.scan(paths))
