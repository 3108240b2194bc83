"""ListenBrainz: pure mapping between listens and records, and a thin API client.

The pure half (``parse_listen``, ``listen_payload``, ``validate_listen``, ``batches``)
needs no network and is what most tests exercise. ``ListenBrainzClient`` only builds
URLs and headers and classifies replies; pacing, retries and logging live in
``services/http.py``.

Facts relied on (see the project's api-notes, part A):

- ``GET /1/user/{u}/listens`` bounds are strict at both ends, output is newest first,
  ``count`` is silently capped at 1000;
- ``POST /1/submit-listens`` is all-or-nothing per request, so every listen is checked
  here first (``validate_listen``) and one bad row never sinks a batch;
- the server dedups on ``(listened_at, recording_msid)`` and the msid comes from the
  submitted metadata, so ``listen_payload`` must be byte-for-byte stable for a record;
- an invalid token is reported by ``/1/validate-token`` as HTTP 200 ``valid: false``.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar
from urllib.parse import quote

import msgspec

from scrobbler_cli import __version__
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
from scrobbler_cli.services.http import (
    Http,
    canonical_bytes,
    canonical_json,
    loads,
    retry_after,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_API_ROOT",
    "LISTEN_MINIMUM_TS",
    "ListenBrainzClient",
    "ListensPage",
    "MAX_ITEMS_PER_GET",
    "MAX_LISTENS_PER_REQUEST",
    "MAX_LISTEN_PAYLOAD_SIZE",
    "MAX_LISTEN_SIZE",
    "MAX_SINGLE_LISTEN_BYTES",
    "SubmissionRejected",
    "batches",
    "canonical_json",
    "decode_listens_reply",
    "encode_listen",
    "import_body",
    "listen_payload",
    "listens_page",
    "parse_listen",
    "parse_listen_json",
    "parse_listens_page",
    "parse_playing_now",
    "validate_listen",
]

SERVICE = "listenbrainz"
DEFAULT_API_ROOT = "https://api.listenbrainz.org"
TOKEN_HINT = "run `scrob auth listenbrainz` again or check SCROB_LISTENBRAINZ_TOKEN"
USER_HINT = "check the user name: --user, SCROB_LISTENBRAINZ_USER or `scrob auth listenbrainz`"
SUBMISSION_CLIENT = "scrob"

#: Server limits (api-notes A1, A2).
LISTEN_MINIMUM_TS = 1033430400  # 2002-10-01T00:00:00Z, itself accepted
LISTENED_AT_ALLOWED_SKEW = 3600  # listened_at must be < server time + this
MAX_ITEMS_PER_GET = 1000
MAX_LISTENS_PER_REQUEST = 1000
MAX_LISTEN_SIZE = 10240
MAX_LISTEN_PAYLOAD_SIZE = MAX_LISTEN_SIZE * MAX_LISTENS_PER_REQUEST
MAX_TAGS_PER_LISTEN = 50
MAX_TAG_SIZE = 64
MAX_DURATION = 24 * 24 * 60 * 60
MAX_DURATION_MS = MAX_DURATION * 1000

_BODY_HEAD = b'{"listen_type":"import","payload":['
_BODY_TAIL = b"]}"
_ENVELOPE = len(_BODY_HEAD) + len(_BODY_TAIL)

#: The largest listen (compact JSON bytes) that can be sent alone in an import request.
#: The server checks ``len(body) <= listens * 10240``; a listen this size or smaller
#: keeps every batch of such listens within that average, so batching never has to
#: reorder or hold listens back.
MAX_SINGLE_LISTEN_BYTES = MAX_LISTEN_SIZE - _ENVELOPE

P = TypeVar("P", bound=Mapping[str, Any])

_SINGLE_MBID_KEYS = ("recording_mbid", "release_mbid", "release_group_mbid", "track_mbid")
_MULTI_MBID_KEYS = ("artist_mbids", "work_mbids")


# --------------------------------------------------------------------------- parsing


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _mbid(value: Any) -> str | None:
    """A canonical (lower-case, hyphenated) MBID, or None for empty or malformed values."""
    if not value or not isinstance(value, str) or not value.strip():
        return None
    if _CANONICAL_UUID.fullmatch(value):
        return value  # the usual case, without building a UUID
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


def _mbids(value: Any) -> tuple[str, ...]:
    if not value or not isinstance(value, list):
        return ()
    found = (_mbid(item) for item in value)
    return tuple(m for m in found if m)


def _number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):  # not a number, or an integer past any float
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> int | None:
    """Unix seconds; exports write fractional seconds (``1748964422.521049``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _number(value)
    return None if number is None else int(number)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _duration(value: Any, millis: Any) -> int | None:
    """Seconds from ``duration`` or else ``duration_ms``; None when absent, not positive
    or longer than the server accepts (``MAX_DURATION``, 24 days: no play lasts longer,
    and a number past SQLite's integers would stop the archive)."""
    if type(value) is int:  # the usual case, on every listen of a sync
        return value if 0 < value <= MAX_DURATION else None
    seconds = _number(value)
    if seconds is None:
        millis = _number(millis)
        seconds = None if millis is None else millis // 1000
    if seconds is None or not 0 < seconds <= MAX_DURATION:
        return None
    return int(seconds)


# A listen as scrob reads it: msgspec decodes these keys and skips every other (a real
# listen's additional_info holds a dozen more), and decodes a page's listens as their
# bytes (``msgspec.Raw``), each of which is its raw record as received. Values are
# ``Any``: old listens spell numbers as strings, MBIDs as "" and so on, which the
# mapping below sorts out as for any dict.


class _Info(msgspec.Struct):
    """``additional_info``."""

    duration: Any = None
    duration_ms: Any = None
    recording_mbid: Any = None
    release_mbid: Any = None
    artist_mbids: Any = None
    recording_msid: Any = None


class _MbidMapping(msgspec.Struct):
    recording_mbid: Any = None
    release_mbid: Any = None
    artist_mbids: Any = None


class _Metadata(msgspec.Struct):
    artist_name: Any = None
    track_name: Any = None
    release_name: Any = None
    recording_msid: Any = None  # exports keep it here
    additional_info: _Info | None = None
    mbid_mapping: _MbidMapping | None = None  # absent in the API, null in exports


class _Listen(msgspec.Struct):
    listened_at: Any = None
    recording_msid: Any = None
    track_metadata: _Metadata | None = None


class _Stamp(msgspec.Struct):
    listened_at: Any = None


class _Payload(msgspec.Struct):
    listens: list[msgspec.Raw]
    count: Any = None
    latest_listen_ts: Any = None
    oldest_listen_ts: Any = None


class _Page(msgspec.Struct):
    payload: _Payload


_LISTEN = msgspec.json.Decoder(_Listen)
_STAMP = msgspec.json.Decoder(_Stamp)
_PAGE = msgspec.json.Decoder(_Page)
_NO_INFO = _Info()
_NO_MAPPING = _MbidMapping()


def _parse(listen: _Listen, listened_at: int | None, raw: bytes) -> SourceRecord:
    metadata = listen.track_metadata
    if metadata is None:
        raise ValueError("listen has no track_metadata")
    if listened_at is None:
        listened_at = listen.listened_at
        if type(listened_at) is not int:  # old listens: a string, a fraction
            if listened_at is None:
                raise ValueError("listen has no listened_at")
            stamp = _timestamp(listened_at)
            if stamp is None:
                raise ValueError("listened_at is not a number: "
                                 + msgspec.json.encode(listened_at).decode())
            listened_at = stamp
    if not 0 <= listened_at <= LATEST_TIME:
        raise ValueError(f"listened_at {listened_at} is not a time")
    artist = _text(metadata.artist_name)
    if not artist:
        raise ValueError("listen's artist_name is empty or not text")
    track = _text(metadata.track_name)
    if not track:
        raise ValueError("listen's track_name is empty or not text")
    info = metadata.additional_info or _NO_INFO
    mapping = metadata.mbid_mapping or _NO_MAPPING
    # Each MBID is the user's (additional_info) if usable, else the server's mapping's;
    # an absent one costs no call (a sync parses every listen: a third of the time).
    return SourceRecord(
        listened_at, artist, track, _text(metadata.release_name) or None,
        _duration(info.duration, info.duration_ms),
        ((a := info.recording_mbid) and _mbid(a)
         or (b := mapping.recording_mbid) and _mbid(b) or None),
        ((a := info.release_mbid) and _mbid(a)
         or (b := mapping.release_mbid) and _mbid(b) or None),
        ((a := info.artist_mbids) and _mbids(a)
         or (b := mapping.artist_mbids) and _mbids(b) or ()),
        # the msid: API replies have it at the top, exports inside track_metadata
        ((a := listen.recording_msid) and _mbid(a)
         or (b := metadata.recording_msid) and _mbid(b)
         or (c := info.recording_msid) and _mbid(c) or None),
        raw,
    )


def _as_listen(value: Any) -> _Listen:
    """A decoded listen (a dict) as ``_Listen``: an ``additional_info`` or
    ``mbid_mapping`` that is not an object is ignored, and a ``track_metadata`` that is
    not one is missing."""
    if not isinstance(value, dict):
        raise ValueError("listen is not a JSON object")
    metadata = value.get("track_metadata")
    if isinstance(metadata, dict):
        metadata = dict(metadata)
        for key in ("additional_info", "mbid_mapping"):
            if not isinstance(metadata.get(key), dict):
                metadata[key] = None
    else:
        metadata = None
    return msgspec.convert({**value, "track_metadata": metadata}, _Listen)


def parse_listen(listen: Mapping[str, Any]) -> SourceRecord:
    """Map one listen (API reply or export line) to a ``SourceRecord``.

    Tolerates legacy keys, empty-string MBIDs (-> None), flattened ``a.b`` keys in
    ``additional_info``, a null ``mbid_mapping`` and fractional timestamps. User-given
    MBIDs in ``additional_info`` win over the server's ``mbid_mapping``. Raises
    ``ValueError`` with the reason when the listen is unusable, so importers can report it.
    Its ``raw`` is the listen's canonical JSON (see ``parse_listen_json`` for a listen
    as received).
    """
    parsed = _as_listen(listen)
    return _parse(parsed, None, canonical_bytes(listen))


def parse_listen_json(raw: bytes | msgspec.Raw) -> SourceRecord:
    """``parse_listen`` for a listen's JSON as received (UTF-8, which is not checked
    here: ``decode_listens_reply`` checks a whole page); those bytes are its raw record.

    Decoded straight into the few fields scrob reads (a third of the cost of a dict
    and its canonical JSON, on every listen of a sync). A listen of another shape takes
    ``parse_listen``'s way and keeps its bytes; one with values msgspec refuses (a lone
    surrogate, NaN, nesting too deep) gets its canonical JSON, as ``parse_listen`` makes.
    """
    raw = bytes(raw)
    try:
        listen = _LISTEN.decode(raw)
    except msgspec.ValidationError:  # (a kind of DecodeError: this one first)
        record = parse_listen(loads(raw))
        record.raw = raw
        return record
    except (msgspec.DecodeError, RecursionError):
        return parse_listen(loads(raw))  # ValueError if it is not JSON at all
    return _parse(listen, None, raw)


def parse_playing_now(listen: Mapping[str, Any]) -> SourceRecord:
    """Map a playing-now listen, which has no ``listened_at``.

    The record gets ``listened_at=0``: it describes what is playing, not a finished
    listen, and must never be archived as one.
    """
    return _parse(_as_listen(listen), 0, canonical_bytes(listen))


def _page_listens(payload: Any) -> tuple[Mapping[str, Any], list[Any]]:
    inner = payload.get("payload") if isinstance(payload, Mapping) else None
    if isinstance(payload, Mapping) and inner is None and "listens" in payload:
        inner = payload  # already the inner object
    listens = inner.get("listens") if isinstance(inner, Mapping) else None
    if not isinstance(inner, Mapping) or not isinstance(listens, list):
        raise ValueError("reply is not a ListenBrainz listens page")
    return inner, listens


def parse_listens_page(
    payload: Mapping[str, Any],
    *,
    on_invalid: Callable[[Any, str], None] | None = None,
) -> list[SourceRecord]:
    """Map a ``/listens`` reply to records, in the server's order (newest first).

    An unusable listen raises ``ValueError``, unless ``on_invalid(listen, reason)`` is
    given: then it is reported there and skipped, so one odd old listen cannot stop a sync.
    """
    _, listens = _page_listens(payload)
    records: list[SourceRecord] = []
    for listen in listens:
        try:
            records.append(parse_listen(listen))
        except ValueError as exc:
            if on_invalid is None:
                raise
            on_invalid(listen, str(exc))
    return records


@dataclass(frozen=True, slots=True)
class ListensPage:
    """One ``/listens`` reply.

    ``count`` is what the server said it returned (use it, not the requested count, to
    decide whether more pages follow). ``newest_ts``/``oldest_ts`` span every listen on
    the page, including ``skipped`` ones, so a cursor can move past unusable listens.
    ``latest_listen_ts``/``oldest_listen_ts`` describe the user's whole history.
    """

    records: list[SourceRecord]
    count: int
    newest_ts: int | None = None
    oldest_ts: int | None = None
    latest_listen_ts: int = 0
    oldest_listen_ts: int = 0
    skipped: tuple[str, ...] = ()


def decode_listens_reply(content: bytes) -> Any:
    """A ``/listens`` reply's body, decoded for ``listens_page``: the usual page by
    msgspec, its listens kept as the bytes they were sent as; any other (another shape,
    values msgspec refuses such as a lone surrogate) as plain JSON. ValueError if the
    body is not JSON."""
    try:
        content.decode("utf-8")  # msgspec does not check the text of what it skips
        return _PAGE.decode(content)
    except (UnicodeDecodeError, msgspec.DecodeError, RecursionError):
        return loads(content)


def listens_page(body: Any) -> ListensPage:
    """A decoded ``/listens`` reply (``decode_listens_reply``) as a page: its records in
    the server's order (newest first), unusable listens skipped with their reasons.
    ValueError if it is not a listens page.

    A listen decoded by msgspec keeps the bytes it was sent as for its raw record; one of
    a reply read as plain JSON, its canonical JSON (``parse_listen``).
    """
    parse: Callable[[Any], SourceRecord]
    stamp: Callable[[Any], int | None]
    if isinstance(body, _Page):
        inner: Any = body.payload
        listens: list[Any] = inner.listens
        count, latest, oldest = inner.count, inner.latest_listen_ts, inner.oldest_listen_ts
        parse, stamp = parse_listen_json, _raw_stamp
    else:
        inner, listens = _page_listens(body)
        count, latest, oldest = (inner.get("count"), inner.get("latest_listen_ts"),
                                 inner.get("oldest_listen_ts"))
        parse, stamp = parse_listen, _dict_stamp
    records: list[SourceRecord] = []
    skipped: list[str] = []
    stamps: list[int] = []  # of every listen, skipped ones too: the cursor moves past them
    for item in listens:
        try:
            record = parse(item)
        except ValueError as exc:
            skipped.append(str(exc))
            if (ts := stamp(item)) is not None:
                stamps.append(ts)
        else:
            records.append(record)
            stamps.append(record.listened_at)
    return ListensPage(
        records=records,
        count=count if isinstance(count, int) else len(listens),
        newest_ts=max(stamps) if stamps else None,
        oldest_ts=min(stamps) if stamps else None,
        latest_listen_ts=_timestamp(latest) or 0,
        oldest_listen_ts=_timestamp(oldest) or 0,
        skipped=tuple(skipped),
    )


def _raw_stamp(raw: msgspec.Raw) -> int | None:
    try:
        return _timestamp(_STAMP.decode(raw).listened_at)
    except (msgspec.DecodeError, RecursionError):  # another shape, or values it refuses
        try:
            return _dict_stamp(loads(bytes(raw)))
        except ValueError:
            return None


def _dict_stamp(item: Any) -> int | None:
    return _timestamp(item.get("listened_at")) if isinstance(item, Mapping) else None


# --------------------------------------------------------------------------- submitting


def listen_payload(record: SourceRecord) -> dict[str, Any]:
    """The submit payload for a record: the same dict for the same record, always.

    ListenBrainz derives a listen's msid from (track, artist, release, track_number,
    duration) and drops a repeat of ``(listened_at, msid)`` silently, so a retry or a
    second export only stays a no-op when every byte of that metadata is the same.
    Only ``listened_at`` and ``track_metadata`` are sent; read-only fields of fetched
    listens (``recording_msid``, ``mbid_mapping``, ``inserted_at``…) never are.
    A duration is sent in whole seconds as ``duration``.
    """
    metadata: dict[str, Any] = {"artist_name": record.artist, "track_name": record.track}
    if record.album and record.album.strip():
        metadata["release_name"] = record.album
    info: dict[str, Any] = {}
    if record.recording_mbid:
        info["recording_mbid"] = record.recording_mbid
    if record.release_mbid:
        info["release_mbid"] = record.release_mbid
    if record.artist_mbids:
        info["artist_mbids"] = list(record.artist_mbids)
    if record.duration is not None and record.duration > 0:
        info["duration"] = int(record.duration)
    info["submission_client"] = SUBMISSION_CLIENT
    info["submission_client_version"] = __version__
    metadata["additional_info"] = info
    return {"listened_at": int(record.listened_at), "track_metadata": metadata}


def encode_listen(payload: Mapping[str, Any]) -> bytes:
    """A listen as sent: compact UTF-8 JSON with sorted keys (sizes are measured on this)."""
    return canonical_bytes(payload)


def import_body(payloads: Iterable[Mapping[str, Any]]) -> bytes:
    """The exact ``listen_type: import`` request body for ``payloads``."""
    return _BODY_HEAD + b",".join(encode_listen(p) for p in payloads) + _BODY_TAIL


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if _CANONICAL_UUID.fullmatch(value):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, with the plain-dict case first (ABC checks are
    slow, and this runs several times for every listen of an export)."""
    return type(value) is dict or isinstance(value, Mapping)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if _is_mapping(value):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _check_duration(info: Mapping[str, Any], key: str, limit: int) -> str | None:
    if key not in info:
        return None
    value = info[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return f"{key} must be a positive integer"
    if value > limit:
        # (no value in the text: reasons are counted by their text, see ExportReport)
        return f"{key} is more than the maximum {limit} (24 days)"
    return None


def _check_metadata_text(metadata: Mapping[str, Any], key: str, required: bool) -> str | None:
    if key not in metadata:
        return f"track_metadata.{key} is missing" if required else None
    value = metadata[key]
    if not isinstance(value, str):
        return f"track_metadata.{key} must be a string"
    if not value.strip():
        return f"track_metadata.{key} is empty"
    return None


def _check_additional_info(info: Any) -> str | None:
    if not _is_mapping(info):
        return "track_metadata.additional_info must be an object"
    if "tags" in info:
        tags = info["tags"]
        if not isinstance(tags, list):
            return "additional_info.tags must be a list"
        if len(tags) > MAX_TAGS_PER_LISTEN:
            return f"more than {MAX_TAGS_PER_LISTEN} tags ({len(tags)})"
        if any(not isinstance(t, str) or len(t) > MAX_TAG_SIZE for t in tags):
            return f"a tag is not a string of at most {MAX_TAG_SIZE} characters"
    if "duration" in info and "duration_ms" in info:
        return "both duration and duration_ms are given"
    reason = _check_duration(info, "duration", MAX_DURATION) or _check_duration(
        info, "duration_ms", MAX_DURATION_MS
    )
    if reason:
        return reason
    for key in _SINGLE_MBID_KEYS:
        value = info.get(key)
        if value not in (None, "") and not _is_uuid(value):
            return f"{key} is not a valid MBID"
    for key in _MULTI_MBID_KEYS:
        value = info.get(key)
        if value in (None, []):
            continue
        if not isinstance(value, list):
            return f"{key} must be a list of MBIDs"
        bad = [v for v in value if v not in (None, "") and not _is_uuid(v)]
        if bad:
            return f"{key} holds an invalid MBID"
    return None


_TOP_LEVEL_KEYS = frozenset(("listened_at", "track_metadata"))


def validate_listen(payload: Mapping[str, Any], now: int) -> str | None:
    """Why ListenBrainz would reject this ``import`` listen, or None if it would not.

    Checks every per-listen rule of the server (api-notes A2) locally, because the
    server rejects a whole batch for one bad listen. It is stricter where the server is
    lenient (no numeric strings; an empty ``release_name`` is refused, not dropped) and
    measures size as the listen sent alone (see ``MAX_SINGLE_LISTEN_BYTES``).
    """
    if not _is_mapping(payload):
        return "listen is not a JSON object"
    if not payload.keys() <= _TOP_LEVEL_KEYS:
        extra = sorted(str(k) for k in payload if k not in _TOP_LEVEL_KEYS)
        return f"only listened_at and track_metadata are allowed at the top level, not {extra}"
    if "listened_at" not in payload:
        return "listened_at is missing"
    listened_at = payload["listened_at"]
    if not isinstance(listened_at, int) or isinstance(listened_at, bool):
        return f"listened_at must be an integer, not {listened_at!r}"
    if listened_at < LISTEN_MINIMUM_TS:
        # (no value in the text: reasons are counted by their text, see ExportReport)
        return "listened_at is before 2002-10-01, the earliest ListenBrainz takes"
    if listened_at >= now + LISTENED_AT_ALLOWED_SKEW:
        return "listened_at is more than an hour in the future"
    metadata = payload.get("track_metadata")
    if not _is_mapping(metadata):
        return "track_metadata is missing or not an object"
    reason = (
        _check_metadata_text(metadata, "artist_name", True)
        or _check_metadata_text(metadata, "track_name", True)
        or _check_metadata_text(metadata, "release_name", False)
    )
    if reason:
        return reason
    if "additional_info" in metadata:
        reason = _check_additional_info(metadata["additional_info"])
        if reason:
            return reason
    try:
        data: bytes | None = encode_listen(payload)
    except (TypeError, ValueError):
        data = None
    # JSON spells a NUL as \u0000: without that text there is none, and the walk
    # through the payload is only needed when it may be there
    if (data is None or b"\\u0000" in data) and _has_nul(payload):
        return "a value contains a NUL character"
    if data is None:
        return "listen cannot be encoded as UTF-8 JSON"
    size = len(data)
    if size > MAX_SINGLE_LISTEN_BYTES:
        return (
            f"listen is {size} bytes of JSON; at most {MAX_SINGLE_LISTEN_BYTES} fit in a request "
            f"(limit {MAX_LISTEN_SIZE} bytes per listen)"
        )
    return None


def batches(
    payloads: Iterable[P],
    max_listens: int = MAX_LISTENS_PER_REQUEST,
    max_bytes: int = MAX_LISTEN_PAYLOAD_SIZE,
) -> Iterator[list[P]]:
    """Split payloads, in order, into import requests the server accepts.

    Each batch has at most ``max_listens`` listens and its ``import_body`` is at most
    ``max_bytes`` and at most ``len(batch) * 10240`` bytes (the server's average rule).
    A listen that cannot be sent even alone raises ``ValueError``: validate first.
    """
    if not 1 <= max_listens <= MAX_LISTENS_PER_REQUEST:
        raise ValueError(f"max_listens must be 1..{MAX_LISTENS_PER_REQUEST}")
    current: list[P] = []
    size = _ENVELOPE  # body size of ``current``
    for payload in payloads:
        item = len(encode_listen(payload))
        if _ENVELOPE + item > min(max_bytes, MAX_LISTEN_SIZE):
            raise ValueError(f"a listen of {item} bytes is too large to submit")
        grown = size + item + (1 if current else 0)
        if current and (
            len(current) >= max_listens
            or grown > max_bytes
            or grown > (len(current) + 1) * MAX_LISTEN_SIZE
        ):
            yield current
            current, size = [], _ENVELOPE
            grown = size + item
        current.append(payload)
        size = grown
    if current:
        yield current


# --------------------------------------------------------------------------- client


class SubmissionRejected(ServiceError):
    """ListenBrainz refused a submission (HTTP 400); nothing of that request was stored.

    ``reason`` is the server's message; ``listen`` is the offending listen the server
    echoes back for per-listen errors (None for request-level errors).
    """

    def __init__(self, message: str, *, reason: str, listen: dict[str, Any] | None,
                 status: int = 400) -> None:
        super().__init__(message, service=SERVICE, status=status)
        self.reason = reason
        self.listen = listen

    @property
    def listened_at(self) -> int | None:
        return _timestamp(self.listen.get("listened_at")) if self.listen else None


def _error_body(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The server's ``error`` message and the rest of its JSON error object."""
    try:
        body = response.json()
    except ValueError:
        return "", {}
    if not isinstance(body, dict):
        return "", {}
    message = body.get("error") or body.get("message") or ""
    return redact(str(message))[:500], body


class ListenBrainzClient:
    """The ListenBrainz API (or a compatible server such as Maloja) over an ``Http``.

    ``api_root`` is the server root, optionally with a path prefix
    (``http://host/apis/listenbrainz``); the client appends ``/1/...``. The token is
    sent as ``Authorization: Token …`` on every request and is registered for
    redaction, so it never shows in URLs, logs or error messages.
    """

    def __init__(self, http: Http, *, api_root: str = DEFAULT_API_ROOT,
                 token: str | None = None) -> None:
        self.http = http
        self.api_root = (api_root or DEFAULT_API_ROOT).rstrip("/")
        self._token = token or None
        register_secret(self._token)

    def __repr__(self) -> str:
        token = "'***'" if self._token else "None"
        return f"ListenBrainzClient(api_root={self.api_root!r}, token={token})"

    # -- plumbing

    def _url(self, *parts: str) -> str:
        return self.api_root + "/1/" + "/".join(quote(p, safe="") for p in parts)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self._token}"} if self._token else {}

    def _require_token(self) -> str:
        if not self._token:
            raise CredentialsError("no ListenBrainz token is configured", hint=TOKEN_HINT)
        return self._token

    def _classify(self, what: str, *, user: str | None = None, submit: bool = False,
                  decode: Callable[[bytes], Any] | None = None
                  ) -> Callable[[httpx.Response], Any]:
        """Turn a reply into its JSON object (or what ``decode`` makes of it) or the
        right ``ScrobError``.

        ``user`` marks a user URL (404 means no such user); ``submit`` makes a 400 a
        ``SubmissionRejected`` carrying the listen the server blamed; ``decode`` decodes
        a successful reply's body instead of ``loads`` (ValueError: it is not JSON), and
        its caller checks what it gets.
        """

        def classify(response: httpx.Response) -> Any:
            status = response.status_code
            if status == 429 or status >= 500:
                raise ServiceUnavailable(
                    f"ListenBrainz answered HTTP {status} to {what}",
                    service=SERVICE, status=status, retry_after=retry_after(response),
                )
            if status == 401:
                message, _ = _error_body(response)
                raise AuthRejected(
                    f"ListenBrainz rejected the token ({message or f'HTTP {status}'})",
                    service=SERVICE, status=status, hint=TOKEN_HINT,
                )
            if status == 404 and user is not None:
                message, _ = _error_body(response)
                if "cannot find user" in (message or "").lower():  # the server's words
                    raise UnknownUser(f"ListenBrainz has no user {user!r}", service=SERVICE,
                                      status=404, hint=USER_HINT)
                # not the server's answer for a user: a wrong root as likely as a wrong name
                raise NotFound(f"ListenBrainz answered HTTP 404 to {what}"
                               + (f": {message}" if message else ""), service=SERVICE,
                               status=404, hint=f"{USER_HINT}; check SCROB_LISTENBRAINZ_API_URL")
            if status == 400 and submit:
                message, body = _error_body(response)
                listen: dict[str, Any] = {
                    k: body[k] for k in ("listened_at", "track_metadata") if k in body
                }
                reason = message or "bad request"
                raise SubmissionRejected(
                    f"ListenBrainz refused {what}: {reason}", reason=reason, listen=listen or None
                )
            if status >= 400:
                message, _ = _error_body(response)
                raise ServiceError(
                    f"ListenBrainz answered HTTP {status} to {what}"
                    + (f": {message}" if message else ""),
                    service=SERVICE, status=status,
                    hint="check SCROB_LISTENBRAINZ_API_URL" if status == 404 else None,
                )
            try:
                body = (decode or loads)(response.content)
            except ValueError as exc:
                raise ServiceUnavailable(
                    f"ListenBrainz sent a reply to {what} that is not JSON",
                    service=SERVICE, status=status,
                ) from exc
            if decode is None and not isinstance(body, dict):
                raise ServiceError(f"ListenBrainz sent an unexpected reply to {what}",
                                   service=SERVICE, status=status)
            return body

        return classify

    def _get(self, what: str, *parts: str, user: str | None = None,
             params: dict[str, int] | None = None,
             decode: Callable[[bytes], Any] | None = None) -> Any:
        return self.http.request("GET", self._url(*parts),
                                 classify=self._classify(what, user=user, decode=decode),
                                 params=params or None, headers=self._headers())

    # -- endpoints

    def validate_token(self) -> str:
        """The user name the token belongs to; ``AuthRejected`` when it is not valid."""
        self._require_token()
        body = self._get("the token check", "validate-token")
        if body.get("valid") is not True:
            raise AuthRejected("ListenBrainz says the token is not valid",
                               service=SERVICE, status=200, hint=TOKEN_HINT)
        name = body.get("user_name")
        if not isinstance(name, str) or not name:
            raise ServiceError("ListenBrainz did not say whose token this is", service=SERVICE)
        return name

    def listens(self, user: str, *, min_ts: int | None = None, max_ts: int | None = None,
                count: int = MAX_ITEMS_PER_GET) -> ListensPage:
        """One page of ``user``'s listens, newest first, with strict (exclusive) bounds.

        With both bounds the server returns the oldest ``count`` listens inside the
        range; with only ``min_ts`` the oldest ``count`` after it; otherwise the newest
        ``count`` before ``max_ts``.
        """
        if count < 1:
            raise ValueError("count must be positive")
        params: dict[str, int] = {}
        if min_ts is not None:
            params["min_ts"] = int(min_ts)
        if max_ts is not None:
            params["max_ts"] = int(max_ts)
        params["count"] = int(count)
        body = self._get(f"the listens of {user!r}", "user", user, "listens",
                         user=user, params=params, decode=decode_listens_reply)
        try:
            return listens_page(body)
        except ValueError as exc:
            raise ServiceError(f"ListenBrainz sent a malformed listens page for {user!r}",
                               service=SERVICE) from exc

    def listen_count(self, user: str) -> int:
        """The user's total listen count (the server caches it for up to 5 minutes)."""
        body = self._get(f"the listen count of {user!r}", "user", user, "listen-count", user=user)
        inner = body.get("payload")
        count = inner.get("count") if isinstance(inner, Mapping) else None
        if not isinstance(count, int):
            raise ServiceError("ListenBrainz sent a malformed listen count", service=SERVICE)
        return count

    def playing_now(self, user: str) -> SourceRecord | None:
        """What ``user`` is playing now, as a record with ``listened_at=0``, or None."""
        body = self._get(f"what {user!r} is playing", "user", user, "playing-now", user=user)
        inner = body.get("payload")
        listens = inner.get("listens") if isinstance(inner, Mapping) else None
        if not listens or not isinstance(listens, list):
            return None
        try:
            return parse_playing_now(listens[0])
        except ValueError:
            return None

    def submit_import(self, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Submit 1..1000 listens as ``listen_type: import`` in one request.

        Payloads should come from ``listen_payload``, be checked with ``validate_listen``
        and be grouped by ``batches``. A retry after a lost reply is safe: the server
        drops exact repeats. A 400 raises ``SubmissionRejected`` (nothing was stored).
        """
        if not 1 <= len(payloads) <= MAX_LISTENS_PER_REQUEST:
            raise ValueError(f"an import takes 1..{MAX_LISTENS_PER_REQUEST} listens, "
                             f"not {len(payloads)}")
        self._require_token()
        body = import_body(payloads)
        if len(body) > min(MAX_LISTEN_PAYLOAD_SIZE, len(payloads) * MAX_LISTEN_SIZE):
            raise ValueError(f"import body of {len(body)} bytes is too large; use batches()")
        headers = {**self._headers(), "Content-Type": "application/json"}
        reply = self.http.request(
            "POST", self._url("submit-listens"),
            classify=self._classify(f"a batch of {len(payloads)} listens", submit=True),
            content=body, headers=headers,
        )
        if reply.get("status") != "ok":
            raise ServiceError("ListenBrainz did not confirm the submission", service=SERVICE)
