"""The real `scrob` command against the fake Last.fm on 127.0.0.1.

In-process (the ``scrob`` fixture) where speed matters, a real subprocess for ``kill -9``
and for hidden input read from stdin. Credentials come from SCROB_* variables or the
test keyring of conftest; nothing reaches the internet or the real keyring.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from scrobbler_cli.archive import Archive
from scrobbler_cli.engines import lastfm as engine
from scrobbler_cli.models import Account, SourceRecord
from scrobbler_cli.sync import SUBMIT_DELAY
from tests.conftest import ROOT
from tests.fakes.lastfm_server import FakeLastfm

DAY = 86400
NOW = int(time.time())
LB = Account("listenbrainz", "alice")
SUMMARY_KEYS = {"service", "user", "fetched", "new", "duplicates", "requests", "cursor",
                "complete"}
EXPORT_KEYS = {"target", "candidates", "submitted", "already_there", "rejected", "requests",
               "too_old", "held_back"}  # cli.md: Last.fm reports too_old, even when it is 0


@pytest.fixture
def fake() -> Iterator[FakeLastfm]:
    with FakeLastfm() as server:
        yield server


@pytest.fixture
def lastfm_env(fake: FakeLastfm, monkeypatch: pytest.MonkeyPatch) -> FakeLastfm:
    """Point scrob at the fake as alice (public access: API key only), no real waiting."""
    monkeypatch.setenv("SCROB_LASTFM_API_URL", fake.url)
    monkeypatch.setenv("SCROB_LASTFM_USER", "alice")
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", fake.api_key)
    monkeypatch.setenv("SCROB_LASTFM_RATE", "1000")
    monkeypatch.setattr(engine, "SLEEP", lambda seconds: None)
    fake.add_user("alice")
    return fake


@pytest.fixture
def with_session(lastfm_env: FakeLastfm, monkeypatch: pytest.MonkeyPatch) -> FakeLastfm:
    monkeypatch.setenv("SCROB_LASTFM_API_SECRET", lastfm_env.api_secret)
    monkeypatch.setenv("SCROB_LASTFM_SESSION_KEY", lastfm_env.session_key("alice"))
    return lastfm_env


def history(n: int, *, end: int = NOW - 3600, step: int = 180, seed: int = 0
            ) -> list[tuple[int, str, str, str]]:
    rng = random.Random(seed)
    return [(end - (n - i) * step, f"Artist {rng.randrange(50)}", f"Track {i}",
             f"Album {rng.randrange(9)}") for i in range(n)]


def server_history(fake: FakeLastfm, *, before: int | None = None) -> list[tuple[int, str, str]]:
    return sorted((ts, artist, track) for ts, artist, track, _ in fake.scrobbles("alice")
                  if before is None or ts < before)


def archive_listens(scrob: Any) -> list[tuple[int, str, str]]:
    result = scrob("listens", "--json", "--source", "lastfm")
    assert result.code == 0, result.err
    return sorted((r["listened_at"], r["artist"], r["track"]) for r in result.ndjson())


def db_path() -> Path:
    return Path(os.environ["SCROB_DB"])


def sync_json(scrob: Any, *args: str) -> dict[str, Any]:
    result = scrob("sync", "lastfm", "--json", *args)
    assert result.code == 0, result.err
    [summary] = result.ndjson()
    assert set(summary) == SUMMARY_KEYS
    return summary  # type: ignore[no-any-return]


# --- sync -------------------------------------------------------------------------------


def test_fresh_sync_equals_the_server(lastfm_env: FakeLastfm, scrob: Any) -> None:
    lastfm_env.add_scrobbles("alice", history(1234))
    lastfm_env.now_playing("alice", "Playing", "Right Now")
    summary = sync_json(scrob)
    assert summary["service"] == "lastfm" and summary["user"] == "alice"
    assert (summary["fetched"], summary["new"], summary["duplicates"]) == (1234, 1234, 0)
    # complete up to the start less the plays still reaching Last.fm then
    assert summary["complete"] is True
    assert abs(summary["cursor"] + SUBMIT_DELAY - time.time()) < 60
    assert summary["requests"] == 7
    assert archive_listens(scrob) == server_history(lastfm_env)
    listens = scrob("listens", "--json", "--limit", "1").ndjson()
    assert listens[0]["sources"] == ["lastfm"]


def test_summary_line_without_json(lastfm_env: FakeLastfm, scrob: Any) -> None:
    lastfm_env.add_scrobbles("alice", history(5))
    result = scrob("sync", "lastfm")
    assert result.code == 0 and result.out == ""
    said = " ".join(result.err.split())
    assert "lastfm alice: 5 fetched, 5 new" in said and "complete up to" in said
    assert scrob("--quiet", "sync", "lastfm").err == ""


def test_delta_sync_only_adds_what_is_new(lastfm_env: FakeLastfm, scrob: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lastfm_env.add_scrobbles("alice", history(600, step=3600))  # 25 days
    first = sync_json(scrob)
    second = sync_json(scrob)
    assert second["new"] == 0 and second["fetched"] == second["duplicates"]
    assert second["requests"] < first["requests"]  # only the lookback window
    lastfm_env.add_scrobbles("alice", [(int(time.time()) + 30, "New", "Play", None)])
    monkeypatch.setattr(engine, "NOW", lambda: time.time() + 60)  # a minute later
    third = sync_json(scrob)
    assert third["new"] == 1 and third["cursor"] > second["cursor"]
    assert archive_listens(scrob) == server_history(lastfm_env)


def test_a_late_scrobble_is_caught_by_the_lookback(lastfm_env: FakeLastfm,
                                                   scrob: Any) -> None:
    lastfm_env.add_scrobbles("alice", history(300))
    sync_json(scrob)
    # an offline player submits a play from five days ago, long behind the cursor
    lastfm_env.add_scrobbles("alice", [(NOW - 5 * DAY, "Offline", "Late Play", None)])
    assert sync_json(scrob)["new"] == 1
    assert archive_listens(scrob) == server_history(lastfm_env)
    # a lookback shorter than its age would not have seen it
    lastfm_env.add_scrobbles("alice", [(NOW - 5 * DAY + 7, "Offline", "Later Play", None)])
    assert sync_json(scrob, "--lookback", "2d")["new"] == 0
    assert sync_json(scrob, "--lookback", "6d")["new"] == 1


def test_since_and_full(lastfm_env: FakeLastfm, scrob: Any) -> None:
    lastfm_env.add_scrobbles("alice", history(400, step=3600))
    partial = sync_json(scrob, "--since", str(NOW - 2 * DAY))
    assert partial["cursor"] is None and 0 < partial["new"] < 400
    assert sync_json(scrob)["complete"] is True
    again = sync_json(scrob, "--full")
    assert (again["new"], again["duplicates"]) == (0, 400)


def test_page_drift_during_the_sync_loses_nothing(lastfm_env: FakeLastfm, scrob: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lastfm_env.add_scrobbles("alice", history(2000, step=120))
    before = server_history(lastfm_env)
    # scrobbles arriving while the sync runs: back-dated ones inside the window (they
    # shift every older item across page borders) and new ones after its start
    lastfm_env.on_page("alice", 6, [(NOW - 3600 - 30 + i, "Drift", f"D{i}", None)
                                    for i in range(5)])
    lastfm_env.on_page("alice", 3, [(NOW - 7200 - i, "Drift", f"E{i}", None)
                                    for i in range(3)])
    after = int(time.time()) + 30
    lastfm_env.on_page("alice", 2, [(after, "After", "Start", None)])
    first = sync_json(scrob)
    assert set(before) <= set(archive_listens(scrob))
    assert first["requests"] > 10  # it noticed and read again
    monkeypatch.setattr(engine, "NOW", lambda: time.time() + 60)  # a minute later
    sync_json(scrob)
    assert archive_listens(scrob) == server_history(lastfm_env)


def test_twenty_percent_faults_still_end_equal(lastfm_env: FakeLastfm, scrob: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "PAGE_SIZE", 50)
    lastfm_env.add_scrobbles("alice", history(3000, step=60))
    lastfm_env.fault_rate = 0.2
    summary = sync_json(scrob)
    assert summary["complete"] and summary["fetched"] >= 3000
    assert archive_listens(scrob) == server_history(lastfm_env)
    assert any(r.status != 200 or r.error for r in lastfm_env.request_log)


def test_kill_9_at_random_moments_then_resume(lastfm_env: FakeLastfm,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # 41 days: a resume re-reads the 14 days before its cursor, not the whole history
    lastfm_env.add_scrobbles("alice", history(6000, step=600))
    original = set(server_history(lastfm_env))
    lastfm_env.latency = 0.02
    monkeypatch.setenv("SCROB_LASTFM_RATE", "20")  # 31 requests: about 1.5 s a sync
    command = [sys.executable, "-m", "scrobbler_cli", "--quiet", "sync", "lastfm", "--json"]
    rng = random.Random(1234)
    cursors: list[int | None] = []
    for round_ in range(4):
        before = len(lastfm_env.requests_for("user.getRecentTracks"))
        proc = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill after a random number of this run's page requests: mid-walk whatever the
        # machine's speed (a wall-clock sleep could land in start-up, or after the end)
        wanted = before + rng.randint(4, 12)
        deadline = time.monotonic() + 60
        while (len(lastfm_env.requests_for("user.getRecentTracks")) < wanted
               and proc.poll() is None and time.monotonic() < deadline):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if db_path().exists():
            with Archive(db_path(), readonly=True) as archive:
                cursor = archive.get_cursor(Account("lastfm", "alice"))
                held = [(x.listened_at, x.artist, x.track) for x in archive.listens()]
            assert len(held) == len(set(held)), "a duplicate after kill -9"
            assert set(held) <= set(server_history(lastfm_env))
            if cursor is not None:  # complete below it (late plays are the next run's)
                assert {x for x in original if x[0] < cursor} <= set(held)
            cursors.append(cursor)
        # meanwhile, plays keep arriving, some of them late
        lastfm_env.add_scrobbles("alice", [(NOW - DAY - round_, "Late", f"R{round_}", None)])
    known = [c for c in cursors if c is not None]
    assert len(known) >= 2  # the kills landed after commits, so the checks above ran
    assert known == sorted(known)  # the cursor never went back
    final = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True,
                           text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["complete"] is True
    with Archive(db_path(), readonly=True) as archive:
        held = sorted((x.listened_at, x.artist, x.track) for x in archive.listens())
    assert held == server_history(lastfm_env)  # equal, so no gap and no duplicate


def test_private_profile_with_and_without_a_session(lastfm_env: FakeLastfm, scrob: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lastfm_env.add_scrobbles("alice", history(20))
    lastfm_env.set_private("alice")
    result = scrob("sync", "lastfm")
    assert result.code == 3
    assert result.err.count("\n") == 1 and "scrob auth lastfm" in result.err
    assert "Traceback" not in result.err
    monkeypatch.setenv("SCROB_LASTFM_API_SECRET", lastfm_env.api_secret)
    monkeypatch.setenv("SCROB_LASTFM_SESSION_KEY", lastfm_env.session_key("alice"))
    assert sync_json(scrob)["new"] == 20
    assert archive_listens(scrob) == server_history(lastfm_env)


def test_any_public_profile_with_user(lastfm_env: FakeLastfm, scrob: Any) -> None:
    lastfm_env.add_scrobbles("Bob", [(NOW - 600, "Bob's", "Song", None)])
    summary = sync_json(scrob, "--user", "Bob")
    assert (summary["user"], summary["new"]) == ("bob", 1)
    accounts = scrob("listens", "--json").ndjson()[0]["accounts"]
    assert accounts == ["lastfm:bob"]


def test_unknown_user_exits_2_and_bad_key_exits_3(lastfm_env: FakeLastfm, scrob: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    result = scrob("sync", "lastfm", "--user", "nobody-here")
    assert result.code == 2 and "user not found" in result.err.lower()
    assert "--user" in result.err  # the hint says what to check
    assert result.err.count("\n") == 1
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", "0" * 32)
    result = scrob("sync", "lastfm", "--json")
    assert result.code == 3 and "API key" in result.err
    (report,) = (json.loads(line) for line in result.out.splitlines())  # the summary
    assert report["complete"] is False and "API key" in report["error"]
    assert "0" * 32 not in result.out + result.err
    monkeypatch.delenv("SCROB_LASTFM_API_KEY")
    result = scrob("sync", "lastfm")
    assert result.code == 3 and "SCROB_LASTFM_API_KEY" in result.err


def test_a_service_failing_after_retries_exits_4(lastfm_env: FakeLastfm, scrob: Any) -> None:
    lastfm_env.add_scrobbles("alice", history(10))
    lastfm_env.fail_next(50, "503")
    result = scrob("sync", "lastfm")
    assert result.code == 4 and "503" in result.err and result.err.count("\n") == 1


def test_pages_read_before_a_failure_are_saved_and_reported(
        lastfm_env: FakeLastfm, scrob: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 2 of 5 keeps failing: the older pages read before it are saved with their
    cursor (a re-run need not read them again), and the summary of `sync all` counts
    them."""
    lastfm_env.add_scrobbles("alice", history(1000))  # five pages, read oldest first
    served = lastfm_env.handle

    def handle(http_method: str, path: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
        if params.get("method") == "user.getRecentTracks" and params.get("page") == "2":
            return 503, "application/json", '{"error": 16, "message": "down"}', False
        return served(http_method, path, params)

    monkeypatch.setattr(lastfm_env, "handle", handle)
    from scrobbler_cli.engines import listenbrainz

    monkeypatch.setattr(listenbrainz, "RETRY_BACKOFF", 0.001)  # its retries: no waiting
    monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "nobody")  # a second account: `all`
    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", "http://127.0.0.1:9")
    result = scrob("sync", "all", "--json")
    assert result.code == 4
    report = {r["service"]: r for r in result.ndjson()}["lastfm"]
    saved = archive_listens(scrob)
    assert saved == server_history(lastfm_env)[:600]
    assert report["fetched"] == report["new"] == 600
    assert report["cursor"] == saved[-1][0] and report["complete"] is False


