"""The client's one `requests.Session`: its retry policy, its backoff, what its failures mean.

`toolkit.transport` sends every request through this session; here is what happens below
its call loop:

- proxies and the CA bundle read once, when the session is built (requests would re-read the
  environment on every request: a third of the client's CPU), for the one base URL;
- an adapter per path: urllib3 repeats only requests that were never sent (connection
  refused, connect timeout); a login (`TOKEN_PATH`) is also repeated after 429/5xx — never
  after a refusal or no answer (three strikes lock the account) — with a smaller budget, so
  an unreachable server is said within seconds;
- `Backoff`: exponential backoff with jitter, its ``sleep`` and ``random`` injectable so tests
  pin it; urllib3's own waits go through it too (`_Retry`), and every ``Retry-After`` form is
  read the way the answers read it;
- `send`: one request through the session's adapter, without the per-request work of
  `Session.request` this client does not use (the environment, cookies set by answers,
  redirects): about 40% of the client's CPU per request;
- a transport failure classified: `never_sent` (safe to send again), `host_not_found` (said
  at once: a name that does not resolve will not resolve in a few seconds), and the words of
  the `TransportError` (`transport_error`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.hooks import dispatch_hook
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from toolkit.answers import RETRY_AFTER_CAP_S
from toolkit.answers import retry_after_seconds as _retry_after_seconds
from toolkit.errors import TransportError

__all__ = [
    "LOGIN_RETRIES",
    "RETRY_STATUSES",
    "TOKEN_PATH",
    "Backoff",
    "build_session",
    "host_not_found",
    "never_sent",
    "send",
    "transport_error",
]

TOKEN_PATH = "/oauth/token"

# Statuses urllib3 repeats for a login (it has no pacer); every API answer comes back to the
# call loop, which paces throttles and decides what a lost answer means.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# getaddrinfo's "no such name" answers; EAI_AGAIN (a DNS server that did not answer) is retried.
_NO_SUCH_HOST = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)
LOGIN_RETRIES = 2


# -- backoff -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter; ``sleep`` and ``random`` injectable so tests can pin it."""

    factor: float
    maximum: float
    jitter: float
    sleep: Callable[[float], None]
    random: Callable[[], float]

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1, 2, …): factor·2ⁿ⁻¹ + jitter."""
        base = min(self.maximum, self.factor * 2 ** max(retry_number - 1, 0))
        return max(0.0, base + self.random() * self.jitter)

    def pause(self, retry_number: int) -> None:
        """Sleep the delay of retry ``retry_number``."""
        self.sleep(self.delay(retry_number))


# -- urllib3's retries and the session -----------------------------------------------------


class _Retry(Retry):
    """urllib3 `Retry` whose backoff and sleeping go through the client's `Backoff`."""

    backoff_policy: Backoff | None = None

    def new(self, **kw: Any) -> _Retry:
        fresh = super().new(**kw)
        fresh.backoff_policy = self.backoff_policy
        return fresh

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _Retry:
        # A host name that does not exist will not exist a few seconds later: say so at once.
        if host_not_found(error):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def parse_retry_after(self, retry_after: str) -> float:
        # urllib3 raises InvalidHeader on "0.5" (decimal seconds, which CDNs send): read every
        # form the way the answers are read, and wait a backoff when it is no form at all.
        seconds = _retry_after_seconds(retry_after)
        return min(seconds, RETRY_AFTER_CAP_S) if seconds is not None else 0.0

    def get_backoff_time(self) -> float:
        if self.backoff_policy is None:
            return super().get_backoff_time()
        consecutive = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            consecutive += 1
        return self.backoff_policy.delay(consecutive) if consecutive else 0.0

    def sleep(self, response: Any = None) -> None:
        sleep = self.backoff_policy.sleep if self.backoff_policy is not None else time.sleep
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                sleep(retry_after)
                return
        backoff = self.get_backoff_time()
        if backoff > 0:
            sleep(backoff)


def _retry(
    policy: Backoff,
    max_retries: int,
    *,
    methods: Iterable[str],
    reads: bool,
    statuses: bool = False,
) -> _Retry:
    """A Retry that always repeats unsent requests (connect errors); after a read error (no
    answer, dropped connection) only when ``reads``; after 429/5xx only when ``statuses``."""
    retry = _Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries if reads else False,
        status=max_retries if statuses else 0,
        other=0,
        redirect=0,
        allowed_methods=frozenset(methods),
        status_forcelist=RETRY_STATUSES if statuses else frozenset(),
        backoff_factor=policy.factor,
        backoff_max=policy.maximum,
        backoff_jitter=policy.jitter,
        respect_retry_after_header=True,
        retry_after_max=int(RETRY_AFTER_CAP_S),
        raise_on_status=False,
        raise_on_redirect=False,
    )
    retry.backoff_policy = policy
    return retry


