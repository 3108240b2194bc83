"""Last.fm: signing, parsing real-shaped replies, error mapping and the client over respx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx

from scrobbler_cli.errors import (
    AuthRejected,
    CredentialsError,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    UnknownUser,
    redact,
)
from scrobbler_cli.models import SourceRecord
from scrobbler_cli.services.http import Http, make_client
from scrobbler_cli.services.lastfm import (
    AuthPending,
    LastfmClient,
    PrivateProfile,
    RecentTracksPage,
    ScrobbleResult,
    auth_root_for,
    check_error,
    parse_recent_tracks,
    parse_scrobble_response,
    sign,
)

API = "https://ws.audioscrobbler.com/2.0/"
KEY = "k3yk3yk3y0123456789abcdef012345"
SECRET = "s3cr3ts3cr3t0123456789abcdef0123"
SK = "sessi0nkey0123456789abcdef012345"
FIXTURES = Path(__file__).parent / "fixtures" / "lastfm"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def reply(name: str, status: int = 200, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json=load(name), **kwargs)


def query(request: httpx.Request) -> dict[str, str]:
    """The parameters of a GET query or a form-encoded POST body."""
    if request.method == "POST":
        return dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    return dict(parse_qsl(urlsplit(str(request.url)).query, keep_blank_values=True))


def by_hand_sig(params: dict[str, str], secret: str) -> str:
    """The documented rule, spelled out: drop format/api_sig, byte-sort, concatenate, md5."""
    names = sorted((n for n in params if n not in ("format", "api_sig", "callback")),
                   key=lambda n: n.encode())
    return hashlib.md5(("".join(n + params[n] for n in names) + secret).encode()).hexdigest()


class Env:
    """A client over respx with recorded sleeps and log lines (nothing really waits)."""

    def __init__(self, *, session: bool = True, attempts: int = 6) -> None:
        self.sleeps: list[float] = []
        self.logs: list[str] = []
        self.http = Http(make_client(), service="lastfm", rate=None, attempts=attempts,
                         sleep=self.sleeps.append, log=self.logs.append)
        self.client = LastfmClient(self.http, api_root=API, api_key=KEY,
                                   api_secret=SECRET if session else None,
                                   session_key=SK if session else None)


@pytest.fixture
def env() -> Env:
    return Env(session=False)


@pytest.fixture
def signed() -> Env:
    return Env(session=True)


# --- sign --------------------------------------------------------------------------------


def test_sign_matches_the_documented_worked_example() -> None:
    params = {"method": "auth.getSession", "api_key": "YOUR_API_KEY",
              "token": "YOUR_REQUESTED_TOKEN", "format": "json"}
    by_hand = hashlib.md5(
        b"api_keyYOUR_API_KEYmethodauth.getSessiontokenYOUR_REQUESTED_TOKENYOUR_SECRET"
    ).hexdigest()
    assert sign(params, "YOUR_SECRET") == by_hand
    assert sign(params, "YOUR_SECRET") == "94539006DE89B3C6B3C030BB1E52B9C4".lower()


def test_sign_track_love_example_with_session_key() -> None:
    params = {"method": "track.love", "artist": "KITANO REM", "track": "RAINSICK",
              "api_key": "YOUR_API_KEY", "sk": "YOUR_SESSION_KEY", "format": "json"}
    assert sign(params, "YOUR_SECRET") == "800b8884b00c9343d1d425ed271e0f42"


def test_sign_sorts_names_in_byte_order_and_uses_raw_utf8() -> None:
    params = {"artist[2]": "Sigur Rós", "artist[10]": "Björk", "artist[1]": "a&b=c",
              "callback": "cb", "format": "json", "api_sig": "old"}
    text = "artist[10]Björkartist[1]a&b=cartist[2]Sigur Rós" + "sec"
    assert sign(params, "sec") == hashlib.md5(text.encode("utf-8")).hexdigest()
    assert sign(params, "sec") == by_hand_sig(params, "sec")


# --- parse_recent_tracks -----------------------------------------------------------------


def test_parse_normal_page() -> None:
    payload = load("recent_tracks_page.json")
    page = parse_recent_tracks(payload)
    assert (page.page, page.total_pages, page.total, page.user) == (2, 3, 10, "testuser")
    assert [r.listened_at for r in page.records] == [1603188238, 1603186824, 1603186500,
                                                     1603186000]
    first = page.records[0]
    assert first == SourceRecord(
        listened_at=1603188238,
        artist="Tame Impala",
        track="Feels Like We Only Go Backwards",
        album="Lonerism",
        release_mbid="0d2cb66c-3a32-4f81-b977-9231c461c34a",
        artist_mbids=("63aa26c3-d59b-4da4-84ac-716b54f1ef4d",),
        recording_mbid=None,
        raw=first.raw,
    )
    item = payload["recenttracks"]["track"][0]
    assert json.loads(first.raw or "") == item  # nothing lost, track mbid kept as a hint
    assert first.raw == json.dumps(item, ensure_ascii=False, separators=(",", ":"),
                                   sort_keys=True).encode()
    no_album = page.records[2]
    assert (no_album.artist, no_album.album, no_album.release_mbid) == ("Sigur Rós", None, None)
    bare = page.records[3]
    assert (bare.track, bare.artist_mbids, bare.release_mbid) == ("Jóga", (), None)
    assert "Björk".encode() in (bare.raw or b"")  # ensure_ascii=False


def test_parse_reads_an_album_of_only_whitespace_as_none() -> None:
    item = {"artist": {"#text": "Björk"}, "name": "Jóga", "date": {"uts": "1603186000"},
            "album": {"#text": " \t", "mbid": ""}}
    page = parse_recent_tracks({"recenttracks": {"track": [item], "@attr": {
        "page": "1", "totalPages": "1", "total": "1", "user": "u"}}})
    assert [r.album for r in page.records] == [None]


def test_parse_single_object_track() -> None:
    page = parse_recent_tracks(load("recent_tracks_single.json"))
    assert [r.track for r in page.records] == ["Feels Like We Only Go Backwards"]
    assert (page.total, page.total_pages) == (94618, 94618)


def test_parse_drops_now_playing_and_reads_extended_artist() -> None:
    page = parse_recent_tracks(load("recent_tracks_nowplaying.json"))
    assert len(page.records) == 1
    record = page.records[0]
    assert (record.listened_at, record.artist, record.track) == (
        1603186824, "Tame Impala", "Endors Toi")
    assert record.artist_mbids == ()  # extended artist mbid was ""


def test_parse_now_playing_alone_as_single_object() -> None:
    page = parse_recent_tracks(load("recent_tracks_nowplaying_only.json"))
    assert page.records == [] and page.total == 0


def test_parse_empty_page() -> None:
    page = parse_recent_tracks(load("recent_tracks_empty.json"))
    assert page == RecentTracksPage(records=[], page=1, total_pages=0, total=0, user="testuser",
                                per_page=200)


def test_parse_missing_track_and_libre_top_level_numbers() -> None:
    page = parse_recent_tracks({"recenttracks": {"page": "3", "totalPages": "7", "total": "1400"}})
    assert (page.records, page.page, page.total_pages, page.total) == ([], 3, 7, 1400)


def test_parse_drops_items_without_date_even_without_nowplaying_flag() -> None:
    item = load("recent_tracks_single.json")["recenttracks"]["track"]
    del item["date"]
    page = parse_recent_tracks({"recenttracks": {"track": [item], "@attr": {"total": "0"}}})
    assert page.records == []


def test_parse_drops_items_whose_uts_is_no_time() -> None:
    item = load("recent_tracks_single.json")["recenttracks"]["track"]
    item["date"]["uts"] = "100000000000000000000"
    page = parse_recent_tracks({"recenttracks": {"track": [item], "@attr": {"total": "1"}}})
    assert page.records == []
    # an infinite number (Infinity or 1e400, which only the standard library reads) too
    reply = json.dumps({"recenttracks": {"track": [{**item, "date": {"uts": 1e400}}],
                                         "@attr": {"total": "1e400"}}})
    page = parse_recent_tracks(json.loads(reply))
    assert page.records == [] and page.total == 0


def test_parse_without_recenttracks_is_transient() -> None:
    with pytest.raises(ServiceUnavailable):
        parse_recent_tracks({"something": "else"})


# --- parse_scrobble_response ---------------------------------------------------------------


def test_parse_scrobble_single_accepted_and_ignored() -> None:
    assert parse_scrobble_response(load("scrobble_accepted_single.json")) == [
        ScrobbleResult(accepted=True, code=0, message="")]
    assert parse_scrobble_response(load("scrobble_ignored_single.json")) == [
        ScrobbleResult(accepted=False, code=3, message="Timestamp too old")]


def test_parse_scrobble_batch_codes() -> None:
    results = parse_scrobble_response(load("scrobble_batch.json"))
    assert [(r.accepted, r.code) for r in results] == [(True, 0), (False, 3), (False, 4),
                                                        (False, 5)]
    assert results[3].message == "Max daily scrobbles exceeded"


def test_parse_scrobble_without_per_item_detail() -> None:
    # ListenBrainz's compat API and some servers send an empty list
    assert parse_scrobble_response({"scrobbles": {"@attr": {"accepted": 0}, "scrobble": []}}) == []


# --- check_error -------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "status", "kind", "code"), [
    (load("error_8_operation_failed.json"), 200, ServiceUnavailable, 8),
    ({"error": 11, "message": "Service Offline"}, 200, ServiceUnavailable, 11),
    (load("error_16_temporary.json"), 200, ServiceUnavailable, 16),
    (load("error_29_rate_limit.json"), 429, ServiceUnavailable, 29),
    (None, 503, ServiceUnavailable, None),
    (None, 500, ServiceUnavailable, None),
    (None, 429, ServiceUnavailable, None),
    ({"error": 4, "message": "Authentication Failed"}, 403, AuthRejected, 4),
    (load("error_9_invalid_session.json"), 403, AuthRejected, 9),
    (load("error_10_invalid_api_key.json"), 403, AuthRejected, 10),
    (load("error_13_invalid_signature.json"), 403, AuthRejected, 13),
    ({"error": 26, "message": "Suspended API key"}, 403, AuthRejected, 26),
    (load("error_14_unauthorized_token.json"), 403, AuthPending, 14),
    (load("error_15_token_expired.json"), 403, AuthRejected, 15),
    (load("error_6_user_not_found.json"), 404, UnknownUser, 6),
    (load("error_6_user_not_found.json"), 200, UnknownUser, 6),
    (load("error_17_private.json"), 403, PrivateProfile, 17),
    (None, 404, NotFound, None),
])
def test_check_error_maps_codes(payload: Any, status: int, kind: type[Exception],
                                code: int | None) -> None:
    with pytest.raises(kind) as caught:
        check_error(payload, status)
    assert type(caught.value) is kind
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.status == status  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", [4, 9, 10, 13, 15, 26])
def test_auth_errors_say_how_to_fix(code: int) -> None:
    with pytest.raises(AuthRejected) as caught:
        check_error({"error": code, "message": "x"}, 403)
    assert "scrob auth lastfm" in (caught.value.hint or "")
    assert caught.value.exit_code == 3


def test_private_profile_is_a_credentials_error_that_explains_the_fix() -> None:
    with pytest.raises(CredentialsError) as caught:
        check_error(load("error_17_private.json"), 403)
    text = str(caught.value)
    assert "private" in text or "hides" in text
    assert "scrob auth lastfm" in text and "session key" in text
    assert caught.value.exit_code == 3


def test_error_6_that_is_not_user_not_found_is_a_plain_error() -> None:
    with pytest.raises(ServiceError) as caught:
        check_error(load("error_6_limit.json"), 400)
    assert type(caught.value) is ServiceError and caught.value.code == 6
    assert "limit param out of bounds" in str(caught.value)


def test_check_error_passes_successes_and_carries_retry_after() -> None:
    check_error({"recenttracks": {}}, 200)
    with pytest.raises(ServiceUnavailable) as caught:
        check_error(load("error_29_rate_limit.json"), 429, retry_after=9.0)
    assert caught.value.retry_after == 9.0


def test_libre_error_object_shape_is_read() -> None:
    with pytest.raises(ServiceError) as caught:
        check_error(load("librefm_error_7.json"), 200)
    assert caught.value.code == 7  # type: ignore[attr-defined]


# --- the client: reading -------------------------------------------------------------------


def test_recent_tracks_unsigned_request_and_parse(router: respx.MockRouter, env: Env) -> None:
    route = router.get(API).mock(return_value=reply("recent_tracks_page.json"))
    page = env.client.recent_tracks("testuser", page=2, from_ts=100, to_ts=200, limit=4)
    assert len(page.records) == 4 and page.total_pages == 3
    sent = query(route.calls.last.request)
    assert sent == {"method": "user.getRecentTracks", "api_key": KEY, "user": "testuser",
                    "page": "2", "limit": "4", "from": "100", "to": "200", "format": "json"}


def test_recent_tracks_without_bounds_sends_no_from_to(router: respx.MockRouter,
                                                       env: Env) -> None:
    route = router.get(API).mock(return_value=reply("recent_tracks_empty.json"))
    env.client.recent_tracks("testuser", page=1)
    sent = query(route.calls.last.request)
    assert "from" not in sent and "to" not in sent and sent["limit"] == "200"


def test_recent_tracks_with_session_is_signed(router: respx.MockRouter, signed: Env) -> None:
    route = router.get(API).mock(return_value=reply("recent_tracks_page.json"))
    signed.client.recent_tracks("testuser", page=1)
    sent = query(route.calls.last.request)
    assert sent["sk"] == SK
    assert sent["api_sig"] == by_hand_sig(sent, SECRET)


def test_recent_tracks_libre_error_7_is_an_empty_page(router: respx.MockRouter,
                                                      env: Env) -> None:
    router.get(API).mock(return_value=reply("librefm_error_7.json"))
    page = env.client.recent_tracks("testuser", page=4, from_ts=123)
    assert page.records == [] and page.page == 4 and page.total_pages == 0


def test_recent_tracks_of_another_user_is_retried(router: respx.MockRouter, env: Env) -> None:
    other = load("recent_tracks_page.json")
    other["recenttracks"]["@attr"]["user"] = "someoneelse"
    route = router.get(API).mock(side_effect=[httpx.Response(200, json=other),
                                              reply("recent_tracks_page.json")])
    page = env.client.recent_tracks("TestUser", page=2)
    assert page.user == "testuser" and route.call_count == 2


def test_non_json_200_is_transient(router: respx.MockRouter, env: Env) -> None:
    route = router.get(API).mock(side_effect=[
        httpx.Response(200, text="<html>maintenance</html>"),
        reply("recent_tracks_page.json"),
    ])
    assert len(env.client.recent_tracks("testuser", page=1).records) == 4
    assert route.call_count == 2 and len(env.sleeps) == 1


def test_retries_8_29_503_then_succeeds_without_sleeping(router: respx.MockRouter,
                                                         env: Env) -> None:
    route = router.get(API).mock(side_effect=[
        reply("error_8_operation_failed.json", 200),
        reply("error_16_temporary.json", 200),
        reply("error_29_rate_limit.json", 429),
        httpx.Response(503, text="<html>503</html>"),
        reply("recent_tracks_page.json"),
    ])
    page = env.client.recent_tracks("testuser", page=2)
    assert len(page.records) == 4
    assert route.call_count == 5 and env.http.requests == 5
    assert len(env.sleeps) == 4  # recorded, never slept


def test_gives_up_after_the_attempts(router: respx.MockRouter) -> None:
    env = Env(session=False, attempts=3)
    route = router.get(API).mock(return_value=reply("error_8_operation_failed.json"))
    with pytest.raises(ServiceUnavailable):
        env.client.recent_tracks("testuser", page=1)
    assert route.call_count == 3


@pytest.mark.parametrize(("fixture", "status", "kind"), [
    ({"error": 4, "message": "Authentication Failed"}, 403, AuthRejected),
    (load("error_10_invalid_api_key.json"), 403, AuthRejected),
    (load("error_17_private.json"), 403, PrivateProfile),
    (load("error_6_user_not_found.json"), 404, NotFound),
])
def test_no_retry_of_permanent_errors(router: respx.MockRouter, env: Env, fixture: Any,
                                      status: int, kind: type[Exception]) -> None:
    route = router.get(API).mock(return_value=httpx.Response(status, json=fixture))
    with pytest.raises(kind):
        env.client.recent_tracks("testuser", page=1)
    assert route.call_count == 1 and env.sleeps == []


def test_retry_after_is_honoured(router: respx.MockRouter, env: Env) -> None:
    router.get(API).mock(side_effect=[
        reply("error_29_rate_limit.json", 429, headers={"Retry-After": "7"}),
        reply("recent_tracks_page.json"),
    ])
    env.client.recent_tracks("testuser", page=1)
    assert env.sleeps == [7.0]


def test_user_info(router: respx.MockRouter, env: Env) -> None:
    route = router.get(API).mock(return_value=reply("user_info.json"))
    info = env.client.user_info("testuser")
    assert info["playcount"] == "138223" and info["registered"]["unixtime"] == "1561177193"
    assert query(route.calls.last.request)["method"] == "user.getInfo"


def test_user_info_unknown_user(router: respx.MockRouter, env: Env) -> None:
    router.get(API).mock(return_value=reply("error_6_user_not_found.json", 404))
    with pytest.raises(NotFound):
        env.client.user_info("nobody")


# --- the client: auth ----------------------------------------------------------------------


def test_get_token_is_signed(router: respx.MockRouter, signed: Env) -> None:
    route = router.get(API).mock(return_value=reply("auth_get_token.json"))
    assert signed.client.get_token() == "cf45fe5a3e3cebe168480a086d7fe481"
    sent = query(route.calls.last.request)
    assert sent["method"] == "auth.getToken" and "sk" not in sent
    assert sent["api_sig"] == by_hand_sig(sent, SECRET)


def test_signed_call_without_secret_is_a_credentials_error(router: respx.MockRouter,
                                                           env: Env) -> None:
    with pytest.raises(CredentialsError):
        env.client.get_token()
    assert not router.calls


def test_get_session(router: respx.MockRouter, signed: Env) -> None:
    route = router.get(API).mock(return_value=reply("auth_get_session.json"))
    assert signed.client.get_session("tok123") == ("TestUser",
                                                   "d580d57f32848f5dcf574d1ce18d78b2")
    sent = query(route.calls.last.request)
    assert sent["token"] == "tok123" and sent["api_sig"] == by_hand_sig(sent, SECRET)
    assert "d580d57f32848f5dcf574d1ce18d78b2" not in redact("key d580d57f32848f5dcf574d1ce18d78b2")


@pytest.mark.parametrize(("fixture", "kind"), [
    ("error_14_unauthorized_token.json", AuthPending),
    ("error_15_token_expired.json", AuthRejected),
])
def test_get_session_errors(router: respx.MockRouter, signed: Env, fixture: str,
                            kind: type[Exception]) -> None:
    router.get(API).mock(return_value=reply(fixture, 403))
    with pytest.raises(kind):
        signed.client.get_session("tok")


def test_wait_for_session_polls_while_pending(router: respx.MockRouter, signed: Env) -> None:
    route = router.get(API).mock(side_effect=[
        reply("error_14_unauthorized_token.json", 403),
        reply("error_14_unauthorized_token.json", 403),
        reply("auth_get_session.json"),
    ])
    waits: list[float] = []
    name, _ = signed.client.wait_for_session("tok", interval=3, sleep=waits.append,
                                             clock=lambda: 0.0)
    assert name == "TestUser" and waits == [3, 3] and route.call_count == 3


def test_wait_for_session_times_out(router: respx.MockRouter, signed: Env) -> None:
    route = router.get(API).mock(return_value=reply("error_14_unauthorized_token.json", 403))
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(CredentialsError) as caught:
        signed.client.wait_for_session("tok", timeout=10, interval=3, sleep=sleep,
                                       clock=lambda: now[0])
    assert not isinstance(caught.value, AuthPending)
    assert route.call_count == 4  # t = 0, 3, 6, 9; the next poll would pass the deadline


def test_wait_for_session_stops_on_expired_token(router: respx.MockRouter, signed: Env) -> None:
    router.get(API).mock(return_value=reply("error_15_token_expired.json", 403))
    with pytest.raises(AuthRejected):
        signed.client.wait_for_session("tok", sleep=lambda s: None)


@pytest.mark.parametrize(("root", "expected"), [
    ("https://ws.audioscrobbler.com/2.0/", "https://www.last.fm/api/auth/"),
    ("http://ws.audioscrobbler.com/2.0", "https://www.last.fm/api/auth/"),
    ("https://libre.fm/2.0/", "https://libre.fm/api/auth/"),
    ("http://127.0.0.1:8123/2.0/", "http://127.0.0.1:8123/api/auth/"),
    ("https://example.org/gnufm/2.0/", "https://example.org/gnufm/api/auth/"),
])
def test_auth_root_for(root: str, expected: str) -> None:
    assert auth_root_for(root) == expected


def test_auth_url(signed: Env) -> None:
    assert signed.client.auth_url("tok en") == (
        f"https://www.last.fm/api/auth/?api_key={KEY}&token=tok+en")


# --- the client: scrobble ------------------------------------------------------------------


def records(n: int) -> list[SourceRecord]:
    return [SourceRecord(listened_at=1790000000 + 300 * i, artist=f"Artist {i}",
                         track=f"Track {i}", album="Album" if i % 2 == 0 else None,
                         duration=200 + i if i % 3 == 0 else None) for i in range(n)]


def test_scrobble_batch_params_and_signature(router: respx.MockRouter, signed: Env) -> None:
    route = router.post(API).mock(return_value=reply("scrobble_batch.json"))
    results = signed.client.scrobble(records(4))
    assert [r.code for r in results] == [0, 3, 4, 5]
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert urlsplit(str(request.url)).query == ""  # everything travels in the body
    sent = query(request)
    assert sent["method"] == "track.scrobble" and sent["sk"] == SK and sent["format"] == "json"
    assert sent["artist[0]"] == "Artist 0" and sent["track[3]"] == "Track 3"
    assert sent["timestamp[1]"] == "1790000300"
    assert sent["album[0]"] == "Album" and "album[1]" not in sent
    assert sent["duration[0]"] == "200" and sent["duration[3]"] == "203"
    assert "duration[1]" not in sent
    assert sent["api_sig"] == by_hand_sig(sent, SECRET)


def test_scrobble_single_record_reply_as_object(router: respx.MockRouter, signed: Env) -> None:
    router.post(API).mock(return_value=reply("scrobble_ignored_single.json"))
    assert signed.client.scrobble(records(1)) == [
        ScrobbleResult(accepted=False, code=3, message="Timestamp too old")]


def test_scrobble_limits(router: respx.MockRouter, signed: Env) -> None:
    with pytest.raises(ValueError):
        signed.client.scrobble(records(51))
    assert signed.client.scrobble([]) == []
    assert not router.calls


def test_scrobble_needs_a_session(router: respx.MockRouter) -> None:
    http = Http(make_client(), service="lastfm", sleep=lambda s: None)
    client = LastfmClient(http, api_root=API, api_key=KEY, api_secret=SECRET)
    with pytest.raises(CredentialsError):
        client.scrobble(records(1))
    assert not router.calls


def test_scrobble_bad_session_is_not_retried(router: respx.MockRouter, signed: Env) -> None:
    route = router.post(API).mock(return_value=reply("error_9_invalid_session.json", 403))
    with pytest.raises(AuthRejected) as caught:
        signed.client.scrobble(records(2))
    assert caught.value.code == 9 and route.call_count == 1


# --- redaction -----------------------------------------------------------------------------


def _assert_clean(text: str) -> None:
    for secret in (KEY, SECRET, SK):
        assert secret not in text


def test_secrets_never_reach_messages_or_logs(router: respx.MockRouter, signed: Env) -> None:
    echo = {"error": 10, "message": f"Invalid API key {KEY} sk={SK} secret {SECRET}"}
    router.get(API).mock(side_effect=[
        httpx.Response(503, text="down"),
        httpx.Response(200, json={"error": 8, "message": f"failed for api_key={KEY}"}),
        httpx.Response(403, json=echo),
    ])
    with pytest.raises(AuthRejected) as caught:
        signed.client.recent_tracks("testuser", page=1)
    _assert_clean(str(caught.value))
    assert signed.logs and len(signed.logs) == 5  # 3 responses + 2 retry notes
    sent = [query(call.request) for call in router.calls]
    for line in signed.logs:
        _assert_clean(line)
        assert sent[0]["api_sig"] not in line
    assert any("api_key=***" in line for line in signed.logs)


def test_transport_errors_are_redacted(router: respx.MockRouter) -> None:
    env = Env(session=True, attempts=2)
    router.post(API).mock(side_effect=httpx.ConnectError(f"failed {API}?sk={SK}&x={SECRET}"))
    with pytest.raises(ServiceUnavailable) as caught:
        env.client.scrobble(records(1))
    _assert_clean(str(caught.value))
    for line in env.logs:
        _assert_clean(line)


def test_constructor_registers_secrets() -> None:
    http = Http(make_client(), service="lastfm", sleep=lambda s: None)
    LastfmClient(http, api_root=API, api_key=KEY, api_secret="an0ther-s3cret-value",
                 session_key="an0ther-sess10n-key")
    assert redact("x an0ther-s3cret-value y an0ther-sess10n-key") == "x *** y ***"
