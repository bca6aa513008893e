"""deepscan.media on generated media: facts, frame sampling by pts, audio, pixels, errors, walking."""

from __future__ import annotations

import inspect
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from deepscan import media
from deepscan.errors import (
    AudioTooShortError,
    CorruptMediaError,
    DeepscanError,
    EmptyFileError,
    LimitExceededError,
    NoDecodableStreamError,
    NotMediaError,
    UnreadableFileError,
)
from deepscan.media import (
    MIN_TAIL_SECONDS,
    SAMPLE_RATE,
    MediaLimits,
    iter_media_files,
    iter_windows,
    load_image,
    load_waveform,
    probe,
    sniff_kind,
)

from media_gen import TONE_AMPLITUDE, TONE_HZ, level_to_index, tone, write_av

TONE_RMS = TONE_AMPLITUDE / np.sqrt(2)

CONTAINERS = {
    # name: (writer options, kind, video codec, audio codec, native rate, channels)
    "h264_aac.mp4": (dict(), "video", "h264", "aac", 16000, 1),
    "mpeg4_mp3.mkv": (dict(vcodec="mpeg4", acodec="mp3", rate=44100, layout="stereo"), "video", "mpeg4", "mp3float", 44100, 2),
    "vp8_opus.webm": (dict(vcodec="libvpx", acodec="libopus", rate=48000), "video", "vp8", "opus", 48000, 1),
    "vp9_opus.webm": (dict(vcodec="libvpx-vp9", acodec="libopus", rate=48000, layout="stereo"), "video", "vp9", "opus", 48000, 2),
    "h264_vorbis.mkv": (dict(acodec="vorbis", rate=44100, layout="stereo"), "video", "h264", "vorbis", 44100, 2),
    "pcm_8k.wav": (dict(vcodec=None, acodec="pcm_s16le", rate=8000), "audio", None, "pcm_s16le", 8000, 1),
    "flac_48k.flac": (dict(vcodec=None, acodec="flac", rate=48000), "audio", None, "flac", 48000, 1),
    "mp3_44k.mp3": (dict(vcodec=None, acodec="libmp3lame", rate=44100, layout="stereo"), "audio", None, "mp3float", 44100, 2),
    "aac_5_1.m4a": (dict(vcodec=None, acodec="aac", rate=44100, layout="5.1", fmt="ipod"), "audio", None, "aac", 44100, 6),
}
SECONDS = 3.0


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("containers")
    return {name: write_av(folder / name, seconds=SECONDS, **spec[0]) for name, spec in CONTAINERS.items()}


def _concat(windows) -> np.ndarray:
    return np.concatenate([w.waveform for w in windows])


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / x.size)


# -- containers and codecs --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_containers_decode_with_right_facts(containers, name):
    _, kind, vcodec, acodec, rate, channels = CONTAINERS[name]
    info = probe(containers[name])
    assert (info.kind, info.video_codec, info.audio_codec) == (kind, vcodec, acodec)
    assert info.audio_sample_rate == rate and info.audio_channels == channels and info.has_audio
    assert info.duration_s == pytest.approx(SECONDS, abs=0.05)
    assert info.size_bytes == os.path.getsize(containers[name])
    windows = list(iter_windows(containers[name], info=info))
    assert len(windows) == 1 and windows[0].start_s == 0.0
    wave = _concat(windows)
    assert wave.dtype == np.float32 and wave.ndim == 1
    # 16 kHz mono, as long as the file (codec padding trimmed) within 25 ms
    assert abs(wave.size - SECONDS * SAMPLE_RATE) <= 0.025 * SAMPLE_RATE
    body = wave[2000:-2000]
    assert _peak_hz(body) == pytest.approx(TONE_HZ, abs=2.0)
    # the same tone in every channel keeps its level through the downmix (lossy codecs: 10 %)
    assert np.sqrt(np.mean(body**2)) == pytest.approx(TONE_RMS, rel=0.1)
    if kind == "video":
        assert (info.width, info.height, info.fps) == (64, 48, 10.0)
        frames = windows[0].frames
        assert frames.dtype == np.uint8 and frames.shape[1:] == (48, 64, 3)
        # 10 fps sampled at 8 fps for 3 s: 24 distinct frames at their own pts
        assert frames.shape[0] == 24
        assert np.all(np.diff(windows[0].frame_times_s) > 0)
        np.testing.assert_allclose(windows[0].frame_times_s * 10, np.round(windows[0].frame_times_s * 10), atol=1e-6)
    else:
        assert windows[0].frames.shape == (0, 0, 0, 3)