def test_a_page_that_keeps_coming_back_empty_exits_4(lastfm_env: FakeLastfm, scrob: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 2 with no scrobbles (the total unchanged) is never taken as it is, and when
    it stays so the sync ends with exit 4 and one line, not a crash (exit 1)."""
    lastfm_env.add_scrobbles("alice", history(450))
    served = lastfm_env.handle

    def handle(http_method: str, path: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
        status, ctype, body, drop = served(http_method, path, params)
        if params.get("method") == "user.getRecentTracks" and params.get("page") == "2":
            reply = json.loads(body)
            reply["recenttracks"]["track"] = []
            body = json.dumps(reply)
        return status, ctype, body, drop

    monkeypatch.setattr(lastfm_env, "handle", handle)
    result = scrob("sync", "lastfm", "--json")
    assert result.code == 4, result.err
    assert "empty page" in result.err and result.err.count("\n") == 1
    assert "Traceback" not in result.err
    (report,) = (json.loads(line) for line in result.out.splitlines())  # the summary
    assert report["complete"] is False and "empty page" in report["error"]
    monkeypatch.setattr(lastfm_env, "handle", served)  # Last.fm recovers: nothing missing
    assert sync_json(scrob)["complete"] is True
    assert archive_listens(scrob) == server_history(lastfm_env)


def test_secrets_never_appear_even_with_verbose(with_session: FakeLastfm, scrob: Any) -> None:
    fake = with_session
    fake.add_scrobbles("alice", history(450))
    Archive(db_path()).close()
    with Archive(db_path()) as archive:
        archive.save_records(LB, [SourceRecord(NOW - 900, "LB", "Only")])
    fake.fail_next(1, "29")  # a retry is logged too
    results = [scrob("--verbose", "sync", "lastfm", "--json"),
               scrob("--verbose", "export", "lastfm", "--json"),
               scrob("--verbose", "auth", "status", "--json")]
    secrets = (fake.api_key, fake.api_secret, fake.session_key("alice"))
    for result in results:
        assert result.code == 0, result.err
        assert "debug:" in result.err or result is results[2]
        for secret in secrets:
            assert secret not in result.out and secret not in result.err
    assert "api_key=***" in results[0].err and "sk=***" in results[0].err


# --- export -----------------------------------------------------------------------------


def lb_listens(stamps: list[int], artist: str = "From LB") -> None:
    with Archive(db_path()) as archive:
        archive.save_records(LB, [SourceRecord(ts, artist, f"Song {i}", "LP")
                                  for i, ts in enumerate(stamps)])


def export_json(scrob: Any, *args: str) -> dict[str, Any]:
    result = scrob("export", "lastfm", "--json", *args)
    assert result.code == 0, result.err
    report = result.json()
    assert set(report) >= EXPORT_KEYS
    return report  # type: ignore[no-any-return]


def test_export_then_reexport_sends_nothing(with_session: FakeLastfm, scrob: Any) -> None:
    fake = with_session
    fake.add_scrobbles("alice", history(100))
    sync_json(scrob)
    lb_listens([NOW - 2 * DAY + 60 * i for i in range(75)])
    report = export_json(scrob)
    assert report == {"target": "lastfm:alice", "candidates": 75, "submitted": 75,
                      "already_there": 100, "rejected": 0, "requests": 3, "too_old": 0,
                      "held_back": 0}
    again = export_json(scrob)
    assert (again["candidates"], again["submitted"], again["requests"]) == (0, 0, 0)
    # once synced back, Last.fm's own records stand for the pushed plays
    sync_json(scrob)
    assert export_json(scrob)["candidates"] == 0
    assert len(scrob("listens", "--json").ndjson()) == 175


def test_export_counts_too_old_listens(with_session: FakeLastfm, scrob: Any) -> None:
    sync_json(scrob)  # export judges what the account has from the archive: sync first
    lb_listens([NOW - 400 * DAY, NOW - 15 * DAY, NOW - DAY])
    report = export_json(scrob)
    assert (report["candidates"], report["too_old"], report["submitted"]) == (3, 2, 1)
    result = scrob("export", "lastfm")
    assert "2 too old for the service" in " ".join(result.err.split())


def test_daily_cap_then_a_later_run_continues(with_session: FakeLastfm, scrob: Any) -> None:
    fake = with_session
    sync_json(scrob)
    lb_listens([NOW - DAY + 30 * i for i in range(130)])
    fake.daily_cap = 70
    report = export_json(scrob)
    assert (report["submitted"], report["remaining"]) == (70, 60)
    result = scrob("export", "lastfm")
    assert result.code == 0 and "60 left for a later run" in " ".join(result.err.split())
    fake.daily_cap = None
    assert export_json(scrob)["submitted"] == 60
    assert len(fake.scrobbles("alice")) == 130


def test_an_export_that_fails_prints_its_summary_with_the_error(
        with_session: FakeLastfm, scrob: Any) -> None:
    """With --json a failed export still prints its summary, with the error, as a failed
    sync does; what was scrobbled before the failure is recorded and not sent again."""
    sync_json(scrob)  # (retries do not wait in these tests: SLEEP is replaced)
    lb_listens([NOW - DAY + 30 * i for i in range(120)])
    fake, answer, scrobbles = with_session, with_session.handle, [0]

    def second_scrobble_on_fails(http_method: str, path: str, params: dict[str, str],
                                 *rest: Any, **kw: Any) -> Any:
        if params.get("method") == "track.scrobble":
            scrobbles[0] += 1
            if scrobbles[0] > 1:
                fake.fail_next(1, "503")
        return answer(http_method, path, params, *rest, **kw)

    fake.handle = second_scrobble_on_fails  # type: ignore[method-assign]
    failed = scrob("export", "lastfm", "--json")
    assert failed.code == 4 and failed.err.count("\n") == 1
    report = failed.json()
    assert report["target"] == "lastfm:alice" and report["submitted"] == 50
    assert report["candidates"] == 120 and "503" in report["error"]
    fake.handle = answer  # type: ignore[method-assign]
    assert export_json(scrob)["submitted"] == 70
    assert len(fake.scrobbles("alice")) == 70 + 50


def test_dry_run_prints_and_sends_nothing(lastfm_env: FakeLastfm, scrob: Any) -> None:
    lb_listens([NOW - 3600, NOW - 1800], artist="\x1b[31mRed\x1b[0m")
    result = scrob("export", "lastfm", "--dry-run", "--json")
    assert result.code == 0, result.err
    rows = result.ndjson()
    assert [set(r) for r in rows] == [{"listened_at", "artist", "track", "album"}] * 2
    assert rows[0]["artist"] == "\x1b[31mRed\x1b[0m"  # data, exactly as archived
    table = scrob("export", "lastfm", "--dry-run")
    assert "\x1b" not in table.out and "\\x1b[31mRed" in table.out  # shown literally
    for row in rows:  # the time each would be sent with, as a date (the tests' zone: UTC)
        when = datetime.fromtimestamp(row["listened_at"], timezone.utc)
        assert when.strftime("%Y-%m-%d %H:%M") in table.out
    assert lastfm_env.request_log == []


def test_a_dry_run_holds_back_by_the_configured_tolerance_as_a_real_run(
        with_session: FakeLastfm, scrob: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_MATCH_TOLERANCE", "1800")
    cursor = sync_json(scrob)["cursor"]
    lb_listens([cursor - 1800, cursor - 1799])  # (held: within the tolerance of it)
    dry = scrob("export", "lastfm", "--dry-run")
    assert "would submit 1, " in dry.err and "1 held back" in dry.err
    report = export_json(scrob)
    assert (report["submitted"], report["held_back"]) == (1, 1)


def test_export_without_a_session_key_exits_3(lastfm_env: FakeLastfm, scrob: Any) -> None:
    sync_json(scrob)
    lb_listens([NOW - 3600])
    result = scrob("export", "lastfm")
    assert result.code == 3 and "session key" in result.err


# --- scrob auth lastfm ------------------------------------------------------------------


def test_auth_lastfm_asks_runs_the_flow_and_stores(fake: FakeLastfm, scrob: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    import typer

    monkeypatch.setenv("SCROB_LASTFM_API_URL", fake.url)
    monkeypatch.setattr(engine, "SLEEP", lambda seconds: time.sleep(0.005))
    fake.add_user("Alice")
    asked: list[tuple[str, bool]] = []

    def prompt(text: str, hide_input: bool = False, **kwargs: object) -> str:
        asked.append((text, hide_input))
        assert kwargs.get("err") is True  # prompts on stderr: stdout is data only
        return fake.api_key if "key" in text else fake.api_secret

    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        token = url.rsplit("token=", 1)[1]
        threading.Timer(0.05, fake.approve, (token, "alice")).start()  # the user, later
        return True

    monkeypatch.setattr(typer, "prompt", prompt)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)  # a terminal: the prompt
    monkeypatch.setattr(webbrowser, "open", browser)
    result = scrob("auth", "lastfm")
    assert result.code == 0, result.err
    assert result.out == ""
    assert asked == [("Last.fm API key", True), ("Last.fm shared secret", True)]
    assert opened and opened[0] in result.err and "Authorized as Alice" in result.err
    assert fake.api_secret not in result.out + result.err
    assert fake.session_key("alice") not in result.out + result.err
    status = scrob("auth", "status", "--json").json()
    [row] = [r for r in status["accounts"] if r["service"] == "lastfm"]
    assert row["user"] == "Alice" and row["configured"] is True
    assert set(row["secrets"].values()) == {"keyring"}
    # and the stored credentials work: a private profile is read with the session key
    fake.add_scrobbles("alice", history(5))
    fake.set_private("alice")
    monkeypatch.setenv("SCROB_LASTFM_RATE", "1000")
    assert sync_json(scrob)["new"] == 5


def test_auth_lastfm_with_known_key_only_waits_for_approval(
        fake: FakeLastfm, scrob: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    import typer

    monkeypatch.setenv("SCROB_LASTFM_API_URL", fake.url)
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", fake.api_key)
    monkeypatch.setenv("SCROB_LASTFM_API_SECRET", fake.api_secret)
    monkeypatch.setattr(engine, "SLEEP", lambda seconds: time.sleep(0.005))
    monkeypatch.setattr(typer, "prompt", lambda *a, **k: pytest.fail("asked for a secret"))
    monkeypatch.setattr(webbrowser, "open", lambda url: pytest.fail("opened a browser"))
    served = fake.handle

    def handle(http_method: str, path: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
        reply = served(http_method, path, params)
        if params.get("method") == "auth.getToken":  # the user approves it a bit later
            token = json.loads(reply[2])["token"]
            threading.Timer(0.05, fake.approve, (token, "carol")).start()
        return reply

    monkeypatch.setattr(fake, "handle", handle)
    result = scrob("auth", "lastfm", "--no-browser")
    assert result.code == 0, result.err
    assert "api/auth/?api_key=" in result.err
    from scrobbler_cli import config, credentials

    assert config.load().lastfm_user == "carol"
    assert credentials.get("lastfm_session_key").value == fake.session_key("carol")
    assert credentials.get("lastfm_api_secret").origin == "env"  # not copied anywhere


def test_auth_lastfm_without_a_terminal_or_keys_exits_3_naming_the_variable(
        fake: FakeLastfm, scrob_proc: Any) -> None:
    result = scrob_proc("auth", "lastfm", "--no-browser", input="",  # cron: stdin empty
                        env={"SCROB_LASTFM_API_URL": fake.url})
    assert result.code == 3
    assert result.err.splitlines() == [
        "scrob: error: no Last.fm API key given (type it at the prompt in a terminal, "
        "or set SCROB_LASTFM_API_KEY)"]


def test_auth_lastfm_rejected_key_from_stdin_exits_3(fake: FakeLastfm, scrob_proc: Any) -> None:
    result = scrob_proc("auth", "lastfm", "--no-browser",
                        input="0123456789abcdef0123456789abcdee\nnot-the-secret-at-all\n",
                        env={"SCROB_LASTFM_API_URL": fake.url})
    assert result.code == 3, result.err
    assert "API key" in result.err and "Traceback" not in result.err
    assert result.out == ""  # the prompts are on stderr
    assert "not-the-secret-at-all" not in result.out + result.err
    assert "0123456789abcdef0123456789abcdee" not in result.out + result.err
    assert not Path(os.environ["SCROB_TEST_KEYRING"]).exists()  # nothing stored


@pytest.mark.parametrize("backend", ["null", "fail"])
def test_auth_lastfm_without_a_usable_keyring_exits_3_before_anything(
        fake: FakeLastfm, scrob: Any, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """The null backend (priority -1) answers every read with "nothing" but stores
    nothing; the fail backend (0) raises. Either way: exit 3 naming the environment
    variables, before a secret is asked for or the user approves anything."""
    import webbrowser

    import keyring
    import keyring.backends.fail
    import keyring.backends.null
    import typer

    monkeypatch.setenv("SCROB_LASTFM_API_URL", fake.url)
    chosen = {"null": keyring.backends.null.Keyring,
              "fail": keyring.backends.fail.Keyring}[backend]
    keyring.set_keyring(chosen())  # conftest puts the test keyring back afterwards
    monkeypatch.setattr(typer, "prompt", lambda *a, **k: pytest.fail("asked for a secret"))
    monkeypatch.setattr(webbrowser, "open", lambda url: pytest.fail("opened a browser"))
    result = scrob("auth", "lastfm")
    assert result.code == 3, result.err
    assert result.err.count("\n") == 1 and result.out == ""
    for name in ("SCROB_LASTFM_USER", "SCROB_LASTFM_API_KEY", "SCROB_LASTFM_API_SECRET",
                 "SCROB_LASTFM_SESSION_KEY"):
        assert name in result.err
    assert fake.request_log == []  # no token asked for, nothing to approve


def test_auth_lastfm_quiet_shows_only_the_url(fake: FakeLastfm, scrob: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    import typer

    monkeypatch.setenv("SCROB_LASTFM_API_URL", fake.url)
    monkeypatch.setenv("SCROB_LASTFM_USER", "somebody")  # its warning is talk too
    monkeypatch.setattr(engine, "SLEEP", lambda seconds: time.sleep(0.005))
    fake.add_user("Alice")
    errs: list[object] = []

    def prompt(text: str, **kwargs: object) -> str:
        errs.append(kwargs.get("err"))
        return fake.api_key if "key" in text else fake.api_secret

    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        threading.Timer(0.05, fake.approve, (url.rsplit("token=", 1)[1], "alice")).start()
        return True

    monkeypatch.setattr(typer, "prompt", prompt)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)  # a terminal: the prompt
    monkeypatch.setattr(webbrowser, "open", browser)
    result = scrob("--quiet", "auth", "lastfm")
    assert result.code == 0, result.err
    assert errs == [True, True] and result.out == ""
    assert result.err.split() == opened  # the URL (needed to go on), and nothing else
    from scrobbler_cli import credentials

    assert credentials.get("lastfm_session_key").value == fake.session_key("alice")
