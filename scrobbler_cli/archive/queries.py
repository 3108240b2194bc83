"""The SQL the archive runs, in one place."""

from __future__ import annotations

# A listen's own sighting (the record that brought it) is kept on its ``listens`` row;
# later sightings by other accounts are ``sightings`` rows (migration m002).

# Listens of other accounts near a batch that the saving account has no record of: the
# ones its records may join (archive.md, one-to-one matching). An import's records join
# only listens numbered up to :upto, those the archive held before it (its own lines
# are grouped as the file groups them: ``LINE_MATES``).
CANDIDATES = """
SELECT l.id, l.listened_at, l.track_id, l.recording_mbid,
       (l.recording_mbid IS NULL) | ((l.release_mbid IS NULL) << 1)
       | ((l.artist_mbids IS NULL) << 2)
FROM listens l
WHERE l.listened_at BETWEEN :lo AND :hi AND l.id <= :upto
  AND l.account_id IS NOT :account_id
  AND NOT EXISTS (SELECT 1 FROM sightings s
                  WHERE s.listen_id = l.id AND s.account_id = :account_id)
ORDER BY l.listened_at, l.id
"""

# The (own time, track) of every record the account has near a batch, its listen's id,
# which of the MBIDs FILL_LISTEN fills in that listen lacks (bits 1, 2, 4: recording,
# release, artists), and whether another account's record is on the same listen (a new
# record near such a pair has its run of plays matched again: archive/rematch.py).
SAME_SOURCE = """
SELECT listened_at, track_id, id,
       (recording_mbid IS NULL) | ((release_mbid IS NULL) << 1)
       | ((artist_mbids IS NULL) << 2),
       EXISTS (SELECT 1 FROM sightings x WHERE x.listen_id = listens.id)
FROM listens
WHERE listened_at BETWEEN :lo AND :hi AND account_id = :account_id
UNION ALL
SELECT s.listened_at, s.track_id, l.id,
       (l.recording_mbid IS NULL) | ((l.release_mbid IS NULL) << 1)
       | ((l.artist_mbids IS NULL) << 2),
       1
FROM sightings s JOIN listens l ON l.id = s.listen_id
WHERE s.account_id = :account_id AND s.listened_at BETWEEN :lo AND :hi
"""

# An import's line-mates (``Archive._join_mates``): the records :them has between :lo and
# :hi, each with its listen, the MBIDs that listen lacks (as in SAME_SOURCE), whether
# that listen already has a record of :account_id, and the listen's track.
LINE_MATES = """
SELECT listened_at, track_id, id,
       (recording_mbid IS NULL) | ((release_mbid IS NULL) << 1)
       | ((artist_mbids IS NULL) << 2),
       EXISTS (SELECT 1 FROM sightings x WHERE x.listen_id = listens.id
                                           AND x.account_id = :account_id),
       track_id
FROM listens
WHERE account_id = :them AND listened_at BETWEEN :lo AND :hi
UNION ALL
SELECT s.listened_at, s.track_id, l.id,
       (l.recording_mbid IS NULL) | ((l.release_mbid IS NULL) << 1)
       | ((l.artist_mbids IS NULL) << 2),
       l.account_id = :account_id OR EXISTS (SELECT 1 FROM sightings x
                                              WHERE x.listen_id = l.id
                                                AND x.account_id = :account_id),
       l.track_id
FROM sightings s JOIN listens l ON l.id = s.listen_id
WHERE s.account_id = :them AND s.listened_at BETWEEN :lo AND :hi
"""

# Rows come as ``Archive.plan_rows`` makes them, saved as they are: '' (0 for
# ``album_id``) where a value is absent, which this turns into NULL (Python's sqlite3 binds
# None slowly), and ``raw`` as the parsers' UTF-8 bytes, which CAST stores as the text they
# are without decoding them. SQLite numbers the rows on from the largest id. The account
# and the time seen are the same for all the rows: integers formatted in.
INSERT_LISTEN = """
INSERT INTO listens (listened_at, artist, track, album, duration, recording_mbid,
                     release_mbid, artist_mbids, remote_id, raw, artist_id, track_id,
                     album_id, account_id, seen_at)
VALUES (?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''),
        NULLIF(?, ''), CAST(NULLIF(?, '') AS TEXT), ?, ?, NULLIF(?, 0), {account_id},
        {seen_at})
"""