def test_resampling_keeps_duration_and_pitch(tmp_path):
    for rate in (8000, 22050, 48000):
        path = write_av(tmp_path / f"tone_{rate}.wav", vcodec=None, acodec="pcm_s16le", rate=rate, seconds=5.3)
        wave = load_waveform(path)
        assert abs(wave.size - 5.3 * SAMPLE_RATE) <= 2, rate
        assert _peak_hz(wave) == pytest.approx(TONE_HZ, abs=1.0)


def test_stereo_downmix_is_the_mean_of_channels(tmp_path):
    import av

    path = tmp_path / "left_only.wav"
    out = av.open(str(path), "w")
    stream = out.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="stereo")
    left = tone(SAMPLE_RATE, SAMPLE_RATE)[0]
    data = np.stack([left, np.zeros_like(left)]).T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray((data * 32767).astype(np.int16), format="s16", layout="stereo")
    frame.sample_rate = SAMPLE_RATE
    for packet in list(stream.encode(frame)) + list(stream.encode(None)):
        out.mux(packet)
    out.close()
    wave = load_waveform(path)
    assert wave.size == SAMPLE_RATE
    np.testing.assert_allclose(wave, left / 2, atol=1e-3)


# -- frame sampling ------------------------------------------------------------------------------


def test_variable_frame_rate_follows_pts(tmp_path):
    # 30 fps for 1 s, then 5 fps: an index x nominal-fps clock would be wrong after 1 s
    times = [i / 30 for i in range(30)] + [1.0 + i / 5 for i in range(10)]
    path = write_av(tmp_path / "vfr.mp4", times=times, fps=30, acodec=None)
    (window,) = list(iter_windows(path, window_s=4.0, visual_fps=8.0))
    got_times = window.frame_times_s
    got_index = level_to_index(window.frames)
    # the rule: for each target k/8 s before the end, the latest frame with pts <= target, once
    assert 2.8 < window.end_s <= 3.0 + 1e-6
    expected = []
    for k in range(int(np.ceil(window.end_s * 8))):
        target = k / 8
        latest = max(i for i, t in enumerate(times) if t <= target + 1e-4)
        if latest not in expected:
            expected.append(latest)
    assert got_index == expected
    np.testing.assert_allclose(got_times, [times[i] for i in expected], atol=1e-3)
    assert len(expected) >= 15 and 30 in expected  # frames after the rate change, by their pts


def test_frames_are_shared_between_windows_by_pts(tmp_path):
    path = write_av(tmp_path / "ten.mp4", seconds=10.0, fps=10, acodec=None)
    windows = list(iter_windows(path, window_s=4.0, visual_fps=5.0))
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    for w in windows:
        assert np.all((w.frame_times_s >= w.start_s) & (w.frame_times_s < w.end_s))
    all_times = np.concatenate([w.frame_times_s for w in windows])
    np.testing.assert_allclose(all_times, np.arange(50) / 5, atol=1e-6)


@pytest.mark.parametrize("ccw, marker", [(90, "bottom_left"), (-90, "top_right"), (180, "bottom_right")])
def test_display_matrix_rotation_makes_frames_upright(tmp_path, ccw, marker):
    def coded(i):  # 64 wide x 32 high, white block in the coded top-left corner
        img = np.zeros((32, 64, 3), np.uint8)
        img[:8, :8] = 255
        return img

    path = write_av(tmp_path / "rot.mp4", size=(64, 32), seconds=1.0, rotation=ccw, image_fn=coded, acodec=None)
    info = probe(path)
    assert info.rotation == (-ccw) % 360
    frame = next(iter_windows(path)).frames[0]
    expected_hw = (32, 64) if ccw == 180 else (64, 32)
    assert frame.shape[:2] == expected_hw == (info.height, info.width)
    h, w = frame.shape[:2]
    corners = {"top_left": frame[:4, :4], "top_right": frame[:4, w - 4:],
               "bottom_left": frame[h - 4:, :4], "bottom_right": frame[h - 4:, w - 4:]}
    assert corners[marker].mean() > 200
    assert all(v.mean() < 60 for k, v in corners.items() if k != marker)


