"""``scrob auth status | logout`` (and the per-service logins)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import auth_lastfm, auth_listenbrainz
from .options import Json

app = typer.Typer(help="Log in to the services, see where credentials come from, log out.",
                  no_args_is_help=True)
auth_listenbrainz.register(app)
auth_lastfm.register(app)

SERVICES = {
    "lastfm": ("lastfm_user", ["lastfm_api_key", "lastfm_api_secret", "lastfm_session_key"]),
    "listenbrainz": ("listenbrainz_user", ["listenbrainz_token"]),
}


def status_rows() -> list[dict[str, object]]:
    """Each service: its user and where each secret would come from (never the value)."""
    from .. import config, credentials

    settings = config.load()
    rows = []
    for service, (user_key, secrets) in SERVICES.items():
        found = {name.removeprefix(service + "_"): credentials.get(name).origin
                 for name in secrets}
        rows.append({
            "service": service,
            "user": getattr(settings, user_key),
            "user_from": settings.origin[user_key],
            "secrets": found,
            "configured": bool(getattr(settings, user_key))
            and all(o in ("env", "keyring") for o in found.values()),
        })
    return rows


@app.command("status")
def status(json_: Json = False) -> None:
    """Show configured accounts and where each secret comes from (keyring or
    environment). Secret values are never shown. Works with nothing configured."""
    from .. import render

    rows = status_rows()
    if json_:
        render.write_json({"accounts": rows})
        return
    render.table(None, ["service", "user", "secrets", "ready"], (
        [r["service"], f"{r['user'] or '-'} ({r['user_from']})",
         ", ".join(f"{k}: {v}" for k, v in r["secrets"].items()),  # type: ignore[attr-defined]
         "yes" if r["configured"] else "no"] for r in rows))


@app.command("logout")
def logout(
    service: Annotated[str, typer.Argument(help="lastfm or listenbrainz.")],
) -> None:
    """Forget a service's secrets (keyring) and username (settings)."""
    from .. import config, credentials, render
    from ..errors import UsageError

    if service not in SERVICES:
        raise UsageError(f"unknown service {service!r}", hint="use lastfm or listenbrainz")
    user_key, secrets = SERVICES[service]
    # (a keyring that will not remove a secret stops here, with the username kept: the
    # same command finishes the job once the keyring is unlocked)
    removed = [name for name in secrets if credentials.forget(name)]
    config.save(service, "user", None)
    render.message(f"logged out of {service}" + (
        f" ({render.count(len(removed), 'secret')} removed from the keyring)" if removed
        else ""))
    env_left = [credentials.SECRETS[n] for n in secrets if credentials.get(n).origin == "env"]
    if env_left:
        render.warn("still set in the environment: " + ", ".join(env_left))
