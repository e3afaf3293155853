"""`CoinsClient`: the EnKash coins API for analysts' code — what is asked, what it answers.

The client is split in two. This module is what is asked and what the answer makes of it;
`toolkit.transport` is how a request travels (one thread-safe session, retries and backoff,
pacing, token renewal, and whether a request that may have reached the server is sent
again). A client owns one `Transport`, and every API method goes through its one call loop,
`Transport.call`. Here:

- arguments checked with the contract's rules before anything is sent (`ValidationError`);
- every answer read by `toolkit.answers` into one meaning, whatever dialect the server speaks
  (envelope codes 0/1/409/412/…, velocity codes, Spring error bodies, OAuth errors, HTML pages),
  and turned into a `CoinConfig`, an `Allocation`, a balance or an `EnKashError`;
- a create refused as existing resolved against the configuration the refusal names; a
  duplicate answer to our own repeat of a lost create or allocation confirms the write;
- a recorder hook (`Recorder.record_call(ApiCall)`) after every create, get, update, allocate.

What the transport adds to each call: tokens fetched lazily and renewed ahead of expiry and
whenever an answer rejects them (`toolkit.auth`; a refused login never retried); requests that
never reached the server sent again, GET and PATCH also after no answer and 5xx, with
exponential backoff and jitter, bounded; throttling (429, 503 + Retry-After, EnKash velocity
codes) waited out through a *pacer* without spending the call's retry budget (`paced` gives a
run one pacer for all its workers); creates and allocations whose answer was lost sent again
only where the server profile (`toolkit.profiles`, learnt by `coins doctor`) says a repeat is
refused — everywhere else `UnconfirmedError`, never a guess.

Secrets (client secret, password, tokens, cookie) never appear in reprs, logs or messages.
"""

from __future__ import annotations

import copy
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import requests

