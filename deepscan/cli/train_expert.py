"""``deepscan train-expert KIND HARVEST -o FILE``: train one learned expert on the harvested corpus."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import List, Optional

import typer

from deepscan.cli.common import EXIT_USAGE, stderr
from deepscan.errors import DeepscanError


class ExpertKind(str, enum.Enum):
    """The learned experts and the training module of each."""

    speech = "speech"
    image = "image"
    face = "face"


TRAINERS = {  # kind -> module with train(data_root, output, seed, quiet) -> dict of metrics
    ExpertKind.speech: "deepscan.training.expert_speech",
    ExpertKind.image: "deepscan.training.expert_image",
    ExpertKind.face: "deepscan.training.expert_face",
}


def train_expert(
    kind: ExpertKind = typer.Argument(..., help="speech (spoofed speech), image (GAN/diffusion images) or face (face forgery)."),
    data: Path = typer.Argument(..., help="The harvest root: audio/, image/ and video/ each with MANIFEST.tsv and the files."),
    output: Path = typer.Option(..., "--output", "-o", help="Expert weights to write (.safetensors)."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampling, augmentation and initialisation: the same seed gives the same weights."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Train a learned expert on the harvest (never on ../realworld); prints its leave-generator-out metrics."""
    import importlib

    if not data.is_dir():
        stderr.print(f"[red]error:[/] {data} is not a folder")
        raise typer.Exit(EXIT_USAGE)
    trainer = importlib.import_module(TRAINERS[kind])
    try:
        metrics = trainer.train(data, output, seed=seed, quiet=quiet)
    except (DeepscanError, ValueError, OSError) as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_USAGE)
    stderr.print(json.dumps(metrics, indent=1, default=str))
    typer.echo(str(output))


def train_fusion(
    data: Path = typer.Argument(..., help="The harvest root: audio/, image/ and video/ each with MANIFEST.tsv."),
    output: Path = typer.Option(..., "--output", "-o", help="Cue-fusion detector to write (.safetensors)."),
    extra_root: Optional[List[Path]] = typer.Option(
        None, "--extra-root", help="More folders of harvest files laid out <kind>/<label>/<name> (refetch.sh output)."),
    models_dir: Optional[Path] = typer.Option(
        None, "--models-dir", envvar="DEEPSCAN_MODELS_DIR", help="Folder of the published experts' weights."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subsample and the folds."),
    records: Optional[Path] = typer.Option(
        None, "--records", help="JSON Lines of the scanned cues: reused where present, appended to (resumable)."),
    pseudo_fakes: bool = typer.Option(
        True, "--pseudo-fakes/--no-pseudo-fakes",
        help="Add audio-visual offset copies (audio moved +-0.4 s) of the real videos with sound as fakes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Train the cue-fusion detector (the one deepscan ships) on the harvest; never on ../realworld."""
    from deepscan.training.fusion import train

    if not data.is_dir():
        stderr.print(f"[red]error:[/] {data} is not a folder")
        raise typer.Exit(EXIT_USAGE)
    try:
        metrics = train(data, output, models_dir=models_dir, seed=seed, extra_roots=extra_root or (), quiet=quiet,
                        records_path=records, pseudo_fakes=pseudo_fakes)
    except (DeepscanError, ValueError, OSError) as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_USAGE)
    stderr.print(json.dumps(metrics, indent=1, default=str))
    typer.echo(str(output))
