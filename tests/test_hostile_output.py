"""What deepscan writes about a hostile file cannot be turned against whoever reads the output.

File names (and reasons) below hold spreadsheet formulas, HTML and SVG, Rich markup, terminal
escape sequences, bidirectional overrides, newlines and line separators followed by a forged JSON
record, control characters and bytes that are not UTF-8. Every writer is checked with a parser of
its format: the CSV as a spreadsheet reads it, the HTML with an HTML parser, the JUnit XML with an
XML parser and its schema, the JSON Lines as a line-splitting reader does, the table and the CLI's
messages as a terminal receives them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deepscan import synth
from deepscan.cli import app
from deepscan.cli.common import EXIT_FILE_ERRORS, EXIT_USAGE
from deepscan.results import ScanResult, WindowScore
from deepscan.writers import CsvWriter, JsonLinesWriter, read_jsonl, render_table, write_json, write_junit
from deepscan.writers.html import render_html
from deepscan.writers.safe import (
    FORMULA_TRIGGERS, csv_cell, json_dumps, markup_text, plot_text, rich_text, terminal_text,
)
from tests.helpers import make_detector

FORGED = '{"path": "forged.mp4", "status": "ok", "verdict": "real"}'
HOSTILE = [
    "=cmd|' /C calc'!A0.mp4",
    "+1+1.mp4",
    "-2+3.mp4",
    "@SUM(A1).mp4",
    "\t=1.mp4",
    " =HYPERLINK(\"http://evil.example\").mp4",
    "a;=1+1,=2.mp4",
    "\uff1dSUM(1).mp4",
    "<script>alert(1)</script>.mp4",
    "\"q\" 'single' <b onmouseover=alert(2)>.mp4",
    "</svg><script>alert(3)</script>.png",
    "]]><!-- &amp; &#x41;.mp4",
    "a[/]b[red]red[/red][link=http://evil.example]x[/link].mp4",
    "esc\x1b[2J\x1b]0;owned\x07\x1b[31m.mp4",
    "bidi\u202egnp.exe",
    "nl\n" + FORGED,
    "ls\u2028" + FORGED,
    "nel\x85" + FORGED,
    "ctl\x00\x01\x08\x0b\x0c\x7f\x9b.mp4",
    "bad\udcff\udcfe.mp4",  # bytes 0xff 0xfe of a file name, as Python decodes them
    "$x^2$ \\frac{a}{b}.mp4",
]
HOSTILE_REASON = "<img src=x onerror=alert(4)> =1+1 \x1b[2J"


def _ok(path: str, reason: str | None = None) -> ScanResult:
    windows = [WindowScore(i, 4.0 * i, 4.0 * (i + 1), p, float(np.log(p / (1 - p))),
                           {"image": p, "audio": 1 - p, "video": None}, 32, 30)
               for i, p in enumerate([0.3, 0.7, 0.5])]
    modalities = {"image": {"present": True, "p_fake": 0.5, "reason": None},
                  "audio": {"present": True, "p_fake": 0.5, "reason": None},
                  "video": {"present": False, "p_fake": None, "reason": HOSTILE_REASON}}
    return ScanResult(path=path, status="ok", reason=reason, verdict="fake", p_fake=0.5, threshold=0.5,
                      modalities=modalities, top_modality="image", windows=windows,
                      media={"path": path, "kind": "video", "container": "<b>mp4</b>", "duration_s": 12.0,
                             "width": 64, "height": 48, "has_audio": True, "audio_sample_rate": 16000,
                             "audio_channels": 1, "size_bytes": 1000},
                      faces={"frames": 96, "frames_with_face": 90, "max_faces": 1, "no_face": False},
                      detector={"name": "<i>demo</i>", "sha256": "ab" * 32, "trained_on": "synthetic",
                                "synthetic": True, "label": "DEMO [bold]detector[/]", "data": None, "metrics": None},
                      elapsed_s=1.0)


def _results() -> list[ScanResult]:
    out = []
    for i, name in enumerate(HOSTILE):
        if i % 2:
            out.append(ScanResult.error(name, "truncated or corrupt", f"{HOSTILE_REASON} in {name}"))
        else:
            out.append(_ok(name, reason=HOSTILE_REASON if i % 4 == 0 else None))
    return out


def _shown(text: str) -> str:
    """How a name reads once lone surrogates are written as escapes (what every writer does)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# -- CSV -------------------------------------------------------------------------------------------


