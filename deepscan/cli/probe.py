"""``deepscan probe PATH...``: print what deepscan sees in each file, or why it can't read it."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.console import Console
from rich.table import Table

from deepscan.cli.common import EXIT_FILE_ERRORS, EXIT_OK, EXIT_USAGE, stderr
from deepscan.errors import DeepscanError
from deepscan.experts.provenance import describe, prov_column, read_provenance
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
        reason and ``message`` its explanation; for a readable file, ``provenance``: what the file
        declares about itself (``{"column": "AI meta" | "-" | ..., "found": [one line per fact]}``,
        :func:`deepscan.experts.provenance.describe`).
    """
    record = dict.fromkeys(PROBE_FIELDS)
    record["path"] = str(path)
    try:
        info = probe_file(path)
    except DeepscanError as error:
        record.update(status="error", reason=error.reason, message=error.message)
        return record
    record.update({k: v for k, v in info.to_dict().items() if k in record}, path=str(path), status="ok")
    prov = read_provenance(path)
    record["provenance"] = {"column": prov_column(prov), "found": describe(prov)}
    return record


def probe(
    paths: List[Path] = typer.Argument(..., metavar="PATHS", help="Files or directories (walked recursively)."),
    output_format: str = typer.Option("table", "--format", "-f", help="table or json (one object per line)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Walk into subdirectories."),
) -> None:
    """Print what deepscan sees in each media file: kind, codecs, duration, size, fps, audio, rotation, provenance marks."""
    if output_format not in ("table", "json"):
        stderr.print(f"[red]error:[/] --format must be table or json, not {output_format!r}")
        raise typer.Exit(EXIT_USAGE)
    records = []
    unreadable = []

    def on_error(path, error):
        unreadable.append({**dict.fromkeys(PROBE_FIELDS), "path": str(path), "status": "error",
                           "reason": error.reason, "message": error.message})

    console = Console()
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
        console.print(_table(records, width=console.width))
        for record in records:  # what files declare about themselves, for those that declare anything
            prov = record.get("provenance") or {}
            if prov.get("column") not in (None, "-"):
                console.print(rich_text(f"{record['path']}: " + "; ".join(prov.get("found") or [])), soft_wrap=True)
    raise typer.Exit(EXIT_FILE_ERRORS if any(r["status"] == "error" for r in records) else EXIT_OK)


def _emit(record: dict, output_format: str) -> None:
    if output_format == "json":
        typer.echo(json_dumps(record))  # one line per file whatever its name holds


def _audio_cell(r: dict) -> str:
    if not r["has_audio"]:
        return "none"
    rate = r["audio_sample_rate"] or 0
    khz = f"{rate / 1000:g}k" if rate else "?"
    return f"{khz}x{r['audio_channels']}"


def _table(records: list[dict], width: int = 80, cwd: str | None = None) -> Table:
    """The probe table: names from the scanned folder (cut in the middle when long), compact columns.

    Parameters
    ----------
    records : list of dict
        :func:`probe_record` results.
    width : int
        Terminal cells available.
    cwd : str, optional
        The working directory (default: :func:`os.getcwd`).

    Returns
    -------
    rich.table.Table
    """
    import os

    from rich import box
    from rich.cells import cell_len

    from deepscan.writers.paths import display_root, middle_ellipsis, relative_to, shown_folder
    from deepscan.writers.table import error_note
    from deepscan.writers.safe import terminal_text

    cwd = cwd or os.getcwd()
    root = display_root([r["path"] for r in records], cwd=cwd, prefer_cwd=False)
    title = "deepscan probe"
    if root is not None and os.path.abspath(root) != os.path.abspath(cwd):
        title += f" · in {terminal_text(shown_folder(root, cwd))}{os.sep}"
    rows, notes = [], []
    for r in records:
        name = terminal_text(relative_to(r["path"], root))
        if r["status"] != "ok":
            rows.append([name, "error", "", "", "", "", ""])
            notes.append(error_note(r["reason"], r.get("message")))
            continue
        duration = "" if r["kind"] == "image" else f"{r['duration_s']:.1f} s" if r["duration_s"] is not None else "?"
        rows.append([name, r["kind"] or "", duration,
                     f"{r['width']}x{r['height']}" if r["width"] else "", f"{r['fps']:.3g}" if r["fps"] else "",
                     _audio_cell(r), f"{r['rotation']}°" if r.get("rotation") else ""])
        notes.append(None)
    headers = ["file", "kind", "duration", "size", "fps", "audio", "rotation"]
    if not any(row[6] for row in rows):  # no rotated file: no column
        headers, rows = headers[:6], [row[:6] for row in rows]
    widths = [max(cell_len(h), *(cell_len(str(row[i])) for row in rows)) for i, h in enumerate(headers)]
    fixed = sum(w + 1 for w in widths[1:])  # each column and the divider (a space) before it
    longest_note = max((cell_len(terminal_text(n)) for n in notes if n), default=0)
    file_width = max(12, min(max(widths[0], longest_note), width - fixed))  # an error's note wraps under its name
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0,
                  title_justify="left", expand=False)
    table.add_column("file", width=file_width, overflow="fold")
    for header, w in zip(headers[1:], widths[1:]):
        table.add_column(header, no_wrap=True, min_width=w)
    for row, note in zip(rows, notes):
        cell = rich_text(middle_ellipsis(row[0], file_width))
        if note:
            cell.append("\n" + terminal_text(note), style="red")
        table.add_row(cell, *(rich_text(c, style="red") if c == "error" else c for c in row[1:]))
    return table
