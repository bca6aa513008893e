"""Tiny, seeded, random-weight encoders for tests and demos (the ``"debug"`` preset).

Built from transformers configs with no download, in well under a second, and identical on every
build with the same seed (weights are drawn inside ``torch.random.fork_rng``, so the caller's global
RNG state is untouched). They keep the real output dims, 512 for images and 768 for audio, so a
detector trained on them has the shapes of a real one; their features are labelled ``"debug"``.

They are random but not blind. The image encoder is a 2-layer ViT with 16-pixel patches (a mouth in a
224 crop spans a few patches) at CLIP's default init, kept close to linear in the pixels. Its
embedding is a fixed random projection of its patch tokens averaged over a 3x3 grid of regions, minus
the same for a blank (all-zero, i.e. CLIP-mean-colour) image. Two cues reach the detector that way:

- the mouth opening, which lip-sync needs (a class token at a larger init had within-clip R^2 0.24
  against the opening; a mean of patch tokens 0.83; the grid keeps that mean as a linear function);
- where a colour or a blur sits, which a self-blended face leaves: measured on a 400-clip synthetic
  corpus (seed 2; 170 training reals each with one self-blended copy of its crops, tested on the
  corpus's 8 held-out blended files against 30 held-out reals), an MLP probe on the file-mean
  embedding reaches AUC 0.82 with the grid against 0.64 with one global mean.

Subtracting the blank-image response is a fixed function of the weights, not fitted on data. The audio
encoder keeps wav2vec2's convolutional front-end geometry (kernels 10,3,3,3,3,2,2, strides
5,2,2,2,2,2,2: 20 ms hop, 25 ms receptive field), so spectral and temporal detail reach the output
(see ``tests/test_extractors.py`` for the separation measured).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

__all__ = ["DEBUG_SEED", "DEBUG_IMAGE_GRID", "DEBUG_IMAGE_OUTPUT", "DebugCLIPVisionModel", "debug_image_config", "debug_audio_config", "build_debug_image_model", "build_debug_audio_model"]

DEBUG_SEED = 0
# CLIP's default init keeps the random ViT close to linear in the pixels (mouth opening: within-clip
# R^2 0.83 from mean-pooled patches; 0.73 at init x1.5, 0.71 at x2, 0.24 for the x4 class token).
DEBUG_IMAGE_INIT_FACTOR = 1.0
DEBUG_IMAGE_GRID = 3  # regions per side over which patch tokens are averaged
DEBUG_IMAGE_OUTPUT = "grid3-patch-minus-blank-v3"  # recorded in the extractor config (cache keys)


def debug_image_config() -> CLIPVisionConfig:
    """Config of the debug image encoder: ViT, 2 layers, width 64, 16-px patches, 512-d projection, default init.

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


class DebugCLIPVisionModel(CLIPVisionModelWithProjection):
    """CLIP vision tower whose ``image_embeds`` are its grid-pooled patch tokens, centred on a blank image.

    ``image_embeds = P g(x) - P g(blank)`` with ``g(x)`` the post-layernormed patch tokens (the class
    token is left out) averaged over a ``DEBUG_IMAGE_GRID x DEBUG_IMAGE_GRID`` grid of image regions
    and concatenated (``grid^2 * hidden_size`` values), ``P`` a fixed seeded random projection to
    ``projection_dim`` (scaled by ``1/sqrt(fan_in)``) and ``blank`` the all-zero normalised image
    (CLIP's mean colour). Region pooling keeps *where* a colour or an edge sits, which a blended face
    needs: its inner face is re-coloured and re-sharpened against the face's border (SBI, Shiohara &
    Yamasaki, CVPR 2022), a difference a global mean averages away. Average pooling of patch tokens
    follows ViT's "global average pooling" variant (Dosovitskiy et al., ICLR 2021, appendix D.4), over
    regions as in spatial pyramid pooling (He et al., ECCV 2014). The blank response is computed once
    from the weights and kept as a buffer.

    Parameters
    ----------
    config : transformers.CLIPVisionConfig
    """

    deepscan_output = DEBUG_IMAGE_OUTPUT

    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        fan_in = DEBUG_IMAGE_GRID**2 * config.hidden_size
        self.register_buffer("grid_projection", torch.randn(config.projection_dim, fan_in) / fan_in**0.5, persistent=False)
        self.register_buffer("blank_embeds", torch.zeros(config.projection_dim), persistent=False)
        with torch.no_grad():
            blank = torch.zeros(1, config.num_channels, config.image_size, config.image_size)
            self.blank_embeds.copy_(self._pooled(blank)[0])

    def _pooled(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokens = self.vision_model.post_layernorm(self.vision_model(pixel_values=pixel_values).last_hidden_state[:, 1:])
        n, n_patches, width = tokens.shape
        side = int(round(n_patches**0.5))
        grid = torch.nn.functional.adaptive_avg_pool2d(tokens.transpose(1, 2).reshape(n, width, side, side), DEBUG_IMAGE_GRID)
        return grid.flatten(1) @ self.grid_projection.to(tokens.dtype).T

    def forward(self, pixel_values: torch.Tensor, **_) -> SimpleNamespace:
        """Embed images.

        Parameters
        ----------
        pixel_values : torch.Tensor
            float ``(N, 3, 224, 224)`` CLIP-normalised pixels.

        Returns
        -------
        types.SimpleNamespace
            With ``image_embeds`` float ``(N, projection_dim)``.
        """
        return SimpleNamespace(image_embeds=self._pooled(pixel_values) - self.blank_embeds.to(pixel_values.dtype))


def _seeded(build, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.eval().requires_grad_(False)


def build_debug_image_model(seed: int = DEBUG_SEED) -> DebugCLIPVisionModel:
    """Build the debug image encoder with weights drawn from ``seed``.

    Parameters
    ----------
    seed : int

    Returns
    -------
    DebugCLIPVisionModel
        Frozen, ``eval()``, float32; ``image_embeds`` are ``(N, 512)``.
    """
    return _seeded(lambda: DebugCLIPVisionModel(debug_image_config()), seed)


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
