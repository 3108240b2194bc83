"""Saving batches of records, in this process or in a writer process beside it.

A sync or an import spends its time in two halves that both need the interpreter:
fetching and parsing records, and saving them (identity, matching, SQLite). Threads
cannot run the two at once (the GIL), so ``BackgroundSaver`` hands each batch to a
child process that saves it (``Archive.save_rows``) while this process fetches and
parses the next one: two cores instead of one.

An import, whose reading is the quicker half, also plans each batch's names here
(``plan_names``: ``Archive.plan_rows``, ids for new names handed out here), so that the
child is left with its SQL; a sync's child plans them itself. Ids handed out here for
the child are forgotten once it stops, and a full cache of name keys is emptied only
once the child has saved every batch planned with it.

Nothing about correctness changes. The child commits each batch with its cursor in one
transaction, exactly as ``save_records`` does here, and does its identity checks
inside that transaction, so a batch is whole or absent whatever happens. The child
never outlives this process: it dies with it (``kill -9``, SIGTERM), its open
transaction rolling back, so the write lock this process holds always covers it. On
Ctrl-C this process hands over what it holds and waits for the child to save it.

A sync's child does not copy its commits from the WAL into the archive file itself
until the WAL holds ``CHILD_CHECKPOINT_PAGES``: a thread of this process, which is mostly
waiting for the child, does (``Checkpointer``) after each of its commits, so the child's
work never stops for the copying and its fsyncs. An import's process, planning names,
is as busy as its child, which checkpoints as any connection does.

The child is started isolated (``python -I``) with exactly this process's ``sys.path``,
in its own session (a terminal's Ctrl-C reaches only this process). The protocol is
private to this module: checked, length-prefixed pickles over the child's stdin and a
copy of its stdout (its own fd 1 goes to stderr, so nothing printed can corrupt a
reply). Where a child cannot be started (Windows, a frozen app, a failing spawn),
batches are saved in this process instead.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import IO, TYPE_CHECKING, Any

from .._process import collect_never
from ..errors import ArchiveError
from ..models import Account, SaveResult, SourceRecord
from . import FOLD_AFTER, NAME_CACHE, Mates, record_rows

if TYPE_CHECKING:
    from . import Archive

__all__ = ["BackgroundSaver", "Checkpointer", "Saver"]

#: Batches handed to the child and not yet saved; beyond this ``save`` waits, so the
#: child never falls far behind. The child reads one batch at a time (a batch being
#: written waits in the pipe), so this bounds no memory: it lets the child find the
#: next batches waiting and commit them together, up to ``GROUP_UP_TO`` records.
DEPTH = 12
#: Records the child commits in one transaction at most, when batches keep coming. Each
#: commit rewrites every page it dirtied, and new names dirty pages all over the name
#: tables' key indexes: a million-listen import with 20,000 wrote 1.03 GB for a 151 MB
#: archive, with 100,000 0.72 GB. A sync's joined batches (``JOIN_UP_TO``, at most
#: ``DEPTH`` waiting) make ~24,000 at most: this matters to ``scrob import`` (20,000 a
#: batch).
GROUP_UP_TO = 100_000
#: While the child is busy, consecutive batches are joined up to this many records.
JOIN_UP_TO = 2000
#: A first batch smaller than this is saved in this process: a routine sync from cron
#: (a few new listens) never pays for starting a second interpreter.
SPAWN_AT = 1000
#: Seconds to wait for the child to finish its last batches once this process is
#: interrupted; then it is killed (its open transaction rolls back).
DRAIN_WAIT = 60.0
#: The WAL pages at which the child checkpoints itself (``PRAGMA wal_autocheckpoint``):
#: a backstop, as this process's ``Checkpointer`` copies each commit into the file as
#: soon as the child reports it, and the child's own checkpoint then finds little left
#: to copy and lets the WAL start over (128 MB of 16 KB pages at most).
CHILD_CHECKPOINT_PAGES = 8000

_HEAD = struct.Struct("<4sQ")  # a mark and the size of the pickle that follows
_MARK = b"scrb"
_MAX_MESSAGE = 1 << 31

# The child's first lines: keep fd 1 for replies and point it at stderr for anything
# else, take the parent's import path, serve, then end without the interpreter's
# teardown. ``-I`` keeps PYTHON* variables and the user's site directory from adding
# anything the parent did not have.
_BOOTSTRAP = (
    "import os, sys; out = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); "
    "sys.path[:] = sys.argv[1].split(os.pathsep); "
    "from scrobbler_cli._process import leave; from scrobbler_cli.archive.writer import main; "
    "leave(main(sys.argv[2:], out), out)"
)

OnSaved = Callable[[SaveResult], None]


class Saver:
    """Saves each batch at once, in this process (``Archive.saver`` without background).
    An import's saver has ``upto`` (see ``Archive.save_records``)."""

    def __init__(self, archive: Archive, on_saved: OnSaved | None = None, *,
                 upto: int | None = None) -> None:
        self.archive = archive
        self.on_saved = on_saved
        self.upto = upto

    def save(self, account: Account, records: Iterable[SourceRecord], *,
             cursor: int | None = None, mates: Mates | None = None) -> None:
        """Save one batch with its cursor (one transaction); report it to ``on_saved``."""
        saved = self.archive.save_records(account, records, cursor=cursor, upto=self.upto,
                                          mates=mates)
        if self.on_saved:
            self.on_saved(saved)

    def expect(self, records: int) -> None:
        """A hint that about ``records`` more are coming (nothing to prepare here)."""

    def close(self) -> None:
        """Every batch handed over is saved (nothing to wait for here)."""

    def abort(self) -> None:
        """Stop after an error or an interruption: the same as ``close`` here."""

    def __enter__(self) -> Saver:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class BackgroundSaver(Saver):
    """Saves batches in a writer process, in order, while the caller goes on.

    A batch is handed over at once when the child is idle, so on a slow (rate-limited)
    service every page is committed as soon as it arrives. While the child is busy,
    consecutive batches of one account are joined, up to ``JOIN_UP_TO`` records, and
    go over as one transaction with the last one's cursor (the same rule as a group
    of pages), so a fast source is saved in few, big transactions.

    ``on_saved`` is called here, in the caller's thread, as the child reports batches
    saved (a joined batch is reported once). Use it as a context manager: leaving
    normally waits for every batch (and raises the child's error, if any); leaving with
    an exception hands over what is held, lets the child save it, then stops it.
    """

    def __init__(self, archive: Archive, on_saved: OnSaved | None = None, *,
                 log: Callable[[str], None] | None = None, plan_names: bool = False,
                 upto: int | None = None) -> None:
        super().__init__(archive, on_saved, upto=upto)
        self.log = log
        self.plan_names = plan_names
        self._proc: subprocess.Popen[bytes] | None = None
        self._inline = not _can_spawn()  # save here, as ``Saver`` does
        self._replies: SimpleQueue[Any] = SimpleQueue()
        self._reader: threading.Thread | None = None
        self._waiting = 0  # batches sent and not yet reported
        self._calls = 0
        self._held: list[SourceRecord] = []  # joined, not yet sent
        self._held_for: tuple[Account, bool] | None = None  # set while anything is held
        self._held_cursor: int | None = None
        self._held_mates: Mates = {}
        self._checkpointer: Checkpointer | None = None

    def expect(self, records: int) -> None:
        """Start the child now if a big job is announced (a sync that has just learnt
        how many listens it will read), so that it boots while the caller fetches."""
        if records >= SPAWN_AT and self._proc is None and not self._inline:
            self._proc = self._spawn()

    def save(self, account: Account, records: Iterable[SourceRecord], *,
             cursor: int | None = None, mates: Mates | None = None) -> None:
        batch = records if isinstance(records, list) else list(records)
        self._calls += 1
        if self._inline or (self._proc is None and self._calls == 1
                            and len(batch) < SPAWN_AT):
            super().save(account, batch, cursor=cursor, mates=mates)
            return
        if self._proc is None:
            self._proc = self._spawn()
            if self._proc is None:
                super().save(account, batch, cursor=cursor, mates=mates)
                return
        kind = (account, cursor is None)
        if self._held_for is not None and self._held_for != kind:
            self._flush()
        self._held.extend(batch)
        if mates:
            self._held_mates.update(mates)
        self._held_for, self._held_cursor = kind, cursor
        while self._waiting and (reply := self._poll(block=False)) is not None:
            self._report(reply)
        if not self._waiting or len(self._held) >= JOIN_UP_TO:
            self._flush()

    def close(self) -> None:
        """Hand over what is held, wait until the child has saved it all, let it end."""
        if self._proc is None:
            return
        try:
            self._flush()
            while self._waiting:
                self._report(self._poll(block=True))
        finally:
            self._stop(DRAIN_WAIT)
            self._forget_plans()
        if self._proc.returncode != 0:
            raise ArchiveError(f"the archive writer process failed (exit code "
                               f"{self._proc.returncode})")

    def abort(self) -> None:
        """Hand over what is held (it is whole: records and cursor), then stop; the
        batches the child saved meanwhile still reach ``on_saved`` (a summary of the
        failure counts them)."""
        if self._proc is None:
            return
        try:
            self._flush(wait=False)
        except ArchiveError:
            pass
        try:
            self._stop(DRAIN_WAIT)
        finally:
            self._forget_plans()
        while True:
            try:
                reply = self._replies.get_nowait()
            except Empty:
                return
            if reply is None or reply[0] == "error":
                return  # nothing after an error was saved
            self._report(SaveResult(*reply[1:]))

    def _forget_plans(self) -> None:
        """The child has stopped: the archive holds what it saved, and the name ids
        planned for batches it did not save are void (a later save through the same
        archive, in this process or another writer process, must not use them). A
        child that planned names itself wrote some this process never saw."""
        self.archive.forget_names()

    # -- the parent's side of the pipe ---------------------------------------------------

    def _flush(self, *, wait: bool = True) -> None:
        """Send what is held as one batch (at most ``DEPTH`` wait in the child). A batch
        may hold no records, only a cursor (a page with nothing usable on it)."""
        if self._held_for is None:
            return
        while wait and self._waiting >= DEPTH:
            self._report(self._poll(block=True))
        account = self._held_for[0]
        if self.plan_names:
            while wait and self._waiting and self.archive.names_full():
                # the names about to be forgotten must be in the archive before they
                # are looked up there again
                self._report(self._poll(block=True))
            rows, new_names = self.archive.plan_rows(self._held, trim=wait)
        else:
            rows, new_names = record_rows(self._held), None  # the child plans them
        mates, self._held_mates = self._held_mates or None, {}
        self._held, self._held_for = [], None
        self._send((account.service, account.name, rows, new_names, self._held_cursor,
                    self.upto, mates))
        self._waiting += 1

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """Start the child, or None (and save here from now on) if it cannot start."""
        try:
            proc = subprocess.Popen(
                # this process's own import path, in its order: the child imports exactly
                # what this process did (same working directory), nothing else
                [sys.executable, "-I", "-c", _BOOTSTRAP, os.pathsep.join(sys.path),
                 str(self.archive.path), str(self.archive.tolerance),
                 str(self.archive.name_cache), str(self.archive.fold_after),
                 str(0 if self.plan_names else CHILD_CHECKPOINT_PAGES),
                 str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
                env=_without_secrets(os.environ),
            )
        except OSError as exc:
            self._inline = True
            if self.log:
                self.log(f"archive: no writer process ({exc}); saving in this one")
            return None
        if self.log:
            self.log(f"archive: saving through a writer process (pid {proc.pid})")
        _widen(proc.stdin)
        # The child's replies are read by a thread, so ``save`` can see without blocking
        # whether the child is idle; None marks the end of its output.
        self._reader = threading.Thread(target=self._read_replies, args=(proc.stdout,),
                                        name="scrob-writer-replies", daemon=True)
        self._reader.start()
        if not self.plan_names:  # a caller that plans names is as busy as the child
            self._checkpointer = Checkpointer(self.archive.path)
        return proc

    def _read_replies(self, stream: IO[bytes]) -> None:
        try:
            while (reply := _read(stream)) is not None:
                self._replies.put(reply)
                if self._checkpointer is not None:  # the child has committed
                    self._checkpointer.poke()
        except BaseException:  # noqa: BLE001, S110 - a broken stream ends the replies
            pass
        finally:
            self._replies.put(None)

    def _send(self, message: Any) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            _write(self._proc.stdin, message)
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def _poll(self, *, block: bool) -> SaveResult | None:
        """The next batch the child reports saved (None: none yet, if not ``block``)."""
        while True:
            try:
                reply = self._replies.get(timeout=0.5) if block else self._replies.get_nowait()
                break
            except Empty:
                if not block:
                    return None
                if self._reader is not None and not self._reader.is_alive() \
                        and self._replies.empty():
                    reply = None  # the reader is gone and said nothing more
                    break
        if reply is None:
            raise self._died()
        self._waiting -= 1
        kind, *value = reply
        if kind == "error":
            message, hint = value
            self._waiting = 0
            raise ArchiveError(message, hint=hint)
        return SaveResult(*value)

    def _report(self, saved: SaveResult | None) -> None:
        if saved is not None and self.on_saved:
            self.on_saved(saved)

    def _died(self) -> ArchiveError:
        """The child is gone: its own error if it left one, else how it ended."""
        assert self._proc is not None
        code = self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)  # at the child's end of output it puts None
        self._waiting = 0
        error = None
        while True:
            try:
                reply = self._replies.get_nowait()
            except Empty:
                break
            if reply is not None and reply[0] == "error":
                error = ArchiveError(reply[1], hint=reply[2])
        self._replies.put(None)  # later calls see the end too
        return error or ArchiveError(
            f"the archive writer process stopped unexpectedly (exit code {code}); what it "
            "had saved is kept", hint="run the same command again to finish")

    def _stop(self, wait: float) -> None:
        """End the child's input; it saves what it holds and exits. Killed (its open
        transaction rolls back) after ``wait`` seconds, or if this wait is interrupted."""
        proc = self._proc
        assert proc is not None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except BaseException:  # a second Ctrl-C: no writer may outlive the lock
                proc.kill()
                proc.wait()
                raise
        finally:
            if self._reader is not None:
                self._reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
            if self._checkpointer is not None:
                self._checkpointer.stop()


