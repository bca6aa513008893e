"""Set-up mistakes fail loudly, at once, with the fix in the message and the README's exit code.

A models folder that is not there, an output that cannot be written (before the scan, and when the
disk fills midway: whole lines stay, ``--resume`` finishes), a feature cache that is not a database
(set aside, rebuilt, the scan goes on), a detector file that is not there.
"""

from __future__ import annotations

import errno
import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepscan import synth
from deepscan.cli import app
from deepscan.cli import common
from deepscan.cli.common import EXIT_OK, EXIT_OUTPUT_ERROR, EXIT_USAGE
from tests.helpers import make_detector

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("setup")
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        synth.write_image(root / name, seed=i)
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


@pytest.fixture
def no_scan(monkeypatch):
    """Any scanner built from here on fails the test: the mistake must be caught before the models load."""
    def refuse(*args, **kwargs):
        raise AssertionError("a scanner was built: the mistake was not caught first")

    monkeypatch.setattr("deepscan.scanner.Scanner.__init__", refuse)


def _clean_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in result.output, (needle, result.output)


# -- a models folder that is not there ------------------------------------------------------------


def test_a_models_dir_that_is_not_there_stops_every_command_that_takes_it(media, detector, tmp_path, monkeypatch):
    missing = tmp_path / "shared" / "modles"
    check = ["check", str(media / "a.png"), "-d", str(detector), "--encoders", "debug", "-q"]
    _clean_error(runner.invoke(app, check + ["--models-dir", str(missing)]), EXIT_USAGE, str(missing), "--models-dir")
    labelled = tmp_path / "labelled"
    for sub, seed in (("real", 1), ("fake/gan", 2)):
        (labelled / sub).mkdir(parents=True)
        synth.write_image(labelled / sub / f"{seed}.png", seed=seed)
    _clean_error(runner.invoke(app, ["evaluate", str(labelled), "--models-dir", str(missing), "-q"]), EXIT_USAGE,
                 str(missing))
    _clean_error(runner.invoke(app, ["models", "list", "--models-dir", str(missing)]), EXIT_USAGE, str(missing))
    monkeypatch.setenv("DEEPSCAN_MODELS_DIR", str(missing))  # the environment variable: the same
    for args in (check, ["models", "list"], ["evaluate", str(labelled), "-q"]):
        _clean_error(runner.invoke(app, args), EXIT_USAGE, str(missing), "DEEPSCAN_MODELS_DIR")


