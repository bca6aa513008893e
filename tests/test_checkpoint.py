"""Detector checkpoints: safetensors + JSON metadata, refusal of mismatches, garbage and pickles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from deepscan.errors import CheckpointError, CheckpointMismatchError
from deepscan.model import (
    FORMAT_VERSION,
    MODALITIES,
    CrossModalDetector,
    DetectorConfig,
    load_detector,
    read_metadata,
    save_detector,
    with_threshold,
)
from deepscan.model.checkpoint import METADATA_KEY

CONFIG = DetectorConfig(image_dim=24, audio_dim=40, video_dim=16, d_model=32, n_heads=4, ff_dim=32)
ENCODERS = {
    "image": {"id": "openai/clip-vit-base-patch32", "revision": "3d74acf", "dim": 24},
    "audio": {"id": "facebook/wav2vec2-base", "revision": None, "dim": 40},
    "video": {"id": "deepscan/frame-pool", "revision": None, "dim": 16},
}
SAMPLING = {"window_s": 4.0, "visual_fps": 8.0, "sample_rate": 16000}
PROVENANCE = {"trained_on": "FakeAVCeleb train split", "encoders": "pretrained", "metrics": {"auc": 0.91}}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model() -> CrossModalDetector:
    torch.manual_seed(0)
    return CrossModalDetector(CONFIG).eval()


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "detector-v1.safetensors"
    sha = save_detector(
        path, model, encoders=ENCODERS, sampling=SAMPLING, threshold=0.42,
        calibration={"temperature": 1.5}, provenance=PROVENANCE,
    )
    return path, sha


def inputs(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {m: torch.randn(2, 3, CONFIG.input_dims[m], generator=gen) for m in MODALITIES}


def rewrite_metadata(src, dst, edit) -> None:
    """Copy a checkpoint, passing its deepscan metadata dict through ``edit``."""
    from safetensors import safe_open

    with safe_open(str(src), "pt") as file:
        description = json.loads(file.metadata()[METADATA_KEY])
    save_file(load_file(str(src)), str(dst), metadata={METADATA_KEY: json.dumps(edit(description))})


def test_round_trip_gives_same_logits_and_metadata(saved, model):
    path, sha = saved
    loaded, checkpoint = load_detector(path, expected_encoders=ENCODERS)
    assert not loaded.training
    x = inputs()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**x).logits, model(**x).logits, atol=0, rtol=0)
    assert checkpoint.config == CONFIG
    assert checkpoint.encoders == ENCODERS
    assert checkpoint.sampling == SAMPLING
    assert checkpoint.provenance == PROVENANCE
    assert checkpoint.threshold == 0.42 and checkpoint.temperature == 1.5
    assert checkpoint.format_version == FORMAT_VERSION
    assert checkpoint.name == "detector-v1"
    assert checkpoint.sha256 == sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoint.trained_on == "FakeAVCeleb train split" and not checkpoint.is_synthetic
    assert read_metadata(path) == checkpoint
    assert json.loads(json.dumps(checkpoint.to_dict()))["sha256"] == sha


def test_sha256_is_stable_across_saves(tmp_path, saved, model):
    path, sha = saved
    again = tmp_path / "again.safetensors"
    sha_again = save_detector(
        again, model, encoders=ENCODERS, sampling=SAMPLING, threshold=0.42,
        calibration={"temperature": 1.5}, provenance=PROVENANCE,
    )
    assert sha_again == sha
    assert again.read_bytes() == path.read_bytes()
    other = tmp_path / "other.safetensors"
    assert save_detector(other, model, encoders=ENCODERS, sampling=SAMPLING, provenance={}) != sha


def test_metadata_is_one_json_key(saved):
    from safetensors import safe_open

    with safe_open(str(saved[0]), "pt") as file:
        metadata = file.metadata()
    assert list(metadata) == [METADATA_KEY]
    description = json.loads(metadata[METADATA_KEY])
    assert description["format_version"] == FORMAT_VERSION
    assert DetectorConfig.from_dict(description["config"]) == CONFIG


@pytest.mark.parametrize(
    "modality, change, words",
    [
        ("audio", {"id": "microsoft/wavlm-base"}, ["facebook/wav2vec2-base", "microsoft/wavlm-base"]),
        ("image", {"dim": 768}, ["dim 24", "dim 768"]),
    ],
)
def test_mismatched_encoders_are_refused_naming_both_sides(saved, modality, change, words):
    expected = {m: dict(e) for m, e in ENCODERS.items()}
    expected[modality].update(change)
    with pytest.raises(CheckpointMismatchError) as info:
        load_detector(saved[0], expected_encoders=expected)
    for word in words + [modality]:
        assert word in str(info.value)


def test_partial_expectations_and_revision_warning(saved):
    _, checkpoint = load_detector(saved[0], expected_encoders={"audio": {"id": "facebook/wav2vec2-base"}})
    assert checkpoint.encoders["audio"]["id"] == "facebook/wav2vec2-base"
    with pytest.warns(UserWarning, match="revision"):
        load_detector(saved[0], expected_encoders={"image": {**ENCODERS["image"], "revision": "main"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_detector(saved[0], expected_encoders=ENCODERS)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "too short"),
        (b"hello, this is a text file and not a checkpoint\n", "header length"),
        (os.urandom(4096), "not a safetensors file"),
        ((20).to_bytes(8, "little") + b"{not json at all!!!}", "not JSON"),
    ],
    ids=["empty", "text", "random", "bad-header"],
)
def test_garbage_files_are_refused(tmp_path, content, words):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=words):
        load_detector(path)
    with pytest.raises(CheckpointError):
        read_metadata(path)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_detector(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_detector(tmp_path)


class _Boom:
    """Unpickling this would create a marker file: proof that a pickle was executed."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickles_are_refused_without_being_unpickled(tmp_path, model, writer):
    marker = tmp_path / "unpickled.txt"
    boom = _Boom()
    boom.marker = str(marker)
    path = tmp_path / "detector.safetensors"
    if writer == "torch.save":
        torch.save({"state_dict": model.state_dict(), "boom": boom}, path)
    else:
        path.write_bytes(pickle.dumps(boom, protocol=4))
    with pytest.raises(CheckpointError, match="pickle"):
        load_detector(path)
    assert not marker.exists()


