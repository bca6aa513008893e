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
        with self._connect() as db:
            db.execute(SCHEMA)
        self.hits = 0
        self.misses = 0

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def get(self, key: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The entry under ``key``, or ``None`` on a miss (a corrupt entry counts as a miss)."""
        row = self._connect().execute("SELECT value FROM features WHERE key = ?", (key,)).fetchone()
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
        self._connect().execute(
            "INSERT OR REPLACE INTO features (key, value, created) VALUES (?, ?, ?)", (key, blob, time.time())
        )

    def __contains__(self, key: str) -> bool:
        return self._connect().execute("SELECT 1 FROM features WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM features").fetchone()[0]

    def clear(self) -> None:
        """Delete every entry."""
        self._connect().execute("DELETE FROM features")
