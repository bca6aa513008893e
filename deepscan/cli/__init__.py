"""The ``deepscan`` command line: thin Typer commands over the library.

One module per command; shared options and output helpers live in :mod:`deepscan.cli.common`.
Results go to stdout (or ``--output``), logs and progress to stderr.

Importing this package is cheap: the Typer application (:data:`app`, which imports every command
module) is built on first use, so that ``deepscan --version`` answers before anything heavy is
imported (:func:`main`).
"""

from __future__ import annotations

import sys

from deepscan import __version__

__all__ = ["app", "main"]

_app = None  # the Typer application, built by _build_app() on first use


def _build_app():
    """The ``deepscan`` Typer application, with every command registered."""
    import typer
    from typer.core import TyperGroup

    from deepscan.cli import check as _check
    from deepscan.cli import demo as _demo
    from deepscan.cli import evaluate as _evaluate
    from deepscan.cli import models as _models
    from deepscan.cli import probe as _probe
    from deepscan.cli import report as _report
    from deepscan.cli import synth as _synth
    from deepscan.cli import train as _train
    from deepscan.cli import train_expert as _train_expert

    class _Group(TyperGroup):
        """The root group: a deepscan error no command handled ends in one line and its exit code, not a traceback."""

        def invoke(self, ctx):
            import warnings

            from deepscan.errors import DeepscanError

            with warnings.catch_warnings():
                warnings.showwarning = _show_warning(warnings.showwarning)
                try:
                    return super().invoke(ctx)
                except DeepscanError as error:
                    raise typer.Exit(_report_error(error))

    app = typer.Typer(
        name="deepscan",
        cls=_Group,
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
    return app


def _show_warning(fallback):
    """``warnings.showwarning`` for the commands: deepscan's own warnings as one ``warning:`` line on stderr."""
    import os

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def show(message, category, filename, lineno, file=None, line=None):
        if not os.path.abspath(filename).startswith(package + os.sep):
            return fallback(message, category, filename, lineno, file, line)
        from deepscan.cli.common import stderr
        from deepscan.writers.safe import markup_text

        stderr.print(f"[yellow]warning:[/] {markup_text(str(message))}")

    return show


def _report_error(error) -> int:
    """Print a deepscan error that escaped its command on stderr; its exit code (:mod:`deepscan.cli.common`)."""
    from deepscan.cli.common import (
        EXIT_MODEL_ERROR, EXIT_OUTPUT_ERROR, EXIT_USAGE, stderr,
    )
    from deepscan.errors import CheckpointError, ModelLoadingError, OutputWriteError
    from deepscan.writers.safe import markup_text

    stderr.print(f"[red]error:[/] {markup_text(error)}")
    if isinstance(error, OutputWriteError):
        return EXIT_OUTPUT_ERROR
    if isinstance(error, (ModelLoadingError, CheckpointError)):
        return EXIT_MODEL_ERROR
    return EXIT_USAGE


def __getattr__(name: str):
    """``app``: the Typer application, built on first use (module attribute, PEP 562)."""
    global _app
    if name == "app":
        if _app is None:
            _app = _build_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _asks_for_version(argv: list[str]) -> bool:
    """Whether the command line asks for the version before naming a command (``deepscan --version``)."""
    for arg in argv:
        if arg in ("-h", "--help") or not arg.startswith("-"):
            return False  # help, or a command: Typer answers
        if arg == "--version":
            return True
    return False


def main() -> None:
    """Entry point of the ``deepscan`` console script and ``python -m deepscan``.

    ``deepscan --version`` is answered here, before Typer, Rich and the command modules (and what
    they import) are loaded; everything else goes to :data:`app`.
    """
    if _asks_for_version(sys.argv[1:]):
        sys.stdout.write(f"deepscan {__version__}\n")
        return
    __getattr__("app")()
