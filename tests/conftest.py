"""Shared fixtures: a temporary home and caches, offline hubs, the ../shared folder when present, generated media."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from home_guard import changes, sandbox_environment, snapshot

# The tests never touch the user's home: before any test module is imported, $HOME, the XDG folders
# and every cache (deepscan's features and model downloads, the Hugging Face and torch hubs,
# matplotlib) point into one temporary folder for the whole session, and the hubs are offline. Set in
# os.environ, so every subprocess a test starts inherits it. The `_real_home_untouched` fixture below
# fails a test after which something under the real home's caches changed.
# Once per session: a second import of this file (or a pytest started by a test) keeps the first's.
REAL_HOME = Path(os.environ.get("DEEPSCAN_TESTS_REAL_HOME") or os.path.expanduser("~"))
SANDBOX = Path(os.environ.get("DEEPSCAN_TESTS_SANDBOX") or tempfile.mkdtemp(prefix="deepscan-tests-"))
_OWN_SANDBOX = "DEEPSCAN_TESTS_SANDBOX" not in os.environ  # this session made it: it removes it at the end
os.environ.update(sandbox_environment(SANDBOX), DEEPSCAN_TESTS_SANDBOX=str(SANDBOX),
                  DEEPSCAN_TESTS_REAL_HOME=str(REAL_HOME))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_shared() -> Path | None:
    env = os.environ.get("DEEPSCAN_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for candidate in candidates:
        if (candidate / "cases").is_dir() or (candidate / "samples").is_dir():
            return candidate
    return None


SHARED = _find_shared()
CASES = SHARED / "cases" if SHARED and (SHARED / "cases").is_dir() else None
SAMPLES = SHARED / "samples" if SHARED and (SHARED / "samples").is_dir() else None
MODELS = SHARED / "models" if SHARED and (SHARED / "models").is_dir() else None
REALWORLD = SHARED / "realworld" if SHARED and (SHARED / "realworld").is_dir() else None


def media_files(folder: Path | None) -> list[Path]:
    """Files of a shared folder, README and checksums excluded; empty when the folder is absent."""
    if folder is None:
        return []
    skip = {"README.md", "SHA256SUMS"}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in skip)


@pytest.fixture
def cases_dir() -> Path:
    if CASES is None:
        pytest.skip("../shared/cases is not present")
    return CASES


@pytest.fixture
def samples_dir() -> Path:
    if SAMPLES is None:
        pytest.skip("../shared/samples is not present")
    return SAMPLES


@pytest.fixture
def models_dir() -> Path:
    """../shared/models: the published expert weights (skips when absent)."""
    if MODELS is None:
        pytest.skip("../shared/models is not present")
    return MODELS


@pytest.fixture
def realworld_dir() -> Path:
    if REALWORLD is None:
        pytest.skip("../shared/realworld is not present")
    return REALWORLD


@pytest.fixture(autouse=True)
def _real_home_untouched(request):
    """Fail the test after which deepscan's (or a library's) cache under the real home changed."""
    before = snapshot(REAL_HOME)
    yield
    touched = changes(before, snapshot(REAL_HOME))
    if touched:
        pytest.fail(f"{request.node.nodeid} wrote under the real home {REAL_HOME}: {', '.join(touched[:10])}; "
                    "tests must use the temporary home and caches that tests/conftest.py sets", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    if _OWN_SANDBOX:
        shutil.rmtree(SANDBOX, ignore_errors=True)
