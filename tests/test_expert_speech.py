"""Learned speech expert (cue ``synthetic_speech``): shipped weights, contract, features,
format augmentation, seeded training on a tiny generated harvest, and the shared-data checks."""

from __future__ import annotations

import csv
import hashlib
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from deepscan.errors import ModelLoadingError
from deepscan.experts.speech_learned import (
    CUE,
    DEFAULT_WEIGHTS,
    FEATURE_DIMS,
    LFCC,
    SpeechExpert,
    SpeechExpertConfig,
    dct_matrix,
    lfcc_stats,
    linear_filterbank,
    load_speech_expert,
    save_speech_expert,
    window_of,
    windows_of,
)
from deepscan.training.audio_augment import AugmentConfig, augment, encode_decode, resample_through

from conftest import MODELS, SHARED

SR = 16_000
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "synthetic_speech.json"


def _aasist_path():
    return MODELS / "AASIST.pth" if MODELS is not None else None


@pytest.fixture(scope="module")
def shipped() -> SpeechExpert:
    meta_needs_aasist = json.loads(_raw_metadata(DEFAULT_WEIGHTS))["config"]["features"]
    if "aasist" in meta_needs_aasist and MODELS is None:
        pytest.skip("the shipped model uses AASIST features and ../shared/models is absent")
    return load_speech_expert(aasist_path=_aasist_path())


def _raw_metadata(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["deepscan"]


def _voice(seconds: float, f0: float, rng: np.random.Generator, breathy: float = 0.02) -> np.ndarray:
    """A crude voiced signal: harmonics of a wandering f0, syllable envelope, noise."""
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 25))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)) ** 2
    return (0.1 * env * x + breathy * rng.standard_normal(t.size)).astype(np.float32)


# ------------------------------------------------------------------ shipped weights and contract


def test_shipped_weights_are_small_and_carry_provenance():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 2_000_000
    meta = json.loads(_raw_metadata(DEFAULT_WEIGHTS))
    assert meta["cue"] == CUE and meta["format"].startswith("deepscan-synthetic-speech/")
    files = meta["training_files"]
    assert len(files) >= 200
    assert all(len(f["sha256"]) == 64 and "license" in f and f["label"] in ("real", "fake") for f in files)
    assert len({f["sha256"] for f in files}) == len(files)
    assert {"p_codec", "gain_db", "p_pad", "p_resample", "bitrates"} <= set(meta["augmentation"])
    assert isinstance(meta["seed"], int)
    lgo = meta["leave_generator_out"]
    assert 0.0 <= lgo["overall"]["auc"] <= 1.0 and len(lgo["per_system"]) >= 10


