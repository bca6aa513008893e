"""Detection on labelled media, for people: Markdown (BENCHMARKS.md, ``--format markdown``) and Rich tables.

Both render the report of :func:`deepscan.evaluation.evaluate_media` from the same rows
(:func:`sections`): per media kind, per fake method and per named subset, one row per scorer (the
fused ``p_fake`` first, then each cue alone) with the files it scored and AUC, EER, AP, accuracy at
the threshold and ECE, each with its 95% bootstrap interval over pairs; then, per media kind and
label, how many files got each verdict, ``uncertain`` (within the band around the threshold) among
them (:func:`verdict_rows`). ``deepscan evaluate`` and ``python -m bench.quality`` print the same
numbers through these functions.
"""

from __future__ import annotations

import math

from deepscan.metrics import METRICS

__all__ = ["HEADERS", "sections", "metric_cell", "files_cell", "legend", "verdict_rows", "render_markdown",
           "render_tables"]

HEADERS = {"auc": "AUC", "eer": "EER", "ap": "AP", "accuracy": "acc", "ece": "ECE"}
METRIC_WIDTH = 9  # a terminal column: ``0.912`` over ``0.80–0.99`` (a space divides the columns)
VERDICT_COLUMNS = ("fake", "uncertain", "real", "unknown", "error")
VERDICTS_TITLE = "Verdicts per media kind (uncertain: p_fake within the band around the threshold)"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def metric_cell(metrics: dict, name: str, terminal: bool = False) -> str:
    """One metric with its interval: ``0.912 [0.80, 0.99]``, or ``0.912`` over ``0.80–0.99``; ``–`` if undefined.

    Parameters
    ----------
    metrics : dict
        A scorer's metrics from :func:`deepscan.evaluation.score_table`.
    name : str
        One of :data:`deepscan.evaluation.METRICS`.
    terminal : bool
        The interval on a second line, as ``lo–hi`` (narrow columns), instead of ``[lo, hi]`` beside it.

    Returns
    -------
    str
        The value to 3 decimals, the bounds to 2.
    """
    value = metrics.get(name)
    if _missing(value):
        return "–"
    lo, hi = metrics.get(f"{name}_lo"), metrics.get(f"{name}_hi")
    if _missing(lo) or _missing(hi):
        return f"{value:.3f}"
    return f"{value:.3f}\n{lo:.2f}–{hi:.2f}" if terminal else f"{value:.3f} [{lo:.2f}, {hi:.2f}]"


def files_cell(metrics: dict) -> str:
    """Files scored of the files in the row, and of them real / fake: ``24/26 (11 r, 13 f)``."""
    return f"{metrics['coverage']} ({metrics['n_real']} r, {metrics['n_fake']} f)"


def _scorers(report: dict) -> list[str]:
    table = report["table"]
    names = {s for group in ("kinds", "subsets") for row in table[group].values() for s in row}
    names |= {s for methods in table["methods"].values() for row in methods.values() for s in row}
    return sorted(names, key=lambda s: (s != "p_fake", s))


def sections(report: dict) -> list[dict]:
    """The rows to show, grouped: per media kind, per fake method, per subset.

    Parameters
    ----------
    report : dict
        :func:`deepscan.evaluation.evaluate_media`'s report (or any dict with its ``table``).

    Returns
    -------
    list of dict
        ``{"title", "rows": [(label, scorer, metrics), ...]}``. A scorer that scored no file of a row
        (a face cue on speech) is left out of it; ``p_fake`` comes first, then the cues by name.
    """
    table = report["table"]
    order = _scorers(report)

    def rows(label: str, row: dict) -> list:
        return [(label, s, row[s]) for s in order if s in row and row[s]["n"] > 0]

    out = [{"title": "Per media kind", "rows": [r for kind, row in table["kinds"].items() for r in rows(kind, row)]},
           {"title": "Per fake method (its fakes against all reals of the kind)",
            "rows": [r for kind, methods in table["methods"].items() for method, row in methods.items()
                     for r in rows(f"{kind}: {method}", row)]}]
    if table.get("subsets"):
        prefixes = report.get("subsets") or {}

        def subset_label(name: str) -> str:
            return f"{name} (pairs {', '.join(p + '*' for p in prefixes[name])})" if prefixes.get(name) else name

        out.append({"title": "Subsets",
                    "rows": [r for name, row in table["subsets"].items() for r in rows(subset_label(name), row)]})
    return out


def band_cell(band) -> str:
    """An uncertain band as ``0.637–0.737``; ``per file`` or ``–`` as the report says."""
    if isinstance(band, (list, tuple)) and len(band) == 2:
        return f"{band[0]:.3f}–{band[1]:.3f}"
    return band if isinstance(band, str) else "–"