from toolkit.answers import (
    Answer,
    Meaning,
    config_payload,
    error_for,
    error_from_response,
    meaning_of_words,
    whole_number,
)
from toolkit.errors import (
    BadAnswerError,
    ConflictError,
    DuplicateRequestError,
    EnKashError,
    NotFoundError,
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
from toolkit.pacing import Pacer
from toolkit.profiles import CAUTIOUS, ServerProfile, load_profile
from toolkit.session import Backoff
from toolkit.settings import Settings, SettingsError
from toolkit.transport import (
    THROTTLE_BUDGET_S,
    PausePacer,
    Sent,
    Transport,
    unconfirmed_error,
)

__all__ = ["ApiCall", "CoinsClient", "Pacer", "Recorder", "error_from_response"]

logger = logging.getLogger(__name__)

CREATE_PATH = "/api/v0/enkash-coins/create-coins-config"
CONFIG_PATH = "/api/v0/enkash-coins/"
ALLOCATE_PATH = "/api/v0/enkash-coins/allocate-coin"
BALANCE_PATH = "/api/v0/coins/balance"

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


def _show(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return text or "(missing)"


def _invalid(what: str, problems: list[FieldProblem]) -> ValidationError:
    detail = "; ".join(str(p) for p in problems)
    return ValidationError(f"{what}: {detail}", problems=problems)


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
        # The client's own (a copy may change them); the transport is shared by copies.
        self.throttle_budget_s = float(throttle_budget_s)
        self.profile = profile if profile is not None else CAUTIOUS
        backoff = Backoff(
            factor=float(backoff_factor),
            maximum=float(backoff_max),
            jitter=float(backoff_factor if backoff_jitter is None else backoff_jitter),
            sleep=sleep,
            random=jitter_random,
        )
        self.pacer: Pacer = pacer if pacer is not None else PausePacer(backoff)
        self._transport = Transport(
            base_url=self.base_url,
            timeout_s=float(timeout_s),
            max_retries=int(max_retries),
            backoff=backoff,
            pool_maxsize=pool_maxsize,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            access_token=access_token,
            cookie=cookie,
        )
        self._session = self._transport.session
        self._tokens = self._transport.tokens

    @property
    def timeout_s(self) -> float:
        """Seconds one request waits for its answer."""
        return self._transport.timeout_s

    @property
    def max_retries(self) -> int:
        """How many times one call is sent again after no usable answer."""
        return self._transport.max_retries

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
        self._transport.close()

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
        payload, problems, request = _checked_config(
            company_id=company_id, event=event, configuration=configuration, amount=amount
        )
        what = f"Could not create {_show(event)} for {_show(company_id)}"

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
        payload, problems, request = _checked_config(
            company_id=company_id,
            event=event,
            configuration=configuration,
            amount=amount,
            partial=True,
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
            send = self._transport.send_once
            return send(method, path, what, token=token, json=json, params=params)
        return self._call(method, path, what, json, params=params, write=write).answer

    # -- internals: create --------------------------------------------------------------------

    def _create(self, payload: dict[str, Any], what: str, *, may_exist: bool) -> CoinConfig:
        """Send a create; resolve a refusal that names an existing configuration."""
        wanted = CoinConfig.from_payload(payload)
        sent = self._call("POST", CREATE_PATH, what, payload, write="create", sent_before=may_exist)
        answer = sent.answer

        def unconfirmed(reason: str) -> UnconfirmedError:
            return unconfirmed_error("create", payload, what, reason, answer.http_status)

        if answer.ok:
            data = answer.payload
            config = _config(data) if isinstance(data, dict) else CoinConfig()
            if not config.coin_config_id:
                raise unconfirmed("EnKash answered success but named no coinConfigId")
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
                    raise unconfirmed(
                        f"configuration {candidate} exists now, and it could not be fetched to "
                        f"check whether our earlier attempt made it ({exc})"
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
            raise unconfirmed(
                "a configuration of this pair exists now, but EnKash's answer did not name it, "
                "so it cannot be told whether our earlier attempt made it"
            )
        raise ConflictError(
            f"{what}: {answer.message}",
            existing_id=None,
            http_status=answer.http_status,
            response_code=answer.code,
            body=answer.body,
        )

    # -- internals: answers into results; the one way to the transport -------------------------

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
        return self._transport.error_of(answer, what, request_id)

    def _error(self, response: requests.Response, what: str, request_id: str | None) -> EnKashError:
        """The error an unsuccessful response stands for (secrets scrubbed)."""
        return self._error_of(self._transport.read(response), what, request_id)

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
    ) -> Sent:
        """`Transport.call` with this client's pacer, server profile and throttle budget."""
        return self._transport.call(
            method,
            path,
            what,
            json,
            pacer=self.pacer,
            profile=self.profile,
            throttle_budget_s=self.throttle_budget_s,
            params=params,
            write=write,
            sent_before=sent_before,
            request_id=request_id,
        )

    @staticmethod
    def _checked_id(coin_config_id: Any, what: str) -> str:
        text = str(coin_config_id).strip() if isinstance(coin_config_id, str | int) else ""
        if isinstance(coin_config_id, bool) or not _COIN_CONFIG_ID_RE.match(text):
            reason = "is missing" if not text else "must be an id such as WCC817428"
            raise _invalid(what, [FieldProblem("coinConfigId", coin_config_id, reason)])
        return text

    # -- internals: recording ----------------------------------------------------------------

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


def _checked_config(
    *, company_id: Any, event: Any, configuration: Any, amount: Any, partial: bool = False
) -> tuple[dict[str, Any], list[FieldProblem], dict[str, Any]]:
    """A create's (or, ``partial``, an update's) body checked by `validate_config_fields`:
    the payload, its problems and what a recorder is told was asked."""
    given = {
        "company_id": company_id,
        "event": event,
        "configuration": configuration,
        "amount": amount,
    }
    payload, problems = validate_config_fields(**given, partial=partial)
    return payload, problems, _asked(payload, problems, **given)


def _asked(payload: dict[str, Any], problems: list[FieldProblem], **given: Any) -> dict[str, Any]:
    """What a recorder is told was asked: the checked body, or when the arguments were refused
    before sending, the arguments as given (API names, simple values, None left out)."""
    if not problems:
        return payload
    out = {_API_NAMES.get(k, k): v for k, v in given.items() if v is not None}
    return {k: (v if isinstance(v, (int, float, str)) else repr(v)) for k, v in out.items()}
