"""Identity and cross-source matching (archive.md, "Identity and deduplication")."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.matching import (
    DEFAULT_TOLERANCE,
    Candidate,
    CandidateIndex,
    assign,
    match_times,
)
from scrobbler_cli.models import Account, SourceRecord

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")
T = 1_700_000_000  # 2023-11-14T22:13:20Z


def rec(t: int, artist: str = "Radiohead", track: str = "Reckoner", **kw: object
        ) -> SourceRecord:
    return SourceRecord(listened_at=t, artist=artist, track=track, **kw)  # type: ignore[arg-type]


@pytest.fixture
def archive(tmp_path: Path):
    with Archive(tmp_path / "archive.db") as a:
        yield a


def listens(archive: Archive) -> list[tuple[int, tuple[str, ...]]]:
    """(listened_at, accounts) of every listen, oldest first."""
    return [(x.listened_at, x.accounts) for x in archive.listens()]


def attached(archive: Archive, account: Account) -> dict[int, int]:
    """For each record of ``account``: its own time -> the time of the listen it joined."""
    rows = archive.conn.execute(
        "SELECT s.listened_at, l.listened_at FROM sources s JOIN listens l ON l.id = s.listen_id"
        " WHERE s.service = ? AND s.account = ?", (account.service, account.name))
    return dict(rows.fetchall())


BOTH = ("lastfm:alice", "listenbrainz:alice")


# -- within one source ------------------------------------------------------------------


def test_two_plays_four_minutes_apart_on_one_source_stay_two(archive: Archive) -> None:
    saved = archive.save_records(LASTFM, [rec(T), rec(T + 240)])
    assert (saved.new, saved.merged, saved.duplicates) == (2, 0, 0)
    assert listens(archive) == [(T, ("lastfm:alice",)), (T + 240, ("lastfm:alice",))]


def test_different_times_within_one_source_are_never_merged(archive: Archive) -> None:
    # one second apart, saved in separate batches, spelled differently: still two plays
    archive.save_records(LASTFM, [rec(T)])
    saved = archive.save_records(LASTFM, [rec(T + 1, "RADIOHEAD", "reckoner ")])
    assert saved.new == 1
    assert archive.count() == 2


def test_same_source_resave_is_a_duplicate(archive: Archive) -> None:
    page = [rec(T), rec(T + 300, track="Nude"), rec(T + 600, album="In Rainbows")]
    first = archive.save_records(LASTFM, page)
    again = archive.save_records(LASTFM, page)
    assert (first.new, first.duplicates) == (3, 0)
    assert (again.received, again.new, again.merged, again.duplicates) == (3, 0, 0, 3)
    # a re-fetch spelled differently is still the same listen of that account
    variant = archive.save_records(LASTFM, [rec(T, " radiohead", "RECKONER")])
    assert variant.duplicates == 1
    assert archive.count() == 3
    assert archive.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 3


def test_duplicates_inside_one_batch_count_once(archive: Archive) -> None:
    saved = archive.save_records(LASTFM, [rec(T), rec(T), rec(T, "radiohead")])
    assert (saved.new, saved.duplicates) == (1, 2)
    assert archive.count() == 1


# -- across sources ------------------------------------------------------------------


def test_same_play_on_two_sources_90s_apart_is_one_listen(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T, album="In Rainbows")])
    saved = archive.save_records(LB, [rec(T + 90, album="In Rainbows")])
    assert (saved.new, saved.merged) == (0, 1)
    [listen] = archive.listens()
    assert listen.accounts == BOTH
    assert listen.sources == ["lastfm", "listenbrainz"]
    assert listen.listened_at == T  # the time the first source gave
    assert archive.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 2


REC_MBID = "a4c5a4fa-5b3e-4c5f-9a5f-2b8a1c3e1d11"
REL_MBID = "b1a5c2d3-1111-4e2f-8a9b-0c1d2e3f4a5b"
ART_MBID = "a74b1b7f-71a5-4011-9441-d0b5e4122711"


def test_a_later_sighting_fills_in_the_mbids_the_listen_lacks(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T, album="In Rainbows")])  # no duration, no MBIDs
    archive.save_records(LB, [rec(T + 90, "RADIOHEAD", "reckoner", album="In Rainbows (LP)",
                                  duration=290, recording_mbid=REC_MBID,
                                  release_mbid=REL_MBID, artist_mbids=(ART_MBID,))])
    [listen] = archive.listens()
    assert (listen.recording_mbid, listen.release_mbid, listen.artist_mbids) == (
        REC_MBID, REL_MBID, (ART_MBID,))
    # the time, the names and the duration stay the first sighting's: ListenBrainz tells
    # listens apart by names and duration, so an export re-sent after a fill is still the
    # same listen there; and the name counts stay as they were
    assert (listen.listened_at, listen.artist, listen.track, listen.album,
            listen.duration) == (T, "Radiohead", "Reckoner", "In Rainbows", None)
    archive.fold_counts()
    assert archive.conn.execute("SELECT name, listens FROM albums WHERE listens").fetchall() == [
        ("In Rainbows", 1)]


def test_a_later_sighting_never_overwrites_what_the_listen_has(archive: Archive) -> None:
    archive.save_records(LB, [rec(T, recording_mbid=REC_MBID)])
    other = "0f0e0d0c-0b0a-4909-8807-060504030201"
    archive.save_records(LASTFM, [rec(T + 30, recording_mbid=other, release_mbid=REL_MBID)])
    [listen] = archive.listens()
    assert (listen.recording_mbid, listen.release_mbid) == (
        REC_MBID, REL_MBID)  # only the missing release MBID came from Last.fm


def test_a_repeat_fills_in_what_the_service_added_since(archive: Archive) -> None:
    # ListenBrainz maps a listen to MusicBrainz some time after it was submitted: a
    # lookback reads it again with the MBIDs the first read did not have
    archive.save_records(LB, [rec(T, duration=290), rec(T + 400, track="Nude")])
    saved = archive.save_records(LB, [rec(T, duration=300, recording_mbid=REC_MBID),
                                      rec(T + 400, track="Nude")])
    assert (saved.new, saved.duplicates) == (0, 2)
    first, second = archive.listens(newest_first=False)
    assert (first.duration, first.recording_mbid) == (290, REC_MBID)  # the first duration
    assert (second.duration, second.recording_mbid) == (None, None)


def test_a_repeat_of_a_later_sighting_fills_in_its_listen(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T)])
    archive.save_records(LB, [rec(T + 60)])
    saved = archive.save_records(LB, [rec(T + 60, release_mbid=REL_MBID)])
    assert (saved.duplicates, saved.merged) == (1, 0)
    [listen] = archive.listens()
    assert listen.release_mbid == REL_MBID and listen.accounts == BOTH


def test_a_repeat_that_adds_nothing_writes_nothing(archive: Archive) -> None:
    archive.save_records(LB, [rec(T, release_mbid=REL_MBID)])  # lacks the others
    before = archive.conn.total_changes
    archive.save_records(LB, [rec(T, duration=300, release_mbid=REC_MBID)])
    assert archive.conn.total_changes == before  # the row is not rewritten
    [listen] = archive.listens()
    assert (listen.duration, listen.release_mbid) == (None, REL_MBID)


def test_order_of_sources_does_not_matter(tmp_path: Path) -> None:
    results = []
    for order in ((LASTFM, LB), (LB, LASTFM)):
        with Archive(tmp_path / f"{order[0].service}.db") as archive:
            archive.save_records(order[0], [rec(T), rec(T + 240)])
            archive.save_records(order[1], [rec(T + 30), rec(T + 260)])
            results.append([x.accounts for x in archive.listens()])
    assert results[0] == results[1] == [BOTH, BOTH]


@pytest.mark.parametrize(
    ("artist", "track"),
    [
        ("RADIOHEAD", "RECKONER"),
        ("  Radiohead  ", "Reckoner\t"),
        ("Radiohead", "Reckoner"),
    ],
)
def test_case_and_whitespace_variants_match(archive: Archive, artist: str, track: str) -> None:
    archive.save_records(LASTFM, [rec(T)])
    archive.save_records(LB, [rec(T + 60, artist, track)])
    assert listens(archive) == [(T, BOTH)]


def test_quote_and_dash_variants_match(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T, "Guns N\u2019 Roses", "Sweet Child o\u2019 Mine")])
    archive.save_records(LASTFM, [rec(T + 1000, "Blur", "Song 2 \u2013 2012 Remaster")])
    archive.save_records(LB, [rec(T + 20, "guns n' roses", "sweet child o' mine"),
                              rec(T + 1010, "BLUR", "Song 2 - 2012 Remaster")])
    assert listens(archive) == [(T, BOTH), (T + 1000, BOTH)]


def test_different_tracks_at_the_same_time_stay_apart(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T, track="Reckoner")])
    archive.save_records(LB, [rec(T, track="Nude")])
    assert archive.count() == 2


def test_recording_mbid_matches_different_names(archive: Archive) -> None:
    mbid = "0a3b1c6e-5b4f-4a0e-8f36-6c4a8f7c2e11"
    archive.save_records(LASTFM, [rec(T, "Beatles", "Hey Jude", recording_mbid=mbid)])
    saved = archive.save_records(
        LB, [rec(T + 120, "The Beatles", "Hey Jude - Remastered 2015", recording_mbid=mbid)])
    assert saved.merged == 1
    [listen] = archive.listens()
    assert (listen.artist, listen.track, listen.accounts) == ("Beatles", "Hey Jude", BOTH)


def test_different_mbids_and_names_do_not_match(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T, "Beatles", "Hey Jude",
                                      recording_mbid="0a3b1c6e-5b4f-4a0e-8f36-6c4a8f7c2e11")])
    archive.save_records(LB, [rec(T + 10, "Beatles", "Let It Be",
                                  recording_mbid="1b3b1c6e-5b4f-4a0e-8f36-6c4a8f7c2e11")])
    assert archive.count() == 2


def test_matching_is_one_to_one_and_nearest_in_time(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T), rec(T + 240)])
    archive.save_records(LB, [rec(T + 10), rec(T + 250)])
    assert listens(archive) == [(T, BOTH), (T + 240, BOTH)]
    # each ListenBrainz record joined the Last.fm play nearest to it
    assert attached(archive, LB) == {T + 10: T, T + 250: T + 240}


def test_one_record_matches_at_most_one_listen(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T), rec(T + 240)])
    archive.save_records(LB, [rec(T + 130)])  # 130 s from the first, 110 s from the second
    assert listens(archive) == [(T, ("lastfm:alice",)), (T + 240, BOTH)]
    assert attached(archive, LB) == {T + 130: T + 240}


def test_one_listen_matches_at_most_one_record_per_source(archive: Archive) -> None:
    # Last.fm saw one play; ListenBrainz saw three of the same song close together
    archive.save_records(LASTFM, [rec(T + 100)])
    saved = archive.save_records(LB, [rec(T), rec(T + 90), rec(T + 200)])
    assert (saved.new, saved.merged) == (2, 1)
    assert attached(archive, LB)[T + 90] == T + 100  # the nearest one joined
    assert listens(archive) == [
        (T, ("listenbrainz:alice",)),
        (T + 100, BOTH),
        (T + 200, ("listenbrainz:alice",)),
    ]


def test_a_listen_already_matched_for_a_source_is_not_taken_again(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T)])
    archive.save_records(LB, [rec(T + 10)])
    # a second ListenBrainz play later on, within the tolerance of the Last.fm one
    saved = archive.save_records(LB, [rec(T + 200)])
    assert saved.new == 1
    assert listens(archive) == [(T, BOTH), (T + 200, ("listenbrainz:alice",))]


def test_three_sources_join_one_listen(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T)])
    archive.save_records(LB, [rec(T + 60)])
    archive.save_records(Account("import", "old.jsonl"), [rec(T - 30)])
    [listen] = archive.listens()
    assert listen.accounts == ("import:old.jsonl", *BOTH)
    assert listen.sources == ["import", "lastfm", "listenbrainz"]


def test_batches_spanning_days_match_in_every_window(archive: Archive) -> None:
    days = [T + d * 86400 * 3 for d in range(5)]
    archive.save_records(LASTFM, [rec(t) for t in days])
    saved = archive.save_records(LB, [rec(t + 45) for t in days])
    assert (saved.new, saved.merged) == (0, 5)
    assert all(acc == BOTH for _, acc in listens(archive))


# -- the tolerance ------------------------------------------------------------------


def test_default_tolerance_is_300_seconds_inclusive(tmp_path: Path) -> None:
    assert DEFAULT_TOLERANCE == 300
    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(LASTFM, [rec(T), rec(T + 10_000)])
        archive.save_records(LB, [rec(T + 300), rec(T + 10_301)])
        assert listens(archive) == [
            (T, BOTH),
            (T + 10_000, ("lastfm:alice",)),
            (T + 10_301, ("listenbrainz:alice",)),
        ]


def test_tolerance_is_configurable(tmp_path: Path) -> None:
    with Archive(tmp_path / "narrow.db", tolerance=60) as archive:
        archive.save_records(LASTFM, [rec(T)])
        archive.save_records(LB, [rec(T + 90)])
        assert archive.count() == 2
    with Archive(tmp_path / "wide.db", tolerance=900) as archive:
        archive.save_records(LASTFM, [rec(T)])
        archive.save_records(LB, [rec(T + 800)])
        assert listens(archive) == [(T, BOTH)]


# -- the pure helpers ------------------------------------------------------------------


def test_match_times_pairs_nearest_one_to_one() -> None:
    assert match_times([0, 240], [10, 250]) == [(0, 0), (1, 1)]
    assert match_times([0, 240], [130]) == [(1, 0)]
    assert match_times([100], [0, 90, 200]) == [(0, 1)]
    assert match_times([0], [301]) == []
    assert match_times([0], [301], tolerance=400) == [(0, 0)]
    assert match_times([], [1, 2]) == []


def test_candidate_index_finds_free_candidates_within_the_tolerance() -> None:
    index = CandidateIndex()
    index.add(Candidate(1, 1000, taken=False), track_id=7, mbid=None)
    index.add(Candidate(2, 1100, taken=True), track_id=7, mbid=None)
    index.add(Candidate(3, 1250, taken=False), track_id=7, mbid="m")
    index.add(Candidate(4, 1500, taken=False), track_id=8, mbid="m")
    assert sorted(c.listen_id for c in index.within(1110, 7, None, 300)) == [1, 3]
    assert sorted(c.listen_id for c in index.within(1240, 9, "m", 300)) == [3, 4]
    assert sorted(c.listen_id for c in index.within(1250, 7, "m", 300)) == [1, 3, 4]
    assert index.within(1240, 9, None, 300) == []
    assert index.within(2000, 7, None, 300) == []


def test_assign_pairs_as_many_as_it_can_then_the_nearest() -> None:
    a, b = Candidate(1, 100), Candidate(2, 400)
    # record 0 at t=0, record 1 at t=90, record 2 at t=200; both candidates in reach
    pairs = [(100, 1, 0, a), (10, 1, 1, a), (100, 1, 2, a), (200, 2, 2, b)]
    chosen = assign(pairs)
    assert chosen == {1: a, 2: b}  # two pairs either way: the smaller gaps (210, not 300)
    assert a.taken and b.taken


def test_match_times_keeps_a_steady_offset_on_a_song_on_repeat() -> None:
    # one service stamps each play 200 s after the other (its end, not its start): each
    # play's record is 40 s from the next play's other record, 200 s from its own
    assert match_times([0, 240, 480], [200, 440, 680]) == [(0, 0), (1, 1), (2, 2)]
    assert match_times([480, 0, 240], [680, 200, 440]) == [(0, 0), (1, 1), (2, 2)]
    # a 180 s song, 100 s apart, 40 times over
    plays = [i * 180 for i in range(40)]
    assert match_times(plays, [t + 100 for t in plays]) == [(i, i) for i in range(40)]
    # more pairs is not everything: with one play each, still the nearest
    assert match_times([0, 240], [200]) == [(1, 0)]


@pytest.mark.parametrize("first", [LASTFM, LB], ids=["lastfm-first", "listenbrainz-first"])
def test_a_song_on_repeat_stamped_a_steady_offset_apart_is_each_play_once(
        archive: Archive, first: Account) -> None:
    """The audit's case: Last.fm at +0/+240/+480, ListenBrainz 200 s later. Smallest gap
    first paired each ListenBrainz play with the next Last.fm one, stranding two: four
    listens for three plays, and an export sent the fourth to each service."""
    plays = {LASTFM: [rec(T), rec(T + 240), rec(T + 480)],
             LB: [rec(T + 200), rec(T + 440), rec(T + 680)]}
    second = LB if first == LASTFM else LASTFM
    archive.save_records(first, plays[first])
    saved = archive.save_records(second, plays[second])
    assert (saved.new, saved.merged) == (0, 3)
    assert archive.count() == 3
    assert attached(archive, second) == {
        s.listened_at: f.listened_at for s, f in zip(plays[second], plays[first])}
    assert list(archive.missing_for(LASTFM)) == list(archive.missing_for(LB)) == []


def _optimum(pairs: list[tuple[int, int, int, Candidate]]) -> tuple[int, int]:
    """The most pairs, then the least total gap, of any one-to-one matching (brute force)."""
    best = (0, 0)

    def walk(rest: list[tuple[int, int, int, Candidate]], rows: set[int], lids: set[int],
             count: int, gap: int) -> None:
        nonlocal best
        best = max(best, (count, -gap))
        for k, (g, lid, idx, _) in enumerate(rest):
            if idx not in rows and lid not in lids:
                walk(rest[k + 1:], rows | {idx}, lids | {lid}, count + 1, gap + g)

    walk(pairs, set(), set(), 0, 0)
    return best[0], -best[1]


def test_assign_pairs_across_spellings_linked_by_recording_mbid() -> None:
    """Two plays of one song, spelled two ways: the other source's first play is linked
    to this source's second record by recording MBID alone. Both plays pair only if
    the pairs cross in time, which pairing plays of one spelling never needs."""
    early, late = Candidate(101, -50), Candidate(102, 250)  # "(Remastered)" + MBID; plain
    pairs = [(250, 102, 0, late),  # record 0 at 0: plain, no MBID
             (50, 102, 1, late), (250, 101, 1, early)]  # record 1 at 200: plain + MBID
    assert assign(pairs) == {0: late, 1: early}


def test_assign_finds_the_best_matching_of_any_pairs(  # a property, over random groups
        ) -> None:
    import random

    rng = random.Random(7)
    for _ in range(400):
        times = sorted(rng.randrange(0, 900) for _ in range(rng.randint(1, 5)))
        cands = [Candidate(100 + k, rng.randrange(-300, 1200))
                 for k in range(rng.randint(1, 5))]
        # pairs within the tolerance; some left out (a different spelling, no MBID)
        pairs = [(abs(t - c.listened_at), c.listen_id, idx, c)
                 for idx, t in enumerate(times) for c in cands
                 if abs(t - c.listened_at) <= 300 and rng.random() < 0.8]
        if not pairs:
            continue
        chosen = assign(pairs)
        gaps = {(p[2], p[1]): p[0] for p in pairs}
        assert all((idx, c.listen_id) in gaps for idx, c in chosen.items())
        assert len({c.listen_id for c in chosen.values()}) == len(chosen)  # one to one
        got = (len(chosen), sum(gaps[idx, c.listen_id] for idx, c in chosen.items()))
        assert got == _optimum(pairs), (times, [c.listened_at for c in cands], pairs)


def test_two_spellings_of_two_plays_linked_by_mbid_are_two_listens(archive: Archive) -> None:
    """Another player's history spells the first play "(Remastered)" with its MBID; the
    ListenBrainz records have the plain name, and the MBID on the second play only."""
    mbid = "8f0c2a8a-5f8e-4b8a-9c43-2c1b7b1a0f11"
    player = Account("import", "player.jsonl")
    archive.save_records(player, [rec(T - 50, track="Reckoner (Remastered)",
                                      recording_mbid=mbid), rec(T + 250)])
    saved = archive.save_records(LB, [rec(T), rec(T + 200, recording_mbid=mbid)])
    assert (saved.new, saved.merged) == (0, 2)
    assert archive.count() == 2
    assert attached(archive, LB) == {T: T + 250, T + 200: T - 50}
    assert list(archive.missing_for(LB)) == []


def test_a_group_too_big_to_weigh_is_matched_smallest_gap_first(
        archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scrobbler_cli.matching.MAX_CELLS", 8)
    archive.save_records(LASTFM, [rec(T), rec(T + 240), rec(T + 480)])
    saved = archive.save_records(LB, [rec(T + 200), rec(T + 440), rec(T + 680)])
    assert (saved.new, saved.merged) == (1, 2)  # one to one still, but not the best
    assert attached(archive, LB) == {T + 200: T + 240, T + 440: T + 480, T + 680: T + 680}


def test_a_repeat_never_takes_the_candidate_a_new_record_needs(archive: Archive) -> None:
    archive.save_records(LASTFM, [rec(T)])
    archive.save_records(LB, [rec(T + 50)])  # the same play, seen by ListenBrainz
    archive.save_records(LB, [rec(T + 200)])  # a second play only ListenBrainz has
    # Last.fm re-read: its first play again (nearer the second play than its own second
    # play is, but a repeat), and its second play, 280 s from ListenBrainz's
    saved = archive.save_records(LASTFM, [rec(T), rec(T + 480)])
    assert (saved.duplicates, saved.merged, saved.new) == (1, 1, 0)
    assert archive.count() == 2
