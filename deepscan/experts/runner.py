"""Run the experts on a decoded window: cues (named scores with reasons) and tokens for the detector.

:func:`resolve_experts` (main process) picks the experts, finds their weights through
:mod:`deepscan.weights` and returns a picklable :class:`ExpertsConfig`; :class:`Experts` (built once
per decoding process from that config) runs them on what the scan already decoded, next to the face
cropper, so no file is decoded twice and only small outputs travel back to the main process.

Cues, per window (:meth:`Experts.run`):

``aasist`` (and ``aasist-l``)
    P(spoof) of AASIST on the window's raw 16 kHz waveform, tiled to 4.04 s, neither normalised nor
    trimmed (models/README.md: either pushes every file to "spoof"). Absent where the window has no
    audio, too little, or no speech (silero-vad, :mod:`deepscan.experts.speech`).
``meso4`` (and ``meso4-f2f``)
    1 - P(real) of Meso-4 averaged over the frames with a face, on the aligned 256x256 crops
    :func:`deepscan.faces.meso_crop` cuts. Absent without frames or without a face.
``av_sync``
    The lag between the voice's loudness envelope and mouth-region motion
    (:mod:`deepscan.experts.sync`): its best lag in ms (positive: audio late), the correlation there,
    and a heuristic, uncalibrated suspicion score in [0, 1] (:func:`deepscan.experts.sync.sync_score`);
    per file, the windows' correlation curves are pooled. Absent without audio, speech, frames or a face.

A cue that does not apply carries ``p_fake = None`` and a ``reason``, never a 0.5.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from deepscan.errors import ModelLoadingError
from deepscan.experts.speech import MIN_SPEECH_FRACTION

__all__ = [
    "CUES",
    "DEFAULT_CUES",
    "ExpertsConfig",
    "WindowEvidence",
    "Experts",
    "resolve_experts",
    "cue",
]

# cue name -> (registry name of its weights or None, what it looks at)
CUES = {
    "aasist": ("aasist", "audio"),
    "aasist-l": ("aasist-l", "audio"),
    "meso4": ("meso4-df", "face"),
    "meso4-f2f": ("meso4-f2f", "face"),
    "av_sync": (None, "audio-visual"),
    "synthetic_speech": ("synthetic_speech", "audio"),
    "generated_image": ("generated_image", "image"),
    "generated_image_lite2": ("generated_image_lite2", "image"),
    "face_forgery": ("face_forgery", "face"),
    "provenance": (None, "file"),
}
# generated_image_lite2 runs when named (not fused yet: the table stays within 80 columns without it)
DEFAULT_CUES = ("aasist", "meso4", "av_sync", "synthetic_speech", "generated_image", "face_forgery", "provenance")
# learned experts: cue -> (module, loader); their weights ship inside the package, under the cue's
# name in the weights registry (deepscan.weights.MODELS), which says what each detects and holds its SHA-256
LEARNED = {
    "synthetic_speech": ("deepscan.experts.speech_learned", "load_speech_expert"),
    "generated_image": ("deepscan.experts.generated_image", "load_image_expert"),
    "generated_image_lite2": ("deepscan.experts.generated_image", "load_image_expert"),
    "face_forgery": ("deepscan.experts.face_forgery", "load_face_expert"),
}
FRAMES_PER_WINDOW_IMAGE = 1  # frames of a video window the generated-image expert scores (the middle one)
AASIST_VARIANTS = {"aasist": "AASIST", "aasist-l": "AASIST-L"}
MESO_BATCH = 32  # face crops per Meso-4 call


def cue(p_fake: float | None = None, reason: str | None = None, **facts) -> dict:
    """One cue of one window: ``{"p_fake": float or None, "reason": str or None, **facts}``.

    Parameters
    ----------
    p_fake : float, optional
        The expert's probability (or score) that the window is fake, in [0, 1]; ``None`` when the
        cue does not apply.
    reason : str, optional
        Why the cue does not apply (``"no face"``, ``"no speech"``, ...).
    **facts
        Further numbers (``lag_ms``, ``correlation``, ``frames``).
    """
    return {"p_fake": None if p_fake is None else float(p_fake), "reason": reason, **facts}


@dataclass(frozen=True)
class ExpertsConfig:
    """Which experts run and where their weights are: picklable, sent to the decoding processes.

    Attributes
    ----------
    cues : tuple of str
        Cue names (keys of :data:`CUES`) that run.
    paths : dict
        Cue name -> weight file (``None`` for training-free cues).
    provenance : dict
        Cue name -> ``{"expert", "weights_sha256", "trained_on", "detects", "licence"}`` as
        results report it.
    unavailable : dict
        Cue name -> short reason (:data:`WEIGHTS_UNAVAILABLE`, ...), for asked-for cues whose weights
        could not be had: each result reports the cue absent with this reason.
    problems : dict
        Cue name -> the whole message of why its weights could not be had (the file, the network
        error, what to run), said once per scan rather than in every result.
    speech : bool
        Whether speech presence (silero-vad) gates the audio cues.
    marks : bool
        Whether the file's own declarations are read (the ``provenance`` cue: C2PA, IPTC source type,
        generator metadata, watermarks; :mod:`deepscan.experts.provenance`), once per file by the scanner.
    """

    cues: tuple = ()
    paths: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    unavailable: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)
    speech: bool = True
    marks: bool = False

    def key(self) -> dict:
        """What of the config shapes the cues: part of the feature-cache key."""
        return {"cues": list(self.cues), "weights": {c: self.provenance[c].get("weights_sha256") for c in self.cues},
                "speech": self.speech, "format": EVIDENCE_FORMAT}


WEIGHTS_UNAVAILABLE = "weights not available"  # a cue's reason when its expert's weights could not be had
EVIDENCE_FORMAT = 3  # bump when an expert's preprocessing or its cue's meaning changes (3: the generated_image_lite2 cue on the EfficientNet-Lite2 backbone)


def resolve_experts(names="auto", models_dir: str | os.PathLike | None = None) -> ExpertsConfig:
    """Choose the experts and find (or fetch, on first use) their weights.

    Parameters
    ----------
    names : str or sequence of str
        ``"auto"``: :data:`DEFAULT_CUES`, each one whose weights cannot be had (offline and not
        present) reported as unavailable instead of failing; ``"none"``: no experts; or cue names
        (a comma-separated string or a list), which must all load.
    models_dir : str or os.PathLike, optional
        Local folder of weight files (default ``$DEEPSCAN_MODELS_DIR``).

    Returns
    -------
    ExpertsConfig

    Raises
    ------
    ValueError
        For an unknown cue name.
    ModelLoadingError
        When an explicitly named expert's weights cannot be had.
    """
    from deepscan import weights

    if isinstance(names, str):
        if names == "none":
            return ExpertsConfig(speech=False)
        strict = names != "auto"
        wanted = list(DEFAULT_CUES) if names == "auto" else [n.strip() for n in names.split(",") if n.strip()]
    else:
        strict, wanted = True, list(names)
    unknown = [n for n in wanted if n not in CUES]
    if unknown:
        raise ValueError(f"unknown expert(s) {', '.join(unknown)}; known: {', '.join(CUES)}")
    marks = "provenance" in wanted
    wanted = [n for n in wanted if n != "provenance"]
    cues, paths, provenance, unavailable, problems = [], {}, {}, {}, {}
    for name in wanted:
        registry, _ = CUES[name]
        if name in LEARNED:
            try:
                path = str(weights.model_path(registry))
            except ModelLoadingError as error:
                if strict:
                    raise
                unavailable[name] = "weights not shipped in this installation"
                problems[name] = error.message
                continue
            cues.append(name)
            paths[name] = path
            provenance[name] = _learned_provenance(name, path)
            continue
        if registry is None:
            cues.append(name)
            paths[name] = None
            provenance[name] = {"expert": name, "weights_sha256": None, "licence": None,
                                "trained_on": "training-free measurement",
                                "detects": "audio-visual offset: voice energy vs mouth motion (heuristic score)"}
            continue
        entry = weights.get_entry(registry)
        try:
            path = weights.model_path(registry, models_dir)
        except ModelLoadingError as error:
            if strict:
                raise
            unavailable[name] = WEIGHTS_UNAVAILABLE
            problems[name] = error.message
            continue
        cues.append(name)
        paths[name] = str(path)
        provenance[name] = {"expert": entry.name, "weights_sha256": entry.sha256, "licence": entry.licence,
                            "trained_on": entry.trained_on, "detects": entry.detects}
    return ExpertsConfig(tuple(cues), paths, provenance, unavailable, problems, speech=True, marks=marks)


def _learned_provenance(name: str, path: str) -> dict:
    """Provenance of a packaged learned expert from its safetensors metadata."""
    import json

    from safetensors import safe_open

    from deepscan.weights import get_entry, sha256_of

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    summary = ""
    for key in ("provenance", "metadata", "deepscan"):
        if key in meta:
            try:
                data = json.loads(meta[key])
            except ValueError:
                continue
            data = data.get("provenance", data) if isinstance(data, dict) else {}
            summary = str(data.get("trained_on") or data.get("data") or "")
            break
    return {"expert": name, "weights_sha256": sha256_of(path), "licence": "see the model card",
            "trained_on": summary or "deepscan harvest (see the model card in the README)",
            "detects": get_entry(name).detects}


@dataclass
class WindowEvidence:
    """What the experts found in one window.

    Attributes
    ----------
    cues : dict
        Cue name -> :func:`cue` dict.
    tokens : dict
        Cue name -> ``(tokens float32 (T, D), times float32 (T,) seconds from the window start)``:
        the expert's penultimate embedding with its logit appended, for the detector.
    speech : float or None
        Fraction of the window's audio with speech (``None`` without audio or speech detection).
    sync : dict or None
        ``{"n": frames used, "r": correlation per lag of deepscan.experts.sync.DEFAULT_LAGS_MS}``: the
        window's lag curve, kept so that the file-level lag pools every window's curve.
    """

    cues: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    speech: float | None = None
    sync: tuple | None = None


class Experts:
    """The experts of an :class:`ExpertsConfig`, loaded once, run window by window.

    Parameters
    ----------
    config : ExpertsConfig
    threads : int, optional
        Torch threads are left as the process has them; ONNX sessions use this many (default 1).

    Raises
    ------
    ModelLoadingError
        When a weight file cannot be loaded.
    """

    def __init__(self, config: ExpertsConfig, threads: int = 1):
        self.config = config
        self.aasist = {}
        self.meso = {}
        self.learned = {}
        for name in config.cues:
            if name in LEARNED:
                import importlib

                module, loader = LEARNED[name]
                self.learned[name] = getattr(importlib.import_module(module), loader)(config.paths[name])
                continue
            if name in AASIST_VARIANTS:
                from deepscan.experts.aasist import load_aasist

                self.aasist[name] = load_aasist(config.paths[name], AASIST_VARIANTS[name])
            elif name.startswith("meso4"):
                from deepscan.experts.meso import load_meso4

                self.meso[name] = load_meso4(config.paths[name])
        self.speech = None
        if config.speech and (self.aasist or "av_sync" in config.cues or "synthetic_speech" in self.learned):
            from deepscan.experts.speech import SpeechDetector

            self.speech = SpeechDetector()

    @torch.inference_mode()
    def run(self, faces, frame_times_s: np.ndarray, waveform: np.ndarray, start_s: float,
            audio_reason: str | None, has_frames: bool, frames: np.ndarray | None = None) -> WindowEvidence:
        """Run every configured expert on one window.

        Parameters
        ----------
        faces : deepscan.faces.FaceCrops or None
            The window's face crops (``None`` without frames).
        frame_times_s : np.ndarray
            float64 ``(T,)`` frame times in seconds from the start of the media.
        waveform : np.ndarray
            float32 ``(S,)`` mono 16 kHz audio of the window (``S = 0`` without usable audio).
        start_s : float
            Window start in seconds.
        audio_reason : str or None
            Why the window has no usable audio (``"no audio stream"``, ``"audio too short"``).
        has_frames : bool
            Whether the window has visual frames.
        frames : np.ndarray, optional
            uint8 RGB ``(T, H, W, 3)`` full frames (for the generated-image expert).

        Returns
        -------
        WindowEvidence
        """
        evidence = WindowEvidence()
        speech_reason = audio_reason or (None if waveform.shape[0] else "no audio")
        if speech_reason is None and self.speech is not None:
            evidence.speech = float(self.speech.speech_fraction(waveform))
            if evidence.speech < MIN_SPEECH_FRACTION:
                speech_reason = "no speech"
        duration = waveform.shape[0] / 16_000.0
        for name, model in self.aasist.items():
            evidence.cues[name] = self._aasist(name, model, waveform, speech_reason, duration, evidence)
        face_reason = None if has_frames else "no frames"
        if face_reason is None and (faces is None or not faces.found.any()):
            face_reason = "no face"
        for name, model in self.meso.items():
            evidence.cues[name] = self._meso(name, model, faces, frame_times_s, start_s, face_reason, evidence)
        if "synthetic_speech" in self.learned:
            evidence.cues["synthetic_speech"] = self._learned_speech(waveform, speech_reason, evidence)
        for name in ("generated_image", "generated_image_lite2"):
            if name in self.learned:
                evidence.cues[name] = self._learned_image(name, frames, frame_times_s, start_s, evidence)
        if "face_forgery" in self.learned:
            evidence.cues["face_forgery"] = self._learned_face(faces, frame_times_s, start_s, face_reason, evidence)
        if "av_sync" in self.config.cues:
            evidence.cues["av_sync"] = self._sync(faces, frame_times_s, waveform, start_s,
                                                  face_reason or speech_reason, evidence)
        return evidence

    def _aasist(self, name, model, waveform, reason, duration, evidence) -> dict:
        if reason is not None:
            return cue(reason=reason)
        from deepscan.experts.aasist import p_spoof, window_input

        logits, embedding = model(torch.from_numpy(window_input(waveform))[None])
        margin = (logits[:, 0] - logits[:, 1]).float()  # spoof-vs-bona-fide log-odds
        evidence.tokens[name] = (torch.cat([embedding.float(), margin[:, None]], dim=1),
                                 torch.tensor([duration / 2], dtype=torch.float32))
        return cue(float(p_spoof(logits)[0]))

    def _meso(self, name, model, faces, frame_times_s, start_s, reason, evidence) -> dict:
        if reason is not None:
            return cue(reason=reason)
        from deepscan.experts.meso import preprocess

        rows = np.flatnonzero(faces.found)
        logits, embeddings = [], []
        for i in range(0, len(rows), MESO_BATCH):
            logit, embedding = model(preprocess(faces.meso_crops[rows[i:i + MESO_BATCH]]))
            logits.append(logit.float())
            embeddings.append(embedding.float())
        logit_real = torch.cat(logits)
        times = torch.as_tensor(np.asarray(frame_times_s)[rows] - start_s, dtype=torch.float32)
        evidence.tokens[name] = (torch.cat([torch.cat(embeddings), -logit_real[:, None]], dim=1), times)
        p_fake = float((1.0 - torch.sigmoid(logit_real)).mean())
        return cue(p_fake, frames=int(len(rows)))

    def _learned_speech(self, waveform, reason, evidence) -> dict:
        if reason is not None:
            return cue(reason=reason)
        p_fake, tokens, times = self.learned["synthetic_speech"].score(waveform)
        evidence.tokens["synthetic_speech"] = (torch.as_tensor(np.asarray(tokens), dtype=torch.float32),
                                               torch.as_tensor(np.asarray(times), dtype=torch.float32))
        return cue(p_fake)

    def _learned_image(self, name, frames, frame_times_s, start_s, evidence) -> dict:
        if frames is None or not len(frames):
            return cue(reason="no frames")
        if name == "generated_image_lite2" and len(frames) > 1:  # ~0.3 s a large frame on 2 cores: stills only
            return cue(reason="still images only")
        middle = len(frames) // 2
        expert, frame = self.learned[name], frames[middle]
        why = expert.unreadable(frame)
        if why is not None:
            return cue(reason=why)
        scored = expert.score_frame(frame) if hasattr(expert, "score_frame") else None  # with its crop map
        p_fake, token = (scored["p_fake"], scored["token"]) if scored else expert.score(frame)
        evidence.tokens[name] = (
            torch.as_tensor(np.asarray(token), dtype=torch.float32)[None],
            torch.tensor([float(frame_times_s[middle]) - start_s], dtype=torch.float32))
        return cue(p_fake, **({"patches": scored["patches"]} if scored else {}))

    def _learned_face(self, faces, frame_times_s, start_s, reason, evidence) -> dict:
        if reason is not None:
            return cue(reason=reason)
        rows = np.flatnonzero(faces.found)
        expert = self.learned["face_forgery"]
        crops = faces.crops if getattr(expert, "crop", "meso") == "clip" else faces.meso_crops  # the crop it learned on
        p_fake, tokens = expert.score(crops[rows])
        evidence.tokens["face_forgery"] = (
            torch.as_tensor(tokens, dtype=torch.float32),
            torch.as_tensor(np.asarray(frame_times_s)[rows] - start_s, dtype=torch.float32))
        return cue(float(np.mean(p_fake)), frames=int(len(rows)))

    def _sync(self, faces, frame_times_s, waveform, start_s, reason, evidence) -> dict:
        from deepscan.experts import sync

        if reason is not None:
            return cue(reason=reason)
        times = np.asarray(frame_times_s, dtype=np.float64)
        motion = sync.mouth_motion(faces.mouth_crops, faces.found)
        estimate = sync.best_lag(motion, sync.AudioEnvelope(waveform, start_s=start_s), times, speech=True)
        if not estimate.ok:
            return cue(reason=estimate.reason)
        evidence.sync = {"n": int(estimate.n_frames), "r": [round(float(r), 5) for r in estimate.correlations]}
        evidence.tokens["av_sync"] = (
            torch.tensor([[estimate.lag_ms / 1000.0, estimate.correlation]], dtype=torch.float32),
            torch.tensor([float(times.mean()) - start_s], dtype=torch.float32))
        return cue(sync.sync_score(estimate), lag_ms=round(float(estimate.lag_ms), 1),
                   correlation=round(float(estimate.correlation), 4))
