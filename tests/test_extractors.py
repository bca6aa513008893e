"""Extractors: shapes, dtypes, token times, determinism, signal of the debug encoders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepscan import synth
from deepscan.errors import AudioTooShortError
from deepscan.extractors import AUDIO_TOKEN_RATE, Features, load_extractors
from deepscan.extractors.debug import build_debug_audio_model, build_debug_image_model
from deepscan.extractors.video import VideoEncoder
from deepscan.media import SAMPLE_RATE

FPS = 8.0


@pytest.fixture(scope="module")
def ex():
    return load_extractors("debug")


@pytest.fixture(scope="module")
def clip():
    return synth.make_clip(4.0, fps=FPS, seed=3)


def _crops(frames: np.ndarray) -> np.ndarray:
    # Centre-square crop resized to 224 with torch, as a stand-in for the face cropper.
    h, w = frames.shape[1:3]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    square = torch.from_numpy(frames[:, y0 : y0 + side, x0 : x0 + side]).permute(0, 3, 1, 2).float()
    out = F.interpolate(square, size=(224, 224), mode="bilinear", antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def test_encode_window_shapes_dtypes_times(ex, clip):
    crops = _crops(clip.frames)
    times = 10.0 + np.arange(len(crops)) / FPS
    feats = ex.encode(crops, times, clip.waveform, start_s=10.0)
    assert feats.lengths() == {"image": 32, "audio": 50, "video": 8}
    for name in ("image", "audio", "video", "image_times_s", "audio_times_s", "video_times_s"):
        assert getattr(feats, name).dtype == torch.float32
    assert feats.image.shape == (32, 512) and feats.audio.shape == (50, 768) and feats.video.shape == (8, 512)
    torch.testing.assert_close(feats.image_times_s, torch.arange(32) / FPS)
    # 80 ms tokens centred on groups of 4 frames at 20 ms hop + 12.5 ms half receptive field.
    assert feats.audio_times_s[0].item() == pytest.approx(0.0125 + 0.03, abs=1e-6)
    assert np.diff(feats.audio_times_s[:-1].numpy()) == pytest.approx(1 / AUDIO_TOKEN_RATE, abs=1e-6)
    assert 0 < feats.audio_times_s[-1].item() < 4.0
    assert feats.video_times_s[0].item() == pytest.approx(2 / FPS)
    assert torch.isfinite(feats.image).all() and torch.isfinite(feats.audio).all()


def test_absent_modalities_are_empty(ex):
    audio_only = ex.encode(np.zeros((0, 224, 224, 3), np.uint8), np.zeros(0), np.zeros(16000, np.float32))
    assert audio_only.lengths() == {"image": 0, "audio": 13, "video": 0}
    image = np.full((1, 224, 224, 3), 128, np.uint8)
    still = ex.encode(image, [0.0], np.zeros(0, np.float32))
    assert still.lengths() == {"image": 1, "audio": 0, "video": 0}
    assert Features().lengths() == {"image": 0, "audio": 0, "video": 0}


def test_bad_inputs_raise_specific_errors(ex):
    with pytest.raises(AudioTooShortError, match="400 samples"):
        ex.encode(np.zeros((0, 224, 224, 3), np.uint8), [], np.zeros(399, np.float32))
    with pytest.raises(TypeError, match="uint8"):
        ex.image(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        ex.image(np.zeros((1, 224, 224), np.uint8))
    with pytest.raises(ValueError, match="mono"):
        ex.audio(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        ex.audio(np.full(16000, np.nan, np.float32))
    with pytest.raises(ValueError, match="strictly increasing"):
        ex.encode(np.zeros((2, 224, 224, 3), np.uint8), [0.5, 0.5], np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="frame_times_s"):
        ex.encode(np.zeros((2, 224, 224, 3), np.uint8), [0.0], np.zeros(0, np.float32))


def test_image_resized_when_not_224(ex):
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (2, 320, 320, 3), dtype=np.uint8)
    assert ex.image(big).shape == (2, 512)


def test_batched_equals_single(ex, clip):
    crops = _crops(clip.frames)
    wave = clip.waveform
    batch = ex.encode_many([(crops[:16], np.arange(16) / FPS, wave[:32000]), (crops[16:], np.arange(16) / FPS, wave[32000:])])
    single = ex.encode(crops[16:], np.arange(16) / FPS, wave[32000:])
    torch.testing.assert_close(batch[1].image, single.image, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batch[1].audio, single.audio, rtol=1e-4, atol=1e-4)
    mixed = ex.encode_audio([wave[:20000], wave[:32000], np.zeros(0, np.float32)])
    torch.testing.assert_close(mixed[1][0], ex.audio(wave[:32000])[0])
    assert [m[0].shape[0] for m in mixed] == [16, 25, 0]


def test_debug_encoders_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = build_debug_image_model(), build_debug_image_model()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c, d = build_debug_audio_model(), build_debug_audio_model()
    assert all(torch.equal(p, q) for p, q in zip(c.state_dict().values(), d.state_dict().values()))
    assert not any(p.requires_grad for p in a.parameters())


def test_config_is_labelled_and_hash_stable(ex):
    assert ex.is_debug and ex.config["debug"] is True
    assert ex.config["image"]["id"] == "debug" and ex.config["audio"]["id"] == "debug"
    assert ex.config["audio"]["token_rate_hz"] == AUDIO_TOKEN_RATE
    assert ex.config_hash() == load_extractors("debug").config_hash()
    assert len(ex.config_hash()) == 16


def test_debug_image_embeddings_separate_crops(ex, clip):
    crops = _crops(clip.frames)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    emb = ex.image(np.concatenate([crops[:1], noise]))
    other_face = ex.image(_crops(synth.make_clip(0.5, fps=FPS, seed=11).frames[:1]))
    assert _cos(emb[0], emb[1]) < 0.9  # a face vs noise
    # (two uniform-noise crops are no longer asserted apart: the debug encoder mean-pools patch
    # tokens, and the means of two i.i.d. noise images agree, as they should for a near-linear net)
    assert _cos(emb[0], other_face[0]) < 0.98  # two synthetic faces
    moved = ex.image(crops)
    spread = (moved - moved.mean(0)).norm(dim=1).mean() / moved.norm(dim=1).mean()
    assert spread > 0.01  # a talking face changes its embedding over time


def test_debug_image_embedding_follows_the_mouth_opening(ex):
    # lip-sync needs the mouth opening in the image tokens: on the line from a closed to an open
    # mouth, a half-open mouth must sit in between, and the order must hold for every opening
    openings = np.linspace(0.0, 1.0, 6)
    frames = np.stack([synth.render_face_frames(np.array([o]), seed=7)[0] for o in openings])
    emb = ex.image(_crops(frames))
    axis = emb[-1] - emb[0]
    position = ((emb - emb[0]) @ axis / axis.dot(axis)).numpy()
    assert np.all(np.diff(position) > 0), position
    assert position[0] == pytest.approx(0.0, abs=1e-6) and position[-1] == pytest.approx(1.0, abs=1e-6)


def test_debug_image_texture_half_sees_blur_not_flat_colour(ex):
    # a self-blended face is blurred or sharpened inside the face: the texture half must move with
    # sharpness, and its zero-mean filters must not mistake a brightness change for one
    crops = _crops(synth.render_face_frames(np.array([0.3]), seed=7))
    blurred = np.stack([cv2.GaussianBlur(c, (0, 0), 2.0) for c in crops])
    brighter = np.clip(crops.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    emb, emb_blur, emb_bright = (ex.image(c)[0] for c in (crops, blurred, brighter))
    half = emb.shape[0] // 2

    def change(a, b, part):
        return ((a[part] - b[part]).norm() / a[part].norm()).item()

    texture, patches = slice(half, None), slice(None, half)
    assert change(emb, emb_blur, texture) > 0.2
    assert change(emb, emb_bright, texture) < 0.5 * change(emb, emb_blur, texture)
    assert change(emb, emb_bright, patches) > 0.05  # the colour shows in the patch half instead


def test_debug_audio_separates_speech_from_griffin_lim(ex):
    torchaudio = pytest.importorskip("torchaudio")
    wave, _ = synth.speech_like(2.0, seed=5)
    x = torch.from_numpy(wave)
    spec = torchaudio.transforms.Spectrogram(n_fft=512, hop_length=128, power=1.0)(x)
    resynth = torchaudio.transforms.GriffinLim(n_fft=512, hop_length=128, power=1.0, n_iter=32)(spec)
    resynth = F.pad(resynth, (0, x.shape[0] - resynth.shape[0]))[: x.shape[0]]
    other, _ = synth.speech_like(2.0, seed=6)
    a, g, o = ex.audio(x)[0], ex.audio(resynth)[0], ex.audio(other)[0]
    same_speech = F.cosine_similarity(a, g, dim=1).mean().item()
    self_sim = F.cosine_similarity(a, ex.audio(x * 0.5)[0], dim=1).mean().item()
    assert self_sim > 0.999  # normalisation makes the gain irrelevant
    assert same_speech < 0.95  # vocoding leaves a trace the features see
    assert F.cosine_similarity(a, o, dim=1).mean().item() < same_speech + 0.05


def test_video_tokens_follow_temporal_change():
    video = VideoEncoder(dim=8, segment_frames=4)
    times = np.arange(9) / FPS
    static = torch.ones(9, 8)
    tokens, token_times = video(static, times)
    assert tokens.shape == (2, 8) and token_times.tolist() == pytest.approx([0.25, 0.75])
    assert tokens.abs().max().item() < 1e-5
    moving = torch.ones(9, 8)
    moving[:, 0] = torch.sin(torch.arange(9.0))  # oscillation that a mean difference would cancel
    tokens, _ = video(moving, times)
    assert tokens.abs().max().item() > 0.5
    # Rates are per second: the same motion sampled twice as fast is twice the rate.
    fast, _ = video(moving, times / 2)
    torch.testing.assert_close(fast, 2 * tokens)
    assert video(torch.ones(1, 8), [0.0])[0].shape == (0, 8)
    assert video(torch.ones(6, 8), np.arange(6) / FPS)[0].shape == (2, 8)  # 5 differences -> 4 + 1


def test_video_tokens_of_talking_face_exceed_still_face(ex, clip):
    crops = _crops(clip.frames)
    times = np.arange(len(crops)) / FPS
    talking = ex.encode(crops, times, np.zeros(0, np.float32)).video
    still = ex.encode(np.repeat(crops[:1], len(crops), 0), times, np.zeros(0, np.float32)).video
    assert still.abs().max().item() < 1e-4
    assert talking.abs().mean().item() > 100 * max(still.abs().mean().item(), 1e-9)
