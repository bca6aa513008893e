"""Scanning on a Ray cluster: the local scanner inside a pool of actors, results exactly once.

The driver (the process that calls :class:`RayScanner` or ``deepscan check --ray``, whose
command-line driver is :mod:`deepscan.cli.ray_check`) lists the files, local or behind any URI
that :mod:`pyarrow.fs` understands (``s3://``, ``gs://``, ``hdfs://``, ``file://``; see
:mod:`deepscan.distributed.storage`), and hands them out to a pool of :class:`ScanActor` actors. Each actor
loads the encoders, the experts, the face detector and the detector checkpoint once (a
:class:`deepscan.scanner.Scanner` in that process, on a GPU when the cluster has them) and scores
file after file. Results come back to the driver in completion order, where they are written as
they arrive; each file gets exactly one result, failures included.

Two placements of decoding (``decode=``)::

    "actor" (default)  driver: list ─► actor: fetch ─► sha256 ─► cache? ─► decode+crop ─► encoders ─► detector
    "tasks"            driver: list ─► task: fetch ─► sha256 ─► cache? ─► decode+crop ─┐
                                       actor: encoders ─► detector ◄── object store ◄─┘

``"tasks"`` decodes and crops in Ray tasks on any CPU of the cluster and ships the prepared
windows through the object store to the scoring actors (~5 MB per 4 s window of video at 8 fps);
it keeps a GPU actor busy while CPUs decode. ``"actor"`` decodes where it scores: no crop crosses
the object store, the node's feature cache is read and written by the same process, and memory
stays bounded by the window whatever the file's length. On the CPU-only machine measured (see
BENCHMARKS.md, ``python -m bench.ray``) ``"actor"`` was faster, so it is the default; a file longer
than :data:`SPLIT_MAX_WINDOWS` windows is always decoded by its actor, so that a decoded file in
the object store stays small.

Nothing lost, nothing twice: actors are started with ``max_restarts=-1`` and
``max_task_retries`` = :data:`ACTOR_TASK_RETRIES`, so an actor that dies (out of memory, a native
decoder crash, a node lost) is restarted by Ray and the calls it held are retried by Ray. A call
whose retries all failed may be innocent (calls queued behind the one that killed the actor die
with it): its files are sent again one by one, each alone on an idle actor; a file that kills its
actor while alone, retry included, becomes a ``decoder crashed`` error result, and the scan goes
on. The driver keeps the set of files it has written and drops any second result. ``skip``
(``--resume``) leaves out files already in the output.

The feature cache is per node: each actor (and each decoding task) opens the node's SQLite file
(:mod:`deepscan.cache`), so a rescan reuses features where the same node scanned the file before.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

from deepscan.distributed.storage import InputFile, fetch, filesystem_for, is_uri, list_inputs, restore_uri
from deepscan.errors import CheckpointError, DecoderCrashedError, DeepscanError
from deepscan.results import ScanResult

__all__ = ["RayScanner", "scan_ray", "ScanActor", "decode_file", "connect", "require_ray", "ACTOR_EXIT_ENV",
           "RAY_MISSING"]

RAY_MISSING = 'Ray is not installed: pip install "deepscan[ray]" (Ray and pyarrow)'
ACTOR_EXIT_ENV = "DEEPSCAN_TEST_RAY_ACTOR_EXIT"  # test hook: "NAME[:MARKER][,...]": an actor exits hard on NAME
ACTOR_TASK_RETRIES = 1  # Ray retries of an actor call whose actor died (then the driver isolates files)
DECODE_RETRIES = 2  # Ray retries of a decoding task whose worker died ("tasks" mode)
CALLS_IN_FLIGHT = 2  # calls queued per actor: one running, one waiting, so no actor idles between calls
FILES_PER_CALL = 2  # files per actor call ("actor" mode): their windows share encoder batches
SPLIT_MAX_WINDOWS = 16  # "tasks" mode: longer files (64 s at 4 s windows) are decoded by their actor
PASSED_ENV = ("DEEPSCAN_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DEEPSCAN_CACHE_DIR",
              "DEEPSCAN_MODELS_DIR", "HF_HOME", ACTOR_EXIT_ENV)  # driver settings the actors get too
DECODE_MODES = ("actor", "tasks")
START_TIMEOUT_S = 600.0  # s the actors may take to start and load their models (an autoscaler adds nodes meanwhile)


def require_ray():
    """Import Ray, or raise ImportError saying how to install the extra.

    Returns
    -------
    module
        The ``ray`` package.

    Raises
    ------
    ImportError
        When Ray (or pyarrow) is not installed.
    """
    try:
        import pyarrow  # noqa: F401  (URIs and Parquet need it)
        import ray
    except ImportError as error:
        raise ImportError(f"{RAY_MISSING} ({error})") from error
    return ray


def _as_source(result: ScanResult, source: str, local: str) -> ScanResult:
    """Report a result under its source: the URI, not the node's temporary copy."""
    if local == source:
        return result
    result.path = source
    if result.media.get("path") == local:
        result.media["path"] = source
    if isinstance(result.media.get("error"), str):
        result.media["error"] = result.media["error"].replace(local, source)
    return result


