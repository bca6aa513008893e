"""``deepscan train DATA -o detector.safetensors``: train a detector on real/fake media or on reals alone."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deepscan.cli.common import EXIT_MODEL_ERROR, EXIT_USAGE, stderr
from deepscan.cli.synth import progress_bar
from deepscan.errors import DeepscanError, ModelLoadingError


def train(
    data: Path = typer.Argument(..., help="Folder with real/ and fake/ (or real/ alone with --real-only), or a manifest CSV."),
    output: Path = typer.Option(..., "--output", "-o", help="Detector checkpoint to write (.safetensors)."),
    encoders: str = typer.Option("default", "--encoders", help="Encoders: default, debug, or a directory with image/ and audio/."),
    epochs: int = typer.Option(50, "--epochs", min=1, help="Most passes over the training windows."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, dropout, batch order and pseudo-fakes."),
    real_only: bool = typer.Option(False, "--real-only", help="Use only real media; fakes are pseudo-fakes made from them."),
    variants: int = typer.Option(1, "--variants", min=1, help="Seeded pseudo-fakes of each kind per real file."),
    pseudo_fakes: bool = typer.Option(False, "--pseudo-fakes", help="With labelled fakes, also train on pseudo-fakes of the training and validation reals."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Windows per training step."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="AdamW learning rate."),
    patience: int = typer.Option(12, "--patience", min=0, help="Epochs without a better validation AUC before stopping."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache (default $DEEPSCAN_CACHE_DIR or ~/.cache/deepscan)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the cross-modal detector; the checkpoint records provenance, metrics and a calibrated threshold."""
    from deepscan.training.train import run_training

    try:
        with progress_bar(quiet) as progress:
            summary = run_training(data, output, encoders=encoders, epochs=epochs, seed=seed, real_only=real_only,
                                   variants=variants, pseudo_fakes=pseudo_fakes, batch_size=batch_size, lr=lr, patience=patience,
                                   cache_dir=cache_dir, progress=progress)
    except ModelLoadingError as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_MODEL_ERROR)
    except (DeepscanError, ValueError, OSError) as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_USAGE)
    val = summary["val"] or {}
    test = summary["test"] or {}
    stderr.print(f"trained on {summary['trained_on']}: best epoch {summary['best_epoch']}, "
                 f"val AUC {_fmt(val.get('auc'))}, test AUC {_fmt(test.get('auc'))}, "
                 f"temperature {summary['temperature']:.3f}, threshold {summary['threshold']:.2f}")
    typer.echo(str(output))


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
