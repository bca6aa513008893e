"""The library's front door (`deepscan.scan`, `deepscan.Scanner`) and a cheap `import deepscan` / `deepscan --version`."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import deepscan
from deepscan import synth
from tests.helpers import make_detector

REPO_ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "cv2", "av", "numpy", "typer", "rich", "deepscan.scanner", "deepscan.media", "deepscan.cli.check")


def _modules_after(code: str) -> tuple[str, set[str]]:
    """Run ``code`` in a fresh interpreter (this environment: the sandboxed home); its stdout and loaded modules."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr
    *out, modules = run.stdout.splitlines()
    return "\n".join(out), set(json.loads(modules))


def test_import_deepscan_is_cheap_and_offers_scan_and_scanner():
    out, modules = _modules_after("import deepscan\nprint(sorted({'scan', 'Scanner', 'ScanResult'} & set(dir(deepscan))))")
    assert out == "['ScanResult', 'Scanner', 'scan']"  # named (dir, help) without being imported
    assert not {"torch", "cv2", "av", "deepscan.scanner"} & modules, sorted({"torch", "cv2", "av"} & modules)


def test_version_answers_before_anything_heavy_is_imported():
    out, modules = _modules_after("import sys\nsys.argv = ['deepscan', '--version']\n"
                                  "from deepscan.cli import main\nmain()")
    assert out == f"deepscan {deepscan.__version__}"
    assert not set(HEAVY) & modules, sorted(set(HEAVY) & modules)


def test_version_from_the_console_script_and_python_m():
    script = Path(sys.executable).parent / "deepscan"
    commands = [[sys.executable, "-m", "deepscan", "--version"]] + ([[str(script), "--version"]] if script.exists() else [])
    for command in commands:
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
        assert (run.returncode, run.stdout) == (0, f"deepscan {deepscan.__version__}\n"), (command, run.stderr)


def test_the_cli_app_is_still_there_for_typer():
    from typer.testing import CliRunner

    from deepscan.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"deepscan {deepscan.__version__}"
    assert "check" in CliRunner().invoke(app, ["--help"]).output


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("front-door")
    synth.write_image(root / "a.png", seed=1)
    (root / "sub").mkdir()
    synth.write_image(root / "sub" / "b.png", seed=2)
    return root


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return make_detector(tmp_path_factory.mktemp("det") / "demo.safetensors")


def test_scan_is_a_generator_of_results_with_the_scanner_options(media, detector, tmp_path):
    results = deepscan.scan([media], detector=detector, encoders="debug", experts="none", workers=0,
                            cache=tmp_path / "cache")
    assert isinstance(results, types.GeneratorType)
    first = next(results)
    assert isinstance(first, deepscan.ScanResult) and first.status == "ok" and first.verdict is not None
    assert [Path(r.path).name for r in [first, *results]] == ["a.png", "b.png"]
    flat = list(deepscan.scan([media], detector=detector, encoders="debug", experts="none", workers=0,
                              recursive=False, cache=False))
    assert [Path(r.path).name for r in flat] == ["a.png"]


def test_a_scanner_is_loaded_once_and_scans_many_times(media, detector):
    scanner = deepscan.Scanner(detector=detector, encoders="debug", experts="none", workers=0, cache=False)
    assert isinstance(scanner, deepscan.Scanner)
    once = [r.to_dict() for r in scanner.scan([media / "a.png"])]
    again = [r.to_dict() for r in scanner.scan(str(media / "a.png"))]
    assert len(once) == 1 and once[0]["p_fake"] == again[0]["p_fake"]
    scanner.close()


def test_a_models_dir_that_is_not_there_is_refused_at_once(tmp_path, monkeypatch):
    from deepscan.errors import DeepscanError, ModelsDirNotFoundError

    missing = tmp_path / "modles"  # a typo
    with pytest.raises(ModelsDirNotFoundError, match="modles") as raised:
        deepscan.Scanner(models_dir=missing)
    assert isinstance(raised.value, DeepscanError) and "--models-dir" in str(raised.value)
    with pytest.raises(ModelsDirNotFoundError):  # at the call, before any file is read
        deepscan.scan([tmp_path], models_dir=missing)
    monkeypatch.setenv("DEEPSCAN_MODELS_DIR", str(missing))
    with pytest.raises(ModelsDirNotFoundError, match="DEEPSCAN_MODELS_DIR"):
        deepscan.Scanner()


def test_a_script_without_the_main_guard_is_told_why(monkeypatch):
    import multiprocessing

    # What a spawned decoding worker sees while it imports the user's script again (multiprocessing.spawn).
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match='if __name__ == "__main__"'):
        deepscan.Scanner(experts="none")
