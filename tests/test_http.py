"""The shared HTTP layer: retries, pacing, rate-limit headers, counting, redacted logs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from scrobbler_cli.errors import ServiceError, ServiceUnavailable, register_secret
from scrobbler_cli.services.http import (
    USER_AGENT,
    Http,
    Pacer,
    default_classify,
    make_client,
    retry_after,
)
from tests.helpers import FakeTime

URL = "https://api.example.test/1/thing"


def make_http(t: FakeTime, **kwargs: Any) -> Http:
    return Http(make_client(), service="svc", sleep=t.sleep, clock=t.clock, **kwargs)


def get(http: Http, **kwargs: Any) -> Any:
    return http.request("GET", URL, classify=default_classify("svc"), **kwargs)


def test_make_client_names_scrob() -> None:
    client = make_client("https://x.test")
    assert client.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("scrob/")


@pytest.fixture
def client_kwargs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What make_client passes to httpx.Client, with no TLS context prepared yet."""
    from scrobbler_cli.services import http as module

    monkeypatch.setattr(module, "_TLS", None)
    seen: list[dict[str, Any]] = []
    real = httpx.Client

    def client(**kwargs: Any) -> httpx.Client:
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(httpx, "Client", client)
    return seen


def test_a_prepared_tls_context_is_built_once_on_a_thread_for_every_client(
        client_kwargs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl
    import threading

    from scrobbler_cli.services.http import prepare_tls

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    built: list[str] = []

    def create(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(threading.current_thread().name)
        return context

    monkeypatch.setattr(httpx, "create_ssl_context", create)
    make_client("https://x.test")  # nothing prepared: httpx builds its own, as ever
    prepare_tls()
    prepare_tls()
    make_client("https://x.test")
    make_client("https://y.test")
    assert built == ["scrob-tls"]
    assert [kw["verify"] for kw in client_kwargs] == [True, context, context]


def test_a_tls_context_that_fails_to_build_is_left_to_httpx(
        client_kwargs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from scrobbler_cli.services.http import prepare_tls

    def create(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        raise ssl.SSLError("no CA bundle")

    monkeypatch.setattr(httpx, "create_ssl_context", create)
    prepare_tls()
    make_client("https://x.test")  # no error here: httpx reports it when it builds its own
    assert client_kwargs[0]["verify"] is True


def test_retries_transport_errors(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t)
    route = router.get(URL).mock(side_effect=[httpx.ConnectError("refused"),
                                              httpx.ReadTimeout("slow"),
                                              httpx.Response(200, json={"ok": 1})])
    assert get(http) == {"ok": 1}
    assert route.call_count == 3 and http.requests == 3 and len(t.sleeps) == 2


def test_retries_5xx_with_growing_jittered_backoff(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t, backoff=1.0)
    router.get(URL).mock(side_effect=[httpx.Response(500), httpx.Response(502),
                                      httpx.Response(503), httpx.Response(200, json=[])])
    assert get(http) == []
    first, second, third = t.sleeps
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and 2.0 <= third <= 4.0


def test_429_honours_retry_after(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t)
    router.get(URL).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "12"}),
                                      httpx.Response(200, json={})])
    get(http)
    assert t.sleeps == [12.0]


def test_no_retry_on_4xx(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t)
    route = router.get(URL).mock(return_value=httpx.Response(404))
    with pytest.raises(ServiceError) as caught:
        get(http)
    assert not isinstance(caught.value, ServiceUnavailable)
    assert caught.value.status == 404 and route.call_count == 1 and t.sleeps == []


def test_gives_up_after_attempts(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t, attempts=4)
    route = router.get(URL).mock(return_value=httpx.Response(503))
    with pytest.raises(ServiceUnavailable) as caught:
        get(http)
    assert caught.value.status == 503
    assert route.call_count == 4 and len(t.sleeps) == 3 and http.requests == 4
    # the one line a user sees says what to do
    assert str(caught.value).endswith("(svc kept failing (4 attempts); try again later)")


def test_non_json_success_is_transient(router: respx.MockRouter) -> None:
    t = FakeTime()
    route = router.get(URL).mock(side_effect=[httpx.Response(200, text="<html>"),
                                              httpx.Response(200, json=1)])
    assert get(make_http(t)) == 1 and route.call_count == 2


def test_pacer_spaces_requests(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t, rate=5.0)
    router.get(URL).mock(return_value=httpx.Response(200, json={}))
    for _ in range(4):
        get(http)
    assert t.sleeps == pytest.approx([0.2, 0.2, 0.2])
    t.now += 10  # after a pause, no wait at all
    get(http)
    assert len(t.sleeps) == 3


