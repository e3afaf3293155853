"""How the client's requests travel: one session, its retry policy, and the one call loop.

`CoinsClient` (`toolkit.client`) says *what* to ask EnKash and what the answer makes of it
(a `CoinConfig`, an `Allocation`, an error). This module says *how* a request gets there and
when it is sent again; the client owns one `Transport` and every API call goes through
`Transport.call`:

- one thread-safe `requests.Session`, proxies and CA bundle read once, an adapter per path:
  urllib3 repeats only requests that were never sent (connection refused, connect timeout);
  a login is also repeated after 429/5xx, never after a refusal or no answer (three strikes
  lock the account), and gets a smaller budget so an unreachable server is said in seconds;
- exponential backoff with jitter (`Backoff`, injectable so tests pin it) for every wait;
- the default pacer (`PausePacer`: a throttled answer pauses every thread of the client);
  a bulk run brings its own (`toolkit.pacing.AdaptivePacer`, the `Pacer` protocol);
- which transport failures never reached the server (sent again) and which may have been
  processed (ambiguous), and a host name that does not exist (said at once, never retried);
- `Transport.call`: throttling waited out through the pacer without spending the retry
  budget, tokens renewed when an answer rejects them, CDN blocks sent again, and a write
  whose answer was lost re-sent only where the server profile says a repeat is refused —
  else `UnconfirmedError` (`unconfirmed_error` words it).

The transport is shared by a client and its copies (`CoinsClient.paced`, the doctor's quiet
copy, the app's per-user clients): the pacer, the profile and the throttle budget are the
client's own and are passed to each `call`. The tokens (`toolkit.auth.TokenManager`) live
here because every request needs one and the login goes through this session.

Secrets (client secret, password, tokens, cookie) are scrubbed from every answer read here
and never appear in reprs, logs or messages.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from toolkit.answers import RETRY_AFTER_CAP_S, Answer, Meaning, error_for, read
from toolkit.answers import retry_after_seconds as _retry_after_seconds
from toolkit.auth import BearerAuth, TokenManager
from toolkit.errors import (
    AuthError,
    EnKashError,
    LoginUnavailableError,
    RateLimitError,
    TransportError,
    UnconfirmedError,
)
from toolkit.pacing import Pacer
from toolkit.profiles import ServerProfile

__all__ = [
    "LOGIN_RETRIES",
    "THROTTLE_BUDGET_S",
    "TOKEN_PATH",
    "Backoff",
    "PausePacer",
    "Sent",
    "Transport",
    "unconfirmed_error",
]

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"

# Statuses urllib3 repeats for a login (it has no pacer); every API answer comes back to the
# call loop, which paces throttles and decides what a lost answer means.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# getaddrinfo's "no such name" answers; EAI_AGAIN (a DNS server that did not answer) is retried.
_NO_SUCH_HOST = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)
LOGIN_RETRIES = 2
# Token renewals within one call: a server that refuses fresh tokens gets this many, not a loop.
_MAX_RENEWALS = 2
# How long one call keeps waiting out throttled answers before it gives up (a bulk run's own
# pacer sets the run's deadline instead).
THROTTLE_BUDGET_S = 300.0


# -- backoff and the default pacer ----------------------------------------------------------


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


class PausePacer:
    """The default pacer: no rate; a throttled answer pauses every thread of the client for
    its Retry-After (or a backoff), each waking at a slightly different moment (jitter)."""

    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self._streak = 0

    def wait_turn(self) -> bool:
        with self._lock:
            wait = self._resume_at - time.monotonic()
        if wait > 0:
            self._backoff.sleep(wait + self._backoff.random() * min(1.0, 0.25 * wait + 0.05))
        return True

    def on_answer(self, *, throttled: bool, retry_after: float | None) -> None:
        with self._lock:
            if not throttled:
                self._streak = 0
                return
            self._streak += 1
            wait = retry_after if retry_after is not None else self._backoff.delay(self._streak)
            self._resume_at = max(self._resume_at, time.monotonic() + min(wait, RETRY_AFTER_CAP_S))


# -- urllib3's retries --------------------------------------------------------------------


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
        if _host_not_found(error):
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


def _build_session(
    base_url: str, *, cookie: str | None, pool_maxsize: int, backoff: Backoff, max_retries: int
) -> requests.Session:
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


# -- what a transport failure means ---------------------------------------------------------


def _never_sent(exc: BaseException | None) -> bool:
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


def _host_not_found(exc: BaseException | None) -> bool:
    """True for a DNS answer that the name does not exist (not a temporary DNS failure)."""
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        exc = exc.args[0]
    if isinstance(exc, MaxRetryError):
        exc = exc.reason
    if not isinstance(exc, NameResolutionError):
        return False
    cause = exc.__cause__
    return isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST


@dataclass(frozen=True, slots=True)
class Sent:
    """An answer to a call, and whether an earlier attempt of the same call may have been
    processed by the server (its answer was lost)."""

    answer: Answer
    sent_before: bool


class _Ambiguous(Exception):
    """An attempt of a write reached the server (or may have) and its answer was lost."""

    def __init__(self, reason: str, error: EnKashError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def unconfirmed_error(
    action: str, payload: dict[str, Any], what: str, reason: str, status: int | None
) -> UnconfirmedError:
    """The `UnconfirmedError` of a create or allocation that may have happened, with what to
    check before sending it again."""
    if action == "create":
        advice = (
            f"Check in EnKash whether {payload.get('companyId')}/{payload.get('event')} is "
            "configured; if it is, record its id with `coins import-ids ID` (it then counts "
            "as known); running the sheet again re-checks it and never creates it silently "
            "a second time"
        )
    else:
        advice = (
            f"Check the balance of user {payload.get('userId')} or ask EnKash whether "
            f"requestId {payload.get('requestId')} was allocated before sending it again"
        )
    return UnconfirmedError(
        f"{what}: unconfirmed — {reason}. {advice}",
        sent=payload,
        action=action,
        http_status=status,
        request_id=payload.get("requestId"),
    )


def _resend_safe(profile: ServerProfile, write: str) -> bool:
    return profile.resend_create if write == "create" else profile.resend_allocate


def _cookie_secrets(cookie: str | None) -> tuple[str, ...]:
    """The cookie header and each cookie's value: a server may echo either on its own."""
    if not cookie:
        return ()
    values = (part.partition("=")[2].strip() for part in cookie.split(";"))
    return (cookie, *(v for v in values if v))


