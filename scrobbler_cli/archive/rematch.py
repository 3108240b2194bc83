"""Matching a new record again together with the plays of its track around it.

A record is matched when it is saved, against what the archive holds then (archive.md:
one-to-one, the most pairs, then the least total gap). A song on repeat whose two
services' stamps of a play differ by more than half the song can be paired one play
off while one service's newest record has not arrived yet (both pairings have as many
pairs, and the shifted one has less gap), stranding the oldest play: three plays became
four listens once the newest record came. When a new record falls near plays of its
track that are already paired, ``rematch`` solves the pairing of that whole run of
plays again and moves the records to the listens it now gives them: a record moves
from one listen to another, and two listens that turn out to be one play become one
(one row goes, its name counts with it; a listen pushed somewhere is the one that stays).

Only the plain case is handled: records of exactly two accounts, all of one track (no
pairing by MBID across spellings), every listen knowing its first sighting, a run of at
most ``MAX_RUN`` listens within ``MAX_SPAN``. Anything else returns None and the record
is saved as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..matching import match_times
from . import queries

if TYPE_CHECKING:
    from . import Archive

#: How far a run of plays is followed at most (seconds), and how many listens it may
#: hold: a longer run of repeats (a song looped all day) is left to the matching made
#: when each record was saved. The bound keeps re-pairing cheap (it rewrites the run)
#: and within what ``matching.assign`` solves exactly. Exports hold a run back as far
#: (``export.ExportOptions.holds``).
MAX_SPAN = 86400
MAX_RUN = 200


@dataclass(slots=True)
class _Record:
    """One record of the run: a listen's own sighting (``row``), a later sighting
    (``sighting``) or a record being saved (``new``: its ``plan_rows`` row)."""

    account_id: int
    listened_at: int
    remote_id: str | None = None
    raw: str | None = None
    seen_at: int = 0
    row: int | None = None  # the listen whose first sighting it is
    on: int | None = None  # the listen it is a later sighting of
    new: tuple[Any, ...] | None = None
    group: int = -1


@dataclass(slots=True)
class _Group:
    """One play as the new pairing has it: its records, and the listen that holds it."""

    members: list[_Record] = field(default_factory=list)
    listen: int | None = None
    owner: _Record | None = None
    spare: int | None = None  # a listen another group gave up, to take over


def rematch(archive: Archive, account_id: int, track_id: int, rows: list[tuple[Any, ...]],
            now: int, upto: int | None = None) -> tuple[int, int] | None:
    """Save ``rows`` (one track, not yet in the archive, none a repeat of a record the
    account has) by pairing the run of plays around them again. (new listens, records
    that joined one), or None to save them the usual way. ``upto``: see ``gather``."""
    run = gather(archive, account_id, track_id, rows, upto)
    if run is None:
        return None
    owners, seen, pushed = run
    records = [_Record(r[1], r[2], r[3], r[4], r[5], row=r[0]) for r in owners]
    mbids = {r[0]: (r[6] or "", r[7] or "", r[8] or "") for r in owners}
    records += [_Record(s[2], s[3], s[5], s[6], s[7], on=s[1]) for s in seen]
    records += [_Record(account_id, row[0], row[8] or None, row[9] or None, now, new=row)
                for row in rows]
    mine = sorted((r for r in records if r.account_id == account_id),
                  key=lambda r: r.listened_at)
    theirs = sorted((r for r in records if r.account_id != account_id),
                    key=lambda r: r.listened_at)
    groups = [_Group([mine[i], theirs[j]]) for i, j in match_times(
        [r.listened_at for r in mine], [r.listened_at for r in theirs], archive.tolerance)]
    for n, g in enumerate(groups):
        for r in g.members:
            r.group = n
    for r in records:
        if r.group < 0:  # a play only one account has
            r.group = len(groups)
            groups.append(_Group([r]))
    if _unchanged(records, groups):
        return None  # the usual way gives the same (and writes less)
    if not _place(groups, pushed):
        return None
    _apply(archive, track_id, records, groups, mbids, now)
    new = len(groups) - len(owners)  # listens added (from 0 to the records saved)
    return new, len(rows) - new


def gather(archive: Archive, account_id: int, track_id: int, rows: list[tuple[Any, ...]],
           upto: int | None = None) -> tuple[list[Any], list[Any], set[int]] | None:
    """The run of plays of the track around ``rows``: its listens, their later sightings
    and those of them pushed somewhere; None where ``rematch`` does not go (see the
    module's doc, ``MAX_SPAN`` and ``MAX_RUN``). An import's (``upto``: the newest listen
    id from before it) does not go where a listen the import made holds another
    account's record: its file grouped those records (``Archive.save_records``). Reads
    only."""
    conn = archive.conn
    tol = archive.tolerance
    # Widen until the listens of the track nearest the edges are three tolerances inside:
    # a record is within one of its listen, so none outside is within reach of one inside.
    reach = 3 * tol
    lo, hi = rows[0][0] - reach, rows[-1][0] + reach
    owners = conn.execute(queries.RUN_LISTENS, (track_id, lo, hi)).fetchall()
    while True:
        if len(owners) > MAX_RUN or hi - lo > MAX_SPAN:
            return None
        first = min([r[2] for r in owners] + [rows[0][0]]) - reach
        last = max([r[2] for r in owners] + [rows[-1][0]]) + reach
        more = []
        if first < lo:
            more += conn.execute(queries.RUN_LISTENS, (track_id, first, lo - 1)).fetchall()
            lo = first
        if last > hi:
            more += conn.execute(queries.RUN_LISTENS, (track_id, hi + 1, last)).fetchall()
            hi = last
        if not more:
            break
        owners += more
    owners.sort(key=lambda r: (r[2], r[0]))
    ids = [r[0] for r in owners]
    marks = ",".join("?" * len(ids))
    seen = conn.execute(queries.RUN_SIGHTINGS.format(marks=marks), ids).fetchall()
    strays = conn.execute(queries.RUN_STRAYS, (track_id, lo, hi)).fetchone()[0]
    accounts = {r[1] for r in owners} | {s[2] for s in seen} | {account_id}
    if (strays or None in accounts or len(accounts) != 2
            or any(s[4] != track_id for s in seen)):
        return None
    if upto is not None and (any(r[0] > upto and r[1] != account_id for r in owners)
                             or any(s[1] > upto and s[2] != account_id for s in seen)):
        return None
    pushed = {r[0] for r in conn.execute(queries.RUN_PUSHED.format(marks=marks), ids)}
    return owners, seen, pushed


def _unchanged(records: list[_Record], groups: list[_Group]) -> bool:
    """Whether every record already in the archive stays with the records it is with
    (the new ones then only join listens no record of their account is on, or make
    their own: what saving them the usual way does)."""
    together: dict[int | None, set[int]] = {}
    for r in records:
        if r.new is None:
            together.setdefault(r.row if r.row is not None else r.on, set()).add(id(r))
    for g in groups:
        old = [m for m in g.members if m.new is None]
        if any(together[m.row if m.row is not None else m.on] != {id(o) for o in old}
               for m in old):
            return False
    return True


def _place(groups: list[_Group], pushed: set[int]) -> bool:
    """Give each group its listen and first sighting. A group keeps a listen one of its
    records brought: one pushed somewhere if any (what was sent was that listen, its first
    sighting's time: it stays as it is), else the oldest. A group only later sightings
    had takes a listen another group gave up, or a new one (``spare`` None). False when
    two pushed listens would be one (which of them was sent cannot be told apart)."""
    spare: list[int] = []
    for g in groups:
        held = sorted((m.row not in pushed, m.row) for m in g.members if m.row is not None)
        if len(held) > 1 and not held[1][0]:
            return False
        if held:
            g.listen = held[0][1]
            g.owner = next(m for m in g.members if m.row == g.listen)
            spare.extend(row for _, row in held[1:])
    spare.sort()
    for g in groups:
        if g.listen is None:
            fresh = [m for m in g.members if m.new is not None]
            if fresh:  # its own listen, made from the record
                g.owner = fresh[0]
            else:
                g.owner = min(g.members, key=lambda m: m.listened_at)
                g.spare = spare.pop(0) if spare else None
    return True


def _apply(archive: Archive, track_id: int, records: list[_Record], groups: list[_Group],
           mbids: dict[int, tuple[str, str, str]], now: int) -> None:
    """Rewrite the run as ``groups`` (``_place``d) say, in the open transaction."""
    conn = archive.conn
    rows = sorted({r.row for r in records if r.row is not None})
    moved = {r.row: groups[r.group] for r in records if r.row is not None}
    marks = ",".join("?" * len(rows))
    conn.execute(queries.RUN_DROP_SIGHTINGS.format(marks=marks), rows)
    copies = [g for g in groups if g.listen is None and g.owner is not None
              and g.owner.new is None and g.spare is None]
    for g in groups:
        if g.spare is not None:  # a listen given up by another group takes this play
            g.listen = g.spare
    for g in copies:  # a play only later sightings had: a listen like the one it was on
        owner = g.owner
        assert owner is not None and owner.on is not None
        g.listen = conn.execute(queries.COPY_LISTEN, (
            owner.account_id, owner.listened_at, owner.remote_id, owner.raw, owner.seen_at,
            owner.on)).lastrowid
    if copies:
        archive._void_counts()
    kept = {g.listen for g in groups}
    gone = [r for r in rows if r not in kept]
    for g in groups:
        if g.spare is not None:
            assert g.owner is not None
            conn.execute(queries.PROMOTE, (g.owner.account_id, g.owner.listened_at,
                                           g.owner.remote_id, g.owner.raw,
                                           g.owner.seen_at, g.listen))
    for g in groups:
        if g.listen is None:  # a new record's own listen
            assert g.owner is not None and g.owner.new is not None
            archive._insert_listens(queries.INSERT_LISTEN.format(
                account_id=g.owner.account_id, seen_at=now), [g.owner.new])
            g.listen = archive.last_id()
    if gone:  # what a listen that goes knew of its MusicBrainz ids, its play keeps
        conn.executemany(queries.FILL_LISTEN, [
            (*mbids[r], moved[r].listen) for r in gone])
        archive._drop_listens(gone)  # never one pushed anywhere (``_place``)
    sightings = [(g.listen, m.account_id, m.listened_at, track_id, m.remote_id or "",
                  m.raw or "", m.seen_at)
                 for g in groups for m in g.members if m is not g.owner]
    conn.executemany(queries.INSERT_SIGHTING, sightings)
    fills = [(*m.new[5:8], g.listen) for g in groups for m in g.members
             if m.new is not None and m is not g.owner]
    conn.executemany(queries.FILL_LISTEN, fills)
