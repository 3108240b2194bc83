"""Everything scrob shows: the only module that imports rich, and only lazily.

stdout carries data (tables, JSON, NDJSON, CSV); stderr carries progress, logs and
errors. Remote text (artist, track, album) is displayed literally: it is wrapped in
``Text`` (never parsed as markup) and control characters are made visible first, so no
track name can restyle, move or clear the terminal.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

# C0 and C1 controls, line and paragraph separators, and every bidi control (the marks
# LRM, RLM and ALM, embeddings, overrides, isolates): they move or hide what follows.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u2028\u2029\u200e\u200f\u202a-\u202e"
    r"\u2066-\u2069]"
)
_JSON_UNSAFE = re.compile(
    r"[\x7f-\x9f\u061c\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


#: ``--quiet``: no talk on stderr (messages, warnings, progress), only errors.
QUIET = False


def visible(text: object) -> str:
    """``text`` with control, escape and bidi characters shown as ``\\xNN``/``\\uNNNN``."""
    s = "" if text is None else str(text)
    return _CONTROL.sub(lambda m: _escape_char(m.group()), s.replace("\t", " ").replace("\n", " "))


def when(ts: int, zinfo: Any = None) -> str:
    """A listen's time for a table: ``YYYY-MM-DD HH:MM`` in ``zinfo`` (default: the
    local zone), or the number itself for a time no calendar holds."""
    from datetime import datetime, timezone

    try:
        dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # a remote service's impossible time
        return str(ts)
    return dt.astimezone(zinfo).strftime("%Y-%m-%d %H:%M")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def count(n: int, noun: str) -> str:
    """``1 request``, ``2 requests``, ``1,200 requests`` (nouns whose plural takes s)."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def json_line(obj: Any) -> str:
    """Compact JSON with non-ASCII kept readable but C1 and bidi controls escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_json(obj: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    text = json.dumps(obj, ensure_ascii=False, indent=2)
    out.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
    out.flush()


def write_ndjson(rows: Iterable[Any], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    n = 0
    for row in rows:
        out.write(json_line(row) + "\n")
        n += 1
    out.flush()
    return n


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]],
              out: TextIO | None = None) -> int:
    out = out or sys.stdout
    clean = out.isatty()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow([visible(v) if clean and isinstance(v, str) else v for v in row])
        n += 1
    out.flush()
    return n


def _console(stderr: bool = False):  # type: ignore[no-untyped-def]
    from rich.console import Console

    if os.environ.get("NO_COLOR"):  # plain: no colour, and no bold or dim either
        return Console(stderr=stderr, highlight=False, color_system=None, soft_wrap=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          *, numeric: Sequence[str] = (), caption: str | None = None) -> None:
    """A Rich table on stdout; every cell, the title and the caption are literal text
    (a title may carry a user name the server spelled)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(visible(title)) if title else None,
              caption=Text(visible(caption)) if caption else None, show_edge=False,
              header_style="bold")
    for col in columns:
        t.add_column(col, justify="right" if col in numeric else "left", overflow="fold")
    for row in rows:
        t.add_row(*(Text(visible(v)) for v in row))
    _console().print(t)


def message(text: str, *, style: str | None = None) -> None:
    """A line of talk on stderr (not data). ``text`` is printed literally, control and
    escape characters made visible (it may carry a file name or a remote user name).
    Never wrapped: in cron mail a summary stays one line."""
    if QUIET:
        return
    from rich.text import Text

    _console(stderr=True).print(Text(visible(text), style=style or ""), soft_wrap=True)


def error(text: str) -> None:
    """The one line a failing command prints (plain, so it reads well in cron mail)."""
    sys.stderr.write(f"scrob: error: {visible(text)}\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    if QUIET:
        return
    sys.stderr.write(f"scrob: {visible(text)}\n")
    sys.stderr.flush()


def log_to_stderr(line: str) -> None:
    """The ``--verbose`` logger: callers pass already-redacted text."""
    sys.stderr.write(f"scrob: debug: {visible(line)}\n")


@contextmanager
def progress(description: str, total: int | None = None, *, enabled: bool = True
             ) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr when it is a terminal; otherwise a silent callback.

    The callback takes ``done`` (units done so far), and optionally ``total`` and
    ``info`` (a short status such as the listens so far, shown literally).
    """
    if not enabled or QUIET or not sys.stderr.isatty():
        yield lambda *a, **k: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                  MofNCompleteColumn(), TextColumn("{task.fields[info]}", markup=False),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=_console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(visible(description), total=total, info="")

        def update(done: int | None = None, *, total: int | None = None,
                   info: str | None = None) -> None:
            kwargs: dict[str, Any] = {}
            if done is not None:
                kwargs["completed"] = done
            if total is not None:
                kwargs["total"] = total
            if info is not None:
                kwargs["info"] = visible(info)
            bar.update(task, **kwargs)

        yield update
