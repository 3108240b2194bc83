"""ListenBrainz engine: the tie-safe forward walk for sync, the rules for export.

Sync walks a user's listens oldest first with both ``min_ts`` and ``max_ts`` (one fixed
pass on the server, none of the window-growth skips of api-notes A5.2) and ``count``
1000. Both bounds are strict, so after a full page the next request starts one second
before the page's newest listen: every listen of that second arrives again and dedup
absorbs the overlap. Each page is committed with the last second known complete as the
cursor (pages that arrive within half a second of each other share a commit), so a sync
killed at any instant resumes with no gap and no duplicate. A walk that reaches the end
leaves the cursor at the moment the sync started less the plays still on their way then
(``sync.SUBMIT_DELAY``; cli.md: complete up to there), which is what export needs to know
which listens the account may have gained since.

Export sends what the archive says the account lacks, checked locally first so one bad
listen never sinks a batch, in ``import`` batches of at most 1000 listens and the byte
limits, recording each push only once the server accepted its batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..archive import Archive
from ..errors import (
    AuthRejected,
    CredentialsError,
    ScrobError,
    ServiceError,
    ServiceUnavailable,
    keeping_partial,
)
from ..models import (
    Account,
    ExportReport,
    Listen,
    Page,
    Progress,
    ServiceConfig,
    SourceRecord,
    SyncReport,
)
from ..services.http import Http, canonical_bytes, loads, make_client
from ..services.listenbrainz import (
    DEFAULT_API_ROOT,
    LISTENED_AT_ALLOWED_SKEW,
    MAX_ITEMS_PER_GET,
    MAX_LISTEN_PAYLOAD_SIZE,
    MAX_LISTENS_PER_REQUEST,
    ListenBrainzClient,
    ListensPage,
    SubmissionRejected,
    batches,
    listen_payload,
    validate_listen,
)
from ..sync import SUBMIT_DELAY

if TYPE_CHECKING:
    import httpx

    from ..export import ExportOptions
    from ..sync import SyncOptions

__all__ = [
    "DEFAULT_LOOKBACK",
    "FIRST_MIN_TS",
    "account_for",
    "check",
    "connect",
    "export",
    "sync",
    "walk",
]

SERVICE = "listenbrainz"
TOKEN_HINT = ("run `scrob auth listenbrainz`, or set SCROB_LISTENBRAINZ_USER and "
              "SCROB_LISTENBRAINZ_TOKEN")

#: The clock a sync's cursor and export's time checks read (tests set it).
NOW: Callable[[], float] = time.time
#: How far before the cursor a delta sync reads again for back-dated listens.
DEFAULT_LOOKBACK = 14 * 86400
#: ``max_ts`` is fixed at sync start plus this: the server accepts listens up to an hour
#: in the future, and the two clocks may disagree by a few minutes.
FUTURE_ALLOWANCE = LISTENED_AT_ALLOWED_SKEW + 300
#: The start of a full walk. ``min_ts=0`` means "no bound" to the server, which would
#: turn the walk into a newest-first search, so the beginning of time is second 1.
FIRST_MIN_TS = 1
#: After this many listens in a row rejected one by one with no success, the server is
#: refusing everything (not one bad listen): stop instead of bisecting every batch.
MAX_REJECTED_IN_A_ROW = 50
#: Candidates are read from the archive in chunks, so the export's memory stays flat and
#: no read is open while pushes are written.
CANDIDATE_CHUNK = 5000

#: Export batches: at most this many listens and body bytes (the server's limits; the
#: per-listen average rule is always applied by ``batches``).
BATCH_LISTENS = MAX_LISTENS_PER_REQUEST
BATCH_BYTES = MAX_LISTEN_PAYLOAD_SIZE
#: Import requests on the wire at once: the server checks one while the next travels.
IN_FLIGHT = 2
#: Seconds a failed request waits before its first retry (doubling, with jitter).
RETRY_BACKOFF = 1.0

#: Pages that arrive within this many seconds of each other share one commit...
GROUP_SECONDS = 0.5
#: ...up to this many (see ``_groups``).
GROUP_PAGES = 4

Log = Callable[[str], None]


def connect(
    config: ServiceConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Log | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ListenBrainzClient:
    """A client for ``config``'s server, through the shared HTTP layer (retries, pacing,
    redacted log); ``sleep``/``clock``/``transport`` are seams for tests."""
    http = Http(make_client(transport=transport), service=SERVICE, rate=config.rate,
                backoff=RETRY_BACKOFF, sleep=sleep, clock=clock, log=log)
    return ListenBrainzClient(http, api_root=config.api_url or DEFAULT_API_ROOT,
                              token=config.token)


def account_for(user: str) -> Account:
    """The archive account of a ListenBrainz user. The server matches user names with
    SQL ``LOWER()``, so ``--user Alice`` and ``alice`` are one account with one cursor."""
    return Account(SERVICE, user.lower())


def _close(client: ListenBrainzClient) -> None:
    client.http.client.close()


# --------------------------------------------------------------------------- sync


def walk(
    client: ListenBrainzClient,
    user: str,
    min_ts: int,
    max_ts: int,
    *,
    count: int = MAX_ITEMS_PER_GET,
    log: Log | None = None,
    on_reply: Callable[[ListensPage], None] | None = None,
) -> Iterator[tuple[Page, int]]:
    """Every listen of ``user`` in ``(min_ts, max_ts)``, as pages oldest first.

    Yields ``(page, fetched)``: ``page.cursor`` is the last second every listen of which
    (as far as the server can return them) is on this page or an earlier one, so it is
    safe to commit with the page; ``fetched`` counts the listens the server sent,
    including unusable ones that were skipped. The last page (a short one, or an empty
    one with no records) has ``max_ts - 1``: the server had nothing more below it.

    The server returns the oldest ``count`` listens inside the strict bounds. After a
    full page the listens of its newest second may be cut off, so the next request
    starts one second before it and dedup absorbs the repeats. When a whole full page
    is one second (more than ``count`` listens share it), stepping back would ask the
    same question again: that second is then read from both ends (ascending, and
    descending with ``max_ts`` = second + 1) and the walk moves past it. At most
    ``2 × count`` distinct listens of one second can be read that way; if a second
    looks fuller than that, a warning goes to ``log``. ``on_reply`` sees every reply
    (what it says of the user's whole history).

    Every request either ends the walk or moves ``min_ts`` forward, so it always ends; a
    server that answers with listens outside the bounds (ignoring them) is an error,
    before its page can move the cursor.
    """
    size = count  # the server's page size; lowered if a server turns out to cap lower
    while min_ts < max_ts - 1:
        page = client.listens(user, min_ts=min_ts, max_ts=max_ts, count=count)
        if on_reply:
            on_reply(page)
        if log:
            for reason in page.skipped:
                log(f"skipped a listen ListenBrainz sent: {reason}")
        newest = page.newest_ts
        if page.count <= 0:
            yield Page([], cursor=max_ts - 1), 0
            return
        if newest is None:  # listens with no time at all: nothing can be claimed
            return
        if page.oldest_ts is not None and (page.oldest_ts < min_ts or newest > max_ts):
            # (a listen at a bound itself is let through: a server with inclusive bounds
            # only repeats what the archive has)
            raise ServiceError(
                f"the server sent listens outside the time range asked for ({min_ts} to "
                f"{max_ts}); it does not follow the ListenBrainz API, and reading it could "
                "miss listens or move the cursor past them", service=SERVICE,
                hint="check SCROB_LISTENBRAINZ_API_URL, or report it to the server's authors")
        full = page.count >= size
        if (not full and size == count and newest < page.latest_listen_ts < max_ts):
            # The user has newer listens than this short page shows: this server pages
            # by fewer than ``count``. Treat that as its full page from now on.
            size = page.count
            full = True
            if log:
                log(f"the server returns at most {size} listens a request")
        if not full:
            yield Page(page.records, cursor=max_ts - 1), page.count
            return
        if newest - 1 > min_ts:
            yield Page(page.records, cursor=newest - 1), page.count
            min_ts = newest - 1
            continue
        # All of this full page is one second: read it from the other end as well.
        second = newest
        tail = client.listens(user, max_ts=second + 1, count=count)
        known = {_as_compared(r) for r in page.records}
        extra = [r for r in tail.records
                 if r.listened_at == second and _as_compared(r) not in known]
        from_tail = sum(1 for r in tail.records if r.listened_at == second)
        if log and from_tail >= size and len(extra) == from_tail:
            # the two ends did not meet: the second may hold more than both reads
            log(f"warning: at least {page.count + len(extra)} listens share the second "
                f"{second}; ListenBrainz returns at most {size} a request, so some of that "
                f"second may be missing")
        yield Page(page.records + extra, cursor=second), page.count + tail.count
        min_ts = second


def _as_compared(record: SourceRecord) -> bytes:
    """A listen's raw record in one spelling: a reply msgspec reads keeps the server's
    bytes, one it refuses (a NaN somewhere on the page) is read as plain JSON and keeps
    canonical JSON, and the same listen must compare equal either way."""
    return canonical_bytes(loads(record.raw or b"null"))


def _groups(pages: Iterator[tuple[Page, int]], clock: Callable[[], float] = time.monotonic
            ) -> Iterator[list[tuple[Page, int]]]:
    """Consecutive pages to commit together: those that arrive within ``GROUP_SECONDS``
    of the group's first, at most ``GROUP_PAGES``.

    Every commit rewrites the name tables' pages that its listens touch, so on a fast
    (local) server one transaction per 1000 listens costs a fifth of a sync; grouping
    pages that arrive within half a second keeps that low, while on a paced server
    (ListenBrainz allows about 3 requests a second) each page is still committed as soon
    as it and at most one more page have arrived. Each group is saved with the cursor of
    its last page, so correctness is the same as page by page. When the walk fails or
    is interrupted, the pages that arrived before are handed on first (then the error):
    a re-run need not fetch them again.
    """
    group: list[tuple[Page, int]] = []
    started = 0.0
    try:
        for item in pages:
            if not group:
                started = clock()
            group.append(item)
            if len(group) >= GROUP_PAGES or clock() - started >= GROUP_SECONDS:
                out, group = group, []  # (before the yield: never handed on twice)
                yield out
    except (ScrobError, KeyboardInterrupt):
        if group:
            out, group = group, []
            yield out
        raise
    if group:
        yield group


def _start(options: SyncOptions, prior: int | None) -> tuple[int, bool]:
    """Where the walk starts (an exclusive ``min_ts``) and whether the cursor may move.

    The cursor means "complete up to here", so it only moves when the walk joins the
    range already known complete: a full walk, or a start at or before the cursor. A
    ``--since`` later than the cursor leaves a gap, so that walk saves no cursor.
    """
    if options.since is not None:
        start = max(FIRST_MIN_TS, int(options.since) - 1)
        # (a --since before the first possible listen is a whole walk)
        return start, start == FIRST_MIN_TS or prior is not None and start <= prior
    if options.full or prior is None:
        return FIRST_MIN_TS, True
    lookback = DEFAULT_LOOKBACK if options.lookback is None else max(0, int(options.lookback))
    # minus one more: the cursor's own second is read again too, for late listens in it
    return max(FIRST_MIN_TS, prior - lookback - 1), True


def sync(archive: Archive, config: ServiceConfig, options: SyncOptions) -> SyncReport:
    """Pull ``config.user``'s listens into the archive, one committed page at a time.

    Starts at the cursor minus the lookback (default 14 days), at the beginning with
    ``full`` or on a first sync, or at ``since``; and reads the whole history again when
    the user's oldest listen moved back since the last sync (older history imported).
    No token is needed: listens are public, so any user's can be read.
    """
    check(config)
    assert config.user is not None
    account = account_for(config.user)
    report = SyncReport(service=SERVICE, user=account.name)
    started = int(NOW())
    prior = archive.get_cursor(account)
    known = archive.note(_OLDEST + account.source)
    if prior is not None and known is None and options.since is None:
        # A cursor with no oldest listen noted beside it (an archive of a build that
        # noted it only once a walk was done): whether older history came in since is
        # unknowable, so read it all once.
        prior = None
    start, contiguous = _start(options, prior)
    client = connect(config, log=options.log)
    try:
        with keeping_partial(report):
            oldest = _walk_into(archive, client, account, config.user, start, contiguous,
                                started, report, options,
                                note_oldest=known is None and start == FIRST_MIN_TS)
            known = archive.note(_OLDEST + account.source)
            if (contiguous and start > FIRST_MIN_TS and isinstance(known, int)
                    and 0 < oldest < known and oldest <= start):
                # Listens older than the oldest one the account had: an import of older
                # history since the last sync, which no lookback reaches. The account
                # is complete only up to before them now, so read it all again (saying
                # so first, in one commit: a run stopped part-way goes on from there).
                if options.log:
                    options.log(f"{account.source} now has listens from before any it had "
                                f"(an import?): reading its whole history again")
                archive.rewind_cursor(account, oldest - 1,
                                      note=(_OLDEST + account.source, oldest))
                _walk_into(archive, client, account, config.user, oldest - 1, True, started,
                           report, options, whole=True)
            elif contiguous and (oldest or started) != known and (
                    known is not None or start == FIRST_MIN_TS):
                # (an empty account: any listen from before this sync will be older; and
                # only a whole walk tells the oldest of an account with none noted)
                archive.set_note(_OLDEST + account.source, oldest or started)
            report.complete = True
    finally:
        report.requests = client.http.requests
        _close(client)
    report.cursor = archive.get_cursor(account)
    return report


#: ``meta`` key (before the account) of the oldest listen the account had at its last
#: complete sync, as the server reported it (the sync's start when it had none)
_OLDEST = "listenbrainz_oldest:"


def _walk_into(archive: Archive, client: ListenBrainzClient, account: Account, user: str,
               start: int, contiguous: bool, started: int, report: SyncReport,
               options: SyncOptions, *, whole: bool = False, note_oldest: bool = False
               ) -> int:
    """Walk ``user``'s listens from ``start`` into the archive, page groups committed
    with their cursor when the walk is ``contiguous`` (up to ``started`` less
    ``SUBMIT_DELAY``: a play started later may still be on its way); the listen count is
    the progress total of a walk of the ``whole`` history. Returns the user's oldest
    listen as the server reported it (0 when it did not say).

    ``note_oldest``: a walk of the whole history, for an account with no oldest listen
    noted yet: the first reply's is noted before a page is committed, so that a run
    stopped part-way still tells the next one which listens are older than any it had."""
    oldest: list[int] = []

    def on_reply(reply: ListensPage) -> None:
        if note_oldest and not oldest:  # (before anything is saved)
            archive.set_note(_OLDEST + account.source, reply.oldest_listen_ts or started)
        oldest.append(reply.oldest_listen_ts)

    total = _total(client, user, options.log) if whole or start == FIRST_MIN_TS else None
    if options.on_progress:
        options.on_progress(Progress(report.fetched, total, report.fetched))
    with archive.saver(report.tally, log=options.log) as saver:
        if total is not None:
            saver.expect(total)
        pages = walk(client, user, start, started + FUTURE_ALLOWANCE, log=options.log,
                     on_reply=on_reply)
        for group in _groups(pages):
            records = [r for page, _ in group for r in page.records]
            last = group[-1][0].cursor  # pages come in time order: the last one's holds
            saver.save(account, records, cursor=min(last, started - SUBMIT_DELAY)
                       if contiguous and last is not None else None)
            report.fetched += sum(fetched for _, fetched in group)
            if options.on_progress:
                options.on_progress(Progress(
                    report.fetched, None if total is None else max(total, report.fetched),
                    report.fetched))
    return min((ts for ts in oldest if ts > 0), default=0)


def check(config: ServiceConfig) -> None:
    """What a sync needs before anything is opened or sent: an account (no token:
    listens are public). CredentialsError, exit 3."""
    if not config.user:
        raise CredentialsError("no ListenBrainz account is configured", hint=TOKEN_HINT)


def _total(client: ListenBrainzClient, user: str, log: Log | None) -> int | None:
    """The user's listen count, for a progress total; None if the server has no answer
    (a compatible server without the endpoint must not stop the sync). A server that
    cannot be reached at all stops it: the listens would only be retried again."""
    try:
        return client.listen_count(user)
    except AuthRejected:
        raise
    except ServiceError as exc:
        if isinstance(exc, ServiceUnavailable) and exc.status is None:  # no answer at all
            raise
        if log:
            log(f"no listen count for a progress total: {exc}")
        return None


# --------------------------------------------------------------------------- export


def _candidates(archive: Archive, target: Account, options: ExportOptions) -> Iterator[Listen]:
    """``missing_for`` in chunks, oldest first, with no archive read open between chunks
    (pushes are written while the export runs). Listens already yielded at a chunk's
    last second are remembered, since the next chunk starts at that second again."""
    since = options.since
    boundary: int | None = None
    boundary_ids: set[int] = set()
    while True:
        rows: list[Listen] = []
        found = archive.missing_for(target, since=since, until=options.until,
                                    source=options.source, foreign=options.foreign)
        try:
            for listen in found:
                if listen.listened_at == boundary and listen.id in boundary_ids:
                    continue
                rows.append(listen)
                if len(rows) >= CANDIDATE_CHUNK:
                    break
        finally:
            found.close()  # type: ignore[attr-defined]
        yield from rows
        if len(rows) < CANDIDATE_CHUNK:
            return
        last = rows[-1].listened_at
        if last != boundary:
            boundary, boundary_ids = last, set()
        boundary_ids.update(r.id for r in rows if r.listened_at == last)
        since = last


def _item(listen: Listen, payload: dict[str, Any]) -> dict[str, Any]:
    """What ``--dry-run`` shows for one listen: the names, and the exact payload."""
    return {"listened_at": listen.listened_at, "artist": listen.artist,
            "track": listen.track, "album": listen.album, "payload": payload}


class _Background:
    """One call run in a daemon thread; ``result()`` waits for it and re-raises.

    A daemon thread, not an executor: Ctrl-C must not wait for a request in flight
    (a batch sent but not recorded is sent again next time, and the server drops the
    exact repeat)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args),
                                        name="scrob-submit", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._error = exc

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Sender:
    """Submits batches, records accepted pushes, and splits a batch the server refused.

    A 400 means nothing of that request was stored. When the server names the listen
    it blamed, that listen is set aside and the rest is sent again; otherwise the
    batch is halved until the bad listen stands alone and is counted as rejected with
    the server's reason.
    """

    def __init__(self, archive: Archive, target: Account, client: ListenBrainzClient,
                 report: ExportReport, log: Log | None) -> None:
        self.archive = archive
        self.target = target
        self.client = client
        self.report = report
        self.log = log
        self.rejected_in_a_row = 0

        self._inflight: deque[tuple[list[tuple[int, dict[str, Any]]], _Background]] = deque()

    def start(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        """Send a batch in the background, once fewer than ``IN_FLIGHT`` are on the wire.

        The next batch is read from the archive, built and checked while these are
        sent, and the server works on one while the next travels; pushes are still
        recorded (here, in the archive's thread) only once the server has accepted
        them, and batches are settled in the order they were sent.
        """
        while len(self._inflight) >= IN_FLIGHT:
            self._settle_oldest()
        self._inflight.append((items, _Background(self.client.submit_import,
                                                  [p for _, p in items])))

    def finish(self) -> None:
        """Wait for every batch in flight; record each, or split it if it was refused."""
        while self._inflight:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        items, job = self._inflight.popleft()
        try:
            job.result()
        except SubmissionRejected as exc:
            self._split(items, exc)
            return
        except ScrobError:
            self._settle_rest()
            raise
        self._accepted(items)

    def _settle_rest(self) -> None:
        """The export is failing: record what the server accepted of the batches still
        on the wire (a later batch may have got through), and drop the others."""
        while self._inflight:
            items, job = self._inflight.popleft()
            try:
                job.result()
            except ScrobError:
                continue
            self._accepted(items)

    def send(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        """Send a batch and settle it before returning."""
        try:
            self.client.submit_import([p for _, p in items])
        except SubmissionRejected as exc:
            self._split(items, exc)
            return
        self._accepted(items)

    def _accepted(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        self.archive.record_pushes(self.target, [i for i, _ in items])
        self.report.submitted += len(items)
        self.rejected_in_a_row = 0

    def _split(self, items: list[tuple[int, dict[str, Any]]], exc: SubmissionRejected) -> None:
        if self.log:
            self.log(f"ListenBrainz refused a batch of {len(items)}: {exc.reason}")
        if len(items) == 1:
            self._reject(exc.reason)
            return
        blamed = _blamed(items, exc)
        if blamed is not None:
            self._reject(exc.reason)
            rest = items[:blamed] + items[blamed + 1:]
            self.send(rest)
            return
        half = len(items) // 2
        self.send(items[:half])
        self.send(items[half:])

    def _reject(self, reason: str) -> None:
        self.report.reject(reason)
        self.rejected_in_a_row += 1
        if self.rejected_in_a_row >= MAX_REJECTED_IN_A_ROW:
            raise ServiceError(
                f"ListenBrainz refused {self.rejected_in_a_row} listens in a row, one by one "
                f"(last reason: {reason})", service=SERVICE,
                hint="the server refuses everything; check SCROB_LISTENBRAINZ_API_URL",
            )


def _blamed(items: list[tuple[int, dict[str, Any]]], exc: SubmissionRejected) -> int | None:
    """The index of the one listen the server's error names, or None if not exactly one.

    The server echoes the offending listen after its own stripping, so names compare
    stripped."""
    listen = exc.listen
    if not listen or exc.listened_at is None:
        return None
    meta = listen.get("track_metadata")
    if not isinstance(meta, dict):
        return None

    def names(m: Any) -> tuple[str, str]:
        return (str(m.get("artist_name", "")).strip(), str(m.get("track_name", "")).strip())

    want = names(meta)
    hits = [i for i, (_, p) in enumerate(items)
            if p["listened_at"] == exc.listened_at and names(p["track_metadata"]) == want]
    return hits[0] if len(hits) == 1 else None


def export(archive: Archive, config: ServiceConfig, options: ExportOptions) -> ExportReport:
    """Push to ``config.user`` what the archive says that account lacks.

    Candidates are listens with no record of the account and not pushed there before.
    Each is built with ``listen_payload`` (the same bytes on every run, so the server's
    own dedup holds) and checked with ``validate_listen``: invalid ones are counted as
    rejected with their reason and never sent. The token must belong to the target
    account (checked once, before the first batch). ``already_there`` counts the
    window's listens (of ``source``, if given) the account has or was sent before.
    """
    if not config.user:
        raise CredentialsError("no ListenBrainz account is configured", hint=TOKEN_HINT)
    target = account_for(config.user)
    report = ExportReport(target=target.source)
    with keeping_partial(report):  # what was sent before a failure stays recorded
        return _export(archive, config, options, target, report)


def _export(archive: Archive, config: ServiceConfig, options: ExportOptions,
            target: Account, report: ExportReport) -> ExportReport:
    report.already_there = archive.count_present(target, since=options.since,
                                                 until=options.until, source=options.source)
    now = int(NOW())
    client: ListenBrainzClient | None = None
    sender: _Sender | None = None
    ids: deque[int] = deque()
    listens: dict[int, Listen] = {}

    def payloads() -> Iterator[dict[str, Any]]:
        for listen in _candidates(archive, target, options):
            report.candidates += 1
            payload = listen_payload(listen.to_record())
            reason = validate_listen(payload, now)
            if reason is not None:
                report.reject(reason)
                if options.log:
                    options.log(f"not sending {listen.listened_at} {listen.artist!r} - "
                                f"{listen.track!r}: {reason}")
                continue
            if options.holds(archive, listen):
                report.held_back += 1  # the account may have gained it since its sync
                continue
            ids.append(listen.id)
            if options.dry_run:
                listens[listen.id] = listen
            yield payload

    try:
        for batch in batches(payloads(), BATCH_LISTENS, BATCH_BYTES):
            items = [(ids.popleft(), p) for p in batch]
            if options.dry_run:
                for listen_id, payload in items:
                    if options.on_item:
                        options.on_item(_item(listens.pop(listen_id), payload))
                report.submitted += len(items)
            else:
                if sender is None:
                    client = connect(config, log=options.log)
                    _check_owner(client, config.user or target.name)
                    sender = _Sender(archive, target, client, report, options.log)
                sender.start(items)
            if options.on_progress:
                options.on_progress(Progress(report.candidates, None, report.submitted))
        if sender is not None:
            sender.finish()
            if options.on_progress:
                options.on_progress(Progress(report.candidates, None, report.submitted))
    finally:
        if client is not None:
            report.requests = client.http.requests
            _close(client)
    return report


def _check_owner(client: ListenBrainzClient, user: str) -> None:
    """Listens go to the token's owner, whatever the URL says: make sure that is the
    account the archive will record the pushes for."""
    owner = client.validate_token()
    if owner.casefold() != user.casefold():
        raise CredentialsError(
            f"the ListenBrainz token belongs to {owner!r}, not to {user!r}",
            hint="export to the token's own account, or use that account's token",
        )
