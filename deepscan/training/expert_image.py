"""Training the generated-image expert (:mod:`deepscan.experts.generated_image`) on the harvest.

``deepscan train-expert image HARVEST -o image.safetensors`` calls :func:`train`. The harvest
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

__all__ = ["TrainConfig", "train", "harvest_files", "fold_components", "augment_view", "simulate_upsampling",
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
