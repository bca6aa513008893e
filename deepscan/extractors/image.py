"""Image encoder: CLIP's vision tower on face crops, one embedding per crop.

CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
ICML 2021) maps an RGB image to a joint image-text space; ``CLIPVisionModelWithProjection`` returns
its projected ``image_embeds`` (512-d for ViT-B/32). Preprocessing follows ``CLIPImageProcessor``:
bicubic resize to the model's ``image_size``, scale to [0, 1], normalise with the CLIP mean and std.
Face crops arrive square (224x224), so CLIP's centre crop is the identity and is not repeated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..precision import autocast_context, prepare_model, weights_dtype

__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGE_BATCH_SIZE", "ImageEncoder", "as_uint8_images"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # per RGB channel, of pixels scaled to [0, 1]
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_BATCH_SIZE = 32  # crops per forward pass


def as_uint8_images(images) -> torch.Tensor:
    """Check and convert RGB images to a uint8 tensor ``(N, H, W, 3)``.

    Parameters
    ----------
    images : np.ndarray or torch.Tensor
        uint8 ``(N, H, W, 3)`` (a single ``(H, W, 3)`` image is accepted as ``N = 1``).

    Returns
    -------
    torch.Tensor
        uint8 ``(N, H, W, 3)`` on the CPU (shares memory with a numpy input when possible).

    Raises
    ------
    TypeError
        If the input is not a numpy array or tensor, or its dtype is not uint8.
    ValueError
        If the shape is not ``(N, H, W, 3)`` with ``H, W > 0``.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"face crops must be uint8 RGB, got dtype {images.dtype}")
        images = torch.from_numpy(np.ascontiguousarray(images))
    elif not isinstance(images, torch.Tensor):
        raise TypeError(f"face crops must be a numpy array or torch tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"face crops must be uint8 RGB, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[-1] != 3 or (images.shape[0] > 0 and min(images.shape[1:3]) == 0):
        raise ValueError(f"face crops must have shape (N, H, W, 3), got {tuple(images.shape)}")
    return images.cpu()


class ImageEncoder:
    """Frozen CLIP vision encoder: uint8 crops ``(N, H, W, 3)`` -> float32 embeddings ``(N, D)``.

    Parameters
    ----------
    model : transformers.CLIPVisionModelWithProjection
        Frozen here: ``eval()``, ``requires_grad_(False)``, moved to ``device``.
    device : str or torch.device
        Where the model runs.
    dtype : torch.dtype
        Compute dtype (``torch.float32``; ``torch.bfloat16``, with the model's weights cast in place
        where the CPU has native bf16, else via autocast; or :data:`deepscan.precision.INT8`, which
        converts the model's Linear layers in place; see :mod:`deepscan.precision`); outputs are
        float32 either way.
    batch_size : int
        Crops per forward pass.
    mean, std : tuple of float
        Per-channel normalisation of pixels in [0, 1] (CLIP's by default).

    Attributes
    ----------
    dim : int
        Embedding size ``D`` (``config.projection_dim``, 512 for ViT-B/32).
    image_size : int
        Side the crops are resized to (``config.image_size``, 224).
    """

    def __init__(
        self,
        model,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = IMAGE_BATCH_SIZE,
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.model = prepare_model(model.eval().requires_grad_(False).to(self.device), dtype)
        self.dim = int(model.config.projection_dim)
        self.weights_dtype = weights_dtype(self.model)  # bf16 where cast once (deepscan.precision)
        self.image_size = int(model.config.image_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)

    @property
    def config(self) -> dict:
        """Preprocessing parameters that change the features (JSON-ready)."""
        return {
            "image_size": self.image_size,
            "resize": "bicubic-antialias",
            "mean": list(self.mean),
            "std": list(self.std),
            # the debug encoder names its own pooling, so its features are keyed apart from CLIP's
            "output": getattr(self.model, "deepscan_output", "image_embeds"),
        }

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Turn uint8 crops into CLIP's pixel values.

        Parameters
        ----------
        images : torch.Tensor
            uint8 ``(N, H, W, 3)``.

        Returns
        -------
        torch.Tensor
            float32 ``(N, 3, S, S)`` with ``S = image_size``, normalised, on :attr:`device`.
        """
        x = images.to(self.device).permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True)
            x = x.clamp_(0.0, 255.0)
        return (x / 255.0 - self._mean) / self._std

    @torch.inference_mode()
    def __call__(self, images) -> torch.Tensor:
        """Embed face crops.

        Parameters
        ----------
        images : np.ndarray or torch.Tensor
            uint8 RGB ``(N, H, W, 3)``; ``N = 0`` gives an empty result.

        Returns
        -------
        torch.Tensor
            float32 ``(N, D)`` on the CPU.

        Raises
        ------
        TypeError, ValueError
            If the crops are not uint8 ``(N, H, W, 3)`` (see :func:`as_uint8_images`).
        """
        images = as_uint8_images(images)
        out = torch.empty((images.shape[0], self.dim), dtype=torch.float32)
        for start in range(0, images.shape[0], self.batch_size):
            pixels = self.preprocess(images[start : start + self.batch_size]).to(self.weights_dtype)
            with autocast_context(self.dtype, self.device, self.weights_dtype):
                embeds = self.model(pixel_values=pixels).image_embeds
            out[start : start + pixels.shape[0]] = embeds.float().cpu()
        return out
