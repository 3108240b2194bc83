"""Pure cross-source matching: which archived listen is a new record the same play as?

archive.md: records whose normalized artist and track agree (or whose recording MBIDs
agree) and whose times differ by at most the tolerance are one listen; matching is
one-to-one and nearest in time (over a run of plays: ``assign``), so two real plays a few
minutes apart stay two; within one source, records with different times are never
merged.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from math import inf

DEFAULT_TOLERANCE = 300
#: The largest group (records × candidates) ``assign`` matches by its dynamic programme.
MAX_CELLS = 1_000_000
#: The largest group that ``assign`` matches exactly when its pairs may cross (a record
#: linked to a play by recording MBID alone, under another spelling): the Hungarian
#: method, ~cells × rows steps of Python. Such groups are a play or two of one song.
MAX_CROSSING_CELLS = 10_000


@dataclass(slots=True)
class Candidate:
    """An archived listen near a new record; ``taken`` when the record's own source
    already has it (so it cannot match a second record from that source). ``lacks``:
    the fields a record it matches may fill in (the archive's bits, 0 for none)."""

    listen_id: int
    listened_at: int
    taken: bool = False
    lacks: int = 0


@dataclass(slots=True)
class CandidateIndex:
    """Archived listens near a batch, by track key id and by recording MBID.

    Candidates must be added in time order (each pool stays sorted), so a lookup is a
    bisection to the start of the tolerance window.
    """

    by_track: dict[int, list[Candidate]] = field(default_factory=dict)
    by_mbid: dict[str, list[Candidate]] = field(default_factory=dict)

    def add(self, cand: Candidate, track_id: int, mbid: str | None) -> None:
        self.by_track.setdefault(track_id, []).append(cand)
        if mbid:
            self.by_mbid.setdefault(mbid, []).append(cand)

    def __bool__(self) -> bool:
        return bool(self.by_track)

    def within(self, listened_at: int, track_id: int, mbid: str | None,
               tolerance: int) -> list[Candidate]:
        """Free candidates of the same track (or recording MBID) within the tolerance."""
        found: dict[int, Candidate] = {}
        pools = [self.by_track.get(track_id, [])]
        if mbid:
            pools.append(self.by_mbid.get(mbid, []))
        for pool in pools:
            start = bisect_left(pool, listened_at - tolerance, key=lambda c: c.listened_at)
            for cand in pool[start:]:
                if cand.listened_at > listened_at + tolerance:
                    break
                if not cand.taken:
                    found[cand.listen_id] = cand
        return list(found.values())


def assign(pairs: list[tuple[int, int, int, Candidate]]) -> dict[int, Candidate]:
    """One-to-one matching: ``pairs`` are (gap, listen id, record index, candidate), record
    indexes in time order; returns record index → the candidate it joins, and marks the
    candidates it gives out taken.

    As many records as possible join a candidate, and of the matchings that join that
    many, the one with the smallest sum of time gaps: nearest in time over the whole
    run of plays, not pair by pair. Smallest gap first would not do: one song on repeat
    that two services stamp a steady 200 s apart (one at a play's start, one at its end)
    has each play's record nearer the *next* play's other record, and pairing those
    first strands the first and the last play, one listen too many (which export would
    then send to both services).
    """
    records = Counter(p[2] for p in pairs)
    listens = Counter(p[1] for p in pairs)
    chosen: dict[int, Candidate] = {}
    by_record: dict[int, list[tuple[int, int, int, Candidate]]] = {}
    by_listen: dict[int, list[tuple[int, int, int, Candidate]]] = {}
    for pair in pairs:
        if records[pair[2]] == 1 and listens[pair[1]] == 1:
            chosen[pair[2]] = pair[3]  # the only pair either of them is in (most are)
        else:
            by_record.setdefault(pair[2], []).append(pair)
            by_listen.setdefault(pair[1], []).append(pair)
    done: set[int] = set()
    for idx in sorted(by_record):
        if idx in done:
            continue
        # the records connected to this one through the listens they share, and their pairs
        linked, group, reached = {idx}, [], set()
        todo = [idx]
        while todo:
            for pair in by_record[todo.pop()]:
                group.append(pair)
                if pair[1] not in reached:
                    reached.add(pair[1])
                    fresh = {p[2] for p in by_listen[pair[1]]} - linked
                    linked |= fresh
                    todo.extend(fresh)
        done |= linked
        chosen.update(_best(group, linked))
    for cand in chosen.values():
        cand.taken = True
    return chosen


def _best(group: list[tuple[int, int, int, Candidate]], records: set[int]
          ) -> dict[int, Candidate]:
    """``assign`` for one connected group of pairs.

    Both sides in time order, the best matching that never crosses (a record pairs with
    a later candidate than an earlier record's), by a dynamic programme over the two
    sequences. For plays of one track that loses nothing: swapping a crossing pair's
    partners never adds to the gaps nor takes one beyond the tolerance. Where a record
    is linked to a play by recording MBID alone (another spelling), a pair may be missing
    that the swap needs (``_uncrossable``), and the group is matched by the Hungarian
    method instead. A group too big for the programme (thousands of plays of one song,
    each within the tolerance of the next) is matched smallest gap first.
    """
    rows = sorted(records)
    cands = sorted({p[1]: p[3] for p in group}.values(),
                   key=lambda c: (c.listened_at, c.listen_id))
    if (len(rows) * len(cands) <= MAX_CROSSING_CELLS
            and not _uncrossable(group, rows, cands)):
        return _hungarian(group, rows, cands)
    if len(rows) * len(cands) > MAX_CELLS:
        chosen: dict[int, Candidate] = {}
        taken: set[int] = set()
        for _, lid, idx, cand in sorted(group, key=lambda p: (p[0], p[1], p[2])):
            if idx not in chosen and lid not in taken:
                taken.add(lid)
                chosen[idx] = cand
        return chosen
    row_of = {idx: i for i, idx in enumerate(rows)}
    col_of = {c.listen_id: j for j, c in enumerate(cands)}
    weight: dict[tuple[int, int], int] = {}
    # each pair is worth more than every gap together: more pairs first, then less gap
    worth = (max(p[0] for p in group) + 1) * (len(rows) + 1)
    for gap, lid, idx, _ in group:
        weight[row_of[idx], col_of[lid]] = worth - gap
    m = len(cands)
    best = [[0] * (m + 1) for _ in range(len(rows) + 1)]
    for i in range(1, len(rows) + 1):
        above, here = best[i - 1], best[i]
        for j in range(1, m + 1):
            w = weight.get((i - 1, j - 1))
            here[j] = max(above[j], here[j - 1],
                          above[j - 1] + w if w is not None else 0)
    out: dict[int, Candidate] = {}
    i, j = len(rows), m
    while i and j:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            out[rows[i - 1]] = cands[j - 1]
            i, j = i - 1, j - 1
    return out


def _uncrossable(group: list[tuple[int, int, int, Candidate]], rows: list[int],
                 cands: list[Candidate]) -> bool:
    """Whether the best matching of ``group`` never crosses: each record's candidates
    are a run of ``cands`` (in time order), and the runs move on, start and end, from
    one record to the next (as plays within a tolerance of each other do). Then the
    partners of two crossing pairs are pairs too, with no more gap between them."""
    col_of = {c.listen_id: j for j, c in enumerate(cands)}
    spans: dict[int, list[int]] = {}
    for _, lid, idx, _ in group:
        spans.setdefault(idx, []).append(col_of[lid])
    last_lo = last_hi = -1
    for idx in rows:
        cols = spans[idx]
        lo, hi = min(cols), max(cols)
        if hi - lo + 1 != len(cols) or lo < last_lo or hi < last_hi:
            return False
        last_lo, last_hi = lo, hi
    return True


def _hungarian(group: list[tuple[int, int, int, Candidate]], rows: list[int],
               cands: list[Candidate]) -> dict[int, Candidate]:
    """The matching of ``group`` with the most pairs, then the least total gap, by the
    Hungarian method (with potentials, O(n²m)) over rows × candidates, a pair's cost
    being minus its worth and a missing pair's 0, so it is never worth taking."""
    worth = (max(p[0] for p in group) + 1) * (len(rows) + 1)
    # the smaller side as the method's rows (every one of them is assigned a column)
    flip = len(rows) > len(cands)
    n, m = (len(cands), len(rows)) if flip else (len(rows), len(cands))
    row_of = {idx: i for i, idx in enumerate(rows, 1)}
    col_of = {c.listen_id: j for j, c in enumerate(cands, 1)}
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for gap, lid, idx, _ in group:
        i, j = row_of[idx], col_of[lid]
        if flip:
            i, j = j, i
        cost[i][j] = gap - worth
    u: list[float] = [0] * (n + 1)  # the potentials (whole numbers, as the costs)
    v: list[float] = [0] * (m + 1)
    owner, way = [0] * (m + 1), [0] * (m + 1)  # owner[j]: the row column j is assigned
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        least, used = [inf] * (m + 1), [False] * (m + 1)
        while True:  # grow a shortest augmenting path from row i
            used[j0] = True
            i0, delta, j1 = owner[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = cost[i0][j] - u[i0] - v[j]
                    if reduced < least[j]:
                        least[j], way[j] = reduced, j0
                    if least[j] < delta:
                        delta, j1 = least[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    least[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    out: dict[int, Candidate] = {}
    for j in range(1, m + 1):
        i = owner[j]
        if i and cost[i][j]:  # assigned, and a pair (not a missing one)
            row, col = (j, i) if flip else (i, j)
            out[rows[row - 1]] = cands[col - 1]
    return out


def match_times(left: list[int], right: list[int], tolerance: int = DEFAULT_TOLERANCE
                ) -> list[tuple[int, int]]:
    """One-to-one pairing of two sources' plays of one track, as the archive does it
    (``assign``): the most pairs within the tolerance, then the least total gap.

    Returns index pairs (i, j); exposed for tests and for callers comparing two lists.
    """
    order = sorted(range(len(left)), key=lambda i: left[i])
    cands = [Candidate(j, b) for j, b in enumerate(right)]
    pairs = [(abs(left[i] - c.listened_at), c.listen_id, k, c)
             for k, i in enumerate(order) for c in cands
             if abs(left[i] - c.listened_at) <= tolerance]
    return sorted((order[k], c.listen_id) for k, c in assign(pairs).items())
