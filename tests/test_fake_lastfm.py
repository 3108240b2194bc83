"""The fake Last.fm behaves as api-notes Part B says, seen through LastfmClient on a socket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from scrobbler_cli.errors import AuthRejected, NotFound, ServiceError
from scrobbler_cli.models import SourceRecord
from scrobbler_cli.services.http import Http, make_client
from scrobbler_cli.services.lastfm import AuthPending, LastfmClient, PrivateProfile
from tests.fakes.lastfm_server import FakeLastfm, Scrobble

T0 = 1_700_000_000


@pytest.fixture
def fake() -> Iterator[FakeLastfm]:
    with FakeLastfm(clock=lambda: T0 + 10_000) as server:
        yield server


@pytest.fixture
def http() -> Iterator[Http]:
    with make_client() as client:
        yield Http(client, service="lastfm", sleep=lambda s: None)


def client_for(fake: FakeLastfm, http: Http, *, sk: str | None = None,
               secret: str | None = None) -> LastfmClient:
    return LastfmClient(http, api_root=fake.url, api_key=fake.api_key,
                        api_secret=secret or fake.api_secret, session_key=sk)


def raw_page(fake: FakeLastfm, **params: str) -> dict:
    query = {"method": "user.getRecentTracks", "api_key": fake.api_key, "format": "json",
             **params}
    return httpx.get(fake.url, params=query).json()


def test_pages_are_newest_first_and_bounded(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0 + i, "A", f"t{i}", None) for i in range(450)])
    client = client_for(fake, http)
    pages = [client.recent_tracks("Alice", page=p) for p in (1, 2, 3, 4)]
    assert [len(p.records) for p in pages] == [200, 200, 50, 0]
    assert {(p.total, p.total_pages) for p in pages} == {(450, 3)}
    stamps = [r.listened_at for p in pages for r in p.records]
    assert stamps == sorted(range(T0, T0 + 450), reverse=True)
    assert pages[0].user == "alice"


def test_from_inclusive_to_exclusive(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0 + i, "A", f"t{i}") for i in range(10)])
    page = client_for(fake, http).recent_tracks("alice", page=1, from_ts=T0 + 2, to_ts=T0 + 5)
    assert [r.listened_at for r in page.records] == [T0 + 4, T0 + 3, T0 + 2]
    assert page.total == 3


def test_out_of_bounds_limit_and_page_are_error_6(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0, "A", "t")])
    client = client_for(fake, http)
    for kwargs in ({"page": 1, "limit": 1001}, {"page": 1, "limit": 0}, {"page": 0}):
        with pytest.raises(ServiceError) as caught:
            client.recent_tracks("alice", **kwargs)  # type: ignore[arg-type]
        assert caught.value.code == 6 and type(caught.value) is ServiceError
    assert len(fake.request_log) == 3  # none retried
    assert len(client.recent_tracks("alice", page=1, limit=1000).records) == 1


def test_now_playing_tops_page_one_and_is_not_counted(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0 + i, "A", f"t{i}") for i in range(5)])
    fake.now_playing("alice", "Live Artist", "Live Track")
    body = raw_page(fake, user="alice", limit="2", **{"from": str(T0 + 100)})
    track = body["recenttracks"]["track"]
    assert isinstance(track, dict) and track["@attr"] == {"nowplaying": "true"}
    assert "date" not in track and body["recenttracks"]["@attr"]["total"] == "0"
    body = raw_page(fake, user="alice", limit="2")
    assert len(body["recenttracks"]["track"]) == 3
    assert len(raw_page(fake, user="alice", limit="2", page="2")["recenttracks"]["track"]) == 2
    page = client_for(fake, http).recent_tracks("alice", page=1, limit=2)
    assert [r.track for r in page.records] == ["t4", "t3"]


def test_single_item_page_is_an_object_with_string_numbers(fake: FakeLastfm) -> None:
    fake.add_scrobbles("alice", [(T0, "Björk", "Jóga", "Homogenic")])
    recent = raw_page(fake, user="alice")["recenttracks"]
    assert isinstance(recent["track"], dict)
    assert recent["track"]["date"]["uts"] == str(T0)
    assert recent["@attr"] == {"user": "alice", "totalPages": "1", "page": "1",
                               "perPage": "50", "total": "1"}
    assert raw_page(fake, user="nobody-here") == {"error": 6, "message": "User not found"}


def test_unknown_user(fake: FakeLastfm, http: Http) -> None:
    with pytest.raises(NotFound):
        client_for(fake, http).recent_tracks("nobody", page=1)
    with pytest.raises(NotFound):
        client_for(fake, http).user_info("nobody")


def test_private_profile_needs_its_own_session(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0, "A", "t")])
    fake.set_private("alice")
    with pytest.raises(PrivateProfile):
        client_for(fake, http).recent_tracks("alice", page=1)
    with pytest.raises(PrivateProfile):
        client_for(fake, http, sk=fake.session_key("bob")).recent_tracks("alice", page=1)
    own = client_for(fake, http, sk=fake.session_key("alice"))
    assert len(own.recent_tracks("alice", page=1).records) == 1
    with pytest.raises(AuthRejected) as caught:
        client_for(fake, http, sk=fake.session_key("alice"), secret="wrong-secret-value"
                   ).recent_tracks("alice", page=1)
    assert caught.value.code == 13


def test_user_info(fake: FakeLastfm, http: Http) -> None:
    fake.add_user("Alice", registered=T0 - 5)
    fake.add_scrobbles("alice", [(T0, "A", "t"), (T0 + 1, "A", "u")])
    info = client_for(fake, http).user_info("ALICE")
    assert info["name"] == "Alice" and info["playcount"] == "2"
    assert info["registered"] == {"unixtime": str(T0 - 5), "#text": T0 - 5}


def test_desktop_auth_flow(fake: FakeLastfm, http: Http) -> None:
    client = client_for(fake, http)
    token = client.get_token()
    assert client.auth_url(token).startswith(fake.url.replace("/2.0/", "/api/auth/?"))
    with pytest.raises(AuthPending):
        client.get_session(token)
    name, sk = client.wait_for_session(token, sleep=lambda s: fake.approve(token, "Alice"))
    assert (name, sk) == ("Alice", fake.session_key("alice"))
    with pytest.raises(AuthRejected) as caught:  # a token works once
        client.get_session(token)
    assert caught.value.code == 4


def rec(ts: int, artist: str = "A", track: str = "t", album: str | None = "Al") -> SourceRecord:
    return SourceRecord(listened_at=ts, artist=artist, track=track, album=album)


def test_scrobble_is_verified_and_joins_history(fake: FakeLastfm, http: Http) -> None:
    now = T0 + 10_000
    client = client_for(fake, http, sk=fake.session_key("alice"))
    results = client.scrobble([rec(now - 60, "Sigur Rós", "Hoppípolla"),
                               rec(now - 15 * 86400), rec(now + 7200), rec(now - 30, album=None)])
    assert [r.code for r in results] == [0, 3, 4, 0]
    assert fake.scrobbles("alice") == [(now - 60, "Sigur Rós", "Hoppípolla", "Al"),
                                       (now - 30, "A", "t", None)]
    again = client.scrobble([rec(now - 60, "Sigur Rós", "Hoppípolla")])
    assert again[0].accepted and len(fake.scrobbles("alice")) == 2  # silent dedup
    assert [r.listened_at for r in client.recent_tracks("alice", page=1).records] == [
        now - 30, now - 60]


def test_scrobble_rejections(fake: FakeLastfm, http: Http) -> None:
    sk = fake.session_key("alice")
    with pytest.raises(AuthRejected) as caught:
        client_for(fake, http, sk=sk, secret="not-the-secret").scrobble([rec(T0)])
    assert caught.value.code == 13
    with pytest.raises(AuthRejected) as caught:
        client_for(fake, http, sk="0" * 32).scrobble([rec(T0)])
    assert caught.value.code == 9
    assert fake.scrobbles("alice") == []


def test_daily_cap(fake: FakeLastfm, http: Http) -> None:
    fake.daily_cap = 2
    client = client_for(fake, http, sk=fake.session_key("alice"))
    results = client.scrobble([rec(T0 + 9000 + i, track=f"t{i}") for i in range(3)])
    assert [r.code for r in results] == [0, 0, 5]


def test_faults_are_retried_by_the_client(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0, "A", "t")])
    for kind in ("503", "8", "16", "29", "not_json", "drop", "11"):
        fake.fail_next(1, kind)
    http.attempts = 8  # seven failures in a row, then the answer
    page = client_for(fake, http).recent_tracks("alice", page=1)
    assert len(page.records) == 1
    statuses = [r.status for r in fake.request_log]
    assert statuses == [503, 200, 200, 429, 200, 0, 200, 200]
    assert [r.error for r in fake.request_log] == [None, 8, 16, 29, None, None, 11, None]
    assert http.requests == 8


def test_fault_rate_is_seeded_and_survivable(http: Http) -> None:
    with FakeLastfm(fault_rate=0.3, seed=42) as fake:
        fake.add_scrobbles("alice", [(T0 + i, "A", f"t{i}") for i in range(100)])
        client = client_for(fake, http)
        got = [r for p in range(1, 11) for r in client.recent_tracks("alice", page=p,
                                                                     limit=10).records]
        assert len(got) == 100
        assert any(r.status != 200 or r.error for r in fake.request_log)


def test_max_rate_answers_29(fake: FakeLastfm) -> None:
    fake.max_rate = 2
    fake.add_user("alice")
    statuses = [httpx.get(fake.url, params={"method": "user.getInfo", "user": "alice",
                                            "api_key": fake.api_key}).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_page_hook_adds_scrobbles_mid_sync(fake: FakeLastfm, http: Http) -> None:
    fake.add_scrobbles("alice", [(T0 + i, "A", f"t{i}") for i in range(4)])
    fake.on_page("alice", 2, [(T0 + 100, "A", "late")])
    client = client_for(fake, http)
    second = client.recent_tracks("alice", page=2, limit=2)
    assert [r.listened_at for r in second.records] == [T0 + 2, T0 + 1]  # shifted by one
    assert second.total == 5
    assert client.recent_tracks("alice", page=1, limit=2).records[0].track == "late"


def test_latency(fake: FakeLastfm, http: Http) -> None:
    fake.add_user("alice")
    fake.latency = 0.05
    started = time.perf_counter()
    client_for(fake, http).user_info("alice")
    assert time.perf_counter() - started >= 0.05


def test_cached_page_fragment_matches_the_full_item() -> None:
    scrobble = Scrobble(T0, 'Sigur Rós "live" \\ \u2028', "Hoppípolla & <b>", None)
    assert json.loads(scrobble.fragment()) == scrobble.item()
    assert scrobble.fragment() == json.dumps(scrobble.item(), ensure_ascii=False,
                                             separators=(",", ":"))
