"""A slice of the fuzzing campaign (``python -m bench.fuzz``), its regressions, and the limits against bombs.

Every case is rebuilt from its seeds (campaign, index): no binary blob is kept. A case that once
failed the campaign goes into :data:`REGRESSIONS` with what it was; the slice scans them through
the real scanner path with the cases of :data:`SLICE` and the bombs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from bench import fuzz
from bench.fuzz_cases import MUTATORS, SEED_DIR, SEEDS, bombs, make_case, seed_files, structure
from deepscan import media
from deepscan.errors import CorruptMediaError, LimitExceededError, UnsupportedCodecError
from deepscan.media import MediaLimits, iter_windows, probe
from media_gen import write_av
from tests.conftest import CASES, REPO_ROOT

# (campaign, index): what failed before the fix
REGRESSIONS = {
    (1, 104): "truncated M4A, stream without a decoder: AttributeError 'codec_tag' while naming its codec",
    (1, 109): "truncated MP4, stream without a decoder: AttributeError 'codec_tag' while naming its codec",
    (1, 883): "MP4 with bit-flipped timestamps: frame times went back within a window, the video extractor "
              "raised ValueError in the scanner's main process (traceback, the batch's other results lost)",
    (1, 1091): "WAV whose header says 2 Hz: resampled to 16 kHz it became 6.7 hours of audio from 384 KB "
               "(no result for over 60 s: counted as a hang)",
    (1, 1893): "animated GIF with a frame placed at x=65535: Pillow grew that frame to 65599 px wide and the "
               "window's frames could not be stacked (a 'decode error' instead of a scan)",
}
SLICE = list(range(0, 24))  # campaign 1, cases 0..23: the first 24 of the 46 seed files, mutated


@pytest.fixture(scope="module")
def seeds():
    return seed_files(CASES)


# -- the cases ---------------------------------------------------------------------------------


def test_cases_are_rebuilt_from_their_seeds(seeds):
    a, data_a = make_case(1, 7, seeds)
    b, data_b = make_case(1, 7, seeds)
    assert a == b and data_a == data_b
    assert make_case(2, 7, seeds)[1] != data_a and make_case(1, 8, seeds)[1] != data_a
    cases = [make_case(1, i, seeds)[0] for i in range(300)]
    assert {c.mutator for c in cases} == set(MUTATORS)
    assert {c.seed_name for c in cases} == set(seeds)
    assert all(c.name.startswith(f"c{c.index:05d}-") for c in cases)


def test_every_seed_format_is_parsed_into_structure(seeds):
    expected = {".mp4": "bmff", ".mov": "bmff", ".m4a": "bmff", ".mkv": "ebml", ".webm": "ebml", ".avi": "riff",
                ".wav": "riff", ".webp": "riff", ".png": "png", ".gif": "gif", ".jpg": "jpeg", ".tiff": "tiff",
                ".bmp": "bmp", ".ogg": "ogg", ".flac": "flac", ".mp3": "mp3"}
    for name in SEEDS:
        fmt, spans, fields = structure(seeds[name])
        assert fmt == expected[Path(name).suffix], name
        assert len(spans) >= 2 and fields, name
        assert all(0 <= s.start < s.end <= len(seeds[name]) for s in spans)
    _, _, fields = structure(seeds["rgb.png"])
    width = next(f for f in fields if f.label == "IHDR.width")
    assert int.from_bytes(seeds["rgb.png"][width.offset:width.offset + 4], "big") == 64
    _, _, fields = structure(seeds["h264_aac.mp4"])
    assert {"avc1.width", "mp4a.sample_rate", "stts.delta", "mdhd.timescale", "stsz.sample_count"} <= {
        f.label for f in fields}


def test_seed_files_decode(seeds):
    for name in SEEDS:
        info = probe(SEED_DIR / name)
        assert list(iter_windows(SEED_DIR / name, info=info)), name


# -- the slice through the real scanner ----------------------------------------------------------


def test_fuzz_slice_regressions_and_bombs_through_the_scanner(seeds, tmp_path):
    indices = sorted(set(SLICE) | {i for (c, i) in REGRESSIONS if c == fuzz.DEFAULT_CAMPAIGN})
    named = [(case.name, case, data) for case, data in (make_case(fuzz.DEFAULT_CAMPAIGN, i, seeds) for i in indices)]
    named += [(f"bomb-{name}", None, data) for name, data in bombs(seeds).items()]
    detector = fuzz.make_demo_detector(tmp_path / "detector.safetensors")
    outcomes, runs = fuzz.run_batch(named, detector, tmp_path / "batch", fuzz.STALL_S, seeds["rgb.png"])
    tally = fuzz.Campaign(outcomes=outcomes[:len(indices)], runs=runs, bomb_outcomes=outcomes[len(indices):])
    summary = fuzz.summarize(tally)
    assert summary["cases"] == len(indices)
    assert summary["tracebacks"] == 0, summary["traceback_samples"]
    assert summary["main_process_crashes"] == 0 and summary["hangs"] == 0
    assert summary["failures"] == [], summary["failures"]
    assert summary["worker_peak_rss_mb"] <= fuzz.RSS_LIMIT_MB
    by_index = {o.case.index: o for o in tally.outcomes}
    for (_, index), what in REGRESSIONS.items():
        assert by_index[index].status in ("ok", "error") and by_index[index].problem is None, what
    assert all(b["passed"] for b in summary["bombs"]), summary["bombs"]
    assert {b["bomb"] for b in summary["bombs"] if b["reason"] == "over limits"} == set(BOMB_NAMES) - {
        "wav_claims_4gb.wav"}


# -- bombs: refused by the limits, within seconds, in bounded memory ------------------------------

PROBE_ONE = textwrap.dedent("""
    import json, resource, sys, time
    from deepscan.errors import DeepscanError
    from deepscan.media import iter_windows, probe
    start = time.monotonic()
    try:
        info = probe(sys.argv[1])
        windows = sum(1 for _ in iter_windows(sys.argv[1], info=info))
        out = {"status": "ok", "windows": windows}
    except DeepscanError as error:
        out = {"status": "error", "reason": error.reason, "message": error.message}
    out["seconds"] = time.monotonic() - start
    # VmHWM: the peak of this program (ru_maxrss would count the forked parent's pages before exec)
    hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    out["rss_mb"] = int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
