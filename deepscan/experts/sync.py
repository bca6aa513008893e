"""Audio-visual lip-sync cue: lagged correlation of mouth motion with the change of the voice.

A training-free measurement in the line of Hershey & Movellan, "Audio Vision: Using Audio-Visual
Synchrony to Locate Sounds", NIPS 1999 (synchrony as the correlation of pixel change with audio
energy), and Slaney & Covell, "FaceSync: A linear operator for measuring synchronization of video
facial images and audio tracks", NIPS 2000 (the lag that maximises a face/audio correlation
measures the synchronisation). Our own code, from the papers.

Per frame, two signals are compared:

* **mouth motion** (:func:`mouth_motion`): the mean absolute grey-level change of the mouth crop
  from the frame before and to the frame after, ``(|c_i - c_{i-1}| + |c_{i+1} - c_i|) / 2``
  averaged over pixels. It moves when the lips move, whatever the sign of the change (dark cavity
  or bright teeth), and needs no model of the mouth's shape.
* **voice change** (:class:`AudioEnvelope`): the loudness envelope of the waveform (RMS over
  :data:`ENVELOPE_WINDOW_S` every :data:`ENVELOPE_HOP_S`, raised to :data:`LOUDNESS_EXPONENT`,
  Stevens' power law: loudness grows as intensity^0.3, i.e. amplitude^0.6; Stevens, "On the
  psychophysical law", Psychological Review 64(3), 1957), and its total variation over the same
  span of time as the motion, ``[t_{i-1} + lag, t_{i+1} + lag]``. Change is matched with change:
  correlating mouth motion (a velocity) with the envelope itself (a level) puts the peak a quarter
  syllable off on one side or the other.

:func:`best_lag` correlates the two (Pearson, over the frames that have a face and audio at every
lag) for each lag of a fine grid, :data:`LAG_STEP_MS` apart over +-:data:`MAX_LAG_MS`, evaluating
the envelope at the frame time plus the lag (it is continuous in time), so the lag is resolved far
below the 125 ms between frames sampled at 8 fps. **Sign convention: a positive lag means the audio
is late relative to the video** (the sound of a mouth movement at time ``t`` is heard at
``t + lag``); negative, the audio leads.

:class:`SyncAccumulator` is fed window after window by a streaming scanner and keeps about two
windows of audio and one of mouth crops (memory bounded by the window, whatever the file's
length). It pools the per-window correlation curves into a file-level estimate, weighting each by
the frames it used, and gives each window its own estimate with the audio of its neighbours as
context.

Measured (our tests and a sweep over the choices above; decoded at 8 fps, mouth crops of
deepscan.faces with Haar or YuNet, detection every 2nd frame as the scanner runs it):

* deepscan.synth talking faces (12 s, seeds 0 and 1, mouth drawn from the voice's envelope):
  offsets 0, +200 and -200 ms come out at -30..+10, +180..+210 and -220..-190 ms at file level
  (correlation 0.58-0.76); per window, 34 of 36 windows within 60 ms.
* The shared real talking faces: the MPEG-4 clip at +70..+80 ms (correlation 0.68-0.76, any
  detector setting); the variable-frame-rate clip at -80 ms (correlation 0.58-0.65), but its curve
  is a broad plateau and detection on every frame moves the peak to +150 or +280 ms; with all
  frames (30 fps) the two clips give +100 and +200 ms. Natural speech is not synchronous in this
  measure: the lips move before the sound they make, which pulls real clips towards audio-late lags.
* A face with another voice (12 pairings): peak correlation 0.07-0.50, Fisher z 0.3-2.2.
* Worse alternatives: mouth "opening" levels (mean darkness, contrast, first principal component
  of the crop) against loudness failed on the real faces; motion against the loudness level put
  the peak 60-250 ms off; a dB envelope or a 40/120 ms RMS window lost the synthetic or real clips.

:func:`sync_score` maps an estimate to a p_fake-like cue in [0, 1]. It is a **heuristic, not
calibrated** on any data set: read it as "how suspicious the synchrony looks", not as a
probability.

When the measurement does not apply the estimate carries no number, only a reason: ``"no face"``,
``"no audio"``, ``"no speech"``, ``"too few frames"``, ``"no mouth motion"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from deepscan.media import SAMPLE_RATE

__all__ = [
    "ENVELOPE_WINDOW_S",
    "ENVELOPE_HOP_S",
    "LOUDNESS_EXPONENT",
    "MAX_LAG_MS",
    "LAG_STEP_MS",
    "DEFAULT_LAGS_MS",
    "MIN_FRAMES",
    "SILENCE_DBFS",
    "PEAK_TOLERANCE",
    "EARLY_OK_MS",
    "EARLY_BAD_MS",
    "LATE_OK_MS",
    "LATE_BAD_MS",
    "Z_NONE",
    "Z_GOOD",
    "NO_SYNC_SCORE",
    "SyncEstimate",
    "AudioEnvelope",
    "mouth_motion",
    "audio_envelope",
    "best_lag",
    "sync_score",
    "SyncAccumulator",
]

ENVELOPE_WINDOW_S = 0.08  # s, RMS window of the loudness envelope (measured best of 0.02-0.16)
ENVELOPE_HOP_S = 0.005  # s, step of the envelope grid that lagged times are interpolated on
LOUDNESS_EXPONENT = 0.6  # RMS amplitude ** 0.6 ~ loudness (Stevens 1957); 1.0 and 0.3 measured worse
MAX_LAG_MS = 500.0  # ms, lags searched: -MAX_LAG_MS .. +MAX_LAG_MS
LAG_STEP_MS = 10.0  # ms, step of the lag grid
DEFAULT_LAGS_MS = np.arange(-MAX_LAG_MS, MAX_LAG_MS + LAG_STEP_MS / 2, LAG_STEP_MS)
MIN_FRAMES = 8  # frames with a face and audio at every lag needed for an estimate (1 s at 8 fps)
SILENCE_DBFS = -50.0  # dBFS; a window whose loudest 80 ms is quieter than this has no speech
MOTION_EPS = 1e-6  # grey levels; mouth motion with a smaller standard deviation is "no mouth motion"
CHANGE_EPS = 1e-9  # voice change with a smaller standard deviation is flat audio ("no speech")

PEAK_TOLERANCE = 0.03  # correlation below the peak that still counts as the peak (lag interval)

# sync_score (heuristic, uncalibrated). The acceptable zone is asymmetric like perception: ITU-R
# BT.1359 (1998) finds audio 90 ms early or 185 ms late acceptable, and real speech measures late
# here because the lips move before the sound they make (real samples: +70..+100 ms, up to +200 ms
# at the full frame rate).
EARLY_OK_MS = 100.0  # ms, audio this early (lag -100 ms) is not suspicious
EARLY_BAD_MS = 300.0  # ms, audio this early or more is fully suspicious
LATE_OK_MS = 200.0  # ms, audio this late is not suspicious
LATE_BAD_MS = 400.0  # ms, audio this late or more is fully suspicious
# Evidence of coupling: Fisher z of the peak correlation, z = atanh(r) * sqrt(n / 2 - 3) (n / 2:
# neighbouring motion values share a frame difference). Mismatched voice and face (12 pairings of
# the synthetic and real clips) reached z 0.3-2.2 at file level; matched ones 4.1-6.3, but the
# variable-frame-rate real sample only 2.2-3.1.
Z_NONE = 2.0  # at or below: no evidence that mouth and voice are coupled
Z_GOOD = 4.0  # from here: the coupling, and so the lag, is fully trusted
NO_SYNC_SCORE = 0.7  # cue when speech and a visible mouth show no coupling at any lag


@dataclass(frozen=True)
class SyncEstimate:
    """The audio-visual lag of one window or one file, or the reason there is none.

    Attributes
    ----------
    lag_ms : float or None
        Lag in milliseconds that maximises the correlation; **positive: audio late** relative to
        the video, negative: audio early. None when no estimate could be made (see ``reason``).
    correlation : float or None
        Pearson correlation in [-1, 1] at ``lag_ms`` (pooled over windows for a file); None with
        ``lag_ms``.
    lags_ms : np.ndarray
        float64 ``(L,)`` lag grid in milliseconds (empty when there is no estimate).
    correlations : np.ndarray
        float64 ``(L,)`` correlation at each lag (empty when there is no estimate).
    n_frames : int
        Frames that entered the correlation (with a face, motion, speech and audio at every lag).
    reason : str or None
        Why there is no estimate (``"no face"``, ``"no audio"``, ``"no speech"``,
        ``"too few frames"``, ``"no mouth motion"``); None when there is one.
    window : int or None
        Index of the window this estimate is for; None for a file-level estimate.
    lag_interval_ms : (float, float) or None
        The contiguous range of lags around ``lag_ms`` whose correlation is within
        :data:`PEAK_TOLERANCE` of the peak: how well the lag is determined (a broad, flat peak
        gives a wide interval). None with ``lag_ms``.
    """

    lag_ms: float | None
    correlation: float | None
    lags_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    correlations: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_frames: int = 0
    reason: str | None = None
    window: int | None = None
    lag_interval_ms: tuple[float, float] | None = None

    @property
    def ok(self) -> bool:
        """True when the estimate holds a lag and a correlation."""
        return self.lag_ms is not None

    @property
    def significance(self) -> float | None:
        """Fisher z of the peak correlation, ``atanh(r) * sqrt(n / 2 - 3)``; None without a number.

        ``n / 2`` is the effective number of frames (neighbouring motion values share a frame
        difference). It does not correct for the maximum taken over lags; read it as a rough
        strength of evidence (see :data:`Z_NONE`, :data:`Z_GOOD`).
        """
        if not self.ok:
            return None
        r = min(max(float(self.correlation), -0.999999), 0.999999)
        return float(math.atanh(r) * math.sqrt(max(self.n_frames / 2 - 3, 0.0)))

    @classmethod
    def none(cls, reason: str, n_frames: int = 0, window: int | None = None) -> SyncEstimate:
        """An estimate without a number, only its ``reason``."""
        return cls(None, None, np.zeros(0), np.zeros(0), int(n_frames), reason, window)

    @classmethod
    def from_curve(
        cls, lags_ms: np.ndarray, correlations: np.ndarray, n_frames: int, window: int | None = None
    ) -> SyncEstimate:
        """The estimate at the highest correlation of a curve, with its peak interval."""
        r = np.asarray(correlations, dtype=np.float64)
        lags = np.asarray(lags_ms, dtype=np.float64)
        j = int(np.argmax(r))
        lo = hi = j
        while lo > 0 and r[lo - 1] >= r[j] - PEAK_TOLERANCE:
            lo -= 1
        while hi < r.size - 1 and r[hi + 1] >= r[j] - PEAK_TOLERANCE:
            hi += 1
        return cls(
            float(lags[j]), float(r[j]), lags, r, int(n_frames), None, window, (float(lags[lo]), float(lags[hi]))
        )


class AudioEnvelope:
    """The loudness envelope of a waveform, continuous in time, and its total variation.

    RMS over :data:`ENVELOPE_WINDOW_S` centred on a grid every :data:`ENVELOPE_HOP_S`, raised to
    :data:`LOUDNESS_EXPONENT` (Stevens' power law of loudness); values between grid points are
    interpolated linearly, so the envelope can be read at any time, e.g. a frame time plus a lag.

    Parameters
    ----------
    waveform : np.ndarray
        float ``(S,)`` mono at ``sample_rate`` Hz, in [-1, 1].
    start_s : float
        Time in seconds of ``waveform[0]`` (e.g. :attr:`deepscan.media.Window.start_s`), so that
        the envelope is read in the same clock as the frame times.
    sample_rate : int
        Sample rate in Hz (default 16 000).
    window_s, hop_s : float
        RMS window and grid step in seconds.

    Attributes
    ----------
    times_s : np.ndarray
        float64 ``(N,)`` grid times in seconds, within ``[cover_start_s, cover_end_s]``.
    values : np.ndarray
        float64 ``(N,)`` envelope at ``times_s`` (RMS ** :data:`LOUDNESS_EXPONENT`).
    cover_start_s, cover_end_s : float
        The span in seconds where the envelope is defined (the RMS window lies inside the
        waveform); NaN outside. ``cover_end_s < cover_start_s`` when the waveform is shorter
        than one RMS window.
    peak_dbfs : float
        Loudest grid RMS in dBFS (``-inf`` for digital silence or an empty envelope).

    Raises
    ------
    ValueError
        If ``waveform`` is not 1-D, or a rate or length is not positive.
    """

    def __init__(
        self,
        waveform: np.ndarray,
        start_s: float = 0.0,
        sample_rate: int = SAMPLE_RATE,
        window_s: float = ENVELOPE_WINDOW_S,
        hop_s: float = ENVELOPE_HOP_S,
    ) -> None:
        wave = np.asarray(waveform, dtype=np.float64)
        if wave.ndim != 1:
            raise ValueError(f"waveform must be mono (S,), got shape {wave.shape}")
        for name, value in (("sample_rate", sample_rate), ("window_s", window_s), ("hop_s", hop_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.sample_rate = int(sample_rate)
        self.start_s = float(start_s)
        half = int(round(window_s * sample_rate / 2))
        self.cover_start_s = self.start_s + half / sample_rate
        self.cover_end_s = self.start_s + (wave.size - half) / sample_rate
        # grid points k*hop (absolute time), so that envelopes of adjacent chunks line up
        first = math.ceil(self.cover_start_s / hop_s - 1e-9)
        last = math.floor(self.cover_end_s / hop_s + 1e-9)
        grid = np.arange(first, last + 1) * hop_s if last >= first else np.zeros(0)
        centre = np.round((grid - self.start_s) * sample_rate).astype(np.int64)
        power = np.concatenate([[0.0], np.cumsum(wave * wave)])
        lo = np.clip(centre - half, 0, wave.size)
        hi = np.clip(centre + half, 0, wave.size)
        ms = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
        rms = np.sqrt(np.maximum(ms, 0.0))
        self.times_s = grid
        self.values = rms**LOUDNESS_EXPONENT
        self.peak_dbfs = float(20 * np.log10(rms.max())) if rms.size and rms.max() > 0 else -math.inf
        # cumulative total variation along the grid: C(t_k) = sum_{j<=k} |v_j - v_{j-1}|
        self._cum_tv = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(self.values)))]) if grid.size else grid

    def _covered(self, times_s: np.ndarray) -> np.ndarray:
        if self.times_s.size < 2:
            return np.zeros(np.shape(times_s), bool)
        eps = 1e-9
        return (times_s >= self.times_s[0] - eps) & (times_s <= self.times_s[-1] + eps)

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """The envelope at arbitrary times.

        Parameters
        ----------
        times_s : np.ndarray
            float times in seconds, any shape.

        Returns
        -------
        np.ndarray
            float64, same shape: RMS ** :data:`LOUDNESS_EXPONENT`, linearly interpolated; NaN
            outside the covered span.
        """
        t = np.asarray(times_s, dtype=np.float64)
        if self.times_s.size < 2:
            return np.full(t.shape, np.nan)
        out = np.interp(t, self.times_s, self.values)
        return np.where(self._covered(t), out, np.nan)

    def variation(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        """Total variation of the envelope between two times (sum of its absolute changes).

        Parameters
        ----------
        t0_s, t1_s : np.ndarray
            float times in seconds, broadcastable; ``t0_s <= t1_s``.

        Returns
        -------
        np.ndarray
            float64, the broadcast shape; NaN where either time is outside the covered span.
        """
        t0 = np.asarray(t0_s, dtype=np.float64)
        t1 = np.asarray(t1_s, dtype=np.float64)
        if self.times_s.size < 2:
            return np.full(np.broadcast(t0, t1).shape, np.nan)
        c0 = np.interp(t0, self.times_s, self._cum_tv)
        c1 = np.interp(t1, self.times_s, self._cum_tv)
        return np.where(self._covered(t0) & self._covered(t1), c1 - c0, np.nan)


def mouth_motion(mouth_crops: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Mouth motion per frame: mean absolute grey-level change to the previous and next frames.

    ``m_i = (mean|c_i - c_{i-1}| + mean|c_{i+1} - c_i|) / 2`` over the pixels of the mouth crops
    ``c``: the frame-difference energy of Hershey & Movellan (NIPS 1999) restricted to the mouth.
    It is centred on frame ``i`` (its support is ``[t_{i-1}, t_{i+1}]``, which
    :func:`best_lag` matches on the audio side).

    Parameters
    ----------
    mouth_crops : np.ndarray
        uint8 grayscale ``(T, h, w)`` mouth regions of consecutive sampled frames (e.g.
        ``deepscan.faces.FaceCrops.mouth_crops``), aligned on the mouth.
    found : np.ndarray
        bool ``(T,)``; True where the crop is of a face.

    Returns
    -------
    np.ndarray
        float64 ``(T,)`` in grey levels (0-255 scale); NaN at the first and last frame and where
        frame ``i`` or one of its neighbours has no face.

    Raises
    ------
    ValueError
        If the shapes do not match or the crops are not ``(T, h, w)``.
    """
    crops = np.asarray(mouth_crops)
    found = np.asarray(found, dtype=bool)
    if crops.ndim != 3:
        raise ValueError(f"mouth_crops must be (T, h, w) grayscale, got shape {crops.shape}")
    if found.shape != (crops.shape[0],):
        raise ValueError(f"found must be (T,) = ({crops.shape[0]},), got shape {found.shape}")
    t = crops.shape[0]
    out = np.full(t, np.nan)
    if t < 3 or crops.shape[1] == 0 or crops.shape[2] == 0:
        return out
    x = crops.astype(np.float32)
    step = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2), dtype=np.float64)  # (T-1,) i -> i+1
    out[1:-1] = (step[:-1] + step[1:]) / 2
    ok = np.zeros(t, bool)
    ok[1:-1] = found[:-2] & found[1:-1] & found[2:]
    out[~ok] = np.nan
    return out


