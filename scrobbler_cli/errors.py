"""The exception tree of scrob, and the exit code of each branch.

Every error a user can cause or meet is a ``ScrobError``; ``cli.main()`` is the only
place that turns one into a stderr line and an exit code::

    ScrobError                      1  unexpected (a bug)
    ├── UsageError                  2  bad option or value
    ├── CredentialsError            3  missing, rejected or not storable
    │   └── KeyringUnavailable      3  no usable keyring backend
    ├── ServiceError                4  a remote service failed after retries
    │   ├── ServiceUnavailable      4  network down, 5xx, rate limited to the end
    │   └── NotFound                4  unknown resource
    │       └── UnknownUser         2  no such user (also a UsageError)
    ├── ArchiveError                5  the archive cannot be opened or used
    │   └── ArchiveBusy             5  another scrob holds the write lock
    └── BadInput                    6  an input file holds invalid records

A ``ServiceError`` whose cause is a rejected credential is raised as
``AuthRejected`` (a ``CredentialsError`` that also carries the service fields), so
"bad token" always exits 3, whichever service said it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

#: Where a user reports a bug (printed with exit code 1).
ISSUES_URL = "https://github.com/scrob-dev/scrob/issues"


class ScrobError(Exception):
    """Base of every error scrob expects; ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    #: What a long job had done when this stopped it (a sync's ``SyncReport``: what
    #: it fetched and saved stays in the archive), for a summary of the failure.
    partial: object = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


@contextmanager
def keeping_partial(done: object) -> Iterator[None]:
    """Tell the command what a long job had done (``done``, its report) when a
    ScrobError or Ctrl-C stops it: ``exc.partial``, for the summary it still prints."""
    try:
        yield
    except (ScrobError, KeyboardInterrupt) as exc:
        exc.partial = done  # type: ignore[union-attr]
        raise


class UsageError(ScrobError):
    exit_code = 2


class CredentialsError(ScrobError):
    exit_code = 3


class KeyringUnavailable(CredentialsError):
    pass


class ServiceError(ScrobError):
    """A remote service answered with an error, or could not be reached.

    Carries what the service said: HTTP ``status``, the service's own ``code`` (Last.fm
    error numbers), and ``retry_after`` seconds when the service asked us to wait.
    """

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.service = service
        self.status = status
        self.code = code
        self.retry_after = retry_after


class ServiceUnavailable(ServiceError):
    """Transient: the network, a 5xx, a 429 or a transient service code."""


class NotFound(ServiceError):
    pass


class UnknownUser(NotFound, UsageError):
    """The service has no such user: a wrong ``--user`` or setting, which the next run
    will not fix (exit 2, not a service failure's 4)."""

    exit_code = 2


class AuthRejected(ServiceError, CredentialsError):
    """The service rejected our credentials (bad token, bad key, revoked session)."""

    exit_code = 3


class ArchiveError(ScrobError):
    exit_code = 5


class ArchiveBusy(ArchiveError):
    pass


class BadInput(ScrobError):
    exit_code = 6


_SECRET_PARAMS = re.compile(
    r"(?i)((?:api_key|api_sig|sk|token|session_key|secret|password)=)[^&\s\"']+"
)
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:token|bearer)\s+)[^\s'\"]+")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")  # http://user:password@host


_KNOWN_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that ``redact`` hides it wherever it appears."""
    if value and len(value) >= 4:
        _KNOWN_SECRETS.add(value)


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Hide secrets in ``text``: registered secret values, extra ``secrets``, and
    secret-looking URL parameters and headers, and passwords in URLs (an API URL set to
    ``https://user:password@host/``).

    Used on every log line and exception message that could carry a URL or body.
    """
    for secret in sorted({*_KNOWN_SECRETS, *secrets}, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _SECRET_PARAMS.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _AUTH_HEADER.sub(r"\1***", text)
