"""JSON and JSON Lines output of scan results."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Iterable, Iterator

from deepscan.results import ScanResult
from deepscan.writers.safe import json_dumps


class JsonLinesWriter:
    """Write one JSON object per line, flushed (and fsynced for files) after every result.

    Parameters
    ----------
    stream : text stream
        Where to write (stdout or an open file).

    Notes
    -----
    Each line is complete when written, so a scan killed mid-batch leaves a valid JSON Lines file
    with every finished result (https://jsonlines.org).
    """

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, result: ScanResult) -> None:
        """Append one result as a line and flush it to disk."""
        self.stream.write(json_dumps(result.to_dict()) + "\n")  # one line whatever the names hold
        self.stream.flush()
        try:
            os.fsync(self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # a terminal or pipe: nothing to sync


def write_json(results: Iterable[ScanResult], stream: IO[str]) -> None:
    """Write all results as one pretty-printed JSON array."""
    stream.write(json_dumps([r.to_dict() for r in results], indent=2))
    stream.write("\n")


def read_jsonl(path: str | os.PathLike) -> Iterator[ScanResult]:
    """Read results from a JSON Lines file, skipping a truncated last line.

    Lines end at ``\\n`` only (as JSON Lines says), never at the other characters that
    ``str.splitlines`` takes for line ends. A last line without its ``\\n`` that is not valid
    JSON was cut by a kill and is skipped; any other line must be a whole result record.

    Parameters
    ----------
    path : str or PathLike
        File written by :class:`JsonLinesWriter`.

    Yields
    ------
    ScanResult

    Raises
    ------
    ValueError
        When a line is not valid UTF-8 JSON, or not a result record (an object with a string
        ``path`` and ``status`` whose fields fit :class:`ScanResult`).
    """
    lines = Path(path).read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            if number == len(lines):
                return  # a line cut by a kill (no newline after it): the results before it stand
            raise ValueError(f"{path}:{number}: not a JSON Lines results file ({error})") from None
        try:
            if not (isinstance(data, dict) and isinstance(data.get("path"), str) and isinstance(data.get("status"), str)):
                raise TypeError("not an object with a string path and status")
            result = ScanResult.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{path}:{number}: not a deepscan result record ({error})") from None
        yield result
