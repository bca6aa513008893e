"""Pipeline: decoding workers give the same results, in input order, with per-file errors."""

from __future__ import annotations

import pytest

from deepscan import synth
from deepscan import workers as workers_module
from deepscan.scanner import Scanner, default_workers, total_media_seconds
from deepscan.workers import CRASH_TEST_ENV, QUEUE_WINDOWS
from tests.helpers import make_detector


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    synth.write_clip(root / "1_talk.mp4", duration_s=5.0, seed=1)
    (root / "2_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)
    synth.write_audio(root / "3_voice.wav", duration_s=3.0, seed=3)
    synth.write_image(root / "4_face.png", seed=4)
    synth.write_clip(root / "5_short.mp4", duration_s=1.0, seed=5)
    return root


@pytest.fixture(scope="module")
def scanner(tmp_path_factory):
    detector = make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")
    return Scanner(detector=detector, encoders="debug", precision="fp32", cache=False, batch_frames=16)


def test_workers_match_in_process_results_in_input_order(scanner, media):
    files = sorted(media.iterdir())
    inline = list(scanner.scan(files, workers=0))
    seconds = []
    pooled = list(scanner.scan(files, workers=2, on_progress=lambda p, s: seconds.append(s)))
    scanner.close()
    assert [r.path for r in pooled] == [str(f) for f in files] == [r.path for r in inline]
    for a, b in zip(inline, pooled):
        assert a.status == b.status and a.reason == b.reason
        if a.status == "ok":
            assert a.p_fake == pytest.approx(b.p_fake, abs=1e-5)
            assert [(w.start_s, w.end_s) for w in a.windows] == [(w.start_s, w.end_s) for w in b.windows]
    assert pooled[1].status == "error"
    assert sum(seconds) == pytest.approx(total_media_seconds(files), abs=0.1)  # progress in media seconds


def test_interrupted_scan_terminates_the_workers(scanner, media):
    results = scanner.scan(sorted(media.iterdir()), workers=1)
    first = next(results)
    processes = list(scanner._pool.processes)
    assert first.path.endswith("1_talk.mp4") and all(p.is_alive() for p in processes)
    results.close()  # what Ctrl-C does to the generator
    assert scanner._pool is None and not any(p.is_alive() for p in processes)


def test_defaults_and_bad_settings(scanner, tmp_path):
    assert default_workers(1) == 1 and default_workers(2) == 1 and default_workers(8) == 4
    assert QUEUE_WINDOWS >= 2
    (tmp_path / "x.safetensors").write_bytes(b"")  # exists: the workers setting is refused before it is read
    with pytest.raises(ValueError, match="workers"):
        Scanner(detector=tmp_path / "x.safetensors", encoders="debug", workers=-1)


def test_a_worker_that_dies_fails_its_file_and_the_scan_goes_on(scanner, media, monkeypatch):
    files = sorted(media.iterdir())
    scanner.close()  # workers read the hook's variable when they start
    monkeypatch.setenv(CRASH_TEST_ENV, "1_talk.mp4")
    results = list(scanner.scan(files, workers=1))
    restarts = scanner._pool.restarts
    scanner.close()
    assert [r.path for r in results] == [str(f) for f in files]
    assert results[0].status == "error" and results[0].reason == "decoder crashed"
    assert "decoding process died" in results[0].media["error"]
    assert results[1].status == "error" and results[1].reason != "decoder crashed"  # the broken file
    assert [r.status for r in results[2:]] == ["ok"] * 3
    assert restarts == 1


def test_workers_that_keep_dying_are_not_restarted_endlessly(scanner, media, monkeypatch):
    files = sorted(media.iterdir())
    scanner.close()
    monkeypatch.setenv(CRASH_TEST_ENV, "*")
    monkeypatch.setattr(workers_module, "MAX_WORKER_RESTARTS", 1)
    results = list(scanner.scan(files, workers=1))
    scanner.close()
    assert [r.path for r in results] == [str(f) for f in files]
    assert all(r.status == "error" and r.reason == "decoder crashed" for r in results)
    assert "kept dying" in results[-1].media["error"]