INSERT_SIGHTING = """
INSERT INTO sightings (listen_id, account_id, listened_at, track_id, remote_id, raw, seen_at)
VALUES (?, ?, ?, ?, NULLIF(?, ''), CAST(NULLIF(?, '') AS TEXT), ?)
"""

# A later sighting, or the same one read again (ListenBrainz adds a listen's MBIDs some
# time after it was submitted), fills in the MusicBrainz ids the listen did not have yet.
# Nothing else: the names (and so the name counts) stay the first sighting's, and so
# does the duration, which is part of what ListenBrainz identifies a listen by (its
# msid): a listen re-sent with a duration it was first sent without would be stored
# twice. Only a row with an id its listen lacks is sent (``_fills``).
FILL_LISTEN = """
UPDATE listens SET recording_mbid = coalesce(recording_mbid, NULLIF(?, '')),
                   release_mbid = coalesce(release_mbid, NULLIF(?, '')),
                   artist_mbids = coalesce(artist_mbids, NULLIF(?, ''))
WHERE id = ?
"""

# ``Archive.make_first``: an account's later sighting of a listen numbered above :after,
# with the listen's own track and another time (the first sighting holds the time).
LATER_SIGHTING = """
SELECT s.id, s.listen_id, s.remote_id, s.raw, s.seen_at
FROM sightings s JOIN listens l ON l.id = s.listen_id
WHERE s.account_id = ? AND s.listened_at = ? AND s.track_id = ? AND s.listen_id > ?
  AND l.track_id = s.track_id AND l.listened_at != s.listened_at
  AND l.account_id IS NOT NULL
"""

# The listen's first sighting becomes a later one, and the later one (deleted first)
# takes its place.
DEMOTE_FIRST = """
INSERT INTO sightings (listen_id, account_id, listened_at, track_id, remote_id, raw, seen_at)
SELECT id, account_id, listened_at, track_id, remote_id, raw, seen_at FROM listens
WHERE id = ?
"""
PROMOTE = """
UPDATE listens SET account_id = ?, listened_at = ?, remote_id = ?, raw = ?, seen_at = ?
WHERE id = ?
"""

# An import's record put first on the listen its line-mates made (``Archive._join_mates``,
# after DEMOTE_FIRST): PROMOTE for a row as ``Archive.plan_rows`` makes it.
PUT_FIRST = """
UPDATE listens SET account_id = ?, listened_at = ?, remote_id = NULLIF(?, ''),
                   raw = CAST(NULLIF(?, '') AS TEXT), seen_at = ?
WHERE id = ?
"""

UPSERT_CURSOR = """
INSERT INTO cursors (service, account, cursor, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (service, account) DO UPDATE SET cursor = max(cursor, excluded.cursor),
                                             updated_at = excluded.updated_at
"""

# A listen's columns for ``Listen``: its accounts, each with its own time, and those of
# its later sightings that are of another track (linked by recording MBID), with its names.
LISTEN_COLUMNS = """
l.id, l.listened_at, l.artist, l.track, l.album, l.duration, l.recording_mbid,
l.release_mbid, l.artist_mbids,
(SELECT group_concat(x.service || ':' || x.account || char(30) || x.listened_at, char(31))
 FROM (SELECT a.service, a.account, l.listened_at FROM accounts a WHERE a.id = l.account_id
       UNION ALL
       SELECT a.service, a.account, s.listened_at
       FROM sightings s JOIN accounts a ON a.id = s.account_id WHERE s.listen_id = l.id
       ORDER BY 1, 2, 3) x) AS accounts,
(SELECT json_group_array(json_array(x.account, x.artist, x.track))
 FROM (SELECT a.service || ':' || a.account AS account, ar.name AS artist, t.name AS track
       FROM sightings s JOIN accounts a ON a.id = s.account_id
            JOIN tracks t ON t.id = s.track_id JOIN artists ar ON ar.id = t.artist_id
       WHERE s.listen_id = l.id AND s.track_id != l.track_id
       ORDER BY 1) x) AS account_tracks
"""

# The same columns without the accounts each listen was seen by: exports do not need
# them, and the correlated group_concat is a third of reading a candidate.
BARE_COLUMNS = """
l.id, l.listened_at, l.artist, l.track, l.album, l.duration, l.recording_mbid,
l.release_mbid, l.artist_mbids, NULL AS accounts, NULL AS account_tracks
"""

