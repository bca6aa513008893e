"""Print the CLI reference of README.md (Markdown) from the Typer app, so that it stays current.

Usage: ``python scripts/cli_reference.py`` and paste the output between the README's
``<!-- cli-reference -->`` markers. ``tests/test_readme.py`` fails when a command or option is
missing from the README.
"""

from __future__ import annotations

import typer

from deepscan.cli import app


def iter_commands(group, prefix: str = "deepscan"):
    """Yield ``(command path, command)`` for every leaf command, depth first, in registration order."""
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):  # a sub-app such as `deepscan models`
            yield from iter_commands(command, path)
        else:
            yield path, command


def option_row(param) -> str:
    """One Markdown table row: the option's names, its help and its default."""
    names = ", ".join(f"`{n}`" for n in param.opts + param.secondary_opts)
    default = getattr(param.default, "value", param.default)
    if param.is_flag and param.secondary_opts:
        note = f" (default: `{param.opts[0] if default else param.secondary_opts[0]}`)"
    elif default in (None, False, ()):
        note = ""
    else:
        note = f" (default: `{default}`)"
    return f"| {names} | {(param.help or '').strip()}{note} |"


def reference() -> str:
    """The whole reference: a heading, the summary line and an option table per command."""
    lines = []
    for path, command in iter_commands(typer.main.get_command(app)):
        arguments = " ".join(p.name.upper() + ("..." if p.nargs == -1 else "")
                             for p in command.params if p.param_type_name == "argument")
        lines += [f"### `{path}{' ' + arguments if arguments else ''}`", "",
                  (command.help or "").strip().split("\n")[0], ""]
        rows = [option_row(p) for p in command.params
                if p.param_type_name == "option" and "--help" not in p.opts]
        if rows:
            lines += ["| option | meaning |", "|---|---|", *rows]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference())
