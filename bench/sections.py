"""One writer for BENCHMARKS.md: each bench owns the section between its ``<!-- bench:NAME -->`` markers."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def markers(name: str) -> tuple[str, str]:
    """The opening and closing markers of a bench's section, e.g. ``<!-- bench:scan -->``."""
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def write_section(name: str, body: str, heading: str | None = None, path: Path = BENCHMARKS) -> None:
    """Replace the text between a section's markers in BENCHMARKS.md, leaving every other line alone.

    Parameters
    ----------
    name : str
        The section's marker name (``scan``, ``ray``, ``quality``, ...).
    body : str
        The new section: either wrapped in its markers already, or plain (then wrapped here).
    heading : str, optional
        A heading line written before the markers when the file has no such section yet.
    path : Path
        The file (default the repository's BENCHMARKS.md); created with a title if absent.
    """
    begin, end = markers(name)
    block = body.strip("\n")
    if not block.startswith(begin):
        block = f"{begin}\n{block}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + (f"{heading}\n\n" if heading else "") + block + "\n"
    path.write_text(text, encoding="utf-8")
