"""The ``deepscan`` command line: thin Typer commands over the library.

One module per command; shared options and output helpers live in :mod:`deepscan.cli.common`.
Results go to stdout (or ``--output``), logs and progress to stderr.
"""

from __future__ import annotations

import typer

from deepscan import __version__
from deepscan.cli import check as _check
from deepscan.cli import demo as _demo
from deepscan.cli import evaluate as _evaluate
from deepscan.cli import models as _models
from deepscan.cli import probe as _probe
from deepscan.cli import report as _report
from deepscan.cli import synth as _synth
from deepscan.cli import train as _train
from deepscan.cli import train_expert as _train_expert

app = typer.Typer(
    name="deepscan",
    help="Offline deepfake scanner for video, audio and images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"deepscan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Offline deepfake scanner for video, audio and images."""


app.command("check")(_check.check)
app.command("probe")(_probe.probe)
app.add_typer(_models.app, name="models")
app.command("report")(_report.report)
app.command("synth")(_synth.synth)
app.command("train")(_train.train)
app.command("train-expert")(_train_expert.train_expert)
app.command("train-fusion")(_train_expert.train_fusion)
app.command("evaluate")(_evaluate.evaluate)
app.command("demo")(_demo.demo)


def main() -> None:
    """Entry point of the ``deepscan`` console script and ``python -m deepscan``."""
    app()
