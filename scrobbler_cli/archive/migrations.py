"""The archive schema as numbered migrations (sqlite-utils ``Migrations``).

Append-only: a released step is never edited; a change is a new step. Each step runs
in one transaction together with its record, and sets ``PRAGMA user_version`` to its
number so that readers can tell, without importing sqlite-utils, that the schema is
current (see ``SCHEMA_VERSION`` in ``archive/__init__.py``).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("scrob")


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    """Listens, the names they use, where each was seen, cursors and pushes.

    ``artists``/``tracks``/``albums`` hold one row per normalized name (``key``) with
    the first spelling seen (``name``) and a maintained ``listens`` count, so all-time
    statistics read the name tables instead of grouping a million listens. The counts
    are deliberately not indexed: every saved page updates them, and top-N over the
    name tables is a quick scan. They are folded in bulk (``Archive.fold_counts``) up to
    the listen id kept in ``meta.counted_to``; statistics add the listens above it.
    """
    db.execute("""
        CREATE TABLE artists (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            listens INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("""
        CREATE TABLE tracks (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            artist_id INTEGER NOT NULL REFERENCES artists(id),
            name TEXT NOT NULL,
            listens INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("""
        CREATE TABLE albums (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            artist_id INTEGER NOT NULL REFERENCES artists(id),
            name TEXT NOT NULL,
            listens INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("""
        CREATE TABLE listens (
            id INTEGER PRIMARY KEY,
            listened_at INTEGER NOT NULL,
            artist TEXT NOT NULL,
            track TEXT NOT NULL,
            album TEXT,
            duration INTEGER,
            recording_mbid TEXT,
            release_mbid TEXT,
            artist_mbids TEXT,
            artist_id INTEGER NOT NULL REFERENCES artists(id),
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            album_id INTEGER REFERENCES albums(id)
        )""")
    db.execute("""
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            listen_id INTEGER NOT NULL REFERENCES listens(id),
            service TEXT NOT NULL,
            account TEXT NOT NULL,
            listened_at INTEGER NOT NULL,
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            remote_id TEXT,
            raw TEXT,
            seen_at INTEGER NOT NULL
        )""")
    db.execute("""
        CREATE TABLE cursors (
            service TEXT NOT NULL,
            account TEXT NOT NULL,
            cursor INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (service, account)
        )""")
    db.execute("""
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value
        )""")
    db.execute("""
        CREATE TABLE pushes (
            listen_id INTEGER NOT NULL REFERENCES listens(id),
            service TEXT NOT NULL,
            account TEXT NOT NULL,
            pushed_at INTEGER NOT NULL,
            PRIMARY KEY (listen_id, service, account)
        )""")
    for sql in (
        "CREATE INDEX listens_time ON listens(listened_at, artist_id, track_id, album_id)",
        "CREATE UNIQUE INDEX sources_identity ON sources(service, account, listened_at, track_id)",
        "CREATE INDEX sources_listen ON sources(listen_id)",
    ):
        db.execute(sql)
    db.execute("""
        CREATE VIEW listens_with_sources AS
        SELECT l.id, l.listened_at, datetime(l.listened_at, 'unixepoch') AS listened_at_utc,
               l.artist, l.track, l.album,
               (SELECT group_concat(s.service || ':' || s.account, ' ')
                FROM sources s WHERE s.listen_id = l.id) AS sources
        FROM listens l""")
    db.execute("PRAGMA user_version = 1")
