"""Where settings and secrets come from, and `scrob auth status | logout`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from scrobbler_cli import config, credentials
from scrobbler_cli.errors import KeyringUnavailable, UsageError
from tests.keyring_backend import FileKeyring

LB_TOKEN = "lb-token-1234567890abcdef"
LASTFM_KEY = "lastfm-key-abcdef0123456789"
LASTFM_SECRET = "lastfm-secret-fedcba9876543210"
LASTFM_SESSION = "lastfm-session-0a1b2c3d4e5f"
ALL_SECRETS = (LB_TOKEN, LASTFM_KEY, LASTFM_SECRET, LASTFM_SESSION)


def write_config(text: str) -> Path:
    path = Path(os.environ["SCROB_CONFIG"])
    path.write_text(text, encoding="utf-8")
    return path


def keyring_file() -> dict[str, str]:
    path = Path(os.environ["SCROB_TEST_KEYRING"])
    return json.loads(path.read_text()) if path.exists() else {}


class RaisingKeyring(KeyringBackend):
    """A backend that looks usable but fails on every call (a locked or broken store)."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError("the secret service is not running")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError("the secret service is not running")

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError("the secret service is not running")


@pytest.fixture
def no_keyring():  # type: ignore[no-untyped-def]
    """Switch to another keyring backend (the autouse fixture restores the real one)."""
    def use(backend: KeyringBackend) -> None:
        keyring.set_keyring(backend)

    return use


# -- settings precedence ---------------------------------------------------------------


def test_defaults_with_nothing_configured() -> None:
    settings = config.load()
    assert settings.lastfm_user is None and settings.listenbrainz_user is None
    assert settings.lastfm_api_url == "https://ws.audioscrobbler.com/2.0/"
    assert settings.listenbrainz_api_url == "https://api.listenbrainz.org"
    assert settings.musicbrainz_api_url == "https://musicbrainz.org/ws/2/"
    assert settings.match_tolerance == 300
    assert set(settings.origin.values()) == {"default"}


def test_env_beats_config_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[listenbrainz]\nuser = "from-config"\napi_url = "https://lb.example/"\n'
                 "[lastfm]\nuser = \"cfg-lastfm\"\n"
                 "[archive]\nmatch_tolerance = 120\nlock_wait = 2.5\n")
    settings = config.load()
    assert settings.listenbrainz_user == "from-config"
    assert settings.listenbrainz_api_url == "https://lb.example/"
    assert (settings.match_tolerance, settings.lock_wait) == (120, 2.5)
    assert settings.origin["listenbrainz_user"] == "config"
    assert settings.origin["lastfm_api_url"] == "default"

    monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "from-env")
    monkeypatch.setenv("SCROB_MATCH_TOLERANCE", "60")
    monkeypatch.setenv("SCROB_LASTFM_API_URL", "https://libre.fm/2.0/")
    settings = config.load()
    assert settings.listenbrainz_user == "from-env"
    assert settings.origin["listenbrainz_user"] == "env"
    assert settings.match_tolerance == 60
    assert settings.lastfm_api_url == "https://libre.fm/2.0/"
    assert settings.lastfm_user == "cfg-lastfm"  # untouched by the environment
    assert settings.listenbrainz_api_url == "https://lb.example/"


