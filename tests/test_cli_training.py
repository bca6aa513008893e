"""CLI: deepscan synth -> train -> evaluate --format json, and deepscan demo, through Typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepscan.cli import app
from deepscan.model import read_metadata

runner = CliRunner()


@pytest.mark.slow
def test_synth_train_evaluate_json(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path / "cache"))
    data, det = tmp_path / "S", tmp_path / "d.safetensors"
    result = runner.invoke(app, ["synth", str(data), "--clips", "12", "--seed", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert (data / "manifest.csv").is_file() and (data / "corpus.json").is_file()
    result = runner.invoke(app, ["train", str(data), "--encoders", "debug", "-o", str(det), "--epochs", "3", "-q"])
    assert result.exit_code == 0, result.output
    checkpoint = read_metadata(det)
    assert checkpoint.trained_on == "synthetic" and checkpoint.is_synthetic
    assert checkpoint.sampling == {"window_s": 4.0, "visual_fps": 8.0}
    assert checkpoint.encoders["image"]["id"] == "debug"
    # without --encoders, evaluate uses the encoders the checkpoint names (debug here): no download
    result = runner.invoke(app, ["evaluate", str(data), "--detector", str(det), "--split", "all", "--format", "json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("auc", "eer", "ap", "accuracy", "ece", "n_real", "n_fake", "per_kind"):
        assert key in metrics
    assert metrics["n_real"] + metrics["n_fake"] == 12
    fit = tmp_path / "fit.safetensors"
    result = runner.invoke(app, ["evaluate", str(data), "--detector", str(det), "--encoders", "debug", "--split",
                                 "all", "--fit-threshold", "--target-fpr", "0.0", "-o", str(fit), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert read_metadata(fit).threshold == pytest.approx(json.loads(result.stdout)["fitted_threshold"])


def test_evaluate_refuses_other_encoders(tmp_path):
    from deepscan.model import CrossModalDetector, DetectorConfig, save_detector

    det = tmp_path / "d.safetensors"
    encoders = {m: {"id": "openai/clip-vit-base-patch32" if m != "audio" else "facebook/wav2vec2-base",
                    "revision": None, "dim": 512 if m != "audio" else 768} for m in ("image", "audio", "video")}
    save_detector(det, CrossModalDetector(DetectorConfig(d_model=16, n_heads=2, ff_dim=16)), encoders=encoders,
                  sampling={}, provenance={"trained_on": "x"})
    from deepscan.training.data import make_synthetic_corpus

    make_synthetic_corpus(tmp_path / "S", clips=4, seed=1)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "S"), "--detector", str(det), "--encoders", "debug",
                                 "--split", "all", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 4
    assert "was trained on image encoder openai/clip-vit-base-patch32" in result.output


@pytest.mark.slow
def test_demo_small_run_prints_auc(tmp_path):
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path / "demo"), "--clips", "16", "--seed", "1",
                                 "--epochs", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert "held-out AUC:" in result.stdout
    assert "DEMO detector trained on synthetic data" in result.stdout
    assert (tmp_path / "demo" / "demo-detector.safetensors").is_file()
    assert read_metadata(tmp_path / "demo" / "demo-detector.safetensors").trained_on == "synthetic"


def test_cli_training_defaults_are_the_library_defaults():
    # the CLI modules import torch lazily, so they repeat the numbers; they must not drift apart
    import inspect

    from deepscan.cli.demo import demo
    from deepscan.cli.train import train
    from deepscan.training.train import DEFAULT_EPOCHS, DEFAULT_PATIENCE

    def default(command, name):
        return inspect.signature(command).parameters[name].default.default

    assert default(train, "epochs") == default(demo, "epochs") == DEFAULT_EPOCHS
    assert default(train, "patience") == DEFAULT_PATIENCE
