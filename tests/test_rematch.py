"""A run of plays of one track matched again when a record arrives late (archive/rematch.py).

The audit's case: a song on repeat that the two services stamp more than half the song
apart, one service's newest record arriving at a later sync. Matched as it came, the
run was paired one play off and the oldest play stranded: three plays, four listens,
and an export pushed the fourth to both services.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.matching import match_times
from scrobbler_cli.models import Account, SourceRecord

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")
T = 1_700_000_000
BOTH = ("lastfm:alice", "listenbrainz:alice")


def rec(t: int, track: str = "Loop Song", **kw: object) -> SourceRecord:
    return SourceRecord(listened_at=t, artist="Loop Artist", track=track, **kw)  # type: ignore[arg-type]


@pytest.fixture
def archive(tmp_path: Path):
    with Archive(tmp_path / "archive.db") as a:
        yield a


def plays(archive: Archive) -> list[tuple[int, ...]]:
    """Each listen as the times of its records, Last.fm's first, relative to T."""
    out = []
    for x in archive.listens():
        times = dict(zip(x.accounts, x.seen_at))
        out.append(tuple(times[a] - T for a in BOTH if a in times))
    return sorted(out)


def folded_counts_hold(archive: Archive) -> None:
    """The name counts (folded and tail) say what the listens table says."""
    archive.fold_counts()
    for table, column in (("artists", "artist_id"), ("tracks", "track_id"),
                          ("albums", "album_id")):
        kept = dict(archive.conn.execute(f"SELECT id, listens FROM {table} WHERE listens > 0"))
        real = dict(archive.conn.execute(
            f"SELECT {column}, count(*) FROM listens WHERE {column} IS NOT NULL"
            f" GROUP BY {column}"))
        assert kept == real, table


@pytest.mark.parametrize("first", [LASTFM, LB], ids=["lastfm-first", "listenbrainz-first"])
def test_a_late_newest_record_pairs_the_whole_run_again(archive: Archive,
                                                        first: Account) -> None:
    lastfm = [rec(T), rec(T + 240), rec(T + 480)]
    lb = [rec(T + 150), rec(T + 390)]  # its record of the third play comes later
    if first == LASTFM:
        archive.save_records(LASTFM, lastfm)
        archive.save_records(LB, lb)
    else:
        archive.save_records(LB, lb)
        archive.save_records(LASTFM, lastfm)
    assert archive.count() == 3  # one play stranded for now (the least gap)
    saved = archive.save_records(LB, [rec(T + 630)])
    assert plays(archive) == [(0, 150), (240, 390), (480, 630)]
    assert (saved.new, saved.merged) == (0, 1)  # no listen more than before
    assert list(archive.missing_for(LASTFM)) == list(archive.missing_for(LB)) == []
    folded_counts_hold(archive)


def test_a_pushed_listen_stays_and_the_other_listen_of_its_play_goes(
        archive: Archive) -> None:
    """What was pushed was that listen (its first sighting's time): it is kept as it is,
    and the other listen of the same play hands it its records and MusicBrainz ids."""
    mbid = "0f1c4a3e-7c4f-4e8e-9d1a-3c2b1a0f9e8d"
    archive.save_records(LB, [rec(T + 150, recording_mbid=mbid), rec(T + 390)])
    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480)])
    stranded = next(x for x in archive.listens() if x.listened_at == T)
    gone = next(x for x in archive.listens() if x.listened_at == T + 150)
    archive.record_pushes(Account("listenbrainz", "bob"), [stranded.id])
    archive.save_records(LB, [rec(T + 630)])
    assert plays(archive) == [(0, 150), (240, 390), (480, 630)]
    kept = next(x for x in archive.listens() if x.id == stranded.id)
    assert (kept.listened_at, kept.accounts, kept.recording_mbid) == (T, BOTH, mbid)
    assert archive.conn.execute("SELECT listen_id FROM pushes").fetchall() == [(kept.id,)]
    assert archive.conn.execute(
        "SELECT count(*) FROM listens WHERE id = ?", (gone.id,)).fetchone()[0] == 0
    folded_counts_hold(archive)


