"""Keep the test suite out of the user's home: a temporary home and caches, and a watch on the real ones.

:func:`sandbox_environment` is applied by ``tests/conftest.py`` when pytest loads it, before any test
module is imported, so every cache (deepscan's feature cache and model downloads, the Hugging Face
and torch hubs, matplotlib, whatever reads ``$HOME`` or ``$XDG_CACHE_HOME``) lands in a temporary
folder, in this process and in every subprocess a test starts (they inherit ``os.environ``).
:func:`snapshot` and :func:`changes` watch the places under the real home where these caches would
otherwise go; conftest fails the test after which one of them changed.
"""

from __future__ import annotations

import os
from pathlib import Path

# Under the real home: the caches deepscan and its model hubs write to (watched to depth WATCH_DEPTH), and
# ~/.cache itself, where a new entry means a cache that escaped the sandbox. (Not the caches other programs
# on the machine share, such as fontconfig's or matplotlib's: another process may write them meanwhile.)
WATCHED = (".cache/deepscan", ".cache/huggingface", ".cache/torch")
WATCH_DEPTH = 3


def sandbox_environment(root: Path) -> dict[str, str]:
    """The environment that puts $HOME and every cache under ``root``, and keeps the hubs offline.

    Parameters
    ----------
    root : Path
        A fresh temporary folder.

    Returns
    -------
    dict
        Variables to set (``HOME``, ``XDG_*``, ``DEEPSCAN_CACHE_DIR``, ``HF_HOME``, ``TORCH_HOME``,
        ``MPLCONFIGDIR``, ``HF_HUB_OFFLINE=1`` ...); the folders exist.
    """
    home = root / "home"
    env = {
        "HOME": home,
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
        "DEEPSCAN_CACHE_DIR": root / "deepscan-cache",
        "HF_HOME": root / "huggingface",
        "TORCH_HOME": root / "torch",
        "MPLCONFIGDIR": root / "matplotlib",
    }
    for folder in env.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {**{k: str(v) for k, v in env.items()}, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def snapshot(home: Path) -> dict[str, tuple[int, int]]:
    """``path -> (size, mtime_ns)`` of what lies in the watched places under ``home``, and ``~/.cache``'s entries by name."""
    seen: dict[str, tuple[int, int]] = {}

    def add(path: Path) -> None:
        try:
            info = path.lstat()
        except OSError:
            return
        seen[str(path)] = (info.st_size if not path.is_dir() else 0, info.st_mtime_ns)

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            add(Path(entry.path))
            if depth > 1 and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), depth - 1)

    for name in WATCHED:
        add(home / name)
        walk(home / name, WATCH_DEPTH)
    try:  # ~/.cache: which entries there are (what other programs change inside theirs is theirs)
        seen.update((entry.path, (0, 0)) for entry in os.scandir(home / ".cache") if entry.path not in seen)
    except OSError:
        pass
    return seen


def changes(before: dict, after: dict) -> list[str]:
    """The paths that appeared, changed or went away between two :func:`snapshot` s."""
    return sorted({path for path, state in after.items() if before.get(path) != state} | (before.keys() - after.keys()))
