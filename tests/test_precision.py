"""Precision choice and bf16 vs fp32 agreement of full-size (random-weight) encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepscan.extractors.audio import AudioEncoder
from deepscan.extractors.image import ImageEncoder
from deepscan.precision import autocast_context, cpu_has_native_bf16, resolve_precision

MIN_COSINE = 0.999


def test_resolve_precision_names():
    assert resolve_precision("fp32", "cpu") == torch.float32
    assert resolve_precision("bf16", "cpu") == torch.bfloat16
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert resolve_precision("auto", "cpu") == expected
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp16", "cpu")


def test_cpu_flags_match_cpuinfo():
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert cpu_has_native_bf16() == ("amx_bf16" in text.split() or "avx512_bf16" in text.split())


def test_autocast_context_computes_in_bf16():
    with autocast_context(torch.bfloat16, "cpu"):
        out = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert out.dtype == torch.bfloat16
    with autocast_context(torch.float32, "cpu"):
        out = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert out.dtype == torch.float32
    with pytest.raises(ValueError, match="unsupported"):
        autocast_context(torch.float16, "cpu")


def _min_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=-1).min().item()


def test_bf16_matches_fp32_full_size_clip():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPVisionModelWithProjection(CLIPVisionConfig())  # ViT-B/32 dims, random weights
    crops = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    ref = ImageEncoder(model)(crops)
    low = ImageEncoder(model, dtype=torch.bfloat16)(crops)
    assert ref.shape == low.shape == (2, 512) and low.dtype == torch.float32
    assert _min_cos(ref, low) >= MIN_COSINE


def test_bf16_matches_fp32_full_size_wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Wav2Vec2Model(Wav2Vec2Config())  # wav2vec2-base dims, random weights
    t = np.arange(32_000) / 16_000
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    wave += 0.01 * np.random.default_rng(0).standard_normal(wave.shape[0]).astype(np.float32)
    ref, _ = AudioEncoder(model)(wave)
    low, _ = AudioEncoder(model, dtype=torch.bfloat16)(wave)
    assert ref.shape == low.shape == (25, 768) and low.dtype == torch.float32
    assert _min_cos(ref, low) >= MIN_COSINE
    assert F.cosine_similarity(ref.mean(0), low.mean(0), dim=0).item() >= MIN_COSINE