class Checkpointer:
    """Copies what the writer process commits from the WAL into the archive file, on a
    thread of this process (SQLite runs a checkpoint without the GIL).

    A checkpoint copies every committed page once more and syncs both files. Done by the
    child after its commits (``wal_autocheckpoint``), it stopped the child's saving for
    the copying and two fsyncs; done here, where the caller is mostly waiting for the
    child, it costs the child nothing. ``PASSIVE``: it never waits for, nor blocks, the
    child or a reader, and copies what is committed when it starts. Best effort: if it
    cannot run, the child's own checkpoints and the archive's close copy the pages.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._due = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(Path(path),),
                                        name="scrob-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """The child has committed: copy it when the copy before is done."""
        self._due.set()

    def stop(self) -> None:
        """Copy what is committed (the archive's close would have to), then stop."""
        self._done = True
        self._due.set()
        self._thread.join()

    def _run(self, path: Path) -> None:
        try:
            # its own connection (opening never creates a file), holding no transaction
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                                   isolation_level=None)
        except Exception:  # noqa: BLE001 - only an optimization: never a traceback
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            while True:
                self._due.wait()
                self._due.clear()
                last = self._done  # (read first: a stop during the copy needs another)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if last:
                    return
        except Exception:  # noqa: BLE001, S110 - the child and the close copy what is left
            pass
        finally:
            conn.close()


