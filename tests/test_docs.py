"""The docs describe the code as it is: generated parts are current, every command is
documented, and the README's commands are the ones CI runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_docs_are_current() -> None:
    proc = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_command_has_help_and_a_section() -> None:
    import click
    import typer.main

    from scrobbler_cli.cli import build_app

    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    root = typer.main.get_command(build_app())
    ctx = click.Context(root, info_name="scrob")
    paths = []
    assert isinstance(root, click.Group)
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        assert cmd is not None
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd, info_name=name, parent=ctx)
            for sub in cmd.list_commands(sub_ctx):
                sub_cmd = cmd.get_command(sub_ctx, sub)
                assert sub_cmd is not None and (sub_cmd.help or "").strip(), f"{name} {sub}"
                paths.append(f"scrob {name} {sub}")
        else:
            assert (cmd.help or "").strip(), name
            paths.append(f"scrob {name}")
    for path in paths:
        assert f"## `{path}`" in reference, path
    assert {"scrob import", "scrob listens", "scrob stats", "scrob auth status"} <= set(paths)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_line = next(line for line in ci.splitlines() if "pytest" in line).strip()
    assert test_line in readme
    install_line = next(line for line in ci.splitlines() if "pip install" in line)
    assert "'.[test]'" in install_line and "'.[test]'" in readme
