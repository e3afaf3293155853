"""`CoinsClient`: the EnKash coins API over one thread-safe `requests.Session`.

What it adds to plain HTTP calls:

- arguments checked with the contract's rules before anything is sent (`ValidationError`);
- every answer read by `toolkit.answers` into one meaning, whatever dialect the server speaks
  (envelope codes 0/1/409/412/…, velocity codes, Spring error bodies, OAuth errors, HTML pages);
- tokens fetched lazily, renewed ahead of expiry and whenever an answer says the token is
  expired or invalid, whatever its HTTP status (`toolkit.auth`); a refused login never retried;
- requests that never reached the server (connection refused, connect timeout, a CDN block)
  are sent again; GET and PATCH (idempotent) also after no answer and 5xx, with exponential
  backoff and jitter, bounded;
- throttling (429, 503 + Retry-After, EnKash velocity codes) waited out through a *pacer*
  without spending the call's retry budget (`paced` gives a run one pacer for all its workers);
- creates and allocations whose answer was lost (timeout after sending, dropped connection,
  5xx, an unreadable answer) are sent again only where the server profile
  (`toolkit.profiles`, learnt by `coins doctor`) says a repeat is refused; a duplicate answer
  to our own repeat confirms the write. Everywhere else the outcome is `UnconfirmedError`,
  never a guess: nothing is created twice, no id is reported lost as "failed";
- a recorder hook (`Recorder.record_call(ApiCall)`) after every create, get, update, allocate.

Secrets (client secret, password, tokens, cookie) never appear in reprs, logs or messages.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

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

from toolkit.answers import (
    RETRY_AFTER_CAP_S,
    Answer,
    Meaning,
    config_payload,
    error_for,
    error_from_response,
    meaning_of_words,
    read,
    whole_number,
)
from toolkit.answers import retry_after_seconds as _retry_after_seconds
from toolkit.auth import BearerAuth, TokenManager
from toolkit.errors import (
    AuthError,
    BadAnswerError,
    ConflictError,
    DuplicateRequestError,
    EnKashError,
    LoginUnavailableError,
    NotFoundError,
    RateLimitError,
    TransportError,
    UnconfirmedError,
    ValidationError,
)
from toolkit.models import (
    Allocation,
    CoinConfig,
    FieldProblem,
    check_user_id,
    new_request_id,
    validate_allocation_fields,
    validate_config_fields,
)
from toolkit.profiles import CAUTIOUS, ServerProfile, load_profile
from toolkit.settings import Settings, SettingsError

__all__ = ["ApiCall", "CoinsClient", "Pacer", "Recorder", "error_from_response"]

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"
CREATE_PATH = "/api/v0/enkash-coins/create-coins-config"
CONFIG_PATH = "/api/v0/enkash-coins/"
ALLOCATE_PATH = "/api/v0/enkash-coins/allocate-coin"
BALANCE_PATH = "/api/v0/coins/balance"

# Statuses urllib3 repeats for a login (it has no pacer); every API answer comes back to the
# client, which paces throttles and decides what a lost answer means.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# getaddrinfo's "no such name" answers; EAI_AGAIN (a DNS server that did not answer) is retried.
_NO_SUCH_HOST = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)
_COIN_CONFIG_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


# -- the recorder hook --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One create/get/update/allocate as the client made it, for a recorder (the registry).

    ``request`` is the body or arguments sent (never secrets); exactly one of ``result`` and
    ``error`` is set. A call refused before sending (invalid arguments) has ``error`` set to a
    `ValidationError` whose ``http_status`` is None.
    """

    action: str  # "create" | "get" | "update" | "allocate"
    server_key: str
    coin_config_id: str | None
    request: dict[str, Any]
    result: CoinConfig | Allocation | None = None
    error: EnKashError | None = None
    source: str = "library"
    actor: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    known_before: CoinConfig | None = None


@runtime_checkable
class Recorder(Protocol):
    """Anything with ``record_call``; its failures are logged and never hide the API's result."""

    def record_call(self, call: ApiCall) -> None: ...