def _maybe_exit(source: str) -> None:
    """Test hook: exit this process hard on the file named by :data:`ACTOR_EXIT_ENV`.

    ``NAME`` (or ``*``) exits on every attempt; ``NAME:MARKER`` only while the marker file does
    not exist (it is created first), so the actor dies once and Ray's retry then succeeds. Several
    specs are separated by commas.
    """
    for spec in filter(None, os.environ.get(ACTOR_EXIT_ENV, "").split(",")):
        name, _, marker = spec.partition(":")
        if name not in ("*", os.path.basename(source)):
            continue
        if marker:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os._exit(70)


# -- in the cluster ------------------------------------------------------------------------------


class ScanActor:
    """A :class:`~deepscan.scanner.Scanner` in one Ray actor: models loaded once, files scored in turn.

    Construction errors (no detector, a checkpoint for other encoders, an encoder that cannot be
    loaded) are kept and reported by :meth:`ready`, so the driver can name them instead of seeing
    a dead actor.

    The models are loaded by the first call (and again by the first call after Ray restarts the
    actor): every call carries ``detector``, ``[ref]`` to the checkpoint's bytes that the driver
    shipped once with ``ray.put`` and holds for the whole scan, so no node needs a copy of the file.
    The reference rides with the calls, not the constructor, because Ray cannot promise that the
    constructor's object-store arguments outlive a restart (ray-project/ray#53727).

    Parameters
    ----------
    options : dict
        :class:`~deepscan.scanner.Scanner` arguments (``encoders``, ``experts``, ``cache``, ...).
    detector_name : str
        The checkpoint's file name (its stem names the detector in every result).
    threads : int
        Torch threads (the CPUs the actor was given).
    """

    def __init__(self, options: dict, detector_name: str, threads: int = 1):
        self.options = options
        self.detector_name = detector_name
        self.threads = max(1, int(threads))
        self.folder = _node_folder()
        self.error = None
        self.scanner = None
        self.job = None

    def _load(self, detector: list) -> None:
        """Build the scanner once: torch threads, the shipped checkpoint, encoders, experts."""
        if self.scanner is not None or self.error is not None:
            return
        import cv2
        import ray
        import torch

        from deepscan.scanner import Scanner

        torch.set_num_threads(self.threads)
        cv2.setNumThreads(1)
        try:
            path = _node_copy(ray.get(detector[0]), self.detector_name, self.folder)
            self.scanner = Scanner(detector=path, workers=0, threads=self.threads, **self.options)
            self.job = self.scanner._job()
        except (DeepscanError, ValueError, OSError) as error:
            self.error = (type(error).__name__, getattr(error, "message", None) or str(error))

    def ready(self, detector: list) -> dict:
        """Load the models (once).

        Returns
        -------
        dict
            ``{"error": (class name, message) or None, "detector": info, "job": DecodeJob, "node": id,
            "problems": {expert: why its weights are missing}}``.
        """
        import ray

        self._load(detector)
        if self.error is not None:
            return {"error": self.error, "detector": None, "job": None, "node": None, "problems": {}}
        return {"error": None, "detector": self.scanner.detector_info, "job": self.job,
                "node": ray.get_runtime_context().get_node_id(), "problems": self.scanner.problems}

    def _scanner(self, detector: list):
        self._load(detector)
        if self.error is not None:
            raise _typed_error(*self.error)
        return self.scanner

    def scan_files(self, files: list[tuple[int, str, str | None]], detector: list) -> list[tuple[int, ScanResult]]:
        """Fetch, decode, crop and score files; their windows share encoder and detector batches.

        Parameters
        ----------
        files : list of (index, source, local path or None)
        detector : list of ray.ObjectRef
            ``[ref]`` to the checkpoint's bytes (see the class docstring).

        Returns
        -------
        list of (index, ScanResult)
            One per file, in the order given.
        """
        from deepscan.aggregate import FileState
        from deepscan.workers import prepare_messages

        scanner = self._scanner(detector)
        states, locals_ = [], []
        for _, source, local in files:
            _maybe_exit(source)
            try:
                path = fetch(source, local, self.folder)
                states.append(FileState(path))
            except DeepscanError as error:
                path = source
                states.append(FileState(source, error=error, done=True))
            locals_.append(path)

        def source_messages():
            for i, state in enumerate(states):
                if state.done:
                    continue
                key, entry = scanner._lookup(state.path, self.job.key_config)
                if entry is not None:
                    yield i, ("hit", key, entry[0], entry[1])
                    yield i, ("end",)
                    continue
                for message in prepare_messages(state.path, self.job, scanner.cropper, key, scanner.experts):
                    yield i, message

        try:
            results = list(scanner._consume(states, source_messages(), None))
        finally:
            self._clean(files, locals_)
        return [(index, _as_source(r, source, local))
                for (index, source, _), r, local in zip(files, results, locals_)]

    def score_decoded(self, index: int, source: str, local: str, messages: list,
                      detector: list) -> list[tuple[int, ScanResult]]:
        """Score one file decoded by :func:`decode_file` (``decode="tasks"``).

        Parameters
        ----------
        index : int
        source : str
            The file as reported.
        local : str
            The path it was decoded from (a temporary copy for a URI).
        messages : list
            :func:`deepscan.workers.prepare_messages` output, or a cache hit.
        detector : list of ray.ObjectRef
            ``[ref]`` to the checkpoint's bytes.

        Returns
        -------
        list of (index, ScanResult)
            One item.
        """
        from deepscan.aggregate import FileState

        import numpy as np

        for message in messages:  # arrays read from the object store are read-only views of shared memory
            if message[0] == "window":
                window = message[1]
                window.crops, window.waveform = np.array(window.crops), np.array(window.waveform)
                window.frame_times_s = np.array(window.frame_times_s)
        state = FileState(local)
        result = next(iter(self._scanner(detector)._consume([state], ((0, m) for m in messages), None)))
        return [(index, _as_source(result, source, local))]

    def _clean(self, files, locals_) -> None:
        for (_, _, local), path in zip(files, locals_):
            if local is None and path.startswith(self.folder):
                try:
                    os.unlink(path)
                except OSError:
                    pass



