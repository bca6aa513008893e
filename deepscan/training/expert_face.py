"""Train the ``face_forgery`` expert on the harvest: face crops, real against manipulated.

What it learns from (``data_root`` is the harvest root, ``../shared/harvest`` or a full extraction
of it): the faces of ``video/MANIFEST.tsv`` and ``image/MANIFEST.tsv`` whose ``face`` column says
``yes``. Real: talking-head recordings, news clips, celebrity, CelebA(-HQ), VoxCeleb and AFLW
photos, DFDC originals. Fake: face swaps (DFDC, roop/inswapper), lip-sync (Wav2Lip, SadTalker,
video-retalking, SadTalker-Video-Lip-Sync) and diffusion talking heads (MuseV) -- the
*manipulated-face* systems of :data:`FACE_FAKE_METHODS`; wholly generated faces (GAN, diffusion
photos) are the image expert's business and are left out. Beside those, **self-blended images**
(Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022) made on the fly
from the real crops with :func:`deepscan.training.pseudofakes.self_blend`: the whole face, or the
lower face only (the region a lip-sync model regenerates: Prajwal et al., "A Lip Sync Expert Is All
You Need for Speech to Lip Generation In the Wild", ACM MM 2020).

Pipeline:

1. **Crops, cached.** Each file is decoded once through :func:`deepscan.media.iter_windows` (the
   one place that decodes; :func:`deepscan.media.load_image` for stills), the main face tracked
   with YuNet (:class:`deepscan.faces.FaceCropper`, ``detect_every=2``) and cut as the aligned
   256x256 Meso-4 crop (:attr:`deepscan.faces.FaceCrops.meso_crops`) and the 224x224 CLIP crop,
   up to :data:`MAX_FRAMES` frames evenly spread over the first :data:`MAX_SECONDS` seconds at
   8 frames/s. Stills are zero-padded by :data:`IMAGE_PAD` of their longer side before detection so
   that tight face crops are found (pixels outside an image are black in a crop either way). The
   crops are cached as ``.npz`` per file SHA-256 under ``cache_dir``.
2. **Training** (:func:`fit`): Meso-4 (Afchar et al., WIFS 2018) fine-tuned from ``Meso4_DF.h5``,
   its output negated so that it is the logit of *fake*, on the crops :class:`TrainConfig` names
   (default: the 224 CLIP crops, shrunk to a 128 px input; out of fold they beat the aligned
   crops, and 128 px costs a seventh of 256 px per step on a CPU). Batches are half real, half
   fake; a fake is a harvest fake crop (systems drawn uniformly) or a self-blended real crop. Both
   classes pass through the same augmentations (:func:`augment`): horizontal flip, down- and
   up-scaling (scale 0.3-1), JPEG re-compression (quality 30-95), small shifts, brightness and
   contrast, so that resolution and compression say nothing of the label.
3. **Judged on what it did not see** (:func:`train`): folds grouped by source page in which the
   pages of one fake system stay together and each fold holds out whole systems
   (:func:`page_folds`), so the out-of-fold score of a fake is a leave-generator-out score; AUC
   per held-out system (its files against all real files, out of fold; file score = mean of the
   frame scores), overall with a bootstrap interval over pages, and the same folds trained on
   self-blended images only, for comparison. ``../realworld`` is never read here.

The command: ``deepscan train-expert face /work/shared/harvest -o face.safetensors``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from deepscan.errors import DeepscanError
from deepscan.labelled import LabelledFile, read_manifest
from deepscan.metrics import auc

__all__ = [
    "FACE_FAKE_METHODS",
    "model_factory",
    "MAX_FRAMES",
    "MAX_SECONDS",
    "IMAGE_PAD",
    "FaceSample",
    "TrainConfig",
    "face_files",
    "extract_face_crops",
    "default_cache_dir",
    "load_samples",
    "augment",
    "sbi_fake",
    "new_model",
    "fit",
    "predict_files",
    "page_folds",
    "rank_auc",
    "cross_validate",
    "train",
]

# manifest ``method`` values of manipulated-face fakes taken from any kind; a video fake with a face
# is taken whatever its method (MuseV's diffusion talking heads); wholly generated *images* (GAN,
# Stable Diffusion) are left to the image expert
FACE_FAKE_METHODS = ("face-swap", "lip-sync")
MAX_FRAMES = 16  # crops kept per video, evenly spread over the frames with a face
MAX_SECONDS = 16.0  # s of each video decoded (two 8 fps windows of 4 s hold 64 frames)
IMAGE_PAD = 0.25  # zero border added around a still before face detection, fraction of its longer side
CROP_FORMAT = 1  # bump when the crop extraction changes: part of the cache key
CROP = 256  # px, side of the aligned crops trained on (deepscan.faces.MESO_CROP_SIZE)
CLIP = 224  # px, side of the CLIP crops kept beside them (deepscan.faces.CROP_SIZE)


# ------------------------------------------------------------------------------------------------
# Data: which files, their crops, the cache
# ------------------------------------------------------------------------------------------------


@dataclass
class FaceSample:
    """The cached face crops of one labelled file.

    Attributes
    ----------
    file : LabelledFile
        The manifest row (path, kind, label 1 = fake, system, group = source page, pair, SHA-256).
    licence : str
        The manifest's ``license`` column.
    crops : np.ndarray
        uint8 RGB ``(T, 256, 256, 3)`` aligned crops (:func:`deepscan.faces.meso_crop`), one per
        sampled frame with a face; ``T = 0`` when no face was found.
    clip : np.ndarray
        uint8 RGB ``(T, 224, 224, 3)`` CLIP crops of the same frames.
    landmarks : np.ndarray
        float32 ``(T, 5, 2)`` the five landmarks (right eye, left eye, nose, right and left mouth
        corner) in pixels of the aligned crop.
    """

    file: LabelledFile
    licence: str
    crops: np.ndarray
    clip: np.ndarray
    landmarks: np.ndarray

    @property
    def n(self) -> int:
        """Number of crops."""
        return int(self.crops.shape[0])


def face_files(data_root: str | os.PathLike, kinds=("video", "image")) -> list[tuple[LabelledFile, str]]:
    """The labelled files of the harvest that the face expert learns from.

    Parameters
    ----------
    data_root : str or os.PathLike
        The harvest root, holding ``<kind>/MANIFEST.tsv`` and the files at ``<kind>/<label>/<name>``.
    kinds : tuple of str
        Manifest kinds read (those without a manifest are skipped).

    Returns
    -------
    list of (LabelledFile, str)
        Each file with its licence, in manifest order, present on disk or not
        (:attr:`LabelledFile.exists`): reals whose ``face`` column is ``yes``; fakes whose
        ``face`` is ``yes`` and that are videos or of a method in :data:`FACE_FAKE_METHODS`.

    Raises
    ------
    FileNotFoundError
        If no manifest of ``kinds`` exists under ``data_root``.
    ValueError
        As :func:`deepscan.evaluation.read_manifest`.
    """
    root = Path(data_root)
    out = []
    found = False
    for kind in kinds:
        manifest = root / kind / "MANIFEST.tsv"
        if not manifest.is_file():
            continue
        found = True
        with open(manifest, newline="", encoding="utf-8") as f:
            extra = {r["name"]: r for r in csv.DictReader(f, delimiter="\t")}
        for lf in read_manifest(manifest):
            row = extra[lf.path.name]
            if (row.get("face") or "").strip() != "yes":
                continue
            if lf.label == 1 and kind != "video" and lf.method not in FACE_FAKE_METHODS:
                continue
            out.append((lf, (row.get("license") or "").strip() or "none"))
    if not found:
        raise FileNotFoundError(f"no {' or '.join(k + '/MANIFEST.tsv' for k in kinds)} under {root}")
    return out


def _weights(name: str, models_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None) -> Path:
    """A registry weight file: ``models_dir`` / ``$DEEPSCAN_MODELS_DIR`` / the download cache, else
    ``<data_root>/../models`` (the shared folder's layout), else fetched (unless offline)."""
    from deepscan.weights import find_model, get_entry, model_path

    found = find_model(name, models_dir)
    if found is None and data_root is not None:
        beside = Path(data_root).resolve().parent / "models" / get_entry(name).filename
        if beside.is_file():
            return model_path(name, beside.parent, download_missing=False)
    return model_path(name, models_dir)


def _cropper(models_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None):
    from deepscan.faces import FaceCropper, FaceDetectorConfig

    return FaceCropper(FaceDetectorConfig("yunet", _weights("yunet", models_dir, data_root)), detect_every=2)


def _meso_coords(landmarks: np.ndarray, size: int = CROP) -> np.ndarray:
    """Landmarks ``(5, 2)`` in frame pixels -> pixels of the aligned crop :func:`meso_crop` cuts."""
    from deepscan.faces import MESO_CROP_SCALE

    lm = np.asarray(landmarks, np.float64)
    eyes, mouth = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
    axis = mouth - eyes
    unit = max(float(np.hypot(*(lm[1] - lm[0]))), float(np.hypot(*axis)))
    side = MESO_CROP_SCALE * unit
    ey = axis / max(float(np.hypot(*axis)), 1e-9)
    ex = np.array([ey[1], -ey[0]])
    d = lm - lm[2]
    return np.stack([d @ ex, d @ ey], 1) * size / side + (size - 1) / 2


def extract_face_crops(path: str | os.PathLike, kind: str, cropper=None, max_frames: int = MAX_FRAMES,
                       max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a file and cut the aligned and CLIP crops of its main face.

    Parameters
    ----------
    path : str or os.PathLike
        A video, animated image or still image.
    kind : str
        ``"image"`` (one frame, zero-padded by :data:`IMAGE_PAD` before detection) or ``"video"``.
    cropper : deepscan.faces.FaceCropper, optional
        Default: YuNet (the shared or registry model file), ``detect_every=2``.
    max_frames : int
        Most crops returned, evenly spread over the frames with a face.
    max_seconds : float
        Seconds of a video decoded (at :data:`deepscan.media.VISUAL_FPS` frames per second).

    Returns
    -------
    crops : np.ndarray
        uint8 ``(T, 256, 256, 3)`` aligned crops, ``T <= max_frames`` (0 without a face).
    clip : np.ndarray
        uint8 ``(T, 224, 224, 3)`` CLIP crops of the same frames.
    landmarks : np.ndarray
        float32 ``(T, 5, 2)`` landmarks in pixels of the aligned crop.

    Raises
    ------
    DeepscanError
        The typed errors of :func:`deepscan.media.iter_windows` / :func:`deepscan.media.load_image`.
    """
    from deepscan.media import iter_windows, load_image

    cropper = cropper or _cropper()
    tracker = cropper.new_tracker()
    crops, clips, lms = [], [], []
    if kind == "image":
        image = load_image(path)
        pad = int(round(IMAGE_PAD * max(image.shape[:2])))
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        windows = [image[None]]
    else:
        windows = (w.frames for w in iter_windows(path) if w.start_s < max_seconds)
    for frames in windows:
        if frames.shape[0] == 0:
            continue
        faces = tracker.crop(frames)
        for i in np.flatnonzero(faces.found):
            crops.append(faces.meso_crops[i])
            clips.append(faces.crops[i])
            lms.append(_meso_coords(faces.landmarks[i]))
    if not crops:
        return (np.zeros((0, CROP, CROP, 3), np.uint8), np.zeros((0, CLIP, CLIP, 3), np.uint8),
                np.zeros((0, 5, 2), np.float32))
    keep = np.unique(np.round(np.linspace(0, len(crops) - 1, min(max_frames, len(crops)))).astype(int))
    return (np.stack([crops[i] for i in keep]), np.stack([clips[i] for i in keep]),
            np.stack([lms[i] for i in keep]).astype(np.float32))


def default_cache_dir() -> Path:
    """``<deepscan cache>/face_crops`` (``$DEEPSCAN_CACHE_DIR`` or ``~/.cache/deepscan``)."""
    from deepscan.cache import default_cache_dir as base

    return base() / "face_crops"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_samples(files, cache_dir: str | os.PathLike | None = None, quiet: bool = True,
                 cropper=None, models_dir: str | os.PathLike | None = None,
                 data_root: str | os.PathLike | None = None) -> list[FaceSample]:
    """Crops of each present file, from the cache or extracted (and then cached).

    Parameters
    ----------
    files : list of (LabelledFile, str)
        As :func:`face_files` returns; absent files are skipped.
    cache_dir : str or os.PathLike, optional
        Where the ``.npz`` per file lives (default :func:`default_cache_dir`); keyed by the file's
        SHA-256 (the manifest's, else computed) and :data:`CROP_FORMAT`.
    quiet : bool
        No progress lines on stderr.
    cropper : deepscan.faces.FaceCropper, optional
        Face cropper (default YuNet, built on the first file not in the cache).
    models_dir, data_root : str or os.PathLike, optional
        Where the default cropper looks for the YuNet file (:func:`_weights`).

    Returns
    -------
    list of FaceSample
        One per present file that decoded, in input order (files without a face are kept with
        ``n == 0``; files that fail to decode are left out with a line on stderr unless quiet).
    """
    import sys

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    t0 = time.time()
    for k, (lf, licence) in enumerate(files):
        if not lf.exists:
            continue
        sha = lf.sha256 or _sha256(lf.path)
        npz = cache / f"{sha[:32]}_v{CROP_FORMAT}_{MAX_FRAMES}.npz"
        if npz.is_file():
            with np.load(npz) as z:
                crops, clip, lms = z["crops"], z["clip"], z["landmarks"]
        else:
            cropper = cropper or _cropper(models_dir, data_root)
            try:
                crops, clip, lms = extract_face_crops(lf.path, lf.kind, cropper)
            except DeepscanError as error:
                if not quiet:
                    print(f"face crops: skipped {lf.path.name}: {error}", file=sys.stderr)
                continue
            tmp = npz.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, crops=crops, clip=clip, landmarks=lms)
            os.replace(tmp, npz)
        out.append(FaceSample(dataclasses.replace(lf, sha256=sha), licence, crops, clip, lms))
        if not quiet and (k + 1) % 50 == 0:
            print(f"face crops: {k + 1}/{len(files)} files, {time.time() - t0:.0f} s", file=sys.stderr)
    return out


# ------------------------------------------------------------------------------------------------
# Augmentation and self-blended images
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains (all of it is recorded in the weights' metadata).

    Attributes
    ----------
    crop : str
        ``"meso"``: the aligned 256x256 crops; ``"clip"``: the 224x224 CLIP crops (box plus 25 %
        margin, not rotated), resized to 256 for the network.
    size : int
        Network input side, 128 or 256 px (:class:`deepscan.experts.face_forgery.FaceForgeryNet`):
        crops are shrunk to it (area interpolation) once, before augmentation.
    init : str
        ``"df"`` (``Meso4_DF.h5``), ``"f2f"`` (``Meso4_F2F.h5``) or ``"scratch"``.
    steps : int
        Optimiser steps.
    batch : int
        Crops per step, half real and half fake.
    lr : float
        Peak AdamW learning rate (cosine decay to 0 after a 5 % linear warm-up).
    weight_decay : float
        AdamW weight decay.
    p_harvest : float
        Probability that a fake of the batch is a harvest fake crop rather than a self-blended real
        (when the training set has harvest fakes); 0 trains on self-blended images only.
    p_lower : float
        Probability that a self-blended image blends the lower face only (lip-sync-like) rather
        than the whole face.
    p_resize, resize_range : float, (float, float)
        Probability and range of the down-and-up scaling (scale relative to the crop side).
    p_jpeg, jpeg_quality : float, (int, int)
        Probability and range of the JPEG re-compression quality.
    p_colour : float
        Probability of a brightness (+-10 %) and contrast (+-10 %) change.
    shift : float
        Largest translation as a fraction of the crop side (with a +-5 % zoom).
    """

    crop: str = "clip"
    size: int = 128
    init: str = "df"
    steps: int = 800
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    p_harvest: float = 0.5
    p_lower: float = 0.5
    p_resize: float = 0.5
    resize_range: tuple = (0.3, 1.0)
    p_jpeg: float = 0.5
    jpeg_quality: tuple = (30, 95)
    p_colour: float = 0.5
    shift: float = 0.03

    def __post_init__(self):
        if self.crop not in ("meso", "clip"):
            raise ValueError(f"crop must be 'meso' or 'clip', got {self.crop!r}")
        if self.size not in (128, 256):
            raise ValueError(f"size must be 128 or 256, got {self.size}")
        if self.init not in ("df", "f2f", "scratch"):
            raise ValueError(f"init must be 'df', 'f2f' or 'scratch', got {self.init!r}")
        if self.steps < 1 or self.batch < 2 or self.batch % 2:
            raise ValueError("steps >= 1 and an even batch >= 2 are required")
        if not (0 <= self.p_harvest <= 1 and 0 <= self.p_lower <= 1):
            raise ValueError("p_harvest and p_lower must lie in [0, 1]")


def augment(crop: np.ndarray, rng: np.random.Generator, config: TrainConfig = TrainConfig()) -> np.ndarray:
    """Label-blind augmentation of one crop: flip, shift and zoom, colour, resolution, JPEG.

    Parameters
    ----------
    crop : np.ndarray
        uint8 RGB ``(S, S, 3)``.
    rng : numpy.random.Generator
        The only source of randomness.
    config : TrainConfig
        Probabilities and ranges.

    Returns
    -------
    np.ndarray
        uint8 RGB ``(S, S, 3)``, a new array.

    Notes
    -----
    In this order: horizontal flip (p 0.5); translation up to ``shift`` of the side with a +-5 %
    zoom (reflected border); brightness and contrast +-10 % (``p_colour``); down-scaling to
    ``resize_range`` of the side with area interpolation and back up with bilinear or bicubic
    (``p_resize``: the harvest's reals run from 256 px talking heads to 1080p, its fakes likewise);
    JPEG re-compression at a quality in ``jpeg_quality`` (``p_jpeg``), last, as a platform would.
    """
    s = crop.shape[0]
    out = crop[:, ::-1] if rng.random() < 0.5 else crop
    dx, dy = rng.uniform(-config.shift, config.shift, 2) * s
    zoom = rng.uniform(0.95, 1.05)
    m = np.array([[zoom, 0, (1 - zoom) * s / 2 + dx], [0, zoom, (1 - zoom) * s / 2 + dy]])
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < config.p_colour:
        gain, bias = 1 + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1) * 255
        mean = out.mean()
        out = np.clip((out - mean) * gain + mean + bias, 0, 255).astype(np.uint8)
    if rng.random() < config.p_resize:
        side = max(8, int(round(s * rng.uniform(*config.resize_range))))
        small = cv2.resize(out, (side, side), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (s, s), interpolation=cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR)
    if rng.random() < config.p_jpeg:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out)


SBI_COLOR_SHIFT = 12.0  # 8-bit levels; pseudofakes' default 20 paints blotches a model spots at once


@functools.lru_cache(maxsize=1)
def _sbi_config():
    from deepscan.training.pseudofakes import PseudoFakeConfig

    return PseudoFakeConfig(color_shift=SBI_COLOR_SHIFT)


def _sbi_box(landmarks: np.ndarray | None, size: int, lower: bool, rng: np.random.Generator) -> np.ndarray:
    """The box ``(x0, y0, x1, y1)`` the blend mask is drawn in, from the crop's landmarks."""
    if landmarks is None or not np.isfinite(landmarks).all():
        # CLIP crop: the face box is the centre 1 / (1 + 2 * 0.25) of the crop
        lo, hi = size * 0.25 / 1.5, size * 1.25 / 1.5
        box = np.array([lo, lo, hi, hi])
        if lower:
            box[1] = (lo + hi) / 2 - 0.05 * (hi - lo)
    else:
        lm = landmarks
        eyes_y, mouth_y = (lm[0, 1] + lm[1, 1]) / 2, (lm[3, 1] + lm[4, 1]) / 2
        em = max(mouth_y - eyes_y, 4.0)
        ed = max(abs(lm[1, 0] - lm[0, 0]), 4.0)
        x0, x1 = min(lm[0, 0], lm[3, 0]) - 0.7 * ed, max(lm[1, 0], lm[4, 0]) + 0.7 * ed
        y0 = (lm[2, 1] - 0.1 * em) if lower else eyes_y - 0.8 * em
        box = np.array([x0, y0, x1, mouth_y + 0.9 * em])
    w, h = box[2] - box[0], box[3] - box[1]
    box = box + rng.uniform(-0.05, 0.05, 4) * np.array([w, h, w, h])
    return np.clip(box, 0, size - 1)


def sbi_fake(crop: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator, lower: bool = False) -> np.ndarray:
    """A self-blended image made from one real face crop.

    Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022: the face is
    blended with a colour-, blur- and geometry-jittered copy of itself through a soft deformed
    mask (:func:`deepscan.training.pseudofakes.self_blend`), leaving the blending boundary and the
    statistics mismatch that face swaps and re-enactments leave.

    Parameters
    ----------
    crop : np.ndarray
        uint8 RGB ``(S, S, 3)`` real face crop.
    landmarks : np.ndarray or None
        float ``(5, 2)`` landmarks in pixels of the crop (aligned crops), or None for a CLIP crop
        (face box assumed at the crop's centre).
    rng : numpy.random.Generator
        The only source of randomness.
    lower : bool
        Blend the lower face only (nose to chin), as a lip-sync model regenerates it.

    Returns
    -------
    np.ndarray
        uint8 RGB ``(S, S, 3)``, a new array.
    """
    from deepscan.training.pseudofakes import self_blend

    box = _sbi_box(landmarks, crop.shape[0], lower, rng)
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        box = _sbi_box(None, crop.shape[0], lower, rng)
    out, _ = self_blend(crop[None], box[None], rng, _sbi_config())
    return out[0]


# ------------------------------------------------------------------------------------------------
# Training and scoring
# ------------------------------------------------------------------------------------------------

_RESIZED: dict = {}  # (id of crops array, size) -> (crops array, resized copy); the array is kept to pin the id


def _resized(crops: np.ndarray, size: int) -> np.ndarray:
    if crops.shape[1] == size or not len(crops):
        return crops
    key = (id(crops), size)
    if key not in _RESIZED:
        small = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])
        _RESIZED[key] = (crops, small)
    return _RESIZED[key][1]


