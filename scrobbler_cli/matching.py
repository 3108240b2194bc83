"""Pure cross-source matching: which archived listen is a new record the same play as?

archive.md: records whose normalized artist and track agree (or whose recording MBIDs
agree) and whose times differ by at most the tolerance are one listen; matching is
one-to-one and nearest in time, so two real plays a few minutes apart stay two; within
one source, records with different times are never merged.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

DEFAULT_TOLERANCE = 300


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
    """One-to-one matching, smallest time gap first: ``pairs`` are (gap, listen id, record
    index, candidate); returns record index → the candidate it joins. Candidates it
    gives out are marked taken."""
    chosen: dict[int, Candidate] = {}
    for _, _, idx, cand in sorted(pairs, key=lambda p: (p[0], p[1], p[2])):
        if idx not in chosen and not cand.taken:
            cand.taken = True
            chosen[idx] = cand
    return chosen


def match_times(left: list[int], right: list[int], tolerance: int = DEFAULT_TOLERANCE
                ) -> list[tuple[int, int]]:
    """One-to-one nearest-time pairing of two sources' plays of one track.

    Returns index pairs (i, j). Greedy by smallest gap first, which is what the archive
    does incrementally; exposed for tests and for callers comparing two lists.
    """
    gaps = sorted(
        (abs(a - b), i, j)
        for i, a in enumerate(left)
        for j, b in enumerate(right)
        if abs(a - b) <= tolerance
    )
    used_l: set[int] = set()
    used_r: set[int] = set()
    pairs = []
    for _, i, j in gaps:
        if i not in used_l and j not in used_r:
            used_l.add(i)
            used_r.add(j)
            pairs.append((i, j))
    return sorted(pairs)
