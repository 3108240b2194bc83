"""``scrob auth lastfm``: Last.fm's desktop authorization, secrets into the keyring.

The flow itself (token, approval URL, polling) is ``engines.lastfm.authorize``; this
command only asks for what is missing, shows the URL, and stores the result.
"""

from __future__ import annotations

from typing import Annotated

import typer

NoBrowser = Annotated[bool, typer.Option(
    "--no-browser", help="Only print the approval URL; do not try to open a browser.")]
Wait = Annotated[float, typer.Option(
    "--wait", metavar="SECONDS", min=1,
    help="How long to wait for the approval in the browser.")]


def _keyring_usable() -> bool:
    """Whether ``credentials.store`` could put a secret in the keyring: a backend that
    answers, with a priority above 0 (the "fail" and "null" backends have 0 and -1)."""
    from .. import credentials

    if credentials.get("lastfm_session_key").origin == "keyring unavailable":
        return False
    return credentials.keyring_usable()


def _ask(name: str, label: str, asked: dict[str, str]) -> str:
    """A secret from the environment or keyring, else asked for with hidden input on a
    terminal, else read from a line of stdin (cron, a pipe)."""
    from .. import credentials
    from .common import read_secret, secret

    known = secret(name)
    if known:
        return known
    value = read_secret(label)
    if not value:
        from ..errors import CredentialsError

        raise CredentialsError(f"no {label} given", hint=f"type it at the prompt in a "
                               f"terminal, or set {credentials.SECRETS[name]}")
    asked[name] = value
    return value


def login_lastfm(no_browser: NoBrowser = False, wait: Wait = 300.0) -> None:
    """Authorize scrob for your Last.fm account (or a compatible server such as Libre.fm).

    Asks (hidden input; from stdin, a line each, when stdin is not a terminal) for the
    API key and shared secret of your Last.fm API account
    (https://www.last.fm/api/account/create) unless the keyring or SCROB_LASTFM_API_KEY /
    SCROB_LASTFM_API_SECRET already hold them, prints the page where you approve scrob
    and opens it in a browser, waits for the approval, then stores the session key in
    the keyring and the username in the settings.
    """
    import webbrowser

    from .. import config, credentials, render
    from ..engines.lastfm import authorize
    from ..errors import AuthRejected, KeyringUnavailable
    from ..models import ServiceConfig
    from . import state

    st = state()
    # before anything is asked or approved: the session key can only go to the keyring
    if not _keyring_usable():
        raise KeyringUnavailable(
            "no usable keyring backend to store the Last.fm session key in",
            hint="set SCROB_LASTFM_USER, SCROB_LASTFM_API_KEY, SCROB_LASTFM_API_SECRET and "
                 "SCROB_LASTFM_SESSION_KEY instead, or install a file-based backend with "
                 "`pip install keyrings.alt`")
    asked: dict[str, str] = {}
    api_key = _ask("lastfm_api_key", "Last.fm API key", asked)
    api_secret = _ask("lastfm_api_secret", "Last.fm shared secret", asked)
    settings = config.load()
    cfg = ServiceConfig(service="lastfm", api_url=settings.lastfm_api_url, api_key=api_key,
                        api_secret=api_secret, rate=float(settings.lastfm_rate))

    def say(text: str) -> None:
        if not st.quiet:  # --quiet: nothing on stderr but errors (and the URL)
            render.message(text)

    def show(url: str) -> None:
        # the URL carries the API key (an application id, which Last.fm's page needs)
        # and a one-time token; never the secret or a session key. Shown even with
        # --quiet: without it the authorization cannot go on.
        say("Open this page and allow scrob to use your account:")
        typer.echo(f"  {render.visible(url)}", err=True)  # one line, never folded
        if not no_browser:
            try:
                webbrowser.open(url)
            except Exception:  # noqa: BLE001 - a browser is a convenience, the URL is shown
                pass
        say(f"Waiting for the approval (up to {wait:g} s; Ctrl-C to stop)...")

    try:
        name, session_key = authorize(cfg, on_url=show, timeout=wait, log=st.log)
    except AuthRejected as exc:
        if exc.code in (10, 13, 26) and not asked:
            exc.hint = ("the stored key or secret was rejected; run `scrob auth logout "
                        "lastfm` (or fix SCROB_LASTFM_API_KEY / SCROB_LASTFM_API_SECRET) "
                        "and try again")
        raise
    for secret, value in asked.items():
        credentials.store(secret, value)
    credentials.store("lastfm_session_key", session_key)
    config.save("lastfm", "user", name)
    say(f"Authorized as {name}; the session key is in the keyring.")
    if not st.quiet and settings.origin["lastfm_user"] == "env" and \
            str(settings.lastfm_user).casefold() != name.casefold():
        render.warn(f"SCROB_LASTFM_USER is set to {settings.lastfm_user}, which overrides "
                    f"{name} for every command")


def register(app: typer.Typer) -> None:
    """Add ``lastfm`` to the ``scrob auth`` group."""
    app.command("lastfm")(login_lastfm)