def verdict_rows(report: dict) -> list[tuple]:
    """Per media kind and label, the verdict counts of :func:`deepscan.evaluation.verdict_counts`.

    Parameters
    ----------
    report : dict
        :func:`deepscan.evaluation.evaluate_media`'s report; one without ``verdicts`` (written by an
        older deepscan) gives no rows.

    Returns
    -------
    list of tuple
        ``(kind, label, counts, band)``: ``counts`` ``{"files", "fake", "uncertain", "real", "unknown",
        "error"}``, ``band`` its :func:`band_cell`; real before fake, kinds in name order.
    """
    rows = []
    for kind, row in sorted((report.get("verdicts") or {}).items()):
        for label in ("real", "fake"):
            counts = row.get(label) or {}
            if counts.get("files"):
                rows.append((kind, label, counts, band_cell(row.get("band"))))
    return rows


def legend(report: dict) -> str:
    """What a cell means, in one paragraph (the same under both renderings)."""
    cue = report.get("cue_threshold", 0.5)
    rounds = report.get("rounds")
    fused = ("p_fake is the detector's fused verdict, at its own threshold" if report.get("fused", True)
             else "the detector is untrained: cues only")
    return (f"Each value comes with its 95% bootstrap interval over pairs{f' ({rounds} resamples)' if rounds else ''}. "
            f"{fused}; every other row is one cue alone, at {cue:g}. files: scored / in the row "
            "(real, fake): a cue that does not apply to a file (no face, no speech, no audio), or a verdict "
            "withheld, leaves the file out. acc: accuracy at the threshold. ECE: expected calibration error.")


def render_markdown(report: dict) -> str:
    """The report as Markdown tables (GitHub-flavoured), one per section, with the legend first.

    Parameters
    ----------
    report : dict
        :func:`deepscan.evaluation.evaluate_media`'s report.

    Returns
    -------
    str
        Markdown text, no trailing newline. ``|`` in labels is escaped.
    """
    lines = [legend(report)]
    head = "| | scorer | files | " + " | ".join(HEADERS[m] for m in METRICS) + " |"
    rule = "|---|---|---|" + "---|" * len(METRICS)
    for section in sections(report):
        lines += ["", f"**{section['title']}**", "", head, rule]
        previous = None
        for label, scorer, m in section["rows"]:
            shown = "" if label == previous else label.replace("|", "\\|")
            previous = label
            lines.append(f"| {shown} | {scorer} | {files_cell(m)} | "
                         + " | ".join(metric_cell(m, name) for name in METRICS) + " |")
    verdicts = verdict_rows(report)
    if verdicts:
        lines += ["", f"**{VERDICTS_TITLE}**", "",
                  "| kind | label | files | " + " | ".join(VERDICT_COLUMNS) + " | uncertain band |",
                  "|---|---|---|" + "---|" * len(VERDICT_COLUMNS) + "---|"]
        for kind, label, counts, band in verdicts:
            lines.append(f"| {kind} | {label} | {counts['files']} | "
                         + " | ".join(str(counts.get(v, 0)) for v in VERDICT_COLUMNS) + f" | {band} |")
    return "\n".join(lines)


def render_tables(report: dict) -> list:
    """The report for a terminal: per section a title, a header, then per row label a line and its scorers.

    Each interval sits under its value (``0.912`` over ``0.80–0.99``) and every column has a fixed
    width, so that the numbers never wrap, the columns line up from one label to the next, and the
    report fits 80 columns; a label (a method's name) takes the whole width and wraps at spaces.

    Parameters
    ----------
    report : dict
        :func:`deepscan.evaluation.evaluate_media`'s report.

    Returns
    -------
    list
        Rich renderables (``Console.print`` each). Labels (manifest text) are
        :func:`deepscan.writers.safe.rich_text`.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from deepscan.writers.safe import rich_text

    out: list = []
    for section in sections(report):
        rows = section["rows"]
        first = max([12] + [len(scorer) + 2 for _, scorer, _ in rows])
        files = max([7] + [len(m["coverage"]) for _, _, m in rows] + [len(f"{m['n_real']}r {m['n_fake']}f")
                                                                      for _, _, m in rows])

        def table(header: bool) -> Table:
            t = Table(box=box.SIMPLE_HEAD, show_header=header, show_edge=False, pad_edge=False, padding=0)
            t.add_column("", width=first, no_wrap=True)
            t.add_column("files", width=files, justify="right", no_wrap=True)
            for name in METRICS:
                t.add_column(HEADERS[name], width=METRIC_WIDTH, justify="right", no_wrap=True)
            return t

        out += [Text(""), Text(section["title"], style="bold underline"), table(header=True)]
        current, group = None, None
        for label, scorer, m in rows:
            if label != current:
                current, group = label, table(header=False)
                out += [rich_text(label, style="bold"), group]
            group.add_row(rich_text("  " + scorer), f"{m['coverage']}\n{m['n_real']}r {m['n_fake']}f",
                          *(metric_cell(m, name, terminal=True) for name in METRICS))
    verdicts = verdict_rows(report)
    if verdicts:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
        for i, header in enumerate(("kind", "label", "files", *VERDICT_COLUMNS, "band")):
            table.add_column(header, no_wrap=True, justify="left" if i < 2 else "right")
        for kind, label, counts, band in verdicts:
            table.add_row(rich_text(kind), label, str(counts["files"]),
                          *(str(counts.get(v, 0)) for v in VERDICT_COLUMNS), band)
        out += [Text(""), Text(VERDICTS_TITLE, style="bold underline"), table]
    return out