def _widen(pipe: IO[bytes] | None) -> None:
    """Let the pipe to the child hold 1 MB instead of Linux's 64 KB: a batch of a few
    thousand records (~2 MB) then crosses in a few writes instead of ~30, each of which
    woke the other process."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[union-attr]
    except (ImportError, AttributeError, OSError):  # not Linux, or a lower limit
        pass


def _write(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEAD.pack(_MARK, len(data)))
    stream.write(data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream (the other side is gone).
    ValueError if what arrives is not a message of this protocol."""
    head = _read_exact(stream, _HEAD.size)
    if head is None:
        return None
    mark, size = _HEAD.unpack(head)
    if mark != _MARK or size > _MAX_MESSAGE:
        raise ValueError("not a message from scrob's archive writer")
    data = _read_exact(stream, size)
    if data is None:
        return None
    return pickle.loads(data)  # noqa: S301 - written by this program's other process


def _read_exact(stream: IO[bytes], size: int) -> bytearray | None:
    """``size`` bytes, or None if the stream ends first. The child reads its input
    unbuffered (so ``select`` tells whether a batch is waiting), which returns what the
    pipe holds at the moment."""
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return None
        got += n
    return data


def _without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the child: it saves records and needs no credentials."""
    from ..credentials import SECRETS

    return {k: v for k, v in environ.items() if k not in SECRETS.values()}


def _can_spawn() -> bool:
    """Whether a writer process can run here: POSIX (it dies with its parent, see
    ``_follow_parent``), and a Python that can run ``-c`` (not a frozen app)."""
    return os.name == "posix" and not getattr(sys, "frozen", False)


# -- the child ------------------------------------------------------------------------------


def serve(path: str, tolerance: int, inp: IO[bytes], out: IO[bytes], *,
          name_cache: int = NAME_CACHE, fold_after: int = FOLD_AFTER,
          checkpoint_pages: int = 0) -> None:
    """The writer process: save batches as they come, answer each with its counts.

    Batches already waiting in the pipe when one is saved join its transaction, up to
    ``GROUP_UP_TO`` records (a fast source is committed in few, big transactions; a slow
    one finds nothing waiting and commits every batch). Each batch is answered once its
    transaction has committed. The parent holds the write lock for both of them, so
    the archive is opened without taking it. An error is answered (message and hint)
    and ends the loop: the parent raises it, and batches after it are not saved.
    ``checkpoint_pages`` (if not 0) is the WAL size at which it checkpoints itself, when
    the parent copies its commits into the file (``Checkpointer``).
    """
    from . import Archive

    try:
        archive = Archive(path, tolerance=tolerance, lock=False, name_cache=name_cache,
                          fold_after=fold_after)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        _write(out, _error(exc))
        return
    with archive:
        if checkpoint_pages:  # the parent copies each commit into the file (``Checkpointer``)
            archive.conn.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_pages)}")
        while (message := _read(inp)) is not None:
            saved: list[SaveResult] = []
            failed: Exception | None = None
            try:
                with archive.transaction():
                    while True:
                        try:  # a batch that fails is rolled back alone (a savepoint)
                            saved.append(_save(archive, message))
                        except Exception as exc:  # noqa: BLE001 - reported below
                            failed = exc
                            break
                        if sum(s.received for s in saved) >= GROUP_UP_TO or not _waiting(inp):
                            break
                        if (message := _read(inp)) is None:
                            break
            except Exception as exc:  # noqa: BLE001 - the commit failed: none was saved
                saved, failed = [], exc
            for s in saved:
                _write(out, ("ok", s.received, s.new, s.merged, s.duplicates))
            if failed is not None:  # reported to the parent, which raises it
                _write(out, _error(failed))
                return


def _save(archive: Archive, message: Any) -> SaveResult:
    service, name, rows, new_names, cursor, upto, mates = message
    with archive.transaction():  # what planning names here hands out is void if it fails
        if new_names is None:
            rows, new_names = archive.plan_record_rows(rows)
        return archive.save_rows(Account(service, name), rows, new_names, cursor=cursor,
                                 upto=upto, mates=mates)


def _waiting(inp: IO[bytes]) -> bool:
    """Whether more input is there to read right now."""
    return bool(select.select([inp], [], [], 0)[0])


def _error(exc: Exception) -> tuple[str, str, str | None]:
    text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return ("error", f"cannot save to the archive: {text}", getattr(exc, "hint", None))


def _follow_parent(parent: int) -> None:
    """Die with the parent, so no writer ever runs without the parent's write lock:
    Linux does it for us (PR_SET_PDEATHSIG); elsewhere a thread watches for it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                if os.getppid() != parent:  # it died before the call above
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.05)
        os._exit(1)

    threading.Thread(target=watch, name="scrob-writer-parent", daemon=True).start()


