"""The real `scrob` against the fake ListenBrainz (and Last.fm) on loopback sockets.

Every test runs the command as a user does: a subprocess (or, where only the output
matters, the in-process CLI), with SCROB_LISTENBRAINZ_API_URL pointing at a fake served
under a path prefix, credentials from the environment or the test keyring file, and the
archive read back with plain sqlite3.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from scrobbler_cli.sync import SUBMIT_DELAY
from tests.conftest import ROOT
from tests.fakes.lastfm_server import FakeLastfm
from tests.fakes.listenbrainz_server import FakeListenBrainz

TOKEN = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
T0 = 1_600_000_000
DAY = 86400
SYNC_KEYS = {"service", "user", "fetched", "new", "duplicates", "requests", "cursor",
             "complete"}
EXPORT_KEYS = {"target", "candidates", "submitted", "already_there", "rejected", "requests",
               "held_back"}


@pytest.fixture
def lb() -> Iterator[FakeListenBrainz]:
    with FakeListenBrainz("/apis/listenbrainz", seed=7) as fake:
        fake.add_user("Alice", TOKEN)
        yield fake


@pytest.fixture
def env(lb: FakeListenBrainz, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"SCROB_LISTENBRAINZ_API_URL": lb.url, "SCROB_LISTENBRAINZ_USER": "alice",
              "SCROB_LISTENBRAINZ_TOKEN": TOKEN}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def db(isolated_env: Path) -> Path:
    return isolated_env / "archive.db"


def server_listens(fake: FakeListenBrainz, user: str = "Alice") -> list[tuple[int, str]]:
    return sorted((x["listened_at"], x["track_metadata"]["track_name"])
                  for x in fake.listens(user))


def archived(db: Path, account: str = "alice") -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.listened_at, t.name FROM sources s JOIN tracks t ON t.id = s.track_id"
            " WHERE s.service = 'listenbrainz' AND s.account = ? ORDER BY 1, 2", (account,))
        return [(int(ts), str(name)) for ts, name in rows]


def cursor_of(db: Path, service: str = "listenbrainz", account: str = "alice") -> int | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT cursor FROM cursors WHERE service = ? AND account = ?",
                           (service, account)).fetchone()
    return None if row is None else int(row[0])


def finish_and_compare(command: list[str], db: Path, expected: list[tuple[int, str]]
                       ) -> None:
    """Run the interrupted sync again to the end: the archive then equals the server."""
    final = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), capture_output=True,
                           text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert archived(db) == expected


def writers_of(db: Path) -> list[int]:
    """Running archive writer processes (archive/writer.py) of this archive (Linux)."""
    found: list[int] = []
    if not Path("/proc/self/cmdline").exists():
        return found
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"scrobbler_cli.archive.writer" in arg for arg in command) \
                and str(db).encode() in command:
            found.append(int(entry.name))
    return found


def fail_after(lb: FakeListenBrainz, monkeypatch: pytest.MonkeyPatch, path_suffix: str,
               good: int) -> list[int]:
    """Answer 503 to every request to ``path_suffix`` after the first ``good`` ones; the
    returned counter can be set back to let more through."""
    answer = lb.handle
    seen = [0]

    def failing(entry: Any) -> tuple[int, dict[str, str], bytes]:
        if entry.path.endswith(path_suffix):
            seen[0] += 1
            if seen[0] > good:
                return 503, {}, b'{"code": 503, "error": "down"}'
        return answer(entry)

    monkeypatch.setattr(lb, "handle", failing)
    return seen


def ctrl_c(args: list[str], ready: Callable[[], bool], settle: float = 0.0,
           sig: int = signal.SIGINT) -> tuple[int, str, str]:
    """Run ``scrob ARGS`` in its own process group, as a shell runs a job, and press
    Ctrl-C (SIGINT to the group; or ``sig``) once ``ready()``: its exit code, stdout and
    stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "scrobbler_cli", *args], cwd=ROOT,
                            env=os.environ.copy(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(settle)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def lastfm_env(monkeypatch: pytest.MonkeyPatch, fm: FakeLastfm, user: str = "alice") -> None:
    """Point scrob at the fake Last.fm as ``user``, with what scrobbling to it takes."""
    monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
    monkeypatch.setenv("SCROB_LASTFM_USER", user)
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
    monkeypatch.setenv("SCROB_LASTFM_API_SECRET", fm.api_secret)
    monkeypatch.setenv("SCROB_LASTFM_SESSION_KEY", fm.session_key(user))


def write_ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def plays(n: int, start: int) -> list[dict[str, Any]]:
    return [{"listened_at": start + i * 900, "artist": f"Artist {i % 9}",
             "track": f"Track {i}", "album": "Album", "duration": 180 + i % 60}
            for i in range(n)]


# --------------------------------------------------------------------------- sync


def test_fresh_sync_equals_the_server_with_ties_across_pages(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    lb.add_listens("Alice", [(T0 + i // 4, f"Artist {i % 5}", f"Track {i}")
                             for i in range(3100)])
    before = int(time.time())
    result = scrob_proc("sync", "listenbrainz", "--json")
    assert result.code == 0, result.err
    (report,) = result.ndjson()
    assert set(report) == SYNC_KEYS
    assert report["service"] == "listenbrainz" and report["user"] == "alice"
    assert (report["new"], report["complete"]) == (3100, True)
    # complete up to the moment the sync started less the plays on their way then (not
    # just to the newest listen)
    assert before - SUBMIT_DELAY <= report["cursor"] <= time.time() - SUBMIT_DELAY
    assert report["cursor"] == cursor_of(db)
    assert report["fetched"] == report["new"] + report["duplicates"]
    assert archived(db) == server_listens(lb)
    # every request went under the prefix, with both bounds on every listens page
    pages = lb.requests_to("/listens")
    assert all(r.path.startswith("/apis/listenbrainz/1/user/alice/") for r in pages)
    assert all({"min_ts", "max_ts", "count"} <= set(r.query) for r in pages)
    assert result.err == ""  # not a terminal: nothing but the summary


def test_delta_sync_picks_up_back_dated_listens(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    lb.add_listens("Alice", [(T0 + i * 300, "A", f"T{i}") for i in range(2000)])
    before = int(time.time())
    assert scrob_proc("sync", "listenbrainz").code == 0
    cursor = cursor_of(db)
    assert cursor is not None and before - SUBMIT_DELAY <= cursor <= time.time() - SUBMIT_DELAY
    lb.add_listens("Alice", [(cursor - 2 * DAY + 1, "Late", "Imported later"),
                             (cursor - 60, "Late", "Offline player"),
                             (cursor + 30, "New", "Track")])
    result = scrob_proc("sync", "listenbrainz", "--json")
    (report,) = result.ndjson()
    assert (report["new"], report["complete"]) == (3, True)
    assert archived(db) == server_listens(lb)
    text = scrob_proc("sync", "listenbrainz")
    assert text.code == 0 and text.out == ""  # the summary line is talk: stderr
    assert "0 new" in text.err


def test_a_delta_sync_reads_history_imported_before_everything_it_had(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    now = int(time.time())
    lb.add_listens("Alice", [(now - DAY + i * 600, "A", f"Recent {i}") for i in range(20)])
    assert scrob_proc("sync", "listenbrainz").code == 0
    # years of older plays imported into ListenBrainz (a Spotify history, say)
    lb.add_listens("Alice", [(T0 + i * DAY, "B", f"Imported {i}") for i in range(1500)])
    result = scrob_proc("--verbose", "sync", "listenbrainz", "--json")
    assert result.code == 0, result.err
    (report,) = result.ndjson()
    assert (report["new"], report["complete"]) == (1500, True)
    assert "reading its whole history again" in result.err
    assert archived(db) == server_listens(lb)


def test_history_imported_after_a_first_sync_stopped_part_way_is_read(
        scrob, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A first sync that fails after its first page has saved a cursor: the oldest
    listen the account had is noted with it, so history imported into ListenBrainz
    before the next run (older than any listen it had) is still read."""
    from scrobbler_cli.engines import listenbrainz as engine

    monkeypatch.setattr(engine, "RETRY_BACKOFF", 0.001)
    now = int(time.time())
    lb.add_listens("Alice", [(now - 100 * DAY + i * 2880, "A", f"T{i}") for i in range(3000)])
    pages = fail_after(lb, monkeypatch, "/listens", 1)
    first = scrob("sync", "listenbrainz", "--json")
    assert first.code == 4 and cursor_of(db) is not None
    pages[0] = -10_000  # the server is back; years of older plays imported into it
    lb.add_listens("Alice", [(T0 + i * DAY, "B", f"Imported {i}") for i in range(50)])
    again = scrob("sync", "listenbrainz", "--json")
    assert again.code == 0
    assert archived(db) == server_listens(lb)


def test_a_cursor_with_no_oldest_listen_noted_reads_the_whole_history_once(
        scrob, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    now = int(time.time())
    lb.add_listens("Alice", [(now - DAY + i * 600, "A", f"Recent {i}") for i in range(20)])
    assert scrob("sync", "listenbrainz").code == 0
    with sqlite3.connect(db) as conn:  # as a build that noted it only at the end left it
        assert conn.execute("DELETE FROM meta WHERE key LIKE 'listenbrainz_oldest:%'"
                            ).rowcount == 1
    lb.add_listens("Alice", [(T0 + i * DAY, "B", f"Imported {i}") for i in range(30)])
    result = scrob("sync", "listenbrainz", "--json")
    (report,) = result.ndjson()
    assert (report["new"], report["complete"]) == (30, True)
    assert archived(db) == server_listens(lb)
    lb.add_listens("Alice", [(T0 - 5 * DAY + i, "C", f"Older {i}") for i in range(3)])
    (report,) = scrob("sync", "listenbrainz", "--json").ndjson()  # noted again: found
    assert report["new"] == 3 and archived(db) == server_listens(lb)


def test_since_the_beginning_of_time_is_a_whole_walk_that_saves_the_cursor(
        scrob, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    lb.add_listens("Alice", [(T0 + i * 600, "A", f"T{i}") for i in range(5)])
    result = scrob("sync", "listenbrainz", "--since", "1970-01-01", "--json")
    (report,) = result.ndjson()
    assert (report["new"], report["complete"]) == (5, True)
    assert report["cursor"] == cursor_of(db) is not None


def test_a_delta_sync_keeps_the_mbids_the_server_mapped_since(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    start = int(time.time()) - 3 * DAY
    lb.add_listens("Alice", [(start + i * 600, "A", f"T{i}") for i in range(5)])
    assert scrob_proc("sync", "listenbrainz").code == 0
    recording = "a4c5a4fa-5b3e-4c5f-9a5f-2b8a1c3e1d11"
    release = "b1a5c2d3-1111-4e2f-8a9b-0c1d2e3f4a5b"
    mapped = start + 2 * 600
    assert lb.map_listens("Alice", mapped, {"recording_mbid": recording,
                                            "release_mbid": release}) == 1
    result = scrob_proc("sync", "listenbrainz", "--json")  # its lookback reads them again
    (report,) = result.ndjson()
    assert (report["new"], report["duplicates"]) == (0, 5)
    rows = {r["listened_at"]: r for r in scrob_proc("listens", "--json").ndjson()}
    assert (rows[mapped]["recording_mbid"], rows[mapped]["release_mbid"]) == (recording, release)
    assert [t for t, r in rows.items() if r["recording_mbid"]] == [mapped]


def test_a_cron_env_file_with_windows_line_ends_still_syncs(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    """`set -a; . ./scrob.env` with a file saved on Windows: each value ends in \\r."""
    lb.add_listens("Alice", [(T0 + i, "A", f"T{i}") for i in range(3)])
    crlf = {name: value + "\r" for name, value in {**env, "SCROB_DB": str(db)}.items()}
    result = scrob_proc("sync", "listenbrainz", "--json", env=crlf)
    assert result.code == 0, result.err
    (report,) = result.ndjson()
    assert (report["user"], report["new"]) == ("alice", 3)
    assert archived(db) == server_listens(lb)  # the archive it was meant to write


def test_sync_with_server_faults_still_equals_the_server(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    lb.add_listens("Alice", [(T0 + i // 2, "A", f"T{i}") for i in range(3500)])
    lb.fault_rate = 0.3
    result = scrob_proc("sync", "listenbrainz", "--json")
    assert result.code == 0, result.err
    assert archived(db) == server_listens(lb)
    assert any(r.status == 503 for r in lb.request_log)
    (report,) = result.ndjson()
    assert report["requests"] == len(lb.request_log)


def test_sync_fails_cleanly_when_the_server_keeps_failing(
        scrob, lb: FakeListenBrainz, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scrobbler_cli.engines import listenbrainz as engine

    monkeypatch.setattr(engine, "RETRY_BACKOFF", 0.001)
    lb.fail_next(100, status=503)
    result = scrob("sync", "listenbrainz")
    assert result.code == 4
    assert result.err.count("\n") == 1 and "503" in result.err
    assert "Traceback" not in result.err
    # with --json, stdout still holds the summary (cli.md), saying what failed
    lb.fail_next(100, status=503)
    result = scrob("sync", "listenbrainz", "--json")
    assert result.code == 4 and result.err.count("\n") == 1
    (report,) = result.ndjson()
    assert report["service"] == "listenbrainz" and report["user"] == "alice"
    assert report["complete"] is False and "503" in report["error"]


def test_kill_9_at_random_moments_then_resume(
        lb: FakeListenBrainz, env: dict[str, str], db: Path) -> None:
    # three listens a second, one second an hour: a resume re-reads 14 days (~1000
    # listens) before the cursor, then goes on where the killed run stopped
    lb.add_listens("Alice", [(T0 + (i // 3) * 3600, f"Artist {i % 11}", f"Track {i}")
                             for i in range(30_000)])
    lb.latency = 0.01
    expected = server_listens(lb)
    rng = random.Random(4)
    command = [sys.executable, "-m", "scrobbler_cli", "--quiet", "sync", "listenbrainz"]
    kills = checked = 0
    writer_seen = False  # the kills land while a writer process saves, at least once
    while kills < 4:
        before = len(lb.requests_to("/listens"))
        proc = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill after a random number of page requests of this run: mid-walk whatever
        # the machine's speed (wall-clock sleeps could land in start-up, or too late)
        wanted = before + rng.randint(9, 16)  # commits group up to 8 fast pages
        deadline = time.monotonic() + 60
        while (len(lb.requests_to("/listens")) < wanted and proc.poll() is None
               and time.monotonic() < deadline):
            writer_seen = writer_seen or bool(writers_of(db))
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        # the writer process dies with its parent: no writer outlives the write lock
        deadline = time.monotonic() + 5
        while writers_of(db) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not writers_of(db)
        if db.exists():
            # whatever the moment, no duplicate, and nothing missing up to the cursor
            # the cursor first: a writer process that outlives its killed parent may still
            # commit, and whatever is below the cursor read first is there when read next
            cursor = cursor_of(db)
            got = archived(db)
            assert len(got) == len(set(got))
            if cursor is not None:
                checked += 1
                assert ([x for x in expected if x[0] <= cursor]
                        == [x for x in got if x[0] <= cursor])
        if proc.returncode == 0:
            break  # it finished before the kill: nothing left to interrupt
    assert kills >= 2 and checked >= 2
    assert writer_seen or not Path("/proc/self/cmdline").exists()
    finish_and_compare(command, db, expected)


def test_sync_all_continues_past_a_failing_account(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLastfm() as fm:
        fm.add_scrobbles("bob", [(T0 + i * 600, "A", f"T{i}", "Album") for i in range(30)])
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        monkeypatch.setenv("SCROB_LASTFM_USER", "bob")
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
        monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "nobody")  # unknown: HTTP 404, exit 2
        result = scrob_proc("sync", "all", "--json")
        # a failing account still reports the cursor the archive holds for it
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", "f" * 32)  # rejected: no retries
        again = {r["service"]: r for r in scrob_proc("sync", "all", "--json").ndjson()}
    assert "error" in again["lastfm"]
    assert again["lastfm"]["cursor"] == cursor_of(db, "lastfm", "bob") is not None
    assert result.code == 2  # a wrong user name: the next run will not fix it
    reports = {r["service"]: r for r in result.ndjson()}
    assert reports["lastfm"]["new"] == 30 and "error" not in reports["lastfm"]
    assert "nobody" in reports["listenbrainz"]["error"]
    assert "not every account synced" in result.err
    assert cursor_of(db, "lastfm", "bob") is not None


def test_sync_all_syncs_every_account_whatever_its_output_can_take(
        lb: FakeListenBrainz, env: dict[str, str], db: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`scrob sync all --json | head -1`: the first summary meets a closed pipe, and the
    second account is synced all the same; a full disk says so once, at the end."""
    lb.add_listens("Alice", [(T0 + i * 600, "A", f"T{i}") for i in range(5)])

    def run(archive: Path, stdout: int, stderr: int) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "scrobbler_cli", "sync", "all", "--json"],
                              stdout=stdout, stderr=stderr, timeout=120, cwd=ROOT,
                              env={**os.environ, "SCROB_DB": str(archive)})

    before = int(time.time())
    with FakeLastfm() as fm:
        fm.add_scrobbles("bob", [(T0 + i * 600, "B", f"T{i}", "Album") for i in range(5)])
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        monkeypatch.setenv("SCROB_LASTFM_USER", "bob")
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
        read, write = os.pipe()
        os.close(read)  # the reader has gone: every write is EPIPE
        try:
            closed = run(db, write, subprocess.PIPE)
            both_closed = run(tmp_path / "both.db", write, write)  # `2>&1 | true`
        finally:
            os.close(write)
        assert (closed.returncode, closed.stderr) == (0, b"")
        assert both_closed.returncode == 0
        if os.path.exists("/dev/full"):
            with open("/dev/full", "wb") as full:
                filled = run(tmp_path / "full.db", full.fileno(), subprocess.PIPE)
            assert filled.returncode == 1
            assert filled.stderr == (b"scrob: error: cannot write the output: "
                                     b"No space left on device\n")
    archives = [db, tmp_path / "both.db"]
    archives += [tmp_path / "full.db"] if os.path.exists("/dev/full") else []
    for archive in archives:
        assert cursor_of(archive, "lastfm", "bob") is not None, archive
        cursor = cursor_of(archive)  # complete up to the sync's start, less plays on their way
        assert cursor is not None, archive
        assert before - SUBMIT_DELAY <= cursor <= time.time() - SUBMIT_DELAY, archive


def test_sync_all_reports_what_a_failing_account_saved_before_it_failed(
        scrob, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from scrobbler_cli.engines import listenbrainz as engine

    monkeypatch.setattr(engine, "RETRY_BACKOFF", 0.001)
    lb.add_listens("Alice", [(T0 + i, "A", f"T{i}") for i in range(4500)])
    pages = fail_after(lb, monkeypatch, "/listens", 2)
    with FakeLastfm() as fm:
        fm.add_scrobbles("bob", [(T0 + i * 600, "A", f"T{i}", "Album") for i in range(30)])
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        monkeypatch.setenv("SCROB_LASTFM_USER", "bob")
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
        result = scrob("sync", "all", "--json")
    assert result.code == 4
    report = {r["service"]: r for r in result.ndjson()}["listenbrainz"]
    assert "503" in report["error"] and report["complete"] is False
    # two pages of 1000 were saved before the third kept failing (the second starts at
    # the first's last second again), and the summary says so
    assert report["fetched"] == 2000 == report["new"] + report["duplicates"]
    assert report["new"] == len(archived(db)) == 1999
    assert report["requests"] >= 3
    assert report["cursor"] == cursor_of(db) is not None
    # on a terminal too, the failing account's line says what it read before failing
    pages[0] = 0
    with FakeLastfm() as fm:
        fm.add_user("bob")
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        text = scrob("sync", "all")
    assert text.code == 4
    line = next(x for x in text.err.splitlines() if x.startswith("listenbrainz alice:"))
    assert "2,000 fetched" in line and "incomplete" in line
    assert text.err.splitlines()[-1].startswith("scrob: error: not every account synced")


def test_sync_all_goes_on_past_an_account_whose_api_root_is_a_typo(
        scrob, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lb.add_listens("Alice", [(T0 + i, "A", f"T{i}") for i in range(5)])
    monkeypatch.setenv("SCROB_LASTFM_USER", "bob")
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", "k" * 32)
    monkeypatch.setenv("SCROB_LASTFM_API_URL", "ws.audioscrobbler.com/2.0/")
    result = scrob("sync", "all", "--json")
    assert result.code == 2
    reports = {r["service"]: r for r in result.ndjson()}
    assert "not an http(s) URL" in reports["lastfm"]["error"]
    assert reports["listenbrainz"]["new"] == 5 and "error" not in reports["listenbrainz"]
    assert len(archived(db)) == 5


def test_sync_all_with_user_reads_that_name_on_each_configured_service(
        scrob, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lb.add_listens("Alice", [(T0 + i, "A", f"T{i}") for i in range(3)])
    lb.add_user("Carol")
    lb.add_listens("Carol", [(T0 + i * 600, "C", f"on LB {i}") for i in range(4)])
    with FakeLastfm() as fm:
        fm.add_scrobbles("alice", [(T0 + 7, "A", "mine", "Album")])
        fm.add_scrobbles("carol", [(T0 + 9 * DAY + i * 600, "C", f"on Last.fm {i}", "Album")
                                   for i in range(2)])
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        monkeypatch.setenv("SCROB_LASTFM_USER", "alice")
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
        result = scrob("sync", "all", "--user", "Carol", "--json")
        assert result.code == 0, result.err
        assert {(r["service"], r["user"], r["new"]) for r in result.ndjson()} == {
            ("lastfm", "carol", 2), ("listenbrainz", "carol", 4)}
        empty = scrob("sync", "all", "--user", "")
    assert empty.code == 2 and "no account name given" in empty.err
    assert archived(db) == [] and len(archived(db, "carol")) == 4  # alice was not read
    assert cursor_of(db, "lastfm", "carol") is not None and cursor_of(db) is None


def test_both_services_seeing_the_same_plays_are_counted_once(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    now = int(time.time())
    shared = [(now - 30 * DAY + i * 1800, f"Artist {i % 6}", f"Song {i % 40}", "Album")
              for i in range(400)]
    only_lastfm = [(now - 20 * DAY + 7, "Solo", "Last.fm only", "Album")]
    only_lb = [(now - 10 * DAY + 7, "Solo", "ListenBrainz only", "Album")]
    def mbid(track: str) -> str:
        return f"00000000-0000-4000-8000-{sum(map(ord, track)):012d}"

    lb.add_listens("Alice", [
        {"listened_at": ts + rng.randint(-120, 120),
         "track_metadata": {"artist_name": a, "track_name": t, "release_name": al,
                            "additional_info": {"recording_mbid": mbid(t)}}}
        for ts, a, t, al in shared + only_lb])
    with FakeLastfm() as fm:
        fm.add_scrobbles("alice", shared + only_lastfm)
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        monkeypatch.setenv("SCROB_LASTFM_USER", "alice")
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
        result = scrob_proc("sync", "all", "--json")
    assert result.code == 0, result.err
    assert {r["service"] for r in result.ndjson()} == {"lastfm", "listenbrainz"}
    stats = scrob_proc("stats", "--range", "all", "--json")
    assert stats.code == 0, stats.err
    assert stats.json()["total_listens"] == 402
    # whichever account saw a play first, what the other knew of it is there: the
    # recording MBIDs only ListenBrainz gives
    rows = scrob_proc("listens", "--json").ndjson()
    assert len(rows) == 402
    assert all(r["recording_mbid"] == mbid(r["track"]) for r in rows
               if r["track"] != "Last.fm only")
    # the shared plays are candidates for neither export: each account has them
    dry = scrob_proc("export", "listenbrainz", "--dry-run", "--json")
    assert [i["track"] for i in dry.ndjson()] == ["Last.fm only"]


def test_export_holds_back_plays_newer_than_the_targets_last_sync(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`sync listenbrainz; export lastfm` (a cron line in the wrong order) after new plays
    reached both services: what Last.fm got after its last sync is unknown to the
    archive, so those plays wait for a later run instead of landing there twice."""
    now = int(time.time())
    old = [(now - DAY + i * 600, "Band", f"Old {i}", "Album") for i in range(3)]
    lb.add_listens("Alice", old)
    with FakeLastfm() as fm:
        fm.add_scrobbles("alice", old)
        lastfm_env(monkeypatch, fm)
        assert scrob_proc("sync", "all").code == 0
        # two plays reach both services after that sync, stamped when they started (a
        # scrobble is sent as the play ends), ListenBrainz's 30 s later
        synced = int(time.time())
        new = [(synced - 100 + i, "Band", f"New {i}", "Album") for i in range(2)]
        fm.add_scrobbles("alice", new)
        lb.add_listens("Alice", [(ts + 30, a, t, al) for ts, a, t, al in new])
        assert scrob_proc("sync", "listenbrainz").code == 0
        result = scrob_proc("export", "lastfm", "--json")
        assert result.code == 0, result.err
        report = result.json()
        assert (report["candidates"], report["submitted"], report["held_back"]) == (2, 0, 2)
        text = scrob_proc("export", "lastfm")
        said = " ".join(text.err.split())
        assert text.code == 0 and "2 held back" in said
        assert "after a later `scrob sync lastfm --user alice`" in said
        assert len(fm.scrobbles("alice")) == 5  # nothing was sent
        # once Last.fm is synced again the plays are matched: nothing left to send
        assert scrob_proc("sync", "lastfm").code == 0
        again = scrob_proc("export", "lastfm", "--json").json()
        assert (again["candidates"], again["held_back"]) == (0, 0)
        assert len(fm.scrobbles("alice")) == 5
    stats = scrob_proc("stats", "--range", "all", "--json")
    assert stats.json()["total_listens"] == 5


def test_a_song_on_repeat_under_cron_is_each_play_once_on_both_services(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit's cron case: a 240 s song on repeat, ListenBrainz stamping each play
    150 s after Last.fm (more than half the song), its newest record not in yet at the
    first round. Paired as it came, the oldest play looked missing on ListenBrainz and
    was pushed there, and the late record then made a fourth listen. Now the run waits
    (held back), the late record re-pairs it, and neither service gets a copy."""
    now = int(time.time())
    starts = [now - 1200 + i * 240 for i in range(4)]
    song = ("Loop Artist", "Loop Song", "Loop Album")
    lb.add_listens("Alice", [(t + 150, *song) for t in starts[:3]])
    with FakeLastfm() as fm:
        fm.add_scrobbles("alice", [(t, *song) for t in starts])
        lastfm_env(monkeypatch, fm)

        def cron_round() -> list[dict[str, Any]]:
            assert scrob_proc("sync", "all").code == 0
            return [scrob_proc("export", target, "--json").json()
                    for target in ("listenbrainz", "lastfm")]

        first = cron_round()
        assert [r["submitted"] for r in first] == [0, 0]
        assert first[0]["held_back"] == 1  # the oldest play: the run is too recent
        lb.add_listens("Alice", [(starts[3] + 150, *song)])  # the late record
        second = cron_round()
        assert [(r["candidates"], r["submitted"]) for r in second] == [(0, 0), (0, 0)]
        assert len(fm.scrobbles("alice")) == 4
    assert len(lb.listens("Alice")) == 4
    rows = scrob_proc("listens", "--json").ndjson()
    assert sorted((r["listened_at"], r["sources"]) for r in rows) == [
        (t, ["lastfm", "listenbrainz"]) for t in starts]
    assert scrob_proc("stats", "--range", "all", "--json").json()["total_listens"] == 4


def test_a_friends_profile_read_with_user_is_never_pushed_as_yours(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = int(time.time())
    lb.add_listens("Alice", [(now - 9 * DAY, "Solo", "on ListenBrainz", "Album")])
    with FakeLastfm() as fm:
        fm.add_scrobbles("alice", [(now - 8 * DAY, "Solo", "my Last.fm play", "Album")])
        fm.add_scrobbles("carol", [(now - 7 * DAY, "Friend", "carol's play", "Album")])
        monkeypatch.setenv("SCROB_LASTFM_API_URL", fm.url)
        monkeypatch.setenv("SCROB_LASTFM_USER", "alice")
        monkeypatch.setenv("SCROB_LASTFM_API_KEY", fm.api_key)
        assert scrob_proc("sync", "all").code == 0
        assert scrob_proc("sync", "lastfm", "--user", "carol").code == 0
    dry = scrob_proc("--verbose", "export", "listenbrainz", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert [i["track"] for i in dry.ndjson()] == ["my Last.fm play"]
    assert "not yours): lastfm:carol" in dry.err
    bad = scrob_proc("export", "listenbrainz", "--since", "2026-11-02", "--until", "2026-11-01")
    assert bad.code == 2 and "--until must be after --since" in bad.err


# --------------------------------------------------------------------------- export


def test_export_then_export_again_sends_nothing(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path) -> None:
    data = write_ndjson(tmp_path / "history.ndjson", plays(2300, int(time.time()) - 60 * DAY))
    assert scrob_proc("import", str(data)).code == 0
    # before any sync, scrob cannot tell what the account has: it refuses to guess
    refused = scrob_proc("export", "listenbrainz")
    assert refused.code == 2 and "scrob sync listenbrainz --user alice" in refused.err
    assert lb.requests_to("/submit-listens") == []
    assert scrob_proc("sync", "listenbrainz").code == 0
    first = scrob_proc("export", "listenbrainz", "--json")
    assert first.code == 0, first.err
    report = first.json()
    assert set(report) == EXPORT_KEYS
    assert (report["target"], report["candidates"], report["submitted"],
            report["rejected"]) == ("listenbrainz:alice", 2300, 2300, 0)
    # two batches are on the wire at once, so they may arrive in either order
    assert sorted(len(b) for b in lb.submitted_batches) == [300, 1000, 1000]
    assert len(lb.listens("Alice")) == 2300
    sent = len(lb.requests_to("/submit-listens"))
    second = scrob_proc("export", "listenbrainz", "--json")
    assert second.code == 0, second.err
    again = second.json()
    assert (again["candidates"], again["submitted"], again["already_there"],
            again["requests"]) == (0, 0, 2300, 0)
    assert len(lb.requests_to("/submit-listens")) == sent  # the fake received nothing


def test_ctrl_c_mid_export_says_what_was_sent_and_a_rerun_sends_the_rest(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        tmp_path: Path) -> None:
    data = write_ndjson(tmp_path / "history.ndjson", plays(3500, int(time.time()) - 60 * DAY))
    assert scrob_proc("import", str(data)).code == 0
    assert scrob_proc("sync", "listenbrainz").code == 0
    lb.latency = 0.3
    # once a batch is in: its reply on the way, the next batches on the wire
    code, out, err = ctrl_c(["export", "listenbrainz", "--json"],
                            lambda: bool(lb.requests_to("/submit-listens")), settle=0.1)
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err
    report = json.loads(out)  # the summary, all the same
    with sqlite3.connect(db) as conn:
        pushed = conn.execute("SELECT count(*) FROM pushes").fetchone()[0]
    assert (report["error"], report["submitted"]) == ("interrupted", pushed)
    assert 0 < pushed < 3500
    # what it had read and not sent is left for a later run: the counts add up
    assert report["candidates"] == report["submitted"] + report["remaining"] > pushed
    lb.latency = 0
    rest = scrob_proc("export", "listenbrainz", "--json")
    assert rest.code == 0 and rest.json()["submitted"] == 3500 - pushed
    assert len(lb.listens("Alice")) == 3500  # nothing lost, nothing twice


def test_an_export_that_fails_part_way_still_prints_its_summary(
        scrob, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As a failed sync does: with --json, stdout still holds the summary, with what was
    submitted before the failure (recorded: the next run sends only the rest) and the
    error; the exit code is the failure's."""
    from scrobbler_cli.engines import listenbrainz as engine

    monkeypatch.setattr(engine, "RETRY_BACKOFF", 0.001)
    data = write_ndjson(tmp_path / "history.ndjson", plays(3500, int(time.time()) - 60 * DAY))
    assert scrob("import", str(data)).code == 0
    assert scrob("sync", "listenbrainz").code == 0
    answer = lb.handle
    submits = fail_after(lb, monkeypatch, "/submit-listens", 2)
    failed = scrob("export", "listenbrainz", "--json")
    assert failed.code == 4 and failed.err.count("\n") == 1 and "503" in failed.err
    report = failed.json()
    assert set(report) == EXPORT_KEYS | {"error", "remaining"} and "503" in report["error"]
    assert (report["candidates"], report["submitted"], report["remaining"]) == (3500, 2000,
                                                                                1500)
    assert len(lb.listens("Alice")) == 2000
    # one more batch gets through (of the two on the wire at once, whichever arrives
    # first: it is recorded even when the other fails); without --json, in words
    submits[0] = 1
    text = scrob("export", "listenbrainz")
    assert text.code == 4 and text.out == ""
    done = re.search(r"listenbrainz:alice: 1,500 candidates, submitted (1,000|500),", text.err)
    assert done, text.err
    monkeypatch.setattr(lb, "handle", answer)
    rest = scrob("export", "listenbrainz", "--json")
    assert rest.code == 0 and "error" not in rest.json()
    assert rest.json()["submitted"] == 1500 - int(done[1].replace(",", ""))
    assert len(lb.listens("Alice")) == 3500


def test_a_batch_accepted_beside_a_failing_one_is_recorded(
        scrob, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path, db: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches are on the wire at once. When the older one fails for good, the
    newer one the server accepted is still recorded as pushed: the next run sends only
    the failed one (before, it sent both, and the server dropped the repeat)."""
    from scrobbler_cli.engines import listenbrainz as engine

    monkeypatch.setattr(engine, "RETRY_BACKOFF", 0.001)
    start = int(time.time()) - 60 * DAY
    data = write_ndjson(tmp_path / "history.ndjson", plays(1500, start))
    assert scrob("import", str(data)).code == 0
    assert scrob("sync", "listenbrainz").code == 0
    with sqlite3.connect(db) as conn:
        oldest = conn.execute("SELECT min(listened_at) FROM listens").fetchone()[0]
    answer = lb.handle

    def first_batch_fails(entry: Any) -> tuple[int, dict[str, str], bytes]:
        if entry.path.endswith("/submit-listens") and \
                json.loads(entry.body)["payload"][0]["listened_at"] == oldest:
            return 503, {}, b'{"code": 503, "error": "down"}'
        return answer(entry)

    monkeypatch.setattr(lb, "handle", first_batch_fails)
    failed = scrob("export", "listenbrainz", "--json")
    assert failed.code == 4 and failed.json()["submitted"] == 500
    with sqlite3.connect(db) as conn:
        pushed = conn.execute("SELECT count(*) FROM pushes").fetchone()[0]
    assert pushed == 500 == len(lb.listens("Alice"))
    monkeypatch.setattr(lb, "handle", answer)
    sent = len(lb.requests_to("/submit-listens"))
    rest = scrob("export", "listenbrainz", "--json")
    assert rest.code == 0 and rest.json()["submitted"] == 1000
    assert len(lb.requests_to("/submit-listens")) == sent + 1  # the failed batch only


def test_a_sync_from_a_date_only_says_how_to_sync_in_full_and_export_waits_for_it(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str]) -> None:
    now = int(time.time())
    lb.add_listens("Alice", [{"listened_at": now - d * DAY, "track_metadata": {
        "artist_name": "Björk", "track_name": f"Track {d}"}} for d in (40, 20, 10)])
    since = time.strftime("%Y-%m-%d", time.gmtime(now - 30 * DAY))
    synced = scrob_proc("sync", "listenbrainz", "--since", since)
    assert synced.code == 0, synced.err
    assert "2 fetched, 2 new" in synced.err
    assert "not yet synced in full (`scrob sync listenbrainz` without --since does it)" \
        in synced.err and "up to -" not in synced.err
    refused = scrob_proc("export", "listenbrainz")
    assert refused.code == 2
    assert "listenbrainz:alice has never been synced in full" in refused.err
    assert "without --since" in refused.err
    assert scrob_proc("sync", "listenbrainz").code == 0
    assert scrob_proc("export", "listenbrainz").code == 0  # nothing it lacks, nothing sent
    assert lb.requests_to("/submit-listens") == []


def test_export_reports_invalid_listens_and_sends_the_rest(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path) -> None:
    now = int(time.time())
    good = plays(40, now - 10 * DAY)
    bad = [
        {"listened_at": 1_000_000_000, "artist": "Old", "track": "Before 2002"},
        {"listened_at": now + 3 * 3600, "artist": "Future", "track": "Hours ahead"},
        {"listened_at": now - DAY, "artist": "Nul\u0000Byte", "track": "Bad"},
        {"listened_at": now - DAY + 5, "artist": "Long", "track": "Bad", "duration": 40 * DAY},
        {"listened_at": now - DAY + 9, "artist": "Mbid", "track": "Bad",
         "recording_mbid": "not-an-mbid"},
    ]
    data = write_ndjson(tmp_path / "mixed.ndjson", good + bad)
    assert scrob_proc("import", str(data)).code == 0
    assert scrob_proc("sync", "listenbrainz").code == 0
    result = scrob_proc("export", "listenbrainz", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert (report["candidates"], report["submitted"], report["rejected"]) == (45, 40, 5)
    assert sum(report["reasons"].values()) == 5
    text = " | ".join(report["reasons"])
    for words in ("before 2002", "in the future", "NUL", "duration", "recording_mbid"):
        assert words in text
    assert len(lb.listens("Alice")) == 40
    assert all(r.status == 200 for r in lb.requests_to("/submit-listens"))
    human = scrob_proc("export", "listenbrainz")
    assert human.code == 0 and "5 rejected" in human.err and human.out == ""


def test_dry_run_json_is_ndjson_of_what_would_be_sent(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path) -> None:
    data = write_ndjson(tmp_path / "h.ndjson", plays(3, int(time.time()) - DAY * 5))
    assert scrob_proc("import", str(data)).code == 0
    result = scrob_proc("export", "listenbrainz", "--dry-run", "--json")
    assert result.code == 0, result.err
    items = result.ndjson()
    assert [i["track"] for i in items] == ["Track 0", "Track 1", "Track 2"]
    assert all(set(i) == {"listened_at", "artist", "track", "album", "payload"} for i in items)
    meta = items[0]["payload"]["track_metadata"]
    assert meta["artist_name"] == "Artist 0" and meta["additional_info"]["duration"] == 180
    table = scrob_proc("export", "listenbrainz", "--dry-run")
    assert table.code == 0, table.err
    for item in items:  # dates, as ``scrob listens`` shows them (the tests' zone is UTC)
        when = datetime.fromtimestamp(item["listened_at"], timezone.utc)
        assert when.strftime("%Y-%m-%d %H:%M") in table.out
        assert str(item["listened_at"]) not in table.out
    assert not lb.request_log


# --------------------------------------------------------------------------- auth


def keyring_file(isolated_env: Path) -> dict[str, str]:
    path = isolated_env / "keyring.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_auth_listenbrainz_reads_the_token_from_stdin(
        scrob_proc: Any, lb: FakeListenBrainz, isolated_env: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", lb.url)
    result = scrob_proc("-v", "auth", "listenbrainz", input=f"  {TOKEN}\n")
    assert result.code == 0, result.err
    assert "logged in to ListenBrainz as Alice" in result.err
    assert TOKEN not in result.out + result.err
    assert keyring_file(isolated_env) == {"scrob/listenbrainz_token": TOKEN}
    assert 'user = "Alice"' in (isolated_env / "home" / "config.toml").read_text()
    (check,) = lb.requests_to("/validate-token")
    assert check.headers["authorization"] == f"Token {TOKEN}"
    status = scrob_proc("auth", "status", "--json").json()
    (row,) = [r for r in status["accounts"] if r["service"] == "listenbrainz"]
    assert (row["user"], row["secrets"], row["configured"]) == (
        "Alice", {"token": "keyring"}, True)
    # and the stored account works with no environment at all
    lb.add_listens("Alice", [(T0, "A", "T")])
    synced = scrob_proc("sync", "listenbrainz", "--json")
    assert synced.code == 0, synced.err
    assert synced.ndjson()[0]["new"] == 1


def test_auth_listenbrainz_json(scrob, lb: FakeListenBrainz, monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    import io

    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", lb.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    result = scrob("auth", "listenbrainz", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"service": "listenbrainz", "user": "Alice", "api_url": lb.url,
                             "token_stored": "keyring"}


@pytest.mark.parametrize("given", ["wrong-token-1234", ""])
def test_auth_listenbrainz_with_a_bad_or_no_token_exits_3(
        scrob, lb: FakeListenBrainz, isolated_env: Path, given: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", lb.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(given + "\n"))
    result = scrob("auth", "listenbrainz")
    assert result.code == 3
    assert result.err.count("\n") == 1
    assert ("not valid" if given else "no ListenBrainz token") in result.err
    assert not given or given not in result.err + result.out
    assert keyring_file(isolated_env) == {}
    assert not (isolated_env / "home" / "config.toml").exists()


@pytest.mark.parametrize("backend", ["fail", "null"])
def test_auth_listenbrainz_without_a_keyring_names_the_variables(
        scrob_proc: Any, lb: FakeListenBrainz, isolated_env: Path, backend: str) -> None:
    result = scrob_proc("auth", "listenbrainz", input=TOKEN + "\n", env={
        "SCROB_LISTENBRAINZ_API_URL": lb.url,
        "PYTHON_KEYRING_BACKEND": f"keyring.backends.{backend}.Keyring"})
    assert result.code == 3
    assert result.err.count("\n") == 1
    for text in ("SCROB_LISTENBRAINZ_USER", "SCROB_LISTENBRAINZ_TOKEN", "keyring"):
        assert text in result.err
    assert TOKEN not in result.err + result.out
    assert not (isolated_env / "home" / "config.toml").exists()
    # it stopped before the token was read or sent to the server
    assert lb.requests_to("/validate-token") == []


# --------------------------------------------------------------------------- secrets


def test_the_token_never_shows_with_verbose(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path) -> None:
    lb.add_listens("Alice", [(T0 + i, "A", f"T{i}") for i in range(5)])
    data = write_ndjson(tmp_path / "h.ndjson", plays(3, int(time.time()) - DAY * 3))
    runs = [
        scrob_proc("-v", "sync", "listenbrainz", "--json"),
        scrob_proc("-v", "import", str(data)),
        scrob_proc("-v", "export", "listenbrainz", "--json"),
        scrob_proc("-v", "auth", "status", "--json"),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 0]
    assert all(TOKEN not in r.out + r.err for r in runs)
    assert "scrob: debug: GET" in runs[0].err  # verbose really logged the requests
    assert any(r.headers.get("authorization") == f"Token {TOKEN}" for r in lb.request_log)
    # a rejected token, with the traceback --verbose shows
    lb_second = write_ndjson(tmp_path / "more.ndjson", plays(2, int(time.time()) - DAY))
    assert scrob_proc("import", str(lb_second)).code == 0
    refused = scrob_proc("-v", "export", "listenbrainz", "--json",
                         env={"SCROB_LISTENBRAINZ_TOKEN": "revoked-token-5678"})
    assert refused.code == 3
    assert "revoked-token-5678" not in refused.out + refused.err
    assert "not valid" in refused.err


def test_a_token_with_a_line_end_still_works_and_never_shows(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], tmp_path: Path) -> None:
    """A secrets file with Windows line ends (``set -a; . file`` in cron) leaves a
    carriage return on the token: it is not part of the token."""
    data = write_ndjson(tmp_path / "h.ndjson", plays(3, int(time.time()) - DAY * 3))
    assert scrob_proc("import", str(data)).code == 0
    crlf = {"SCROB_LISTENBRAINZ_TOKEN": f"{TOKEN}\r\n"}
    assert scrob_proc("-v", "sync", "listenbrainz", env=crlf).code == 0
    sent = scrob_proc("-v", "export", "listenbrainz", "--json", env=crlf)
    assert sent.code == 0, sent.err
    assert sent.json()["submitted"] == 3
    assert TOKEN not in sent.out + sent.err
    assert {r.headers.get("authorization") for r in lb.request_log} == {f"Token {TOKEN}"}


@pytest.mark.parametrize("token", [f"{TOKEN[:8]}\n{TOKEN[8:]}", "tök-ÄLICE-SECRET-1234",
                                   "token-with-a-bell\x07-5678"])
def test_a_token_no_server_could_take_is_a_credentials_error_before_any_request(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], token: str) -> None:
    for command in (["sync", "listenbrainz"], ["export", "listenbrainz"]):
        result = scrob_proc("-v", *command, env={"SCROB_LISTENBRAINZ_TOKEN": token})
        assert result.code == 3, result.err
        assert "SCROB_LISTENBRAINZ_TOKEN holds a character no key or token has" in result.err
        for part in token.split():  # not even in --verbose's traceback
            assert part not in result.out + result.err
    assert lb.request_log == []
    if "\n" not in token:  # (piped, a token is its first line)
        typed = scrob_proc("auth", "listenbrainz", input=token + "\n",
                           env={"SCROB_LISTENBRAINZ_TOKEN": ""})
        assert typed.code == 3 and "what was given holds a character" in typed.err
        assert lb.request_log == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_mid_sync_exits_130_with_one_line_and_loses_nothing(
        lb: FakeListenBrainz, env: dict[str, str], db: Path, sig: int) -> None:
    """Ctrl-C, or SIGTERM from a timeout (cron's `timeout`, systemd stopping the unit)
    or SIGHUP (its terminal closed), which used to end the sync silently."""
    if sig == signal.SIGHUP and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        pytest.skip("SIGHUP is ignored here (nohup), and scrob keeps it so")
    lb.add_listens("Alice", [(T0 + i * 60, f"Artist {i % 7}", f"Track {i}")
                             for i in range(12_000)])
    lb.latency = 0.02
    expected = server_listens(lb)
    command = [sys.executable, "-m", "scrobbler_cli", "sync", "listenbrainz", "--json"]
    code, out, err = ctrl_c(command[3:], lambda: len(lb.requests_to("/listens")) >= 10,
                            sig=sig)
    assert code == 130
    said = ("interrupted" if sig == signal.SIGINT
            else f"terminated ({signal.Signals(sig).name})")
    assert err.count("\n") == 1 and said in err and "Traceback" not in err
    assert "what was done before it is kept" in err
    (report,) = (json.loads(line) for line in out.splitlines())  # its summary, all the same
    cursor = cursor_of(db)
    assert (report["complete"], report["error"], report["cursor"]) == (
        False, "interrupted", cursor)
    assert report["fetched"] >= 1000
    got = archived(db)
    assert len(got) == len(set(got))  # no half-written page, no duplicate
    if cursor is not None:
        assert [x for x in expected if x[0] <= cursor] == [x for x in got if x[0] <= cursor]
    finish_and_compare(command, db, expected)


def test_secrets_never_reach_the_archive_or_the_settings(
        scrob_proc: Any, lb: FakeListenBrainz, env: dict[str, str], db: Path,
        isolated_env: Path) -> None:
    lb.add_listens("Alice", [(T0 + i * 60, "A", f"T{i}") for i in range(50)])
    assert scrob_proc("auth", "listenbrainz", input=TOKEN + "\n").code == 0
    for args in (("-v", "sync", "listenbrainz"), ("-v", "export", "listenbrainz", "--json")):
        result = scrob_proc(*args)
        assert TOKEN not in result.out + result.err
    scanned = 0
    for path in isolated_env.rglob("*"):
        if path.is_file() and path.name != "keyring.json":  # the test's stand-in keyring
            assert TOKEN.encode() not in path.read_bytes(), path
            scanned += 1
    assert scanned >= 2 and db.exists()