def _node_folder() -> str:
    """This node's folder for the shipped detector and fetched copies (``$TMPDIR/deepscan-ray``)."""
    folder = os.path.join(tempfile.gettempdir(), "deepscan-ray")
    os.makedirs(folder, exist_ok=True)
    return folder


def _node_copy(blob: bytes, name: str, folder: str) -> Path:
    """The detector checkpoint written once per node, named by its content (atomic: several actors race)."""
    import hashlib

    digest = hashlib.sha256(blob).hexdigest()[:16]
    target = Path(folder) / digest / (os.path.basename(name) or "detector.safetensors")  # the name is reported
    if not target.exists() or target.stat().st_size != len(blob):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
        with os.fdopen(fd, "wb") as stream:
            stream.write(blob)
        os.replace(partial, target)
    return target


_DECODER: dict = {}  # per decoding worker process: the job, its face cropper, experts and cache


def decode_file(source: str, local: str | None, job, max_windows: int = SPLIT_MAX_WINDOWS) -> tuple[dict, list]:
    """A Ray task (``decode="tasks"``): fetch, hash, look up the node's cache, decode and crop one file.

    Parameters
    ----------
    source : str
        The file's path or URI.
    local : str or None
        Its local path, when it has one.
    job : deepscan.workers.DecodeJob
        The actors' decoding settings (window, sampling, face detector, experts, cache).
    max_windows : int
        Longer files are left to their actor (see below).

    Returns
    -------
    (status, messages)
        Two Ray objects (``num_returns=2``), so that the driver reads the small ``status``
        (``{"local": path decoded, "long": bool}``) and passes ``messages`` to an actor unread:
        :func:`deepscan.workers.prepare_messages` output or a cache hit. ``long`` is true (and
        ``messages`` empty) when the file has more than ``max_windows`` windows: its actor decodes
        it, streaming.
    """
    from deepscan.cache import FeatureCache, cache_key, file_sha256
    from deepscan.faces import FaceCropper
    from deepscan.media import probe
    from deepscan.workers import load_job_experts, prepare_messages

    if _DECODER.get("job") != job:
        import cv2

        cv2.setNumThreads(1)
        _DECODER.update(job=job, cropper=FaceCropper(job.face_config, detect_every=job.detect_every),
                        experts=load_job_experts(job), cache=FeatureCache(job.cache_path) if job.cache_path else None,
                        folder=_node_folder())
    try:
        path = fetch(source, local, _DECODER["folder"])
    except DeepscanError as error:
        return {"local": source, "long": False}, [("error", type(error).__name__, error.message), ("end",)]
    try:
        key = None
        if _DECODER["cache"] is not None:
            try:
                key = cache_key(file_sha256(path), **job.key_config)
                entry = _DECODER["cache"].get(key)
            except Exception:  # unreadable file (probe says why) or a locked cache: decode
                entry = None
            if entry is not None:
                return {"local": path, "long": False}, [("hit", key, entry[0], entry[1]), ("end",)]
        try:
            duration = probe(path, job.limits).duration_s or 0.0
        except Exception:
            duration = 0.0  # prepare_messages reports the error
        if duration > max_windows * job.window_s:
            return {"local": path, "long": True}, []
        messages = list(prepare_messages(path, job, _DECODER["cropper"], key, _DECODER["experts"]))
        return {"local": path, "long": False}, messages
    finally:
        if local is None and path != source:
            try:
                os.unlink(path)
            except OSError:
                pass