def test_shipped_weights_never_saw_realworld_files(realworld_dir):
    meta = json.loads(_raw_metadata(DEFAULT_WEIGHTS))
    with open(realworld_dir / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        yardstick = {r["sha256"] for r in csv.DictReader(f, delimiter="\t")}
    assert not yardstick & {f["sha256"] for f in meta["training_files"]}


def test_score_contract(shipped):
    rng = np.random.default_rng(0)
    x = _voice(4.0, 120, rng)
    p, tokens, times = shipped.score(x)
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    assert tokens.dtype == np.float32 and tokens.shape == (1, shipped.config.token_dim)
    assert times.dtype == np.float32 and times.shape == (1,) and times[0] == pytest.approx(2.0)
    # the token's last value is the logit behind p
    assert 1 / (1 + np.exp(-tokens[0, -1])) == pytest.approx(p, abs=1e-5)
    # a short window is tiled to 4 s: the same as scoring the tiled audio
    short = x[:20_000]
    assert shipped.score(short)[0] == pytest.approx(shipped.score(window_of(short))[0], abs=1e-6)
    assert shipped.score(short)[2][0] == pytest.approx(20_000 / SR / 2)
    # deterministic
    assert shipped.score(x)[0] == p


@pytest.mark.parametrize("bad", [np.zeros((2, 64_000), np.float32), np.zeros(100, np.float32),
                                 np.full(64_000, np.nan, np.float32)])
def test_score_refuses_bad_input(shipped, bad):
    with pytest.raises(ValueError):
        shipped.score(bad)


def test_loading_errors(tmp_path):
    with pytest.raises(ModelLoadingError, match="not found"):
        load_speech_expert(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelLoadingError):
        load_speech_expert(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other), metadata={"deepscan": json.dumps({"format": "something-else"})})
    with pytest.raises(ModelLoadingError, match="not a synthetic_speech"):
        load_speech_expert(other)
    needs = SpeechExpertConfig(("lfcc-stats", "aasist"), 8)
    fake_aasist = torch.nn.Identity()  # never run: only saved and reloaded
    path = save_speech_expert(SpeechExpert(needs, aasist=fake_aasist), tmp_path / "needs.safetensors")
    with pytest.raises(ModelLoadingError, match="AASIST"):
        load_speech_expert(path)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(3)
    expert = SpeechExpert(SpeechExpertConfig(("lfcc-stats",), 4), metadata={"seed": 3})
    with torch.no_grad():
        expert.head.mean.uniform_(-1, 1)
        expert.head.scale.uniform_(0.5, 2)
    x = _voice(3.0, 150, np.random.default_rng(1))
    path = save_speech_expert(expert, tmp_path / "m.safetensors", {"note": "round trip"})
    again = load_speech_expert(path)
    assert again.metadata["note"] == "round trip" and again.metadata["seed"] == 3
    assert again.score(x)[0] == pytest.approx(expert.eval().score(x)[0], abs=1e-6)
    assert again.config.token_dim == 5


# ------------------------------------------------------------------ features


def test_linear_filterbank_and_dct():
    fb = linear_filterbank(40, 512)
    assert fb.shape == (40, 257) and fb.max() == pytest.approx(1.0, abs=0.02)
    peaks = fb.argmax(axis=1)
    assert np.all(np.diff(peaks) > 0)  # ordered low to high
    assert np.allclose(np.diff(np.diff(peaks)), 0, atol=1)  # linearly spaced
    # triangles overlap by half: they sum to ~1 between the first and last peak
    inner = fb[:, peaks[0] + 1:peaks[-1] - 1].sum(axis=0)
    assert np.allclose(inner, 1.0, atol=0.02)
    d = dct_matrix(40, 40)
    assert np.allclose(d @ d.T, np.eye(40), atol=1e-5)


def test_lfcc_sees_a_tone_in_its_band():
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 3_000 * t)).astype(np.float32)
    log_fbank, c = LFCC()(torch.from_numpy(tone)[None])
    assert log_fbank.shape == (1, 40, 101) and c.shape == (1, 40, 101)
    band = int(np.argmax(log_fbank[0].mean(dim=1).numpy()))
    centre = (band + 1) * 8_000 / 41
    assert abs(centre - 3_000) < 8_000 / 41


def test_lfcc_stats_spectral_shape_block_ignores_gain():
    x = _voice(4.0, 130, np.random.default_rng(2))
    a, b = lfcc_stats(np.stack([x, 0.25 * x]))
    assert a.shape == (FEATURE_DIMS["lfcc-stats"],)
    shape = slice(120, 160)  # long-term spectrum minus its mean: gain-free
    assert np.allclose(a[shape], b[shape], atol=1e-3)
    assert not np.allclose(a[:40], b[:40], atol=1e-2)  # c0 does move with the gain


def test_windows_of_follows_the_scanner_rule():
    assert [len(w) for w in windows_of(np.zeros(64_000 * 2 + 40_000, np.float32))] == [64_000, 64_000, 40_000]
    assert [len(w) for w in windows_of(np.zeros(64_000 + 20_000, np.float32))] == [64_000]
    assert [len(w) for w in windows_of(np.zeros(10_000, np.float32))] == [10_000]
    assert window_of(np.arange(3, dtype=np.float32), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]


# ------------------------------------------------------------------ format augmentation


