"""The house's layers (pyproject.toml [tool.importlinter], ../shared/DESIGN.md): no import runs back up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
        exe = Path(found)
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(exe.parent), "PYTHONPATH": str(cwd)})


def test_the_layers_contract_holds():
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout and "KEPT" in run.stdout


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "deepscan", tmp_path / "deepscan", ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    weights = tmp_path / "deepscan" / "weights.py"
    weights.write_text(weights.read_text() + "\n\ndef _upward():\n    from deepscan.experts.runner import LEARNED\n\n"
                       "    return LEARNED\n")
    run = _lint_imports(tmp_path)
    assert run.returncode != 0
    assert "deepscan.weights is not allowed to import deepscan.experts" in run.stdout


def test_a_command_importing_another_commands_module_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "deepscan", tmp_path / "deepscan", ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    driver = tmp_path / "deepscan" / "cli" / "ray_check.py"
    driver.write_text(driver.read_text() + "\n\nfrom deepscan.cli.check import check  # noqa: E402\n")
    run = _lint_imports(tmp_path)
    assert run.returncode != 0
    assert "BROKEN" in run.stdout
