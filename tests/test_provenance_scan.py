"""A file that declares its AI origin is judged fake with the declaration as the reason (issue 25)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from deepscan.cli import app
from deepscan.scanner import Scanner


def _png(path, text=None):
    rng = np.random.default_rng(0)
    pixels = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    Image.fromarray(pixels).save(path, pnginfo=info)
    return path


A1111 = {"parameters": "a cat on a sofa\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
                       "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"}


@pytest.fixture(scope="module")
def scanner():
    with Scanner(experts="provenance", workers=0, cache=False) as s:
        yield s


def test_generator_metadata_makes_the_verdict_fake_with_the_declaration(tmp_path, scanner):
    marked = _png(tmp_path / "marked.png", A1111)
    (result,) = scanner.scan([str(marked)])
    prov = result.cues["provenance"]
    assert result.verdict == "fake"
    assert prov["p_fake"] >= 0.99 and result.p_fake >= 0.99
    assert "AUTOMATIC1111" in result.reason or "A1111" in result.reason or "parameters" in result.reason
    assert prov["column"].startswith("AI")
    assert prov["facts"]["generator_marks"]


def test_no_mark_is_no_evidence(tmp_path, scanner):
    plain = _png(tmp_path / "plain.png")
    (result,) = scanner.scan([str(plain)])
    prov = result.cues["provenance"]
    assert prov["p_fake"] is None and prov["column"] == "-"
    assert result.verdict != "fake"


def test_an_editor_tag_is_no_evidence(tmp_path, scanner):
    edited = _png(tmp_path / "edited.png", {"Software": "GIMP 2.10.36"})
    (result,) = scanner.scan([str(edited)])
    assert result.cues["provenance"]["p_fake"] is None and result.verdict != "fake"


def test_check_shows_a_prov_column_and_json_carries_the_facts(tmp_path):
    _png(tmp_path / "marked.png", A1111)
    _png(tmp_path / "plain.png")
    runner = CliRunner()
    table = runner.invoke(app, ["check", str(tmp_path), "--experts", "provenance", "--workers", "0", "--no-cache"],
                          env={"COLUMNS": "80"})
    assert "prov" in table.output and "AI meta" in table.output, table.output
    out = tmp_path / "out.jsonl"
    runner.invoke(app, ["check", str(tmp_path), "--experts", "provenance", "--workers", "0", "--no-cache",
                        "-o", str(out)])
    records = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line) for line in out.read_text().splitlines()}
    assert records["marked.png"]["verdict"] == "fake"
    assert records["marked.png"]["cues"]["provenance"]["facts"]["generator_marks"]
    assert records["plain.png"]["cues"]["provenance"]["p_fake"] is None


def test_probe_lists_what_the_file_declares(tmp_path):
    _png(tmp_path / "marked.png", A1111)
    result = CliRunner().invoke(app, ["probe", str(tmp_path / "marked.png"), "-f", "json"])
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["provenance"]["column"].startswith("AI")
    assert any("1111" in line or "parameters" in line for line in record["provenance"]["found"])
    table = CliRunner().invoke(app, ["probe", str(tmp_path / "marked.png")], env={"COLUMNS": "100"})
    assert "marked.png:" in table.output


def test_html_report_shows_what_a_marked_file_declares(tmp_path, scanner):
    from deepscan.writers.html import render_html

    results = scanner.scan([str(_png(tmp_path / "marked.png", A1111)), str(_png(tmp_path / "plain.png"))])
    page = render_html(results)
    assert page.count("what the file declares about itself") == 1
    assert "generator metadata" in page and "<script" not in page.split("provenance")[1][:2000]
