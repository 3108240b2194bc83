"""Listening statistics from the archive (no network).

Each listen counts once however many sources saw it (the archive stores a listen once).
Windows that cover the whole history read the maintained per-name counts
(``artists.listens`` and friends: a few thousand rows); other windows group the listens
inside them through the ``listens_time`` covering index.
"""

from __future__ import annotations

from .archive import Archive
from .models import RankedItem, StatsReport

BY = ("artists", "albums", "tracks", "all")

_TOP_ALL = {
    "artists": "SELECT name, NULL, listens FROM artists WHERE listens > 0"
               " ORDER BY listens DESC, key LIMIT ?",
    "tracks": "SELECT a.name, t.name, t.listens FROM tracks t JOIN artists a ON a.id = t.artist_id"
              " WHERE t.listens > 0 ORDER BY t.listens DESC, t.key LIMIT ?",
    "albums": "SELECT a.name, b.name, b.listens FROM albums b JOIN artists a ON a.id = b.artist_id"
              " WHERE b.listens > 0 ORDER BY b.listens DESC, b.key LIMIT ?",
}

_TOP_WINDOW = {
    "artists": """
        SELECT a.name, NULL, g.n FROM (
            SELECT artist_id AS id, count(*) AS n FROM listens
            WHERE listened_at >= ? AND listened_at < ? GROUP BY artist_id
        ) g JOIN artists a ON a.id = g.id ORDER BY g.n DESC, a.key LIMIT ?""",
    "tracks": """
        SELECT a.name, t.name, g.n FROM (
            SELECT track_id AS id, count(*) AS n FROM listens
            WHERE listened_at >= ? AND listened_at < ? GROUP BY track_id
        ) g JOIN tracks t ON t.id = g.id JOIN artists a ON a.id = t.artist_id
        ORDER BY g.n DESC, t.key LIMIT ?""",
    "albums": """
        SELECT a.name, b.name, g.n FROM (
            SELECT album_id AS id, count(*) AS n FROM listens
            WHERE listened_at >= ? AND listened_at < ? AND album_id IS NOT NULL
            GROUP BY album_id
        ) g JOIN albums b ON b.id = g.id JOIN artists a ON a.id = b.artist_id
        ORDER BY g.n DESC, b.key LIMIT ?""",
}


def compute_stats(archive: Archive, start: int, end: int, *, by: str = "all",
                  limit: int = 10) -> StatsReport:
    """Totals and top lists for listens in ``[start, end)``."""
    conn = archive.conn
    first, last, total = conn.execute(
        "SELECT min(listened_at), max(listened_at), count(*) FROM listens").fetchone()
    whole = total == 0 or (start <= first and end > last)
    if whole:
        uniques = conn.execute(
            "SELECT (SELECT count(*) FROM artists WHERE listens > 0),"
            " (SELECT count(*) FROM tracks WHERE listens > 0)").fetchone()
    else:
        total, *uniques = conn.execute(
            "SELECT count(*), count(DISTINCT artist_id), count(DISTINCT track_id) FROM listens"
            " WHERE listened_at >= ? AND listened_at < ?", (start, end)).fetchone()

    def top(kind: str) -> list[RankedItem]:
        if by not in (kind, "all") or limit <= 0:
            return []
        if whole:
            rows = conn.execute(_TOP_ALL[kind], (limit,))
        else:
            rows = conn.execute(_TOP_WINDOW[kind], (start, end, limit))
        field = {"artists": None, "tracks": "track", "albums": "album"}[kind]
        return [RankedItem(artist=a, listens=n, **({field: b} if field else {}))
                for a, b, n in rows]

    return StatsReport(
        start=start, end=end, total_listens=int(total), unique_artists=int(uniques[0]),
        unique_tracks=int(uniques[1]), top_artists=top("artists"), top_albums=top("albums"),
        top_tracks=top("tracks"),
    )
