"""Training the generated-image expert (:mod:`deepscan.experts.generated_image`) on the harvest.

``deepscan train-expert image HARVEST -o image.safetensors`` calls :func:`train`, which trains the
shipped backbone expert (:func:`train_backbone`: frozen EfficientNet-Lite2 features of
format-equalised views, :func:`format_chain`; a logistic head, :func:`fit_head`; leave-one-family-out
evaluation with the format probe beside, :func:`leave_family_out`); set ``$DEEPSCAN_HARVEST_EXT`` to
the folder where ``scripts/harvest.py extract`` put data/harvest/image to train on the extension too.
Given a :class:`TrainConfig`, :func:`train` trains the earlier spectrum / CNN patch networks, as
described below. The harvest
(``HARVEST/image/MANIFEST.tsv``, ../shared/harvest/README.md) lists real photos beside GAN, diffusion
and face-swap images with their ``system``, source page (``group``) and ``pair``; only the files on
disk are used, each checked against its manifest SHA-256.

Data
    Every file is decoded once by :func:`deepscan.media.load_image` (the scanner's decoder). The one
    site that dominates the fakes (the generator with the most files, over
    :attr:`TrainConfig.dominant_cap`) is subsampled to that many files, drawn with the seed.
Augmentation (Wang et al., "CNN-generated images are surprisingly easy to spot... for now",
CVPR 2020, trained through blur and JPEG for the same reason)
    Most harvested fakes are PNG and most photos JPEG, so each training image gives
    :attr:`TrainConfig.views` views, each made by, in this order: a random crop (area 25-100 %,
    aspect 3:4-4:3) with probability ``crop_p``; a random resize (scale 0.5-1.5, bilinear, bicubic
    or Lanczos, Pillow) with probability ``resize_p``; JPEG re-compression at a random quality
    (60-100, Pillow encoder, decoded back by :func:`deepscan.media.load_image`) with probability
    ``jpeg_p``; then ``patches_per_view`` patches at random places. Both classes get the same
    augmentation. Patches (uint8) are cached on disk by file SHA-256, augmentation settings and
    seed, so reruns decode nothing.
Training
    AdamW (Loshchilov & Hutter, ICLR 2019), cosine learning rate, :attr:`TrainConfig.steps` steps of
    ``batch`` patches drawn with replacement, weighted so that both classes weigh the same and, within
    a class, each source page by the square root of its size; horizontal flips (the radial spectrum,
    which flips leave unchanged, is computed once per patch). One seed drives the
    augmentation, the draws and the initialisation; training runs on one CPU thread (these networks
    are small: faster so, and free of thread-order effects), so a seed gives the same weights on a
    machine (another CPU or torch build may differ in the last bits).
Evaluation (recorded in the weights' provenance)
    Files are scored as the scanner scores them (the mean logit of the 4 x 4 patch grid on the
    un-augmented image). *Out of fold*: :attr:`TrainConfig.folds` folds grouped by source page and
    pair (a connected component of files sharing a group or a pair stays on one side), stratified.
    *Leave-generator-out*: each fake ``system`` held out in turn with every page (group) it appears
    on, plus the real pages of one out-of-fold fold (rotating), so that its AUC compares its unseen
    fakes with unseen photos. Intervals: percentile bootstrap (:func:`deepscan.evaluation.bootstrap_metric`)
    over source components for the out-of-fold AUC; over files for each held-out generator, whose
    fakes mostly come from one page (a page bootstrap could not resample them). Every AUC is also
    given on the held-out files re-encoded as JPEG (quality :attr:`TrainConfig.eval_jpeg_quality`),
    where PNG against JPEG can say nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import default_cache_dir, file_sha256
from ..labelled import LabelledFile, read_manifest
from ..metrics import auc, bootstrap_metric
from ..experts.generated_image import (
    GeneratedImageNet,
    NetConfig,
    frame_patches,
    save_image_expert,
    to_tensor,
)

__all__ = ["TrainConfig", "train", "train_backbone", "format_chain", "view_features", "fit_head", "head_logits",
           "leave_family_out", "sample_weights", "format_features", "FORMAT_FEATURE_NAMES", "family_of",
           "labelled_images", "harvest_files", "fold_components", "augment_view", "simulate_upsampling",
           "jpeg_roundtrip", "prepare_patches", "fit_net", "score_patches"]

CACHE_VERSION = 1  # bump when the patch extraction changes
PAPERS = [
    "Frank et al., Leveraging Frequency Analysis for Deep Fake Image Recognition, ICML 2020",
    "Durall et al., Watch your Up-Convolution, CVPR 2020",
    "Chai et al., What makes fake images detectable?, ECCV 2020",
    "Wang et al., CNN-generated images are surprisingly easy to spot... for now, CVPR 2020",
]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train` (all recorded in the weights' provenance).

    Attributes
    ----------
    net : NetConfig
        The architecture and input representation.
    views, patches_per_view : int
        Augmented views per training image, random patches per view.
    steps, batch : int
        Optimiser steps and patches per step.
    lr, weight_decay : float
        AdamW peak learning rate (cosine decay to zero) and decoupled weight decay.
    dominant_cap : int
        Most files kept of the fake system with the most files (the StyleGAN-like site).
    crop_p, crop_area : float, (float, float)
        Probability of a random crop and its area fraction range.
    resize_p, resize_scale : float, (float, float)
        Probability of a random resize and its scale range.
    jpeg_p, jpeg_quality : float, (int, int)
        Probability of JPEG re-compression and its quality range (inclusive).
    folds : int
        Out-of-fold folds.
    eval_jpeg_quality : int
        Quality of the format-equalised evaluation (held-out files re-encoded as JPEG).
    exclude_from_training : tuple of str
        Systems (substrings of ``system``) never trained on but still scored in every evaluation.
    simulated_views : int
        Views of each *real* training image passed through a simulated generator up-sampling
        (:func:`simulate_upsampling`) and labelled fake; 0 for none.
    simulated_weight : float
        Share of the fake class's sampling weight that goes to the simulated fakes.
    bootstrap_rounds : int
        Resamples of the source-grouped bootstrap intervals of the recorded AUCs (0: no intervals).
    """

    net: NetConfig = field(default_factory=NetConfig)
    views: int = 6
    patches_per_view: int = 8
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dominant_cap: int = 60
    crop_p: float = 0.5
    crop_area: tuple = (0.25, 1.0)
    resize_p: float = 0.5
    resize_scale: tuple = (0.5, 1.5)
    jpeg_p: float = 0.7
    jpeg_quality: tuple = (60, 100)
    folds: int = 5
    eval_jpeg_quality: int = 85
    exclude_from_training: tuple = ()
    simulated_views: int = 0
    simulated_weight: float = 0.5
    bootstrap_rounds: int = 1000

    def augmentation(self) -> dict:
        """The settings that shape the cached patches."""
        return {"patch": self.net.patch, "views": self.views, "patches_per_view": self.patches_per_view,
                "crop_p": self.crop_p, "crop_area": list(self.crop_area), "resize_p": self.resize_p,
                "resize_scale": list(self.resize_scale), "jpeg_p": self.jpeg_p,
                "jpeg_quality": list(self.jpeg_quality), "eval_jpeg_quality": self.eval_jpeg_quality,
                "version": CACHE_VERSION}


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def _manifest_of(data_root: Path) -> Path:
    for candidate in (data_root / "image" / "MANIFEST.tsv", data_root / "MANIFEST.tsv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no image/MANIFEST.tsv under {data_root}")


