"""The archive's promises: what an account lacks, cursors, atomic pages, maintained counts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.errors import ArchiveError
from scrobbler_cli.models import Account, Page, SourceRecord
from scrobbler_cli.sync import save_pages

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")
IMPORT = Account("import", "old.jsonl")
T = 1_700_000_000


def rec(t: int, artist: str = "Radiohead", track: str = "Reckoner", **kw: object
        ) -> SourceRecord:
    return SourceRecord(listened_at=t, artist=artist, track=track, **kw)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "archive.db"


@pytest.fixture
def archive(path: Path):
    with Archive(path) as a:
        yield a


def times(listens) -> list[int]:  # type: ignore[no-untyped-def]
    return [x.listened_at for x in listens]


# -- which archived listens does an account lack? --------------------------------------


@pytest.fixture
def history(archive: Archive) -> Archive:
    """Last.fm saw five plays; ListenBrainz saw two of them and one of its own; an old
    import holds one more."""
    archive.save_records(LASTFM, [rec(T + i * 1000, track=f"T{i}") for i in range(5)])
    archive.save_records(LB, [rec(T + 20, track="T0"), rec(T + 3010, track="T3"),
                              rec(T + 9000, track="LB only")])
    archive.save_records(IMPORT, [rec(T - 50_000, track="Imported")])
    return archive


def test_missing_for_lists_what_the_account_lacks_oldest_first(history: Archive) -> None:
    assert times(history.missing_for(LB)) == [T - 50_000, T + 1000, T + 2000, T + 4000]
    assert times(history.missing_for(LASTFM)) == [T - 50_000, T + 9000]
    assert [x.track for x in history.missing_for(LASTFM)] == ["Imported", "LB only"]
    # an account the archive never saw lacks everything but what only another account
    # of its own service saw (alice's ListenBrainz-only listen is never pushed to bob)
    bob = [x.track for x in history.missing_for(Account("listenbrainz", "bob"))]
    assert len(bob) == history.count() - 1 and "LB only" not in bob
    assert "LB only" in [x.track for x in history.missing_for(Account("lastfm", "bob"))]


def test_missing_for_leaves_out_pushed_listens(history: Archive) -> None:
    missing = list(history.missing_for(LB))
    history.record_pushes(LB, [missing[1].id, missing[2].id])
    assert times(history.missing_for(LB)) == [T - 50_000, T + 4000]
    assert times(history.missing_for(LB, include_pushed=True)) == times(missing)
    # pushes are per account: Last.fm still lacks what it lacked
    assert times(history.missing_for(LASTFM)) == [T - 50_000, T + 9000]
    # recording a push twice is harmless
    history.record_pushes(LB, [missing[1].id])
    assert history.conn.execute("SELECT count(*) FROM pushes").fetchone()[0] == 2


def test_missing_for_since_until_and_source(history: Archive) -> None:
    assert times(history.missing_for(LB, since=T + 1000)) == [T + 1000, T + 2000, T + 4000]
    # until is exclusive
    assert times(history.missing_for(LB, until=T + 2000)) == [T - 50_000, T + 1000]
    assert times(history.missing_for(LB, since=T + 1500, until=T + 4001)) == [T + 2000,
                                                                            T + 4000]
    assert times(history.missing_for(LB, source="lastfm")) == [T + 1000, T + 2000, T + 4000]
    assert times(history.missing_for(LB, source="import")) == [T - 50_000]
    assert times(history.missing_for(LASTFM, source="listenbrainz")) == [T + 9000]
    assert list(history.missing_for(LB, source="nowhere")) == []


def test_a_listen_received_after_a_push_is_still_not_missing(history: Archive) -> None:
    [first, *_] = history.missing_for(LB, source="lastfm")
    history.record_pushes(LB, [first.id])
    # the next sync of ListenBrainz brings the pushed listen back: it joins the same listen
    saved = history.save_records(LB, [rec(first.listened_at, track=first.track)])
    assert (saved.new, saved.merged) == (0, 1)
    assert first.listened_at not in times(history.missing_for(LB, include_pushed=True))


# -- cursors ------------------------------------------------------------------


def test_cursor_is_per_account_and_only_moves_forward(archive: Archive) -> None:
    assert archive.get_cursor(LASTFM) is None
    archive.save_records(LASTFM, [rec(T)], cursor=T + 100)
    assert archive.get_cursor(LASTFM) == T + 100
    archive.save_records(LASTFM, [rec(T - 5000)], cursor=T - 4000)  # an older page
    assert archive.get_cursor(LASTFM) == T + 100
    archive.save_records(LASTFM, [rec(T + 200)])  # a page that does not move it
    assert archive.get_cursor(LASTFM) == T + 100
    archive.set_cursor(LASTFM, T + 500)
    assert archive.get_cursor(LASTFM) == T + 500
    archive.set_cursor(LASTFM, 0)
    assert archive.get_cursor(LASTFM) == T + 500
    assert archive.get_cursor(LB) is None
    assert archive.get_cursor(Account("lastfm", "bob")) is None


def test_cursor_survives_reopening(path: Path) -> None:
    with Archive(path) as archive:
        archive.save_records(LB, [rec(T)], cursor=T + 60)
    with Archive(path, readonly=True) as archive:
        assert archive.get_cursor(LB) == T + 60
        assert archive.accounts() == [
            {"service": "listenbrainz", "account": "alice", "records": 1, "cursor": T + 60}]


def test_failure_writing_the_cursor_rolls_back_its_page(archive: Archive, path: Path) -> None:
    archive.save_records(LASTFM, [rec(T)], cursor=T)
    archive.conn.execute("CREATE TRIGGER fail_cursor BEFORE UPDATE ON cursors"
                         " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    with pytest.raises(sqlite3.DatabaseError, match="disk on fire"):
        archive.save_records(LASTFM, [rec(T + 500, track="Nude"), rec(T + 900, "Blur")],
                             cursor=T + 1000)
    archive.conn.execute("DROP TRIGGER fail_cursor")
    assert not archive.conn.in_transaction
    # neither the page nor its cursor: what another process sees is the state before
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT count(*) FROM listens").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM sources").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM artists").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM tracks").fetchone()[0] == 1
        assert other.execute("SELECT cursor FROM cursors").fetchone()[0] == T
    # and the writer goes on cleanly afterwards
    saved = archive.save_records(LASTFM, [rec(T + 500, track="Nude"), rec(T + 900, "Blur")],
                                 cursor=T + 1000)
    assert saved.new == 2
    assert archive.get_cursor(LASTFM) == T + 1000
    assert_counts_match(archive)


def test_bad_record_mid_batch_rolls_back_records_and_cursor(archive: Archive) -> None:
    good = [rec(T + i * 100_000, track=f"T{i}") for i in range(3)]  # several windows
    bad = SourceRecord(T + 400_000, None, "x")  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - any error: what matters is the rollback
        archive.save_records(LASTFM, [*good, bad], cursor=T + 500_000)
    assert archive.count() == 0
    assert archive.get_cursor(LASTFM) is None
    for table in ("sources", "artists", "tracks", "albums", "cursors"):
        assert archive.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert archive.save_records(LASTFM, good, cursor=T + 500_000).new == 3
    assert_counts_match(archive)


def test_readonly_archive_refuses_writes(path: Path) -> None:
    Archive(path).close()
    with Archive(path, readonly=True) as archive, pytest.raises(ArchiveError):
        archive.save_records(LASTFM, [rec(T)])


# -- pages: a crash between pages loses nothing and duplicates nothing ------------------


PAGES = [
    Page([rec(T + 2000, track="C"), rec(T + 1500, track="B2")], cursor=T + 2000),
    Page([rec(T + 4000, track="E"), rec(T + 3000, track="D")], cursor=T + 4000),
    Page([rec(T + 6000, track="G"), rec(T + 5000, track="F")], cursor=T + 6000),
]


def crashing_after(n: int) -> Iterator[Page]:
    yield from PAGES[:n]
    raise ConnectionError("network lost")


def snapshot(archive: Archive) -> list[tuple[object, ...]]:
    return [(x.listened_at, x.artist, x.track, x.accounts) for x in archive.listens()]


def test_crash_between_pages_keeps_finished_pages_and_their_cursor(archive: Archive) -> None:
    seen: list[int | None] = []
    with pytest.raises(ConnectionError):
        save_pages(archive, LASTFM, crashing_after(2), on_page=lambda p, s: seen.append(p.cursor))
    assert seen == [T + 2000, T + 4000]
    assert [t for t, *_ in snapshot(archive)] == [T + 1500, T + 2000, T + 3000, T + 4000]
    assert archive.get_cursor(LASTFM) == T + 4000

    # the re-run walks everything again (or from a lookback): nothing is doubled
    total = save_pages(archive, LASTFM, iter(PAGES))
    assert (total.received, total.new, total.duplicates) == (6, 2, 4)
    assert archive.get_cursor(LASTFM) == T + 6000
    assert_counts_match(archive)


def test_interrupted_run_plus_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    with Archive(tmp_path / "clean.db") as clean:
        save_pages(clean, LASTFM, iter(PAGES))
        expected = snapshot(clean), clean.get_cursor(LASTFM)
    with Archive(tmp_path / "crashed.db") as crashed:
        with pytest.raises(ConnectionError):
            save_pages(crashed, LASTFM, crashing_after(1))
        # a delta run resumes from the cursor minus a lookback that overlaps page 1
        save_pages(crashed, LASTFM, iter(PAGES[0:]))
        assert (snapshot(crashed), crashed.get_cursor(LASTFM)) == expected


def test_an_exception_while_saving_a_page_keeps_the_earlier_pages(archive: Archive) -> None:
    broken = Page([rec(T + 8000, track="H"), SourceRecord(T + 8100, "A", None)],  # type: ignore[arg-type]
                  cursor=T + 9000)
    with pytest.raises(Exception):  # noqa: B017
        save_pages(archive, LASTFM, iter([*PAGES[:2], broken]))
    assert archive.count() == 4
    assert archive.get_cursor(LASTFM) == T + 4000


def test_saves_in_one_transaction_are_kept_or_lost_together(archive: Archive,
                                                            path: Path) -> None:
    def committed() -> tuple[int, int | None]:
        with Archive(path, readonly=True) as reader:
            return reader.count(), reader.get_cursor(LASTFM)

    with pytest.raises(KeyboardInterrupt), archive.transaction():
        archive.save_records(LASTFM, PAGES[0].records, cursor=PAGES[0].cursor)
        archive.save_records(LASTFM, PAGES[1].records, cursor=PAGES[1].cursor)
        assert committed() == (0, None)  # nothing is visible before the commit
        raise KeyboardInterrupt
    assert archive.count() == 0 and archive.get_cursor(LASTFM) is None

    with archive.transaction():
        archive.save_records(LASTFM, PAGES[0].records, cursor=PAGES[0].cursor)
        with pytest.raises(ValueError):  # this part fails alone: its listens go with it
            archive.save_records(LASTFM, PAGES[1].records, cursor="soon")  # type: ignore[arg-type]
        archive.save_records(LB, [rec(T + 1510, track="X")], cursor=T + 1510)
        assert committed() == (0, None)
    assert committed() == (3, PAGES[0].cursor)
    assert archive.get_cursor(LB) == T + 1510
    assert_counts_match(archive)
    total = save_pages(archive, LASTFM, iter(PAGES))  # and the next run fetches the rest
    assert (total.new, archive.count()) == (4, 7)
    assert_counts_match(archive)


def test_a_reader_sees_pages_whole(path: Path) -> None:
    """Between pages, a reader in another connection sees each page with its cursor."""
    observed = []
    with Archive(path) as archive:
        def look(page: Page, _saved: object) -> None:
            with sqlite3.connect(path) as reader:
                n = reader.execute("SELECT count(*) FROM listens").fetchone()[0]
                c = reader.execute("SELECT cursor FROM cursors").fetchone()[0]
            observed.append((n, c))
        save_pages(archive, LASTFM, iter(PAGES), on_page=look)
    assert observed == [(2, T + 2000), (4, T + 4000), (6, T + 6000)]


# -- maintained counts ------------------------------------------------------------------


def assert_counts_match(archive: Archive) -> None:
    """Once folded, the per-name counts equal a GROUP BY over the listens."""
    archive.fold_counts()
    assert archive.counted_to() == (archive.conn.execute(
        "SELECT coalesce(max(id), 0) FROM listens").fetchone()[0])
    conn = archive.conn
    for table, column in (("artists", "artist_id"), ("tracks", "track_id"),
                          ("albums", "album_id")):
        maintained = dict(conn.execute(f"SELECT id, listens FROM {table} WHERE listens > 0"))
        grouped = dict(conn.execute(
            f"SELECT {column}, count(*) FROM listens WHERE {column} IS NOT NULL"
            f" GROUP BY {column}"))
        assert maintained == grouped, table
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE listens < 0").fetchone()[0] == 0


def test_maintained_counts_equal_a_group_by_after_mixed_saves(archive: Archive) -> None:
    archive.save_records(LASTFM, [
        rec(T, album="In Rainbows"),
        rec(T + 240, album="In Rainbows"),
        rec(T + 600, track="Nude", album="In Rainbows"),
        rec(T + 900, "Blur", "Song 2", album="Blur"),
        rec(T + 1200, "blur", "SONG 2"),  # no album, other spelling
        rec(T + 200_000, "Blur", "Beetlebum", album="Blur"),
    ])
    archive.save_records(LB, [
        rec(T + 30, "RADIOHEAD", "reckoner", album="In Rainbows"),  # merged
        rec(T + 620, track="Nude"),  # merged
        rec(T + 5000, "Portishead", "Roads", album="Dummy"),  # new
        rec(T + 5000, "Portishead", "Roads", album="Dummy"),  # duplicate in the batch
    ])
    archive.save_records(LASTFM, [rec(T, album="In Rainbows")])  # duplicate
    archive.save_records(IMPORT, [rec(T + 5030, "portishead", "roads", album="DUMMY"),
                                  rec(T + 10, album="In Rainbows")])
    assert archive.count() == 7
    assert_counts_match(archive)
    names = dict(archive.conn.execute("SELECT name, listens FROM artists"))
    assert names == {"Radiohead": 3, "Blur": 3, "Portishead": 1}
    albums = dict(archive.conn.execute("SELECT name, listens FROM albums"))
    assert albums == {"In Rainbows": 3, "Blur": 2, "Dummy": 1}


def test_counts_kept_while_saving_never_count_a_listen_twice(path: Path) -> None:
    """The fold adds the counts an archive object kept while saving only for listens it
    saved itself and nobody folded yet: whatever other writers did in between."""
    def batch(start: int, artist: str, n: int = 3) -> list[SourceRecord]:
        return [rec(start + 1000 * i, artist, f"t{i % 2}", album=f"{artist} LP" if i else None)
                for i in range(n)]

    def grouped(conn: sqlite3.Connection) -> dict[str, int]:
        return dict(conn.execute("SELECT a.name, count(*) FROM listens l"
                                 " JOIN artists a ON a.id = l.artist_id GROUP BY a.name"))

    with Archive(path) as first:
        first.save_records(LASTFM, batch(T, "Blur"))
        with Archive(path, lock=False) as other:  # another writer, between two of ours
            other.save_records(LB, batch(T + 100_000, "Muse"))
            other.fold_counts()  # folds our listens from the table, its own from its counts
        first.save_records(LASTFM, batch(T + 200_000, "Blur"))
        with pytest.raises(ValueError):  # rolled back: its counts go with it
            first.save_records(LASTFM, batch(T + 300_000, "Pulp"), cursor="x")  # type: ignore[arg-type]
        first.save_records(LASTFM, batch(T + 400_000, "Blur"))
        assert_counts_match(first)
        first.save_records(LASTFM, batch(T + 500_000, "Blur"))
        other = Archive(path, lock=False)
        other.save_records(LB, batch(T + 600_000, "Muse"))  # saved, not folded
        first.save_records(LASTFM, batch(T + 700_000, "Pulp"))
        assert_counts_match(first)
        first.save_records(LASTFM, batch(T + 800_000, "Pulp"))
        other.fold_counts()  # folds what first kept counts of
        first.save_records(LASTFM, batch(T + 900_000, "Pulp"))
        assert_counts_match(first)
        other.close()
        assert dict(first.conn.execute("SELECT name, listens FROM artists")) \
            == grouped(first.conn) == {"Blur": 12, "Muse": 6, "Pulp": 9}


def test_accounts_and_count(history: Archive) -> None:
    assert history.count() == 7
    assert history.accounts() == [
        {"service": "import", "account": "old.jsonl", "records": 1, "cursor": None},
        {"service": "lastfm", "account": "alice", "records": 5, "cursor": None},
        {"service": "listenbrainz", "account": "alice", "records": 3, "cursor": None},
    ]


def test_raw_records_and_remote_ids_are_kept(archive: Archive) -> None:
    raw = '{"listened_at": 1700000000, "track_metadata": {"artist_name": "Radiohead"}}'
    archive.save_records(LB, [rec(T, remote_id="03dcc65c-0e01-4f25-aa1f-0f469d10e2ad",
                                  raw=raw)])
    archive.save_records(LASTFM, [rec(T + 5, raw='{"lastfm": true}')])
    rows = archive.conn.execute(
        "SELECT service, remote_id, raw FROM sources ORDER BY service").fetchall()
    assert rows == [("lastfm", None, '{"lastfm": true}'),
                    ("listenbrainz", "03dcc65c-0e01-4f25-aa1f-0f469d10e2ad", raw)]


def test_raw_bytes_are_stored_as_text(archive: Archive) -> None:
    """The parsers hand over raw records as UTF-8 bytes; the archive keeps text, so that
    sqlite3, Datasette and readers see JSON, not blobs (a listen's own and a sighting)."""
    lb_raw = '{"track_metadata":{"artist_name":"Sigur Rós"}}'
    fm_raw = '{"name":"Jóga ✓"}'
    archive.save_records(LB, [rec(T, raw=lb_raw.encode())])
    archive.save_records(LASTFM, [rec(T + 5, raw=fm_raw.encode())])  # joins the listen
    rows = archive.conn.execute(
        "SELECT service, typeof(raw), raw FROM sources ORDER BY service").fetchall()
    assert rows == [("lastfm", "text", fm_raw), ("listenbrainz", "text", lb_raw)]
    assert archive.count() == 1


def test_absent_values_are_null_and_present_ones_kept(archive: Archive) -> None:
    """Records reach SQLite with '' for what is absent (``record_rows``): every absent
    value must still be NULL, and no present one may be lost, on a listen's own row and
    on a sighting."""
    bare = rec(T, album=None, duration=None, raw=None, remote_id=None)
    full = rec(T + 3600, album="In Rainbows", duration=290,
               recording_mbid="8f0c2a8a-5f8e-4b8a-9c43-2c1b7b1a0f11",
               release_mbid="6e335887-60ba-38f0-95af-fae7774336bf",
               artist_mbids=("a74b1b7f-71a5-4011-9441-d0b5e4122711",),
               remote_id="03dcc65c-0e01-4f25-aa1f-0f469d10e2ad", raw=b'{"x":1}')
    archive.save_records(LB, [bare, full])
    archive.save_records(LASTFM, [rec(T + 30)])  # a sighting of the bare listen
    columns = ("album, duration, recording_mbid, release_mbid, artist_mbids, album_id,"
               " remote_id, raw")
    rows = archive.conn.execute(f"SELECT {columns} FROM listens ORDER BY id").fetchall()
    assert rows == [
        (None,) * 8,
        ("In Rainbows", 290, full.recording_mbid, full.release_mbid,
         '["a74b1b7f-71a5-4011-9441-d0b5e4122711"]', 1, full.remote_id, '{"x":1}'),
    ]
    assert archive.conn.execute("SELECT remote_id, raw FROM sightings").fetchall() == [
        (None, None)]
    # a zero duration is a value, not an absence; an empty raw record is none at all
    archive.save_records(LB, [rec(T + 7200, track="Nude", duration=0, raw=b"")])
    assert archive.conn.execute("SELECT duration, raw FROM listens WHERE track = 'Nude'"
                                ).fetchall() == [(0, None)]


def test_records_become_rows_with_blanks_for_what_is_absent() -> None:
    """The rows ``save_rows`` takes, field by field: '' for an absent value (SQL turns
    it into NULL), a zero duration kept, ``raw`` bytes as a bytearray, a str as it is,
    then the name ids (album 0: none)."""
    bare = SourceRecord(T, "A", "B")
    full = SourceRecord(T, "A", "B", "Al", 0, "rec", "rel", ("m1", "m2"), "id", b'{"x":1}')
    text = SourceRecord(T, "A", "B", "", None, None, None, (), "", '{"y":2}')
    empty = SourceRecord(T, "A", "B", raw=b"")
    with Archive(":memory:") as archive:
        rows, _ = archive.plan_rows([bare, full, text, empty])
    assert rows == [
        (T, "A", "B", "", "", "", "", "", "", "", 1, 1, 0),
        (T, "A", "B", "Al", 0, "rec", "rel", '["m1","m2"]', "id", bytearray(b'{"x":1}'),
         1, 1, 1),
        (T, "A", "B", "", "", "", "", "", "", '{"y":2}', 1, 1, 0),
        (T, "A", "B", "", "", "", "", "", "", "", 1, 1, 0),
    ]
    assert [type(row[9]) for row in rows] == [str, bytearray, str, str]


def test_a_batch_spells_each_name_with_one_string_object() -> None:
    """``plan_rows`` shares one string per name across rows, so the pickle sent to the
    writer process holds it once, and the rows still say what the records said."""
    import pickle

    records = [rec(T + i, artist="".join(["Bj", "ö", "rk"]), track="".join(["Jóg", "a"]),
                   album="".join(["Homo", "genic"]), raw=b'{"i":%d}' % i)
               for i in range(200)]
    with Archive(":memory:") as archive:
        rows, _ = archive.plan_rows(records)
        again, _ = archive.plan_rows(records[:1])  # a later batch spells it so too
    assert [row[1:4] for row in rows] == [("Björk", "Jóga", "Homogenic")] * 200
    assert len({id(row[k]) for row in rows + again for k in (1, 2, 3)}) == 3
    unshared = len(pickle.dumps([(r.artist, r.track, r.album) for r in records]))
    shared = len(pickle.dumps([row[1:4] for row in rows]))
    names = len("BjörkJógaHomogenic".encode())
    assert unshared - shared >= 199 * names  # each held once, not 200 times


def test_planned_names_get_new_ids_past_those_not_saved_yet(tmp_path: Path) -> None:
    """A writer process's parent plans batch after batch before the first is saved:
    a new name's id must be past every id planned before, not only the archive's; and
    once the plans are forgotten (the writer stopped), the archive decides again."""
    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(LB, [rec(T, artist="A", track="a")])
        first, names1 = archive.plan_rows([rec(T + 10, artist="B", track="b")])
        second, names2 = archive.plan_rows([rec(T + 20, artist="C", track="c"),
                                            rec(T + 30, artist="B", track="b")])
        assert [r[10:] for r in first + second] == [(2, 2, 0), (3, 3, 0), (2, 2, 0)]
        assert names1[0] == [(2, "b", "B")] and names2[0] == [(3, "c", "C")]
        archive.save_rows(LB, second, names2)  # out of order: it uses B's planned rows
        assert {row[0] for row in archive.conn.execute("PRAGMA foreign_key_check")} == {
            "listens"}  # ... which are not there yet
        archive.save_rows(LB, first, names1)
        assert archive.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        archive.forget_names()
        third, names3 = archive.plan_rows([rec(T + 40, artist="D", track="d")])
        assert third[0][10:] == (4, 4, 0) and names3[0] == [(4, "d", "D")]


def test_listens_filters(history: Archive) -> None:
    assert times(history.listens(limit=2)) == [T - 50_000, T]
    assert times(history.listens(newest_first=True, limit=2)) == [T + 9000, T + 4000]
    assert times(history.listens(source="import")) == [T - 50_000]
    assert times(history.listens(source="listenbrainz:alice")) == [T, T + 3000, T + 9000]
    assert times(history.listens(source="listenbrainz:bob")) == []
    assert times(history.listens(since=T + 1000, until=T + 3000)) == [T + 1000, T + 2000]
    assert times(history.listens(track="t3")) == [T + 3000]


def test_missing_for_source_can_name_one_account(tmp_path) -> None:
    from scrobbler_cli.archive import Archive
    from scrobbler_cli.models import Account, SourceRecord

    with Archive(tmp_path / "s.db") as archive:
        archive.save_records(Account("lastfm", "alice"), [SourceRecord(1_700_000_000, "A", "x")])
        archive.save_records(Account("lastfm", "bob"), [SourceRecord(1_700_100_000, "B", "y")])
        target = Account("listenbrainz", "alice")
        assert len(list(archive.missing_for(target, source="lastfm"))) == 2
        only = list(archive.missing_for(target, source="lastfm:alice"))
        assert [listen.artist for listen in only] == ["A"]
        assert list(archive.missing_for(target, source="lastfm:carol")) == []


def test_missing_for_leaves_out_what_only_someone_elses_accounts_saw(tmp_path) -> None:
    """A friend's Last.fm profile read into the archive (``--user carol``) is not yours
    to push: its listens are candidates only where one of your accounts saw them too."""
    from scrobbler_cli.export import foreign_accounts

    alice, carol = Account("lastfm", "alice"), Account("lastfm", "carol")
    target = Account("listenbrainz", "alice")
    with Archive(tmp_path / "f.db") as archive:
        archive.save_records(alice, [rec(T, "A", "mine"), rec(T + 5000, "S", "both")])
        archive.save_records(carol, [rec(T + 9000, "C", "hers"), rec(T + 5030, "S", "both")])
        archive.save_records(Account("import", "old.ndjson"), [rec(T + 20_000, "I", "kept")])
        everything = [x.track for x in archive.missing_for(target)]
        assert everything == ["mine", "both", "hers", "kept"]
        foreign = foreign_accounts(archive, (alice, target))
        assert foreign == [carol]
        assert [x.track for x in archive.missing_for(target, foreign=foreign)] == [
            "mine", "both", "kept"]  # "both" is alice's too; an import is yours
        # no Last.fm account of yours is known: none of them can be told from a friend's
        assert foreign_accounts(archive, (target,)) == []


def test_stats_are_exact_before_the_counts_are_folded(archive: Archive) -> None:
    from scrobbler_cli.stats import compute_stats

    archive.save_records(LASTFM, [rec(T, album="In Rainbows"), rec(T + 900, "Blur", "Song 2")])
    archive.fold_counts()
    archive.save_records(LB, [rec(T + 5000, "Blur", "Song 2"), rec(T + 6000, "Blur", "Song 2"),
                              rec(T + 7000, "Portishead", "Roads")])
    assert archive.counted_to() == 2  # three listens in the unfolded tail
    whole = compute_stats(archive, 0, 2**40).as_json()  # folded counts + the tail
    assert (whole["total_listens"], whole["unique_artists"], whole["unique_tracks"]) == (5, 3, 3)
    assert whole["top_artists"][0] == {"artist": "Blur", "listens": 3}
    archive.fold_counts()
    assert compute_stats(archive, 0, 2**40).as_json() == whole


# -- bounded name caches -----------------------------------------------------------------


def test_full_name_caches_are_emptied_and_names_keep_their_rows(path: Path) -> None:
    """The spelling cache holds at most ``name_cache`` entries and each key cache a third
    as many (memory stays flat on a huge history); a name met again after its cache was
    emptied keeps its row."""
    names = [(f"Artist {i % 7}", f"Track {i}", f"Album {i % 5}") for i in range(40)]
    with Archive(path, name_cache=6) as archive:
        for day in range(3):  # the same 40 spellings on three days, 5 a batch
            for j in range(0, 40, 5):
                archive.save_records(LASTFM, [
                    rec(T + day * 86_400 + i * 60, artist, track, album=album)
                    for i, (artist, track, album) in enumerate(names[j:j + 5], j)])
                assert len(archive._spelled) <= 6 + 5
                assert all(len(cache) <= 2 + 5 for cache in archive._ids.values())
    with sqlite3.connect(path) as conn:
        assert [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("artists", "tracks", "albums", "listens")] == [7, 40, 35, 120]
        assert conn.execute("""
            SELECT count(*) FROM listens l JOIN artists a ON a.id = l.artist_id
            JOIN tracks t ON t.id = l.track_id JOIN albums b ON b.id = l.album_id
            WHERE a.name = l.artist AND t.name = l.track AND b.name = l.album""",
        ).fetchone()[0] == 120
        assert conn.execute("SELECT sum(listens) FROM tracks").fetchone()[0] == 120


def test_names_are_looked_up_only_where_the_caches_cannot_tell(path: Path) -> None:
    """A table found empty holds only names this archive object created, all in its
    cache: new names are not looked up in it (a first sync or import). Once that cache
    has been emptied, or in a table that had names before, they are."""
    lookups: list[str] = []

    def save(archive: Archive, day: int, names: list[tuple[str, str]]) -> None:
        archive.save_records(LASTFM, [rec(T + day * 86_400 + i * 60, artist, track)
                                      for i, (artist, track) in enumerate(names)])

    names = [(f"Artist {i % 4}", f"Track {i}") for i in range(12)]
    with Archive(path) as archive:
        archive.conn.set_trace_callback(lookups.append)
        for day in range(3):  # three batches of the same names: the ids found in the cache
            save(archive, day, names[day * 4:day * 4 + 8])
        assert not [q for q in lookups if q.startswith("SELECT key, id FROM")]
    with Archive(path, name_cache=6) as archive:  # names from before: looked up
        archive.conn.set_trace_callback(lookups.append)
        save(archive, 3, names)
        assert [q for q in lookups if q.startswith("SELECT key, id FROM tracks")]
    lookups.clear()
    other = path.with_name("other.db")
    with Archive(other, name_cache=6) as archive:  # caches of 2 keys a table, emptied
        archive.conn.set_trace_callback(lookups.append)
        for day in range(4):
            save(archive, day, names[day * 3:day * 3 + 3] + names[:3])
        assert [q for q in lookups if q.startswith("SELECT key, id FROM tracks")]
    for db in (path, other):  # each name once, its listens on it
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT key) FROM tracks"
                                ).fetchone() == (12, 12)
            assert conn.execute("SELECT count(*) FROM listens l JOIN tracks t"
                                " ON t.id = l.track_id WHERE t.name = l.track").fetchone() \
                == conn.execute("SELECT count(*) FROM listens").fetchone()


