"""deepscan.synth: seeded speech-like audio, a Haar-detectable talking face, encoded clips."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from deepscan import synth
from deepscan.errors import UnsupportedCodecError

SR = 16_000


def _envelope(x: np.ndarray, hop: int = 160) -> np.ndarray:
    """RMS per 10 ms hop."""
    n = x.size // hop
    return np.sqrt((x[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))


def test_speech_like_shapes_range_and_seed():
    wave, env = synth.speech_like(2.5, SR, seed=3)
    assert wave.shape == env.shape == (40_000,)
    assert wave.dtype == env.dtype == np.float32
    assert 0.3 < np.abs(wave).max() <= 1.0
    assert env.min() >= 0.0 and env.max() <= 1.0
    again, env_again = synth.speech_like(2.5, SR, seed=3)
    np.testing.assert_array_equal(wave, again)
    np.testing.assert_array_equal(env, env_again)
    other, _ = synth.speech_like(2.5, SR, seed=4)
    assert not np.allclose(wave, other)


def test_speech_like_has_syllables_and_pauses():
    wave, env = synth.speech_like(8.0, SR, seed=0)
    silent = np.mean(env == 0.0)
    assert 0.05 < silent < 0.6
    # syllable onsets: upward crossings of half the envelope's peak, about 4 per second of speech
    above = env > 0.25
    onsets = np.count_nonzero(above[1:] & ~above[:-1])
    speaking_s = np.count_nonzero(env > 0) / SR
    assert 2.0 < onsets / speaking_s < 7.0
    # the sound follows the envelope: loud where it is high, quiet where it is 0
    loud = _envelope(wave)[_envelope(env) > 0.6].mean()
    quiet = _envelope(wave)[_envelope(env) == 0].mean()
    assert loud > 10 * quiet


def test_speech_like_rejects_bad_duration():
    with pytest.raises(ValueError, match="duration_s"):
        synth.speech_like(0.0)


def test_render_face_mouth_follows_envelope():
    frames = synth.render_face_frames(np.array([0.0, 1.0]), size=(160, 160), seed=2, fps=1e6)
    assert frames.shape == (2, 160, 160, 3) and frames.dtype == np.uint8
    box = synth.face_boxes(1, 1e6, (160, 160), seed=2)[0]
    x0, y0, x1, y1 = box.astype(int)
    lower = slice(y0 + (y1 - y0) * 3 // 4, y1), slice(x0, x1)
    # an open mouth shows more dark pixels in the lower quarter of the face
    dark = [np.count_nonzero(f[lower].mean(-1) < 60) for f in frames]
    assert dark[1] > dark[0] + 20


def test_render_face_without_face_is_background():
    frames = synth.render_face_frames(np.zeros(3), size=(64, 48), seed=1, face=False)
    assert frames.shape == (3, 48, 64, 3)
    np.testing.assert_array_equal(frames[0], frames[2])


def test_render_rejects_odd_size_and_bad_envelope():
    with pytest.raises(ValueError, match="even"):
        synth.render_face_frames(np.zeros(2), size=(63, 48))
    with pytest.raises(ValueError, match="1-D"):
        synth.render_face_frames(np.zeros((2, 2)))


@pytest.mark.parametrize("size", [(320, 240), (160, 160)])
def test_haar_cascade_finds_the_face(size):
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found, inside, total = 0, 0, 0
    for seed in range(6):
        clip = synth.make_clip(1.0, size=size, fps=10, seed=seed)
        for frame, box in zip(clip.frames[::3], clip.boxes[::3]):
            total += 1
            faces = cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5)
            if len(faces):
                found += 1
                x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
                inside += box[0] <= x + w / 2 <= box[2] and box[1] <= y + h / 2 <= box[3]
    assert found / total >= 0.8
    assert inside == found


def test_make_clip_shapes_and_seed():
    clip = synth.make_clip(2.0, size=(96, 64), fps=12.5, seed=5)
    assert clip.frames.shape == (25, 64, 96, 3)
    assert clip.waveform.shape == clip.envelope.shape == (32_000,)
    assert clip.boxes.shape == (25, 4)
    assert np.all(clip.boxes[:, 2] > clip.boxes[:, 0]) and np.all(clip.boxes[:, 3] > clip.boxes[:, 1])
    again = synth.make_clip(2.0, size=(96, 64), fps=12.5, seed=5)
    np.testing.assert_array_equal(clip.frames, again.frames)
    np.testing.assert_array_equal(clip.waveform, again.waveform)
    # the head moves a little
    assert np.ptp(clip.boxes[:, 0]) > 0.5


@pytest.mark.parametrize("offset_s", [0.4, -0.3])
def test_audio_offset_shifts_voice_against_mouth(offset_s):
    clip = synth.make_clip(3.0, size=(64, 64), fps=25, seed=7, audio_offset_s=offset_s)
    sound, mouth = _envelope(clip.waveform), _envelope(clip.envelope)
    sound, mouth = sound - sound.mean(), mouth - mouth.mean()
    lags = np.arange(-80, 81)  # 10 ms steps
    score = [np.dot(np.roll(mouth, lag), sound) for lag in lags]
    assert abs(lags[int(np.argmax(score))] * 0.01 - offset_s) <= 0.02
    # no silence is invented at the edges: the shifted track is filled with speech
    assert np.abs(clip.waveform[: int(abs(offset_s) * SR)]).max() > 0.05 or np.abs(clip.waveform[-int(abs(offset_s) * SR) :]).max() > 0.05


def test_write_clip_mp4_decodes(tmp_path):
    path = synth.write_clip(tmp_path / "c.mp4", duration_s=2.0, size=(160, 120), fps=25, seed=1)
    with av.open(str(path)) as f:
        video, audio = f.streams.video[0], f.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert (video.codec_context.width, video.codec_context.height) == (160, 120)
        assert audio.codec_context.sample_rate == SR
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    assert len(frames) == 50
    original = synth.make_clip(2.0, size=(160, 120), fps=25, seed=1).frames
    assert np.abs(frames[10].astype(int) - original[10]).mean() < 6  # lossy, but the same picture


def test_write_clip_single_streams_and_other_codecs(tmp_path):
    video_only = synth.write_clip(tmp_path / "v.mp4", 1.0, size=(64, 64), audio=False)
    audio_only = synth.write_clip(tmp_path / "a.mkv", 1.0, video=False, audio_codec="flac")
    mpeg4 = synth.write_clip(tmp_path / "m.mkv", 1.0, size=(64, 64), video_codec="mpeg4", audio_codec="flac")
    with av.open(str(video_only)) as f:
        assert [s.type for s in f.streams] == ["video"]
    with av.open(str(audio_only)) as f:
        assert [s.type for s in f.streams] == ["audio"]
        pcm = np.concatenate([fr.to_ndarray().ravel() for fr in f.decode(audio=0)])
    expected, _ = synth.speech_like(1.0, SR, seed=0)
    assert pcm.size == expected.size
    np.testing.assert_allclose(pcm.astype(np.float32) / (32768.0 if pcm.dtype == np.int16 else 1.0), expected, atol=2e-4)
    with av.open(str(mpeg4)) as f:
        assert {s.codec_context.name for s in f.streams} == {"mpeg4", "flac"}


def test_write_clip_errors(tmp_path):
    with pytest.raises(ValueError, match="audio=True, video=True"):
        synth.write_clip(tmp_path / "x.mp4", audio=False, video=False)
    with pytest.raises(UnsupportedCodecError):
        synth.write_clip(tmp_path / "x.mp4", 0.5, size=(64, 64), video_codec="no_such_encoder")
    with pytest.raises(ValueError, match="uint8"):
        synth.encode_clip(tmp_path / "x.mp4", np.zeros((2, 64, 64, 3), np.float32))


def test_write_audio_and_image(tmp_path):
    wav = synth.write_audio(tmp_path / "s.wav", 0.5, seed=2)
    with av.open(str(wav)) as f:
        assert f.streams.audio[0].codec_context.name == "pcm_s16le"
        pcm = np.concatenate([fr.to_ndarray().ravel() for fr in f.decode(audio=0)])
    expected, _ = synth.speech_like(0.5, SR, seed=2)
    np.testing.assert_allclose(pcm / 32768.0, expected, atol=1e-4)
    png = synth.write_image(tmp_path / "f.png", size=(120, 100), seed=2)
    with Image.open(png) as im:
        assert im.size == (120, 100) and im.mode == "RGB"