def test_safetensors_without_deepscan_metadata_is_refused(tmp_path, model):
    path = tmp_path / "plain.safetensors"
    save_file(dict(model.state_dict()), str(path))
    with pytest.raises(CheckpointError, match="without deepscan metadata"):
        load_detector(path)


def test_newer_format_version_is_refused(tmp_path, saved):
    path = tmp_path / "future.safetensors"
    rewrite_metadata(saved[0], path, lambda d: {**d, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="newer than this deepscan supports"):
        load_detector(path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, saved):
    path = tmp_path / "wide.safetensors"
    rewrite_metadata(saved[0], path, lambda d: {**d, "config": {**d["config"], "d_model": 64}})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_detector(path)
    path = tmp_path / "fewer.safetensors"
    tensors = load_file(str(saved[0]))
    tensors.pop("classifier.0.weight")
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(read_metadata(saved[0]).metadata())})
    with pytest.raises(CheckpointError, match="classifier.0.weight"):
        load_detector(path)


def test_bad_metadata_values_are_refused(tmp_path, saved):
    cases = {
        "unknown-config-key": lambda d: {**d, "config": {**d["config"], "n_experts": 3}},
        "threshold": lambda d: {**d, "threshold": 1.5},
        "encoder-dim": lambda d: {**d, "encoders": {**d["encoders"], "audio": {"id": "x", "dim": 3}}},
        "no-config": lambda d: {k: v for k, v in d.items() if k != "config"},
    }
    for name, edit in cases.items():
        path = tmp_path / f"{name}.safetensors"
        rewrite_metadata(saved[0], path, edit)
        with pytest.raises(CheckpointError):
            read_metadata(path)


