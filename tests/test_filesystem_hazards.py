"""A scanned folder may hold anything a file system can: none of it hangs the batch or goes unexplained.

Named pipes, sockets and device nodes are reported and never opened (opening a pipe waits for a
writer); a file without read permission, a broken link and a symbolic link out of the scanned
folder are reported with their reasons; a file that vanishes, turns into a pipe or shrinks between
listing and reading gets its reason; and ``--resume`` refuses a results file with a line it cannot
parse instead of trusting it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from deepscan import synth
from deepscan.cache import file_sha256
from deepscan.errors import UnreadableFileError
from deepscan.media import iter_media_files, probe, sniff_kind
from tests.conftest import REPO_ROOT
from tests.helpers import make_detector



@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wav") / "voice.wav"
    synth.write_audio(path, duration_s=1.0, seed=5)
    return path


def _device_node(path: Path) -> bool:
    """A character device like /dev/zero at ``path`` (needs CAP_MKNOD); False where not permitted."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))
        return True
    except (PermissionError, OSError):
        return False


def _hazard_folder(root: Path, wav: Path, outside: Path) -> dict[str, str]:
    """Fill ``root`` with hazards; return name -> the words its reason must hold."""
    root.mkdir()
    shutil.copyfile(wav, root / "good.wav")
    expected = {}
    os.mkfifo(root / "pipe.mp4")
    expected["pipe.mp4"] = "named pipe"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "sock.wav"))
    expected["sock.wav"] = "socket"
    if _device_node(root / "zero.mp4"):
        expected["zero.mp4"] = "device"
    os.symlink("/dev/zero", root / "devlink.mp4")
    expected["devlink.mp4"] = "outside the scanned folder"
    os.symlink(outside, root / "private.wav")
    expected["private.wav"] = "outside the scanned folder"
    os.symlink("/", root / "everything")
    expected["everything"] = "outside the scanned folder"
    os.symlink(root / "gone.wav", root / "broken.wav")
    expected["broken.wav"] = "broken symbolic link"
    os.symlink(root / "loop_b.mp4", root / "loop_a.mp4")  # two links pointing at each other
    os.symlink(root / "loop_a.mp4", root / "loop_b.mp4")
    expected["loop_a.mp4"] = expected["loop_b.mp4"] = "symbolic link loop"
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "loop")  # a cycle inside the tree: walked once
    shutil.copyfile(wav, root / "sub" / "inner.wav")
    os.symlink(root / "good.wav", root / "sub" / "alias.wav")  # a link inside the tree: followed
    return expected


def test_walk_reports_every_hazard_and_opens_none(tmp_path, wav):
    outside = tmp_path / "private" / "secret.wav"
    outside.parent.mkdir()
    shutil.copyfile(wav, outside)
    root = tmp_path / "tree"
    expected = _hazard_folder(root, wav, outside)
    errors = {}
    found = list(iter_media_files([root], on_error=lambda p, e: errors.setdefault(p.name, e)))
    assert [p.relative_to(root).as_posix() for p in found] == ["good.wav", "sub/alias.wav", "sub/inner.wav"]
    assert sorted(errors) == sorted(expected)
    for name, words in expected.items():
        assert isinstance(errors[name], UnreadableFileError) and words in errors[name].message, name
    # explicitly named: a pipe goes to on_error, not to the caller who would open it
    named = {}
    assert list(iter_media_files([root / "pipe.mp4", root / "good.wav"],
                                 on_error=lambda p, e: named.setdefault(p.name, e))) == [root / "good.wav"]
    assert "named pipe" in named["pipe.mp4"].message
    for path in (root / "pipe.mp4", root / "sock.wav"):
        with pytest.raises(UnreadableFileError):
            probe(path)
        with pytest.raises(UnreadableFileError):
            sniff_kind(path)
    with pytest.raises(OSError):
        file_sha256(root / "pipe.mp4")  # the feature cache's hashing does not block on it either


def _scan(args: list[str]):
    """``deepscan check ARGS`` in this process (a hang fails the test through pytest-timeout)."""
    from typer.testing import CliRunner

    from deepscan.cli import app

    return CliRunner().invoke(app, ["check", *args])


def test_scan_of_a_hazardous_folder_ends_with_a_reason_per_entry(tmp_path, wav, detector):
    outside = tmp_path / "private" / "secret.wav"
    outside.parent.mkdir()
    shutil.copyfile(wav, outside)
    root = tmp_path / "tree"
    expected = _hazard_folder(root, wav, outside)
    result = _scan([str(root), str(root / "pipe.mp4"), "--detector", str(detector), "--encoders", "debug",
                    "--precision", "fp32", "--format", "jsonl", "-q", "--workers", "0"])
    assert result.exit_code == 3, result.output  # some files could not be scanned; the others were
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {}
    for r in records:
        by_name.setdefault(Path(r["path"]).name, []).append(r)
    for name, words in expected.items():
        (r,) = by_name[name] if name != "pipe.mp4" else by_name[name][:1]
        assert r["status"] == "error" and r["reason"] == "unreadable" and words in r["media"]["error"], r
    assert len(by_name["pipe.mp4"]) == 2  # found in the folder and named on the command line
    assert all(r["status"] == "ok" for n in ("good.wav", "inner.wav", "alias.wav") for r in by_name[n])
    assert "secret.wav" not in by_name