def test_a_models_dir_that_is_not_there_stops_a_ray_check_before_the_cluster_starts(media, detector, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("deepscan.distributed.ray.connect", lambda *a, **k: pytest.fail("a cluster was started"))
    missing = tmp_path / "nothere"
    result = runner.invoke(app, ["check", str(media / "a.png"), "--ray", "-d", str(detector), "--models-dir",
                                 str(missing), "-q"])
    _clean_error(result, EXIT_USAGE, str(missing))


# -- outputs that cannot be written -----------------------------------------------------------------


def test_an_output_that_cannot_be_written_is_refused_before_scanning(media, detector, tmp_path, no_scan):
    args = ["check", str(media / "a.png"), "-d", str(detector), "--encoders", "debug", "-q"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    cases = [(["-o", str(tmp_path)], "it is a folder"),  # a folder
             (["--html", str(tmp_path)], "report.html"),
             (["-o", str(a_file / "results.jsonl")], "is not a folder")]  # under a file
    if Path("/proc/version").is_file():
        cases.append((["-o", "/proc/version"], "/proc/version"))  # a file no one may write (root included)
    if Path("/sys/kernel").is_dir():
        cases.append((["-o", "/sys/results.jsonl"], "/sys/results.jsonl"))  # a place no one may create files in
    for extra, needle in cases:
        _clean_error(runner.invoke(app, args + extra), EXIT_USAGE, "cannot write", needle)
    results = tmp_path / "results.jsonl"
    results.write_text("")
    _clean_error(runner.invoke(app, ["report", str(results), "-o", str(tmp_path)]), EXIT_USAGE, "it is a folder")
    results.unlink()
    assert a_file.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_unwritable_reason_leaves_nothing_behind(tmp_path):
    assert common.unwritable_reason(tmp_path / "new.jsonl") is None and not (tmp_path / "new.jsonl").exists()
    assert common.unwritable_reason(tmp_path / "deeper" / "new.jsonl") is None and not (tmp_path / "deeper").exists()
    kept = tmp_path / "kept.jsonl"
    kept.write_text('{"a": 1}\n')
    assert common.unwritable_reason(kept) is None and kept.read_text() == '{"a": 1}\n'
    assert common.unwritable_reason("/dev/null") is None


def disk_full(lines: int):
    """A ``LineSafeFile._write_bytes`` on a disk that fills up: ``lines`` whole writes fit, then half of one, then ENOSPC."""
    left = [lines]

    def write(stream, data):
        left[0] -= 1
        if left[0] >= 0:
            return stream._raw.write(data)
        if left[0] == -1:
            return stream._raw.write(data[: len(data) // 2])  # a short write: the disk took half the line
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_a_disk_that_fills_midway_leaves_whole_lines_and_resume_finishes(media, detector, tmp_path, monkeypatch):
    from deepscan.writers.files import LineSafeFile

    out = tmp_path / "results.jsonl"
    args = ["check", str(media), "-d", str(detector), "--encoders", "debug", "--experts", "none", "--workers", "0",
            "-q", "-o", str(out)]
    with monkeypatch.context() as patch:
        patch.setattr(LineSafeFile, "_write_bytes", disk_full(lines=1))
        result = runner.invoke(app, args)
    _clean_error(result, EXIT_OUTPUT_ERROR, "No space left on device", "--resume", str(out))
    data = out.read_bytes()
    assert data.endswith(b"\n") and len(data.splitlines()) == 1  # the half line was cut off
    assert json.loads(data)["path"].endswith("a.png")
    result = runner.invoke(app, args + ["--resume"])
    assert result.exit_code == EXIT_OK, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == ["a.png", "b.png", "c.png"]


def test_line_safe_file_cuts_back_to_its_last_whole_line(tmp_path, monkeypatch):
    from deepscan.errors import OutputWriteError
    from deepscan.writers.files import LineSafeFile

    path = tmp_path / "out.jsonl"
    path.write_text('{"old": 1}\n')
    monkeypatch.setattr(LineSafeFile, "_write_bytes", disk_full(lines=2))
    with LineSafeFile(path, append=True) as stream:
        stream.write('{"a": 1}\n')
        stream.write('{"b": 2}\n')
        with pytest.raises(OutputWriteError, match="No space left") as raised:
            stream.write('{"c": 3}\n')
        assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == errno.ENOSPC
        with pytest.raises(OutputWriteError):  # and it stays failed
            stream.write('{"d": 4}\n')
    assert path.read_text() == '{"old": 1}\n{"a": 1}\n{"b": 2}\n'


# -- a feature cache that is not a database ---------------------------------------------------------


def test_a_corrupt_feature_cache_is_set_aside_and_the_scan_goes_on(media, detector, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features.sqlite").write_bytes(b"this is not a database, it was overwritten\n" * 200)
    args = ["check", str(media / "a.png"), "-d", str(detector), "--encoders", "debug", "--experts", "none",
            "--workers", "0", "-q", "--cache-dir", str(cache), "-f", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_OK, result.output
    assert "Traceback" not in result.output and re.search(r"warning:.*corrupt", result.output), result.output
    assert json.loads(result.stdout)[0]["status"] == "ok"
    aside = [p.name for p in cache.iterdir() if p.name.startswith("features.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0] in result.output
    assert (cache / aside[0]).read_bytes().startswith(b"this is not a database")  # kept, not deleted
    with sqlite3.connect(cache / "features.sqlite") as db:  # a new cache, with the file scanned
        assert db.execute("SELECT COUNT(*) FROM features").fetchone()[0] == 1


def test_feature_cache_sets_aside_a_damaged_file_and_not_a_locked_one(tmp_path):
    import warnings

    import torch

    from deepscan.cache import FeatureCache, is_corruption

    path = tmp_path / "features.sqlite"
    path.write_bytes(b"\0" * 4096)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = FeatureCache(path)
    assert cache.set_aside is not None and cache.set_aside.exists() and "corrupt" in str(caught[0].message)
    cache.put("k", {"x": torch.ones(2)}, {"n": 1})
    assert cache.get("k")[1] == {"n": 1}
    assert not is_corruption(sqlite3.OperationalError("database is locked"))


# -- a detector file that is not there ----------------------------------------------------------------


def test_a_detector_file_that_is_not_there_is_a_usage_error(media, tmp_path, monkeypatch):
    args = ["check", str(media / "a.png"), "-q"]
    _clean_error(runner.invoke(app, args + ["-d", str(tmp_path / "nothere.safetensors")]), EXIT_USAGE,
                 "nothere.safetensors", "does not exist", "--detector")
    monkeypatch.setenv("DEEPSCAN_DETECTOR", str(tmp_path / "gone.safetensors"))
    _clean_error(runner.invoke(app, args), EXIT_USAGE, "gone.safetensors", "DEEPSCAN_DETECTOR")


# -- the README's table is the code's ---------------------------------------------------------------


def test_the_readme_exit_codes_are_the_cli_exit_codes():
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    codes = {v for k, v in vars(common).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert documented == codes, (sorted(documented), sorted(codes))
    assert "--resume" in section and "--models-dir" in section and "cannot be written" in section