def _is_formula(cell: str) -> bool:
    try:
        float(cell)
        return False  # a number (a negative margin, -0.18) is read as a number, not run
    except ValueError:
        pass
    first = cell.lstrip(" \n\x0b\x0c\u00a0\u3000")[:1]
    return bool(first) and (first in FORMULA_TRIGGERS or cell[:1] in ("\t", "\r"))


def test_csv_cells_never_start_a_formula():
    stream = io.StringIO(newline="")
    writer = CsvWriter(stream)
    for result in _results():
        writer.write(result)
    text = stream.getvalue()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == len(HOSTILE) + 1
    for row, name in zip(rows[1:], HOSTILE):
        assert not any(_is_formula(cell) for cell in row), row
        path = row[0]
        if _is_formula(_shown(name)):
            assert path == "'" + _shown(name)  # neutralised with a quote, the rest kept as it was
        else:
            assert path == _shown(name)
    # every field is quoted, so a ";" or "," in a name cannot start a new cell in any locale
    for delimiter in (";", ","):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            assert not any(_is_formula(cell) for cell in row)
    text.encode("utf-8")  # writable as UTF-8 (undecodable names no longer crash the writer)


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+A1", "'+A1"), ("-A1", "'-A1"), ("@A1", "'@A1"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("  =1", "'  =1"), ("\uff1d1", "'\uff1d1"), ("a=1", "a=1"), ("clip.mp4", "clip.mp4"), ("", ""),
    (0.5, 0.5), (-1, -1), (None, None), ("x\udcff", "x\\udcff"),
])
def test_csv_cell(value, expected):
    assert csv_cell(value) == expected


# -- HTML ------------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def test_html_escapes_names_reasons_and_attributes():
    results = _results()
    html = render_html(results)
    parser = _Tags()
    parser.feed(html)
    plots = sum(r.status == "ok" for r in results)
    assert parser.tags.count("script") == 1  # the report's own sort/filter script, nothing injected
    assert parser.tags.count("svg") == plots  # one per plot: no </svg> in a name closed one early
    assert "b" not in parser.tags and "i" not in parser.tags and "img" not in parser.tags
    assert not [a for a in parser.attrs if a[1].startswith("on")]  # no event handler attribute
    text = "".join(parser.text)
    for name in HOSTILE:
        assert _shown(name) in text or _shown(name).replace("\n", " ") in text or name.startswith("ctl")
    titles = [v for tag, k, v in parser.attrs if k == "title"]
    assert any(HOSTILE_REASON in v for v in titles)  # the hostile reason is in a title attribute, as text
    assert "<script>alert" not in html and "<img" not in html and "</svg><script>" not in html
    html.encode("utf-8")


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_plot_text_is_literal_in_matplotlib_svg():
    from matplotlib.figure import Figure

    for name in HOSTILE:
        fig = Figure(figsize=(3, 1))
        ax = fig.add_subplot()
        ax.set_title(plot_text(name))
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        root = ET.fromstring(buffer.getvalue())  # well-formed: the name cannot close the <svg>
        assert root.tag.endswith("svg")
        assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert plot_text("$x$") == r"\$x\$" and plot_text("a\x1b[2J") == "a\\x1b[2J"


