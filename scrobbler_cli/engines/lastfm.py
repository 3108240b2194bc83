"""Last.fm (and Libre.fm / GNU FM) as a source and a target of the archive.

Sync reads the window ``[from, to)`` of user.getRecentTracks with ``to`` fixed when the
sync starts, so scrobbles made during the sync cannot push items across page borders. It
walks that window's pages oldest first and commits each page (or the few pages that
arrived while the last commit ran) with a cursor that is only ever a time below which
everything has been read, so an interruption at any instant (Ctrl-C, ``kill -9``,
network loss) resumes with no gap, and dedup absorbs the re-read.

Why the walk checks every reply (api-notes B6): pages are positions counted from the
newest scrobble, so a back-dated scrobble that arrives inside the window while the walk
is running moves every older item one place towards the higher pages, and reading oldest
first, the item at each page border would slide into a page already read and be missed.
Every reply carries the window's ``total``; when it differs from the first reply's (in
any reply that has arrived: pages are read side by side, in any order), or a page's items
do not line up with its neighbour's, the walk re-reads from the last committed page
instead of trusting page numbers any further. A scrobble that lands in the
already-read part is a late scrobble like any other: its timestamp is at most 14 days
before it was sent (Last.fm refuses older ones), so the next sync's lookback (14 days
before this sync's ``to``) reads it. What no reply can show is a deletion and a
back-dated scrobble that both land between two reads, with no reply read between them,
leaving the total as it was; ``--full`` reads such a border item again.

Export pushes what the Last.fm account lacks with track.scrobble: only plays younger
than 14 days (older ones are counted as ``too_old``), at most 50 a request, never two
plays with the same timestamp (Last.fm keeps one scrobble per second and silently drops
a repeat), and on the daily cap it stops and leaves the rest for a later run.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future
from functools import partial
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from ..errors import (
    CredentialsError,
    ScrobError,
    ServiceError,
    ServiceUnavailable,
    keeping_partial,
)
from ..models import Account, ExportReport, Listen, Progress, ServiceConfig, SyncReport
from ..services.http import Http, make_client
from ..services.lastfm import (
    DEFAULT_API_ROOT,
    MAX_LIMIT,
    MAX_SCROBBLES_PER_REQUEST,
    LastfmClient,
    RecentTracksPage,
)
from ..sync import SUBMIT_DELAY

if TYPE_CHECKING:
    import httpx

    from ..archive import Archive
    from ..export import ExportOptions
    from ..sync import SyncOptions

__all__ = [
    "CONCURRENCY",
    "DEFAULT_LOOKBACK",
    "DEFAULT_RATE",
    "GROUP",
    "MAX_AGE",
    "PAGE_SIZE",
    "assign_timestamps",
    "authorize",
    "check",
    "connect",
    "export",
    "sync",
    "walk",
    "window",
]

SERVICE = "lastfm"
#: Last.fm asks for about 5 requests/s (api-notes B9); config.rate overrides it.
DEFAULT_RATE = 5.0
#: How far before the cursor a delta sync reads again: Last.fm accepts scrobbles up to
#: 14 days old (B9), so a later-submitted one is never older than that.
DEFAULT_LOOKBACK = 14 * 86400
#: Last.fm ignores scrobbles older than this (code 3), so export does not send them.
MAX_AGE = 14 * 86400
#: Nor does it send one further in the future than this (code 4, "timestamp too new";
#: Last.fm's limit is not documented, ListenBrainz's is an hour): it is counted as
#: rejected and stays a candidate, sent by a run after its time.
MAX_FUTURE = 3600
#: Items per page: the documented maximum of user.getRecentTracks (B6).
PAGE_SIZE = MAX_LIMIT
#: Page requests in flight at once. The pacer keeps them under the rate; more than one
#: matters when the round trip, not the rate, is the bottleneck (250 ms at 5/s).
CONCURRENCY = 4
#: Most records committed in one transaction: pages that arrived while the previous
#: commit ran are saved together, because each commit writes every database page it
#: touched to the WAL (the name tables' key indexes touch many), whatever its size. Kept
#: small enough that a sync and its writer process stay under 150 MB (docs/performance.md).
GROUP = 2000
#: Re-reads in a row that did not move the walk's start forward before the sync gives
#: up (exit 4).
MAX_STALLS = 6
#: Steps of one second a play may be moved to find a second Last.fm does not hold yet.
MAX_NUDGE = 30

# Injectable for tests (no real waiting); the sync wraps SLEEP so Ctrl-C ends it at once.
SLEEP: Callable[[float], None] = time.sleep
CLOCK: Callable[[], float] = time.monotonic
NOW: Callable[[], float] = time.time

_ENV_HINT = ("run `scrob auth lastfm`, or set SCROB_LASTFM_API_KEY "
             "(and SCROB_LASTFM_API_SECRET, SCROB_LASTFM_SESSION_KEY)")
_IGNORED = {
    1: "artist ignored",
    2: "track ignored",
    3: "timestamp too old",
    4: "timestamp too new",
}


class _Cancelled(BaseException):
    """Raised in a fetch thread's sleep once the sync has ended, so it stops at once."""


