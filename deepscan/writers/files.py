"""Results files that keep their whole lines when a write fails (a full disk).

A JSON Lines file is only as good as its last line: ``--resume`` reads every line, and a half line
in the middle of a file would stop it. :class:`LineSafeFile` writes each piece of text at once,
unbuffered, keeps where its last whole line ends, and when a write fails cuts the file back to it
before raising :class:`~deepscan.errors.OutputWriteError`: every line already in the file stays
whole, nothing half-written stays behind it, and a later ``--resume`` finishes the job.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from deepscan.errors import OutputWriteError

__all__ = ["LineSafeFile"]


class LineSafeFile:
    """A UTF-8 text file for results, written unbuffered; a failing write leaves only whole lines.

    Parameters
    ----------
    path : str or os.PathLike
        The file (created, or truncated unless ``append``).
    append : bool
        Append to what the file holds (``--resume``).

    Attributes
    ----------
    path : Path
    lines : int
        Whole lines written through this object.

    Notes
    -----
    Text goes to the file as it is given (no newline translation, as ``open(..., newline="")``).
    A write that fails raises :class:`~deepscan.errors.OutputWriteError` (from the ``OSError``),
    once the file has been cut back to the end of its last whole line; the object refuses later
    writes.
    """

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = Path(path)
        self._raw = open(self.path, "ab" if append else "wb", buffering=0)
        self._end = os.fstat(self._raw.fileno()).st_size  # where the next byte goes (O_APPEND: the end)
        self._whole = self._end  # the end of the last whole line (what a failure cuts back to)
        self.lines = 0
        self._failed: OutputWriteError | None = None

    # -- the text-stream interface writers use ---------------------------------------------------

    @property
    def name(self) -> str:
        return os.fspath(self.path)

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._raw.fileno()

    def flush(self) -> None:
        """Nothing to flush: every write went to the file at once."""

    def write(self, text: str) -> int:
        """Write ``text`` at the end of the file.

        Raises
        ------
        OutputWriteError
            When the file system refuses it (``ENOSPC``, ``EIO``, ``EROFS`` ...); the file is then
            cut back to its last whole line.
        """
        if self._failed is not None:
            raise self._failed
        data = text.encode(self.encoding, self.errors)
        done = 0
        try:
            while done < len(data):
                written = self._write_bytes(memoryview(data)[done:])
                if not written:
                    raise OSError(errno.EIO, "the file system took no bytes")
                done += written
        except OSError as error:
            self._end += done
            self._fail(error)
        newline = data.rfind(b"\n")
        if newline >= 0:
            self._whole = self._end + newline + 1
            self.lines += data.count(b"\n")
        self._end += len(data)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- internals -------------------------------------------------------------------------------

    def _write_bytes(self, data: memoryview) -> int:
        """One ``write(2)``: the number of bytes the file system took (fewer than asked when it fills)."""
        return self._raw.write(data)

    def _fail(self, error: OSError) -> None:
        cut = ""
        try:
            if self._end > self._whole:
                os.ftruncate(self._raw.fileno(), self._whole)
                cut = " (the line being written was cut off)"
            self._end = self._whole
        except OSError as truncate_error:
            cut = f" (and the half-written line at its end could not be cut off: {truncate_error.strerror})"
        reason = error.strerror or str(error)
        self._failed = OutputWriteError(
            f"could not write to the results file: {reason}. Every line written before it is whole "
            f"({self.lines} this run){cut}. Free some space (or write elsewhere) and run the command again; for a JSON Lines "
            "output, the same command with --resume scans only the files not in it yet",
            self.path)
        raise self._failed from error
