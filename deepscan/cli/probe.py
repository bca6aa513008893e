"""``deepscan probe PATH...``: print what deepscan sees in each file, or why it can't read it."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.console import Console
from rich.table import Table

from deepscan.cli.common import EXIT_FILE_ERRORS, EXIT_OK, EXIT_USAGE, stderr
from deepscan.errors import DeepscanError
from deepscan.media import iter_media_files, probe as probe_file
from deepscan.writers.safe import json_dumps, rich_text

PROBE_FIELDS = (
    "path", "status", "reason", "kind", "container", "video_codec", "audio_codec", "duration_s",
    "width", "height", "fps", "frame_count", "has_audio", "audio_sample_rate", "audio_channels",
    "rotation", "size_bytes",
)


def probe_record(path: Path) -> dict:
    """Probe one file into a flat record with ``status`` and ``reason`` (never raises for media errors).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    dict
        The :data:`PROBE_FIELDS`; ``status`` is ``"ok"`` or ``"error"``, ``reason`` the error's
        reason and ``message`` its explanation.
    """
    record = dict.fromkeys(PROBE_FIELDS)
    record["path"] = str(path)
    try:
        info = probe_file(path)
    except DeepscanError as error:
        record.update(status="error", reason=error.reason, message=error.message)
        return record
    record.update({k: v for k, v in info.to_dict().items() if k in record}, path=str(path), status="ok")
    return record


def probe(
    paths: List[Path] = typer.Argument(..., help="Files or directories (walked recursively)."),
    output_format: str = typer.Option("table", "--format", "-f", help="table or json (one object per line)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Walk into subdirectories."),
) -> None:
    """Print what deepscan sees in each media file: kind, codecs, duration, size, fps, audio, rotation."""
    if output_format not in ("table", "json"):
        stderr.print(f"[red]error:[/] --format must be table or json, not {output_format!r}")
        raise typer.Exit(EXIT_USAGE)
    records = []
    unreadable = []

    def on_error(path, error):
        unreadable.append({**dict.fromkeys(PROBE_FIELDS), "path": str(path), "status": "error",
                           "reason": error.reason, "message": error.message})

    console = Console(soft_wrap=True)
    for path in iter_media_files(paths, recursive=recursive, on_error=on_error):
        while unreadable:
            records.append(unreadable.pop(0))
            _emit(records[-1], output_format)
        records.append(probe_record(path))
        _emit(records[-1], output_format)
    for record in unreadable:
        records.append(record)
        _emit(record, output_format)
    if output_format == "table":
        console.print(_table(records))
    raise typer.Exit(EXIT_FILE_ERRORS if any(r["status"] == "error" for r in records) else EXIT_OK)


def _emit(record: dict, output_format: str) -> None:
    if output_format == "json":
        typer.echo(json_dumps(record))  # one line per file whatever its name holds


def _table(records: list[dict]) -> Table:
    table = Table(title="deepscan probe")
    table.add_column("file", overflow="fold", ratio=3)
    for column in ("kind", "duration", "size", "fps", "audio", "rotation", "status"):
        table.add_column(column, no_wrap=True)
    for r in records:
        if r["status"] != "ok":
            table.add_row(rich_text(r["path"]), "", "", "", "", "", "", rich_text(r["reason"], style="red"))
            continue
        size = f"{r['width']}x{r['height']}" if r["width"] else ""
        audio = f"{r['audio_sample_rate']} Hz x{r['audio_channels']}" if r["has_audio"] else "none"
        duration = f"{r['duration_s']:.2f} s" if r["duration_s"] is not None else "?"
        fps = f"{r['fps']:.2f}" if r["fps"] else ""
        table.add_row(rich_text(r["path"]), r["kind"], duration, size, fps, audio, f"{r['rotation']}°", "ok")
    return table
