"""Last.fm (and Libre.fm / GNU FM) over the Audioscrobbler 2.0 API.

Three layers, kept apart so each can be tested alone (api-notes Part B):

- pure functions: ``sign`` (B8), ``parse_recent_tracks`` (B6), ``parse_scrobble_response``
  (B9) and ``check_error`` (B7), which read replies as Last.fm really sends them: numbers as
  strings, a single object where a list was expected, errors inside HTTP 200 bodies;
- ``LastfmClient``, which builds (and signs) requests and sends them through the shared
  ``Http`` layer, where pacing and the retries of transient errors live;
- nothing here sleeps or retries on its own, except ``wait_for_session``, whose polling is
  the desktop-auth protocol itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from scrobbler_cli.errors import (
    AuthRejected,
    CredentialsError,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    UnknownUser,
    redact,
    register_secret,
)
from scrobbler_cli.models import LATEST_TIME, SourceRecord
from scrobbler_cli.services.http import Http, canonical_bytes, loads, retry_after

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_API_ROOT",
    "MAX_LIMIT",
    "MAX_SCROBBLES_PER_REQUEST",
    "AuthPending",
    "LastfmClient",
    "PrivateProfile",
    "RecentTracksPage",
    "ScrobbleResult",
    "auth_root_for",
    "check_error",
    "parse_recent_tracks",
    "parse_scrobble_response",
    "sign",
]

DEFAULT_API_ROOT = "https://ws.audioscrobbler.com/2.0/"
#: The documented page size cap of user.getRecentTracks (B6); larger values are unofficial.
MAX_LIMIT = 200
#: track.scrobble takes at most this many scrobbles in one request (B9).
MAX_SCROBBLES_PER_REQUEST = 50

SERVICE = "lastfm"
_UNSIGNED_PARAMS = frozenset({"format", "callback", "api_sig"})
_TRANSIENT_CODES = frozenset({8, 11, 16, 29})
_REAUTH = "run `scrob auth lastfm` again"


class AuthPending(ServiceError):
    """The user has not approved the auth token yet (error 14): keep polling."""


class PrivateProfile(AuthRejected):
    """The profile hides its recent listening (error 17); its own session key can read it."""


@dataclass(frozen=True, slots=True)
class RecentTracksPage:
    """One page of user.getRecentTracks, now-playing dropped, numbers as ints.

    ``user`` is the account Last.fm says the page belongs to (``None`` if it did not say),
    so the client can notice the rare reply that carries another user's tracks.
    """

    records: list[SourceRecord]
    page: int
    total_pages: int
    total: int
    user: str | None = None
    per_page: int = 0  # the page size the server used (0: it did not say)


@dataclass(frozen=True, slots=True)
class ScrobbleResult:
    """What Last.fm did with one submitted scrobble: ``code`` is ignoredMessage.code (B9)."""

    accepted: bool
    code: int
    message: str


# --- pure functions -----------------------------------------------------------------------


def sign(params: Mapping[str, str], secret: str) -> str:
    """The ``api_sig`` of a call (B8): md5 of sorted ``<name><value>`` pairs plus the secret.

    ``format``, ``callback`` (and ``api_sig`` itself) are not signed; values are raw UTF-8,
    not URL-encoded; names sort in byte order, so ``artist[10]`` sorts before ``artist[1]``.
    """
    names = sorted((name for name in params if name not in _UNSIGNED_PARAMS),
                   key=lambda name: name.encode("utf-8"))
    text = "".join(name + params[name] for name in names) + secret
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's choice


def _int(value: Any, default: int = 0) -> int:
    """Last.fm sends most numbers as strings, and sometimes nothing at all."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # (int() of an infinite float)
        return default


