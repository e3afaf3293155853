"""`CoinsClient`: the EnKash coins API over one thread-safe `requests.Session`.

What it adds to plain HTTP calls:

- arguments checked with the contract's rules before anything is sent (`ValidationError`);
- tokens fetched lazily and renewed (`toolkit.auth`); a refused login is never retried;
- retries through urllib3 `Retry` for calls that are safe to repeat: GET, PATCH and allocate
  (idempotent by ``requestId``), on connection errors, read timeouts, 429 (Retry-After honoured)
  and 500/502/503/504, with exponential backoff and jitter, bounded;
- create, which has no idempotency key, is made safe to retry instead: after a failure where
  the request may have been processed it is sent again, and a conflict whose existing
  configuration matches what was sent counts as done. A timeout never yields a duplicate nor
  a lost configuration;
- every answer mapped to one `EnKashError` subclass by one function (`error_from_response`);
- a recorder hook (`Recorder.record_call(ApiCall)`) after every create, get, update, allocate.

Secrets (client secret, password, tokens, cookie) never appear in reprs, logs or messages.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import time
import uuid
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

from toolkit.auth import BearerAuth, TokenManager
from toolkit.errors import (
    AuthError,
    ConflictError,
    EnKashError,
    LoginUnavailableError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
    redact,
)
from toolkit.models import (
    Allocation,
    CoinConfig,
    FieldProblem,
    ResponseCode,
    check_user_id,
    validate_allocation_fields,
    validate_config_fields,
)
from toolkit.settings import Settings, sandbox_server_key

__all__ = ["ApiCall", "CoinsClient", "Recorder", "error_from_response"]

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"
CREATE_PATH = "/api/v0/enkash-coins/create-coins-config"
CONFIG_PATH = "/api/v0/enkash-coins/"
ALLOCATE_PATH = "/api/v0/enkash-coins/allocate-coin"
BALANCE_PATH = "/api/v0/coins/balance"

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A server asking us to wait longer than this is answered with a RateLimitError, not a hang.
RETRY_AFTER_CAP_S = 60.0
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
    policy: _Backoff, max_retries: int, *, methods: Iterable[str], reads: bool, statuses: bool
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
        retry_after_max=RETRY_AFTER_CAP_S,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    retry.backoff_policy = policy
    return retry


# -- answers to errors --------------------------------------------------------------------

LOGIN_RETRIES = 2
# 401s answered with a new token within one call (see `CoinsClient._send`).
_MAX_RENEWALS = 3

_CLASS_BY_STATUS: dict[int, type[EnKashError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _code(value: Any) -> int | str | None:
    if value is None or isinstance(value, bool):
        return value if value is None else str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw.strip()))
    except ValueError:
        return None


def error_from_response(
    response: requests.Response,
    what: str,
    *,
    request_id: str | None = None,
    secrets: Iterable[str | None] = (),
) -> EnKashError:
    """The `EnKashError` for a refused answer: by HTTP status, else by ``response_code``.

    ``what`` starts the message ("Could not create X for Y"); the server's own message
    follows. A non-2xx answer maps by status even when its body is not JSON; an HTTP 200 with
    a non-zero ``response_code`` maps by the code (4090 → 409 → `ConflictError`, …).
    """
    status = response.status_code
    body = _json(response)
    envelope = body if isinstance(body, dict) else {}
    code = _code(envelope.get("response_code"))
    server_message = next(
        (
            str(envelope[key])
            for key in ("response_message", "message", "error_description", "error")
            if envelope.get(key)
        ),
        "",
    )
    if not server_message:
        reason = f" {response.reason}" if response.reason else ""
        server_message = f"the server answered HTTP {status}{reason}"
    secrets = tuple(secrets)
    message = redact(f"{what}: {server_message}", secrets)
    body = redact(body, secrets)

    meaning = status if not 200 <= status < 300 else None
    if meaning is None and isinstance(code, int) and 1000 <= code < 6000:
        meaning = code // 10  # the sandbox's codes are the HTTP status times ten, plus a digit
    if meaning is not None and meaning >= 500:
        cls: type[EnKashError] = ServerError
    else:
        cls = _CLASS_BY_STATUS.get(meaning or 0, EnKashError)
    kwargs: dict[str, Any] = {
        "http_status": status,
        "response_code": code,
        "request_id": request_id or response.headers.get("X-Request-Id"),
        "body": body,
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=_retry_after(response), **kwargs)
    return cls(message, **kwargs)


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


def _retried(response: requests.Response) -> bool:
    """True when this request may have reached the server before this answer: urllib3 sent it
    more than once, or `CoinsClient._send` re-sent it after such a retried attempt met a 401."""
    if getattr(response, "_coins_sent_before", False):
        return True
    retries = getattr(response.raw, "retries", None)
    return bool(getattr(retries, "history", ()))


def _show(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return text or "(missing)"


def _invalid(what: str, problems: list[FieldProblem]) -> ValidationError:
    detail = "; ".join(str(p) for p in problems)
    return ValidationError(f"{what}: {detail}", problems=problems)


# -- the client ---------------------------------------------------------------------------


class CoinsClient:
    """The EnKash coins API for analysts' code: safe to share between threads.

    Use ``CoinsClient.from_env()`` (settings from the environment / `.env`; no base URL means
    the embedded sandbox) or the keyword-only constructor. ``sleep`` and ``jitter_random``
    exist so tests can pin the backoff.
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
        session.headers["Accept"] = "application/json"
        if self._cookie:
            session.headers["Cookie"] = self._cookie

        def adapter(retry: Retry) -> HTTPAdapter:
            return HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)

        policy, budget = self._backoff, self.max_retries
        # requests picks the longest mounted prefix, so each path gets its own policy.
        session.mount(
            self.base_url,
            adapter(_retry(policy, budget, methods=("GET", "PATCH"), reads=True, statuses=True)),
        )
        session.mount(
            self.base_url + ALLOCATE_PATH,
            adapter(_retry(policy, budget, methods=("POST",), reads=True, statuses=True)),
        )
        # Create has no idempotency key: the adapter repeats only requests never sent; the
        # ambiguous cases are resolved by `_create` itself.
        session.mount(
            self.base_url + CREATE_PATH,
            adapter(_retry(policy, budget, methods=("POST",), reads=False, statuses=False)),
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
    def from_settings(
        cls, settings: Settings, *, record: bool = True, **overrides: Any
    ) -> CoinsClient:
        """A client for ``settings``; with no base URL, for the embedded sandbox in its home.

        With ``record`` (the default, unless a ``recorder`` is given) the client records into
        the registry under ``COINS_HOME``, as every surface does: what it creates, fetches and
        changes is then in ``Registry().to_frame()`` and the audit log.
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
        if not overrides.get("base_url", settings.base_url):
            from toolkit.sandbox import embedded  # the server only when it is needed

            handle = embedded(settings.home)
            db_path = getattr(handle, "db_path", None) or settings.sandbox_db_path
            kwargs.update(handle.credentials)
            kwargs.update(
                base_url=handle.url,
                access_token=None,
                cookie=None,
                server_key=sandbox_server_key(db_path),
            )
            overrides = {k: v for k, v in overrides.items() if k != "base_url"}
        kwargs.update(overrides)
        client = cls(**kwargs)
        if record and client.recorder is None:
            # The state layer sits above the transport: imported here, at construction only.
            from toolkit.registry import Registry

            Registry(settings.registry_path, client=client, actor=settings.actor)
        return client

    @classmethod
    def from_env(cls, *, record: bool = True, **overrides: Any) -> CoinsClient:
        """A client from the environment and `.env` (see `toolkit.settings`), recording into
        the registry under ``COINS_HOME`` unless ``record=False``."""
        return cls.from_settings(Settings.from_env(), record=record, **overrides)

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

    # -- the API ----------------------------------------------------------------------------

    def create_config(
        self,
        *,
        company_id: str,
        event: str,
        amount: int,
        configuration: str = "DEFAULT",
        source: str | None = None,
    ) -> CoinConfig:
        """Create the configuration of ``event`` for ``company_id``; returns it with its id.

        Safe to retry: a configuration created by an attempt whose answer was lost is found
        and returned, never duplicated. `ConflictError` (with ``existing_id``) when the pair is
        already configured, by someone else or with other values.
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
            return self._create(payload, what)

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
            response = self._send("PATCH", CONFIG_PATH + quote(config_id, safe=""), what, payload)
            answer = self._config_from(self._payload(response, what), what)
            fallback = CoinConfig.from_payload({"coinConfigId": config_id, **payload}).merge(known)
            return answer.merge(fallback)

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
    ) -> Allocation:
        """Award ``user_id`` the coins configured for (company, event); at most once per id.

        ``request_id`` is generated when not given and returned in the `Allocation`. When a
        retry of ours is answered "duplicate request id", the first attempt had succeeded:
        the result says ``already_done``. A duplicate on a first attempt is a `ConflictError`
        unless ``duplicate_is_done`` (for resumed bulk runs that reuse their request ids).
        """
        if request_id is None:
            request_id = "COIN_REQ" + uuid.uuid4().hex
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
            response = self._send("POST", ALLOCATE_PATH, what, payload)
            done = Allocation(
                company_id=payload["companyId"],
                event=payload["event"],
                user_id=payload["userId"],
                request_id=rid,
            )
            try:
                data = self._payload(response, what, request_id=rid)
            except ConflictError as exc:
                if _is_duplicate(exc, rid) and (duplicate_is_done or _retried(response)):
                    logger.info("Allocation %s had already been made; not repeated", rid)
                    server_message = exc.message.removeprefix(f"{what}: ")
                    return replace(done, message=server_message, already_done=True)
                raise
            message = data if isinstance(data, str) else ("" if data is None else str(data))
            return replace(done, message=message)

        return self._recorded("allocate", request, run, source=source)

    def get_balance(self, user_id: str) -> int:
        """The user's coin balance (0 for a user never awarded anything)."""
        what = f"Could not read the coin balance of user {_show(user_id)}"
        checked, reason = check_user_id(user_id)
        if reason is not None:
            raise _invalid(what, [FieldProblem("userId", user_id, reason)])
        response = self._send("GET", BALANCE_PATH, what, params={"userId": checked})
        data = self._payload(response, what)
        if isinstance(data, bool):
            data = None
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, str) and data.strip().isdigit():
            data = int(data)
        if not isinstance(data, int):
            raise TransportError(
                f"{what}: the answer's payload was not a whole number", http_status=200
            )
        return data

    # -- internals: create --------------------------------------------------------------------

    def _create(self, payload: dict[str, Any], what: str) -> CoinConfig:
        """Send a create until it has a definite outcome, within the retry budget.

        A 409 after an attempt that may have been processed (no answer, dropped connection,
        5xx, unreadable answer) is our own earlier attempt when the existing configuration has
        the values sent: that counts as done.
        """
        retries = 0
        ambiguous = False
        while True:
            try:
                response = self._send("POST", CREATE_PATH, what, payload)
                config = self._config_from(self._payload(response, what), what)
                if not config.coin_config_id:
                    raise TransportError(f"{what}: the answer had no coinConfigId", http_status=200)
                return config.merge(CoinConfig.from_payload(payload))
            except ConflictError as exc:
                if not ambiguous:
                    raise
                return self._resolve_create_conflict(exc, payload, what)
            except LoginUnavailableError:
                raise  # the create was not sent; the login already spent its own retries
            except (TransportError, ServerError, RateLimitError) as exc:
                if retries >= self.max_retries:
                    raise
                retries += 1
                if isinstance(exc, RateLimitError):
                    delay = min(exc.retry_after or self._backoff.delay(retries), RETRY_AFTER_CAP_S)
                else:
                    delay = self._backoff.delay(retries)
                    if not (isinstance(exc, TransportError) and _never_sent(exc.__cause__)):
                        ambiguous = True
                logger.info(
                    "Create %s/%s: %s; sending again in %.2f s (retry %d of %d)",
                    payload.get("companyId"),
                    payload.get("event"),
                    type(exc).__name__,
                    delay,
                    retries,
                    self.max_retries,
                )
                self._backoff.sleep(delay)

    def _resolve_create_conflict(
        self, conflict: ConflictError, payload: dict[str, Any], what: str
    ) -> CoinConfig:
        existing_id = conflict.existing_id
        if not existing_id:
            raise conflict
        try:
            existing = self._get(existing_id, what)
        except EnKashError as exc:
            raise ConflictError(
                f"{what}: configuration {existing_id} already exists, and it could not be "
                f"fetched to check whether an earlier attempt of this request created it ({exc})",
                existing_id=existing_id,
                http_status=conflict.http_status,
                response_code=conflict.response_code,
            ) from exc
        if existing.same_values(CoinConfig.from_payload(payload)):
            logger.info(
                "Create %s/%s: an earlier attempt had created %s; not duplicated",
                payload.get("companyId"),
                payload.get("event"),
                existing_id,
            )
            return existing
        raise ConflictError(
            f"{what}: configuration {existing_id} already exists with other values "
            f"({existing.configuration}, amount {existing.amount})",
            existing_id=existing_id,
            http_status=conflict.http_status,
            response_code=conflict.response_code,
            body=conflict.body,
        )

    # -- internals: transport -----------------------------------------------------------------

    def _get(self, coin_config_id: str, what: str) -> CoinConfig:
        response = self._send("GET", CONFIG_PATH + quote(coin_config_id, safe=""), what)
        config = self._config_from(self._payload(response, what), what)
        return config.merge(CoinConfig(coin_config_id=coin_config_id))

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        json: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> requests.Response:
        """One call with a token; on a 401 the token is renewed and the call sent again.

        Once per call, and again only when the refused attempt came after retries: their
        backoff can outlive a short token, so a fresh one may be refused as expired only because
        of the wait. A server that refuses fresh tokens at once gets one renewal, not a loop.
        """
        url = self.base_url + path
        renewals = 0
        sent_before = False
        while True:
            token = self._tokens.token()
            started = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    auth=BearerAuth(token),
                    timeout=self.timeout_s,
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                logger.debug("%s %s failed: %s", method, path, type(exc).__name__)
                raise self._transport_error(exc, what) from exc
            logger.debug(
                "%s %s -> HTTP %s in %.0f ms",
                method,
                path,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            if (
                response.status_code == 401
                and renewals < _MAX_RENEWALS
                and (renewals == 0 or _retried(response))
            ):
                renewals += 1
                # An attempt before the 401 may have been processed (a timeout after commit):
                # remember it so allocate reads a "duplicate requestId" as its own earlier try.
                sent_before = sent_before or _retried(response)
                if self._tokens.renew_after_rejection(token):
                    continue
            if sent_before:
                response._coins_sent_before = True  # type: ignore[attr-defined]
            return response

    def _send_login(self, form: dict[str, str], basic: tuple[str, str]) -> requests.Response:
        what = f"Could not log in to EnKash as {self.username}"
        try:
            return self._session.post(
                self.base_url + TOKEN_PATH,
                data=form,
                auth=requests.auth.HTTPBasicAuth(*basic),
                timeout=self.timeout_s,
            )
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise LoginUnavailableError(self._transport_error(exc, what).message) from exc

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

    def _payload(
        self, response: requests.Response, what: str, *, request_id: str | None = None
    ) -> Any:
        """The envelope's payload of a successful answer; otherwise the mapped error."""
        status = response.status_code
        if not 200 <= status < 300:
            raise self._error(response, what, request_id)
        body = _json(response)
        if not isinstance(body, dict) or "response_code" not in body:
            kind = "not JSON" if body is None else "not in EnKash's envelope"
            raise TransportError(
                f"{what}: the answer was {kind} (HTTP {status})",
                http_status=status,
                request_id=request_id,
            )
        if _code(body.get("response_code")) != ResponseCode.SUCCESS:
            raise self._error(response, what, request_id)
        return body.get("payload")

    def _error(self, response: requests.Response, what: str, request_id: str | None) -> EnKashError:
        error = error_from_response(
            response,
            what,
            request_id=request_id,
            secrets=(
                self._client_secret,
                self._password,
                *_cookie_secrets(self._cookie),
                *self._tokens.known(),
            ),
        )
        if isinstance(error, AuthError) and not self._tokens.has_credentials:
            # Only a given token was configured: the server's "get a new one" is not actionable.
            error.message += (
                ". Set a fresh ENKASH_ACCESS_TOKEN, or ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET, "
                "ENKASH_USERNAME and ENKASH_PASSWORD so the toolkit can log in by itself"
            )
        return error

    @staticmethod
    def _config_from(data: Any, what: str) -> CoinConfig:
        if not isinstance(data, dict):
            raise TransportError(f"{what}: the answer did not contain a configuration")
        return CoinConfig.from_payload(data)

    @staticmethod
    def _checked_id(coin_config_id: Any, what: str) -> str:
        text = coin_config_id.strip() if isinstance(coin_config_id, str) else ""
        if not _COIN_CONFIG_ID_RE.match(text):
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


def _is_duplicate(exc: ConflictError, request_id: str) -> bool:
    """A "this requestId was used before" answer (not a configuration conflict)."""
    if exc.response_code == ResponseCode.DUPLICATE_REQUEST:
        return True
    body = exc.body if isinstance(exc.body, dict) else {}
    return request_id in str(body.get("response_message") or "")