def test_the_name_counts_are_folded_every_fold_after_listens(path: Path) -> None:
    """A writer folds its tail of listens into the per-name counts once it holds
    ``fold_after`` of them (an import folds seldom: each fold updates every name its
    listens used), and on closing; statistics are exact in between."""
    from scrobbler_cli.stats import compute_stats

    with Archive(path, fold_after=250) as archive:
        for i in range(6):  # 100 listens a batch: folded after the third and the sixth
            archive.save_records(LASTFM, [rec(T + i * 10_000 + j * 60, f"A{j % 3}", f"T{j}")
                                          for j in range(100)])
            assert archive.counted_to() == (0, 0, 300, 300, 300, 600)[i]
            assert compute_stats(archive, 0, 2**40).as_json()["total_listens"] == 100 * (i + 1)
    with Archive(path, fold_after=10**6) as archive:
        archive.save_records(LB, [rec(T + 900_000, "A0", "T0")])
        assert archive.counted_to() == 600  # one listen held, not folded
    with sqlite3.connect(path) as conn:  # folded on closing
        assert conn.execute("SELECT value FROM meta WHERE key = 'counted_to'").fetchone() == (601,)
        assert conn.execute("SELECT listens FROM artists ORDER BY id").fetchall() == [
            (34 * 6 + 1,), (33 * 6,), (33 * 6,)]


@pytest.mark.parametrize("readonly", [True, False])
def test_another_programs_database_is_refused_and_left_as_it_was(
        tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ArchiveError, match="not a scrob archive"):
        Archive(path, readonly=readonly)
    assert path.read_bytes() == before  # no scrob tables, no WAL mode, nothing


def test_a_database_with_only_an_unfinished_first_migration_is_made_an_archive(
        tmp_path: Path) -> None:
    path = tmp_path / "a.db"  # killed after sqlite-utils made its table, before m001 committed
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set"
                     " TEXT, name TEXT, applied_at TEXT)")
    conn.close()
    with Archive(path) as archive:
        assert archive.count() == 0
