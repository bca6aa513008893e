"""Options, exit codes and output helpers shared by the CLI commands."""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from pathlib import Path

from rich.console import Console

EXIT_OK = 0  # every file scanned (or probed); no fake found, or --fail-on-fake not given
EXIT_FAKE = 1  # --fail-on-fake and a file judged fake, or --fail-on-uncertain and one fake or uncertain
EXIT_USAGE = 2  # bad command line, missing path, no media file found, or no detector configured
EXIT_FILE_ERRORS = 3  # at least one file could not be read or scanned (the others were)
EXIT_MODEL_ERROR = 4  # an encoder or the detector could not be loaded
EXIT_OUTPUT_ERROR = 5  # a results file stopped being writable mid-scan (disk full); its whole lines stay
EXIT_INTERRUPTED = 130  # Ctrl-C; results written so far are kept

stderr = Console(stderr=True, soft_wrap=True)  # messages stay whole lines, greppable


class OutputFormat(str, enum.Enum):
    """Formats of ``--format``."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    junit = "junit"


OUTPUT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                   ".xml": "junit"}  # --output's extension -> the format it gets when --format is not given


def output_format_for(requested: "OutputFormat | None", output) -> "OutputFormat":
    """The format results are written in: the one asked for, else the output's extension's, else a table.

    Parameters
    ----------
    requested : OutputFormat or None
        ``--format`` as given; ``None`` when it was not.
    output : str or os.PathLike or None
        ``--output`` (a path or URI); ``None`` for stdout.

    Returns
    -------
    OutputFormat
        ``requested`` when given; else :data:`OUTPUT_SUFFIXES`'s format for ``output``'s extension
        (``results.jsonl`` -> ``jsonl``); else ``table``.
    """
    if requested is not None:
        return OutputFormat(requested)
    suffix = os.path.splitext(os.fspath(output))[1].lower() if output is not None else ""
    return OutputFormat(OUTPUT_SUFFIXES.get(suffix, "table"))


@contextlib.contextmanager
def open_output(path: Path | None, append: bool = False):
    """Yield a text stream: ``path`` (a :class:`~deepscan.writers.files.LineSafeFile`) or stdout when ``path`` is None.

    A write to ``path`` that fails (disk full) raises :class:`~deepscan.errors.OutputWriteError`
    with the file cut back to its last whole line, so that ``--resume`` reads every line in it.
    """
    if path is None:
        yield sys.stdout
        return
    from deepscan.writers.files import LineSafeFile

    path.parent.mkdir(parents=True, exist_ok=True)
    with LineSafeFile(path, append=append) as stream:
        yield stream


def unwritable_reason(path, what: str = "--output") -> str | None:
    """Why ``path`` cannot be written, in a sentence with the fix; ``None`` when it can.

    Checked before a scan starts, so that a typo costs no scan: the path must not be a folder, an
    existing file must open for appending (``/proc/version`` does not), and a new file must be
    creatable in its folder (the nearest existing one must be a writable folder). Nothing existing
    is changed; a file created to try is removed.

    Parameters
    ----------
    path : str or os.PathLike
        A local output path.
    what : str
        The option that named it, for the message.

    Returns
    -------
    str or None
    """
    import stat

    path = Path(path).expanduser()
    fix = f"give {what} a file in a folder you can write to"
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # not there yet; its folders are looked at below
        info = None
    except OSError as error:
        return f"cannot write {what} {path} ({error.strerror or error}); {fix}"
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            example = path / ("report.html" if what == "--html" else "results.jsonl")
            return f"cannot write {what} {path}: it is a folder; {fix}, e.g. {example}"
        if not stat.S_ISREG(info.st_mode):  # a device or a pipe (/dev/null, /dev/stdout): opening may block
            return None if os.access(path, os.W_OK) else f"cannot write {what} {path}: permission denied; {fix}"
        try:
            with open(path, "ab"):
                pass
        except OSError as error:
            return f"cannot write {what} {path} ({error.strerror or error}); {fix}"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot write {what} {path}: {parent} is not a folder; {fix}"
    if parent != path.parent:  # folders would be made: the nearest existing one must take them
        if os.access(parent, os.W_OK | os.X_OK):
            return None
        return f"cannot write {what} {path}: {parent} is not writable; {fix}"
    try:
        with open(path, "xb"):
            pass
    except FileExistsError:
        return None
    except OSError as error:
        return f"cannot write {what} {path} ({error.strerror or error}); {fix}"
    try:
        path.unlink()
    except OSError:
        pass
    return None


def require_writable(*outputs) -> None:
    """Stop with :data:`EXIT_USAGE` and the fix when an output cannot be written: before any scan starts.

    Parameters
    ----------
    *outputs : tuple of (str, path or None)
        ``(option, path)`` pairs, e.g. ``("--output", output)``; ``None`` paths (stdout) and URIs
        are skipped.

    Raises
    ------
    typer.Exit
        With :data:`EXIT_USAGE` after the first :func:`unwritable_reason` is printed.
    """
    from deepscan.writers.safe import markup_text

    for option, path in outputs:
        if path is None or "://" in os.fspath(path):
            continue
        problem = unwritable_reason(path, option)
        if problem:
            import typer

            stderr.print(f"[red]error:[/] {markup_text(problem)}")
            raise typer.Exit(EXIT_USAGE)

def progress_enabled(quiet: bool) -> bool:
    """Show a progress bar only to a person: not when quiet, and only if stderr is a terminal."""
    return not quiet and stderr.is_terminal


def _interrupted_note(done: int, output_format: "OutputFormat", output) -> str:
    """What an interrupted scan says last: how many files have results and how to finish (Rich markup)."""
    from deepscan.writers.safe import markup_text

    line = f"[yellow]interrupted:[/] the scan stopped after {done} file{'s' if done != 1 else ''}"
    if output_format == OutputFormat.jsonl and output is not None:
        return line + f"; run it again with --resume to finish {markup_text(os.fspath(output))}"
    return line + "; with --format jsonl --output FILE, --resume finishes an interrupted scan"


NO_MEDIA_HELP = ("name video, audio or image files (.mp4, .mov, .webm, .wav, .mp3, .flac, .jpg, .png, .webp, ...) "
                 "or a folder that holds them (its subfolders are searched unless --no-recursive is given)")


def finish_check(results: list, paths, *, output_format: "OutputFormat", output, html, interrupted: bool,
                 fail_on_fake: bool, fail_on_uncertain: bool = False) -> int:
    """The end of a ``check``, local or on Ray: the HTML report, the closing lines, the exit code.

    A check that found no media file at all (an empty folder, a wrong path, folders of documents) is
    a set-up mistake, not a clean result: it stops with :data:`EXIT_USAGE` and says what to name
    instead (:data:`NO_MEDIA_HELP`), so that a wrong path does not pass in CI.

    Parameters
    ----------
    results : list of ScanResult
        Every result, in the order the report shows them.
    paths : list
        What was asked to be scanned (named when no media file was found).
    output_format : OutputFormat
    output : str or os.PathLike or None
        Where the results went (``None``: stdout).
    html : str or os.PathLike or None
        The HTML report to write, if asked for.
    interrupted : bool
        Ctrl-C stopped the scan.
    fail_on_fake : bool
        ``--fail-on-fake``: :data:`EXIT_FAKE` when any file is ``fake``.
    fail_on_uncertain : bool
        ``--fail-on-uncertain``: :data:`EXIT_FAKE` when any file is ``fake`` or ``uncertain``.

    Returns
    -------
    int
        :data:`EXIT_INTERRUPTED`, :data:`EXIT_USAGE` (no media file found, or the report could not
        be written), :data:`EXIT_FAKE`, :data:`EXIT_FILE_ERRORS` or :data:`EXIT_OK`.
    """
    from deepscan.results import counts_line, summarize
    from deepscan.writers.safe import markup_text

    if not results and not interrupted:
        where = ", ".join(markup_text(str(p)) for p in paths)
        stderr.print(f"[red]error:[/] no media files found in {where}: nothing was scanned; {NO_MEDIA_HELP}")
        return EXIT_USAGE
    if html is not None:
        from deepscan.writers.html import write_html

        try:
            stderr.print(f"report: {markup_text(write_html(results, html))}")
        except OSError as error:
            stderr.print(f"[red]error:[/] cannot write the HTML report {markup_text(html)}: {markup_text(error)}")
            return EXIT_USAGE
    counts = summarize(results)
    if not (output_format == OutputFormat.table and output is None):  # the table's caption says it already
        stderr.print(counts_line(counts))
    if interrupted:
        stderr.print(_interrupted_note(len(results), output_format, output))
        return EXIT_INTERRUPTED
    if (fail_on_fake or fail_on_uncertain) and counts["fake"]:
        return EXIT_FAKE
    if fail_on_uncertain and counts["uncertain"]:
        return EXIT_FAKE
    return EXIT_FILE_ERRORS if counts["errors"] else EXIT_OK


def scanner_or_exit(build):
    """Run ``build()`` (which makes a :class:`deepscan.scanner.Scanner`) and turn its errors into exit codes.

    The detector's label (a demo or untrained detector) is printed on stderr, as every command that
    scans says it, and so is why each expert that could not be had is missing (once per scan).

    Parameters
    ----------
    build : callable
        ``() -> Scanner``; it may also resolve weights first (a face detector's file, ...).

    Returns
    -------
    deepscan.scanner.Scanner

    Raises
    ------
    typer.Exit
        ``EXIT_USAGE`` when no detector is configured or an option is invalid, ``EXIT_MODEL_ERROR``
        when a model or the detector checkpoint cannot be loaded.
    """
    import typer

    from deepscan.errors import CheckpointError, DeepscanError, DetectorNotConfiguredError, ModelLoadingError
    from deepscan.writers.safe import markup_text

    try:
        scanner = build()
    except DetectorNotConfiguredError as error:
        stderr.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(EXIT_USAGE)
    except (ModelLoadingError, CheckpointError) as error:
        stderr.print(f"[red]error:[/] {markup_text(error)}")
        raise typer.Exit(EXIT_MODEL_ERROR)
    except (DeepscanError, ValueError) as error:
        stderr.print(f"[red]error:[/] {markup_text(error)}")
        raise typer.Exit(EXIT_USAGE)
    if scanner.detector_info.get("label"):
        stderr.print(f"[bold yellow]{markup_text(scanner.detector_info['label'])}[/]")
    for name, problem in scanner.problems.items():  # once here, not in every result's reason
        stderr.print(f"[yellow]warning:[/] {name} is not available: {markup_text(problem)}")
    return scanner
