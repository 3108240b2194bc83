"""A fake ListenBrainz API on a real loopback socket, for tests and benchmarks.

It follows the behaviour written down in the project's api-notes, part A, so that
clients are tested against the server's real quirks:

- ``GET /1/user/{u}/listens``: strict bounds, ``count`` default 25 and silently capped
  at 1000, newest-first output, the oldest ``count`` after ``min_ts`` when only it is
  given, the oldest ``count`` inside the range when both are given, ``user_id`` echoing
  the URL, case-insensitive user lookup. (A bound of 0 counts as absent, as on the
  server. The window-growth boundary skip of api-notes A5.2 is *not* imitated.)
- ``POST /1/submit-listens``: token required, all-or-nothing validation with the real
  error shape (``{"code":400,"error":...}`` merged with the offending listen), request
  and size limits, and silent dedup on ``(listened_at, recording_msid)`` with an msid
  derived (uuid5) from the case-insensitive messybrainz key. Accepted listens are
  visible at once (the real server is asynchronous).
- ``GET /1/validate-token``, ``/1/user/{u}/listen-count``, ``/1/user/{u}/playing-now``.
- ``X-RateLimit-*`` headers on every reply, a fixed window, and the real 429 body.
- Injected latency, seeded random 503s (``fault_rate``) and ``fail_next``.

Use it as a context manager (``with FakeListenBrainz() as lb: lb.url``) or call
``start()``/``stop()``. Listens live in a per-user sorted list searched with bisect and
their JSON is cached, so pages of 1000 are served at hundreds of pages per second.
"""

from __future__ import annotations

import bisect
import copy
import functools
import hashlib
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

__all__ = ["FakeListenBrainz", "LoggedRequest", "msid_for"]

LISTEN_MINIMUM_TS = 1033430400
ALLOWED_SKEW = 3600
DEFAULT_ITEMS_PER_GET = 25
MAX_ITEMS_PER_GET = 1000
MAX_LISTENS_PER_REQUEST = 1000
MAX_LISTEN_SIZE = 10240
MAX_LISTEN_PAYLOAD_SIZE = MAX_LISTEN_SIZE * MAX_LISTENS_PER_REQUEST
MAX_TAGS_PER_LISTEN = 50
MAX_TAG_SIZE = 64
MAX_DURATION = 24 * 24 * 60 * 60
MAX_DURATION_MS = MAX_DURATION * 1000
PLAYING_NOW_MAX_DURATION = 600

RATE_LIMIT_MESSAGE = (
    "You have exceeded your rate limit. See the X-RateLimit-* response headers for more "
    "information on your current rate limit."
)
_MSID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://fake.listenbrainz.invalid/msid")
_MSID_PREFIX = _MSID_NAMESPACE.bytes

Listen = dict[str, Any]
ListenInput = Mapping[str, Any] | tuple[Any, ...]


def msid_for(track_metadata: Mapping[str, Any]) -> str:
    """The fake's recording_msid: uuid5 of the case-insensitive messybrainz key.

    The key is (track, artist, release, additional_info.track_number, duration in ms),
    as in the server; ``tracknumber`` (the documented field) does not take part.
    """
    info = track_metadata.get("additional_info") or {}
    duration_ms: Any = ""
    if info.get("duration") not in (None, ""):
        duration_ms = int(info["duration"]) * 1000
    elif info.get("duration_ms") not in (None, ""):
        duration_ms = int(info["duration_ms"])
    parts = [
        str(track_metadata.get("track_name") or "").strip().lower(),
        str(track_metadata.get("artist_name") or "").strip().lower(),
        str(track_metadata.get("release_name") or "").strip().lower(),
        str(info.get("track_number") if info.get("track_number") is not None else "").lower(),
        str(duration_ms),
    ]
    return _msid("\x1f".join(parts))