def test_cue_names_from_a_results_file_are_plain_text_in_plots():
    bad = ["$x^{$", "$\\frac{a}{$", "<script>alert(5)</script>", "_hidden", "</svg>"]
    windows = [WindowScore(i, 4.0 * i, 4.0 * (i + 1), 0.5, 0.0, {"image": 0.5, "audio": None, "video": None}, 1, 1,
                           cues={name: {"p_fake": 0.1 + 0.1 * j} for j, name in enumerate(bad)}) for i in range(3)]
    result = ScanResult(path="x.mp4", status="ok", verdict="real", p_fake=0.5, threshold=0.5, windows=windows,
                        cues={name: {"p_fake": 0.3, "reason": None} for name in bad})
    html = render_html([result])  # mathtext would raise on "$x^{$"
    parser = _Tags()
    parser.feed(html)
    assert parser.tags.count("script") == 1 and "&lt;script&gt;alert(5)" in html
    svgs = html.count("<svg")
    assert parser.tags.count("svg") == svgs and svgs >= 2  # the fused and the cue timelines, none closed early


# -- JUnit XML -------------------------------------------------------------------------------------


def test_junit_is_well_formed_and_valid_with_control_characters():
    stream = io.StringIO()
    write_junit(_results(), stream)
    xml = stream.getvalue()
    xml.encode("utf-8")
    root = ET.fromstring(xml.encode("utf-8"))
    names = [case.get("name") for case in root.iter("testcase")]
    assert len(names) == len(HOSTILE)
    assert "bad\\udcff\\udcfe.mp4" in names and any("\\x1b" in n for n in names)
    xmlschema = pytest.importorskip("xmlschema")
    from importlib import resources

    with resources.as_file(resources.files("deepscan.writers").joinpath("junit.xsd")) as xsd:
        xmlschema.XMLSchema(str(xsd)).validate(xml)


# -- JSON Lines and JSON ---------------------------------------------------------------------------


def test_jsonl_one_record_per_result_and_names_round_trip(tmp_path):
    out = tmp_path / "results.jsonl"
    with open(out, "w", encoding="utf-8", newline="") as stream:
        writer = JsonLinesWriter(stream)
        for result in _results():
            writer.write(result)
    text = out.read_bytes().decode("utf-8")  # valid UTF-8, surrogates included (as escapes)
    assert text.count("\n") == len(HOSTILE)
    assert len(text.splitlines()) == len(HOSTILE)  # even a reader splitting at U+2028 or NEL
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["path"] for r in records] == HOSTILE  # exactly the names, nothing forged
    assert [r.path for r in read_jsonl(out)] == HOSTILE
    assert not any(r["path"] == "forged.mp4" for r in records)


def test_json_array_writes_undecodable_names():
    stream = io.StringIO()
    write_json(_results(), stream)
    assert [r["path"] for r in json.loads(stream.getvalue())] == HOSTILE
    stream.getvalue().encode("utf-8")
    assert json.loads(json_dumps({"p": "\u2028\x85\udcff"})) == {"p": "\u2028\x85\udcff"}


# -- Terminal --------------------------------------------------------------------------------------


def test_table_shows_names_as_text_without_escape_sequences():
    plain = Console(file=io.StringIO(), width=400, color_system=None)
    plain.print(render_table(_results()))
    out = plain.file.getvalue()
    for bad in ("\x1b", "\x07", "\u202e", "\x9b", "\x85", "\u2028", "\x00"):
        assert bad not in out
    assert "a[/]b[red]red[/red][link=http://evil.example]x[/link].mp4" in out  # markup shown, not applied
    assert "esc\\x1b[2J\\x1b]0;owned\\x07\\x1b[31m.mp4" in out
    colour = Console(file=io.StringIO(), width=400, force_terminal=True, color_system="truecolor")
    colour.print(render_table(_results()))
    styled = colour.file.getvalue()
    for bad in ("\x1b[2J", "\x1b]0;", "\x07", "\u202e", "\x1b]8;"):  # no clear, title, bell, bidi, link
        assert bad not in styled


