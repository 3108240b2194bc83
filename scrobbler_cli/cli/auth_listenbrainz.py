"""``scrob auth listenbrainz``: a user token, checked with the server, into the keyring."""

from __future__ import annotations

import typer

from .options import Json

PROMPT = "ListenBrainz user token (from your profile's settings page; input hidden)"


def login(json_: Json = False) -> None:
    """Log in to ListenBrainz (or a compatible server such as Maloja or Koito).

    Reads the user token from a hidden prompt, or from stdin when stdin is not a
    terminal; checks it with the server (SCROB_LISTENBRAINZ_API_URL or the settings
    file); stores it in the keyring and the account name the server gives in the
    settings. The token is never printed.
    """
    from .. import config, credentials, render
    from ..engines.listenbrainz import connect
    from ..errors import CredentialsError, KeyringUnavailable, register_secret
    from ..models import ServiceConfig
    from . import state
    from .common import read_secret

    # before the token is asked for or sent anywhere: it can only go to the keyring
    if not credentials.keyring_usable():
        raise KeyringUnavailable(
            "no usable keyring backend to store the ListenBrainz token in",
            hint="set SCROB_LISTENBRAINZ_USER and SCROB_LISTENBRAINZ_TOKEN instead, or "
                 "install a file-based backend with `pip install keyrings.alt`")
    token = read_secret(PROMPT)
    if not token:
        raise CredentialsError("no ListenBrainz token was given",
                               hint="paste the user token from your ListenBrainz settings page")
    register_secret(token)
    settings = config.load()
    client = connect(ServiceConfig(service="listenbrainz",
                                   api_url=settings.listenbrainz_api_url, token=token),
                     log=state().log)
    try:
        name = client.validate_token()
    finally:
        client.http.client.close()
    credentials.store("listenbrainz_token", token)
    config.save("listenbrainz", "user", name)
    if json_:
        render.write_json({"service": "listenbrainz", "user": name,
                           "api_url": settings.listenbrainz_api_url, "token_stored": "keyring"})
    else:
        render.message(f"logged in to ListenBrainz as {render.visible(name)}; "
                       "the token is in the keyring")
    if credentials.get("listenbrainz_token").origin == "env":
        render.warn("SCROB_LISTENBRAINZ_TOKEN is set and wins over the keyring while it is")


def register(app: typer.Typer) -> None:
    app.command("listenbrainz")(login)
