"""Generate docs/cli.md from the Typer app and the schema block of docs/archive.md.

    python3 scripts/gen_docs.py          # rewrite the generated parts
    python3 scripts/gen_docs.py --check  # exit 1 if they are stale (tests/test_docs.py)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = "<!-- schema:start -->"
END = "<!-- schema:end -->"


def _walk(cmd: click.Command, ctx: click.Context, path: list[str]):  # type: ignore[no-untyped-def]
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx, terminal_width=88,
                                    max_content_width=88)
            yield from _walk(sub, sub_ctx, [*path, name])


def cli_reference() -> str:
    import typer.main

    from scrobbler_cli.cli import build_app

    root = typer.main.get_command(build_app())
    ctx = click.Context(root, info_name="scrob", terminal_width=88, max_content_width=88,
                        **root.context_settings)  # -h as well as --help, as the app has
    parts = [
        "# Command reference\n",
        "Generated from the code by `python3 scripts/gen_docs.py`; do not edit by hand.\n",
        "Exit codes: 0 done, 1 internal error (a bug), 2 usage error, 3 credentials missing,",
        "rejected or not storable, 4 a remote service failed after retries or is unreachable,",
        "5 the archive is busy or cannot be opened, 6 bad input data, 130 interrupted (Ctrl-C,",
        "SIGTERM or SIGHUP; what was saved stays).\n",
    ]
    for path, cmd, cctx in _walk(root, ctx, ["scrob"]):
        parts.append(f"## `{' '.join(path)}`\n")
        parts.append("```text")
        parts.append(cmd.get_help(cctx).rstrip())
        parts.append("```\n")
    return "\n".join(parts)


def schema() -> str:
    from scrobbler_cli.archive import Archive

    with tempfile.TemporaryDirectory() as tmp:
        archive = Archive(Path(tmp) / "schema.db")
        rows = archive.conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
            " AND tbl_name != '_sqlite_migrations' ORDER BY type = 'view', type = 'index', rowid"
        ).fetchall()
        archive.close()
    body = ";\n\n".join(_tidy(r[0]) for r in rows)
    return f"{START}\n```sql\n{body};\n```\n{END}"


def _tidy(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip().splitlines()]
    rest = [line for line in lines[1:] if line.strip()]
    indent = min((len(x) - len(x.lstrip()) for x in rest), default=0)
    return "\n".join([lines[0], *("    " + x[indent:] if x.strip() != ")" else ")"
                                   for x in rest)])


def archive_doc(current: str) -> str:
    head, _, rest = current.partition(START)
    _, _, tail = rest.partition(END)
    return head + schema() + tail


def main() -> int:
    check = "--check" in sys.argv
    targets = {
        ROOT / "docs" / "cli.md": cli_reference(),
        ROOT / "docs" / "archive.md": archive_doc(
            (ROOT / "docs" / "archive.md").read_text(encoding="utf-8")),
    }
    stale = [p for p, text in targets.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)} (run python3 scripts/gen_docs.py)")
        return 1 if stale else 0
    for p in stale:
        p.write_text(targets[p], encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
