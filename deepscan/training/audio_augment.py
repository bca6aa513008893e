"""Format augmentation for speech training: codecs, sample rates, gain and silence carry no label.

A harvested corpus of real and generated speech is full of format confounds (../shared/harvest
/README.md): FLAC and 44.1 kHz occur only among the real files, fakes lean to 22.05/24 kHz and
32-bit float PCM. Everything is first decoded to the scanner's 16 kHz mono float32
(:func:`deepscan.media.load_waveform`); these helpers then push each training clip, real or fake
alike, through a random format round trip, so that whatever a detector learns, it is not the
container, codec, rate or level:

* :func:`encode_decode`: encode in memory with PyAV/FFmpeg (MP3 through LAME, AAC, Opus, or plain
  16-bit PCM WAV) at a given rate and bitrate, decode the bytes back with PyAV, and resample to
  16 kHz mono through :func:`deepscan.media.load_waveform`'s array path (the scanner's own FFmpeg
  resampler);
* :func:`resample_through`: 16 kHz -> any rate in 8-48 kHz -> 16 kHz (a pass through 8 or 11.025
  kHz removes the top of the band, as a telephone or a low-rate generator would);
* :func:`augment`: a random chain of the above plus gain (dB) and leading/trailing digital
  silence, drawn from a :class:`numpy.random.Generator` (deterministic for a seed).

Nothing here peak-normalises or trims silence (AASIST's contract, ../shared/models/README.md).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import av
import numpy as np

from deepscan.media import SAMPLE_RATE, load_waveform

__all__ = ["CODECS", "RATES", "AugmentConfig", "encode_decode", "resample_through", "augment"]

# codec name -> (PyAV encoder, container format, sample rates the encoder accepts or None for any)
CODECS: dict[str, tuple[str, str, tuple[int, ...] | None]] = {
    "mp3": ("libmp3lame", "mp3", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "aac": ("aac", "adts", None),
    "opus": ("libopus", "ogg", (8000, 12000, 16000, 24000, 48000)),
    "pcm": ("pcm_s16le", "wav", None),
}
RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # Hz, pass-through rates


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono float32 ``(S,)`` at ``rate_in`` -> ``rate_out`` through FFmpeg's resampler (PyAV)."""
    if rate_in == rate_out or x.size == 0:
        return np.asarray(x, np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_out)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, np.float32)[None], format="flt", layout="mono")
    frame.sample_rate = rate_in
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Back to 16 kHz mono through the scanner's decoding path (:func:`deepscan.media.load_waveform`)."""
    x = np.clip(np.nan_to_num(np.asarray(x, np.float32)), -1.0, 1.0)
    return load_waveform((x, int(rate)))


def resample_through(waveform: np.ndarray, rate: int) -> np.ndarray:
    """Resample 16 kHz audio to ``rate`` and back to 16 kHz.

    Parameters
    ----------
    waveform : np.ndarray
        float32 ``(S,)`` mono at 16 kHz, amplitude in [-1, 1]; at least 400 samples (25 ms).
    rate : int
        Intermediate rate in Hz (8,000-48,000 is the intended range).

    Returns
    -------
    np.ndarray
        float32 ``(S',)`` at 16 kHz, ``S'`` within a few samples of ``S`` (resampler delay).

    Raises
    ------
    deepscan.errors.AudioTooShortError
        The result is shorter than 400 samples.
    """
    return _to_16k(_resample(waveform, SAMPLE_RATE, rate), rate)


