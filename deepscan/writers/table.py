"""A Rich table of scan results, for people, that fits the terminal (80 columns and up).

One row per file: its name, the verdict, ``p_fake``, its ``margin`` to its threshold (``p_fake -
threshold``, signed: ``+0.12`` is on the fake side) and one narrow column per cue (``aas`` for
AASIST, ``meso`` for Meso-4, ...) with the cue's score in two digits (``.93``); a cue that does not
apply to a file is a dim ``–`` with a superscript that points to the reason under the table, and a
cue that applied to no file has no column, only a line under the table. Names are shown from the
folder the files share (the scanned folder; named in the title unless it is the working directory),
and a name too long for its column is cut in the middle (``real_talk…stereo.mp4``).
Numbers never wrap; a note (why a verdict is withheld, why a file could not be read) sits under
the file's name and wraps at spaces. The face counts make room for the names when the terminal is
narrow; the per-modality scores are in JSON, CSV and the HTML report, and the table shows them only
when no cue ran. The closing lines give the counts, the thresholds and uncertain bands per media
kind, and what the verdicts mean (``real``: no sign of manipulation found by these cues).

The layout is made when the table is printed, for the console's width (:class:`ResultTable`).
"""

from __future__ import annotations

import os
from typing import Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from deepscan.results import (
    MODALITIES, VERDICT_MEANINGS, VERDICT_REAL, VERDICT_UNCERTAIN, ScanResult, counts_line, summarize,
)
from deepscan.writers.paths import display_root, middle_ellipsis, relative_to, shown_folder
from deepscan.writers.safe import rich_text, terminal_text

VERDICT_STYLE = {"fake": "bold red", "uncertain": "bold magenta", "real": "green", "unknown": "yellow"}
PROVENANCE_CUE = "provenance"  # shown as its own compact "prov" column, only when a file declares something
# Column headers of the cues: short enough that a score in two digits fills the column.
CUE_HEADERS = {"aasist": "aas", "aasist-l": "aasL", "meso4": "meso", "meso4-f2f": "m4f2f", "av_sync": "sync",
               "synthetic_speech": "spch", "generated_image": "gen", "generated_image_lite2": "gen2",
               "face_forgery": "face"}
SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"
ABSENT = "–"
MIN_FILE_WIDTH = 12  # the file column never gets narrower than this (names are cut in the middle)
WANT_FILE_WIDTH = 28  # below this, the face counts make room for the names
COLUMN_PADDING = 0  # padding right of a column; the box's vertical divider is a space
COLUMN_GAP = COLUMN_PADDING + 1  # cells between two columns


def _score(p) -> str:
    """``p_fake`` or a threshold in three decimals: two would print 0.66 for both 0.6642 and 0.6648."""
    return "" if p is None else f"{p:.3f}"


def margin_cell(margin) -> str:
    """A margin to the threshold, signed, in two decimals: ``+0.12``, ``-0.41``; empty when there is none."""
    return "" if margin is None else f"{margin:+.2f}"


def error_note(reason: str | None, message: str | None) -> str:
    """The line under a file that could not be scanned: its reason and why, the reason said once.

    Parameters
    ----------
    reason : str or None
        The stable reason (``"truncated or corrupt"``).
    message : str or None
        The explanation, which often starts with the reason already.

    Returns
    -------
    str
        ``message`` when it starts with ``reason``, else ``"reason: message"``, or ``reason`` alone.
    """
    reason, message = reason or "", message or ""
    if message.startswith(reason):
        return message
    return f"{reason}: {message}" if message else reason


def cue_score(p: float) -> str:
    """A cue's score in two digits and three cells: ``.07``, ``.93``, ``1.0`` (from 0.995)."""
    text = f"{p:.2f}"
    return "1.0" if text == "1.00" else text[1:] if text.startswith("0") else text


def cue_header(name: str) -> str:
    """The short column header of a cue (:data:`CUE_HEADERS`, else its first five characters)."""
    return CUE_HEADERS.get(name) or name[:5]


