"""Encoder specs, resolution, offline failure and local-directory loading (no network)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from deepscan.errors import ModelLoadingError
from deepscan.extractors import load_extractors
from deepscan.extractors.debug import build_debug_audio_model, build_debug_image_model
from deepscan.hub import (
    DEFAULT_ENCODERS,
    EncoderSpec,
    download_models,
    list_models,
    load_pretrained,
    resolve_encoders,
)

MISSING_ID = "deepscan-tests/no-such-encoder"


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    build_debug_image_model().save_pretrained(root / "image")
    build_debug_audio_model().save_pretrained(root / "audio")
    return root


def test_default_and_debug_presets():
    specs = resolve_encoders("default")
    assert {m: s.id for m, s in specs.items()} == DEFAULT_ENCODERS
    assert (specs["image"].dim, specs["audio"].dim) == (512, 768)
    debug = resolve_encoders("debug")
    assert all(s.is_debug for s in debug.values())


def test_overrides_and_revision():
    specs = resolve_encoders("default", audio="someone/other-w2v", revision="abc123")
    assert specs["audio"].id == "someone/other-w2v" and specs["audio"].revision == "abc123"
    assert specs["image"].id == DEFAULT_ENCODERS["image"]


def test_bad_preset_and_missing_directory_raise():
    with pytest.raises(ModelLoadingError, match="neither a preset"):
        resolve_encoders("no-such-preset-or-dir")
    with pytest.raises(ModelLoadingError, match="does not exist"):
        resolve_encoders("default", image="./no/such/dir")


def test_directory_without_subfolders_raises(tmp_path):
    (tmp_path / "image").mkdir()
    with pytest.raises(ModelLoadingError, match="audio/"):
        resolve_encoders(str(tmp_path))


def test_unknown_modality_raises():
    with pytest.raises(ValueError, match="modality"):
        EncoderSpec("smell", "x/y")


def test_offline_missing_model_fails_fast_with_download_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    specs = resolve_encoders("default", image=MISSING_ID)
    start = time.perf_counter()
    with pytest.raises(ModelLoadingError) as info:
        load_extractors(specs)
    assert time.perf_counter() - start < 5.0
    assert MISSING_ID in str(info.value)
    assert "deepscan models download" in str(info.value)


def test_missing_model_fails_fast_even_when_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    from transformers import Wav2Vec2Model

    start = time.perf_counter()
    with pytest.raises(ModelLoadingError, match="deepscan models download"):
        load_pretrained(EncoderSpec("audio", MISSING_ID), Wav2Vec2Model)
    assert time.perf_counter() - start < 5.0


def test_list_models_reports_missing_and_builtin(encoder_dir):
    rows = {r["modality"]: r for r in list_models(resolve_encoders("default", image=MISSING_ID))}
    assert rows["image"]["cached"] is False and rows["image"]["location"] is None
    assert rows["image"]["id"] == MISSING_ID and rows["image"]["dim"] == 512
    debug_rows = list_models(resolve_encoders("debug"))
    assert all(r["cached"] and r["location"] == "built-in" for r in debug_rows)
    local_rows = list_models(resolve_encoders(str(encoder_dir)))
    assert all(r["cached"] and r["location"].startswith(str(encoder_dir.resolve())) for r in local_rows)


def test_download_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadingError, match=MISSING_ID):
        download_models(resolve_encoders("debug", audio=MISSING_ID))
    assert all(r["cached"] for r in download_models(resolve_encoders("debug")))


def test_local_directory_round_trip(encoder_dir):
    specs = resolve_encoders(str(encoder_dir))
    assert specs["image"].is_local and specs["image"].dim == 512 and specs["audio"].dim == 768
    local = load_extractors(specs)
    debug = load_extractors("debug")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    wave = rng.standard_normal(16_000).astype(np.float32)
    a, b = local.encode(crops, np.arange(3) / 8, wave), debug.encode(crops, np.arange(3) / 8, wave)
    # A saved copy loads as a plain CLIPVisionModelWithProjection: same weights, CLIP's own
    # image_embeds (the debug preset's mean-patch output is a debug-only head).
    from transformers import CLIPVisionModelWithProjection

    from deepscan.extractors.image import ImageEncoder

    source = build_debug_image_model()
    plain = CLIPVisionModelWithProjection(source.config)
    plain.load_state_dict(source.state_dict())
    expected = ImageEncoder(plain)(crops)
    torch.testing.assert_close(a.image, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a.image, b.image, atol=1e-3)
    torch.testing.assert_close(a.audio, b.audio, rtol=1e-5, atol=1e-5)
    assert not local.is_debug and local.config["image"]["id"] == str((encoder_dir / "image").resolve())
    assert local.config_hash() != debug.config_hash()


def test_broken_local_directory_raises(tmp_path):
    for modality in ("image", "audio"):
        (tmp_path / modality).mkdir()
        (tmp_path / modality / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadingError, match="save_pretrained"):
        load_extractors(resolve_encoders(str(tmp_path)))
