"""The fake ListenBrainz server behaves as api-notes part A says the real one does.

Everything goes over a real loopback socket, mostly through ``ListenBrainzClient``;
raw ``httpx`` is used where the exact status or body matters.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrobbler_cli.errors import AuthRejected, CredentialsError, NotFound, ServiceError
from scrobbler_cli.models import SourceRecord
from scrobbler_cli.services.http import Http, make_client
from scrobbler_cli.services.listenbrainz import (
    ListenBrainzClient,
    SubmissionRejected,
    listen_payload,
    parse_listen,
)
from tests.fakes.listenbrainz_server import (
    _MSID_NAMESPACE,
    RATE_LIMIT_MESSAGE,
    FakeListenBrainz,
    _msid,
    msid_for,
)
from tests.helpers import FakeTime

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "listenbrainz"
TOKEN = "6a0b8c1d-2e3f-4a5b-9c7d-8e9f0a1b2c3d"
T0 = 1_600_000_000  # base listened_at for generated listens
TLS = ssl.create_default_context()  # built once: a new one per client costs ~25 ms


@pytest.fixture
def lb() -> Iterator[FakeListenBrainz]:
    with FakeListenBrainz() as fake:
        fake.add_user("Alice", TOKEN)
        yield fake


def client_for(fake: FakeListenBrainz, *, token: str | None = TOKEN,
               t: FakeTime | None = None, attempts: int = 4) -> ListenBrainzClient:
    t = t or FakeTime(start=time.time())
    http = Http(make_client(transport=httpx.HTTPTransport(verify=TLS)), service="listenbrainz",
                sleep=t.sleep, clock=t.clock, attempts=attempts)
    return ListenBrainzClient(http, api_root=fake.url, token=token)


def raw(fake: FakeListenBrainz, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=fake.url, verify=TLS) as client:
        return client.request(method, path, **kwargs)


def submit_raw(fake: FakeListenBrainz, body: Any, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Token {token}"} if token else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw(fake, "POST", "/1/submit-listens", content=content, headers=headers)


def stamps(page: Any) -> list[int]:
    return [r.listened_at for r in page.records]


def payload(ts: int, track: str = "Track", artist: str = "Artist",
            album: str | None = "Album") -> dict[str, Any]:
    return listen_payload(SourceRecord(listened_at=ts, artist=artist, track=track, album=album))


# ----------------------------------------------------------------------------- reading


def test_bounds_are_strict(lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(10)])
    page = client_for(lb).listens("alice", min_ts=T0 + 2, max_ts=T0 + 6)
    assert stamps(page) == [T0 + 5, T0 + 4, T0 + 3]


def test_only_min_ts_gives_the_oldest_after_it_newest_first(lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(10)])
    page = client_for(lb).listens("alice", min_ts=T0 + 2, count=3)
    assert stamps(page) == [T0 + 5, T0 + 4, T0 + 3]


def test_only_max_ts_gives_the_newest_before_it(lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(10)])
    page = client_for(lb).listens("alice", max_ts=T0 + 8, count=3)
    assert stamps(page) == [T0 + 7, T0 + 6, T0 + 5]


def test_both_bounds_give_the_oldest_inside(lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(10)])
    page = client_for(lb).listens("alice", min_ts=T0, max_ts=T0 + 9, count=4)
    assert stamps(page) == [T0 + 4, T0 + 3, T0 + 2, T0 + 1]
    assert page.count == 4
    assert (page.latest_listen_ts, page.oldest_listen_ts) == (T0 + 9, T0)


def test_no_bounds_gives_the_newest_and_count_defaults_to_25(lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(40)])
    reply = raw(lb, "GET", "/1/user/alice/listens").json()["payload"]
    assert reply["count"] == 25
    assert [x["listened_at"] for x in reply["listens"]] == [T0 + i for i in range(39, 14, -1)]
    assert set(reply) == {"count", "listens", "latest_listen_ts", "oldest_listen_ts", "user_id"}


def test_ties_at_a_page_boundary(lb: FakeListenBrainz) -> None:
    """Strict bounds skip same-second listens; stepping back 1 s (api-notes A5.1) does not."""
    lb.add_listens("alice", [(T0, "A", "Old")] + [(T0 + 10, "A", f"Tie{i}") for i in range(3)])
    client = client_for(lb)
    first = client.listens("alice", count=2)
    assert stamps(first) == [T0 + 10, T0 + 10]
    naive = client.listens("alice", max_ts=first.oldest_ts, count=2)
    assert stamps(naive) == [T0]  # the third tie is lost
    safe = client.listens("alice", max_ts=(first.oldest_ts or 0) + 1, count=5)
    assert sorted(r.track for r in safe.records if r.listened_at == T0 + 10) == [
        "Tie0", "Tie1", "Tie2"]


def test_count_is_capped_silently_at_1000(lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0 + i, "A", f"T{i}") for i in range(1200)])
    page = client_for(lb).listens("alice", count=5000)
    assert page.count == 1000 and len(page.records) == 1000
    assert lb.request_log[-1].query["count"] == "5000"


def test_bad_parameters_are_400(lb: FakeListenBrainz) -> None:
    reply = raw(lb, "GET", "/1/user/alice/listens", params={"count": -1})
    assert reply.status_code == 400
    assert reply.json() == {"code": 400, "error": "Number of items requested should be positive"}
    with pytest.raises(ServiceError, match="max_ts should be greater than min_ts"):
        client_for(lb).listens("alice", min_ts=T0 + 5, max_ts=T0 + 5)
    assert raw(lb, "GET", "/1/user/alice/listens", params={"count": "x"}).status_code == 400


def test_users_match_case_insensitively_and_user_id_echoes_the_url(
        lb: FakeListenBrainz) -> None:
    lb.add_listens("alice", [(T0, "A", "T")])
    reply = raw(lb, "GET", "/1/user/ALICE/listens").json()["payload"]
    assert reply["user_id"] == "ALICE"
    assert reply["listens"][0]["user_name"] == "Alice"
    assert client_for(lb).listen_count("aLiCe") == 1


def test_unknown_user_is_404(lb: FakeListenBrainz) -> None:
    reply = raw(lb, "GET", "/1/user/bob/listens")
    assert reply.status_code == 404 and reply.json() == {"code": 404,
                                                         "error": "Cannot find user: bob"}
    with pytest.raises(NotFound):
        client_for(lb).listens("bob")


def test_listens_are_api_shaped(lb: FakeListenBrainz) -> None:
    client_for(lb).submit_import([payload(T0, album="LP")])
    stored = lb.listens("alice")[0]
    assert set(stored) == {"inserted_at", "listened_at", "recording_msid", "track_metadata",
                           "user_name"}
    info = stored["track_metadata"]["additional_info"]
    assert info["recording_msid"] == stored["recording_msid"]
    assert info["submission_client"] == "scrob"


def test_add_listens_keeps_given_msids_and_flattens(lb: FakeListenBrainz) -> None:
    page = json.loads((FIXTURES / "listens_mapped.json").read_text(encoding="utf-8"))
    lines = [json.loads(x) for x in (FIXTURES / "export_listens.jsonl").read_text().splitlines()]
    assert lb.add_listens("alice", page["payload"]["listens"] + lines) == 7
    assert lb.add_listens("alice", lines) == 0  # same (listened_at, msid): dropped
    lb.add_listens("alice", [{"listened_at": T0, "track_metadata": {
        "artist_name": "A", "track_name": "T", "additional_info": {"player": {"name": "mpv"}}}}])
    by_msid = {x["recording_msid"]: x for x in lb.listens("alice")}
    assert "03dcc65c-0e01-4f25-aa1f-0f469d10e2ad" in by_msid  # msid from the export line
    flat = [x for x in lb.listens("alice") if x["listened_at"] == T0][0]
    assert flat["track_metadata"]["additional_info"]["player.name"] == "mpv"


# ----------------------------------------------------------------------------- tokens


def test_validate_token_good_bad_and_missing(lb: FakeListenBrainz) -> None:
    assert client_for(lb).validate_token() == "Alice"
    with pytest.raises(AuthRejected):
        client_for(lb, token="not-the-token").validate_token()
    reply = raw(lb, "GET", "/1/validate-token")
    assert reply.status_code == 400
    bad = raw(lb, "GET", "/1/validate-token", headers={"Authorization": "Token nope"})
    assert bad.status_code == 200 and bad.json() == {"code": 200, "message": "Token invalid.",
                                                     "valid": False}


def test_submit_needs_a_token(lb: FakeListenBrainz) -> None:
    body = {"listen_type": "import", "payload": [payload(T0)]}
    assert submit_raw(lb, body, token=None).status_code == 401
    with pytest.raises(AuthRejected):
        client_for(lb, token="wrong-token").submit_import([payload(T0)])
    with pytest.raises(CredentialsError):
        client_for(lb, token=None).submit_import([payload(T0)])
    assert lb.listens("alice") == []


# ----------------------------------------------------------------------------- submitting


def test_submission_is_all_or_nothing(lb: FakeListenBrainz) -> None:
    good = [payload(T0 + i, track=f"T{i}") for i in range(5)]
    bad = payload(1_000_000_000, track="Too old")
    with pytest.raises(SubmissionRejected) as info:
        client_for(lb).submit_import([*good[:2], bad, *good[2:]])
    assert info.value.reason.startswith("Value for key listened_at is too low")
    assert info.value.listened_at == 1_000_000_000
    assert lb.listens("alice") == [] and lb.submitted_batches == []
    reply = submit_raw(lb, {"listen_type": "import", "payload": [*good, bad]})
    body = reply.json()
    assert reply.status_code == 400 and body["code"] == 400
    assert body["listened_at"] == 1_000_000_000 and body["track_metadata"]["track_name"] == (
        "Too old")


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "Cannot parse JSON document"),
    ([1, 2], "Top level of JSON document should be a json object"),
    ({"payload": []}, "Invalid JSON document submitted."),
    ({"listen_type": "import", "payload": {}}, "should be a list of listens"),
    ({"listen_type": "import", "payload": []}, "does not contain any listens"),
    ({"listen_type": "bulk", "payload": [{}]}, "valid listen_type"),
])
def test_request_level_rules(lb: FakeListenBrainz, body: Any, message: str) -> None:
    reply = submit_raw(lb, body)
    assert reply.status_code == 400 and message in reply.json()["error"]


def test_listen_type_rules(lb: FakeListenBrainz) -> None:
    two = [payload(T0), payload(T0 + 1)]
    reply = submit_raw(lb, {"listen_type": "single", "payload": two})
    assert reply.status_code == 400 and "only one" in reply.json()["error"]
    assert submit_raw(lb, {"listen_type": "single", "payload": two[:1]}).status_code == 200
    now_playing = {"track_metadata": two[0]["track_metadata"]}
    reply = submit_raw(lb, {"listen_type": "playing_now", "payload": [two[0]]})
    assert reply.status_code == 400 and "must not contain listened_at" in reply.json()["error"]
    assert submit_raw(lb, {"listen_type": "playing_now",
                           "payload": [now_playing]}).status_code == 200


def test_more_than_1000_listens_is_400(lb: FakeListenBrainz) -> None:
    reply = submit_raw(lb, {"listen_type": "import",
                            "payload": [payload(T0 + i) for i in range(1001)]})
    assert reply.status_code == 400
    assert reply.json()["error"] == ("Too many listens. You may not submit more than 1000 "
                                     "listens at once.")


def test_payload_byte_limits(lb: FakeListenBrainz) -> None:
    fat = payload(T0)
    fat["track_metadata"]["additional_info"]["comment"] = "x" * 12_000
    reply = submit_raw(lb, {"listen_type": "import", "payload": [fat]})
    assert reply.status_code == 400 and "10240 bytes" in reply.json()["error"]
    huge = b'{"listen_type":"import","payload":[' + b" " * 10_240_001 + b"]}"
    reply = submit_raw(lb, huge)
    assert reply.status_code == 400 and "Payload too large" in reply.json()["error"]


def test_per_listen_rules_are_checked(lb: FakeListenBrainz) -> None:
    def reason(**info: Any) -> str:
        listen = payload(T0)
        listen["track_metadata"]["additional_info"].update(info)
        reply = submit_raw(lb, {"listen_type": "import", "payload": [listen]})
        assert reply.status_code == 400
        return str(reply.json()["error"])

    assert "more than 50" in reason(tags=["t"] * 51)
    assert "longer than 64" in reason(tags=["t" * 65])
    assert "both duration and duration_ms" in reason(duration=1, duration_ms=1000)
    assert "too large" in reason(duration=2_073_601)
    assert "recording_mbid MBID format invalid" in reason(recording_mbid="nope")
    assert "artist_mbids MBID format invalid" in reason(artist_mbids=["nope"])
    assert "unicode null" in reason(media_player="a\x00b")
    extra = {**payload(T0), "user_name": "Alice"}
    reply = submit_raw(lb, {"listen_type": "import", "payload": [extra]})
    assert "top level keys" in reply.json()["error"]
    frozen = float(int(time.time()))  # one clock for the fake and the payload: no tick
    lb.clock = lambda: frozen
    future = payload(int(frozen) + 3600)
    reply = submit_raw(lb, {"listen_type": "import", "payload": [future]})
    assert reply.json()["error"] == "Value for key listened_at is too high."


def test_duplicates_are_dropped_silently(lb: FakeListenBrainz) -> None:
    client = client_for(lb)
    batch = [payload(T0 + i, track=f"T{i}") for i in range(3)]
    client.submit_import(batch)
    client.submit_import(batch)  # a retry: accepted, stored once
    assert len(lb.listens("alice")) == 3 and len(lb.submitted_batches) == 2
    shouted = payload(T0, track="T0".upper(), artist="ARTIST", album="ALBUM")
    client.submit_import([shouted])  # the msid key is case-insensitive
    assert len(lb.listens("alice")) == 3
    other_release = payload(T0, track="T0", album="Another album")
    client.submit_import([other_release])  # new msid: the same play is stored twice
    assert len(lb.listens("alice")) == 4
    assert client.listen_count("alice") == 4


def test_msid_is_derived_from_the_messybrainz_key(lb: FakeListenBrainz) -> None:
    client_for(lb).submit_import([payload(T0, track="Golden Brown", artist="The Stranglers",
                                          album="La Folie")])
    stored = lb.listens("alice")[0]
    expected = msid_for({"track_name": "golden brown", "artist_name": "the stranglers",
                         "release_name": "la folie", "additional_info": {}})
    assert stored["recording_msid"] == expected
    # a version-5 UUID of the key, whatever the fake does to make it quickly
    key = "\x1f".join(["golden brown", "the stranglers", "la folie", "", ""])
    assert expected == str(uuid.uuid5(_MSID_NAMESPACE, key))
    assert [str(uuid.uuid5(_MSID_NAMESPACE, k)) for k in ("", "ñ" * 200, "x\x00y")] == \
        [_msid(k) for k in ("", "ñ" * 200, "x\x00y")]


def test_round_trip_through_the_client(lb: FakeListenBrainz) -> None:
    client = client_for(lb)
    records = [SourceRecord(listened_at=T0 + i * 60, artist="The Stranglers",
                            track=f"Track {i}", album="La Folie", duration=200 + i,
                            recording_mbid="c7d0bf6e-b2aa-4ffa-bded-2448415b39b0")
               for i in range(5)]
    client.submit_import([listen_payload(r) for r in records])
    page = client.listens("alice", min_ts=T0 - 1, max_ts=T0 + 3600)
    back = list(reversed(page.records))
    assert [(r.listened_at, r.artist, r.track, r.album, r.duration, r.recording_mbid)
            for r in back] == [(r.listened_at, r.artist, r.track, r.album, r.duration,
                                r.recording_mbid) for r in records]
    assert all(r.remote_id for r in back)
    # each raw record is the listen exactly as the server sent it
    body = httpx.get(f"{lb.url}/1/user/alice/listens",
                     params={"min_ts": T0 - 1, "max_ts": T0 + 3600}).content
    assert all(isinstance(r.raw, bytes) and r.raw in body for r in back)
    assert [json.loads(r.raw or "") for r in page.records] == \
        json.loads(body)["payload"]["listens"]
    again = parse_listen(json.loads(back[0].raw or ""))  # the general way reads it alike
    again.raw = back[0].raw
    assert again == back[0]


def test_paging_forward_collects_everything_once(lb: FakeListenBrainz) -> None:
    """The api-notes E1 walk: both bounds, cursor − 1, dedupe on (listened_at, msid)."""
    listens = [(T0 + (i // 3) * 10, "A", f"T{i}") for i in range(50)]  # ties of three
    lb.add_listens("alice", listens)
    client = client_for(lb)
    seen: set[tuple[int, str | None]] = set()
    cursor, requests = T0 - 100, 0
    while True:
        page = client.listens("alice", min_ts=cursor - 1, max_ts=T0 + 10**6, count=4)
        requests += 1
        seen.update((r.listened_at, r.remote_id) for r in page.records)
        if page.count < 4:
            break
        cursor = page.newest_ts or cursor
    assert len(seen) == 50 and requests < 60


def test_playing_now(lb: FakeListenBrainz) -> None:
    client = client_for(lb)
    assert client.playing_now("alice") is None
    metadata = {"artist_name": "The Stranglers", "track_name": "Golden Brown",
                "additional_info": {"duration_ms": 206760}}
    reply = submit_raw(lb, {"listen_type": "playing_now", "payload": [
        {"track_metadata": metadata}]})
    assert reply.json() == {"status": "ok"}
    now = client.playing_now("ALICE")
    assert now is not None and now.listened_at == 0 and now.track == "Golden Brown"
    assert lb.listens("alice") == []  # never a listen
    body = raw(lb, "GET", "/1/user/alice/playing-now").json()["payload"]
    assert body["playing_now"] is True and body["count"] == 1
    assert "listened_at" not in body["listens"][0]


# ----------------------------------------------------------------------------- operations


def test_rate_limit_headers_on_every_reply_and_429(lb: FakeListenBrainz) -> None:
    lb.rate_limit, lb.rate_window = 3, 3600
    lb.clock = lambda: 1_750_000_100.0  # inside one window, whatever the real time
    replies = [raw(lb, "GET", "/1/user/alice/listen-count") for _ in range(4)]
    for reply in replies:
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                     "X-RateLimit-Reset-In"):
            assert name in reply.headers
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
    assert replies[3].json() == {"code": 429, "error": RATE_LIMIT_MESSAGE}
    reset = int(replies[0].headers["X-RateLimit-Reset"])
    assert reset % 3600 == 0 and 0 < int(replies[0].headers["X-RateLimit-Reset-In"]) <= 3600


def test_client_obeys_the_rate_limit_without_a_429() -> None:
    t = FakeTime(start=1_750_000_003.0)
    with FakeListenBrainz(rate_limit=2, rate_window=10, clock=t.clock) as fake:
        fake.add_user("alice", TOKEN)
        client = client_for(fake, t=t)
        for _ in range(5):
            client.listen_count("alice")
        assert [r.status for r in fake.request_log] == [200] * 5
        assert t.sleeps == [7.0, 10.0]  # waited for each window to reset


def test_client_retries_a_429_after_reset_in() -> None:
    t = FakeTime(start=1_750_000_000.0)
    with FakeListenBrainz(rate_limit=1, rate_window=10, clock=t.clock) as fake:
        fake.add_user("alice", TOKEN)
        raw(fake, "GET", "/1/user/alice/listen-count")  # someone else spent the window
        assert client_for(fake, t=t).listen_count("alice") == 0
        assert [r.status for r in fake.request_log] == [200, 429, 200]
        assert t.sleeps == [10.0]


def test_prefix(tmp_path: Path) -> None:
    with FakeListenBrainz(prefix="/apis/listenbrainz/") as fake:
        fake.add_user("alice", TOKEN)
        assert fake.url.endswith("/apis/listenbrainz")
        client = client_for(fake)
        client.submit_import([payload(T0)])
        assert client.validate_token() == "alice"
        assert stamps(client.listens("alice")) == [T0]
        assert fake.request_log[-1].path == "/apis/listenbrainz/1/user/alice/listens"
        with httpx.Client(verify=TLS) as plain:
            root = fake.url.rsplit("/apis/", 1)[0]
            assert plain.get(f"{root}/1/user/alice/listens").status_code == 404


def test_fail_next_is_retried_by_the_client(lb: FakeListenBrainz) -> None:
    lb.fail_next(2, 503)
    t = FakeTime(start=time.time())
    assert client_for(lb, t=t).listen_count("alice") == 0
    assert [r.status for r in lb.request_log] == [503, 503, 200] and len(t.sleeps) == 2
    lb.fail_next(1, 200, body=b"<html>maintenance</html>")
    assert client_for(lb).listen_count("alice") == 0  # non-JSON 200 is retried too


def test_fault_rate_is_seeded() -> None:
    def statuses() -> list[int]:
        with FakeListenBrainz(fault_rate=0.5, seed=7) as fake, httpx.Client(verify=TLS) as http:
            fake.add_user("alice")
            return [http.get(f"{fake.url}/1/user/alice/listen-count").status_code
                    for _ in range(20)]

    first = statuses()
    assert first == statuses() and 200 in first and 503 in first


def test_latency_is_injected(lb: FakeListenBrainz) -> None:
    lb.latency = 0.05
    started = time.perf_counter()
    raw(lb, "GET", "/1/user/alice/listen-count")
    assert time.perf_counter() - started >= 0.05
