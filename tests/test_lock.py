"""One writer at a time, between real processes; readers never wait for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.errors import ArchiveBusy
from scrobbler_cli.models import Account, SourceRecord

from .conftest import ROOT

HOLDER = """
import sys, time
from scrobbler_cli.archive import Archive
archive = Archive(sys.argv[1])
# a write half done: readers must neither wait for it nor see it
archive.conn.execute("BEGIN IMMEDIATE")
archive.conn.execute("UPDATE artists SET listens = listens + 1000")
archive.conn.execute("DELETE FROM listens")
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "archive.db"
    with Archive(path) as archive:
        archive.save_records(Account("lastfm", "alice"), [
            SourceRecord(1_700_000_000, "Radiohead", "Reckoner"),
            SourceRecord(1_700_000_600, "Radiohead", "Nude"),
        ])
    return path


@pytest.fixture
def holder(db: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the lock is held
    assert line.strip() == "holding", proc.stderr.read() if proc.stderr else ""
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def ndjson(tmp_path: Path) -> Path:
    path = tmp_path / "more.ndjson"
    path.write_text('{"listened_at": 1700001200, "artist": "Blur", "track": "Song 2"}\n')
    return path


def test_second_writer_waits_briefly_then_exits_5(scrob_proc, holder, db: Path,
                                                  ndjson: Path) -> None:
    started = time.monotonic()
    result = scrob_proc("--db", str(db), "import", str(ndjson),
                        env={"SCROB_LOCK_WAIT": "0.5"}, timeout=30)
    elapsed = time.monotonic() - started
    assert result.code == 5
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("scrob: error: ") and "busy" in lines[0]
    assert "another scrob" in lines[0] and "0.5s" in lines[0]
    assert "Traceback" not in result.err
    assert 0.5 <= elapsed < 15


def test_a_sync_that_finds_the_archive_busy_still_prints_its_json_summary(
        scrob_proc, holder, db: Path) -> None:
    """A cron job parsing `sync --json` gets each account's summary, error and all, as for
    any other failure (not an empty stdout)."""
    env = {"SCROB_LOCK_WAIT": "0.2", "SCROB_LISTENBRAINZ_USER": "alice",
           "SCROB_LISTENBRAINZ_TOKEN": "t", "SCROB_LISTENBRAINZ_API_URL": "http://127.0.0.1:9",
           "SCROB_LASTFM_USER": "bob", "SCROB_LASTFM_API_KEY": "k",
           "SCROB_LASTFM_API_URL": "http://127.0.0.1:9"}
    for args, users in ((["sync", "listenbrainz"], {"listenbrainz": "alice"}),
                        (["sync", "all"], {"lastfm": "bob", "listenbrainz": "alice"})):
        result = scrob_proc("--db", str(db), *args, "--json", env=env, timeout=30)
        assert result.code == 5
        assert result.err.count("\n") == 1 and "busy" in result.err
        reports = result.ndjson()
        assert {r["service"]: r["user"] for r in reports} == users  # type: ignore[index]
        assert all("busy" in r["error"] and r["fetched"] == 0  # type: ignore[index]
                   for r in reports)


def test_readers_are_not_blocked_by_a_writer(scrob_proc, holder, db: Path) -> None:
    started = time.monotonic()
    listens = scrob_proc("--db", str(db), "listens", "--json", timeout=30)
    stats = scrob_proc("--db", str(db), "stats", "--json", "--range", "all", timeout=30)
    assert time.monotonic() - started < 15  # well under the 5 s busy timeout each
    assert listens.code == 0, listens.err
    assert [row["track"] for row in listens.ndjson()] == ["Nude", "Reckoner"]  # type: ignore[index]
    # the writer's uncommitted changes are invisible
    assert listens.ndjson()[0]["accounts"] == ["lastfm:alice"]  # type: ignore[index]
    assert stats.code == 0, stats.err
    assert stats.json()["top_artists"] == [{"artist": "Radiohead", "listens": 2}]  # type: ignore[index]


def test_lock_is_free_after_the_holder_is_killed(scrob_proc, holder, db: Path,
                                                 ndjson: Path) -> None:
    with pytest.raises(ArchiveBusy):
        Archive(db, lock_wait=0.1)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    result = scrob_proc("--db", str(db), "import", str(ndjson),
                        env={"SCROB_LOCK_WAIT": "2"}, timeout=30)
    assert result.code == 0, result.err
    # the killed writer's half-done transaction left no trace
    with Archive(db, readonly=True) as archive:
        assert archive.count() == 3
        assert archive.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 3
        assert dict(archive.conn.execute("SELECT name, listens FROM artists")) == {
            "Radiohead": 2, "Blur": 1}
        assert archive.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_lock_in_one_process_is_released_on_close(db: Path) -> None:
    first = Archive(db, lock_wait=0.1)
    with pytest.raises(ArchiveBusy) as info:
        Archive(db, lock_wait=0.1)
    assert info.value.exit_code == 5
    first.close()
    Archive(db, lock_wait=0.1).close()
    # readers never take the lock
    with Archive(db) as _writer, Archive(db, readonly=True) as reader:
        assert reader.count() == 2


def test_writers_meet_at_one_lock_through_a_symbolic_link(db: Path, tmp_path: Path) -> None:
    link = tmp_path / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(db)
    with Archive(db, lock_wait=0.1):
        with pytest.raises(ArchiveBusy):
            Archive(link, lock_wait=0.1)
        with pytest.raises(ArchiveBusy):  # another spelling of the same path
            Archive(tmp_path / "elsewhere" / ".." / db.name, lock_wait=0.1)


def test_an_export_dry_run_reads_without_the_lock(scrob_proc, holder, db: Path) -> None:
    """A dry run writes nothing: it answers during a sync as `listens` does, instead of
    waiting for the lock and giving up with exit 5."""
    started = time.monotonic()
    dry = scrob_proc("--db", str(db), "export", "listenbrainz", "--user", "bob",
                     "--dry-run", "--json", env={"SCROB_LOCK_WAIT": "20"}, timeout=60)
    assert time.monotonic() - started < 15
    assert dry.code == 0, dry.err
    assert sorted(row["track"] for row in dry.ndjson()) == ["Nude", "Reckoner"]  # type: ignore[index]


NEW_ARCHIVE_HOLDER = """
import sys, time
from pathlib import Path
from scrobbler_cli.archive.lock import WriteLock
# a first sync that has just taken the lock and made the file, its tables not yet written
lock = WriteLock(Path(sys.argv[1]))
lock.acquire()
Path(sys.argv[1]).touch()
print("holding", flush=True)
time.sleep(120)
"""


def test_a_reader_of_an_archive_being_created_answers_at_once(scrob_proc, tmp_path: Path
                                                              ) -> None:
    path = tmp_path / "new.db"
    proc = subprocess.Popen([sys.executable, "-c", NEW_ARCHIVE_HOLDER, str(path)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        started = time.monotonic()
        stats = scrob_proc("--db", str(path), "stats", "--json", timeout=60)
        assert time.monotonic() - started < 5  # it waited 10 s for the whole sync
        assert stats.code == 5 and stats.out == ""
        assert "being created by another scrob" in stats.err and "Traceback" not in stats.err
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # the same empty file with nobody at work: an archive with no listens yet
    stats = scrob_proc("--db", str(path), "stats", "--json", timeout=60)
    assert stats.code == 0, stats.err
    assert stats.json()["total_listens"] == 0  # type: ignore[index]
