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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from deepscan.cache import FeatureCache, cache_key, file_sha256
from deepscan.errors import DeepscanError, DetectorNotConfiguredError, MediaDecodeError
from deepscan.faces import FaceCropper, FaceDetectorConfig
from deepscan.media import (
    DEFAULT_LIMITS, MIN_AUDIO_SAMPLES, VISUAL_FPS, WINDOW_SECONDS, MediaInfo, MediaLimits, iter_media_files,
    iter_windows, probe,
)
from deepscan.results import (
    MODALITIES, STATUS_OK, VERDICT_UNKNOWN, ScanResult, WindowScore, aggregate_windows, decide, logit_to_p,
)

DEFAULT_BATCH_FRAMES = 64  # face crops per image-encoder batch (windows are batched up to this)
THUMBNAIL_SIZE = 112  # px, side of the face-crop thumbnails kept for reports
THUMBNAILS_PER_FILE = 3  # thumbnails of the most suspicious windows kept per file
DETECTOR_BATCH = 256  # windows per detector call (the detector is small)
QUEUE_WINDOWS = 8  # decoded windows waiting for the encoders, at most (bounds memory: ~5 MB each at 8 fps)
WORKER_POLL_S = 1.0  # s, how often the main process checks that its decoding workers are alive
WORKER_PREFETCH = 2  # files queued to each decoding worker at a time (the main process tracks which)
MAX_WORKER_RESTARTS = 4  # dead decoding workers replaced per scan; beyond, files left become errors
CRASH_TEST_ENV = "DEEPSCAN_TEST_WORKER_EXIT"  # test hook: a worker exits hard on a file of this name ("*": any)
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
CACHE_FORMAT = 2  # bump when what the scanner stores in the feature cache changes
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


@dataclass
class PreparedWindow:
    """A decoded window with its face crops: what the encoders take.

    Attributes
    ----------
    index : int
        Window number within the file.
    start_s, end_s : float
        Window bounds in seconds.
    crops : np.ndarray
        uint8 ``(T, 224, 224, 3)`` face crops (full frame where no face).
    frame_times_s : np.ndarray
        float64 ``(T,)`` frame times in seconds from the start of the media.
    waveform : np.ndarray
        float32 ``(S,)`` mono 16 kHz audio (``S = 0`` when absent or too short for wav2vec2).
    frames_with_face : int
        Frames of the window where a face was found.
    n_faces_max : int
        Most faces seen in one frame.
    audio_reason : str or None
        Why the window has no audio (``"no audio stream"``, ``"audio too short"``).
    thumbnail : str or None
        Base64 JPEG of the middle crop (:func:`thumbnail`), set by the scanner's decoding step.
    """

    index: int
    start_s: float
    end_s: float
    crops: np.ndarray
    frame_times_s: np.ndarray
    waveform: np.ndarray
    frames_with_face: int = 0
    n_faces_max: int = 0
    audio_reason: str | None = None
    thumbnail: str | None = None