def harvest_files(data_root: str | os.PathLike, dominant_cap: int, seed: int = 0,
                  quiet: bool = True) -> tuple[list[LabelledFile], dict]:
    """The harvest's image files on disk, hash-checked, with the dominant fake site subsampled.

    Parameters
    ----------
    data_root : str or os.PathLike
        The harvest root (holding ``image/MANIFEST.tsv``) or its ``image`` folder.
    dominant_cap : int
        Most files kept of the fake system with the most files.
    seed : int
        Seed of the subsample.
    quiet : bool
        Print nothing.

    Returns
    -------
    files : list of LabelledFile
        Image files present on disk whose SHA-256 matches the manifest, in manifest order.
    counts : dict
        ``{"listed", "present", "hash_mismatch", "dominant_system", "dominant_present", "dominant_kept"}``.

    Raises
    ------
    FileNotFoundError
        Without a manifest, or when no listed file is on disk.
    """
    rows = [r for r in read_manifest(_manifest_of(Path(data_root))) if r.kind == "image"]
    present = [r for r in rows if r.exists]
    if not present:
        raise FileNotFoundError(f"none of the {len(rows)} image files of {data_root} is on disk")
    good = [r for r in present if not r.sha256 or file_sha256(r.path) == r.sha256]
    mismatched = len(present) - len(good)
    if mismatched:
        _log(quiet, f"skipped {mismatched} files whose SHA-256 differs from the manifest")
    fakes = Counter(r.system for r in good if r.label == 1)
    dominant, count = fakes.most_common(1)[0] if fakes else (None, 0)
    keep = set()
    if dominant is not None and count > dominant_cap:
        candidates = sorted(r.sha256 or str(r.path) for r in good if r.system == dominant)
        rng = np.random.default_rng([seed, 12])
        keep = set(rng.choice(candidates, dominant_cap, replace=False).tolist())
        good = [r for r in good if r.system != dominant or (r.sha256 or str(r.path)) in keep]
    counts = {"listed": len(rows), "present": len(present), "hash_mismatch": mismatched,
              "dominant_system": dominant, "dominant_present": count,
              "dominant_kept": min(count, dominant_cap)}
    return good, counts


def fold_components(files: list[LabelledFile]) -> np.ndarray:
    """Connected components of files that share a source page (group) or a pair.

    Parameters
    ----------
    files : list of LabelledFile

    Returns
    -------
    np.ndarray
        int ``(N,)`` component id per file (ids in order of first appearance).
    """
    parent = list(range(len(files)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for i, f in enumerate(files):
        for key in (("g", f.group), ("p", f.pair)):
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    roots, ids = {}, []
    for i in range(len(files)):
        ids.append(roots.setdefault(find(i), len(roots)))
    return np.asarray(ids)


def _decode_bytes(data: bytes, suffix: str) -> np.ndarray:
    """Decode encoded image bytes through :func:`deepscan.media.load_image` (via a temporary file)."""
    from ..media import load_image

    with tempfile.TemporaryDirectory(prefix="deepscan-aug-") as tmp:
        path = Path(tmp) / f"view{suffix}"
        path.write_bytes(data)
        return load_image(path)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode an image as baseline JPEG (Pillow, 4:2:0) and decode it as the scanner does.

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W, 3)``.
    quality : int
        JPEG quality 1-100.

    Returns
    -------
    np.ndarray
        uint8 ``(H, W, 3)``.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return _decode_bytes(buffer.getvalue(), ".jpg")


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h >= size and w >= size:
        return image
    return np.pad(image, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="symmetric")


SIMULATE_MAX_SIDE = 1024  # px: larger views are cropped to this before the simulated up-sampling


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, pad: int) -> torch.Tensor:
    """The same 2-D kernel over each channel of ``(1, C, H, W)``, replicate padding."""
    c = x.shape[1]
    weight = kernel.to(x)[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), weight, groups=c)


