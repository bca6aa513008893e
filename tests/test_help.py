"""``check --help`` reads right at 80 columns: grouped, short, with nothing swallowed by Rich markup."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from deepscan.cli import app


def _help(columns: int = 80) -> str:
    result = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": str(columns), "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


def test_check_help_keeps_the_ray_extra_visible():
    text = " ".join(_help().split())
    assert 'deepscan[ray]' in text.replace(" ", "").replace("│", "")


def test_check_help_groups_options_into_panels_and_fits_80_columns():
    text = _help()
    for panel in ("Output", "Models", "Speed", "Ray cluster"):
        assert re.search(rf"─ {panel} ─", text), panel
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) < 100, f"{len(lines)} lines of help at 80 columns"


def test_check_help_descriptions_have_room():
    """The description column starts early enough to leave at least 40 characters a line."""
    text = _help()
    row = next(line for line in text.splitlines() if "--fail-on-fake" in line)
    start = row.index("Exit")
    assert 80 - start >= 40, row