def prepare_windows(
    path: str | os.PathLike,
    info: MediaInfo,
    cropper: FaceCropper,
    window_s: float = WINDOW_SECONDS,
    visual_fps: float = VISUAL_FPS,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> Iterator[PreparedWindow]:
    """Decode a file window by window and crop the main face of every sampled frame.

    Parameters
    ----------
    path : str or os.PathLike
        The media file.
    info : MediaInfo
        Its :func:`deepscan.media.probe` result.
    cropper : FaceCropper
        Face detector and crop parameters; one tracker follows the face across the file's windows.
    window_s, visual_fps : float
        Window length (s) and visual sampling rate (fps), as the detector was trained with.
    limits : MediaLimits
        Decoding limits.

    Yields
    ------
    PreparedWindow

    Raises
    ------
    DeepscanError
        The typed media errors of :func:`deepscan.media.iter_windows`.
    """
    tracker = cropper.new_tracker()
    for window in iter_windows(path, window_s=window_s, visual_fps=visual_fps, limits=limits, info=info):
        if window.has_frames:
            faces = tracker.crop(window.frames)
            crops, with_face, n_faces = faces.crops, faces.frames_with_face, faces.n_faces_max
        else:
            crops, with_face, n_faces = np.zeros((0, cropper.crop_size, cropper.crop_size, 3), np.uint8), 0, 0
        waveform, audio_reason = window.waveform, None
        if not info.has_audio:
            audio_reason = "no audio stream"
        elif 0 < waveform.shape[0] < MIN_AUDIO_SAMPLES or waveform.shape[0] == 0:
            waveform, audio_reason = waveform[:0], "audio too short"
        yield PreparedWindow(window.index, window.start_s, window.end_s, crops, window.frame_times_s,
                             waveform, with_face, n_faces, audio_reason)


@dataclass
class _FileState:
    """Bookkeeping of one file while its windows are scored."""

    path: str
    info: MediaInfo | None = None
    error: DeepscanError | None = None
    windows: list = field(default_factory=list)  # WindowScore
    started: float = field(default_factory=time.perf_counter)
    frames: int = 0
    frames_with_face: int = 0
    n_faces_max: int = 0
    audio_reasons: set = field(default_factory=set)
    thumbnails: list = field(default_factory=list)  # (p_fake, window index, start_s, end_s, JPEG base64)
    done: bool = False  # all its windows have been produced (or it failed)
    unscored: int = 0  # windows produced but not scored yet
    key: str | None = None  # feature-cache key; None when caching is off or the file is unreadable
    from_cache: bool = False
    cached: list = field(default_factory=list)  # (window meta dict, Features) to store when done
    too_long_to_cache: bool = False  # more than MAX_CACHED_WINDOWS windows: features are not kept


@dataclass
class _Job:
    """What a decoding worker needs to prepare files: picklable settings, no models."""

    window_s: float
    visual_fps: float
    limits: MediaLimits
    face_config: FaceDetectorConfig | None
    detect_every: int
    cache_path: str | None
    key_config: dict


def _error_from(name: str, message: str, path: str) -> DeepscanError:
    """Rebuild a typed error sent by a worker as (class name, message)."""
    from deepscan import errors

    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, DeepscanError)):
        cls = MediaDecodeError
    try:
        return cls(message, path)
    except TypeError:
        return MediaDecodeError(message, path)


def _prepare_messages(path: str, job: _Job, cropper: FaceCropper, key: str | None = None) -> Iterator[tuple]:
    """Everything the main process needs to score one file that is not in the feature cache.

    ``("info", MediaInfo, key)`` then ``("window", PreparedWindow)`` per window; then
    ``("error", class name, message)`` on failure; always ending with ``("end",)``. ``key`` is the
    file's feature-cache key (looked up by the main process), passed back with the info.
    """
    try:
        yield from _prepare_file(path, job, cropper, key)
    except DeepscanError as error:
        yield ("error", type(error).__name__, error.message)
    except Exception as error:  # an unforeseen decoder failure must not stop the batch
        yield ("error", "MediaDecodeError", f"could not decode: {type(error).__name__}: {error}")
    yield ("end",)


def _prepare_file(path: str, job: _Job, cropper: FaceCropper, key: str | None) -> Iterator[tuple]:
    """The messages of :func:`_prepare_messages` for one file, raising on failure."""
    info = probe(path, job.limits)
    yield ("info", info, key)
    for prepared in prepare_windows(path, info, cropper, job.window_s, job.visual_fps, job.limits):
        if len(prepared.crops):
            prepared.thumbnail = thumbnail(prepared.crops)
        yield ("window", prepared)


def _worker_main(tasks, results, job: _Job, worker: int, parent: int) -> None:
    """A decoding process: take ``(index, path, key)`` tasks in order, put ``(worker, index, message)`` results.

    It ignores SIGINT (the main process handles Ctrl-C and terminates it) and exits by itself
    when the main process is gone (killed), so no orphan is left decoding.
    """
    import queue
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    cropper = FaceCropper(job.face_config, detect_every=job.detect_every)
    crash_on = os.environ.get(CRASH_TEST_ENV)

    def orphaned() -> bool:
        return os.getppid() != parent

    def put(item) -> None:
        while True:
            try:
                return results.put(item, timeout=WORKER_POLL_S)
            except queue.Full:
                if orphaned():
                    os._exit(0)  # not sys.exit: the queue's feeder thread would block on the dead pipe

    while True:
        try:
            task = tasks.get(timeout=WORKER_POLL_S)
        except queue.Empty:
            if orphaned():
                os._exit(0)
            continue
        if task is None:
            return
        index, path, key = task
        if crash_on and crash_on in ("*", os.path.basename(path)):
            os._exit(70)
        for message in _prepare_messages(path, job, cropper, key):
            put((worker, index, message))


