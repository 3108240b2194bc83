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


@migrations(name="m002_own_sighting_in_listens")
def m002_own_sighting_in_listens(db: Database) -> None:
    """A listen carries the sighting that brought it; ``sightings`` holds only the others.

    Most listens are seen by one account, so keeping that sighting in its own table cost
    every saved listen a second row and three index entries (a third of a sync's writing
    and a third of the file). Now ``listens`` has ``account_id``, ``remote_id``, ``raw``
    and ``seen_at`` of its first sighting; later sightings by other accounts (the same
    play on Last.fm and ListenBrainz) go to ``sightings``; accounts are rows of
    ``accounts``. The view ``sources`` still lists every sighting with its service and
    account names, as the table of that name did. Same-source identity stays enforced by
    the database: ``listens_identity`` for a listen's own sighting, ``sightings_identity``
    for the others (a listen whose first sighting an old archive cannot tell keeps a NULL
    ``account_id`` and all its sightings in ``sightings``).
    """
    db.execute("""
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            service TEXT NOT NULL,
            account TEXT NOT NULL,
            UNIQUE (service, account)
        )""")
    for column in ("account_id INTEGER REFERENCES accounts(id)", "remote_id TEXT",
                   "raw TEXT", "seen_at INTEGER"):
        db.execute(f"ALTER TABLE listens ADD COLUMN {column}")
    db.execute("""
        CREATE TABLE sightings (
            id INTEGER PRIMARY KEY,
            listen_id INTEGER NOT NULL REFERENCES listens(id),
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            listened_at INTEGER NOT NULL,
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            remote_id TEXT,
            raw TEXT,
            seen_at INTEGER NOT NULL
        )""")
    db.execute("INSERT INTO accounts (service, account)"
               " SELECT DISTINCT service, account FROM sources ORDER BY 1, 2")
    # The sighting that created each listen: the earliest with the listen's own time and
    # track (new listens were always saved from their first record).
    db.execute("CREATE TEMP TABLE m002_first (listen_id INTEGER PRIMARY KEY, sid INTEGER)")
    db.execute("""
        INSERT INTO m002_first
        SELECT s.listen_id, min(s.id) FROM sources s
        JOIN listens l ON l.id = s.listen_id AND l.listened_at = s.listened_at
                      AND l.track_id = s.track_id
        GROUP BY s.listen_id""")
    db.execute("CREATE UNIQUE INDEX temp.m002_first_sid ON m002_first(sid)")
    db.execute("""
        UPDATE listens SET (account_id, remote_id, raw, seen_at) = (
            SELECT a.id, s.remote_id, s.raw, s.seen_at
            FROM m002_first f JOIN sources s ON s.id = f.sid
            JOIN accounts a ON a.service = s.service AND a.account = s.account
            WHERE f.listen_id = listens.id)""")
    db.execute("""
        INSERT INTO sightings (listen_id, account_id, listened_at, track_id, remote_id, raw,
                               seen_at)
        SELECT s.listen_id, a.id, s.listened_at, s.track_id, s.remote_id, s.raw, s.seen_at
        FROM sources s JOIN accounts a ON a.service = s.service AND a.account = s.account
        WHERE s.id NOT IN (SELECT sid FROM m002_first)
        ORDER BY s.id""")
    db.execute("DROP TABLE m002_first")
    db.execute("DROP VIEW listens_with_sources")
    db.execute("DROP TABLE sources")
    for sql in (
        "CREATE UNIQUE INDEX listens_identity ON listens(account_id, listened_at, track_id)",
        "CREATE UNIQUE INDEX sightings_identity"
        " ON sightings(account_id, listened_at, track_id)",
        "CREATE INDEX sightings_listen ON sightings(listen_id)",
    ):
        db.execute(sql)
    db.execute("""
        CREATE VIEW sources AS
        SELECT l.id AS listen_id, a.service, a.account, l.listened_at, l.track_id,
               l.remote_id, l.raw, l.seen_at
        FROM listens l JOIN accounts a ON a.id = l.account_id
        UNION ALL
        SELECT s.listen_id, a.service, a.account, s.listened_at, s.track_id,
               s.remote_id, s.raw, s.seen_at
        FROM sightings s JOIN accounts a ON a.id = s.account_id""")
    db.execute("""
        CREATE VIEW listens_with_sources AS
        SELECT l.id, l.listened_at, datetime(l.listened_at, 'unixepoch') AS listened_at_utc,
               l.artist, l.track, l.album,
               (SELECT group_concat(s.service || ':' || s.account, ' ')
                FROM sources s WHERE s.listen_id = l.id) AS sources
        FROM listens l""")
    db.execute("PRAGMA user_version = 2")
