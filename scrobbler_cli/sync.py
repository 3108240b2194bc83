"""The sync engine: pages from a service into the archive, each page with its cursor.

Service engines (``scrobbler_cli/engines/<service>.py``) turn a service's paging rules
into pages of records, each with the cursor that holds once it is saved, and commit
each page (or a few that arrived together) with its cursor through
``Archive.save_records`` in one transaction, so an interruption at any instant loses
nothing and a re-run finishes the job. ``save_pages`` is that loop for library users
with a page source of their own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

from .archive import Archive
from .errors import UsageError
from .models import Account, Page, Progress, SaveResult, ServiceConfig, SyncReport

__all__ = ["SERVICES", "SUBMIT_DELAY", "SyncOptions", "check", "engine", "save_pages",
           "sync_account"]

SERVICES = ("lastfm", "listenbrainz")
#: Seconds a play may take to reach a service after it started: players send it once
#: half the track or 4 minutes have played (api-notes: "When a play counts as a
#: scrobble"), some only at its end, and clocks differ. A sync that starts at S is
#: therefore complete only up to S - SUBMIT_DELAY: that is the cursor it leaves.
SUBMIT_DELAY = 600


@dataclass
class SyncOptions:
    """How to sync: ``lookback`` seconds before the cursor to read again (None: the
    service's default), ``full`` to walk the whole history, ``since`` to start at a time."""

    full: bool = False
    since: int | None = None
    lookback: int | None = None
    on_progress: Callable[[Progress], None] | None = None
    log: Callable[[str], None] | None = None


def engine(service: str) -> ModuleType:
    """The engine module of a service (``scrobbler_cli.engines.<service>``)."""
    if service not in SERVICES:
        raise UsageError(f"unknown service {service!r}", hint="use " + ", ".join(SERVICES))
    return importlib.import_module(f"scrobbler_cli.engines.{service}")


def save_pages(
    archive: Archive,
    account: Account,
    pages: Iterable[Page],
    *,
    on_page: Callable[[Page, SaveResult], None] | None = None,
) -> SaveResult:
    """Save every page in order, each with its cursor in one transaction; the totals."""
    total = SaveResult()
    for page in pages:
        saved = archive.save_records(account, page.records, cursor=page.cursor)
        total.add(saved)
        if on_page:
            on_page(page, saved)
    return total


def check(config: ServiceConfig) -> None:
    """Raise what ``sync_account`` would raise before reading anything (no account
    configured, no API key), so a caller can stop before it opens an archive."""
    engine(config.service).check(config)


def sync_account(archive: Archive, config: ServiceConfig,
                 options: SyncOptions | None = None) -> SyncReport:
    """Pull what is new for one account into the archive; see the service's engine."""
    return engine(config.service).sync(archive, config, options or SyncOptions())
