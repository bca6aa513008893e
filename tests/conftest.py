"""Shared fixtures: offline hub, the ../shared folder when present, generated media."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
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


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_in_tmp(tmp_path_factory):
    """Feature caches written by tests (and the CLI they start) go to a temp folder, never ~/.cache."""
    old = os.environ.get("DEEPSCAN_CACHE_DIR")
    os.environ["DEEPSCAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("deepscan-cache"))
    yield
    if old is None:
        os.environ.pop("DEEPSCAN_CACHE_DIR", None)
    else:
        os.environ["DEEPSCAN_CACHE_DIR"] = old