class ResultTable:
    """Scan results as a table laid out for the width of the console that prints it.

    Parameters
    ----------
    results : sequence of ScanResult
    root : str, optional
        Folder the names are shown from; default: the folder the files share (the scanned folder,
        :func:`deepscan.writers.paths.display_root`), named in the title unless it is the working directory.
    cwd : str, optional
        The working directory (default: :func:`os.getcwd`).
    """

    def __init__(self, results: Sequence[ScanResult], root: str | None = None, cwd: str | None = None):
        self.results = list(results)
        self.cwd = os.path.abspath(cwd if cwd is not None else os.getcwd())
        self.root = root if root is not None else display_root([r.path for r in self.results], self.cwd, prefer_cwd=False)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.build(options.max_width)
        notes, table.caption = table.caption, None  # under the table, wrapped at the console's width
        yield table
        yield notes

    def build(self, width: int = 80) -> Table:
        """The table for a console ``width`` cells wide.

        Parameters
        ----------
        width : int
            Cells the table may take; it takes fewer when the names are short.

        Returns
        -------
        rich.table.Table
            With the notes (counts, threshold, cue legend, why cues are absent, the detector's label)
            as its caption; printed through :class:`ResultTable`, they follow the table at the
            console's width instead.
        """
        results = self.results
        ok = [r for r in results if r.status == "ok"]
        cue_names = list(dict.fromkeys(n for r in ok for n in (r.cues or {}) if n != PROVENANCE_CUE))
        scored = [n for n in cue_names if any((r.cues.get(n) or {}).get("p_fake") is not None for r in ok)]
        prov_shown = any(_prov_text(r) not in ("", "-") for r in ok)
        thresholds = {r.threshold for r in ok if r.threshold is not None}
        show_modalities = not cue_names

        # absent cues: one footnote per distinct reason, numbered in order of first appearance
        marks: dict[str, str] = {}

        def mark(reason: str) -> str:
            if reason not in marks:
                marks[reason] = SUPERSCRIPTS[len(marks)] if len(marks) < len(SUPERSCRIPTS) else "*"
            return marks[reason]

        rows, notes = [], []
        for r in results:
            name = terminal_text(relative_to(r.path, self.root))
            if r.status != "ok":
                rows.append((name, Text("error", style="red"), "", "",
                             *([""] * len(scored)), *([""] if prov_shown else []),
                             *([""] * (len(MODALITIES) if show_modalities else 0)), ""))
                message = (r.media or {}).get("error")
                notes.append(error_note(r.reason, message if isinstance(message, str) else None))
                continue
            cells = []
            for cue in scored:
                c = (r.cues or {}).get(cue) or {}
                if c.get("p_fake") is not None:
                    cells.append(Text(cue_score(c["p_fake"])))
                else:
                    cells.append(Text(ABSENT + mark(terminal_text(c.get("reason") or "not run")), style="dim"))
            mods = [_score((r.modalities.get(m) or {}).get("p_fake")) for m in MODALITIES] if show_modalities else []
            faces = f"{r.faces.get('frames_with_face', 0)}/{r.faces.get('frames', 0)}" if r.faces.get("frames") else ""
            prov = [Text(_prov_text(r) or "-", style="bold red" if _prov_text(r).startswith("AI") else "dim")] \
                if prov_shown else []
            rows.append((name, Text(r.verdict or "", style=VERDICT_STYLE.get(r.verdict or "", "")), _score(r.p_fake),
                         margin_cell(r.margin), *cells, *prov, *mods, faces))
            notes.append(r.reason or "")

        headers = ["file", "verdict", "p_fake", "margin",
                   *(cue_header(n) for n in scored), *(["prov"] if prov_shown else []),
                   *(MODALITIES if show_modalities else ()), "faces"]
        longest_name = max((cell_len(row[0]) for row in rows), default=4)
        longest_note = max((cell_len(terminal_text(n)) for n in notes if n), default=0)
        # a note (why no verdict, why an error) wraps under its name: the column widens for it, up to the console
        want_file = max(longest_name, min(longest_note, width), MIN_FILE_WIDTH)

        def fixed(hdrs, rws) -> int:  # the columns after the name, and the gaps between all columns
            return sum(max([cell_len(h)] + [cell_len(str(row[i])) for row in rws]) for i, h in enumerate(hdrs)
                       if i > 0) + COLUMN_GAP * (len(hdrs) - 1)

        # the face counts go first when the names would be cut short (they are in JSON, CSV and HTML)
        if not any(row[-1] for row in rows) or width - fixed(headers, rows) < min(want_file, WANT_FILE_WIDTH):
            headers.pop()
            rows = [row[:-1] for row in rows]
        file_width = max(MIN_FILE_WIDTH, min(want_file, width - fixed(headers, rows)))

        title = "deepscan check"
        if self.root is not None and self.root != self.cwd:
            title += f" · in {terminal_text(shown_folder(self.root, self.cwd))}{os.sep}"
        table = Table(title=rich_text(title), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      padding=(0, COLUMN_PADDING, 0, 0), title_justify="left", caption_justify="left", expand=False)
        for i, header in enumerate(headers):
            if i == 0:  # the name, and under it the note, wrapped at spaces
                table.add_column(header, width=file_width, overflow="fold")
            else:
                table.add_column(header, no_wrap=True, justify="left" if i == 1 else "right")
        for row, note in zip(rows, notes):
            cell = rich_text(middle_ellipsis(row[0], file_width))
            if note:
                cell.append("\n" + terminal_text(note), style="dim italic")
            table.add_row(cell, *row[1:])

        table.caption = self._caption(ok, scored, cue_names, marks, thresholds)
        return table

    def _caption(self, ok, scored, cue_names, marks, thresholds) -> Text:
        counts = summarize(self.results)
        lines = [counts_line(counts)]
        lines += _threshold_lines(ok, thresholds)
        if ok:
            lines.append(f"{VERDICT_REAL}: {VERDICT_MEANINGS[VERDICT_REAL]}")
        if scored:
            lines.append("cues: " + ", ".join(f"{cue_header(n)} {n}" for n in scored)
                         + " (each expert's own p_fake)")
        if any(_prov_text(r) not in ("", "-") for r in ok):
            lines.append("prov: what the file declares about itself (AI c2pa, AI xmp, AI meta, AI wm: a declared "
                         "AI origin, which makes the verdict fake; capture: a trusted capture claim; c2pa!: an "
                         "invalid manifest; -: nothing found, no evidence either way)")
        for reason, symbol in marks.items():
            lines.append(f"{ABSENT}{symbol} {reason}")
        unscored: dict = {}  # cues that scored no file, grouped by why
        for name in cue_names:
            if name not in scored:
                reasons = sorted({terminal_text((r.cues.get(name) or {}).get("reason") or "not run") for r in ok
                                  if name in (r.cues or {})})
                unscored.setdefault("; ".join(reasons), []).append(name)
        for reason, names in unscored.items():
            lines.append(f"{', '.join(names)}: {reason}")
        summaries = sorted({r.detector.get("summary") for r in self.results if (r.detector or {}).get("summary")})
        lines += [f"detector: {terminal_text(summary)}" for summary in summaries]
        caption = Text("\n".join(lines), style="dim")
        labels = sorted({r.detector.get("label") for r in self.results if (r.detector or {}).get("label")})
        for label in labels:
            caption.append("\n" + terminal_text(label), style="bold yellow")
        return caption


