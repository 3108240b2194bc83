"""The writer process (archive/writer.py): saves like the archive itself, in order,
and fails loudly and safely."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive, writer
from scrobbler_cli.errors import ArchiveError
from scrobbler_cli.models import Account, SaveResult, SourceRecord

LASTFM = Account("lastfm", "alice")
LB = Account("listenbrainz", "alice")
T = 1_700_000_000


def plays(n: int, start: int = T, step: int = 600, source: str = "lfm") -> list[SourceRecord]:
    return [SourceRecord(start + i * step, f"Artist {i % 37}", f"Track {i % 101}",
                         f"Album {i % 13}", 200 + i % 50, remote_id=f"{source}-{i}",
                         raw=f'{{"n":{i}}}') for i in range(n)]


def batches() -> list[tuple[Account, list[SourceRecord], int]]:
    """Last.fm pages, then ListenBrainz pages holding the same plays 40 s later (to be
    matched) and some of its own, then a Last.fm page seen again (all duplicates)."""
    lfm = plays(3000)
    lb = [SourceRecord(r.listened_at + 40, r.artist, r.track, r.album, remote_id=f"lb-{i}")
          for i, r in enumerate(lfm[:1500])] + plays(700, start=T + 3000 * 600, source="lb")
    return [(LASTFM, lfm[:1200], lfm[1199].listened_at), (LASTFM, lfm[1200:], lfm[-1].listened_at),
            (LB, lb[:1100], lb[1099].listened_at), (LB, lb[1100:], lb[-1].listened_at),
            (LASTFM, lfm[:1500], lfm[-1].listened_at)]


def contents(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT id, listened_at, artist, track, album, artist_id, track_id,"
                         " album_id FROM listens ORDER BY id").fetchall(),
            conn.execute("SELECT listen_id, service, account, listened_at, remote_id, raw"
                         " FROM sources ORDER BY 1, 2, 3, 4").fetchall(),
            conn.execute("SELECT service, account, cursor FROM cursors ORDER BY 1").fetchall(),
            conn.execute("SELECT key, name, listens FROM tracks ORDER BY id").fetchall(),
        )


def save_all(path: Path, *, background: bool, plan_names: bool = False) -> list[SaveResult]:
    results: list[SaveResult] = []
    with Archive(path, background=background) as archive, \
            archive.saver(results.append, plan_names=plan_names) as saver:
        kind = type(saver)
        for account, records, cursor in batches():
            saver.save(account, records, cursor=cursor)
    assert kind is (writer.BackgroundSaver if background else writer.Saver)
    return results


@pytest.mark.parametrize("plan_names", [False, True], ids=["child plans", "parent plans"])
def test_the_writer_process_saves_exactly_what_the_archive_would(
        tmp_path: Path, plan_names: bool) -> None:
    here = save_all(tmp_path / "here.db", background=False)
    there = save_all(tmp_path / "there.db", background=True, plan_names=plan_names)
    assert [(r.new, r.merged, r.duplicates) for r in here] == [
        (1200, 0, 0), (1800, 0, 0), (0, 1100, 0), (700, 400, 0), (0, 0, 1500)]
    total = SaveResult()
    for r in there:  # batches joined while the writer was busy are reported together
        total.add(r)
    assert (total.received, total.new, total.merged, total.duplicates) == (
        6700, 3700, 1500, 1500)
    assert contents(tmp_path / "there.db") == contents(tmp_path / "here.db")


@pytest.mark.parametrize("plan_names", [False, True], ids=["child plans", "parent plans"])
def test_the_writer_process_keeps_the_archives_cache_size_and_fold(
        tmp_path: Path, plan_names: bool) -> None:
    here = save_all(tmp_path / "here.db", background=False)  # the default, roomy caches
    with Archive(tmp_path / "there.db", background=True, name_cache=5,
                 fold_after=1000) as archive, \
            archive.saver(plan_names=plan_names) as saver:
        for account, records, cursor in batches():
            saver.save(account, records, cursor=cursor)
        assert isinstance(saver, writer.BackgroundSaver) and saver._proc is not None
        assert saver._proc.args[-4:-2] == ["5", "1000"]  # type: ignore[index]
    assert [r.new for r in here] == [1200, 1800, 0, 700, 0]
    # caches emptied again and again (in the child, or here once it had saved what was
    # planned with them): the same rows, the same ids
    assert contents(tmp_path / "there.db") == contents(tmp_path / "here.db")


def test_verbose_output_says_when_a_writer_process_starts(tmp_path: Path) -> None:
    lines: list[str] = []
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(log=lines.append) as saver:
            saver.save(LASTFM, plays(10), cursor=T)
            assert lines == []  # a small first batch: no second process
            saver.save(LASTFM, plays(1500, start=T + 10**7), cursor=T + 1)
            assert saver._proc is not None
        assert lines == [f"archive: saving through a writer process (pid {saver._proc.pid})"]


def test_a_small_first_batch_is_saved_without_a_second_process(tmp_path: Path) -> None:
    seen: list[SaveResult] = []
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(seen.append) as saver:
            saver.save(LASTFM, plays(10), cursor=T)
            assert isinstance(saver, writer.BackgroundSaver) and saver._proc is None
            assert seen == [SaveResult(received=10, new=10)]  # reported at once
        assert archive.count() == 10 and archive.get_cursor(LASTFM) == T


def test_a_big_job_announced_starts_the_writer_before_its_first_batch(tmp_path: Path) -> None:
    seen: list[SaveResult] = []
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(seen.append) as saver:
            saver.expect(writer.SPAWN_AT - 1)  # a small job: no second process
            assert saver._proc is None
            saver.expect(50_000)
            proc = saver._proc
            assert proc is not None and proc.poll() is None  # booting while we go on
            saver.expect(50_000)  # said again (a new round of pages): still one child
            assert saver._proc is proc
            saver.save(LASTFM, plays(10), cursor=T)  # small, yet saved by the child
            assert saver._waiting == 1 and seen == []  # handed over, not saved here
        assert seen == [SaveResult(received=10, new=10)]
        assert archive.count() == 10 and archive.get_cursor(LASTFM) == T


def test_announcing_a_job_to_an_in_process_saver_changes_nothing(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.db") as archive, archive.saver() as saver:
        saver.expect(10**6)
        saver.save(LASTFM, plays(10), cursor=T)
        assert archive.count() == 10


def test_while_the_writer_is_busy_batches_are_joined(tmp_path: Path) -> None:
    seen: list[int] = []
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(lambda r: seen.append(r.received)) as saver:
            for i in range(12):
                saver.save(LASTFM, plays(1000, start=T + i * 10**6), cursor=T + i)
                assert saver._waiting <= writer.DEPTH
                assert len(saver._held) <= writer.JOIN_UP_TO
        assert sum(seen) == 12_000 and len(seen) < 12  # fewer, bigger transactions
        assert max(seen) <= writer.JOIN_UP_TO
        assert archive.count() == 12_000 and archive.get_cursor(LASTFM) == T + 11


def test_while_the_writer_is_idle_each_batch_goes_at_once(tmp_path: Path) -> None:
    seen: list[int] = []
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(lambda r: seen.append(r.received)) as saver:
            for i in range(4):
                saver.save(LASTFM, plays(1000 + i, start=T + i * 10**6), cursor=T + i)
                assert not saver._held  # handed over, not held back
                saver._report(saver._poll(block=True))  # saved before the next arrives
        assert seen == [1000, 1001, 1002, 1003]
        assert archive.get_cursor(LASTFM) == T + 3


def test_batches_of_another_account_are_never_joined(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            saver.save(LASTFM, plays(10, start=T + 10**7), cursor=T + 2)
            saver.save(LB, plays(10, start=T + 2 * 10**7, source="lb"), cursor=T + 3)
            saver.save(LB, plays(10, start=T + 3 * 10**7, source="lb"), cursor=None)
        assert archive.get_cursor(LASTFM) == T + 2 and archive.get_cursor(LB) == T + 3
        assert archive.count() == 1530


@pytest.mark.parametrize("plan_names", [False, True], ids=["child plans", "parent plans"])
def test_an_error_in_the_writer_is_raised_here_and_earlier_batches_stay(
        tmp_path: Path, plan_names: bool) -> None:
    when = "soon"  # not a time: the writer fails on this batch
    bad = [SourceRecord(T, "A", "B")] * 999 + [SourceRecord(when, "A", "B")]  # type: ignore[arg-type]
    with Archive(tmp_path / "a.db", background=True) as archive:
        with pytest.raises(ArchiveError, match="cannot save to the archive: TypeError"), \
                archive.saver(plan_names=plan_names) as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            saver.save(LASTFM, bad, cursor=T + 2)
            saver.save(LASTFM, plays(1500, start=T + 10**7))
        assert archive.count() == 1500 and archive.get_cursor(LASTFM) == T + 1


@pytest.mark.parametrize("plan_names", [False, True], ids=["child plans", "parent plans"])
def test_a_writer_that_dies_is_reported_and_what_it_saved_stays(
        tmp_path: Path, plan_names: bool) -> None:
    with Archive(tmp_path / "a.db", background=True) as archive:
        with pytest.raises(ArchiveError, match="stopped unexpectedly") as info, \
                archive.saver(plan_names=plan_names) as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            while saver._waiting:  # let it finish the first batch
                saver._report(saver._poll(block=True))
            assert saver._proc is not None
            saver._proc.kill()
            for k in (1, 2, 3):  # with names never seen before
                saver.save(LASTFM, [SourceRecord(r.listened_at, "Later " + r.artist, r.track)
                                    for r in plays(1500, start=T + k * 10**7)])
        assert "run the same command again" in str(info.value)
        assert archive.count() == 1500 and archive.get_cursor(LASTFM) == T + 1
        # names planned for batches the writer never saved are forgotten: the next save
        # (the next account of `scrob sync all`) creates them, under ids of its own
        archive.save_records(LB, [SourceRecord(T + 4 * 10**7, "Later Artist 1", "Track 1")])
        assert archive.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert len(list(archive.listens(artist="later artist 1"))) == 1  # by its name row


def test_an_interrupted_caller_still_gets_every_handed_batch_saved(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.db", background=True) as archive:
        with pytest.raises(KeyboardInterrupt), archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            saver.save(LASTFM, plays(1500, start=T + 10**7), cursor=T + 2)
            raise KeyboardInterrupt
        assert saver._proc is not None and saver._proc.returncode == 0
        assert archive.count() == 3000 and archive.get_cursor(LASTFM) == T + 2


def test_the_writer_reports_an_archive_it_cannot_open(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Archive(path, background=True) as archive:
        saver = writer.BackgroundSaver(archive)
        archive.path = tmp_path / "no-such-dir" / "x.db"  # the child opens this one
        with pytest.raises(ArchiveError, match="cannot save to the archive"), saver:
            saver.save(LASTFM, plays(1500))
            saver.save(LASTFM, plays(1500, start=T + 10**7))
            saver.save(LASTFM, plays(1500, start=T + 2 * 10**7))


def test_a_batch_with_only_a_cursor_still_moves_it(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            saver.save(LASTFM, [], cursor=T + 5)  # a page with nothing usable on it
            assert saver._proc is not None
        assert archive.get_cursor(LASTFM) == T + 5


def test_what_the_writer_prints_never_corrupts_its_replies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
        ) -> None:
    noisy = writer._BOOTSTRAP.replace("from scrobbler_cli", "print('noise ' * 50); "
                                                            "from scrobbler_cli")
    assert noisy != writer._BOOTSTRAP
    monkeypatch.setattr(writer, "_BOOTSTRAP", noisy)
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            saver.save(LASTFM, plays(1500, start=T + 10**7), cursor=T + 2)
            assert saver._proc is not None
        assert archive.count() == 3000 and archive.get_cursor(LASTFM) == T + 2
    assert "noise" in capfd.readouterr().err


def test_a_stream_that_is_not_the_protocol_ends_the_replies(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a message"):
        writer._read(io.BytesIO(b"Traceback (most recent call last):\n  ..."))
    with Archive(tmp_path / "a.db", background=True) as archive:
        saver = writer.BackgroundSaver(archive)
        saver._read_replies(io.BytesIO(b"garbage, garbage, garbage"))
        assert saver._replies.get_nowait() is None  # the end, never a hang


class Name(str):
    """A str subclass, as a library caller may pass."""


def test_a_writer_process_saves_records_with_str_subclasses(tmp_path: Path) -> None:
    records = [SourceRecord(r.listened_at, Name(r.artist), r.track, r.album, r.duration,
                            raw=r.raw) for r in plays(1500)]
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, records, cursor=T + 1)
            assert saver._proc is not None
        assert archive.count() == 1500
        assert {x.artist for x in archive.listens(limit=5000)} == {r.artist for r in records}


def test_without_a_writer_process_batches_are_saved_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError("no processes left")

    monkeypatch.setattr(writer.subprocess, "Popen", no_processes)
    lines: list[str] = []
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(log=lines.append) as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            saver.save(LASTFM, plays(1500, start=T + 10**7), cursor=T + 2)
            assert saver._proc is None and saver._inline
        assert archive.count() == 3000 and archive.get_cursor(LASTFM) == T + 2
    assert lines == ["archive: no writer process (no processes left); saving in this one"]
    monkeypatch.undo()
    monkeypatch.setattr(writer, "_can_spawn", lambda: False)  # Windows, a frozen app
    with Archive(tmp_path / "b.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            assert saver._proc is None
        assert archive.count() == 1500


def test_a_writer_killed_after_its_last_reply_fails_the_close(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.db", background=True) as archive:
        saver = archive.saver()
        saver.save(LASTFM, plays(1500), cursor=T + 1)
        assert isinstance(saver, writer.BackgroundSaver) and saver._proc is not None
        saver._report(saver._poll(block=True))
        saver._proc.kill()
        saver._proc.wait()
        with pytest.raises(ArchiveError, match="exit code -9"):
            saver.close()
        assert archive.count() == 1500  # committed before it was killed


def test_the_writer_process_gets_no_credentials(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", "token-the-writer-never-needs")
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", "key-the-writer-never-needs")
    with Archive(tmp_path / "a.db", background=True) as archive, archive.saver() as saver:
        saver.save(LASTFM, plays(1500), cursor=T + 1)
        assert saver._proc is not None
        environ = Path(f"/proc/{saver._proc.pid}/environ")
        if environ.exists():  # Linux: what the running child was given
            deadline = time.monotonic() + 10
            # (empty while the child is still inside exec: Python 3.13 spawns it with
            # vfork, which lets this process go on from that point)
            while not (seen := environ.read_bytes()) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert b"never-needs" not in seen and b"PATH=" in seen
    assert "never-needs" not in str(writer._without_secrets(dict(
        SCROB_LISTENBRAINZ_TOKEN="never-needs", HOME="/home/x")))


def traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements every archive opened from now on runs (after its opening pragmas)."""
    statements: list[str] = []
    connect = Archive._connect

    def tracing(self: Archive) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(Archive, "_connect", tracing)
    return statements


