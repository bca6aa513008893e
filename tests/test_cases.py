"""Every file in ../shared/cases and ../shared/samples decodes with the right facts or fails typed.

The expectations come from the folders' READMEs; the tests skip when the folders are absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepscan.errors import (
    AudioTooShortError,
    CorruptMediaError,
    EmptyFileError,
    NotMediaError,
)
from deepscan.media import SAMPLE_RATE, iter_media_files, iter_windows, load_image, probe

from conftest import CASES, media_files

CASE_ERRORS = {
    "empty_zero_bytes.mp4": EmptyFileError,
    "text_named_as.mp4": NotMediaError,
    "truncated_half.mp4": CorruptMediaError,
    "too_short_10ms.wav": AudioTooShortError,
}

# name: (kind, duration s, displayed width, height, has_audio, native rate, channels)
SAMPLE_FACTS = {
    "real_talking_face_vfr_aac_stereo.mp4": ("video", 6.1, 700, 700, True, 44100, 2),
    "real_talking_face_mp4v_aac16k_stereo.mp4": ("video", 8.1, 512, 512, True, 16000, 2),
    "real_film_face_noaudio.mp4": ("video", 4.5, 1920, 816, False, None, None),
    "fake_faceswap_film_noaudio.mp4": ("video", 4.5, 1280, 720, False, None, None),
    "real_speech_22k_mono.wav": ("audio", 9.7, None, None, True, 22050, 1),
    "fake_vocoded_speech_22k_mono.wav": ("audio", 9.7, None, None, True, 22050, 1),
    "real_speech_44k_stereo.mp3": ("audio", 47.0, None, None, True, 44100, 2),
    "fake_voiceclone_44k_stereo.mp3": ("audio", 31.0, None, None, True, 44100, 2),
    "real_face_ffhq.png": ("image", 0.0, 512, 512, False, None, None),
    "fake_face_sd15.png": ("image", 0.0, 512, 512, False, None, None),
    "fake_face_stylegan2.png": ("image", 0.0, 512, 512, False, None, None),
    "fake_faceswap_gif_named_as.webp": ("video", 5.3, 432, 288, False, None, None),
}


def _windows_ok(path, info):
    windows = list(iter_windows(path, info=info))
    assert windows and [w.index for w in windows] == list(range(len(windows)))
    for a, b in zip(windows, windows[1:]):
        assert a.end_s == pytest.approx(b.start_s)
    for w in windows:
        assert w.frames.dtype == np.uint8 and w.frames.ndim == 4 and w.frames.shape[-1] == 3
        assert w.waveform.dtype == np.float32 and w.waveform.ndim == 1
        assert np.all(np.abs(w.waveform) <= 1.0 + 1e-6)
        if w.has_frames:
            assert w.frames.shape[1:3] == (info.height, info.width)
            assert np.all((w.frame_times_s >= w.start_s - 1e-6) & (w.frame_times_s < max(w.end_s, 1e-6)))
    return windows


@pytest.mark.parametrize("name", [p.name for p in media_files(CASES)] or ["(no cases)"])
def test_case_decodes_or_fails_typed(cases_dir, name):
    path = cases_dir / name
    if name in CASE_ERRORS:
        with pytest.raises(CASE_ERRORS[name]) as raised:
            iter_windows(path)
        assert raised.value.reason and raised.value.path == str(path)
        return
    info = probe(path)
    windows = _windows_ok(path, info)
    total = sum(w.waveform.size for w in windows)
    if info.has_audio and info.duration_s:
        assert abs(total - info.duration_s * SAMPLE_RATE) <= 0.03 * SAMPLE_RATE


def test_case_facts(cases_dir):
    c = cases_dir
    assert probe(c / "no_audio_stream.mp4").has_audio is False
    assert next(iter_windows(c / "no_audio_stream.mp4")).waveform.shape == (0,)
    audio_only = probe(c / "audio_only.mp4")
    assert audio_only.kind == "audio" and next(iter_windows(c / "audio_only.mp4")).frames.shape == (0, 0, 0, 3)
    rotated = next(iter_windows(c / "rotated_90_display_matrix.mp4")).frames
    assert rotated.shape[1:3] == (320, 240)  # 240 wide, 320 high after rotation
    for name in ("stereo_16k.wav", "surround_5_1.m4a", "telephone_8k.wav", "studio_48k.wav"):
        info = probe(c / name)
        total = sum(w.waveform.size for w in iter_windows(c / name))
        assert abs(total - info.duration_s * SAMPLE_RATE) <= 0.005 * SAMPLE_RATE, name
    raw = np.asarray(Image.open(c / "sixteen_bit_gray.png")).astype(np.float64)
    gray16 = load_image(c / "sixteen_bit_gray.png")
    assert raw.max() > 255 and not np.all(gray16 == 255)  # 16-bit data, not clipped to white
    np.testing.assert_array_equal(gray16[..., 0], np.rint(raw / 257).astype(np.uint8))
    assert load_image(c / "one_pixel.png").shape == (1, 1, 3)
    exif = probe(c / "exif_orientation_6.jpg")
    assert exif.rotation == 90 and load_image(c / "exif_orientation_6.jpg").shape[:2] == (exif.height, exif.width)
    assert exif.height > exif.width
    cmyk = load_image(c / "cmyk.jpg")
    assert cmyk.shape[2] == 3 and cmyk.dtype == np.uint8
    vfr = next(iter_windows(c / "variable_frame_rate.mp4"))
    # a nominal-fps clock would give evenly spaced times; pts give the stream's own spacing
    assert len(np.unique(np.round(np.diff(vfr.frame_times_s), 3))) > 1
    weird = probe(c / "non_ascii_名前_é.png")
    assert weird.path.endswith("名前_é.png") and weird.kind == "image"


def test_cases_folder_walks(cases_dir):
    found = [p.name for p in iter_media_files([cases_dir])]
    assert found == sorted(found)
    assert "README.md" not in found
    # media by their bytes or by their name: kept, so that each fails with its own reason
    assert {"truncated_half.mp4", "text_named_as.mp4", "empty_zero_bytes.mp4"} <= set(found)


@pytest.mark.parametrize("name", sorted(SAMPLE_FACTS))
def test_sample_facts(samples_dir, name):
    path = samples_dir / name
    if not path.exists():
        pytest.skip(f"{name} is not in ../shared/samples")
    kind, duration, width, height, has_audio, rate, channels = SAMPLE_FACTS[name]
    info = probe(path)
    assert info.kind == kind
    assert info.duration_s == pytest.approx(duration, abs=0.25)
    assert (info.width, info.height) == (width, height)
    assert (info.has_audio, info.audio_sample_rate, info.audio_channels) == (has_audio, rate, channels)
    windows = _windows_ok(path, info)
    expected_windows = 1 if kind == "image" else max(1, int(np.ceil(duration / 4.0 - 0.125)))
    assert abs(len(windows) - expected_windows) <= 1
    if has_audio:
        total = sum(w.waveform.size for w in windows)
        assert abs(total - info.duration_s * SAMPLE_RATE) <= 0.03 * SAMPLE_RATE


def test_sample_vfr_times_follow_pts(samples_dir):
    path = samples_dir / "real_talking_face_vfr_aac_stereo.mp4"
    if not path.exists():
        pytest.skip("sample absent")
    times = np.concatenate([w.frame_times_s for w in iter_windows(path)])
    assert np.all(np.diff(times) > 0)
    assert times[-1] <= probe(path).duration_s

