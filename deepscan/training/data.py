"""Training data: labelled media files, split by source, and their cached window features.

A data set is either

- a **folder** holding ``real/`` and ``fake/`` (walked recursively); a fake's *kind* is the first
  sub-folder under ``fake/`` (``fake/blended_face/x.mp4`` -> ``"blended_face"``), else ``"fake"``;
- a **manifest CSV** with columns ``path,label[,kind][,split][,source]``, paths relative to the CSV
  (``deepscan synth`` writes one), or a folder holding ``manifest.csv``.

Splits (``train``/``val``/``test``) keep every *source* on one side, so that windows of one file, and
the fakes made from it, never sit on both sides. A manifest's ``split`` column is used as it is;
otherwise the split is drawn from a hash of the source (:func:`split_of`). A file's source is the
manifest's ``source`` column, else its file-name stem with a leading ``real_`` / ``fake_`` /
``<kind>_`` removed (``fake/av_offset/av_offset_0007.mp4`` and ``real/real_0007.mp4`` share ``0007``).

Features are extracted exactly as ``deepscan check`` does (:func:`deepscan.workers.prepare_windows`
then :meth:`deepscan.extractors.Extractors.encode_many`) and kept in a :class:`~deepscan.cache.FeatureCache`
keyed by the file's content hash, the extractor config hash, the sampling and face settings and,
for pseudo-fakes, the kind, variant seed and donor, so that epochs and reruns decode nothing twice.

With ``real_only=True`` the fakes are pseudo-fakes made from the real windows
(:mod:`deepscan.training.pseudofakes`): each real window gives ``variants`` seeded windows of every
kind; donors of swapped audio are other real files of the same split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..cache import FeatureCache, cache_key, default_cache_dir, file_sha256
from ..errors import DeepscanError
from ..extractors import Features
from ..faces import FaceCropper, FaceDetectorConfig
from ..labelled import source_of
from ..media import VISUAL_FPS, WINDOW_SECONDS, Window, iter_media_files, iter_windows, load_waveform, probe
from ..results import MODALITIES
from .pseudofakes import PSEUDO_FAKE_KINDS, PseudoFakeConfig, apply_pseudo_fake

__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "LABELS",
    "CORPUS_MARKER",
    "DataSetError",
    "MediaItem",
    "DataSet",
    "FileSample",
    "FeatureStore",
    "load_dataset",
    "split_of",
    "source_of",
    "make_synthetic_corpus",
    "build_samples",
]

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
LABELS = {"real": 0, "fake": 1}
MANIFEST_NAME = "manifest.csv"
CORPUS_MARKER = "corpus.json"  # written beside the manifest by `deepscan synth`: marks synthetic data
FEATURE_CACHE_VERSION = 1  # bump when what is cached per file changes


class DataSetError(DeepscanError, ValueError):
    """A data set folder or manifest that cannot be used (missing columns, labels, files, classes)."""

    reason = "bad data set"


@dataclass(frozen=True)
class MediaItem:
    """One labelled file of a data set.

    Attributes
    ----------
    path : Path
        Absolute path of the media file.
    label : str
        ``"real"`` or ``"fake"``.
    kind : str
        ``"real"`` for reals; the kind of manipulation for fakes (``"fake"`` when unknown).
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    source : str
        What the file was made from; files of one source share a split.
    """

    path: Path
    label: str
    kind: str
    split: str
    source: str

    @property
    def y(self) -> int:
        """1 for fake, 0 for real."""
        return LABELS[self.label]


@dataclass
class DataSet:
    """Labelled files with splits, and where they came from.

    Attributes
    ----------
    root : Path
        The data folder (or the manifest's folder).
    name : str
        The folder's name, recorded as ``trained_on`` unless the data is synthetic.
    items : list of MediaItem
    synthetic : bool
        True when ``root`` holds :data:`CORPUS_MARKER` (made by ``deepscan synth``).
    layout : str
        ``"folder"`` or ``"manifest"``.
    """

    root: Path
    name: str
    items: list
    synthetic: bool = False
    layout: str = "folder"
    marker: dict = field(default_factory=dict)

    def subset(self, split: str) -> list:
        """Items of ``split`` (``"all"`` for every item)."""
        if split == "all":
            return list(self.items)
        return [item for item in self.items if item.split == split]

    def describe(self) -> dict:
        """Counts of files per split, label and kind, JSON-ready.

        Returns
        -------
        dict
            ``{"root", "name", "layout", "synthetic", "files", "counts": {split: {label: n}},
            "kinds": {split: {kind: n}}}``.
        """
        counts: dict = {}
        kinds: dict = {}
        for item in self.items:
            counts.setdefault(item.split, {}).setdefault(item.label, 0)
            counts[item.split][item.label] += 1
            kinds.setdefault(item.split, {}).setdefault(item.kind, 0)
            kinds[item.split][item.kind] += 1
        return {"name": self.name, "layout": self.layout, "synthetic": self.synthetic,
                "files": len(self.items), "counts": counts, "kinds": kinds, "corpus": self.marker or None}


def split_of(source: str) -> str:
    """Hash-based split of a source name: stable across runs and machines, about 70/15/15.

    Parameters
    ----------
    source : str

    Returns
    -------
    str
        ``"train"``, ``"val"`` or ``"test"``.
    """
    u = int(hashlib.sha256(source.encode("utf-8")).hexdigest()[:8], 16) / 16**8
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"] else "test"


def _read_marker(root: Path) -> dict:
    marker = root / CORPUS_MARKER
    if not marker.is_file():
        return {}
    try:
        data = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataSetError(f"unreadable corpus marker: {error}", marker) from error
    return data if isinstance(data, dict) else {}


def _from_manifest(manifest: Path) -> DataSet:
    root = manifest.parent
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataSetError(f"cannot read the manifest: {error}", manifest) from error
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DataSetError("a manifest needs a header with at least the columns path,label", manifest)
    items = []
    for line, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip().lower()
        if label not in LABELS:
            raise DataSetError(f"line {line}: label must be 'real' or 'fake', got {row.get('label')!r}", manifest)
        path = (root / row["path"]).resolve()
        if not path.is_file():
            raise DataSetError(f"line {line}: no such file {row['path']!r} (paths are relative to the CSV)", manifest)
        kind = (row.get("kind") or "").strip() or ("real" if label == "real" else "fake")
        source = (row.get("source") or "").strip() or source_of(path, kind)
        split = (row.get("split") or "").strip().lower() or split_of(source)
        if split not in SPLITS:
            raise DataSetError(f"line {line}: split must be one of {SPLITS}, got {split!r}", manifest)
        items.append(MediaItem(path, label, kind, split, source))
    _check_sources(items, manifest)
    marker = _read_marker(root)
    return DataSet(root, root.resolve().name, items, bool(marker), "manifest", marker)


def _check_sources(items: list, where) -> None:
    sides: dict = {}
    for item in items:
        sides.setdefault(item.source, set()).add(item.split)
    crossing = sorted(s for s, splits in sides.items() if len(splits) > 1)
    if crossing:
        raise DataSetError(f"sources on more than one split (windows would leak): {crossing[:5]}", where)


def _from_folder(root: Path) -> DataSet:
    items = []
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            continue
        for path in iter_media_files([folder], recursive=True):
            path = Path(path).resolve()
            rel = path.relative_to(folder.resolve())
            kind = "real" if label == "real" else (rel.parts[0] if len(rel.parts) > 1 else "fake")
            source = source_of(path, kind)
            items.append(MediaItem(path, label, kind, split_of(source), source))
    marker = _read_marker(root)
    return DataSet(root, root.resolve().name, items, bool(marker), "folder", marker)


def load_dataset(data: str | os.PathLike, real_only: bool = False) -> DataSet:
    """Read a data set from a folder (``real/`` + ``fake/``, or with ``manifest.csv``) or a manifest CSV.

    Parameters
    ----------
    data : str or os.PathLike
        The folder or the ``.csv`` manifest.
    real_only : bool
        Keep only the real files (fakes are then made by pseudo-fakes); ``fake/`` may be absent.

    Returns
    -------
    DataSet

    Raises
    ------
    DataSetError
        When the path is missing, the manifest is malformed, a source crosses splits, no real file is
        found, or (without ``real_only``) no fake file is found.
    """
    path = Path(data)
    if path.is_file():
        dataset = _from_manifest(path)
    elif (path / MANIFEST_NAME).is_file():
        dataset = _from_manifest(path / MANIFEST_NAME)
    elif path.is_dir():
        if not (path / "real").is_dir():
            raise DataSetError("a data folder needs real/ (and fake/, unless --real-only) or a manifest.csv", path)
        dataset = _from_folder(path)
    else:
        raise DataSetError("no such data folder or manifest", path)
    if real_only:
        dataset.items = [item for item in dataset.items if item.label == "real"]
    n_real = sum(item.label == "real" for item in dataset.items)
    n_fake = len(dataset.items) - n_real
    if n_real == 0:
        raise DataSetError("no real media found", path)
    if not real_only and n_fake == 0:
        raise DataSetError("no fake media found; add fake/ or train with --real-only (pseudo-fakes)", path)
    return dataset


def make_synthetic_corpus(out_dir: str | os.PathLike, clips: int = 60, seed: int = 1, progress=None) -> Path:
    """Write a synthetic corpus (:func:`deepscan.training.corpus.make_corpus`) and mark it as synthetic.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write into.
    clips : int
        Clips, real and fake.
    seed : int
        Corpus seed.
    progress : callable(done, total), optional

    Returns
    -------
    Path
        The manifest; :data:`CORPUS_MARKER` beside it records the generator, clips and seed, so a
        detector trained on it is labelled ``trained_on="synthetic"``.

    Raises
    ------
    ValueError
        As ``make_corpus``.
    """
    from .corpus import make_corpus

    manifest = make_corpus(out_dir, clips=clips, seed=seed, progress=progress)
    marker = {"generator": "deepscan synth", "synthetic": True, "clips": int(clips), "seed": int(seed)}
    (Path(out_dir) / CORPUS_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return manifest


@dataclass
class FileSample:
    """The features of one file (or one pseudo-fake made from a file), window by window.

    Attributes
    ----------
    path : str
        The media file (for pseudo-fakes, the real file they were made from).
    y : int
        1 fake, 0 real.
    kind : str
        ``"real"`` or the kind of fake.
    split : str
    source : str
    windows : list of Features
        One per window, in order.
    """

    path: str
    y: int
    kind: str
    split: str
    source: str
    windows: list


def _to_tensors(windows: Sequence[Features]) -> dict:
    out = {}
    for i, f in enumerate(windows):
        for m in MODALITIES:
            out[f"{i}.{m}"] = getattr(f, m).float()
            out[f"{i}.{m}_times"] = getattr(f, f"{m}_times_s").float()
    return out


def _from_tensors(tensors: dict, n: int) -> list:
    return [Features(*[tensors[f"{i}.{key}"] for m in MODALITIES for key in (m, f"{m}_times")]) for i in range(n)]


class FeatureStore:
    """Extracts window features as ``check`` does and caches them on disk.

    Parameters
    ----------
    extractors : deepscan.extractors.Extractors
        The frozen encoders.
    cache : FeatureCache or str or os.PathLike, optional
        The cache, or where to keep it; default :func:`deepscan.cache.default_cache_dir`.
    window_s, visual_fps : float
        Sampling (s, fps); recorded in detector checkpoints.
    face_config : FaceDetectorConfig, optional
        Face detector (Haar by default).
    pseudo_config : PseudoFakeConfig, optional
        Parameter ranges of the pseudo-fakes.

    Attributes
    ----------
    encoded : int
        Windows passed through the encoders by this store (cache misses).
    """

    def __init__(self, extractors, cache=None, window_s: float = WINDOW_SECONDS, visual_fps: float = VISUAL_FPS,
                 face_config: FaceDetectorConfig | None = None, pseudo_config: PseudoFakeConfig | None = None):
        self.extractors = extractors
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache or default_cache_dir())
        self.window_s, self.visual_fps = float(window_s), float(visual_fps)
        self.face_config = face_config or FaceDetectorConfig()
        from .. import scanner

        # the face cropper as `check` builds it, so training sees the crops scanning will see
        self.cropper = FaceCropper(self.face_config, detect_every=int(getattr(scanner, "DETECT_EVERY", 1)))
        self.pseudo_config = pseudo_config or PseudoFakeConfig()
        self.encoded = 0
        self._hashes: dict = {}

    @property
    def sampling(self) -> dict:
        """``{"window_s", "visual_fps"}``: what a checkpoint records and ``check`` reads back."""
        return {"window_s": self.window_s, "visual_fps": self.visual_fps}

    def _settings(self) -> dict:
        face = {"backend": self.face_config.backend, "max_side": self.face_config.max_side,
                "min_neighbors": self.face_config.min_neighbors, "score": self.face_config.score_threshold,
                "model": os.path.basename(str(self.face_config.model_path or "")),
                "crop": self.cropper.crop_size, "margin": self.cropper.margin,
                "detect_every": self.cropper.detect_every}
        return {"v": FEATURE_CACHE_VERSION, "extractors": self.extractors.config_hash(), **self.sampling, "face": face}

    def _sha(self, path) -> str:
        key = os.fspath(path)
        stat = os.stat(key)
        stamp = (key, stat.st_size, stat.st_mtime_ns)
        if stamp not in self._hashes:
            self._hashes[stamp] = file_sha256(key)
        return self._hashes[stamp]

    def _cached(self, key: str, compute: Callable[[], list]) -> list:
        hit = self.cache.get(key)
        if hit is not None:
            tensors, meta = hit
            return _from_tensors(tensors, int(meta["windows"]))
        windows = compute()
        self.cache.put(key, _to_tensors(windows), {"windows": len(windows)})
        return windows

    def _encode(self, prepared: list) -> list:
        prepared = [p for p in prepared if len(p.crops) or p.waveform.shape[0]]
        self.encoded += len(prepared)
        return self.extractors.encode_many([(p.crops, p.frame_times_s, p.waveform, p.start_s) for p in prepared])

    def features(self, path: str | os.PathLike) -> list:
        """Window features of a file, from the cache or extracted as ``check`` does.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        list of Features
            One per scorable window; empty when the file has nothing to score.

        Raises
        ------
        DeepscanError
            The typed media errors of :func:`deepscan.media.probe` / ``iter_windows``.
        """
        from ..workers import prepare_windows

        key = cache_key(self._sha(path), **self._settings())

        def compute():
            info = probe(path)
            return self._encode(list(prepare_windows(path, info, self.cropper, self.window_s, self.visual_fps)))

        return self._cached(key, compute)

    def pseudo_fakes(self, path: str | os.PathLike, kinds: Sequence[str], variants: int, seed: int,
                     donor: str | os.PathLike | None = None) -> dict:
        """Features of pseudo-fakes made from a real file: ``variants`` seeded versions of each kind.

        Each window of the file is manipulated with :func:`~deepscan.training.pseudofakes.apply_pseudo_fake`
        (the face boxes of blended faces come from the face tracker), re-cropped where the frames
        changed and re-encoded where the audio changed. A window the kind cannot apply to (no
        audio for an audio kind, no frames for a visual one) is left out of that pseudo-fake.

        Parameters
        ----------
        path : str or os.PathLike
            A real media file.
        kinds : sequence of str
            Out of :data:`~deepscan.training.pseudofakes.PSEUDO_FAKE_KINDS`.
        variants : int
            Seeded versions per kind (>= 1).
        seed : int
            Seed of the variants; with the file hash it seeds every draw.
        donor : str or os.PathLike, optional
            Another real file whose audio is swapped in; ``swapped_audio`` is skipped without one.

        Returns
        -------
        dict
            ``(kind, variant) -> list of Features`` (an empty list when no window applies).
        """
        sha = self._sha(path)
        donor_sha = self._sha(donor) if donor is not None else None
        settings = self._settings()
        pcfg = json.dumps({k: list(v) if isinstance(v, tuple) else v
                           for k, v in vars(self.pseudo_config).items()}, sort_keys=True)
        out, todo = {}, []
        for kind in kinds:
            if kind == "swapped_audio" and donor is None:
                continue
            for v in range(variants):
                key = cache_key(sha, **settings, pseudo=kind, variant=v, seed=int(seed), pseudo_config=pcfg,
                                donor=donor_sha if kind == "swapped_audio" else None)
                hit = self.cache.get(key)
                if hit is not None:
                    tensors, meta = hit
                    out[(kind, v)] = _from_tensors(tensors, int(meta["windows"]))
                else:
                    todo.append((kind, v, key))
        if todo:
            made = self._make_pseudo(path, sha, [(k, v) for k, v, _ in todo], seed, donor)
            for kind, v, key in todo:
                self.cache.put(key, _to_tensors(made[(kind, v)]), {"windows": len(made[(kind, v)])})
                out[(kind, v)] = made[(kind, v)]
        return out

    def _make_pseudo(self, path, sha: str, wanted: list, seed: int, donor) -> dict:
        from ..workers import PreparedWindow

        info = probe(path)
        donor_wave = load_waveform(donor) if donor is not None else None
        trackers = {kv: self.cropper.new_tracker() for kv in wanted if kv[0] == "blended_face"}
        real_tracker = self.cropper.new_tracker()
        made: dict = {kv: [] for kv in wanted}
        file_seed = int(sha[:8], 16)
        for window in iter_windows(path, window_s=self.window_s, visual_fps=self.visual_fps, info=info):
            faces = real_tracker.crop(window.frames) if window.has_frames else None
            real = self._prepared(window, faces)
            real_features = None
            for kind, v in wanted:
                rng = np.random.default_rng([int(seed), file_seed, PSEUDO_FAKE_KINDS.index(kind), v, window.index])
                visual = kind == "blended_face"
                if (visual and not window.has_frames) or (not visual and not window.has_usable_audio):
                    continue
                boxes = faces.boxes if faces is not None else None
                if boxes is not None and np.isnan(boxes).any():
                    boxes = None if np.isnan(boxes).all() else _fill_boxes(boxes)
                fake = apply_pseudo_fake(kind, window, rng, donor=donor_wave, config=self.pseudo_config, boxes=boxes)
                if visual:
                    crops = trackers[(kind, v)].crop(fake.frames)
                    prepared = PreparedWindow(window.index, window.start_s, window.end_s, crops.crops,
                                              window.frame_times_s, real.waveform)
                    made[(kind, v)].append(self._encode([prepared])[0])
                else:
                    if real_features is None:
                        real_features = self._encode([real])[0] if len(real.crops) or real.waveform.size else None
                    (audio, times), = self.extractors.encode_audio([fake.waveform.astype(np.float32)])
                    self.encoded += 1
                    base = real_features or Features()
                    made[(kind, v)].append(Features(base.image, base.image_times_s, audio, times,
                                                    base.video, base.video_times_s))
        return made

    def _prepared(self, window: Window, faces):
        from ..media import MIN_AUDIO_SAMPLES
        from ..workers import PreparedWindow

        crops = faces.crops if faces is not None else np.zeros((0, self.cropper.crop_size, self.cropper.crop_size, 3), np.uint8)
        waveform = window.waveform if window.waveform.shape[0] >= MIN_AUDIO_SAMPLES else window.waveform[:0]
        return PreparedWindow(window.index, window.start_s, window.end_s, crops, window.frame_times_s, waveform)


def _fill_boxes(boxes: np.ndarray) -> np.ndarray:
    """Fill frames without a face box (NaN rows) with the nearest frame's box."""
    boxes = boxes.copy()
    good = np.flatnonzero(~np.isnan(boxes).any(axis=1))
    for t in np.flatnonzero(np.isnan(boxes).any(axis=1)):
        boxes[t] = boxes[good[np.argmin(np.abs(good - t))]]
    return boxes


def build_samples(
    dataset: DataSet,
    store: FeatureStore,
    splits: Sequence[str] = SPLITS,
    real_only: bool = False,
    kinds: Sequence[str] = PSEUDO_FAKE_KINDS,
    variants: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    augment_splits: Sequence[str] = (),
) -> list:
    """Features of every file of the chosen splits, plus pseudo-fakes of the reals when ``real_only``.

    Pseudo-fakes of the reals can also be added to labelled fakes (``augment_splits``): the detector
    then sees many more manipulations of each kind than a small labelled set holds, the way SBI
    trains on self-blended images made on the fly (Shiohara & Yamasaki, CVPR 2022).

    Parameters
    ----------
    dataset : DataSet
    store : FeatureStore
    splits : sequence of str
        Splits to load (``SPLITS`` names).
    real_only : bool
        Make fakes from the reals (each real file gives ``variants`` pseudo-fakes of each kind).
    kinds : sequence of str
        Pseudo-fake kinds made.
    variants : int
        Seeded versions per kind and real file.
    seed : int
        Seed of the pseudo-fakes.
    progress : callable(done, total), optional
        Called after each file.
    augment_splits : sequence of str
        Splits whose real files also give pseudo-fakes when the data has labelled fakes (with
        ``real_only`` every split does).

    Returns
    -------
    list of FileSample
        Files with no scorable window are left out; pseudo-fakes carry their real file's path,
        split and source, ``y = 1`` and their kind.

    Raises
    ------
    DeepscanError
        When a file cannot be decoded (the message names it).
    ValueError
        When a kind is unknown or ``variants < 1``.
    """
    unknown = [k for k in kinds if k not in PSEUDO_FAKE_KINDS]
    if unknown:
        raise ValueError(f"unknown pseudo-fake kinds {unknown}; expected some of {PSEUDO_FAKE_KINDS}")
    if variants < 1:
        raise ValueError(f"variants must be >= 1, got {variants}")
    items = [item for item in dataset.items if item.split in splits]
    samples = []
    for done, item in enumerate(items, start=1):
        windows = store.features(item.path)
        if windows:
            samples.append(FileSample(str(item.path), item.y, item.kind, item.split, item.source, windows))
        if item.label == "real" and (real_only or item.split in augment_splits):
            same = [o for o in dataset.items if o.label == "real" and o.split == item.split and o.source != item.source]
            donor = same[(items.index(item) + 1) % len(same)].path if same else None
            for (kind, v), fake_windows in store.pseudo_fakes(item.path, kinds, variants, seed, donor).items():
                if fake_windows:
                    samples.append(FileSample(str(item.path), 1, kind, item.split, item.source, fake_windows))
        if progress is not None:
            progress(done, len(items))
    return samples
