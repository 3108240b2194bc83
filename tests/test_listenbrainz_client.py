"""ListenBrainz: parsing real-shaped replies, submit payloads and their checks, batching,
and the client's error mapping over respx (no request leaves the process)."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from scrobbler_cli import __version__
from scrobbler_cli.errors import (
    AuthRejected,
    CredentialsError,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    UnknownUser,
)
from scrobbler_cli.models import SourceRecord
from scrobbler_cli.services.http import Http, make_client
from scrobbler_cli.services.listenbrainz import (
    LISTEN_MINIMUM_TS,
    MAX_LISTEN_SIZE,
    MAX_SINGLE_LISTEN_BYTES,
    ListenBrainzClient,
    SubmissionRejected,
    batches,
    decode_listens_reply,
    encode_listen,
    import_body,
    listen_payload,
    listens_page,
    parse_listen,
    parse_listen_json,
    parse_listens_page,
    parse_playing_now,
    validate_listen,
)
from tests.helpers import FakeTime

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "listenbrainz"
ROOT = "https://api.listenbrainz.org"
TOKEN = "3f1c9a52-7b6e-4d2a-9c8f-0e1d2c3b4a59"
NOW = 1_750_000_000
MBID = "c7d0bf6e-b2aa-4ffa-bded-2448415b39b0"
TLS = ssl.create_default_context()  # built once: a new one per client costs ~25 ms


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_lines(name: str) -> list[dict[str, Any]]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def t() -> FakeTime:
    return FakeTime(start=5000.0)


@pytest.fixture
def logs() -> list[str]:
    return []


def make(t: FakeTime, logs: list[str] | None = None, *, token: str | None = TOKEN,
         root: str = ROOT, attempts: int = 4) -> ListenBrainzClient:
    http = Http(make_client(transport=httpx.HTTPTransport(verify=TLS)), service="listenbrainz",
                sleep=t.sleep, clock=t.clock, attempts=attempts,
                log=logs.append if logs is not None else None)
    return ListenBrainzClient(http, api_root=root, token=token)


def record(**overrides: Any) -> SourceRecord:
    base: dict[str, Any] = dict(listened_at=1_700_000_000, artist="The Stranglers",
                                track="Golden Brown", album="La Folie", duration=206,
                                recording_mbid=MBID,
                                release_mbid="c6911b3b-135f-4b7b-a2cc-b90ea1e11ac9",
                                artist_mbids=("a96d82a0-cdca-40bf-b4c8-3d7ec178d85b",))
    base.update(overrides)
    return SourceRecord(**base)


def valid_payload(**info: Any) -> dict[str, Any]:
    payload = listen_payload(record())
    payload["track_metadata"]["additional_info"].update(info)
    return payload


# ----------------------------------------------------------------------------- parsing


def test_parse_legacy_page_tolerates_old_keys_and_empty_mbids() -> None:
    records = parse_listens_page(fixture("listens_legacy.json"))
    assert [r.listened_at for r in records] == [1586888400, 1586888178, 1586887950]
    fade = records[0]
    assert (fade.artist, fade.track, fade.album) == ("Kanye West", "Fade", "The Life of Pablo")
    assert fade.duration == 222  # duration_ms // 1000
    assert fade.recording_mbid is None and fade.release_mbid is None
    assert fade.artist_mbids == ()
    assert fade.remote_id == "2c1a6a4e-5b7e-4a2f-9a5e-3f1d7c0b9e11"
    assert records[1].duration is None
    last = records[2]
    assert last.album is None and last.artist_mbids == ()  # [""] -> ()


def test_parse_mapped_page_uses_mbid_mapping_as_fallback() -> None:
    records = parse_listens_page(fixture("listens_mapped.json"))
    assert len(records) == 4
    user_given, mapped_only, flattened, unicode = records
    # additional_info MBIDs (the user's own) win; mapping fills what is missing
    assert user_given.recording_mbid == "ecea309c-fefc-4834-9f61-2817341ded96"
    assert user_given.release_mbid == "deab8f51-b954-475e-a008-99861675a0a5"
    assert user_given.duration == 291
    assert mapped_only.recording_mbid == "56c2c33a-84ea-4eaf-a905-346ff9a13ccb"
    assert mapped_only.release_mbid == "f5a7a3e9-af69-4328-a025-73bbcbf046da"
    assert mapped_only.artist_mbids == ("7fb57fba-a6ef-44c2-abab-2fa3bdee607e",
                                        "f4fdbb4c-e4b7-47a0-b83b-d91bbfcfa387")
    assert mapped_only.remote_id == "13361419-2627-4cb4-a9fc-2fa9b2c28dcb"
    assert flattened.duration == 183 and flattened.recording_mbid is None
    assert flattened.track == "Link Up (Spider\u2010Verse remix)"
    assert unicode.artist == "\u30a2\u30fc\u30c6\u30a3\u30b9\u30c8"


def test_parse_raw_is_canonical_json_of_the_listen() -> None:
    listen = fixture("listens_mapped.json")["payload"]["listens"][2]
    rec = parse_listen(listen)
    assert json.loads(rec.raw or "") == listen
    assert rec.raw == json.dumps(listen, ensure_ascii=False, separators=(",", ":"),
                                 sort_keys=True).encode()


def test_parse_export_lines_msid_inside_metadata_and_fractional_times() -> None:
    records = [parse_listen(line) for line in fixture_lines("export_listens.jsonl")]
    golden = records[0]
    assert golden.remote_id == "03dcc65c-0e01-4f25-aa1f-0f469d10e2ad"
    assert golden.recording_mbid == "c7d0bf6e-b2aa-4ffa-bded-2448415b39b0"
    assert golden.release_mbid == "c6911b3b-135f-4b7b-a2cc-b90ea1e11ac9"
    assert golden.duration == 206
    unmapped = records[2]  # "mbid_mapping": null, "listened_at": 1748970500.0
    assert unmapped.listened_at == 1748970500 and isinstance(unmapped.listened_at, int)
    assert unmapped.recording_mbid is None and unmapped.album is None


# Listens of every odd shape the general (dict) way tolerates or refuses, spelled as JSON
# bytes: msgspec decodes most, and hands the others (another type where an object is
# expected, values it refuses) to the general way.
ODD_LISTENS = [
    b'{"listened_at":1700000000,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"additional_info":[1,2]}}',
    b'{"listened_at":1700000001,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"additional_info":"x","mbid_mapping":"y"}}',
    b'{"listened_at":1700000002,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"mbid_mapping":{"recording_mbid":"' + MBID.encode() + b'","artist_mbids":"no"}}}',
    b'{"listened_at":1700000003,"track_metadata":"A - T"}',
    b'{"listened_at":1700000004}',
    b'[1700000005,"A","T"]',
    b'17',
    b'{"listened_at":1e999,"track_metadata":{"artist_name":"A","track_name":"T"}}',
    b'{"listened_at":"1700000006.75","track_metadata":{"artist_name":" A ","track_name":"T",'
    b'"release_name":"  ","additional_info":{"duration_ms":"183000.0","a.b":1}}}',
    b'{"listened_at":1,"listened_at":1700000007,"track_metadata":{"artist_name":"A",'
    b'"track_name":"T","track_name":"U"}}',
    b'{"listened_at":1700000008,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"additional_info":{"duration":NaN}}}',
    rb'{"listened_at":1700000009,"track_metadata":{"artist_name":"A","track_name":"\\ud800"}}',
    rb'{"listened_at":1700000010,"track_metadata":{"artist_name":"A","track_name":"\ud800"}}',
    b'{"listened_at":true,"track_metadata":{"artist_name":"A","track_name":"T"}}',
    b'{"listened_at":100000000000000000000,"track_metadata":{"artist_name":"A",'
    b'"track_name":"T"}}',
    b'{"listened_at":1700000012,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"additional_info":{"duration":18446744073709551616}}}',
    b'{"listened_at":1700000013,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"additional_info":{"duration":"x","duration_ms":1' + b"0" * 400 + b'}}}',
    b'{"listened_at":1700000014,"track_metadata":{"artist_name":"A","track_name":"T",'
    b'"additional_info":{"duration":2073601}}}',
    b'{"listened_at":1e400,"listened_at":1700000015}',
    b'{"listened_at":1700000011,"recording_msid":"","track_metadata":{"artist_name":"A",'
    b'"track_name":"T","recording_msid":"' + MBID.upper().encode() + b'",'
    b'"additional_info":{"duration":0,"artist_mbids":["",null,"' + MBID.encode() + b'"]}}}',
]


LONE_SURROGATE = ODD_LISTENS[12]
PAGE_LISTENS = ODD_LISTENS[:10] + ODD_LISTENS[11:12] + ODD_LISTENS[13:]  # no NaN, no lone


def _fields(record: SourceRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "raw")


def _read(read: Any, listen: Any) -> Any:
    try:
        return read(listen)
    except ValueError as exc:
        return str(exc)


def test_parse_listen_json_reads_every_listen_as_parse_listen_does() -> None:
    listens = [json.dumps(x, ensure_ascii=False).encode() for name in
               ("listens_legacy.json", "listens_mapped.json", "playing_now.json")
               for x in fixture(name)["payload"]["listens"]]
    for name in ("export_listens.jsonl", "export_mixed_validity.jsonl"):
        listens += (FIXTURES / name).read_bytes().splitlines()
    valid = 0
    for raw in [line for line in listens if line.strip()] + ODD_LISTENS:
        fast = _read(parse_listen_json, raw)
        plain = _read(parse_listen, json.loads(raw))
        if isinstance(plain, str):  # the same reason
            assert fast == plain, raw
            continue
        valid += 1
        assert _fields(fast) == _fields(plain), raw
        if b"NaN" in raw:  # bytes msgspec refuses are not kept: canonical JSON instead
            assert fast.raw == plain.raw and b"NaN" not in plain.raw
        else:
            assert fast.raw == raw and type(fast.raw) is bytes  # as received
    assert valid >= 15


def test_parse_durations_past_what_the_server_accepts_are_unknown() -> None:
    """A duration past 24 days (the server's limit), or past any integer SQLite holds, is
    left out: it stopped the archive's writer before."""
    records = [parse_listen_json(raw) for raw in ODD_LISTENS if b"17000000" in raw
               and b"duration" in raw and b'"duration":0' not in raw][-3:]
    assert [(r.listened_at, r.duration) for r in records] == [
        (1700000012, None), (1700000013, None), (1700000014, None)]
    day = valid_payload()
    day["track_metadata"]["additional_info"] = {"duration": 2073600}
    assert parse_listen(day).duration == 2073600


def test_listens_page_reads_a_reply_as_the_plain_json_way_does() -> None:
    body = (b'{"payload":{"count":' + str(len(PAGE_LISTENS) + 1).encode()
            + b',"latest_listen_ts":"1800000000","listens":['
            + b" , ".join([b'{"listened_at":1600000000,"track_metadata":'
                           rb'{"artist_name":"\u00c9","track_name":"x"}}'] + PAGE_LISTENS)
            + b'],"oldest_listen_ts":1000,"user_id":"u"}}')
    decoded = decode_listens_reply(body)
    assert not isinstance(decoded, dict)  # msgspec's way, not plain JSON's
    page = listens_page(decoded)
    plain = listens_page(json.loads(body))
    assert [_fields(r) for r in page.records] == [_fields(r) for r in plain.records]
    assert page.records[0].artist == "\u00c9"
    assert len(page.records) == 11 and all(r.raw and r.raw in body for r in page.records)
    assert page.skipped == plain.skipped and len(page.skipped) == 8
    assert (page.count, page.newest_ts, page.oldest_ts, page.latest_listen_ts,
            page.oldest_listen_ts) == (plain.count, plain.newest_ts, plain.oldest_ts,
                                       plain.latest_listen_ts, plain.oldest_listen_ts) \
        == (len(PAGE_LISTENS) + 1, 10**20, 1600000000, 1800000000, 1000)


def test_listens_reply_msgspec_refuses_is_read_as_plain_json() -> None:
    good = b'{"listened_at":1700000000,"track_metadata":{"artist_name":"A","track_name":"T"}}'
    lone = LONE_SURROGATE  # msgspec refuses the whole reply
    body = b'{"payload":{"count":2,"listens":[' + good + b"," + lone + b"]}}"
    decoded = decode_listens_reply(body)
    assert isinstance(decoded, dict)
    page = listens_page(decoded)
    assert [r.listened_at for r in page.records] == [1700000000]
    assert len(page.skipped) == 1 and "surrogate" in page.skipped[0]
    assert page.oldest_ts == 1700000000 and page.newest_ts == 1700000010
    # not UTF-8, even in a value scrob does not read: not JSON, as before
    bad = body.replace(b'"count":2', b'"note":"\xff","count":2')
    with pytest.raises(ValueError):
        decode_listens_reply(bad)


def test_a_skipped_listen_still_spans_the_page() -> None:
    """A listen skipped as unusable still moves the cursor past it, even one whose time
    msgspec cannot read at first (its first listened_at is out of range)."""
    body = b'{"payload":{"count":1,"listens":[' + ODD_LISTENS[-2] + b"]}}"
    page = listens_page(decode_listens_reply(body))
    assert page.records == [] and len(page.skipped) == 1
    assert (page.newest_ts, page.oldest_ts) == (1700000015, 1700000015)


def test_listens_reply_nested_too_deeply_is_not_json() -> None:
    # (deeper than any interpreter's limit: Python 3.13's lets msgspec read 5000 levels)
    deep = b"[" * 100_000 + b"]" * 100_000
    body = (b'{"payload":{"count":1,"listens":[{"listened_at":1700000000,"x":' + deep
            + b',"track_metadata":{"artist_name":"A","track_name":"T"}}]}}')
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_listens_reply(body)


def test_listens_reply_that_is_not_utf8_is_unavailable(router: respx.MockRouter,
                                                       t: FakeTime) -> None:
    page = json.dumps(fixture("listens_legacy.json")).encode()
    router.get(f"{ROOT}/1/user/scrob_tester/listens").respond(
        200, content=page.replace(b'"payload"', b'"x":"\xfe","payload"', 1))
    with pytest.raises(ServiceUnavailable, match="not JSON"):
        make(t, attempts=1).listens("scrob_tester")


def test_parse_export_mixed_validity_reports_reasons() -> None:
    good, reasons = [], []
    for line in fixture_lines("export_mixed_validity.jsonl"):
        try:
            good.append(parse_listen(line))
        except ValueError as exc:
            reasons.append(str(exc))
    assert [r.track for r in good] == ["California Dreamin'", "Golden Brown", "Altered State"]
    assert reasons == ["listen's artist_name is empty or not text",
                       "listen's track_name is empty or not text", "listen has no listened_at"]


def test_parse_flattened_and_odd_types() -> None:
    rec = parse_listen({
        "listened_at": "1700000000",
        "track_metadata": {
            "artist_name": "  Artist ", "track_name": "Track", "release_name": "   ",
            "additional_info": {"duration": "215", "a.b": 1, "recording_mbid": "NOT-A-UUID",
                                "artist_mbids": "not a list",
                                "release_mbid": MBID.upper()},
        },
    })
    assert rec.listened_at == 1700000000
    assert (rec.artist, rec.album, rec.duration) == ("Artist", None, 215)
    assert rec.recording_mbid is None and rec.artist_mbids == ()
    assert rec.release_mbid == MBID  # canonical lower-case


def test_parse_rejects_unusable_listens() -> None:
    with pytest.raises(ValueError, match="no listened_at"):
        parse_listen({"track_metadata": {"artist_name": "a", "track_name": "b"}})
    with pytest.raises(ValueError, match="no track_metadata"):
        parse_listen({"listened_at": 1700000000})
    with pytest.raises(ValueError, match="not a number"):
        parse_listen({"listened_at": "soon", "track_metadata": {"artist_name": "a",
                                                                "track_name": "b"}})
    for impossible in (1e20, 10**20, -5):  # no time at all: would not even fit SQLite
        with pytest.raises(ValueError, match="is not a time"):
            parse_listen({"listened_at": impossible,
                          "track_metadata": {"artist_name": "a", "track_name": "b"}})


def test_parse_page_can_skip_and_report_invalid_listens() -> None:
    page = fixture("listens_legacy.json")
    page["payload"]["listens"][1]["track_metadata"]["track_name"] = " "
    with pytest.raises(ValueError):
        parse_listens_page(page)
    seen: list[str] = []
    records = parse_listens_page(page, on_invalid=lambda listen, reason: seen.append(reason))
    assert len(records) == 2 and seen == ["listen's track_name is empty or not text"]


def test_parse_playing_now_has_zero_listened_at() -> None:
    listen = fixture("playing_now.json")["payload"]["listens"][0]
    rec = parse_playing_now(listen)
    assert rec.listened_at == 0 and rec.track == "Golden Brown" and rec.duration == 206


# ----------------------------------------------------------------------------- payloads


def test_listen_payload_is_deterministic() -> None:
    first = listen_payload(record())
    second = listen_payload(record())
    assert first == second and first is not second
    assert encode_listen(first) == encode_listen(second)
    assert import_body([first]) == import_body([listen_payload(record())])


def test_listen_payload_has_only_allowed_keys() -> None:
    payload = listen_payload(record(remote_id="03dcc65c-0e01-4f25-aa1f-0f469d10e2ad",
                                    raw='{"inserted_at":1}'))
    assert set(payload) == {"listened_at", "track_metadata"}
    metadata = payload["track_metadata"]
    assert set(metadata) == {"artist_name", "track_name", "release_name", "additional_info"}
    assert metadata["additional_info"] == {
        "recording_mbid": MBID,
        "release_mbid": "c6911b3b-135f-4b7b-a2cc-b90ea1e11ac9",
        "artist_mbids": ["a96d82a0-cdca-40bf-b4c8-3d7ec178d85b"],
        "duration": 206,
        "submission_client": "scrob",
        "submission_client_version": __version__,
    }


def test_listen_payload_leaves_out_what_is_unknown() -> None:
    payload = listen_payload(SourceRecord(listened_at=1_700_000_000, artist="A", track="T",
                                          album="  "))
    assert payload == {"listened_at": 1_700_000_000, "track_metadata": {
        "artist_name": "A", "track_name": "T",
        "additional_info": {"submission_client": "scrob",
                            "submission_client_version": __version__}}}


def test_parsed_listens_make_valid_payloads() -> None:
    for name in ("listens_legacy.json", "listens_mapped.json"):
        for rec in parse_listens_page(fixture(name)):
            assert validate_listen(listen_payload(rec), NOW) is None


# ----------------------------------------------------------------------------- validation
# One test per server rule (api-notes A2).


def test_validate_accepts_a_good_listen() -> None:
    assert validate_listen(valid_payload(), NOW) is None


def test_validate_top_level_keys() -> None:
    payload = {**valid_payload(), "recording_msid": "03dcc65c-0e01-4f25-aa1f-0f469d10e2ad"}
    assert "top level" in (validate_listen(payload, NOW) or "")


def test_validate_listened_at_present() -> None:
    payload = valid_payload()
    del payload["listened_at"]
    assert validate_listen(payload, NOW) == "listened_at is missing"


def test_validate_listened_at_is_int() -> None:
    for value in ("1700000000", 1_700_000_000.5, True, None):
        assert "integer" in (validate_listen({**valid_payload(), "listened_at": value}, NOW) or "")


def test_validate_listened_at_minimum() -> None:
    assert validate_listen({**valid_payload(), "listened_at": LISTEN_MINIMUM_TS}, NOW) is None
    reason = validate_listen({**valid_payload(), "listened_at": LISTEN_MINIMUM_TS - 1}, NOW)
    assert reason and "2002-10-01" in reason


def test_validate_listened_at_maximum() -> None:
    assert validate_listen({**valid_payload(), "listened_at": NOW + 3599}, NOW) is None
    reason = validate_listen({**valid_payload(), "listened_at": NOW + 3600}, NOW)
    assert reason and "future" in reason


def test_validate_track_metadata_present() -> None:
    assert "track_metadata" in (validate_listen({"listened_at": NOW}, NOW) or "")
    reason = validate_listen({"listened_at": NOW, "track_metadata": None}, NOW)
    assert reason and "track_metadata" in reason


def test_validate_artist_name_non_empty_string() -> None:
    for value, word in ((" \t", "empty"), (["A", "B"], "string")):
        payload = valid_payload()
        payload["track_metadata"]["artist_name"] = value
        reason = validate_listen(payload, NOW)
        assert reason and "artist_name" in reason and word in reason
    payload = valid_payload()
    del payload["track_metadata"]["artist_name"]
    assert validate_listen(payload, NOW) == "track_metadata.artist_name is missing"


def test_validate_track_name_non_empty_string() -> None:
    payload = valid_payload()
    payload["track_metadata"]["track_name"] = "   "
    assert validate_listen(payload, NOW) == "track_metadata.track_name is empty"


def test_validate_release_name_not_blank() -> None:
    payload = valid_payload()
    payload["track_metadata"]["release_name"] = " "
    assert validate_listen(payload, NOW) == "track_metadata.release_name is empty"


def test_validate_tag_count() -> None:
    assert validate_listen(valid_payload(tags=["x"] * 50), NOW) is None
    assert "50 tags" in (validate_listen(valid_payload(tags=["x"] * 51), NOW) or "")


def test_validate_tag_length() -> None:
    assert validate_listen(valid_payload(tags=["x" * 64]), NOW) is None
    assert "64" in (validate_listen(valid_payload(tags=["x" * 65]), NOW) or "")


def test_validate_duration_and_duration_ms_not_both() -> None:
    reason = validate_listen(valid_payload(duration_ms=206000), NOW)
    assert reason == "both duration and duration_ms are given"


def test_validate_duration_positive() -> None:
    for value in (0, -5, "206", 2.5):
        reason = validate_listen(valid_payload(duration=value), NOW)
        assert reason == "duration must be a positive integer"


def test_validate_duration_limits() -> None:
    assert validate_listen(valid_payload(duration=2_073_600), NOW) is None
    assert "maximum" in (validate_listen(valid_payload(duration=2_073_601), NOW) or "")
    payload = valid_payload(duration_ms=2_073_600_001)
    del payload["track_metadata"]["additional_info"]["duration"]
    assert "maximum" in (validate_listen(payload, NOW) or "")


def test_validate_single_mbids_are_uuids() -> None:
    for key in ("recording_mbid", "release_mbid", "release_group_mbid", "track_mbid"):
        assert validate_listen(valid_payload(**{key: ""}), NOW) is None  # dropped by server
        reason = validate_listen(valid_payload(**{key: "12345"}), NOW)
        assert reason and key in reason


def test_validate_artist_mbids_list_of_uuids() -> None:
    assert validate_listen(valid_payload(artist_mbids=[MBID, ""]), NOW) is None
    assert "list" in (validate_listen(valid_payload(artist_mbids=MBID), NOW) or "")
    reason = validate_listen(valid_payload(artist_mbids=[MBID, "nope"]), NOW)
    assert reason and "artist_mbids" in reason
    assert "work_mbids" in (validate_listen(valid_payload(work_mbids=["x"]), NOW) or "")


def test_validate_nul_anywhere() -> None:
    assert "NUL" in (validate_listen(valid_payload(media_player="mp\x00v"), NOW) or "")
    assert "NUL" in (validate_listen(valid_payload(nested={"deep": ["ok", "b\x00d"]}), NOW)
                     or "")
    payload = valid_payload()
    payload["track_metadata"]["track_name"] = "Golden\x00Brown"
    assert "NUL" in (validate_listen(payload, NOW) or "")


def test_validate_listen_size() -> None:
    base = len(encode_listen(valid_payload(comment="")))
    fits = valid_payload(comment="x" * (MAX_SINGLE_LISTEN_BYTES - base))
    assert len(encode_listen(fits)) == MAX_SINGLE_LISTEN_BYTES
    assert validate_listen(fits, NOW) is None
    too_big = valid_payload(comment="x" * (MAX_SINGLE_LISTEN_BYTES - base + 1))
    reason = validate_listen(too_big, NOW)
    assert reason and str(MAX_LISTEN_SIZE) in reason
    # measured in UTF-8 bytes, not characters
    wide = valid_payload(comment="\u00e9" * ((MAX_SINGLE_LISTEN_BYTES - base) // 2 + 1))
    assert validate_listen(wide, NOW) is not None


# ----------------------------------------------------------------------------- batching


def small(i: int) -> dict[str, Any]:
    return listen_payload(SourceRecord(listened_at=1_700_000_000 + i, artist="A", track=f"T{i}"))


def test_batches_by_count() -> None:
    payloads = [small(i) for i in range(2500)]
    out = list(batches(payloads))
    assert [len(b) for b in out] == [1000, 1000, 500]
    assert [p for b in out for p in b] == payloads
    assert [len(b) for b in batches(payloads[:7], max_listens=3)] == [3, 3, 1]


def test_batches_by_bytes() -> None:
    payloads = [small(i) for i in range(100)]
    limit = 2000
    out = list(batches(payloads, max_bytes=limit))
    assert len(out) > 1 and [p for b in out for p in b] == payloads
    for batch in out:
        assert len(import_body(batch)) <= limit
    # each batch is as full as it can be: the next listen would not have fitted
    for batch, following in zip(out, out[1:]):
        assert len(import_body([*batch, following[0]])) > limit


def test_batches_respect_the_average_rule_with_big_listens() -> None:
    base = len(encode_listen(valid_payload(comment="")))
    big = [valid_payload(comment=str(i) * (MAX_SINGLE_LISTEN_BYTES - base))
           for i in range(10)]
    assert all(len(encode_listen(p)) == MAX_SINGLE_LISTEN_BYTES for p in big)
    out = list(batches(big, max_bytes=40_000))
    assert [len(b) for b in out] == [3, 3, 3, 1]
    for batch in out:
        body = import_body(batch)
        assert len(body) <= len(batch) * MAX_LISTEN_SIZE and len(body) <= 40_000


def test_batches_refuse_a_listen_that_cannot_be_sent() -> None:
    base = len(encode_listen(valid_payload(comment="")))
    too_big = valid_payload(comment="x" * (MAX_SINGLE_LISTEN_BYTES - base + 1))
    with pytest.raises(ValueError, match="too large"):
        list(batches([small(1), too_big]))


# ----------------------------------------------------------------------------- client


def test_validate_token_good(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/validate-token").respond(
        200, json=fixture("validate_token_good.json"))
    assert make(t).validate_token() == "scrob_tester"
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert TOKEN not in str(request.url)


def test_validate_token_bad(router: respx.MockRouter, t: FakeTime) -> None:
    router.get(f"{ROOT}/1/validate-token").respond(200, json=fixture("validate_token_bad.json"))
    with pytest.raises(AuthRejected) as info:
        make(t).validate_token()
    assert info.value.exit_code == 3
    assert "scrob auth listenbrainz" in str(info.value)
    assert "SCROB_LISTENBRAINZ_TOKEN" in str(info.value)


def test_validate_token_missing(router: respx.MockRouter, t: FakeTime) -> None:
    with pytest.raises(CredentialsError) as info:
        make(t, token=None).validate_token()
    assert not isinstance(info.value, AuthRejected)
    assert info.value.exit_code == 3 and len(router.calls) == 0


def test_listens_sends_paging_params(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/user/scrob_tester/listens").respond(
        200, json=fixture("listens_mapped.json"))
    page = make(t).listens("scrob_tester", min_ts=1420070399, max_ts=1692501765, count=1000)
    params = dict(route.calls.last.request.url.params)
    assert params == {"min_ts": "1420070399", "max_ts": "1692501765", "count": "1000"}
    assert page.count == 4 and len(page.records) == 4
    assert [r.listened_at for r in page.records] == [1692501764, 1692500382, 1690244439,
                                                     1420070400]
    assert (page.newest_ts, page.oldest_ts) == (1692501764, 1420070400)
    assert (page.latest_listen_ts, page.oldest_listen_ts) == (1692501764, 1420070400)
    assert page.skipped == ()


def test_listens_without_bounds_sends_only_count(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/user/scrob_tester/listens").respond(
        200, json=fixture("listens_empty.json"))
    page = make(t).listens("scrob_tester", count=5)
    assert dict(route.calls.last.request.url.params) == {"count": "5"}
    assert page.records == [] and page.count == 0 and page.newest_ts is None


def test_listens_page_reports_skipped_listens(router: respx.MockRouter, t: FakeTime) -> None:
    body = fixture("listens_legacy.json")
    body["payload"]["listens"][0]["track_metadata"]["artist_name"] = ""
    router.get(f"{ROOT}/1/user/scrob_tester/listens").respond(200, json=body)
    page = make(t).listens("scrob_tester")
    assert len(page.records) == 2 and page.count == 3
    assert page.skipped == ("listen's artist_name is empty or not text",)
    assert page.newest_ts == 1586888400  # the skipped listen still moves the span


def test_path_prefixed_root_and_quoted_user(router: respx.MockRouter, t: FakeTime) -> None:
    root = "http://127.0.0.1:8042/apis/listenbrainz/"
    route = router.get("http://127.0.0.1:8042/apis/listenbrainz/1/user/a%20b%2Fc/listen-count"
                       ).respond(200, json=fixture("listen_count.json"))
    assert make(t, root=root).listen_count("a b/c") == 111487
    assert route.called


def test_playing_now_some_and_none(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/user/scrob_tester/playing-now")
    route.side_effect = [httpx.Response(200, json=fixture("playing_now.json")),
                         httpx.Response(200, json=fixture("playing_now_none.json"))]
    client = make(t)
    now_playing = client.playing_now("scrob_tester")
    assert now_playing is not None and now_playing.listened_at == 0
    assert now_playing.artist == "The Stranglers"
    assert client.playing_now("scrob_tester") is None


def test_submit_import_sends_the_exact_body(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.post(f"{ROOT}/1/submit-listens").respond(200, json=fixture("submit_ok.json"))
    payloads = [small(i) for i in range(3)]
    make(t).submit_import(payloads)
    request = route.calls.last.request
    assert request.content == import_body(payloads)
    body = json.loads(request.content)
    assert body["listen_type"] == "import" and body["payload"] == payloads
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Token {TOKEN}"


def test_submit_import_size_bounds(router: respx.MockRouter, t: FakeTime) -> None:
    client = make(t)
    with pytest.raises(ValueError):
        client.submit_import([])
    with pytest.raises(ValueError):
        client.submit_import([small(i) for i in range(1001)])
    with pytest.raises(CredentialsError):
        make(t, token=None).submit_import([small(1)])
    assert len(router.calls) == 0


def test_401_is_auth_rejected(router: respx.MockRouter, t: FakeTime) -> None:
    router.post(f"{ROOT}/1/submit-listens").respond(401, json=fixture("error_401.json"))
    with pytest.raises(AuthRejected) as info:
        make(t).submit_import([small(1)])
    assert info.value.exit_code == 3 and info.value.status == 401
    assert "Invalid authorization token" in str(info.value)
    assert "scrob auth listenbrainz" in str(info.value)
    assert t.sleeps == []  # never retried


def test_404_on_user_url_is_an_unknown_user(router: respx.MockRouter, t: FakeTime) -> None:
    router.get(f"{ROOT}/1/user/nobody_here/listens").respond(
        404, json=fixture("error_404_user.json"))
    with pytest.raises(UnknownUser) as info:
        make(t).listens("nobody_here")
    assert "nobody_here" in str(info.value) and t.sleeps == []
    assert info.value.exit_code == 2  # a wrong name: the next run will not fix it
    assert "--user" in str(info.value)


def test_other_404_on_user_url_may_be_a_wrong_root(router: respx.MockRouter,
                                                    t: FakeTime) -> None:
    # a server that is not ListenBrainz at that root: not the server's "no such user"
    router.get(f"{ROOT}/1/user/alice/listen-count").respond(404, text="<html>nope</html>")
    with pytest.raises(NotFound) as info:
        make(t).listen_count("alice")
    assert not isinstance(info.value, UnknownUser) and info.value.exit_code == 4
    assert "SCROB_LISTENBRAINZ_API_URL" in str(info.value) and "--user" in str(info.value)


def test_404_elsewhere_points_at_the_api_root(router: respx.MockRouter, t: FakeTime) -> None:
    router.get(f"{ROOT}/1/validate-token").respond(404, text="<html>nope</html>")
    with pytest.raises(ServiceError) as info:
        make(t).validate_token()
    assert not isinstance(info.value, NotFound)
    assert "SCROB_LISTENBRAINZ_API_URL" in str(info.value)


def test_400_carries_the_server_message_and_listen(router: respx.MockRouter,
                                                    t: FakeTime) -> None:
    router.post(f"{ROOT}/1/submit-listens").respond(400, json=fixture("error_400_listen.json"))
    with pytest.raises(SubmissionRejected) as info:
        make(t).submit_import([small(1)])
    exc = info.value
    assert isinstance(exc, ServiceError) and exc.status == 400
    assert exc.reason.startswith("Value for key listened_at is too low")
    assert exc.reason in str(exc)
    assert exc.listened_at == 1000000000
    assert t.sleeps == []


def test_400_on_a_read_is_a_service_error(router: respx.MockRouter, t: FakeTime) -> None:
    router.get(f"{ROOT}/1/user/scrob_tester/listens").respond(
        400, json=fixture("error_400_count.json"))
    with pytest.raises(ServiceError, match="Number of items requested should be positive"):
        make(t).listens("scrob_tester")


def test_429_then_200_waits_reset_in(router: respx.MockRouter, t: FakeTime) -> None:
    headers = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": "1750000010", "X-RateLimit-Reset-In": "7"}
    route = router.get(f"{ROOT}/1/user/scrob_tester/listen-count")
    route.side_effect = [httpx.Response(429, json=fixture("error_429.json"), headers=headers),
                         httpx.Response(200, json=fixture("listen_count.json"))]
    assert make(t).listen_count("scrob_tester") == 111487
    assert t.sleeps == [7.0] and route.call_count == 2


def test_503_then_200_is_retried(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/user/scrob_tester/listen-count")
    route.side_effect = [httpx.Response(503, json=fixture("error_503.json"),
                                        headers={"X-RateLimit-Remaining": "25",
                                                 "X-RateLimit-Reset-In": "9"}),
                         httpx.Response(200, json=fixture("listen_count.json"))]
    assert make(t).listen_count("scrob_tester") == 111487
    assert len(t.sleeps) == 1 and t.sleeps[0] <= 1.0  # backoff, not the rate window


def test_503_forever_gives_service_unavailable(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/user/scrob_tester/listen-count").respond(503)
    with pytest.raises(ServiceUnavailable) as info:
        make(t, attempts=3).listen_count("scrob_tester")
    assert info.value.exit_code == 4 and route.call_count == 3 and len(t.sleeps) == 2


def test_transport_error_then_200(router: respx.MockRouter, t: FakeTime) -> None:
    route = router.post(f"{ROOT}/1/submit-listens")
    route.side_effect = [httpx.ConnectError("connection refused"),
                         httpx.Response(200, json={"status": "ok"})]
    make(t).submit_import([small(1)])
    assert route.call_count == 2
    # the retry sends byte-for-byte the same body (server dedup relies on it)
    assert route.calls[0].request.content == route.calls[1].request.content


def test_non_json_200_is_unavailable(router: respx.MockRouter, t: FakeTime) -> None:
    router.get(f"{ROOT}/1/validate-token").respond(200, text="<html>captive portal</html>")
    with pytest.raises(ServiceUnavailable, match="not JSON"):
        make(t, attempts=2).validate_token()


def test_rate_limit_remaining_zero_delays_next_request(router: respx.MockRouter,
                                                       t: FakeTime) -> None:
    route = router.get(f"{ROOT}/1/user/scrob_tester/listen-count")
    route.side_effect = [
        httpx.Response(200, json=fixture("listen_count.json"),
                       headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-In": "6"}),
        httpx.Response(200, json=fixture("listen_count.json"),
                       headers={"X-RateLimit-Remaining": "29", "X-RateLimit-Reset-In": "10"}),
        httpx.Response(200, json=fixture("listen_count.json"),
                       headers={"X-RateLimit-Remaining": "28", "X-RateLimit-Reset-In": "9"}),
    ]
    client = make(t)
    client.listen_count("scrob_tester")
    assert t.sleeps == []
    client.listen_count("scrob_tester")
    assert t.sleeps == [6.0]
    client.listen_count("scrob_tester")
    assert t.sleeps == [6.0]


def test_token_never_in_messages_or_logs(router: respx.MockRouter, t: FakeTime,
                                         logs: list[str]) -> None:
    echo = {"code": 400, "error": f"Invalid token {TOKEN}", "token": TOKEN}
    router.post(f"{ROOT}/1/submit-listens").side_effect = [
        httpx.ConnectError(f"failed Authorization: Token {TOKEN}"),
        httpx.Response(400, json=echo),
    ]
    router.get(f"{ROOT}/1/validate-token").respond(401, json={"code": 401,
                                                              "error": f"bad {TOKEN}"})
    router.get(f"{ROOT}/1/user/scrob_tester/listen-count").respond(503)
    client = make(t, logs, attempts=2)
    errors: list[Exception] = []
    for call in (lambda: client.submit_import([small(1)]), client.validate_token,
                 lambda: client.listen_count("scrob_tester")):
        with pytest.raises(ServiceError) as info:
            call()
        errors.append(info.value)
    assert logs, "the log callback saw the requests"
    for text in [*logs, *(str(e) for e in errors), *(repr(e) for e in errors), repr(client)]:
        assert TOKEN not in text


def test_a_listens_bad_fields_are_named_as_json_spells_them() -> None:
    """A reason shows the value as the file has it (`true`, not Python's `True`), and a
    name that is not text is not called empty."""
    meta = {"artist_name": "A", "track_name": "T"}
    for listen, reason in [
        ({"listened_at": True, "track_metadata": meta}, "listened_at is not a number: true"),
        ({"listened_at": 1700000000, "track_metadata": {**meta, "artist_name": 5}},
         "listen's artist_name is empty or not text"),
    ]:
        with pytest.raises(ValueError) as caught:
            parse_listen(listen)
        assert str(caught.value) == reason
