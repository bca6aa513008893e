"""Audio-visual lip-sync cue: deepscan.experts.sync.

Generated talking faces (deepscan.synth: the mouth opening follows the voice's envelope; the audio
track shifted by a known offset) are encoded with PyAV, decoded by deepscan.media at 8 fps, cropped
by deepscan.faces (mouth crops from the landmarks) and fed window by window to the accumulator,
as the scanner would. The real talking-face samples (../shared/samples) are checked when present.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from deepscan import synth
from deepscan.experts import sync
from deepscan.experts.sync import (
    DEFAULT_LAGS_MS,
    MIN_FRAMES,
    NO_SYNC_SCORE,
    AudioEnvelope,
    SyncAccumulator,
    SyncEstimate,
    audio_envelope,
    best_lag,
    mouth_motion,
    sync_score,
)
from deepscan.faces import FaceCropper, FaceDetectorConfig
from deepscan.media import SAMPLE_RATE, VISUAL_FPS, iter_windows
from tests.conftest import MODELS

FRAME_INTERVAL_MS = 1000.0 / VISUAL_FPS  # 125 ms at 8 fps
CLIP_SECONDS = 12.0  # three 4 s windows
DETECT_EVERY = 2  # what the scanner uses
YUNET = MODELS / "face_detection_yunet_2026may.onnx" if MODELS is not None else None


def face_config() -> FaceDetectorConfig:
    """YuNet (landmarks) when the shared model is present, Haar (estimated landmarks) otherwise."""
    if YUNET is not None and YUNET.is_file():
        return FaceDetectorConfig(backend="yunet", model_path=str(YUNET))
    return FaceDetectorConfig()


def scan_sync(path: Path, config: FaceDetectorConfig | None = None):
    """Decode a file at 8 fps, crop mouths, feed the accumulator; (file estimate, window estimates)."""
    tracker = FaceCropper(config or FaceDetectorConfig(), detect_every=DETECT_EVERY).new_tracker()
    acc = SyncAccumulator()
    windows = []
    for w in iter_windows(path):
        faces = tracker.crop(w.frames)
        windows += acc.update(faces.mouth_crops, faces.found, w.frame_times_s, w.waveform, w.start_s, window=w.index)
    windows += acc.finish()
    return acc.result(), windows


@pytest.fixture(scope="module")
def synth_clips(tmp_path_factory) -> dict[float, Path]:
    """12 s talking-face clips (seed 0) with the audio 0, +200 and -200 ms late."""
    folder = tmp_path_factory.mktemp("sync")
    clips = {}
    for offset_ms in (0.0, 200.0, -200.0):
        path = folder / f"offset_{offset_ms:+.0f}.mp4"
        synth.write_clip(path, duration_s=CLIP_SECONDS, seed=0, audio_offset_s=offset_ms / 1000.0)
        clips[offset_ms] = path
    return clips


@pytest.fixture(scope="module")
def synth_results(synth_clips) -> dict[float, tuple]:
    """Haar (no shared files needed) file and window estimates of each clip."""
    return {offset: scan_sync(path) for offset, path in synth_clips.items()}


# --- generated clips ---------------------------------------------------------------------------


@pytest.mark.parametrize("offset_ms", [0.0, 200.0, -200.0])
def test_file_lag_recovers_offset(synth_results, offset_ms):
    """The file-level lag is the audio offset within one frame interval (measured: within 30 ms)."""
    est, windows = synth_results[offset_ms]
    assert est.ok and est.window is None
    assert abs(est.lag_ms - offset_ms) <= FRAME_INTERVAL_MS, (est.lag_ms, est.correlation)
    assert est.correlation > 0.5
    assert est.n_frames >= 3 * 20  # three windows, the first and last 0.5 s of the file excluded
    lo, hi = est.lag_interval_ms
    assert lo <= est.lag_ms <= hi
    # per window: most windows find it too
    lags = [w.lag_ms for w in windows if w.ok]
    assert len(windows) == 3 and len(lags) == 3
    assert abs(np.median(lags) - offset_ms) <= FRAME_INTERVAL_MS, lags


def test_sign_convention(synth_results):
    """Positive lag: audio late; the three clips are ordered as their offsets."""
    lags = [synth_results[o][0].lag_ms for o in (-200.0, 0.0, 200.0)]
    assert lags[0] < lags[1] < lags[2]


def test_score_in_sync_low_audio_early_higher(synth_results):
    """The heuristic cue: in sync is not suspicious, audio 200 ms early is more so."""
    in_sync = sync_score(synth_results[0.0][0])
    early = sync_score(synth_results[-200.0][0])
    assert 0.0 <= in_sync <= 0.1
    assert early > in_sync + 0.2


def test_mismatched_voice_is_not_coupled(tmp_path):
    """Face of one seed, voice of another: no coupling (low z), cue near NO_SYNC_SCORE."""
    face = synth.make_clip(CLIP_SECONDS, seed=0)
    voice = synth.make_clip(CLIP_SECONDS, seed=1)
    path = synth.encode_clip(tmp_path / "dubbed.mp4", face.frames, face.fps, voice.waveform, SAMPLE_RATE)
    est, _ = scan_sync(path)
    assert est.ok
    assert est.significance < sync.Z_GOOD
    assert sync_score(est) >= 0.5


def test_video_without_face_or_audio(tmp_path):
    """No face: the estimate has no number and says why; so for a file without audio."""
    no_face = synth.write_clip(tmp_path / "noface.mp4", duration_s=5.0, seed=2, face=False)
    est, windows = scan_sync(no_face)
    assert not est.ok and est.reason == "no face"
    assert all(w.reason == "no face" for w in windows)
    assert sync_score(est) is None
    silent = synth.write_clip(tmp_path / "noaudio.mp4", duration_s=5.0, seed=2, audio=False)
    est, _ = scan_sync(silent)
    assert not est.ok and est.reason == "no audio"


# --- array-level units (no encoding) -----------------------------------------------------------


def drawn_mouths(opening: np.ndarray, size: int = 48) -> np.ndarray:
    """Grey mouth crops with a dark ellipse whose height follows ``opening`` in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    crops = np.full((opening.size, size, size), 150, np.uint8)
    for i, o in enumerate(opening):
        inside = ((xx - c) / (0.35 * size)) ** 2 + ((yy - c) / (0.02 * size + 0.2 * size * o)) ** 2 <= 1
        crops[i][inside] = 40
    return crops


