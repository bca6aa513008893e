"""Seeded synthetic media: a talking cartoon face with speech-like audio, for tests and demos.

Nothing here is a deepfake detector's training data of record; it is a stand-in that exercises the
whole pipeline offline. The pieces:

- :func:`speech_like` makes a voice-like waveform: a harmonic (glottal-ish) source whose pitch
  follows a declining, jittered contour, shaped by moving formant resonances, gated by a syllable
  envelope at about :data:`SYLLABLE_RATE_HZ` with pauses between phrases.
- :func:`render_face_frames` draws a shaded face (hair, brows, eyes, nose shadow, mouth) on a
  textured background with slight head motion; the mouth opens with the speech envelope. The face
  is drawn to be found by OpenCV's Haar frontal-face cascade, which the face-crop stage uses.
- :func:`make_clip` returns the arrays of one clip (frames, waveform, face boxes);
  :func:`encode_clip` muxes arrays into a file with PyAV; :func:`write_clip`, :func:`write_audio`
  and :func:`write_image` do both.

The same seed gives the same arrays (the encoded bytes may differ by encoder metadata).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from .media import SAMPLE_RATE

__all__ = [
    "SYLLABLE_RATE_HZ",
    "DEFAULT_SIZE",
    "DEFAULT_FPS",
    "SynthClip",
    "speech_like",
    "face_boxes",
    "render_face_frames",
    "make_clip",
    "encode_clip",
    "write_clip",
    "write_audio",
    "write_image",
]

SYLLABLE_RATE_HZ = 4.0  # syllables per second while talking (typical of speech, ~4-5 Hz)
DEFAULT_SIZE = (320, 240)  # (width, height) in pixels
DEFAULT_FPS = 25
MAX_F0_HZ = 260.0  # highest pitch the voice generator picks
FORMANT_BANDWIDTH_HZ = (90.0, 120.0, 170.0)  # bandwidths of F1..F3
# (F1, F2, F3) in Hz of a few vowels, from Peterson & Barney (1952), adult male averages
VOWELS_HZ = np.array(
    [
        [730, 1090, 2440],  # /a/
        [270, 2290, 3010],  # /i/
        [300, 870, 2240],  # /u/
        [530, 1840, 2480],  # /e/
        [570, 840, 2410],  # /o/
    ],
    dtype=np.float64,
)
SKIN_TONES = np.array(  # RGB, light to dark
    [[236, 200, 170], [224, 180, 145], [205, 155, 120], [180, 128, 95], [150, 104, 78], [128, 88, 64]],
    dtype=np.float64,
)


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32 pixels (H.264 4:2:0), got {size!r}")
    return width, height


def _syllable_envelope(n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Amplitude envelope in [0, 1]: raised-cosine syllables at ~4 Hz, phrases of 3-8 with pauses."""
    env = np.zeros(n_samples, np.float64)
    rate = SYLLABLE_RATE_HZ * rng.uniform(0.8, 1.25)
    t = rng.uniform(0.0, 0.3)  # s, leading silence
    duration_s = n_samples / sample_rate
    while t < duration_s:
        for _ in range(int(rng.integers(3, 9))):
            length = rng.uniform(0.6, 1.0) / rate  # s, one syllable
            start, stop = int(t * sample_rate), min(int((t + length) * sample_rate), n_samples)
            if start >= n_samples:
                break
            phase = np.arange(stop - start) / (length * sample_rate)
            env[start:stop] = np.maximum(env[start:stop], rng.uniform(0.55, 1.0) * np.sin(np.pi * phase) ** 1.5)
            t += length + rng.uniform(0.0, 0.05)
        t += rng.uniform(0.2, 0.6)  # s, pause between phrases
    return env


