"""The Last.fm engine: window and cursor rules, the drift-proof walk, and export rules.

The walk is tested twice: against an in-memory pager that can change the history between
any two page reads (so every interleaving that matters is exercised quickly), and through
the real client against the fake server on a loopback socket.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.archive.writer import Saver
from scrobbler_cli.engines import lastfm as engine
from scrobbler_cli.errors import (
    AuthRejected,
    CredentialsError,
    ServiceError,
    ServiceUnavailable,
    UnknownUser,
)
from scrobbler_cli.export import ExportOptions
from scrobbler_cli.models import Account, Listen, Progress, ServiceConfig, SourceRecord
from scrobbler_cli.services.lastfm import PrivateProfile, RecentTracksPage
from scrobbler_cli.sync import SUBMIT_DELAY, SyncOptions
from tests.fakes.lastfm_server import FakeLastfm

NOW = 1_800_000_000
DAY = 86400
LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries and pacing never really sleep; the engine's clock is ours."""
    monkeypatch.setattr(engine, "SLEEP", lambda seconds: None)
    monkeypatch.setattr(engine, "NOW", lambda: NOW)


@pytest.fixture
def fake() -> Iterator[FakeLastfm]:
    with FakeLastfm(clock=lambda: NOW) as server:
        yield server


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive(tmp_path / "engine.db") as a:
        yield a


def config(fake: FakeLastfm, user: str = "alice", *, session: bool = False,
           rate: float = 1000.0) -> ServiceConfig:
    return ServiceConfig(
        service="lastfm", api_url=fake.url, user=user, api_key=fake.api_key,
        api_secret=fake.api_secret,
        session_key=fake.session_key(user) if session else None, rate=rate)


def history(n: int, *, end: int = NOW - 3600, step: int = 200, user_seed: int = 0
            ) -> list[tuple[int, str, str, str]]:
    rng = random.Random(user_seed)
    return [(end - (n - i) * step, f"Artist {rng.randrange(40)}", f"Track {i}", "Album")
            for i in range(n)]


def archived(a: Archive, account: Account = LASTFM) -> list[tuple[int, str, str]]:
    return sorted((lst.listened_at, lst.artist, lst.track)
                  for lst in a.listens(source=account.source))


def on_server(fake: FakeLastfm, user: str = "alice", *, before: int | None = None
              ) -> list[tuple[int, str, str]]:
    return sorted((ts, artist, track) for ts, artist, track, _ in fake.scrobbles(user)
                  if before is None or ts < before)


def complete_below(a: Archive, fake: FakeLastfm, cursor: int) -> bool:
    """The archive holds every scrobble before ``cursor``, and nothing Last.fm lacks."""
    held = set(archived(a))
    return set(on_server(fake, before=cursor)) <= held <= set(on_server(fake))


# --- the window -----------------------------------------------------------------------


def test_first_sync_reads_everything_and_claims_completeness() -> None:
    assert engine.window(None) == (None, True)


def test_delta_starts_a_lookback_before_the_cursor_with_a_second_of_overlap() -> None:
    assert engine.window(NOW) == (NOW - 14 * DAY - 1, True)
    assert engine.window(NOW, lookback=3600) == (NOW - 3601, True)
    assert engine.window(NOW, lookback=0) == (NOW - 1, True)
    assert engine.window(100, lookback=3600) == (None, True)  # never before the epoch


def test_full_ignores_the_cursor() -> None:
    assert engine.window(NOW, full=True) == (None, True)


def test_since_after_the_cursor_leaves_a_gap_so_it_claims_nothing() -> None:
    assert engine.window(NOW - DAY, since=NOW - 3600) == (NOW - 3601, False)
    assert engine.window(None, since=NOW - 3600) == (NOW - 3601, False)


def test_since_at_or_before_the_cursor_may_move_it() -> None:
    assert engine.window(NOW, since=NOW - DAY) == (NOW - DAY - 1, True)
    assert engine.window(None, since=0) == (None, True)


# --- the walk, against a pager whose history changes between reads ------------------------


