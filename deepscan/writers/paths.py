"""File names as people read them in a table or a report: relative to a folder, long ones cut in the middle.

A scan's paths are as the user gave them or as the walk found them (``../shared/samples/x.png``,
``/data/clips/2024/a.mp4``). :func:`display_root` picks the folder to show them from (the working
directory when every file is inside it, else the folder the files share) and :func:`relative_to`
shows each from there; :func:`middle_ellipsis` cuts a long name in the middle, so that both the
folder it starts with and the extension it ends with stay visible. URIs (``s3://...``) are left as they are.
"""

from __future__ import annotations

import os

__all__ = ["ELLIPSIS", "display_root", "relative_to", "middle_ellipsis", "shown_folder"]

ELLIPSIS = "…"


def _is_uri(path: str) -> bool:
    return "://" in path


def display_root(paths, cwd: str | os.PathLike | None = None, prefer_cwd: bool = True) -> str | None:
    """The folder to show paths from.

    Parameters
    ----------
    paths : iterable of str
        The paths of a scan's results.
    cwd : str or os.PathLike, optional
        The working directory (default: :func:`os.getcwd`).
    prefer_cwd : bool
        When every path is inside ``cwd``, show them from ``cwd`` (what the user can type); when
        False, always from the folder the files share (the scanned folder).

    Returns
    -------
    str or None
        An absolute folder, or a relative one when every path is relative (results of a scan that
        ran elsewhere); ``None`` when the paths share no folder (but the file-system root or the
        directory they are relative to), or one of them is a URI: show them as they are.
    """
    paths = [str(p) for p in paths]
    if not paths or any(_is_uri(p) for p in paths):
        return None
    if not any(os.path.isabs(p) for p in paths):
        # as given to a scan that ran somewhere (results read back later need not share its directory)
        common = os.path.commonpath([os.path.dirname(os.path.normpath(p)) or os.curdir for p in paths])
        return None if common in ("", os.curdir) else common
    cwd = os.path.abspath(cwd if cwd is not None else os.getcwd())
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # different drives
        return None
    if prefer_cwd and (common == cwd or common.startswith(cwd.rstrip(os.sep) + os.sep)):
        return cwd
    return None if common == os.path.dirname(common) else common  # the file-system root says nothing


def relative_to(path: str, root: str | None) -> str:
    """``path`` as seen from ``root`` (unchanged when ``root`` is None or ``path`` is a URI).

    Parameters
    ----------
    path : str
    root : str or None
        From :func:`display_root`.

    Returns
    -------
    str
    """
    path = str(path)
    if root is None or _is_uri(path):
        return path
    try:
        return os.path.relpath(os.path.abspath(path), root)
    except ValueError:  # another drive
        return path


def shown_folder(root: str, cwd: str | os.PathLike | None = None) -> str:
    """A folder as the user would type it: relative to ``cwd`` when that is shorter, else absolute."""
    cwd = os.path.abspath(cwd if cwd is not None else os.getcwd())
    try:
        rel = os.path.relpath(root, cwd)
    except ValueError:
        return root
    return rel if len(rel) < len(root) else root


def middle_ellipsis(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells with ``…`` in the middle: ``clips/2024/lo…_take3.mp4``.

    Parameters
    ----------
    text : str
    width : int
        Cells available, at least 1 (a wide character such as 名 takes two).

    Returns
    -------
    str
        ``text`` when it fits; else its head and tail around :data:`ELLIPSIS` (the tail gets the odd
        cell: the extension matters most).
    """
    from rich.cells import cell_len, get_character_cell_size

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:max(width, 0)]
    room = width - 1
    head_room, tail_room = room // 2, room - room // 2
    head, used = [], 0
    for char in text:
        size = get_character_cell_size(char)
        if used + size > head_room:
            break
        head.append(char)
        used += size
    tail, used = [], 0
    for char in reversed(text):
        size = get_character_cell_size(char)
        if used + size > tail_room:
            break
        tail.append(char)
        used += size
    return "".join(head) + ELLIPSIS + "".join(reversed(tail))
