"""The schema is code: numbered migrations that run on open, atomically, once."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from scrobbler_cli.archive import SCHEMA_VERSION, Archive
from scrobbler_cli.archive import migrations as migrations_module
from scrobbler_cli.archive.migrations import migrations
from scrobbler_cli.errors import ArchiveError
from scrobbler_cli.models import Account, SourceRecord

MIGRATIONS_SOURCE = Path(migrations_module.__file__).read_text(encoding="utf-8")


def objects(path: Path) -> dict[str, set[str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    found: dict[str, set[str]] = {"table": set(), "index": set(), "view": set(),
                                  "trigger": set()}
    for kind, name in rows:
        found[kind].add(name)
    return found


def declared(kind: str) -> set[str]:
    """Every table, index or view the migration steps leave: created, and not dropped by a
    later step (a table dropped drops its indexes)."""
    word = {"table": "TABLE", "index": "(?:UNIQUE )?INDEX", "view": "VIEW"}[kind]
    names: set[str] = set()
    tables_of: dict[str, str] = {}
    statement = (rf"(CREATE|DROP) (TEMP )?{word} (?:IF (?:NOT )?EXISTS )?(?:temp\.)?(\w+)"
                 r"(?: ON (\w+))?")
    for verb, temp, name, table in re.findall(statement, MIGRATIONS_SOURCE):
        if temp or name.startswith("m00"):
            continue  # a step's own scratch table
        if verb == "CREATE":
            names.add(name)
            tables_of[name] = table
        else:
            names.discard(name)
    if kind == "index":
        dropped = {t for t in tables_of.values() if t} - declared("table")
        names = {n for n in names if tables_of.get(n) not in dropped}
    return names


def applied(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name, applied_at FROM _sqlite_migrations"
                            " WHERE migration_set = 'scrob' ORDER BY rowid").fetchall()


def test_schema_version_is_the_number_of_migrations() -> None:
    registered = migrations.pending(Database(memory=True))
    assert len(registered) == SCHEMA_VERSION
    assert len({m.name for m in registered}) == SCHEMA_VERSION
    # numbered in order: m001_..., m002_...
    assert [m.name[:4] for m in registered] == [f"m{i:03d}" for i in range(1, SCHEMA_VERSION + 1)]


def test_migrating_an_empty_file_creates_the_whole_schema(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    path.touch()  # an empty file is an empty SQLite database
    Archive(path).close()
    found = objects(path)
    essential_tables = {"artists", "tracks", "albums", "listens", "accounts", "sightings",
                        "cursors", "pushes", "_sqlite_migrations"}
    assert essential_tables <= found["table"]
    assert declared("table") <= found["table"]
    assert {"listens_identity", "sightings_identity", "listens_time"} <= found["index"]
    assert declared("index") <= found["index"]
    assert {"listens_with_sources", "sources"} <= found["view"]
    assert declared("view") <= found["view"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # the identity of a source's record is enforced by the database itself, for a
        # listen's own sighting and for the later ones
        unique = [sql for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name IN ('listens_identity',"
            " 'sightings_identity')")]
    assert len(unique) == 2 and all("UNIQUE" in sql.upper() for sql in unique)
    assert [name for name, _ in applied(path)] == [
        m.name for m in migrations.pending(Database(memory=True))]


def test_a_new_file_is_created_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "archive.db"
    with Archive(path) as archive:
        assert archive.count() == 0
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reopening_applies_nothing_new(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    Archive(path).close()
    before = applied(path), objects(path)
    for readonly in (False, True, False):
        Archive(path, readonly=readonly).close()
    assert (applied(path), objects(path)) == before
    assert migrations.pending(Database(path)) == []


def test_file_archive_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    Archive(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_in_memory_archive_works(tmp_path: Path) -> None:
    with Archive(":memory:") as archive:
        assert archive.count() == 0
        version = archive.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION


def test_readonly_open_migrates_an_older_archive(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    sqlite3.connect(path).close()  # schema version 0: written before any migration
    with Archive(path, readonly=True) as archive:
        assert archive.count() == 0
        assert archive.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_archive_from_a_newer_scrob_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    Archive(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for readonly in (False, True):
        with pytest.raises(ArchiveError, match="newer scrob"):
            Archive(path, readonly=readonly)


def test_a_failing_migration_leaves_nothing_half_done(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    # a clash halfway through the first step (a view: a table would make it another
    # program's database, refused before any step)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE VIEW listens AS SELECT 1 AS whatever")
    with pytest.raises(ArchiveError, match="cannot migrate"):
        Archive(path)
    found = objects(path)
    assert found["table"] <= {"_sqlite_migrations"}
    assert {i for i in found["index"] if "_sqlite_migrations" not in i} == set()
    assert found["view"] == {"listens"}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == 0


# -- files that are not archives ----------------------------------------------------------


NOT_SQLITE = b"This is my shopping list, not a database.\n" * 50


@pytest.mark.parametrize("readonly", [False, True])
def test_opening_a_non_sqlite_file_is_an_archive_error(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(NOT_SQLITE)
    with pytest.raises(ArchiveError) as info:
        Archive(path, readonly=readonly)
    assert info.value.exit_code == 5
    assert str(path) in str(info.value)
    assert path.read_bytes() == NOT_SQLITE  # the user's file is left alone


@pytest.mark.parametrize("command", [["listens"], ["stats", "--json"], ["import", "x.jsonl"]])
def test_cli_on_a_non_sqlite_file_exits_5_with_one_line(scrob, tmp_path: Path,
                                                       command: list[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(NOT_SQLITE)
    (tmp_path / "x.jsonl").write_text('{"listened_at": 1, "artist": "a", "track": "b"}\n')
    if command[0] == "import":
        command = ["import", str(tmp_path / "x.jsonl")]
    result = scrob("--db", str(path), *command)
    assert result.code == 5
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("scrob: error: ")
    assert "notes.txt" in lines[0] and "not a database" in lines[0]
    assert "Traceback" not in result.err
    assert path.read_bytes() == NOT_SQLITE


def test_readonly_open_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "archive.db"
    with pytest.raises(ArchiveError, match="no archive at") as info:
        Archive(path, readonly=True)
    assert info.value.hint and "scrob import" in info.value.hint
    assert not path.exists() and not path.parent.exists()


def test_cli_reader_on_a_missing_archive_exits_5_and_creates_nothing(
        scrob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers, and an export (which pushes what the archive holds: a new, empty one
    would only be a typo's leftover), stop before creating anything."""
    work = tmp_path / "work"
    work.mkdir()
    path = work / "missing.db"
    for service in ("LISTENBRAINZ", "LASTFM"):
        monkeypatch.setenv(f"SCROB_{service}_USER", "alice")
        monkeypatch.setenv(f"SCROB_{service}_API_URL", "http://127.0.0.1:9")  # never asked
    for command in (["listens"], ["stats"], ["export", "listenbrainz"],
                    ["export", "listenbrainz", "--dry-run"],
                    ["export", "listenbrainz", "--json"], ["export", "lastfm"]):
        result = scrob("--db", str(path), *command)
        assert result.code == 5
        assert result.err.count("\n") == 1
        assert "no archive at" in result.err and "Traceback" not in result.err
        # (a dry run reads, like listens: it writes nothing)
        said = "sync first" if command[0] == "export" and "--dry-run" not in command \
            else "scrob import FILE"
        assert said in result.err
    assert list(work.iterdir()) == []  # no archive, no lock file


