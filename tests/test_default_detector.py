"""The cue-fusion detector that ships inside the package: what it records, and what `check` does with it."""

from __future__ import annotations

import pytest

from deepscan.model.fusion import DEFAULT_PATH, FusionDetector
from tests.conftest import SHARED

pytestmark = pytest.mark.skipif(not DEFAULT_PATH.is_file(), reason="no default detector in this installation")


@pytest.fixture(scope="module")
def shipped() -> FusionDetector:
    return FusionDetector.load(DEFAULT_PATH)


def test_it_records_its_training_files_licences_and_out_of_fold_metrics(shipped):
    files = shipped.provenance["files"]
    assert len(files) >= 100 and all(len(f["sha256"]) == 64 and f["licence"] is not None for f in files)
    assert shipped.provenance["licences"] and "harvest" in shipped.provenance["trained_on"]
    assert shipped.kinds, "no media kind has a model"
    for kind, model in shipped.kinds.items():
        m = model.metrics
        assert m["auc"] >= 0.6 and m["n_real"] >= 10 and m["n_fake"] >= 10, kind
        assert m["ece"] < 0.1, f"{kind}: out-of-fold ECE {m['ece']:.3f}"  # calibrated on held-out folds
        assert m["fpr"] <= shipped.target_fpr + 1e-9  # the threshold keeps to the stated false positive rate
        assert 0.0 < model.threshold < 1.0 and set(model.cues) <= set(m["candidates"][m["cue_set"]]["cues"])


def test_it_records_an_uncertain_band_per_kind_at_least_005_either_side(shipped):
    from deepscan.results import decide
    from deepscan.training.fusion import BAND_PRECISION

    assert "out-of-fold" in shipped.provenance["uncertain_band_rule"]
    for kind, model in shipped.kinds.items():
        lo, hi = model.band  # recorded in the checkpoint, from out-of-fold data of its training files
        assert lo <= model.threshold - 0.05 + 1e-9 and hi >= model.threshold + 0.05 - 1e-9, kind
        assert shipped.band(kind) == (lo, hi)
        detail = model.band_detail
        assert detail["precision"] == BAND_PRECISION and detail["oof_files"] == model.metrics["n_real"] + model.metrics["n_fake"]
        assert decide(model.threshold - 0.001, model.threshold, shipped.band(kind)) == "uncertain"
        assert decide(hi + 0.001, model.threshold, shipped.band(kind)) == "fake"


def test_the_realworld_yardstick_is_not_among_its_training_files(shipped):
    from deepscan.labelled import read_manifest

    manifest = None if SHARED is None else SHARED / "realworld" / "MANIFEST.tsv"
    if manifest is None or not manifest.is_file():
        pytest.skip("../shared/realworld is not present")
    scored = {f.sha256 for f in read_manifest(manifest)}
    trained = {f["sha256"] for f in shipped.provenance["files"]}
    assert scored and not scored & trained


def test_the_summary_names_its_cues_and_real_media_aucs(shipped):
    line = shipped.summary()
    assert line.startswith("cue fusion of ")
    for kind, measured in (shipped.provenance.get("real_media") or {}).items():
        assert f"{kind} {measured['auc']:.3f}" in line


def test_check_with_no_flags_gives_every_sample_a_verdict_in_80_columns(tmp_path, monkeypatch):
    """The README's main command: `DEEPSCAN_MODELS_DIR=../shared/models deepscan check ../shared/samples`."""
    import os

    from typer.testing import CliRunner

    from deepscan.cli import app
    from tests.conftest import MODELS, SAMPLES, media_files

    if SAMPLES is None or MODELS is None:
        pytest.skip("../shared/samples and ../shared/models are not present")
    monkeypatch.setenv("DEEPSCAN_MODELS_DIR", str(MODELS))
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("DEEPSCAN_DETECTOR", raising=False)
    result = CliRunner().invoke(app, ["check", str(SAMPLES)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    names = [os.path.basename(p) for p in media_files(SAMPLES)]
    rows = [line for line in lines if line.split() and line.split()[0][:12] in {n[:12] for n in names}]
    assert len(rows) == len(names), result.output
    for row in rows:
        assert row.split()[1] in ("fake", "uncertain", "real", "unknown"), row
    text = " ".join(result.output.split())
    assert "detector: cue fusion of" in text and "DEMO" not in text
    assert f"{len(names)} files" in text and "0 errors" in text


def test_without_an_experts_weights_its_files_are_unknown_and_the_reason_is_said_once(tmp_path, monkeypatch):
    """Offline with no weights folder: AASIST cannot be had, so audio gets `unknown`, not a verdict
    that reads the missing cue as no evidence; images (their cue ships in the package) still get one."""
    import json

    from typer.testing import CliRunner

    from deepscan import synth
    from deepscan.cli import app

    for name in ("DEEPSCAN_MODELS_DIR", "DEEPSCAN_DETECTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEEPSCAN_OFFLINE", "1")
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path / "cache"))
    synth.write_audio(tmp_path / "voice.wav", duration_s=3.0, seed=3)
    synth.write_image(tmp_path / "face.png", seed=4)
    result = CliRunner().invoke(app, ["check", str(tmp_path / "voice.wav"), str(tmp_path / "face.png"),
                                      "-f", "jsonl", "-q"])
    assert result.exit_code == 0, result.output
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, result.stdout.splitlines())}
    voice, face = records["voice.wav"], records["face.png"]
    assert voice["verdict"] == "unknown" and voice["p_fake"] is None
    assert voice["reason"].startswith("aasist") and voice["reason"].endswith("weights not available")
    assert voice["cues"]["aasist"] == {"p_fake": None, "reason": "weights not available", "windows": 0}
    assert face["verdict"] in ("real", "uncertain", "fake") and face["p_fake"] is not None
    assert result.stderr.count("aasist is not available") == 1  # the whole message, once
    assert "yunet is not available" in result.stderr and "Haar cascade instead" in result.stderr
    assert "deepscan models download" in result.stderr


def test_a_missing_audio_expert_does_not_hold_back_a_video_without_sound(tmp_path, monkeypatch):
    """AASIST's weights missing matter only to files with an audio stream."""
    from deepscan import synth
    from deepscan.scanner import Scanner

    monkeypatch.delenv("DEEPSCAN_MODELS_DIR", raising=False)
    monkeypatch.setenv("DEEPSCAN_OFFLINE", "1")
    silent = synth.write_clip(tmp_path / "silent.mp4", duration_s=2.0, seed=2, audio=False)
    scanner = Scanner(workers=0, cache=False)
    assert "aasist" in scanner.experts_config.unavailable and "meso4" in scanner.experts_config.unavailable
    result = scanner.scan_file(silent)
    # the face expert would read its frames: unknown for want of meso4, not of aasist (no sound to read)
    assert result.verdict == "unknown" and result.reason == "meso4: weights not available"
