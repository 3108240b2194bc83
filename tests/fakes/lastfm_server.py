"""A fake Last.fm API on a real loopback socket, for integration tests and benchmarks.

It answers the way api-notes Part B says the real service does, including the awkward
parts: newest-first pages with ``from`` inclusive and ``to`` exclusive, a now-playing item
on top of ``limit``, a single object instead of a one-item list, numbers as strings, errors
inside HTTP 200 bodies, private profiles, signed calls checked with the shared secret, and
per-scrobble ignored codes. Faults (latency, random transient failures, a rate limit) can be
switched on to exercise retries.

It verifies signatures with its own md5 code on purpose, not scrob's ``sign``, so that a
bug in one cannot hide a bug in the other.

Use::

    with FakeLastfm(api_key="k" * 32, api_secret="s" * 32) as fm:
        fm.add_scrobbles("alice", [(1700000000, "Artist", "Track", "Album")])
        client = LastfmClient(http, api_root=fm.url, api_key=fm.api_key)
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FAULT_KINDS", "FakeLastfm", "LoggedRequest", "Scrobble"]

#: Transient failures ``fault_rate`` picks from; ``fail_next`` also takes the extra kinds.
FAULT_KINDS = ("503", "8", "16", "29")
_EXTRA_KINDS = ("11", "500", "not_json", "drop")

_MESSAGES = {
    3: "Invalid Method - No method with that name in this package",
    4: "Authentication Failed - You do not have permissions to access the service",
    6: "Invalid parameters - Your request is missing a required parameter",
    8: "Operation failed - Most likely the backend service failed. Please try again.",
    9: "Invalid session key - Please re-authenticate",
    10: "Invalid API key - You must be granted a valid key by last.fm",
    11: "Service Offline - This service is temporarily offline. Try again later.",
    13: "Invalid method signature supplied",
    14: "Unauthorized Token - This token has not been authorized",
    15: "Token has expired",
    16: "There was a temporary error processing your request. Please try again",
    17: "Login: User required to be logged in",
    29: "Rate Limit Exceeded - Your IP has made too many requests in a short period",
}
_IGNORED = {
    1: "Artist was ignored",
    2: "Track was ignored",
    3: "Timestamp too old",
    4: "Timestamp too new",
    5: "Max daily scrobbles exceeded",
}
_IMAGE_SIZES = (("small", "34s"), ("medium", "64s"), ("large", "174s"),
                ("extralarge", "300x300"))
_TOO_OLD = 14 * 86400
_TOO_NEW = 3600
_TOKEN_LIFETIME = 3600


def _images(key: str) -> list[dict[str, str]]:
    return [{"size": size, "#text": f"https://lastfm.example/i/u/{px}/{key}.jpg"}
            for size, px in _IMAGE_SIZES]


def _url_name(name: str) -> str:
    return name.replace(" ", "+")


def _signature(params: dict[str, str], secret: str) -> str:
    """Last.fm's api_sig, written independently of scrob's ``sign``."""
    text = ""
    for name in sorted(params, key=lambda n: n.encode()):
        if name not in ("format", "callback", "api_sig"):
            text += name + params[name]
    return hashlib.md5((text + secret).encode("utf-8")).hexdigest()


_FRAGMENT = (
    '{{"artist":{{"mbid":"","#text":{artist}}},"streamable":"0","image":{image},"mbid":"",'
    '"album":{{"mbid":"","#text":{album}}},"name":{name},"url":{url},'
    '"date":{{"uts":"{ts}","#text":"{when}"}}}}'
)


class Scrobble:
    """One scrobble in a user's history; its JSON fragment is built once, when first served."""

    __slots__ = ("ts", "artist", "track", "album", "_fragment")

    def __init__(self, ts: int, artist: str, track: str, album: str | None) -> None:
        self.ts = ts
        self.artist = artist
        self.track = track
        self.album = album or ""
        self._fragment: str | None = None

    def as_tuple(self) -> tuple[int, str, str, str | None]:
        return (self.ts, self.artist, self.track, self.album or None)

    def item(self, *, extended: bool = False, nowplaying: bool = False) -> dict[str, Any]:
        artist_url = f"https://www.last.fm/music/{_url_name(self.artist)}"
        out: dict[str, Any] = {}
        if nowplaying:
            out["@attr"] = {"nowplaying": "true"}
        if extended:
            out["artist"] = {"url": artist_url, "mbid": "", "image": _images("a"),
                             "name": self.artist}
            out["loved"] = "0"
        else:
            out["artist"] = {"mbid": "", "#text": self.artist}
        out["streamable"] = "0"
        out["image"] = _images("t")
        out["mbid"] = ""
        out["album"] = {"mbid": "", "#text": self.album}
        out["name"] = self.track
        out["url"] = f"{artist_url}/_/{_url_name(self.track)}"
        if not nowplaying:
            when = time.strftime("%d %b %Y, %H:%M", time.gmtime(self.ts))
            out["date"] = {"uts": str(self.ts), "#text": when}
        return out

    def fragment(self) -> str:
        """``_dumps(self.item())``, built from a template because pages are served hot."""
        if self._fragment is None:
            artist_url = f"https://www.last.fm/music/{_url_name(self.artist)}"
            when = time.strftime("%d %b %Y, %H:%M", time.gmtime(self.ts))
            self._fragment = _FRAGMENT.format(
                artist=_dumps(self.artist), image=_TRACK_IMAGES, album=_dumps(self.album),
                name=_dumps(self.track),
                url=_dumps(f"{artist_url}/_/{_url_name(self.track)}"), ts=self.ts, when=when,
            )
        return self._fragment


