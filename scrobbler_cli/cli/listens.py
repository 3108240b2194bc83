"""``scrob listens``."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import Json, Since, Source, Tz, Until

TABLE_LIMIT = 50
COLUMNS = ["listened_at", "artist", "track", "album", "duration", "recording_mbid",
           "release_mbid", "sources"]


def register(app: typer.Typer) -> None:
    @app.command("listens")
    def listens(
        since: Since = None,
        until: Until = None,
        artist: Annotated[str | None, typer.Option(
            help="Only this artist (compared ignoring case, spacing and quote style).")] = None,
        track: Annotated[str | None, typer.Option(help="Only this track title.")] = None,
        album: Annotated[str | None, typer.Option(help="Only this album.")] = None,
        source: Source = None,
        limit: Annotated[int | None, typer.Option(
            min=0, help="At most this many listens (the newest, unless --reverse); "
                        "default 50 in a table, all with --json or --format csv.")] = None,
        reverse: Annotated[bool, typer.Option(
            "--reverse", help="Oldest first (default: newest first).")] = False,
        json_: Json = False,
        fmt: Annotated[str, typer.Option(
            "--format", help="table, json (NDJSON, like --json) or csv.")] = "table",
        tz: Tz = None,
    ) -> None:
        """List archived listens, newest first, each counted once.

        With --json, one JSON object per line (NDJSON) that `scrob import` reads back.
        """
        from .. import render
        from ..errors import UsageError
        from ..timeparse import parse_date, zone
        from . import state
        from .common import check_source

        if fmt not in ("table", "json", "csv"):
            raise UsageError(f"unknown format {fmt!r}", hint="use table, json or csv")
        if json_ and fmt not in ("table", "json"):
            raise UsageError(f"--json and --format {fmt} ask for two formats", hint="give one")
        if json_:
            fmt = "json"
        for option, value in (("--artist", artist), ("--track", track), ("--album", album)):
            if value is not None and not value.strip():  # no name is empty: matches nothing
                raise UsageError(f"{option} needs a name", hint=f"leave {option} out to "
                                 "list every one")
        zinfo = zone(tz)
        start = parse_date(since, zinfo) if since is not None else None
        end = parse_date(until, zinfo) if until is not None else None
        if start is not None and end is not None and end <= start:
            raise UsageError("--until must be after --since")
        if limit is not None:
            limit = min(limit, 2**62)  # more than any archive holds: all (SQLite's bound)
        capped = fmt == "table" and limit is None
        if capped:  # a table of a whole history helps nobody; --json/--format csv are uncapped
            limit = TABLE_LIMIT + 1  # one more tells whether there are more
        with state().archive(readonly=True) as archive:
            check_source(archive, source)
            rows = archive.listens(since=start, until=end, artist=artist, track=track,
                                   album=album, source=source, limit=limit,
                                   newest_first=not reverse)
            if fmt == "json":
                render.write_ndjson(listen.as_json() for listen in rows)
            elif fmt == "csv":
                render.write_csv(COLUMNS, (
                    [r.listened_at, r.artist, r.track, r.album or "",
                     "" if r.duration is None else r.duration,
                     r.recording_mbid or "", r.release_mbid or "", " ".join(r.sources)]
                    for r in rows))
            else:
                shown = list(rows)
                more = capped and len(shown) > TABLE_LIMIT
                render.table(None, ["when", "artist", "track", "album", "sources"], (
                    [render.when(r.listened_at, zinfo), r.artist, r.track, r.album or "",
                     ", ".join(r.sources)] for r in shown[:TABLE_LIMIT]))
                if more and not state().quiet:
                    render.warn(f"showing {TABLE_LIMIT} listens; use --limit N for more, "
                                "or --json / --format csv for all")

