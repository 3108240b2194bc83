"""Shared fixtures: every test runs with its own settings, archive and keyring, and
with no SCROB_* variable from the developer's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest

from scrobbler_cli import errors
from tests.keyring_backend import FileKeyring

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(*parts: str) -> object:
    return json.loads(FIXTURES.joinpath(*parts).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("SCROB_") or name == "NO_COLOR" or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)
    # The fakes live on 127.0.0.1: no proxy may sit between them and scrob.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # One known local zone (UTC) for every test and subprocess; tests of other zones
    # pass --tz or set TZ themselves.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    # Secrets registered for redaction by an earlier test must not make a later test's
    # "never printed" check pass by accident.
    monkeypatch.setattr(errors, "_KNOWN_SECRETS", set())
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("SCROB_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("SCROB_DB", str(tmp_path / "archive.db"))
    monkeypatch.setenv("SCROB_TEST_KEYRING", str(tmp_path / "keyring.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.FileKeyring")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    yield tmp_path
    keyring.set_keyring(previous)
    monkeypatch.undo()
    time.tzset()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)

    def ndjson(self) -> list[object]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def scrob(capsys: pytest.CaptureFixture[str]):
    """Run scrob in this process (fast): ``scrob("stats", "--json")`` → Result."""
    from scrobbler_cli.cli import run

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def scrob_proc():
    """Run the real ``scrob`` in a subprocess: ``scrob_proc("sync", "lastfm")`` → Result."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None,
               timeout: float = 120) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "scrobbler_cli", *args],
            input=input, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})}, cwd=ROOT,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return invoke


@pytest.fixture
def router():
    """respx for unit tests of the clients: an unmatched request fails the test, so
    nothing can reach the network."""
    import respx

    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock
