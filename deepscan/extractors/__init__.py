"""Frozen, stateless feature extractors: face crops and a waveform in, timed token sequences out.

``load_extractors(resolve_encoders("default"))`` gives an :class:`Extractors` bundle of

- :class:`~deepscan.extractors.image.ImageEncoder`: CLIP vision tower, crops -> ``(Ti, 512)``;
- :class:`~deepscan.extractors.audio.AudioEncoder`: wav2vec2, waveform -> ``(Ta, 768)`` at 12.5 Hz;
- :class:`~deepscan.extractors.video.VideoEncoder`: temporal change of the image embeddings ->
  ``(Tv, 512)`` at 2 Hz (8 fps input);

whose :meth:`Extractors.encode` returns :class:`Features`. Nothing here has trainable parameters;
everything runs under ``torch.inference_mode()`` in the precision chosen by :mod:`deepscan.precision`.
:attr:`Extractors.config` and :meth:`Extractors.config_hash` identify the features: detector
checkpoints record the former, the feature cache keys on the latter.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..hub import DEBUG_ID, EncoderSpec, cached_location, load_pretrained, resolve_encoders
from ..precision import INT8, resolve_precision
from .audio import AUDIO_TOKEN_RATE, AudioEncoder
from .image import ImageEncoder, as_uint8_images
from .video import VIDEO_SEGMENT_FRAMES, VideoEncoder

__all__ = [
    "FEATURES_FORMAT",
    "AUDIO_TOKEN_RATE",
    "VIDEO_SEGMENT_FRAMES",
    "Features",
    "Extractors",
    "load_extractors",
    "ImageEncoder",
    "AudioEncoder",
    "VideoEncoder",
]

FEATURES_FORMAT = 1  # bump when preprocessing or pooling changes the features of the same weights


def _empty(dim: int) -> torch.Tensor:
    return torch.zeros((0, dim), dtype=torch.float32)


def _no_times() -> torch.Tensor:
    return torch.zeros((0,), dtype=torch.float32)


@dataclass
class Features:
    """Timed token sequences of one window; any modality may be empty (``T = 0``) when absent.

    All tensors are float32 on the CPU; times are seconds from the start of the window.

    Attributes
    ----------
    image : torch.Tensor
        ``(Ti, 512)`` one CLIP embedding per frame.
    image_times_s : torch.Tensor
        ``(Ti,)`` frame times.
    audio : torch.Tensor
        ``(Ta, 768)`` pooled wav2vec2 tokens (12.5 Hz).
    audio_times_s : torch.Tensor
        ``(Ta,)`` token centres.
    video : torch.Tensor
        ``(Tv, 512)`` temporal-change tokens.
    video_times_s : torch.Tensor
        ``(Tv,)`` segment centres.
    experts : dict
        Cue name -> ``(tokens (Te, De), times (Te,))`` from the experts
        (:class:`deepscan.experts.runner.WindowEvidence`): each one's penultimate embedding with its
        logit appended, per window (AASIST), per frame with a face (Meso-4) or per estimate (sync).
    """

    image: torch.Tensor = field(default_factory=lambda: _empty(512))
    image_times_s: torch.Tensor = field(default_factory=_no_times)
    audio: torch.Tensor = field(default_factory=lambda: _empty(768))
    audio_times_s: torch.Tensor = field(default_factory=_no_times)
    video: torch.Tensor = field(default_factory=lambda: _empty(512))
    video_times_s: torch.Tensor = field(default_factory=_no_times)
    experts: dict = field(default_factory=dict)

    def lengths(self) -> dict[str, int]:
        """Token counts per modality, e.g. ``{"image": 32, "audio": 50, "video": 8}``."""
        return {"image": self.image.shape[0], "audio": self.audio.shape[0], "video": self.video.shape[0]}


def _hub_revision(spec: EncoderSpec) -> str | None:
    # Record the commit actually loaded, so caches and checkpoints notice a moved branch.
    location = cached_location(spec)
    if spec.is_local or location is None:
        return spec.revision
    parent = os.path.basename(os.path.dirname(location))
    return os.path.basename(location) if parent == "snapshots" else spec.revision


class Extractors:
    """The three frozen encoders of one configuration, and their identity.

    Parameters
    ----------
    image : ImageEncoder
    audio : AudioEncoder
    video : VideoEncoder
    specs : dict[str, EncoderSpec]
        Where the image and audio weights came from.
    dtype : torch.dtype
        Compute dtype the encoders run in.

    Attributes
    ----------
    config : dict
        JSON-ready identity of the features: per modality the encoder ``id`` (``"debug"`` for the
        debug preset), ``revision`` (the cached commit for hub models), ``dim`` and the
        preprocessing / pooling parameters, plus ``debug`` and ``format``. Device and fp32/bf16
        precision are not part of it (bf16 features agree with fp32 ones to cosine >= 0.999); int8
        adds ``"compute": "int8"`` (cosine >= 0.99), so its features are cached apart.
    is_debug : bool
        True when any encoder is a debug encoder; such features must be labelled as such.
    """

    def __init__(self, image: ImageEncoder, audio: AudioEncoder, video: VideoEncoder, specs: dict, dtype: torch.dtype):
        self.image, self.audio, self.video = image, audio, video
        self.specs = dict(specs)
        self.dtype = dtype
        self.is_debug = any(spec.is_debug for spec in self.specs.values())
        self.config = {
            "format": FEATURES_FORMAT,
            "debug": self.is_debug,
            "image": {**self._identity(self.specs["image"], image.dim), **image.config},
            "audio": {**self._identity(self.specs["audio"], audio.dim), **audio.config},
            "video": {"id": self.specs["image"].id, "dim": video.dim, **video.config},
        }
        if dtype == INT8:
            self.config["compute"] = "int8"

    @staticmethod
    def _identity(spec: EncoderSpec, dim: int) -> dict:
        if spec.is_debug:
            from .debug import DEBUG_SEED

            return {"id": DEBUG_ID, "revision": None, "dim": dim, "seed": DEBUG_SEED}
        return {"id": spec.id, "revision": _hub_revision(spec), "dim": dim}

    def config_hash(self) -> str:
        """Stable 16-hex-digit SHA-256 digest of :attr:`config` (sorted keys, compact JSON)."""
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def encode_images(self, crops_list) -> list[torch.Tensor]:
        """Embed the crops of many windows in shared batches.

        Parameters
        ----------
        crops_list : sequence of np.ndarray or torch.Tensor
            Each uint8 ``(T_i, H, W, 3)``; ``T_i = 0`` is allowed.

        Returns
        -------
        list of torch.Tensor
            float32 ``(T_i, 512)`` per entry, in order.

        Raises
        ------
        TypeError, ValueError
            If an entry is not uint8 ``(T, H, W, 3)``, or sizes differ between entries with frames.
        """
        arrays = [as_uint8_images(c) for c in crops_list]
        counts = [a.shape[0] for a in arrays]
        shapes = {tuple(a.shape[1:]) for a in arrays if a.shape[0]}
        if len(shapes) > 1:
            raise ValueError(f"all crops must have one size to be batched together, got {sorted(shapes)}")
        if not shapes:
            return [_empty(self.image.dim) for _ in arrays]
        embeddings = self.image(torch.cat([a for a in arrays if a.shape[0]]))
        return list(torch.split(embeddings, counts))

    def encode_audio(self, waveforms) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Encode many waveforms, batching equal lengths (see :meth:`AudioEncoder.encode_batch`).

        Returns
        -------
        list of (torch.Tensor, torch.Tensor)
            ``(tokens (Ta_i, 768), times_s (Ta_i,))`` per waveform, times from its first sample.

        Raises
        ------
        AudioTooShortError
            If a waveform is shorter than 400 samples but not empty.
        """
        return self.audio.encode_batch(waveforms)

    def encode_many(self, windows) -> list[Features]:
        """Encode many windows with images and audio batched across them.

        Parameters
        ----------
        windows : sequence of (crops, frame_times_s, waveform) or (crops, frame_times_s, waveform, start_s)
            As the arguments of :meth:`encode`.

        Returns
        -------
        list of Features

        Raises
        ------
        AudioTooShortError, TypeError, ValueError
            As :meth:`encode`.
        """
        items = [tuple(w) + (0.0,) * (4 - len(w)) for w in windows]
        times = [self._frame_times(crops, t, start) for crops, t, _, start in items]
        images = self.encode_images([crops for crops, *_ in items])
        audios = self.encode_audio([wave for _, _, wave, _ in items])
        out = []
        for image, image_times, (audio, audio_times) in zip(images, times, audios):
            video, video_times = self.video(image, image_times)
            out.append(Features(image, image_times, audio, audio_times, video, video_times))
        return out

    @staticmethod
    def _frame_times(crops, frame_times_s, start_s: float) -> torch.Tensor:
        times = torch.as_tensor(np.asarray(frame_times_s, dtype=np.float64)) - float(start_s)
        count = len(crops)
        if times.shape != (count,):
            raise ValueError(f"frame_times_s must have shape ({count},) to match the crops, got {tuple(times.shape)}")
        return times.float()

    def encode(self, crops, frame_times_s, waveform, start_s: float = 0.0) -> Features:
        """Encode one window.

        Parameters
        ----------
        crops : np.ndarray or torch.Tensor
            uint8 RGB face crops ``(T, 224, 224, 3)``; ``T = 0`` when there are no frames.
        frame_times_s : array-like
            ``(T,)`` frame times in seconds, strictly increasing.
        waveform : np.ndarray or torch.Tensor
            float32 mono ``(S,)`` at 16 kHz starting at ``start_s``; ``S = 0`` when there is no audio.
        start_s : float
            Window start in seconds, subtracted from ``frame_times_s`` so that all times in the
            result are seconds within the window (pass ``window.start_s``).

        Returns
        -------
        Features
            ``image (T, 512)``, ``audio (ceil(F/4), 768)``, ``video (ceil((T-1)/4), 512)``.

        Raises
        ------
        AudioTooShortError
            If ``0 < S < 400``.
        TypeError, ValueError
            If crops, times or waveform have the wrong dtype or shape, or times do not increase.
        """
        return self.encode_many([(crops, frame_times_s, waveform, start_s)])[0]


def load_extractors(
    specs: dict[str, EncoderSpec] | str = "default",
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> Extractors:
    """Load the frozen encoders named by ``specs``.

    Parameters
    ----------
    specs : dict[str, EncoderSpec] or str
        From :func:`deepscan.hub.resolve_encoders`, or a preset / directory passed to it.
    device : str or torch.device
        Where the encoders run.
    precision : str
        ``"fp32"``, ``"bf16"``, ``"int8"`` or ``"auto"`` (see
        :func:`deepscan.precision.resolve_precision`).

    Returns
    -------
    Extractors

    Raises
    ------
    ModelLoadingError
        If a hub model is not in the local cache (the message names it and
        ``deepscan models download``) or a directory does not hold a loadable model.
    ValueError
        If ``precision`` is unknown.
    """
    from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

    from . import debug

    if isinstance(specs, str):
        specs = resolve_encoders(specs)
    dtype = resolve_precision(precision, device)
    image_spec, audio_spec = specs["image"], specs["audio"]
    if image_spec.is_debug:
        image_model = debug.build_debug_image_model()
    else:
        image_model = load_pretrained(image_spec, CLIPVisionModelWithProjection)
    if audio_spec.is_debug:
        audio_model = debug.build_debug_audio_model()
    else:
        audio_model = load_pretrained(audio_spec, Wav2Vec2Model)
    image = ImageEncoder(image_model, device=device, dtype=dtype)
    audio = AudioEncoder(audio_model, device=device, dtype=dtype)
    video = VideoEncoder(image.dim)
    return Extractors(image, audio, video, specs, dtype)