# -- m002: a listen carries its own sighting -------------------------------------------------


def _m001_archive(path: Path) -> None:
    """An archive as scrob wrote it before m002: every sighting a ``sources`` row."""
    db = Database(path)
    migrations.apply(db, stop_before="m002_own_sighting_in_listens")
    t = 1_700_000_000
    db.execute("INSERT INTO artists (id, key, name) VALUES (1, 'a', 'A')")
    db.execute("INSERT INTO tracks (id, key, artist_id, name) VALUES"
               " (1, 'a\x1fs', 1, 'S'), (2, 'a\x1fu', 1, 'U')")
    listens = [(1, t, 'A', 'S', None, 1, 1), (2, t + 600, 'A', 'U', '["m1", "m2"]', 1, 2),
               (3, t + 1200, 'A', 'S', None, 1, 1)]
    db.conn.executemany(
        "INSERT INTO listens (id, listened_at, artist, track, artist_mbids, artist_id,"
        " track_id) VALUES (?, ?, ?, ?, ?, ?, ?)", listens)
    sources = [
        (1, 1, "lastfm", "alice", t, 1, None, '{"n":1}', 5),
        (2, 2, "lastfm", "alice", t + 600, 2, None, '{"n":2}', 5),
        (3, 2, "listenbrainz", "alice", t + 640, 2, "msid-2", '{"n":3}', 6),  # matched
        # a listen whose only sighting has another time than the listen (never written
        # by scrob, but the migration must not lose it)
        (4, 3, "import", "old.jsonl", t + 1201, 1, None, '{"n":4}', 7),
    ]
    db.conn.executemany("INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", sources)
    db.conn.execute("INSERT INTO cursors VALUES ('lastfm', 'alice', ?, 9)", (t + 600,))
    db.conn.commit()
    db.close()