@pytest.mark.parametrize("codec", ["mp3", "aac", "opus", "pcm"])
def test_encode_decode_round_trip_keeps_the_signal(codec):
    x = _voice(2.0, 140, np.random.default_rng(4), breathy=0.0)
    y = encode_decode(x, codec, 128_000, 24_000)
    assert y.dtype == np.float32 and abs(y.size - x.size) < 0.15 * SR
    # align (codec delay) and check the waveform survived
    lag = int(np.argmax(np.correlate(y[:8_000], x[:4_000], mode="valid")))
    n = min(x.size, y.size - lag) - 100
    r = np.corrcoef(x[:n], y[lag:lag + n])[0, 1]
    assert r > 0.9, (codec, r)


def test_resampling_through_8k_removes_the_top_band():
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 6_000 * t)).astype(np.float32)
    assert np.sqrt(np.mean(resample_through(tone, 48_000) ** 2)) > 0.3
    assert np.sqrt(np.mean(resample_through(tone, 8_000) ** 2)) < 0.01


def test_augment_is_seeded_and_bounded():
    x = _voice(2.0, 110, np.random.default_rng(5))
    cfg = AugmentConfig(p_codec=0.5, p_pad=1.0)
    a = [augment(x, np.random.default_rng([1, k]), cfg) for k in range(6)]
    b = [augment(x, np.random.default_rng([1, k]), cfg) for k in range(6)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert all(np.abs(p).max() <= 1.0 and p.dtype == np.float32 for p in a)
    assert len({round(float(np.abs(p).max()), 4) for p in a}) > 1  # gains differ between draws


# ------------------------------------------------------------------ training on a tiny generated harvest


def _write_wav(path: Path, x: np.ndarray, rate: int = SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _tiny_harvest(root: Path) -> Path:
    """12 files on 3 pages: reals breathy voices, fakes the same voices with no breath noise and a
    buzz at 5 kHz (a crude 'vocoder'); fake systems: one per page, one shared by pages 0 and 1, one
    on page 2 only."""
    rng = np.random.default_rng(0)
    rows = []
    for page in range(3):
        for i in range(4):
            fake = i >= 2
            x = _voice(2.0, 100 + 40 * i + 10 * page, rng, breathy=0.002 if fake else 0.03)
            if fake:
                t = np.arange(x.size) / SR
                x = x + 0.02 * np.sign(np.sin(2 * np.pi * 5_000 * t)).astype(np.float32)
            name = f"p{page}_{i}.wav"
            label = "fake" if fake else "real"
            path = root / "audio" / label / name
            _write_wav(path, x)
            rows.append({"name": name, "kind": "audio", "label": label,
                         "system": ("corpus" if not fake else f"sys{page}" if i == 2
                                    else "shared" if page < 2 else "solo"), "method": "tts" if fake else "real",
                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "license": "CC0-1.0",
                         "group": f"page{page}", "pair": f"page{page}:{i % 2}"})
    with open(root / "audio" / "MANIFEST.tsv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _tiny_harvest(tmp_path_factory.mktemp("harvest"))


def _tiny_config():
    from deepscan.training.expert_speech import TrainConfig

    return TrainConfig(model=SpeechExpertConfig(("lfcc-stats",), 8), copies=1, steps=60,
                       augment=AugmentConfig(p_codec=0.5, bitrates=(64_000,), p_resample=0.5))


def test_train_is_deterministic_for_a_seed_and_learns(tiny, tmp_path):
    from safetensors.torch import load_file

    from deepscan.training.expert_speech import train

    cfg = _tiny_config()
    r1 = train(tiny, tmp_path / "a.safetensors", seed=0, quiet=True, config=cfg, cache_dir=tmp_path / "c1")
    r2 = train(tiny, tmp_path / "b.safetensors", seed=0, quiet=True, config=cfg, cache_dir=tmp_path / "c2")
    a, b = (load_file(str(tmp_path / f"{n}.safetensors")) for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert r1["leave_generator_out"]["overall"] == r2["leave_generator_out"]["overall"]
    assert r1["files"] == 12 and set(r1["leave_generator_out"]["per_system"]) == {"sys0", "sys1", "sys2", "shared", "solo"}
    assert r1["leave_generator_out"]["per_system"]["shared"]["held_out_pages"] == ["page0", "page1"]
    # it learned the tiny task: fakes above reals, on files it did not see
    assert r1["leave_generator_out"]["overall"]["auc"] >= 0.8
    expert = load_speech_expert(tmp_path / "a.safetensors")
    meta = expert.metadata
    assert meta["seed"] == 0 and len(meta["training_files"]) == 12
    assert {f["license"] for f in meta["training_files"]} == {"CC0-1.0"}


def test_fit_head_seeded():
    from deepscan.training.expert_speech import TrainConfig, fit_head

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 200)).astype(np.float32)
    y = (x[:, 3] + 0.3 * rng.standard_normal(200) > 0).astype(int)
    w = np.ones(200)
    cfg = TrainConfig(model=SpeechExpertConfig(("lfcc-stats",), 8), steps=80)
    h0, h0b, h1 = fit_head(x, y, w, cfg, 0), fit_head(x, y, w, cfg, 0), fit_head(x, y, w, cfg, 1)
    s0, s0b, s1 = (h.state_dict() for h in (h0, h0b, h1))
    assert all(torch.equal(s0[k], s0b[k]) for k in s0)
    assert any(not torch.equal(s0[k], s1[k]) for k in s0)
    with torch.no_grad():
        logit, z = h0(torch.from_numpy(x))
    assert z.shape == (200, 8)
    assert ((logit > 0).numpy() == y).mean() > 0.8
    with pytest.raises(ValueError, match="both classes"):
        fit_head(x, np.zeros(200), w, cfg)


def test_train_skips_missing_and_mismatched_files(tiny, tmp_path):
    import shutil

    from deepscan.training.expert_speech import harvest_audio

    root = tmp_path / "h"
    shutil.copytree(tiny, root)
    (root / "audio" / "real" / "p0_0.wav").unlink()
    (root / "audio" / "fake" / "p1_2.wav").write_bytes(b"RIFF....tampered")
    files, licences, skipped = harvest_audio(root)
    assert len(files) == 10
    reasons = dict(skipped)
    assert reasons["p0_0.wav"] == "not on disk" and "SHA-256" in reasons["p1_2.wav"]


def test_train_refuses_a_single_class(tmp_path):
    from deepscan.training.expert_speech import train

    root = _tiny_harvest(tmp_path / "h")
    for p in (root / "audio" / "fake").iterdir():
        p.unlink()
    with pytest.raises(ValueError, match="real and fake"):
        train(root, tmp_path / "x.safetensors", quiet=True, config=_tiny_config(), cache_dir=tmp_path / "c")


# ------------------------------------------------------------------ shared data (skip without ../shared)


def test_recorded_realworld_scores_reproduce(shipped, realworld_dir):
    """The per-file scores in bench/results/synthetic_speech.json come from the shipped weights."""
    from deepscan.media import load_waveform

    if not RESULTS.is_file():
        pytest.skip("bench/results/synthetic_speech.json not written yet")
    recorded = json.loads(RESULTS.read_text())
    assert recorded["weights_sha256"] == hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    files = {f["name"]: f for f in recorded["realworld"]["files"]}
    for name in ("wavefake_LJ001-0002.wav", "wavefake_LJ001-0002_gen.wav", "ns1_naturalspeech_2.wav"):
        f = files[name]
        p = shipped.score_file(load_waveform(realworld_dir / "audio" / f["label"] / name))
        assert p == pytest.approx(f["scores"]["synthetic_speech"], abs=1e-4)


def test_harvest_starter_files_are_in_the_training_record():
    if SHARED is None or not (SHARED / "harvest" / "audio" / "MANIFEST.tsv").is_file():
        pytest.skip("../shared/harvest is not present")
    from deepscan.training.expert_speech import EXCLUDED_SHA256, harvest_audio

    files, _, skipped = harvest_audio(SHARED / "harvest", check_hashes=False)
    meta = json.loads(_raw_metadata(DEFAULT_WEIGHTS))
    trained = {f["sha256"] for f in meta["training_files"]}
    assert {f.sha256 for f in files} <= trained  # the shipped model saw every starter file
    assert not trained & EXCLUDED_SHA256