def array_clip(offset_ms: float, seconds: float = 8.0, seed: int = 3):
    """Mouth crops at 8 fps following a voice's envelope, and that voice delayed by ``offset_ms``."""
    pad = 1.0
    voice, env = synth.speech_like(seconds + 2 * pad, seed=seed)
    times = np.arange(0, seconds, 1 / VISUAL_FPS)
    opening = np.interp(times + pad, np.arange(env.size) / SAMPLE_RATE, env)
    shift = int(round((pad - offset_ms / 1000.0) * SAMPLE_RATE))
    wave = voice[shift : shift + int(seconds * SAMPLE_RATE)]
    return drawn_mouths(opening), np.ones(times.size, bool), times, wave


@pytest.mark.parametrize("offset_ms", [-300.0, -120.0, 0.0, 60.0, 250.0])
def test_best_lag_resolves_below_frame_interval(offset_ms):
    """Lags between frame times are found: the envelope is read at frame time + lag."""
    crops, found, times, wave = array_clip(offset_ms)
    motion = mouth_motion(crops, found)
    est = best_lag(motion, AudioEnvelope(wave, 0.0), times)
    assert est.ok and est.window is None
    assert abs(est.lag_ms - offset_ms) <= 40.0, est.lag_ms  # measured: exact on the 10 ms grid
    assert est.correlation > 0.4  # measured 0.51
    assert est.lags_ms.shape == est.correlations.shape == DEFAULT_LAGS_MS.shape


