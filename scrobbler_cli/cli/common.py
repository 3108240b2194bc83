"""What several commands share: building a service's config from settings and secrets,
and reading a secret the user types or pipes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import Account, ServiceConfig

if TYPE_CHECKING:
    from ..archive import Archive


def service_config(service: str, user: str | None = None) -> ServiceConfig:
    """The account to use: ``--user`` or the configured one, with its secrets."""
    from .. import config

    settings = config.load()
    if service == "lastfm":
        return ServiceConfig(
            service="lastfm",
            api_url=settings.lastfm_api_url,
            user=user or settings.lastfm_user,
            api_key=secret("lastfm_api_key"),
            api_secret=secret("lastfm_api_secret"),
            session_key=secret("lastfm_session_key"),
            rate=float(settings.lastfm_rate),
        )
    return ServiceConfig(
        service="listenbrainz",
        api_url=settings.listenbrainz_api_url,
        user=user or settings.listenbrainz_user,
        token=secret("listenbrainz_token"),
    )


def account_name(service: str, user: str | None = None) -> str | None:
    """The account a command is for (``--user`` or the configured one), also when another
    setting is bad: a failed sync's summary still names it."""
    from .. import config
    from ..errors import ScrobError

    if user:
        return user
    try:
        return getattr(config.load(), f"{service}_user") or None
    except ScrobError:  # the user name itself is the bad setting
        return None


def secret(name: str) -> str | None:
    """A secret's value, or a credentials error (exit 3) if it cannot be one."""
    from .. import credentials
    from ..errors import CredentialsError

    found = credentials.get(name)
    if found.problem:
        raise CredentialsError(found.problem, hint="set it again, as the service shows it")
    return found.value


def own_accounts(target: ServiceConfig) -> tuple[Account, ...]:
    """Your accounts: the configured one of each service, and the export's target."""
    from .. import config

    settings = config.load()
    users = {s: getattr(settings, f"{s}_user") for s in ("lastfm", "listenbrainz")}
    users[target.service] = target.user or users[target.service]
    return tuple(Account.parse(f"{s}:{u}") for s, u in users.items() if u)


def check_source(archive: Archive, source: str | None) -> None:
    """A ``--source`` of a service scrob does not sync must be one the archive holds
    listens from (an import's ``spotify:bob``): otherwise it is a typo, which would
    match nothing without a word. Usage error, exit 2. An account the archive has no
    listens from is only warned about (it may not be synced yet), naming the ones it has.
    """
    from .. import render
    from ..errors import UsageError
    from .options import SOURCE_SERVICES

    service, _, name = (source or "").partition(":")
    if not service:
        return
    known = archive.known_accounts()
    if service not in SOURCE_SERVICES:
        held = sorted({a.service for a in known} - set(SOURCE_SERVICES))
        if service not in held:
            raise UsageError(
                f"unknown service {service!r} in --source: no listens in the archive came "
                "from it",
                hint=f"use {', '.join((*SOURCE_SERVICES, *held))}, optionally with :ACCOUNT")
    if name and not any(a.service == service and a.name == name for a in known):
        names = [a.name for a in known if a.service == service]
        render.warn(f"no listens in the archive came from {source}"
                    + (f" (its {service} accounts: {', '.join(names)})" if names else ""))


def configured_services() -> list[str]:
    """Services with an account name set (settings or environment)."""
    from .. import config

    settings = config.load()
    return [s for s in ("lastfm", "listenbrainz") if getattr(settings, f"{s}_user")]


def read_secret(prompt: str) -> str:
    """A secret from a hidden prompt on a terminal (on stderr: stdout is for data), else
    the next line of stdin, so it can be piped from a password manager without showing
    up in ``ps`` or shell history; "" when there is none (stdin empty or closed)."""
    import sys

    import typer

    from .. import credentials
    from ..errors import CredentialsError

    if sys.stdin is not None and sys.stdin.isatty():
        value = str(typer.prompt(prompt, hide_input=True, err=True))
    else:
        value = sys.stdin.readline() if sys.stdin is not None else ""
    value, problem = credentials.clean(value, "what was given")
    if problem:
        raise CredentialsError(problem, hint="paste it again, as the service shows it")
    return value
