"""``deepscan models list|download``: every model deepscan uses, where it comes from, and fetching it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from deepscan.cli.common import EXIT_MODEL_ERROR, EXIT_OK, EXIT_USAGE, stderr
from deepscan.errors import DeepscanError

app = typer.Typer(help="List and download the models: encoders, experts and the face detector.",
                  no_args_is_help=True)

ENCODERS_HELP = "Encoders: default, debug, or a directory with image/ and audio/."
MODELS_DIR_HELP = "A folder holding the weight files, used as is (also $DEEPSCAN_MODELS_DIR)."


def _specs(encoders: str, image_encoder: Optional[str], audio_encoder: Optional[str]):
    from deepscan.hub import resolve_encoders

    return resolve_encoders(encoders, image=image_encoder, audio=audio_encoder)


def _size(row: dict) -> str:
    return f"{row['size'] / 1e6:.2f} MB" if row.get("size") else "hub"


@app.command("list")
def list_command(
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help=MODELS_DIR_HELP),
    output_format: str = typer.Option("table", "--format", "-f", help="table or json (one object per line)."),
) -> None:
    """Show every model (encoders, experts, face detector): licence, source, size, and whether it is here."""
    from deepscan.weights import list_models

    rows = list_models(models_dir)
    if output_format == "json":
        for row in rows:
            typer.echo(json.dumps(row))
        raise typer.Exit(EXIT_OK)
    table = Table(title="deepscan models")
    for column in ("name", "kind", "licence", "size", "present", "detects / trained on"):
        table.add_column(column, overflow="fold")
    for row in rows:
        present = "[green]yes[/]" if row["present"] else "[red]no[/]"
        table.add_row(row["name"], row["kind"], row["licence"], _size(row), present,
                      f"{row['detects']}; trained on {row['trained_on']}\n[dim]{row['url']}[/]")
    Console().print(table)
    if not all(row["present"] for row in rows):
        stderr.print("missing models are fetched on first use, or now with `deepscan models download [NAME...]`")
    raise typer.Exit(EXIT_OK)


@app.command("download")
def download_command(
    names: Optional[List[str]] = typer.Argument(None, help="Models to fetch (default: all). See `deepscan models list`."),
    encoders: str = typer.Option("default", "--encoders", help=ENCODERS_HELP),
    image_encoder: Optional[str] = typer.Option(None, "--image-encoder", help="Image encoder: hub id or local directory."),
    audio_encoder: Optional[str] = typer.Option(None, "--audio-encoder", help="Audio encoder: hub id or local directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fetch models (hash-checked) so that later scans run offline: expert files into the deepscan cache, encoders into the Hugging Face cache."""
    from deepscan.hub import download_models
    from deepscan.weights import MODELS, download, get_entry

    try:
        entries = [get_entry(name) for name in names] if names else list(MODELS.values())
    except KeyError as error:
        stderr.print(f"[red]error:[/] {error.args[0]}")
        raise typer.Exit(EXIT_USAGE)
    failed = False
    for entry in entries:
        if not entry.is_file:
            continue
        try:
            stderr.print(f"{entry.name}: {download(entry.name, progress=not quiet)}")
        except DeepscanError as error:
            stderr.print(f"[red]error:[/] {error}")
            failed = True
    if any(not entry.is_file for entry in entries):
        try:
            specs = _specs(encoders, image_encoder, audio_encoder)
            wanted = {e.filename for e in entries if not e.is_file}
            if names:
                specs = {m: s for m, s in specs.items() if s.id in wanted} or specs
            for row in download_models(specs):
                stderr.print(f"{row['modality']} encoder {row['id']}: {row['location']}")
        except DeepscanError as error:
            stderr.print(f"[red]error:[/] {error}")
            failed = True
    raise typer.Exit(EXIT_MODEL_ERROR if failed else EXIT_OK)
