"""The command line through Typer's test runner: help, version, probe, check, models, exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from deepscan import __version__, synth
from deepscan.cli import app
from deepscan.cli.common import EXIT_FAKE, EXIT_FILE_ERRORS, EXIT_MODEL_ERROR, EXIT_OK, EXIT_USAGE
from tests.helpers import make_detector

runner = CliRunner()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    synth.write_clip(root / "a.mp4", duration_s=2.0, seed=1)
    synth.write_image(root / "b.png", seed=2)
    (root / "broken.mp4").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("check", "probe", "models"):
        assert command in result.output
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"deepscan {__version__}"


def test_probe_json_one_object_per_file(media):
    result = runner.invoke(app, ["probe", str(media), "--format", "json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"].rsplit("/", 1)[-1] for line in lines] == ["a.mp4", "b.png", "broken.mp4"]
    a, b, broken = lines
    assert a["status"] == "ok" and a["kind"] == "video" and a["has_audio"] and a["width"] == 320
    assert b["kind"] == "image" and b["duration_s"] == 0.0
    assert broken["status"] == "error" and broken["reason"] == "empty file"
    assert result.exit_code == EXIT_FILE_ERRORS


def test_probe_table_fits_80_columns_with_a_row_per_file(tmp_path, monkeypatch):
    from rich.cells import cell_len

    folder = tmp_path / "interviews from the second camera, raw"
    folder.mkdir()
    names = ["speaker_interview_take_03_final_FINAL_v2_export_from_the_field.mp4", "b.png", "broken.mp4"]
    synth.write_clip(folder / names[0], duration_s=2.0, seed=1)
    synth.write_image(folder / names[1], seed=2)
    (folder / names[2]).write_bytes(b"")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["probe", str(folder)])
    assert result.exit_code == EXIT_FILE_ERRORS
    lines = result.output.splitlines()
    assert max(cell_len(line) for line in lines) <= 80, result.output
    assert lines[0].startswith("deepscan probe") and "interviews from the second camera, raw" in lines[0]
    rows = [line.split() for line in lines if line.split() and line.split()[0].endswith((".mp4", ".png"))]
    assert len(rows) == 3, result.output  # one line each: a long name is cut in the middle, not wrapped
    by_name = {row[0]: row for row in rows}
    (long_name,) = [n for n in by_name if "…" in n]
    head, tail = long_name.split("…")
    assert names[0].startswith(head) and names[0].endswith(tail)
    assert by_name[long_name][1:3] == ["video", "2.0"] and "320x240" in by_name[long_name]
    assert by_name["b.png"][1] == "image" and by_name["broken.mp4"][1] == "error" and "empty file" in result.output


def test_check_without_detector_explains_what_to_do(media, monkeypatch, tmp_path):
    monkeypatch.delenv("DEEPSCAN_DETECTOR", raising=False)
    monkeypatch.setattr("deepscan.model.fusion.DEFAULT_PATH", tmp_path / "not-shipped.safetensors")
    result = runner.invoke(app, ["check", str(media / "a.mp4"), "--encoders", "debug"])
    assert result.exit_code == EXIT_USAGE
    assert "--detector" in result.output and "deepscan demo" in result.output
    assert result.stdout.strip() == "" or "Traceback" not in result.output


def test_check_missing_path_is_a_usage_error(detector):
    result = runner.invoke(app, ["check", "/no/such/file.mp4", "--detector", str(detector), "--encoders", "debug"])
    assert result.exit_code == EXIT_USAGE and "no such file" in result.output


def test_check_jsonl_and_csv(media, detector):
    args = ["check", str(media), "--detector", str(detector), "--encoders", "debug", "--precision", "fp32", "-q"]
    result = runner.invoke(app, args + ["--format", "jsonl"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and result.exit_code == EXIT_FILE_ERRORS
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == 2 and all(r["detector"]["synthetic"] and r["detector"]["label"] for r in ok)
    assert all({"verdict", "p_fake", "threshold", "windows", "media", "faces"} <= r.keys() for r in records)

    result = runner.invoke(app, args + ["--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    assert all("DEMO" in r["detector_label"] for r in rows[:2])


def test_output_extension_picks_the_format_unless_one_is_given(media, detector, tmp_path):
    args = ["check", str(media / "b.png"), "--detector", str(detector), "--encoders", "debug", "-q"]
    for name in ("out.jsonl", "out.json", "out.csv", "out.xml", "out.txt"):
        assert runner.invoke(app, args + ["-o", str(tmp_path / name)]).exit_code == EXIT_OK
    assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["status"] == "ok"
    assert json.loads((tmp_path / "out.json").read_text())[0]["status"] == "ok"
    assert next(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))["status"] == "ok"
    assert (tmp_path / "out.xml").read_text().startswith("<?xml") and "<testsuite" in (tmp_path / "out.xml").read_text()
    assert "b.png" in (tmp_path / "out.txt").read_text() and "verdict" in (tmp_path / "out.txt").read_text()  # a table
    assert runner.invoke(app, args + ["-f", "table", "-o", str(tmp_path / "t.jsonl")]).exit_code == EXIT_OK
    assert "verdict" in (tmp_path / "t.jsonl").read_text()  # --format wins over the extension


def test_fail_on_fake_gates_ci(media, tmp_path):
    always_fake = make_detector(tmp_path / "fake.safetensors", threshold=0.0)
    args = ["check", str(media / "b.png"), "--detector", str(always_fake), "--encoders", "debug", "-q", "--format", "json"]
    assert runner.invoke(app, args).exit_code == EXIT_OK
    result = runner.invoke(app, args + ["--fail-on-fake"])
    assert result.exit_code == EXIT_FAKE
    assert json.loads(result.stdout)[0]["verdict"] == "fake"


def test_check_table_labels_demo_detector(media, detector, tmp_path):
    out = tmp_path / "table.txt"
    result = runner.invoke(app, ["check", str(media / "b.png"), "--detector", str(detector), "--encoders", "debug",
                                 "-q", "--output", str(out)])
    assert result.exit_code == EXIT_OK
    text = out.read_text()
    assert "b.png" in text and "DEMO detector" in text


def test_mismatched_detector_is_refused(media, tmp_path):
    det = make_detector(tmp_path / "other.safetensors", encoders=DEFAULT_IDS)
    result = runner.invoke(app, ["check", str(media / "b.png"), "--detector", str(det), "--encoders", "debug"])
    assert result.exit_code == EXIT_MODEL_ERROR and "clip-vit-base-patch32" in result.output


def test_models_list_reports_offline_state(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DEEPSCAN_MODELS_DIR", raising=False)
    result = runner.invoke(app, ["models", "list", "--format", "json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    fetched = [r for r in rows if r["kind"] in ("encoder", "expert", "face detector")]
    assert {r["kind"] for r in fetched} == {"encoder", "expert", "face detector"}
    assert all(r["present"] is False for r in fetched)
    shipped = {r["name"]: r for r in rows if r not in fetched}  # inside the package: always here
    assert {"synthetic_speech", "generated_image", "face_forgery"} <= set(shipped)
    assert all(r["present"] and len(r["sha256"]) == 64 for r in shipped.values())
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "80", "HF_HUB_OFFLINE": "1"})
    from rich.cells import cell_len

    assert max(cell_len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    starts = [line.split()[0] for line in result.stdout.splitlines() if line.split()]
    assert {"aasist", "meso4-df", "yunet", "wav2vec2-base", "synthetic_speech", "face_forgery"} <= set(starts)
    assert "not fetched" in result.output  # offline: it says so instead of promising a download
    result = runner.invoke(app, ["models", "download"])
    assert result.exit_code == EXIT_MODEL_ERROR and "HF_HUB_OFFLINE" in result.output


DEFAULT_IDS = {"image": {"id": "openai/clip-vit-base-patch32", "revision": None, "dim": 512},
               "audio": {"id": "facebook/wav2vec2-base", "revision": None, "dim": 768},
               "video": {"id": "openai/clip-vit-base-patch32", "revision": None, "dim": 512}}


def test_missing_encoder_offline_names_the_fix(media, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    det = make_detector(tmp_path / "default.safetensors", encoders=DEFAULT_IDS)
    result = runner.invoke(app, ["check", str(media / "b.png"), "--detector", str(det)])
    assert result.exit_code == EXIT_MODEL_ERROR
    assert "deepscan models download" in result.output


def test_check_follows_its_detector_encoders(media, detector):
    # A detector trained on the debug encoders needs no --encoders: check takes them from the checkpoint.
    result = runner.invoke(app, ["check", str(media / "b.png"), "--detector", str(detector), "--format", "json",
                                 "--experts", "none", "-q"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)[0]["detector"]["label"].startswith("DEMO detector")


def test_check_of_an_empty_folder_is_a_usage_error_with_the_fix(tmp_path, detector):
    result = runner.invoke(app, ["check", str(tmp_path), "--detector", str(detector), "--encoders", "debug"])
    assert result.exit_code == EXIT_USAGE and "error: no media files found" in result.output
    assert "name video, audio or image files" in " ".join(result.output.split())
