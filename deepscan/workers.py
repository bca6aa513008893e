"""Decoding processes: probe, decode window by window and crop faces, away from the encoders.

:func:`prepare_windows` turns one file into :class:`PreparedWindow` objects (decoded window, face
crops, waveform). :class:`WorkerPool` runs it in ``spawn``-ed processes fed by the scanner, each
with its own task and result queues, so that a decoder that crashes natively takes down one
worker, not the scan: the scanner turns the file it held into a ``decoder crashed`` result and a
replacement worker is started, at most :data:`MAX_WORKER_RESTARTS` times per scan.

Messages a worker sends per file (:func:`prepare_messages`): ``("info", MediaInfo, key)``, then
``("window", PreparedWindow)`` per window, ``("error", class name, message)`` on failure, and always
``("end",)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from deepscan.errors import DeepscanError, MediaDecodeError
from deepscan.faces import FaceCropper, FaceDetectorConfig
from deepscan.media import (
    DEFAULT_LIMITS, MIN_AUDIO_SAMPLES, VISUAL_FPS, WINDOW_SECONDS, MediaInfo, MediaLimits, iter_windows, probe,
)

__all__ = ["PreparedWindow", "prepare_windows", "DecodeJob", "WorkerPool", "prepare_messages", "error_from",
           "thumbnail", "QUEUE_WINDOWS", "CRASH_TEST_ENV", "MAX_WORKER_RESTARTS"]

THUMBNAIL_SIZE = 112  # px, side of the face-crop thumbnails kept for reports
QUEUE_WINDOWS = 8  # decoded windows waiting for the encoders, at most (bounds memory: ~5 MB each at 8 fps)
WORKER_POLL_S = 1.0  # s, how often the main process checks that its decoding workers are alive
WORKER_PREFETCH = 2  # files queued to each decoding worker at a time (the main process tracks which)
MAX_WORKER_RESTARTS = 4  # dead decoding workers replaced per scan; beyond, files left become errors
CRASH_TEST_ENV = "DEEPSCAN_TEST_WORKER_EXIT"  # test hook: a worker exits hard on a file of this name ("*": any)


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
    evidence : deepscan.experts.runner.WindowEvidence or None
        The experts' cues and tokens for this window (``None`` when no experts run).
    face_detector : str or None
        Name of the face detector that ran (``None`` without frames).
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
    evidence: object | None = None
    face_detector: str | None = None


def prepare_windows(
    path: str | os.PathLike,
    info: MediaInfo,
    cropper: FaceCropper,
    window_s: float = WINDOW_SECONDS,
    visual_fps: float = VISUAL_FPS,
    limits: MediaLimits = DEFAULT_LIMITS,
    experts=None,
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
    experts : deepscan.experts.runner.Experts, optional
        Experts run on each window's face crops and waveform (their evidence rides on the window).

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
        faces = None
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
        evidence = None
        if experts is not None:
            evidence = experts.run(faces, window.frame_times_s, waveform, window.start_s, audio_reason,
                                   window.has_frames, window.frames)
        yield PreparedWindow(window.index, window.start_s, window.end_s, crops, window.frame_times_s,
                             waveform, with_face, n_faces, audio_reason, evidence=evidence,
                             face_detector=faces.detector_name if faces is not None else None)


@dataclass
class DecodeJob:
    """What a decoding worker needs to prepare files: picklable settings, no models."""

    window_s: float
    visual_fps: float
    limits: MediaLimits
    face_config: FaceDetectorConfig | None
    detect_every: int
    cache_path: str | None
    key_config: dict
    experts: object | None = None  # deepscan.experts.runner.ExpertsConfig


def load_job_experts(job: DecodeJob):
    """The :class:`~deepscan.experts.runner.Experts` of a job (``None`` when it runs none)."""
    if job.experts is None or not job.experts.cues:
        return None
    from deepscan.experts.runner import Experts

    return Experts(job.experts)


def error_from(name: str, message: str, path: str) -> DeepscanError:
    """Rebuild a typed error sent by a worker as (class name, message)."""
    from deepscan import errors

    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, DeepscanError)):
        cls = MediaDecodeError
    try:
        return cls(message, path)
    except TypeError:
        return MediaDecodeError(message, path)


def prepare_messages(path: str, job: DecodeJob, cropper: FaceCropper, key: str | None = None,
                     experts=None) -> Iterator[tuple]:
    """Everything the main process needs to score one file that is not in the feature cache.

    ``("info", MediaInfo, key)`` then ``("window", PreparedWindow)`` per window; then
    ``("error", class name, message)`` on failure; always ending with ``("end",)``. ``key`` is the
    file's feature-cache key (looked up by the main process), passed back with the info;
    ``experts`` (:class:`~deepscan.experts.runner.Experts`) run on each window.
    """
    try:
        yield from _prepare_file(path, job, cropper, key, experts)
    except DeepscanError as error:
        yield ("error", type(error).__name__, error.message)
    except Exception as error:  # an unforeseen decoder failure must not stop the batch
        yield ("error", "MediaDecodeError", f"could not decode: {type(error).__name__}: {error}")
    yield ("end",)


def _prepare_file(path: str, job: DecodeJob, cropper: FaceCropper, key: str | None, experts) -> Iterator[tuple]:
    """The messages of :func:`prepare_messages` for one file, raising on failure."""
    info = probe(path, job.limits)
    yield ("info", info, key)
    for prepared in prepare_windows(path, info, cropper, job.window_s, job.visual_fps, job.limits, experts):
        if len(prepared.crops):
            prepared.thumbnail = thumbnail(prepared.crops)
        yield ("window", prepared)


def worker_main(tasks, results, job: DecodeJob, worker: int, parent: int) -> None:
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
    experts = load_job_experts(job)
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
        for message in prepare_messages(path, job, cropper, key, experts):
            put((worker, index, message))


class WorkerPool:
    """Decoding processes (``spawn`` context: no fork after torch has started threads).

    Each worker has its own task queue and is given at most :data:`WORKER_PREFETCH` files at a
    time, so the main process knows which files every worker holds and in which order: when a
    worker dies, the first of its files is the one that killed it (it becomes an error result)
    and the others are handed to the replacement. Results come back through one bounded queue
    per worker (so that a worker killed while writing cannot leave a shared queue's lock held
    and block the others), together holding at most about :data:`QUEUE_WINDOWS` decoded windows
    whatever the files' lengths.
    """

    def __init__(self, workers: int, job: DecodeJob):
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
        process = self.ctx.Process(target=worker_main,
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