@runtime_checkable
class Pacer(Protocol):
    """Paces a client's API requests (not logins); one pacer may span many threads.

    ``wait_turn`` blocks until one request may be sent (a send rate, a pause a server asked
    for); False means give up (the run was cancelled or reached its deadline). ``on_answer``
    is told after each answer whether it was throttled and how long the server asked to wait.
    `toolkit.pacing` has the adaptive one bulk runs use.
    """

    def wait_turn(self) -> bool: ...

    def on_answer(self, *, throttled: bool, retry_after: float | None) -> None: ...


class _PausePacer:
    """The default pacer: no rate; a throttled answer pauses every thread of the client for
    its Retry-After (or a backoff), each waking at a slightly different moment (jitter)."""

    def __init__(self, backoff: _Backoff) -> None:
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


# -- retries and backoff ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Backoff:
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


class _Retry(Retry):
    """urllib3 `Retry` whose backoff and sleeping go through the client's `_Backoff`."""

    backoff_policy: _Backoff | None = None

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
    policy: _Backoff,
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


# -- answers ---------------------------------------------------------------------------------

LOGIN_RETRIES = 2
# Token renewals within one call: a server that refuses fresh tokens gets this many, not a loop.
_MAX_RENEWALS = 2
# How long one call keeps waiting out throttled answers before it gives up (a bulk run's own
# pacer sets the run's deadline instead).
THROTTLE_BUDGET_S = 300.0


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