def test_two_pushed_listens_of_one_play_are_left_as_they_are(archive: Archive) -> None:
    archive.save_records(LB, [rec(T + 150), rec(T + 390)])
    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480)])
    ids = [x.id for x in archive.listens() if x.listened_at in (T, T + 150)]
    archive.record_pushes(Account("listenbrainz", "bob"), ids)
    archive.save_records(LB, [rec(T + 630)])
    assert archive.count() == 4  # which of the two was sent cannot be told apart
    assert sorted(r[0] for r in archive.conn.execute("SELECT listen_id FROM pushes")) == \
        sorted(ids)


def test_a_new_record_far_from_any_pair_is_saved_as_before(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T), rec(T + 240)])
    archive.save_records(LB, [rec(T + 10)])
    saved = archive.save_records(LB, [rec(T + 5000)])  # another play, an hour later
    assert (saved.new, saved.merged) == (1, 0)
    assert plays(archive) == [(0, 10), (240,), (5000,)] or plays(archive) == [
        (0, 10), (240,), (5000,)]


def test_other_tracks_in_the_run_are_left_alone(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480),
                                  rec(T + 300, track="Other")])
    archive.save_records(LB, [rec(T + 150), rec(T + 390), rec(T + 310, track="Other")])
    archive.save_records(LB, [rec(T + 630)])
    assert archive.count() == 4
    other = [x for x in archive.listens() if x.track == "Other"]
    assert [x.accounts for x in other] == [BOTH]


def test_a_third_account_leaves_the_run_as_it_was_matched(archive: Archive) -> None:
    bob = Account("listenbrainz", "bob")
    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480)])
    archive.save_records(LB, [rec(T + 150), rec(T + 390)])
    archive.save_records(bob, [rec(T + 100)])
    archive.save_records(LB, [rec(T + 630)])
    assert archive.count() == 4  # not solved for three accounts: matched as it comes


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("SEEDS", 40))))
def test_plays_arriving_in_any_order_pair_as_if_all_came_at_once(
        tmp_path: Path, seed: int) -> None:
    """Songs on repeat, each service stamping a steady offset from the other (up to
    the tolerance) and missing a play now and then; the records arrive in random
    chunks, each service's in time order, interleaved, some read again. However they arrive, the
    archive ends with as many listens as the best pairing of everything at once."""
    rnd = random.Random(seed)
    length = rnd.choice([150, 180, 240, 300])
    offset = rnd.randint(-280, 280)
    n = rnd.randint(3, 12)
    start = [T + i * length + rnd.randint(0, 5) for i in range(n)]
    lastfm = [t for t in start if rnd.random() > 0.1]
    lb = [t + offset + rnd.randint(-3, 3) for t in start if rnd.random() > 0.1]
    chunks: list[tuple[Account, list[int]]] = []
    for account, times in ((LASTFM, lastfm), (LB, lb)):
        i = 0
        while i < len(times):
            k = rnd.randint(1, 3)
            chunks.append((account, times[i:i + k]))
            i += k
    # each account's chunks in order, the two accounts interleaved at random
    order: list[tuple[Account, list[int]]] = []
    left = {LASTFM: [c for c in chunks if c[0] == LASTFM], LB: [c for c in chunks if c[0] == LB]}
    while left[LASTFM] or left[LB]:
        account = rnd.choice([a for a in left if left[a]])
        order.append(left[account].pop(0))
    with Archive(tmp_path / "a.db", fold_after=rnd.choice([1, 1000])) as archive:
        sent: dict[Account, list[int]] = {LASTFM: [], LB: []}
        for account, times in order:
            if rnd.random() < 0.3:  # a sync's lookback reads some records again
                times = sent[account][-2:] + times
            saved = archive.save_records(account, [rec(t) for t in times])
            assert saved.duplicates == len(set(times) & set(sent[account]))
            sent[account] = sorted(set(sent[account]) | set(times))
            # every record is on exactly one listen, never twice
            records = Counter(
                (a, s) for x in archive.listens() for a, s in zip(x.accounts, x.seen_at))
            assert all(v == 1 for v in records.values())
        assert sum(records.values()) == len(lastfm) + len(lb)
        best = match_times(lastfm, lb, archive.tolerance)
        assert archive.count() == len(lastfm) + len(lb) - len(best), (lastfm, lb)
        folded_counts_hold(archive)


