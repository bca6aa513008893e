"""Experts in the scan: AASIST and Meso-4 cues on the shared samples, reasons where they don't apply."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from deepscan import synth
from deepscan.cli import app
from deepscan.experts.runner import resolve_experts
from deepscan.scanner import Scanner
from tests.helpers import make_detector

runner = CliRunner()

SCANNED = ("fake_voiceclone_44k_stereo.mp3", "real_speech_44k_stereo.mp3", "fake_faceswap_film_noaudio.mp4",
           "real_film_face_noaudio.mp4", "real_face_ffhq.png", "real_talking_face_mp4v_aac16k_stereo.mp4")


@pytest.fixture(scope="module")
def sample_scan(tmp_path_factory):
    """``deepscan check`` of a few shared samples with the shared weights, as JSON Lines, twice (cold, cached)."""
    from tests.conftest import MODELS, SAMPLES

    if MODELS is None or SAMPLES is None:
        pytest.skip("../shared/models and ../shared/samples are not present")
    tmp = tmp_path_factory.mktemp("experts")
    folder = tmp / "media"
    folder.mkdir()
    for name in SCANNED:
        shutil.copy(SAMPLES / name, folder / name)
    detector = make_detector(tmp / "demo.safetensors")
    runs = []
    for _ in range(2):
        out = tmp / f"run{len(runs)}.jsonl"
        result = runner.invoke(app, ["check", str(folder), "--detector", str(detector), "--encoders", "debug",
                                     "--format", "jsonl", "-o", str(out), "--models-dir", str(MODELS),
                                     "--cache-dir", str(tmp / "cache"), "--workers", "0", "-q"])
        assert result.exit_code in (0, 1), result.output
        runs.append({json.loads(line)["path"].split("/")[-1]: json.loads(line) for line in out.read_text().splitlines()})
    return runs


def test_aasist_orders_the_voice_clone_above_real_speech(sample_scan):
    results = sample_scan[0]
    clone, real = results["fake_voiceclone_44k_stereo.mp3"], results["real_speech_44k_stereo.mp3"]
    assert clone["cues"]["aasist"]["p_fake"] >= 0.99
    assert real["cues"]["aasist"]["p_fake"] <= 0.3
    assert clone["cues"]["aasist"]["weights_sha256"].startswith("51d2d9cf")
    assert "ASVspoof 2019" in clone["cues"]["aasist"]["trained_on"]
    for window in clone["windows"]:  # per-window cues with their times
        assert window["end_s"] > window["start_s"] and 0.0 <= window["cues"]["aasist"]["p_fake"] <= 1.0
    assert clone["cues"]["meso4"] == {**clone["cues"]["meso4"], "p_fake": None, "reason": "no frames"}


def test_meso4_scores_the_face_swap_above_the_real_scene(sample_scan):
    results = sample_scan[0]
    swap, real = results["fake_faceswap_film_noaudio.mp4"], results["real_film_face_noaudio.mp4"]
    assert swap["cues"]["meso4"]["p_fake"] > real["cues"]["meso4"]["p_fake"] + 0.3
    assert swap["faces"]["detector"] == "yunet-2026may"
    assert swap["cues"]["aasist"]["p_fake"] is None and swap["cues"]["aasist"]["reason"] == "no audio stream"
    photo = results["real_face_ffhq.png"]
    assert photo["cues"]["meso4"]["p_fake"] < 0.5 and photo["cues"]["meso4"]["windows"] == 1


def test_cached_rescan_keeps_the_cues(sample_scan):
    cold, warm = sample_scan
    for name in SCANNED:
        assert warm[name]["cues"] == cold[name]["cues"]
        assert [w["cues"] for w in warm[name]["windows"]] == [w["cues"] for w in cold[name]["windows"]]


def test_offline_without_weights_reports_the_cue_absent_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DEEPSCAN_MODELS_DIR", raising=False)
    config = resolve_experts("auto")
    assert not {"aasist", "meso4"} & set(config.cues)
    assert config.unavailable["aasist"] == "weights not available"  # short: it is every result's reason
    assert "deepscan models download" in config.problems["aasist"]  # the whole story, said once
    clip = synth.write_clip(tmp_path / "clip.mp4", duration_s=2.0, seed=1)
    detector = make_detector(tmp_path / "d.safetensors")
    scanner = Scanner(detector=detector, encoders="debug", workers=0, cache=False)
    assert scanner.face_config.backend == "haar"  # YuNet's weights are not here: the built-in fallback
    result = scanner.scan_file(clip)
    assert result.status == "ok" and result.faces["detector"].startswith("opencv-haar")
    assert result.cues["aasist"]["p_fake"] is None and "weights not available" in result.cues["aasist"]["reason"]
    with pytest.raises(Exception, match="deepscan models download"):
        resolve_experts("aasist")  # named explicitly: must load


def test_experts_none_runs_no_expert(tmp_path):
    clip = synth.write_clip(tmp_path / "clip.mp4", duration_s=2.0, seed=1)
    scanner = Scanner(detector=make_detector(tmp_path / "d.safetensors"), encoders="debug", workers=0,
                      cache=False, experts="none")
    result = scanner.scan_file(clip)
    assert result.status == "ok" and result.cues == {} and all(w.cues == {} for w in result.windows)


def test_unknown_expert_is_refused():
    with pytest.raises(ValueError, match="unknown expert"):
        resolve_experts("aasist,nonsense")


def test_models_dir_copy_with_a_wrong_file_is_refused(tmp_path, models_dir):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / "AASIST-L.pth", folder / "AASIST.pth")
    with pytest.raises(Exception, match="SHA-256"):
        resolve_experts("aasist", folder)


def test_av_sync_on_a_real_talking_face_is_near_zero_lag(sample_scan):
    talk = sample_scan[0]["real_talking_face_mp4v_aac16k_stereo.mp4"]
    sync = talk["cues"]["av_sync"]
    assert sync["p_fake"] is not None and abs(sync["lag_ms"]) <= 100 and sync["correlation"] > 0.4
    assert sync["trained_on"] == "training-free measurement"
    assert all(w["speech"] > 0.1 for w in talk["windows"])  # silero-vad hears speech in every window
    assert any(w["cues"]["av_sync"].get("lag_ms") is not None for w in talk["windows"])
    film = sample_scan[0]["real_film_face_noaudio.mp4"]
    assert film["cues"]["av_sync"]["p_fake"] is None and film["cues"]["av_sync"]["reason"] == "no audio stream"


@pytest.mark.parametrize("offset_ms", [200.0, -200.0])
def test_scan_recovers_a_known_audio_offset(tmp_path_factory, offset_ms):
    tmp = tmp_path_factory.mktemp("offset")
    clip = synth.write_clip(tmp / "clip.mp4", duration_s=12.0, seed=0, audio_offset_s=offset_ms / 1000.0)
    scanner = Scanner(detector=make_detector(tmp / "d.safetensors"), encoders="debug", workers=0, cache=False,
                      experts="av_sync")
    result = scanner.scan_file(clip)
    assert abs(result.cues["av_sync"]["lag_ms"] - offset_ms) <= 125.0  # one frame interval at 8 fps
    assert 0.0 <= result.cues["av_sync"]["p_fake"] <= 1.0


def test_silence_leaves_the_audio_cues_unknown_with_no_speech(tmp_path):
    import numpy as np

    from deepscan.experts.runner import Experts

    config = resolve_experts("av_sync")
    experts = Experts(config)
    evidence = experts.run(None, np.zeros(0), np.zeros(64000, np.float32), 0.0, None, False)
    assert evidence.speech == 0.0 and evidence.cues["av_sync"]["reason"] in ("no speech", "no frames")


def test_generated_image_cue_is_absent_on_images_too_small_or_flat_to_read(tmp_path):
    """Mirror-padding a 1x1 image, or a uniform one, leaves no texture: no score, a reason, and the
    shipped detector says `unknown` for such an image instead of a confident `real`."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(tmp_path / "dot.png")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    synth.write_image(tmp_path / "face.png", seed=4)
    scanner = Scanner(workers=0, cache=False, experts="generated_image")  # the detector that ships
    results = {r.path.rsplit("/", 1)[-1]: r for r in scanner.scan(tmp_path)}
    assert results["dot.png"].cues["generated_image"]["reason"] == "image under 64x64 px"
    assert results["flat.png"].cues["generated_image"]["reason"] == "flat image"
    assert results["dot.png"].verdict == results["flat.png"].verdict == "unknown"
    assert results["face.png"].cues["generated_image"]["p_fake"] is not None