def test_save_validates_its_arguments(tmp_path, model):
    path = tmp_path / "x.safetensors"
    bad_dim = {**ENCODERS, "audio": {"id": "facebook/wav2vec2-base", "dim": 768}}
    with pytest.raises(ValueError, match="audio_dim=40"):
        save_detector(path, model, encoders=bad_dim, sampling={}, provenance={})
    with pytest.raises(ValueError, match="missing \\['video'\\]"):
        save_detector(path, model, encoders={k: ENCODERS[k] for k in ("image", "audio")}, sampling={}, provenance={})
    with pytest.raises(ValueError, match="threshold"):
        save_detector(path, model, encoders=ENCODERS, sampling={}, threshold=-0.1, provenance={})
    with pytest.raises(ValueError, match="temperature"):
        save_detector(path, model, encoders=ENCODERS, sampling={}, calibration={"temperature": 0}, provenance={})
    with pytest.raises(ValueError, match="JSON"):
        save_detector(path, model, encoders=ENCODERS, sampling={"fps": object()}, provenance={})
    with pytest.raises(TypeError, match="CrossModalDetector"):
        save_detector(path, torch.nn.Linear(2, 2), encoders=ENCODERS, sampling={}, provenance={})
    assert not path.exists()


def test_with_threshold_copies_weights_with_new_threshold(tmp_path, saved, model):
    src, sha = saved
    dst = tmp_path / "fitted.safetensors"
    new_sha = with_threshold(src, dst, 0.7, calibration={"temperature": 2.0})
    loaded, checkpoint = load_detector(dst)
    assert checkpoint.threshold == 0.7 and checkpoint.temperature == 2.0
    assert checkpoint.sha256 == new_sha != sha
    assert checkpoint.provenance["derived_from"] == sha
    assert checkpoint.encoders == ENCODERS and checkpoint.sampling == SAMPLING
    x = inputs(1)
    torch.testing.assert_close(loaded(**x).logits, model(**x).logits, atol=0, rtol=0)
    with_threshold(dst, dst, 0.3)  # in place, calibration kept
    again = read_metadata(dst)
    assert again.threshold == 0.3 and again.temperature == 2.0
    with pytest.raises(ValueError, match="threshold"):
        with_threshold(src, dst, 2.0)


@pytest.mark.parametrize(
    "provenance, encoder_id, synthetic, trained_on",
    [
        ({}, "openai/clip-vit-base-patch32", True, "untrained"),
        ({"trained_on": "synthetic"}, "openai/clip-vit-base-patch32", True, "synthetic"),
        ({"trained_on": "DFDC", "encoders": "debug"}, "openai/clip-vit-base-patch32", True, "DFDC"),
        ({"trained_on": "DFDC"}, "debug-clip", True, "DFDC"),
        ({"trained_on": "DFDC"}, "openai/clip-vit-base-patch32", False, "DFDC"),
    ],
)
def test_untrained_debug_and_synthetic_detectors_are_identified(
    tmp_path, model, provenance, encoder_id, synthetic, trained_on
):
    encoders = {**ENCODERS, "image": {**ENCODERS["image"], "id": encoder_id}}
    path = tmp_path / "d.safetensors"
    save_detector(path, model, encoders=encoders, sampling={}, provenance=provenance)
    checkpoint = read_metadata(path)
    assert checkpoint.is_synthetic is synthetic
    assert checkpoint.trained_on == trained_on


def test_input_standardisation_statistics_travel_in_the_checkpoint(tmp_path):
    config = dataclasses.replace(CONFIG, standardise_inputs=True)
    torch.manual_seed(0)
    model = CrossModalDetector(config).eval()
    gen = torch.Generator().manual_seed(1)
    for m in MODALITIES:
        model.standardisers[m].fit(torch.randn(50, config.input_dims[m], generator=gen) * 7 + 3)
    path = tmp_path / "standardised.safetensors"
    save_detector(path, model, encoders=ENCODERS, sampling=SAMPLING, threshold=0.5, provenance=PROVENANCE)
    loaded, checkpoint = load_detector(path)
    assert checkpoint.config.standardise_inputs
    for m in MODALITIES:
        torch.testing.assert_close(loaded.standardisers[m].mean, model.standardisers[m].mean, atol=0, rtol=0)
        assert loaded.standardisers[m].std.min().item() > 5  # the fitted spread, not the identity's 1
    x = inputs()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**x).logits, model(**x).logits, atol=0, rtol=0)
