"""The one place that decodes media: probe files and stream them as fixed-length windows.

PyAV (FFmpeg) decodes audio and video, Pillow decodes still and animated images. Rotation
(display matrix, EXIF orientation), channel downmix, resampling, pixel formats and bit depths are
settled here and nowhere else; everything downstream receives arrays.

A :class:`Window` holds ``frames`` uint8 RGB ``(T, H, W, 3)`` sampled at ``visual_fps`` by
presentation timestamp, their times ``frame_times_s (T,)``, and ``waveform`` float32 mono ``(S,)``
at :data:`SAMPLE_RATE`. An image is one window with ``T = 1`` and ``S = 0``; an audio file has
``T = 0``. Memory is bounded by one window whatever the file's length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000  # Hz, what wav2vec2 expects
WINDOW_SECONDS = 4.0  # s, length of one analysis window
VISUAL_FPS = 8.0  # frames per second sampled for the visual modalities
MIN_AUDIO_SAMPLES = 400  # wav2vec2's receptive field at 16 kHz (25 ms)

MAX_DURATION_S = 6 * 3600.0  # s, longest media accepted by default
MAX_PIXELS = 16_384 * 16_384  # pixels per frame or image (decompression-bomb guard)
MAX_FILE_BYTES = 64 * 1024**3  # bytes, largest file accepted by default

KINDS = ("video", "audio", "image")


@dataclass(frozen=True)
class MediaLimits:
    """Limits that stop decompression bombs and runaway inputs.

    Parameters
    ----------
    max_duration_s : float
        Longest accepted duration in seconds.
    max_pixels : int
        Largest accepted frame or image area (width x height, pixels).
    max_file_bytes : int
        Largest accepted file size in bytes.
    """

    max_duration_s: float = MAX_DURATION_S
    max_pixels: int = MAX_PIXELS
    max_file_bytes: int = MAX_FILE_BYTES


DEFAULT_LIMITS = MediaLimits()


@dataclass
class MediaInfo:
    """What deepscan sees in a media file, as reported by :func:`probe`.

    Attributes
    ----------
    path : str
        The file's path as given.
    kind : str
        ``"video"``, ``"audio"`` or ``"image"`` (an animated GIF/WebP is ``"video"``).
    container : str
        Container or image format name (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"png"``).
    video_codec, audio_codec : str or None
        Codec names of the chosen streams (``None`` when absent).
    duration_s : float or None
        Duration in seconds (``0.0`` for a still image, ``None`` when unknown).
    width, height : int or None
        Frame size as displayed, after rotation, in pixels.
    fps : float or None
        Average frame rate in frames per second.
    frame_count : int or None
        Number of frames when the container states it.
    has_audio : bool
        Whether there is a decodable audio stream.
    audio_sample_rate : int or None
        Native sample rate of the audio stream in Hz.
    audio_channels : int or None
        Native channel count of the audio stream.
    rotation : int
        Clockwise rotation in degrees (0, 90, 180, 270) applied to make frames upright.
    size_bytes : int
        File size in bytes.
    """

    path: str
    kind: str
    container: str
    video_codec: str | None = None
    audio_codec: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    has_audio: bool = False
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    rotation: int = 0
    size_bytes: int = 0

    @property
    def has_video(self) -> bool:
        """True for a video or image (anything with frames)."""
        return self.kind in ("video", "image")

    def to_dict(self) -> dict:
        """Return the facts as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass
class Window:
    """One analysis window of a media file.

    Attributes
    ----------
    index : int
        Window number within the file, from 0.
    start_s, end_s : float
        Window bounds in seconds from the start of the media.
    frames : np.ndarray
        uint8 RGB frames ``(T, H, W, 3)``, upright; ``T = 0`` (shape ``(0, 0, 0, 3)``) when the
        file has no visual stream.
    frame_times_s : np.ndarray
        float64 ``(T,)`` presentation times of ``frames`` in seconds from the start of the media.
    waveform : np.ndarray
        float32 mono ``(S,)`` at :data:`SAMPLE_RATE` Hz, in [-1, 1]; ``S = 0`` when there is no
        audio stream.
    has_audio : bool
        Whether the file has an audio stream (a silent stretch of a file with audio still counts).
    """

    index: int
    start_s: float
    end_s: float
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))
    frame_times_s: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    waveform: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    has_audio: bool = False

    @property
    def has_frames(self) -> bool:
        """True when the window holds at least one frame."""
        return self.frames.shape[0] > 0

    @property
    def duration_s(self) -> float:
        """Window length in seconds."""
        return self.end_s - self.start_s
