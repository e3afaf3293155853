"""How the client's requests travel: the one call loop, tokens, pacing, lost writes.

`CoinsClient` (`toolkit.client`) says *what* to ask EnKash and what the answer makes of it
(a `CoinConfig`, an `Allocation`, an error). This module says *how* a request gets there and
when it is sent again; the client owns one `Transport` and every API call goes through
`Transport.call`:

- throttled answers (429, 503 + Retry-After, EnKash velocity codes) waited out through a
  pacer without spending the call's retry budget, for at most the call's throttle budget;
  the default pacer is `PausePacer` (a throttled answer pauses every thread of the client),
  a bulk run brings its own (`toolkit.pacing.AdaptivePacer`, the `Pacer` protocol);
- an answer that rejects the token: a new token (`toolkit.auth.TokenManager`), sent again;
- a CDN's block (EnKash never saw it): sent again after a pause; the login too, a few times;
- sent but no usable answer (timeout, dropped, 5xx, unreadable): GET and PATCH sent again with
  backoff; a create or an allocation only where the server profile says a repeat would be
  refused — else `UnconfirmedError` (`unconfirmed_error` words it), never a guess.

Below the loop, `toolkit.session` builds the one `requests.Session` (proxies read once, an
adapter per path, urllib3 repeating only what was never sent), the `Backoff`, and says what a
transport failure means (never sent, host not found, its words).

The transport is shared by a client and its copies (`CoinsClient.paced`, the doctor's quiet
copy, the app's per-user clients): the pacer, the profile and the throttle budget are the
client's own and are passed to each `call`. The tokens (`toolkit.auth.TokenManager`) live
here because every request needs one and the login goes through this session.

Secrets (client secret, password, tokens, cookie) are scrubbed from every answer read here
and never appear in reprs, logs or messages.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import requests
import urllib3

from toolkit.answers import RETRY_AFTER_CAP_S, Answer, Meaning, error_for, read
from toolkit.auth import TokenManager
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
from toolkit.session import (
    LOGIN_RETRIES,
    TOKEN_PATH,
    Backoff,
    build_session,
    host_not_found,
    never_sent,
    send,
    transport_error,
)

__all__ = [
    "THROTTLE_BUDGET_S",
    "PausePacer",
    "Sent",
    "Transport",
    "unconfirmed_error",
]

logger = logging.getLogger(__name__)

# Token renewals within one call: a server that refuses fresh tokens gets this many, not a loop
# (three: a server that drops 4% of its tokens at random still drops three in a row for one
# call now and then in a long run, and that is no reason to fail the call).
_MAX_RENEWALS = 3
# How long one call keeps waiting out throttled answers before it gives up (a bulk run's own
# pacer sets the run's deadline instead).
THROTTLE_BUDGET_S = 300.0


# -- the default pacer -------------------------------------------------------------------


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


# -- what a call returns; a write that may have happened --------------------------------------


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
        self.session = build_session(
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
        *,
        token: str,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
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
            response = send(
                self.session,
                method,
                self.base_url + path,
                headers={"Authorization": f"Bearer {token}"},
                json=json,
                params=params,
                timeout=self.timeout_s,
            )
            answer = self.read(response)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            logger.debug("%s %s failed: %s", method, path, type(exc).__name__)
            error = self._failure(exc, what)
            error.__cause__ = exc
            if never_sent(exc) or host_not_found(exc):
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
                response = send(
                    self.session,
                    "POST",
                    self.base_url + TOKEN_PATH,
                    data=form,
                    auth=requests.auth.HTTPBasicAuth(*basic),
                    timeout=self.timeout_s,
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise LoginUnavailableError(self._failure(exc, what).message) from exc
            # A CDN's challenge page: EnKash never saw the login (not a strike), so it is sent
            # again after a pause, a few times, before the block is reported.
            if blocked >= LOGIN_RETRIES or read(response).meaning is not Meaning.BLOCKED:
                return response
            blocked += 1
            self.backoff.pause(blocked + 1)

    def _failure(self, exc: Exception, what: str) -> TransportError:
        return transport_error(exc, what, base_url=self.base_url, timeout_s=self.timeout_s)


def _give_up_write(
    write: str, json: dict[str, Any] | None, what: str, reason: str, lost: _Ambiguous
) -> NoReturn:
    """A write sent with no usable answer that is not sent again: unconfirmed."""
    raise unconfirmed_error(
        write, json or {}, what, reason, getattr(lost.error, "http_status", None)
    ) from (lost.error or lost.__cause__)
