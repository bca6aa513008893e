"""The suite keeps out of the user's home: a temporary $HOME and caches for the session, and a watch on the real ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from home_guard import changes, snapshot

REAL_HOME = Path(os.environ.get("DEEPSCAN_TESTS_REAL_HOME") or os.path.expanduser("~"))  # set by tests/conftest.py
SANDBOX = Path(os.environ.get("DEEPSCAN_TESTS_SANDBOX") or "/nonexistent-sandbox")

CACHE_VARIABLES = ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "DEEPSCAN_CACHE_DIR", "HF_HOME", "TORCH_HOME",
                   "MPLCONFIGDIR")


def _inside(path, folder) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def test_home_and_every_cache_point_into_a_temporary_folder():
    from deepscan.cache import default_cache_dir
    from deepscan.weights import download_dir

    assert not _inside(SANDBOX, REAL_HOME) and not _inside(os.path.expanduser("~"), REAL_HOME)
    for name in CACHE_VARIABLES:
        assert _inside(os.environ[name], SANDBOX), (name, os.environ[name])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for path in (default_cache_dir(), download_dir(), Path.home()):
        assert _inside(path, SANDBOX), path


def test_the_hubs_cache_in_the_temporary_folder():
    import huggingface_hub.constants as hub

    assert _inside(hub.HF_HUB_CACHE, SANDBOX), hub.HF_HUB_CACHE
    assert hub.HF_HUB_OFFLINE


def test_subprocesses_inherit_the_temporary_home():
    code = ("import os, pathlib\nfrom deepscan.cache import default_cache_dir\n"
            "print(pathlib.Path.home()); print(default_cache_dir()); print(os.environ['HF_HUB_OFFLINE'])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    home, cache, offline = run.stdout.split()
    assert _inside(home, SANDBOX) and _inside(cache, SANDBOX) and offline == "1", run.stdout + run.stderr


def test_the_watch_sees_a_write_under_a_home(tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "deepscan").mkdir(parents=True)
    (home / ".cache" / "deepscan" / "features.sqlite").write_bytes(b"old")
    before = snapshot(home)
    assert changes(before, snapshot(home)) == []
    (home / ".cache" / "deepscan" / "features.sqlite").write_bytes(b"old and new")  # an existing cache grows
    assert str(home / ".cache" / "deepscan" / "features.sqlite") in changes(before, snapshot(home))
    before = snapshot(home)
    (home / ".cache" / "torch").mkdir()  # a new cache
    assert str(home / ".cache" / "torch") in changes(before, snapshot(home))
    before = snapshot(home)
    (home / ".cache" / "some-new-cache").mkdir()  # any new cache under ~/.cache
    assert str(home / ".cache" / "some-new-cache") in changes(before, snapshot(home))
    (home / ".cache" / "pip").mkdir()
    before = snapshot(home)
    (home / ".cache" / "pip" / "http").mkdir()  # another program's own cache changing: not the tests'
    assert changes(before, snapshot(home)) == []
