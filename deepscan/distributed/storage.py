"""Where files and results live: local paths and URIs, listing, fetching, Parquet and JSON Lines outputs.

Anything that :mod:`pyarrow.fs` understands (``s3://``, ``gs://``, ``hdfs://``, ``file://``) can be
scanned and written to; local paths go through :func:`deepscan.media.iter_media_files` as in a local
scan. Used by the Ray scanner (:mod:`deepscan.distributed.ray`), whose driver lists and whose actors
fetch; needs pyarrow (the ``ray`` extra) only for URIs and Parquet.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deepscan.errors import DeepscanError, UnreadableFileError
from deepscan.results import ScanResult

__all__ = ["is_uri", "restore_uri", "filesystem_for", "InputFile", "list_inputs", "fetch", "write_parquet",
           "read_parquet", "open_text_output", "prior_jsonl_results", "PARQUET_SCALARS", "PARQUET_JSON"]

DOWNLOAD_CHUNK = 1 << 20  # bytes per read when fetching a file from a URI to the node's temp folder

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_FOLDED_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")  # what pathlib makes of "s3://b/k": "s3:/b/k"


def is_uri(text: str) -> bool:
    """True when ``text`` has a ``scheme://`` prefix (``s3://``, ``gs://``, ``file://``, ...)."""
    return bool(_URI.match(str(text)))


def restore_uri(path) -> str:
    """A path or URI as text, with the ``//`` that :class:`pathlib.Path` folds restored.

    ``Path("s3://bucket/key")`` prints as ``s3:/bucket/key``; a CLI argument typed as a path comes
    back that way. Where no such local file exists, the URI is rebuilt: ``s3:/b/k`` ->
    ``s3://b/k``, ``file:/tmp/x`` -> ``file:///tmp/x``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    text = os.fspath(path)
    match = _FOLDED_URI.match(text)
    if match is None or os.path.lexists(text):
        return text
    scheme, rest = match.group(1), text[match.end():]
    return f"{scheme}:///{rest}" if scheme.lower() == "file" else f"{scheme}://{rest}"


def filesystem_for(uri: str):
    """``(pyarrow FileSystem, path inside it)`` for a URI (:meth:`pyarrow.fs.FileSystem.from_uri`)."""
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


@dataclass
class InputFile:
    """One file to scan.

    Attributes
    ----------
    index : int
        Position in the listing (input order).
    source : str
        The file as reported in its result: the path as given or found, or its URI.
    local : str or None
        Absolute local path the actors open (the same on every node: a shared file system);
        ``None`` for a URI, which each actor or task fetches itself.
    error : DeepscanError or None
        Why the file cannot be scanned, found while listing (an unreadable entry).
    """

    index: int
    source: str
    local: str | None
    error: DeepscanError | None = None


def list_inputs(paths, recursive: bool = True) -> list[InputFile]:
    """Expand local paths and URIs into the files to scan, in a deterministic order.

    Local paths go through :func:`deepscan.media.iter_media_files` (as a local scan: sniffed
    content, hazards reported). A URI naming a file is kept as is; a URI naming a folder is listed
    through :mod:`pyarrow.fs` (recursively unless ``recursive`` is false), keeping the files whose
    extension is in :data:`deepscan.media.MEDIA_EXTENSIONS` (content is not sniffed remotely).

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files, folders and URIs.
    recursive : bool
        Walk into subfolders.

    Returns
    -------
    list of InputFile

    Raises
    ------
    ImportError
        For a URI without pyarrow installed.
    """
    from deepscan.media import MEDIA_EXTENSIONS, iter_media_files

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[InputFile] = []

    def add(source: str, local: str | None, error: DeepscanError | None = None) -> None:
        out.append(InputFile(len(out), source, local, error))

    for item in paths:
        text = restore_uri(item)
        if not is_uri(text):
            for found in iter_media_files([text], recursive=recursive,
                                          on_error=lambda p, e: add(str(p), os.path.abspath(p), e)):
                add(str(found), os.path.abspath(found))
            continue
        from pyarrow import fs

        try:
            filesystem, root = filesystem_for(text)
            info = filesystem.get_file_info(root)
        except Exception as error:  # bad URI, missing credentials, unreachable store
            add(text, None, UnreadableFileError(f"cannot list {text}: {error}", text))
            continue
        if info.type != fs.FileType.Directory:
            add(text, None)  # a file, or missing: the actor's fetch says why
            continue
        selector = fs.FileSelector(root, recursive=recursive)
        base = text.rstrip("/")
        entries = sorted(filesystem.get_file_info(selector), key=lambda e: e.path)
        for entry in entries:
            if entry.type != fs.FileType.File:
                continue
            if os.path.splitext(entry.path)[1].lower() not in MEDIA_EXTENSIONS:
                continue
            relative = entry.path[len(root.rstrip("/")):].lstrip("/")
            add(f"{base}/{relative}", None)
    return out


def fetch(source: str, local: str | None, folder: str) -> str:
    """The local path of a file to scan: ``local`` as is, or a URI copied into ``folder``.

    Parameters
    ----------
    source : str
        The file's path or URI.
    local : str or None
        Its local path, when it has one.
    folder : str
        Node-local temporary folder for fetched copies (the name keeps the extension).

    Returns
    -------
    str

    Raises
    ------
    UnreadableFileError
        When the URI cannot be opened or read.
    """
    if local is not None:
        return local
    suffix = os.path.splitext(source)[1][:16]
    target = tempfile.NamedTemporaryFile(dir=folder, suffix=suffix, delete=False)
    try:
        filesystem, path = filesystem_for(source)
        with filesystem.open_input_stream(path) as remote, target:
            while chunk := remote.read(DOWNLOAD_CHUNK):
                target.write(chunk)
    except Exception as error:
        target.close()
        os.unlink(target.name)
        raise UnreadableFileError(f"cannot read {source}: {error}", source) from None
    return target.name


# -- Parquet ---------------------------------------------------------------------------------------

PARQUET_SCALARS = (("path", "string"), ("status", "string"), ("reason", "string"), ("verdict", "string"),
                   ("p_fake", "float64"), ("threshold", "float64"), ("margin", "float64"), ("top_modality", "string"),
                   ("elapsed_s", "float64"))
PARQUET_JSON = ("uncertain_band", "modalities", "cues", "windows", "media", "faces", "detector", "thumbnails")


def _parquet_schema():
    import pyarrow as pa

    fields = [pa.field(name, getattr(pa, kind)()) for name, kind in PARQUET_SCALARS]
    fields += [pa.field(name, pa.string()) for name in PARQUET_JSON]
    return pa.schema(fields, metadata={b"deepscan": b"scan results: nested fields as JSON text"})


def write_parquet(results, target) -> str:
    """Write results as one Parquet file: a local path or a URI.

    The record is :meth:`ScanResult.to_dict`: its scalar fields are typed columns (``path``,
    ``status``, ``reason``, ``verdict``, ``p_fake``, ``threshold``, ``margin``, ``top_modality``,
    ``elapsed_s``), its nested ones (``uncertain_band``, ``modalities``, ``cues``, ``windows``,
    ``media``, ``faces``, ``detector``, ``thumbnails``) JSON text, so that every result has the same
    columns.

    Parameters
    ----------
    results : iterable of ScanResult
    target : str or os.PathLike

    Returns
    -------
    str
        Where it was written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepscan.writers.safe import json_dumps

    rows = [r.to_dict() for r in results]
    columns = {name: [row.get(name) for row in rows] for name, _ in PARQUET_SCALARS}
    columns.update({name: [json_dumps(row.get(name)) for row in rows] for name in PARQUET_JSON})
    table = pa.Table.from_pydict(columns, schema=_parquet_schema())
    text = restore_uri(target)
    if is_uri(text):
        filesystem, path = filesystem_for(text)
        if "/" in path.strip("/"):
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
        pq.write_table(table, path, filesystem=filesystem)
    else:
        Path(text).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, text)
    return text