def test_pacer_without_rate_never_sleeps() -> None:
    t = FakeTime()
    pacer = Pacer(None, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        pacer.wait()
    assert t.sleeps == []


def test_rate_limit_remaining_zero_gates_next_request(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t)
    router.get(URL).mock(side_effect=[
        httpx.Response(200, json={}, headers={"X-RateLimit-Remaining": "3",
                                              "X-RateLimit-Reset-In": "30"}),
        httpx.Response(200, json={}, headers={"X-RateLimit-Remaining": "0",
                                              "X-RateLimit-Reset-In": "30"}),
        httpx.Response(200, json={}),
    ])
    get(http)
    assert t.sleeps == []  # requests left: no gate
    get(http)
    assert t.sleeps == []  # the gate applies to the *next* request
    get(http)
    assert t.sleeps == [30.0]


def test_retry_after_helper_reads_both_headers() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "5"})) == 5.0
    assert retry_after(httpx.Response(429, headers={"X-RateLimit-Reset-In": "8"})) == 8.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None


def test_requests_counter(router: respx.MockRouter) -> None:
    t = FakeTime()
    http = make_http(t)
    router.get(URL).mock(side_effect=[httpx.Response(503), httpx.Response(200, json={}),
                                      httpx.Response(200, json={})])
    get(http)
    get(http)
    assert http.requests == 3


def test_log_lines_are_redacted(router: respx.MockRouter) -> None:
    t = FakeTime()
    logs: list[str] = []
    register_secret("registered-s3cret-value")
    http = make_http(t, log=logs.append)
    router.get(URL).mock(side_effect=[
        httpx.ConnectError("cannot connect with registered-s3cret-value"),
        httpx.Response(200, json={}),
    ])
    get(http, params={"api_key": "plainkey123", "sk": "sessionkey456", "token": "tok789",
                      "user": "alice"})
    assert len(logs) == 2
    text = "\n".join(logs)
    for secret in ("plainkey123", "sessionkey456", "tok789", "registered-s3cret-value"):
        assert secret not in text
    assert "api_key=***" in text and "user=alice" in text and "-> 200" in text


def test_retry_notes_are_redacted_whatever_classify_says(router: respx.MockRouter) -> None:
    t = FakeTime()
    logs: list[str] = []
    register_secret("an0ther-registered-secret")
    http = make_http(t, log=logs.append)
    router.get(URL).mock(return_value=httpx.Response(200, json={}))
    calls = []

    def classify(response: httpx.Response) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ServiceUnavailable("echoed an0ther-registered-secret and token=abcdef")
        return 7

    assert http.request("GET", URL, classify=classify) == 7
    retry_notes = [line for line in logs if "retrying" in line]
    assert len(retry_notes) == 1
    assert "an0ther-registered-secret" not in retry_notes[0] and "abcdef" not in retry_notes[0]


def test_a_read_response_is_freed_without_the_garbage_collector() -> None:
    """httpx binds a response's stream to the response (a reference cycle): the body of
    every page would wait for the collector, which scrob's processes run rarely."""
    import gc
    import weakref

    body = b'{"page": "' + b"x" * 100_000 + b'"}'
    client = make_client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body)))
    http = Http(client, service="svc")
    refs: list[weakref.ref[httpx.Response]] = []

    def classify(response: httpx.Response) -> int:
        refs.append(weakref.ref(response))
        return len(response.content)

    gc.disable()
    try:
        assert http.request("GET", URL, classify=classify) == len(body)
        assert refs[0]() is None  # freed when the last reference went, body and all
    finally:
        gc.enable()


def test_a_password_in_the_api_url_is_never_logged(router: respx.MockRouter) -> None:
    logs: list[str] = []
    http = make_http(FakeTime(), log=logs.append)
    url = "https://bob:hunter2pass@api.example.test/1/thing"
    router.get("https://api.example.test/1/thing").mock(side_effect=[
        httpx.ConnectError(f"cannot connect to {url}"), httpx.Response(200, json={})])
    http.request("GET", url, classify=default_classify("svc"))
    text = "\n".join(logs)
    assert len(logs) == 2 and "hunter2pass" not in text and "bob:***@" in text


def test_raw_records_take_only_their_own_size_in_memory() -> None:
    """orjson's results hold ~4 KB each however short: a sync keeps thousands of raw
    records, and once kept as they came the fetching process's peak at a million
    ListenBrainz listens rose from 53 to 79 MB. Measured in a fresh process (RSS)."""
    import subprocess
    import sys

    code = (
        "from scrobbler_cli.services.http import canonical_bytes\n"
        "def rss():\n"
        "    with open('/proc/self/status') as fh:\n"
        "        return int(fh.read().split('VmRSS:')[1].split()[0])\n"
        "listens = [{'listened_at': 1700000000 + i, 'track_metadata': {"
        "'artist_name': f'Sigur Rós {i}', 'track_name': 'Hoppípolla' * 20}} "
        "for i in range(20000)]\n"
        "before = rss()\n"
        "kept = [canonical_bytes(listen) for listen in listens]\n"
        "print((rss() - before) // 1024, sum(map(len, kept)) // 2**20)\n"
    )
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    grown, size = int(out[0]), int(out[1])
    assert size == 5  # 20,000 records of ~290 bytes
    assert grown < 20, f"{grown} MB for {size} MB of raw records"
