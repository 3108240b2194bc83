"""What several commands share: building a service's config from settings and secrets."""

from __future__ import annotations

from ..models import ServiceConfig


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


def configured_services() -> list[str]:
    """Services with an account name set (settings or environment)."""
    from .. import config

    settings = config.load()
    return [s for s in ("lastfm", "listenbrainz") if settings.values[f"{s}_user"]]
