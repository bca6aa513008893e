"""``deepscan models list|download``: every model deepscan uses, where it comes from, and fetching it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

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
    """Show every model (encoders, experts, face detector, the weights that ship): licence, size, whether it is here."""
    from deepscan.hub import is_offline
    from deepscan.weights import list_models

    rows = list_models(models_dir)
    if output_format == "json":
        for row in rows:
            typer.echo(json.dumps(row))
        raise typer.Exit(EXIT_OK)
    console = Console()
    console.print(_models_table(rows, console.width))
    if not all(row["present"] for row in rows):
        if is_offline():
            stderr.print("offline (HF_HUB_OFFLINE or DEEPSCAN_OFFLINE is set): missing models are not fetched; "
                         "copy them into --models-dir, or run `deepscan models download` where there is a network")
        else:
            stderr.print("missing models are fetched on first use, or now: deepscan models download NAME",
                         markup=False)
        if any(row["kind"] == "encoder" and not row["present"] for row in rows):
            stderr.print("encoders are needed only by detectors trained on them, not by the one that ships",
                         markup=False)
    raise typer.Exit(EXIT_OK)


DESCRIPTION_INDENT = 2  # cells before each line of a model's description, under its row
COLUMN_GAP = 2  # cells between two columns


def _models_table(rows: list[dict], width: int = 80):
    """One line per model (name, kind, licence, size, here) with what it detects and its training data
    on the lines under it, across the whole width, so that at 80 columns the description is not squeezed
    under the name column.

    Parameters
    ----------
    rows : list of dict
        :func:`deepscan.weights.list_models`'s rows.
    width : int
        The console's width in cells.

    Returns
    -------
    rich.console.Group
        The title, the header, a rule and each model's lines.
    """
    from rich.cells import cell_len
    from rich.console import Group
    from rich.text import Text

    headers = ["model", "kind", "licence", "size", "here"]
    cells = [[r["name"], r["kind"], r["licence"] if cell_len(r["licence"]) <= 16 else "see JSON", _size(r),
              "yes" if r["present"] else "no"] for r in rows]
    widths = [max(cell_len(h), *(cell_len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    total = sum(widths) + COLUMN_GAP * (len(widths) - 1)
    aligned = total <= width  # narrower than the columns: each row's values one after the other, no header

    def line(values, styles=None) -> Text:
        text = Text(no_wrap=False, overflow="fold")
        for i, (value, w) in enumerate(zip(values, widths)):
            text.append(value, style=(styles or {}).get(i))
            if i < len(values) - 1:
                text.append(" " * ((w - cell_len(value) if aligned else 0) + COLUMN_GAP))
        return text

    parts = [Text("deepscan models", style="italic")]
    if aligned:
        parts.append(line(headers, {i: "bold" for i in range(len(headers))}))
    parts.append(Text("─" * min(total, width), style="dim"))
    for row, c in zip(rows, cells):
        parts.append(line(c, {0: "bold", 4: "green" if row["present"] else "red"}))
        parts.append(_Indented(Text(f"{row['detects']}; trained on {row['trained_on']}", style="dim"),
                               DESCRIPTION_INDENT))
    return Group(*parts)


class _Indented:
    """Text wrapped to the console's width less ``indent``, each line starting ``indent`` cells in."""

    def __init__(self, text, indent: int):
        self.text, self.indent = text, indent

    def __rich_console__(self, console, options):
        from rich.text import Text

        for line in self.text.wrap(console, max(8, options.max_width - self.indent)):
            line.rstrip()
            yield Text(" " * self.indent) + line


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
        if entry.is_packaged:
            if names:
                stderr.print(f"{entry.name}: ships inside the package, nothing to download", markup=False)
            continue
        if getattr(entry, "is_installed", False):  # a pinned dependency installs it beside deepscan
            if names:
                stderr.print(f"{entry.name}: installed with deepscan ({entry.installed}), nothing to download",
                             markup=False)
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