def test_run_end_follows_a_song_on_repeat_to_its_last_play(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480), rec(T + 1400),
                                  rec(T + 300, track="Other")])
    first, *_ = archive.listens()
    assert first.listened_at == T
    # each play within three tolerances (900 s) of the one before: 920 s is another run
    assert archive.run_end(first.id) == T + 480
    archive.save_records(LASTFM, [rec(T + 2300), rec(T + 3100)])
    later = next(x for x in archive.listens() if x.listened_at == T + 1400)
    assert archive.run_end(later.id) == T + 3100  # 900, then 800 s to the next play
    assert archive.run_end(first.id) == T + 480
    assert archive.run_end(first.id, until=T + 200) == T + 480  # far enough: stops


def test_export_holds_a_play_whose_run_reaches_the_hold(archive: Archive) -> None:
    from scrobbler_cli.export import RUN_HORIZON, ExportOptions

    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480)])
    first = next(x for x in archive.listens() if x.listened_at == T)
    assert ExportOptions(hold_from=T + 480).holds(archive, first)
    assert not ExportOptions(hold_from=T + 481).holds(archive, first)
    assert not ExportOptions().holds(archive, first)  # never synced: nothing held
    # a play long before the hold is not followed through its run at all
    archive.save_records(LASTFM, [rec(T + 480 + 240 * k) for k in range(1, 400)])
    assert archive.run_end(first.id) > T + RUN_HORIZON
    assert not ExportOptions(hold_from=T + RUN_HORIZON + 1).holds(archive, first)


def test_a_save_counts_the_listens_it_adds(tmp_path: Path) -> None:
    """The audit's case: re-pairing gives a stranded earlier record its own listen."""
    with Archive(tmp_path / "a.db", tolerance=10) as archive:
        archive.save_records(LB, [rec(T + 9), rec(T + 10), rec(T + 17)])
        archive.save_records(LASTFM, [rec(T + 2)])
        archive.save_records(LASTFM, [rec(T + 6), rec(T + 10)])
        before = archive.count()
        saved = archive.save_records(LASTFM, [rec(T + 16)])
        assert archive.count() - before == saved.new
        assert saved.new + saved.merged == 1


def test_runs_too_long_to_pair_again_are_matched_with_their_batch_as_before(
        archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first ListenBrainz sync (newest page first) of a song looped past ``MAX_RUN``
    plays: its records are matched with the rest of their page, as before rematch."""
    monkeypatch.setattr("scrobbler_cli.archive.rematch.MAX_RUN", 8)
    archive.save_records(LASTFM, [rec(T + i * 240) for i in range(60)])
    newest_first = [T + i * 240 + 150 for i in range(60)][::-1]
    for i in range(0, 60, 10):
        archive.save_records(LB, [rec(t) for t in newest_first[i:i + 10]])
    assert archive.count() == 60


def test_late_records_of_two_runs_in_one_batch_are_each_paired_again(
        archive: Archive) -> None:
    days = [T, T + 2 * 86400]  # two sessions of the song on repeat, two days apart
    archive.save_records(LASTFM, [rec(d + k * 240) for d in days for k in range(3)])
    archive.save_records(LB, [rec(d + k * 240 + 150) for d in days for k in range(2)])
    archive.save_records(LB, [rec(d + 2 * 240 + 150) for d in days])  # one batch
    assert archive.count() == 6
    assert list(archive.missing_for(LB)) == []


@pytest.mark.parametrize("fold_after", [1, 100_000])
def test_a_batch_that_fails_after_pairing_a_run_again_leaves_nothing_of_it(
        tmp_path: Path, fold_after: int) -> None:
    """Re-pairing is part of its batch's transaction: a batch that fails after it (the
    writer process rolls that batch back alone) leaves the listens and the name counts
    as they were, and the same records saved again are paired as they should be."""
    with Archive(tmp_path / "a.db", fold_after=fold_after) as archive:
        archive.save_records(LB, [rec(T + 150), rec(T + 390)])
        archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480)])
        before = plays(archive)
        with archive.transaction():
            archive.save_records(LASTFM, [rec(T + 5000, track="Other")])
            with pytest.raises(RuntimeError), archive.transaction():
                archive.save_records(LB, [rec(T + 630)])  # pairs the run again
                raise RuntimeError("the batch fails after it")
        assert [p for p in plays(archive) if p != (5000,)] == before
        folded_counts_hold(archive)
        archive.save_records(LB, [rec(T + 630)])
        assert plays(archive) == [(0, 150), (240, 390), (480, 630), (5000,)]
        folded_counts_hold(archive)