# --- connecting -------------------------------------------------------------------------


def connect(config: ServiceConfig, *, sleep: Callable[[float], None] | None = None,
            clock: Callable[[], float] | None = None, log: Callable[[str], None] | None = None,
            transport: httpx.BaseTransport | None = None) -> LastfmClient:
    """A LastfmClient for ``config`` over one shared, paced Http (close its client after).

    Only the API key is required here; calls that need the secret or the session key
    say so themselves (CredentialsError, exit 3).
    """
    if not config.api_key:
        raise CredentialsError("no Last.fm API key is configured", hint=_ENV_HINT)
    http = Http(make_client(transport=transport), service=SERVICE,
                rate=config.rate or DEFAULT_RATE, sleep=sleep or SLEEP, clock=clock or CLOCK,
                log=log)
    return LastfmClient(http, api_root=config.api_url or DEFAULT_API_ROOT,
                        api_key=config.api_key, api_secret=config.api_secret,
                        session_key=config.session_key)


def _close(client: LastfmClient) -> None:
    client.http.client.close()


def check(config: ServiceConfig) -> None:
    """What a sync needs before anything is opened or sent: an account and an API key
    (CredentialsError, exit 3)."""
    _user(config)
    if not config.api_key:
        raise CredentialsError("no Last.fm API key is configured", hint=_ENV_HINT)


def _user(config: ServiceConfig) -> str:
    if not config.user:
        raise CredentialsError("no Last.fm account is configured",
                               hint="run `scrob auth lastfm`, set SCROB_LASTFM_USER, "
                                    "or pass --user")
    return config.user


def account_for(user: str) -> Account:
    """The archive account of a Last.fm user: names are case-insensitive on Last.fm, so
    ``--user Alice`` and ``alice`` are one account with one cursor."""
    return Account(SERVICE, user.casefold())


