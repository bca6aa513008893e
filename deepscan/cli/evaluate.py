"""``deepscan evaluate DATA``: how well the detector and each cue separate real from fake on labelled media.

Two kinds of DATA:

- **labelled media** (a ``MANIFEST.tsv`` like ../shared/realworld's, a folder holding one, or a folder
  with ``real/`` and ``fake/`` when no ``--split`` is asked for): every file is scanned as
  ``deepscan check`` scans it (experts on) and the report gives, per media kind, per fake method and
  per named subset, AUC, EER, AP, accuracy at the threshold and ECE with 95% bootstrap intervals
  over pairs, for the fused ``p_fake`` and for each cue alone (:func:`deepscan.evaluation.evaluate_media`);
- **a training data set** (a folder with ``manifest.csv``, the CSV itself, or ``real/`` + ``fake/``
  with ``--split``): one split is scored from the encoders' features (:mod:`deepscan.evaluation.detector`),
  and ``--fit-threshold`` can write a copy of the detector with its threshold fitted.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from deepscan.cli.common import EXIT_MODEL_ERROR, EXIT_USAGE, scanner_or_exit, stderr
from deepscan.cli.synth import progress_bar
from deepscan.errors import CheckpointError, DeepscanError, ModelLoadingError
from deepscan.metrics import BOOTSTRAP_ROUNDS as DEFAULT_ROUNDS  # as bench.quality, so the intervals agree
from deepscan.writers.safe import markup_text


class EvalFormat(str, enum.Enum):
    """Formats of ``evaluate --format``."""

    table = "table"
    json = "json"
    markdown = "markdown"


class Split(str, enum.Enum):
    """Splits of ``evaluate --split``."""

    test = "test"
    val = "val"
    train = "train"
    all = "all"


def evaluate(
    data: Path = typer.Argument(
        ..., help="Labelled media: a MANIFEST.tsv (or a folder holding one), or a folder with real/ and fake/; "
        "or a training data set: a folder with manifest.csv, or that CSV."),
    detector: Optional[Path] = typer.Option(
        None, "--detector", "-d", envvar="DEEPSCAN_DETECTOR",
        help="Detector checkpoint (.safetensors); default $DEEPSCAN_DETECTOR, else the one deepscan ships."),
    encoders: Optional[str] = typer.Option(
        None, "--encoders", help="default, debug, or a directory; by default the encoders the checkpoint names."),
    split: Optional[Split] = typer.Option(
        None, "--split", help="Training data set: which split to score (default test). With real/ and fake/ "
        "folders, asking for a split scores them as a training data set."),
    output_format: EvalFormat = typer.Option(
        EvalFormat.table, "--format", "-f", help="table (people), json, or markdown (labelled media)."),
    subset: Optional[List[str]] = typer.Option(
        None, "--subset", help="Labelled media: a named subset, NAME=PREFIX[,PREFIX...]: the files whose pair id "
        "starts with a PREFIX (repeat for more). Replaces the subsets of a data set deepscan knows."),
    experts: str = typer.Option(
        "auto", "--experts", help="Labelled media: auto, none, or a comma list of cues (as check)."),
    models_dir: Optional[Path] = typer.Option(
        None, "--models-dir", envvar="DEEPSCAN_MODELS_DIR", help="Folder of expert weight files (as check)."),
    rounds: int = typer.Option(DEFAULT_ROUNDS, "--rounds", min=0, help="Bootstrap resamples per interval."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes (as check)."),
    fit_threshold: bool = typer.Option(False, "--fit-threshold", help="Write a copy of the detector with the threshold fitted at --target-fpr."),
    target_fpr: float = typer.Option(0.05, "--target-fpr", min=0.0, max=1.0, help="False positive rate the fitted threshold keeps to."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where --fit-threshold writes the new checkpoint."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache (default $DEEPSCAN_CACHE_DIR or ~/.cache/deepscan)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Evaluate a detector and its cues on labelled media, file by file as `check` scores them."""
    if labelled_media(data, split):
        if fit_threshold or split is not None:
            stderr.print("[red]error:[/] --fit-threshold and --split are for training data sets; labelled media "
                         "are evaluation data: nothing is fitted on them")
            raise typer.Exit(EXIT_USAGE)
        _evaluate_media(data, detector, encoders, output_format, subset, experts, models_dir, rounds, workers,
                        cache_dir, quiet)
        return
    if data.is_dir() and not (data / "manifest.csv").is_file() and not (data / "real").is_dir():
        stderr.print(f"[red]error:[/] {markup_text(data)}: not labelled media nor a training data set: give a "
                     "MANIFEST.tsv (or a folder holding one), a folder with real/ and fake/, or a folder with manifest.csv")
        raise typer.Exit(EXIT_USAGE)
    if subset or output_format == EvalFormat.markdown:
        stderr.print("[red]error:[/] --subset and --format markdown are for labelled media (a MANIFEST.tsv, or real/ "
                     "and fake/ folders without --split)")
        raise typer.Exit(EXIT_USAGE)
    if detector is None:
        stderr.print("[red]error:[/] evaluating a training data set needs --detector FILE.safetensors")
        raise typer.Exit(EXIT_USAGE)
    _evaluate_split(data, detector, encoders, split or Split.test, output_format, fit_threshold, target_fpr, output,
                    cache_dir, quiet)


