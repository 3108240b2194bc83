"""``scrob sync lastfm | listenbrainz | all``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated

import typer

from .options import Json, Since, User, UserOnEach

Full = Annotated[bool, typer.Option(
    "--full", help="Walk the whole history again (still no duplicates).")]
Lookback = Annotated[str | None, typer.Option(
    "--lookback", metavar="DURATION",
    help="How far before the last sync to look again for late-submitted listens, "
         "such as 14d or 36h (default: 14d).")]

app = typer.Typer(help="Pull new listens from the services into the archive.",
                  no_args_is_help=True)


def _run(services: list[str], user: str | None, full: bool, since: str | None,
         lookback: str | None, json_: bool) -> None:
    from .. import render
    from ..errors import ScrobError, redact
    from ..models import Account, Progress, ServiceConfig, SyncReport
    from ..services.http import prepare_tls
    from ..sync import SyncOptions, check, sync_account
    from ..timeparse import parse_date, parse_duration
    from . import state
    from .common import account_name, service_config

    prepare_tls()  # the CA bundle loads while the archive opens and secrets are read
    st = state()
    start = parse_date(since) if since is not None else None
    back = parse_duration(lookback) if lookback is not None else None
    failure: ScrobError | None = None
    failed: list[str] = []
    unwritten: OSError | None = None  # a closed or full output (`| head -1`, a full disk)

    def emit(report: SyncReport) -> None:
        """One account's summary. An output that cannot take it must not stop the next
        account's sync: its error is raised once every account is done."""
        nonlocal unwritten
        if unwritten is not None:
            return
        try:
            if json_:
                render.write_ndjson([report.as_json()])
            elif not st.quiet and (report.error is None or report.fetched):
                render.message(_summary(report))  # (a failure's: what it saved first)
        except OSError as exc:
            unwritten = exc
    ready: dict[str, ServiceConfig] = {}  # (secrets read once: the keyring is slow)
    if len(services) == 1:  # an account that cannot sync makes no archive
        try:
            ready[services[0]] = service_config(services[0], user)
            check(ready[services[0]])
        except ScrobError as exc:
            if json_:  # its summary, as for any failed sync
                render.write_ndjson([SyncReport(service=services[0],
                                                user=account_name(services[0], user),
                                                error=redact(str(exc))).as_json()])
            raise
    try:
        opened = st.archive(background=True)
    except ScrobError as exc:  # (busy, unreadable): each account's summary says so
        if json_:
            render.write_ndjson([SyncReport(
                service=service, user=(ready[service].user if service in ready
                                       else account_name(service, user)),
                error=redact(str(exc))).as_json() for service in services])
        raise
    with opened as archive:
        for service in services:
            cfg = None
            try:
                # (a bad API root fails this one only)
                cfg = ready.get(service) or service_config(service, user)
                with render.progress(f"{service} {cfg.user}", enabled=not st.quiet) as bar:
                    def progress(e: Progress, bar: Callable[..., None] = bar) -> None:
                        bar(e.done, total=e.total, info=f"{e.listens:,} listens")

                    report = sync_account(archive, cfg, SyncOptions(
                        full=full, since=start, lookback=back, log=st.log,
                        on_progress=progress))
            except ScrobError as exc:
                # what it fetched and saved before failing stays in the archive
                name = (cfg.user if cfg else account_name(service, user)) or None
                report = (exc.partial if isinstance(exc.partial, SyncReport)
                          else SyncReport(service=service, user=name))
                report.error = redact(str(exc))
                if name:  # what the archive holds for it still stands
                    report.cursor = archive.get_cursor(Account.parse(f"{service}:{name}"))
                if len(services) == 1:  # its summary (--json), then its own error
                    if json_:
                        render.write_ndjson([report.as_json()])
                    raise
                failure = failure or exc
                failed.append(f"{service}: {redact(str(exc))}")
            except KeyboardInterrupt as exc:  # the account's summary, then stop them all
                stopped = getattr(exc, "partial", None)
                if isinstance(stopped, SyncReport):
                    stopped.error = "interrupted"
                    if stopped.user:  # what the archive holds for it stands
                        stopped.cursor = archive.get_cursor(
                            Account.parse(f"{service}:{stopped.user}"))
                    emit(stopped)
                raise
            emit(report)
    if failure is not None:  # one line for all failures; the first one's exit code
        failure.message = "not every account synced: " + "; ".join(failed)
        failure.hint = None
        raise failure
    if unwritten is not None:
        raise unwritten


def _summary(r: object) -> str:
    from .. import render
    from ..models import SyncReport

    assert isinstance(r, SyncReport)
    if r.cursor is not None:
        when = (datetime.fromtimestamp(r.cursor, tz=timezone.utc).astimezone()
                .strftime("%Y-%m-%d %H:%M"))
        state = f"complete up to {when}" if r.complete else \
            f"incomplete (run it again to go on), complete up to {when}"
    elif r.complete:  # a --since sync of an account never synced in full
        state = f"not yet synced in full (`scrob sync {r.service}` without --since does it)"
    else:
        state = "incomplete (run it again to go on)"
    return (f"{r.service} {r.user}: {r.fetched:,} fetched, {r.new:,} new, "
            f"{r.duplicates:,} already archived, {render.count(r.requests, 'request')}; "
            f"{state}")


@app.command("lastfm")
def sync_lastfm(user: User = None, full: Full = False, since: Since = None,
                lookback: Lookback = None, json_: Json = False) -> None:
    """Pull new scrobbles from Last.fm (or a compatible server such as Libre.fm).

    Reads from the last sync minus the lookback, oldest page first, committing each
    page with the cursor: an interrupted sync resumes with no gap and no duplicate.
    --user reads any public profile (someone else's: best in an archive of its own,
    --db, since their listens join your statistics).
    """
    _run(["lastfm"], user, full, since, lookback, json_)


@app.command("listenbrainz")
def sync_listenbrainz(user: User = None, full: Full = False, since: Since = None,
                      lookback: Lookback = None, json_: Json = False) -> None:
    """Pull new listens from ListenBrainz (or a compatible server such as Maloja).

    Walks forward from the last sync minus the lookback, 1000 listens a request,
    committing each page with the cursor; listens sharing a second at a page boundary
    all arrive. --user reads any user's public listens.
    """
    _run(["listenbrainz"], user, full, since, lookback, json_)


@app.command("all")
def sync_all(user: UserOnEach = None, full: Full = False, since: Since = None,
             lookback: Lookback = None, json_: Json = False) -> None:
    """Sync every configured account, one summary each.

    One failing account does not stop the others; the exit code reports the failure.
    """
    from ..errors import CredentialsError
    from .common import configured_services

    services = configured_services()
    if not services:
        raise CredentialsError("no account is configured",
                               hint="run `scrob auth lastfm` or `scrob auth listenbrainz`")
    _run(services, user, full, since, lookback, json_)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sync")
