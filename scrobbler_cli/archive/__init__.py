"""The local archive: one SQLite file that holds every listen once.

Writers take the lock file, open through sqlite-utils and apply pending migrations;
readers open with plain ``sqlite3`` (fast start, never blocked thanks to WAL) as long as
the schema is current. ``save_records`` (or ``save_rows``, the same for records as
``plan_rows`` makes them) is the single way listens enter the archive:
it applies same-source identity and cross-source matching and, in the same transaction,
moves the account's cursor.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orjson import dumps

from ..errors import ArchiveBusy, ArchiveError
from ..matching import DEFAULT_TOLERANCE, Candidate, CandidateIndex, assign
from ..models import Account, Listen, SaveResult, SourceRecord
from ..normalize import SEP, name_key, track_key
from . import queries

if TYPE_CHECKING:
    from .writer import Saver

#: Two services' records of one play are never a day apart; SQLite's integers end too.
MAX_TOLERANCE = 86400
DEFAULT_WAIT = 10.0  # seconds a writer waits for the lock (archive/lock.py)

#: The number of migrations; each migration sets ``PRAGMA user_version`` to its number.
SCHEMA_VERSION = 2

# Records further apart than this are looked up in separate windows, so a batch that
# spans years never loads the archive's whole history as candidates.
_WINDOW = 86400
#: Listens after which the unfolded tail is folded into the per-name counts (and on close):
#: statistics count the tail's listens one by one, and the writer keeps their name counts.
#: Each fold updates every name its listens used, and names recur from one fold to the
#: next: 100,000 instead of 50,000 saved a sync of 100,000 listens its mid-way fold
#: (ListenBrainz 1.73 -> 1.64 s); a million-listen sync's peak stayed 123-133 MB.
FOLD_AFTER = 100_000
#: Spellings whose ids the writer keeps at most; each name table's key cache holds a third
#: as many (keys are only looked up for a spelling it does not know). Memory stays flat:
#: a full cache is emptied and refills on demand, each miss costing three name keys and
#: an indexed lookup. A big sync runs in two processes (archive/writer.py) whose peaks
#: together must stay under 150 MB for 1,000,000 listens: 25,000 spellings took a Last.fm
#: sync's peak from 137 to 143 MB over 10,000, and ``save_records`` from 17.8 to 16.6 us a
#: listen (a sync of 100,000 has ~29,000 spellings). SQLite's page cache is 6 MB for the
#: same reason.
NAME_CACHE = 25_000
#: What ``scrob import`` allows instead (one big job with no memory target): 600,000
#: spellings and 200,000 keys per name table. A million-listen history has ~107,000
#: spellings and ~107,000 tracks; with 10,000 entries the caches were emptied ~50 times
#: and a third of the listens missed them (import 18.1 -> 15.4 s). An import plans its
#: names in the command's own process (``saver(plan_names=True)``), which must let the
#: writer process catch up before it empties a key cache: 100,000 keys made it wait so
#: once, near the end of a million listens.
IMPORT_NAME_CACHE = 600_000
#: And it folds the name counts once a million listens: each fold updates every name its
#: listens used, and names recur from one fold to the next (a million listens' fold
#: updates 211,000 names once instead of ~55,000 twenty times; saving 7 % faster).
IMPORT_FOLD_AFTER = 1_000_000

#: The page size of a new archive's file (bytes).
PAGE_SIZE = 16384
_CHECKPOINT_PAGES = 2000
_WAL_KEEP = 8 * 1024 * 1024  # bytes of WAL file kept after a checkpoint

__all__ = ["FOLD_AFTER", "IMPORT_FOLD_AFTER", "IMPORT_NAME_CACHE", "IMPORT_NOTE", "NAME_CACHE",
           "Archive", "SCHEMA_VERSION", "record_rows"]

# The artist, track and album ids of a row (``plan_rows``), and its identity.
_NAME_IDS = (itemgetter(10), itemgetter(11), itemgetter(12))
_IDENTITY = itemgetter(0, 11)  # listened_at, track id
_TIME = itemgetter(0)  # a row's listened_at (``plan_rows``)
_NAME_COLUMNS = (("artists", "artist_id"), ("tracks", "track_id"), ("albums", "album_id"))
#: A spelling of (artist, track, album or ''), then the ids of those names (album 0: none).
Spelled = tuple[str, str, str, int, int, int]
#: New rows for the ``artists``, ``tracks`` and ``albums`` tables (``Archive.plan_rows``).
NewNames = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]
#: An import's line-mates: for a record (its time, artist and track as saved) on a line
#: that names several accounts, whether it is the line's first sighting, and the others'
#: (service, account, own time, their track's key where it is not the record's, or '').
Mates = dict[tuple[int, str, str], tuple[bool, tuple[tuple[str, str, int, str], ...]]]
#: ``upto`` for saves that are not an import's: every listen may be matched.
_EVERY_LISTEN = 2**63 - 1
#: ``meta`` key of an import that has saved something and not ended (importers.py): the
#: file and the archive's newest listen and name ids when it began. Anything else that
#: saves listens (a sync) drops it: running that import again is then a new import.
IMPORT_NOTE = "import_unfinished"


def record_rows(records: Iterable[SourceRecord]) -> list[tuple[Any, ...]]:
    """Records as ``Archive.plan_record_rows`` takes them (a writer process that plans
    their names itself): ``plan_rows``'s rows without the ids, each name spelled by one
    string object however often it recurs in the batch (its pickle holds it once)."""
    one: dict[str, str] = {}
    same = one.setdefault
    return [(r.listened_at, same(r.artist, r.artist), same(r.track, r.track),
             same(album, album) if (album := r.album) else "",
             "" if r.duration is None else r.duration, r.recording_mbid or "",
             r.release_mbid or "", dumps(mbids).decode() if (mbids := r.artist_mbids) else "",
             r.remote_id or "",
             bytearray(raw) if (raw := r.raw) and type(raw) is bytes else raw or "")
            for r in records]


class Archive:
    """An open archive. Use as a context manager; ``readonly`` skips the write lock.

    ``background`` lets ``saver()`` save big batches in a writer process (the CLI's syncs
    and imports). ``lock=False`` is only for that writer process, whose parent holds the
    lock for both of them. ``name_cache`` bounds the spellings whose ids it keeps (and a
    third as many keys per name table): more is faster on big histories and costs memory
    (see ``NAME_CACHE``); ``fold_after`` is how many listens' name counts it keeps before
    folding them (see ``FOLD_AFTER``). ``create=False`` opens only an archive that is
    there (what reads it, or pushes from it, has nothing to do with a new one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        lock_wait: float = DEFAULT_WAIT,
        tolerance: int = DEFAULT_TOLERANCE,
        background: bool = False,
        lock: bool = True,
        name_cache: int = NAME_CACHE,
        fold_after: int = FOLD_AFTER,
        create: bool = True,
    ) -> None:
        if not 0 <= tolerance <= MAX_TOLERANCE:  # a negative one would hide records
            raise ValueError(f"the match tolerance must be from 0 to {MAX_TOLERANCE} "
                             f"seconds, not {tolerance}")
        self.path = Path(path)
        self.readonly = readonly
        self.tolerance = tolerance
        self.name_cache = name_cache
        self.fold_after = fold_after
        self._memory = str(path) == ":memory:"
        # ``saver()`` hands big batches to a writer process (archive/writer.py)
        self.background = background and not readonly and not self._memory
        self._lock: Any = None
        self._ids: dict[str, dict[str, int]] = {"artists": {}, "tracks": {}, "albums": {}}
        self._accounts: dict[Account, int] = {}  # rows of ``accounts``, as saving finds them
        self._next_ids: dict[str, int] = {}  # per name table, past every id handed out
        # per name table: whether its key cache holds every key the table has (a table
        # found empty, whose cache was never emptied since): then ``_resolve`` need not
        # look new keys up (absent: not known yet)
        self._whole: dict[str, bool] = {}
        # (artist, track, album or '') as spelled -> the same names, then their ids
        # (``plan_rows``)
        self._spelled: dict[tuple[str, str, str], Spelled] = {}
        # The name counts of the listens this object saved since its last fold, whose ids
        # are in (_tail[0], _tail[1]], per artist, track and album id: the fold adds them
        # instead of reading those listens back. ``_saving`` is the same for the open
        # transaction ([first id - 1, last id, counts]), merged in when it commits.
        self._tail: tuple[int, int] | None = None
        self._tail_counts: tuple[Counter[int], ...] = ()
        self._saving: list[Any] | None = None
        self._in_transaction = False
        if not self._memory and self.path.is_dir():
            raise ArchiveError(f"the archive path {self.path} is a directory",
                               hint="give the archive file's path: `scrob --db PATH ...` "
                                    "or SCROB_DB")
        if (readonly or not create) and not self._memory and not self.path.exists():
            # a reader wants listens from anywhere; an export, its target synced first
            first = ("run `scrob sync all` or `scrob import FILE` first" if readonly
                     else "sync first (`scrob sync all`)")
            raise ArchiveError(f"no archive at {self.path}",
                               hint=f"{first}, or choose another archive with "
                                    "`scrob --db PATH ...`")
        if not readonly and not self._memory and lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ArchiveError(f"cannot create {self.path.parent}: {exc.strerror}") from None
            from .lock import WriteLock  # only writers pay for importing filelock

            self._lock = WriteLock(self.path, lock_wait)
            self._lock.acquire()
        try:
            self.conn = self._connect()
            self._ensure_schema()
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly and not self._memory:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(str(self.path), check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            # WAL + NORMAL: a crash or kill never corrupts or half-applies a transaction;
            # a power cut may undo the last commits, cursor included, so a re-run refetches.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -6144")  # 6 MB: bounded memory
            if not self.readonly:
                # Checkpoint (copy the WAL into the file, with its fsyncs) every 2000 pages,
                # not 1000: a big sync writes ~15 % faster, and the WAL is truncated after.
                conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit = {_WAL_KEEP}")
            conn.execute("PRAGMA user_version").fetchone()  # fails on a non-database file
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(
                f"cannot open the archive {self.path}: {exc}",
                hint="is it a scrob archive? choose another with `scrob --db PATH ...`",
            ) from None
        return conn

    def _ensure_schema(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ArchiveError(
                f"the archive {self.path} was written by a newer scrob (schema {version})",
                hint="upgrade scrob",
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0 and self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table'"
                " AND name NOT IN ('_sqlite_migrations', 'sqlite_sequence')").fetchone():
            # Tables, and no scrob schema: another program's database. Migrating would
            # add scrob's tables to it (a step of ours commits with its version).
            raise ArchiveError(f"{self.path} is not a scrob archive: it holds other tables",
                               hint="choose another archive with `scrob --db PATH ...`")
        if self.readonly:
            # An older archive: migrate it under the write lock, then read.
            self.conn.close()
            try:
                Archive(self.path, tolerance=self.tolerance,
                        lock_wait=0.0 if version == 0 else DEFAULT_WAIT).close()
            except ArchiveBusy:
                if version:
                    raise
                # No schema yet and a writer at work: a first sync or import has just
                # made the file and is writing its tables (it holds the lock until it
                # ends, so waiting would not help).
                raise ArchiveError(f"the archive {self.path} is being created by another "
                                   "scrob (a first sync or import)",
                                   hint="try again in a moment") from None
            self.conn = self._connect()
            return
        Database, migrations = _migration_tools()
        if version == 0 and not self.conn.execute("SELECT 1 FROM sqlite_master").fetchone():
            # A new archive: 16 KB pages hold a listen's raw record and its neighbours with
            # less B-tree work per row (~10 % faster writes). Fixed once the file has
            # tables (and WAL is on), so archives made before keep their 4 KB pages.
            self.conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        if not self._memory:
            self.conn.execute("PRAGMA journal_mode = WAL")
        try:
            migrations.apply(Database(self.conn))
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"cannot migrate the archive {self.path}: {exc}") from None

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None and not self.readonly:
            try:
                if self._unfolded() > 0:
                    self.fold_counts()
            except sqlite3.Error:  # statistics stay exact with an unfolded tail
                pass
        if conn is not None:
            conn.close()
            self.conn = None  # type: ignore[assignment]
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------

    def save_records(
        self,
        account: Account,
        records: Iterable[SourceRecord],
        *,
        cursor: int | None = None,
        upto: int | None = None,
        mates: Mates | None = None,
    ) -> SaveResult:
        """Add one source's records and, in the same transaction, move its cursor.

        Same-source repeats are counted as duplicates; a record matching a listen another
        source already has (same track or recording MBID, within the tolerance, nearest
        in time, one-to-one) is attached to it; anything else is a new listen. A repeat
        or an attached record fills in the MusicBrainz ids its listen lacks (nothing else:
        see ``queries.FILL_LISTEN``). The cursor only moves forward. Inside
        ``transaction()`` this is part of its transaction.

        An import's records (``upto``: the newest listen id from before it began) are
        matched only with the listens numbered up to ``upto``, never with each other's,
        nor is a run of plays paired again where a listen the import made holds another
        account's record (``rematch.gather``): a record with ``mates`` joins the listen
        its line-mates are on, as the file groups them.
        """
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        with self.transaction():
            rows, new_names = self.plan_rows(records)
            return self.save_rows(account, rows, new_names, cursor=cursor, upto=upto,
                                  mates=mates)

    def save_rows(
        self,
        account: Account,
        rows: list[tuple[Any, ...]],
        new_names: NewNames,
        *,
        cursor: int | None = None,
        upto: int | None = None,
        mates: Mates | None = None,
    ) -> SaveResult:
        """``save_records`` for records as ``plan_rows`` made them: the names it planned
        are created first. The writer process saves what its parent planned so."""
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        with self.transaction():
            self._insert_names(new_names)
            batch = sorted(rows, key=_TIME)
            result = SaveResult(received=len(batch))
            for window in _windows(batch):
                self._save_window(account, window, result, upto=upto, mates=mates)
            if cursor is not None:
                self.conn.execute(
                    queries.UPSERT_CURSOR,
                    (account.service, account.name, int(cursor), int(time.time())),
                )
        return result

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several ``save_records`` as one transaction, committed together.

        A writer with more batches waiting commits them together (the writer process,
        archive/writer.py): each commit rewrites every page it dirtied, and new names
        dirty pages all over the name tables' key indexes. Nested (each
        ``save_records`` inside it), it is a savepoint: a part that fails is rolled
        back alone, and the outer transaction may still commit the parts before it.
        """
        conn = self.conn
        if self._in_transaction:  # a part that can fail alone, leaving the rest
            conn.execute("SAVEPOINT part")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK TO part")
                conn.execute("RELEASE part")
                self._forget()
                if self._saving is not None:  # its counts may hold the part's listens
                    self._saving[0] = None
                raise
            conn.execute("RELEASE part")
            return
        self._saving = None
        conn.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget()
            raise
        finally:
            self._in_transaction = False
        if self._count_saved() and self._unfolded() >= self.fold_after:
            self.fold_counts()

    def _forget(self) -> None:
        """Ids handed out in a rolled-back transaction (or part of one) are void."""
        self.forget_names()
        self._accounts.clear()

    def forget_names(self) -> None:
        """Forget the name ids handed out (``plan_rows``): the archive is the truth
        again. For a writer process's parent once the process has stopped."""
        for cache in self._ids.values():
            cache.clear()
        self._spelled.clear()
        self._next_ids.clear()
        self._whole.clear()

    # The per-name ``listens`` counts are folded in bulk rather than updated with every
    # page: each page's updates would dirty pages all over the name tables (hundreds of
    # WAL frames per commit). Listens with ``id`` above ``meta.counted_to`` are the
    # unfolded tail; statistics add it to the counts, so they are exact at every moment.

    def _unfolded(self) -> int:
        done = self.counted_to()
        last = self.conn.execute("SELECT max(id) FROM listens").fetchone()[0] or 0
        return last - done

    def counted_to(self) -> int:
        """The listen id up to which the names' ``listens`` counts are folded in."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'counted_to'").fetchone()
        return int(row[0]) if row else 0

    def fold_counts(self) -> None:
        """Add the unfolded listens to the names' counts, in one transaction.

        The listens this object saved itself are added from the counts it kept while
        saving them; any others (another run's, or before this object's first save) are
        counted from the ``listens`` table.
        """
        if self.readonly:
            return
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = self.counted_to()
            last = conn.execute("SELECT max(id) FROM listens").fetchone()[0] or 0
            tail = self._tail
            if tail is not None and not (tail[0] >= done and tail[1] == last):
                tail = None  # not exactly the newest unfolded listens: read them all
            read_to = tail[0] if tail else last
            if last > done:
                for i, (table, column) in enumerate(_NAME_COLUMNS):
                    update = f"UPDATE {table} SET listens = listens + ? WHERE id = ?"
                    if read_to > done:
                        # (count, id) rows stream straight into the updates: no list of
                        # them is ever built (the writer process's peak memory)
                        conn.executemany(update, conn.execute(
                            queries.TAIL_COUNTS.format(column=column), (done, read_to)))
                    if tail:  # in id order (B-tree locality), without a list of pairs
                        counts = self._tail_counts[i]
                        conn.executemany(update, ((counts[name_id], name_id)
                                                  for name_id in sorted(counts)))
                conn.execute("INSERT INTO meta (key, value) VALUES ('counted_to', ?)"
                             " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (last,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._tail, self._tail_counts = None, ()

    def _count_new(self, first: int, rows: list[tuple[Any, ...]]) -> None:
        """Count the names of rows just saved as new listens, numbered from ``first``,
        in the open transaction."""
        saving = self._saving
        if saving is None:
            tail = self._tail
            if tail is not None and tail[1] == first - 1:
                # they continue the kept counts: count straight into them, which are void
                # until the commit (after a rollback the fold reads the table)
                saving = [tail[0], first - 1, self._tail_counts]
                self._tail, self._tail_counts = None, ()
            else:
                saving = [first - 1, first - 1, (Counter(), Counter(), Counter())]
            self._saving = saving
        if saving[1] != first - 1:  # not contiguous (never expected): the fold reads them
            saving[0] = None
        saving[1] = first + len(rows) - 1
        for counts, get in zip(saving[2], _NAME_IDS):
            counts.update(map(get, rows))
        saving[2][2].pop(0, None)  # listens without an album

    def _count_saved(self) -> bool:
        """A transaction committed: its counts are the unfolded ones this object keeps.
        Whether it added any listens."""
        saving, self._saving = self._saving, None
        if saving is None:
            return False
        start, end, counts = saving
        if start is None:
            self._tail, self._tail_counts = None, ()
        else:
            self._tail, self._tail_counts = (start, end), counts
        return True

    def _save_window(self, account: Account, batch: list[tuple[Any, ...]],
                     result: SaveResult, *, untangle: bool = True, upto: int | None = None,
                     mates: Mates | None = None) -> None:
        """Save a time-sorted window of rows (``plan_rows``: listened_at, artist, track,
        album, duration, recording MBID, release MBID, artist MBIDs as JSON, remote id,
        raw, '' where absent; artist, track and album ids). A new record near a play of
        its track that this account and another already share has that run of plays
        matched again (``rematch``) unless ``untangle`` is off (``upto``, ``mates``: see
        ``save_records``)."""
        conn = self.conn
        lo = batch[0][0] - self.tolerance
        hi = batch[-1][0] + self.tolerance
        account_id = self._account_id(account)
        assert account_id is not None  # created if new
        near = {"lo": lo, "hi": hi, "account_id": account_id}
        mine = conn.execute(queries.SAME_SOURCE, {
            **near, "lo": lo - self.tolerance, "hi": hi + self.tolerance}).fetchall()
        # (the wider window is for ``_tangled``; records of it that are not near the
        # batch never decide anything, nor keep it off the path of a batch with nothing
        # near it)
        seen: set[tuple[int, int]] = {(t, tid) for t, tid, _, _, _ in mine if lo <= t <= hi}
        # (an import's rows whose line-mates are archived join their listen, whatever
        # else is near: they are not paired again)
        joined, firsts = (self._join_mates(account_id, batch, seen, mates, upto)
                          if mates else ({}, set()))
        if untangle and (tangled := self._tangled(batch, mine, seen).difference(
                (batch[idx][0], batch[idx][11]) for idx in joined)):
            self._untangle(account, account_id, batch, tangled, result, upto, mates)
            return
        # those of them whose listen lacks what a repeat may say (``_fills``)
        lacking = {(t, tid): (lid, bits) for t, tid, lid, bits, _ in mine if bits}
        # Other accounts' listens near the batch that this account has no record of yet:
        # the only ones a record may join (a single-source sync finds none at all).
        index = CandidateIndex()
        for lid, t, tid, mbid, lacks in conn.execute(queries.CANDIDATES, {
                **near, "upto": _EVERY_LISTEN if upto is None else upto}):
            index.add(Candidate(lid, t, False, lacks), tid, mbid)
        now = int(time.time())
        insert = queries.INSERT_LISTEN.format(account_id=account_id, seen_at=now)
        if (not seen and not index and not joined
                and len(set(map(_IDENTITY, batch))) == len(batch)):
            # Nothing near it in the archive, no repeats: every row is a new listen, saved
            # as it is (a first sync or import: no Python work a row at all).
            self._insert_listens(insert, batch)
            result.new += len(batch)
            return
        new_listens: list[tuple[Any, ...]] = []
        new_sightings: list[tuple[Any, ...]] = []
        firsts_of: list[tuple[Any, ...]] = []  # rows put first on the listen they join
        fills: list[tuple[Any, ...]] = []
        # Same-source identity first, then one-to-one matching of the rest against the
        # other sources' listens, smallest time gap first (matching.assign).
        matched: dict[int, Candidate] = {}
        if index:
            pairs: list[tuple[int, int, int, Candidate]] = []
            known = set(seen)  # repeats are not offered a candidate they would waste
            taken = {c.listen_id for c in joined.values()}
            for idx, row in enumerate(batch):
                ident = (row[0], row[11])
                if ident in known:
                    continue
                known.add(ident)
                if idx in joined:
                    continue
                pairs.extend((abs(c.listened_at - row[0]), c.listen_id, idx, c)
                             for c in index.within(row[0], ident[1], row[5], self.tolerance)
                             if c.listen_id not in taken)
            matched = assign(pairs) if pairs else {}
        if joined:
            matched.update(joined)
        for idx, row in enumerate(batch):
            ident = (row[0], row[11])
            if ident in seen:  # this source reported this listen before
                result.duplicates += 1
                if lacking and (lack := lacking.get(ident)) and _fills(row, lack[1]):
                    fills.append((*row[5:8], lack[0]))
                continue
            seen.add(ident)
            match = matched.get(idx) if matched else None
            if match is not None:  # another account's listen: this is a later sighting
                if firsts and idx in firsts:  # (its line's first: put first on it)
                    firsts_of.append((account_id, row[0], row[8], row[9], now,
                                      match.listen_id))
                else:
                    new_sightings.append((match.listen_id, account_id, row[0], row[11],
                                          row[8], row[9], now))
                if _fills(row, match.lacks):
                    fills.append((*row[5:8], match.listen_id))
                continue
            # A new listen is this source's own, and carries its sighting: no other record
            # of the batch (all from this source) may match it, so it never joins the
            # candidates.
            new_listens.append(row)
        result.new += len(new_listens)
        result.merged += len(new_sightings) + len(firsts_of)
        if new_listens:
            self._insert_listens(insert, new_listens)
        if new_sightings:
            conn.executemany(queries.INSERT_SIGHTING, new_sightings)
        if firsts_of:  # the record that was first becomes a later sighting
            conn.executemany(queries.DEMOTE_FIRST, [(row[-1],) for row in firsts_of])
            conn.executemany(queries.PUT_FIRST, firsts_of)
        if fills:
            conn.executemany(queries.FILL_LISTEN, fills)

    def _join_mates(self, account_id: int, batch: list[tuple[Any, ...]],
                    seen: set[tuple[int, int]], mates: Mates, upto: int | None
                    ) -> tuple[dict[int, Candidate], set[int]]:
        """The rows of a window (by index) whose line-mates are archived already, each
        with the listen it joins: a line of ``scrob listens --json`` is one listen, so
        its records end on one listen whichever account's batch is saved first. Not a
        row already archived, nor one whose mates' listen has a record of this account
        (then it is matched as any other), and one row a listen. And those of them that
        are their line's first sighting and join a listen the import made (numbered
        above ``upto``): they are put first on it, taking its time, as the backup had."""
        wanted: dict[int, dict[tuple[int, int], int]] = {}  # mate account: identity -> row
        rows_of: set[tuple[int, int]] = set()
        first_rows: set[int] = set()
        track_ids: dict[str, int | None] = {}
        for idx, row in enumerate(batch):
            line = mates.get((row[0], row[1], row[2]))
            ident = (row[0], row[11])
            if not line or ident in seen or ident in rows_of:
                continue
            rows_of.add(ident)
            if line[0]:
                first_rows.add(idx)
            for service, name, at, key in line[1]:
                them = self._account_id(Account(service, name), create=False)
                track_id = row[11] if not key else track_ids.get(key, 0)
                if track_id == 0:  # (not looked up yet)
                    found = self.conn.execute("SELECT id FROM tracks WHERE key = ?",
                                              (key,)).fetchone()
                    track_id = track_ids[key] = found[0] if found else None
                if them is not None and them != account_id and track_id is not None:
                    wanted.setdefault(them, {}).setdefault((at, track_id), idx)
        joined: dict[int, Candidate] = {}
        taken: set[int] = set()
        firsts: set[int] = set()
        for them, rows in wanted.items():
            times = [at for at, _ in rows]
            for at, tid, lid, lacks, has_mine, its_track in self.conn.execute(
                    queries.LINE_MATES, {"account_id": account_id, "them": them,
                                         "lo": min(times), "hi": max(times)}):
                row_idx = rows.get((at, tid))
                if row_idx is None or has_mine or row_idx in joined or lid in taken:
                    continue
                joined[row_idx] = Candidate(lid, at, False, lacks)
                taken.add(lid)
                if (row_idx in first_rows and upto is not None and lid > upto
                        and its_track == batch[row_idx][11]):
                    firsts.add(row_idx)
        return joined, firsts

    def _tangled(self, batch: list[tuple[Any, ...]], mine: list[tuple[Any, ...]],
                 seen: set[tuple[int, int]]) -> set[tuple[int, int]]:
        """The (time, track) of new rows within twice the tolerance of a record of this
        account's that is paired with another account's (``SAME_SOURCE``): only there can
        a new record change how the plays around it pair up."""
        paired: dict[int, list[int]] = {}
        for t, tid, _, _, shared in mine:
            if shared:
                paired.setdefault(tid, []).append(t)
        if not paired:
            return set()
        for times in paired.values():
            times.sort()
        reach = 2 * self.tolerance

        def near(t: int, times: list[int]) -> bool:
            i = bisect_left(times, t - reach)
            return i < len(times) and times[i] <= t + reach

        return {(row[0], row[11]) for row in batch
                if row[11] in paired and (row[0], row[11]) not in seen
                and near(row[0], paired[row[11]])}

    def _untangle(self, account: Account, account_id: int, batch: list[tuple[Any, ...]],
                  tangled: set[tuple[int, int]], result: SaveResult,
                  upto: int | None = None, mates: Mates | None = None) -> None:
        """Save the tangled rows run by run by matching each run of plays again, after the
        other rows, saved as usual (with those of runs ``rematch`` does not go to: they
        are matched together with the rest of the batch, as before)."""
        from .rematch import gather, rematch

        by_track: dict[int, dict[int, tuple[Any, ...]]] = {}
        for row in batch:
            if (row[0], row[11]) in tangled:
                by_track.setdefault(row[11], {}).setdefault(row[0], row)
        reach = 3 * self.tolerance
        runs: list[tuple[int, list[tuple[Any, ...]]]] = []
        for track_id, firsts in by_track.items():
            for row in firsts.values():  # out of each other's reach: separate runs
                if runs and runs[-1][0] == track_id and row[0] - runs[-1][1][-1][0] <= reach:
                    runs[-1][1].append(row)
                else:
                    runs.append((track_id, [row]))
        runs = [(t, rows) for t, rows in runs
                if gather(self, account_id, t, rows, upto) is not None]
        mine = {(row[0], t) for t, rows in runs for row in rows}
        rest = [row for row in batch if (row[0], row[11]) not in mine]
        result.duplicates += sum(1 for row in batch if (row[0], row[11]) in mine) - len(mine)
        if rest:
            self._save_window(account, rest, result, untangle=False, upto=upto, mates=mates)
        for track_id, rows in runs:
            done = rematch(self, account_id, track_id, rows, int(time.time()), upto)
            if done is None:
                self._save_window(account, rows, result, untangle=False, upto=upto,
                                  mates=mates)
            else:
                result.new += done[0]
                result.merged += done[1]

    def _void_counts(self) -> None:
        """Listens were added or removed other than by ``_insert_listens``: the name
        counts kept for the unfolded tail are void, and the next fold reads the table."""
        self._tail, self._tail_counts = None, ()
        if self._saving is None:
            self._saving = [None, self.last_id(), (Counter(), Counter(), Counter())]
        else:
            self._saving[0] = None

    def _drop_listens(self, ids: list[int]) -> None:
        """Delete listens found to be another listen's play (``rematch``, never one pushed
        anywhere), after their records and MusicBrainz ids were moved to it: the name
        counts folded in for them go too."""
        conn = self.conn
        counted = self.counted_to()
        marks = ",".join("?" * len(ids))
        folded = conn.execute(f"SELECT artist_id, track_id, album_id FROM listens"
                              f" WHERE id IN ({marks}) AND id <= ?", (*ids, counted)).fetchall()
        for i, (table, _) in enumerate(_NAME_COLUMNS):
            conn.executemany(f"UPDATE {table} SET listens = listens - 1 WHERE id = ?",
                             [(row[i],) for row in folded if row[i] is not None])
        conn.execute(f"DELETE FROM listens WHERE id IN ({marks})", ids)
        # a listen numbered after the largest left is not counted yet, whatever it reuses
        conn.execute("UPDATE meta SET value = min(value, (SELECT coalesce(max(id), 0)"
                     " FROM listens)) WHERE key = 'counted_to'")
        self._void_counts()

    def _insert_listens(self, insert: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert new listens (SQLite numbers them on from the largest id: one after
        another) and count their names."""
        first = (self.conn.execute("SELECT max(id) FROM listens").fetchone()[0] or 0) + 1
        self.conn.executemany(insert, rows)
        self._count_new(first, rows)

    def names_full(self) -> bool:
        """Whether ``plan_rows`` will empty a cache of name keys before its next batch:
        a writer process must first have saved every batch planned with it (a key it
        forgets is looked up in the archive again, which may not have it yet)."""
        return any(len(cache) > self.name_cache // 3 for cache in self._ids.values())

    def plan_rows(self, records: Iterable[SourceRecord], *, trim: bool = True
                  ) -> tuple[list[tuple[Any, ...]], NewNames]:
        """Records as ``save_rows`` takes them, and the ``artists``, ``tracks`` and
        ``albums`` rows to create first for names the archive does not have yet. Writes
        nothing: a writer process can save what this process planned (and need not spend
        its time on names while this one reads the next batch).

        A row holds a record's fields in order, '' for what is absent (Python's sqlite3
        binds str, int and bytearray directly but looks up an adaptation for every None
        and bytes value; the archive's SQL turns '' back into NULL), ``raw`` as a
        bytearray, then the artist, track and album ids (album 0: none).

        Spellings repeat a great deal, so each spelling is kept (bounded; a rollback
        clears it) with its ids and its names as one string object each, which every row
        spelled so shares: a batch's pickle holds each once, and SQLite's UTF-8 encoding
        of it is cached. Only the others go through their name keys. New ids are handed
        out past both the archive's and every one planned before: the writer process may
        not have saved those yet. ``trim=False`` keeps full caches (a writer process may
        still be saving what they planned)."""
        batch = records if isinstance(records, list) else list(records)
        spelled, new_names = self._spelled_as(
            [(r.artist, r.track, r.album or "") for r in batch], trim=trim)
        return [(r.listened_at, c[0], c[1], c[2], "" if (d := r.duration) is None else d,
                 r.recording_mbid or "", r.release_mbid or "",
                 dumps(mbids).decode() if (mbids := r.artist_mbids) else "", r.remote_id or "",
                 bytearray(raw) if (raw := r.raw) and type(raw) is bytes else raw or "",
                 c[3], c[4], c[5])
                for r, c in zip(batch, spelled)], new_names

    def plan_record_rows(self, rows: list[tuple[Any, ...]]
                         ) -> tuple[list[tuple[Any, ...]], NewNames]:
        """``plan_rows`` for rows ``record_rows`` made: what a writer process does when
        its parent sends records as they are."""
        spelled, new_names = self._spelled_as([row[1:4] for row in rows], trim=True)
        return [row + c[3:] for row, c in zip(rows, spelled)], new_names

    def _spelled_as(self, spellings: list[tuple[str, str, str]], *, trim: bool
                    ) -> tuple[list[Spelled], NewNames]:
        """Each spelling's names and ids, and the name rows to create for new ones."""
        if trim:  # bounded memory: a full cache is emptied, and refilled on demand
            if len(self._spelled) > self.name_cache:
                self._spelled.clear()
            for table, cache in self._ids.items():
                if len(cache) > self.name_cache // 3:
                    cache.clear()
                    self._whole[table] = False
        found = list(map(self._spelled.get, spellings))
        new_names: NewNames = ([], [], [])
        if None in found:
            self._plan_names(spellings, found, new_names)
        return cast("list[Spelled]", found), new_names  # each one found or planned

    def _plan_names(self, spellings: list[tuple[str, str, str]],
                    found: list[Spelled | None], new_names: NewNames) -> None:
        """Fill in ``found`` where a spelling is not cached: look its names' keys up in
        the archive, or plan new rows for them."""
        cache = self._spelled
        keyed: dict[tuple[str, str, str], tuple[str, str, str | None]] = {}
        want_artists: dict[str, tuple[str | None, int | None]] = {}
        want_tracks: dict[str, tuple[str | None, str]] = {}
        want_albums: dict[str, tuple[str | None, str]] = {}
        misses = [i for i, c in enumerate(found) if c is None]
        for names in dict.fromkeys(spellings[i] for i in misses):
            artist, track, album = names
            a = name_key(artist)
            k = keyed[names] = (a, a + SEP + name_key(track),
                                a + SEP + name_key(album) if album else None)
            if a not in want_artists:
                want_artists[a] = (artist, None)
            if k[1] not in want_tracks:
                want_tracks[k[1]] = (track, a)
            if k[2] is not None and k[2] not in want_albums:
                want_albums[k[2]] = (album, a)
        artist_ids = self._resolve("artists", want_artists, new_names[0])
        track_ids = self._resolve("tracks", {k: (n, artist_ids[a])
                                             for k, (n, a) in want_tracks.items()},
                                  new_names[1])
        album_ids = self._resolve("albums", {k: (n, artist_ids[a])
                                             for k, (n, a) in want_albums.items()},
                                  new_names[2])
        for names, (a, t, b) in keyed.items():
            cache[names] = (*names, artist_ids[a], track_ids[t], album_ids[b] if b else 0)
        for i in misses:
            found[i] = cache[spellings[i]]

    def _account_id(self, account: Account, *, create: bool = True) -> int | None:
        """The ``accounts`` row of ``account`` (created when saving, so inside the
        transaction; a rollback clears the cache)."""
        found = self._accounts.get(account)
        if found is not None:
            return found
        row = self.conn.execute("SELECT id FROM accounts WHERE service = ? AND account = ?",
                                (account.service, account.name)).fetchone()
        if row is None:
            if not create:
                return None
            row = (self.conn.execute("INSERT INTO accounts (service, account) VALUES (?, ?)",
                                     (account.service, account.name)).lastrowid,)
        self._accounts[account] = int(row[0])
        return int(row[0])


    def _resolve(self, table: str, wanted: dict[str, tuple[str | None, int | None]],
                 new: list[tuple[Any, ...]]) -> dict[str, int]:
        """Row ids for name keys; a new key gets the next id and its row (first spelling
        kept) is added to ``new`` for ``_insert_names``."""
        cache = self._ids[table]
        whole = self._whole.get(table)
        if whole is None:  # a first look, with an empty cache: whole if the table is empty
            whole = self._whole[table] = self.conn.execute(
                f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None
        missing = [k for k in wanted if k not in cache]
        if whole:  # a first sync or import: ~10 % of the writer's time went to lookups
            fresh = missing
        else:
            for i in range(0, len(missing), 500):
                chunk = missing[i:i + 500]
                marks = ",".join("?" * len(chunk))
                cache.update(self.conn.execute(
                    f"SELECT key, id FROM {table} WHERE key IN ({marks})", chunk))
            fresh = [k for k in missing if k not in cache]
        if fresh:
            last = self.conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0
            next_id = max(last + 1, self._next_ids.get(table, 0))
            for key in fresh:
                name, artist_id = wanted[key]
                cache[key] = next_id
                new.append((next_id, key, name, artist_id) if table != "artists"
                           else (next_id, key, name))
                next_id += 1
            self._next_ids[table] = next_id
        return cache

    def _insert_names(self, new_names: NewNames) -> None:
        """Create the name rows ``plan_rows`` planned (artists first: the others refer
        to them)."""
        for (table, _), rows in zip(_NAME_COLUMNS, new_names):
            if rows:
                columns = "id, key, name" + (", artist_id" if table != "artists" else "")
                marks = ", ".join("?" * len(rows[0]))
                self.conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                                      rows)

    def saver(self, on_saved: Callable[[SaveResult], None] | None = None, *,
              log: Callable[[str], None] | None = None, plan_names: bool = False,
              upto: int | None = None) -> Saver:
        """A context for saving many batches: ``save(account, records, cursor=...)``.

        With ``background`` (the CLI's syncs and imports), batches after a small first
        one are saved by a writer process while the caller fetches and parses the next
        (archive/writer.py); otherwise each is saved at once. Either way each batch is
        one transaction with its cursor, and ``on_saved`` gets each batch's counts, in
        order. ``log`` hears when a writer process starts (``--verbose``). A caller that
        knows how many records are coming says so with ``expect(n)``: a big job starts
        its writer process at once. ``plan_names`` has this process plan each batch's
        names (``plan_rows``) for the writer process: for a caller that has time to
        spare while it waits for the writer (an import, not a sync). An import's saver
        has ``upto`` and takes each batch's ``mates`` (see ``save_records``).
        """
        from .writer import BackgroundSaver, Saver

        if upto is None and self.note(IMPORT_NOTE) is not None:
            self.drop_note(IMPORT_NOTE)  # (its listens are matched from now on)
        if self.background:
            return BackgroundSaver(self, on_saved, log=log, plan_names=plan_names,
                                   upto=upto)
        return Saver(self, on_saved, upto=upto)

    def set_cursor(self, account: Account, cursor: int) -> None:
        self.save_records(account, [], cursor=cursor)

    def rewind_cursor(self, account: Account, cursor: int, *,
                      note: tuple[str, object] | None = None) -> None:
        """Move ``account``'s cursor back to ``cursor`` (saving only ever moves it
        forward), with ``note`` (a ``meta`` key and value) in the same transaction: the
        account turned out to hold listens from before anything its last sync saw, so
        the archive is complete for it only up to before them."""
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        with self.transaction():
            self.conn.execute(
                "UPDATE cursors SET cursor = min(cursor, ?), updated_at = ?"
                " WHERE service = ? AND account = ?",
                (int(cursor), int(time.time()), account.service, account.name))
            if note is not None:
                self._set_note(*note)

    def note(self, key: str) -> Any:
        """A value an engine keeps about an account between syncs (table ``meta``)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_note(self, key: str, value: object) -> None:
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        with self.transaction():
            self._set_note(key, value)

    def drop_note(self, key: str) -> None:
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        with self.transaction():
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def _set_note(self, key: str, value: object) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                          " DO UPDATE SET value = excluded.value", (key, value))

    def last_id(self) -> int:
        """The largest listen id (0 for none): listens saved later are numbered above."""
        return self.conn.execute("SELECT max(id) FROM listens").fetchone()[0] or 0

    def name_marks(self) -> tuple[int, int]:
        """The largest artist and track ids: names created later are numbered above."""
        artists, tracks = (self.conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0
                           for table in ("artists", "tracks"))
        return artists, tracks

    def respell(self, names: Iterable[tuple[str, str]], *, above: tuple[int, int]) -> None:
        """Spell each (artist, track) in the name tables as given, where that artist or
        track was created after ``above`` (``name_marks``): a restored backup's
        ``account_tracks`` print the spelling the original archive saw first, which the
        import may have met after another spelling of the same name."""
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        with self.transaction():
            for artist, track in dict.fromkeys(names):
                self.conn.execute("UPDATE artists SET name = ? WHERE key = ? AND id > ?",
                                  (artist, name_key(artist), above[0]))
                self.conn.execute("UPDATE tracks SET name = ? WHERE key = ? AND id > ?",
                                  (track, track_key(artist, track), above[1]))

    def make_first(self, records: Iterable[tuple[Account, int, str, str]], *,
                   after: int) -> int:
        """Make each record (account, listened_at, artist, track) the first sighting of
        the listen it was saved to, if it was saved as a later one: the listen takes its
        time and the sighting that held that place becomes a later one. Only listens
        numbered above ``after`` change (what an import made). How many changed.

        A restored backup names each play's first sighting (its time is the listen's),
        while the import saves each account's records together, one account after the
        other, so that matching pairs them one-to-one as it did: this puts the first
        sightings back where the backup had them.
        """
        if self.readonly:
            raise ArchiveError("the archive was opened read-only")
        changed = 0
        with self.transaction():
            for account, listened_at, artist, track in records:
                account_id = self._account_id(account, create=False)
                track_row = self.conn.execute("SELECT id FROM tracks WHERE key = ?",
                                              (track_key(artist, track),)).fetchone()
                if account_id is None or track_row is None:
                    continue
                found = self.conn.execute(queries.LATER_SIGHTING, (
                    account_id, listened_at, track_row[0], after)).fetchone()
                if found is None:
                    continue
                sighting, listen_id, remote_id, raw, seen_at = found
                self.conn.execute("DELETE FROM sightings WHERE id = ?", (sighting,))
                self.conn.execute(queries.DEMOTE_FIRST, (listen_id,))
                self.conn.execute(queries.PROMOTE, (account_id, listened_at, remote_id, raw,
                                                     seen_at, listen_id))
                changed += 1
        return changed

    def run_end(self, listen_id: int, *, until: int | None = None) -> int:
        """The time of the newest play of the listen's track that follows it, each play
        within three match tolerances of the one before (a song on repeat: the reach of
        ``rematch``, two listens whose records are within the tolerance of each other);
        the listen's own time if none does. It stops looking once it reaches ``until``."""
        row = self.conn.execute("SELECT track_id, listened_at FROM listens WHERE id = ?",
                                (listen_id,)).fetchone()
        if row is None:
            return 0
        track_id, end = row
        while until is None or end < until:
            nxt = self.conn.execute(queries.NEXT_PLAY, (end, end + 3 * self.tolerance,
                                                        track_id)).fetchone()[0]
            if nxt is None:
                break
            end = nxt
        return int(end)

    def record_pushes(self, target: Account, listen_ids: Iterable[int]) -> None:
        """Remember that these listens were accepted by ``target`` (one transaction)."""
        now = int(time.time())
        with self.conn:
            self.conn.executemany(
                "INSERT OR IGNORE INTO pushes (listen_id, service, account, pushed_at)"
                " VALUES (?, ?, ?, ?)",
                [(i, target.service, target.name, now) for i in listen_ids],
            )

    # -- reading ---------------------------------------------------------------------

    def get_cursor(self, account: Account) -> int | None:
        row = self.conn.execute(
            "SELECT cursor FROM cursors WHERE service = ? AND account = ?",
            (account.service, account.name),
        ).fetchone()
        return None if row is None else int(row[0])

    def source_times(self, account: Account, *, since: int | None = None,
                     until: int | None = None) -> set[int]:
        """The ``listened_at`` of every record ``account`` reported, in [since, until).

        These are the account's own timestamps (a listen matched across sources keeps
        the first source's time), e.g. so an export never reuses a second Last.fm holds.
        """
        account_id = self._account_id(account, create=False)
        if account_id is None:
            return set()
        rows = self.conn.execute(
            "SELECT listened_at FROM listens WHERE listened_at >= :since"
            " AND listened_at < :until AND account_id = :account_id"
            " UNION SELECT listened_at FROM sightings WHERE account_id = :account_id"
            " AND listened_at >= :since AND listened_at < :until",
            {"account_id": account_id,
             "since": since if since is not None else -(2**62),
             "until": until if until is not None else 2**62},
        )
        return {int(r[0]) for r in rows}

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM listens").fetchone()[0])

    def known_accounts(self) -> list[Account]:
        """Every account records came from, without ``accounts()``'s counts (which
        read every listen: half a second on a million)."""
        return [Account(service, name) for service, name
                in self.conn.execute("SELECT service, account FROM accounts ORDER BY id")]

    def accounts(self) -> list[dict[str, Any]]:
        """Every account with records in the archive, its record count and cursor."""
        rows = self.conn.execute("""
            SELECT a.service, a.account, sum(n) AS records,
                   (SELECT cursor FROM cursors c
                    WHERE c.service = a.service AND c.account = a.account) AS cursor
            FROM (SELECT account_id, count(*) AS n FROM listens GROUP BY account_id
                  UNION ALL
                  SELECT account_id, count(*) FROM sightings GROUP BY account_id) r
            JOIN accounts a ON a.id = r.account_id
            GROUP BY a.id ORDER BY 1, 2""").fetchall()
        return [dict(zip(("service", "account", "records", "cursor"), r)) for r in rows]

    def listens(
        self,
        *,
        since: int | None = None,
        until: int | None = None,
        artist: str | None = None,
        track: str | None = None,
        album: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[Listen]:
        """Listens matching the filters; names compare by their normalized keys."""
        where = ["1"]
        args: dict[str, Any] = {}
        if since is not None:
            where.append("l.listened_at >= :since")
            args["since"] = since
        if until is not None:
            where.append("l.listened_at < :until")
            args["until"] = until
        for column, value in (("artist", artist), ("track", track), ("album", album)):
            if value is not None:
                table = column + "s"
                where.append(
                    f"l.{column}_id IN (SELECT id FROM {table} WHERE substr(key, "
                    f"instr(key, char(31)) + 1) = :{column})" if column != "artist"
                    else "l.artist_id IN (SELECT id FROM artists WHERE key = :artist)"
                )
                args[column] = name_key(value)
        if source is not None:
            where.append(queries.SEEN_BY_SOURCE)
            args.update(_source_filter(source))
        order = "DESC" if newest_first else "ASC"
        sql = (f"SELECT {queries.LISTEN_COLUMNS} FROM listens l WHERE {' AND '.join(where)}"
               # listens of one second are ordered by what they are, not by row id, so
               # that an export re-imported elsewhere lists them in the same order (the
               # accounts, their times and tracks tell apart two listens of one spelling)
               f" ORDER BY l.listened_at {order}, l.artist {order}, l.track {order},"
               f" l.album {order}, accounts {order}, account_tracks {order}, l.id {order}")
        if limit is not None:
            sql += " LIMIT :limit"
            args["limit"] = limit
        for row in self.conn.execute(sql, args):
            yield _listen(row)

    def missing_for(
        self,
        account: Account,
        *,
        since: int | None = None,
        until: int | None = None,
        source: str | None = None,
        include_pushed: bool = False,
        foreign: Iterable[Account] = (),
    ) -> Iterator[Listen]:
        """Which archived listens does ``account`` lack? Oldest first.

        A listen is present on an account when a record of that account was matched to
        it (archive.md identity rules); unless ``include_pushed``, listens already pushed
        there are left out too. ``source`` keeps only listens seen by that service.
        Listens that only other accounts of ``account``'s service saw are left out (a
        friend's history is not yours to push), and so are those only ``foreign``
        accounts saw (a friend's profile on another service, read with ``--user``).
        Their ``accounts`` are left empty: what to send does not depend on them.
        """
        ids = [i for a in foreign if (i := self._account_id(a, create=False)) is not None]
        sql = queries.MISSING_FOR.format(columns=queries.BARE_COLUMNS,
                                         foreign=",".join(map(str, ids)) or "-1")  # no id
        params = {
            "service": account.service, "account": account.name,
            "account_id": self._account_id(account, create=False) or -1,
            "include_pushed": int(include_pushed),
            "since": since if since is not None else -(2**62),
            "until": until if until is not None else 2**62,
            **_source_filter(source),
        }
        for row in self.conn.execute(sql, params):
            yield _listen(row)

    def count_present(
        self,
        account: Account,
        *,
        since: int | None = None,
        until: int | None = None,
        source: str | None = None,
    ) -> int:
        """How many listens of the window ``account`` has, or was pushed: the other
        side of ``missing_for`` (an export's ``already_there``)."""
        params = {
            "service": account.service, "account": account.name,
            "account_id": self._account_id(account, create=False) or -1,
            "since": since if since is not None else -(2**62),
            "until": until if until is not None else 2**62,
            **_source_filter(source),
        }
        return int(self.conn.execute(queries.COUNT_PRESENT, params).fetchone()[0])


def _migration_tools() -> tuple[Any, Any]:
    """sqlite-utils' ``Database`` and scrob's migrations, imported without the packages
    sqlite-utils loads whenever they are installed (numpy, pandas: 20 MB or more, and
    tens of milliseconds) and which scrob never uses."""
    from .._imports import without

    with without("numpy", "pandas"):
        from sqlite_utils import Database

        from .migrations import migrations
    return Database, migrations


def _source_filter(source: str | None) -> dict[str, str | None]:
    """``--source lastfm`` or ``--source lastfm:alice`` as query parameters."""
    if source is None:
        return {"source": None, "source_account": None}
    service, _, account = source.partition(":")
    return {"source": service, "source_account": account or None}


def _fills(row: tuple[Any, ...], lacks: int) -> bool:
    """Whether a row (``plan_rows``) has an MBID its listen lacks (``lacks``: the bits of
    ``queries.SAME_SOURCE``): recording, release or artists."""
    return bool(lacks & 1 and row[5] or lacks & 2 and row[6] or lacks & 4 and row[7])


def _windows(batch: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    """Split a time-sorted batch where records are more than a day apart."""
    start = 0
    for i in range(1, len(batch)):
        if batch[i][0] - batch[i - 1][0] > _WINDOW:
            yield batch[start:i]
            start = i
    if batch:
        yield batch[start:]


def _listen(row: tuple[Any, ...]) -> Listen:
    return Listen(
        id=row[0], listened_at=row[1], artist=row[2], track=row[3], album=row[4],
        duration=row[5], recording_mbid=row[6], release_mbid=row[7],
        artist_mbids=tuple(json.loads(row[8])) if row[8] else (),
        **_seen(row[9]),
        account_tracks=tuple(map(tuple, json.loads(row[10])))
        if row[10] and row[10] != "[]" else (),
    )


def _seen(text: str | None) -> dict[str, tuple[Any, ...]]:
    """``service:account<RS>time`` items → the accounts and each one's own time."""
    if not text:
        return {"accounts": (), "seen_at": ()}
    pairs = [item.partition("\x1e") for item in text.split("\x1f")]
    return {"accounts": tuple(a for a, _, _ in pairs),
            "seen_at": tuple(int(t) for _, _, t in pairs)}
