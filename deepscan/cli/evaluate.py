"""``deepscan evaluate DATA --detector D``: AUC, EER, AP, accuracy, confusion, ECE overall and per fake kind."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from deepscan.cli.common import EXIT_MODEL_ERROR, EXIT_USAGE, stderr
from deepscan.cli.synth import progress_bar
from deepscan.errors import CheckpointError, DeepscanError, ModelLoadingError


class EvalFormat(str, enum.Enum):
    """Formats of ``evaluate --format``."""

    table = "table"
    json = "json"


class Split(str, enum.Enum):
    """Splits of ``evaluate --split``."""

    test = "test"
    val = "val"
    train = "train"
    all = "all"


def evaluate(
    data: Path = typer.Argument(..., help="Folder with real/ and fake/, or a manifest CSV."),
    detector: Path = typer.Option(..., "--detector", "-d", help="Detector checkpoint (.safetensors)."),
    encoders: Optional[str] = typer.Option(
        None, "--encoders", help="default, debug, or a directory; by default the encoders the checkpoint names."),
    split: Split = typer.Option(Split.test, "--split", help="Which files to evaluate on."),
    output_format: EvalFormat = typer.Option(EvalFormat.table, "--format", "-f", help="table (people) or json."),
    fit_threshold: bool = typer.Option(False, "--fit-threshold", help="Write a copy of the detector with the threshold fitted at --target-fpr."),
    target_fpr: float = typer.Option(0.05, "--target-fpr", min=0.0, max=1.0, help="False positive rate the fitted threshold keeps to."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where --fit-threshold writes the new checkpoint."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache (default $DEEPSCAN_CACHE_DIR or ~/.cache/deepscan)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Evaluate a detector on labelled media, file by file as `check` scores them."""
    from deepscan.extractors import load_extractors
    from deepscan.model import read_metadata
    from deepscan.training.data import FeatureStore, load_dataset
    from deepscan.training.evaluate import evaluate_detector
    from deepscan.training.evaluate import fit_threshold as fit

    if fit_threshold and output is None:
        stderr.print("[red]error:[/] --fit-threshold needs --output FILE.safetensors for the new checkpoint")
        raise typer.Exit(EXIT_USAGE)
    try:
        dataset = load_dataset(data)
        sampling = read_metadata(detector).sampling or {}
        store = FeatureStore(load_extractors(_encoder_specs(encoders, read_metadata(detector))), cache=cache_dir,
                             **{k: float(sampling[k]) for k in ("window_s", "visual_fps") if k in sampling})
        with progress_bar(quiet or output_format == EvalFormat.json) as progress:
            task = progress.add_task("features", total=None, info="")
            result, _ = evaluate_detector(detector, dataset, store, split=split.value,
                                          progress=lambda d, n: progress.update(task, completed=d, total=n))
        if fit_threshold:
            result["fitted_threshold"] = fit(detector, output, result, target_fpr)
            result["target_fpr"] = target_fpr
            stderr.print(f"wrote {output} with threshold {result['fitted_threshold']:.4f} (FPR <= {target_fpr} on {split.value})")
    except (ModelLoadingError, CheckpointError) as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_MODEL_ERROR)
    except (DeepscanError, ValueError, OSError) as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_USAGE)
    if output_format == EvalFormat.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        Console().print(metrics_table(result))


def _encoder_specs(encoders: str | None, checkpoint):
    """``--encoders`` as given, else the encoders the checkpoint was trained on (debug or hub ids)."""
    from deepscan.hub import encoders_for_checkpoint

    return encoders_for_checkpoint(checkpoint, encoders)


def _f(value) -> str:
    return "" if value is None else f"{value:.3f}"


def metrics_table(result: dict) -> Table:
    """A Rich table of :func:`deepscan.training.evaluate.evaluate_samples` metrics: one row overall, one per kind."""
    det = result.get("detector") or {}
    table = Table(title=f"deepscan evaluate ({result.get('split')} split, detector {det.get('name', '')})")
    for column in ("files", "n_real", "n_fake", "AUC", "EER", "AP", "acc", "ECE", "tn/fp/fn/tp"):
        table.add_column(column)
    rows = [("all", result)] + sorted(result.get("per_kind", {}).items())
    for name, m in rows:
        c = m["confusion"]
        table.add_row(name, str(m["n_real"]), str(m["n_fake"]), _f(m["auc"]), _f(m["eer"]), _f(m["ap"]),
                      _f(m["accuracy"]), _f(m["ece"]), f"{c['tn']}/{c['fp']}/{c['fn']}/{c['tp']}")
    table.caption = f"threshold {result['threshold']:.3f}, temperature {result['temperature']:.3f}"
    if det.get("synthetic"):
        table.caption += f"\n[bold yellow]DEMO detector trained on {det.get('trained_on')} data[/]"
    return table