def authorize(config: ServiceConfig, *, on_url: Callable[[str], None], timeout: float = 300,
              interval: float = 3, sleep: Callable[[float], None] | None = None,
              clock: Callable[[], float] | None = None,
              log: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Last.fm's desktop authorization (B8): ``(username, session key)``.

    Gets a token (this also proves the key and secret: a bad one is AuthRejected,
    exit 3), hands the approval URL to ``on_url``, then polls auth.getSession until the
    user approves or ``timeout`` seconds pass.
    """
    if not config.api_key or not config.api_secret:
        raise CredentialsError("Last.fm authorization needs the API key and secret",
                               hint="create them at https://www.last.fm/api/account/create")
    client = connect(config, sleep=sleep, clock=clock, log=log)
    try:
        token = client.get_token()
        on_url(client.auth_url(token))
        return client.wait_for_session(token, timeout=timeout, interval=interval,
                                       sleep=sleep or SLEEP, clock=clock or CLOCK)
    finally:
        _close(client)


# --- sync ---------------------------------------------------------------------------------


def window(cursor: int | None, *, full: bool = False, since: int | None = None,
           lookback: int | None = None) -> tuple[int | None, bool]:
    """Where a sync starts reading, and whether finishing it makes the archive complete.

    Returns ``(from, claims)``: ``from`` is None for the whole history. ``claims`` is
    True when everything before ``from`` is already archived (the cursor is at or after
    it, or there is nothing before it), so the walk may move the cursor; a ``--since``
    after the cursor leaves a gap behind it, and then the cursor stays where it is.
    Each start is one second early: Last.fm documents ``from`` as "after", measured
    servers include it; dedup absorbs the overlap either way.
    """
    if since is not None:
        start = max(0, since - 1)
        return (start or None), start == 0 or (cursor is not None and start <= cursor)
    if full or cursor is None:
        return None, True
    back = DEFAULT_LOOKBACK if lookback is None else max(0, lookback)
    return max(0, cursor - back - 1) or None, True


class _Fetcher:
    """Runs calls on ``width`` daemon threads, so a few requests can be in flight.

    Daemon threads, because a Ctrl-C must not wait for requests in flight to time out;
    their results are only ever used in the order the walk asks for them.
    """

    def __init__(self, width: int) -> None:
        self._jobs: SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"lastfm-fetch-{i}",
                                          daemon=True) for i in range(max(1, width))]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((call, future))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the walk via the future
                future.set_exception(exc)

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


def _expected(page: int, result: RecentTracksPage, page_size: int) -> int:
    """How many dated items ``page`` must hold if the window has ``result.total``."""
    size = result.per_page or page_size
    if page < result.total_pages:
        return size
    return max(0, result.total - (result.total_pages - 1) * size)


def _mismatch(result: RecentTracksPage, page: int, total: int, pages: int, page_size: int,
              older_bound: int | None) -> str | None:
    """Why a page cannot be trusted as part of the first reply's snapshot, or None."""
    if result.total != total or result.total_pages != pages:
        return f"the window now holds {result.total} scrobbles, not {total}"
    if older_bound is not None and result.records and \
            min(r.listened_at for r in result.records) < older_bound:
        return f"page {page} overlaps the older page read before it"
    if len(result.records) != _expected(page, result, page_size):
        return "size"
    return None


def _changed_meanwhile(pending: deque[tuple[int, Future[RecentTracksPage] | None]],
                       total: int, pages: int) -> str | None:
    """Whether a reply that has already arrived for a page not checked yet shows the
    window changed. Pages are read side by side, in any order, so that change may have
    come before the page being checked was read: a deletion and a back-dated scrobble
    can leave its own reply's total as it was while its border item slid onto a page
    read before it. So no page after such a reply is trusted."""
    for _, future in pending:
        if future is not None and future.done() and not future.cancelled() \
                and future.exception() is None:
            seen = future.result()
            if seen.total != total or seen.total_pages != pages:
                return f"the window now holds {seen.total} scrobbles, not {total}"
    return None


def walk(fetch: Callable[[int, int | None], RecentTracksPage], start: int | None, to: int, *,
         page_size: int = PAGE_SIZE, width: int = CONCURRENCY, group: int = GROUP,
         on_round: Callable[[int], None] | None = None,
         log: Callable[[str], None] | None = None
         ) -> Generator[tuple[list[Any], int, int], None, None]:
    """The window ``[start, to)`` oldest page first, as ``(records, bound, pages)``.

    ``fetch(page, start)`` reads one page. Each ``bound`` is a time below which every
    scrobble of the window has been yielded (the last one is ``to``), provided the
    caller commits what it gets before asking for more. Up to ``width`` requests are in
    flight; pages are checked and yielded strictly in order, and consecutive pages that
    have already arrived come out together (``pages`` of them, up to ``group`` records)
    so that one commit covers them. When a reply shows the window changed (see the
    module docstring), or a page comes back empty when it should hold scrobbles, the walk
    starts again one second before the last bound it yielded (``from`` is exclusive as
    documented, so the rest of that second is read again); ``on_round(pages)`` announces
    each (re)start with its page count. After more than ``MAX_STALLS`` restarts in a row that
    do not move the start forward it gives up with a ServiceError (exit 4).
    """
    fetcher = _Fetcher(width) if width > 1 else None
    # pages asked for ahead: enough to fill a group when the network outruns the disk
    # (at the rate limit they arrive one by one and each is committed on its own)
    depth = max(2 * width, -(-group // page_size)) if fetcher else 1
    stalls = 0
    # the highest bound yielded: a round that starts below it (a second early, see below)
    # may end a page lower, and the cursor must never move back
    claimed = 0
    try:
        while True:
            first = fetch(1, start)
            total, pages = first.total, first.total_pages
            if on_round:
                on_round(max(pages, 1))
            if pages <= 1:
                yield first.records, to, 1
                return
            if log:
                log(f"lastfm: {total:,} scrobbles in {pages:,} pages to read, oldest first")
            pending: deque[tuple[int, Future[RecentTracksPage] | None]] = deque()
            queued = pages  # the next page to ask for, counting down to 2
            older: int | None = None  # the bound of the last page checked in this round
            given: int | None = None  # the bound of the last page yielded in this round
            batch: list[Any] = []
            batched = 0
            drift: str | None = None
            try:
                for page in range(pages, 0, -1):
                    if page == 1:
                        result = first
                    else:
                        while queued >= 2 and len(pending) < depth:
                            pending.append((queued, fetcher.submit(partial(fetch, queued, start))
                                            if fetcher else None))
                            queued -= 1
                        number, future = pending.popleft()
                        assert number == page
                        result = future.result() if future else fetch(page, start)
                    drift = _mismatch(result, page, total, pages, page_size, older)
                    for _ in range(2):  # a page of the wrong size, total unchanged: ask again
                        if drift != "size":
                            break
                        result = fetch(page, start)
                        drift = _mismatch(result, page, total, pages, page_size, older)
                    if drift == "size" and not result.records:
                        # nothing to take and no bound to move to: read again from the last
                        # one, like a change of the window (a stall if it keeps happening)
                        drift = f"page {page} of {pages} came back empty"
                    elif drift == "size":  # Last.fm keeps sending it so: take it as it is
                        if log:
                            log(f"lastfm: page {page} keeps an unexpected number of items")
                        drift = None
                    if not drift:
                        drift = _changed_meanwhile(pending, total, pages)
                    if drift:
                        break
                    batch.extend(result.records)
                    batched += 1
                    # (the bound after the records: whenever Ctrl-C lands, it is never
                    # ahead of what the batch holds, and a batch is never yielded twice)
                    older = to if page == 1 else max(r.listened_at for r in result.records)
                    arrived = page == 2 or bool(pending and pending[0][1] and pending[0][1].done())
                    if page == 1 or not arrived or len(batch) >= group:
                        claimed = given = max(claimed, older)
                        out, n, batch, batched = batch, batched, [], 0
                        yield out, claimed, n
            except (ScrobError, KeyboardInterrupt):
                # a page failing after its retries, or Ctrl-C: the pages checked
                # before it are still good, and a re-run need not read them again
                for _, future in pending:
                    if future:
                        future.cancel()
                if batch and older is not None:
                    out, batch = batch, []
                    yield out, max(claimed, older), batched
                raise
            if batch and older is not None:  # checked pages before a change: still good
                claimed = max(claimed, older)
                yield batch, claimed, batched
                given = claimed
            for _, future in pending:
                if future:
                    future.cancel()
            if not drift:
                return
            # Scrobbles in the very second of ``given`` may sit on the next, unread page,
            # and Last.fm documents ``from`` as "after": start a second before it (dedup
            # absorbs the overlap where a server includes ``from``).
            restart = start if given is None else max(0, given - 1) or None
            if (restart or 0) <= (start or 0):  # no step forward: a stall
                stalls += 1
                if stalls > MAX_STALLS:
                    if drift.endswith("came back empty"):
                        raise ServiceError(
                            f"Last.fm kept sending an empty page of scrobbles ({drift})",
                            service=SERVICE,
                            hint="run the sync again later; what was read is kept")
                    raise ServiceUnavailable(
                        "Last.fm's history kept changing while it was read",
                        service=SERVICE, hint="run the sync again; nothing was lost")
            else:
                stalls = 0
            start = restart
            if log:
                log(f"lastfm: {drift}; reading again from {start or 0}")
    finally:
        if fetcher:
            fetcher.close()


def _interruptible(stop: threading.Event) -> Callable[[float], None]:
    """SLEEP, but ending at once (raising) when the sync is over, for the fetch threads."""

    def sleep(seconds: float) -> None:
        if stop.is_set():
            raise _Cancelled
        if SLEEP is time.sleep:
            stop.wait(seconds)
        else:
            SLEEP(seconds)
        if stop.is_set():
            raise _Cancelled

    return sleep


def sync(archive: Archive, config: ServiceConfig, options: SyncOptions) -> SyncReport:
    """Pull one user's scrobbles of the window (``window()``) into the archive.

    Each page is committed with its bound as the cursor (only when the window leaves no
    gap behind it); the cursor ends at the moment the sync started less ``SUBMIT_DELAY``
    (plays still reaching Last.fm then), and only once every
    page before it is in. Raises UnknownUser (exit 2) for an unknown user, AuthRejected
    (exit 3) for a rejected key or a private profile without its session key, and
    ServiceUnavailable (exit 4) when Last.fm keeps failing after the retries.
    """
    user = _user(config)
    account = account_for(user)
    report = SyncReport(service=SERVICE, user=account.name)
    to = int(NOW())
    start, claims = window(archive.get_cursor(account), full=options.full,
                           since=options.since, lookback=options.lookback)
    log = options.log
    if log:
        log(f"lastfm {account.name}: reading [{start or 0}, {to}) "
            + ("" if claims else "(leaves a gap before it: the cursor stays)"))
    stop = threading.Event()
    client = connect(config, sleep=_interruptible(stop), log=log)
    done = [0, 0]  # pages committed, pages of earlier rounds

    def fetch(page: int, lo: int | None) -> RecentTracksPage:
        return client.recent_tracks(user, page=page, from_ts=lo, to_ts=to, limit=PAGE_SIZE)

    def on_round(pages: int) -> None:
        done[1] = done[0]
        saver.expect(pages * PAGE_SIZE)  # (bound below, before the walk starts)
        if options.on_progress:
            options.on_progress(Progress(done[0], done[1] + pages, report.fetched))

    pages = walk(fetch, start, to, page_size=PAGE_SIZE, width=CONCURRENCY, group=GROUP,
                 on_round=on_round, log=log)
    try:
        with keeping_partial(report), archive.saver(report.tally, log=log) as saver:
            for records, bound, n in pages:
                # (complete up to the start less the plays still reaching Last.fm)
                saver.save(account, records,
                           cursor=min(bound, to - SUBMIT_DELAY) if claims else None)
                report.fetched += len(records)
                done[0] += n
                if options.on_progress:
                    options.on_progress(Progress(done[0], None, report.fetched))
    finally:
        stop.set()
        pages.close()
        report.requests = client.http.requests
        _close(client)
    report.complete = True
    report.cursor = archive.get_cursor(account)
    return report


# --- export -------------------------------------------------------------------------------


def assign_timestamps(listens: list[Listen], taken: set[int], *, max_nudge: int = MAX_NUDGE
                      ) -> tuple[list[tuple[Listen, int]], list[Listen]]:
    """The timestamp each listen is sent with, and the listens left without one.

    Last.fm keeps one scrobble per second of a user's history and silently drops a
    repeat while reporting it accepted (B9), so no two plays may share a second, nor
    take one Last.fm already holds (``taken``, updated here). A play whose second is
    taken moves to the next free one, at most ``max_nudge`` seconds later: well inside
    the archive's matching tolerance, so the scrobble read back joins the same listen.
    """
    planned: list[tuple[Listen, int]] = []
    homeless: list[Listen] = []
    for listen in listens:
        ts = listen.listened_at
        while ts in taken and ts - listen.listened_at < max_nudge:
            ts += 1
        if ts in taken:
            homeless.append(listen)
            continue
        taken.add(ts)
        planned.append((listen, ts))
    return planned, homeless


def _seconds_held(archive: Archive, account: Account, *, since: int) -> set[int]:
    """The seconds Last.fm holds for ``account`` after ``since``, as far as the archive
    knows: its own records, and the listens scrob pushed there (not read back yet), at
    the seconds the same assignment gave them when they were sent."""
    taken = archive.source_times(account, since=since)
    waiting = {listen.id for listen in archive.missing_for(account, since=since)}
    pushed = [listen for listen in archive.missing_for(account, since=since,
                                                       include_pushed=True)
              if listen.id not in waiting]
    assign_timestamps(pushed, taken)
    return taken


def export(archive: Archive, config: ServiceConfig, options: ExportOptions) -> ExportReport:
    """Scrobble to ``config.user`` the archived listens that account lacks.

    Candidates come from ``Archive.missing_for``; those older than 14 days are only
    counted (``too_old``). Accepted scrobbles are recorded as pushes after each reply,
    so a re-run sends nothing twice; ignored ones are counted by reason; on the daily
    cap (code 5) it stops and reports ``remaining`` for a later run.
    """
    account = account_for(_user(config))
    report = ExportReport(target=account.source)
    with keeping_partial(report):  # what was sent before a failure stays recorded
        return _export(archive, config, options, account, report)


def _export(archive: Archive, config: ServiceConfig, options: ExportOptions,
            account: Account, report: ExportReport) -> ExportReport:
    oldest = int(NOW()) - MAX_AGE
    newest = int(NOW()) + MAX_FUTURE
    fresh: list[Listen] = []
    for listen in archive.missing_for(account, since=options.since, until=options.until,
                                      source=options.source, foreign=options.foreign):
        report.candidates += 1
        if listen.listened_at < oldest:
            report.too_old += 1
        elif listen.listened_at > newest:
            report.reject(_IGNORED[4])
        elif options.holds(archive, listen):
            report.held_back += 1  # the account may have gained it since its sync
        else:
            fresh.append(listen)
    report.already_there = archive.count_present(account, since=options.since,
                                                 until=options.until, source=options.source)
    taken = _seconds_held(archive, account, since=oldest)
    planned, homeless = assign_timestamps(fresh, taken)
    if homeless:
        report.reject("no free second near its timestamp", len(homeless))
    moved = sum(1 for listen, ts in planned if ts != listen.listened_at)
    if moved and options.log:
        options.log(f"lastfm: {moved} of the plays share a second with another play; "
                    "each is sent with the next free second")
    if options.dry_run:
        for listen, ts in planned:
            if options.on_item:
                options.on_item({"listened_at": ts, "artist": listen.artist,
                                 "track": listen.track, "album": listen.album})
        report.submitted = len(planned)
        return report
    if not planned:
        return report
    if not config.api_secret or not config.session_key:
        raise CredentialsError("scrobbling to Last.fm needs the API secret and a session key",
                               hint=_ENV_HINT)
    client = connect(config, log=options.log)
    try:
        _push(archive, client, account, planned, report, options)
    finally:
        report.requests = client.http.requests
        _close(client)
    return report


def _push(archive: Archive, client: LastfmClient, account: Account,
          planned: list[tuple[Listen, int]], report: ExportReport,
          options: ExportOptions) -> None:
    owner = client.session_user()  # whose account the session key scrobbles to
    if owner.casefold() != account.name:
        raise CredentialsError(
            f"the Last.fm session key belongs to {owner!r}, not {account.name!r}",
            hint="export to the account you authorized, or run `scrob auth lastfm` as it")
    for i in range(0, len(planned), MAX_SCROBBLES_PER_REQUEST):
        batch = planned[i:i + MAX_SCROBBLES_PER_REQUEST]
        records = [dataclasses.replace(listen.to_record(), listened_at=ts)
                   for listen, ts in batch]
        results = client.scrobble(records)
        if len(results) != len(batch):
            raise ServiceError(f"Last.fm answered {len(results)} results for "
                               f"{len(batch)} scrobbles", service=SERVICE)
        accepted = [listen.id for (listen, _), result in zip(batch, results) if result.accepted]
        archive.record_pushes(account, accepted)
        report.submitted += len(accepted)
        capped = 0
        for result in results:
            if result.code == 5:
                capped += 1
            elif not result.accepted:
                report.reject(_IGNORED.get(result.code, f"ignored (code {result.code})"))
        if options.on_progress:
            options.on_progress(Progress(i + len(batch), len(planned), report.submitted))
        if capped:
            report.remaining = capped + len(planned) - i - len(batch)
            if options.log:
                options.log(f"lastfm: daily scrobble limit reached; {report.remaining} left "
                            "for a later run")
            return