#: ``sqlite3_config`` options (sqlite3.h)
_SQLITE_CONFIG_MULTITHREAD = 2
_SQLITE_CONFIG_MEMSTATUS = 9


def _unshared_sqlite(maps: str = "/proc/self/maps") -> bool:
    """Tell SQLite that this process uses it from one thread: no lock around each
    connection's calls, nor around each of its allocations (kept for its memory
    statistics). The library the sqlite3 module loads takes those locks by default (a
    mutex taken and released ~60 times a saved listen, ~9 % of the writer's
    instructions). Best effort, before any connection is open: only where that library
    is a shared object this process has mapped (Linux; an SQLite built into Python is
    left as it is). Whether it was done."""
    try:
        import ctypes

        path = _mapped_sqlite(maps)
        if path is None:
            return False
        lib = ctypes.CDLL(path)  # the one already loaded: dlopen hands back the same
        major, minor, patch = sqlite3.sqlite_version_info
        if lib.sqlite3_libversion_number() != major * 1_000_000 + minor * 1000 + patch:
            return False  # another copy than the sqlite3 module's
        if lib.sqlite3_shutdown() != 0:
            return False
        try:
            done = (lib.sqlite3_config(_SQLITE_CONFIG_MULTITHREAD) == 0
                    and lib.sqlite3_config(_SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0)
        finally:
            lib.sqlite3_initialize()  # (the first connection would do it too)
        return done
    except Exception:  # noqa: BLE001 - no ctypes, no such symbol: save as before
        return False


def _mapped_sqlite(maps: str = "/proc/self/maps") -> str | None:
    """The path of the SQLite shared library this process has mapped, if any."""
    with open(maps, encoding="utf-8", errors="replace") as mapped:
        return next((line.split()[-1] for line in mapped
                     if line.rsplit("/", 1)[-1].startswith("libsqlite3.so")), None)


def main(argv: list[str], out: IO[bytes] | None = None) -> int:
    """The child's entry point (see ``_BOOTSTRAP``): path, tolerance, the name caches'
    size, the fold's interval, the WAL size it checkpoints at (0: the archive's own), parent
    pid."""
    try:
        path, tolerance, name_cache, fold_after, checkpoint_pages, parent = argv
        _follow_parent(int(parent))
        collect_never()
        _unshared_sqlite()  # (one thread: this one, with the archive's one connection)
        inp = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 - fd 0, kept open
        serve(path, int(tolerance), inp, out or sys.stdout.buffer,
              name_cache=int(name_cache), fold_after=int(fold_after),
              checkpoint_pages=int(checkpoint_pages))
    except BrokenPipeError:  # the parent is gone; what was committed stays
        return 0
    except Exception as exc:  # noqa: BLE001 - the parent reports it, never a traceback
        try:
            _write(out or sys.stdout.buffer, _error(exc))
        except OSError:
            pass
        return 1
    return 0