def test_accumulator_matches_streaming_and_keeps_memory_bounded():
    """Fed 4 s windows, the accumulator finds the lag; its audio buffer stays about two windows."""
    crops, found, times, wave = array_clip(150.0, seconds=40.0, seed=5)
    acc = SyncAccumulator()
    window_samples = int(4.0 * SAMPLE_RATE)
    buffered = []
    out = []
    for k in range(10):
        sel = (times >= 4.0 * k) & (times < 4.0 * (k + 1))
        out += acc.update(crops[sel], found[sel], times[sel], wave[k * window_samples : (k + 1) * window_samples], 4.0 * k)
        buffered.append(acc.buffered_audio_s)
    out += acc.finish()
    assert [w.window for w in out] == list(range(10))
    assert max(buffered) <= 2 * 4.0 + 1.5
    est = acc.result()
    assert abs(est.lag_ms - 150.0) <= 40.0
    assert est.n_frames > 280  # 320 frames less the first and last ~0.6 s and the file's ends
    with pytest.raises(RuntimeError):
        acc.update(crops[:1], found[:1], times[:1], wave[:10], 0.0)


def test_reasons_instead_of_numbers():
    """No face, silence, too few frames, speech=False, no mouth motion: a reason, never a number."""
    crops, found, times, wave = array_clip(0.0)
    env = AudioEnvelope(wave, 0.0)
    no_face = best_lag(mouth_motion(crops, np.zeros_like(found)), env, times)
    assert (no_face.lag_ms, no_face.correlation, no_face.reason) == (None, None, "no face")
    silence = best_lag(mouth_motion(crops, found), AudioEnvelope(np.zeros_like(wave), 0.0), times)
    assert silence.reason == "no speech"
    told = best_lag(mouth_motion(crops, found), env, times, speech=False)
    assert told.reason == "no speech"
    few = best_lag(mouth_motion(crops[:12], found[:12]), env, times[:12])  # 1.5 s: 5 frames clear -500 ms
    assert few.reason == "too few frames" and few.n_frames < MIN_FRAMES
    still = best_lag(mouth_motion(np.repeat(crops[:1], len(crops), 0), found), env, times)
    assert still.reason == "no mouth motion"
    no_audio = best_lag(mouth_motion(crops, found), AudioEnvelope(np.zeros(0, np.float32), 0.0), times)
    assert no_audio.reason == "no audio"
    for est in (no_face, silence, told, few, still, no_audio):
        assert not est.ok and sync_score(est) is None and est.significance is None
    empty = SyncAccumulator()
    assert empty.result().reason == "no audio"
    assert empty.finish() == []


