"""Neutralise text from scanned files before it reaches a reader: spreadsheet, terminal, JSON, plot.

A file name, a container's metadata or a decoder's message is chosen by whoever made the file.
Every writer passes such text through one of these helpers at the point where it is emitted:

- :func:`csv_cell`: a cell that a spreadsheet would run as a formula (it starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return, possibly after blanks) gets a leading ``'``, as
  the OWASP CSV-injection guidance says (https://owasp.org/www-community/attacks/CSV_Injection);
  the CSV writer also quotes every field, so a ``,`` or ``;`` inside a name cannot start a new cell.
- :func:`terminal_text`: control characters (ESC and the rest of C0 and C1, DEL), bidirectional
  overrides and line separators become visible escapes such as ``\\x1b``, so a name cannot move
  the cursor, recolour or clear the terminal, or reorder what is shown.
- :func:`rich_text`: the same as a :class:`rich.text.Text`, never parsed as Rich markup (a name
  holding ``[red]`` or ``[/]`` is shown as it is); :func:`markup_text` for text placed inside a
  Rich markup string.
- :func:`json_dumps`: JSON in which line separators (U+2028, U+2029, U+0085), C1 controls and
  lone surrogates (file names that are not valid UTF-8) are ``\\uXXXX`` escapes, so one record is
  one line for every JSON Lines reader, and the text is valid UTF-8 that reads back to the same
  string.
- :func:`plot_text`: text for a matplotlib title or label: terminal-safe and ``$`` escaped, so it
  is never parsed as mathtext.

HTML needs no helper here: the report's template escapes every value (Jinja2 autoescape), plots
are inline SVG whose text matplotlib escapes, and JUnit XML replaces what XML 1.0 cannot carry
(``deepscan.writers.junit``).
"""

from __future__ import annotations

import json
import re

__all__ = ["FORMULA_TRIGGERS", "csv_cell", "terminal_text", "rich_text", "markup_text", "json_dumps", "plot_text"]

# First characters that make a spreadsheet cell a formula (OWASP), with their full-width forms
FORMULA_TRIGGERS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_LEADING_BLANKS = " \n\x0b\x0c\u00a0\u3000"

# C0 controls but nothing else, DEL, C1 controls, line/paragraph separators, bidirectional marks,
# embeddings, overrides and isolates, and lone surrogates (undecodable bytes of a file name)
_UNSAFE_FOR_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                                  "\ud800-\udfff]")
# In JSON text (after json.dumps with ensure_ascii=False, which escapes C0 controls itself)
_UNSAFE_FOR_JSON = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def csv_cell(value):
    """A value for a CSV cell that no spreadsheet runs as a formula.

    Parameters
    ----------
    value : object
        A cell value. Numbers, booleans and ``None`` are returned unchanged.

    Returns
    -------
    object
        For text: lone surrogates shown as ``\\udcXX``, and a ``'`` in front when the first
        character that is not a blank is one of :data:`FORMULA_TRIGGERS` (or the text starts with
        a tab or carriage return). Readers that need the exact name should use JSON Lines.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = _UNSAFE_SURROGATES.sub(lambda m: _escape(m.group()), str(value))
    first = text.lstrip(_LEADING_BLANKS)[:1]
    if (first and first in FORMULA_TRIGGERS) or text[:1] in ("\t", "\r"):
        return "'" + text
    return text


def terminal_text(text) -> str:
    """Text that is safe to print to a terminal: control and bidi characters shown as escapes.

    Parameters
    ----------
    text : object
        Converted with ``str``; ``None`` gives ``""``.

    Returns
    -------
    str
        ``text`` with every C0/C1 control character (ESC, CR, LF, TAB, BEL, ...), DEL, U+2028/2029,
        bidirectional control and lone surrogate replaced by ``\\xNN`` or ``\\uNNNN``.
    """
    if text is None:
        return ""
    return _UNSAFE_FOR_TERMINAL.sub(lambda m: _escape(m.group()), str(text))


def rich_text(text, style: str = ""):
    """:func:`terminal_text` as a :class:`rich.text.Text` (no markup parsing).

    Parameters
    ----------
    text : object
        What to show.
    style : str
        Rich style of the whole text.

    Returns
    -------
    rich.text.Text
    """
    from rich.text import Text

    return Text(terminal_text(text), style=style)


def markup_text(text) -> str:
    """:func:`terminal_text` escaped for a Rich markup string (``f"[red]error:[/] {markup_text(name)}"``).

    Parameters
    ----------
    text : object

    Returns
    -------
    str
        Square brackets that Rich would read as markup tags are escaped.
    """
    from rich.markup import escape

    return escape(terminal_text(text))


def json_dumps(obj, **kwargs) -> str:
    """``json.dumps`` with non-ASCII kept, but line separators, C1 controls and lone surrogates escaped.

    Parameters
    ----------
    obj : object
        JSON-serialisable data.
    **kwargs
        Passed to :func:`json.dumps` (``indent``, ``default``...); ``ensure_ascii`` is always False.

    Returns
    -------
    str
        JSON text holding no raw character that a line-splitting reader takes for a line end
        (``\\n`` and ``\\r`` are escaped by JSON itself) and none that UTF-8 cannot encode;
        ``json.loads`` gives back ``obj`` exactly.
    """
    kwargs["ensure_ascii"] = False
    return _UNSAFE_FOR_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, **kwargs))


def plot_text(text) -> str:
    """Text for a matplotlib title, label or legend: :func:`terminal_text`, and ``$`` escaped.

    Parameters
    ----------
    text : object

    Returns
    -------
    str
        Never parsed as mathtext (a name with ``$`` in it would otherwise raise or render as math).
    """
    return terminal_text(text).replace("$", r"\$")
