"""End to end: files -> deepscan.scan -> one result per file, with debug encoders and a demo detector."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from deepscan import synth
from deepscan.errors import CheckpointMismatchError, DetectorNotConfiguredError
from deepscan.scanner import Scanner
from tests.conftest import media_files
from tests.helpers import make_detector

RESULT_FIELDS = {"path", "status", "reason", "verdict", "p_fake", "threshold", "modalities", "windows",
                 "media", "faces", "detector"}


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


@pytest.fixture(scope="module")
def scanner(detector):
    return Scanner(detector=detector, encoders="debug", precision="fp32")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    synth.write_clip(root / "talk.mp4", duration_s=6.0, seed=1)
    synth.write_clip(root / "silent.mp4", duration_s=2.0, seed=2, audio=False)
    synth.write_audio(root / "voice.wav", duration_s=3.0, seed=3)
    synth.write_image(root / "face.png", seed=4)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("not a video\n")
    return root


def test_scan_gives_one_result_per_file_in_order(scanner, media):
    files = [media / n for n in ("talk.mp4", "silent.mp4", "voice.wav", "face.png", "empty.mp4", "notes.mp4")]
    results = list(scanner.scan(files))
    assert [r.path for r in results] == [str(f) for f in files]
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in results}
    for name in ("talk.mp4", "silent.mp4", "voice.wav", "face.png"):
        r = by_name[name]
        assert r.status == "ok", (name, r.reason)
        assert RESULT_FIELDS <= set(r.to_dict())
        assert 0.0 <= r.p_fake <= 1.0 and r.verdict in ("real", "uncertain", "fake")
        assert r.threshold == 0.5
        assert r.detector["synthetic"] and "DEMO" in r.detector["label"]
    assert by_name["empty.mp4"].status == "error" and by_name["empty.mp4"].reason == "empty file"
    assert by_name["notes.mp4"].reason == "not a media file"


def test_windows_cover_the_file_and_modalities_are_reported(scanner, media):
    talk = scanner.scan_file(media / "talk.mp4")
    assert [(w.start_s, w.end_s) for w in talk.windows] == [(0.0, 4.0), (4.0, 6.0)]
    assert all(w.modalities["audio"] is not None for w in talk.windows)
    assert talk.modalities["audio"]["present"] and talk.modalities["video"]["present"]
    assert talk.faces["frames"] == 48 and talk.faces["frames_with_face"] > 40
    assert talk.top_modality in ("image", "audio", "video")
    assert talk.thumbnails and talk.thumbnails[0]["p_fake"] == max(w.p_fake for w in talk.windows)

    silent = scanner.scan_file(media / "silent.mp4")
    assert not silent.modalities["audio"]["present"]
    assert silent.modalities["audio"]["reason"] == "no audio stream"

    voice = scanner.scan_file(media / "voice.wav")
    assert voice.modalities["audio"]["present"] and not voice.modalities["image"]["present"]
    assert voice.faces["frames"] == 0

    face = scanner.scan_file(media / "face.png")
    assert face.modalities["image"]["present"] and not face.modalities["video"]["present"]
    assert len(face.windows) == 1


def test_file_p_fake_is_the_mean_window_logit(scanner, media):
    r = scanner.scan_file(media / "talk.mp4")
    mean_logit = np.mean([w.logit for w in r.windows])
    assert r.p_fake == pytest.approx(1 / (1 + np.exp(-mean_logit)), abs=1e-6)


def test_a_batch_goes_on_after_bad_files_and_results_are_deterministic(scanner, media):
    first = [r.to_dict() for r in scanner.scan([media])]
    second = [r.to_dict() for r in scanner.scan([media])]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs]
    assert strip(first) == strip(second)
    assert sum(r["status"] == "ok" for r in first) == 4


def test_no_face_is_reported_not_hidden(scanner, tmp_path):
    synth.write_clip(tmp_path / "noface.mp4", duration_s=2.0, seed=5, face=False)
    r = scanner.scan_file(tmp_path / "noface.mp4")
    assert r.status == "ok" and r.reason == "no face" and r.faces["no_face"]
    assert r.modalities["image"]["reason"] == "no face"
    assert r.modalities["audio"]["present"] and r.modalities["audio"]["reason"] is None


def test_untrained_detector_withholds_the_verdict(tmp_path, media):
    det = make_detector(tmp_path / "untrained.safetensors", trained_on="untrained")
    r = Scanner(detector=det, encoders="debug", precision="fp32").scan_file(media / "face.png")
    assert r.verdict == "unknown" and "untrained" in r.reason
    assert "UNTRAINED" in r.detector["label"]


def test_no_detector_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("DEEPSCAN_DETECTOR", raising=False)
    monkeypatch.setattr("deepscan.model.fusion.DEFAULT_PATH", tmp_path / "not-shipped.safetensors")
    with pytest.raises(DetectorNotConfiguredError, match="--detector"):
        Scanner(detector=None, encoders="debug")


def test_detector_for_other_encoders_is_refused(tmp_path):
    encoders = {"image": {"id": "openai/clip-vit-base-patch32", "revision": None, "dim": 512},
                "audio": {"id": "facebook/wav2vec2-base", "revision": None, "dim": 768},
                "video": {"id": "openai/clip-vit-base-patch32", "revision": None, "dim": 512}}
    det = make_detector(tmp_path / "real.safetensors", encoders=encoders)
    with pytest.raises(CheckpointMismatchError, match="debug"):
        Scanner(detector=det, encoders="debug")


@pytest.mark.slow
def test_check_over_shared_cases_and_samples(scanner, cases_dir, samples_dir):
    files = media_files(cases_dir) + media_files(samples_dir)
    results = {r.path: r for r in scanner.scan(files)}
    assert len(results) == len(files)
    expected_errors = {"empty_zero_bytes.mp4": "empty file", "text_named_as.mp4": "not a media file",
                       "truncated_half.mp4": "truncated or corrupt", "too_short_10ms.wav": "audio too short"}
    for path, r in results.items():
        name = path.rsplit("/", 1)[-1]
        if name in expected_errors:
            assert (r.status, r.reason) == ("error", expected_errors[name]), name
        else:
            assert r.status == "ok", (name, r.reason, r.media.get("error"))
            json.dumps(r.to_dict())
    assert results[str(cases_dir / "no_face_with_audio.mp4")].reason == "no face"
    assert results[str(cases_dir / "no_face_with_audio.mp4")].modalities["audio"]["present"]
    assert results[str(cases_dir / "no_audio_stream.mp4")].modalities["audio"]["reason"] == "no audio stream"
    assert not results[str(cases_dir / "audio_only.mp4")].modalities["image"]["present"]


def test_an_encoder_crash_on_one_window_fails_that_file_only(detector, media, monkeypatch):
    """An unexpected error inside an encoder is the file's typed error; the other files are scored."""
    scanner = Scanner(detector=detector, encoders="debug", precision="fp32", workers=0, cache=False, experts="none")
    real = scanner.extractors.encode_many

    def flaky(items):
        if any(waveform is not None and len(waveform) == len(poison) and np.array_equal(waveform, poison)
               for _, _, waveform, _ in items):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        return real(items)

    from deepscan.media import iter_windows

    first = next(iter_windows(media / "voice.wav"))
    poison = np.asarray(first.waveform)
    monkeypatch.setattr(scanner.extractors, "encode_many", flaky)
    results = {r.path.rsplit("/", 1)[-1]: r for r in scanner.scan([media])}
    assert results["voice.wav"].status == "error" and results["voice.wav"].reason == "encoder failed"
    assert "RuntimeError: mat1 and mat2" in results["voice.wav"].media["error"]
    assert results["talk.mp4"].status == "ok" and results["face.png"].status == "ok"


def test_elapsed_time_is_per_file_not_since_the_listing(tmp_path):
    """Each file's elapsed_s counts from its own first message: the last of many quick files does
    not carry the time of the ones before it. Each window is scored as it comes (batch of 1), so
    the files' times do not overlap and add up to at most the scan's."""
    from tests.helpers import make_detector

    for i in range(6):
        synth.write_audio(tmp_path / f"v{i}.wav", duration_s=1.0, seed=i)
    scanner = Scanner(detector=make_detector(tmp_path / "d.safetensors"), encoders="debug", workers=0,
                      cache=False, experts="none", batch_frames=1)
    start = time.perf_counter()
    results = list(scanner.scan(tmp_path))
    total = time.perf_counter() - start
    assert len(results) == 6 and all(r.status == "ok" for r in results)
    assert sum(r.elapsed_s for r in results) <= total * 1.05 + 0.05  # cumulative times would sum to ~3.5x