# -- the driver ----------------------------------------------------------------------------------


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join a Ray cluster: ``address``, else ``$RAY_ADDRESS``, else a new local cluster.

    Parameters
    ----------
    address : str, optional
        ``auto``, ``HOST:PORT`` of a head node's GCS, ``ray://HOST:10001`` (Ray Client), or
        ``local`` for a new cluster on this machine.
    num_cpus : int, optional
        CPUs of a new local cluster (default: all).

    Returns
    -------
    bool
        True when this call started Ray (the caller shuts it down); False when Ray was already
        initialised in this process.

    Raises
    ------
    ImportError
        Without Ray.
    ConnectionError
        When the cluster cannot be reached.
    """
    import logging

    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address == "local":
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConnectionError(f"cannot join the Ray cluster at {address}: {error}") from error
    return True


def _read_blob(path) -> tuple[bytes, str]:
    text = restore_uri(path)
    try:
        if is_uri(text):
            filesystem, inner = filesystem_for(text)
            with filesystem.open_input_stream(inner) as stream:
                return stream.read(), os.path.basename(inner)
        return Path(text).read_bytes(), os.path.basename(text)
    except Exception as error:
        raise CheckpointError(f"cannot read the detector checkpoint {text}: {error}") from None


def _typed_error(name: str, message: str) -> Exception:
    from deepscan import errors

    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, DeepscanError):
        try:
            return cls(message)
        except TypeError:
            pass
    return ValueError(message) if name == "ValueError" else errors.ModelLoadingError(message)


class RayScanner:
    """A pool of :class:`ScanActor` on a Ray cluster: the :class:`~deepscan.scanner.Scanner` API, scaled out.

    Parameters
    ----------
    detector : str or os.PathLike or None
        Detector checkpoint, a local path or URI read by the driver and shipped to the actors;
        ``None`` reads ``$DEEPSCAN_DETECTOR``, else the detector that ships
        (:func:`~deepscan.scanner.configured_detector`).
    encoders : str or None
        As :class:`~deepscan.scanner.Scanner` (a hub id or a folder present on every node).
    address : str, optional
        Cluster to join (see :func:`connect`); ignored when Ray is already initialised here.
    actors : int, optional
        Scoring actors. Default: one per GPU where the cluster has GPUs (and ``device`` is not
        ``cpu``), else one per ``actor_cpus`` CPUs (``decode="actor"``) or per two CPUs, leaving the
        others to decoding tasks (``decode="tasks"``).
    actor_cpus : float
        CPUs reserved per actor (its torch threads).
    actor_gpus : float, optional
        GPUs per actor (default: 1 where the cluster has GPUs, else 0).
    decode : str
        ``"actor"`` (decode where the models are) or ``"tasks"`` (decode in Ray tasks); see the
        module docstring.
    files_per_call : int
        Files per actor call in ``"actor"`` mode.
    num_cpus : int, optional
        CPUs of a new local cluster.
    start_timeout_s : float
        Seconds the actors may take to start and load their models; past it (the cluster lacks the
        CPUs or GPUs asked for, or an autoscaler never added them) a ``TimeoutError`` says so.
    **options
        Other :class:`~deepscan.scanner.Scanner` arguments (``device``, ``precision``, ``experts``,
        ``models_dir``, ``cache``, ``face_config``, ``batch_frames``, ``limits`` ...); ``workers``
        and ``threads`` are set per actor.

    Raises
    ------
    ImportError
        Without the ``ray`` extra.
    DetectorNotConfiguredError, CheckpointError, ModelLoadingError, ValueError
        As :class:`~deepscan.scanner.Scanner`, raised by the first actor that failed to load.
    ConnectionError
        When the cluster cannot be reached.
    TimeoutError
        When the actors did not start within ``start_timeout_s``.
    """

    def __init__(self, detector=None, encoders: str | None = None, *, address: str | None = None,
                 actors: int | None = None, actor_cpus: float = 1.0, actor_gpus: float | None = None,
                 decode: str = "actor", files_per_call: int = FILES_PER_CALL, num_cpus: int | None = None,
                 start_timeout_s: float = START_TIMEOUT_S, **options):
        from deepscan.scanner import configured_detector

        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, not {decode!r}")
        if actors is not None and actors < 1:
            raise ValueError(f"actors must be >= 1, got {actors}")
        options.pop("workers", None)
        options.pop("threads", None)
        blob, name = _read_blob(configured_detector(detector))
        ray = require_ray()
        self.decode = decode
        self.files_per_call = max(1, int(files_per_call))
        self.split_max_windows = SPLIT_MAX_WINDOWS  # "tasks" mode: longer files are decoded by their actor
        self.actors: list = []
        self._started_ray = connect(address, num_cpus)
        try:
            resources = ray.cluster_resources()
            cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
            if actor_gpus is None:
                actor_gpus = 1.0 if gpus >= 1 and options.get("device", "auto") != "cpu" else 0.0
            if actors is None:
                if actor_gpus:
                    actors = max(1, int(gpus // actor_gpus))
                elif decode == "tasks":
                    actors = max(1, int(cpus // 2))
                else:
                    actors = max(1, int(cpus // actor_cpus))
            env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
            actor_class = ray.remote(ScanActor).options(
                num_cpus=actor_cpus, num_gpus=actor_gpus, max_restarts=-1, max_task_retries=ACTOR_TASK_RETRIES,
                runtime_env={"env_vars": env} if env else None)
            self._blob = [ray.put(blob)]  # held while the actors live: a restarted actor reads it again
            options = {**options, "encoders": encoders}
            self.actors = [actor_class.remote(options, name, max(1, int(actor_cpus))) for _ in range(actors)]
            # CPUs no actor holds: where decoding tasks can run ("tasks" mode)
            self.free_cpus = cpus - actors * actor_cpus
            pending = [a.ready.remote(self._blob) for a in self.actors]
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=start_timeout_s)
            if len(ready) < len(pending):
                raise TimeoutError(
                    f"{len(pending) - len(ready)} of {actors} Ray actors did not start in {start_timeout_s:g} s: "
                    f"each asks for {actor_cpus:g} CPU and {actor_gpus:g} GPU, the cluster has {cpus:g} CPU and "
                    f"{gpus:g} GPU (other jobs may hold some); ask for fewer actors (--ray-actors)")
            infos = ray.get(pending)
        except BaseException:
            self.close()
            raise
        failed = [info["error"] for info in infos if info["error"] is not None]
        if failed:
            self.close()
            raise _typed_error(*failed[0])
        self.detector_info = infos[0]["detector"]
        self.job = infos[0]["job"]
        self.nodes = sorted({info["node"] for info in infos})
        self.expert_problems = {k: v for info in infos for k, v in info["problems"].items()}  # as Scanner.problems
        self._decode_task = ray.remote(decode_file).options(num_cpus=1, max_retries=DECODE_RETRIES, num_returns=2)

    def close(self) -> None:
        """Stop the actors, and the local cluster when this scanner started it."""
        try:
            import ray
        except ImportError:
            return
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:
                pass
        self.actors = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def scan(self, paths, recursive: bool = True, skip: Callable[[str], bool] | None = None,
             on_progress: Callable[[str, float], None] | None = None,
             decode: str | None = None) -> Iterator[ScanResult]:
        """Scan files, folders and URIs on the cluster, yielding each file's result as it is done.

        Parameters
        ----------
        paths : str, os.PathLike or iterable of them
            Local files and folders (on a shared file system when the cluster has several
            nodes), or URIs that :mod:`pyarrow.fs` understands.
        recursive : bool
            Walk into subfolders.
        skip : callable(path) -> bool, optional
            Files (as reported: path or URI) not to scan (``--resume``).
        on_progress : callable(path, media_seconds), optional
            Called as each file is done, with its duration.
        decode : str, optional
            Override of the scanner's ``decode`` for this call (the actors serve both).

        Yields
        ------
        ScanResult
            One per file, in completion order (not input order), failures included. If the
            generator is closed early (Ctrl-C), the calls in flight are cancelled.
        """
        if not self.actors:
            raise RuntimeError("this RayScanner is closed")
        decode = self.decode if decode is None else decode
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, not {decode!r}")
        if decode == "tasks" and self.free_cpus < 1:  # a decoding task would wait forever for a CPU
            import warnings

            warnings.warn(f"decode='tasks' needs a CPU that no actor holds ({self.free_cpus:g} free): decoding in "
                          "the actors instead", RuntimeWarning, stacklevel=2)
            decode = "actor"
        todo = []
        for item in list_inputs(paths, recursive=recursive):
            if skip is not None and skip(item.source):
                continue
            if item.error is not None:
                yield ScanResult.error(item.source, item.error.reason, item.error.message, detector=self.detector_info)
                continue
            todo.append(item)
        for result in self._run(todo, decode):
            if on_progress is not None:
                on_progress(result.path, float(result.media.get("duration_s") or 0.0))
            yield result

    def _crashed(self, item: InputFile) -> ScanResult:
        error = DecoderCrashedError(
            f"scorer crashed: the Ray actor scanning this file alone died {1 + ACTOR_TASK_RETRIES} times (out of "
            "memory, a decoder bug, or a lost node); the other files were scanned", item.source)
        return ScanResult.error(item.source, error.reason, error.message, detector=self.detector_info)

    def _run(self, todo: list[InputFile], decode: str) -> Iterator[ScanResult]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        items = {item.index: item for item in todo}
        done: set[int] = set()
        load = [0] * len(self.actors)
        # A call that fails because its actor died may be innocent: calls queued behind the one that killed
        # the actor die with it. Its files become suspects, each sent alone to an idle actor that gets nothing
        # else meanwhile; only a suspect that kills its actor again (Ray's retry included) is the culprit.
        suspects: deque = deque()  # file indices to run alone
        alone = [False] * len(self.actors)  # the actor runs a suspect: give it nothing else
        calls: dict = {}  # actor call ref -> (actor, [file index], suspect?)
        decodes: dict = {}  # decoding task's status ref -> (file index, its messages ref) ("tasks" mode)
        decoded: deque = deque()  # (file index, local path, messages ref) decoded, waiting for an actor
        if decode == "tasks":
            waiting = deque([[i] for i in items])
        else:
            indices = list(items)
            waiting = deque(indices[i:i + self.files_per_call] for i in range(0, len(indices), self.files_per_call))
        direct: deque = deque()  # "tasks" mode: files too long to ship decoded, scanned by an actor
        decode_limit = 2 * len(self.actors) + 2  # decoded files in flight or waiting: bounds the object store
        finished = False
        try:
            while waiting or calls or decodes or decoded or suspects or direct:
                if decode == "tasks":
                    while waiting and len(decodes) + len(decoded) < decode_limit:
                        (index,) = waiting.popleft()
                        item = items[index]
                        status, messages = self._decode_task.remote(item.source, item.local, self.job,
                                                                    self.split_max_windows)
                        decodes[status] = (index, messages)
                order = sorted(range(len(self.actors)), key=lambda a: load[a])
                for a in order:
                    if suspects and load[a] == 0:
                        index = suspects.popleft()
                        item = items[index]
                        call = self.actors[a].scan_files.remote([(index, item.source, item.local)], self._blob)
                        calls[call] = (a, [index], True)
                        load[a], alone[a] = 1, True
                    if suspects and a == order[0]:
                        continue  # let the least busy actor drain, to take a suspect alone
                    while load[a] < CALLS_IN_FLIGHT and not alone[a]:
                        if decode == "tasks" and decoded:
                            index, local, messages = decoded.popleft()
                            call = self.actors[a].score_decoded.remote(index, items[index].source, local, messages,
                                                                      self._blob)
                            batch = [index]
                        elif direct or (decode == "actor" and waiting):
                            batch = [direct.popleft()] if direct else waiting.popleft()
                            call = self.actors[a].scan_files.remote(
                                [(i, items[i].source, items[i].local) for i in batch], self._blob)
                        else:
                            break
                        calls[call] = (a, batch, False)
                        load[a] += 1
                ready, _ = ray.wait([*calls, *decodes], num_returns=1, fetch_local=False)
                ref = ready[0]
                if ref in decodes:
                    index, messages = decodes.pop(ref)
                    try:
                        status = ray.get(ref)
                    except (WorkerCrashedError, RayTaskError) as error:
                        done.add(index)
                        yield self._decode_failed(items[index], error)
                        continue
                    if status["long"]:  # decoded by its actor, window by window
                        direct.append(index)
                        continue
                    decoded.append((index, status["local"], messages))
                    continue
                a, batch, suspect = calls.pop(ref)
                load[a] -= 1
                alone[a] = alone[a] and not suspect
                try:
                    results = ray.get(ref)
                except RayActorError:
                    if not suspect:  # this call's files may be innocent: each runs alone next
                        suspects.extend(batch)
                        continue
                    results = [(batch[0], self._crashed(items[batch[0]]))]
                except RayTaskError as error:  # a bug in deepscan, not in a file: report it, go on
                    results = [(i, self._decode_failed(items[i], error)) for i in batch]
                for index, result in results:
                    if index in done:
                        continue
                    done.add(index)
                    yield result
            finished = True
        finally:
            if not finished:
                for ref in [*calls, *decodes]:
                    try:
                        ray.cancel(ref)
                    except Exception:
                        pass

    def _decode_failed(self, item: InputFile, error: Exception) -> ScanResult:
        from ray.exceptions import WorkerCrashedError

        if isinstance(error, WorkerCrashedError):
            crash = DecoderCrashedError(
                f"decoder crashed: the Ray task decoding this file died {1 + DECODE_RETRIES} times", item.source)
            return ScanResult.error(item.source, crash.reason, crash.message, detector=self.detector_info)
        cause = getattr(error, "cause", None) or error
        text = f"could not scan: {type(cause).__name__}: {cause}"
        return ScanResult.error(item.source, "scan error", text, detector=self.detector_info)


def scan_ray(paths, detector=None, encoders: str | None = None, **options) -> list[ScanResult]:
    """Scan files, folders and URIs on a Ray cluster with one call (the Ray twin of :func:`deepscan.scanner.scan`).

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Local files and folders, or URIs (``s3://``, ``gs://``, ``file://`` ...).
    detector : str or os.PathLike, optional
        Detector checkpoint; ``None`` reads ``$DEEPSCAN_DETECTOR``.
    encoders : str or None
        ``"default"``, ``"debug"``, a folder present on every node, or ``None`` for the encoders
        the detector was trained on (as :class:`~deepscan.scanner.Scanner`).
    **options
        :class:`RayScanner` and :class:`~deepscan.scanner.Scanner` arguments (``address``,
        ``actors``, ``decode``, ``experts``, ``device`` ...).

    Returns
    -------
    list of ScanResult
        One per file, in input order.
    """
    with RayScanner(detector=detector, encoders=encoders, **options) as scanner:
        results = list(scanner.scan(paths))
    order = {item.source: item.index for item in list_inputs(paths)}
    return sorted(results, key=lambda r: order.get(r.path, len(order)))
