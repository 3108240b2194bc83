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


def _user(value: str | None) -> str | None:
    """An empty ``--user`` (``--user "$U"`` with U unset) is a mistake, not the
    configured account."""
    if value is not None and not value.strip():
        raise typer.BadParameter("no account name given")
    return value


User = Annotated[
    str | None,
    typer.Option("--user", metavar="NAME", callback=_user,
                 help="The account to use instead of the configured one."),
]
#: ``sync all --user``: one name for every service synced
UserOnEach = Annotated[
    str | None,
    typer.Option("--user", metavar="NAME", callback=_user,
                 help="Read this account name on each of those services instead of the "
                      "configured ones (someone who has one name on both)."),
]
SOURCE_SERVICES = ("lastfm", "listenbrainz", "import")


def _source(value: str | None) -> str | None:
    """``SERVICE[:ACCOUNT]`` spelled as the archive stores it: the service in lower case,
    the account folded as that service folds user names (``listenbrainz:Alice`` is
    ``listenbrainz:alice``). A service other than ``SOURCE_SERVICES`` (one an imported
    file named, such as ``spotify``) is checked against the archive by the command
    (``common.check_source``): a typo would match nothing, silently."""
    if value is None:
        return None
    import re

    from ..models import Account

    service, colon, account = value.strip().partition(":")
    service = service.lower()
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", service):
        raise typer.BadParameter(f"{service!r} is not a service name; use "
                                 f"{', '.join(SOURCE_SERVICES)}, optionally with :ACCOUNT")
    if colon and not account:
        raise typer.BadParameter(f"no account after '{service}:'")
    return Account.parse(f"{service}:{account}").source if colon else service


Source = Annotated[
    str | None,
    typer.Option("--source", metavar="SERVICE[:ACCOUNT]", callback=_source,
                 help="Only listens seen by this service (lastfm, listenbrainz, import, "
                      "or one an imported file named), optionally one account of it."),
]
Tz = Annotated[
    str | None,
    typer.Option("--tz", metavar="ZONE",
                 help="Time zone for dates and calendar periods (IANA name such as "
                      "Europe/Berlin, or UTC); default: the system's local zone."),
]
