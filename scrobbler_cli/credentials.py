"""Secrets: the OS keyring (service name ``scrob``) or the environment, never a file.

Environment variables win so that cron jobs and CI run without a keyring. Every value
read here is registered for redaction, so it cannot leak into logs or error messages.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from .errors import CredentialsError, KeyringUnavailable, register_secret

KEYRING_SERVICE = "scrob"

#: secret name -> environment variable
SECRETS: dict[str, str] = {
    "lastfm_api_key": "SCROB_LASTFM_API_KEY",
    "lastfm_api_secret": "SCROB_LASTFM_API_SECRET",
    "lastfm_session_key": "SCROB_LASTFM_SESSION_KEY",
    "listenbrainz_token": "SCROB_LISTENBRAINZ_TOKEN",
}

_NO_KEYRING_HINT = (
    "no usable keyring backend; set the secrets in the environment instead ({envs}), "
    "or install a file-based backend with `pip install keyrings.alt`"
)


@dataclass(frozen=True)
class Secret:
    name: str
    value: str | None
    origin: str  # "env", "keyring", "missing" or "keyring unavailable"
    problem: str | None = None  # why the value cannot be sent (``unusable``)


def register_env_secrets() -> None:
    """Register every secret set in the environment for redaction, before anything runs,
    so that not even a bug's traceback can show one."""
    for env in SECRETS.values():
        register_secret(os.environ.get(env))


_MACOS_API = "keyring.backends.macOS.api"


def _keyring():  # type: ignore[no-untyped-def]
    """keyring with its backend chosen (imported lazily: it is slow, only needed here).

    Choosing imports every backend, and the macOS one loads its bindings wherever it
    runs: ``ctypes.util.find_library("Security")`` and two more, which on Linux run
    ``ldconfig`` and ``gcc`` (~50 ms of every command that reads a secret) for a backend
    that declines to run anywhere but macOS. Elsewhere that one module is blocked (an
    ImportError, which keyring expects), and the choice comes out the same."""
    import keyring

    from ._imports import without

    with without(*(() if sys.platform == "darwin" else (_MACOS_API,))):
        keyring.get_keyring()
    return keyring


def _unavailable(service: str | None = None) -> KeyringUnavailable:
    names = [env for name, env in SECRETS.items() if service is None or name.startswith(service)]
    return KeyringUnavailable(_NO_KEYRING_HINT.format(envs=", ".join(names)))


def get(name: str) -> Secret:
    """A secret and where it came from; a broken keyring reads as missing.

    The whitespace around a value is dropped: a file of ``NAME=value`` lines with
    Windows line ends, read by ``set -a`` or systemd, leaves a carriage return on each
    value. A value that holds what no key or token does comes with its ``problem``."""
    env = SECRETS[name]
    value = os.environ.get(env)
    if value and value.strip():
        return _found(name, value, "env", env)
    try:
        value = _keyring().get_password(KEYRING_SERVICE, name)
    except Exception:  # noqa: BLE001 - any backend failure means "no keyring"
        return Secret(name, None, "keyring unavailable")
    if value and value.strip():
        return _found(name, value, "keyring", f"the keyring's {name}")
    return Secret(name, None, "missing")


def _found(name: str, value: str, origin: str, where: str) -> Secret:
    value, problem = clean(value, where)
    return Secret(name, value, origin, problem)


def clean(value: str, where: str) -> tuple[str, str | None]:
    """A secret as given, without the whitespace around it (both spellings registered
    for redaction), and why it cannot be one (``unusable``), if it cannot."""
    register_secret(value)
    value = value.strip()
    register_secret(value)
    return value, unusable(value, where)


def unusable(value: str, where: str) -> str | None:
    """Why ``value`` cannot be a key or token, or None. A control character or a
    non-ASCII letter cannot go into an HTTP header (httpx would refuse it only at the
    first request, retried as a network error, with the value in its message), and no
    service's keys or tokens hold one."""
    if value.isascii() and value.isprintable():
        return None
    return f"{where} holds a character no key or token has (a control character or a " \
           "letter outside ASCII)"


def keyring_usable() -> bool:
    """Whether ``store`` can put a secret in the keyring: a backend that answers, with a
    priority above 0 (the "fail" and "null" backends have 0 and -1). Logins ask this
    before the user does anything, not after."""
    try:
        backend = _keyring().get_keyring()
    except Exception:  # noqa: BLE001 - any backend failure means "no keyring"
        return False
    return getattr(backend, "priority", 1) > 0


def store(name: str, value: str) -> None:
    """Put a secret in the keyring, or fail naming the environment variables."""
    register_secret(value)
    if not keyring_usable():
        raise _unavailable(name.split("_")[0])
    try:
        _keyring().set_password(KEYRING_SERVICE, name, value)
    except Exception:  # noqa: BLE001 - a backend that fails to store is no keyring
        raise _unavailable(name.split("_")[0]) from None


def forget(name: str) -> bool:
    """Remove a secret from the keyring; True if one was there.

    With no usable keyring (``keyring_usable``) nothing can have been stored there, so
    there is nothing to remove. A keyring that is there but will not read or remove it
    (a locked Secret Service) is a ``CredentialsError``: the secret may still be there,
    and a logout must not say otherwise."""
    if not keyring_usable():
        return False
    try:
        kr = _keyring()
        if kr.get_password(KEYRING_SERVICE, name) is None:
            return False
        kr.delete_password(KEYRING_SERVICE, name)
        return True
    except Exception as exc:  # noqa: BLE001 - any backend's failure, reported
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CredentialsError(f"the keyring did not remove {name} ({reason})",
                               hint="unlock the keyring and log out again") from None