def labelled_media(data: Path, split: Optional[Split] = None) -> bool:
    """Whether DATA is labelled media to scan (not a training data set with splits).

    Parameters
    ----------
    data : Path
        The command's DATA.
    split : Split, optional
        ``--split``: with it, ``real/`` and ``fake/`` folders are read as a training data set.

    Returns
    -------
    bool
        True for a ``.tsv`` file, a folder holding ``MANIFEST.tsv``, and a folder with ``real/`` and
        ``fake/`` but no ``manifest.csv`` when no split was asked for.
    """
    from deepscan.labelled import MANIFEST_NAME
    from deepscan.training.data import MANIFEST_NAME as TRAINING_MANIFEST

    if data.is_file():
        return data.suffix.lower() == ".tsv"
    if (data / MANIFEST_NAME).is_file():
        return True
    return (split is None and (data / "real").is_dir() and (data / "fake").is_dir()
            and not (data / TRAINING_MANIFEST).is_file())


def _evaluate_media(data, detector, encoders, output_format, subset, experts, models_dir, rounds, workers, cache_dir,
                    quiet) -> None:
    from deepscan.evaluation.media import evaluate_media
    from deepscan.labelled import parse_subsets, read_labelled
    from deepscan.scanner import Scanner
    from deepscan.writers.evaluation import legend, render_markdown, render_tables
    from deepscan.writers.safe import json_dumps

    try:
        labelled = read_labelled(data)
        subsets = parse_subsets(subset) if subset else None
    except ValueError as error:
        stderr.print(f"[red]error:[/] {markup_text(error)}")
        raise typer.Exit(EXIT_USAGE)
    scanner = scanner_or_exit(lambda: Scanner(detector=detector, encoders=encoders, experts=experts,
                                              models_dir=models_dir, cache=cache_dir or True, workers=workers))
    try:
        with progress_bar(quiet or output_format != EvalFormat.table) as progress:
            task = progress.add_task("scanning", total=len(labelled.files), info="")
            report = evaluate_media(labelled, scanner, subsets, rounds=rounds,
                                    on_result=lambda r: progress.advance(task))
    finally:
        scanner.close()
    if output_format == EvalFormat.json:
        typer.echo(json_dumps(report, indent=2))
        return
    if output_format == EvalFormat.markdown:
        typer.echo(render_markdown(report))
        return
    console = Console()
    det = report["detector"]
    console.print(f"[bold]deepscan evaluate[/] {markup_text(report['data'])}: {report['files']} files"
                  f"{' (' + markup_text(report['known_data_set']) + ')' if report['known_data_set'] else ''}; "
                  f"detector {markup_text(det.get('name') or '?')}, scanned in {report['elapsed_s']} s")
    for table in render_tables(report):
        console.print(table)
    console.print()
    console.print(markup_text(legend(report)))
    for key, what in (("errors", "could not be scanned"), ("unknown", "no fused verdict")):
        if report[key]:
            shown = "; ".join(f"{Path(p).name}: {why}" for p, why in list(report[key].items())[:5])
            more = f" (and {len(report[key]) - 5} more)" if len(report[key]) > 5 else ""
            console.print(f"{len(report[key])} {what}: {markup_text(shown)}{more}")


def _evaluate_split(data, detector, encoders, split, output_format, fit_threshold, target_fpr, output, cache_dir,
                    quiet) -> None:
    from deepscan.extractors import load_extractors
    from deepscan.model import read_metadata
    from deepscan.training.data import FeatureStore, load_dataset
    from deepscan.evaluation.detector import evaluate_detector
    from deepscan.evaluation.detector import fit_threshold as fit

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
    """A Rich table of :func:`deepscan.training.train.evaluate_samples` metrics: one row overall, one per kind."""
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