def test_files_that_change_after_listing(tmp_path, wav, detector, monkeypatch):
    from deepscan.scanner import Scanner

    root = tmp_path / "batch"
    root.mkdir()
    for name in ("a_vanishes.wav", "b_becomes_pipe.wav", "c_shrinks.wav", "d_good.wav", "e_last.wav"):
        shutil.copyfile(wav, root / name)

    def meddle(path: str) -> bool:  # called while listing, before anything is read
        if path.endswith("e_last.wav"):
            (root / "a_vanishes.wav").unlink()
            (root / "b_becomes_pipe.wav").unlink()
            os.mkfifo(root / "b_becomes_pipe.wav")
            data = (root / "c_shrinks.wav").read_bytes()
            (root / "c_shrinks.wav").write_bytes(data[:40])
        return False

    scanner = Scanner(detector=detector, encoders="debug", precision="fp32", workers=0, cache=True)
    try:
        results = {Path(r.path).name: r for r in scanner.scan([root], skip=meddle)}
    finally:
        scanner.close()
    assert results["a_vanishes.wav"].reason == "unreadable"
    assert "no such file" in results["a_vanishes.wav"].media["error"]
    assert results["b_becomes_pipe.wav"].reason == "unreadable"
    assert "named pipe" in results["b_becomes_pipe.wav"].media["error"]
    assert results["c_shrinks.wav"].status == "error"
    assert results["d_good.wav"].status == "ok" and results["e_last.wav"].status == "ok"


def test_file_without_read_permission_is_reported(wav):
    folder = Path(tempfile.mkdtemp(prefix="deepscan-perm-"))
    try:
        folder.chmod(0o755)
        shutil.copyfile(wav, folder / "locked.wav")
        shutil.copyfile(wav, folder / "open.wav")
        (folder / "locked.wav").chmod(0)
        (folder / "open.wav").chmod(0o644)
        # root reads everything: the child drops to nobody after its imports (the interpreter
        # itself may live where nobody can read it)
        code = ("import json, os, sys\n"
                "from deepscan.media import iter_media_files, probe\n"
                "from deepscan.errors import DeepscanError\n"
                "if os.geteuid() == 0:\n    os.setgid(65534); os.setuid(65534)\n"
                "errors = []\n"
                "found = [p.name for p in iter_media_files(sys.argv[1], on_error=lambda p, e: errors.append((p.name, e.message)))]\n"
                "try:\n    probe(sys.argv[1] + '/locked.wav'); direct = None\n"
                "except DeepscanError as e:\n    direct = [e.reason, e.message]\n"
                "print(json.dumps({'found': found, 'errors': errors, 'direct': direct}))\n")
        run = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["found"] == ["open.wav"]
        assert out["errors"] == [["locked.wav", "permission denied; check the file's permissions"]]
        assert out["direct"][0] == "unreadable" and "permission denied" in out["direct"][1]
    finally:
        (folder / "locked.wav").chmod(0o644)
        shutil.rmtree(folder)


# -- --resume never trusts a line it cannot parse --------------------------------------------------


BAD_LINES = [
    (b"not json at all\n", "a line of text"),
    (b"[1, 2, 3]\n", "JSON but not a record"),
    (b'{"path": "x.wav"}\n', "a record without status"),
    (b'{"path": 5, "status": "ok"}\n', "a path that is not text"),
    (b'{"path": "x.wav", "status": "ok", "windows": [{"bogus": 1}]}\n', "windows that are not window scores"),
    (b'\xff\xfe{"path": "x.wav", "status": "ok"}\n', "bytes that are not UTF-8"),
    ('{"path": "x.wav", "status": "ok"}\u2028{"path": "y.wav", "status": "ok"}\n'.encode(),
     "two records joined by a raw line separator"),
]


@pytest.mark.parametrize("bad, why", BAD_LINES)
def test_resume_reader_refuses_a_line_it_cannot_parse(tmp_path, bad, why):
    from deepscan.cli.scanning import resume_from

    out = tmp_path / "results.jsonl"
    good = json.dumps({"path": "a.wav", "status": "ok", "verdict": "real"}).encode() + b"\n"
    for content in (good + bad, bad + good, good + bad + good):
        out.write_bytes(content)
        with pytest.raises(ValueError, match="results"):
            resume_from(out)
        assert out.read_bytes() == content  # a whole line is never cut, only an unfinished last one


def test_resume_refuses_a_results_file_it_cannot_parse(tmp_path, wav, detector):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(wav, folder / "a.wav")
    out = tmp_path / "results.jsonl"
    content = json.dumps({"path": str(folder / "a.wav"), "status": "ok"}).encode() + b"\n" + b'{"status": 1}\n'
    out.write_bytes(content)
    result = _scan([str(folder), "--detector", str(detector), "--encoders", "debug", "--format", "jsonl",
                    "--output", str(out), "--resume", "-q", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # refused, not crashed
    assert "cannot resume" in result.output
    assert out.read_bytes() == content  # nothing appended to a file that was not understood


def test_resume_cuts_a_line_a_kill_left_unfinished(tmp_path, wav, detector):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(wav, folder / "a.wav")
    shutil.copyfile(wav, folder / "b.wav")
    out = tmp_path / "results.jsonl"
    done = json.dumps({"path": str(folder / "a.wav"), "status": "ok", "verdict": "real"}) + "\n"
    out.write_text(done + '{"path": "' + str(folder / "b.wav") + '", "stat')  # killed mid-write
    result = _scan([str(folder), "--detector", str(detector), "--encoders", "debug", "--precision", "fp32",
                    "--format", "jsonl", "--output", str(out), "--resume", "-q", "--no-cache"])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == done.strip() and len(lines) == 2
    assert json.loads(lines[1])["path"] == str(folder / "b.wav") and json.loads(lines[1])["status"] == "ok"
