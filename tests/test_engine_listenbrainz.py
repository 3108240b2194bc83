"""The ListenBrainz engine: the forward walk and its cursors, sync into an archive, and
the export rules (local validation, batching, bisection, idempotence).

The walk is tested against an in-memory stub with the server's paging semantics (strict
bounds, the oldest ``count`` inside the range, newest first, a page cap) so that ties
and odd page sizes can be set up exactly; sync and export run against the fake server
on a real loopback socket.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.archive.writer import Saver
from scrobbler_cli.engines import listenbrainz as engine
from scrobbler_cli.errors import CredentialsError, ServiceError, ServiceUnavailable
from scrobbler_cli.export import ExportOptions, export_listens
from scrobbler_cli.models import Account, ServiceConfig, SourceRecord, SyncReport
from scrobbler_cli.services.http import Http
from scrobbler_cli.services.listenbrainz import (
    MAX_LISTEN_SIZE,
    ListensPage,
    SubmissionRejected,
    canonical_json,
    import_body,
)
from scrobbler_cli.sync import SUBMIT_DELAY, SyncOptions
from tests.fakes.listenbrainz_server import FakeListenBrainz
from tests.helpers import FakeTime

TOKEN = "0d4e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a"
T0 = 1_600_000_000
DAY = 86400
LB = Account("listenbrainz", "alice")
IMPORT = Account("import", "history.jsonl")
MBID = "c7d0bf6e-b2aa-4ffa-bded-2448415b39b0"


# --------------------------------------------------------------------------- the walk


class StubServer:
    """``ListenBrainzClient.listens`` over a list, with the server's semantics.

    ``cap`` is the most listens a page holds (ListenBrainz: 1000; a compatible server
    may cap lower). Listens of one second keep their insertion order ascending and the
    reverse descending, as a database scan would.
    """

    def __init__(self, stamps: list[int], cap: int = 1000) -> None:
        order = sorted(range(len(stamps)), key=lambda i: (stamps[i], i))
        self.rows = [(stamps[i], i) for i in order]
        self.cap = cap
        self.calls: list[tuple[int | None, int | None, int]] = []

    def listens(self, user: str, *, min_ts: int | None = None, max_ts: int | None = None,
                count: int = 1000) -> ListensPage:
        self.calls.append((min_ts, max_ts, count))
        assert len(self.calls) < 10_000, "the walk does not end"
        n = min(count, self.cap)
        if min_ts:
            inside = [r for r in self.rows
                      if r[0] > min_ts and (max_ts is None or r[0] < max_ts)]
            chosen = inside[:n]
        else:
            inside = [r for r in self.rows if max_ts is None or r[0] < max_ts]
            chosen = list(reversed(inside))[:n][::-1]
        records = [SourceRecord(ts, "Artist", f"Track {i}", remote_id=None,
                                raw=canonical_json({"listened_at": ts, "id": i}))
                   for ts, i in reversed(chosen)]
        stamps = [ts for ts, _ in chosen]
        return ListensPage(
            records=records, count=len(chosen),
            newest_ts=max(stamps) if stamps else None,
            oldest_ts=min(stamps) if stamps else None,
            latest_listen_ts=self.rows[-1][0] if self.rows else 0,
            oldest_listen_ts=self.rows[0][0] if self.rows else 0,
        )


def run_walk(server: StubServer, count: int = 1000, start: int = 1,
             end: int = 2_000_000_000, log: list[str] | None = None
             ) -> tuple[list[int], list[tuple[set[int], int | None]]]:
    """The ids the walk delivered, and after each page (ids so far, cursor)."""
    seen: list[int] = []
    steps = []
    for page, fetched in engine.walk(server, "alice", start, end,  # type: ignore[arg-type]
                                     count=count, log=log.append if log is not None else None):
        assert fetched >= len(page.records)
        seen.extend(int(r.track.split()[1]) for r in page.records)
        steps.append((set(seen), page.cursor))
    return seen, steps


def assert_complete_and_safe(server: StubServer, seen: list[int],
                             steps: list[tuple[set[int], int | None]]) -> None:
    assert set(seen) == {i for _, i in server.rows}
    cursors = [c for _, c in steps]
    assert cursors == sorted(cursors)  # cursors only move forward
    for got, cursor in steps:  # a cursor never claims a listen not yet delivered
        assert cursor is not None
        assert {i for ts, i in server.rows if ts <= cursor} <= got


def test_walk_ties_across_a_page_boundary_all_arrive() -> None:
    # 998 listens a second apart, then 5 in one second: the first page ends inside it
    stamps = [T0 + i for i in range(998)] + [T0 + 2000] * 5 + [T0 + 3000]
    server = StubServer(stamps)
    seen, steps = run_walk(server)
    assert_complete_and_safe(server, seen, steps)
    # the second page starts one second before the first page's newest listen
    assert server.calls[1][0] == T0 + 2000 - 1


def test_walk_commits_a_cursor_one_second_before_a_full_pages_newest() -> None:
    server = StubServer([T0 + i for i in range(25)])
    _, steps = run_walk(server, count=10)
    # the last page is short: nothing more below the walk's upper bound
    assert [c for _, c in steps] == [T0 + 8, T0 + 17, 2_000_000_000 - 1]


@pytest.mark.parametrize("seed", range(30))
def test_walk_random_histories_with_many_ties(seed: int) -> None:
    rng = random.Random(seed)
    span = rng.choice([3, 10, 40, 500])
    stamps = [T0 + rng.randrange(span) for _ in range(rng.randrange(1, 120))]
    server = StubServer(stamps, cap=rng.choice([7, 10, 1000]))
    seen, steps = run_walk(server, count=10)
    if max(stamps.count(s) for s in set(stamps)) <= min(10, server.cap):
        assert_complete_and_safe(server, seen, steps)
    else:  # a second fuller than a page: still ends, and still nothing is skipped
        assert set(seen) <= {i for _, i in server.rows}


def test_walk_reads_a_second_fuller_than_a_page_from_both_ends() -> None:
    stamps = [T0] * 3 + [T0 + 5] * 15 + [T0 + 9] * 2
    server = StubServer(stamps)
    seen, steps = run_walk(server, count=10)
    assert_complete_and_safe(server, seen, steps)
    # the stuck second was read ascending and then descending with max_ts = second + 1
    assert (None, T0 + 6, 10) in server.calls


def test_walk_knows_a_listen_read_from_both_ends_whatever_its_spelling() -> None:
    """A reply msgspec reads keeps each listen's bytes; one it refuses (a NaN somewhere)
    is read as plain JSON and keeps canonical JSON: the two reads of a crowded second
    may spell one listen two ways, and it must still arrive once."""

    class Respelling(StubServer):
        def listens(self, user: str, **kwargs: Any) -> ListensPage:
            page = super().listens(user, **kwargs)
            if kwargs.get("min_ts") is None:  # the read from the other end
                for r in page.records:
                    r.raw = json.dumps(json.loads(r.raw or ""), indent=1).encode()
            return page

    stamps = [T0] * 3 + [T0 + 5] * 15 + [T0 + 9] * 2
    server = Respelling(stamps)
    seen, steps = run_walk(server, count=10)
    assert_complete_and_safe(server, seen, steps)
    assert seen == run_walk(StubServer(stamps), count=10)[0]  # no listen twice more


def test_walk_ends_with_a_warning_when_a_second_holds_more_than_two_pages() -> None:
    stamps = [T0 + 5] * 25 + [T0 + 9]
    server = StubServer(stamps)
    log: list[str] = []
    seen, steps = run_walk(server, count=10, log=log)
    assert len(set(seen)) == 21  # 10 from each end of the second, and the last listen
    assert any("at least 20 listens share the second" in line for line in log)
    assert steps[-1][1] == 2_000_000_000 - 1
    assert len(server.calls) <= 5


def test_walk_with_a_server_that_pages_by_fewer_than_asked() -> None:
    stamps = [T0 + i // 2 for i in range(57)]
    server = StubServer(stamps, cap=6)
    log: list[str] = []
    seen, steps = run_walk(server, count=10, log=log)
    assert_complete_and_safe(server, seen, steps)
    assert any("at most 6 listens a request" in line for line in log)


def test_walk_of_an_empty_history_asks_once() -> None:
    server = StubServer([])
    # one page with no records, whose cursor says the whole range is empty
    assert run_walk(server) == ([], [(set(), 2_000_000_000 - 1)])
    assert len(server.calls) == 1


def test_walk_respects_both_bounds() -> None:
    server = StubServer([T0 + i for i in range(10)])
    seen, _ = run_walk(server, start=T0 + 2, end=T0 + 7)
    assert sorted(seen) == [3, 4, 5, 6]
    assert all(c[0] is not None and c[1] == T0 + 7 for c in server.calls)


class BoundlessServer(StubServer):
    """A "compatible" server that ignores ``min_ts`` and ``max_ts``: the newest page."""

    def listens(self, user: str, *, min_ts: int | None = None, max_ts: int | None = None,
                count: int = 1000) -> ListensPage:
        return super().listens(user, max_ts=None, count=count)


def test_walk_stops_at_a_server_that_ignores_the_bounds() -> None:
    server = BoundlessServer([T0 + i for i in range(30)], cap=10)
    with pytest.raises(ServiceError, match="outside the time range"):
        run_walk(server, count=10, start=T0 - 1, end=T0 + 100)
    assert len(server.calls) <= 2  # not forever


def test_a_listen_beyond_the_upper_bound_never_moves_the_cursor() -> None:
    server = BoundlessServer([T0, T0 + 1, T0 + 10 * 365 * DAY])  # one far in the future
    steps: list[Any] = []
    with pytest.raises(ServiceError, match="outside the time range"):
        for page, _ in engine.walk(server, "alice", T0 - 1, T0 + DAY):  # type: ignore[arg-type]
            steps.append(page.cursor)
    assert steps == []


# --------------------------------------------------------------------------- sync


@pytest.fixture
def fake() -> Iterator[FakeListenBrainz]:
    with FakeListenBrainz("/apis/listenbrainz") as server:
        server.add_user("alice", TOKEN)
        yield server


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries in these tests never sleep for real."""
    real = engine.connect

    def connect(config: ServiceConfig, **kwargs: Any) -> Any:
        kwargs.setdefault("sleep", lambda seconds: None)
        return real(config, **kwargs)

    monkeypatch.setattr(engine, "connect", connect)