# -- the transport --------------------------------------------------------------------------


class Transport:
    """One server's session, tokens and call loop; thread-safe, shared by a client's copies."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float,
        max_retries: int,
        backoff: Backoff,
        pool_maxsize: int,
        client_id: str | None,
        client_secret: str | None,
        username: str | None,
        password: str | None,
        access_token: str | None,
        cookie: str | None,
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff = backoff
        self._username = username
        self._fixed_secrets = (client_secret, password, *_cookie_secrets(cookie))
        self.session = _build_session(
            base_url,
            cookie=cookie,
            pool_maxsize=pool_maxsize,
            backoff=backoff,
            max_retries=max_retries,
        )
        self.tokens = TokenManager(
            send_login=self._send_login,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            access_token=access_token,
        )

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r}, username={self._username!r})"

    def close(self) -> None:
        """Release the connection pools."""
        self.session.close()

    def secrets(self) -> tuple[str | None, ...]:
        """Everything to scrub from text a person may see: credentials, cookie, tokens."""
        return (*self._fixed_secrets, *self.tokens.known())

    def read(self, response: requests.Response) -> Answer:
        """An answer read, secrets scrubbed."""
        return read(response, secrets=self.secrets())

    def error_of(self, answer: Answer, what: str, request_id: str | None = None) -> EnKashError:
        """The error an unsuccessful answer stands for."""
        error = error_for(answer, what, request_id=request_id)
        if isinstance(error, AuthError) and not self.tokens.has_credentials:
            # Only a given token was configured: the server's "get a new one" is not actionable.
            error.message += (
                ". Set a fresh ENKASH_ACCESS_TOKEN, or ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET, "
                "ENKASH_USERNAME and ENKASH_PASSWORD so the toolkit can log in by itself"
            )
        return error

    def call(
        self,
        method: str,
        path: str,
        what: str,
        json: dict[str, Any] | None = None,
        *,
        pacer: Pacer,
        profile: ServerProfile,
        throttle_budget_s: float,
        params: dict[str, Any] | None = None,
        write: str | None = None,
        sent_before: bool = False,
        request_id: str | None = None,
    ) -> Sent:
        """One API call until it has an answer that means something.

        - throttled answers are waited out through ``pacer``, not counted as retries, for at
          most ``throttle_budget_s`` of waits the server asked for;
        - an answer saying the token is expired or invalid: a new token, sent again (the
          request was not processed);
        - never sent (connect error: urllib3 repeats those; a CDN block): sent again;
        - sent but no usable answer (timeout, dropped, 5xx, unreadable): GET/PATCH are sent
          again; a write (``write`` = "create"/"allocate") only when ``profile`` says a
          repeat would be refused, else `UnconfirmedError`.

        Returns the answer (success or a definite refusal) and whether an earlier attempt may
        have been processed.
        """
        if sent_before and write is not None and not _resend_safe(profile, write):
            raise unconfirmed_error(
                write,
                json or {},
                what,
                "an earlier attempt may have reached EnKash, and this server's answers cannot "
                "confirm a repeat safely, so it was not sent again",
                None,
            )
        retries = renewals = blocked = throttles = 0
        throttled_for = 0.0  # the waits the server asked for in this call
        while True:
            if not pacer.wait_turn():
                raise RateLimitError(
                    f"{what}: stopped waiting for the server's rate limit (the run was "
                    "cancelled or reached its deadline); nothing was sent",
                )
            token = self.tokens.token()
            outcome: _Ambiguous | None
            try:
                answer = self._attempt(method, path, what, json, params, token)
            except _Ambiguous as lost:
                outcome = lost
            else:
                outcome = None
            if outcome is None:
                throttled = answer.meaning is Meaning.THROTTLED
                pacer.on_answer(throttled=throttled, retry_after=answer.retry_after)
                if throttled:
                    throttles += 1
                    asked = answer.retry_after
                    throttled_for += asked if asked else self.backoff.delay(throttles)
                    if throttled_for > throttle_budget_s:
                        raise self.error_of(answer, what, request_id)
                    continue
                if answer.meaning is Meaning.TOKEN_INVALID and renewals < _MAX_RENEWALS:
                    renewals += 1
                    if self.tokens.renew_after_rejection(token):
                        continue
                if answer.meaning is Meaning.BLOCKED and blocked < self.max_retries:
                    blocked += 1  # the API never saw it: safe to send again, after a pause
                    self.backoff.pause(blocked + 1)
                    continue
                if answer.meaning is Meaning.TOKEN_INVALID:
                    raise self.error_of(answer, what, request_id)
                if answer.meaning not in (Meaning.SERVER_FAILURE, Meaning.UNREADABLE):
                    return Sent(answer, sent_before)
                outcome = _Ambiguous(
                    f"the server answered HTTP {answer.http_status}"
                    + (f" ({answer.message})" if answer.message else ""),
                    self.error_of(answer, what, request_id),
                )
            # Sent, and no usable answer: the server may have processed it.
            if write is not None and not _resend_safe(profile, write):
                _give_up_write(write, json, what, outcome.reason, outcome)
            if retries >= self.max_retries:
                if write is not None:
                    reason = (
                        f"still no usable answer after {retries + 1} attempts ({outcome.reason})"
                    )
                    _give_up_write(write, json, what, reason, outcome)
                if outcome.error is not None:
                    raise outcome.error
                raise (
                    outcome.__cause__
                    if isinstance(outcome.__cause__, EnKashError)
                    else TransportError(f"{what}: {outcome.reason}")
                )
            retries += 1
            sent_before = sent_before or write is not None
            delay = self.backoff.delay(retries)
            logger.info(
                "%s %s: %s; sending again in %.2f s (retry %d of %d)",
                method,
                path,
                outcome.reason,
                delay,
                retries,
                self.max_retries,
            )
            self.backoff.sleep(delay)

    def send_once(
        self,
        method: str,
        path: str,
        what: str,
        json: dict[str, Any] | None,
        params: dict[str, Any] | None,
        token: str,
    ) -> Answer:
        """One request with this bearer token: no login, no renewal, no retry (the doctor's
        probes). A lost answer is the `TransportError` (or the error) it stands for."""
        try:
            return self._attempt(method, path, what, json, params, token)
        except _Ambiguous as lost:
            raise lost.error or TransportError(f"{what}: {lost.reason}") from lost

    # -- internals ----------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        path: str,
        what: str,
        json: dict[str, Any] | None,
        params: dict[str, Any] | None,
        token: str,
    ) -> Answer:
        """One request; its answer read. Raises `TransportError` when it was never sent and
        `_Ambiguous` when it was sent and no answer came."""
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                auth=BearerAuth(token),
                timeout=self.timeout_s,
            )
            answer = self.read(response)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            logger.debug("%s %s failed: %s", method, path, type(exc).__name__)
            error = self._transport_error(exc, what)
            error.__cause__ = exc
            if _never_sent(exc) or _host_not_found(exc):
                raise error from exc
            lost = _Ambiguous(error.message.removeprefix(f"{what}: "), error)
            raise lost from exc
        logger.debug(
            "%s %s -> HTTP %s %s in %.0f ms",
            method,
            path,
            response.status_code,
            answer.meaning,
            (time.monotonic() - started) * 1000,
        )
        return answer

    def _send_login(self, form: dict[str, str], basic: tuple[str, str]) -> requests.Response:
        what = f"Could not log in to EnKash as {self._username}"
        blocked = 0
        while True:
            try:
                response = self.session.post(
                    self.base_url + TOKEN_PATH,
                    data=form,
                    auth=requests.auth.HTTPBasicAuth(*basic),
                    timeout=self.timeout_s,
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise LoginUnavailableError(self._transport_error(exc, what).message) from exc
            # A CDN's challenge page: EnKash never saw the login (not a strike), so it is sent
            # again after a pause, a few times, before the block is reported.
            if blocked >= LOGIN_RETRIES or read(response).meaning is not Meaning.BLOCKED:
                return response
            blocked += 1
            self.backoff.pause(blocked + 1)

    def _transport_error(self, exc: Exception, what: str) -> TransportError:
        reason_exc = (
            exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
        )
        if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(
            reason_exc, ReadTimeoutError
        ):
            reason = (
                f"no answer within {self.timeout_s:g} s (the request may still have been processed)"
            )
        elif _host_not_found(exc):
            host = urlsplit(self.base_url).hostname
            reason = f"the host {host} was not found (check the base URL, ENKASH_BASE_URL)"
        elif _never_sent(exc):
            reason = f"could not connect to {self.base_url}"
        elif isinstance(exc, requests.exceptions.ConnectionError):
            reason = "the connection was closed before an answer arrived"
        else:
            reason = f"the answer could not be read ({type(exc).__name__})"
        return TransportError(f"{what}: {reason}")


def _give_up_write(
    write: str, json: dict[str, Any] | None, what: str, reason: str, lost: _Ambiguous
) -> NoReturn:
    """A write sent with no usable answer that is not sent again: unconfirmed."""
    raise unconfirmed_error(
        write, json or {}, what, reason, getattr(lost.error, "http_status", None)
    ) from (lost.error or lost.__cause__)
