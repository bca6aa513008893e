"""Options, exit codes and output helpers shared by the CLI commands."""

from __future__ import annotations

import contextlib
import enum
import sys
from pathlib import Path

from rich.console import Console

EXIT_OK = 0  # every file scanned (or probed); no fake found, or --fail-on-fake not given
EXIT_FAKE = 1  # --fail-on-fake and at least one file judged fake
EXIT_USAGE = 2  # bad command line, missing path, or no detector configured
EXIT_FILE_ERRORS = 3  # at least one file could not be read or scanned (the others were)
EXIT_MODEL_ERROR = 4  # an encoder or the detector could not be loaded
EXIT_INTERRUPTED = 130  # Ctrl-C; results written so far are kept

stderr = Console(stderr=True, soft_wrap=True)  # messages stay whole lines, greppable


class OutputFormat(str, enum.Enum):
    """Formats of ``--format``."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    junit = "junit"


@contextlib.contextmanager
def open_output(path: Path | None, append: bool = False):
    """Yield a text stream: ``path`` (UTF-8, line-buffered) or stdout when ``path`` is None."""
    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8", newline="", buffering=1) as stream:
        yield stream


def progress_enabled(quiet: bool) -> bool:
    """Show a progress bar only to a person: not when quiet, and only if stderr is a terminal."""
    return not quiet and stderr.is_terminal