class _WorkerPool:
    """Decoding processes (``spawn`` context: no fork after torch has started threads).

    Each worker has its own task queue and is given at most :data:`WORKER_PREFETCH` files at a
    time, so the main process knows which files every worker holds and in which order: when a
    worker dies, the first of its files is the one that killed it (it becomes an error result)
    and the others are handed to the replacement. Results come back through one bounded queue
    per worker (so that a worker killed while writing cannot leave a shared queue's lock held
    and block the others), together holding at most about :data:`QUEUE_WINDOWS` decoded windows
    whatever the files' lengths.
    """

    def __init__(self, workers: int, job: _Job):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.ctx = ctx
        self.job = job
        self.depth = max(2, QUEUE_WINDOWS // workers)
        self.results: list = [None] * workers
        self.tasks: list = [None] * workers
        self.processes: list = [None] * workers
        self.assigned: list[list[int]] = [[] for _ in range(workers)]  # per worker, files in the order given
        self.restarts = 0
        for worker in range(workers):
            self._start(worker)

    def _start(self, worker: int) -> None:
        # Fresh queues: tasks left in a dead worker's queue are re-sent by the main process.
        self.tasks[worker] = self.ctx.Queue()
        self.results[worker] = self.ctx.Queue(maxsize=self.depth)
        process = self.ctx.Process(target=_worker_main,
                                   args=(self.tasks[worker], self.results[worker], self.job, worker, os.getpid()),
                                   daemon=True, name=f"deepscan-decode-{worker}")
        process.start()
        self.processes[worker] = process

    def alive(self) -> list[int]:
        """Workers whose process is running."""
        return [w for w, p in enumerate(self.processes) if p is not None and p.is_alive()]

    def get(self, timeout: float):
        """The next ``(worker, index, message)`` from any worker, or ``None`` after ``timeout`` s."""
        import queue
        from multiprocessing.connection import wait

        readers = {q._reader: w for w, q in enumerate(self.results) if q is not None}
        for reader in wait(list(readers), timeout):
            try:
                return self.results[readers[reader]].get_nowait()
            except queue.Empty:  # a partial message: the rest is on its way
                continue
        return None

    def give(self, backlog: list, paths: dict) -> None:
        """Hand files ``(index, key)`` from the front of ``backlog`` to live workers with room."""
        for worker in self.alive():
            while backlog and len(self.assigned[worker]) < WORKER_PREFETCH:
                index, key = backlog.pop(0)
                self.assigned[worker].append(index)
                self.tasks[worker].put((index, paths[index], key))

    def finished(self, worker: int, index: int) -> None:
        """A worker has sent the ``end`` of a file."""
        if index in self.assigned[worker]:
            self.assigned[worker].remove(index)

    def reap(self) -> tuple[list[int], list[int]]:
        """Find dead workers; replace them while restarts are left.

        Returns
        -------
        crashed : list of int
            Files that were being decoded when their worker died.
        orphaned : list of int
            Files queued to a dead worker but not started: to be given again.
        """
        crashed, orphaned = [], []
        for worker, process in enumerate(self.processes):
            if process is None or process.is_alive():
                continue
            held, self.assigned[worker] = self.assigned[worker], []
            crashed += held[:1]
            orphaned += held[1:]
            for q in (self.tasks[worker], self.results[worker]):
                q.cancel_join_thread()
                q.close()
            self.tasks[worker] = self.results[worker] = None
            self.processes[worker] = None
            if self.restarts < MAX_WORKER_RESTARTS:
                self.restarts += 1
                self._start(worker)
        return crashed, orphaned

    def close(self, terminate: bool = False) -> None:
        """Stop the workers: politely (sentinels) or at once (``terminate``, used on Ctrl-C)."""
        live = [(w, p) for w, p in enumerate(self.processes) if p is not None]
        if not terminate:
            for worker, _ in live:
                try:
                    self.tasks[worker].put(None)
                except (ValueError, OSError):
                    pass
        for _, process in live:
            if terminate:
                process.terminate()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        for q in [*self.tasks, *self.results]:
            if q is not None:
                q.cancel_join_thread()
                q.close()


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
    encoders : str
        ``"default"``, ``"debug"`` or a directory (see :func:`deepscan.hub.resolve_encoders`).
    image_encoder, audio_encoder : str, optional
        Per-encoder overrides: a hub id or a local directory.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    precision : str
        ``"auto"``, ``"fp32"`` or ``"bf16"`` for the encoders (see :mod:`deepscan.precision`).
    face_config : FaceDetectorConfig, optional
        Face detector (Haar by default, YuNet with a model file).
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

    Raises
    ------
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
        encoders: str = "default",
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
    ):
        from deepscan.extractors import load_extractors
        from deepscan.hub import resolve_encoders
        from deepscan.model import load_detector, read_metadata

        detector = detector if detector is not None else os.environ.get(DETECTOR_ENV) or None
        if detector is None:
            raise DetectorNotConfiguredError(NO_DETECTOR_HELP)
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.device = resolve_device(device)
        specs = resolve_encoders(encoders, image=image_encoder, audio=audio_encoder)
        checkpoint = read_metadata(detector)  # fails fast on a bad file, before loading encoders
        expected = {m: {"id": s.id, "dim": s.dim} for m, s in specs.items()}
        from deepscan.model.checkpoint import check_encoders

        check_encoders(checkpoint, expected)
        self.extractors = load_extractors(specs, device=self.device, precision=precision)
        self.model, self.checkpoint = load_detector(detector, expected_encoders=expected, device=self.device)
        self.model.eval()
        sampling = self.checkpoint.sampling or {}
        self.window_s = float(sampling.get("window_s", WINDOW_SECONDS))
        self.visual_fps = float(sampling.get("visual_fps", VISUAL_FPS))
        self.face_config = face_config
        self.cropper = FaceCropper(face_config, detect_every=DETECT_EVERY)
        self.batch_frames = int(batch_frames)
        self.limits = limits
        self.detector_info = describe_detector(self.checkpoint, self.extractors.is_debug)
        self.workers = default_workers() if workers is None else int(workers)
        self.threads = threads if threads is not None else max(1, _cores() - self.workers // 2)
        if cache is None or cache is True:
            cache = FeatureCache()
        elif cache is False:
            cache = None
        elif not isinstance(cache, FeatureCache):
            cache = FeatureCache(cache)
        self.cache = cache
        self._pool: _WorkerPool | None = None

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
        return {"format": CACHE_FORMAT, "extractors": self.extractors.config_hash(), "window_s": self.window_s,
                "visual_fps": self.visual_fps, "faces": face, "detect_every": self.cropper.detect_every,
                "crop_size": self.cropper.crop_size,
                "detector_name": self.cropper.detector_name}

    def _job(self) -> _Job:
        return _Job(self.window_s, self.visual_fps, self.limits, self.face_config, self.cropper.detect_every,
                    str(self.cache.path) if self.cache is not None else None,
                    self.cache_config() if self.cache is not None else {})

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
        states: list[_FileState] = []
        unreadable: list[tuple[Path, DeepscanError]] = []
        for path in iter_media_files(paths, recursive=recursive, on_error=lambda p, e: unreadable.append((p, e))):
            while unreadable:
                p, e = unreadable.pop(0)
                states.append(_FileState(str(p), error=e, done=True))
            if skip is not None and skip(str(path)):
                continue
            states.append(_FileState(str(path)))
        for p, e in unreadable:
            states.append(_FileState(str(p), error=e, done=True))
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
                for message in _prepare_messages(paths[index], job, self.cropper, key):
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

    def _start_pool(self, workers: int, job: _Job) -> _WorkerPool:
        pool = self._pool
        if pool is None or len(pool.processes) != workers or pool.job != job or len(pool.alive()) != workers:
            self.close()
            pool = self._pool = _WorkerPool(workers, job)
        pool.restarts = 0
        return pool

    def _drain(self, pool: _WorkerPool, backlog, pending, paths, keys, wait: bool) -> Iterator[tuple[int, tuple]]:
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
        batch: list[tuple[_FileState, PreparedWindow]] = []
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
                    if len(prepared.crops) or prepared.waveform.shape[0]:
                        batch.append((state, prepared))
                        state.unscored += 1
                        frames_in_batch += max(1, len(prepared.crops))
                        if frames_in_batch >= self.batch_frames:
                            self._score(batch, on_progress)
                            batch, frames_in_batch = [], 0
                elif kind == "error":
                    state.error = state.error or _error_from(message[1], message[2], state.path)
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
        try:
            features = self.extractors.encode_many(items)
        except DeepscanError:
            features = []
            for (state, _), item in zip(batch, items):  # isolate the window that failed
                try:
                    features.append(self.extractors.encode_many([item])[0])
                except DeepscanError as error:
                    state.error = state.error or error
                    features.append(None)
        kept = []
        for (state, pw), f in zip(batch, features):
            if f is None or state.error is not None:
                continue
            meta = {"index": pw.index, "start_s": pw.start_s, "end_s": pw.end_s, "frames": len(pw.crops),
                    "frames_with_face": pw.frames_with_face, "thumbnail": pw.thumbnail}
            if state.key is not None and self.cache is not None and not state.too_long_to_cache:
                state.cached.append((meta, f))
                if len(state.cached) > MAX_CACHED_WINDOWS:
                    state.cached, state.too_long_to_cache = [], True
            kept.append((state, meta, f))
        self._detect(kept, on_progress)

    @torch.inference_mode()
    def _detect(self, kept, on_progress) -> None:
        """Run the detector on ``(state, window meta, Features)`` rows and record the scores."""
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
                score = WindowScore(meta["index"], meta["start_s"], meta["end_s"], logit_to_p(logit), logit,
                                    modalities, meta["frames"], meta["frames_with_face"])
                state.windows.append(score)
                if meta.get("thumbnail"):
                    state.thumbnails.append((score.p_fake, meta["index"], meta["start_s"], meta["end_s"],
                                             meta["thumbnail"]))
                    state.thumbnails = sorted(state.thumbnails, key=lambda t: -t[0])[:THUMBNAILS_PER_FILE]
                if on_progress is not None:
                    on_progress(state.path, max(meta["end_s"] - meta["start_s"], 0.0))

    def _detect_hits(self, hits: list, on_progress) -> None:
        """Score the cached windows gathered in ``hits`` (emptied) with batched detector calls."""
        for state, _, _ in hits:
            state.unscored -= 1
        rows, hits[:] = list(hits), []
        self._detect(rows, on_progress)

    def _unpack_cached(self, state: _FileState, key: str, tensors: dict, meta: dict) -> list:
        """The ``(state, window meta, Features)`` rows of a cached file (none if the entry is unreadable)."""
        try:
            state.info = MediaInfo(**meta["info"])
            counts = meta["faces"]
            state.frames, state.frames_with_face = counts["frames"], counts["frames_with_face"]
            state.n_faces_max = counts["n_faces_max"]
            state.audio_reasons = set(meta["audio_reasons"])
            features = unpack_features(tensors, len(meta["windows"]))
        except (KeyError, TypeError, ValueError) as error:  # an entry from another version: rescan
            state.error = MediaDecodeError(f"unreadable feature-cache entry ({error}); rescan with --no-cache",
                                           state.path)
            return []
        state.key, state.from_cache = key, True
        state.unscored += len(features)
        return [(state, w, f) for w, f in zip(meta["windows"], features)]

    def _store(self, state: _FileState) -> None:
        if (self.cache is None or state.key is None or state.from_cache or state.error is not None
                or state.too_long_to_cache):
            return
        meta = {"info": state.info.to_dict(), "windows": [m for m, _ in state.cached],
                "faces": {"frames": state.frames, "frames_with_face": state.frames_with_face,
                          "n_faces_max": state.n_faces_max},
                "audio_reasons": sorted(state.audio_reasons)}
        try:
            self.cache.put(state.key, pack_features([f for _, f in state.cached]), meta)
        except Exception as error:  # a full disk or a locked cache must not lose the result
            import warnings

            warnings.warn(f"feature cache not written for {state.path}: {error}", RuntimeWarning, stacklevel=2)
        state.cached = []

    def _finish(self, state: _FileState) -> ScanResult:
        elapsed = time.perf_counter() - state.started
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
        return build_result(state, self.checkpoint, self.detector_info, elapsed)


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
        and ``{modality}_lengths`` int64 ``(W,)`` token counts per window.
    """
    out = {}
    for m in MODALITIES:
        out[f"{m}_lengths"] = torch.tensor([getattr(f, m).shape[0] for f in features], dtype=torch.int64)
    for name in FEATURE_FIELDS:
        parts = [getattr(f, name).float() for f in features]
        out[name] = torch.cat(parts) if parts else torch.zeros(0)
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
    return [Features(**{name: split[name][i] for name in FEATURE_FIELDS}) for i in range(windows)]


def build_result(state: _FileState, checkpoint, detector_info: dict, elapsed_s: float) -> ScanResult:
    """Aggregate a file's window scores into its :class:`ScanResult`.

    The file's ``p_fake`` comes from :func:`deepscan.results.aggregate_windows`; a modality's
    ``p_fake`` is the mean of its window probabilities where present. The verdict compares
    ``p_fake`` with the checkpoint's threshold, except for an untrained detector, whose verdict
    is ``"unknown"``.
    """
    windows = sorted(state.windows, key=lambda w: w.index)
    p_fake = logit_to_p(aggregate_windows([w.logit for w in windows]))
    no_face = state.frames > 0 and state.frames_with_face == 0
    modalities = {}
    for m in MODALITIES:
        scores = [w.modalities[m] for w in windows if w.modalities.get(m) is not None]
        reason = None
        if m == "audio" and not scores:
            reason = ", ".join(sorted(state.audio_reasons)) or "no audio"
        elif m in ("image", "video") and state.frames == 0:
            reason = "no frames"
        elif m == "video" and not scores:
            reason = "single frame: no motion"
        elif m in ("image", "video") and no_face:
            reason = "no face"
        modalities[m] = {"present": bool(scores), "p_fake": float(np.mean(scores)) if scores else None,
                         "reason": reason}
    present = {m: v["p_fake"] for m, v in modalities.items() if v["p_fake"] is not None}
    top = max(present, key=present.get) if present else None
    reason = "no face" if no_face else None
    verdict = decide(p_fake, checkpoint.threshold)
    if checkpoint.trained_on == "untrained":
        verdict, reason = VERDICT_UNKNOWN, "untrained detector: its scores mean nothing"
    return ScanResult(
        path=state.path, status=STATUS_OK, reason=reason, verdict=verdict, p_fake=p_fake,
        threshold=checkpoint.threshold, modalities=modalities, top_modality=top, windows=windows,
        media=state.info.to_dict(),
        faces={"frames": state.frames, "frames_with_face": state.frames_with_face,
               "max_faces": state.n_faces_max, "no_face": no_face},
        detector=detector_info, elapsed_s=elapsed_s,
        thumbnails=[{"window": i, "start_s": a, "end_s": b, "p_fake": p, "jpeg_base64": data}
                    for p, i, a, b, data in state.thumbnails],
    )


def thumbnail(crops: np.ndarray, size: int = THUMBNAIL_SIZE) -> str:
    """Base64 JPEG of the middle crop of a window, for reports.

    Parameters
    ----------
    crops : np.ndarray
        uint8 ``(T, H, W, 3)`` face crops, ``T >= 1``.
    size : int
        Side of the thumbnail in pixels.

    Returns
    -------
    str
        Base64 (ASCII) of a JPEG file.
    """
    import base64
    import io

    from PIL import Image

    image = Image.fromarray(crops[len(crops) // 2]).resize((size, size), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def describe_detector(checkpoint, debug_encoders: bool = False) -> dict:
    """The ``detector`` block of every result: name, hash, what it was trained on, and a label.

    The label is set whenever the detector is not a real one (untrained, trained on synthetic or
    debug data, or run on debug encoders), so every output format says so.
    """
    synthetic = checkpoint.is_synthetic or debug_encoders
    label = None
    if checkpoint.trained_on == "untrained":
        label = "UNTRAINED detector: scores are meaningless, verdicts withheld"
    elif synthetic:
        label = (f"DEMO detector trained on {checkpoint.trained_on} data"
                 + (" with debug encoders" if debug_encoders else "")
                 + ": verdicts are a demonstration, not a real judgement")
    return {"name": checkpoint.name, "sha256": checkpoint.sha256, "trained_on": checkpoint.trained_on,
            "synthetic": synthetic, "label": label,
            "data": (checkpoint.provenance or {}).get("data"),
            "metrics": (checkpoint.provenance or {}).get("metrics")}


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


def scan(paths, detector=None, encoders: str = "default", **options) -> list[ScanResult]:
    """Scan files and directories with one call.

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files and directories.
    detector : str or os.PathLike, optional
        Detector checkpoint; ``None`` reads ``$DEEPSCAN_DETECTOR``.
    encoders : str
        ``"default"``, ``"debug"`` or a directory of encoders.
    **options
        Other :class:`Scanner` arguments (``device``, ``precision``, ``face_config``, ...).

    Returns
    -------
    list of ScanResult
        One per file, in the order found.

    Raises
    ------
    DetectorNotConfiguredError, CheckpointError, ModelLoadingError
        As :class:`Scanner`.
    """
    scanner = Scanner(detector=detector, encoders=encoders, **options)
    return list(scanner.scan(paths))
