"""What several commands share: building a service's config from settings and secrets."""

from __future__ import annotations

from ..errors import CredentialsError
from ..models import ServiceConfig

ENV_HINT = {
    "lastfm": "run `scrob auth lastfm`, or set SCROB_LASTFM_USER, SCROB_LASTFM_API_KEY "
              "(and SCROB_LASTFM_API_SECRET, SCROB_LASTFM_SESSION_KEY)",
    "listenbrainz": "run `scrob auth listenbrainz`, or set SCROB_LISTENBRAINZ_USER and "
                    "SCROB_LISTENBRAINZ_TOKEN",
}


def service_config(service: str, user: str | None = None) -> ServiceConfig:
    """The account to use: ``--user`` or the configured one, with its secrets."""
    from .. import config, credentials

    settings = config.load()
    if service == "lastfm":
        return ServiceConfig(
            service="lastfm",
            api_url=settings.lastfm_api_url,
            user=user or settings.lastfm_user,
            api_key=credentials.get("lastfm_api_key").value,
            api_secret=credentials.get("lastfm_api_secret").value,
            session_key=credentials.get("lastfm_session_key").value,
            rate=float(settings.lastfm_rate),
        )
    return ServiceConfig(
        service="listenbrainz",
        api_url=settings.listenbrainz_api_url,
        user=user or settings.listenbrainz_user,
        token=credentials.get("listenbrainz_token").value,
    )


def require_user(cfg: ServiceConfig) -> str:
    if not cfg.user:
        raise CredentialsError(f"no {cfg.service} account is configured",
                               hint=ENV_HINT[cfg.service] + ", or pass --user")
    return cfg.user


def configured_services() -> list[str]:
    """Services with an account name set (settings or environment)."""
    from .. import config

    settings = config.load()
    return [s for s in ("lastfm", "listenbrainz") if settings.values[f"{s}_user"]]
