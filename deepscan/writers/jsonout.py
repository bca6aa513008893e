"""JSON and JSON Lines output of scan results."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Iterable, Iterator

from deepscan.results import ScanResult


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
        self.stream.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self.stream.flush()
        try:
            os.fsync(self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # a terminal or pipe: nothing to sync


def write_json(results: Iterable[ScanResult], stream: IO[str]) -> None:
    """Write all results as one pretty-printed JSON array."""
    json.dump([r.to_dict() for r in results], stream, ensure_ascii=False, indent=2)
    stream.write("\n")


def read_jsonl(path: str | os.PathLike) -> Iterator[ScanResult]:
    """Read results from a JSON Lines file, skipping a truncated last line.

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
        When a line other than the last is not valid JSON (the file is not a results file).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                return  # a line cut by a kill: the results before it stand
            raise ValueError(f"{path}:{number}: not a JSON Lines results file ({error})") from None
        yield ScanResult.from_dict(data)