# -- windows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, bounds", [
    (2.0, [(0.0, 2.0)]),
    (10.0, [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]),
    (8.0 + MIN_TAIL_SECONDS / 2, [(0.0, 4.0), (4.0, 8.0 + MIN_TAIL_SECONDS / 2)]),  # short tail merged
])
def test_window_bounds_and_audio_concatenate(tmp_path, seconds, bounds):
    path = write_av(tmp_path / "a.wav", vcodec=None, acodec="pcm_s16le", seconds=seconds)
    windows = list(iter_windows(path))
    assert [(w.start_s, pytest.approx(w.end_s)) for w in windows] == bounds
    assert [w.index for w in windows] == list(range(len(bounds)))
    for w in windows:
        assert w.waveform.size == int(round(w.end_s * SAMPLE_RATE)) - int(round(w.start_s * SAMPLE_RATE))
    whole = load_waveform(path)
    np.testing.assert_array_equal(_concat(windows), whole)


def test_video_without_audio_and_short_audio(tmp_path):
    silent = write_av(tmp_path / "silent.mp4", acodec=None)
    window = next(iter_windows(silent))
    assert window.waveform.shape == (0,) and not window.has_audio and not probe(silent).has_audio
    short = write_av(tmp_path / "short.mkv", acodec="pcm_s16le", audio_seconds=0.01)
    windows = list(iter_windows(short))  # accepted: judged on frames, audio marked unusable
    assert windows[0].has_audio and not windows[0].has_usable_audio and windows[0].has_frames


def test_iter_windows_streams(tmp_path):
    path = write_av(tmp_path / "long.mp4", size=(320, 240), seconds=40.0, fps=10, acodec="aac")
    windows = iter_windows(path)
    assert inspect.isgenerator(windows)
    tracemalloc.start()
    count = 0
    for window in windows:
        count += 1
        del window
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole = 40 * 8 * 320 * 240 * 3  # every sampled frame of the file at once: 74 MB
    assert count == 10
    assert peak < whole / 4, peak


def test_in_memory_waveform(tmp_path):
    x = tone(8000, 8000, channels=2)
    wave = load_waveform((x, 8000))
    assert wave.size == 16000 and wave.dtype == np.float32
    assert _peak_hz(wave) == pytest.approx(TONE_HZ, abs=1.0)
    ints = (tone(16000, 16000)[0] * 32767).astype(np.int16)
    np.testing.assert_allclose(load_waveform(ints), tone(16000, 16000)[0], atol=1e-4)
    windows = list(iter_windows((np.zeros(5 * SAMPLE_RATE, np.float32), SAMPLE_RATE)))
    assert [w.waveform.size for w in windows] == [4 * SAMPLE_RATE, SAMPLE_RATE]
    with pytest.raises(ValueError):
        load_waveform(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(AudioTooShortError):
        load_waveform(np.zeros(100, np.float32))


# -- images ------------------------------------------------------------------------------------------


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gray16.png"
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
    assert np.all(img == 128)  # 32768 / 257, not 255


def test_float_and_int_images_scaled_by_range(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), mode="F").save(path)
    img = load_image(path)
    assert img[0, 0, 0] == 0 and img[-1, -1, 0] == 255 and img[1, 0, 0] == round(4 / 15 * 255)


def test_alpha_flattened_onto_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # transparent red -> white
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = load_image(path)
    assert tuple(img[0, 0]) == (255, 255, 255)
    assert tuple(img[0, 1]) == (0, 0, 255)
    assert abs(int(img[1, 0, 0]) - 127) <= 1


