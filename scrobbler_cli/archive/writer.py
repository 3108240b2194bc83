"""Saving batches of records, in this process or in a writer process beside it.

A sync or an import spends its time in two halves that both need the interpreter:
fetching and parsing records, and saving them (identity, matching, SQLite). Threads
cannot run the two at once (the GIL), so ``BackgroundSaver`` hands each batch to a
child process that runs ``Archive.save_records`` while this process fetches and parses
the next one: two cores instead of one.

Nothing about correctness changes. The child commits each batch with its cursor in one
transaction, exactly as ``save_records`` does here, and does its identity checks
inside that transaction, so a batch is whole or absent whatever happens. If this
process dies (Ctrl-C, ``kill -9``), the child sees its input end, saves the batches it
already holds, and exits; a scrob started meanwhile simply waits for SQLite's write
lock, and its own identity checks absorb anything saved twice.

The protocol is private to this module: length-prefixed pickles over the child's
stdin and stdout (both ends are this same program, and nothing else reads them).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from operator import attrgetter
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import IO, TYPE_CHECKING, Any

from ..errors import ArchiveError
from ..models import Account, SaveResult, SourceRecord

if TYPE_CHECKING:
    from . import Archive

__all__ = ["BackgroundSaver", "Saver"]

#: Batches handed to the child and not yet saved; beyond this ``save`` waits, so memory
#: stays bounded and the child never falls far behind.
DEPTH = 2
#: While the child is busy, consecutive batches are joined up to this many records.
JOIN_UP_TO = 2000
#: A first batch smaller than this is saved in this process: a routine sync from cron
#: (a few new listens) never pays for starting a second interpreter.
SPAWN_AT = 1000
#: Seconds to wait for the child to finish its last batches once this process is
#: interrupted; then it is killed (its open transaction rolls back).
DRAIN_WAIT = 60.0

_RECORD = attrgetter(*SourceRecord.__slots__)  # type: ignore[attr-defined]
_HEAD = struct.Struct("<Q")

OnSaved = Callable[[SaveResult], None]


class Saver:
    """Saves each batch at once, in this process (``Archive.saver`` without background)."""

    def __init__(self, archive: Archive, on_saved: OnSaved | None = None) -> None:
        self.archive = archive
        self.on_saved = on_saved

    def save(self, account: Account, records: Iterable[SourceRecord], *,
             cursor: int | None = None) -> None:
        """Save one batch with its cursor (one transaction); report it to ``on_saved``."""
        saved = self.archive.save_records(account, records, cursor=cursor)
        if self.on_saved:
            self.on_saved(saved)

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

    def __init__(self, archive: Archive, on_saved: OnSaved | None = None) -> None:
        super().__init__(archive, on_saved)
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: SimpleQueue[Any] = SimpleQueue()
        self._reader: threading.Thread | None = None
        self._waiting = 0  # batches sent and not yet reported
        self._calls = 0
        self._held: list[SourceRecord] = []  # joined, not yet sent
        self._held_for: tuple[Account, bool] | None = None
        self._held_cursor: int | None = None

    def save(self, account: Account, records: Iterable[SourceRecord], *,
             cursor: int | None = None) -> None:
        batch = records if isinstance(records, list) else list(records)
        self._calls += 1
        if self._proc is None and self._calls == 1 and len(batch) < SPAWN_AT:
            super().save(account, batch, cursor=cursor)
            return
        if self._proc is None:
            self._proc = self._spawn()
        kind = (account, cursor is None)
        if self._held and self._held_for != kind:
            self._flush()
        self._held.extend(batch)
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
        if self._proc.returncode not in (0, None):
            raise ArchiveError(f"the archive writer process failed (exit code "
                               f"{self._proc.returncode})")

    def abort(self) -> None:
        """Hand over what is held (it is whole: records and cursor), then stop."""
        if self._proc is None:
            return
        try:
            self._flush(wait=False)
        except ArchiveError:
            pass
        self._stop(DRAIN_WAIT)

    # -- the parent's side of the pipe ---------------------------------------------------

    def _flush(self, *, wait: bool = True) -> None:
        """Send the held records as one batch (at most ``DEPTH`` wait in the child)."""
        if not self._held or self._held_for is None:
            return
        while wait and self._waiting >= DEPTH:
            self._report(self._poll(block=True))
        account = self._held_for[0]
        rows = [_RECORD(r) for r in self._held]
        self._held, self._held_for = [], None
        self._send((account.service, account.name, rows, self._held_cursor))
        self._waiting += 1

    def _spawn(self) -> subprocess.Popen[bytes]:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scrobbler_cli.archive.writer",
                 str(self.archive.path), str(self.archive.tolerance)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            )
        except OSError as exc:
            raise ArchiveError(f"cannot start the archive writer process: {exc}") from None
        # The child's replies are read by a thread, so ``save`` can see without blocking
        # whether the child is idle; None marks the end of its output.
        self._reader = threading.Thread(target=self._read_replies, args=(proc.stdout,),
                                        name="scrob-writer-replies", daemon=True)
        self._reader.start()
        return proc

    def _read_replies(self, stream: IO[bytes]) -> None:
        try:
            while (reply := _read(stream)) is not None:
                self._replies.put(reply)
        except (OSError, ValueError, pickle.UnpicklingError):
            pass
        self._replies.put(None)

    def _send(self, message: Any) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            _write(self._proc.stdin, message)
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def _poll(self, *, block: bool) -> SaveResult | None:
        """The next batch the child reports saved (None: none yet, if not ``block``)."""
        try:
            reply = self._replies.get(block=block)
        except Empty:
            return None
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
        """End the child's input; it saves what it holds and exits (killed after ``wait``)."""
        proc = self._proc
        assert proc is not None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEAD.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream (the other side is gone)."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # noqa: S301 - written by this program's own parent


# -- the child ------------------------------------------------------------------------------


def serve(path: str, tolerance: int, inp: IO[bytes], out: IO[bytes]) -> None:
    """The writer process: save each batch as it comes, answer with its counts.

    The parent holds the write lock for both of them, so the archive is opened without
    taking it. An error is answered (message and hint) and ends the loop: the parent
    raises it, and batches after it are not saved.
    """
    from . import Archive

    try:
        archive = Archive(path, tolerance=tolerance, lock=False)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        _write(out, _error(exc))
        return
    with archive:
        while (message := _read(inp)) is not None:
            service, name, rows, cursor = message
            try:
                saved = archive.save_records(Account(service, name),
                                             [SourceRecord(*row) for row in rows],
                                             cursor=cursor)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
                _write(out, _error(exc))
                return
            _write(out, ("ok", saved.received, saved.new, saved.merged, saved.duplicates))


def _error(exc: Exception) -> tuple[str, str, str | None]:
    text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return ("error", f"cannot save to the archive: {text}", getattr(exc, "hint", None))


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group; the parent decides what happens, and this
    # process finishes the batches it holds once the parent closes its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, tolerance = argv
    try:
        serve(path, int(tolerance), sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the parent is gone; what was committed stays
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