def served(tmp_path: Path, messages: list[tuple[Account, list[SourceRecord], object]],
           monkeypatch: pytest.MonkeyPatch, *, cut: int = 0) -> tuple[list[object], list[str]]:
    """Run the writer's loop here on batches all waiting in its input (a file: always
    readable, like a pipe a fast parent keeps full): its replies and its statements."""
    statements = traced(monkeypatch)
    # the parent plans the names (its archive is the one the writer saves to, new here)
    with Archive(":memory:") as planner, open(tmp_path / "input", "wb") as stream:
        for account, records, cursor in messages:
            rows, new_names = planner.plan_rows(records)
            writer._write(stream, (account.service, account.name, rows, new_names, cursor,
                                   None, None))
    if cut:  # the parent was interrupted while writing its last message
        data = (tmp_path / "input").read_bytes()
        (tmp_path / "input").write_bytes(data[:-cut])
    out = io.BytesIO()
    with open(tmp_path / "input", "rb", buffering=0) as inp:
        writer.serve(str(tmp_path / "a.db"), 300, inp, out)
    replies, stream = [], io.BytesIO(out.getvalue())
    while (reply := writer._read(stream)) is not None:
        replies.append(reply)
    return replies, statements[statements.index("BEGIN IMMEDIATE"):]  # after migrating


