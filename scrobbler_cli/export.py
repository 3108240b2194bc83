"""The push engine: archived listens an account lacks, sent on to it.

Candidates come from ``Archive.missing_for`` (the archive's matching decides what the
target already has, and pushes already accepted are never sent twice); each service's
engine applies its own rules (batch sizes, what it accepts) and records a push only
after the service accepted it. What the archive knows of the target stops at its last
sync, so candidates too close to that or newer are held back until a later one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .archive import Archive
from .archive.rematch import MAX_SPAN
from .errors import UsageError
from .models import Account, ExportReport, Listen, Progress, ServiceConfig
from .sync import engine

__all__ = ["ExportOptions", "export_listens", "foreign_accounts"]

#: How long a run of repeats (``ExportOptions.holds``) is followed back at most: a
#: candidate older than this before the hold is sent as usual. As far as the archive
#: pairs a run again (``archive.rematch.MAX_SPAN``).
RUN_HORIZON = MAX_SPAN


@dataclass
class ExportOptions:
    """What to push: a time window, only listens seen by ``source``, or a ``dry_run``
    that sends nothing and hands each would-be item to ``on_item``."""

    since: int | None = None
    until: int | None = None
    source: str | None = None
    #: your own accounts (the configured ones): any other account of their services
    #: is someone else's (a profile read with ``--user``), and listens only such
    #: accounts saw are never pushed
    mine: tuple[Account, ...] = ()
    #: the archive's accounts that are someone else's, from ``mine`` (``export_listens``)
    foreign: tuple[Account, ...] = ()
    #: candidates from this time on are held back for a run after the next sync of the
    #: target (``hold_from``; set by ``export_listens``)
    hold_from: int | None = None
    dry_run: bool = False
    on_item: Callable[[dict[str, Any]], None] | None = None
    on_progress: Callable[[Progress], None] | None = None
    log: Callable[[str], None] | None = None

    def holds(self, archive: Archive, listen: Listen) -> bool:
        """Whether to hold ``listen`` back (``hold_from``): it is that recent, or it is
        one of a run of plays of its track (a song on repeat: ``Archive.run_end``) that
        is. Until the target's records of the whole run are in, a play of the run it
        lacks may only look missing: its record may be the one a later play was paired
        with (archive/rematch.py)."""
        if self.hold_from is None:
            return False
        if listen.listened_at >= self.hold_from:
            return True
        if listen.listened_at < self.hold_from - RUN_HORIZON:
            return False
        return archive.run_end(listen.id, until=self.hold_from) >= self.hold_from


def export_listens(archive: Archive, config: ServiceConfig,
                   options: ExportOptions | None = None) -> ExportReport:
    """Push to ``config``'s account what it lacks; running it twice sends nothing new.

    What the account has is judged from the archive, so an account never synced is
    refused (except for a dry run): everything would look missing and be sent again.
    """
    options = options or ExportOptions()
    service = engine(config.service)
    target = service.account_for(config.user) if config.user else None
    if target is not None and not options.dry_run and archive.get_cursor(target) is None:
        partly = target in archive.known_accounts()  # from --since syncs, or an import
        raise UsageError(
            f"{target.source} has never been synced "
            + ("in full (what the archive has of it came from --since syncs or an import)"
               if partly else "")
            + ", so scrob cannot tell what it already has",
            hint=f"run `scrob sync {config.service} --user {target.name}` first"
                 + (", without --since," if partly else "") + " or try --dry-run")
    if options.mine:
        options = replace(options, foreign=tuple(foreign_accounts(archive, options.mine)))
        if options.foreign and options.log:
            options.log("not pushing what only these accounts saw (not yours): "
                        + ", ".join(a.source for a in options.foreign))
    if target is not None:
        options = replace(options, hold_from=hold_from(archive, target))
    return service.export(archive, config, options)


def hold_from(archive: Archive, target: Account) -> int | None:
    """From when on a candidate is held back (counted, not sent) until a later sync of
    ``target``: a listen within the match tolerance of the target's cursor, or later,
    could match one the target gained after that sync, such as a play that reached both
    services (``sync listenbrainz; export lastfm``). (The cursor already allows for
    plays that were still reaching the target then: ``sync.SUBMIT_DELAY``.) None when the
    target was never synced (a dry run: then everything looks missing anyway)."""
    cursor = archive.get_cursor(target)
    return None if cursor is None else cursor - archive.tolerance + 1


def foreign_accounts(archive: Archive, mine: tuple[Account, ...]) -> list[Account]:
    """The archive's accounts of your services that are not yours (``mine``): a
    service none of ``mine`` is on tells nothing, so its accounts all count as yours."""
    services = {a.service for a in mine}
    return [account for account in archive.known_accounts()
            if account.service in services and account not in mine]
