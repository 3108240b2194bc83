"""The SQL the archive runs, in one place."""

from __future__ import annotations

# Listens of other sources near a batch that the saving account has no record of: the
# ones its records may join (archive.md, one-to-one matching).
CANDIDATES = """
SELECT l.id, l.listened_at, l.track_id, l.recording_mbid
FROM listens l
WHERE l.listened_at BETWEEN ? AND ?
  AND NOT EXISTS (SELECT 1 FROM sources s
                  WHERE s.listen_id = l.id AND s.service = ? AND s.account = ?)
ORDER BY l.listened_at, l.id
"""

SAME_SOURCE = """
SELECT listened_at, track_id FROM sources
WHERE service = ? AND account = ? AND listened_at BETWEEN ? AND ?
"""

INSERT_LISTEN = """
INSERT INTO listens (id, listened_at, artist, track, album, duration, recording_mbid,
                     release_mbid, artist_mbids, artist_id, track_id, album_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_SOURCE = """
INSERT INTO sources (listen_id, service, account, listened_at, track_id, remote_id, raw,
                     seen_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

UPSERT_CURSOR = """
INSERT INTO cursors (service, account, cursor, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (service, account) DO UPDATE SET cursor = max(cursor, excluded.cursor),
                                             updated_at = excluded.updated_at
"""

LISTEN_COLUMNS = """
l.id, l.listened_at, l.artist, l.track, l.album, l.duration, l.recording_mbid,
l.release_mbid, l.artist_mbids,
(SELECT group_concat(s.service || ':' || s.account || char(30) || s.listened_at, char(31))
 FROM (SELECT service, account, listened_at FROM sources WHERE listen_id = l.id
       ORDER BY service, account, listened_at) s) AS accounts
"""

# The same columns without the accounts each listen was seen by: exports do not need
# them, and the correlated group_concat is a third of reading a candidate.
BARE_COLUMNS = """
l.id, l.listened_at, l.artist, l.track, l.album, l.duration, l.recording_mbid,
l.release_mbid, l.artist_mbids, NULL AS accounts
"""

# Listens an account lacks: no record of that account is attached to them (attachment
# is decided by the matching rules when records are saved) and, optionally, not pushed
# there before.
MISSING_FOR = """
SELECT {columns} FROM listens l
WHERE NOT EXISTS (SELECT 1 FROM sources s
                  WHERE s.listen_id = l.id AND s.service = :service AND s.account = :account)
  AND (:include_pushed OR NOT EXISTS (
        SELECT 1 FROM pushes p
        WHERE p.listen_id = l.id AND p.service = :service AND p.account = :account))
  AND l.listened_at >= :since AND l.listened_at < :until
  -- only listens seen somewhere other than this service: another account's listens of
  -- the same service (a friend's ListenBrainz history) are never pushed to this one
  AND EXISTS (SELECT 1 FROM sources s3 WHERE s3.listen_id = l.id AND s3.service != :service)
  AND (:source IS NULL OR EXISTS (SELECT 1 FROM sources s2
                                  WHERE s2.listen_id = l.id AND s2.service = :source
                                    AND (:source_account IS NULL
                                         OR s2.account = :source_account)))
ORDER BY l.listened_at, l.id
"""

# Listens of a window (optionally seen by one service) that an account has: a record of
# it is attached, or scrob pushed the listen there before.
COUNT_PRESENT = """
SELECT count(*) FROM listens l
WHERE l.listened_at >= :since AND l.listened_at < :until
  AND (:source IS NULL OR EXISTS (SELECT 1 FROM sources s2
                                  WHERE s2.listen_id = l.id AND s2.service = :source
                                    AND (:source_account IS NULL
                                         OR s2.account = :source_account)))
  AND (EXISTS (SELECT 1 FROM sources s
               WHERE s.listen_id = l.id AND s.service = :service AND s.account = :account)
       OR EXISTS (SELECT 1 FROM pushes p
                  WHERE p.listen_id = l.id AND p.service = :service AND p.account = :account))
"""

# Listens with id in (lo, hi] per name: the tail not yet folded into the name counts.
TAIL_COUNTS = """
SELECT {column}, count(*) FROM listens
WHERE id > ? AND id <= ? AND {column} IS NOT NULL GROUP BY {column}
"""