def test_batches_waiting_for_the_writer_are_committed_together(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [(LASTFM, plays(300, start=T + i * 10**6), T + i) for i in range(4)]
    replies, statements = served(tmp_path, pages, monkeypatch)
    assert replies == [("ok", 300, 300, 0, 0)] * 4  # each batch answered, in order
    commits = statements.count("COMMIT")
    assert statements.count("BEGIN IMMEDIATE") == commits == 2  # the four, then the fold
    with Archive(tmp_path / "a.db") as archive:
        assert archive.count() == 1200 and archive.get_cursor(LASTFM) == T + 3

    monkeypatch.setattr(writer, "GROUP_UP_TO", 600)  # a transaction holds 600 at most
    (tmp_path / "again").mkdir()
    replies, statements = served(tmp_path / "again", [(LASTFM, plays(300, start=T + i * 10**6),
                                                    T + i) for i in range(4, 8)], monkeypatch)
    assert len(replies) == 4 and statements.count("COMMIT") == 2 + 1


def test_a_batch_failing_among_waiting_ones_leaves_the_batches_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = plays(300, start=T + 10**6)  # its listens are written, then its cursor fails
    replies, _ = served(tmp_path, [(LASTFM, plays(300), T + 1), (LASTFM, bad, "soon"),
                                   (LASTFM, plays(300, start=T + 2 * 10**6), T + 3)],
                        monkeypatch)
    assert replies[0] == ("ok", 300, 300, 0, 0)
    assert replies[1][0] == "error" and "ValueError" in replies[1][1] and len(replies) == 2
    with Archive(tmp_path / "a.db") as archive:  # the first batch whole, nothing after it
        assert archive.count() == 300 and archive.get_cursor(LASTFM) == T + 1
        assert archive.conn.execute("SELECT sum(listens) FROM tracks").fetchone()[0] == 300


def test_a_batch_cut_short_is_ignored_and_the_ones_before_it_are_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies, _ = served(tmp_path, [(LASTFM, plays(300), T + 1),
                                   (LASTFM, plays(300, start=T + 10**6), T + 2)],
                        monkeypatch, cut=1000)
    assert replies == [("ok", 300, 300, 0, 0)]
    with Archive(tmp_path / "a.db") as archive:
        assert archive.count() == 300 and archive.get_cursor(LASTFM) == T + 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_GETPIPE_SZ is Linux's")
def test_the_pipe_to_the_writer_holds_a_batch_in_few_writes(tmp_path: Path) -> None:
    import fcntl

    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            assert saver._proc is not None and saver._proc.stdin is not None
            size = fcntl.fcntl(saver._proc.stdin.fileno(), fcntl.F_GETPIPE_SZ)
            assert size >= min(1 << 20, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
        assert archive.count() == 1500


def test_names_a_writer_process_made_are_found_here_afterwards(tmp_path: Path) -> None:
    """A sync's writer process plans its own names: once it has stopped, this process
    must look them up again, not take them for new (it knew every name while the
    archive was empty, and saved the first, small batch itself)."""
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(10), cursor=T)  # saved here, into empty tables
            saver.save(LASTFM, [SourceRecord(r.listened_at, "Later " + r.artist, r.track)
                                for r in plays(1500, start=T + 10**7)])
            assert saver._proc is not None
        archive.save_records(LB, [SourceRecord(T + 2 * 10**7, "Later Artist 1", "Track 1")])
        q = archive.conn.execute
        assert q("SELECT count(*) FROM artists WHERE key = 'later artist 1'").fetchone() == (1,)
        assert len(list(archive.listens(artist="later artist 1"))) == 1500 // 37 + 1 + 1


def test_the_checkpointer_copies_commits_into_the_archive_file(tmp_path: Path) -> None:
    """What a writer commits stays in the WAL (its own checkpoints are a backstop far
    off): the command's checkpointer thread copies it into the file."""
    path = tmp_path / "a.db"
    with Archive(path) as archive:
        archive.conn.execute("PRAGMA wal_autocheckpoint = 0")  # as the writer, nearly
        archive.save_records(LASTFM, plays(3000), cursor=T)
        before = path.stat().st_size
        wal = Path(f"{path}-wal").stat().st_size
        assert wal > 1_000_000 and before < wal / 4  # the listens are in the WAL only
        checkpointer = writer.Checkpointer(path)
        checkpointer.poke()
        checkpointer.stop()
        assert path.stat().st_size > before + wal / 2
        # nothing is left to copy, and the archive reads the same
        busy, frames, copied = sqlite3.connect(path).execute(
            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == copied
        assert archive.count() == 3000


def test_a_checkpointer_that_cannot_open_the_archive_stops_quietly(tmp_path: Path) -> None:
    checkpointer = writer.Checkpointer(tmp_path / "none.db")
    checkpointer.poke()
    checkpointer.stop()  # no error, and no file made
    assert not (tmp_path / "none.db").exists()


def test_a_checkpointer_that_fails_ends_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    seen: list[object] = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    (tmp_path / "bad.db").write_bytes(b"not a database at all, " * 1000)
    checkpointer = writer.Checkpointer(tmp_path / "bad.db")
    checkpointer.poke()
    checkpointer.stop()
    assert seen == [] and not checkpointer._thread.is_alive()


def test_the_checkpointer_ends_with_the_writer_process(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver() as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            assert saver._checkpointer is not None
            thread = saver._checkpointer._thread
            assert thread.is_alive()
        assert not thread.is_alive()
        assert archive.count() == 1500


def test_an_import_that_plans_names_leaves_checkpoints_to_its_writer(tmp_path: Path) -> None:
    """Planning names, the command is as busy as its writer: no checkpointer thread."""
    with Archive(tmp_path / "a.db", background=True) as archive:
        with archive.saver(plan_names=True) as saver:
            saver.save(LASTFM, plays(1500), cursor=T + 1)
            assert saver._proc is not None and saver._checkpointer is None
        assert archive.count() == 1500


@pytest.mark.parametrize("pages", [0, writer.CHILD_CHECKPOINT_PAGES])
def test_the_writer_checkpoints_itself_only_as_a_backstop_when_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pages: int) -> None:
    statements = traced(monkeypatch)
    (tmp_path / "input").write_bytes(b"")
    with open(tmp_path / "input", "rb", buffering=0) as inp:
        writer.serve(str(tmp_path / "a.db"), 300, inp, io.BytesIO(), checkpoint_pages=pages)
    # (what every connection of the archive sets on opening is not traced here)
    settings = [s for s in statements if s.startswith("PRAGMA wal_autocheckpoint")]
    assert settings == ([f"PRAGMA wal_autocheckpoint = {pages}"] if pages else [])


# Run in a new interpreter: SQLite's library is set up once a process, before any
# connection (this one's test process has many).
_UNSHARED = """
import ctypes, sqlite3, sys
from scrobbler_cli.archive import writer
path = writer._mapped_sqlite()
if path is None:
    print("built in"); sys.exit()
lib = ctypes.CDLL(path)
lib.sqlite3_memory_used.restype = ctypes.c_int64

def used():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(str(i) * 20,) for i in range(1000)])
    bytes_in_use = lib.sqlite3_memory_used()
    conn.close()
    return bytes_in_use

before = used()
"""


def _unshared(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _UNSHARED + code], capture_output=True,
                         text=True, check=True).stdout.split()
    if out == ["built", "in"]:
        pytest.skip("this Python's SQLite is built into it: the writer leaves it as it is")
    return out


def test_the_writer_process_runs_sqlite_without_its_locks(tmp_path: Path) -> None:
    """``main`` tells SQLite that one thread uses it: among what that turns off are the
    memory statistics (and the lock every allocation took for them)."""
    out = _unshared(
        "def serve(path, *args, **kwargs):\n"
        "    print(before > 0, used())\n"
        "    with Archive(path, lock=False) as archive:\n"
        "        archive.save_records(writer.Account('lastfm', 'a'), [writer.SourceRecord("
        "1700000000 + i, 'A', f'T{i}') for i in range(500)], cursor=1)\n"
        "        print(archive.count())\n"
        "import os\nfrom scrobbler_cli.archive import Archive\nwriter.serve = serve\n"
        f"writer.main([{str(tmp_path / 'a.db')!r}, '300', '10', '10', '0', str(os.getppid())])\n")
    assert out == ["True", "0", "500"]


def test_sqlite_is_left_as_it_is_where_its_library_cannot_be_found(tmp_path: Path) -> None:
    (tmp_path / "maps").write_text("00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/x\n")
    (tmp_path / "libsqlite3.so.0").write_bytes(b"not a library")
    (tmp_path / "odd").write_text(f"00400000-00452000 r-xp 0 0:0 1 {tmp_path}/libsqlite3.so.0\n")
    tried = ", ".join(f"writer._unshared_sqlite({str(tmp_path / name)!r})"
                      for name in ("maps", "none", "odd"))
    out = _unshared(f"print({tried}, used() > 0)")  # memory statistics still kept
    assert out == ["False", "False", "False", "True"]