def test_mouth_motion_shapes_and_edges():
    """NaN at the ends and next to a missing face; errors on bad shapes."""
    crops = drawn_mouths(np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    found = np.array([True, True, True, False, True, True])
    m = mouth_motion(crops, found)
    assert m.shape == (6,) and m.dtype == np.float64
    assert np.isnan(m[[0, 2, 3, 4, 5]]).all() and m[1] > 0
    with pytest.raises(ValueError):
        mouth_motion(crops[0], found[:1])
    with pytest.raises(ValueError):
        mouth_motion(crops, found[:3])


def test_audio_envelope_is_loudness_at_times():
    """A steady sine has a flat envelope (RMS ** 0.6); NaN where the RMS window leaves the audio."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    times = np.array([-0.1, 0.0, 0.25, 0.5, 0.9, 0.99, 1.2]) + 2.0
    env = audio_envelope(wave, times, start_s=2.0)
    expected = (0.5 / np.sqrt(2)) ** sync.LOUDNESS_EXPONENT
    assert np.isnan(env[[0, 1, 5, 6]]).all()
    np.testing.assert_allclose(env[2:5], expected, rtol=5e-3)  # 80 ms is not whole periods


def test_score_mapping():
    """Heuristic cue: 0 for a clear in-zone peak, 1 far outside, NO_SYNC_SCORE with no coupling."""
    lags = DEFAULT_LAGS_MS

    def estimate(lag, r, n=90):
        curve = np.where(lags == lag, r, 0.0)
        return SyncEstimate.from_curve(lags, curve, n)

    assert sync_score(estimate(0.0, 0.8)) == 0.0
    assert sync_score(estimate(150.0, 0.8)) == 0.0  # audio late within the natural zone
    assert sync_score(estimate(-400.0, 0.8)) == 1.0
    assert sync_score(estimate(450.0, 0.8)) == 1.0
    assert sync_score(estimate(-400.0, 0.05)) == pytest.approx(NO_SYNC_SCORE)
    assert sync_score(estimate(0.0, 0.05)) == pytest.approx(NO_SYNC_SCORE)
    assert sync_score(None) is None


def test_cpu_cost_per_window_is_small():
    """Motion, envelope and 101 lags for one 4 s window: milliseconds (reported, loosely bounded)."""
    crops, found, times, wave = array_clip(0.0, seconds=4.0)
    ctx = np.concatenate([wave[-8000:], wave, wave[:8000]])  # 0.5 s of context each side
    start = time.perf_counter()
    for _ in range(10):
        best_lag(mouth_motion(crops, found), AudioEnvelope(ctx, -0.5), times)
    per_window_ms = (time.perf_counter() - start) / 10 * 1000
    print(f"sync: {per_window_ms:.1f} ms per 4 s window")
    assert per_window_ms < 500


# --- real talking faces ------------------------------------------------------------------------

REAL = ["real_talking_face_mp4v_aac16k_stereo.mp4", "real_talking_face_vfr_aac_stereo.mp4"]


@pytest.fixture(scope="module")
def real_results() -> dict[str, tuple]:
    """Estimates of the real samples, computed once per module."""
    return {}


def real_estimate(samples_dir: Path, name: str, cache: dict) -> tuple:
    path = samples_dir / name
    if not path.is_file():
        pytest.skip(f"{name} is not in ../shared/samples")
    if name not in cache:
        cache[name] = scan_sync(path, face_config())
    return cache[name]


@pytest.mark.parametrize("name", REAL)
def test_real_talking_faces_are_coupled_in_the_natural_zone(samples_dir, name, real_results):
    """Real talking faces: a clear coupling, at a lag within the natural zone.

    Measured with the scanner's face settings (detect_every=2): +70..+80 ms (r 0.70-0.73) for the
    MPEG-4 clip and -80 ms (r 0.58-0.65) for the variable-frame-rate clip, whose curve is a broad
    plateau (-150..+300 ms within 0.05 of its peak; other face settings put it at +150 or +280).
    """
    est, windows = real_estimate(samples_dir, name, real_results)
    print(name, est.lag_ms, est.correlation, est.lag_interval_ms, est.n_frames,
          [(w.window, w.lag_ms, w.correlation, w.reason) for w in windows])
    assert est.ok
    assert est.correlation >= 0.45
    assert -150.0 <= est.lag_ms <= 300.0


def test_real_mpeg4_talking_face_within_100ms(samples_dir, real_results):
    """The MPEG-4 clip comes out within 100 ms of 0 whatever the detector (measured +70..+80 ms)."""
    est, _ = real_estimate(samples_dir, REAL[0], real_results)
    assert abs(est.lag_ms) <= 100.0


@pytest.mark.xfail(strict=False, reason=(
    "the VFR clip's lag is not determined to +-100 ms by this measure: a broad plateau "
    "(-150..+300 ms); -80 ms with the scanner's face settings, +150/+280 ms with detection on "
    "every frame, +200 ms at the full frame rate"
))
def test_real_vfr_talking_face_within_100ms(samples_dir, real_results):
    est, _ = real_estimate(samples_dir, REAL[1], real_results)
    assert abs(est.lag_ms) <= 100.0


def test_av_offset_pseudo_fake_moves_the_measured_lag(synth_clips, synth_results, tmp_path):
    """The fusion's audio-visual offset pseudo-fake (a remux with the audio moved) is measured as moved."""
    import av

    from deepscan.training.fusion import av_offset_copy

    copy = av_offset_copy(synth_clips[0.0], tmp_path / "moved.mp4", 0.2)
    with av.open(str(synth_clips[0.0])) as a, av.open(str(copy)) as b:
        assert b.streams.video[0].frames == a.streams.video[0].frames  # the frames are copied, not re-encoded
        assert b.streams.audio[0].codec_context.name == a.streams.audio[0].codec_context.name
    est, _ = scan_sync(copy)
    assert abs(est.lag_ms - (synth_results[0.0][0].lag_ms + 200.0)) <= FRAME_INTERVAL_MS, est.lag_ms
    with pytest.raises(ValueError, match="video and an audio stream"):
        av_offset_copy(synth.write_image(tmp_path / "still.png", seed=1), tmp_path / "x.png", 0.2)