def _text(value: Any, *keys: str) -> str:
    """The text of a JSON-ified XML element: a plain string, or ``#text`` / ``name``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in keys or ("#text",):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found
    return ""


def _mbid(value: Any) -> str | None:
    if isinstance(value, dict):
        mbid = value.get("mbid")
        if isinstance(mbid, str) and mbid.strip():
            return mbid.strip()
    return None


def _as_list(value: Any) -> list[Any]:
    """Normalise XML-to-JSON children: missing -> [], a lone object -> [object]."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def _name_and_mbid(value: Any) -> tuple[str, str | None]:
    """``_text(value, "#text", "name")`` and ``_mbid(value)`` in one pass (the hot path)."""
    if type(value) is dict:
        text = value.get("#text")
        if type(text) is not str or not text:
            text = value.get("name")
            if type(text) is not str or not text:
                text = ""
        mbid = value.get("mbid")
        return text, (mbid.strip() or None) if type(mbid) is str else None
    return _text(value, "#text", "name"), _mbid(value)


def _record(item: dict[str, Any]) -> SourceRecord | None:
    """One recent-tracks item as a SourceRecord, or None for now-playing / unusable items."""
    attr = item.get("@attr")
    if attr and isinstance(attr, dict) and str(attr.get("nowplaying", "")).lower() == "true":
        return None
    date = item.get("date")
    if not isinstance(date, dict):
        return None
    uts = _int(date.get("uts"), -1)
    if not 0 <= uts <= LATEST_TIME:
        return None
    artist, artist_mbid = _name_and_mbid(item.get("artist"))
    album, release_mbid = _name_and_mbid(item.get("album"))
    name = item.get("name")
    return SourceRecord(
        listened_at=uts,
        artist=artist,
        track=name if type(name) is str else _text(name),
        album=album if album and not album.isspace() else None,  # " ": no album
        release_mbid=release_mbid,
        artist_mbids=(artist_mbid,) if artist_mbid else (),
        recording_mbid=None,  # a Last.fm track mbid is only a hint; it stays in raw
        raw=canonical_bytes(item),
    )


def parse_recent_tracks(payload: Mapping[str, Any]) -> RecentTracksPage:
    """Map a user.getRecentTracks JSON reply to records (B6), newest first as sent.

    Accepts ``track`` as a list, a single object or missing; drops the now-playing item and
    anything without ``date.uts``; reads ``extended=1`` artists (``name`` for ``#text``);
    takes paging numbers from ``@attr`` or, as Libre.fm sometimes does, from the top level.
    """
    recent = payload.get("recenttracks")
    if not isinstance(recent, dict):
        raise ServiceUnavailable("Last.fm sent a recent-tracks reply without recenttracks",
                                 service=SERVICE)
    attr = recent.get("@attr")
    if not isinstance(attr, dict):
        attr = recent
    records = [
        record
        for item in _as_list(recent.get("track"))
        if isinstance(item, dict) and (record := _record(item)) is not None
    ]
    user = attr.get("user")
    return RecentTracksPage(
        records=records,
        page=_int(attr.get("page"), 1),
        total_pages=_int(attr.get("totalPages")),
        total=_int(attr.get("total")),
        user=user if isinstance(user, str) and user else None,
        per_page=_int(attr.get("perPage")),
    )


def parse_scrobble_response(payload: Mapping[str, Any]) -> list[ScrobbleResult]:
    """Per-scrobble outcomes of a track.scrobble reply, in the order they were sent (B9).

    HTTP 200 says nothing about single scrobbles: each one carries ``ignoredMessage.code``
    (0 accepted; 1 artist / 2 track filtered; 3 too old; 4 too new; 5 daily cap).
    """
    scrobbles = payload.get("scrobbles")
    if not isinstance(scrobbles, dict):
        raise ServiceUnavailable("Last.fm sent a scrobble reply without scrobbles",
                                 service=SERVICE)
    results = []
    for item in _as_list(scrobbles.get("scrobble")):
        ignored = item.get("ignoredMessage") if isinstance(item, dict) else None
        code = _int(ignored.get("code")) if isinstance(ignored, dict) else 0
        message = _text(ignored) if isinstance(ignored, dict) else ""
        results.append(ScrobbleResult(accepted=code == 0, code=code, message=message))
    return results