@pytest.mark.parametrize("mode, fmt", [("P", "png"), ("L", "png"), ("LA", "png"), ("1", "png"), ("CMYK", "jpeg"), ("RGB", "webp")])
def test_modes_become_rgb(tmp_path, mode, fmt):
    base = Image.new("RGB", (5, 3), (200, 40, 40))
    img = base.convert(mode)
    path = tmp_path / f"img.{fmt}"
    img.save(path, format=fmt.upper(), **({"lossless": True} if fmt == "webp" else {}))
    out = load_image(path)
    expected = np.asarray(Image.open(path).convert("RGBA" if "A" in mode else "RGB"))[..., :3]
    assert out.shape == (3, 5, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 2


def test_one_pixel_image(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    (window,) = list(iter_windows(path))
    assert window.frames.shape == (1, 1, 1, 3) and tuple(window.frames[0, 0, 0]) == (10, 20, 30)
    assert window.frame_times_s.tolist() == [0.0] and window.waveform.shape == (0,)


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:5, :5] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif, quality=95)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (20, 40, 90)
    out = load_image(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert out.shape == (40, 20, 3)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert out[:5, -5:].mean() > 200  # the top-left block is now top-right


def _animated(path: Path, durations_ms: list[int], fmt: str) -> None:
    frames = [Image.fromarray(np.full((16, 24, 3), 20 + 5 * i, np.uint8)) for i in range(len(durations_ms))]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=durations_ms, loop=0,
                   **({"lossless": True} if fmt == "WEBP" else {}))


@pytest.mark.parametrize("fmt, name", [("GIF", "anim.gif"), ("GIF", "gif_named_as.webp"), ("WEBP", "anim.webp")])
def test_animated_images_are_video_with_frame_times(tmp_path, fmt, name):
    durations = [100, 300, 200, 500, 100]
    path = tmp_path / name
    _animated(path, durations, fmt)
    assert sniff_kind(path) == "image"
    info = probe(path)
    assert info.kind == "video" and info.container == fmt.lower() and info.frame_count == 5
    assert info.duration_s == pytest.approx(1.2)
    (window,) = list(iter_windows(path, visual_fps=10.0))
    starts = np.cumsum([0] + durations[:-1]) / 1000
    np.testing.assert_allclose(window.frame_times_s, starts, atol=1e-6)
    assert level_to_index(window.frames) == [0, 1, 2, 3, 4]
    assert window.end_s == pytest.approx(1.2)


# -- errors ------------------------------------------------------------------------------------------