def simulate_upsampling(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real image made to carry a generator's up-sampling traces (a simulated fake).

    The image is reduced by a factor ``f`` (2, or 4 with probability 0.3; area average) and brought
    back by one of two decoder up-samplings whose filters, like a trained generator's, do not quite
    remove the spectral replicas that up-sampling creates (Odena, Dumoulin & Olah, "Deconvolution
    and Checkerboard Artifacts", Distill 2016; Frank et al., ICML 2020, sec. 3):

    - nearest-neighbour up-sampling then a random positive 3x3 smoothing kernel (resize-convolution);
    - transposed convolution: zero insertion then a bilinear kernel of size ``2f - 1`` perturbed by
      multiplicative noise (5-30 %), so the ``f x f`` output phases get unequal gains (checkerboard).

    A share (50-100 %) of the photo's own detail, what bilinear up-sampling of the reduced image
    misses, is added back, so that the simulated fake is the photo plus the up-sampler's periodic
    error rather than a blurred photo.

    The idea of training on simulated generator artefacts is Zhang, Karaman & Chang, "Detecting and
    Simulating Artifacts in GAN Fake Images", WIFS 2019 (their simulator is a trained
    auto-encoder; this one is a fixed random up-sampler).

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W, 3)``; views larger than 1024 px on a side are first cropped at random.
    rng : np.random.Generator

    Returns
    -------
    np.ndarray
        uint8 ``(H', W', 3)`` with ``H' = f * floor(H / f)`` (same for ``W'``).
    """
    h, w = image.shape[:2]
    if h > SIMULATE_MAX_SIDE or w > SIMULATE_MAX_SIDE:
        ch, cw = min(h, SIMULATE_MAX_SIDE), min(w, SIMULATE_MAX_SIDE)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image, h, w = image[top:top + ch, left:left + cw], ch, cw
    f = 4 if rng.random() < 0.3 and min(h, w) >= 16 else 2
    h2, w2 = max(f, h // f * f), max(f, w // f * f)
    x = torch.from_numpy(np.array(_pad_to(image, f)[:h2, :w2])).permute(2, 0, 1)[None].float()
    low = F.avg_pool2d(x, f)
    if rng.random() < 0.5:
        up = F.interpolate(low, scale_factor=f, mode="nearest")
        kernel = torch.from_numpy(rng.uniform(0.2, 1.0, (3, 3))).float()
        up = _depthwise(up, kernel / kernel.sum(), 1)
    else:
        zeros = torch.zeros(1, 3, h2, w2)
        zeros[..., ::f, ::f] = low
        tri = torch.tensor([1 - abs(i) / f for i in range(-(f - 1), f)])
        kernel = torch.outer(tri, tri) * torch.from_numpy(
            1 + rng.uniform(0.05, 0.3) * rng.standard_normal((2 * f - 1, 2 * f - 1))).float()
        kernel = kernel * (f * f / kernel.sum())
        up = _depthwise(zeros, kernel, f - 1)
    # a generator synthesises its fine detail; keep the photo's (a share of it) so that blur is no cue
    ideal = F.interpolate(low, scale_factor=f, mode="bilinear", align_corners=False)
    up = up + rng.uniform(0.5, 1.0) * (x - ideal)
    return up[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def augment_view(image: np.ndarray, config: TrainConfig, rng: np.random.Generator,
                 simulate: bool = False) -> np.ndarray:
    """One augmented view of an image: random crop, resize, JPEG re-compression (module notes).

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W, 3)``.
    config : TrainConfig
    rng : np.random.Generator
        Drives every choice.
    simulate : bool
        Pass the view through :func:`simulate_upsampling` after the resize, before the JPEG step.

    Returns
    -------
    np.ndarray
        uint8 ``(H', W', 3)``, at least ``config.net.patch`` on each side (mirror-padded).
    """
    from PIL import Image

    size = config.net.patch
    h, w = image.shape[:2]
    if rng.random() < config.crop_p and min(h, w) > size:
        area = rng.uniform(*config.crop_area) * h * w
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch = int(np.clip(round(math.sqrt(area / aspect)), size, h))
        cw = int(np.clip(round(math.sqrt(area * aspect)), size, w))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image = image[top:top + ch, left:left + cw]
        h, w = ch, cw
    if rng.random() < config.resize_p:
        scale = rng.uniform(*config.resize_scale)
        scale = max(scale, size / min(h, w)) if min(h, w) >= size else scale
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resample = [Image.BILINEAR, Image.BICUBIC, Image.LANCZOS][int(rng.integers(0, 3))]
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((nw, nh), resample))
    if simulate:
        image = simulate_upsampling(image, rng)
    if rng.random() < config.jpeg_p:
        q = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        image = jpeg_roundtrip(np.ascontiguousarray(image), q)
    return _pad_to(image, size)


def _random_patches(image: np.ndarray, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    tops = rng.integers(0, h - size + 1, n)
    lefts = rng.integers(0, w - size + 1, n)
    return np.stack([image[t:t + size, l:l + size] for t, l in zip(tops, lefts)])


def _file_patches(f: LabelledFile, config: TrainConfig, seed: int, cache: Path | None) -> dict:
    """``{"train": (V*P, S, S, 3), "clean": (16, S, S, 3), "jpeg": (16, S, S, 3)}`` uint8, cached."""
    from ..media import load_image

    key = hashlib.sha256(json.dumps({"sha": f.sha256 or str(f.path), "seed": seed, **config.augmentation()},
                                    sort_keys=True).encode()).hexdigest()[:32]
    path = cache / f"{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in ("train", "clean", "jpeg")}
        except (OSError, ValueError, KeyError):
            pass
    image = load_image(f.path)
    size = config.net.patch
    rng = np.random.default_rng([seed, int(key[:12], 16)])
    train = [_random_patches(augment_view(image, config, rng), size, config.patches_per_view, rng)
             for _ in range(config.views)]
    out = {"train": np.concatenate(train), "clean": frame_patches(image, size),
           "jpeg": frame_patches(jpeg_roundtrip(image, config.eval_jpeg_quality), size)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **out)
        os.replace(tmp, path)
    return out


def _file_simulated(f: LabelledFile, config: TrainConfig, seed: int, cache: Path | None) -> np.ndarray:
    """uint8 ``(simulated_views * P, S, S, 3)`` patches of simulated-fake views of a real file, cached."""
    from ..media import load_image

    size, n = config.net.patch, config.simulated_views
    if n == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    key = hashlib.sha256(json.dumps({"sha": f.sha256 or str(f.path), "seed": seed, "simulated": n,
                                     **config.augmentation()}, sort_keys=True).encode()).hexdigest()[:32]
    path = cache / f"sim-{key}.npy" if cache is not None else None
    if path is not None and path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
    image = load_image(f.path)
    rng = np.random.default_rng([seed, int(key[:12], 16)])
    out = np.concatenate([_random_patches(augment_view(image, config, rng, simulate=True), size,
                                          config.patches_per_view, rng) for _ in range(n)])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


def prepare_patches(files: list[LabelledFile], config: TrainConfig, seed: int,
                    cache: Path | None) -> dict[str, np.ndarray]:
    """Decode, augment and cut every file's patches (from the cache when there).

    Parameters
    ----------
    files : list of LabelledFile
    config : TrainConfig
    seed : int
    cache : Path or None
        Cache folder (``None``: no cache).

    Returns
    -------
    dict
        uint8 arrays: ``train`` ``(F, views * P, S, S, 3)``, ``clean`` and ``jpeg``
        ``(F, 16, S, S, 3)`` (the scoring grid on the file as it is, and re-encoded as JPEG), and
        with :attr:`TrainConfig.simulated_views`, ``sim`` ``(F, simulated_views * P, S, S, 3)``
        (zeros for fakes).
    """
    stores = [_file_patches(f, config, seed, cache) for f in files]
    store = {k: np.stack([s[k] for s in stores]) for k in ("train", "clean", "jpeg")}
    del stores
    if config.simulated_views:
        empty = np.zeros((config.simulated_views * config.patches_per_view, *store["train"].shape[2:]), np.uint8)
        store["sim"] = np.stack([_file_simulated(f, config, seed, cache) if f.label == 0 else empty
                                 for f in files])
    return store


def fit_net(patches: np.ndarray, labels: np.ndarray, weights: np.ndarray, config: TrainConfig,
            seed: int) -> GeneratedImageNet:
    """Train a :class:`GeneratedImageNet` on patches.

    Parameters
    ----------
    patches : np.ndarray
        uint8 ``(N, S, S, 3)``.
    labels : np.ndarray
        ``(N,)`` 1 = fake, 0 = real.
    weights : np.ndarray
        float ``(N,)`` sampling weights (non-negative, not all zero).
    config : TrainConfig
    seed : int

    Returns
    -------
    GeneratedImageNet
        In eval mode.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = GeneratedImageNet(config.net)
    probe = torch.randperm(len(patches), generator=generator)[:4096].numpy()
    net.set_input_stats(to_tensor(patches[np.sort(probe)]))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps)))
    w = torch.as_tensor(weights, dtype=torch.float64)
    y_all = torch.as_tensor(labels, dtype=torch.float32)
    fixed = None
    if config.net.representation == "spectrum":  # flip-invariant and not learned: compute once
        with torch.no_grad():
            fixed = torch.cat([net.represent(to_tensor(patches[i:i + 1024])) for i in range(0, len(patches), 1024)])
    net.train()
    for _ in range(config.steps):
        idx = torch.multinomial(w, config.batch, replacement=True, generator=generator)
        if fixed is not None:
            logit, _ = net.head(fixed[idx])
        else:
            x = to_tensor(patches[idx.numpy()])
            flip = torch.rand(config.batch, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            logit, _ = net(x)
        loss = F.binary_cross_entropy_with_logits(logit, y_all[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return net.eval()


@torch.inference_mode()
def score_patches(net: GeneratedImageNet, grids: np.ndarray) -> np.ndarray:
    """Per-file logits: the mean logit of each file's patch grid.

    Parameters
    ----------
    net : GeneratedImageNet
    grids : np.ndarray
        uint8 ``(F, P, S, S, 3)``.

    Returns
    -------
    np.ndarray
        float64 ``(F,)``.
    """
    n, p = grids.shape[:2]
    logits = [net(to_tensor(grids[i:i + 32].reshape(-1, *grids.shape[2:])))[0] for i in range(0, n, 32)]
    return torch.cat(logits).double().reshape(n, p).mean(1).numpy() if n else np.zeros(0)


def _weights(files: list[LabelledFile], index: np.ndarray, per_file: int) -> np.ndarray:
    """Sampling weight of each patch of the files ``index``: classes equal, pages by sqrt(size)."""
    labels = np.array([files[i].label for i in index])
    groups = [files[i].group for i in index]
    size = Counter(groups)
    w = np.array([1.0 / math.sqrt(size[g]) for g in groups])
    for c in (0, 1):
        if (labels == c).any():
            w[labels == c] /= w[labels == c].sum()
    return np.repeat(w / per_file, per_file)


def _fit_on(files, train_index, store, config, seed) -> GeneratedImageNet:
    train_index = np.array([i for i in train_index
                            if not any(x in files[i].system for x in config.exclude_from_training)], dtype=int)
    per_file = store["train"].shape[1]
    patches = store["train"][train_index].reshape(-1, *store["train"].shape[2:])
    labels = np.repeat([files[i].label for i in train_index], per_file)
    weights = _weights(files, train_index, per_file)
    sim = store.get("sim")
    if sim is not None and sim.shape[1] and config.simulated_weight > 0:
        reals = np.array([i for i in train_index if files[i].label == 0], dtype=int)
        per_sim = sim.shape[1]
        sim_weights = _weights(files, reals, per_sim)
        weights[labels == 1] *= 1 - config.simulated_weight
        patches = np.concatenate([patches, sim[reals].reshape(-1, *sim.shape[2:])])
        labels = np.concatenate([labels, np.ones(len(reals) * per_sim, dtype=labels.dtype)])
        weights = np.concatenate([weights, sim_weights * config.simulated_weight])
    return fit_net(patches, labels, weights, config, seed)


def _folds(files, components, k, seed) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.array([f.label for f in files])
    fold = np.zeros(len(files), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(files)), labels, components)):
        fold[test] = i
    return fold


def _auc_entry(labels, scores, groups, rounds: int) -> dict:
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.min(initial=1) == labels.max(initial=0):
        return {"auc": None, "ci95": None, "n_real": int((labels == 0).sum()), "n_fake": int(labels.sum())}
    if rounds <= 0:
        return {"auc": round(auc(labels, scores), 4), "ci95": None, "n_real": int((labels == 0).sum()),
                "n_fake": int(labels.sum())}
    value, lo, hi = bootstrap_metric(labels, scores, groups, rounds=rounds)
    return {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)],
            "n_real": int((labels == 0).sum()), "n_fake": int(labels.sum())}


