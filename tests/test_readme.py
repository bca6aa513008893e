"""The README stays true: its CLI reference names every command and option, and .ci/run runs its test command."""

from __future__ import annotations

import re

import typer

from deepscan.cli import app
from scripts.cli_reference import iter_commands
from scripts.cli_reference import reference as cli_reference
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_command_and_option_is_in_the_cli_reference():
    reference = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    missing = []
    for path, command in iter_commands(typer.main.get_command(app)):
        if f"`{path}" not in reference:
            missing.append(path)
        for param in command.params:
            names = [n for n in param.opts + param.secondary_opts if n.startswith("--")]
            if param.param_type_name == "option" and "--help" not in names and not any(n in reference for n in names):
                missing.append(f"{path} {names[0]}")
    assert not missing, f"README's CLI reference lacks: {missing}"


def test_cli_reference_is_current():
    block = README.split("<!-- cli-reference -->\n", 1)[1].split("\n<!-- /cli-reference -->", 1)[0]
    assert block.strip() == cli_reference().strip(), "run `python scripts/cli_reference.py` and paste it into README.md"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(python3 -m venv[^\n]*pytest[^\n]*)\n```", README)
    assert len(commands) == 1, "README must state one install-and-test command"
    assert commands[0] in (REPO_ROOT / ".ci" / "run").read_text()


def test_exit_codes_documented():
    from deepscan.cli import common

    for name in dir(common):
        if name.startswith("EXIT_"):
            assert f"| {getattr(common, name)} |" in README, name
