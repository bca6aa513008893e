"""``deepscan synth OUT --clips N --seed S``: write a labelled synthetic corpus (real clips and fakes)."""

from __future__ import annotations

from pathlib import Path

import typer

from deepscan.cli.common import EXIT_USAGE, stderr


def synth(
    out: Path = typer.Argument(..., help="Folder to write the corpus into (created)."),
    clips: int = typer.Option(60, "--clips", "-n", min=1, help="Clips in all, half real, half fake."),
    seed: int = typer.Option(1, "--seed", help="Seed of the corpus: the same seed gives the same clips."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Synthesise talking-face clips and fakes of every pseudo-fake kind, with manifest.csv and corpus.json."""
    from deepscan.training.data import make_synthetic_corpus

    with progress_bar(quiet) as progress:
        task = progress.add_task("synthesising clips", total=clips, info="")
        try:
            manifest = make_synthetic_corpus(out, clips=clips, seed=seed,
                                             progress=lambda done, total: progress.update(task, completed=done))
        except (ValueError, OSError) as error:
            stderr.print(f"[red]error:[/] {error}")
            raise typer.Exit(EXIT_USAGE)
    stderr.print(f"wrote {clips} clips and {manifest}")
    typer.echo(str(manifest))


def progress_bar(quiet: bool = False):
    """A Rich progress bar on stderr (a no-op when quiet or stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), console=stderr, transient=True,
                    disable=quiet or not stderr.is_terminal)