def read_parquet(source) -> list[ScanResult]:
    """Results from a file written by :func:`write_parquet` (local path or URI)."""
    import json

    import pyarrow.parquet as pq

    text = restore_uri(source)
    if is_uri(text):
        filesystem, path = filesystem_for(text)
        table = pq.read_table(path, filesystem=filesystem)
    else:
        table = pq.read_table(text)
    out = []
    for row in table.to_pylist():
        for name in PARQUET_JSON:
            row[name] = json.loads(row[name]) if row.get(name) is not None else None
        row = {k: v for k, v in row.items() if v is not None or k in dict(PARQUET_SCALARS)}
        out.append(ScanResult.from_dict(row))
    return out


# -- text outputs ----------------------------------------------------------------------------------

def open_text_output(target: str | None, prior: bytes, append_local: bool):
    """A text stream for results: stdout, a local file, or a URI (``prior`` bytes written first).

    Parameters
    ----------
    target : str or None
        ``None`` for stdout, a local path (parent folders are made), or a URI.
    prior : bytes
        Bytes written first to a URI (an object store has no append: ``--resume`` rewrites them).
    append_local : bool
        Append to a local file instead of truncating it.

    Returns
    -------
    (stream, bool)
        The text stream and whether the caller closes it.
    """
    import sys

    if target is None:
        return sys.stdout, False
    if is_uri(target):
        filesystem, path = filesystem_for(target)
        if "/" in path.strip("/"):
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        raw = filesystem.open_output_stream(path)
        if prior:
            raw.write(prior)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True), True
    from deepscan.writers.files import LineSafeFile  # a failing write (disk full) leaves only whole lines

    Path(target).parent.mkdir(parents=True, exist_ok=True)
    return LineSafeFile(target, append=append_local), True


def prior_jsonl_results(target: str) -> tuple[list[ScanResult], bytes]:
    """Results already in a JSON Lines object behind a URI, and the bytes to keep when rewriting it.

    A line cut by a kill (no final newline) is dropped. Local files are read by the CLI's
    ``--resume``, which also truncates such a line in place.

    Parameters
    ----------
    target : str
        A URI (``s3://...``, ``file://...``).

    Returns
    -------
    (list of ScanResult, bytes)
        Empty when the object does not exist.

    Raises
    ------
    ValueError
        When the object is not a JSON Lines results file.
    """
    from pyarrow import fs

    from deepscan.writers.jsonout import read_jsonl

    filesystem, path = filesystem_for(target)
    if filesystem.get_file_info(path).type == fs.FileType.NotFound:
        return [], b""
    with filesystem.open_input_stream(path) as stream:
        data = stream.read()
    data = data[: data.rfind(b"\n") + 1]  # a line cut by a kill is dropped
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as copy:
        copy.write(data)
        copy.flush()
        return list(read_jsonl(copy.name)), data
