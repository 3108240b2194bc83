"""``scrob stats``."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

import typer

from .options import Json, Tz


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats(
        range_: Annotated[str | None, typer.Option(
            "--range", metavar="RANGE",
            help="A rolling window ending now: week, month, quarter, half-year, year or "
                 "all (default: month).")] = None,
        year: Annotated[int | None, typer.Option(
            help="A calendar year, such as 2024.")] = None,
        month: Annotated[str | None, typer.Option(
            metavar="YYYY-MM", help="A calendar month, such as 2024-05.")] = None,
        from_: Annotated[str | None, typer.Option(
            "--from", metavar="DATE", help="Start of a custom period (inclusive).")] = None,
        to: Annotated[str | None, typer.Option(
            "--to", metavar="DATE", help="End of a custom period (exclusive; default now).")
        ] = None,
        by: Annotated[str, typer.Option(
            help="Which top lists: artists, albums, tracks or all.")] = "all",
        limit: Annotated[int, typer.Option(min=0, help="Entries per top list.")] = 10,
        tz: Tz = None,
        json_: Json = False,
    ) -> None:
        """Listening statistics from the archive (works offline).

        Each listen counts once however many services saw it; names with equal
        counts are listed alphabetically. Calendar periods (--year, --month, dates)
        use --tz or the system's local zone.
        """
        from .. import render
        from ..errors import UsageError
        from ..stats import BY, compute_stats
        from ..timeparse import calendar_month, calendar_year, parse_date, rolling, zone
        from . import state

        if by not in BY:
            raise UsageError(f"unknown --by {by!r}", hint="use " + ", ".join(BY))
        # (an empty value is a value: `--from "$START"` with START unset must not
        # quietly mean another period)
        chosen = [n for n, v in (("--range", range_), ("--year", year), ("--month", month),
                                 ("--from/--to", from_ if from_ is not None else to))
                  if v is not None]
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} cannot be combined; choose one period")
        zinfo = zone(tz)
        now = int(time.time())
        if year is not None:
            start, end = calendar_year(year, zinfo)
        elif month is not None:
            start, end = calendar_month(month, zinfo)
        elif from_ is not None or to is not None:
            start = parse_date(from_, zinfo) if from_ is not None else 0
            end = parse_date(to, zinfo) if to is not None else now + 1
            if end <= start:
                raise UsageError("--to must be after --from" if from_ and to else
                                 "--to must be after 1970-01-01 00:00 UTC, where unix time "
                                 "begins" if to else
                                 "--from is in the future (--to defaults to now)")
        elif (range_ or "month") == "all":
            start, end = 0, now + 1
        else:  # up to and including this second, as "all" and --from without --to
            start, end = rolling("month" if range_ is None else range_, now + 1)
        with state().archive(readonly=True) as archive:
            report = compute_stats(archive, start, end, by=by, limit=limit)
        if json_:
            render.write_json(report.as_json())
            return
        period = f"{_day(start, zinfo)} to {_day(end, zinfo)}" if start else \
            f"everything to {_day(end, zinfo)}"
        render.table(None, ["listens", "artists", "tracks", "period"], [[
            f"{report.total_listens:,}", f"{report.unique_artists:,}",
            f"{report.unique_tracks:,}", period]], numeric=["listens", "artists", "tracks"])
        if report.top_artists:
            render.table("Top artists", ["#", "artist", "listens"],
                         ([i, r.artist, r.listens] for i, r in enumerate(report.top_artists, 1)),
                         numeric=["#", "listens"])
        if report.top_albums:
            render.table("Top albums", ["#", "album", "artist", "listens"],
                         ([i, r.album, r.artist, r.listens]
                          for i, r in enumerate(report.top_albums, 1)), numeric=["#", "listens"])
        if report.top_tracks:
            render.table("Top tracks", ["#", "track", "artist", "listens"],
                         ([i, r.track, r.artist, r.listens]
                          for i, r in enumerate(report.top_tracks, 1)), numeric=["#", "listens"])


def _day(ts: int, zinfo: object) -> str:
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    try:
        local = (dt.astimezone(zinfo) if zinfo is not None  # type: ignore[arg-type]
                 else dt.astimezone())
    except (OverflowError, ValueError):  # the last hours of 9999 are in 10000 east of UTC
        return dt.strftime("%Y-%m-%d %H:%M UTC")
    return local.strftime("%Y-%m-%d %H:%M")
