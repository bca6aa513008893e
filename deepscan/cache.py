"""An on-disk feature cache: SQLite, keyed by file content hash and extractor configuration.

A rescan of an unchanged file with the same encoders and sampling skips decoding and encoding.
SQLite gives crash safety (every write is one transaction, journal in WAL mode) and lets several
processes read while one writes (https://www.sqlite.org/wal.html). Values are safetensors blobs
(tensors plus a JSON string), never pickles.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

CACHE_ENV = "DEEPSCAN_CACHE_DIR"  # overrides where caches live
CACHE_FILE = "features.sqlite"
HASH_CHUNK_BYTES = 1 << 20  # read files in 1 MiB chunks when hashing
BUSY_TIMEOUT_S = 30.0  # wait this long for another process's write lock
SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created REAL NOT NULL
)
"""


CORRUPT_SUFFIX = ".corrupt-"  # a corrupt cache file is renamed NAME.corrupt-<time>, not deleted
_SQLITE_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB


def is_corruption(error: BaseException) -> bool:
    """Whether a SQLite error says the file is damaged or not a database (not: locked, busy, read-only).

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    bool
    """
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in _SQLITE_CORRUPT_CODES
    return not isinstance(error, (sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError))


def default_cache_dir() -> Path:
    """Where deepscan caches live: ``$DEEPSCAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepscan``, else ``~/.cache/deepscan``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepscan"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content, read in chunks (memory stays bounded).

    Only a regular file is read, and opening never blocks: a named pipe (or a file replaced by
    one after it was listed) raises instead of waiting for a writer forever.

    Raises
    ------
    OSError
        When the file cannot be read or is not a regular file.
    """
    digest = hashlib.sha256()
    if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: opening a device can act on it
        raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(content_sha256: str, **config) -> str:
    """Key of one file's features: its content hash plus everything that shapes the features.

    Parameters
    ----------
    content_sha256 : str
        :func:`file_sha256` of the file.
    **config
        JSON-serialisable settings (extractor config hash, window length, visual fps, face
        detector, pseudo-fake kind and seed, ...).

    Returns
    -------
    str
        Hex SHA-256 of the canonical JSON of all of it.
    """
    blob = json.dumps({"content": content_sha256, **config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def pack(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    """Serialise tensors and a JSON-able dict into one safetensors blob."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return save_tensors(tensors, metadata={"meta": json.dumps(meta)})


def unpack(blob: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    """Inverse of :func:`pack`.

    Raises
    ------
    ValueError
        When the blob is not a safetensors blob written by :func:`pack`.
    """
    try:
        tensors = load_tensors(blob)
        header_len = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get("meta", "{}"))
    except Exception as error:  # corrupt entry: treat as a miss, never crash a scan
        raise ValueError(f"corrupt cache entry: {error}") from error
    return tensors, meta


class FeatureCache:
    """A key -> (tensors, meta) store in one SQLite file, safe under crashes and concurrent readers.

    A file that is damaged or not a database (overwritten, cut by a full disk) is moved aside as
    ``features.sqlite.corrupt-<time>`` with a ``RuntimeWarning``, and a new,
    empty cache takes its place: the scan goes on, recomputing what was cached.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The SQLite file, or a directory to hold :data:`CACHE_FILE`; default
        :func:`default_cache_dir`.

    Notes
    -----
    Each process opens its own connection (SQLite connections must not cross processes); one
    connection per thread inside a process.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        path = Path(path) if path is not None else default_cache_dir()
        if path.suffix not in (".sqlite", ".db", ".sqlite3"):
            path = path / CACHE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self.set_aside: Path | None = None  # where a corrupt cache file was moved, if one was
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            if not is_corruption(error):
                raise
            self._set_aside(error)
            self._open()
        self.hits = 0
        self.misses = 0

    def _open(self) -> None:
        """Create the table if needed, and read the file's schema: a file that is not a database fails here."""
        with self._connect() as db:
            db.execute(SCHEMA)
            db.execute("SELECT key FROM features LIMIT 1").fetchall()

    def _set_aside(self, error: Exception) -> None:
        """Move a corrupt cache file (and its WAL) aside as ``NAME.corrupt-<time>``, warn, start afresh.

        The entries are only features that a scan recomputes, so nothing is lost but time; the file
        is kept (not deleted) for whoever wants to look at it.
        """
        import warnings

        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}{CORRUPT_SUFFIX}{stamp}")
        n = 1
        while aside.exists():
            aside, n = self.path.with_name(f"{self.path.name}{CORRUPT_SUFFIX}{stamp}-{n}"), n + 1
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:  # another process (a Ray actor on this node) moved it first
            return
        for sidecar in ("-wal", "-shm"):  # the WAL belongs to the old file; the shared-memory index is rebuilt
            old = self.path.with_name(self.path.name + sidecar)
            if old.exists():
                if sidecar == "-wal":
                    os.replace(old, aside.with_name(aside.name + sidecar))
                else:
                    old.unlink(missing_ok=True)
        self.set_aside = aside
        warnings.warn(f"the feature cache {self.path} was corrupt ({error}): moved aside to {aside.name} and "
                      "started afresh; files scanned before are decoded again once", RuntimeWarning, stacklevel=3)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def get(self, key: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The entry under ``key``, or ``None`` on a miss (a corrupt entry counts as a miss).

        A cache file found damaged here is set aside and started afresh (a miss), as when opened.
        """
        try:
            row = self._connect().execute("SELECT value FROM features WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as error:
            if not is_corruption(error):
                raise
            self._set_aside(error)
            self._open()
            row = None
        if row is None:
            self.misses += 1
            return None
        try:
            value = unpack(row[0])
        except ValueError:
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Store an entry (replacing any under the same key) in one transaction."""
        blob = pack(tensors, meta)
        insert = "INSERT OR REPLACE INTO features (key, value, created) VALUES (?, ?, ?)"
        try:
            self._connect().execute(insert, (key, blob, time.time()))
        except sqlite3.DatabaseError as error:  # damaged since it was opened: set aside, write to a new one
            if not is_corruption(error):
                raise
            self._set_aside(error)
            self._open()
            self._connect().execute(insert, (key, blob, time.time()))

    def __contains__(self, key: str) -> bool:
        return self._connect().execute("SELECT 1 FROM features WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM features").fetchone()[0]

    def clear(self) -> None:
        """Delete every entry."""
        self._connect().execute("DELETE FROM features")