# Whether a listen was seen by an account of :source (and :source_account, if given).
SEEN_BY_SOURCE = """
(:source IS NULL
 OR l.account_id IN (SELECT id FROM accounts WHERE service = :source
                     AND (:source_account IS NULL OR account = :source_account))
 OR EXISTS (SELECT 1 FROM sightings s2 JOIN accounts a2 ON a2.id = s2.account_id
            WHERE s2.listen_id = l.id AND a2.service = :source
              AND (:source_account IS NULL OR a2.account = :source_account)))
"""

# Whether :account_id has a record of the listen (attachment is decided by the matching
# rules when records are saved).
_HAS = """
(l.account_id IS :account_id
 OR EXISTS (SELECT 1 FROM sightings s WHERE s.listen_id = l.id AND s.account_id = :account_id))
"""

_PUSHED = """
EXISTS (SELECT 1 FROM pushes p
        WHERE p.listen_id = l.id AND p.service = :service AND p.account = :account)
"""

# Listens an account lacks: no record of it is attached to them and, optionally, they
# were not pushed there before.
MISSING_FOR = f"""
SELECT {{columns}} FROM listens l
WHERE l.listened_at >= :since AND l.listened_at < :until
  AND NOT {_HAS}
  AND (:include_pushed OR NOT {_PUSHED})
  -- only listens seen somewhere other than this service: another account's listens of
  -- the same service (a friend's ListenBrainz history) are never pushed to this one,
  -- nor those only accounts that are not yours saw ({{foreign}}: a friend's Last.fm)
  AND (l.account_id IN (SELECT id FROM accounts WHERE service != :service
                        AND id NOT IN ({{foreign}}))
       OR EXISTS (SELECT 1 FROM sightings s3 JOIN accounts a3 ON a3.id = s3.account_id
                  WHERE s3.listen_id = l.id AND a3.service != :service
                  AND a3.id NOT IN ({{foreign}})))
  AND {SEEN_BY_SOURCE}
ORDER BY l.listened_at, l.id
"""

# Listens of a window (optionally seen by one service) that an account has: a record of
# it is attached, or scrob pushed the listen there before.
COUNT_PRESENT = f"""
SELECT count(*) FROM listens l
WHERE l.listened_at >= :since AND l.listened_at < :until
  AND {SEEN_BY_SOURCE}
  AND ({_HAS} OR {_PUSHED})
"""

# Listens with id in (lo, hi] per name: the tail not yet folded into the name counts.
TAIL_COUNTS = """
SELECT count(*), {column} FROM listens
WHERE id > ? AND id <= ? AND {column} IS NOT NULL GROUP BY {column}
"""

# ``rematch``: the listens of one track in a time range (each with its first sighting),
# their later sightings, and any sighting of the track on a listen of another track
# (paired by recording MBID).
RUN_LISTENS = """
SELECT id, account_id, listened_at, remote_id, raw, seen_at, recording_mbid, release_mbid,
       artist_mbids
FROM listens WHERE track_id = ? AND listened_at BETWEEN ? AND ?
ORDER BY listened_at, id
"""
RUN_SIGHTINGS = """
SELECT id, listen_id, account_id, listened_at, track_id, remote_id, raw, seen_at
FROM sightings WHERE listen_id IN ({marks})
"""
RUN_STRAYS = """
SELECT count(*) FROM sightings s JOIN listens l ON l.id = s.listen_id
WHERE s.account_id IN (SELECT id FROM accounts) AND s.listened_at BETWEEN ?2 AND ?3
  AND s.track_id = ?1 AND l.track_id != ?1
"""
RUN_PUSHED = "SELECT DISTINCT listen_id FROM pushes WHERE listen_id IN ({marks})"
RUN_DROP_SIGHTINGS = "DELETE FROM sightings WHERE listen_id IN ({marks})"
# A listen for a play only later sightings had: the names of the listen its new first
# sighting was on (the same track), that sighting's own time and ids.
COPY_LISTEN = """
INSERT INTO listens (listened_at, artist, track, album, duration, recording_mbid,
                     release_mbid, artist_mbids, artist_id, track_id, album_id, account_id,
                     remote_id, raw, seen_at)
SELECT ?2, artist, track, album, duration, recording_mbid, release_mbid, artist_mbids,
       artist_id, track_id, album_id, ?1, ?3, ?4, ?5
FROM listens WHERE id = ?6
"""

# The newest play of a track after a time and within reach of it (``run_end``).
NEXT_PLAY = """
SELECT max(listened_at) FROM listens WHERE listened_at > ? AND listened_at <= ? AND track_id = ?
"""
