"""A Rich table of scan results, for people."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from rich.markup import escape
from rich.table import Table

from deepscan.results import MODALITIES, ScanResult, summarize
from deepscan.writers.safe import rich_text

VERDICT_STYLE = {"fake": "bold red", "real": "green", "unknown": "yellow"}


def _score(p):
    return "" if p is None else f"{p:.2f}"


def _cues(cues: dict) -> str:
    """One short line per cue: ``aasist 0.93``, ``av_sync +40 ms 0.12``, ``meso4: no face``."""
    lines = []
    for name, c in cues.items():
        if c.get("p_fake") is None:
            lines.append(f"[dim]{name}: {escape(c.get('reason') or 'n/a')}[/]")
        elif name == "av_sync" and c.get("lag_ms") is not None:
            lines.append(f"{name} {c['lag_ms']:+.0f} ms {c['p_fake']:.2f}")
        else:
            lines.append(f"{name} {c['p_fake']:.2f}")
    return "\n".join(lines)


def _shown(result: ScanResult) -> ScanResult:
    """A copy whose path and reason are Rich Text: never read as markup, escape sequences made visible."""
    return dataclasses.replace(result, path=rich_text(result.path),
                               reason=rich_text(result.reason) if result.reason else None)


def render_table(results: Sequence[ScanResult]) -> Table:
    """Build a table: one row per file with verdict, ``p_fake``, threshold and modality scores.

    The caption states the counts and, for a detector trained on synthetic or debug data, that
    its verdicts are a demonstration, not a real judgement.

    Parameters
    ----------
    results : sequence of ScanResult

    Returns
    -------
    rich.table.Table
    """
    table = Table(title="deepscan check", show_lines=False)
    show_cues = any(r.cues for r in results)
    columns = ("file", "verdict", "p_fake", "thr", *MODALITIES, *(("cues",) if show_cues else ()), "faces", "reason")
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in results:
        r = _shown(r)  # a file name is text, never markup or terminal control (deepscan.writers.safe)
        if r.status != "ok":
            table.add_row(r.path, "[red]error[/]", *[""] * (len(columns) - 3), r.reason or "")
            continue
        mods = [_score((r.modalities.get(m) or {}).get("p_fake")) for m in MODALITIES]
        faces = f"{r.faces.get('frames_with_face', 0)}/{r.faces.get('frames', 0)}" if r.faces.get("frames") else ""
        style = VERDICT_STYLE.get(r.verdict or "", "")
        table.add_row(r.path, f"[{style}]{r.verdict}[/]", _score(r.p_fake), _score(r.threshold), *mods,
                      *((_cues(r.cues),) if show_cues else ()), faces, r.reason or "")
    counts = summarize(results)
    caption = ", ".join(f"{v} {k}" for k, v in counts.items())
    labels = sorted({r.detector.get("label") for r in results if r.detector.get("label")})
    if labels:
        caption += "\n" + "\n".join(f"[bold yellow]{label}[/]" for label in labels)
    table.caption = caption
    return table
