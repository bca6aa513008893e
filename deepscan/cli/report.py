"""``deepscan report RESULTS.jsonl -o report.html``: an HTML report of a finished scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer

from deepscan.cli.common import EXIT_OK, EXIT_USAGE, require_writable, stderr
from deepscan.results import ScanResult, summarize
from deepscan.writers.safe import markup_text


def report(
    results_files: List[Path] = typer.Argument(
        ..., help="Results of `deepscan check --format jsonl` (or --format json); several are concatenated."),
    output: Path = typer.Option(Path("deepscan-report.html"), "--output", "-o", help="The HTML file to write."),
    title: str = typer.Option("deepscan report", "--title", help="Title of the report page."),
) -> None:
    """Write a self-contained HTML report (summary, sortable table, a card and a plot per file)."""
    from deepscan.writers.html import write_html

    require_writable(("--output", output))
    results: list[ScanResult] = []
    for path in results_files:
        try:
            results.extend(load_results(path))
        except (OSError, ValueError, KeyError, TypeError) as error:
            stderr.print(f"[red]error:[/] {markup_text(path)}: cannot read results ({markup_text(error)})")
            raise typer.Exit(EXIT_USAGE)
    written = write_html(results, output, title=title)
    counts = summarize(results)
    stderr.print(f"wrote {markup_text(written)} ({', '.join(f'{v} {k}' for k, v in counts.items())})")
    raise typer.Exit(EXIT_OK)


def load_results(path: Path) -> list[ScanResult]:
    """Read results written by ``deepscan check`` as JSON Lines or as one JSON array.

    Parameters
    ----------
    path : Path
        A ``.jsonl`` file (one result per line; a truncated last line is skipped) or a JSON array.

    Returns
    -------
    list of ScanResult

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        When it is neither JSON Lines nor a JSON array of results.
    KeyError
        When a record lacks ``path`` or ``status``.
    """
    from deepscan.writers import read_jsonl

    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        data = json.loads(text)
        if not all(isinstance(item, dict) for item in data):
            raise ValueError("a JSON results file is an array of objects")
        return [ScanResult.from_dict(item) for item in data]
    return list(read_jsonl(path))
