"""Print the CLI reference of README.md (Markdown) from the Typer app, so that it stays current.

Usage: ``python scripts/cli_reference.py`` and paste between the README markers.
tests/test_readme.py fails when a command or option is missing from the README.
"""
import typer
from deepscan.cli import app

def walk(group, prefix="deepscan"):
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(cmd, "commands"):
            yield from walk(cmd, path)
        else:
            yield path, cmd

out = []
root = typer.main.get_command(app)
for path, cmd in walk(root):
    args = " ".join(p.name.upper() + ("..." if p.nargs == -1 else "") for p in cmd.params if p.param_type_name == "argument")
    out.append(f"### `{path}{(' ' + args) if args else ''}`\n")
    out.append((cmd.help or "").strip().split("\n")[0] + "\n")
    rows = []
    for p in cmd.params:
        if p.param_type_name == "option":
            names = ", ".join(f"`{n}`" for n in p.opts + p.secondary_opts)
            if "--help" in p.opts: continue
            default = p.default
            if hasattr(default, "value"): default = default.value
            d = "" if default in (None, False, ()) or p.is_flag and default is False else f" (default: `{default}`)"
            if p.is_flag and len(p.secondary_opts) > 0:
                d = f" (default: `{p.opts[0] if default else p.secondary_opts[0]}`)"
            rows.append(f"| {names} | {(p.help or '').strip()}{d} |")
    if rows:
        out.append("| option | meaning |\n|---|---|")
        out.extend(rows)
    out.append("")
print("\n".join(out))
