"""Scanning: files -> windows -> face crops -> features -> detector -> one result per file.

:class:`Scanner` loads the encoders and the detector once and scans many files; :func:`scan` is
the one-call form. Windows of many files are batched into the encoders and the detector, per-file
failures become error results, and results come back in the order the files were given.

The pipeline::

    main process: sha256 -> cache hit? -> features -------------------------------\
                       | miss                                                      |
    worker processes (spawn, started on the first miss)                            v
    probe -> decode window -> face crops -> bounded queue -> batch across windows and files
                                             -> encoders -> detector (batched across files)
                                             -> results (in input order) -> feature cache

Decoding and cropping (OpenCV, single-threaded) overlap the encoders; the queue holds at most
:data:`QUEUE_WINDOWS` decoded windows, so a file of any length streams in bounded memory. A file
whose content hash, encoder config, sampling and face detector match a cache entry is neither
decoded nor encoded again: its per-window features are read back in the main process and only
the detector runs, so a fully cached rescan starts no worker at all. A worker that dies turns the
file it was decoding into an error result ("decoder crashed") and is replaced, at most
:data:`MAX_WORKER_RESTARTS` times per scan; the scan goes on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from deepscan.aggregate import FileState, apply_provenance, build_fusion_result, build_result, describe_detector
from deepscan.cache import FeatureCache, cache_key, file_sha256
from deepscan.errors import (
    DeepscanError, DetectorNotConfiguredError, DetectorNotFoundError, EncodingError, MediaDecodeError,
)
from deepscan.faces import FaceCropper, FaceDetectorConfig
from deepscan.media import DEFAULT_LIMITS, VISUAL_FPS, WINDOW_SECONDS, MediaInfo, MediaLimits, iter_media_files, probe
from deepscan.results import MODALITIES, ScanResult, WindowScore, logit_to_p
from deepscan.workers import WORKER_POLL_S, DecodeJob, PreparedWindow, WorkerPool, error_from, prepare_messages

DEFAULT_BATCH_FRAMES = 64  # face crops per image-encoder batch (windows are batched up to this)
THUMBNAILS_PER_FILE = 3  # thumbnails of the most suspicious windows kept per file
DETECTOR_BATCH = 256  # windows per detector call (the detector is small)
# default --workers: one decoding process per this many cores. On 2 cores, 1 worker + 1 torch thread
# (38 s on the quick bench corpus) matched 2 workers + 1 thread (33-43 s) with one process less.
CORES_PER_WORKER = 2
# Default torch threads: every core but one per two decoding workers. A worker is busy ~22% of a
# cold scan (py-spy, BENCHMARKS.md), so the encoders share its core: on the idle 2-core machine,
# quick bench corpus, 1 worker + 2 threads took 17.9 / 18.3 s against 24.0 / 25.5 s for 1 thread
# (alternated, one run). Under heavy outside load (load average 3-7) 1 thread had won, 38 s vs 53 s.
# Face detector runs on every 2nd sampled frame, the track held in between: it halved the Haar cost
# with a face still found on every frame of the sample and synthetic videos (see BENCHMARKS.md).
DETECT_EVERY = 2
CACHE_FORMAT = 3  # bump when what the scanner stores in the feature cache changes
# A file's features are held until the file is done, then stored in one cache entry. Beyond this many
# windows (10 minutes at 4 s) a file is not cached, so that memory stays bounded by the window, not by
# the file: an hour of full-size features would be ~210 MB, held, packed and serialised at the end.
MAX_CACHED_WINDOWS = 150
DETECTOR_ENV = "DEEPSCAN_DETECTOR"  # environment variable naming the default detector checkpoint

NO_DETECTOR_HELP = (
    "no detector configured: deepscan will not invent a verdict. Pass --detector FILE.safetensors "
    f"(or set {DETECTOR_ENV}). To make a demo detector from synthetic data: `deepscan demo`, or "
    "`deepscan synth DATA && deepscan train DATA --encoders debug -o detector.safetensors`; "
    "to train on your own media: `deepscan train DATA -o detector.safetensors` "
    "(DATA holding real/ and fake/, or real/ alone with --real-only)."
)


def total_media_seconds(paths, recursive: bool = True, skip: Callable[[str], bool] | None = None,
                        limits: MediaLimits = DEFAULT_LIMITS) -> float:
    """Sum of the probed durations of the files a scan will cover: the progress bar's total.

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        As :meth:`Scanner.scan`.
    recursive : bool
        Walk into subdirectories.
    skip : callable(path) -> bool, optional
        Files that will not be scanned.
    limits : MediaLimits
        Probing limits.

    Returns
    -------
    float
        Seconds; files that cannot be probed and still images count 0.
    """
    total = 0.0
    for path in iter_media_files(paths, recursive=recursive, on_error=lambda p, e: None):
        if skip is not None and skip(str(path)):
            continue
        try:
            total += probe(path, limits).duration_s or 0.0
        except Exception:
            continue
    return total


def configured_detector(detector=None):
    """The detector checkpoint a scan uses: the one given, else ``$DEEPSCAN_DETECTOR``, else the shipped one.

    Parameters
    ----------
    detector : str or os.PathLike or None
        A checkpoint path (or, for a Ray scan, a URI) given by the caller.

    Returns
    -------
    str or os.PathLike
        ``detector`` when given; else :data:`DETECTOR_ENV`'s value when set; else the cue-fusion
        detector inside the package (:data:`deepscan.model.fusion.DEFAULT_PATH`).

    Raises
    ------
    DetectorNotFoundError
        When the checkpoint given (or named by :data:`DETECTOR_ENV`) is a local path that does not exist.
    DetectorNotConfiguredError
        When none of the three exists (an installation without the packaged checkpoint).
    """
    from deepscan.model.fusion import DEFAULT_PATH

    named = detector if detector is not None else os.environ.get(DETECTOR_ENV) or None
    if named is not None and "://" not in os.fspath(named) and not os.path.exists(named):
        source = (f"${DETECTOR_ENV}" if detector is None or os.fspath(detector) == os.environ.get(DETECTOR_ENV)
                  else "--detector / detector")
        raise DetectorNotFoundError(
            f"the detector checkpoint {os.fspath(named)} (from {source}) does not exist. Give --detector (or "
            f"{DETECTOR_ENV}) an existing .safetensors file, or leave both unset for the detector that ships")
    detector = named
    if detector is None and DEFAULT_PATH.is_file():
        detector = DEFAULT_PATH
    if detector is None:
        raise DetectorNotConfiguredError(NO_DETECTOR_HELP)
    return detector


def default_workers(cores: int | None = None) -> int:
    """Decoding processes by default: one per :data:`CORES_PER_WORKER` cores, at least 1 (measured on 2 cores only).

    Parameters
    ----------
    cores : int, optional
        CPU cores available (default: this process's CPU affinity).
    """
    cores = cores or _cores()
    return max(1, cores // CORES_PER_WORKER)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Scanner:
    """Frozen encoders, face cropper and a detector checkpoint, loaded once to scan many files.

    Decoding and face cropping run in ``workers`` processes while the encoders run here; windows
    of several files are batched into the encoders and the detector; features of each file are
    kept in a :class:`~deepscan.cache.FeatureCache` so that a rescan of an unchanged file skips
    decoding and encoding (the detector still runs: it is cheap and may have changed).

    Parameters
    ----------
    detector : str or os.PathLike or None
        Detector checkpoint (``.safetensors``); ``None`` reads ``$DEEPSCAN_DETECTOR``.
    encoders : str or None
        ``"default"``, ``"debug"`` or a directory (see :func:`deepscan.hub.resolve_encoders`);
        ``None``: the encoders the detector's checkpoint was trained on.
    image_encoder, audio_encoder : str, optional
        Per-encoder overrides: a hub id or a local directory.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    precision : str
        ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"`` for the encoders (see :mod:`deepscan.precision`).
    face_config : FaceDetectorConfig, optional
        Face detector; by default YuNet where its weights are present (or can be fetched), else
        OpenCV's Haar cascade (:func:`default_face_config`). Every result names the one that ran.
    batch_frames : int
        Face crops per image-encoder batch; windows of several files are batched together.
    limits : MediaLimits
        Decoding limits.
    workers : int or None
        Decoding processes; ``0`` decodes in this process; ``None`` picks :func:`default_workers`.
    cache : FeatureCache, str, os.PathLike, bool or None
        The feature cache: an instance, a directory / SQLite file, ``None`` or ``True`` for
        :func:`deepscan.cache.default_cache_dir`, ``False`` for no cache.
    threads : int or None
        Torch threads for the encoders; ``None``: the cores less one per two decoding workers, at
        least 1: 2 threads beside 1 worker on 2 cores.
    experts : str or sequence of str
        ``"auto"`` (AASIST, Meso-4 and the lip-sync cue; an expert whose weights cannot be had is
        reported absent with the reason), ``"none"``, or cue names that must all load (see
        :func:`deepscan.experts.runner.resolve_experts`).
    models_dir : str or os.PathLike, optional
        Folder of weight files (default ``$DEEPSCAN_MODELS_DIR``; see :mod:`deepscan.weights`).

    Raises
    ------
    ModelsDirNotFoundError
        When ``models_dir`` (or ``$DEEPSCAN_MODELS_DIR``) names a folder that does not exist.
    DetectorNotConfiguredError
        When no detector is given or configured.
    CheckpointError, CheckpointMismatchError
        When the checkpoint is bad or was trained on other encoders.
    ModelLoadingError
        When an encoder cannot be loaded (offline and not cached).
    ValueError
        When ``workers`` or ``threads`` is negative.
    """

    def __init__(
        self,
        detector: str | os.PathLike | None = None,
        encoders: str | None = None,
        image_encoder: str | None = None,
        audio_encoder: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        face_config: FaceDetectorConfig | None = None,
        batch_frames: int = DEFAULT_BATCH_FRAMES,
        limits: MediaLimits = DEFAULT_LIMITS,
        workers: int | None = None,
        cache=None,
        threads: int | None = None,
        experts="auto",
        models_dir: str | os.PathLike | None = None,
    ):
        from deepscan.experts.runner import Experts, resolve_experts
        from deepscan.extractors import load_extractors
        from deepscan.hub import encoders_for_checkpoint
        from deepscan.model import load_detector, read_metadata

        from deepscan.model.fusion import FusionDetector, is_fusion_checkpoint
        from deepscan.weights import models_dir as local_models_dir

        import multiprocessing

        if getattr(multiprocessing.current_process(), "_inheriting", False):  # a spawned worker runs the script again
            raise RuntimeError(
                "a deepscan Scanner is being made while a decoding worker process starts: the script that scans "
                "must start the scan under `if __name__ == \"__main__\":` (each worker imports the script again), "
                "or pass workers=0")
        local_models_dir(models_dir)  # a models folder that is not there is a set-up mistake: refused at once
        detector = configured_detector(detector)
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.device = resolve_device(device)
        self.fusion = self.extractors = self.model = self.checkpoint = None
        if is_fusion_checkpoint(detector):  # cues only: no encoders, no cross-modal model
            self.fusion = FusionDetector.load(detector)
            sampling = {}
        else:
            checkpoint = read_metadata(detector)  # fails fast on a bad file, before loading encoders
            specs = encoders_for_checkpoint(checkpoint, encoders, image=image_encoder, audio=audio_encoder)
            expected = {m: {"id": s.id, "dim": s.dim} for m, s in specs.items()}
            from deepscan.model.checkpoint import check_encoders

            check_encoders(checkpoint, expected)
            self.extractors = load_extractors(specs, device=self.device, precision=precision)
            self.model, self.checkpoint = load_detector(detector, expected_encoders=expected, device=self.device)
            self.model.eval()
            sampling = self.checkpoint.sampling or {}
        self.window_s = float(sampling.get("window_s", WINDOW_SECONDS))
        self.visual_fps = float(sampling.get("visual_fps", VISUAL_FPS))
        self.problems: dict = {}  # model name -> why it is missing (said once per scan by the CLI)
        self.face_config = (face_config if face_config is not None
                            else default_face_config(models_dir, problems=self.problems))
        self.cropper = FaceCropper(self.face_config, detect_every=DETECT_EVERY)
        self.experts_config = resolve_experts(experts, models_dir)
        self.problems.update(self.experts_config.problems)
        self.experts = Experts(self.experts_config) if self.experts_config.cues else None
        self.batch_frames = int(batch_frames)
        self.limits = limits
        self.detector_info = (self.fusion.describe() if self.fusion is not None
                              else describe_detector(self.checkpoint, self.extractors.is_debug))
        self.workers = default_workers() if workers is None else int(workers)
        self.threads = threads if threads is not None else max(1, _cores() - self.workers // 2)
        if cache is None or cache is True:
            cache = FeatureCache()
        elif cache is False:
            cache = None
        elif not isinstance(cache, FeatureCache):
            cache = FeatureCache(cache)
        self.cache = cache
        self._pool: WorkerPool | None = None

    # -- identity of the features -----------------------------------------------------------------

    def cache_config(self) -> dict:
        """Everything besides the file's bytes that shapes its cached features (part of the key).

        Returns
        -------
        dict
            Cache format, extractor config hash, ``window_s``, ``visual_fps``, face detector
            settings and crop size.
        """
        face = self.face_config or FaceDetectorConfig()
        face = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in vars(face).items()}
        if face.get("model_path"):
            try:
                face["model_sha256"] = file_sha256(face["model_path"])
            except OSError:
                pass
        extractors = self.extractors.config_hash() if self.extractors is not None else "none"
        return {"format": CACHE_FORMAT, "extractors": extractors, "window_s": self.window_s,
                "visual_fps": self.visual_fps, "faces": face, "detect_every": self.cropper.detect_every,
                "crop_size": self.cropper.crop_size,
                "detector_name": self.cropper.detector_name, "experts": self.experts_config.key()}

    def _job(self) -> DecodeJob:
        return DecodeJob(self.window_s, self.visual_fps, self.limits, self.face_config, self.cropper.detect_every,
                         str(self.cache.path) if self.cache is not None else None,
                         self.cache_config() if self.cache is not None else {}, self.experts_config)

    # -- scanning -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the decoding workers (they are restarted by the next :meth:`scan`)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if self._pool is not None:
                self._pool.close(terminate=True)
        except Exception:
            pass

    def scan(
        self,
        paths,
        recursive: bool = True,
        skip: Callable[[str], bool] | None = None,
        on_progress: Callable[[str, float], None] | None = None,
        workers: int | None = None,
    ) -> Iterator[ScanResult]:
        """Scan files and directories, yielding one result per file in the order found.

        Parameters
        ----------
        paths : str, os.PathLike or iterable of them
            Files and directories (walked with :func:`deepscan.media.iter_media_files`).
        recursive : bool
            Walk into subdirectories.
        skip : callable(path) -> bool, optional
            Files for which it returns True are not scanned (``--resume``).
        on_progress : callable(path, media_seconds), optional
            Called as windows are scored, with the media seconds just covered.
        workers : int, optional
            Override of the scanner's ``workers`` for this call (``0``: in this process).

        Yields
        ------
        ScanResult
            In input order. A file that fails is an error result; the others go on. If the
            generator is interrupted (Ctrl-C) the workers are terminated.
        """
        workers = self.workers if workers is None else int(workers)
        states: list[FileState] = []
        unreadable: list[tuple[Path, DeepscanError]] = []
        for path in iter_media_files(paths, recursive=recursive, on_error=lambda p, e: unreadable.append((p, e))):
            while unreadable:
                p, e = unreadable.pop(0)
                states.append(FileState(str(p), error=e, done=True))
            if skip is not None and skip(str(path)):
                continue
            states.append(FileState(str(path)))
        for p, e in unreadable:
            states.append(FileState(str(p), error=e, done=True))
        todo = [i for i, s in enumerate(states) if not s.done]
        if len(todo) <= 1:
            workers = 0  # starting a process costs more than it saves on one file
        torch.set_num_threads(self.threads if workers else _cores())
        source = self._source(states, todo, workers)
        finished = False
        try:
            yield from self._consume(states, source, on_progress)
            finished = True
        finally:
            if not finished and self._pool is not None:  # Ctrl-C or an abandoned generator
                self._pool.close(terminate=True)
                self._pool = None

    def scan_file(self, path: str | os.PathLike) -> ScanResult:
        """Scan one file (in this process).

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        ScanResult
        """
        return next(iter(self.scan([path], recursive=False, workers=0)))

    def _lookup(self, path: str, key_config: dict) -> tuple[str | None, tuple | None]:
        """The file's feature-cache key and its cached ``(tensors, meta)`` (``None`` on a miss)."""
        if self.cache is None:
            return None, None
        try:
            key = cache_key(file_sha256(path), **key_config)
        except OSError:
            return None, None  # probe() says why the file can't be read
        try:
            return key, self.cache.get(key)
        except Exception as error:  # a corrupt or locked cache must not stop the scan
            import warnings

            warnings.warn(f"feature cache not read for {path}: {error}", RuntimeWarning, stacklevel=2)
            return key, None

    def _source(self, states, todo, workers: int) -> Iterator[tuple[int, tuple]]:
        """``(file index, message)`` for every file of ``todo``: cache hits read here, misses decoded.

        Misses are decoded in this process (``workers == 0``) or by the worker pool, which is
        started on the first miss only. ``(-1, ("idle",))`` says the decoders are behind.
        """
        job = self._job()
        paths = {index: states[index].path for index in todo}
        backlog: list[tuple[int, str | None]] = []  # misses not yet given to a worker
        keys: dict[int, str | None] = {}
        pending: set[int] = set()  # misses given to the pool, not ended
        pool = None
        for index in todo:
            key, entry = self._lookup(paths[index], job.key_config)
            if entry is not None:
                yield index, ("hit", key, entry[0], entry[1])
                yield index, ("end",)
                continue
            if not workers:
                for message in prepare_messages(paths[index], job, self.cropper, key, self.experts):
                    yield index, message
                continue
            if pool is None:
                pool = self._start_pool(workers, job)
            keys[index] = key
            backlog.append((index, key))
            pending.add(index)
            pool.give(backlog, paths)
            yield from self._drain(pool, backlog, pending, paths, keys, wait=False)
        if pool is not None:
            yield from self._drain(pool, backlog, pending, paths, keys, wait=True)

    def _start_pool(self, workers: int, job: DecodeJob) -> WorkerPool:
        pool = self._pool
        if pool is None or len(pool.processes) != workers or pool.job != job or len(pool.alive()) != workers:
            self.close()
            pool = self._pool = WorkerPool(workers, job)
        pool.restarts = 0
        return pool

    def _drain(self, pool: WorkerPool, backlog, pending, paths, keys, wait: bool) -> Iterator[tuple[int, tuple]]:
        """Messages from the workers: those waiting (``wait=False``), or until every file has ended."""
        while pending:
            item = pool.get(0)
            if item is None:
                if not wait:
                    return
                yield -1, ("idle",)
                item = pool.get(WORKER_POLL_S)
            if item is None:
                crashed, orphaned = pool.reap()
                for index in crashed:
                    pending.discard(index)
                    yield index, ("error", "DecoderCrashedError",
                                  "decoder crashed: the decoding process died on this file (out of memory, or a "
                                  "decoder bug); the other files were scanned")
                    yield index, ("end",)
                backlog[:0] = [(index, keys[index]) for index in orphaned]
                if not pool.alive():
                    for index in sorted(pending):
                        yield index, ("error", "DecoderCrashedError",
                                      f"not decoded: the decoding processes kept dying ({pool.restarts} restarted); "
                                      "try --workers 0 to decode in the main process")
                        yield index, ("end",)
                    pending.clear()
                    backlog.clear()
                    return
                pool.give(backlog, paths)
                continue
            worker, index, message = item
            if message[0] == "end":
                pool.finished(worker, index)
                pending.discard(index)
                pool.give(backlog, paths)
            yield index, message

    def _consume(self, states, source, on_progress) -> Iterator[ScanResult]:
        batch: list[tuple[FileState, PreparedWindow]] = []
        hits: list = []  # (state, window meta, Features) of cached files, for one detector call
        frames_in_batch = 0
        head = 0
        for index, message in source:
            kind = message[0]
            if kind == "idle":  # the decoders are behind: encode what is waiting meanwhile
                if batch:
                    self._score(batch, on_progress)
                    batch, frames_in_batch = [], 0
                if hits:
                    self._detect_hits(hits, on_progress)
            else:
                state = states[index]
                if state.started is None:  # its time counts from its first message, not from the listing
                    state.started = time.perf_counter()
                if kind == "hit":
                    hits += self._unpack_cached(state, message[1], message[2], message[3])
                    if len(hits) >= DETECTOR_BATCH:
                        self._detect_hits(hits, on_progress)
                elif kind == "info":
                    state.info, state.key = message[1], message[2]
                elif kind == "window":
                    prepared = message[1]
                    state.frames += len(prepared.crops)
                    state.frames_with_face += prepared.frames_with_face
                    state.n_faces_max = max(state.n_faces_max, prepared.n_faces_max)
                    if prepared.audio_reason:
                        state.audio_reasons.add(prepared.audio_reason)
                    if prepared.face_detector:
                        state.face_detector = prepared.face_detector
                    if len(prepared.crops) or prepared.waveform.shape[0]:
                        batch.append((state, prepared))
                        state.unscored += 1
                        frames_in_batch += max(1, len(prepared.crops))
                        if frames_in_batch >= self.batch_frames:
                            self._score(batch, on_progress)
                            batch, frames_in_batch = [], 0
                elif kind == "error":
                    state.error = state.error or error_from(message[1], message[2], state.path)
                elif kind == "end":
                    state.done = True
            while head < len(states) and states[head].done and states[head].unscored == 0:
                yield self._finish(states[head])
                head += 1
        if batch:
            self._score(batch, on_progress)
        if hits:
            self._detect_hits(hits, on_progress)
        while head < len(states):
            yield self._finish(states[head])
            head += 1

    @torch.inference_mode()
    def _score(self, batch, on_progress) -> None:
        items = [(pw.crops, pw.frame_times_s, pw.waveform, pw.start_s) for _, pw in batch]
        for state, _ in batch:
            state.unscored -= 1
        from deepscan.extractors import Features

        try:
            features = (self.extractors.encode_many(items) if self.extractors is not None
                        else [Features() for _ in items])  # cue fusion: the experts' evidence is all it needs
        except Exception:  # noqa: BLE001 - one bad window must not end the batch: retried alone below
            features = []
            for (state, _), item in zip(batch, items):  # isolate the window that failed
                try:
                    features.append(self.extractors.encode_many([item])[0])
                except DeepscanError as error:
                    state.error = state.error or error
                    features.append(None)
                except Exception as error:  # noqa: BLE001 - reported as the file's error, the scan goes on
                    state.error = state.error or EncodingError(f"{type(error).__name__}: {error}", state.path)
                    features.append(None)
        kept = []
        for (state, pw), f in zip(batch, features):
            if f is None or state.error is not None:
                continue
            meta = {"index": pw.index, "start_s": pw.start_s, "end_s": pw.end_s, "frames": len(pw.crops),
                    "frames_with_face": pw.frames_with_face, "thumbnail": pw.thumbnail}
            if pw.evidence is not None:
                f.experts = pw.evidence.tokens
                meta.update(cues=pw.evidence.cues, speech=pw.evidence.speech, sync=pw.evidence.sync)
            if state.key is not None and self.cache is not None and not state.too_long_to_cache:
                state.cached.append((meta, f))
                if len(state.cached) > MAX_CACHED_WINDOWS:
                    state.cached, state.too_long_to_cache = [], True
            kept.append((state, meta, f))
        self._detect(kept, on_progress)

    @torch.inference_mode()
    def _detect(self, kept, on_progress) -> None:
        """Run the detector on ``(state, window meta, Features)`` rows and record the scores."""
        if self.fusion is not None:
            for state, meta, _ in kept:
                kind = state.info.kind if state.info is not None else None
                logit = self.fusion.logit(kind, meta.get("cues") or {})
                self._record(state, meta, None if logit is None else logit_to_p(logit), logit, {}, on_progress)
            return
        for start in range(0, len(kept), DETECTOR_BATCH):
            chunk = kept[start:start + DETECTOR_BATCH]
            output = self.model(**batch_features([f for _, _, f in chunk], self.device))
            temperature = self.checkpoint.temperature
            fused = logit_margin(output.logits) / temperature
            per_modality = {m: logit_margin(output.modality_logits[m]) / temperature for m in MODALITIES}
            for row, (state, meta, _) in enumerate(chunk):
                modalities = {
                    m: (logit_to_p(float(per_modality[m][row])) if bool(output.modality_present[m][row]) else None)
                    for m in MODALITIES
                }
                logit = float(fused[row])
                self._record(state, meta, logit_to_p(logit), logit, modalities, on_progress)

    @staticmethod
    def _record(state: FileState, meta: dict, p_fake: float | None, logit: float | None, modalities: dict,
                on_progress) -> None:
        """Add one scored window to its file (score, cues, sync signals, thumbnail)."""
        score = WindowScore(meta["index"], meta["start_s"], meta["end_s"], p_fake, logit, modalities,
                            meta["frames"], meta["frames_with_face"], meta.get("cues") or {}, meta.get("speech"))
        if meta.get("sync"):
            state.sync.append((meta["index"], meta["sync"]))
        state.windows.append(score)
        if meta.get("thumbnail"):
            rank = -1.0 if p_fake is None else p_fake
            state.thumbnails.append((rank, meta["index"], meta["start_s"], meta["end_s"], meta["thumbnail"]))
            state.thumbnails = sorted(state.thumbnails, key=lambda t: -t[0])[:THUMBNAILS_PER_FILE]
        if on_progress is not None:
            on_progress(state.path, max(meta["end_s"] - meta["start_s"], 0.0))

    def _detect_hits(self, hits: list, on_progress) -> None:
        """Score the cached windows gathered in ``hits`` (emptied) with batched detector calls."""
        for state, _, _ in hits:
            state.unscored -= 1
        rows, hits[:] = list(hits), []
        self._detect(rows, on_progress)

    def _unpack_cached(self, state: FileState, key: str, tensors: dict, meta: dict) -> list:
        """The ``(state, window meta, Features)`` rows of a cached file (none if the entry is unreadable)."""
        try:
            state.info = MediaInfo(**meta["info"])
            counts = meta["faces"]
            state.frames, state.frames_with_face = counts["frames"], counts["frames_with_face"]
            state.n_faces_max = counts["n_faces_max"]
            state.audio_reasons = set(meta["audio_reasons"])
            state.face_detector = meta.get("face_detector")
            features = unpack_features(tensors, len(meta["windows"]))
        except (KeyError, TypeError, ValueError) as error:  # an entry from another version: rescan
            state.error = MediaDecodeError(f"unreadable feature-cache entry ({error}); rescan with --no-cache",
                                           state.path)
            return []
        state.key, state.from_cache = key, True
        state.unscored += len(features)
        return [(state, w, f) for w, f in zip(meta["windows"], features)]

    def _store(self, state: FileState) -> None:
        if (self.cache is None or state.key is None or state.from_cache or state.error is not None
                or state.too_long_to_cache):
            return
        meta = {"info": state.info.to_dict(), "windows": [m for m, _ in state.cached],
                "faces": {"frames": state.frames, "frames_with_face": state.frames_with_face,
                          "n_faces_max": state.n_faces_max},
                "audio_reasons": sorted(state.audio_reasons), "face_detector": state.face_detector}
        try:
            self.cache.put(state.key, pack_features([f for _, f in state.cached]), meta)
        except Exception as error:  # a full disk or a locked cache must not lose the result
            import warnings

            warnings.warn(f"feature cache not written for {state.path}: {error}", RuntimeWarning, stacklevel=2)
        state.cached = []

    def _finish(self, state: FileState) -> ScanResult:
        elapsed = 0.0 if state.started is None else time.perf_counter() - state.started
        if state.windows and state.error is None:
            self._store(state)
        state.cached = []
        media = state.info.to_dict() if state.info is not None else {}
        if state.error is not None:
            return ScanResult.error(state.path, state.error.reason, state.error.message, media=media,
                                    detector=self.detector_info, elapsed_s=elapsed)
        if not state.windows:
            return ScanResult.error(state.path, "nothing to score", "no frames and no usable audio",
                                    media=media, detector=self.detector_info, elapsed_s=elapsed)
        if self.fusion is not None:
            result = build_fusion_result(state, self.fusion, self.detector_info, elapsed, self.experts_config)
        else:
            result = build_result(state, self.checkpoint, self.detector_info, elapsed, self.experts_config)
        if self.experts_config.marks:  # what the file declares about itself: ~1 ms, read here (never cached)
            from deepscan.experts.provenance import read_provenance

            apply_provenance(result, read_provenance(state.path))
        return result


FEATURE_FIELDS = ("image", "image_times_s", "audio", "audio_times_s", "video", "video_times_s")


def pack_features(features: list) -> dict[str, torch.Tensor]:
    """Concatenate per-window :class:`~deepscan.extractors.Features` into a few tensors for the cache.

    Parameters
    ----------
    features : list of Features
        One per window.

    Returns
    -------
    dict[str, torch.Tensor]
        For each field of :data:`FEATURE_FIELDS` the rows of all windows concatenated (float32),
        and ``{modality}_lengths`` int64 ``(W,)`` token counts per window; for each expert's tokens
        ``expert.{name}``, ``expert.{name}_times_s`` and ``expert.{name}_lengths`` likewise.
    """
    out = {}
    for m in MODALITIES:
        out[f"{m}_lengths"] = torch.tensor([getattr(f, m).shape[0] for f in features], dtype=torch.int64)
    for name in FEATURE_FIELDS:
        parts = [getattr(f, name).float() for f in features]
        out[name] = torch.cat(parts) if parts else torch.zeros(0)
    for name in sorted({n for f in features for n in f.experts}):
        tokens = [f.experts[name] for f in features if name in f.experts]
        dim = tokens[0][0].shape[1]
        out[f"expert.{name}_lengths"] = torch.tensor(
            [f.experts[name][0].shape[0] if name in f.experts else 0 for f in features], dtype=torch.int64)
        out[f"expert.{name}"] = torch.cat([t.float().reshape(-1, dim) for t, _ in tokens])
        out[f"expert.{name}_times_s"] = torch.cat([times.float() for _, times in tokens])
    return out


def unpack_features(tensors: dict[str, torch.Tensor], windows: int) -> list:
    """Inverse of :func:`pack_features`.

    Raises
    ------
    KeyError, ValueError
        When the tensors do not describe ``windows`` windows.
    """
    from deepscan.extractors import Features

    split = {}
    for m in MODALITIES:
        lengths = tensors[f"{m}_lengths"].tolist()
        if len(lengths) != windows:
            raise ValueError(f"{m}: {len(lengths)} windows stored, {windows} expected")
        split[m] = torch.split(tensors[m], lengths)
        split[f"{m}_times_s"] = torch.split(tensors[f"{m}_times_s"], lengths)
    features = [Features(**{name: split[name][i] for name in FEATURE_FIELDS}) for i in range(windows)]
    for key in tensors:
        if key.startswith("expert.") and key.endswith("_lengths"):
            name = key[len("expert."):-len("_lengths")]
            lengths = tensors[key].tolist()
            if len(lengths) != windows:
                raise ValueError(f"expert {name}: {len(lengths)} windows stored, {windows} expected")
            for f, tokens, times, n in zip(features, torch.split(tensors[f"expert.{name}"], lengths),
                                           torch.split(tensors[f"expert.{name}_times_s"], lengths), lengths):
                if n:
                    f.experts[name] = (tokens, times)
    return features


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """Fake-vs-real log-odds from 2-class logits ``(B, 2)``: ``logits[:, 1] - logits[:, 0]`` ``(B,)``."""
    return (logits[:, 1] - logits[:, 0]).float()


def batch_features(features: list, device) -> dict:
    """Pad per-window :class:`deepscan.extractors.Features` into the detector's batched inputs.

    Parameters
    ----------
    features : list of Features
        One per window; token counts may differ and may be zero.
    device : torch.device

    Returns
    -------
    dict
        ``image``, ``audio``, ``video`` float32 ``(B, T_max, D)`` (``None`` when absent in every
        window), ``*_mask`` bool ``(B, T_max)`` and ``*_times`` float32 ``(B, T_max)`` seconds.
    """
    out = {}
    for m in MODALITIES:
        tokens = [getattr(f, m) for f in features]
        times = [getattr(f, f"{m}_times_s") for f in features]
        longest = max(t.shape[0] for t in tokens)
        if longest == 0:
            out[m] = None
            continue
        dim = tokens[0].shape[1]
        x = torch.zeros(len(tokens), longest, dim)
        mask = torch.zeros(len(tokens), longest, dtype=torch.bool)
        t = torch.zeros(len(tokens), longest)
        for i, (tok, tim) in enumerate(zip(tokens, times)):
            n = tok.shape[0]
            x[i, :n], mask[i, :n], t[i, :n] = tok.float(), True, tim.float()
        out[m], out[f"{m}_mask"], out[f"{m}_times"] = x.to(device), mask.to(device), t.to(device)
    return out


def default_face_config(models_dir: str | os.PathLike | None = None, problems: dict | None = None) -> FaceDetectorConfig:
    """YuNet where its weights are present or can be fetched (:mod:`deepscan.weights`), else Haar.

    Parameters
    ----------
    models_dir : str or os.PathLike, optional
        Folder of weight files (default ``$DEEPSCAN_MODELS_DIR``).
    problems : dict, optional
        Where to note why YuNet could not be had (``problems["yunet"]``), when Haar is returned.

    Returns
    -------
    FaceDetectorConfig
    """
    from deepscan.weights import model_path

    try:
        path = model_path("yunet", models_dir)
    except DeepscanError as error:  # offline and not present, or the download failed: the built-in cascade
        if problems is not None:
            problems["yunet"] = f"{error.message} (faces are found with OpenCV's Haar cascade instead, which misses more)"
        return FaceDetectorConfig()
    return FaceDetectorConfig(backend="yunet", model_path=str(path))


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"`` / ``"cuda"`` as given.

    Raises
    ------
    ValueError
        For ``"cuda"`` without a CUDA device, or an unknown name.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


def scan(paths, detector=None, encoders: str | None = None, *, recursive: bool = True,
         skip: Callable[[str], bool] | None = None, on_progress: Callable[[str, float], None] | None = None,
         **options) -> Iterator[ScanResult]:
    """Scan files and directories with one call: a :class:`Scanner` made for it, its results as they come.

    The scanner (encoders, experts, detector) is loaded when this is called, so that a set-up mistake
    (a models folder that is not there, a bad checkpoint) is raised here, before any file is read;
    its decoding workers are stopped when the results run out (or the generator is closed). For many
    calls, make one :class:`Scanner` and call its :meth:`~Scanner.scan`.

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files and directories.
    detector : str or os.PathLike, optional
        Detector checkpoint; ``None`` reads ``$DEEPSCAN_DETECTOR``, else the one that ships.
    encoders : str, optional
        ``"default"``, ``"debug"`` or a directory of encoders; by default the detector's own.
    recursive, skip, on_progress
        As :meth:`Scanner.scan`.
    **options
        Other :class:`Scanner` arguments (``models_dir``, ``experts``, ``device``, ``workers``,
        ``cache``, ...).

    Returns
    -------
    iterator of ScanResult
        One per file, in the order found.

    Raises
    ------
    ModelsDirNotFoundError, DetectorNotConfiguredError, CheckpointError, ModelLoadingError
        As :class:`Scanner`.

    Examples
    --------
    >>> import deepscan
    >>> for result in deepscan.scan(["media/"], models_dir="models/"):  # doctest: +SKIP
    ...     print(result.path, result.verdict, result.p_fake)
    """
    scanner = Scanner(detector=detector, encoders=encoders, **options)
    return _results_then_close(scanner, paths, recursive, skip, on_progress)


def _results_then_close(scanner: Scanner, paths, recursive, skip, on_progress) -> Iterator[ScanResult]:
    try:
        yield from scanner.scan(paths, recursive=recursive, skip=skip, on_progress=on_progress)
    finally:
        scanner.close()
