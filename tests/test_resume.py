"""Resumable batches: a scan killed mid-batch leaves valid JSON Lines, --resume completes the set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from deepscan import synth
from tests.conftest import REPO_ROOT
from tests.helpers import make_detector

N_FILES = 24  # enough files that a signal sent after the second result always lands mid-batch


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    for i in range(N_FILES):
        synth.write_audio(root / f"voice{i:02d}.wav", duration_s=1.0, seed=i)
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


def _command(folder, detector, out, *extra):
    return [sys.executable, "-m", "deepscan", "check", str(folder), "--detector", str(detector),
            "--encoders", "debug", "--precision", "fp32", "--format", "jsonl", "--output", str(out),
            "--quiet", "--no-cache", *extra]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_for_lines(path, count, process, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_scan_resumes_without_loss_or_duplicates(tmp_path, folder, detector, sig):
    out = tmp_path / "results.jsonl"
    # one file per encoder batch, so results are written while the batch is still going
    # A background job of a non-interactive shell (as CI may run us) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: restore the default in the child.
    process = subprocess.Popen(_command(folder, detector, out, "--workers", "1", "--batch-size", "1"),
                               env=_env(), stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_lines(out, 2, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    before = _lines(out)  # every line written before the kill is complete JSON
    if sig == signal.SIGINT:
        assert process.returncode == 130, err
        assert "interrupted: the scan stopped after" in err and "--resume to finish" in err  # says so, and how on
    assert 2 <= len(before) < N_FILES, "the scan ended before it could be interrupted"
    resumed = subprocess.run(_command(folder, detector, out, "--resume", "--workers", "0"), env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = _lines(out)
    paths = [r["path"] for r in after]
    assert sorted(paths) == sorted(str(folder / f"voice{i:02d}.wav") for i in range(N_FILES))
    assert len(set(paths)) == len(paths)
    assert after[: len(before)] == before  # finished results were kept as they were
    assert all(r["status"] == "ok" for r in after)


def test_resume_cuts_a_truncated_last_line_and_needs_jsonl(tmp_path, folder, detector):
    out = tmp_path / "results.jsonl"
    first = subprocess.run(_command(folder, detector, out, "--workers", "0"), env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed while writing line 4
    again = subprocess.run(_command(folder, detector, out, "--resume", "--workers", "0"), env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    records = _lines(out)
    assert len(records) == N_FILES and len({r["path"] for r in records}) == N_FILES
    command = _command(folder, detector, out, "--resume")
    command[command.index("jsonl")] = "json"
    bad = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--resume needs --format jsonl" in bad.stderr