@functools.lru_cache(maxsize=65536)
def _msid(key: str) -> str:
    """``str(uuid.uuid5(_MSID_NAMESPACE, key))``, without building a UUID object (a
    third of what the fake spends storing an exported listen)."""
    digest = bytearray(hashlib.sha1(_MSID_PREFIX + key.encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: Values that are never mappings: checked first, since ``isinstance(x, Mapping)`` (an
#: abstract class) costs several times as much and most values are these.
_LEAVES = (str, int, float, list, type(None))


def _flatten(info: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts in additional_info come back with dotted keys, as on the server."""
    flat: dict[str, Any] = {}
    for key, value in info.items():
        name = f"{prefix}{key}"
        if not isinstance(value, _LEAVES) and isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Rejected(Exception):
    """A 4xx reply: status, message and (for per-listen errors) the offending listen."""

    def __init__(self, status: int, message: str, listen: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.listen = listen

    def body(self) -> dict[str, Any]:
        out = dict(self.listen) if isinstance(self.listen, Mapping) else {}
        out["code"] = self.status
        out["error"] = self.message
        return out


@dataclass
class LoggedRequest:
    """One request as the fake saw it (path without the prefix, lower-case header names)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    body: bytes = b""


@dataclass
class _User:
    name: str
    token: str | None
    keys: list[tuple[int, str]] = field(default_factory=list)  # sorted (listened_at, msid)
    stamps: list[int] = field(default_factory=list)  # listened_at of ``keys``
    rows: dict[tuple[int, str], Listen] = field(default_factory=dict)
    encoded: dict[tuple[int, str], bytes] = field(default_factory=dict)
    pending: list[tuple[int, str]] = field(default_factory=list)
    playing_now: Listen | None = None
    playing_until: float = 0.0

    def settle(self) -> None:
        """Merge pending keys into the sorted index (insort for a few, sort for many)."""
        if not self.pending:
            return
        if len(self.pending) <= 32:
            for key in self.pending:
                at = bisect.bisect_left(self.keys, key)
                self.keys.insert(at, key)
                self.stamps.insert(at, key[0])
        else:
            self.keys.extend(self.pending)
            self.keys.sort()
            self.stamps = [k[0] for k in self.keys]
        self.pending.clear()

    def encode(self, key: tuple[int, str]) -> bytes:
        data = self.encoded.get(key)
        if data is None:
            data = self.encoded[key] = _dumps(self.rows[key])
        return data


class FakeListenBrainz:
    """The fake server. Attributes may be changed while it runs:

    ``latency`` (seconds slept per request), ``fault_rate`` (probability of a 503,
    drawn from a ``random.Random(seed)``), ``rate_limit``/``rate_window`` (requests per
    fixed window; generous by default), ``clock`` (time source for rate windows,
    timestamps and the listened_at future check).
    """

    def __init__(
        self,
        prefix: str = "",
        *,
        host: str = "127.0.0.1",
        rate_limit: int = 100_000,
        rate_window: int = 10,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.host = host
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.latency = latency
        self.fault_rate = fault_rate
        self.clock = clock
        self.request_log: list[LoggedRequest] = []
        self._submitted_bodies: list[bytes] = []
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}  # by lower-case name
        self._tokens: dict[str, _User] = {}
        self._fail_queue: list[tuple[int, bytes | None]] = []
        self._window_reset = 0
        self._window_used = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeListenBrainz:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-listenbrainz",
                                        kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeListenBrainz:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not running; call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The API root including the prefix; clients append ``/1/...``."""
        return f"http://{self.host}:{self.port}{self.prefix}"

    # ------------------------------------------------------------------ test API

    @property
    def submitted_batches(self) -> list[list[Listen]]:
        """The listens of each accepted import/single request, as sent (parsed when
        asked: validation coerces the parsed copy in place)."""
        return [orjson.loads(body)["payload"] for body in self._submitted_bodies]

    def add_user(self, name: str, token: str | None = None) -> None:
        with self._lock:
            user = _User(name=name, token=token)
            self._users[name.lower()] = user
            if token:
                self._tokens[token] = user

    def add_listens(self, user: str, listens: Iterable[ListenInput]) -> int:
        """Store listens directly (no validation); returns how many were new.

        Each item is a listen dict (submit, API or export shape; a given
        ``recording_msid``/``inserted_at`` is kept) or a tuple
        ``(listened_at, artist, track[, album[, duration]])``.
        """
        with self._lock:
            target = self._user(user)
            now = int(self.clock())
            added = 0
            for item in listens:
                listen = self._from_tuple(item) if isinstance(item, tuple) else dict(item)
                added += self._store(target, listen, now)
            return added

    def listens(self, user: str) -> list[Listen]:
        """The stored history of ``user`` in API form, newest first (copies)."""
        with self._lock:
            target = self._user(user)
            target.settle()
            return [copy.deepcopy(target.rows[k]) for k in reversed(target.keys)]

    def map_listens(self, user: str, listened_at: int, mapping: Mapping[str, Any]) -> int:
        """What the server's MBID mapper does some time after a submission: give the
        user's listens at ``listened_at`` this ``mbid_mapping``. Returns how many."""
        with self._lock:
            target = self._user(user)
            keys = [k for k in target.rows if k[0] == listened_at]
            for key in keys:
                target.rows[key]["track_metadata"]["mbid_mapping"] = dict(mapping)
                target.encoded.pop(key, None)
            return len(keys)

    def set_playing_now(self, user: str, track_metadata: Mapping[str, Any],
                        duration: float = PLAYING_NOW_MAX_DURATION) -> None:
        with self._lock:
            target = self._user(user)
            target.playing_now = self._playing_now_row(target, dict(track_metadata))
            target.playing_until = self.clock() + duration

    def fail_next(self, n: int = 1, status: int = 503, body: bytes | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``body``, else a JSON error)."""
        with self._lock:
            self._fail_queue.extend([(status, body)] * n)

    def requests_to(self, path_suffix: str) -> list[LoggedRequest]:
        """Logged requests whose path ends with ``path_suffix``."""
        with self._lock:
            return [r for r in self.request_log if r.path.endswith(path_suffix)]

    # ------------------------------------------------------------------ storage

    def _user(self, name: str) -> _User:
        try:
            return self._users[name.lower()]
        except KeyError:
            raise KeyError(f"no such fake user: {name}") from None

    @staticmethod
    def _from_tuple(item: tuple[Any, ...]) -> Listen:
        listened_at, artist, track, *rest = item
        metadata: dict[str, Any] = {"artist_name": artist, "track_name": track,
                                    "additional_info": {}}
        if rest and rest[0]:
            metadata["release_name"] = rest[0]
        if len(rest) > 1 and rest[1]:
            metadata["additional_info"]["duration"] = int(rest[1])
        return {"listened_at": int(listened_at), "track_metadata": metadata}

    def _store(self, user: _User, listen: Listen, now: int, *, keep_msid: bool = True,
               fresh: bool = False) -> int:
        """Store one listen unless ``(listened_at, msid)`` is already there (silent dedup).

        ``keep_msid`` keeps an msid the listen already carries (fixtures, exports);
        submissions always get the derived one, as on the server. ``fresh`` listens were
        just parsed from a request body, so nothing else holds them and no copy is needed.
        """
        metadata = (dict(listen["track_metadata"]) if fresh
                    else copy.deepcopy(dict(listen["track_metadata"])))
        info = _flatten(metadata.get("additional_info") or {})
        metadata["additional_info"] = info
        given = metadata.pop("recording_msid", None)
        msid = ((listen.get("recording_msid") or given or info.get("recording_msid"))
                if keep_msid else None) or msid_for(metadata)
        info["recording_msid"] = msid
        if not isinstance(metadata.get("mbid_mapping"), Mapping):
            metadata.pop("mbid_mapping", None)
        listened_at = int(float(listen["listened_at"]))
        key = (listened_at, msid)
        if key in user.rows:
            return 0  # silent dedup, as ON CONFLICT DO NOTHING
        inserted = listen.get("inserted_at")
        user.rows[key] = {
            "inserted_at": int(float(inserted)) if inserted not in (None, "") else now,
            "listened_at": listened_at,
            "recording_msid": msid,
            "track_metadata": metadata,
            "user_name": user.name,
        }
        user.pending.append(key)
        return 1

    def _playing_now_row(self, user: _User, metadata: dict[str, Any]) -> Listen:
        metadata = copy.deepcopy(metadata)
        info = _flatten(metadata.get("additional_info") or {})
        info["recording_msid"] = msid_for({**metadata, "additional_info": info})
        metadata["additional_info"] = info
        return {"playing_now": True, "track_metadata": metadata, "user_name": user.name}

    # ------------------------------------------------------------------ HTTP

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        now = self.clock()
        window = max(1, int(self.rate_window))
        reset = (int(now) // window) * window + window
        if reset != self._window_reset:
            self._window_reset, self._window_used = reset, 0
        self._window_used += 1
        remaining = max(self.rate_limit - self._window_used, 0)
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Reset-In": str(reset - int(now)),
            "Access-Control-Expose-Headers": "X-RateLimit-Limit, X-RateLimit-Remaining, "
                                             "X-RateLimit-Reset, X-RateLimit-Reset-In",
        }
        return headers, self._window_used > self.rate_limit

    def handle(self, entry: LoggedRequest) -> tuple[int, dict[str, str], bytes]:
        """Answer one request (called by the handler thread, under the lock)."""
        with self._lock:
            self.request_log.append(entry)
            headers, limited = self._rate_headers()
            status, body = self._answer(entry, limited)
            entry.status = status
            return status, headers, body

    def _answer(self, entry: LoggedRequest, limited: bool) -> tuple[int, bytes]:
        if limited:
            return 429, _dumps({"code": 429, "error": RATE_LIMIT_MESSAGE})
        if self._fail_queue:
            status, body = self._fail_queue.pop(0)
            return status, body if body is not None else _dumps(self._error_for(status))
        if self.fault_rate and self._random.random() < self.fault_rate:
            return 503, _dumps(self._error_for(503))
        if not entry.path.startswith(self.prefix + "/"):
            return 404, _dumps({"code": 404, "error": "Not found"})
        route = entry.path[len(self.prefix):]
        try:
            return 200, self._route(entry, route)
        except _Rejected as exc:
            return exc.status, _dumps(exc.body())

    @staticmethod
    def _error_for(status: int) -> dict[str, Any]:
        if status == 429:
            return {"code": 429, "error": RATE_LIMIT_MESSAGE}
        if status == 503:
            return {"code": 503, "error": "The listen database is currently not available, "
                                          "please try again later."}
        return {"code": status, "error": f"Injected failure (HTTP {status})"}

    def _route(self, entry: LoggedRequest, route: str) -> bytes:
        parts = [unquote(p) for p in route.strip("/").split("/")]
        if len(parts) == 4 and parts[0] == "1" and parts[1] == "user":
            if entry.method != "GET":
                raise _Rejected(405, "The method is not allowed for the requested URL.")
            handler = {"listens": self._get_listens, "listen-count": self._get_listen_count,
                       "playing-now": self._get_playing_now}.get(parts[3])
            if handler is not None:
                return handler(entry, parts[2])
        elif parts == ["1", "validate-token"] and entry.method == "GET":
            return self._validate_token(entry)
        elif parts == ["1", "submit-listens"] and entry.method == "POST":
            return self._submit(entry)
        raise _Rejected(404, "The requested URL was not found on the server.")

    def _lookup(self, name: str) -> _User:
        user = self._users.get(name.lower())
        if user is None:
            raise _Rejected(404, f"Cannot find user: {name}")
        return user

    @staticmethod
    def _int_arg(entry: LoggedRequest, name: str) -> int | None:
        value = entry.query.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise _Rejected(400, f"Invalid {name} argument: {value}") from None

    def _get_listens(self, entry: LoggedRequest, name: str) -> bytes:
        user = self._lookup(name)
        min_ts = self._int_arg(entry, "min_ts")
        max_ts = self._int_arg(entry, "max_ts")
        count = self._int_arg(entry, "count")
        count = DEFAULT_ITEMS_PER_GET if count is None else count
        if count < 0:
            raise _Rejected(400, "Number of items requested should be positive")
        count = min(count, MAX_ITEMS_PER_GET)
        if min_ts and max_ts and max_ts <= min_ts:
            raise _Rejected(400, "max_ts should be greater than min_ts")
        user.settle()
        keys, stamps = user.keys, user.stamps
        if min_ts and max_ts:  # one fixed ascending pass inside the range
            lo = bisect.bisect_right(stamps, min_ts)
            hi = bisect.bisect_left(stamps, max_ts)
            chosen = keys[lo:min(hi, lo + count)]
        elif min_ts:  # ascending from min_ts: the oldest ``count`` after it
            lo = bisect.bisect_right(stamps, min_ts)
            chosen = keys[lo:lo + count]
        else:  # descending from max_ts (or from the newest listen)
            hi = bisect.bisect_left(stamps, max_ts) if max_ts else len(keys)
            chosen = keys[max(0, hi - count):hi] if count else []
        listens = b",".join(user.encode(k) for k in reversed(chosen))
        return b"".join([
            b'{"payload":{"count":', str(len(chosen)).encode(),
            b',"latest_listen_ts":', str(stamps[-1] if stamps else 0).encode(),
            b',"listens":[', listens,
            b'],"oldest_listen_ts":', str(stamps[0] if stamps else 0).encode(),
            b',"user_id":', _dumps(name), b"}}",
        ])

    def _get_listen_count(self, entry: LoggedRequest, name: str) -> bytes:
        user = self._lookup(name)
        return _dumps({"payload": {"count": len(user.rows)}})

    def _get_playing_now(self, entry: LoggedRequest, name: str) -> bytes:
        user = self._lookup(name)
        listens = []
        if user.playing_now is not None and self.clock() < user.playing_until:
            listens = [user.playing_now]
        return _dumps({"payload": {"count": len(listens), "listens": listens,
                                   "playing_now": True, "user_id": name}})

    def _token_user(self, entry: LoggedRequest) -> tuple[str | None, _User | None]:
        header = entry.headers.get("authorization", "")
        token: str | None = None
        if header.lower().startswith("token "):
            token = header.split(" ", 1)[1].strip()
        return token, self._tokens.get(token) if token else None

    def _validate_token(self, entry: LoggedRequest) -> bytes:
        token, user = self._token_user(entry)
        if token is None:
            token = entry.query.get("token")  # still accepted for backward compatibility
            user = self._tokens.get(token) if token else None
        if not token:
            raise _Rejected(400, "You need to provide an Authorization token.")
        if user is None:
            return _dumps({"code": 200, "message": "Token invalid.", "valid": False})
        return _dumps({"code": 200, "message": "Token valid.", "valid": True,
                       "user_name": user.name})

    def _submit(self, entry: LoggedRequest) -> bytes:
        if not entry.headers.get("authorization"):
            raise _Rejected(401, "You need to provide an Authorization header.")
        _, user = self._token_user(entry)
        if user is None:
            raise _Rejected(401, "Invalid authorization token.")
        raw = entry.body
        if len(raw) > MAX_LISTEN_PAYLOAD_SIZE:
            raise _Rejected(400, f"Payload too large. Payload cannot exceed "
                                 f"{MAX_LISTEN_PAYLOAD_SIZE} bytes")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Rejected(400, f"Cannot parse JSON document: {exc}") from None
        if not isinstance(data, dict):
            raise _Rejected(400, "Invalid JSON document submitted. Top level of JSON document "
                                 "should be a json object.")
        if "payload" not in data or "listen_type" not in data:
            raise _Rejected(400, "Invalid JSON document submitted.")
        payload = data["payload"]
        if not isinstance(payload, list):
            raise _Rejected(400, "The payload in the JSON document should be a list of listens.")
        if not payload:
            raise _Rejected(400, "JSON document does not contain any listens")
        if len(payload) > MAX_LISTENS_PER_REQUEST:
            raise _Rejected(400, f"Too many listens. You may not submit more than "
                                 f"{MAX_LISTENS_PER_REQUEST} listens at once.")
        if len(raw) > len(payload) * MAX_LISTEN_SIZE:
            raise _Rejected(400, f"JSON document is too large. Each listens may not be larger "
                                 f"than {MAX_LISTEN_SIZE} bytes.")
        listen_type = data["listen_type"]
        if listen_type not in ("single", "playing_now", "import"):
            raise _Rejected(400, "JSON document requires a valid listen_type key.")
        if listen_type in ("single", "playing_now") and len(payload) > 1:
            raise _Rejected(400, "JSON document contains more than listen for a "
                                 "single/playing_now. It should contain only one.")
        # JSON can carry a NUL only as the escape \u0000: without one in the body, the
        # per-value NUL check (a walk over every listen) has nothing to find.
        nul = b"\\u0000" in raw
        validated = [self._validate(listen, listen_type, nul) for listen in payload]
        now = int(self.clock())
        if listen_type == "playing_now":
            row = self._playing_now_row(user, validated[0]["track_metadata"])
            current = user.playing_now if self.clock() < user.playing_until else None
            same = current is not None and all(
                current["track_metadata"].get(k) == row["track_metadata"].get(k)
                for k in ("artist_name", "track_name"))
            if not same:
                info = row["track_metadata"]["additional_info"]
                ttl = info.get("duration") or (info.get("duration_ms") or 0) // 1000
                user.playing_now = row
                user.playing_until = self.clock() + (ttl or PLAYING_NOW_MAX_DURATION)
        else:
            for listen in validated:
                self._store(user, listen, now, keep_msid=False, fresh=True)
            self._submitted_bodies.append(raw)
        return _dumps({"status": "ok"})

    # ------------------------------------------------------------------ validation

    def _validate(self, listen: Any, listen_type: str, nul: bool = True) -> Listen:
        """The server's per-listen checks; mutates like the server (coercion, strip)."""
        if not isinstance(listen, dict):
            raise _Rejected(400, "Listen is empty and cannot be validated.")
        if listen_type in ("single", "import"):
            if "listened_at" not in listen:
                raise _Rejected(400, "JSON document must contain the key listened_at at the "
                                     "top level.", listen)
            try:
                listen["listened_at"] = int(listen["listened_at"])
            except (TypeError, ValueError):
                raise _Rejected(400, "JSON document must contain an int value for listened_at.",
                                listen) from None
            if listen["listened_at"] >= int(self.clock()) + ALLOWED_SKEW:
                raise _Rejected(400, "Value for key listened_at is too high.", listen)
            if listen["listened_at"] < LISTEN_MINIMUM_TS:
                raise _Rejected(400, "Value for key listened_at is too low. listened_at timestamp "
                                     "should be greater than 1033410600 (2002-10-01 00:00:00 "
                                     "UTC).", listen)
            if "track_metadata" not in listen:
                raise _Rejected(400, "JSON document must contain the key track_metadata at the "
                                     "top level.", listen)
            if len(listen) > 2:
                raise _Rejected(400, "JSON document may only contain listened_at and "
                                     "track_metadata top level keys", listen)
        else:
            if "listened_at" in listen:
                raise _Rejected(400, "JSON document must not contain listened_at while "
                                     "submitting playing_now.", listen)
            if "track_metadata" not in listen:
                raise _Rejected(400, "JSON document must contain the key track_metadata at the "
                                     "top level.", listen)
            if len(listen) > 1:
                raise _Rejected(400, "JSON document may only contain track_metadata as top "
                                     "level key when submitting playing_now.", listen)
        metadata = listen["track_metadata"]
        if metadata is None:
            raise _Rejected(400, "JSON document may not have track_metadata with null value.",
                            listen)
        if not isinstance(metadata, dict):
            raise _Rejected(400, "track_metadata must be a JSON object.", listen)
        for key in ("track_name", "artist_name"):
            if key not in metadata:
                raise _Rejected(400, f"JSON document does not contain required field "
                                     f"track_metadata.{key}.", listen)
            if not isinstance(metadata[key], str):
                raise _Rejected(400, f"track_metadata.{key} must be a single string.", listen)
            metadata[key] = metadata[key].strip()
            if not metadata[key]:
                raise _Rejected(400, f"field track_metadata.{key} is empty.", listen)
        if "release_name" in metadata:
            if not isinstance(metadata["release_name"], str):
                raise _Rejected(400, "track_metadata.release_name must be a single string.",
                                listen)
            metadata["release_name"] = metadata["release_name"].strip()
            if not metadata["release_name"]:
                del metadata["release_name"]  # api-notes A2: dropped when empty
        if "additional_info" in metadata:
            self._validate_info(listen, metadata["additional_info"])
        if nul:
            self._check_nul(listen, listen)
        return listen

    @staticmethod
    def _validate_info(listen: Listen, info: Any) -> None:
        if not isinstance(info, dict):
            raise _Rejected(400, "track_metadata.additional_info must be a JSON object.", listen)
        if "tags" in info:
            tags = info["tags"]
            if len(tags) > MAX_TAGS_PER_LISTEN:
                raise _Rejected(400, f"JSON document may not contain more than "
                                     f"{MAX_TAGS_PER_LISTEN} items in "
                                     f"track_metadata.additional_info.tags.", listen)
            if any(len(tag) > MAX_TAG_SIZE for tag in tags):
                raise _Rejected(400, f"JSON document may not contain "
                                     f"track_metadata.additional_info.tags longer than "
                                     f"{MAX_TAG_SIZE} characters.", listen)
        if "duration" in info and "duration_ms" in info:
            raise _Rejected(400, "JSON document should not contain both duration and "
                                 "duration_ms.", listen)
        for key, limit in (("duration", MAX_DURATION), ("duration_ms", MAX_DURATION_MS)):
            if key not in info:
                continue
            try:
                value = int(info[key])
            except (TypeError, ValueError):
                value = 0
            if value <= 0:
                raise _Rejected(400, f"Value for {key} is invalid, should be a positive "
                                     f"integer.", listen)
            if value > limit:
                raise _Rejected(400, f"Value for {key} is too large, max permitted value is "
                                     f"{limit}", listen)
            info[key] = value
        for key in ("release_mbid", "recording_mbid", "release_group_mbid", "track_mbid"):
            if key in info:
                if not info[key]:
                    del info[key]
                elif not _is_uuid(info[key]):
                    raise _Rejected(400, f"{key} MBID format invalid.", listen)
        for key in ("artist_mbids", "work_mbids"):
            if key in info:
                if not info[key]:
                    del info[key]
                    continue
                kept = [m for m in info[key] if m] if isinstance(info[key], list) else info[key]
                if not isinstance(kept, list) or not all(_is_uuid(m) for m in kept):
                    raise _Rejected(400, f"{key} MBID format invalid.", listen)
                info[key] = kept

    def _check_nul(self, value: Any, listen: Listen) -> None:
        if isinstance(value, dict):
            for item in value.values():
                self._check_nul(item, listen)
        elif isinstance(value, list):
            for item in value:
                self._check_nul(item, listen)
        elif isinstance(value, str) and "\x00" in value:
            raise _Rejected(400, f"{value} contains a unicode null", listen)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (AttributeError, TypeError, ValueError):
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    """Turns sockets into ``LoggedRequest``s for the fake; HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeListenBrainz/1.0"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes; without this, Nagle plus delayed
        # ACKs add ~40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # quiet: tests read ``request_log`` instead

    def _serve(self) -> None:
        fake: FakeListenBrainz = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        entry = LoggedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if fake.latency:
            time.sleep(fake.latency)
        status, headers, payload = fake.handle(entry)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
