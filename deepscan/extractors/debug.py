"""Tiny, seeded, random-weight encoders for tests and demos (the ``"debug"`` preset).

Built from transformers configs with no download, in well under a second, and identical on every
build with the same seed (weights are drawn inside ``torch.random.fork_rng``, so the caller's global
RNG state is untouched). They keep the real output dims, 512 for images and 768 for audio, so a
detector trained on them has the shapes of a real one; their features are labelled ``"debug"``.

They are random but not blind: the image encoder is a 2-layer ViT with 16-pixel patches (a mouth in a
224 crop spans a few patches), the audio encoder keeps wav2vec2's convolutional front-end geometry
(kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2: 20 ms hop, 25 ms receptive field), so spectral and
temporal detail reach the output (see ``tests/test_extractors.py`` for the separation measured).
"""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

__all__ = ["DEBUG_SEED", "debug_image_config", "debug_audio_config", "build_debug_image_model", "build_debug_audio_model"]

DEBUG_SEED = 0
# CLIP's default init (factor 1) leaves the class token attending almost uniformly, so random
# embeddings of any two crops have cosine > 0.99; factor 4 makes attention content-dependent
# (cosine ~0.5 for two noise crops, ~0.92 for a closed vs open mouth).
DEBUG_IMAGE_INIT_FACTOR = 4.0


def debug_image_config() -> CLIPVisionConfig:
    """Config of the debug image encoder: ViT, 2 layers, width 64, 16-px patches, 512-d projection, init x4.

    Returns
    -------
    transformers.CLIPVisionConfig
    """
    return CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        patch_size=16,
        projection_dim=512,
        initializer_factor=DEBUG_IMAGE_INIT_FACTOR,
    )


def debug_audio_config() -> Wav2Vec2Config:
    """Config of the debug audio encoder: wav2vec2 front-end geometry, 16-channel convs, 1 layer, 768-d.

    Returns
    -------
    transformers.Wav2Vec2Config
    """
    return Wav2Vec2Config(
        conv_dim=(16,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        feat_extract_norm="group",
        hidden_size=768,
        intermediate_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16,
    )


def _seeded(build, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.eval().requires_grad_(False)


def build_debug_image_model(seed: int = DEBUG_SEED) -> CLIPVisionModelWithProjection:
    """Build the debug image encoder with weights drawn from ``seed``.

    Parameters
    ----------
    seed : int

    Returns
    -------
    transformers.CLIPVisionModelWithProjection
        Frozen, ``eval()``, float32; ``image_embeds`` are ``(N, 512)``.
    """
    return _seeded(lambda: CLIPVisionModelWithProjection(debug_image_config()), seed)


def build_debug_audio_model(seed: int = DEBUG_SEED) -> Wav2Vec2Model:
    """Build the debug audio encoder with weights drawn from ``seed``.

    Parameters
    ----------
    seed : int

    Returns
    -------
    transformers.Wav2Vec2Model
        Frozen, ``eval()``, float32; ``last_hidden_state`` is ``(B, F, 768)`` at 50 Hz.
    """
    return _seeded(lambda: Wav2Vec2Model(debug_audio_config()), seed)