def _error_of(payload: Any) -> tuple[int | None, str]:
    """The error code and message of a reply: ``{"error": 6, "message": ...}`` or Libre.fm's
    ``{"error": {"code": "7", "#text": ...}}``; ``(None, "")`` when it is not an error."""
    if not isinstance(payload, dict) or "error" not in payload:
        return None, ""
    error = payload["error"]
    message = payload.get("message")
    if isinstance(error, dict):
        message = error.get("#text") or error.get("message") or message
        error = error.get("code")
    return _int(error, 0), message if isinstance(message, str) else ""


def check_error(payload: Any, status: int, *, retry_after: float | None = None,
                secrets: tuple[str, ...] = ()) -> None:
    """Raise the ``ServiceError`` a Last.fm reply stands for, or return if it is a success.

    The body decides first (Last.fm sends errors with HTTP 200 as well as 4xx/5xx, B7); the
    status only when the body says nothing. Transient failures are ``ServiceUnavailable``,
    which the Http layer retries; everything else fails at once. Messages pass through
    ``redact`` with ``secrets`` so no key can leak through an echoed parameter.
    """
    code, said = _error_of(payload)
    said = redact(said, secrets)[:300]
    fields: dict[str, Any] = {"service": SERVICE, "status": status, "code": code}
    if code is None:
        if status == 429 or status >= 500 or status == 400:
            # Last.fm wraps some backend failures in a bare 400 (api-notes B6)
            raise ServiceUnavailable(f"Last.fm answered HTTP {status}",
                                     retry_after=retry_after, **fields)
        if status == 404:
            raise NotFound("Last.fm answered HTTP 404 (not found)", **fields)
        if status >= 400:
            raise ServiceError(f"Last.fm answered HTTP {status}", **fields)
        return
    detail = f"Last.fm error {code}: {said}" if said else f"Last.fm error {code}"
    if code in _TRANSIENT_CODES:
        raise ServiceUnavailable(detail, retry_after=retry_after, **fields)
    if code == 14:
        raise AuthPending("the Last.fm token is not approved yet",
                          hint="approve scrob in the browser page", **fields)
    if code == 15:
        raise AuthRejected("the Last.fm authorization token expired",
                           hint=f"{_REAUTH} and approve it within 60 minutes", **fields)
    if code == 17:
        raise PrivateProfile(
            "this Last.fm profile hides its recent listening (error 17)",
            hint="run `scrob auth lastfm` as that user so scrob can read it with a session key",
            **fields,
        )
    if code in (4, 9, 10, 13, 26):
        raise AuthRejected(f"Last.fm rejected the credentials ({detail})",
                           hint=_AUTH_HINTS[code], **fields)
    if code == 6 and (status == 404 or "not found" in said.lower()):
        raise UnknownUser(f"Last.fm user not found ({detail})",
                       hint="check the user name: --user, SCROB_LASTFM_USER or "
                            "`scrob auth lastfm`",
                       **fields)
    if status == 429 or status >= 500:
        raise ServiceUnavailable(detail, retry_after=retry_after, **fields)
    raise ServiceError(detail, **fields)


_AUTH_HINTS = {
    4: _REAUTH,
    9: f"the session key is invalid or was revoked; {_REAUTH}",
    10: "check the API key (SCROB_LASTFM_API_KEY, or "
        f"{_REAUTH} with a key from https://www.last.fm/api/account/create)",
    13: f"check the API secret (SCROB_LASTFM_API_SECRET), or {_REAUTH}",
    26: "the API key is suspended; create a new one at "
        f"https://www.last.fm/api/account/create and {_REAUTH}",
}


def auth_root_for(api_root: str) -> str:
    """The web page where a user approves a token, derived from the API root.

    Last.fm's API host is not its web host; GNU FM servers such as Libre.fm serve both from
    one host, the auth page sitting next to ``2.0/`` (``https://libre.fm/api/auth/``).
    """
    parts = urlsplit(api_root)
    host = (parts.hostname or "").lower()
    if host == "audioscrobbler.com" or host.endswith(".audioscrobbler.com"):
        return "https://www.last.fm/api/auth/"
    if host == "proxy.listenbrainz.org":
        return "https://listenbrainz.org/api/auth/"
    path = parts.path.rstrip("/")
    base = path.rsplit("/", 1)[0] if path.endswith("/2.0") else ""
    return f"{parts.scheme or 'https'}://{parts.netloc}{base}/api/auth/"