def test_m002_keeps_every_sighting_and_every_answer(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _m001_archive(path)
    with sqlite3.connect(path) as conn:
        before = sorted(conn.execute("SELECT listen_id, service, account, listened_at,"
                                     " track_id, remote_id, raw, seen_at FROM sources"))
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    lastfm, lb = Account("lastfm", "alice"), Account("listenbrainz", "alice")
    imported = Account("import", "old.jsonl")
    with Archive(path) as archive:
        rows = archive.conn.execute("SELECT listen_id, service, account, listened_at,"
                                    " track_id, remote_id, raw, seen_at FROM sources")
        assert sorted(rows) == before  # the view lists exactly the old table's rows
        # two of the four sightings moved onto their listens; the others stay sightings
        assert archive.conn.execute(
            "SELECT id, account_id IS NOT NULL, raw FROM listens ORDER BY id").fetchall() == [
            (1, 1, '{"n":1}'), (2, 1, '{"n":2}'), (3, 0, None)]
        assert archive.conn.execute("SELECT count(*) FROM sightings").fetchone()[0] == 2
        listed = list(archive.listens())
        assert [(x.id, x.accounts, x.seen_at) for x in listed] == [
            (1, ("lastfm:alice",), (1_700_000_000,)),
            (2, ("lastfm:alice", "listenbrainz:alice"), (1_700_000_600, 1_700_000_640)),
            (3, ("import:old.jsonl",), (1_700_001_201,))]
        assert listed[1].artist_mbids == ("m1", "m2")
        assert [(a["service"], a["account"], a["records"], a["cursor"])
                for a in archive.accounts()] == [
            ("import", "old.jsonl", 1, None), ("lastfm", "alice", 2, 1_700_000_600),
            ("listenbrainz", "alice", 1, None)]
        assert archive.source_times(lb) == {1_700_000_640}
        assert [x.id for x in archive.missing_for(lb)] == [1, 3]
        assert [x.id for x in archive.missing_for(lastfm)] == [3]
        assert [x.id for x in archive.listens(source="listenbrainz")] == [2]
        assert [x.id for x in archive.listens(source="import:old.jsonl")] == [3]
        # identity still holds across the move: the old records are duplicates, a new
        # ListenBrainz play joins the Last.fm listen it matches
        again = archive.save_records(lastfm, [SourceRecord(1_700_000_000, "A", "S"),
                                              SourceRecord(1_700_000_600, "a", "u")])
        assert (again.new, again.duplicates) == (0, 2)
        assert archive.save_records(lb, [SourceRecord(1_700_000_640, "A", "U")]).duplicates == 1
        joined = archive.save_records(lb, [SourceRecord(1_700_000_030, "A", "S")])
        assert (joined.new, joined.merged) == (0, 1)
        assert archive.save_records(imported, [SourceRecord(1_700_001_201, "A", "S")]
                                    ).duplicates == 1
        assert archive.count() == 3
        assert archive.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_database_refuses_a_second_record_of_one_play_from_one_account(tmp_path: Path
                                                                         ) -> None:
    """The save path finds repeats itself; should it ever miss one, the archive refuses
    the row instead of keeping the play twice."""
    lastfm = Account("lastfm", "alice")
    with Archive(tmp_path / "a.db") as archive:
        archive.save_records(lastfm, [SourceRecord(1_700_000_000, "A", "S")])
        archive.save_records(Account("listenbrainz", "alice"),
                             [SourceRecord(1_700_000_030, "A", "S")])  # a later sighting
        for table, sql in (
            ("listens", "INSERT INTO listens (listened_at, artist, track, artist_id, track_id,"
                        " account_id) SELECT listened_at, artist, track, artist_id,"
                        " track_id, account_id FROM listens"),
            ("sightings", "INSERT INTO sightings (listen_id, account_id, listened_at,"
                          " track_id, seen_at) SELECT listen_id, account_id, listened_at,"
                          " track_id, seen_at FROM sightings"),
        ):
            with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
                archive.conn.execute(sql)
            assert archive.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1


def test_a_negative_match_tolerance_is_refused(tmp_path: Path, scrob,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (-1, 10**19):
        with pytest.raises(ValueError, match="from 0 to 86400"):
            Archive(tmp_path / "a.db", tolerance=bad)
    path = tmp_path / "two.jsonl"
    path.write_text('{"listened_at": 1700000000, "artist": "A", "track": "S"}\n'
                    '{"listened_at": 1700000600, "artist": "A", "track": "U"}\n')
    monkeypatch.setenv("SCROB_MATCH_TOLERANCE", "-1")
    result = scrob("--db", str(tmp_path / "b.db"), "import", str(path))
    assert result.code == 2
    assert "SCROB_MATCH_TOLERANCE must be a whole number from 0 to 86400" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "b.db").exists()
