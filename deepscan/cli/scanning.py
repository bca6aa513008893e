"""What ``check`` and ``check --ray`` share while they scan: progress bars, resuming, result writers."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)
from rich.text import Text

from deepscan.cli.common import OutputFormat, stderr

__all__ = ["NoProgress", "MediaRateColumn", "media_progress", "file_progress", "resume_from", "streaming_writer",
           "write_final"]


def resume_from(output: Path) -> list:
    """Results already in a JSON Lines file; a truncated last line (a killed scan) is cut off.

    Raises
    ------
    ValueError
        When the file is not a JSON Lines results file.
    """
    from deepscan.writers.jsonout import read_jsonl

    if not output.exists():
        return []
    with open(output, "rb+") as raw:
        data = raw.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # the last line was being written when the scan was killed
            raw.truncate(end)
    return list(read_jsonl(output))


def streaming_writer(output_format: OutputFormat, stream):
    """A writer that writes each result as it comes (JSON Lines, CSV), or ``None`` for formats written at the end."""
    from deepscan.writers import CsvWriter, JsonLinesWriter

    if output_format == OutputFormat.jsonl:
        return JsonLinesWriter(stream)
    if output_format == OutputFormat.csv:
        return CsvWriter(stream)
    return None


def write_final(output_format: OutputFormat, results, stream, output) -> None:
    """Write the formats that need every result (table, JSON, JUnit) to ``stream``; the streamed ones are done."""
    from deepscan.writers import render_table, write_json, write_junit

    if output_format == OutputFormat.table:
        Console(file=stream, soft_wrap=False, width=None if output is None else 160).print(render_table(results))
    elif output_format == OutputFormat.json:
        write_json(results, stream)
    elif output_format == OutputFormat.junit:
        write_junit(results, stream)


class NoProgress:
    """A progress bar that shows nothing: quiet runs and output that is not a terminal."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def advance(self, *args, **kwargs):
        pass

    def update(self, *args, **kwargs):
        pass


class MediaRateColumn(ProgressColumn):
    """How fast the scan goes: media seconds scanned per wall-clock second (``3.2 media-s/s``).

    Rich's estimate over the last 30 s of progress; ``–`` until there are two updates to measure.
    """

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("– media-s/s", style="progress.data.speed")
        return Text(f"{speed:.1f} media-s/s" if speed < 100 else f"{speed:.0f} media-s/s",
                    style="progress.data.speed")


def media_progress(disabled: bool):
    """The local check's bar on stderr: files done, media seconds scanned, the rate (media seconds per
    second), elapsed and remaining time."""
    if disabled:
        return NoProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f} media-s"),
                    MediaRateColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True)


def file_progress(disabled: bool):
    """The Ray check's spinner on stderr: files done and elapsed time (a cluster reports per file)."""
    if disabled:
        return NoProgress()
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=stderr,
                    transient=True)