@dataclass
class _User:
    name: str
    ts: list[int] = field(default_factory=list)  # ascending, parallel to ``items``
    items: list[Scrobble] = field(default_factory=list)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    private: bool = False
    playing: Scrobble | None = None
    registered: int = 1108296000
    daily: dict[int, int] = field(default_factory=dict)  # UTC day -> accepted scrobbles

    def add(self, batch: Sequence[Scrobble]) -> None:
        """Add scrobbles, keeping time order; big batches sort once instead of inserting."""
        if len(batch) > 32:
            self.items.extend(batch)
            self.items.sort(key=lambda s: s.ts)  # stable: equal timestamps keep arrival order
            self.ts = [s.ts for s in self.items]
        else:
            for s in batch:
                i = bisect.bisect_right(self.ts, s.ts)
                self.ts.insert(i, s.ts)
                self.items.insert(i, s)
        self.seen.update((s.artist, s.track, s.ts) for s in batch)


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake received and what it answered."""

    at: float
    http_method: str
    method: str
    params: dict[str, str]
    status: int
    error: int | None


class _Reply(Exception):
    """Raised inside a handler to answer with an error body (or a fault)."""

    def __init__(self, status: int, body: str, error: int | None = None,
                 content_type: str = "application/json", drop: bool = False) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.error = error
        self.content_type = content_type
        self.drop = drop


def _error(code: int, status: int, message: str | None = None) -> _Reply:
    body = json.dumps({"error": code, "message": message or _MESSAGES.get(code, "Error")})
    return _Reply(status, body, code)


class FakeLastfm:
    """A Last.fm-compatible API server with a Python API to set it up and inspect it.

    Tunables, settable at any time: ``latency`` (seconds slept per request),
    ``fault_rate`` (share of requests answered with a random transient failure, from a
    seeded RNG), ``max_rate`` (answer error 29 / HTTP 429 when more than this many requests
    arrived within the last second), ``daily_cap`` (accepted scrobbles per user per UTC day
    before code 5), ``clock`` (the wall clock scrobble checks use), and
    ``nowplaying_every_page`` (whether the now-playing item tops every page, not only page 1).
    """

    def __init__(self, *, api_key: str = "0123456789abcdef0123456789abcdef",
                 api_secret: str = "fedcba9876543210fedcba9876543210", latency: float = 0.0,
                 fault_rate: float = 0.0, seed: int = 0, max_rate: int | None = None,
                 daily_cap: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.latency = latency
        self.fault_rate = fault_rate
        self.max_rate = max_rate
        self.daily_cap = daily_cap
        self.clock = clock
        self.nowplaying_every_page = False
        self.request_log: list[LoggedRequest] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._users: dict[str, _User] = {}
        self._sessions: dict[str, str] = {}  # session key -> user key
        self._tokens: dict[str, tuple[float, str | None]] = {}  # token -> (issued, user key)
        self._failures: deque[str] = deque()
        self._arrivals: deque[float] = deque()
        self._page_hooks: dict[tuple[str, int], list[Scrobble]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    @property
    def url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:54321/2.0/``."""
        if self._server is None:
            raise RuntimeError("the fake server is not running; use start() or `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/2.0/"

    def start(self) -> FakeLastfm:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-lastfm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLastfm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- setting up

    def _user(self, name: str, *, create: bool = False) -> _User | None:
        key = name.casefold()
        user = self._users.get(key)
        if user is None and create:
            user = self._users[key] = _User(name)
        return user

    def add_user(self, user: str, *, registered: int | None = None) -> None:
        with self._lock:
            u = self._user(user, create=True)
            assert u is not None
            if registered is not None:
                u.registered = registered

    def add_scrobbles(self, user: str,
                      scrobbles: Iterable[Sequence[Any]]) -> None:
        """Add ``(ts, artist, track[, album])`` to a user's history (creating the user).

        No dedup here, so tests can build histories with repeats; track.scrobble dedups.
        """
        batch = _batch(scrobbles)
        with self._lock:
            u = self._user(user, create=True)
            assert u is not None
            u.add(batch)

    def scrobbles(self, user: str) -> list[tuple[int, str, str, str | None]]:
        """The user's current history, oldest first, as ``(ts, artist, track, album)``."""
        with self._lock:
            u = self._user(user)
            return [s.as_tuple() for s in u.items] if u else []

    def set_private(self, user: str, private: bool = True) -> None:
        with self._lock:
            u = self._user(user, create=True)
            assert u is not None
            u.private = private

    def now_playing(self, user: str, artist: str | None, track: str | None = None,
                    album: str | None = None) -> None:
        """Show a now-playing item for ``user``; ``artist=None`` clears it."""
        with self._lock:
            u = self._user(user, create=True)
            assert u is not None
            u.playing = Scrobble(0, artist, track or "", album) if artist else None

    def on_page(self, user: str, page: int,
                scrobbles: Iterable[Sequence[Any]]) -> None:
        """When ``page`` of ``user``'s recent tracks is next requested, these scrobbles
        arrive just before it is served (once), as if scrobbled during a sync."""
        batch = _batch(scrobbles)
        with self._lock:
            self._page_hooks.setdefault((user.casefold(), page), []).extend(batch)

    def fail_next(self, n: int = 1, kind: str = "503") -> None:
        """Answer the next ``n`` requests with a failure: one of FAULT_KINDS, or "11",
        "500", "not_json" (HTTP 200 with an HTML body), "drop" (close without answering)."""
        if kind not in FAULT_KINDS + _EXTRA_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._failures.extend([kind] * n)

    def session_key(self, user: str) -> str:
        """A valid session key for ``user`` (created on first use), skipping the auth flow."""
        with self._lock:
            return self._session_for(user)

    def _session_for(self, user: str) -> str:
        key = user.casefold()
        self._user(user, create=True)
        for sk, owner in self._sessions.items():
            if owner == key:
                return sk
        sk = secrets.token_hex(16)
        self._sessions[sk] = key
        return sk

    def approve(self, token: str, user: str) -> None:
        """The user approves ``token`` in the browser (auth.getSession then succeeds)."""
        with self._lock:
            if token not in self._tokens:
                raise KeyError(f"unknown token {token!r}")
            issued, _ = self._tokens[token]
            self._user(user, create=True)
            self._tokens[token] = (issued, user.casefold())

    def requests_for(self, method: str) -> list[LoggedRequest]:
        """The logged requests for one API method, e.g. ``"user.getRecentTracks"``."""
        return [r for r in self.request_log if r.method == method]

    # -- serving

    def handle(self, http_method: str, path: str, params: dict[str, str]
               ) -> tuple[int, str, str, bool]:
        """Answer one request: ``(status, content type, body, drop connection)``."""
        status, error, body, ctype, drop = 200, None, "", "application/json", False
        try:
            body = self._dispatch(http_method, path, params)
        except _Reply as reply:
            status, error, body = reply.status, reply.error, reply.body
            ctype, drop = reply.content_type, reply.drop
        with self._lock:
            self.request_log.append(LoggedRequest(time.monotonic(), http_method,
                                                  params.get("method", ""), params, status, error))
        return status, ctype, body, drop

    def _fault(self, kind: str) -> _Reply:
        if kind == "503":
            return _Reply(503, "<html><body><h1>503 Service Unavailable</h1></body></html>",
                          content_type="text/html")
        if kind == "500":
            return _Reply(500, "<html><body><h1>500 Internal Server Error</h1></body></html>",
                          content_type="text/html")
        if kind == "not_json":
            return _Reply(200, "<html><body>Oops</body></html>", content_type="text/html")
        if kind == "drop":
            return _Reply(0, "", drop=True)
        if kind == "29":
            return _error(29, 429)
        return _error(int(kind), 200)  # 8, 11, 16: errors inside an HTTP 200

    def _dispatch(self, http_method: str, path: str, params: dict[str, str]) -> str:
        now = time.monotonic()
        with self._lock:
            if self.max_rate is not None:
                self._arrivals.append(now)
                while self._arrivals and self._arrivals[0] <= now - 1.0:
                    self._arrivals.popleft()
                if len(self._arrivals) > self.max_rate:
                    raise _error(29, 429)
            if self._failures:
                raise self._fault(self._failures.popleft())
            if self.fault_rate and self._rng.random() < self.fault_rate:
                raise self._fault(self._rng.choice(FAULT_KINDS))
        if urlsplit(path).path.rstrip("/") != "/2.0":
            raise _Reply(404, "<html><body>Not Found</body></html>", content_type="text/html")
        if params.get("api_key") != self.api_key:
            raise _error(10, 403)
        method = params.get("method", "").lower()
        handler = _METHODS.get(method)
        if handler is None:
            raise _error(3, 400)
        with self._lock:
            return handler(self, http_method, params)

    def _check_signature(self, params: dict[str, str]) -> None:
        if params.get("api_sig", "").lower() != _signature(params, self.api_secret):
            raise _error(13, 403)

    def _session_user(self, params: dict[str, str]) -> _User:
        owner = self._sessions.get(params.get("sk", ""))
        if owner is None:
            raise _error(9, 403)
        return self._users[owner]

    def _find_user(self, name: str) -> _User:
        user = self._user(name) if name else None
        if user is None:
            raise _error(6, 404, "User not found")
        return user

    def _recent_tracks(self, http_method: str, params: dict[str, str]) -> str:
        viewer: _User | None = None
        if "sk" in params or "api_sig" in params:
            self._check_signature(params)
        if "sk" in params:
            viewer = self._session_user(params)
        user = self._find_user(params.get("user") or (viewer.name if viewer else ""))
        limit = _number(params.get("limit"), 50)
        page = _number(params.get("page"), 1)
        if not 1 <= limit <= 1000:
            raise _error(6, 400, "limit param out of bounds (1-1000)")
        if not 1 <= page <= 1_000_000:
            raise _error(6, 400, "page param out of bounds (1-1000000)")
        if user.private and viewer is not user:
            raise _error(17, 403)
        hook = self._page_hooks.pop((user.name.casefold(), page), None)
        if hook:
            user.add(hook)
        lo = bisect.bisect_left(user.ts, _number(params.get("from"), 0))
        to = params.get("to")
        hi = bisect.bisect_left(user.ts, _number(to, 0)) if to else len(user.ts)
        total = max(0, hi - lo)
        total_pages = -(-total // limit)
        top = hi - (page - 1) * limit
        bottom = max(lo, top - limit)
        newest_first = range(top - 1, bottom - 1, -1)
        extended = params.get("extended") == "1"
        if extended:
            fragments = [_dumps(user.items[i].item(extended=True)) for i in newest_first]
        else:
            fragments = [user.items[i].fragment() for i in newest_first]
        if user.playing is not None and (page == 1 or self.nowplaying_every_page):
            fragments.insert(0, _dumps(user.playing.item(extended=extended, nowplaying=True)))
        tracks = fragments[0] if len(fragments) == 1 else "[" + ",".join(fragments) + "]"
        attr = _dumps({"user": user.name, "totalPages": str(total_pages), "page": str(page),
                       "perPage": str(limit), "total": str(total)})
        return f'{{"recenttracks":{{"track":{tracks},"@attr":{attr}}}}}'

    def _user_info(self, http_method: str, params: dict[str, str]) -> str:
        name = params.get("user", "")
        if not name and "sk" in params:
            self._check_signature(params)
            name = self._session_user(params).name
        user = self._find_user(name)
        return _dumps({"user": {
            "name": user.name, "age": "0", "subscriber": "0", "realname": "",
            "bootstrap": "0", "playcount": str(len(user.items)), "artist_count": "0",
            "playlists": "0", "track_count": "0", "album_count": "0", "image": _images("u"),
            "registered": {"unixtime": str(user.registered), "#text": user.registered},
            "country": "None", "gender": "n", "url": f"https://www.last.fm/user/{user.name}",
            "type": "user",
        }})

    def _get_token(self, http_method: str, params: dict[str, str]) -> str:
        self._check_signature(params)
        token = secrets.token_hex(16)
        self._tokens[token] = (self.clock(), None)
        return _dumps({"token": token})

    def _get_session(self, http_method: str, params: dict[str, str]) -> str:
        self._check_signature(params)
        token = params.get("token", "")
        if token not in self._tokens:
            raise _error(4, 403, "Invalid authentication token supplied")
        issued, owner = self._tokens[token]
        if self.clock() - issued > _TOKEN_LIFETIME:
            raise _error(15, 403)
        if owner is None:
            raise _error(14, 403)
        del self._tokens[token]  # a token can be used only once
        user = self._users[owner]
        return _dumps({"session": {"subscriber": 0, "name": user.name,
                                   "key": self._session_for(user.name)}})

    def _scrobble(self, http_method: str, params: dict[str, str]) -> str:
        if http_method != "POST":
            raise _error(4, 403, "You must use POST in order to use this method")
        self._check_signature(params)
        user = self._session_user(params)
        indexes = sorted(int(k[7:-1]) for k in params
                         if k.startswith("artist[") and k.endswith("]") and k[7:-1].isdigit())
        if not indexes and "artist" in params:
            items = [(params["artist"], params.get("track", ""), params.get("timestamp", ""),
                      params.get("album", ""))]
        else:
            items = [(params[f"artist[{i}]"], params.get(f"track[{i}]", ""),
                      params.get(f"timestamp[{i}]", ""), params.get(f"album[{i}]", ""))
                     for i in indexes]
        if not items:
            raise _error(6, 400)
        if len(items) > 50:
            raise _error(6, 400, "Invalid parameters - too many scrobbles (max 50)")
        now = self.clock()
        day = int(now // 86400)
        out, added, accepted = [], [], 0
        for artist, track, stamp, album in items:
            ts = _number(stamp, -1)
            if ts < 0:
                raise _error(6, 400, "Invalid parameters - timestamp")
            code = 0
            if not artist.strip():
                code = 1
            elif not track.strip():
                code = 2
            elif ts < now - _TOO_OLD:
                code = 3
            elif ts > now + _TOO_NEW:
                code = 4
            elif self.daily_cap is not None and user.daily.get(day, 0) >= self.daily_cap:
                code = 5
            if code == 0:
                accepted += 1
                user.daily[day] = user.daily.get(day, 0) + 1
                if (artist, track, ts) not in user.seen:  # silent dedup, still "accepted"
                    scrobble = Scrobble(ts, artist, track, album)
                    added.append(scrobble)
                    user.seen.add((artist, track, ts))
            out.append({
                "artist": {"corrected": "0", "#text": artist},
                "album": {"corrected": "0", "#text": album},
                "track": {"corrected": "0", "#text": track},
                "albumArtist": {"corrected": "0", "#text": ""},
                "timestamp": str(ts),
                "ignoredMessage": {"code": str(code), "#text": _IGNORED.get(code, "")},
            })
        user.add(added)
        scrobble_json: Any = out[0] if len(out) == 1 else out
        return _dumps({"scrobbles": {"scrobble": scrobble_json,
                                     "@attr": {"accepted": accepted,
                                               "ignored": len(out) - accepted}}})


def _batch(scrobbles: Iterable[Sequence[Any]]) -> list[Scrobble]:
    """``(ts, artist, track[, album])`` tuples as Scrobbles."""
    return [Scrobble(int(s[0]), str(s[1]), str(s[2]), s[3] if len(s) > 3 else None)
            for s in scrobbles]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


_TRACK_IMAGES = _dumps(_images("t"))


def _number(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _error(6, 400, f"Invalid parameters - not a number: {value[:20]}") from None


_METHODS: dict[str, Callable[[FakeLastfm, str, dict[str, str]], str]] = {
    "user.getrecenttracks": FakeLastfm._recent_tracks,
    "user.getinfo": FakeLastfm._user_info,
    "auth.gettoken": FakeLastfm._get_token,
    "auth.getsession": FakeLastfm._get_session,
    "track.scrobble": FakeLastfm._scrobble,
}


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP into ``FakeLastfm.handle`` calls; keep-alive so clients reuse connections."""

    protocol_version = "HTTP/1.1"
    server_fake: FakeLastfm
    timeout = 10  # idle keep-alive connections end after this

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK stall every small reply by ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # quiet: tests read ``request_log`` instead

    def _serve(self, http_method: str) -> None:
        fake = self.server_fake
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        if http_method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            params.update(parse_qsl(body, keep_blank_values=True))
        if fake.latency:
            time.sleep(fake.latency)
        status, ctype, text, drop = fake.handle(http_method, split.path, params)
        if drop:
            self.close_connection = True
            return
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._serve("POST")