def _show(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return text or "(missing)"


def _invalid(what: str, problems: list[FieldProblem]) -> ValidationError:
    detail = "; ".join(str(p) for p in problems)
    return ValidationError(f"{what}: {detail}", problems=problems)


@dataclass(frozen=True, slots=True)
class _Sent:
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


# -- the client ---------------------------------------------------------------------------


class CoinsClient:
    """The EnKash coins API for analysts' code: safe to share between threads.

    Use ``CoinsClient.from_env()`` (settings from the environment / `.env`; a base URL is
    required — `toolkit.connect()` gives the embedded sandbox) or the keyword-only constructor.
    ``profile`` says how the server answers repeats (`toolkit.profiles`; None = the cautious
    case). ``pacer`` paces requests (default: pause on throttling). ``sleep`` and
    ``jitter_random`` exist so tests can pin the backoff.
    """

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        access_token: str | None = None,
        cookie: str | None = None,
        timeout_s: float = 15.0,
        max_retries: int = 8,
        backoff_factor: float = 0.5,
        backoff_max: float = 5.0,
        pool_maxsize: int = 32,
        recorder: Recorder | None = None,
        source: str = "library",
        actor: str | None = None,
        server_key: str | None = None,
        backoff_jitter: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter_random: Callable[[], float] = random.random,
        profile: ServerProfile | None = None,
        pacer: Pacer | None = None,
        throttle_budget_s: float = THROTTLE_BUDGET_S,
    ) -> None:
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            raise ValueError(
                f"base_url must be an http(s) URL such as https://api.example.com, not {base_url!r}"
            )
        if timeout_s <= 0:
            raise ValueError("timeout_s must be more than 0 seconds")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.server_key = server_key or self.base_url
        self.recorder = recorder
        self.source = source
        self.actor = actor
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.throttle_budget_s = float(throttle_budget_s)
        self.profile = profile if profile is not None else CAUTIOUS
        self._client_secret = client_secret
        self._password = password
        self._cookie = cookie
        self._backoff = _Backoff(
            factor=float(backoff_factor),
            maximum=float(backoff_max),
            jitter=float(backoff_factor if backoff_jitter is None else backoff_jitter),
            sleep=sleep,
            random=jitter_random,
        )
        self.pacer: Pacer = pacer if pacer is not None else _PausePacer(self._backoff)
        self._session = self._build_session(pool_maxsize)
        self._tokens = TokenManager(
            send_login=self._send_login,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            access_token=access_token,
        )

    def _build_session(self, pool_maxsize: int) -> requests.Session:
        session = requests.Session()
        # requests re-reads proxy settings from the environment on every request unless told
        # not to (a third of the client's CPU): read them once here, for this one base URL
        # (NO_PROXY included), and the CA bundle variables with them.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.headers["Accept"] = "application/json"
        if self._cookie:
            session.headers["Cookie"] = self._cookie

        def adapter(retry: Retry) -> HTTPAdapter:
            return HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)

        policy, budget = self._backoff, self.max_retries
        # requests picks the longest mounted prefix, so each path gets its own policy.
        # urllib3 repeats only requests that were never sent (connection refused, connect
        # timeout); what an answer means, and whether a request that may have reached the server
        # is sent again, is the client's own decision with one budget per call (see `_call`).
        session.mount(
            self.base_url,
            adapter(_retry(policy, budget, methods=("GET", "PATCH", "POST"), reads=False)),
        )
        # A login is repeated when it was never sent or answered 429/5xx — never after a
        # refusal (400/401 come straight back), nor after no answer: a wrong password that the
        # server counted but did not answer in time must not be counted twice (3 locks).
        # The login is the first call anything makes: an unreachable server should be said
        # within seconds, so it gets a smaller budget than the calls of a running job.
        session.mount(
            self.base_url + TOKEN_PATH,
            adapter(
                _retry(
                    policy,
                    min(budget, LOGIN_RETRIES),
                    methods=("POST",),
                    reads=False,
                    statuses=True,
                )
            ),
        )
        return session

    # -- construction from settings -------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CoinsClient:
        """A client for the EnKash server ``settings`` names (``ENKASH_BASE_URL``), nothing more.

        The server profile kept under ``COINS_HOME`` for that server (``coins doctor``) is used
        unless ``profile`` is given; ``overrides`` are constructor arguments. Nothing is
        recorded unless a ``recorder`` is given, and no sandbox is started: with no base URL
        this raises `SettingsError`. `toolkit.connect()` is what starts the embedded sandbox,
        profiles it and attaches the registry (``ws.client``, ``ws.registry``).
        """
        kwargs: dict[str, Any] = {
            "base_url": settings.base_url,
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "username": settings.username,
            "password": settings.password,
            "access_token": settings.access_token,
            "cookie": settings.cookie,
            "timeout_s": settings.timeout_s,
            "actor": settings.actor,
        }
        kwargs.update(overrides)
        if not kwargs.get("base_url"):
            raise SettingsError(
                "no EnKash base URL is set (ENKASH_BASE_URL): CoinsClient.from_settings() and "
                "from_env() talk to a server you name. For the embedded sandbox and the "
                "registry, use toolkit.connect() (then ws.client, ws.registry)."
            )
        client = cls(**kwargs)
        if "profile" not in overrides:
            profile = load_profile(settings.home, client.server_key)
            if profile is not None:
                client.profile = profile
        return client

    @classmethod
    def from_env(cls, **overrides: Any) -> CoinsClient:
        """`from_settings` with the settings of the environment and `.env` (`toolkit.settings`).

        A base URL is required; for the embedded sandbox and recording use `toolkit.connect()`.
        """
        return cls.from_settings(Settings.from_env(), **overrides)

    def paced(self, pacer: Pacer, *, throttle_budget_s: float | None = None) -> CoinsClient:
        """This client with its own pacer: the same connections, tokens, profile and recorder.

        A bulk run gives all its workers one pacer this way, so one rate spans the run.
        """
        twin = copy.copy(self)
        twin.pacer = pacer
        if throttle_budget_s is not None:
            twin.throttle_budget_s = float(throttle_budget_s)
        return twin

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connection pools."""
        self._session.close()

    def __enter__(self) -> CoinsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CoinsClient(base_url={self.base_url!r}, username={self.username!r})"

    def token_state(self) -> dict[str, Any]:
        """The token for display: state (valid/none/expired/refused), expires_in_s, source."""
        return self._tokens.state()

    def login(self) -> None:
        """Make sure a usable token exists now (log in if needed) rather than on first use.

        Surfaces call this at start so refused credentials show at once. A refusal raises
        ``AuthError`` and is remembered: no later call of this client logs in again.
        """
        self._tokens.token()

    def login_answer(self) -> dict[str, Any]:
        """What the last login answered about its token (for `coins doctor`): ``expires_in``
        as answered, the life the client uses, and the field style. Never the token."""
        return self._tokens.last_login()

    # -- the API ----------------------------------------------------------------------------

    def create_config(
        self,
        *,
        company_id: str,
        event: str,
        amount: int,
        configuration: str = "DEFAULT",
        source: str | None = None,
        may_exist: bool = False,
    ) -> CoinConfig:
        """Create the configuration of ``event`` for ``company_id``; returns it with its id.

        A create whose answer is lost is sent again only when the server profile says a repeat
        would be refused; the refusal naming a configuration with the values sent confirms it.
        Otherwise `UnconfirmedError`: check EnKash before trying again. `ConflictError` (with
        ``existing_id`` when the server named one) when the pair is already configured by
        someone else or with other values. ``may_exist``: an earlier attempt (a crashed or
        interrupted run) may have created it; it is then re-checked the same careful way.
        """
        payload, problems = validate_config_fields(
            company_id=company_id, event=event, configuration=configuration, amount=amount
        )
        what = f"Could not create {_show(event)} for {_show(company_id)}"
        request = _asked(
            payload,
            problems,
            company_id=company_id,
            event=event,
            configuration=configuration,
            amount=amount,
        )

        def run() -> CoinConfig:
            if problems:
                raise _invalid(what, problems)
            return self._create(payload, what, may_exist=may_exist)

        return self._recorded("create", request, run, source=source)

    def get_config(self, coin_config_id: str, *, source: str | None = None) -> CoinConfig:
        """The configuration with this id (`NotFoundError` when there is none)."""
        what = f"Could not fetch configuration {_show(coin_config_id)}"

        def run() -> CoinConfig:
            return self._get(self._checked_id(coin_config_id, what), what)

        return self._recorded(
            "get",
            {"coinConfigId": coin_config_id},
            run,
            source=source,
            coin_config_id=coin_config_id,
        )

    def update_config(
        self,
        coin_config_id: str,
        *,
        amount: int | None = None,
        configuration: str | None = None,
        company_id: str | None = None,
        event: str | None = None,
        known: CoinConfig | None = None,
        source: str | None = None,
    ) -> CoinConfig:
        """Change some fields of a configuration; returns it as it now stands.

        The documented update answer has no ``companyId``: fields missing from the answer are
        filled from what was sent, then from ``known`` (the configuration as last seen).
        """
        what = f"Could not update configuration {_show(coin_config_id)}"
        payload, problems = validate_config_fields(
            company_id=company_id,
            event=event,
            configuration=configuration,
            amount=amount,
            partial=True,
        )
        request = _asked(
            payload,
            problems,
            company_id=company_id,
            event=event,
            configuration=configuration,
            amount=amount,
        )

        def run() -> CoinConfig:
            config_id = self._checked_id(coin_config_id, what)
            if problems:
                raise _invalid(what, problems)
            if not payload:
                raise ValidationError(
                    f"{what}: nothing to change (give amount, configuration, company_id or event)"
                )
            sent = self._call("PATCH", CONFIG_PATH + quote(config_id, safe=""), what, payload)
            data = self._success_payload(sent.answer, what, empty_is_not_found=False)
            fallback = CoinConfig.from_payload({"coinConfigId": config_id, **payload}).merge(known)
            if not isinstance(data, dict):
                # Success with no configuration in it ("Updated", null): what was sent stands.
                return fallback
            return _config(data).merge(fallback)

        return self._recorded(
            "update",
            {"coinConfigId": coin_config_id, **request},
            run,
            source=source,
            coin_config_id=coin_config_id,
            known_before=known,
        )

    def allocate_coins(
        self,
        *,
        company_id: str,
        event: str,
        user_id: str,
        request_id: str | None = None,
        source: str | None = None,
        duplicate_is_done: bool = False,
        sent_before: bool = False,
    ) -> Allocation:
        """Award ``user_id`` the coins configured for (company, event); at most once per id.

        ``request_id`` is generated when not given and returned in the `Allocation`. An
        allocation whose answer is lost is sent again only when the server profile says a
        repeated requestId is refused; the refusal of our own repeat confirms it
        (``confirmed``). Otherwise `UnconfirmedError`. A duplicate answer to a first attempt
        is `DuplicateRequestError`, unless ``duplicate_is_done`` (the caller knows an earlier
        run of its own made it: the result says ``already_done``). ``sent_before``: an earlier
        attempt of this very call (a crashed run) may have reached the server.
        """
        if request_id is None:
            request_id = new_request_id()
        payload, problems = validate_allocation_fields(
            company_id=company_id, event=event, user_id=user_id, request_id=request_id
        )
        what = (
            f"Could not allocate {_show(event)} coins to user {_show(user_id)} for "
            f"{_show(company_id)} (request {_show(request_id)})"
        )
        request = _asked(
            payload,
            problems,
            company_id=company_id,
            event=event,
            user_id=user_id,
            request_id=request_id,
        )

        def run() -> Allocation:
            if problems:
                raise _invalid(what, problems)
            rid = payload["requestId"]
            done = Allocation(
                company_id=payload["companyId"],
                event=payload["event"],
                user_id=payload["userId"],
                request_id=rid,
            )
            sent = self._call(
                "POST",
                ALLOCATE_PATH,
                what,
                payload,
                write="allocate",
                sent_before=sent_before,
                request_id=rid,
            )
            answer = sent.answer
            if answer.ok:
                data = answer.payload
                message = data if isinstance(data, str) else ("" if data is None else str(data))
                return replace(done, message=message)
            if answer.meaning in (Meaning.DUPLICATE_REQUEST, Meaning.EXISTS):
                server_message = answer.message
                if sent.sent_before:
                    logger.info("Allocation %s: our earlier attempt had reached EnKash", rid)
                    return replace(done, message=server_message, confirmed=True)
                if duplicate_is_done:
                    return replace(done, message=server_message, already_done=True)
                raise DuplicateRequestError(
                    f"{what}: requestId {rid} was used before ({server_message}); nothing "
                    "was allocated this time",
                    http_status=answer.http_status,
                    response_code=answer.code,
                    request_id=rid,
                    body=answer.body,
                )
            raise error_for(answer, what, request_id=rid)

        return self._recorded("allocate", request, run, source=source)

    def get_balance(self, user_id: str) -> int:
        """The user's coin balance (0 for a user never awarded anything)."""
        what = f"Could not read the coin balance of user {_show(user_id)}"
        checked, reason = check_user_id(user_id)
        if reason is not None:
            raise _invalid(what, [FieldProblem("userId", user_id, reason)])
        sent = self._call("GET", BALANCE_PATH, what, params={"userId": checked})
        data = self._success_payload(sent.answer, what, empty_is_not_found=False)
        if isinstance(data, dict):  # {"balance": 106} and the like
            data = next(
                (data[k] for k in ("balance", "coins", "coinBalance", "amount") if k in data),
                None,
            )
        balance = whole_number(data)
        if balance is None:
            raise BadAnswerError(
                f"{what}: the server answered, but its balance {str(data)[:40]!r} is not a "
                "whole number",
                http_status=sent.answer.http_status,
            )
        return balance

    def diagnose(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        write: str | None = None,
    ) -> Answer:
        """One API request and its answer as read, for `toolkit.doctor` (nothing recorded).

        With ``token`` the request is sent once with that bearer token (no login, no renewal,
        no retry); without, it goes the normal way (``write`` = "create"/"allocate" keeps the
        careful rules for writes). Transport failures raise as usual.
        """
        what = f"Could not {method} {path}"
        if token is not None:
            try:
                return self._attempt(method, path, what, json, params, token)
            except _Ambiguous as lost:
                raise lost.error or TransportError(f"{what}: {lost.reason}") from lost
        return self._call(method, path, what, json, params=params, write=write).answer

    # -- internals: create --------------------------------------------------------------------

    def _create(self, payload: dict[str, Any], what: str, *, may_exist: bool) -> CoinConfig:
        """Send a create; resolve a refusal that names an existing configuration."""
        wanted = CoinConfig.from_payload(payload)
        sent = self._call("POST", CREATE_PATH, what, payload, write="create", sent_before=may_exist)
        answer = sent.answer
        if answer.ok:
            data = answer.payload
            config = _config(data) if isinstance(data, dict) else CoinConfig()
            if not config.coin_config_id:
                raise self._unconfirmed(
                    "create",
                    payload,
                    what,
                    "EnKash answered success but named no coinConfigId",
                    answer.http_status,
                )
            return config.merge(wanted)
        if answer.meaning not in (Meaning.EXISTS, Meaning.DUPLICATE_REQUEST):
            raise error_for(answer, what)
        skip = {payload.get("companyId"), payload.get("event")}
        candidates = [c for c in answer.existing_ids if c not in skip]
        for candidate in candidates:
            try:
                existing = self._get(candidate, what).merge(
                    CoinConfig(company_id=wanted.company_id, event=wanted.event)
                )
            except NotFoundError:
                continue
            except EnKashError as exc:
                if sent.sent_before:
                    raise self._unconfirmed(
                        "create",
                        payload,
                        what,
                        f"configuration {candidate} exists now, and it could not be fetched to "
                        f"check whether our earlier attempt made it ({exc})",
                        answer.http_status,
                    ) from exc
                raise ConflictError(
                    f"{what}: configuration {candidate} already exists (it could not be "
                    f"fetched: {exc})",
                    existing_id=candidate,
                    http_status=answer.http_status,
                    response_code=answer.code,
                ) from exc
            if existing.company_id not in (None, wanted.company_id) or existing.event not in (
                None,
                wanted.event,
            ):
                continue  # an id-shaped word of the message, not this pair's configuration
            if sent.sent_before and existing.same_values(wanted):
                logger.info(
                    "Create %s/%s: an earlier attempt had created %s; not duplicated",
                    payload.get("companyId"),
                    payload.get("event"),
                    candidate,
                )
                return existing
            raise ConflictError(
                f"{what}: {answer.message}"
                + (
                    ""
                    if existing.same_values(wanted)
                    else f" (it exists with other values: {existing.configuration}, amount "
                    f"{existing.amount})"
                ),
                existing_id=candidate,
                http_status=answer.http_status,
                response_code=answer.code,
                body=answer.body,
            )
        if sent.sent_before:
            raise self._unconfirmed(
                "create",
                payload,
                what,
                "a configuration of this pair exists now, but EnKash's answer did not name it, "
                "so it cannot be told whether our earlier attempt made it",
                answer.http_status,
            )
        raise ConflictError(
            f"{what}: {answer.message}",
            existing_id=None,
            http_status=answer.http_status,
            response_code=answer.code,
            body=answer.body,
        )

    def _unconfirmed(
        self, action: str, payload: dict[str, Any], what: str, reason: str, status: int | None
    ) -> UnconfirmedError:
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

    # -- internals: transport -----------------------------------------------------------------

    def _get(self, coin_config_id: str, what: str) -> CoinConfig:
        sent = self._call("GET", CONFIG_PATH + quote(coin_config_id, safe=""), what)
        data = self._success_payload(sent.answer, what, empty_is_not_found=True)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]  # a list of the one configuration asked for
        if not isinstance(data, dict):
            raise BadAnswerError(
                f"{what}: the server answered, but not with a configuration",
                http_status=sent.answer.http_status,
            )
        return _config(data).merge(CoinConfig(coin_config_id=coin_config_id))

    def _success_payload(self, answer: Answer, what: str, *, empty_is_not_found: bool) -> Any:
        if not answer.ok:
            raise self._error_of(answer, what)
        said_missing = isinstance(answer.payload, str) and (_words_say_not_found(answer.payload))
        if empty_is_not_found and (answer.payload in (None, "", [], {}) or said_missing):
            # Some servers answer an unknown id with success and no payload.
            raise NotFoundError(
                f"{what}: not found (the server answered with no configuration)",
                http_status=answer.http_status,
                response_code=answer.code,
            )
        return answer.payload

    def _error_of(self, answer: Answer, what: str, request_id: str | None = None) -> EnKashError:
        error = error_for(answer, what, request_id=request_id)
        if isinstance(error, AuthError) and not self._tokens.has_credentials:
            # Only a given token was configured: the server's "get a new one" is not actionable.
            error.message += (
                ". Set a fresh ENKASH_ACCESS_TOKEN, or ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET, "
                "ENKASH_USERNAME and ENKASH_PASSWORD so the toolkit can log in by itself"
            )
        return error

    def _secrets(self) -> tuple[str | None, ...]:
        return (
            self._client_secret,
            self._password,
            *_cookie_secrets(self._cookie),
            *self._tokens.known(),
        )

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        json: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        write: str | None = None,
        sent_before: bool = False,
        request_id: str | None = None,
    ) -> _Sent:
        """One API call until it has an answer that means something.

        - throttled answers are waited out through the pacer, not counted as retries;
        - an answer saying the token is expired or invalid: a new token, sent again (the
          request was not processed);
        - never sent (connect error: urllib3 repeats those; a CDN block): sent again;
        - sent but no usable answer (timeout, dropped, 5xx, unreadable): GET/PATCH are sent
          again; a write (``write`` = "create"/"allocate") only when the server profile says a
          repeat would be refused, else `UnconfirmedError`.

        Returns the answer (success or a definite refusal) and whether an earlier attempt may
        have been processed.
        """
        if sent_before and write is not None and not self._resend_safe(write):
            raise self._unconfirmed(
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
            if not self.pacer.wait_turn():
                raise RateLimitError(
                    f"{what}: stopped waiting for the server's rate limit (the run was "
                    "cancelled or reached its deadline); nothing was sent",
                )
            token = self._tokens.token()
            outcome: _Ambiguous | None
            try:
                answer = self._attempt(method, path, what, json, params, token)
            except _Ambiguous as lost:
                outcome = lost
            else:
                outcome = None
            if outcome is None:
                throttled = answer.meaning is Meaning.THROTTLED
                self.pacer.on_answer(throttled=throttled, retry_after=answer.retry_after)
                if throttled:
                    throttles += 1
                    asked = answer.retry_after
                    throttled_for += asked if asked else self._backoff.delay(throttles)
                    if throttled_for > self.throttle_budget_s:
                        raise self._error_of(answer, what, request_id)
                    continue
                if answer.meaning is Meaning.TOKEN_INVALID and renewals < _MAX_RENEWALS:
                    renewals += 1
                    if self._tokens.renew_after_rejection(token):
                        continue
                if answer.meaning is Meaning.BLOCKED and blocked < self.max_retries:
                    blocked += 1  # the API never saw it: safe to send again, after a pause
                    self._backoff.sleep(self._backoff.delay(blocked + 1))
                    continue
                if answer.meaning is Meaning.TOKEN_INVALID:
                    raise self._error_of(answer, what, request_id)
                if answer.meaning not in (Meaning.SERVER_FAILURE, Meaning.UNREADABLE):
                    return _Sent(answer, sent_before)
                outcome = _Ambiguous(
                    f"the server answered HTTP {answer.http_status}"
                    + (f" ({answer.message})" if answer.message else ""),
                    self._error_of(answer, what, request_id),
                )
            # Sent, and no usable answer: the server may have processed it.
            if write is not None and not self._resend_safe(write):
                raise self._unconfirmed(
                    write,
                    json or {},
                    what,
                    outcome.reason,
                    getattr(outcome.error, "http_status", None),
                ) from (outcome.error or outcome.__cause__)
            if retries >= self.max_retries:
                if write is not None:
                    raise self._unconfirmed(
                        write,
                        json or {},
                        what,
                        f"still no usable answer after {retries + 1} attempts ({outcome.reason})",
                        getattr(outcome.error, "http_status", None),
                    ) from (outcome.error or outcome.__cause__)
                if outcome.error is not None:
                    raise outcome.error
                raise (
                    outcome.__cause__
                    if isinstance(outcome.__cause__, EnKashError)
                    else TransportError(f"{what}: {outcome.reason}")
                )
            retries += 1
            sent_before = sent_before or write is not None
            delay = self._backoff.delay(retries)
            logger.info(
                "%s %s: %s; sending again in %.2f s (retry %d of %d)",
                method,
                path,
                outcome.reason,
                delay,
                retries,
                self.max_retries,
            )
            self._backoff.sleep(delay)

    def _resend_safe(self, write: str) -> bool:
        profile = self.profile
        return profile.resend_create if write == "create" else profile.resend_allocate

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
            response = self._session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                auth=BearerAuth(token),
                timeout=self.timeout_s,
            )
            answer = read(response, secrets=self._secrets())
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
        what = f"Could not log in to EnKash as {self.username}"
        blocked = 0
        while True:
            try:
                response = self._session.post(
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
            self._backoff.sleep(self._backoff.delay(blocked + 1))

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

    def _error(self, response: requests.Response, what: str, request_id: str | None) -> EnKashError:
        """The error an unsuccessful response stands for (secrets scrubbed)."""
        return self._error_of(read(response, secrets=self._secrets()), what, request_id)

    @staticmethod
    def _checked_id(coin_config_id: Any, what: str) -> str:
        text = str(coin_config_id).strip() if isinstance(coin_config_id, str | int) else ""
        if isinstance(coin_config_id, bool) or not _COIN_CONFIG_ID_RE.match(text):
            reason = "is missing" if not text else "must be an id such as WCC817428"
            raise _invalid(what, [FieldProblem("coinConfigId", coin_config_id, reason)])
        return text

    def _recorded(
        self,
        action: str,
        request: dict[str, Any],
        run: Callable[[], Any],
        *,
        source: str | None,
        coin_config_id: str | None = None,
        known_before: CoinConfig | None = None,
    ) -> Any:
        try:
            result = run()
        except EnKashError as exc:
            self._record(action, request, None, exc, source, coin_config_id, known_before)
            raise
        config_id = getattr(result, "coin_config_id", None) or coin_config_id
        self._record(action, request, result, None, source, config_id, known_before)
        return result

    def _record(
        self,
        action: str,
        request: dict[str, Any],
        result: CoinConfig | Allocation | None,
        error: EnKashError | None,
        source: str | None,
        coin_config_id: str | None,
        known_before: CoinConfig | None,
    ) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        call = ApiCall(
            action=action,
            server_key=self.server_key,
            coin_config_id=coin_config_id,
            request=dict(request),
            result=result,
            error=error,
            source=source or self.source,
            actor=self.actor,
            known_before=known_before,
        )
        try:
            recorder.record_call(call)
        except Exception:
            logger.exception("The recorder failed to record a %s call; the call stands", action)


def _words_say_not_found(text: str) -> bool:
    return meaning_of_words(text) is Meaning.NOT_FOUND


def _config(data: dict[str, Any]) -> CoinConfig:
    """A configuration from an answer's payload, types normalised, unknown fields set aside."""
    known, extra = config_payload(data)
    if extra:
        logger.debug(
            "Configuration answer carried fields the toolkit does not use: %s", list(extra)
        )
    return CoinConfig.from_payload(known)


_API_NAMES = {"company_id": "companyId", "user_id": "userId", "request_id": "requestId"}


def _asked(payload: dict[str, Any], problems: list[FieldProblem], **given: Any) -> dict[str, Any]:
    """What a recorder is told was asked: the checked body, or when the arguments were refused
    before sending, the arguments as given (API names, simple values, None left out)."""
    if not problems:
        return payload
    out = {_API_NAMES.get(k, k): v for k, v in given.items() if v is not None}
    return {k: (v if isinstance(v, (int, float, str)) else repr(v)) for k, v in out.items()}


def _cookie_secrets(cookie: str | None) -> tuple[str, ...]:
    """The cookie header and each cookie's value: a server may echo either on its own."""
    if not cookie:
        return ()
    values = (part.partition("=")[2].strip() for part in cookie.split(";"))
    return (cookie, *(v for v in values if v))
