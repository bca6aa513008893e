"""The README stays true: its CLI reference names every command and option, and .ci/run runs its test command."""

from __future__ import annotations

import re

import typer

from deepscan.cli import app
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group, prefix: str = "deepscan"):
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            yield from _commands(command, path)
        else:
            yield path, command


def test_every_command_and_option_is_in_the_cli_reference():
    reference = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        if f"`{path}" not in reference:
            missing.append(path)
        for param in command.params:
            if param.param_type_name == "option":
                names = [n for n in param.opts + param.secondary_opts if n.startswith("--")]
                if names and not any(n in reference for n in names) and "--help" not in names:
                    missing.append(f"{path} {names[0]}")
    assert not missing, f"README's CLI reference lacks: {missing}"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(python3 -m venv[^\n]*pytest[^\n]*)\n```", README)
    assert len(commands) == 1, "README must state one install-and-test command"
    assert commands[0] in (REPO_ROOT / ".ci" / "run").read_text()


def test_exit_codes_documented():
    from deepscan.cli import common

    for name in dir(common):
        if name.startswith("EXIT_"):
            assert f"| {getattr(common, name)} |" in README, name