def _crops_of(sample: FaceSample, crop: str, size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The sample's crops of one kind, shrunk to ``size`` (landmarks scaled alike; None for CLIP crops)."""
    crops, lms = (sample.crops, sample.landmarks) if crop == "meso" else (sample.clip, None)
    if size is None or size == crops.shape[1]:
        return crops, lms
    scale = size / crops.shape[1]
    return _resized(crops, size), None if lms is None else (lms + 0.5) * scale - 0.5


class _Pool:
    """Draws (sample, frame) pairs: a key (group or system) uniformly, then a file, then a frame."""

    def __init__(self, samples: list[FaceSample], key):
        by = {}
        for s in samples:
            if s.n:
                by.setdefault(key(s), []).append(s)
        self.keys = sorted(by)
        self.by = by

    def __len__(self) -> int:
        return len(self.keys)

    def draw(self, rng: np.random.Generator) -> tuple[FaceSample, int]:
        files = self.by[self.keys[int(rng.integers(len(self.keys)))]]
        s = files[int(rng.integers(len(files)))]
        return s, int(rng.integers(s.n))


def new_model(init: str = "df", size: int = 128, models_dir: str | os.PathLike | None = None,
              data_root: str | os.PathLike | None = None):
    """A :class:`~deepscan.experts.face_forgery.FaceForgeryNet` from ``Meso4_DF.h5``/``Meso4_F2F.h5`` or random.

    Parameters
    ----------
    init : str
        ``"df"``, ``"f2f"`` or ``"scratch"``.
    size : int
        Input side, 128 or 256.
    models_dir : str or os.PathLike, optional
        Folder holding the Meso-4 files (default: the weights registry's lookup).
    data_root : str or os.PathLike, optional
        The harvest root: ``<data_root>/../models`` is looked in too.

    Raises
    ------
    ModelLoadingError
        If the Meso-4 weights cannot be found or read.
    """
    from deepscan.experts.face_forgery import FaceForgeryNet
    from deepscan.experts.meso import load_meso4

    if init == "scratch":
        return FaceForgeryNet(size).train()
    return FaceForgeryNet.from_meso4(load_meso4(_weights(f"meso4-{init}", models_dir, data_root)), size)


def fit(samples: list[FaceSample], config: TrainConfig = TrainConfig(), seed: int = 0, quiet: bool = True,
        model=None, label: str = "fit"):
    """Train the face-forgery net on the crops of ``samples`` (reals, harvest fakes) and SBI fakes.

    Parameters
    ----------
    samples : list of FaceSample
        Training files; at least one real with a face.
    config : TrainConfig
        Recipe.
    seed : int
        Seeds sampling, augmentation, self-blending, dropout and (``init="scratch"``) the
        initialisation: the same seed, samples and thread count give the same weights.
    quiet : bool
        No progress on stderr.
    model : FaceForgeryNet, optional
        Start from this net instead of :func:`new_model` ``(config.init)``.
    label : str
        Name in progress lines.

    Returns
    -------
    FaceForgeryNet
        In eval mode.

    Raises
    ------
    ValueError
        Without a real face crop in ``samples``.
    """
    import sys

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    reals = _Pool([s for s in samples if s.file.label == 0], key=lambda s: s.file.group)
    fakes = _Pool([s for s in samples if s.file.label == 1], key=lambda s: s.file.system)
    if not len(reals):
        raise ValueError("training needs at least one real file with a face crop")
    p_harvest = config.p_harvest if len(fakes) else 0.0
    model = model if model is not None else new_model(config.init, config.size)
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1, config.steps // 20)

    def lr_at(step):
        if step < warm:
            return config.lr * (step + 1) / warm
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, config.steps - warm)))

    half = config.batch // 2
    y = torch.cat([torch.zeros(half), torch.ones(half)])
    t0, running = time.time(), []
    for step in range(config.steps):
        batch = []
        for _ in range(half):
            s, i = reals.draw(rng)
            batch.append(augment(_crops_of(s, config.crop, config.size)[0][i], rng, config))
        for _ in range(half):
            if rng.random() < p_harvest:
                s, i = fakes.draw(rng)
                crop = _crops_of(s, config.crop, config.size)[0][i]
            else:
                s, i = reals.draw(rng)
                crops, lms = _crops_of(s, config.crop, config.size)
                crop = sbi_fake(crops[i], None if lms is None else lms[i], rng, lower=rng.random() < config.p_lower)
            batch.append(augment(crop, rng, config))
        from deepscan.experts.face_forgery import crops_to_tensor

        x = crops_to_tensor(np.stack(batch), config.size).contiguous(memory_format=torch.channels_last)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        logit, _ = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if not quiet and ((step + 1) % 50 == 0 or step + 1 == config.steps):
            print(f"{label}: step {step + 1}/{config.steps} loss {np.mean(running[-50:]):.3f} "
                  f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return model.to(memory_format=torch.contiguous_format).eval()


@torch.inference_mode()
def predict_files(model, samples: list[FaceSample], crop: str = "meso") -> np.ndarray:
    """File-level P(fake): the mean of the frame scores of each file.

    Parameters
    ----------
    model : FaceForgeryNet
        A trained net.
    samples : list of FaceSample
        Files to score.
    crop : str
        ``"meso"`` or ``"clip"``: which crops of the samples are scored.

    Returns
    -------
    np.ndarray
        float64 ``(len(samples),)``; NaN for a file without a face crop.
    """
    from deepscan.experts.face_forgery import FaceForgeryExpert

    expert = FaceForgeryExpert(model.eval())
    out = np.full(len(samples), np.nan)
    for k, s in enumerate(samples):
        if s.n:
            out[k] = float(expert.score(_crops_of(s, crop, model.size)[0])[0].mean())
    return out


# ------------------------------------------------------------------------------------------------
# Folds, metrics, the whole training run
# ------------------------------------------------------------------------------------------------

MAX_FOLDS = 5


def page_folds(samples: list[FaceSample], max_folds: int = MAX_FOLDS) -> np.ndarray:
    """Folds grouped by source page, each fake system's pages kept in one fold.

    Source pages (``group``) that share a fake system are merged into one block (Wav2Lip appears
    on two pages: both go to the same fold), so that a fold's model has seen neither the held-out
    pages nor the held-out systems: the out-of-fold score of a fake is a leave-generator-out score.
    Blocks with fakes are dealt one per fold (by name); real-only pages then go, largest first, to
    the fold with the fewest real files.

    Parameters
    ----------
    samples : list of FaceSample
        The files.
    max_folds : int
        Most folds (at least 2; fewer when there are fewer fake blocks, but never fewer than 2).

    Returns
    -------
    np.ndarray
        int ``(len(samples),)`` fold of each file, from 0; deterministic (no randomness).
    """
    parent = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    system_page = {}
    for s in samples:
        find(s.file.group)
        if s.file.label == 1:
            first = system_page.setdefault(s.file.system, s.file.group)
            parent[find(s.file.group)] = find(first)
    blocks = {}
    for s in samples:
        blocks.setdefault(find(s.file.group), []).append(s)
    fake_blocks = sorted(b for b, ss in blocks.items() if any(x.file.label for x in ss))
    real_blocks = sorted((b for b in blocks if b not in fake_blocks), key=lambda b: (-len(blocks[b]), b))
    k = max(2, min(max_folds, len(fake_blocks)))
    fold_of = {b: i % k for i, b in enumerate(fake_blocks)}
    reals = [sum(1 - x.file.label for b in fake_blocks if fold_of[b] == f for x in blocks[b]) for f in range(k)]
    for b in real_blocks:
        f = int(np.argmin(reals))
        fold_of[b] = f
        reals[f] += len(blocks[b])
    return np.array([fold_of[find(s.file.group)] for s in samples], int)


BOOTSTRAP_ROUNDS = 1000  # resamples of the out-of-fold AUC interval


def rank_auc(labels, scores) -> float:
    """ROC AUC as the Mann-Whitney statistic on mid-ranks (ties count half), for bootstrap loops.

    Equal to :func:`deepscan.evaluation.auc` (scikit-learn) to rounding, about a hundred times
    faster on a few hundred files; NaN when one class is absent.

    Parameters
    ----------
    labels : array-like of int
        ``(N,)`` 1 = fake, 0 = real.
    scores : array-like of float
        ``(N,)`` higher = more likely fake.

    Returns
    -------
    float
        In [0, 1], or NaN.
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels)
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, np.float64))
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _auc_table(samples: list[FaceSample], scores: np.ndarray) -> dict:
    """Out-of-fold AUCs: overall (with a page-grouped bootstrap interval), per kind, per fake system."""
    from deepscan.metrics import bootstrap_metric

    ok = ~np.isnan(scores)
    labels = np.array([s.file.label for s in samples])
    groups = np.array([s.file.group for s in samples])
    out = {"n_files": int(ok.sum()), "n_without_face": int((~ok).sum())}
    if labels[ok].min(initial=1) == labels[ok].max(initial=0):
        return out
    _, lo, hi = bootstrap_metric(labels[ok], scores[ok], groups[ok], metric=rank_auc, rounds=BOOTSTRAP_ROUNDS)
    out["auc"], out["auc_ci95"] = _r(auc(labels[ok], scores[ok])), [round(lo, 4), round(hi, 4)]
    kinds = np.array([s.file.kind for s in samples])
    out["per_kind"] = {}
    for kind in sorted(set(kinds)):
        m = ok & (kinds == kind)
        out["per_kind"][kind] = {"auc": _r(auc(labels[m], scores[m])), "n_real": int((m & (labels == 0)).sum()),
                                 "n_fake": int((m & (labels == 1)).sum())}
    systems = np.array([s.file.system for s in samples])
    real = ok & (labels == 0)
    out["per_system"] = {}
    for system in sorted(set(systems[labels == 1])):
        m = ok & (systems == system)
        both = real | m
        out["per_system"][system] = {
            "auc": _r(auc(labels[both], scores[both])), "n_fake": int(m.sum()), "n_real": int(real.sum()),
            "mean_p_fake": _r(float(scores[m].mean()) if m.any() else float("nan")),
            "caught_at_real_median": int((scores[m] > np.median(scores[real])).sum()),
        }
    out["mean_p_fake_real"] = _r(float(scores[real].mean()))
    return out


def _r(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def model_factory(config: TrainConfig, seed: int = 0, models_dir: str | os.PathLike | None = None,
                  data_root: str | os.PathLike | None = None):
    """The recipe's initial network, drawn once: each call returns a fresh copy of it.

    Every fold and the final fit start from the same weights (``config.init``: the published
    ``Meso4_DF`` or a seeded scratch initialisation), so the folds differ only in their data.

    Parameters
    ----------
    config : TrainConfig
    seed : int
        Seed of a scratch initialisation.
    models_dir, data_root : str or os.PathLike, optional
        Where ``Meso4_DF.h5`` is looked up (:func:`new_model`).

    Returns
    -------
    callable
        ``() -> FaceForgeryNet``.

    Raises
    ------
    ModelLoadingError
        If the published weights are wanted and cannot be found.
    """
    torch.manual_seed(seed)  # a "scratch" initialisation is drawn from the seed too
    init = new_model(config.init, config.size, models_dir, data_root)
    state = {k: v.clone() for k, v in init.state_dict().items()}

    def fresh():
        net = new_model("scratch", config.size)
        net.load_state_dict(state)
        return net

    return fresh


def cross_validate(samples: list[FaceSample], config: TrainConfig, seed: int = 0, quiet: bool = True,
                   folds: np.ndarray | None = None, label: str = "cv", make_model=None) -> tuple[np.ndarray, dict]:
    """Out-of-fold file scores (folds of :func:`page_folds`) and their AUC table.

    Parameters
    ----------
    samples : list of FaceSample
        All files.
    config : TrainConfig
        Recipe of every fold's model.
    seed : int
        Seed of every fold's training (fold ``k`` uses ``seed + k``).
    quiet : bool
        No progress on stderr.
    folds : np.ndarray, optional
        int ``(len(samples),)``; default :func:`page_folds`.
    label : str
        Name in progress lines.
    make_model : callable, optional
        ``() -> FaceForgeryNet``, the initial net of each fold (default :func:`new_model`).

    Returns
    -------
    scores : np.ndarray
        float64 ``(len(samples),)`` out-of-fold mean P(fake) per file (NaN without a face).
    table : dict
        ``auc`` with ``auc_ci95`` (bootstrap over pages), ``per_kind``, ``per_system`` (each fake
        system's files against all real files), ``folds``.
    """
    folds = page_folds(samples) if folds is None else folds
    scores = np.full(len(samples), np.nan)
    for k in range(int(folds.max()) + 1):
        train_set = [s for s, f in zip(samples, folds) if f != k]
        test = [i for i, f in enumerate(folds) if f == k]
        model = fit(train_set, config, seed=seed + k, quiet=quiet, label=f"{label} fold {k}",
                    model=make_model() if make_model is not None else None)
        scores[test] = predict_files(model, [samples[i] for i in test], config.crop)
    table = _auc_table(samples, scores)
    table["folds"] = {str(k): sorted({s.file.group for s, f in zip(samples, folds) if f == k})
                      for k in range(int(folds.max()) + 1)}
    return scores, table


def train(data_root: str | os.PathLike, output: str | os.PathLike, seed: int = 0, quiet: bool = False, *,
          config: TrainConfig | None = None, cache_dir: str | os.PathLike | None = None,
          models_dir: str | os.PathLike | None = None, evaluate: bool = True, threads: int | None = 1,
          cropper=None) -> dict:
    """Train the ``face_forgery`` expert on the harvest, judge it out of fold, and write its weights.

    Parameters
    ----------
    data_root : str or os.PathLike
        The harvest root (``video/`` and ``image/``, each with ``MANIFEST.tsv`` and
        ``<label>/<name>`` files); files absent on disk are skipped (the starter subset works).
    output : str or os.PathLike
        The ``.safetensors`` to write (:func:`deepscan.experts.face_forgery.save_face_expert`).
    seed : int
        Seed of everything random: the same seed, files and thread count give the same weights.
    quiet : bool
        No progress on stderr.
    config : TrainConfig, optional
        The recipe (default :class:`TrainConfig`, the shipped one).
    cache_dir : str or os.PathLike, optional
        Crop cache (default :func:`default_cache_dir`); the first run decodes every file (minutes).
    models_dir : str or os.PathLike, optional
        Folder of ``Meso4_DF.h5`` and the YuNet file (default: the weights registry's lookup, then
        ``<data_root>/../models``).
    evaluate : bool
        Run the out-of-fold evaluation (two regimes x the page folds) before the final fit.
    threads : int or None
        Torch threads while training (restored afterwards); ``None`` leaves them. Results are
        reproducible for a fixed count (1 by default).
    cropper : deepscan.faces.FaceCropper, optional
        Face cropper for files not yet cached (default YuNet, ``detect_every=2``).

    Returns
    -------
    dict
        ``files`` (counts), ``seconds``, ``output``, and with ``evaluate``:
        ``leave_generator_out`` (SBI + harvest fakes, per held-out system), ``out_of_fold``
        (overall, per kind), ``sbi_only`` (the same folds trained on self-blended images only).

    Raises
    ------
    FileNotFoundError
        If ``data_root`` has no video or image manifest.
    ValueError
        If no real face crop is found.
    ModelLoadingError
        If the Meso-4 or YuNet weights cannot be found.
    """
    import sys

    from deepscan.experts.face_forgery import save_face_expert

    t0 = time.time()
    config = config or TrainConfig()
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        files = face_files(data_root)
        samples = [s for s in load_samples(files, cache_dir, quiet, cropper, models_dir, data_root) if s.n]
        labels = [s.file.label for s in samples]
        if not samples or min(labels, default=1) == 1:
            raise ValueError(f"no real face crops found under {data_root}")
        if not quiet:
            print(f"face expert: {len(samples)} files with faces ({sum(labels)} fake), "
                  f"{sum(s.n for s in samples)} crops; {time.time() - t0:.0f} s", file=sys.stderr)
        metrics: dict = {"files": {"with_face": len(samples), "fake": int(sum(labels)),
                                   "crops": int(sum(s.n for s in samples)),
                                   "listed": len(files), "present": int(sum(f.exists for f, _ in files))}}
        fresh = model_factory(config, seed, models_dir, data_root)

        if evaluate and sum(labels) and len({s.file.group for s in samples}) > 1:
            folds = page_folds(samples)
            _, table = cross_validate(samples, config, seed, quiet, folds, "sbi+harvest", fresh)
            metrics["leave_generator_out"] = table.pop("per_system")
            metrics["out_of_fold"] = table
            sbi_config = dataclasses.replace(config, p_harvest=0.0)
            _, metrics["sbi_only"] = cross_validate(samples, sbi_config, seed, quiet, folds, "sbi-only", fresh)
        model = fit(samples, config, seed=seed, quiet=quiet, model=fresh(), label="final")
        metrics["seconds"] = round(time.time() - t0, 1)
        provenance = _provenance(samples, config, seed, metrics, data_root)
        save_face_expert(model, output, _config_dict(config), provenance)
        metrics["output"] = str(output)
        return metrics
    finally:
        torch.set_num_threads(old_threads)


def _config_dict(config: TrainConfig) -> dict:
    d = dataclasses.asdict(config)
    d["sbi"] = {"paper": "Shiohara & Yamasaki, Detecting Deepfakes with Self-Blended Images, CVPR 2022",
                "blend": "deepscan.training.pseudofakes.self_blend", "color_shift": SBI_COLOR_SHIFT,
                "regions": {"whole face": 1 - config.p_lower, "lower face (nose to chin)": config.p_lower}}
    d["frames_per_video"] = MAX_FRAMES
    d["seconds_per_video"] = MAX_SECONDS
    d["crop_format"] = CROP_FORMAT
    d["pooling"] = "file score = mean of the frame P(fake)"
    return d


def _provenance(samples: list[FaceSample], config: TrainConfig, seed: int, metrics: dict, data_root) -> dict:
    from collections import Counter

    from deepscan.weights import get_entry

    init = None if config.init == "scratch" else get_entry(f"meso4-{config.init}")
    return {
        "expert": "face_forgery",
        "architecture": "Meso-4 (Afchar et al., WIFS 2018), output negated to the logit of fake",
        "initialised_from": None if init is None else {"file": init.filename, "sha256": init.sha256,
                                                       "licence": init.licence, "url": init.url},
        "seed": seed,
        "torch": torch.__version__,
        "data_root": Path(data_root).name,
        "training_files": [
            {"name": s.file.path.name, "sha256": s.file.sha256, "kind": s.file.kind, "label": "fake" if s.file.label else "real",
             "system": s.file.system, "group": s.file.group, "licence": s.licence, "crops": s.n}
            for s in samples
        ],
        "licences": dict(sorted(Counter(s.licence for s in samples).items())),
        "systems": dict(sorted(Counter(s.file.system for s in samples if s.file.label).items())),
        "augmentations": {
            "both classes": ["horizontal flip p=0.5", f"shift <= {config.shift:g} of the side, zoom +-5 %",
                             f"brightness/contrast +-10 % p={config.p_colour:g}",
                             f"down/up-scale to {config.resize_range[0]:g}-{config.resize_range[1]:g} p={config.p_resize:g}",
                             f"JPEG quality {config.jpeg_quality[0]}-{config.jpeg_quality[1]} p={config.p_jpeg:g}"],
            "pseudo-fakes": f"self-blended images from real crops, lower face only p={config.p_lower:g}",
        },
        "metrics": {k: v for k, v in metrics.items() if k in ("leave_generator_out", "out_of_fold", "sbi_only", "files")},
        "judged_on_realworld": "never trained, tuned or calibrated on ../realworld",
    }