def test_empty_env_variable_does_not_override(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[lastfm]\nuser = "cfg"\n')
    monkeypatch.setenv("SCROB_LASTFM_USER", "")
    assert config.load().lastfm_user == "cfg"


def test_scrob_config_names_the_settings_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[lastfm]\nuser = "elsewhere"\n')
    monkeypatch.setenv("SCROB_CONFIG", str(other))
    assert config.config_path() == other
    assert config.load().lastfm_user == "elsewhere"
    monkeypatch.setenv("SCROB_CONFIG", "~/scrob.toml")  # as SCROB_DB: ~ is the home
    assert config.config_path() == Path(os.environ["HOME"]) / "scrob.toml"
    monkeypatch.delenv("SCROB_CONFIG")
    assert config.config_path() == Path(os.environ["XDG_CONFIG_HOME"]) / "scrob" / "config.toml"


def test_save_changes_one_value_and_keeps_the_rest_as_written() -> None:
    """`scrob auth` stores a user name: comments, other tables and values of every TOML
    type stay as the user wrote them, and the file still reads."""
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = ('# my scrob settings\n[archive]\nmatch_tolerance = 120  # two minutes\n\n'
            '[listenbrainz]\nuser = "old"\nenabled = true\nsince = 2024-01-01\n\n'
            '[listenbrainz.extra]\nnote = "x"\n')
    path.write_text(mine, encoding="utf-8")
    config.save("listenbrainz", "user", "alice")
    assert path.read_text(encoding="utf-8") == mine.replace('"old"', '"alice"')
    assert config.load().listenbrainz_user == "alice"
    config.save("lastfm", "user", "bob")  # a new table, added at the end
    assert path.read_text(encoding="utf-8").startswith(mine.replace('"old"', '"alice"'))
    config.save("listenbrainz", "user", None)
    text = path.read_text(encoding="utf-8")
    assert "alice" not in text and "# two minutes" in text and "since = 2024-01-01" in text
    assert (config.load().lastfm_user, config.load().match_tolerance) == ("bob", 120)


def test_save_refuses_to_overwrite_a_file_it_cannot_read() -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[archive\nbroken", encoding="utf-8")
    with pytest.raises(UsageError, match="cannot read the settings file"):
        config.save("listenbrainz", "user", "alice")
    assert path.read_text(encoding="utf-8") == "[archive\nbroken"


def test_save_round_trips_and_removes() -> None:
    path = config.save("listenbrainz", "user", 'al"ice')
    config.save("archive", "lock_wait", 1.5)
    assert config.load().listenbrainz_user == 'al"ice'
    assert config.load().lock_wait == 1.5
    config.save("listenbrainz", "user", None)
    assert config.load().listenbrainz_user is None
    assert config.load().lock_wait == 1.5
    assert "al" not in path.read_text()


def test_bad_settings_are_usage_errors(scrob) -> None:
    write_config("[archive]\nmatch_tolerance = \"soon\"\n")
    with pytest.raises(UsageError, match="match_tolerance"):
        config.load().match_tolerance  # noqa: B018 - checked where it is used
    write_config("this is = = not toml")
    with pytest.raises(UsageError, match="settings file"):
        config.load()
    config.config_path().write_bytes(b'[lastfm]\nuser = "caf\xe9"\n')  # Latin-1, not UTF-8
    with pytest.raises(UsageError, match="settings file"):
        config.load()
    result = scrob("auth", "status", "--json")
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1 and "config.toml" in result.err
    assert "point SCROB_CONFIG at another file" in result.err  # a way out


def test_db_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_DB", str(tmp_path / "env.db"))
    assert config.db_path("opt.db") == Path("opt.db")
    assert config.db_path() == tmp_path / "env.db"
    monkeypatch.delenv("SCROB_DB")
    assert config.db_path() == Path(os.environ["XDG_DATA_HOME"]) / "scrob" / "archive.db"


def test_db_option_beats_scrob_db_through_the_cli(scrob, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    env_db, opt_db = tmp_path / "env.db", tmp_path / "opt.db"
    monkeypatch.setenv("SCROB_DB", str(env_db))
    data = tmp_path / "one.ndjson"
    data.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    assert scrob("--db", str(opt_db), "import", str(data)).code == 0
    assert opt_db.exists() and not env_db.exists()
    assert scrob("import", str(data)).code == 0
    assert env_db.exists()


def test_default_archive_location(scrob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCROB_DB")
    data = tmp_path / "one.ndjson"
    data.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    assert scrob("import", str(data)).code == 0
    assert (Path(os.environ["XDG_DATA_HOME"]) / "scrob" / "archive.db").exists()


def test_match_tolerance_setting_reaches_the_archive(scrob, tmp_path: Path) -> None:
    # (two files: the lines of one import are not matched with each other)
    first, second = tmp_path / "one.ndjson", tmp_path / "two.ndjson"
    first.write_text('{"listened_at": 1000, "artist": "A", "track": "B", '
                     '"accounts": ["lastfm:x"]}\n')
    second.write_text('{"listened_at": 1090, "artist": "A", "track": "B", '
                      '"accounts": ["listenbrainz:x"]}\n')

    def listens(db: str) -> int:
        for data in (first, second):
            assert scrob("--db", str(tmp_path / db), "import", str(data)).code == 0
        return len(scrob("--db", str(tmp_path / db), "listens", "--json").ndjson())

    assert listens("default.db") == 1
    write_config("[archive]\nmatch_tolerance = 60\n")
    assert listens("narrow.db") == 2


# -- secrets ---------------------------------------------------------------------------


def test_env_secret_beats_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.store("listenbrainz_token", "from-keyring-123")
    assert credentials.get("listenbrainz_token") == credentials.Secret(
        "listenbrainz_token", "from-keyring-123", "keyring")
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", LB_TOKEN)
    assert credentials.get("listenbrainz_token") == credentials.Secret(
        "listenbrainz_token", LB_TOKEN, "env")
    assert credentials.get("lastfm_session_key").origin == "missing"


def test_store_puts_secrets_in_the_keyring_only(tmp_path: Path) -> None:
    credentials.store("lastfm_session_key", LASTFM_SESSION)
    assert keyring_file() == {"scrob/lastfm_session_key": LASTFM_SESSION}
    # never in the settings file or beside the archive
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "keyring.json":
            assert LASTFM_SESSION.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring(), RaisingKeyring()],
                         ids=["fail", "null", "raising"])
def test_store_without_a_usable_keyring_names_the_env_variables(no_keyring, backend) -> None:
    no_keyring(backend)
    with pytest.raises(KeyringUnavailable) as info:
        credentials.store("listenbrainz_token", LB_TOKEN)
    message = str(info.value)
    assert info.value.exit_code == 3
    assert "SCROB_LISTENBRAINZ_TOKEN" in message
    assert "keyrings.alt" in message
    assert LB_TOKEN not in message
    with pytest.raises(KeyringUnavailable) as info:
        credentials.store("lastfm_api_secret", LASTFM_SECRET)
    for name in ("SCROB_LASTFM_API_KEY", "SCROB_LASTFM_API_SECRET", "SCROB_LASTFM_SESSION_KEY"):
        assert name in str(info.value)
    assert not Path(os.environ["SCROB_TEST_KEYRING"]).exists()  # no silent plaintext fallback


def test_broken_keyring_reads_as_unavailable_and_env_still_works(
        no_keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    no_keyring(RaisingKeyring())
    assert credentials.get("listenbrainz_token") == credentials.Secret(
        "listenbrainz_token", None, "keyring unavailable")
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", LB_TOKEN)
    assert credentials.get("listenbrainz_token").value == LB_TOKEN


# -- scrob auth status ---------------------------------------------------------------------


def test_auth_status_with_nothing_configured(scrob) -> None:
    result = scrob("auth", "status", "--json")
    assert result.code == 0 and result.err == ""
    assert result.json() == {"accounts": [
        {"service": "lastfm", "user": None, "user_from": "default",
         "secrets": {"api_key": "missing", "api_secret": "missing", "session_key": "missing"},
         "configured": False},
        {"service": "listenbrainz", "user": None, "user_from": "default",
         "secrets": {"token": "missing"}, "configured": False},
    ]}
    table = scrob("auth", "status")
    assert table.code == 0 and "lastfm" in table.out and "listenbrainz" in table.out


def test_auth_status_shows_where_secrets_come_from_never_the_values(
        scrob, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.store("lastfm_api_key", LASTFM_KEY)
    credentials.store("lastfm_api_secret", LASTFM_SECRET)
    credentials.store("lastfm_session_key", LASTFM_SESSION)
    write_config('[lastfm]\nuser = "alice"\n')
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", LB_TOKEN)
    monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "alice_lb")
    monkeypatch.setenv("COLUMNS", "200")
    result = scrob("-v", "auth", "status", "--json")
    assert result.code == 0
    assert result.json() == {"accounts": [
        {"service": "lastfm", "user": "alice", "user_from": "config",
         "secrets": {"api_key": "keyring", "api_secret": "keyring", "session_key": "keyring"},
         "configured": True},
        {"service": "listenbrainz", "user": "alice_lb", "user_from": "env",
         "secrets": {"token": "env"}, "configured": True},
    ]}
    table = scrob("-v", "auth", "status")
    assert table.code == 0
    assert "alice_lb" in table.out and "token: env" in table.out
    assert "api_key: keyring" in table.out
    for secret in ALL_SECRETS:
        assert secret not in result.out + result.err + table.out + table.err


def test_auth_status_without_a_keyring(scrob, no_keyring,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    no_keyring(fail.Keyring())
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", LB_TOKEN)
    result = scrob("auth", "status", "--json")
    assert result.code == 0
    lastfm, lb = result.json()["accounts"]  # type: ignore[index]
    assert set(lastfm["secrets"].values()) == {"keyring unavailable"}
    assert lb["secrets"] == {"token": "env"}
    assert LB_TOKEN not in result.out + result.err


# -- scrob auth logout -------------------------------------------------------------------


def test_logout_removes_secrets_and_user(scrob) -> None:
    credentials.store("listenbrainz_token", LB_TOKEN)
    credentials.store("lastfm_session_key", LASTFM_SESSION)
    config.save("listenbrainz", "user", "alice")
    config.save("lastfm", "user", "alice")
    result = scrob("auth", "logout", "listenbrainz")
    assert result.code == 0
    assert result.out == ""
    assert "logged out of listenbrainz" in result.err
    assert LB_TOKEN not in result.err
    assert keyring_file() == {"scrob/lastfm_session_key": LASTFM_SESSION}
    settings = config.load()
    assert settings.listenbrainz_user is None
    assert settings.lastfm_user == "alice"  # the other service is untouched
    status = scrob("auth", "status", "--json").json()
    assert status["accounts"][1]["secrets"] == {"token": "missing"}  # type: ignore[index]
    # logging out again is harmless
    assert scrob("auth", "logout", "listenbrainz").code == 0


class LockedKeyring(FileKeyring):
    """A keyring that reads but will not delete (a locked Secret Service)."""

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import KeyringLocked

        raise KeyringLocked("the collection is locked")


def test_logout_fails_when_the_keyring_keeps_the_secret(scrob, no_keyring) -> None:
    """It said "logged out" and left the token in the keyring; now it says what is left,
    exits 3 and keeps the username, and the same command finishes once it can."""
    credentials.store("listenbrainz_token", LB_TOKEN)
    config.save("listenbrainz", "user", "alice")
    no_keyring(LockedKeyring())
    result = scrob("auth", "logout", "listenbrainz")
    assert result.code == 3
    assert "the keyring did not remove listenbrainz_token (KeyringLocked: the " \
           "collection is locked)" in result.err and "unlock the keyring" in result.err
    assert "logged out" not in result.err and LB_TOKEN not in result.err
    assert keyring_file() == {"scrob/listenbrainz_token": LB_TOKEN}
    assert config.load().listenbrainz_user == "alice"
    no_keyring(FileKeyring())
    again = scrob("auth", "logout", "listenbrainz")
    assert again.code == 0 and "(1 secret removed from the keyring)" in again.err
    assert keyring_file() == {}


def test_logout_without_a_keyring_forgets_the_username(scrob, no_keyring) -> None:
    """No keyring backend (a headless server): no secret can be stored there, so the
    logout removes the username and says nothing of secrets."""
    config.save("listenbrainz", "user", "alice")
    no_keyring(fail.Keyring())
    result = scrob("auth", "logout", "listenbrainz")
    assert result.code == 0 and "logged out of listenbrainz" in result.err
    assert "removed" not in result.err
    assert config.load().listenbrainz_user is None


def test_logout_warns_about_secrets_left_in_the_environment(
        scrob, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", LB_TOKEN)
    result = scrob("auth", "logout", "listenbrainz")
    assert result.code == 0
    assert "SCROB_LISTENBRAINZ_TOKEN" in result.err
    assert LB_TOKEN not in result.err


def test_logout_unknown_service_is_a_usage_error(scrob) -> None:
    result = scrob("auth", "logout", "myspace")
    assert result.code == 2
    assert "myspace" in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize("root", ["api.listenbrainz.org", "http://[::1"])
def test_an_api_root_without_a_scheme_is_a_usage_error(scrob, monkeypatch, root) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", root)
    monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "alice")
    monkeypatch.setenv("SCROB_LISTENBRAINZ_TOKEN", "t" * 36)
    result = scrob("sync", "listenbrainz")
    assert result.code == 2
    assert "not an http(s) URL" in result.err and "SCROB_LISTENBRAINZ_API_URL" in result.err
    assert "t" * 36 not in result.err


def test_a_windows_line_end_on_a_variable_is_ignored(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`set -a; . ./scrob.env` with a file saved with Windows line ends: every value ends
    in a carriage return."""
    monkeypatch.setenv("SCROB_LISTENBRAINZ_USER", "alice\r")
    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", "https://lb.example/\r")
    monkeypatch.setenv("SCROB_LASTFM_USER", " bob ")
    monkeypatch.setenv("SCROB_DB", f"{tmp_path}/a.db\r")
    monkeypatch.setenv("SCROB_CONFIG", f"{tmp_path}/c.toml\r\n")
    settings = config.load()
    assert (settings.listenbrainz_user, settings.listenbrainz_api_url,
            settings.lastfm_user) == ("alice", "https://lb.example/", "bob")
    assert (config.db_path(), config.config_path()) == (tmp_path / "a.db", tmp_path / "c.toml")


@pytest.mark.parametrize("root", ["https://lb.example/\r/1", "https://lb.example/a b",
                                  "https://lb\x1b[31m.example/"])
def test_an_api_root_with_a_control_character_or_space_is_refused(
        monkeypatch: pytest.MonkeyPatch, root: str) -> None:
    monkeypatch.setenv("SCROB_LISTENBRAINZ_API_URL", root)
    with pytest.raises(UsageError) as caught:
        config.load().listenbrainz_api_url  # noqa: B018 - the attribute checks it
    assert "not an http(s) URL" in str(caught.value)
    assert "SCROB_LISTENBRAINZ_API_URL" in str(caught.value)


@pytest.mark.parametrize("platform, blocked", [("linux", True), ("win32", True),
                                               ("darwin", False)])
def test_choosing_the_keyring_backend_skips_the_macos_bindings_elsewhere(
        monkeypatch: pytest.MonkeyPatch, platform: str, blocked: bool) -> None:
    """keyring's macOS backend looks for the Security framework with find_library when
    imported, which on Linux runs ldconfig and gcc; it declines to run off macOS anyway."""
    import sys

    seen: list[object] = []

    def choose() -> KeyringBackend:  # keyring's own choice, as it imports its backends
        seen.append(sys.modules.get(credentials._MACOS_API, "importable"))
        return null.Keyring()

    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.delitem(sys.modules, credentials._MACOS_API, raising=False)
    monkeypatch.setattr(keyring, "get_keyring", choose)
    assert credentials._keyring() is keyring
    assert seen == [None if blocked else "importable"]  # None: its import raises
    assert credentials._MACOS_API not in sys.modules  # nothing left blocked after it


@pytest.mark.parametrize(("env", "value", "said"), [
    ("SCROB_LASTFM_RATE", "-1", "SCROB_LASTFM_RATE must be a number of at least 0.01"),
    ("SCROB_LASTFM_RATE", "0", "SCROB_LASTFM_RATE must be a number of at least 0.01"),
    ("SCROB_LASTFM_RATE", "1e-300", "SCROB_LASTFM_RATE must be a number of at least 0.01"),
    ("SCROB_MATCH_TOLERANCE", "1.5", "SCROB_MATCH_TOLERANCE must be a whole number, not"),
    ("SCROB_MATCH_TOLERANCE", "nan", "SCROB_MATCH_TOLERANCE must be a whole number, not"),
    ("SCROB_MATCH_TOLERANCE", "-1",
     "SCROB_MATCH_TOLERANCE must be a whole number from 0 to 86400, not '-1'"),
    ("SCROB_MATCH_TOLERANCE", "1e19",
     "SCROB_MATCH_TOLERANCE must be a whole number from 0 to 86400, not '1e19'"),
    ("SCROB_LOCK_WAIT", "inf", "SCROB_LOCK_WAIT must be a number of at least 0"),
    ("SCROB_LOCK_WAIT", "-0.5", "SCROB_LOCK_WAIT must be a number of at least 0, not '-0.5'"),
])
def test_a_bad_number_names_the_variable_it_came_from(
        scrob, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str, value: str,
        said: str) -> None:
    monkeypatch.setenv(env, value)
    data = tmp_path / "one.ndjson"
    data.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    # a command that uses it: a Last.fm sync the pace, an import the archive's settings
    result = scrob(*(("sync", "lastfm") if "LASTFM" in env else ("import", str(data))))
    assert result.code == 2 and result.err.count("\n") == 1
    assert said in result.err
    assert not Path(os.environ["SCROB_DB"]).exists()  # stopped before anything was made


@pytest.mark.parametrize("env", ["SCROB_LASTFM_RATE", "SCROB_MATCH_TOLERANCE",
                                 "SCROB_LOCK_WAIT"])
def test_a_bad_setting_stops_only_the_commands_that_use_it(
        scrob, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str) -> None:
    data = tmp_path / "one.ndjson"
    data.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    assert scrob("import", str(data)).code == 0
    monkeypatch.setenv(env, "soon")
    # reading the archive, and seeing what is configured, need none of these
    assert scrob("stats", "--range", "all", "--json").code == 0
    listed = scrob("listens", "--json")
    assert listed.code == 0 and json.loads(listed.out)["track"] == "B"
    assert scrob("auth", "status").code == 0
    if env == "SCROB_LASTFM_RATE":
        # ListenBrainz never uses the Last.fm pace: its sync stops on its own account
        assert scrob("sync", "listenbrainz").code == 3
        used = scrob("sync", "lastfm")
    else:
        used = scrob("import", str(data))
    assert used.code == 2 and f"{env} must be" in used.err
    if env == "SCROB_LASTFM_RATE":  # a failed sync's summary still names its account
        monkeypatch.setenv("SCROB_LASTFM_USER", "alice")
        for args in (("sync", "lastfm"), ("sync", "all")):
            failed = scrob(*args, "--json")
            report = next(r for r in failed.ndjson() if r["service"] == "lastfm")
            assert failed.code == 2 and report["user"] == "alice"
            assert f"{env} must be" in report["error"]


@pytest.mark.parametrize(("toml", "said"), [
    ("[archive]\nmatch_tolerance = 120.5\n",
     "[archive] match_tolerance in the settings file must be a whole number"),
    ("[archive]\nlock_wait = true\n", "[archive] lock_wait in the settings file must be"),
    ("[lastfm]\nrequests_per_second = 0\n", "[lastfm] requests_per_second in the settings"),
])
def test_a_bad_number_in_the_file_names_its_key(toml: str, said: str) -> None:
    write_config(toml)
    settings = config.load()
    with pytest.raises(UsageError) as caught:
        for name in ("match_tolerance", "lock_wait", "lastfm_rate"):
            getattr(settings, name)
    assert said in str(caught.value)


@pytest.mark.parametrize("value", ["5", "true", "[\"alice\"]", "{ name = \"alice\" }"])
def test_text_in_the_file_must_be_in_quotes(value: str) -> None:
    """`user = 5` would have synced an account called "5", `user = true` one called
    "True": a user name in the file that is not text is refused, naming its key."""
    write_config(f"[lastfm]\nuser = {value}\n")
    with pytest.raises(UsageError) as caught:
        config.load().lastfm_user  # noqa: B018 - checked where it is used
    assert "[lastfm] user in the settings file must be text in quotes" in str(caught.value)
    write_config('[lastfm]\nuser = "5"\n')
    assert config.load().lastfm_user == "5"


def test_the_settings_and_the_archive_agree_on_the_largest_tolerance(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from scrobbler_cli.archive import MAX_TOLERANCE

    monkeypatch.setenv("SCROB_MATCH_TOLERANCE", str(MAX_TOLERANCE))
    assert config.load().match_tolerance == MAX_TOLERANCE
    monkeypatch.setenv("SCROB_MATCH_TOLERANCE", str(MAX_TOLERANCE + 1))
    with pytest.raises(UsageError):
        config.load().match_tolerance  # noqa: B018 - checked where it is used


def test_the_settings_and_the_pacer_agree_on_the_slowest_rate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from scrobbler_cli.services.http import MIN_RATE, Pacer

    monkeypatch.setenv("SCROB_LASTFM_RATE", str(MIN_RATE))
    assert Pacer(config.load().lastfm_rate).interval == pytest.approx(1 / MIN_RATE)
    for bad in (MIN_RATE / 2, -1.0, float("nan"), 1e-300):
        with pytest.raises(ValueError, match="at least 0.01"):
            Pacer(bad)
    monkeypatch.setenv("SCROB_LASTFM_RATE", str(MIN_RATE / 2))
    with pytest.raises(UsageError):
        config.load().lastfm_rate  # noqa: B018 - checked where it is used


def test_whole_numbers_may_be_written_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("[archive]\nmatch_tolerance = 120.0\nlock_wait = 2\n")
    monkeypatch.setenv("SCROB_LASTFM_RATE", "2.5")
    settings = config.load()
    assert (settings.match_tolerance, settings.lock_wait, settings.lastfm_rate) == (120, 2, 2.5)
    assert type(settings.match_tolerance) is int


def test_a_typo_in_one_api_root_stops_only_what_uses_it(
        scrob, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "one.ndjson"
    data.write_text('{"listened_at": 1000, "artist": "A", "track": "B"}\n')
    monkeypatch.setenv("SCROB_MUSICBRAINZ_API_URL", "nonsense")
    monkeypatch.setenv("SCROB_LASTFM_API_URL", "ws.audioscrobbler.com")
    assert scrob("import", str(data)).code == 0
    assert scrob("stats", "--json").code == 0
    assert scrob("listens", "--json").code == 0
    monkeypatch.setenv("SCROB_LASTFM_USER", "alice")
    monkeypatch.setenv("SCROB_LASTFM_API_KEY", "k" * 32)
    result = scrob("sync", "lastfm")
    assert result.code == 2 and "SCROB_LASTFM_API_URL" in result.err
