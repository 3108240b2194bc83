"""The one HTTP layer every service client goes through.

It owns what must be the same for every service: the configured ``httpx.Client``
(timeouts, a User-Agent that names scrob), retries with tenacity (network errors, 429,
5xx and whatever a service's ``classify`` marks transient, with exponential backoff and
jitter that honours Retry-After), pacing (a fixed request rate such as Last.fm's 5/s, and
ListenBrainz's ``X-RateLimit-*`` headers obeyed before they bite), a request counter, and
a log callback that only ever sees redacted text. Sleeps and clocks are injectable so
tests never really wait.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from scrobbler_cli import __version__
from scrobbler_cli.errors import ServiceError, ServiceUnavailable, redact


def _import_httpx() -> Any:
    """httpx without its command-line client, which ``import httpx`` loads whenever
    click, rich and pygments are installed (typer brings all three): rich's console,
    progress and syntax modules and pygments' lexers, ~40 ms and ~7 MB in every command
    that talks to a service, for a ``httpx.main`` scrob never calls (httpx then defines a
    stub). Every other module imports httpx for type hints only, so this is the first."""
    from scrobbler_cli._imports import without

    with without("httpx._main"):
        import httpx
    return httpx


if TYPE_CHECKING:
    import httpx
else:
    httpx = _import_httpx()

T = TypeVar("T")

USER_AGENT = f"scrob/{__version__} (+https://github.com/scrob-dev/scrob)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: No server-requested wait is honoured beyond this (seconds).
MAX_WAIT = 3600.0


def canonical_bytes(value: Any) -> bytes:
    """The one JSON spelling of a parsed value: sorted keys, compact, UTF-8 (the ``raw``
    of a Last.fm scrobble or an imported listen, and what export sends).

    orjson (a tenth of the cost, on every listen of a sync), with the standard library
    for what orjson refuses (huge integers, NaN); both spell a valid value byte for byte
    the same. A lone surrogate has no UTF-8 spelling: it raises UnicodeEncodeError (a
    ValueError), so the parsers report such a listen as unusable.
    """
    try:
        # copied out: each result of orjson holds on to ~4 KB of memory (its buffer, cut
        # down in place), and a sync keeps thousands of raw records at a time
        return memoryview(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).tobytes()
    except (TypeError, ValueError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          sort_keys=True).encode("utf-8")


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


def loads(content: bytes | str) -> Any:
    """Parse a reply: orjson (pages are hundreds of KB), falling back to the standard
    library for what only it accepts (NaN, lone surrogates); ValueError if neither can
    (nesting too deep for either included)."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        try:
            return json.loads(content)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


_TLS: Future[Any] | None = None  # the TLS context prepare_tls() builds


def prepare_tls() -> None:
    """Build httpx's TLS context on a thread now, for the clients made later.

    Loading the CA bundle takes ~30 ms, nearly all of it in OpenSSL, which runs without
    the GIL: a command that will talk to a service starts this first, and the bundle
    loads while the command opens the archive and reads its secrets, instead of after.
    Once is enough (the context is shared by every client of the process)."""
    global _TLS
    if _TLS is not None:
        return
    future: Future[Any] = Future()

    def build() -> None:
        try:
            future.set_result(httpx.create_ssl_context())
        except BaseException as exc:  # noqa: BLE001 - make_client lets httpx try itself
            future.set_exception(exc)

    _TLS = future
    threading.Thread(target=build, name="scrob-tls", daemon=True).start()


def _verify() -> Any:
    """The context prepare_tls() built, or True (httpx builds its own, and reports what
    went wrong) when none was prepared or building it failed."""
    if _TLS is None:
        return True
    try:
        return _TLS.result()
    except Exception:  # noqa: BLE001 - httpx raises it again, where it belongs
        return True


def make_client(base_url: str = "", *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An ``httpx.Client`` with scrob's timeouts and User-Agent, reused for a whole run."""
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        transport=transport,
        follow_redirects=True,
        verify=True if transport is not None else _verify(),
    )