def _prov_text(result: ScanResult) -> str:
    """The compact provenance text of a result (``"AI meta"``, ``"-"``), ``""`` when it was not read."""
    return terminal_text(str(((result.cues or {}).get(PROVENANCE_CUE) or {}).get("column") or ""))


def _threshold_lines(ok, thresholds) -> list[str]:
    """The thresholds and the uncertain bands (as margins) per media kind, or once when all files share them."""
    if not thresholds:
        return []
    kinds: dict = {}  # (threshold, band as margins or None) -> media kinds
    for r in ok:
        if r.threshold is None:
            continue
        band = r.uncertain_band
        key = (r.threshold, None if not band else (band[0] - r.threshold, band[1] - r.threshold))
        kinds.setdefault(key, set()).add(terminal_text((r.media or {}).get("kind") or "other"))
    groups = sorted(kinds.items(), key=lambda item: sorted(item[1]))
    bands = [(names, band) for (_, band), names in groups if band is not None]
    if len(groups) == 1:
        lines = [f"threshold {groups[0][0][0]:.3f}; margin = p_fake - threshold"]
        shown = [f"{b[0]:+.2f}..{b[1]:+.2f}" for _, b in bands]
    else:
        lines = ["thresholds: " + ", ".join(f"{'/'.join(sorted(names))} {threshold:.3f}"
                                            for (threshold, _), names in groups) + "; margin = p_fake - threshold"]
        shown = [f"{'/'.join(sorted(names))} {b[0]:+.2f}..{b[1]:+.2f}" for names, b in bands]
    if shown:
        lines.append(f"{VERDICT_UNCERTAIN}: margin within " + ", ".join(shown)
                     + f" ({VERDICT_MEANINGS[VERDICT_UNCERTAIN]})")
    return lines


def render_table(results: Sequence[ScanResult], root: str | None = None, cwd: str | None = None) -> ResultTable:
    """Build a table: one row per file with verdict, ``p_fake``, compact cue scores, faces, and a note under the name.

    The caption states the counts, the thresholds and uncertain bands per media kind, what ``real``
    means (no sign of manipulation found by these cues), what the cue columns are, why a cue is absent
    where it is, and, for a detector trained on synthetic or debug data, that its verdicts are a
    demonstration, not a real judgement. File names and reasons are text, never markup, with control
    characters made visible (:mod:`deepscan.writers.safe`).

    Parameters
    ----------
    results : sequence of ScanResult
    root : str, optional
        Folder to show names from (default: the folder the files share, named in the title unless it
        is the working directory).
    cwd : str, optional
        The working directory (default: :func:`os.getcwd`).

    Returns
    -------
    ResultTable
        A Rich renderable: ``Console.print`` lays it out for the console's width
        (:meth:`ResultTable.build` gives the :class:`rich.table.Table` for a given width).
    """
    return ResultTable(results, root=root, cwd=cwd)