def train(data_root: str | os.PathLike, output: str | os.PathLike, seed: int = 0, quiet: bool = False, *,
          config: TrainConfig | None = None, cache_dir: str | os.PathLike | None = None,
          evaluate: str = "all") -> dict:
    """Train the generated-image expert on the harvest and write its safetensors.

    Parameters
    ----------
    data_root : str or os.PathLike
        The harvest root holding ``image/MANIFEST.tsv`` (``../shared/harvest``), or that ``image``
        folder; files missing on disk are skipped.
    output : str or os.PathLike
        The ``.safetensors`` to write (with the config and provenance as metadata).
    seed : int
        Seed of the subsample, augmentation, folds, initialisation and batches.
    quiet : bool
        Print no progress.
    config : TrainConfig, optional
        Default :class:`TrainConfig()` (the shipped settings).
    cache_dir : str or os.PathLike, optional
        Where decoded, augmented patches are cached (default
        ``<deepscan cache>/expert-image-patches``); ``False`` for no cache.
    evaluate : str
        ``"all"`` (out-of-fold and leave-generator-out, recorded in the provenance), ``"oof"``
        (out-of-fold only) or ``"none"``.

    Returns
    -------
    dict
        ``output``, ``sha256``, ``seconds``, ``files`` (counts), ``out_of_fold`` (AUC with a
        page-grouped bootstrap interval, clean and JPEG-re-encoded), ``leave_generator_out``
        (per system), ``out_of_fold_scores`` (per file) and ``config``.

    Raises
    ------
    FileNotFoundError
        Without a manifest or files on disk.
    ValueError
        If ``evaluate`` is unknown or the files on disk lack a class.
    """
    if config is None and evaluate in ("all", "none"):  # the shipped expert: the backbone and its head
        return train_backbone(data_root, output, seed, quiet, cache_dir=cache_dir or None, evaluate=evaluate == "all")
    if evaluate not in ("all", "oof", "none"):
        raise ValueError(f"evaluate must be 'all', 'oof' or 'none', not {evaluate!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: faster on one thread, and free of thread-order effects
    try:
        return _train(Path(data_root), Path(output), seed, quiet, config or TrainConfig(), cache_dir, evaluate)
    finally:
        torch.set_num_threads(threads)


def _train(data_root: Path, output: Path, seed: int, quiet: bool, config: TrainConfig, cache_dir,
           evaluate: str) -> dict:
    started = time.perf_counter()
    cache = None if cache_dir is False else Path(cache_dir or default_cache_dir() / "expert-image-patches")
    files, counts = harvest_files(data_root, config.dominant_cap, seed, quiet)
    labels = np.array([f.label for f in files])
    if labels.min() == labels.max():
        raise ValueError("training needs real and fake files on disk")
    _log(quiet, f"{len(files)} files ({int(labels.sum())} fake, {int((1 - labels).sum())} real); patches...")
    store = prepare_patches(files, config, seed, cache)
    prep_s = time.perf_counter() - started
    _log(quiet, f"patches ready in {prep_s:.0f} s")
    components = fold_components(files)
    groups = np.array([f.group for f in files])
    result = {"files": {**counts, "used": len(files), "fake": int(labels.sum()), "real": int((1 - labels).sum())}}

    if evaluate in ("all", "oof"):
        fold = _folds(files, components, config.folds, seed)
        oof = {"clean": np.zeros(len(files)), "jpeg": np.zeros(len(files))}
        for k in range(config.folds):
            test = np.flatnonzero(fold == k)
            net = _fit_on(files, np.flatnonzero(fold != k), store, config, seed + 1 + k)
            for kind in oof:
                oof[kind][test] = score_patches(net, store[kind][test])
            _log(quiet, f"fold {k + 1}/{config.folds}: AUC {auc(labels[test], oof['clean'][test]):.3f}")
        result["out_of_fold"] = {kind: _auc_entry(labels, oof[kind], components, config.bootstrap_rounds)
                                 for kind in oof}
        per_system = {}
        for system in sorted({f.system for f in files if f.label == 1}):
            rows = np.array([f.label == 0 or f.system == system for f in files])
            per_system[system] = {kind: _auc_entry(labels[rows], oof[kind][rows], groups[rows], 0)["auc"]
                                  for kind in oof}
        result["out_of_fold"]["per_system"] = per_system
        result["out_of_fold_scores"] = [
            {"sha256": f.sha256, "system": f.system, "label": f.label, "group": f.group,
             "logit": round(float(oof["clean"][i]), 4), "logit_jpeg": round(float(oof["jpeg"][i]), 4)}
            for i, f in enumerate(files)]
        _log(quiet, f"out of fold: AUC {result['out_of_fold']['clean']['auc']} "
                    f"(JPEG {config.eval_jpeg_quality}: {result['out_of_fold']['jpeg']['auc']})")

    if evaluate == "all":
        fold = _folds(files, components, config.folds, seed)
        systems = sorted({f.system for f in files if f.label == 1})
        held_sets = {}
        for system in systems:
            comps = frozenset(components[[f.system == system for f in files]].tolist())
            held_sets.setdefault(comps, []).append(system)
        logo = {}
        for i, (comps, members) in enumerate(sorted(held_sets.items(), key=lambda kv: kv[1])):
            real_fold = i % config.folds
            real_comps = {components[j] for j in range(len(files)) if fold[j] == real_fold and labels[j] == 0}
            test_mask = np.isin(components, list(comps | real_comps))
            net = _fit_on(files, np.flatnonzero(~test_mask), store, config, seed + 101 + i)
            test = np.flatnonzero(test_mask)
            scores = {kind: score_patches(net, store[kind][test]) for kind in ("clean", "jpeg")}
            for system in members:
                rows = np.array([labels[j] == 0 or files[j].system == system for j in test])
                # one generator's fakes mostly sit on one page: a page bootstrap would resample only
                # the reals, so these intervals resample files (they understate page-to-page spread)
                logo[system] = {kind: _auc_entry(labels[test][rows], scores[kind][rows], None,
                                                 config.bootstrap_rounds) for kind in scores}
                logo[system]["held_out_with"] = [m for m in members if m != system]
                _log(quiet, f"leave out {system}: AUC {logo[system]['clean']['auc']} "
                            f"(JPEG {logo[system]['jpeg']['auc']}), {logo[system]['clean']['n_fake']} fakes "
                            f"vs {logo[system]['clean']['n_real']} unseen reals")
        result["leave_generator_out"] = logo

    net = _fit_on(files, np.arange(len(files)), store, config, seed)
    seconds = time.perf_counter() - started
    provenance = {
        "trained_by": "deepscan.training.expert_image.train",
        "seed": seed,
        "seconds": round(seconds, 1),
        "torch": torch.__version__,
        "papers": PAPERS,
        "train_config": _jsonable(asdict(config)),
        "augmentations": {"crop": {"p": config.crop_p, "area": list(config.crop_area), "aspect": [0.75, 1.3333]},
                          "resize": {"p": config.resize_p, "scale": list(config.resize_scale),
                                     "filters": ["bilinear", "bicubic", "lanczos"]},
                          "jpeg": {"p": config.jpeg_p, "quality": list(config.jpeg_quality)},
                          "flip": {"p": 0.5}},
        "files": result["files"],
        "licences": dict(Counter(_licence_of(f, data_root) for f in files)),
        "training_files": [{"sha256": f.sha256, "name": f.path.name, "label": "fake" if f.label else "real",
                            "system": f.system, "group": f.group} for f in files],
        "metrics": {k: result[k] for k in ("out_of_fold", "leave_generator_out") if k in result},
    }
    sha = save_image_expert(net, output, provenance)
    _log(quiet, f"wrote {output} ({sha[:12]}) in {seconds:.0f} s")
    return {"output": str(output), "sha256": sha, "seconds": round(seconds, 1), "prepare_seconds": round(prep_s, 1),
            "config": _jsonable(asdict(config)), **result}


def _licence_of(f: LabelledFile, data_root) -> str:
    return _licences(data_root).get(f.sha256, "unknown")


_LICENCE_CACHE: dict = {}


def _licences(data_root) -> dict:
    """sha256 -> licence column of the manifest."""
    import csv

    path = _manifest_of(Path(data_root))
    if path not in _LICENCE_CACHE:
        with open(path, newline="", encoding="utf-8") as fh:
            _LICENCE_CACHE[path] = {r.get("sha256", ""): (r.get("license") or "unknown").strip()
                                    for r in csv.DictReader(fh, delimiter="\t")}
    return _LICENCE_CACHE[path]


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------
# The backbone expert (issue 22): frozen EfficientNet-Lite2 features of native-resolution crops, taken
# from format-equalised views, and a logistic-regression head on them.
# ---------------------------------------------------------------------------------------------------

CHAIN_VERSION = 1  # bump when the format chain or the crop layout changes (it keys the feature cache)
CHAIN_CANVAS = 448  # px: the chain keeps at most this square of the resized image (2 x 2 crops of 224)
CHAIN_SCALE = (0.5, 1.5)
CHAIN_QUALITY = (60, 100)
CHAIN_CODECS = (("jpeg", 0.45), ("webp", 0.2), ("none", 0.35))  # (codec, probability)
CHAIN_FILTERS = ("bilinear", "bicubic", "lanczos")


def format_chain(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One format-equalised view of an image: the same random chain for real and fake alike.

    In this order: a random resize by a scale drawn from :data:`CHAIN_SCALE` (bilinear, bicubic or
    Lanczos; the scale is raised so that a side of at least 224 px stays at least 224 px, and
    images under 224 px are not scaled), a random crop of at most :data:`CHAIN_CANVAS` px a side
    (taken before the resize, on the matching region of the original, to save time), then one of
    JPEG (quality 60-100, Pillow, 4:2:0), WebP (quality 60-100) or no compression
    (:data:`CHAIN_CODECS`), decoded back. The view is built from decoded pixels, so no EXIF, ICC
    profile, container or original dimension survives: format, container, size and compression say
    nothing about the label (``bench/format_probe.py`` checks this).

    Parameters
    ----------
    image : np.ndarray
        uint8 ``(H, W, 3)``, decoded by :func:`deepscan.media.load_image`.
    rng : np.random.Generator

    Returns
    -------
    view : np.ndarray
        uint8 ``(h, w, 3)`` with ``h, w <= CHAIN_CANVAS``.
    steps : dict
        ``{"scale", "filter", "codec", "quality"}`` as drawn.
    """
    from PIL import Image

    from ..extractors.efficientnet import CROP

    h, w = image.shape[:2]
    scale = float(rng.uniform(*CHAIN_SCALE))
    short = min(h, w)
    scale = 1.0 if short < CROP else max(scale, CROP / short)
    filt = CHAIN_FILTERS[int(rng.integers(len(CHAIN_FILTERS)))]
    region = int(math.ceil(CHAIN_CANVAS / scale))
    ch, cw = min(h, region), min(w, region)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = image[top:top + ch, left:left + cw]
    if scale != 1.0:
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}[filt]
        crop = np.asarray(Image.fromarray(crop).resize(size, resample))
    crop = np.ascontiguousarray(crop[:CHAIN_CANVAS, :CHAIN_CANVAS])
    codecs, probs = zip(*CHAIN_CODECS)
    codec = codecs[int(rng.choice(len(codecs), p=np.array(probs) / sum(probs)))]
    quality = int(rng.integers(CHAIN_QUALITY[0], CHAIN_QUALITY[1] + 1))
    if codec != "none":
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG" if codec == "jpeg" else "WEBP", quality=quality)
        buffer.seek(0)
        crop = np.asarray(Image.open(buffer).convert("RGB"))
    return crop, {"scale": round(scale, 4), "filter": filt, "codec": codec,
                  "quality": quality if codec != "none" else None}


def backbone_crop_features(crops: np.ndarray, batch: int = 16) -> np.ndarray:
    """Multi-depth backbone features of uint8 crops ``(N, 224, 224, 3)`` -> float32 ``(N, 2120)``."""
    from ..extractors.efficientnet import load_backbone, normalise

    net = load_backbone()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[i:i + batch])).permute(0, 3, 1, 2)
            out.append(net.features(normalise(x)).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2120), np.float32)


def view_features(path: str | os.PathLike, sha256: str, cache_dir: str | os.PathLike, seed: int = 0,
                  view: int = 0) -> np.ndarray:
    """Features of the 2 x 2 crops of one format-equalised view of a file, cached by SHA-256.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    sha256 : str
        Its SHA-256 (the cache key, with ``seed``, ``view`` and :data:`CHAIN_VERSION`).
    cache_dir : str or os.PathLike
        Folder of the ``.npy`` caches (``float16 (4, 2120)`` each).
    seed, view : int
        The chain's draws are ``default_rng([seed, view, int(sha256[:12], 16)])``.

    Returns
    -------
    np.ndarray
        float32 ``(4, 2120)``: per-crop features (the file's feature is their mean).
    """
    from ..experts.generated_image import frame_crops
    from ..media import load_image

    target = Path(cache_dir) / f"v{CHAIN_VERSION}-s{seed}-w{view}" / f"{sha256}.npy"
    if target.is_file():
        return np.load(target).astype(np.float32)
    rng = np.random.default_rng([seed, view, int(sha256[:12], 16)])
    image, _ = format_chain(load_image(path), rng)
    crops, _ = frame_crops(image, grid=2)
    feats = backbone_crop_features(crops)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, feats.astype(np.float16))
    os.replace(tmp, target)
    return feats


def sample_weights(labels, groups) -> np.ndarray:
    """Per-file training weights: both classes weigh the same, each source page by sqrt(its size).

    Parameters
    ----------
    labels, groups : array-like
        ``(N,)`` 1 = fake; the source page of each file.

    Returns
    -------
    np.ndarray
        float64 ``(N,)`` summing to 2 (1 per class present), so that the two dominant fake pages
        (2,064 and 1,437 files) do not drown the other 39 families.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    size = Counter(zip(labels.tolist(), groups.tolist()))
    w = np.array([1.0 / math.sqrt(size[(c, g)]) for c, g in zip(labels.tolist(), groups.tolist())])
    for c in (0, 1):
        if (labels == c).any():
            w[labels == c] /= w[labels == c].sum()
    return w


def fit_head(features: np.ndarray, labels, weights=None, c: float = 0.05, seed: int = 0) -> dict:
    """The expert's head: standardisation then L2 logistic regression (sklearn lbfgs).

    Parameters
    ----------
    features : np.ndarray
        float ``(N, 2120)``: each file's mean crop feature.
    labels : array-like
        ``(N,)`` 1 = fake.
    weights : array-like, optional
        Per-file weights (:func:`sample_weights`); default equal.
    c : float
        Inverse L2 strength, on weights rescaled to a mean of 1.
    seed : int

    Returns
    -------
    dict
        ``feature_mean``, ``feature_scale``, ``weight`` (float32 ``(2120,)``) and ``bias`` (``(1,)``),
        in the terms of :class:`deepscan.experts.generated_image.BackboneImageExpert`.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w * len(w) / w.sum()
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w)) + 1e-3
    model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    model.fit((x - mean) / scale, np.asarray(labels), sample_weight=w)
    return {"feature_mean": mean.astype(np.float32), "feature_scale": scale.astype(np.float32),
            "weight": model.coef_[0].astype(np.float32), "bias": np.float32(model.intercept_).reshape(1)}


def head_logits(head: dict, features: np.ndarray) -> np.ndarray:
    """Logits of the head on features ``(N, 2120)`` (float64 ``(N,)``)."""
    x = (np.asarray(features, dtype=np.float64) - head["feature_mean"]) / head["feature_scale"]
    return x @ np.asarray(head["weight"], dtype=np.float64) + float(np.asarray(head["bias"]).reshape(-1)[0])


def real_group_folds(labels, groups, k: int = 5) -> dict:
    """Real source pages dealt into ``k`` folds of similar size (largest first, to the smallest fold)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    sizes = Counter(groups[labels == 0].tolist())
    folds, load = {}, [0] * k
    for g, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        i = int(np.argmin(load))
        folds[g] = i
        load[i] += n
    return folds


def leave_family_out(features, labels, families, groups, *, c: float = 0.05, k: int = 5, rounds: int = 1000,
                     controls: dict | None = None, min_fakes: int = 5, seed: int = 0) -> dict:
    """Leave-one-family-out AUC: each generator family's fakes against unseen real pages.

    For family ``F`` (``i``-th in sorted order): the test set is ``F``'s fakes and the real pages of
    real fold ``i mod k`` (:func:`real_group_folds`); the head is trained on everything else (the
    other families' fakes, the other real folds), weighted by :func:`sample_weights`. Intervals:
    percentile bootstrap over files (:func:`deepscan.metrics.bootstrap_metric`; a family's fakes
    mostly sit on one page, so a page bootstrap could not resample them).

    Parameters
    ----------
    features : np.ndarray
        ``(N, D)`` detector features (format-equalised views).
    labels, families, groups : array-like
        ``(N,)``: 1 = fake; generator family (reals: anything); source page.
    c, k, rounds, min_fakes, seed
        Head strength, real folds, bootstrap rounds, fewest fakes for a family to be reported.
    controls : dict, optional
        Name -> ``(N, F)`` features of another classifier fitted and scored on the same splits by
        :func:`bench.format_probe.probe_scores`-like logistic regression (the format probe), or
        name -> ``(N,)`` fixed scores (the old expert): reported beside the detector.

    Returns
    -------
    dict
        ``families``: per family ``{"detector": {auc, ci95, n_real, n_fake}, <control>: {...}}``;
        ``median``: the median AUC over reported families for the detector and each control.
    """
    from ..metrics import bootstrap_metric

    x, y = np.asarray(features), np.asarray(labels)
    fam, grp = np.asarray(families), np.asarray(groups)
    folds = real_group_folds(y, grp, k)
    real_fold = np.array([folds.get(g, -1) if lab == 0 else -1 for g, lab in zip(grp, y)])
    controls = controls or {}
    out = {}
    reported = sorted(f for f, n in Counter(fam[y == 1].tolist()).items() if n >= min_fakes)
    for i, family in enumerate(reported):
        test = ((y == 1) & (fam == family)) | (real_fold == i % k)
        train = ~test
        head = fit_head(x[train], y[train], sample_weights(y[train], grp[train]), c, seed)
        entry = {}
        scored = {"detector": head_logits(head, x[test])}
        for name, ctl in controls.items():
            ctl = np.asarray(ctl)
            if ctl.ndim == 1:
                scored[name] = ctl[test]
            else:
                from sklearn.linear_model import LogisticRegression
                from sklearn.pipeline import make_pipeline
                from sklearn.preprocessing import StandardScaler

                probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced",
                                                                           max_iter=2000))
                probe.fit(ctl[train], y[train])
                scored[name] = probe.decision_function(ctl[test])
        for name, s in scored.items():
            keep = np.isfinite(s)  # a fixed-score control may lack some files
            value, lo, hi = bootstrap_metric(y[test][keep], s[keep], None, rounds=rounds)
            entry[name] = {"auc": round(value, 4), "ci95": [round(lo, 4), round(hi, 4)],
                           "n_real": int((y[test][keep] == 0).sum()), "n_fake": int(y[test][keep].sum())}
        out[family] = entry
    names = ["detector", *controls]
    median = {n: round(float(np.median([out[f][n]["auc"] for f in out])), 4) for n in names}
    return {"families": out, "median": median, "c": c, "real_folds": k}


# The format probe's features (bench/format_probe.py): what a classifier could learn without pixels.

FORMAT_FEATURE_NAMES = (
    "log_width", "log_height", "log_pixels", "log_aspect", "bytes_per_pixel", "is_png", "is_jpeg", "is_webp",
    "is_other", "q_luma_mean", "q_chroma_mean", "q_luma_dc", "jpeg_quality", "subsampling_420", "progressive",
    "has_exif", "has_icc", "mode_rgba",
)


def _jpeg_quality(luma_mean: float) -> float:
    """IJG quality whose scaled standard luminance table has this mean (1-100, approximate)."""
    base = 57.625  # mean of the IJG standard luminance table (Annex K, Table K.1)
    scale = 100.0 * luma_mean / base  # percent scaling applied to the standard table
    quality = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2.0
    return float(np.clip(quality, 1, 100))


def format_features(path: str | os.PathLike) -> np.ndarray:
    """Format-only description of an image file, nothing about its pixels (``bench/format_probe.py``).

    Parameters
    ----------
    path : str or os.PathLike
        An image file (read with Pillow, header and tables only).

    Returns
    -------
    np.ndarray
        float64 ``(len(FORMAT_FEATURE_NAMES),)``, in the order of :data:`FORMAT_FEATURE_NAMES`; JPEG-only entries
        are 0 for other formats.
    """
    from PIL import Image

    path = Path(path)
    size = path.stat().st_size
    with Image.open(path) as im:
        w, h = im.size
        fmt = (im.format or "").upper()
        q_luma = q_chroma = q_dc = quality = sub420 = progressive = 0.0
        if fmt == "JPEG":
            tables = getattr(im, "quantization", None) or {}
            if 0 in tables:
                q_luma = float(np.mean(tables[0]))
                q_dc = float(tables[0][0])
                quality = _jpeg_quality(q_luma)
            if 1 in tables:
                q_chroma = float(np.mean(tables[1]))
            try:
                from PIL import JpegImagePlugin

                sub420 = float(JpegImagePlugin.get_sampling(im) == 2)
            except Exception:  # noqa: BLE001 - an odd JPEG: unknown subsampling
                sub420 = 0.0
            progressive = float(bool(im.info.get("progressive") or im.info.get("progression")))
        has_exif = float(bool(im.info.get("exif")) or bool(len(im.getexif())))
        has_icc = float(bool(im.info.get("icc_profile")))
        rgba = float(im.mode in ("RGBA", "LA", "P") and "transparency" in im.info or im.mode in ("RGBA", "LA"))
    pixels = max(1, w * h)
    return np.array([
        np.log(max(w, 1)), np.log(max(h, 1)), np.log(pixels), np.log(max(w, 1) / max(h, 1)), size / pixels,
        float(fmt == "PNG"), float(fmt == "JPEG"), float(fmt == "WEBP"), float(fmt not in ("PNG", "JPEG", "WEBP")),
        q_luma, q_chroma, q_dc, quality, sub420, progressive, has_exif, has_icc, rgba,
    ], dtype=np.float64)


# Training the backbone expert end to end (``deepscan train-expert image`` without a TrainConfig).

HARVEST_EXT_ENV = "DEEPSCAN_HARVEST_EXT"  # where scripts/harvest.py extracted data/harvest/image
BACKBONE_C = 0.02  # the head's inverse L2 strength (of 0.02, 0.05, 0.1: the best leave-one-family-out median)
BACKBONE_PAPERS = [
    "Tan & Le, EfficientNet, ICML 2019 (and Google's EfficientNet-Lite, 2020): the frozen backbone",
    "Ojha, Li & Lee, Towards Universal Fake Image Detectors that Generalize Across Generative Models "
    "(UnivFD), CVPR 2023: frozen pretrained features and a linear probe",
    "Chai et al., What makes fake images detectable?, ECCV 2020: native-resolution patches",
    "Guillaro et al., A Bias-Free Training Paradigm for More General AI-generated Image Detection "
    "(B-Free), CVPR 2025: format-equalised training",
]


def backbone_sources(data_root: str | os.PathLike) -> list[tuple[Path, Path | None]]:
    """The manifests to train on: ``data_root``'s and, when extracted, the repository's extension.

    The extension (``data/harvest/image/MANIFEST.tsv`` beside the package's source tree) is used
    when ``$DEEPSCAN_HARVEST_EXT`` names the folder its files were extracted to
    (``scripts/harvest.py extract``), holding ``<label>/<name>``.
    """
    sources = [(_manifest_of(Path(data_root)), None)]
    ext_root = os.environ.get(HARVEST_EXT_ENV)
    ext_manifest = Path(__file__).resolve().parents[2] / "data" / "harvest" / "image" / "MANIFEST.tsv"
    if ext_root and ext_manifest.is_file() and Path(ext_root).is_dir():
        sources.append((ext_manifest, Path(ext_root)))
    return sources


# The starter harvest (../shared/harvest) names systems, not families: its systems mapped onto the
# extension's families (data/harvest/image/MANIFEST.tsv ``family``), so that holding a family out
# holds out all of it. Matched in order, case-insensitively, on the system name.
STARTER_FAMILIES = (
    ("stylegan", "StyleGAN"), ("boredhumans", "StyleGAN"), ("realistic vision", "SD1.x"),
    ("stable diffusion v1", "SD1.x"), ("dall-e mega", "DALL-E-Mini"), ("min-dalle", "DALL-E-Mini"),
    ("kandinsky 2", "Kandinsky-2"), ("dfdc", "DFDC face swap"),
)


def family_of(system: str) -> str:
    """The generator family of a starter-harvest system (:data:`STARTER_FAMILIES`), else the system."""
    low = system.lower()
    return next((family for key, family in STARTER_FAMILIES if key in low), system)


def labelled_images(sources) -> tuple[list[LabelledFile], list[str]]:
    """Image files on disk from ``(manifest, root)`` pairs, with each one's generator family.

    Returns
    -------
    (list of LabelledFile, list of str)
        The files (SHA-256 as the manifest gives it; files already listed by an earlier manifest
        are skipped) and their family: the manifest's ``family`` column where it has one, else
        :func:`family_of` its ``system``; ``"real"`` for real files.
    """
    import csv

    files, families, seen = [], [], set()
    for manifest, root in sources:
        with open(manifest, newline="", encoding="utf-8") as fh:
            family = {r.get("sha256", ""): (r.get("family") or family_of(r.get("system") or "")).strip()
                      for r in csv.DictReader(fh, delimiter="\t")}
        for f in read_manifest(manifest, root):
            if f.kind != "image" or not f.exists or f.sha256 in seen:
                continue
            seen.add(f.sha256)
            files.append(f)
            families.append(family.get(f.sha256) or f.system if f.label else "real")
    return files, families


def train_backbone(data_root: str | os.PathLike, output: str | os.PathLike, seed: int = 0, quiet: bool = False,
                   *, cache_dir: str | os.PathLike | None = None, evaluate: bool = True, c: float = BACKBONE_C,
                   sources=None, check_hashes: bool = False, rounds: int = 1000,
                   reference_scores: dict | None = None) -> dict:
    """Train the backbone expert's head on the harvest and write it (fp16 safetensors).

    Every file gives one format-equalised view (:func:`format_chain`), whose 2 x 2 crops of 224 px
    go through the frozen EfficientNet-Lite2 (:func:`view_features`, cached by SHA-256); a file's
    feature is the mean of its crops'. The head (:func:`fit_head`) is fitted on all files, weighted
    by :func:`sample_weights`; with ``evaluate`` the leave-one-family-out table
    (:func:`leave_family_out`, with the format probe on the same splits) goes into the provenance.

    Parameters
    ----------
    data_root : str or os.PathLike
        The harvest root (``image/MANIFEST.tsv``), e.g. ../shared/harvest; see :func:`backbone_sources`.
    output : str or os.PathLike
        The ``.safetensors`` to write.
    seed : int
        Seed of the chain's draws and the head.
    quiet : bool
    cache_dir : str or os.PathLike, optional
        Feature cache (default ``<deepscan cache>/expert-image-backbone``).
    evaluate : bool
        Run the leave-one-family-out evaluation.
    c : float
        The head's inverse L2 strength.
    sources : list of (manifest, root), optional
        Instead of :func:`backbone_sources`.
    check_hashes : bool
        Hash every file against its manifest first (skipping mismatches).
    rounds : int
        Bootstrap rounds of the evaluation's intervals.
    reference_scores : dict, optional
        Name -> ``{sha256: score}``: fixed scores of another detector (the previous expert on the
        original files), reported beside on the same splits (files without a score are left out).

    Returns
    -------
    dict
        ``output``, ``sha256``, ``seconds``, ``files``, ``leave_family_out``.
    """
    from ..experts.generated_image import MAX_GRID, save_backbone_head
    from ..extractors.efficientnet import CROP, FEATURE_SLICES, REGISTRY_NAME
    from ..weights import get_entry

    started = time.perf_counter()
    cache = Path(cache_dir) if cache_dir else Path(default_cache_dir()) / "expert-image-backbone"
    files, families = labelled_images(sources or backbone_sources(data_root))
    if check_hashes:
        keep = [i for i, f in enumerate(files) if file_sha256(f.path) == f.sha256]
        files, families = [files[i] for i in keep], [families[i] for i in keep]
    labels = np.array([f.label for f in files])
    if not len(files) or labels.min() == labels.max():
        raise ValueError("training needs real and fake image files on disk")
    _log(quiet, f"{len(files)} files ({int(labels.sum())} fake in {len(set(np.array(families)[labels == 1]))} "
                f"families, {int((labels == 0).sum())} real); features...")
    feats = []
    for n, f in enumerate(files):
        feats.append(view_features(f.path, f.sha256, cache, seed=seed).mean(0))
        if not quiet and n % 500 == 499:
            _log(quiet, f"  {n + 1}/{len(files)} ({time.perf_counter() - started:.0f} s)")
    x = np.stack(feats)
    groups = np.array([f.group for f in files])
    result = {"files": {"used": len(files), "fake": int(labels.sum()), "real": int((labels == 0).sum()),
                        "families": dict(Counter(families))}}
    if evaluate:
        controls = {"format_probe": np.stack([format_features(f.path) for f in files])}
        for name, table in (reference_scores or {}).items():
            controls[name] = np.array([table.get(f.sha256, np.nan) for f in files], dtype=np.float64)
        result["leave_family_out"] = leave_family_out(x, labels, np.array(families), groups, c=c, seed=seed,
                                                      controls=controls, rounds=rounds)
        _log(quiet, f"leave-one-family-out median AUC {result['leave_family_out']['median']}")
    head = fit_head(x, labels, sample_weights(labels, groups), c, seed)
    backbone = get_entry(REGISTRY_NAME)
    config = {"backbone": REGISTRY_NAME, "backbone_sha256": backbone.sha256, "crop": CROP, "grid": MAX_GRID,
              "features": {k: [v.start, v.stop] for k, v in FEATURE_SLICES.items()},
              "pooling": "global average per crop; file logit = mean crop logit", "normalise": "(x - 127) / 128"}
    seconds = time.perf_counter() - started
    provenance = {
        "trained_by": "deepscan.training.expert_image.train_backbone", "seed": seed, "c": c,
        "seconds": round(seconds, 1), "torch": torch.__version__, "papers": BACKBONE_PAPERS,
        "chain": {"version": CHAIN_VERSION, "canvas": CHAIN_CANVAS, "scale": list(CHAIN_SCALE),
                  "filters": list(CHAIN_FILTERS), "codecs": [list(x) for x in CHAIN_CODECS],
                  "quality": list(CHAIN_QUALITY), "crops": "2 x 2 grid of 224 px over the view"},
        "files": result["files"],
        "training_files": {  # SHA-256 per class (family and page: from the manifests)
            "fake": sorted(f.sha256 for f in files if f.label), "real": sorted(f.sha256 for f in files if not f.label)},
        "metrics": {k: result[k] for k in ("leave_family_out",) if k in result},
    }
    sha = save_backbone_head(head, output, config, provenance)
    _log(quiet, f"wrote {output} ({sha[:12]}) in {seconds:.0f} s")
    return {"output": str(output), "sha256": sha, "seconds": round(seconds, 1), **result}
