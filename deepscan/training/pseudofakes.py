"""Pseudo-fakes: manipulations made on the fly from real windows, each a kind the detector must catch.

Every function takes a :class:`deepscan.media.Window` and returns a *new* window; the input is never
mutated. Randomness comes only from the ``numpy.random.Generator`` passed in, so the same seed
gives the same output.

Kinds (:data:`PSEUDO_FAKE_KINDS`):

- ``"av_offset"``: the audio slides against the lips (:func:`av_offset`).
- ``"swapped_audio"``: the voice comes from another recording (:func:`swap_audio`).
- ``"blended_face"``: a self-blended face, Shiohara & Yamasaki, CVPR 2022 (:func:`blended_face`).
- ``"vocoded_audio"``: the voice resynthesised by Griffin-Lim (:func:`vocoded_audio`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import DeepscanError
from ..media import SAMPLE_RATE, Window

__all__ = [
    "PSEUDO_FAKE_KINDS",
    "PseudoFakeConfig",
    "PseudoFakeError",
    "apply_pseudo_fake",
    "av_offset",
    "swap_audio",
    "self_blend",
    "blended_face",
    "vocoded_audio",
    "griffin_lim",
    "default_face_box",
]

PSEUDO_FAKE_KINDS = ("av_offset", "swapped_audio", "blended_face", "vocoded_audio")
OFFSET_FILLS = ("circular", "silence")
FACE_BOX_FRACTION = 0.5  # side of the default centred face box, as a fraction of min(H, W)


class PseudoFakeError(DeepscanError, ValueError):
    """A pseudo-fake cannot be made from this window (no audio, no frames, no donor, bad box...)."""

    reason = "pseudo-fake not applicable"


@dataclass(frozen=True)
class PseudoFakeConfig:
    """Ranges the pseudo-fakes draw their parameters from.

    Attributes
    ----------
    offset_range_s : (float, float)
        Range of ``|offset|`` in seconds for ``av_offset``; the sign is drawn with equal odds.
        0.2 s is well past the ~45 ms (audio first) / ~125 ms (audio late) at which people notice
        (ITU-R BT.1359, 1998).
    offset_fill : str
        How the shifted audio is filled: ``"circular"`` or ``"silence"`` (see :func:`av_offset`).
    blend_ratios : tuple of float
        Maximum mask values drawn from, as in SBI (Shiohara & Yamasaki 2022, Sec. 3.3).
    color_shift : float
        Largest per-channel RGB shift of the source face, in 8-bit levels.
    brightness, contrast, saturation : float
        Largest relative change of each, drawn uniformly in ``[-x, +x]``.
    scale_jitter : float
        Largest relative resize of the source face (SBI's landmark mismatch).
    shift_jitter : float
        Largest translation of the source face, as a fraction of the box size.
    mask_scale_range : (float, float)
        Mask ellipse half-axes as fractions of the box's half width/height.
    mask_deform : float
        Largest relative radial deformation of the mask outline.
    mask_blur_range : (float, float)
        Gaussian sigma of the mask blur, as a fraction of the box's shorter side (applied twice).
    griffin_lim_iters : int
        Griffin-Lim iterations for ``vocoded_audio``.
    n_fft, hop_length, n_mels : int
        STFT size and hop in samples at 16 kHz (``n_fft`` a multiple of ``hop_length``), and mel bands (``n_mels = 0`` vocodes from the
        linear STFT magnitude instead of a mel spectrogram).
    """

    offset_range_s: tuple[float, float] = (0.2, 1.0)
    offset_fill: str = "circular"
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
    color_shift: float = 20.0
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.2
    scale_jitter: float = 0.05
    shift_jitter: float = 0.03
    mask_scale_range: tuple[float, float] = (0.75, 0.95)
    mask_deform: float = 0.08
    mask_blur_range: tuple[float, float] = (0.03, 0.08)
    griffin_lim_iters: int = 32
    n_fft: int = 512
    hop_length: int = 128
    n_mels: int = 80

    def __post_init__(self):
        lo, hi = self.offset_range_s
        if not 0 < lo <= hi:
            raise ValueError(f"offset_range_s must satisfy 0 < low <= high, got {self.offset_range_s}")
        if self.offset_fill not in OFFSET_FILLS:
            raise ValueError(f"offset_fill must be one of {OFFSET_FILLS}, got {self.offset_fill!r}")
        if not self.blend_ratios or not all(0 < r <= 1 for r in self.blend_ratios):
            raise ValueError(f"blend_ratios must be non-empty values in (0, 1], got {self.blend_ratios}")
        if self.griffin_lim_iters < 1 or self.n_fft < 16 or self.hop_length < 1 or self.n_fft % self.hop_length:
            raise ValueError("griffin_lim_iters >= 1, n_fft >= 16 and n_fft a multiple of hop_length are required")


DEFAULT_CONFIG = PseudoFakeConfig()


def _need_audio(window: Window, kind: str) -> np.ndarray:
    waveform = np.asarray(window.waveform, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise PseudoFakeError(f"{kind} needs a window with audio; this one has waveform shape {waveform.shape}")
    return waveform


def _need_frames(window: Window, kind: str) -> np.ndarray:
    frames = np.asarray(window.frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise PseudoFakeError(f"{kind} needs uint8 frames (T, H, W, 3) with T > 0; got {frames.dtype} {frames.shape}")
    return frames


def _with(window: Window, **changes) -> Window:
    """A copy of ``window`` with some fields replaced and the others copied (never shared)."""
    fields = {
        "frames": window.frames.copy(),
        "frame_times_s": window.frame_times_s.copy(),
        "waveform": window.waveform.copy(),
    }
    fields.update(changes)
    return dataclasses.replace(window, **fields)


def av_offset(window: Window, offset_s: float, fill: str = "circular", sample_rate: int = SAMPLE_RATE) -> Window:
    """Shift the audio against the frames by ``offset_s`` seconds.

    Out-of-sync audio is the classic audio-visual fake cue (Chung & Zisserman, "Out of time:
    automated lip sync in the wild", ACCV Workshops 2016; Owens & Efros, "Audio-Visual Scene
    Analysis with Self-Supervised Multisensory Features", ECCV 2018, who make negatives the same way).

    Parameters
    ----------
    window : Window
        A window with audio (``waveform (S,)`` float32 at ``sample_rate``).
    offset_s : float
        Seconds the audio is delayed (positive: sound lags the lips) or advanced (negative).
        ``|offset_s|`` must be shorter than the window's audio.
    fill : str
        ``"circular"`` (default): the content rolls around the window, ``out[n] = in[(n - k) mod S]``,
        so the level and the voice stay those of the window, at the cost of one seam;
        ``"silence"``: the vacated part is zeros (a visible gap a detector could shortcut on).
        To fill from neighbouring signal, shift at file level (``deepscan.synth.make_clip``'s
        ``audio_offset_s``) or decode a longer span.
    sample_rate : int
        Sample rate of ``window.waveform`` in Hz.

    Returns
    -------
    Window
        A new window; frames and times are copies of the input's, waveform ``(S,)`` shifted by
        ``k = round(offset_s * sample_rate)`` samples.

    Raises
    ------
    PseudoFakeError
        If the window has no audio or ``|offset_s|`` is not shorter than it.
    ValueError
        If ``fill`` is unknown or ``offset_s`` is not finite.
    """
    waveform = _need_audio(window, "av_offset")
    if fill not in OFFSET_FILLS:
        raise ValueError(f"fill must be one of {OFFSET_FILLS}, got {fill!r}")
    if not math.isfinite(offset_s):
        raise ValueError(f"offset_s must be finite, got {offset_s!r}")
    shift = int(round(offset_s * sample_rate))
    if abs(shift) >= waveform.size:
        raise PseudoFakeError(
            f"av_offset of {offset_s:+.3f} s does not fit in a window of {waveform.size / sample_rate:.3f} s of audio"
        )
    if fill == "circular":
        shifted = np.roll(waveform, shift)
    else:
        shifted = np.zeros_like(waveform)
        if shift >= 0:
            shifted[shift:] = waveform[: waveform.size - shift]
        else:
            shifted[:shift] = waveform[-shift:]
    return _with(window, waveform=shifted.astype(np.float32))


def swap_audio(window: Window, donor_waveform: np.ndarray | Window, rng: np.random.Generator | None = None) -> Window:
    """Replace the window's audio with audio from another recording.

    A face speaking with someone else's voice, as in FakeAVCeleb's "real video, fake audio" and
    audio-swapped categories (Khalid et al., "FakeAVCeleb", NeurIPS 2021 Datasets and Benchmarks).

    Parameters
    ----------
    window : Window
        The window whose frames are kept (it may have no audio of its own).
    donor_waveform : np.ndarray or Window
        float ``(S_d,)`` mono at 16 kHz, or a window whose waveform is used.
    rng : numpy.random.Generator, optional
        Picks where in a longer donor the segment starts; without it the donor's start is used.

    Returns
    -------
    Window
        A new window with ``has_audio=True`` and ``waveform (S,)`` float32 taken from the donor,
        where ``S`` is the window's own audio length, or ``round(duration_s * 16000)`` when it has
        none. A donor shorter than that is repeated.

    Raises
    ------
    PseudoFakeError
        If the donor is empty or not 1-D.
    """
    donor = donor_waveform.waveform if isinstance(donor_waveform, Window) else donor_waveform
    donor = np.asarray(donor, dtype=np.float32)
    if donor.ndim != 1 or donor.size == 0:
        raise PseudoFakeError(f"swap_audio needs a non-empty mono donor waveform (S,), got shape {donor.shape}")
    n = window.waveform.size or int(round(window.duration_s * SAMPLE_RATE))
    if n <= 0:
        raise PseudoFakeError("swap_audio needs a window with a positive duration or its own audio")
    if donor.size >= n:
        start = int(rng.integers(0, donor.size - n + 1)) if rng is not None else 0
        out = donor[start : start + n].copy()
    else:
        out = np.tile(donor, -(-n // donor.size))[:n]
    return _with(window, waveform=out, has_audio=True)


def default_face_box(height: int, width: int) -> np.ndarray:
    """A centred square of side ``FACE_BOX_FRACTION * min(H, W)``: the face box assumed when none is given.

    Parameters
    ----------
    height, width : int
        Frame size in pixels.

    Returns
    -------
    np.ndarray
        float64 ``(4,)`` box ``(x0, y0, x1, y1)`` in pixels.
    """
    side = FACE_BOX_FRACTION * min(height, width)
    cx, cy = width / 2, height / 2
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def _check_boxes(boxes: np.ndarray | None, n_frames: int, height: int, width: int) -> np.ndarray:
    if boxes is None:
        return np.tile(default_face_box(height, width), (n_frames, 1))
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape == (4,):
        boxes = np.tile(boxes, (n_frames, 1))
    if boxes.shape != (n_frames, 4) or not np.all(np.isfinite(boxes)):
        raise PseudoFakeError(f"boxes must be finite (4,) or (T={n_frames}, 4) (x0, y0, x1, y1); got shape {boxes.shape}")
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height - 1)
    if np.any(boxes[:, 2] - boxes[:, 0] < 4) or np.any(boxes[:, 3] - boxes[:, 1] < 4):
        raise PseudoFakeError("every face box must be at least 4x4 pixels inside the frame")
    return boxes


@dataclass(frozen=True)
class _BlendParams:
    rgb_shift: np.ndarray
    brightness: float
    contrast: float
    saturation: float
    sharpen: bool
    freq_amount: float
    scale: np.ndarray  # (2,) x and y
    shift: np.ndarray  # (2,) fractions of the box size
    mask_axes: np.ndarray  # (2,) fractions of the half box
    outline: np.ndarray  # (64,) radial factors
    morph: int  # > 0 dilate, < 0 erode, pixels as a fraction x1000 of the box side
    blur: float  # sigma fraction of the box side
    ratio: float


def _draw_blend_params(rng: np.random.Generator, cfg: PseudoFakeConfig) -> _BlendParams:
    knots = rng.uniform(-cfg.mask_deform, cfg.mask_deform, 12)
    angles = np.linspace(0, 12, 64, endpoint=False)
    outline = 1.0 + np.interp(angles, np.arange(13), np.append(knots, knots[0]))
    return _BlendParams(
        rgb_shift=rng.uniform(-cfg.color_shift, cfg.color_shift, 3),
        brightness=float(rng.uniform(-cfg.brightness, cfg.brightness)),
        contrast=float(rng.uniform(-cfg.contrast, cfg.contrast)),
        saturation=float(rng.uniform(-cfg.saturation, cfg.saturation)),
        sharpen=bool(rng.random() < 0.5),
        freq_amount=float(rng.uniform(0.3, 1.0)),
        scale=1.0 + rng.uniform(-cfg.scale_jitter, cfg.scale_jitter, 2),
        shift=rng.uniform(-cfg.shift_jitter, cfg.shift_jitter, 2),
        mask_axes=rng.uniform(*cfg.mask_scale_range, 2),
        outline=outline,
        morph=int(rng.integers(-40, 41)),
        blur=float(rng.uniform(*cfg.mask_blur_range)),
        ratio=float(rng.choice(np.asarray(cfg.blend_ratios))),
    )


def _blend_one(frame: np.ndarray, box: np.ndarray, p: _BlendParams) -> tuple[np.ndarray, np.ndarray]:
    """Self-blend one frame in place of a copy; returns (frame, mask float32 (H, W))."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    side = min(bw, bh)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sigma = max(p.blur * side, 0.5)
    morph = int(round(abs(p.morph) / 1000 * side))
    margin = int(math.ceil(6 * sigma + morph + 0.2 * max(bw, bh) + 2))
    rx0, ry0 = max(int(x0) - margin, 0), max(int(y0) - margin, 0)
    rx1, ry1 = min(int(math.ceil(x1)) + margin + 1, width), min(int(math.ceil(y1)) + margin + 1, height)
    target = frame[ry0:ry1, rx0:rx1].astype(np.float32)

    # mask: a deformed ellipse inside the box, eroded or dilated, blurred twice (SBI Sec. 3.3)
    theta = np.linspace(0, 2 * np.pi, p.outline.size, endpoint=False)
    ax, ay = p.mask_axes[0] * bw / 2, p.mask_axes[1] * bh / 2
    pts = np.stack([cx - rx0 + ax * p.outline * np.cos(theta), cy - ry0 + ay * p.outline * np.sin(theta)], 1)
    mask = np.zeros(target.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    if morph > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * morph + 1, 2 * morph + 1))
        mask = (cv2.dilate if p.morph > 0 else cv2.erode)(mask, kernel)
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    peak = mask.max()
    if peak <= 0:
        return frame.copy(), np.zeros((height, width), np.float32)
    mask = np.where(mask > 1e-3 * peak, mask / peak, 0.0).astype(np.float32) * p.ratio

    # source: the same face, colour- and frequency-jittered, slightly resized and moved
    source = target * (1.0 + p.contrast) + (p.brightness * 255.0) + p.rgb_shift
    grey = source.mean(axis=2, keepdims=True)
    source = grey + (source - grey) * (1.0 + p.saturation)
    soft = cv2.GaussianBlur(source, (0, 0), 0.5 + p.freq_amount)
    source = source + p.freq_amount * (source - soft) if p.sharpen else soft
    ccx, ccy = cx - rx0, cy - ry0
    affine = np.array(
        [
            [p.scale[0], 0.0, ccx * (1 - p.scale[0]) + p.shift[0] * bw],
            [0.0, p.scale[1], ccy * (1 - p.scale[1]) + p.shift[1] * bh],
        ]
    )
    source = cv2.warpAffine(source, affine, (target.shape[1], target.shape[0]), borderMode=cv2.BORDER_REFLECT)

    blended = target + mask[..., None] * (np.clip(source, 0, 255) - target)
    out = frame.copy()
    out[ry0:ry1, rx0:rx1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    full = np.zeros((height, width), np.float32)
    full[ry0:ry1, rx0:rx1] = mask
    return out, full


def self_blend(
    frames: np.ndarray,
    boxes: np.ndarray | None,
    rng: np.random.Generator,
    config: PseudoFakeConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Self-blended images on a frame sequence, returning the blend masks too.

    Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022: a copy of the
    face (the *source*) is colour-jittered (RGB shift, brightness, contrast, saturation), blurred or
    sharpened, resized by a few percent and moved, then blended back into the frame (the *target*)
    through a soft mask, ``out = target + M * (source - target)``. The mask is an ellipse inside the
    face box (SBI uses the landmarks' convex hull), deformed along its outline, eroded or dilated,
    blurred twice with a Gaussian and scaled by a ratio drawn from ``config.blend_ratios``. The
    parameters are drawn once per call, so the blend is temporally consistent and follows the box.

    Parameters
    ----------
    frames : np.ndarray
        uint8 RGB ``(T, H, W, 3)``.
    boxes : np.ndarray or None
        Face boxes ``(x0, y0, x1, y1)`` in pixels, ``(4,)`` for all frames or ``(T, 4)``; None uses
        :func:`default_face_box`, a centred face-sized square.
    rng : numpy.random.Generator
        Source of all randomness.
    config : PseudoFakeConfig, optional
        Parameter ranges.

    Returns
    -------
    frames : np.ndarray
        uint8 ``(T, H, W, 3)``, a new array; pixels where ``mask == 0`` equal the input exactly.
    masks : np.ndarray
        float32 ``(T, H, W)`` blend weights in [0, 1].

    Raises
    ------
    PseudoFakeError
        If ``frames`` is not a non-empty uint8 ``(T, H, W, 3)`` array or a box is malformed.
    """
    cfg = config or DEFAULT_CONFIG
    frames = _need_frames(Window(0, 0.0, 0.0, frames=np.asarray(frames)), "blended_face")
    t, height, width, _ = frames.shape
    boxes = _check_boxes(boxes, t, height, width)
    params = _draw_blend_params(rng, cfg)
    out = np.empty_like(frames)
    masks = np.empty((t, height, width), np.float32)
    for i in range(t):
        out[i], masks[i] = _blend_one(frames[i], boxes[i], params)
    return out, masks


def blended_face(
    window: Window,
    boxes: np.ndarray | None,
    rng: np.random.Generator,
    config: PseudoFakeConfig | None = None,
) -> Window:
    """Self-blend the face in every frame of a window (see :func:`self_blend`).

    Parameters
    ----------
    window : Window
        A window with frames ``(T, H, W, 3)`` uint8.
    boxes : np.ndarray or None
        ``(4,)`` or ``(T, 4)`` face boxes ``(x0, y0, x1, y1)`` in pixels, or None for a centred box.
    rng : numpy.random.Generator
        Source of all randomness.
    config : PseudoFakeConfig, optional
        Parameter ranges.

    Returns
    -------
    Window
        A new window with blended frames; audio and times are copies of the input's.

    Raises
    ------
    PseudoFakeError
        If the window has no frames or a box is malformed.
    """
    frames = _need_frames(window, "blended_face")
    out, _ = self_blend(frames, boxes, rng, config)
    return _with(window, frames=out)


GRIFFIN_LIM_MOMENTUM = 0.99  # "fast Griffin-Lim", Perraudin, Balazs & Sondergaard, WASPAA 2013 (torchaudio's default)


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def _mel_filters(n_fft: int, n_mels: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """HTK-scale triangular mel filters ``(n_mels, n_freqs)`` and their pseudo-inverse ``(n_freqs, n_mels)``."""
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    filters = np.maximum(0.0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    # minimum-norm least squares, as torchaudio's InverseMelScale with driver="gelsd"
    return filters, np.linalg.pinv(filters)


def _stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Centred (reflect-padded) STFT, complex ``(n_frames, n_fft // 2 + 1)``."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * window, axis=1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, window: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`_stft` by weighted overlap-add (needs ``n_fft % hop == 0``)."""
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * window
    n_frames, ratio = frames.shape[0], n_fft // hop
    signal = np.zeros((n_frames + ratio - 1, hop), frames.dtype)
    weight = np.zeros((n_frames + ratio - 1, hop), frames.dtype)
    blocks, wblocks = frames.reshape(n_frames, ratio, hop), (window**2).reshape(ratio, hop)
    for k in range(ratio):
        signal[k : k + n_frames] += blocks[:, k]
        weight[k : k + n_frames] += wblocks[k]
    signal, weight = signal.ravel(), weight.ravel()
    signal = np.where(weight > 1e-10, signal / np.maximum(weight, 1e-10), 0.0)
    out = signal[n_fft // 2 : n_fft // 2 + length]
    return np.pad(out, (0, length - out.size))


def griffin_lim(magnitude: np.ndarray, n_fft: int, hop_length: int, n_iter: int, length: int) -> np.ndarray:
    """Estimate a signal from an STFT magnitude (Griffin & Lim, IEEE TASSP 32(2), 1984).

    Fast Griffin-Lim with momentum 0.99 (Perraudin et al., WASPAA 2013), Hann window, zero initial
    phase so the result is deterministic. Pure numpy, single-threaded.

    Parameters
    ----------
    magnitude : np.ndarray
        float ``(n_frames, n_fft // 2 + 1)`` magnitude of a centred STFT.
    n_fft, hop_length : int
        STFT size and hop in samples; ``n_fft`` must be a multiple of ``hop_length``.
    n_iter : int
        Iterations.
    length : int
        Samples of the output.

    Returns
    -------
    np.ndarray
        float32 ``(length,)``.
    """
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    magnitude = magnitude.astype(np.float32)
    angles = np.ones_like(magnitude, dtype=np.complex64)
    previous = np.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = _stft(_istft(magnitude * angles, n_fft, hop_length, window, length), n_fft, hop_length, window)
        angles = rebuilt - previous * (GRIFFIN_LIM_MOMENTUM / (1 + GRIFFIN_LIM_MOMENTUM))
        angles /= np.abs(angles) + 1e-16
        previous = rebuilt
    return _istft(magnitude * angles, n_fft, hop_length, window, length)


def vocoded_audio(window: Window, config: PseudoFakeConfig | None = None, sample_rate: int = SAMPLE_RATE) -> Window:
    """Resynthesise the window's audio from its magnitude spectrogram with Griffin-Lim.

    Griffin & Lim, "Signal estimation from modified short-time Fourier transform", IEEE TASSP
    32(2), 1984: the phase is discarded and re-estimated iteratively (:func:`griffin_lim`), leaving
    the phasiness typical of vocoded speech. With ``config.n_mels > 0`` the magnitude first goes
    through an HTK mel filter bank and back by least squares (what ``torchaudio``'s
    ``MelSpectrogram`` -> ``InverseMelScale`` -> ``GriffinLim`` does, here in numpy so that it is
    single-threaded and fast on a shared CPU), the mel-vocoder path of TTS systems; WaveFake
    (Frank & Schonherr, NeurIPS 2021 Datasets and Benchmarks) uses Griffin-Lim among its vocoders.
    The output's RMS matches the input's.

    Parameters
    ----------
    window : Window
        A window with audio ``waveform (S,)`` float32, ``S > config.n_fft // 2``.
    config : PseudoFakeConfig, optional
        ``n_fft``, ``hop_length``, ``n_mels``, ``griffin_lim_iters``.
    sample_rate : int
        Sample rate of the waveform in Hz.

    Returns
    -------
    Window
        A new window with ``waveform (S,)`` float32 in [-1, 1], the same length as the input.

    Raises
    ------
    PseudoFakeError
        If the window has no audio or is too short for one STFT frame.
    """
    cfg = config or DEFAULT_CONFIG
    waveform = _need_audio(window, "vocoded_audio")
    if waveform.size <= cfg.n_fft // 2:
        raise PseudoFakeError(f"vocoded_audio needs more than {cfg.n_fft // 2} samples, got {waveform.size}")
    signal = waveform.astype(np.float32)
    hann = np.hanning(cfg.n_fft + 1)[:-1].astype(np.float32)
    magnitude = np.abs(_stft(signal, cfg.n_fft, cfg.hop_length, hann))
    if cfg.n_mels > 0:
        filters, inverse = _mel_filters(cfg.n_fft, cfg.n_mels, int(sample_rate))
        magnitude = np.maximum(magnitude @ filters.T @ inverse.T, 0.0)
    out = griffin_lim(magnitude, cfg.n_fft, cfg.hop_length, cfg.griffin_lim_iters, waveform.size)
    rms_in, rms_out = float(np.sqrt(np.mean(signal**2))), float(np.sqrt(np.mean(out**2)))
    if rms_out > 0:
        out = out * (rms_in / rms_out)
    return _with(window, waveform=np.clip(out, -1.0, 1.0).astype(np.float32))


def apply_pseudo_fake(
    kind: str,
    window: Window,
    rng: np.random.Generator,
    donor: np.ndarray | Window | None = None,
    config: PseudoFakeConfig | None = None,
    boxes: np.ndarray | None = None,
) -> Window:
    """Make one pseudo-fake of ``kind`` from a real window, drawing its parameters from ``rng``.

    Parameters
    ----------
    kind : str
        One of :data:`PSEUDO_FAKE_KINDS`.
    window : Window
        The real window (not mutated).
    rng : numpy.random.Generator
        Source of all randomness; the same generator state gives the same output.
    donor : np.ndarray or Window, optional
        Donor audio ``(S_d,)`` at 16 kHz for ``"swapped_audio"`` (required there).
    config : PseudoFakeConfig, optional
        Parameter ranges.
    boxes : np.ndarray, optional
        Face boxes for ``"blended_face"``, ``(4,)`` or ``(T, 4)``; None uses a centred box.

    Returns
    -------
    Window
        The pseudo-fake window.

    Raises
    ------
    PseudoFakeError
        If ``kind`` is unknown, the window lacks the modality the kind manipulates, or
        ``"swapped_audio"`` has no donor.
    """
    cfg = config or DEFAULT_CONFIG
    if kind == "av_offset":
        waveform = _need_audio(window, kind)
        longest = 0.5 * waveform.size / SAMPLE_RATE  # s, a shift beyond half the window wraps back
        lo, hi = cfg.offset_range_s
        if lo > longest:
            raise PseudoFakeError(f"av_offset needs at least {2 * lo:.2f} s of audio, got {2 * longest:.2f} s")
        offset = rng.uniform(lo, min(hi, longest)) * rng.choice([-1.0, 1.0])
        return av_offset(window, float(offset), fill=cfg.offset_fill)
    if kind == "swapped_audio":
        if donor is None:
            raise PseudoFakeError("swapped_audio needs donor audio from another recording")
        return swap_audio(window, donor, rng)
    if kind == "blended_face":
        return blended_face(window, boxes, rng, cfg)
    if kind == "vocoded_audio":
        return vocoded_audio(window, cfg)
    raise PseudoFakeError(f"unknown pseudo-fake kind {kind!r}; expected one of {PSEUDO_FAKE_KINDS}")
