"""Tiny, seeded, random-weight encoders for tests and demos (the ``"debug"`` preset).

Built from transformers configs with no download, in well under a second, and identical on every
build with the same seed (weights are drawn inside ``torch.random.fork_rng``, so the caller's global
RNG state is untouched). They keep the real output dims, 512 for images and 768 for audio, so a
detector trained on them has the shapes of a real one; their features are labelled ``"debug"``.

They are random but not blind. The image encoder is a 2-layer ViT with 16-pixel patches (a mouth in a
224 crop spans a few patches) at CLIP's default init, kept close to linear in the pixels, plus one
layer of fixed zero-mean random filters. Half of its embedding is a fixed random projection of its
patch tokens averaged over a 3x3 grid of regions, minus the same for a blank (all-zero, i.e.
CLIP-mean-colour) image; the other half projects the log energy of the filter responses over the
same grid. The cues that reach the detector that way:

- the mouth opening, which lip-sync needs (a class token at a larger init had within-clip R^2 0.24
  against the opening; a mean of patch tokens 0.83; the grid keeps that mean as a linear function);
- the colour of each region, which a re-coloured face changes;
- the sharpness of each region, which a self-blended face changes by blurring or sharpening its
  inner face, and which no linear encoder sees (blurring keeps local means). Measured on a
  400-clip synthetic corpus (seed 2, 50 labelled blended files against 200 reals, 5-fold logistic
  regression and MLP on file-mean embeddings of every 4th face crop): AUC 0.80-0.82 from the
  texture half against 0.39-0.48 from the patch half.

Subtracting the blank-image response is a fixed function of the weights, not fitted on data. The audio
encoder keeps wav2vec2's convolutional front-end geometry (kernels 10,3,3,3,3,2,2, strides
5,2,2,2,2,2,2: 20 ms hop, 25 ms receptive field), so spectral and temporal detail reach the output
(see ``tests/test_extractors.py`` for the separation measured), with 64 channels per convolution:
on the same corpus (50 Griffin-Lim-vocoded files against 200 reals, 5-fold logistic regression on the
file's mean and std of audio tokens) 16 channels gave AUC 0.93, 32 and 64 channels 1.00, for ~20%
more encoding time than 16.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

__all__ = [
    "DEBUG_SEED", "DEBUG_IMAGE_GRID", "DEBUG_IMAGE_OUTPUT", "DEBUG_TEXTURE_GRID", "DEBUG_TEXTURE_FILTERS",
    "DEBUG_AUDIO_CONV_DIM", "DEBUG_AUDIO_OUTPUT", "DebugCLIPVisionModel", "debug_image_config",
    "debug_audio_config", "build_debug_image_model", "build_debug_audio_model",
]

DEBUG_SEED = 0
# CLIP's default init keeps the random ViT close to linear in the pixels (mouth opening: within-clip
# R^2 0.83 from mean-pooled patches; 0.73 at init x1.5, 0.71 at x2, 0.24 for the x4 class token).
DEBUG_IMAGE_INIT_FACTOR = 1.0
DEBUG_IMAGE_GRID = 3  # regions per side over which patch tokens are averaged
DEBUG_TEXTURE_GRID = 3  # regions per side over which texture energies are averaged
DEBUG_TEXTURE_FILTERS = 16  # zero-mean random filters per kernel size (3x3 and 5x5)
DEBUG_TEXTURE_STRIDE = 2  # filter responses sampled every 2 pixels: 4x cheaper, same full-res frequencies
DEBUG_TEXTURE_EPS = 1e-3  # floor of the mean |response| before the log (CLIP-normalised pixel units)
DEBUG_TEXTURE_TYPICAL = 0.05  # median region energy over synthetic face crops (5-95%: 0.016-0.14): log ratio ~ 0
DEBUG_TEXTURE_GAIN = 2.5  # texture half's spread across files matches the patch half's (0.25 -> 0.62 per value)
DEBUG_IMAGE_OUTPUT = "grid3-patch+texture-minus-blank-v4"  # recorded in the extractor config (cache keys)
DEBUG_AUDIO_CONV_DIM = 64  # channels of each front-end convolution (wav2vec2-base: 512)
DEBUG_AUDIO_OUTPUT = "last_hidden_state-conv64-v2"  # recorded in the extractor config (cache keys)


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
    """Config of the debug audio encoder: wav2vec2 front-end geometry, 64-channel convs, 1 layer, 768-d.

    Returns
    -------
    transformers.Wav2Vec2Config
    """
    return Wav2Vec2Config(
        conv_dim=(DEBUG_AUDIO_CONV_DIM,) * 7,
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
    """CLIP vision tower whose ``image_embeds`` are grid-pooled patch tokens and texture energies.

    ``image_embeds = [P g(x) - P g(blank), G Q h(x)]``, two halves of ``projection_dim / 2`` values each:

    - ``g(x)``: the post-layernormed patch tokens (the class token is left out) averaged over a
      ``DEBUG_IMAGE_GRID x DEBUG_IMAGE_GRID`` grid of image regions and concatenated
      (``grid^2 * hidden_size`` values). Nearly linear in the pixels, it carries colour and shape,
      e.g. the mouth opening that lip-sync needs. Average pooling of patch tokens follows ViT's
      "global average pooling" variant (Dosovitskiy et al., ICLR 2021, appendix D.4), over regions as
      in spatial pyramid pooling (He et al., ECCV 2014).
    - ``h(x)``: texture energy, ``log((mean |f * x| + eps) / DEBUG_TEXTURE_TYPICAL)`` over a
      ``DEBUG_TEXTURE_GRID x DEBUG_TEXTURE_GRID`` grid (blended-face probe on file mean+std: AUC
      0.74-0.78 at 3 regions per side, 0.64-0.68 at 4, 0.59-0.63 at 5) for
      ``DEBUG_TEXTURE_FILTERS`` random 3x3 and as many 5x5 filters ``f``, each zero-mean per input
      channel (``grid^2 * 2 * DEBUG_TEXTURE_FILTERS`` values). Zero-mean filters ignore flat colour and
      respond to edges and fine detail, so ``h`` sees blur and sharpening, which region means of a
      near-linear encoder cannot (blurring keeps local means). A single random convolution layer with
      a rectifying nonlinearity and spatial pooling already captures texture statistics (Ustyuzhaninov
      et al., "What does it take to generate natural textures?", ICLR 2017); high-pass residual energies
      are the classic forensic cue of face manipulation (Luo et al., "Generalizing Face Forgery
      Detection with High-frequency Features", CVPR 2021).

    ``P`` and ``Q`` are fixed seeded random projections (scaled by ``1/sqrt(fan_in)``), ``G`` =
    ``DEBUG_TEXTURE_GAIN`` puts both halves at a similar spread over face crops, and ``blank`` is the
    all-zero normalised image (CLIP's mean colour), whose patch response is computed once from the
    weights and kept as a buffer. Filter responses are sampled every ``DEBUG_TEXTURE_STRIDE`` pixels.
    A self-blended face (SBI, Shiohara & Yamasaki, CVPR 2022) is re-coloured and blurred or sharpened
    inside the face: the first half sees the colour, the second the sharpness.

    Parameters
    ----------
    config : transformers.CLIPVisionConfig
    """

    deepscan_output = DEBUG_IMAGE_OUTPUT

    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        half = config.projection_dim // 2
        grid_in = DEBUG_IMAGE_GRID**2 * config.hidden_size
        texture_in = DEBUG_TEXTURE_GRID**2 * 2 * DEBUG_TEXTURE_FILTERS
        self.register_buffer("grid_projection", torch.randn(half, grid_in) / grid_in**0.5, persistent=False)
        filters = torch.zeros(2 * DEBUG_TEXTURE_FILTERS, config.num_channels, 5, 5)
        for i, size in enumerate((3, 5)):
            kernel = torch.randn(DEBUG_TEXTURE_FILTERS, config.num_channels, size, size)
            kernel = kernel - kernel.mean(dim=(2, 3), keepdim=True)  # zero-mean per channel: blind to flat colour
            kernel = kernel / kernel.flatten(1).norm(dim=1)[:, None, None, None]
            pad = (5 - size) // 2
            rows = slice(i * DEBUG_TEXTURE_FILTERS, (i + 1) * DEBUG_TEXTURE_FILTERS)
            filters[rows, :, pad : pad + size, pad : pad + size] = kernel
        self.register_buffer("texture_filters", filters, persistent=False)
        texture_projection = torch.randn(config.projection_dim - half, texture_in) / texture_in**0.5
        self.register_buffer("texture_projection", texture_projection, persistent=False)
        self.register_buffer("blank_embeds", torch.zeros(half), persistent=False)
        with torch.no_grad():
            blank = torch.zeros(1, config.num_channels, config.image_size, config.image_size)
            self.blank_embeds.copy_(self._grid(blank)[0])

    def _grid(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokens = self.vision_model.post_layernorm(self.vision_model(pixel_values=pixel_values).last_hidden_state[:, 1:])
        n, n_patches, width = tokens.shape
        side = int(round(n_patches**0.5))
        patches = tokens.transpose(1, 2).reshape(n, width, side, side)
        grid = torch.nn.functional.adaptive_avg_pool2d(patches, DEBUG_IMAGE_GRID)
        return grid.flatten(1) @ self.grid_projection.to(pixel_values.dtype).T

    def _texture(self, pixel_values: torch.Tensor) -> torch.Tensor:
        filters = self.texture_filters.to(pixel_values.dtype)
        response = torch.nn.functional.conv2d(pixel_values, filters, stride=DEBUG_TEXTURE_STRIDE, padding=2).abs()
        energy = torch.nn.functional.adaptive_avg_pool2d(response, DEBUG_TEXTURE_GRID).flatten(1)
        log_ratio = torch.log((energy + DEBUG_TEXTURE_EPS) / DEBUG_TEXTURE_TYPICAL)
        return DEBUG_TEXTURE_GAIN * log_ratio @ self.texture_projection.to(pixel_values.dtype).T

    def forward(self, pixel_values: torch.Tensor, **_) -> SimpleNamespace:
        """Embed images.

        Parameters
        ----------
        pixel_values : torch.Tensor
            float ``(N, 3, 224, 224)`` CLIP-normalised pixels.

        Returns
        -------
        types.SimpleNamespace
            With ``image_embeds`` float ``(N, projection_dim)``: the patch-token half first, then
            the texture half.
        """
        grid = self._grid(pixel_values) - self.blank_embeds.to(pixel_values.dtype)
        return SimpleNamespace(image_embeds=torch.cat([grid, self._texture(pixel_values)], dim=1))


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
        Frozen, ``eval()``, float32; ``last_hidden_state`` is ``(B, F, 768)`` at 50 Hz. Its
        ``deepscan_output`` attribute names the build in the extractor config.
    """
    model = _seeded(lambda: Wav2Vec2Model(debug_audio_config()), seed)
    model.deepscan_output = DEBUG_AUDIO_OUTPUT
    return model