def test_errors_are_typed_and_early(tmp_path, containers):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("hello, this is not a video\n" * 10)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    data = containers["h264_aac.mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    png = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:300])
    cases = {empty: EmptyFileError, text: NotMediaError, noise: NotMediaError, png: CorruptMediaError,
             tmp_path / "missing.mp4": UnreadableFileError, tmp_path: UnreadableFileError}
    if data.index(b"moov") > len(data) // 2:
        cases[cut] = CorruptMediaError
    for path, error in cases.items():
        with pytest.raises(error) as raised:
            iter_windows(path)  # raised at the call, not at the first next()
        assert raised.value.path == os.fspath(path) and raised.value.reason in str(error.reason)


def test_truncated_mp4_without_moov(tmp_path):
    path = write_av(tmp_path / "x.mp4", seconds=2.0)
    data = path.read_bytes()
    moov = data.index(b"moov")
    (tmp_path / "y.mp4").write_bytes(data[: moov - 8] if moov > 100 else data[: len(data) // 3])
    with pytest.raises(CorruptMediaError, match="truncated or corrupt"):
        probe(tmp_path / "y.mp4")


def test_damaged_middle_raises_no_raw_exception(tmp_path):
    path = write_av(tmp_path / "d.mkv", seconds=3.0)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    data[len(data) // 3: len(data) // 3 + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    try:
        windows = list(iter_windows(path))
    except DeepscanError:
        return
    assert windows and all(w.frames.dtype == np.uint8 for w in windows)


def test_audio_too_short_for_audio_only(tmp_path):
    path = write_av(tmp_path / "blip.wav", vcodec=None, acodec="pcm_s16le", seconds=0.01)
    with pytest.raises(AudioTooShortError):
        probe(path)


def test_limits_checked_before_decoding(tmp_path, containers):
    video = containers["h264_aac.mp4"]
    with pytest.raises(LimitExceededError, match="limit"):
        probe(video, MediaLimits(max_duration_s=1.0))
    with pytest.raises(LimitExceededError):
        probe(video, MediaLimits(max_pixels=64 * 48 - 1))
    with pytest.raises(LimitExceededError):
        iter_windows(video, limits=MediaLimits(max_file_bytes=100))
    png = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(png)
    with pytest.raises(LimitExceededError):
        probe(png, MediaLimits(max_pixels=300 * 300 - 1))


def test_pillow_decompression_bomb_is_mapped(tmp_path, monkeypatch):
    png = tmp_path / "bomb.png"
    Image.new("L", (300, 300)).save(png)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow raises above 2x this
    with pytest.raises(LimitExceededError):
        probe(png)


def test_load_image_of_audio_is_refused(containers):
    with pytest.raises(NoDecodableStreamError):
        load_image(containers["pcm_8k.wav"])
    with pytest.raises(NoDecodableStreamError):
        load_waveform(write_av(containers["pcm_8k.wav"].parent / "mute.mp4", acodec=None))


def test_bad_parameters(containers):
    with pytest.raises(ValueError):
        iter_windows(containers["pcm_8k.wav"], window_s=0)
    with pytest.raises(ValueError):
        iter_windows(containers["pcm_8k.wav"], visual_fps=-1)


# -- sniffing and walking -----------------------------------------------------------------------


@pytest.mark.parametrize("head, kind", [
    (b"\x89PNG\r\n\x1a\n" + bytes(8), "image"), (b"GIF89a" + bytes(8), "image"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio"),
    (b"\x00\x00\x00\x18ftypM4A \x00", "audio"), (b"\x00\x00\x00\x18ftypisom\x00", "video"),
    (b"\x1aE\xdf\xa3" + bytes(8), "video"), (b"ID3\x04" + bytes(8), "audio"), (b"fLaC" + bytes(8), "audio"),
    (b"hello world, plain text", None), (b"%PDF-1.7\n", None), (b"PK\x03\x04" + bytes(8), None),
])
def test_sniff_kind(tmp_path, head, kind):
    path = tmp_path / "file.bin"
    path.write_bytes(head + bytes(400))
    assert sniff_kind(path) == kind


def test_iter_media_files_order_skip_and_explicit(tmp_path, containers):
    root = tmp_path / "tree"
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_text("not media")
    (root / "z.mp4").write_bytes(containers["h264_aac.mp4"].read_bytes())
    (root / "b" / "clip.video").write_bytes(containers["pcm_8k.wav"].read_bytes())  # odd name, real wav
    (root / "c.wav").write_bytes(containers["pcm_8k.wav"].read_bytes())
    (root / "d.mp4").write_bytes(b"")  # named as media: kept so that it gets an "empty file" result
    found = list(iter_media_files([root]))
    assert found == [root / "b" / "clip.video", root / "c.wav", root / "d.mp4", root / "z.mp4"]
    assert list(iter_media_files([root], recursive=False)) == [root / "c.wav", root / "d.mp4", root / "z.mp4"]
    explicit = root / "a.txt"
    assert list(iter_media_files([explicit, tmp_path / "nope.mp4"])) == [explicit, tmp_path / "nope.mp4"]


def test_symlink_loop_walked_once_and_broken_links_reported(tmp_path, containers):
    d = tmp_path / "d"
    (d / "s").mkdir(parents=True)
    os.symlink("..", d / "s" / "loop")
    (d / "s" / "clip.wav").write_bytes(containers["pcm_8k.wav"].read_bytes())
    os.symlink(tmp_path / "gone.wav", d / "broken.wav")
    errors = []
    found = list(iter_media_files(d, on_error=lambda p, e: errors.append((p, e))))
    assert found == [d / "s" / "clip.wav"]
    assert [p for p, _ in errors] == [d / "broken.wav"] and isinstance(errors[0][1], UnreadableFileError)
    assert list(iter_media_files(d)) == [d / "broken.wav", d / "s" / "clip.wav"]  # nothing dropped
    with pytest.raises(UnreadableFileError):
        probe(d / "broken.wav")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_permission_denied_is_reported(tmp_path, containers):
    d = tmp_path / "locked"
    d.mkdir()
    f = d / "x.wav"
    f.write_bytes(containers["pcm_8k.wav"].read_bytes())
    f.chmod(0)
    try:
        errors = []
        assert list(iter_media_files([tmp_path], on_error=lambda p, e: errors.append(p))) == []
        assert errors == [f]
        with pytest.raises(UnreadableFileError, match="permission"):
            probe(f)
    finally:
        f.chmod(0o644)


def test_public_api_documented():
    for name in media.__all__:
        obj = getattr(media, name)
        if callable(obj):
            assert obj.__doc__ and len(obj.__doc__) > 40, name