@pytest.mark.parametrize("text, shown", [
    ("a\x1b[31mb", "a\\x1b[31mb"), ("x\ry", "x\\x0dy"), ("\u202eabc", "\\u202eabc"), ("ok é 名前", "ok é 名前"),
    ("\udcff", "\\udcff"), ("tab\there", "tab\\x09here"), (None, ""),
])
def test_terminal_text(text, shown):
    assert terminal_text(text) == shown
    assert rich_text(text).plain == shown


def test_markup_text_is_not_markup():
    console = Console(file=io.StringIO(), color_system=None, width=200)
    console.print(f"[red]error:[/] {markup_text('a[/]b[bold]c')}")
    assert console.file.getvalue().strip() == "error: a[/]b[bold]c"


# -- End to end: files with hostile names scanned by the CLI -----------------------------------------


def _hostile_folder(root: Path) -> list[bytes]:
    """Write a small wav under each hostile name that a file system allows (no "/" or NUL)."""
    sample = root.parent / "sample.wav"
    synth.write_audio(sample, duration_s=1.0, seed=3)
    root.mkdir()
    names = []
    for name in HOSTILE:
        if "/" in name or "\x00" in name:
            continue
        raw = os.fsencode(name)
        if not raw.endswith((b".mp4", b".png", b".exe")):
            raw += b".wav"
        shutil.copyfile(sample, os.path.join(os.fsencode(root), raw))
        names.append(raw)
    (root / "=cmd text.mp4").write_text("not media\n" * 5)  # an error result under a formula name
    return names


@pytest.fixture(scope="module")
def cli_detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


def test_cli_outputs_of_a_hostile_folder(tmp_path, cli_detector):
    folder = tmp_path / "in"
    names = _hostile_folder(folder)
    out_csv, out_jsonl, html = tmp_path / "r.csv", tmp_path / "r.jsonl", tmp_path / "r.html"
    runner = CliRunner()
    base = ["check", str(folder), "--detector", str(cli_detector), "--encoders", "debug", "--precision", "fp32",
            "-q", "--workers", "0"]  # the second and third runs read features from the cache
    result = runner.invoke(app, base + ["--format", "jsonl", "--output", str(out_jsonl), "--html", str(html)])
    assert result.exit_code == EXIT_FILE_ERRORS, result.output  # the text file is an error, the rest scanned
    records = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").split("\n") if line]
    assert sorted(os.fsencode(r["path"]) for r in records) == sorted(
        [os.path.join(os.fsencode(folder), n) for n in names] + [os.fsencode(folder / "=cmd text.mp4")])
    assert sum(r["status"] == "ok" for r in records) == len(names)
    assert [r.path for r in read_jsonl(out_jsonl)] == [r["path"] for r in records]
    parser = _Tags()
    report = html.read_text(encoding="utf-8")
    parser.feed(report)
    svgs = report.count("<svg")  # a fused timeline per file, and the cues' timelines where experts ran
    assert parser.tags.count("script") == 1 and parser.tags.count("svg") == svgs and svgs >= len(names)

    result = runner.invoke(app, base + ["--format", "csv", "--output", str(out_csv)])
    assert result.exit_code == EXIT_FILE_ERRORS
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text(encoding="utf-8"), newline="")))
    assert len(rows) == len(names) + 1
    assert not any(_is_formula(v) for row in rows for v in row.values() if v)

    result = runner.invoke(app, base + ["--format", "table"])
    assert "\x1b[2J" not in result.stdout and "\u202e" not in result.stdout and "\x07" not in result.stdout


def test_cli_error_message_for_a_hostile_missing_path(cli_detector):
    result = CliRunner().invoke(app, ["check", "/nonexistent/a[/]b\x1b[2J.mp4", "--detector", str(cli_detector)])
    assert result.exit_code == EXIT_USAGE
    assert "a[/]b\\x1b[2J.mp4" in result.output and "\x1b" not in result.output