def _header_float(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return min(max(0.0, number), MAX_WAIT) if math.isfinite(number) else None


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After, or on a 429 (or when no request
    is left in the window) ListenBrainz's X-RateLimit-Reset-In, which is otherwise sent
    with every reply and means nothing for a passing 503."""
    asked = _header_float(response, "Retry-After")
    if asked is not None:
        return asked
    remaining = _header_float(response, "X-RateLimit-Remaining")
    if response.status_code == 429 or remaining == 0:
        return _header_float(response, "X-RateLimit-Reset-In")
    return None


def default_classify(service: str) -> Callable[[httpx.Response], Any]:
    """Status-code classification shared by services: 429 and 5xx are transient."""

    def classify(response: httpx.Response) -> Any:
        status = response.status_code
        if status == 429 or status >= 500:
            raise ServiceUnavailable(
                f"{service} answered HTTP {status}", service=service, status=status,
                retry_after=retry_after(response),
            )
        if status >= 400:
            raise ServiceError(f"{service} answered HTTP {status}", service=service, status=status)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceUnavailable(
                f"{service} sent a reply that is not JSON", service=service, status=status
            ) from exc

    return classify


#: The slowest pace: a request every 100 s (the settings' ``lastfm_rate`` has the same).
MIN_RATE = 0.01


class Pacer:
    """Keeps request starts at or under ``rate`` per second, across threads.

    Also holds a gate set from ``X-RateLimit-Remaining: 0`` so that the next request
    waits for the window to reset instead of collecting a 429.
    """

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] | None = None) -> None:
        if rate and not rate >= MIN_RATE:  # (None or 0: no pace; NaN fails) sleep overflows
            raise ValueError(f"a request rate must be at least {MIN_RATE} a second, not {rate}")
        self.interval = 1.0 / rate if rate else 0.0
        self._log = log
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            if self._log and start - now >= 1.0:
                self._log(f"waiting {start - now:.1f}s for the service's rate limit")
            self._sleep(start - now)

    def hold_until(self, seconds_from_now: float) -> None:
        with self._lock:
            self._next = max(self._next, self._clock() + seconds_from_now)

    def observe(self, response: httpx.Response) -> None:
        """Obey ListenBrainz-style rate-limit headers before they bite."""
        remaining = _header_float(response, "X-RateLimit-Remaining")
        reset_in = _header_float(response, "X-RateLimit-Reset-In")
        if remaining == 0 and reset_in is not None:
            self.hold_until(reset_in)


class Http:
    """Requests to one service: pacing, retries, counting and redacted logging.

    ``classify`` (per call) turns a response into a value or raises a ``ServiceError``;
    raising ``ServiceUnavailable`` makes the call retry, anything else fails at once.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        service: str,
        rate: float | None = None,
        attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.service = service
        self.pacer = Pacer(rate, clock=clock, sleep=sleep, log=log)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.clock = clock
        self.log = log
        self.requests = 0
        self._count_lock = threading.Lock()

    def _wait(self, state: RetryCallState) -> float:
        exp = min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1))
        delay = exp / 2 + random.uniform(0, exp / 2)  # noqa: S311 - jitter, not crypto
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if asked:
            delay = max(delay, min(float(asked), MAX_WAIT))
        if self.log and exc is not None:
            self.log(redact(f"{self.service}: {exc}; retrying in {delay:.1f}s"))
        return delay

    def request(self, method: str, url: str, *, classify: Callable[[httpx.Response], T],
                **kwargs: Any) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(ServiceUnavailable),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, url, classify, kwargs)
        except ServiceUnavailable as exc:
            if exc.hint is None:  # the last attempt's error: say what to do about it
                exc.hint = (f"{self.service} kept failing"
                            + (f" ({self.attempts} attempts)" if self.attempts > 1 else "")
                            + "; try again later")
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, url: str, classify: Callable[[httpx.Response], T],
              kwargs: dict[str, Any]) -> T:
        self.pacer.wait()
        with self._count_lock:
            self.requests += 1
        started = self.clock()
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                redact(f"cannot reach {self.service}: {type(exc).__name__}: {exc}"),
                service=self.service,
                hint="check the network connection",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # redirect loops, bad encodings
            raise ServiceError(
                redact(f"{self.service} request failed: {type(exc).__name__}: {exc}"),
                service=self.service,
            ) from None
        # httpx binds a response's stream to the response, a reference cycle that keeps
        # the body (hundreds of KB a page) until the garbage collector runs, which scrob
        # lets run rarely (scrobbler_cli/_process.py): a read response's stream is just
        # its bytes, and the body goes with the last reference to it.
        response.stream = httpx.ByteStream(response.content)
        self.pacer.observe(response)
        if self.log:
            self.log(redact(f"{method} {response.request.url} -> {response.status_code} "
                            f"({self.clock() - started:.2f}s)"))
        return classify(response)