# --- the client ---------------------------------------------------------------------------


def _decode(response: httpx.Response) -> Any:
    """The JSON of a reply, or a ServiceError when there is none worth reading."""
    try:
        return loads(response.content)
    except ValueError:
        status = response.status_code
        if status < 300:
            raise ServiceUnavailable("Last.fm sent a reply that is not JSON",
                                     service=SERVICE, status=status) from None
        check_error(None, status, retry_after=retry_after(response))
        raise ServiceUnavailable(f"Last.fm answered HTTP {status} without JSON",
                                 service=SERVICE, status=status) from None


class LastfmClient:
    """Calls to one Last.fm-compatible API root, signed where a secret is known.

    The ``Http`` it is given owns pacing (Last.fm asks for about 5 requests/s), retries and
    logging; this class only knows the methods, their parameters and their replies.
    """

    def __init__(self, http: Http, *, api_root: str = DEFAULT_API_ROOT, api_key: str,
                 api_secret: str | None = None, session_key: str | None = None) -> None:
        self.http = http
        self.api_root = api_root
        self.api_key = api_key
        self.api_secret = api_secret
        self.session_key = session_key
        register_secret(api_secret)
        register_secret(session_key)

    # -- plumbing

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.api_secret, self.session_key) if s)

    def _params(self, method: str, params: Mapping[str, str], *, signed: bool,
                session: bool) -> dict[str, str]:
        out = {"method": method, "api_key": self.api_key, **params}
        if session:
            if not self.session_key:
                raise CredentialsError(f"{method} needs a Last.fm session key",
                                       hint=_REAUTH)
            out["sk"] = self.session_key
        if signed:
            if not self.api_secret:
                raise CredentialsError(f"{method} needs the Last.fm API secret",
                                       hint="set SCROB_LASTFM_API_SECRET or "
                                            "run `scrob auth lastfm`")
            out["api_sig"] = sign(out, self.api_secret)
        out["format"] = "json"
        return out

    def _classify(self, response: httpx.Response) -> dict[str, Any]:
        payload = _decode(response)
        check_error(payload, response.status_code, retry_after=retry_after(response),
                    secrets=self._secrets())
        if not isinstance(payload, dict):
            raise ServiceUnavailable("Last.fm sent an unexpected reply", service=SERVICE,
                                     status=response.status_code)
        return payload

    def _call(self, method: str, params: Mapping[str, str] | None = None, *,
              signed: bool = False, session: bool = False, post: bool = False,
              classify: Callable[[httpx.Response], Any] | None = None) -> Any:
        query = self._params(method, params or {}, signed=signed, session=session)
        kwargs = {"data": query} if post else {"params": query}
        return self.http.request("POST" if post else "GET", self.api_root,
                                 classify=classify or self._classify, **kwargs)

    # -- reading

    def recent_tracks(self, user: str, *, page: int = 1, from_ts: int | None = None,
                      to_ts: int | None = None, limit: int = MAX_LIMIT) -> RecentTracksPage:
        """One page of a user's scrobbles, newest first (B6).

        Signed with the session key when there is one, so a private profile can read its
        own history. Libre.fm's error 7 ("no tracks after from") reads as an empty page.
        """
        params = {"user": user, "page": str(page), "limit": str(limit)}
        if from_ts is not None:
            params["from"] = str(from_ts)
        if to_ts is not None:
            params["to"] = str(to_ts)
        own = bool(self.session_key and self.api_secret)

        def classify(response: httpx.Response) -> RecentTracksPage:
            payload = _decode(response)
            if _error_of(payload)[0] == 7:
                return RecentTracksPage(records=[], page=page, total_pages=0, total=0)
            check_error(payload, response.status_code, retry_after=retry_after(response),
                        secrets=self._secrets())
            result = parse_recent_tracks(payload)
            if result.user and result.user.casefold() != user.casefold():
                # a known Last.fm bug serves another user's tracks (api-notes B6)
                raise ServiceUnavailable("Last.fm returned another user's recent tracks",
                                         service=SERVICE, status=response.status_code)
            return result

        result: RecentTracksPage = self._call("user.getRecentTracks", params, signed=own,
                                              session=own, classify=classify)
        return result

    def user_info(self, user: str) -> dict[str, Any]:
        """user.getInfo's ``user`` object (name, playcount, registered, ...) as sent."""
        info = self._call("user.getInfo", {"user": user}).get("user")
        if not isinstance(info, dict):
            raise ServiceUnavailable("Last.fm sent a user reply without user", service=SERVICE)
        return info

    def session_user(self) -> str:
        """The name of the account the session key belongs to (signed user.getInfo with no
        ``user``), so nothing is scrobbled to an account other than the one intended."""
        info = self._call("user.getInfo", signed=True, session=True).get("user")
        name = info.get("name") if isinstance(info, dict) else None
        if not isinstance(name, str) or not name:
            raise ServiceUnavailable("Last.fm sent a user reply without a name", service=SERVICE)
        return name

    # -- desktop auth (B8)

    def get_token(self) -> str:
        """A fresh, unapproved auth token (valid for 60 minutes)."""
        token = self._call("auth.getToken", signed=True).get("token")
        if not isinstance(token, str) or not token:
            raise ServiceUnavailable("Last.fm sent no token", service=SERVICE)
        return token

    def auth_url(self, token: str) -> str:
        """The page where the user approves ``token`` for this API key."""
        query = urlencode({"api_key": self.api_key, "token": token})
        return f"{auth_root_for(self.api_root)}?{query}"

    def get_session(self, token: str) -> tuple[str, str]:
        """Trade an approved token for ``(username, session key)``; AuthPending before."""
        session = self._call("auth.getSession", {"token": token}, signed=True).get("session")
        name = session.get("name") if isinstance(session, dict) else None
        key = session.get("key") if isinstance(session, dict) else None
        if not isinstance(name, str) or not isinstance(key, str) or not key:
            raise ServiceUnavailable("Last.fm sent a session reply without name or key",
                                     service=SERVICE)
        register_secret(key)
        return name, key

    def wait_for_session(self, token: str, *, timeout: float = 300, interval: float = 3,
                         sleep: Callable[[float], None] = time.sleep,
                         clock: Callable[[], float] = time.monotonic) -> tuple[str, str]:
        """Poll auth.getSession until the user approves the token or ``timeout`` passes."""
        deadline = clock() + timeout
        while True:
            try:
                return self.get_session(token)
            except AuthPending:
                if clock() + interval > deadline:
                    raise CredentialsError(
                        f"the Last.fm token was not approved within {timeout:g} s",
                        hint=f"{_REAUTH} and approve scrob in the browser",
                    ) from None
                sleep(interval)

    # -- writing (B9)

    def scrobble(self, records: list[SourceRecord]) -> list[ScrobbleResult]:
        """Submit up to 50 scrobbles in one signed POST; one result per record.

        A 200 reply can still ignore some of them; read each ``ScrobbleResult.code``.
        """
        if len(records) > MAX_SCROBBLES_PER_REQUEST:
            raise ValueError(f"at most {MAX_SCROBBLES_PER_REQUEST} scrobbles per request, "
                             f"got {len(records)}")
        if not records:
            return []
        params: dict[str, str] = {}
        for i, record in enumerate(records):
            params[f"artist[{i}]"] = record.artist
            params[f"track[{i}]"] = record.track
            params[f"timestamp[{i}]"] = str(record.listened_at)
            if record.album:
                params[f"album[{i}]"] = record.album
            if record.duration:
                params[f"duration[{i}]"] = str(record.duration)
        payload = self._call("track.scrobble", params, signed=True, session=True, post=True)
        return parse_scrobble_response(payload)
