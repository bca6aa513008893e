"""What the CLI prints for people renders cleanly: `models list` at 80 columns, the scan's progress bar."""

from __future__ import annotations

import io
import json
import textwrap

from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from deepscan.cli import app
from deepscan.cli.scanning import media_progress

runner = CliRunner()


def test_models_list_at_80_columns_puts_descriptions_under_the_row(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEEPSCAN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DEEPSCAN_MODELS_DIR", raising=False)
    rows = [json.loads(line) for line in runner.invoke(app, ["models", "list", "--format", "json"]).stdout.splitlines()]
    assert {"synthetic_speech", "generated_image", "face_forgery", "default detector"} <= {r["name"] for r in rows}
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "80", "HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= 80, result.stdout
    assert all(line == line.rstrip() for line in lines)  # no padding to the width
    for row in rows:
        starts = [i for i, line in enumerate(lines) if line.startswith(row["name"] + " ")]
        assert len(starts) == 1, (row["name"], result.stdout)
        head = lines[starts[0]].split()
        assert row["kind"].split()[-1] in head and head[-1] == ("yes" if row["present"] else "no")
        under = []
        for line in lines[starts[0] + 1:]:
            if not line.startswith("  "):
                break
            under.append(line)
        description = f"{row['detects']}; trained on {row['trained_on']}"
        assert " ".join(line.strip() for line in under) == description, (row["name"], result.stdout)
        # across the width (two cells in), not squeezed under the name column
        full_width = textwrap.wrap(description, 78, break_on_hyphens=False, break_long_words=False)
        assert len(under) <= len(full_width), (row["name"], under)


def test_progress_bar_shows_the_rate_in_media_seconds_per_second():
    progress = media_progress(False)
    clock = [0.0]
    progress.get_time = lambda: clock[0]  # the tasks read the time through it
    task = progress.add_task("3 files", total=100.0)
    for _ in range(5):
        clock[0] += 1.0
        progress.advance(task, 3.2)
    console = Console(file=io.StringIO(), width=120, record=True, force_terminal=False)
    console.print(progress.make_tasks_table(progress.tasks))
    text = console.export_text()
    assert "3.2 media-s/s" in text and "16 media-s" in text, text
    fresh = media_progress(False)
    fresh.add_task("0 files", total=10.0)
    console = Console(file=io.StringIO(), width=120, record=True, force_terminal=False)
    console.print(fresh.make_tasks_table(fresh.tasks))
    assert "– media-s/s" in console.export_text()  # nothing to measure yet