def audio_envelope(
    waveform: np.ndarray, times_s: np.ndarray, start_s: float = 0.0, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The loudness envelope of a waveform sampled at given times (e.g. the frame times).

    Parameters
    ----------
    waveform : np.ndarray
        float ``(S,)`` mono at ``sample_rate`` Hz.
    times_s : np.ndarray
        float ``(T,)`` times in seconds, in the clock where ``waveform[0]`` is at ``start_s``.
    start_s : float
        Time in seconds of the first sample.
    sample_rate : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray
        float64 ``(T,)``: RMS over :data:`ENVELOPE_WINDOW_S` centred on each time, raised to
        :data:`LOUDNESS_EXPONENT` (see :class:`AudioEnvelope`); NaN where the RMS window is not
        inside the waveform.

    Raises
    ------
    ValueError
        As :class:`AudioEnvelope`.
    """
    return AudioEnvelope(waveform, start_s, sample_rate).at(times_s)


def _lags_s(lags_ms) -> np.ndarray:
    lags = np.asarray(DEFAULT_LAGS_MS if lags_ms is None else lags_ms, dtype=np.float64).ravel()
    if lags.size == 0 or not np.isfinite(lags).all():
        raise ValueError("lags_ms must be a non-empty array of finite milliseconds")
    return lags / 1000.0


def _voice_change(envelope: AudioEnvelope, frame_times_s: np.ndarray, lags_s: np.ndarray) -> np.ndarray:
    """Total variation of the envelope over ``[t_{i-1} + lag, t_{i+1} + lag]``: ``(L, T)``."""
    t = frame_times_s
    out = np.full((lags_s.size, t.size), np.nan)
    if t.size >= 3:
        out[:, 1:-1] = envelope.variation(t[None, :-2] + lags_s[:, None], t[None, 2:] + lags_s[:, None]) / 2
    return out


def _curve(
    motion: np.ndarray,
    envelope: AudioEnvelope,
    frame_times_s: np.ndarray,
    lags_s: np.ndarray,
    window: int | None,
    speech: bool | None = None,
) -> tuple[SyncEstimate, np.ndarray | None]:
    """Correlation per lag over the frames usable at every lag; the estimate and ``n * r``."""
    motion = np.asarray(motion, dtype=np.float64).ravel()
    times = np.asarray(frame_times_s, dtype=np.float64).ravel()
    if motion.shape != times.shape:
        raise ValueError(f"motion {motion.shape} and frame_times_s {times.shape} must have the same shape")
    has_motion = np.isfinite(motion)
    if not has_motion.any():
        return SyncEstimate.none("no face", 0, window), None
    if envelope.times_s.size < 2:
        return SyncEstimate.none("no audio", 0, window), None
    if speech is False:
        return SyncEstimate.none("no speech", 0, window), None
    # silence: the loudest 80 ms over the span of the frames with motion
    t_used = times[has_motion]
    span = (envelope.times_s >= t_used.min() - 1e-9) & (envelope.times_s <= t_used.max() + 1e-9)
    peak = envelope.values[span].max() if span.any() else 0.0
    if peak <= 0 or 20 * math.log10(peak) / LOUDNESS_EXPONENT < SILENCE_DBFS:
        return SyncEstimate.none("no speech", 0, window), None
    change = _voice_change(envelope, times, lags_s)  # (L, T)
    use = has_motion & np.isfinite(change).all(axis=0)
    n = int(use.sum())
    if n < MIN_FRAMES:
        return SyncEstimate.none("too few frames", n, window), None
    m = motion[use]
    a = change[:, use]
    m_sd = m.std()
    if m_sd < MOTION_EPS:
        return SyncEstimate.none("no mouth motion", n, window), None
    a_sd = a.std(axis=1)
    if (a_sd < CHANGE_EPS).any():
        return SyncEstimate.none("no speech", n, window), None
    mz = (m - m.mean()) / m_sd
    az = (a - a.mean(axis=1, keepdims=True)) / a_sd[:, None]
    r = np.clip(az @ mz / n, -1.0, 1.0)
    return SyncEstimate.from_curve(lags_s * 1000.0, r, n, window), r * n


def best_lag(
    motion: np.ndarray,
    envelope: AudioEnvelope,
    frame_times_s: np.ndarray,
    lags_ms: np.ndarray | None = None,
    speech: bool | None = None,
) -> SyncEstimate:
    """The audio-visual lag of one run of frames by normalised cross-correlation.

    For each lag ``d`` of the grid, the Pearson correlation between the mouth motion ``m_i`` and
    the voice change ``a_i(d)``, the total variation of the loudness envelope over
    ``[t_{i-1} + d, t_{i+1} + d]`` (the same span as the motion), read from the continuous
    envelope, so lags finer than the frame interval are resolved (Hershey & Movellan, NIPS 1999;
    Slaney & Covell, NIPS 2000). Only frames with motion and with audio at *every* lag enter, so
    all lags are compared on the same frames.

    Parameters
    ----------
    motion : np.ndarray
        float ``(T,)`` from :func:`mouth_motion`; NaN where there is no face.
    envelope : AudioEnvelope
        The loudness envelope of the audio around the frames, in the same clock as
        ``frame_times_s``. Frames whose lagged span falls outside it are left out: give it audio
        reaching :data:`MAX_LAG_MS` beyond the first and last frame to use every frame.
    frame_times_s : np.ndarray
        float ``(T,)`` presentation times of the frames in seconds
        (:attr:`deepscan.media.Window.frame_times_s`).
    lags_ms : np.ndarray, optional
        float ``(L,)`` lags in milliseconds; default :data:`DEFAULT_LAGS_MS` (-500..+500 ms every
        10 ms). **Positive: audio late** relative to the video.
    speech : bool, optional
        Whether the audio holds speech (e.g. ``SpeechDetector.speech_fraction >=
        MIN_SPEECH_FRACTION`` of :mod:`deepscan.experts.speech`); False gives "no speech". None:
        only silence is detected here (loudest 80 ms below :data:`SILENCE_DBFS`), so music or
        noise would be correlated as if it were speech.

    Returns
    -------
    SyncEstimate
        The lag of highest correlation with the curve, or no number and a reason: ``"no face"``
        (no motion value), ``"no audio"``, ``"no speech"`` (silence, flat audio or
        ``speech=False``), ``"too few frames"`` (fewer than :data:`MIN_FRAMES` usable),
        ``"no mouth motion"`` (the mouth never changes).

    Raises
    ------
    ValueError
        If ``motion`` and ``frame_times_s`` differ in shape or ``lags_ms`` is empty or not finite.
    """
    est, _ = _curve(motion, envelope, frame_times_s, _lags_s(lags_ms), None, speech)
    return est


def sync_score(estimate: SyncEstimate | None) -> float | None:
    """Map a sync estimate to a p_fake-like cue in [0, 1] — a heuristic, **not calibrated**.

    Two terms. ``conf = clip((z - Z_NONE) / (Z_GOOD - Z_NONE), 0, 1)``, from the Fisher z of the
    peak correlation (:attr:`SyncEstimate.significance`), says how clearly mouth and voice are
    coupled at all. ``off`` says how far the lag lies outside the zone of natural, in-sync speech,
    which is asymmetric (audio up to :data:`EARLY_OK_MS` early or :data:`LATE_OK_MS` late is
    fine; off reaches 1 at :data:`EARLY_BAD_MS` early or :data:`LATE_BAD_MS` late), measured from
    the point of the peak's lag interval closest to zero. The cue is
    ``conf * off + (1 - conf) * NO_SYNC_SCORE``: near 0 for a clear peak in the natural zone, near 1
    for a clear peak far outside it (shifted or dubbed audio), :data:`NO_SYNC_SCORE` when speech and
    a visible mouth show no coupling at any lag (voice and face from different sources, or a mouth
    the crop does not follow).

    Parameters
    ----------
    estimate : SyncEstimate or None
        From :func:`best_lag` or :class:`SyncAccumulator`.

    Returns
    -------
    float or None
        The cue in [0, 1]; None when the estimate has no number (the cue is absent, with the
        estimate's ``reason``), never a made-up 0.5.
    """
    if estimate is None or not estimate.ok:
        return None
    z = estimate.significance
    conf = min(max((z - Z_NONE) / (Z_GOOD - Z_NONE), 0.0), 1.0)
    lo, hi = estimate.lag_interval_ms or (estimate.lag_ms, estimate.lag_ms)
    lag = 0.0 if lo <= 0.0 <= hi else (lo if lo > 0 else hi)  # the interval's point nearest zero
    if lag >= 0:
        off = (lag - LATE_OK_MS) / (LATE_BAD_MS - LATE_OK_MS)
    else:
        off = (-lag - EARLY_OK_MS) / (EARLY_BAD_MS - EARLY_OK_MS)
    off = min(max(off, 0.0), 1.0)
    return float(conf * off + (1.0 - conf) * NO_SYNC_SCORE)


@dataclass
class _Pending:
    index: int
    crops: np.ndarray  # (T, h, w)
    found: np.ndarray  # (T,)
    times: np.ndarray  # (T,)
    speech: bool | None


class SyncAccumulator:
    """File-level lip-sync estimate, fed window after window by a streaming scanner.

    Each window is measured once the next one has arrived (or at :meth:`finish`), so that its
    first and last frames have neighbours for the motion and its lagged spans have audio on both
    sides. Memory: the mouth crops of one window and about two windows of audio, whatever the
    file's length. The file-level curve is the per-window correlation curves averaged with the
    number of frames each used as weight (a pooled within-window correlation, so loudness and
    framing changes between windows do not leak into it).

    Parameters
    ----------
    lags_ms : np.ndarray, optional
        Lag grid in milliseconds (default :data:`DEFAULT_LAGS_MS`); positive: audio late.
    sample_rate : int
        Sample rate of the waveforms in Hz (default 16 000).

    Examples
    --------
    >>> acc = SyncAccumulator()
    >>> for w in iter_windows(path):                                        # doctest: +SKIP
    ...     faces = tracker.crop(w.frames)
    ...     for est in acc.update(faces.mouth_crops, faces.found, w.frame_times_s,
    ...                           w.waveform, w.start_s, window=w.index):
    ...         print(est.window, est.lag_ms, est.reason)
    >>> for est in acc.finish(): ...                                        # doctest: +SKIP
    >>> acc.result().lag_ms                                                 # doctest: +SKIP
    """

    def __init__(self, lags_ms: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        self.lags_s = _lags_s(lags_ms)
        self.sample_rate = int(sample_rate)
        self._sum = np.zeros(self.lags_s.size)
        self._n = 0
        self._windows = 0
        self._reasons: dict[str, int] = {}
        self._pending: _Pending | None = None
        self._prev_tail: tuple[np.ndarray, bool, float] | None = None  # last crop, found, time
        self._audio = np.zeros(0, np.float32)
        self._audio_start = 0  # sample index of self._audio[0]
        self._finished = False
        # audio kept before a window's first frame: the lag range, a frame interval, the RMS window
        self._keep_s = float(max(abs(self.lags_s.min()), abs(self.lags_s.max()))) + 0.5 + ENVELOPE_WINDOW_S

    def update(
        self,
        mouth_crops: np.ndarray,
        found: np.ndarray,
        frame_times_s: np.ndarray,
        waveform: np.ndarray,
        start_s: float,
        speech: bool | None = None,
        window: int | None = None,
    ) -> list[SyncEstimate]:
        """Add one window; return the estimates of the windows this completes (usually the last).

        Parameters
        ----------
        mouth_crops : np.ndarray
            uint8 grayscale ``(T, h, w)`` (``FaceCrops.mouth_crops``); ``T = 0`` for no frames.
        found : np.ndarray
            bool ``(T,)`` face found-mask.
        frame_times_s : np.ndarray
            float ``(T,)`` frame times in seconds from the start of the media.
        waveform : np.ndarray
            float32 ``(S,)`` mono at ``sample_rate``, the window's audio (``S = 0``: none).
        start_s : float
            Time in seconds of ``waveform[0]`` (:attr:`deepscan.media.Window.start_s`).
        speech : bool, optional
            Whether this window holds speech (from :mod:`deepscan.experts.speech`); False leaves
            its frames out ("no speech"); None: only silence is detected.
        window : int, optional
            The window's index, copied into its estimate (default: a running count).

        Returns
        -------
        list[SyncEstimate]
            Per-window estimates completed by this call (the previous window's, once this one
            gives it context), in order; empty on the first call.

        Raises
        ------
        ValueError
            If the shapes do not match.
        RuntimeError
            If called after :meth:`finish`.
        """
        if self._finished:
            raise RuntimeError("SyncAccumulator.update called after finish()")
        crops = np.asarray(mouth_crops)
        found = np.asarray(found, dtype=bool)
        times = np.asarray(frame_times_s, dtype=np.float64).ravel()
        if crops.shape[0] == 0 and crops.ndim != 3:
            crops = np.zeros((0, 1, 1), np.uint8)
        if crops.ndim != 3 or found.shape != (crops.shape[0],) or times.shape != (crops.shape[0],):
            raise ValueError(
                f"mouth_crops (T, h, w), found (T,) and frame_times_s (T,) must agree, got "
                f"{crops.shape}, {found.shape}, {times.shape}"
            )
        index = self._windows if window is None else int(window)
        self._windows += 1
        self._add_audio(np.asarray(waveform, dtype=np.float32).ravel(), float(start_s))
        done = []
        if self._pending is not None:
            done.append(self._measure(self._pending, (crops[:1], found[:1], times[:1])))
        self._pending = _Pending(index, crops.copy(), found.copy(), times.copy(), speech)
        return done

    def finish(self) -> list[SyncEstimate]:
        """Measure the last window (no more audio or frames will come).

        Returns
        -------
        list[SyncEstimate]
            The last window's estimate (empty if there was none pending).
        """
        done = []
        if self._pending is not None:
            done.append(self._measure(self._pending, None))
            self._pending = None
        self._finished = True
        return done

    def result(self) -> SyncEstimate:
        """The file-level estimate from the windows measured so far.

        Returns
        -------
        SyncEstimate
            ``window=None``; the lag of highest pooled correlation, or a reason: the most common
            reason among windows if no window gave a number (``"no face"`` before ``"no speech"``
            before the others when tied), ``"too few frames"`` when windows gave numbers but fewer
            than :data:`MIN_FRAMES` frames in all, ``"no audio"`` for no windows at all.
        """
        if self._n >= MIN_FRAMES:
            r = np.clip(self._sum / self._n, -1.0, 1.0)
            return SyncEstimate.from_curve(self.lags_s * 1000.0, r, self._n)
        if self._n > 0:
            return SyncEstimate.none("too few frames", self._n)
        if not self._reasons:
            return SyncEstimate.none("no audio" if self._windows == 0 else "too few frames")
        order = ["no face", "no speech", "no audio", "no mouth motion", "too few frames"]
        reason = max(self._reasons, key=lambda k: (self._reasons[k], -order.index(k) if k in order else -99))
        return SyncEstimate.none(reason)

    @property
    def buffered_audio_s(self) -> float:
        """Seconds of audio held (bounded: about two windows plus the lag range)."""
        return self._audio.size / self.sample_rate

    # -- internals ---------------------------------------------------------------------------

    def _add_audio(self, wave: np.ndarray, start_s: float) -> None:
        start = int(round(start_s * self.sample_rate))
        if wave.size == 0:
            return
        if self._audio.size and start != self._audio_start + self._audio.size:
            self._audio = np.zeros(0, np.float32)  # a gap or overlap: restart the buffer
        if self._audio.size == 0:
            self._audio_start = start
        self._audio = np.concatenate([self._audio, wave])

    def _trim_audio(self, keep_from_s: float) -> None:
        drop = int(math.floor(keep_from_s * self.sample_rate)) - self._audio_start
        if drop > 0:
            drop = min(drop, self._audio.size)
            self._audio = self._audio[drop:]
            self._audio_start += drop

    def _measure(self, p: _Pending, following) -> SyncEstimate:
        crops, found, times = p.crops, p.found, p.times
        n = crops.shape[0]
        # neighbours: the last frame of the window before, the first of the window after
        lead = self._prev_tail
        parts_c, parts_f, parts_t = [crops], [found], [times]
        if lead is not None and n and lead[0].shape == crops.shape[1:]:
            parts_c.insert(0, lead[0][None])
            parts_f.insert(0, np.array([lead[1]]))
            parts_t.insert(0, np.array([lead[2]]))
        else:
            lead = None
        if following is not None and following[0].shape[0] and n and following[0].shape[1:] == crops.shape[1:]:
            parts_c.append(following[0])
            parts_f.append(following[1])
            parts_t.append(following[2])
        else:
            following = None
        self._prev_tail = (crops[-1].copy(), bool(found[-1]), float(times[-1])) if n else None
        if n == 0:
            return self._record(SyncEstimate.none("no face", 0, p.index))
        all_t = np.concatenate(parts_t)
        motion = mouth_motion(np.concatenate(parts_c), np.concatenate(parts_f))
        s = 1 if lead is not None else 0
        motion[:s] = np.nan  # the neighbours only give context; they are measured in their window
        motion[s + n :] = np.nan
        if self._audio.size == 0:
            est = SyncEstimate.none("no audio", 0, p.index)
        else:
            envelope = AudioEnvelope(self._audio, self._audio_start / self.sample_rate, self.sample_rate)
            est, nr = _curve(motion, envelope, all_t, self.lags_s, p.index, p.speech)
            if nr is not None:
                self._sum += nr
                self._n += est.n_frames
        if n:
            self._trim_audio(float(times[-1]) - self._keep_s)
        return self._record(est)

    def _record(self, est: SyncEstimate) -> SyncEstimate:
        if est.reason is not None:
            self._reasons[est.reason] = self._reasons.get(est.reason, 0) + 1
        return est