def speech_like(
    duration_s: float, sample_rate: int = SAMPLE_RATE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a seeded speech-like waveform and its amplitude envelope.

    A source-filter voice (Fant, *Acoustic Theory of Speech Production*, 1960): harmonics of a pitch
    contour ``f0(t)`` with a -12 dB/octave glottal tilt, weighted by three formant resonances that
    glide between vowels (Peterson & Barney, 1952, JASA 24(2)), times a syllable envelope at about
    4 Hz with pauses between phrases, plus a little breath noise. The voice (mean pitch, formant
    scale, speaking rate) varies with ``seed``.

    Parameters
    ----------
    duration_s : float
        Length in seconds.
    sample_rate : int
        Sample rate in Hz (default 16 000).
    seed : int
        Seed of the voice and the utterance.

    Returns
    -------
    waveform : np.ndarray
        float32 ``(S,)`` with ``S = round(duration_s * sample_rate)``, peak about 0.5.
    envelope : np.ndarray
        float32 ``(S,)`` syllable amplitude envelope in [0, 1] (0 during pauses).

    Raises
    ------
    ValueError
        If ``duration_s`` or ``sample_rate`` is not positive.
    """
    _check_positive("duration_s", duration_s)
    _check_positive("sample_rate", sample_rate)
    sample_rate = int(sample_rate)
    rng = np.random.default_rng([int(seed), 0x5EEC])
    n = max(int(round(duration_s * sample_rate)), 1)
    t = np.arange(n) / sample_rate
    envelope = _syllable_envelope(n, sample_rate, rng)

    # pitch: speaker mean, slow declination, per-syllable wobble, small vibrato
    f0_mean = rng.uniform(95.0, 230.0)
    knots = np.linspace(0.0, n / sample_rate, max(int(duration_s * SYLLABLE_RATE_HZ), 1) + 2)
    wobble = np.interp(t, knots, rng.normal(0.0, 0.08, knots.size))
    f0 = f0_mean * (1.0 + wobble - 0.05 * t / max(duration_s, 1e-9)) * (1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    f0 = np.clip(f0, 60.0, MAX_F0_HZ)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate

    # formants glide between a random vowel per syllable-length knot
    scale = rng.uniform(0.9, 1.2)  # shorter vocal tract -> higher formants
    vowel_knots = VOWELS_HZ[rng.integers(0, len(VOWELS_HZ), knots.size)] * scale
    formants = np.stack([np.interp(t, knots, vowel_knots[:, i]) for i in range(3)])  # (3, S)

    nyquist = sample_rate / 2
    n_harmonics = int(min(nyquist * 0.9, 5000.0) // f0.min())
    # harmonic amplitudes change slowly: evaluate them every 10 ms and interpolate
    step = max(sample_rate // 100, 1)
    coarse = np.arange(0, n, step)
    freq = np.arange(1, n_harmonics + 1)[:, None] * f0[coarse][None, :]  # (K, n_coarse) Hz
    resonance = sum(
        (0.9**i) / (1.0 + ((freq - formants[i, coarse]) / FORMANT_BANDWIDTH_HZ[i]) ** 2) for i in range(3)
    )
    # 1/k per harmonic amplitude ~ -12 dB/octave glottal source with +6 dB/octave lip radiation
    gains = (freq < nyquist * 0.95) * (0.05 + resonance) / np.arange(1, n_harmonics + 1)[:, None]
    # upsample all gains at once by linear interpolation between the 10 ms points
    pos = np.minimum(np.arange(n) / step, coarse.size - 1.0)
    left = np.minimum(pos.astype(np.int64), coarse.size - 1)
    right = np.minimum(left + 1, coarse.size - 1)
    frac = (pos - left).astype(np.float32)
    gains = gains.astype(np.float32)
    rotor = np.exp(1j * phase).astype(np.complex64)  # e^{i phase}; harmonic k is its k-th power
    harmonic = rotor.copy()
    source = np.zeros(n, np.float32)
    for k in range(n_harmonics):
        g = gains[k]
        source += (g[left] * (1 - frac) + g[right] * frac) * harmonic.imag
        harmonic *= rotor
    voice = source * envelope + 0.02 * rng.standard_normal(n) * envelope
    peak = np.abs(voice).max()
    waveform = (0.5 * voice / peak) if peak > 0 else voice
    return waveform.astype(np.float32), envelope.astype(np.float32)


@dataclass(frozen=True)
class _FaceStyle:
    background: np.ndarray  # uint8 (H, W, 3)
    skin: np.ndarray  # float (3,) RGB
    hair: np.ndarray
    shirt: np.ndarray
    center: tuple[float, float]  # px
    axes: tuple[float, float]  # px, half width and half height of the face ellipse
    motion: np.ndarray  # (amp_x, amp_y, amp_angle_deg, freq_hz, phase_x, phase_y, phase_a)


def _face_style(size: tuple[int, int], seed: int) -> _FaceStyle:
    width, height = size
    rng = np.random.default_rng([int(seed), 0xFACE])
    # background: vertical gradient between two colours plus a few soft blobs
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    bg = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).copy()
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(3):
        bx, by, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.1, 0.3) * max(size)
        bg += rng.uniform(-30, 30, 3) * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * radius**2))[..., None]
    skin = np.clip(SKIN_TONES[rng.integers(0, len(SKIN_TONES))] + rng.normal(0, 6, 3), 0, 255)
    hair = np.clip(rng.uniform(15, 70) * np.array([1.0, 0.8, 0.6]) * rng.uniform(0.7, 1.3, 3), 0, 255)
    shirt = rng.uniform(30, 220, 3)
    short = min(width, height)
    half_h = short * rng.uniform(0.27, 0.32)
    half_w = half_h * rng.uniform(0.74, 0.82)
    center = (width / 2 + rng.uniform(-0.06, 0.06) * width, height / 2 + rng.uniform(-0.03, 0.03) * height)
    motion = np.array(
        [
            rng.uniform(0.01, 0.025) * short,  # px
            rng.uniform(0.005, 0.015) * short,  # px
            rng.uniform(1.0, 3.0),  # degrees
            rng.uniform(0.2, 0.5),  # Hz
            *rng.uniform(0, 2 * np.pi, 3),
        ]
    )
    return _FaceStyle(np.clip(bg, 0, 255).astype(np.uint8), skin, hair, shirt, center, (half_w, half_h), motion)


def _pose(style: _FaceStyle, t: float) -> tuple[float, float, float]:
    """Face centre (px) and roll (degrees) at time ``t`` seconds."""
    ax, ay, aa, freq, px, py, pa = style.motion
    w = 2 * np.pi * freq * t
    return (
        style.center[0] + ax * math.sin(w + px),
        style.center[1] + ay * math.sin(1.3 * w + py),
        aa * math.sin(0.7 * w + pa),
    )


def _box(style: _FaceStyle, t: float, size: tuple[int, int]) -> np.ndarray:
    cx, cy, angle = _pose(style, t)
    a, b = style.axes
    rad = math.radians(angle)
    # half extents of a rotated ellipse
    ex = math.sqrt((a * math.cos(rad)) ** 2 + (b * math.sin(rad)) ** 2)
    ey = math.sqrt((a * math.sin(rad)) ** 2 + (b * math.cos(rad)) ** 2)
    width, height = size
    return np.array(
        [max(cx - ex, 0.0), max(cy - ey, 0.0), min(cx + ex, width - 1.0), min(cy + ey, height - 1.0)]
    )


def face_boxes(n_frames: int, fps: float = DEFAULT_FPS, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0) -> np.ndarray:
    """Boxes of the face that :func:`render_face_frames` draws with the same arguments.

    Parameters
    ----------
    n_frames : int
        Number of frames ``T``.
    fps : float
        Frame rate in frames per second (frame ``i`` is at ``i / fps`` seconds).
    size : (int, int)
        Frame ``(width, height)`` in pixels.
    seed : int
        Seed of the face (same as given to :func:`render_face_frames`).

    Returns
    -------
    np.ndarray
        float64 ``(T, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels: the bounding box of the face
        ellipse (forehead to chin, cheek to cheek; hair excluded), clipped to the frame.
    """
    size = _check_size(size)
    _check_positive("fps", fps)
    style = _face_style(size, seed)
    return np.stack([_box(style, i / fps, size) for i in range(int(n_frames))]).reshape(-1, 4)


def _draw_face(canvas: np.ndarray, style: _FaceStyle, t: float, mouth_open: float) -> None:
    cx, cy, angle = _pose(style, t)
    a, b = style.axes
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)

    def at(u: float, v: float) -> tuple[int, int]:
        """Face coordinates (u right, v down, in units of the half axes) -> pixel, 4 fractional bits."""
        x, y = u * a, v * b
        return (int(round((cx + x * cos - y * sin) * 16)), int(round((cy + x * sin + y * cos) * 16)))

    def ellipse(u, v, ru, rv, color, extra_angle=0.0, arc=(0, 360), thickness=-1):
        axes = (int(round(ru * a * 16)), int(round(rv * b * 16)))
        cv2.ellipse(
            canvas, at(u, v), axes, angle + extra_angle, arc[0], arc[1],
            tuple(float(c) for c in np.clip(color, 0, 255)), thickness, cv2.LINE_AA, 4,
        )

    skin, hair = style.skin, style.hair
    # shoulders and neck
    ellipse(0.0, 2.25, 2.4, 0.9, style.shirt)
    ellipse(0.0, 1.05, 0.45, 0.6, skin * 0.8)
    # hair behind the head, then the face with radial shading (darker towards the rim)
    ellipse(0.0, -0.12, 1.12, 1.02, hair)
    for level, shade in enumerate(np.linspace(0.75, 1.05, 10)):
        r = 1.0 - level * 0.065
        ellipse(0.0, 0.025 * level, r, r * (1.0 if level == 0 else 0.97), skin * shade)
    # fringe over the forehead
    ellipse(0.0, -0.95, 0.95, 0.35, hair, arc=(180, 360))
    ellipse(0.0, -0.78, 0.9, 0.22, hair)
    for side in (-1, 1):
        # eye socket shadow, brow, white, iris: a dark band across the eyes, as Haar features expect
        ellipse(side * 0.37, -0.2, 0.3, 0.15, skin * 0.5)
        ellipse(side * 0.37, -0.42, 0.3, 0.1, hair * 0.8, arc=(180, 360), thickness=max(int(round(b * 0.07)), 1))
        ellipse(side * 0.37, -0.2, 0.17, 0.065, (190, 185, 180))
        ellipse(side * 0.37, -0.2, 0.09, 0.065, (25, 20, 20))
        ellipse(side * 0.42, 0.12, 0.25, 0.15, skin * 1.08)  # cheek highlight below the dark eye band
    # nose: bright bridge between the eyes, a shadow down one side, nostrils
    ellipse(0.0, -0.05, 0.09, 0.25, skin * 1.12)
    ellipse(0.07, 0.18, 0.05, 0.14, skin * 0.75)
    ellipse(-0.08, 0.3, 0.06, 0.04, skin * 0.45)
    ellipse(0.08, 0.3, 0.06, 0.04, skin * 0.45)
    # mouth: lips then the opening, whose height follows the speech envelope
    opening = float(np.clip(mouth_open, 0.0, 1.0))
    ellipse(0.0, 0.56, 0.36, 0.06 + 0.13 * opening, np.array([150.0, 60.0, 60.0]) * (skin / 220.0) ** 0.3)
    ellipse(0.0, 0.56, 0.3, 0.015 + 0.11 * opening, (45, 15, 20))


def render_face_frames(
    envelope_per_frame: np.ndarray,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    fps: float = DEFAULT_FPS,
    face: bool = True,
) -> np.ndarray:
    """Draw a talking face whose mouth opening follows an envelope, one frame per value.

    The face (skin tone, hair, size, position, background, head motion of a few pixels and degrees
    at 0.2-0.5 Hz) varies with ``seed``. It is drawn with dark eyes under brows, a nose shadow and
    a mouth so that the Viola-Jones Haar frontal-face cascade (Viola & Jones, CVPR 2001; OpenCV's
    ``haarcascade_frontalface_default.xml``) finds it in most frames. :func:`face_boxes` returns
    where it is.

    Parameters
    ----------
    envelope_per_frame : np.ndarray
        float ``(T,)`` mouth opening per frame in [0, 1] (values outside are clipped), e.g. the
        speech envelope at each frame's time.
    size : (int, int)
        Frame ``(width, height)`` in pixels, even, at least 32.
    seed : int
        Seed of the face and background.
    fps : float
        Frame rate in frames per second; sets the pace of the head motion.
    face : bool
        When False, draw the background only (a clip with no face).

    Returns
    -------
    np.ndarray
        uint8 RGB ``(T, H, W, 3)``.

    Raises
    ------
    ValueError
        If ``envelope_per_frame`` is not 1-D or ``size`` / ``fps`` is invalid.
    """
    size = _check_size(size)
    _check_positive("fps", fps)
    env = np.asarray(envelope_per_frame, dtype=np.float64)
    if env.ndim != 1:
        raise ValueError(f"envelope_per_frame must be 1-D (T,), got shape {env.shape}")
    style = _face_style(size, seed)
    width, height = size
    frames = np.empty((env.size, height, width, 3), np.uint8)
    for i, opening in enumerate(env):
        canvas = style.background.copy()
        if face:
            _draw_face(canvas, style, i / fps, opening)
        frames[i] = canvas
    return frames


@dataclass
class SynthClip:
    """The arrays of one synthetic clip, before encoding.

    Attributes
    ----------
    frames : np.ndarray
        uint8 RGB ``(T, H, W, 3)``; frame ``i`` is shown at ``i / fps`` seconds.
    fps : float
        Frame rate in frames per second.
    waveform : np.ndarray
        float32 mono ``(S,)`` at ``sample_rate``, the audio track as it will be written (already
        shifted by ``audio_offset_s``).
    sample_rate : int
        Audio sample rate in Hz.
    boxes : np.ndarray
        float64 ``(T, 4)`` face boxes ``(x0, y0, x1, y1)`` in pixels (see :func:`face_boxes`).
    envelope : np.ndarray
        float32 ``(S,)`` speech envelope of the voice the mouth follows (unshifted).
    audio_offset_s : float
        Seconds the audio track lags the mouth (negative: it leads); 0 for an in-sync clip.
    seed : int
        The seed that made the clip.
    """

    frames: np.ndarray
    fps: float
    waveform: np.ndarray
    sample_rate: int
    boxes: np.ndarray
    envelope: np.ndarray
    audio_offset_s: float
    seed: int


def make_clip(
    duration_s: float = 4.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: float = DEFAULT_FPS,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
    audio_offset_s: float = 0.0,
    face: bool = True,
) -> SynthClip:
    """Make the arrays of a talking-face clip whose mouth follows its voice.

    Parameters
    ----------
    duration_s : float
        Length in seconds.
    size : (int, int)
        Frame ``(width, height)`` in pixels.
    fps : float
        Frame rate in frames per second.
    sample_rate : int
        Audio sample rate in Hz.
    seed : int
        Seed of voice, utterance and face.
    audio_offset_s : float
        Shift of the audio track against the mouth in seconds: positive delays the audio (it lags
        the lips), negative advances it. The voice is generated over a longer span so that the
        shifted track is filled with the same speaker's neighbouring speech, never silence or a
        wrap-around.
    face : bool
        When False the frames hold the background only.

    Returns
    -------
    SynthClip
        Frames ``(T, H, W, 3)`` with ``T = round(duration_s * fps)``, waveform ``(S,)`` with
        ``S = round(duration_s * sample_rate)``, boxes ``(T, 4)``.

    Raises
    ------
    ValueError
        If a size, duration or rate is invalid, or ``|audio_offset_s|`` is not finite.
    """
    _check_positive("duration_s", duration_s)
    _check_positive("fps", fps)
    _check_positive("sample_rate", sample_rate)
    if not math.isfinite(audio_offset_s):
        raise ValueError(f"audio_offset_s must be finite, got {audio_offset_s!r}")
    size = _check_size(size)
    sample_rate = int(sample_rate)
    n_samples = int(round(duration_s * sample_rate))
    n_frames = max(int(round(duration_s * fps)), 1)
    pad = int(math.ceil(abs(audio_offset_s) * sample_rate))
    # speech over [-pad, n + pad) samples; the mouth follows the middle part
    voice, envelope = speech_like((n_samples + 2 * pad) / sample_rate, sample_rate, seed)
    shift = int(round(audio_offset_s * sample_rate))
    waveform = voice[pad - shift : pad - shift + n_samples]
    env = envelope[pad : pad + n_samples]
    frame_idx = np.minimum((np.arange(n_frames) / fps * sample_rate).astype(np.int64), n_samples - 1)
    frames = render_face_frames(env[frame_idx], size=size, seed=seed, fps=fps, face=face)
    boxes = face_boxes(n_frames, fps, size, seed)
    return SynthClip(frames, float(fps), waveform.copy(), sample_rate, boxes, env.copy(), float(audio_offset_s), int(seed))


def encode_clip(
    path: str | os.PathLike,
    frames: np.ndarray | None,
    fps: float = DEFAULT_FPS,
    waveform: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    container: str | None = None,
    pix_fmt: str = "yuv420p",
    video_options: dict[str, str] | None = None,
    audio_bit_rate: int = 64_000,
) -> Path:
    """Encode frames and/or a mono waveform into one media file with PyAV.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; the container follows its extension unless ``container`` is given.
    frames : np.ndarray or None
        uint8 RGB ``(T, H, W, 3)`` with even ``H`` and ``W``; None for an audio-only file.
    fps : float
        Frame rate in frames per second (a rational approximation is used for the time base).
    waveform : np.ndarray or None
        float ``(S,)`` mono in [-1, 1] at ``sample_rate``; None for a video-only file.
    sample_rate : int
        Audio sample rate in Hz.
    video_codec, audio_codec : str
        FFmpeg encoder names (default H.264 via ``libx264`` and AAC).
    container : str, optional
        FFmpeg muxer name (e.g. ``"mp4"``, ``"matroska"``, ``"wav"``).
    pix_fmt : str
        Encoded pixel format.
    video_options : dict, optional
        Encoder options; default ``{"preset": "ultrafast", "crf": "20"}`` for libx264.
    audio_bit_rate : int
        Audio bit rate in bit/s for lossy codecs.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If both streams are None, or the arrays have the wrong shape or dtype.
    deepscan.errors.UnsupportedCodecError
        If the bundled FFmpeg has no such encoder.
    """
    if frames is None and waveform is None:
        raise ValueError("encode_clip needs frames, a waveform, or both")
    if frames is not None:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be uint8 (T, H, W, 3) with T > 0, got {frames.dtype} {frames.shape}")
        _check_size((frames.shape[2], frames.shape[1]))
    if waveform is not None:
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1 or waveform.size == 0:
            raise ValueError(f"waveform must be non-empty mono (S,), got shape {waveform.shape}")
    from .errors import UnsupportedCodecError

    for name in ([video_codec] if frames is not None else []) + ([audio_codec] if waveform is not None else []):
        if name not in av.codecs_available:
            raise UnsupportedCodecError(f"the bundled FFmpeg has no encoder {name!r}", path)
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format=container) as out:
        vstream = astream = None
        if frames is not None:
            vstream = out.add_stream(video_codec, rate=rate)
            vstream.width, vstream.height = frames.shape[2], frames.shape[1]
            vstream.pix_fmt = pix_fmt
            if video_options is None and video_codec == "libx264":
                video_options = {"preset": "ultrafast", "crf": "20"}
            vstream.options = dict(video_options or {})
        if waveform is not None:
            astream = out.add_stream(audio_codec, rate=int(sample_rate), layout="mono")
            if audio_codec not in ("pcm_s16le", "flac") and not audio_codec.startswith("pcm"):
                astream.bit_rate = audio_bit_rate
            if audio_codec == "aac":
                astream.options = {"aac_coder": "fast"}  # ~2x faster than the default two-loop search
        if vstream is not None:
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                frame.time_base = 1 / rate
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode())
        if astream is not None:
            # one float frame; PyAV converts to the encoder's sample format and frame size
            pcm = np.ascontiguousarray(np.clip(waveform, -1.0, 1.0)[None, :])
            frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
            frame.sample_rate = int(sample_rate)
            frame.pts = 0
            frame.time_base = Fraction(1, int(sample_rate))
            out.mux(astream.encode(frame))
            out.mux(astream.encode())
    return path


def write_clip(
    path: str | os.PathLike,
    duration_s: float = 4.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: float = DEFAULT_FPS,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
    audio: bool = True,
    video: bool = True,
    audio_offset_s: float = 0.0,
    face: bool = True,
    **encode_options,
) -> Path:
    """Write a seeded talking-face clip (H.264 + AAC in mp4 by default).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its extension picks the container (``.mp4``, ``.mkv``, ``.mov``, ``.webm``...).
    duration_s, size, fps, sample_rate, seed, audio_offset_s, face
        As in :func:`make_clip`.
    audio, video : bool
        Which streams to write (at least one).
    **encode_options
        Passed to :func:`encode_clip` (``video_codec``, ``audio_codec``, ``container``,
        ``pix_fmt``, ``video_options``, ``audio_bit_rate``).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If both ``audio`` and ``video`` are False or a parameter is invalid.
    deepscan.errors.UnsupportedCodecError
        If a requested encoder is missing.
    """
    if not (audio or video):
        raise ValueError("write_clip needs audio=True, video=True, or both")
    clip = make_clip(duration_s, size, fps, sample_rate, seed, audio_offset_s, face)
    return encode_clip(
        path,
        clip.frames if video else None,
        fps,
        clip.waveform if audio else None,
        sample_rate,
        **encode_options,
    )


def write_audio(
    path: str | os.PathLike,
    duration_s: float = 4.0,
    sample_rate: int = SAMPLE_RATE,
    seed: int = 0,
    codec: str | None = None,
) -> Path:
    """Write seeded speech-like audio to a file (16-bit PCM WAV for ``.wav``).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; ``.wav`` gives PCM, ``.flac`` FLAC, ``.m4a`` AAC, ``.mp3`` MP3 (if available),
        ``.ogg`` Vorbis/Opus as the bundled FFmpeg allows.
    duration_s : float
        Length in seconds.
    sample_rate : int
        Sample rate in Hz.
    seed : int
        Seed of the voice.
    codec : str, optional
        FFmpeg encoder; default chosen from the extension.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If a parameter is invalid.
    deepscan.errors.UnsupportedCodecError
        If the encoder is missing.
    """
    defaults = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libvorbis", ".opus": "libopus"}
    codec = codec or defaults.get(Path(path).suffix.lower(), "aac")
    waveform, _ = speech_like(duration_s, sample_rate, seed)
    container = "ipod" if Path(path).suffix.lower() == ".m4a" else None
    return encode_clip(path, None, waveform=waveform, sample_rate=sample_rate, audio_codec=codec, container=container)


def write_image(
    path: str | os.PathLike, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, face: bool = True, mouth_open: float = 0.3
) -> Path:
    """Write one still frame of the synthetic face with Pillow (format from the extension).

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.png``, ``.jpg``, ``.webp``...).
    size : (int, int)
        ``(width, height)`` in pixels.
    seed : int
        Seed of the face.
    face : bool
        When False, the background only.
    mouth_open : float
        Mouth opening in [0, 1].

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If ``size`` is invalid or Pillow cannot save that extension.
    """
    frame = render_face_frames(np.array([mouth_open]), size=size, seed=seed, face=face)[0]
    Image.fromarray(frame).save(path)
    return Path(path)
