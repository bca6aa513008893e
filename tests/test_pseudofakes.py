"""deepscan.training.pseudofakes and deepscan.training.corpus."""

from __future__ import annotations

import copy
import csv

import av
import numpy as np
import pytest

from deepscan import synth
from deepscan.media import SAMPLE_RATE, Window
from deepscan.training import pseudofakes as pf
from deepscan.training.corpus import assign_splits, make_corpus

FPS = 25


@pytest.fixture(scope="module")
def clip():
    return synth.make_clip(3.0, size=(128, 128), fps=FPS, seed=11)


@pytest.fixture
def window(clip):
    step = 3  # ~8 fps, as the media stage samples
    return Window(
        index=0,
        start_s=0.0,
        end_s=3.0,
        frames=clip.frames[::step].copy(),
        frame_times_s=np.arange(0, clip.frames.shape[0], step) / FPS,
        waveform=clip.waveform.copy(),
        has_audio=True,
    )


def _envelope(x: np.ndarray, hop: int = 80) -> np.ndarray:
    """RMS per 5 ms hop, mean removed."""
    n = x.size // hop
    env = np.sqrt((x[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    return env - env.mean()


def _snapshot(w: Window) -> Window:
    return copy.deepcopy(w)


def _assert_same(a: Window, b: Window) -> None:
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.frame_times_s, b.frame_times_s)
    np.testing.assert_array_equal(a.waveform, b.waveform)
    assert (a.start_s, a.end_s, a.has_audio) == (b.start_s, b.end_s, b.has_audio)


@pytest.mark.parametrize("offset_s", [0.25, -0.4, 0.8])
@pytest.mark.parametrize("fill", ["circular", "silence"])
def test_av_offset_is_recoverable_by_cross_correlation(window, offset_s, fill):
    out = pf.av_offset(window, offset_s, fill=fill)
    assert out.waveform.shape == window.waveform.shape and out.waveform.dtype == np.float32
    a, b = _envelope(window.waveform), _envelope(out.waveform)
    lags = np.arange(-200, 201)  # 5 ms steps, +-1 s
    if fill == "circular":
        score = [np.dot(np.roll(a, lag), b) for lag in lags]
    else:
        score = [np.dot(a[max(0, -lag) : a.size - max(0, lag)], b[max(0, lag) : b.size - max(0, -lag)]) for lag in lags]
    recovered = lags[int(np.argmax(score))] * 0.005
    assert abs(recovered - offset_s) <= 0.02  # half a video frame at 25 fps
    np.testing.assert_array_equal(out.frames, window.frames)
    if fill == "silence":
        gap = int(round(abs(offset_s) * SAMPLE_RATE))
        edge = out.waveform[:gap] if offset_s > 0 else out.waveform[-gap:]
        assert not edge.any()


def test_av_offset_rejects_impossible_shifts(window):
    with pytest.raises(pf.PseudoFakeError, match="does not fit"):
        pf.av_offset(window, 3.5)
    with pytest.raises(pf.PseudoFakeError, match="audio"):
        pf.av_offset(Window(0, 0.0, 1.0, frames=window.frames), 0.3)
    with pytest.raises(ValueError, match="fill"):
        pf.av_offset(window, 0.3, fill="wrap")


def test_swap_audio_comes_from_donor(window):
    donor, _ = synth.speech_like(5.0, SAMPLE_RATE, seed=99)
    out = pf.swap_audio(window, donor, np.random.default_rng(0))
    n = window.waveform.size
    assert out.waveform.shape == (n,)
    starts = [s for s in range(donor.size - n + 1) if donor[s] == out.waveform[0]]
    assert any(np.array_equal(donor[s : s + n], out.waveform) for s in starts)
    assert not np.allclose(out.waveform, window.waveform)
    np.testing.assert_array_equal(out.frames, window.frames)


def test_swap_audio_repeats_short_donor_and_fills_silent_window(window):
    donor = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    silent = Window(0, 0.0, 0.25, frames=window.frames[:2])
    out = pf.swap_audio(silent, donor)
    assert out.has_audio and out.waveform.shape == (4000,)
    np.testing.assert_array_equal(out.waveform[1000:2000], donor)
    with pytest.raises(pf.PseudoFakeError, match="donor"):
        pf.swap_audio(window, np.zeros(0, np.float32))


def test_blended_face_changes_pixels_only_inside_mask(window, clip):
    boxes = clip.boxes[::3]
    frames, masks = pf.self_blend(window.frames, boxes, np.random.default_rng(5))
    assert frames.shape == window.frames.shape and frames.dtype == np.uint8
    assert masks.shape == window.frames.shape[:3] and masks.dtype == np.float32
    assert 0.0 <= masks.min() and masks.max() <= 1.0
    changed = np.any(frames != window.frames, axis=-1)
    assert changed.any()
    assert not np.any(changed & (masks == 0))
    # the mask sits on the face: its weighted centre is inside every frame's box
    ys, xs = np.mgrid[0 : masks.shape[1], 0 : masks.shape[2]]
    for mask, (x0, y0, x1, y1) in zip(masks, boxes):
        cx, cy = (mask * xs).sum() / mask.sum(), (mask * ys).sum() / mask.sum()
        assert x0 < cx < x1 and y0 < cy < y1
        # and nothing reaches beyond the box grown by the largest blur, deformation and dilation
        grow = 0.6 * min(x1 - x0, y1 - y0)
        far = (xs < x0 - grow) | (xs > x1 + grow) | (ys < y0 - grow) | (ys > y1 + grow)
        assert not mask[far].any()


def test_blended_face_default_box_and_bad_boxes(window):
    out = pf.blended_face(window, None, np.random.default_rng(1))
    h, w = window.frames.shape[1:3]
    x0, y0, x1, y1 = pf.default_face_box(h, w).astype(int)
    diff = np.any(out.frames != window.frames, axis=-1)
    assert diff[:, y0:y1, x0:x1].any()
    np.testing.assert_array_equal(out.waveform, window.waveform)
    with pytest.raises(pf.PseudoFakeError, match="boxes"):
        pf.blended_face(window, np.zeros((2, 4)), np.random.default_rng(1))
    with pytest.raises(pf.PseudoFakeError, match="frames"):
        pf.blended_face(Window(0, 0.0, 1.0, waveform=window.waveform), None, np.random.default_rng(1))


def test_vocoded_audio_keeps_length_and_content_but_differs(window):
    out = pf.vocoded_audio(window, pf.PseudoFakeConfig(griffin_lim_iters=16))
    assert out.waveform.shape == window.waveform.shape and out.waveform.dtype == np.float32
    assert not np.allclose(out.waveform, window.waveform, atol=1e-2)
    # same words: the loudness contour survives, the level is matched
    a, b = _envelope(window.waveform, 160), _envelope(out.waveform, 160)
    assert np.corrcoef(a, b)[0, 1] > 0.8
    rms = lambda x: np.sqrt(np.mean(x.astype(np.float64) ** 2))  # noqa: E731
    assert rms(out.waveform) == pytest.approx(rms(window.waveform), rel=0.1)
    with pytest.raises(pf.PseudoFakeError, match="samples"):
        pf.vocoded_audio(Window(0, 0.0, 0.01, waveform=np.zeros(100, np.float32), has_audio=True))


def test_griffin_lim_converges_to_the_magnitude():
    x, _ = synth.speech_like(1.0, SAMPLE_RATE, seed=1)
    hann = np.hanning(513)[:-1].astype(np.float32)
    mag = np.abs(pf._stft(x, 512, 128, hann))
    y = pf.griffin_lim(mag, 512, 128, 32, x.size)
    error = np.linalg.norm(np.abs(pf._stft(y.astype(np.float32), 512, 128, hann)) - mag) / np.linalg.norm(mag)
    assert y.shape == x.shape and error < 0.1


@pytest.mark.parametrize("kind", pf.PSEUDO_FAKE_KINDS)
def test_apply_pseudo_fake_is_seeded_and_never_mutates(window, clip, kind):
    before = _snapshot(window)
    donor, _ = synth.speech_like(3.0, SAMPLE_RATE, seed=42)
    config = pf.PseudoFakeConfig(griffin_lim_iters=8)
    kwargs = dict(donor=donor, config=config, boxes=clip.boxes[::3])
    first = pf.apply_pseudo_fake(kind, window, np.random.default_rng(7), **kwargs)
    second = pf.apply_pseudo_fake(kind, window, np.random.default_rng(7), **kwargs)
    _assert_same(window, before)
    _assert_same(first, second)
    assert first.frames is not window.frames and first.waveform is not window.waveform
    changed_frames = not np.array_equal(first.frames, window.frames)
    changed_audio = not np.array_equal(first.waveform, window.waveform)
    assert changed_frames == (kind == "blended_face")
    assert changed_audio == (kind != "blended_face")


def test_apply_pseudo_fake_errors(window):
    rng = np.random.default_rng(0)
    with pytest.raises(pf.PseudoFakeError, match="unknown"):
        pf.apply_pseudo_fake("deep_nostalgia", window, rng)
    with pytest.raises(pf.PseudoFakeError, match="donor"):
        pf.apply_pseudo_fake("swapped_audio", window, rng)
    short = Window(0, 0.0, 0.2, waveform=np.ones(3200, np.float32), has_audio=True)
    with pytest.raises(pf.PseudoFakeError, match="needs at least"):
        pf.apply_pseudo_fake("av_offset", short, rng)
    with pytest.raises(ValueError, match="offset_range_s"):
        pf.PseudoFakeConfig(offset_range_s=(0.5, 0.1))
    with pytest.raises(ValueError, match="multiple"):
        pf.PseudoFakeConfig(n_fft=500, hop_length=128)


def test_av_offset_draws_from_configured_range(window):
    config = pf.PseudoFakeConfig(offset_range_s=(0.3, 0.5))
    a = _envelope(window.waveform)
    lags = np.arange(-200, 201)
    for seed in range(3):
        out = pf.apply_pseudo_fake("av_offset", window, np.random.default_rng(seed), config=config)
        b = _envelope(out.waveform)
        lag = lags[int(np.argmax([np.dot(np.roll(a, k), b) for k in lags]))] * 0.005
        assert 0.28 <= abs(lag) <= 0.52


def test_assign_splits_fractions_and_minimums():
    splits = assign_splits(40, np.random.default_rng(0))
    assert splits.count("train") == 28 and splits.count("val") == 6 and splits.count("test") == 6
    assert set(assign_splits(3, np.random.default_rng(0))) == {"train", "val", "test"}
    assert assign_splits(1, np.random.default_rng(0)) == ["train"]


def test_make_corpus_manifest_and_split_by_source(tmp_path):
    manifest = make_corpus(tmp_path / "corpus", clips=14, seed=3, duration_s=1.0, size=(96, 96), fps=10)
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:4] == ["path", "label", "kind", "split"]
        rows = list(reader)
    assert len(rows) == 14
    real = [r for r in rows if r["label"] == "real"]
    fake = [r for r in rows if r["label"] == "fake"]
    assert len(real) == 7 and len(fake) == 7
    assert all(r["kind"] == "real" and r["path"].startswith("real/") for r in real)
    assert {r["kind"] for r in fake} == set(pf.PSEUDO_FAKE_KINDS)
    assert all(r["path"].startswith(f"fake/{r['kind']}/") for r in fake)
    split_of = {r["source"]: r["split"] for r in real}
    assert all(r["split"] == split_of[r["source"]] for r in fake)  # a fake shares its source's split
    assert set(split_of.values()) == {"train", "val", "test"}
    for r in rows:
        path = manifest.parent / r["path"]
        with av.open(str(path)) as f:
            assert {s.type for s in f.streams} == {"video", "audio"}
            assert f.streams.video[0].frames in (0, 10)


def test_make_corpus_fakes_are_what_they_claim(tmp_path):
    out = tmp_path / "c"
    manifest = make_corpus(out, clips=8, seed=5, duration_s=1.5, size=(96, 96), fps=10)
    with open(manifest, newline="") as f:
        rows = {r["kind"]: r for r in csv.DictReader(f) if r["label"] == "fake"}

    def decode(rel):
        with av.open(str(out / rel)) as f:
            frames = np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])
            f.seek(0)
            audio = np.concatenate([fr.to_ndarray().ravel() for fr in f.decode(audio=0)])
        return frames, audio

    for kind, row in rows.items():
        fake_frames, fake_audio = decode(row["path"])
        real_frames, real_audio = decode(f"real/real_{int(row['source']):04d}.mp4")
        n = min(real_audio.size, fake_audio.size)
        same_audio = np.corrcoef(real_audio[:n], fake_audio[:n])[0, 1] > 0.95
        frame_diff = np.abs(real_frames.astype(int) - fake_frames).mean()
        if kind == "blended_face":
            assert same_audio and frame_diff > 0.3
        elif kind in ("swapped_audio", "vocoded_audio"):
            assert not same_audio and frame_diff < 0.3
        else:  # av_offset: re-rendered from the same seed with a shifted voice
            assert not same_audio
