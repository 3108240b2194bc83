"""Where things live and the settings that are not secrets.

Precedence, first wins: command-line option, ``SCROB_*`` environment variable, the
settings file (``config.toml`` in the platformdirs config dir, or ``SCROB_CONFIG``), the
built-in default.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir, user_data_dir

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "scrob"
DEFAULT_LASTFM_API_URL = "https://ws.audioscrobbler.com/2.0/"
DEFAULT_LISTENBRAINZ_API_URL = "https://api.listenbrainz.org"
DEFAULT_MUSICBRAINZ_API_URL = "https://musicbrainz.org/ws/2/"

# setting name -> (config.toml section, key, environment variable, default)
_SETTINGS: dict[str, tuple[str, str, str | None, Any]] = {
    "lastfm_user": ("lastfm", "user", "SCROB_LASTFM_USER", None),
    "lastfm_api_url": ("lastfm", "api_url", "SCROB_LASTFM_API_URL", DEFAULT_LASTFM_API_URL),
    "lastfm_rate": ("lastfm", "requests_per_second", "SCROB_LASTFM_RATE", 5.0),
    "listenbrainz_user": ("listenbrainz", "user", "SCROB_LISTENBRAINZ_USER", None),
    "listenbrainz_api_url": ("listenbrainz", "api_url", "SCROB_LISTENBRAINZ_API_URL",
                             DEFAULT_LISTENBRAINZ_API_URL),
    "musicbrainz_api_url": ("musicbrainz", "api_url", "SCROB_MUSICBRAINZ_API_URL",
                            DEFAULT_MUSICBRAINZ_API_URL),
    "match_tolerance": ("archive", "match_tolerance", "SCROB_MATCH_TOLERANCE", 300),
    "lock_wait": ("archive", "lock_wait", "SCROB_LOCK_WAIT", 10.0),
}


def config_path() -> Path:
    env = _path_env("SCROB_CONFIG")  # like SCROB_DB, ``~`` is the home directory
    return Path(env).expanduser() if env else Path(user_config_dir(APP)) / "config.toml"


def default_db_path() -> Path:
    return Path(user_data_dir(APP)) / "archive.db"


def db_path(option: str | os.PathLike[str] | None = None) -> Path:
    """The archive: ``--db``, then ``SCROB_DB``, then the platform's data dir. (Click
    hands ``SCROB_DB`` over as ``--db``: either loses a Windows line end.)"""
    if option:
        return Path(os.fspath(option).rstrip("\r\n")).expanduser()
    env = _path_env("SCROB_DB")
    return Path(env).expanduser() if env else default_db_path()


def _path_env(name: str) -> str | None:
    """A path from the environment, without the line end a file with Windows line ends
    leaves on it (`set -a; . ./scrob.env`): cron would write to ``archive.db\r``."""
    value = os.environ.get(name)
    return value.rstrip("\r\n") if value else value


def read_file(path: Path | None = None) -> dict[str, dict[str, Any]]:
    path = path or config_path()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the settings file {path}: {exc}",
                         hint="fix it (docs/settings.md lists what it may hold), or point "
                              "SCROB_CONFIG at another file") from None
    return {k: v for k, v in data.items() if isinstance(v, dict)}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; ``origin`` says where each came from (env, config, default).

    ``values`` hold them as given. Each is checked where it is used (an attribute): a
    typo in one setting stops only the commands that need it, so a bad Last.fm pace
    never stops ``scrob stats``, and ``scrob auth status`` still shows the accounts.
    """

    values: dict[str, Any]
    origin: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        try:
            value = self.values[name]
        except KeyError:
            raise AttributeError(name) from None
        origin = self.origin[name]
        if origin == "default":
            return value
        section, key, env, default = _SETTINGS[name]
        where = env if env and origin == "env" else f"[{section}] {key} in the settings file"
        value = _coerce(name, value, default, where)
        return _url(name, value) if name.endswith("_api_url") else value


def load() -> Settings:
    data = read_file()
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, (section, key, env, default) in _SETTINGS.items():
        if env and os.environ.get(env):
            values[name], origin[name] = os.environ[env], "env"
        elif key in data.get(section, {}):
            values[name], origin[name] = data[section][key], "config"
        else:
            values[name], origin[name] = default, "default"
    return Settings(values, origin)


def _coerce(name: str, raw: Any, default: Any, where: str) -> Any:
    """A setting as its default's type; ``where`` names it for the user (the variable,
    or the settings file's key)."""
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        if not isinstance(raw, str):  # `user = 5` in the file: which text was meant?
            raise UsageError(f"{where} must be text in quotes, not {raw!r}")
        return raw.strip()  # a Windows line end's carriage return, a stray space
    whole = isinstance(default, int)  # seconds compared with whole-second times
    kind = "a whole number" if whole else "a number"
    try:
        if isinstance(raw, bool):
            raise TypeError
        number = float(raw)
        value = int(number) if whole else number
        if whole and value != number:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{where} must be {kind}, not {raw!r}") from None
    low, high = _RANGES.get(name, (0, None))
    if not low <= value < float("inf") or (high is not None and value > high):
        bound = f"of at least {low}" if high is None else f"from {low} to {high}"
        raise UsageError(f"{where} must be {kind} {bound}, not {raw!r}")
    return value


# What a number setting may be. A negative tolerance or wait is never meant (a negative
# match tolerance would let the archive miss a record it already holds); two services'
# records of one play are never a day apart (and a tolerance past SQLite's integers
# failed every save); a Last.fm pace slower than a request every 100 s is no pace.
_RANGES: dict[str, tuple[float, float | None]] = {
    "match_tolerance": (0, 86400),  # archive.MAX_TOLERANCE (not imported: start-up time)
    "lastfm_rate": (0.01, None),  # services.http.MIN_RATE
}


def _url(name: str, value: str) -> str:
    """An API root must be an http(s) URL with a host; anything else is a typo."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        usable = (parts.scheme in ("http", "https") and bool(parts.hostname)
                  and value.isprintable() and " " not in value)
    except ValueError:  # an unclosed IPv6 bracket, a bad port
        usable = False
    if not usable:
        env = _SETTINGS[name][2]
        raise UsageError(f"the API root {value!r} is not an http(s) URL",
                         hint=f"check {env} or the settings file, e.g. "
                              f"{_SETTINGS[name][3]}")
    return value


def save(section: str, key: str, value: str | int | float | None) -> Path:
    """Set (or with None, remove) one value in the settings file, and change nothing
    else in it: its comments, order and other values (of any TOML type) stay as the
    user wrote them (tomlkit edits the document in place)."""
    import tomlkit

    path = config_path()
    read_file(path)  # a file that does not parse is reported, never overwritten
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = tomlkit.document()
    table = doc.get(section)
    if value is None:
        if isinstance(table, dict):
            table.pop(key, None)
    else:
        if not isinstance(table, dict):  # (a section that is not a table means nothing)
            table = doc[section] = tomlkit.table()
        table[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    return path
