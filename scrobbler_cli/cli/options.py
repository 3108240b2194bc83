"""Options shared by several commands, declared once so help and parsing agree."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
Since = Annotated[
    str | None,
    typer.Option("--since", metavar="DATE",
                 help="Only listens at or after DATE (YYYY-MM-DD, ISO time, or unix seconds)."),
]
Until = Annotated[
    str | None,
    typer.Option("--until", metavar="DATE",
                 help="Only listens before DATE (YYYY-MM-DD, ISO time, or unix seconds)."),
]
User = Annotated[
    str | None,
    typer.Option("--user", metavar="NAME",
                 help="The account to use instead of the configured one."),
]
Source = Annotated[
    str | None,
    typer.Option("--source", metavar="SERVICE[:ACCOUNT]",
                 help="Only listens seen by this service (lastfm, listenbrainz, import), "
                      "optionally one account of it."),
]
Tz = Annotated[
    str | None,
    typer.Option("--tz", metavar="ZONE",
                 help="Time zone for dates and calendar periods (IANA name such as "
                      "Europe/Berlin, or UTC); default: the system's local zone."),
]
