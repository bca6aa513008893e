"""``deepscan models list|download``: what encoders are configured, cached, and fetching them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from deepscan.cli.common import EXIT_MODEL_ERROR, EXIT_OK, stderr
from deepscan.errors import DeepscanError

app = typer.Typer(help="List and download the pretrained encoders (and the optional YuNet face detector).",
                  no_args_is_help=True)

ENCODERS_HELP = "Encoders: default, debug, or a directory with image/ and audio/."


def _specs(encoders: str, image_encoder: Optional[str], audio_encoder: Optional[str]):
    from deepscan.hub import resolve_encoders

    return resolve_encoders(encoders, image=image_encoder, audio=audio_encoder)


@app.command("list")
def list_command(
    encoders: str = typer.Option("default", "--encoders", help=ENCODERS_HELP),
    image_encoder: Optional[str] = typer.Option(None, "--image-encoder", help="Image encoder: hub id or local directory."),
    audio_encoder: Optional[str] = typer.Option(None, "--audio-encoder", help="Audio encoder: hub id or local directory."),
    output_format: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Show the configured encoders, their feature dims, and whether each is available offline."""
    from deepscan.hub import list_models

    try:
        rows = list_models(_specs(encoders, image_encoder, audio_encoder))
    except DeepscanError as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_MODEL_ERROR)
    if output_format == "json":
        for row in rows:
            typer.echo(json.dumps(row))
    else:
        table = Table(title="deepscan encoders")
        for column in ("modality", "id", "revision", "dim", "cached", "location"):
            table.add_column(column, overflow="fold")
        for row in rows:
            cached = "[green]yes[/]" if row["cached"] else "[red]no[/] (deepscan models download)"
            table.add_row(row["modality"], row["id"], str(row["revision"] or ""), str(row["dim"]), cached,
                          str(row["location"] or ""))
        Console().print(table)
    raise typer.Exit(EXIT_OK)


@app.command("download")
def download_command(
    encoders: str = typer.Option("default", "--encoders", help=ENCODERS_HELP),
    image_encoder: Optional[str] = typer.Option(None, "--image-encoder", help="Image encoder: hub id or local directory."),
    audio_encoder: Optional[str] = typer.Option(None, "--audio-encoder", help="Audio encoder: hub id or local directory."),
    yunet_dir: Optional[Path] = typer.Option(
        None, "--yunet-dir", help="Also fetch the YuNet face detector (checksum-verified) into this folder."),
) -> None:
    """Fetch the configured encoders into the Hugging Face cache, so that later scans run offline."""
    from deepscan.hub import download_models

    try:
        rows = download_models(_specs(encoders, image_encoder, audio_encoder))
        if yunet_dir is not None:
            from deepscan.faces import download_yunet

            path = download_yunet(yunet_dir)
            stderr.print(f"YuNet face detector: {path} (use --face-detector yunet --yunet-model {path})")
    except DeepscanError as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_MODEL_ERROR)
    for row in rows:
        stderr.print(f"{row['modality']}: {row['id']} -> {row['location']}")
    raise typer.Exit(EXIT_OK)