#: the sync tests' "now": a complete sync leaves the cursor there
CLOCK = T0 + 400 * DAY


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(engine, "NOW", lambda: CLOCK)
    return CLOCK


@pytest.fixture
def archive() -> Iterator[Archive]:
    with Archive(":memory:") as db:
        yield db


def cfg(fake: FakeListenBrainz, user: str = "alice", token: str | None = TOKEN
        ) -> ServiceConfig:
    return ServiceConfig(service="listenbrainz", api_url=fake.url, user=user, token=token)


def archived(archive: Archive, account: Account = LB) -> list[tuple[int, str]]:
    rows = archive.conn.execute(
        "SELECT listened_at, t.name FROM sources s JOIN tracks t ON t.id = s.track_id"
        " WHERE service = ? AND account = ? ORDER BY 1, 2", (account.service, account.name))
    return [(int(ts), str(name)) for ts, name in rows]


def interrupt_saving(archive: Archive, monkeypatch: pytest.MonkeyPatch, at: int
                     ) -> Callable[..., Any]:
    """Ctrl-C as the ``at``-th page is being saved (one page a commit); the real
    ``save_records``, to put back."""
    monkeypatch.setattr(engine, "GROUP_PAGES", 1)
    real = archive.save_records
    calls = {"n": 0}

    def dies(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(archive, "save_records", dies)
    return real


def on_server(fake: FakeListenBrainz, user: str = "alice") -> list[tuple[int, str]]:
    return sorted((x["listened_at"], x["track_metadata"]["track_name"])
                  for x in fake.listens(user))


def test_sync_pages_with_ties_keeps_msid_and_raw(fake: FakeListenBrainz, archive: Archive,
                                                   clock: int) -> None:
    fake.add_listens("alice", [(T0 + i // 4, "Artist", f"Track {i}") for i in range(2600)])
    report = engine.sync(archive, cfg(fake), SyncOptions())
    assert archived(archive) == on_server(fake)
    # complete up to the moment the sync started, not just to the newest listen
    assert (report.new, report.complete, report.cursor) == (2600, True, clock - SUBMIT_DELAY)
    assert report.fetched == report.new + report.duplicates
    msids = {x["recording_msid"] for x in fake.listens("alice")}
    rows = archive.conn.execute("SELECT remote_id, raw FROM sources").fetchall()
    assert {r[0] for r in rows} == msids
    assert all('"recording_msid"' in r[1] and '"user_name":"alice"' in r[1] for r in rows)


def test_sync_again_fetches_only_the_lookback(fake: FakeListenBrainz, archive: Archive,
                                              clock: int) -> None:
    # hourly for 60 days, the last one in the sync's own second
    fake.add_listens("alice", [(clock - i * 3600, "A", f"T{i}") for i in range(24 * 60)])
    engine.sync(archive, cfg(fake), SyncOptions())
    cursor = archive.get_cursor(LB)
    assert cursor == clock - SUBMIT_DELAY
    fake.request_log.clear()
    again = engine.sync(archive, cfg(fake), SyncOptions())
    assert (again.new, again.duplicates) == (0, 14 * 24 + 1)
    assert fake.requests_to("/listens")[0].query["min_ts"] == str(cursor - 14 * DAY - 1)
    assert not fake.requests_to("/listen-count")  # a delta needs no total


def test_a_complete_sync_moves_the_cursor_to_its_start_on_a_silent_account(
        fake: FakeListenBrainz, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    # the cursor says "complete up to here": a month with no new listens is complete too
    fake.add_listens("alice", [(T0 + i * 600, "A", f"T{i}") for i in range(30)])
    monkeypatch.setattr(engine, "NOW", lambda: CLOCK)
    engine.sync(archive, cfg(fake), SyncOptions())
    assert archive.get_cursor(LB) == CLOCK - SUBMIT_DELAY
    monkeypatch.setattr(engine, "NOW", lambda: CLOCK + 30 * DAY)
    fake.request_log.clear()
    report = engine.sync(archive, cfg(fake), SyncOptions())
    assert (report.fetched, report.cursor) == (0, CLOCK + 30 * DAY - SUBMIT_DELAY)
    assert (fake.requests_to("/listens")[0].query["min_ts"]
            == str(CLOCK - SUBMIT_DELAY - 14 * DAY - 1))


def test_an_import_of_older_history_is_read_in_full_by_the_next_sync(
        fake: FakeListenBrainz, archive: Archive, clock: int) -> None:
    """Listens older than any the account had (an import of years of history) are
    beyond every lookback: the reply says the user's oldest listen moved back, and the
    sync reads the whole history again."""
    fake.add_listens("alice", [(clock - DAY + i * 60, "A", f"Now {i}") for i in range(50)])
    engine.sync(archive, cfg(fake), SyncOptions())
    fake.request_log.clear()
    assert engine.sync(archive, cfg(fake), SyncOptions()).new == 0
    assert len(fake.request_log) == 1  # nothing older: a delta costs what it did
    fake.add_listens("alice", [(T0 + i * 3600, "B", f"Old {i}") for i in range(2500)])
    fake.request_log.clear()
    report = engine.sync(archive, cfg(fake), SyncOptions())
    assert (report.new, report.complete, report.cursor) == (2500, True, clock - SUBMIT_DELAY)
    assert archived(archive) == on_server(fake)
    assert fake.requests_to("/listen-count")  # a whole walk, with its progress total
    fake.request_log.clear()
    assert engine.sync(archive, cfg(fake), SyncOptions()).fetched == 50  # a delta again
    assert len(fake.request_log) == 1


def test_an_account_empty_at_its_first_sync_then_given_old_history(
        fake: FakeListenBrainz, archive: Archive, clock: int) -> None:
    assert engine.sync(archive, cfg(fake), SyncOptions()).cursor == clock - SUBMIT_DELAY
    fake.add_listens("alice", [(T0 + i * 3600, "B", f"Old {i}") for i in range(30)])
    assert engine.sync(archive, cfg(fake), SyncOptions()).new == 30


def test_an_unusable_oldest_listen_does_not_make_every_sync_a_whole_walk(
        fake: FakeListenBrainz, archive: Archive, clock: int) -> None:
    fake.add_listens("alice", [{"listened_at": T0, "track_metadata": {
        "artist_name": "", "track_name": "", "additional_info": {}}}])
    fake.add_listens("alice", [(clock - DAY + i * 60, "A", f"Now {i}") for i in range(5)])
    assert engine.sync(archive, cfg(fake), SyncOptions()).new == 5  # (the blank one skipped)
    fake.request_log.clear()
    engine.sync(archive, cfg(fake), SyncOptions())
    assert len(fake.request_log) == 1


def test_a_whole_walk_for_older_history_stopped_part_way_goes_on_next_time(
        fake: FakeListenBrainz, archive: Archive, clock: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_listens("alice", [(clock - DAY + i * 60, "A", f"Now {i}") for i in range(50)])
    engine.sync(archive, cfg(fake), SyncOptions())
    fake.add_listens("alice", [(T0 + i * 3600, "B", f"Old {i}") for i in range(5000)])
    real = interrupt_saving(archive, monkeypatch, at=4)  # the delta's page, two of the walk's
    with pytest.raises(KeyboardInterrupt):
        engine.sync(archive, cfg(fake), SyncOptions())
    cursor = archive.get_cursor(LB)
    assert cursor is not None and T0 < cursor < T0 + 5000 * 3600  # complete up to there only
    monkeypatch.setattr(archive, "save_records", real)
    fake.request_log.clear()
    report = engine.sync(archive, cfg(fake), SyncOptions())
    assert report.complete and archived(archive) == on_server(fake)
    # it went on from where it stopped, not from the beginning again
    first = fake.requests_to("/listens")[0].query["min_ts"]
    assert int(first) == cursor - 14 * DAY - 1


def test_back_dated_listens_within_the_lookback_arrive(fake: FakeListenBrainz,
                                                       archive: Archive, clock: int) -> None:
    fake.add_listens("alice", [(T0 + i * 600, "A", f"T{i}") for i in range(3000)])
    engine.sync(archive, cfg(fake), SyncOptions())
    cursor = archive.get_cursor(LB)
    assert cursor is not None
    fake.add_listens("alice", [(cursor - 3 * DAY + 7, "Late", "Three days"),
                               (cursor - 20 * DAY + 7, "Later", "Twenty days"),
                               (cursor + 60, "New", "Track")])
    report = engine.sync(archive, cfg(fake), SyncOptions())
    assert report.new == 2
    assert (cursor - 20 * DAY + 7, "Twenty days") not in archived(archive)
    longer = engine.sync(archive, cfg(fake), SyncOptions(lookback=30 * DAY))
    assert longer.new == 1
    assert archived(archive) == on_server(fake)


def test_full_walks_everything_again_without_duplicates(fake: FakeListenBrainz,
                                                        archive: Archive) -> None:
    fake.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(1500)])
    engine.sync(archive, cfg(fake), SyncOptions())
    report = engine.sync(archive, cfg(fake), SyncOptions(full=True))
    assert (report.new, report.duplicates) == (0, report.fetched)
    assert fake.requests_to("/listens")[-2].query["min_ts"] == "1"
    assert archived(archive) == on_server(fake)


def test_since_later_than_the_cursor_does_not_move_it(fake: FakeListenBrainz,
                                                       archive: Archive, clock: int) -> None:
    fake.add_listens("alice", [(T0 + i * DAY, "A", f"T{i}") for i in range(100)])
    report = engine.sync(archive, cfg(fake), SyncOptions(since=T0 + 50 * DAY))
    assert report.new == 50
    assert report.cursor is None  # nothing before --since was read: no claim made
    assert engine.sync(archive, cfg(fake), SyncOptions()).new == 50
    assert archive.get_cursor(LB) == clock - SUBMIT_DELAY


def test_progress_total_comes_from_the_listen_count(fake: FakeListenBrainz,
                                                    archive: Archive) -> None:
    fake.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(2500)])
    events = []
    engine.sync(archive, cfg(fake), SyncOptions(on_progress=events.append))
    assert events[0].total == 2500 and events[0].done == 0
    assert events[-1].listens == events[-1].done >= 2500


def test_a_first_sync_announces_its_size_to_the_saver(fake: FakeListenBrainz, archive: Archive,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """So that a big first sync starts its writer process at once (archive/writer.py)."""
    announced: list[int] = []
    monkeypatch.setattr(Saver, "expect", lambda self, n: announced.append(n))
    fake.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(2500)])
    engine.sync(archive, cfg(fake), SyncOptions())
    assert announced == [2500]
    engine.sync(archive, cfg(fake), SyncOptions())  # a delta: no total is asked for
    assert announced == [2500]


def test_sync_of_another_users_public_listens_needs_no_token(fake: FakeListenBrainz,
                                                             archive: Archive) -> None:
    fake.add_user("Bob")
    fake.add_listens("Bob", [(T0 + i, "A", f"T{i}") for i in range(10)])
    report = engine.sync(archive, cfg(fake, user="Bob", token=None), SyncOptions())
    assert report.new == 10
    assert all("authorization" not in r.headers for r in fake.request_log)


def test_interrupted_sync_resumes_with_no_gap_and_no_duplicate(
        fake: FakeListenBrainz, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_listens("alice", [(T0 + i // 3, "A", f"T{i}") for i in range(5000)])
    real = interrupt_saving(archive, monkeypatch, at=3)
    with pytest.raises(KeyboardInterrupt):
        engine.sync(archive, cfg(fake), SyncOptions())
    partial = archive.get_cursor(LB)
    assert partial is not None and partial < T0 + 5000 // 3
    assert len(archived(archive)) == 2000 - 1  # two pages, minus the re-read second
    monkeypatch.setattr(archive, "save_records", real)
    report = engine.sync(archive, cfg(fake), SyncOptions())
    assert report.complete
    assert archived(archive) == on_server(fake)
    assert archive.count() == 5000


def test_sync_survives_server_faults(fake: FakeListenBrainz, archive: Archive) -> None:
    fake.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(3000)])
    fake.fault_rate = 0.3
    engine.sync(archive, cfg(fake), SyncOptions())
    assert archived(archive) == on_server(fake)
    assert any(r.status == 503 for r in fake.request_log)


def test_unknown_user_is_a_clear_error(fake: FakeListenBrainz, archive: Archive) -> None:
    with pytest.raises(ServiceError, match="no user 'nobody'"):
        engine.sync(archive, cfg(fake, user="nobody"), SyncOptions())


def test_an_unreachable_server_is_given_up_after_one_round_of_retries(
        archive: Archive) -> None:
    """The listen count is only a progress total, but a server that cannot be reached
    for it cannot be reached for the listens either: one round of retries, not two."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once this block ends: refused
    config = ServiceConfig(service="listenbrainz", api_url=f"http://127.0.0.1:{port}",
                           user="alice", token=TOKEN)
    with pytest.raises(ServiceUnavailable) as caught:
        engine.sync(archive, config, SyncOptions())
    report = caught.value.partial
    attempts = inspect.signature(Http).parameters["attempts"].default
    assert isinstance(report, SyncReport) and report.requests == attempts


def test_a_server_without_a_listen_count_still_syncs(fake: FakeListenBrainz,
                                                     archive: Archive) -> None:
    fake.add_listens("alice", [(NOW - DAY + i, "A", f"T{i}") for i in range(3)])
    real = fake.handle

    def no_count(entry: Any) -> tuple[int, dict[str, str], bytes]:
        if entry.path.endswith("/listen-count"):
            return 503, {}, b'{"code": 503, "error": "not here"}'
        return real(entry)

    fake.handle = no_count  # type: ignore[method-assign]
    assert engine.sync(archive, cfg(fake), SyncOptions()).new == 3


# --------------------------------------------------------------------------- export


NOW = int(time.time())


def rec(ts: int, artist: str = "Artist", track: str = "Track", **kwargs: Any) -> SourceRecord:
    return SourceRecord(ts, artist, track, **kwargs)


def seed(archive: Archive, records: list[SourceRecord], account: Account = IMPORT) -> None:
    archive.save_records(account, records)


def history(n: int, start: int = NOW - 400 * DAY) -> list[SourceRecord]:
    return [rec(start + i * 600, f"Artist {i % 7}", f"Track {i}", album="Album",
                duration=200) for i in range(n)]


def submits(fake: FakeListenBrainz) -> list[Any]:
    return fake.requests_to("/1/submit-listens")


def refuse_submits(fake: FakeListenBrainz, n: int, error: str) -> None:
    """Answer the next ``n`` submissions 400 with ``error`` and no listen named."""
    real = fake.handle
    left = {"n": n}

    def handle(entry: Any) -> Any:
        if entry.path.endswith("/submit-listens") and left["n"] > 0:
            left["n"] -= 1
            entry.status = 400
            fake.request_log.append(entry)
            return 400, {}, json.dumps({"code": 400, "error": error}).encode()
        return real(entry)

    fake.handle = handle  # type: ignore[method-assign]


def test_export_sends_what_the_account_lacks_in_batches_of_1000(
        fake: FakeListenBrainz, archive: Archive) -> None:
    seed(archive, history(2500))
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert (report.candidates, report.submitted, report.rejected) == (2500, 2500, 0)
    # two batches are on the wire at once, so they may arrive in either order
    assert sorted(len(b) for b in fake.submitted_batches) == [500, 1000, 1000]
    assert report.requests == 1 + 3  # the token check, then the batches
    assert all(r.query == {} and r.headers["content-type"] == "application/json"
               for r in submits(fake))
    body = submits(fake)[0].body
    assert body.startswith(b'{"listen_type":"import","payload":[')
    assert len(fake.listens("alice")) == 2500


def test_export_holds_back_what_the_account_may_have_gained_since_its_sync(
        fake: FakeListenBrainz, archive: Archive) -> None:
    """The archive knows the account up to its cursor: a listen that could match one the
    account got after that sync (within the tolerance of the cursor, or later) waits for
    the next sync instead of risking a second copy there."""
    synced = NOW - 3600
    archive.set_cursor(LB, synced)
    lastfm = Account("lastfm", "alice")
    seed(archive, [rec(synced - 300, track="Long known"),
                   rec(synced - 299, track="Near the sync"),
                   rec(synced + 100, track="After the sync"),
                   rec(synced + 200, "Nul\x00Byte", "Invalid"),  # rejected, not held
                   rec(NOW + 3 * 3600, track="Hours ahead")],    # rejected: the future
         account=lastfm)
    report = export_listens(archive, cfg(fake), ExportOptions())
    assert (report.candidates, report.submitted, report.held_back, report.rejected) == (
        5, 1, 2, 2)
    assert [x["track_metadata"]["track_name"] for x in fake.listens("alice")] == ["Long known"]
    assert report.as_json()["held_back"] == 2
    # once a later sync has seen the account past them, they go
    archive.set_cursor(LB, NOW)
    again = export_listens(archive, cfg(fake), ExportOptions())
    assert (again.submitted, again.held_back) == (2, 0)
    # a dry run holds back the same way: it shows what a real run would send
    archive.save_records(lastfm, [rec(NOW - 10, track="Just now")])
    dry = export_listens(archive, cfg(fake), ExportOptions(dry_run=True))
    assert (dry.submitted, dry.held_back) == (0, 1)


def test_batches_also_respect_the_byte_limit(fake: FakeListenBrainz, archive: Archive,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BATCH_BYTES", 20_000)
    seed(archive, [rec(NOW - DAY + i, "A" * 500, f"T{i}") for i in range(100)])
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert report.submitted == 100
    assert len(submits(fake)) > 3
    assert all(len(r.body) <= 20_000 for r in submits(fake))
    assert sum(len(b) for b in fake.submitted_batches) == 100


def test_export_twice_sends_nothing_the_second_time(fake: FakeListenBrainz,
                                                    archive: Archive) -> None:
    seed(archive, history(1200))
    engine.export(archive, cfg(fake), ExportOptions())
    sent = len(submits(fake))
    again = engine.export(archive, cfg(fake), ExportOptions())
    assert (again.candidates, again.submitted, again.requests) == (0, 0, 0)
    assert again.already_there == 1200
    assert len(submits(fake)) == sent
    # after a sync brings them back, they are the account's own: still nothing to send
    engine.sync(archive, cfg(fake), SyncOptions())
    assert archive.count() == 1200
    third = engine.export(archive, cfg(fake), ExportOptions())
    assert (third.candidates, third.already_there) == (0, 1200)


def test_export_sends_the_same_bytes_for_a_listen_every_time(fake: FakeListenBrainz,
                                                             archive: Archive) -> None:
    seed(archive, history(3))
    dry: list[dict[str, Any]] = []
    engine.export(archive, cfg(fake), ExportOptions(dry_run=True, on_item=dry.append))
    engine.export(archive, cfg(fake), ExportOptions())
    assert submits(fake)[0].body == import_body([item["payload"] for item in dry])


def test_a_listen_resent_after_another_sighting_is_still_one_on_the_server(
        fake: FakeListenBrainz, archive: Archive) -> None:
    """A run killed after the server took a batch, before the push was recorded, sends it
    again: what another account said of those plays since must not make them new
    listens there (ListenBrainz tells listens apart by names, release and duration)."""
    start = NOW - 3 * DAY
    seed(archive, [rec(start + i * 600, track=f"T{i}") for i in range(3)])  # no duration
    assert engine.export(archive, cfg(fake), ExportOptions()).submitted == 3
    with archive.transaction():
        archive.conn.execute("DELETE FROM pushes")  # the push the killed run never recorded
    seed(archive, [rec(start + i * 600 + 30, track=f"T{i}", duration=215,
                       recording_mbid=f"00000000-0000-4000-8000-00000000000{i}")
                   for i in range(3)], Account("player", "me"))
    again = engine.export(archive, cfg(fake), ExportOptions())
    assert again.submitted == 3
    assert len(fake.listens("alice")) == 3  # each play once
    sent = [p["track_metadata"] for p in json.loads(submits(fake)[-1].body)["payload"]]
    assert all("duration" not in m["additional_info"] for m in sent)
    assert [m["additional_info"]["recording_mbid"] for m in sent] == [
        f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]  # what it learnt


def test_dry_run_sends_nothing_and_shows_each_payload(fake: FakeListenBrainz,
                                                      archive: Archive) -> None:
    seed(archive, history(5) + [rec(1000, "Too", "Old")])
    items: list[dict[str, Any]] = []
    report = engine.export(archive, cfg(fake, token=None),
                           ExportOptions(dry_run=True, on_item=items.append))
    assert not fake.request_log
    assert (report.candidates, report.submitted, report.rejected, report.requests) == (6, 5, 1, 0)
    assert [i["track"] for i in items] == [f"Track {i}" for i in range(5)]
    assert set(items[0]["payload"]) == {"listened_at", "track_metadata"}


INVALID = {
    "before 2002": (rec(1_000_000_000), "before 2002-10-01"),
    "an hour ahead": (rec(NOW + 2 * 3600), "more than an hour in the future"),
    "NUL in a name": (rec(NOW - DAY, "Art\x00ist"), "NUL character"),
    "blank artist": (rec(NOW - DAY, "   "), "artist_name is empty"),
    "blank track": (rec(NOW - DAY, track="\t "), "track_name is empty"),
    "duration over 24 days": (rec(NOW - DAY, duration=30 * DAY), "duration"),
    "bad recording MBID": (rec(NOW - DAY, recording_mbid="not-a-uuid"),
                           "recording_mbid is not a valid MBID"),
    "bad release MBID": (rec(NOW - DAY, release_mbid="123"), "release_mbid is not a valid"),
    "bad artist MBID": (rec(NOW - DAY, artist_mbids=(MBID, "nope")),
                        "artist_mbids holds an invalid MBID"),
    "too large": (rec(NOW - DAY, "A" * (MAX_LISTEN_SIZE + 10)), "bytes of JSON"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_listen_is_rejected_locally_and_never_sent(
        case: str, fake: FakeListenBrainz, archive: Archive) -> None:
    bad, reason = INVALID[case]
    seed(archive, history(20) + [bad])
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert (report.candidates, report.submitted, report.rejected) == (21, 20, 1)
    (why,) = report.reasons
    assert reason in why
    assert len(submits(fake)) == 1  # one batch, accepted whole
    assert len(fake.listens("alice")) == 20
    # it is not recorded as pushed: a later run reports it again, and still sends nothing
    again = engine.export(archive, cfg(fake), ExportOptions())
    assert (again.candidates, again.rejected, again.submitted) == (1, 1, 0)
    assert len(submits(fake)) == 1


def test_a_listen_the_server_blames_is_set_aside_and_the_rest_resent(
        archive: Archive) -> None:
    # the server's clock is two days behind: listens of yesterday are "too high" there
    with FakeListenBrainz(clock=lambda: time.time() - 2 * DAY) as fake:
        fake.add_user("alice", TOKEN)
        seed(archive, history(30) + [rec(NOW - DAY, "Fresh", "Listen")])
        report = engine.export(archive, cfg(fake), ExportOptions())
        assert (report.submitted, report.rejected) == (30, 1)
        assert report.reasons == {"Value for key listened_at is too high.": 1}
        assert [r.status for r in submits(fake)] == [400, 200]
        assert len(fake.listens("alice")) == 30


def test_a_batch_refused_without_a_culprit_is_bisected(fake: FakeListenBrainz,
                                                       archive: Archive) -> None:
    seed(archive, history(10))
    # the first four requests are refused outright: [10], [5], [2], [1]
    refuse_submits(fake, 4, "Nope.")
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert (report.submitted, report.rejected, report.reasons) == (9, 1, {"Nope.": 1})
    sizes = [len(b) for b in fake.submitted_batches]
    assert sizes == [1, 3, 5]
    assert len(fake.listens("alice")) == 9
    # the refused listen was not recorded as pushed; the accepted ones were
    assert engine.export(archive, cfg(fake), ExportOptions()).candidates == 1


def test_bisection_finds_each_bad_listen_with_few_requests(archive: Archive) -> None:
    """A stub client refusing every batch that holds a listen at a 'bad' second."""
    seed(archive, history(1000, start=NOW - 300 * DAY))
    bad = {NOW - 300 * DAY + i * 600 for i in (17, 500, 501, 999)}
    calls: list[int] = []

    class Refuses:
        class http:  # noqa: N801 - mimics ListenBrainzClient.http
            requests = 0

        def submit_import(self, payloads: list[dict[str, Any]]) -> None:
            calls.append(len(payloads))
            if any(p["listened_at"] in bad for p in payloads):
                raise SubmissionRejected("refused", reason="Bad listen.", listen=None)

    report = engine.ExportReport(target="listenbrainz:alice")
    sender = engine._Sender(archive, LB, Refuses(), report, None)  # type: ignore[arg-type]
    items = [(listen.id, engine.listen_payload(listen.to_record()))
             for listen in archive.missing_for(LB)]
    sender.start(items)
    sender.finish()
    assert (report.submitted, report.rejected) == (996, 4)
    assert len(calls) < 4 * 2 * 10  # about 2·log2(1000) requests per bad listen


def test_batches_go_out_two_at_a_time_and_each_is_settled(archive: Archive) -> None:
    """A stub client whose calls wait for each other: only two at once get through."""
    seed(archive, history(4000, start=NOW - 300 * DAY))
    both_in_flight = threading.Barrier(engine.IN_FLIGHT, timeout=10)
    active = {"now": 0, "most": 0}
    guard = threading.Lock()

    class Pairs:
        class http:  # noqa: N801 - mimics ListenBrainzClient.http
            requests = 0

        def submit_import(self, payloads: list[dict[str, Any]]) -> None:
            with guard:
                active["now"] += 1
                active["most"] = max(active["most"], active["now"])
            both_in_flight.wait()  # breaks (and the export fails) unless two are on the wire
            with guard:
                active["now"] -= 1

    report = engine.ExportReport(target="listenbrainz:alice")
    sender = engine._Sender(archive, LB, Pairs(), report, None)  # type: ignore[arg-type]
    listens = list(archive.missing_for(LB))
    for i in range(0, 4000, 1000):
        sender.start([(x.id, engine.listen_payload(x.to_record())) for x in listens[i:i + 1000]])
    sender.finish()
    assert active["most"] == engine.IN_FLIGHT == 2
    assert report.submitted == 4000
    assert not list(archive.missing_for(LB))  # every accepted batch recorded as pushed


def test_two_batches_in_flight_still_keep_to_the_rate_limit(
        archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    t = FakeTime(start=float(NOW))
    with FakeListenBrainz(rate_limit=2, rate_window=10, clock=t.clock) as fake:
        fake.add_user("alice", TOKEN)
        seed(archive, history(5000))
        monkeypatch.setattr(engine, "connect",
                            functools.partial(engine.connect, sleep=t.sleep, clock=t.clock))
        report = engine.export(archive, cfg(fake), ExportOptions())
        assert (report.submitted, report.rejected) == (5000, 0)
        assert len(fake.listens("alice")) == 5000
        statuses = [r.status for r in submits(fake)]
        assert statuses.count(200) == 5 and set(statuses) <= {200, 429}
        assert t.sleeps  # it waited for the windows (2 requests in 10 s) to reset


def test_a_batch_refused_while_the_next_is_in_flight_is_resent(fake: FakeListenBrainz,
                                                               archive: Archive) -> None:
    seed(archive, history(2500))
    refuse_submits(fake, 1, "Try again.")
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert (report.submitted, report.rejected) == (2500, 0)
    assert len(fake.listens("alice")) == 2500
    assert sorted(r.status for r in submits(fake)) == [200] * 4 + [400]
    assert engine.export(archive, cfg(fake), ExportOptions()).candidates == 0


def test_a_server_refusing_everything_stops_the_export(fake: FakeListenBrainz,
                                                       archive: Archive) -> None:
    seed(archive, history(200))
    refuse_submits(fake, 10_000, "Closed.")
    with pytest.raises(ServiceError, match="refused 50 listens in a row"):
        engine.export(archive, cfg(fake), ExportOptions())
    assert not fake.submitted_batches


def test_an_export_cut_short_records_only_accepted_batches(fake: FakeListenBrainz,
                                                           archive: Archive) -> None:
    records = history(2500)
    seed(archive, records)
    real = fake.handle
    first = b'"track_name":"%s"' % records[0].track.encode()  # oldest: the first batch's

    def second_batch_fails(entry: Any) -> Any:
        # by content, not by arrival: batches are sent two at a time, and the second
        # may reach the server first
        if entry.path.endswith("/submit-listens") and first not in entry.body:
            entry.path = "/broken"  # answered 404 by the fake: a hard failure
        return real(entry)

    fake.handle = second_batch_fails  # type: ignore[method-assign]
    with pytest.raises(ServiceError):
        engine.export(archive, cfg(fake), ExportOptions())
    fake.handle = real  # type: ignore[method-assign]
    assert len(list(archive.missing_for(LB))) == 1500
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert report.submitted == 1500
    assert len(fake.listens("alice")) == 2500


def test_export_refuses_a_token_of_another_account(fake: FakeListenBrainz,
                                                   archive: Archive) -> None:
    fake.add_user("bob", "bobs-token-0000")
    seed(archive, history(3))
    with pytest.raises(CredentialsError, match="belongs to 'bob'"):
        engine.export(archive, cfg(fake, user="alice", token="bobs-token-0000"),
                      ExportOptions())
    assert not fake.submitted_batches


def test_export_window_and_source(fake: FakeListenBrainz, archive: Archive) -> None:
    records = history(10)
    seed(archive, records[:5])
    seed(archive, records[5:], Account("lastfm", "alice"))
    only_lastfm = engine.export(archive, cfg(fake), ExportOptions(source="lastfm", dry_run=True))
    assert only_lastfm.candidates == 5
    window = engine.export(archive, cfg(fake), ExportOptions(
        since=records[2].listened_at, until=records[4].listened_at))
    assert (window.candidates, window.submitted) == (2, 2)
    later = engine.export(archive, cfg(fake), ExportOptions(since=records[2].listened_at,
                                                            until=records[4].listened_at))
    assert (later.candidates, later.already_there) == (0, 2)


def test_candidates_are_read_in_chunks_across_a_crowded_second(
        archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "CANDIDATE_CHUNK", 4)
    seed(archive, [rec(NOW - DAY, "A", f"T{i}") for i in range(11)]
         + [rec(NOW - DAY + 1, "B", f"T{i}") for i in range(3)])
    got = [listen.id for listen in engine._candidates(archive, LB, ExportOptions())]
    assert sorted(got) == sorted(listen.id for listen in archive.missing_for(LB))
    assert len(got) == len(set(got)) == 14


def test_user_names_differing_in_case_are_one_account(fake: FakeListenBrainz,
                                                      archive: Archive) -> None:
    fake.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(30)])
    first = engine.sync(archive, cfg(fake, user="Alice"), SyncOptions())
    second = engine.sync(archive, cfg(fake, user="ALICE"), SyncOptions())
    assert (first.user, first.new, second.new) == ("alice", 30, 0)
    assert [a["account"] for a in archive.accounts()] == ["alice"]


def test_listens_rejected_for_one_reason_are_counted_under_it(
        fake: FakeListenBrainz, archive: Archive) -> None:
    ahead = [rec(NOW + 2 * 3600 + i * 60, track=f"Later {i}") for i in range(3)]
    seed(archive, history(5) + ahead)
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert report.reasons == {"listened_at is more than an hour in the future": 3}


def test_listens_with_different_bad_values_are_counted_under_one_reason(
        fake: FakeListenBrainz, archive: Archive) -> None:
    bad = [rec(NOW - DAY + i, track=f"T{i}", recording_mbid=f"not-a-uuid-{i}",
               duration=30 * DAY + i) for i in range(3)]
    bad += [rec(NOW - DAY + 10 + i, track=f"U{i}", release_mbid=f"{i}" * 7) for i in range(2)]
    seed(archive, history(5) + bad)
    report = engine.export(archive, cfg(fake), ExportOptions())
    assert report.reasons == {"duration is more than the maximum 2073600 (24 days)": 3,
                              "release_mbid is not a valid MBID": 2}