def encode_decode(waveform: np.ndarray, codec: str, bitrate: int = 64_000, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Encode 16 kHz audio with a lossy (or PCM) codec in memory and decode it back to 16 kHz.

    Parameters
    ----------
    waveform : np.ndarray
        float32 ``(S,)`` mono at 16 kHz, amplitude in [-1, 1].
    codec : str
        A key of :data:`CODECS`: ``"mp3"`` (LAME), ``"aac"`` (FFmpeg's native encoder, ADTS stream),
        ``"opus"`` (libopus in Ogg) or ``"pcm"`` (16-bit WAV).
    bitrate : int
        Target bit rate in bit/s (ignored for PCM).
    rate : int
        Sample rate in Hz at which the stream is encoded; the audio is resampled to it first. For
        MP3 and Opus a rate the encoder does not accept is replaced by the nearest one it does.

    Returns
    -------
    np.ndarray
        float32 ``(S',)`` mono at 16 kHz. ``S'`` differs from ``S`` by the codec's delay and
        padding (a few tens of ms at most).

    Raises
    ------
    KeyError
        Unknown codec.
    av.FFmpegError
        The encoder is not available in this FFmpeg build.
    deepscan.errors.AudioTooShortError
        The decoded audio is shorter than 400 samples.
    """
    encoder, fmt, rates = CODECS[codec]
    if rates is not None and rate not in rates:
        rate = min(rates, key=lambda r: abs(r - rate))
    x = _resample(waveform, SAMPLE_RATE, rate)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        if codec != "pcm":
            stream.bit_rate = int(bitrate)
        frame_size = 1024
        for i in range(0, x.size, frame_size * 16):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(np.clip(x[None, i:i + frame_size * 16], -1, 1)), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    parts, out_rate = [], rate
    with av.open(buf, "r") as inp:
        stream = inp.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        out_rate = stream.rate
        for frame in inp.decode(stream):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return _to_16k(y, out_rate)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of :func:`augment` (recorded in the model's provenance).

    Attributes
    ----------
    p_codec : float
        Probability of a lossy round trip (MP3, AAC or Opus, equally likely).
    bitrates : tuple of int
        Bit rates (bit/s) drawn uniformly for the lossy codecs.
    p_resample : float
        Probability of a pass through another rate of :data:`RATES` (without a codec; with a codec
        the codec's rate is drawn from :data:`RATES` as well).
    gain_db : (float, float)
        Uniform range of the gain in dB; the result is clipped to [-1, 1].
    p_pad : float
        Probability of digital silence before and after (each side drawn independently).
    max_pad_s : float
        Longest silence added on one side, in seconds.
    """

    p_codec: float = 0.6
    bitrates: tuple[int, ...] = (16_000, 24_000, 32_000, 48_000, 64_000, 96_000, 128_000)
    p_resample: float = 0.5
    gain_db: tuple[float, float] = (-18.0, 6.0)
    p_pad: float = 0.3
    max_pad_s: float = 0.75

    def as_dict(self) -> dict:
        """JSON-able form for provenance."""
        return asdict(self)


def augment(waveform: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One random format round trip of a 16 kHz clip (codec or rate, then gain, then silence).

    Parameters
    ----------
    waveform : np.ndarray
        float32 ``(S,)`` mono at 16 kHz, amplitude in [-1, 1], ``S >= 400``.
    rng : np.random.Generator
        Source of every random choice (the same generator state gives the same output).
    config : AugmentConfig
        Probabilities and ranges.

    Returns
    -------
    np.ndarray
        float32 ``(S',)`` mono at 16 kHz in [-1, 1]; ``S'`` is ``S`` plus padding and codec delay.

    Raises
    ------
    deepscan.errors.AudioTooShortError
        ``S`` < 400 samples.
    """
    x = np.asarray(waveform, np.float32)
    u = rng.random(4)
    rate = int(rng.choice(RATES))
    if u[0] < config.p_codec:
        codec = ("mp3", "aac", "opus")[int(rng.integers(3))]
        x = encode_decode(x, codec, int(rng.choice(config.bitrates)), rate)
    elif u[1] < config.p_resample:
        x = resample_through(x, rate)
    gain = 10.0 ** (rng.uniform(*config.gain_db) / 20.0)
    x = np.clip(x * gain, -1.0, 1.0)
    if u[2] < config.p_pad:
        before = int(rng.integers(0, int(config.max_pad_s * SAMPLE_RATE) + 1)) if u[3] < 0.5 else 0
        after = int(rng.integers(0, int(config.max_pad_s * SAMPLE_RATE) + 1)) if u[3] >= 0.25 else 0
        x = np.concatenate([np.zeros(before, np.float32), x, np.zeros(after, np.float32)])
    return x.astype(np.float32, copy=False)