def build_session(
    base_url: str, *, cookie: str | None, pool_maxsize: int, backoff: Backoff, max_retries: int
) -> requests.Session:
    """The one session of a client: thread-safe, pooled (``pool_maxsize`` per host), with a
    retry policy for the API paths and a stricter one for the login."""
    session = requests.Session()
    # requests re-reads proxy settings from the environment on every request unless told
    # not to (a third of the client's CPU): read them once here, for this one base URL
    # (NO_PROXY included), and the CA bundle variables with them.
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.headers["Accept"] = "application/json"
    if cookie:
        session.headers["Cookie"] = cookie

    def adapter(retry: Retry) -> HTTPAdapter:
        return HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)

    # requests picks the longest mounted prefix, so each path gets its own policy.
    # urllib3 repeats only requests that were never sent (connection refused, connect
    # timeout); what an answer means, and whether a request that may have reached the server
    # is sent again, is the call loop's own decision with one budget per call (`Transport.call`).
    session.mount(
        base_url,
        adapter(_retry(backoff, max_retries, methods=("GET", "PATCH", "POST"), reads=False)),
    )
    # A login is repeated when it was never sent or answered 429/5xx — never after a
    # refusal (400/401 come straight back), nor after no answer: a wrong password that the
    # server counted but did not answer in time must not be counted twice (3 locks).
    # The login is the first call anything makes: an unreachable server should be said
    # within seconds, so it gets a smaller budget than the calls of a running job.
    session.mount(
        base_url + TOKEN_PATH,
        adapter(
            _retry(
                backoff,
                min(max_retries, LOGIN_RETRIES),
                methods=("POST",),
                reads=False,
                statuses=True,
            )
        ),
    )
    return session


# -- one request ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _prepared_url(url: str) -> str:
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return str(prepared.url)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    auth: requests.auth.AuthBase | None = None,
    timeout: float,
) -> requests.Response:
    """One request through ``session``'s adapter for ``url``, as `Session.request` would send
    it for this client — the session's headers and ``headers``, the JSON or form body, ``auth``,
    the proxies and CA bundle read when the session was built, the adapter's retry policy (the
    login's own at `TOKEN_PATH`) — without the work
    per request it does not need: the environment (read once, `build_session`), cookies set
    by answers (the API uses none; a configured ``Cookie`` header is one of the session's
    headers), and redirects, which are not followed: a redirected write may
    or may not have been processed (and a login's password must not follow a 307 elsewhere),
    so its answer comes back as it is and says where it points. Raises what
    `Session.request` raises."""
    prepared = requests.PreparedRequest()
    prepared.method = method.upper()
    if params:
        prepared.prepare_url(url, dict(params))
    else:
        prepared.url = _prepared_url(url)
    prepared.prepare_headers({**session.headers, **(headers or {})})
    prepared.prepare_body(dict(data) if data else None, None, json)
    if auth is not None:
        prepared.prepare_auth(auth, str(prepared.url))
    adapter = session.get_adapter(str(prepared.url))
    response = adapter.send(
        prepared,
        stream=False,
        timeout=timeout,
        verify=session.verify,
        cert=session.cert,
        proxies=session.proxies,
    )
    # The session's response hooks still see every answer (a notebook's logging hook).
    return dispatch_hook("response", session.hooks, response)


# -- what a transport failure means ---------------------------------------------------------


def never_sent(exc: BaseException | None) -> bool:
    """True when a transport failure happened before the request reached the server."""
    if isinstance(
        exc,
        (
            requests.exceptions.ConnectTimeout,
            requests.exceptions.SSLError,
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ),
    ):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def host_not_found(exc: BaseException | None) -> bool:
    """True for a DNS answer that the name does not exist (not a temporary DNS failure)."""
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        exc = exc.args[0]
    if isinstance(exc, MaxRetryError):
        exc = exc.reason
    if not isinstance(exc, NameResolutionError):
        return False
    cause = exc.__cause__
    return isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST


def transport_error(
    exc: Exception, what: str, *, base_url: str, timeout_s: float
) -> TransportError:
    """The `TransportError` a failed request stands for, saying what happened in words."""
    reason_exc = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(reason_exc, ReadTimeoutError):
        reason = f"no answer within {timeout_s:g} s (the request may still have been processed)"
    elif host_not_found(exc):
        host = urlsplit(base_url).hostname
        reason = f"the host {host} was not found (check the base URL, ENKASH_BASE_URL)"
    elif never_sent(exc):
        reason = f"could not connect to {base_url}"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        reason = "the connection was closed before an answer arrived"
    else:
        reason = f"the answer could not be read ({type(exc).__name__})"
    return TransportError(f"{what}: {reason}")