""")
BOMB_RSS_MB = 400  # the interpreter with numpy, PyAV and Pillow is ~60 MB of it


BOMB_NAMES = ["png_100000x100000.png", "gif_65535x65535.gif", "png_20000x20000_zeros.png", "gif_1000000_frames.gif",
              "apng_claims_1000000_frames.png", "mp4_claims_1e9_frames.mp4", "wav_claims_4gb.wav",
              "rf64_claims_1tb.wav", "mkv_1000_streams.mkv"]


@pytest.fixture(scope="module")
def bomb_files(seeds, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    made = bombs(seeds)
    assert sorted(made) == sorted(BOMB_NAMES)
    for name, data in made.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("name", BOMB_NAMES)
def test_bomb_refused_quickly_in_bounded_memory(bomb_files, name):
    run = subprocess.run([sys.executable, "-c", PROBE_ONE, str(bomb_files / name)], capture_output=True, text=True,
                         timeout=60, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    if name == "wav_claims_4gb.wav":  # FFmpeg reads the 1 s that is there, not the claim
        assert out["status"] == "ok" and out["windows"] == 1
    else:
        assert out["status"] == "error" and out["reason"] == "over limits", out
    assert out["seconds"] < 10 and out["rss_mb"] < BOMB_RSS_MB, out


# -- the limits one by one ---------------------------------------------------------------------------


def test_animated_image_frames_counted_from_structure_and_limited(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(5)]
    gif, tiff = tmp_path / "a.gif", tmp_path / "pages.tiff"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    assert probe(gif).frame_count == 5 and probe(gif, MediaLimits(max_image_frames=5)).frame_count == 5
    with pytest.raises(LimitExceededError, match="more than 4 frames"):
        probe(gif, MediaLimits(max_image_frames=4))
    with pytest.raises(LimitExceededError, match="max_image_frames"):
        probe(tiff, MediaLimits(max_image_frames=4))


def test_tiff_page_loop_ends(tmp_path):
    path = tmp_path / "loop.tiff"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    first = int.from_bytes(data[4:8], "little")
    count = int.from_bytes(data[first:first + 2], "little")
    data[first + 2 + 12 * count:first + 6 + 12 * count] = first.to_bytes(4, "little")  # next IFD: itself
    path.write_bytes(bytes(data))
    with open(path, "rb") as handle:
        assert media._tiff_page_count(handle.fileno(), 100) == 1
    try:
        probe(path)
    except (CorruptMediaError, LimitExceededError):
        pass


def test_streams_and_claimed_frames_limited(tmp_path):
    path = tmp_path / "three.mkv"
    out = av.open(str(path), "w", format="matroska")
    streams = [out.add_stream("pcm_s16le", rate=8000, layout="mono") for _ in range(3)]
    for i, stream in enumerate(streams):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)
        for packet in stream.encode(frame):
            out.mux(packet)
    out.close()
    assert probe(path, MediaLimits(max_streams=3)).has_audio
    with pytest.raises(LimitExceededError, match="3 streams"):
        probe(path, MediaLimits(max_streams=2))
    video = write_av(tmp_path / "v.mp4", seconds=1.0, acodec=None)  # 10 frames in its sample tables
    assert probe(video, MediaLimits(max_frames=10)).kind == "video"
    with pytest.raises(LimitExceededError, match="claim"):
        probe(video, MediaLimits(max_frames=9))


def test_audio_sample_rate_floor(tmp_path):
    path = write_av(tmp_path / "low.wav", vcodec=None, acodec="pcm_s16le", rate=1000, seconds=1.0)
    assert probe(path).audio_sample_rate == 1000
    with pytest.raises(LimitExceededError, match="1000 Hz is under the limit of 1001 Hz"):
        probe(path, MediaLimits(min_sample_rate=1001))


def test_window_bytes_limited_before_decoding(tmp_path):
    video = write_av(tmp_path / "v.mp4", seconds=1.0, size=(64, 48))
    per_window = (4 * 8 + 1) * 64 * 48 * 3
    assert list(iter_windows(video, limits=MediaLimits(max_window_bytes=per_window)))
    with pytest.raises(LimitExceededError, match="max_window_bytes"):
        iter_windows(video, limits=MediaLimits(max_window_bytes=per_window - 1))


def _count_frames(monkeypatch) -> list[int]:
    calls = [0]
    original = media._WindowAssembler.add_frame

    def counting(self, *args):
        calls[0] += 1
        return original(self, *args)

    monkeypatch.setattr(media._WindowAssembler, "add_frame", counting)
    return calls


def test_video_running_ahead_of_short_audio_is_released(tmp_path, monkeypatch):
    monkeypatch.setattr(media, "MAX_STREAM_LAG_S", 3.0)
    path = write_av(tmp_path / "short_audio.mp4", seconds=16.0, audio_seconds=1.0, size=(32, 24), fps=8)
    calls = _count_frames(monkeypatch)
    windows = iter_windows(path)
    first = next(windows)
    assert calls[0] < 16 * 8 - 8  # released while the video was still being decoded
    rest = list(windows)
    assert [w.index for w in [first, *rest]] == [0, 1, 2, 3]
    assert abs(first.waveform.size - 16000) <= 400 and all(w.waveform.size == 0 for w in rest)
    assert sum(w.frames.shape[0] for w in [first, *rest]) == 16 * 8
    for w in [first, *rest]:
        assert np.all((w.frame_times_s >= w.start_s - 1e-6) & (w.frame_times_s < w.end_s + 1e-6))


def test_held_frames_bounded_when_audio_lags(tmp_path, monkeypatch):
    path = write_av(tmp_path / "short_audio.mp4", seconds=12.0, audio_seconds=1.0, size=(32, 24), fps=8)
    budget = 40 * 32 * 24 * 3  # ~1.2 windows of frames, held at most 1.5 times that
    calls = _count_frames(monkeypatch)
    windows = iter_windows(path, limits=MediaLimits(max_window_bytes=budget))
    next(windows)
    assert calls[0] < 12 * 8 - 16
    assert sum(w.frames.shape[0] for w in windows) + 32 == 12 * 8


def test_audio_running_ahead_of_short_video_is_released(tmp_path, monkeypatch):
    monkeypatch.setattr(media, "MAX_STREAM_LAG_S", 3.0)
    path = write_av(tmp_path / "short_video.mp4", seconds=1.0, audio_seconds=16.0, size=(32, 24), fps=8)
    windows = list(iter_windows(path))
    assert [w.index for w in windows] == [0, 1, 2, 3]
    assert sum(w.waveform.size for w in windows) == pytest.approx(16 * 16000, abs=800)
    # the decoder's last frames (frame threading holds a few) come after the window went out: dropped
    assert 4 <= sum(w.frames.shape[0] for w in windows) <= 8
    times = np.concatenate([w.frame_times_s for w in windows])
    assert np.all(np.diff(times) > 0) and times[0] == 0.0


def test_frame_times_only_increase_whatever_the_pts():
    asm = media._WindowAssembler(4.0, 8.0, True, False, (2, 2), 3600.0, None)
    frame = lambda: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    for t in [0.0, 0.5, 0.3, 0.5, 0.50001, 0.9, float("nan"), 0.2, 1.4, 1.4, 2.0, -5.0, 3.0]:
        asm.add_frame(t, 0.1, frame)
    windows = list(asm.ready()) + list(asm.finish())
    times = np.concatenate([w.frame_times_s for w in windows])
    assert len(times) >= 5 and np.all(np.diff(times) > 0) and np.all(np.isfinite(times))


def test_non_finite_float_audio_becomes_finite(tmp_path):
    path = tmp_path / "nan.wav"
    out = av.open(str(path), "w", format="wav")
    stream = out.add_stream("pcm_f32le", rate=16000, layout="mono")
    samples = np.full((1, 16000), 0.25, np.float32)
    samples[0, ::7], samples[0, ::11], samples[0, ::13] = np.nan, np.inf, -np.inf
    frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
    for packet in stream.encode(frame):
        out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    wave = np.concatenate([w.waveform for w in iter_windows(path)])
    assert wave.size == 16000 and np.all(np.isfinite(wave)) and np.abs(wave).max() <= 1.0


def test_regression_cases_fail_typed(seeds, tmp_path):
    if CASES is None:
        pytest.skip("the regression cases were found with ../shared/cases among the seeds")
    for (campaign, index), what in REGRESSIONS.items():
        case, data = make_case(campaign, index, seeds)
        path = tmp_path / case.name
        path.write_bytes(data)
        try:
            windows = list(iter_windows(path))
        except (CorruptMediaError, UnsupportedCodecError, LimitExceededError):
            continue
        for w in windows:  # what the scanner's extractors require of every window
            assert np.all(np.diff(w.frame_times_s) > 0) and np.all(np.isfinite(w.waveform)), what