class Pager:
    """A history paged the way Last.fm does it: newest first over [from, to), ``from``
    inclusive (as measured), or exclusive (as documented: "after") with ``exclusive``;
    ``to`` exclusive. ``changes[n]`` runs just before the n-th read."""

    def __init__(self, stamps: list[int], size: int, *, exclusive: bool = False) -> None:
        self.items = sorted((ts, i) for i, ts in enumerate(stamps))
        self.size = size
        self.exclusive = exclusive
        self.next_id = len(stamps)
        self.reads = 0
        self.changes: dict[int, Callable[[Pager], None]] = {}
        self.lock = threading.Lock()

    def insert(self, ts: int) -> None:
        self.items.append((ts, self.next_id))
        self.items.sort()
        self.next_id += 1

    def delete(self, index: int) -> None:
        del self.items[index]

    def fetch(self, page: int, start: int | None, to: int) -> RecentTracksPage:
        with self.lock:
            change = self.changes.pop(self.reads, None)
            self.reads += 1
            if change:
                change(self)
            window = [it for it in self.items if it[0] < to and (
                start is None or it[0] > start or (it[0] == start and not self.exclusive))]
            newest = window[::-1]
            chunk = newest[(page - 1) * self.size: page * self.size]
            total = len(window)
            return RecentTracksPage(
                records=[SourceRecord(ts, "A", f"t{i}") for ts, i in chunk], page=page,
                total_pages=-(-total // self.size), total=total, per_page=self.size)


def run_walk(pager: Pager, start: int | None, to: int, *, width: int
             ) -> list[tuple[list[SourceRecord], int, int]]:
    return list(engine.walk(lambda p, lo: pager.fetch(p, lo, to), start, to,
                            page_size=pager.size, width=width, group=3 * pager.size))


def check_walk(out: list[tuple[list[SourceRecord], int, int]], survivors: set[str],
               stamp: dict[str, int], to: int) -> None:
    """Every survivor is yielded, and each bound only covers what was yielded by then."""
    seen: set[str] = set()
    last = None
    for records, bound, _ in out:
        seen.update(r.track for r in records)
        assert last is None or bound >= last
        last = bound
        missing = {t for t in survivors if stamp[t] < bound} - seen
        assert not missing, f"bound {bound} claims {missing}, not read yet"
    assert last == to
    assert survivors <= seen


@pytest.mark.parametrize("width", [1, 3])
def test_walk_reads_oldest_page_first_and_ends_at_to(width: int) -> None:
    pager = Pager(list(range(100, 1100, 10)), size=7)
    out = run_walk(pager, None, 2000, width=width)
    stamps = [r.listened_at for records, _, _ in out for r in records]
    assert min(stamps[:7]) == 100 and len(stamps) == 100
    bounds = [b for _, b, _ in out]
    assert bounds == sorted(bounds) and bounds[-1] == 2000
    assert sum(n for _, _, n in out) == 15  # ceil(100 / 7) pages
    assert pager.reads == 15  # the first read (page 1) is used again at the end


def test_pages_checked_before_a_failing_one_are_yielded_before_the_error() -> None:
    """Page 2 of 5 fails at once while page 5 is slow: pages 4 and 3 arrive, wait in a
    batch for the group, and must still come out (with their bound) before the error."""
    pager = Pager(list(range(1000, 1500)), size=100)  # pages of 100 stamps, 5 pages
    gate = threading.Event()

    def fetch(page: int, lo: int | None) -> RecentTracksPage:
        if page == 2:
            raise ServiceUnavailable("page 2 keeps failing")
        if page == 5:
            gate.wait(5)
        result = pager.fetch(page, lo, 2000)
        if page == 3:
            gate.set()  # page 5 comes only now: pages 4 and 3 are already in
        return result

    walk = engine.walk(fetch, None, 2000, page_size=100, width=4, group=1000)
    out = []
    with pytest.raises(ServiceUnavailable):
        for records, bound, n in walk:
            out.append(([r.listened_at for r in records], bound, n))
    stamps = [t for records, _, _ in out for t in records]
    assert sorted(stamps) == list(range(1000, 1300))  # pages 5, 4 and 3, each once
    assert out[-1][1] == 1299  # the bound of the newest page yielded


def test_empty_window_ends_at_to_with_one_read() -> None:
    pager = Pager([], size=5)
    assert run_walk(pager, None, 50, width=2) == [([], 50, 1)]


def test_a_backdated_insert_mid_walk_cannot_hide_an_item() -> None:
    """A naive oldest-first page walk misses the item at each page border here."""
    stamps = list(range(1000, 1040))  # 40 items, pages of 10: 4 pages
    pager = Pager(stamps, size=10)
    # after the probe and page 4, three scrobbles land in the newest part of the window
    def three_late_plays(p: Pager) -> None:
        for _ in range(3):
            p.insert(1035)

    pager.changes[2] = three_late_plays
    out = run_walk(pager, None, 5000, width=1)
    read = {r.track for records, _, _ in out for r in records}
    assert {f"t{i}" for i in range(40)} <= read
    assert {f"t{i}" for i in range(40, 43)} <= read  # the new ones are in the unread part


def test_a_window_that_keeps_changing_gives_up_cleanly() -> None:
    pager = Pager(list(range(100, 200)), size=10)

    def churn(p: Pager) -> None:
        p.insert(150)
        p.changes[p.reads] = churn  # and again before the next read

    pager.changes[1] = churn
    with pytest.raises(ServiceUnavailable, match="kept changing"):
        run_walk(pager, None, 1000, width=1)


def test_a_restart_rereads_the_second_of_its_bound_when_from_is_exclusive() -> None:
    """Last.fm documents ``from`` as "after": restarting at the last bound itself would
    skip the scrobbles of that very second that sat on the next, unread page."""
    # pages of 3, newest first: [110 109 108] [107 106 105] [105 101 100]; the oldest
    # page ends in second 105 and the next page holds another play of second 105
    stamps = [100, 101, 105, 105, 106, 107, 108, 109, 110]
    pager = Pager(stamps, size=3, exclusive=True)
    pager.changes[2] = lambda p: p.insert(109)  # after page 3 is yielded: drift
    out = run_walk(pager, None, 1000, width=1)
    assert out[0][1] == 105  # the first bound: the restart is one second before it
    read = {r.track for records, _, _ in out for r in records}
    assert {f"t{i}" for i in range(10)} <= read
    check_walk(out, {f"t{i}" for i in range(10)}, {f"t{i}": ts for i, ts in
                                                   enumerate([*stamps, 109])}, 1000)


def test_restarts_that_do_not_move_the_start_still_end() -> None:
    """A restart one second before the bound can land where the round began; such rounds
    count as stalls, so a window that keeps changing still gives up."""
    # the oldest page always ends in second 500 and the walk starts at 499
    pager = Pager([500] * 4 + list(range(501, 520)), size=4, exclusive=True)

    def churn(p: Pager) -> None:  # each round: page 1, the oldest page (yielded), drift
        p.insert(515)
        p.changes[p.reads + 2] = churn

    pager.changes[2] = churn
    starts: list[int | None] = []

    def fetch(page: int, lo: int | None) -> RecentTracksPage:
        starts.append(lo)
        assert len(starts) < 500, "the walk does not end"
        return pager.fetch(page, lo, 1000)

    out: list[int] = []
    with pytest.raises(ServiceUnavailable, match="kept changing"):
        for _, bound, _ in engine.walk(fetch, 499, 1000, page_size=4, width=1, group=4):
            out.append(bound)
    assert set(starts) == {499} and set(out) == {500}
    assert len(out) == engine.MAX_STALLS + 1  # a page yielded every round, then it gave up


def empty_page(pager: Pager, page: int, times: int | None,
               to: int) -> Callable[[int, int | None], RecentTracksPage]:
    """``pager.fetch``, but ``page`` comes back with no dated items (the total as it
    was) the first ``times`` times it is asked for, or always (None)."""
    served = 0

    def fetch(p: int, lo: int | None) -> RecentTracksPage:
        nonlocal served
        result = pager.fetch(p, lo, to)
        if p == page and (times is None or served < times):
            served += 1
            return RecentTracksPage(records=[], page=p, total_pages=result.total_pages,
                                    total=result.total, per_page=result.per_page)
        return result

    return fetch


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("times", [3, 8])
def test_an_empty_page_is_read_again_not_taken(width: int, times: int) -> None:
    """An empty page cannot be taken as it is (it has no bound): it is a re-read, past
    the two retries of a page of the wrong size, and the walk ends with everything."""
    stamps = list(range(1000, 1050))
    pager = Pager(stamps, size=10)
    out = list(engine.walk(empty_page(pager, 3, times, 5000), None, 5000, page_size=10,
                           width=width, group=30))
    check_walk(out, {f"t{i}" for i in range(50)}, {f"t{i}": ts for i, ts in
                                                   enumerate(stamps)}, 5000)


@pytest.mark.parametrize("page", [1, 2, 5])
def test_a_page_that_stays_empty_is_a_service_error_not_a_crash(page: int) -> None:
    pager = Pager(list(range(1000, 1050)), size=10)
    with pytest.raises(ServiceError, match="empty page") as caught:
        list(engine.walk(empty_page(pager, page, None, 5000), None, 5000, page_size=10,
                         width=1, group=10))
    assert caught.value.exit_code == 4 and "run the sync again" in str(caught.value)


@pytest.mark.parametrize("exclusive", [False, True], ids=["from-inclusive", "from-exclusive"])
@pytest.mark.parametrize("seed", range(150))
def test_walk_never_misses_a_surviving_item_under_random_changes(seed: int,
                                                                 exclusive: bool) -> None:
    rng = random.Random(seed)
    size = rng.randint(2, 6)
    stamps = sorted(rng.sample(range(1000, 1200), rng.randint(0, 60)))
    stamps += rng.sample(stamps, min(len(stamps), rng.randint(0, 5)))  # equal seconds
    to = 1200 + rng.randint(-20, 30)
    pager = Pager(stamps, size=size, exclusive=exclusive)
    survivors = {f"t{i}" for i, ts in enumerate(stamps) if ts < to}
    stamp = {f"t{i}": ts for i, ts in enumerate(stamps)}
    # Pages are read side by side (width > 1) in whatever order the threads take them,
    # so a deletion and a back-dated scrobble may both land between the reads of two
    # neighbouring pages, their totals cancelling out, which no reply can show (the module
    # docstring; a reply read between them is seen: test_a_change_seen_on_a_later_page_...).
    # Such a pair can only be drawn one read apart, so only with pages read one by one.
    width = rng.choice([1, 2, 4])
    adds = 0.7 if width == 1 else float(rng.random() < 0.7)
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(0, 15)
        if rng.random() < adds:
            def add(p: Pager, ts: int = rng.randrange(990, 1250)) -> None:
                p.insert(ts)
            pager.changes[at] = add
        else:
            def drop(p: Pager, r: float = rng.random()) -> None:
                if p.items:
                    ts, i = p.items[int(r * len(p.items))]
                    survivors.discard(f"t{i}")
                    p.items.remove((ts, i))
            pager.changes[at] = drop
    out = run_walk(pager, None, to, width=width)
    check_walk(out, survivors, stamp, to)


def test_a_change_seen_on_a_later_page_stops_trusting_the_pages_before_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 6 (the oldest) is read; the oldest scrobble is deleted and page 3's reply
    shows it (17, not 18); a back-dated scrobble then brings the total back to 18 and
    moves every older one a place, before page 5 is read. Page 5's own reply looks
    right, but the scrobble at its border slid onto page 6, read before: the walk must
    not trust page 5 once page 3's reply has arrived."""
    pager = Pager(list(range(1000, 1018)), size=3)
    futures: dict[int, object] = {}
    real_submit = engine._Fetcher.submit

    def submit(self: object, call: functools.partial[RecentTracksPage]) -> object:
        futures[call.args[0]] = future = real_submit(self, call)  # type: ignore[arg-type]
        return future

    monkeypatch.setattr(engine._Fetcher, "submit", submit)
    page6_read = threading.Event()
    first_round = {3, 5, 6}  # (a later round, from the start again, reads as it is)

    def fetch(page: int, lo: int | None) -> RecentTracksPage:
        if page in first_round and page == 3:
            assert page6_read.wait(5)
            pager.delete(0)  # 1000, on page 6
        if page in first_round and page == 5:
            deadline = time.monotonic() + 5
            while not futures[3].done():  # type: ignore[attr-defined]
                assert time.monotonic() < deadline
                time.sleep(0.001)
            pager.insert(1010)  # newer than page 5: 1003 slides onto page 6
        first_round.discard(page)
        result = pager.fetch(page, lo, 2000)
        if page == 6:
            page6_read.set()
        return result

    out = list(engine.walk(fetch, None, 2000, page_size=3, width=4, group=9))
    check_walk(out, {f"t{i}" for i in range(1, 18)}, {f"t{i}": 1000 + i for i in range(18)},
               2000)


# --- sync through the client and the fake server ------------------------------------------


def sync(a: Archive, cfg: ServiceConfig, **kwargs: object):  # type: ignore[no-untyped-def]
    return engine.sync(a, cfg, SyncOptions(**kwargs))  # type: ignore[arg-type]


def test_fresh_sync_equals_the_server_and_sets_the_cursor_to_the_start(
        fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", history(1050))
    fake.now_playing("alice", "Live", "Now")
    report = sync(archive, config(fake))
    assert archived(archive) == on_server(fake)
    assert (report.fetched, report.new, report.duplicates) == (1050, 1050, 0)
    # complete up to the start less the plays still reaching Last.fm then
    assert report.complete and report.cursor == NOW - SUBMIT_DELAY == archive.get_cursor(LASTFM)
    assert report.requests == 6  # 6 pages of 200, the first one read once
    pages = [int(r.params["page"]) for r in fake.requests_for("user.getRecentTracks")]
    assert pages[0] == 1 and sorted(pages[1:], reverse=True) == [6, 5, 4, 3, 2]
    assert {r.params["to"] for r in fake.requests_for("user.getRecentTracks")} == {str(NOW)}


def test_commits_go_oldest_first_with_a_cursor_that_only_claims_what_is_in(
        fake: FakeLastfm, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_scrobbles("alice", history(1000))
    monkeypatch.setattr(engine, "GROUP", 1)  # one page per commit
    commits: list[tuple[int, int]] = []
    original = archive.save_records

    def spy(account: Account, records: list[SourceRecord], *, cursor: int | None = None,
            **rest: object):  # type: ignore[no-untyped-def]
        saved = original(account, records, cursor=cursor, **rest)
        held = {t for t, _, _ in archived(archive)}
        assert cursor is not None
        assert all(ts in held for ts, _, _ in on_server(fake, before=cursor))
        commits.append((min(r.listened_at for r in records), cursor))
        return saved

    monkeypatch.setattr(archive, "save_records", spy)
    sync(archive, config(fake))
    assert len(commits) == 5
    assert [c for _, c in commits] == sorted(c for _, c in commits)
    assert commits[-1][1] == NOW - SUBMIT_DELAY
    assert [m for m, _ in commits] == sorted(m for m, _ in commits)


def test_delta_sync_reads_only_the_lookback_window(fake: FakeLastfm,
                                                   archive: Archive) -> None:
    fake.add_scrobbles("alice", history(600, step=3 * DAY // 600 * 20))
    sync(archive, config(fake))
    fake.request_log.clear()
    report = sync(archive, config(fake))
    starts = {r.params.get("from") for r in fake.requests_for("user.getRecentTracks")}
    assert starts == {str(NOW - SUBMIT_DELAY - 14 * DAY - 1)}
    assert report.new == 0 and report.duplicates == report.fetched > 0
    assert archived(archive) == on_server(fake)


def test_a_late_scrobble_inside_the_lookback_is_caught(fake: FakeLastfm,
                                                       archive: Archive,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_scrobbles("alice", history(300))
    sync(archive, config(fake))
    later = NOW + DAY
    monkeypatch.setattr(engine, "NOW", lambda: later)
    fake.add_scrobbles("alice", [(NOW - 10 * DAY, "Offline", "Player", None),
                                 (later - 60, "Fresh", "Play", None)])
    report = sync(archive, config(fake))
    assert report.new == 2 and report.cursor == later - SUBMIT_DELAY
    assert archived(archive) == on_server(fake)


def test_since_after_the_cursor_does_not_move_it(fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", history(300))
    report = sync(archive, config(fake), since=NOW - 3 * 3600)
    assert report.cursor is None and archive.get_cursor(LASTFM) is None
    assert archived(archive) == [s for s in on_server(fake) if s[0] >= NOW - 3 * 3600]
    report = sync(archive, config(fake))  # no cursor yet: the whole history
    assert report.cursor == NOW - SUBMIT_DELAY and archived(archive) == on_server(fake)


def test_full_resync_adds_nothing_twice(fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", history(450))
    sync(archive, config(fake))
    report = sync(archive, config(fake), full=True)
    assert (report.new, report.duplicates) == (0, 450)
    assert archive.count() == 450


def test_user_names_are_one_account_whatever_their_case(fake: FakeLastfm,
                                                        archive: Archive) -> None:
    fake.add_scrobbles("Alice", history(10))
    sync(archive, config(fake, "ALICE"))
    report = sync(archive, config(fake, "alice"))
    assert report.user == "alice" and report.new == 0
    assert [a["account"] for a in archive.accounts()] == ["alice"]


def test_interrupted_sync_resumes_with_no_gap_and_no_duplicate(
        fake: FakeLastfm, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_scrobbles("alice", history(2000, step=600))
    monkeypatch.setattr(engine, "GROUP", 1)
    monkeypatch.setattr(engine, "CONCURRENCY", 1)
    calls = 0
    original = archive.save_records

    def crash_on_fourth(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "save_records", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        sync(archive, config(fake))
    cursor = archive.get_cursor(LASTFM)
    assert cursor is not None and cursor < NOW
    assert complete_below(archive, fake, cursor)
    monkeypatch.setattr(archive, "save_records", original)
    report = sync(archive, config(fake))
    assert report.complete and report.cursor == NOW - SUBMIT_DELAY
    assert archived(archive) == on_server(fake) and archive.count() == 2000


def test_scrobbles_arriving_mid_walk_shift_pages_but_nothing_is_missed(
        fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", history(1000, step=300))
    before = on_server(fake)
    # while page 3 is read, back-dated plays land in the unread (newer) part of the
    # window, and new plays land after `to`
    fake.on_page("alice", 3, [(NOW - 3600 - 50 + i, "Late", f"L{i}", None) for i in range(7)]
                 + [(NOW + 10, "New", "N", None)])
    report = sync(archive, config(fake))
    assert set(before) <= set(archived(archive))
    assert archived(archive) == on_server(fake, before=NOW)
    assert report.requests > 5  # the walk read again after the change
    assert archive.count() == 1007


def test_sync_under_faults_ends_equal(fake: FakeLastfm, archive: Archive,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "PAGE_SIZE", 50)
    fake.add_scrobbles("alice", history(2400, step=100))
    fake.fault_rate = 0.2
    report = sync(archive, config(fake))
    assert archived(archive) == on_server(fake)
    faults = [r for r in fake.request_log if r.status != 200 or r.error]
    assert len(faults) >= 5 and report.requests == len(fake.request_log)


def test_several_pages_in_flight_but_never_above_the_rate(
        fake: FakeLastfm, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "SLEEP", time.sleep)  # the pacer really paces here
    fake.add_scrobbles("alice", history(4000, step=60))
    served = fake.handle
    lock = threading.Lock()
    arrivals: list[float] = []
    in_flight = peak = 0

    def slow_handle(*args: object):  # type: ignore[no-untyped-def]
        nonlocal in_flight, peak
        with lock:
            arrivals.append(time.monotonic())
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)  # the round trip is slower than the 40/s pace
        try:
            return served(*args)  # type: ignore[arg-type]
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(fake, "handle", slow_handle)
    sync(archive, config(fake, rate=40))
    assert archived(archive) == on_server(fake)
    assert len(arrivals) == 20
    assert 2 <= peak <= engine.CONCURRENCY  # latency hidden, the pool bounded
    assert arrivals[-1] - arrivals[0] >= 19 / 40 * 0.8  # never faster than 40 a second


def test_progress_reports_pages(fake: FakeLastfm, archive: Archive,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "GROUP", 1)
    fake.add_scrobbles("alice", history(900))
    events: list[Progress] = []
    sync(archive, config(fake), on_progress=events.append)
    assert events[0] == Progress(0, 5, 0)
    assert events[-1].done == 5 and events[-1].listens == 900


def test_a_sync_announces_its_pages_to_the_saver(fake: FakeLastfm, archive: Archive,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """So that a big sync starts its writer process as soon as it knows (writer.py)."""
    announced: list[int] = []
    monkeypatch.setattr(Saver, "expect", lambda self, n: announced.append(n))
    fake.add_scrobbles("alice", history(900))
    sync(archive, config(fake))
    assert announced == [5 * engine.PAGE_SIZE]  # the first page says: five pages


def test_private_profile_needs_its_session_key(fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", history(30))
    fake.set_private("alice")
    with pytest.raises(PrivateProfile) as caught:
        sync(archive, config(fake))
    assert caught.value.exit_code == 3 and "scrob auth lastfm" in str(caught.value)
    report = sync(archive, config(fake, session=True))
    assert report.new == 30 and archived(archive) == on_server(fake)


def test_unknown_user_bad_key_and_missing_key(fake: FakeLastfm, archive: Archive) -> None:
    with pytest.raises(UnknownUser) as caught:
        sync(archive, config(fake, "nobody"))
    assert caught.value.exit_code == 2
    bad = ServiceConfig(service="lastfm", api_url=fake.url, user="alice",
                        api_key="f" * 32, rate=1000)
    with pytest.raises(AuthRejected) as rejected:
        sync(archive, bad)
    assert rejected.value.exit_code == 3
    with pytest.raises(CredentialsError):
        sync(archive, ServiceConfig(service="lastfm", api_url=fake.url, user="alice"))
    assert archive.get_cursor(LASTFM) is None


def test_persistent_failure_is_exit_4_and_keeps_what_was_committed(
        fake: FakeLastfm, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.add_scrobbles("alice", history(1000))
    monkeypatch.setattr(engine, "CONCURRENCY", 1)
    monkeypatch.setattr(engine, "GROUP", 1)
    original = fake.handle
    served = 0

    def failing_after_three(*args: object):  # type: ignore[no-untyped-def]
        nonlocal served
        served += 1
        if served > 3:
            fake.fail_next(1, "503")
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fake, "handle", failing_after_three)
    with pytest.raises(ServiceUnavailable) as caught:
        sync(archive, config(fake))
    assert caught.value.exit_code == 4
    cursor = archive.get_cursor(LASTFM)
    assert cursor is not None and complete_below(archive, fake, cursor)


def test_libre_fm_error_7_reads_as_an_empty_window(archive: Archive) -> None:
    import httpx

    def libre(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": {"code": "7", "#text": "No tracks"}})

    cfg = ServiceConfig(service="lastfm", api_url="https://libre.example/2.0/", user="alice",
                        api_key="k" * 32, rate=1000)
    client = engine.connect(cfg, transport=httpx.MockTransport(libre))
    pages = list(engine.walk(lambda p, lo: client.recent_tracks("alice", page=p, from_ts=lo,
                                                                to_ts=NOW), 5, NOW))
    assert pages == [([], NOW, 1)]


# --- export ---------------------------------------------------------------------------


def lb_listens(a: Archive, stamps: list[int], *, artist: str = "LB Artist") -> None:
    a.save_records(LB, [SourceRecord(ts, artist, f"Song {i}", "Record")
                        for i, ts in enumerate(stamps)])


def export(a: Archive, cfg: ServiceConfig, **kwargs: object):  # type: ignore[no-untyped-def]
    return engine.export(a, cfg, ExportOptions(**kwargs))  # type: ignore[arg-type]


def scrobble_batches(fake: FakeLastfm) -> list[list[int]]:
    """The timestamps of each track.scrobble request, in order."""
    out = []
    for r in fake.requests_for("track.scrobble"):
        out.append([int(v) for k, v in sorted(r.params.items()) if k.startswith("timestamp[")])
    return out


def test_export_sends_what_lastfm_lacks_in_batches_of_50_and_records_pushes(
        fake: FakeLastfm, archive: Archive) -> None:
    stamps = [NOW - DAY + 60 * i for i in range(120)]
    lb_listens(archive, stamps)
    report = export(archive, config(fake, session=True))
    assert (report.candidates, report.submitted, report.rejected) == (120, 120, 0)
    assert report.requests == 4  # the session check and three batches
    assert [len(b) for b in scrobble_batches(fake)] == [50, 50, 20]
    assert sorted(ts for ts, *_ in fake.scrobbles("alice")) == stamps
    again = export(archive, config(fake, session=True))
    assert (again.candidates, again.submitted, again.requests) == (0, 0, 0)
    assert again.already_there == 120


def test_export_leaves_what_lastfm_already_has(fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", [(NOW - 3600, "Same", "Song", None)])
    sync(archive, config(fake))
    archive.save_records(LB, [SourceRecord(NOW - 3590, "Same", "Song"),
                              SourceRecord(NOW - 1800, "Other", "Song")])
    report = export(archive, config(fake, session=True))
    assert (report.candidates, report.submitted, report.already_there) == (1, 1, 1)


def test_export_counts_listens_older_than_14_days_and_never_sends_them(
        fake: FakeLastfm, archive: Archive) -> None:
    lb_listens(archive, [NOW - 20 * DAY, NOW - 14 * DAY - 5, NOW - 13 * DAY])
    report = export(archive, config(fake, session=True))
    assert (report.candidates, report.too_old, report.submitted) == (3, 2, 1)
    assert report.as_json()["too_old"] == 2
    again = export(archive, config(fake, session=True))
    assert (again.too_old, again.submitted) == (2, 0)  # never recorded as pushed


def test_no_two_plays_share_a_second_nor_take_one_lastfm_has(
        fake: FakeLastfm, archive: Archive) -> None:
    fake.add_scrobbles("alice", [(NOW - 3600, "Held", "Here", None)])
    sync(archive, config(fake))
    archive.save_records(LB, [SourceRecord(NOW - 3600, "Other", "Play"),
                              SourceRecord(NOW - 600, "First", "Play"),
                              SourceRecord(NOW - 600, "Second", "Play"),
                              SourceRecord(NOW - 599, "Third", "Play")])
    report = export(archive, config(fake, session=True))
    assert report.submitted == 4
    [batch] = scrobble_batches(fake)
    assert len(batch) == len(set(batch)) == 4
    assert NOW - 3600 not in batch
    assert sorted(batch) == [NOW - 3599, NOW - 600, NOW - 599, NOW - 598]
    # read back, each moved play joins its own listen: nothing is missing any more
    sync(archive, config(fake))
    assert list(archive.missing_for(LASTFM)) == []
    assert archive.count() == 5


def test_assign_timestamps_gives_up_beyond_the_nudge_limit() -> None:
    def listen(i: int, ts: int) -> Listen:
        return Listen(id=i, listened_at=ts, artist="A", track=str(i))

    planned, homeless = engine.assign_timestamps(
        [listen(1, 100), listen(2, 100), listen(3, 100)], {101}, max_nudge=2)
    assert [(lst.id, ts) for lst, ts in planned] == [(1, 100), (2, 102)]
    assert [lst.id for lst in homeless] == [3]


def test_ignored_scrobbles_are_counted_by_reason(fake: FakeLastfm, archive: Archive) -> None:
    lb_listens(archive, [NOW - 7200, NOW - 600])
    fake.clock = lambda: NOW - 9000  # Last.fm's clock behind ours: the second is too new
    report = export(archive, config(fake, session=True))
    assert (report.submitted, report.rejected) == (1, 1)
    assert report.reasons == {"timestamp too new": 1}
    assert report.as_json()["reasons"] == {"timestamp too new": 1}
    again = export(archive, config(fake, session=True))
    assert (again.candidates, again.submitted, again.rejected) == (1, 0, 1)  # not pushed


def test_a_listen_in_the_future_is_not_sent_until_its_time(
        fake: FakeLastfm, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    lb_listens(archive, [NOW - 600, NOW + engine.MAX_FUTURE + 1])
    report = export(archive, config(fake, session=True))
    assert (report.candidates, report.submitted, report.rejected) == (2, 1, 1)
    assert report.reasons == {"timestamp too new": 1}
    assert [s[0] for s in fake.scrobbles("alice")] == [NOW - 600]  # the other never went
    again = export(archive, config(fake, session=True))
    assert (again.candidates, again.rejected, again.requests) == (1, 1, 0)
    later = NOW + 2 * engine.MAX_FUTURE  # once its time has come, it goes
    monkeypatch.setattr(engine, "NOW", lambda: later)
    fake.clock = lambda: later
    assert export(archive, config(fake, session=True)).submitted == 1


def test_daily_cap_stops_and_a_later_run_continues(fake: FakeLastfm,
                                                   archive: Archive) -> None:
    stamps = [NOW - DAY + 60 * i for i in range(120)]
    lb_listens(archive, stamps)
    fake.daily_cap = 60
    report = export(archive, config(fake, session=True))
    assert (report.submitted, report.remaining, report.rejected) == (60, 60, 0)
    assert report.requests == 3  # stopped after the batch that hit the cap
    assert report.as_json()["remaining"] == 60
    fake.daily_cap = None  # the next day
    later = export(archive, config(fake, session=True))
    assert (later.candidates, later.submitted, later.remaining) == (60, 60, 0)
    assert sorted(ts for ts, *_ in fake.scrobbles("alice")) == stamps


def test_dry_run_sends_nothing_and_hands_over_each_item(fake: FakeLastfm,
                                                        archive: Archive) -> None:
    lb_listens(archive, [NOW - 600, NOW - 600, NOW - 20 * DAY])
    items: list[dict[str, object]] = []
    report = export(archive, config(fake), dry_run=True, on_item=items.append)
    assert fake.request_log == [] and report.requests == 0
    assert (report.submitted, report.too_old) == (2, 1)
    assert items == [
        {"listened_at": NOW - 600, "artist": "LB Artist", "track": "Song 0", "album": "Record"},
        {"listened_at": NOW - 599, "artist": "LB Artist", "track": "Song 1", "album": "Record"},
    ]
    assert list(archive.missing_for(LASTFM)) != []  # nothing recorded as pushed


def test_export_needs_a_session_key_for_the_configured_user(fake: FakeLastfm,
                                                            archive: Archive) -> None:
    lb_listens(archive, [NOW - 600])
    with pytest.raises(CredentialsError, match="session key"):
        export(archive, config(fake))
    assert fake.request_log == []
    fake.add_user("bob")
    bobs = ServiceConfig(service="lastfm", api_url=fake.url, user="alice",
                         api_key=fake.api_key, api_secret=fake.api_secret,
                         session_key=fake.session_key("bob"), rate=1000)
    with pytest.raises(CredentialsError, match="belongs to 'bob'"):
        export(archive, bobs)
    assert fake.requests_for("track.scrobble") == []


# --- authorization ------------------------------------------------------------------------


def test_authorize_runs_the_desktop_flow(fake: FakeLastfm) -> None:
    fake.add_user("Alice")
    urls: list[str] = []

    def approve_later(url: str) -> None:
        urls.append(url)
        token = url.rsplit("token=", 1)[1]
        threading.Timer(0.05, fake.approve, (token, "alice")).start()

    cfg = ServiceConfig(service="lastfm", api_url=fake.url, api_key=fake.api_key,
                        api_secret=fake.api_secret, rate=1000)
    name, key = engine.authorize(cfg, on_url=approve_later, interval=0.01,
                                 sleep=time.sleep)
    assert name == "Alice" and key == fake.session_key("alice")
    assert urls[0].startswith(fake.url.removesuffix("2.0/") + "api/auth/?api_key=")


def test_authorize_rejects_a_bad_secret(fake: FakeLastfm) -> None:
    cfg = ServiceConfig(service="lastfm", api_url=fake.url, api_key=fake.api_key,
                        api_secret="0" * 32, rate=1000)
    with pytest.raises(AuthRejected) as caught:
        engine.authorize(cfg, on_url=lambda url: None)
    assert caught.value.exit_code == 3 and caught.value.code == 13


def test_a_pushed_play_not_yet_read_back_keeps_its_second(fake: FakeLastfm,
                                                          archive: Archive) -> None:
    archive.save_records(LB, [SourceRecord(NOW - 600, "First", "Play")])
    export(archive, config(fake, session=True))
    archive.save_records(LB, [SourceRecord(NOW - 600, "Second", "Play")])
    report = export(archive, config(fake, session=True))
    assert report.submitted == 1
    assert scrobble_batches(fake) == [[NOW - 600], [NOW - 599]]
