"""Every dialect answers the documented way, over real HTTP; faults speak the dialect too.

One sandbox per dialect for the module (reset before each test), raw ``requests`` calls, no
client code of ours in between. The exact answers are those of docs/api.md.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from toolkit.models import ResponseCode
from toolkit.sandbox import DEFAULT_DIALECT, DIALECTS, SandboxHandle, start_sandbox

CREATE = "/api/v0/enkash-coins/create-coins-config"
ALLOCATE = "/api/v0/enkash-coins/allocate-coin"
BALANCE = "/api/v0/coins/balance"
SPRING_KEYS = {"timestamp", "status", "error", "message", "path"}
ENVELOPE_KEYS = {"payload", "response_code", "response_message"}


def one(coin_config_id: Any) -> str:
    return f"/api/v0/enkash-coins/{coin_config_id}"


class Api:
    """Raw HTTP against one sandbox: relative paths, a bearer token read in any token style."""

    def __init__(self, handle: SandboxHandle) -> None:
        self.handle = handle
        self.session = requests.Session()
        self.token = ""
        self.refresh = ""

    def token_answer(self, *, password: str | None = None, secret: str | None = None, **form):
        creds = self.handle.credentials
        data = {
            "username": creds["username"],
            "password": creds["password"] if password is None else password,
            "grant_type": "password",
            "clientId": creds["client_id"],
        } | form
        return requests.post(
            self.handle.url + "/oauth/token",
            auth=(creds["client_id"], creds["client_secret"] if secret is None else secret),
            data=data,
            timeout=10,
        )

    def login(self) -> str:
        answer = self.token_answer()
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.token = body.get("access_token") or body["accessToken"]
        self.refresh = body.get("refresh_token") or body["refreshToken"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.handle.url + path, **kwargs)

    def create(
        self, company="CEKEKCARDS", event="MEAL_CARD_PAYMENT", amount: Any = 6, timeout=10.0
    ) -> requests.Response:
        body = {"configuration": "DEFAULT", "companyId": company, "event": event}
        return self.call("POST", CREATE, json=body | {"amount": amount}, timeout=timeout)

    def allocate(self, request_id: str, user="EKQZVMQK", company="CEKEKCARDS", event=None):
        body = {
            "companyId": company,
            "event": event or "MEAL_CARD_PAYMENT",
            "requestId": request_id,
            "userId": user,
        }
        return self.call("POST", ALLOCATE, json=body)

    def balance(self, user="EKQZVMQK") -> requests.Response:
        return self.call("GET", BALANCE, params={"userId": user})


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SandboxHandle]]:
    started: dict[str, SandboxHandle] = {}
    try:
        for name in DIALECTS:
            path = tmp_path_factory.mktemp(f"dialect-{name}") / "sandbox.sqlite3"
            started[name] = start_sandbox(path, dialect=name)
        yield started
    finally:
        for handle in started.values():
            handle.stop()


def _fresh(sandboxes: dict[str, SandboxHandle], name: str) -> Api:
    handle = sandboxes[name]
    handle.reset()
    handle.set_rate_limit(None)
    handle.clear_stats()
    api = Api(handle)
    api.login()
    return api


@pytest.fixture
def enkash(sandboxes: dict[str, SandboxHandle]) -> Iterator[Api]:
    api = _fresh(sandboxes, "enkash")
    yield api
    api.handle.clear_faults()


@pytest.fixture
def spring(sandboxes: dict[str, SandboxHandle]) -> Iterator[Api]:
    api = _fresh(sandboxes, "spring")
    yield api
    api.handle.clear_faults()


@pytest.fixture
def lenient(sandboxes: dict[str, SandboxHandle]) -> Iterator[Api]:
    api = _fresh(sandboxes, "lenient")
    yield api
    api.handle.clear_faults()


@pytest.fixture
def cdn(sandboxes: dict[str, SandboxHandle]) -> Iterator[Api]:
    api = _fresh(sandboxes, "cdn")
    yield api
    api.handle.clear_faults()


@pytest.fixture(params=list(DIALECTS))
def any_dialect(request: pytest.FixtureRequest, sandboxes: dict[str, SandboxHandle]):
    api = _fresh(sandboxes, request.param)
    yield api
    api.handle.clear_faults()


def envelope(answer: requests.Response, status: int, code: int, message: str | None = None):
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["response_code"] == code, body
    if message is not None:
        assert body["response_message"] == message, body
    return body


def spring_error(answer: requests.Response, status: int, *words: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == SPRING_KEYS, body
    assert body["status"] == status
    for word in words:
        assert word in body["message"], body
    return body


def configs(handle: SandboxHandle) -> list[dict[str, Any]]:
    return requests.get(handle.url + "/_sandbox/configs", timeout=10).json()["payload"]


def assert_token_refused(dialect: str, answer: requests.Response, token: str) -> None:
    """The dialect's answer to an expired (or unknown) bearer token; never the whole token."""
    assert token not in answer.text
    if dialect == "project":
        envelope(answer, 401, ResponseCode.UNAUTHORIZED)
    elif dialect in ("enkash", "cdn"):
        assert answer.status_code == 401
        assert answer.json() == {
            "error": "invalid_token",
            "error_description": f"Access token expired: {token[:8]}…",
        }
    elif dialect == "spring":
        body = spring_error(answer, 401)
        assert body["error"] == "Unauthorized"
        assert body["message"] == "Invalid or expired token"
    else:
        assert dialect == "lenient"
        assert answer.status_code == 200
        assert answer.json() == {
            "payload": None,
            "response_code": 401,
            "response_message": "Token expired or invalid",
        }


# ---- the default ---------------------------------------------------------------------------


def test_the_default_dialect_is_the_constant_and_names_the_handle(tmp_path: Any) -> None:
    with start_sandbox(tmp_path / "default.sqlite3") as handle:
        assert handle.dialect == DEFAULT_DIALECT
        assert DEFAULT_DIALECT in DIALECTS
        assert f"dialect={DEFAULT_DIALECT!r}" in repr(handle)
        root = requests.get(handle.url + "/", timeout=10).json()["payload"]
        assert root["dialect"] == DEFAULT_DIALECT


def test_an_unknown_dialect_is_refused_naming_the_known_ones(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="known: project, enkash, spring, lenient, cdn"):
        start_sandbox(tmp_path / "x.sqlite3", dialect="enkahs")
    assert not (tmp_path / "x.sqlite3").exists()


# ---- enkash --------------------------------------------------------------------------------


def test_enkash_success_is_the_envelope_with_code_0(enkash: Api) -> None:
    body = envelope(enkash.create(), 200, 0, "Success")
    created = body["payload"]
    assert created["coinConfigId"].startswith("WCC")
    assert created | {"coinConfigId": "x"} == {
        "coinConfigId": "x",
        "configuration": "DEFAULT",
        "companyId": "CEKEKCARDS",
        "event": "MEAL_CARD_PAYMENT",
        "amount": 6,
    }
    got = envelope(enkash.call("GET", one(created["coinConfigId"])), 200, 0, "Success")
    assert got["payload"] == created
    updated = envelope(
        enkash.call("PATCH", one(created["coinConfigId"]), json={"amount": 10}), 200, 0
    )["payload"]
    assert "companyId" not in updated and updated["amount"] == 10
    assert envelope(enkash.allocate("COIN_REQ1"), 200, 0)["payload"] == (
        "Successfully allocated enkash Coins"
    )
    assert envelope(enkash.balance(), 200, 0)["payload"] == 10


def test_enkash_validation_is_http_200_code_412_naming_the_field(enkash: Api) -> None:
    body = envelope(enkash.create(amount="six"), 200, 412)
    assert body["response_message"].startswith("Missing or invalid parameters: amount")
    assert body["payload"] is None
    body = envelope(enkash.balance(user=""), 200, 412)
    assert "userId" in body["response_message"]
    assert configs(enkash.handle) == []


def test_enkash_a_body_that_is_not_json_is_422_invalid_request_format(enkash: Api) -> None:
    answer = enkash.call(
        "POST", CREATE, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    envelope(answer, 422, 422, "Invalid request format")


def test_enkash_create_of_an_existing_pair_is_409_naming_the_id(enkash: Api) -> None:
    first = enkash.create().json()["payload"]["coinConfigId"]
    body = envelope(enkash.create(amount=9), 200, 409)
    assert body["response_message"] == (
        "Coin configuration already exists for company CEKEKCARDS and event "
        f"MEAL_CARD_PAYMENT (coinConfigId {first})"
    )
    assert body["payload"] == {"coinConfigId": first}
    assert len(configs(enkash.handle)) == 1


def test_enkash_unknown_id_is_http_200_code_1_not_found(enkash: Api) -> None:
    for answer in (
        enkash.call("GET", one("WCC000000")),
        enkash.call("PATCH", one("WCC000000"), json={"amount": 3}),
    ):
        body = envelope(answer, 200, 1, "Coin configuration not found")
        assert body["payload"] is None


def test_enkash_allocation_without_configuration_is_code_412(enkash: Api) -> None:
    body = envelope(enkash.allocate("COIN_REQ1"), 200, 412)
    assert "CEKEKCARDS" in body["response_message"]
    assert envelope(enkash.balance(), 200, 0)["payload"] == 0


def test_enkash_repeated_request_id_is_code_38_not_naming_it(enkash: Api) -> None:
    enkash.create()
    envelope(enkash.allocate("COIN_REQ77"), 200, 0)
    body = envelope(enkash.allocate("COIN_REQ77"), 200, 38, "Duplicate referenceId provided")
    assert "COIN_REQ77" not in body["response_message"]
    assert envelope(enkash.balance(), 200, 0)["payload"] == 6


def test_enkash_token_is_spring_oauth2_with_86399_shown_and_the_real_life_kept(
    enkash: Api,
) -> None:
    answer = enkash.token_answer()
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert body["scope"] == "read write trust"
    info = enkash.handle.app.sandbox.store.token_info(body["access_token"])
    assert info is not None
    assert info.expires_at - time.time() <= 300  # lives token_ttl, not what it says


def test_enkash_token_says_86399_but_dies_at_its_ttl(tmp_path: Any) -> None:
    with start_sandbox(tmp_path / "ttl.sqlite3", dialect="enkash", token_ttl=1) as handle:
        api = Api(handle)
        assert api.token_answer().json()["expires_in"] == 86399
        token = api.login()
        assert api.balance().status_code == 200
        time.sleep(1.2)
        assert_token_refused("enkash", api.balance(), token)


def test_embedded_takes_a_dialect_and_keeps_it(tmp_path: Any) -> None:
    from toolkit.sandbox import embedded

    handle = embedded(tmp_path / "home", dialect="lenient", seed_demo=False)
    try:
        assert handle.dialect == "lenient"
        assert embedded(tmp_path / "home") is handle
        assert embedded(tmp_path / "home", dialect="lenient") is handle
        with pytest.raises(ValueError, match="already runs the 'lenient' dialect"):
            embedded(tmp_path / "home", dialect="spring")
    finally:
        handle.stop()
    again = embedded(tmp_path / "home", seed_demo=False)
    try:
        assert again.dialect == DEFAULT_DIALECT
    finally:
        again.stop()


def test_enkash_bad_credentials_and_bad_client_are_spring_oauth2_errors(enkash: Api) -> None:
    answer = enkash.token_answer(password="wrong")
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Bad credentials"}
    answer = enkash.token_answer(secret="wrong")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_enkash_expired_and_unknown_tokens_are_invalid_token_naming_8_chars(enkash: Api) -> None:
    token = enkash.token
    enkash.handle.expire_tokens()
    assert_token_refused("enkash", enkash.balance(), token)
    enkash.session.headers["Authorization"] = "Bearer made-up-token-0123456789"
    assert_token_refused("enkash", enkash.balance(), "made-up-token-0123456789")


def test_enkash_throttling_is_http_200_velocity_codes_36_and_37(enkash: Api) -> None:
    enkash.handle.set_faults(rate_limit_rate=1)
    codes = set()
    for _ in range(4):
        answer = enkash.create()
        assert answer.status_code == 200
        body = answer.json()
        assert body["response_message"] == "Velocity limit breached"
        codes.add(body["response_code"])
    assert codes == {36, 37}
    assert configs(enkash.handle) == []


def test_enkash_server_faults_are_500_or_503_with_code_1(enkash: Api) -> None:
    enkash.handle.set_faults(error_rate=1, fault_seed=3)
    statuses = set()
    for _ in range(12):
        answer = enkash.create()
        statuses.add(answer.status_code)
        envelope(answer, answer.status_code, 1)
    assert statuses == {500, 503}
    assert configs(enkash.handle) == []


# ---- spring --------------------------------------------------------------------------------


def test_spring_success_has_integer_ids_and_amounts_and_balance_as_text(spring: Api) -> None:
    created = envelope(spring.create(amount=100), 200, 0, "Success")["payload"]
    config_id = created["coinConfigId"]
    assert isinstance(config_id, int) and config_id > 1000
    assert created["amount"] == "100"
    got = envelope(spring.call("GET", one(config_id)), 200, 0)["payload"]
    assert got == created
    spring.create(event="REFERRAL_EVENT", amount=6)
    envelope(spring.allocate("COIN_REQ1"), 200, 0)
    envelope(spring.allocate("COIN_REQ2", event="REFERRAL_EVENT"), 200, 0)
    assert envelope(spring.balance(), 200, 0)["payload"] == "106.0"
    updated = envelope(spring.call("PATCH", one(config_id), json={"amount": 7}), 200, 0)
    assert updated["payload"] == {
        "coinConfigId": config_id,
        "configuration": "DEFAULT",
        "event": "MEAL_CARD_PAYMENT",
        "amount": "7",
    }


def test_spring_errors_are_spring_boot_bodies_without_envelope(spring: Api) -> None:
    body = spring_error(spring.create(amount="six"), 400, "amount")
    assert body["error"] == "Bad Request"
    assert body["path"] == CREATE
    spring_error(spring.call("GET", one(999999)), 404)
    spring_error(spring.call("PATCH", one(999999), json={"amount": 1}), 404)
    spring_error(spring.allocate("COIN_REQ1"), 404)


def test_spring_conflict_names_the_id_as_a_bare_number(spring: Api) -> None:
    first = spring.create().json()["payload"]["coinConfigId"]
    body = spring_error(spring.create(), 409)
    assert body["message"] == f"Configuration already exists: id {first}"


def test_spring_duplicate_request_id_is_409_naming_it(spring: Api) -> None:
    spring.create()
    envelope(spring.allocate("COIN_REQ55"), 200, 0)
    body = spring_error(spring.allocate("COIN_REQ55"), 409)
    assert body["message"] == "Duplicate requestId COIN_REQ55"
    assert envelope(spring.balance(), 200, 0)["payload"] == "6.0"


def test_spring_token_is_camel_case_and_refusals_are_oauth(spring: Api) -> None:
    body = spring.token_answer().json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn", "refreshToken"}
    assert body["expiresIn"] == 300 and body["tokenType"] == "bearer"
    answer = spring.token_answer(password="wrong")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_spring_expired_token_is_401_unauthorized(spring: Api) -> None:
    token = spring.token
    spring.handle.expire_tokens()
    assert_token_refused("spring", spring.balance(), token)


def test_spring_throttling_is_429_without_retry_after(spring: Api) -> None:
    spring.handle.set_faults(rate_limit_rate=1)
    answer = spring.create()
    spring_error(answer, 429)
    assert "Retry-After" not in answer.headers
    spring.handle.set_faults(rate_limit_rate=0, error_rate=1, fault_seed=1)
    statuses = set()
    for _ in range(10):
        answer = spring.create()
        statuses.add(spring_error(answer, answer.status_code)["status"])
    assert statuses == {500, 503}
    assert configs(spring.handle) == []


# ---- lenient -------------------------------------------------------------------------------


def test_lenient_second_create_makes_a_second_configuration_and_the_newest_allocates(
    lenient: Api,
) -> None:
    first = envelope(lenient.create(amount=6), 200, 0)["payload"]["coinConfigId"]
    second = envelope(lenient.create(amount=9), 200, 0)["payload"]["coinConfigId"]
    assert first != second
    for config_id in (first, second):
        assert str(uuid.UUID(config_id)) == config_id
    assert [c["coinConfigId"] for c in configs(lenient.handle)] == [first, second]
    envelope(lenient.allocate("COIN_REQ1"), 200, 0)
    assert envelope(lenient.balance(), 200, 0)["payload"] == 9


def test_lenient_repeated_request_id_is_plain_success_allocating_nothing(lenient: Api) -> None:
    lenient.create()
    first = envelope(lenient.allocate("COIN_REQ9"), 200, 0, "Success")
    again = envelope(lenient.allocate("COIN_REQ9"), 200, 0, "Success")
    assert again == first
    assert envelope(lenient.balance(), 200, 0)["payload"] == 6


def test_lenient_unknown_id_get_is_success_with_null_payload(lenient: Api) -> None:
    missing = str(uuid.uuid4())
    assert envelope(lenient.call("GET", one(missing)), 200, 0)["payload"] is None
    envelope(lenient.call("PATCH", one(missing), json={"amount": 1}), 200, 1)


def test_lenient_expired_token_is_http_200_code_401(lenient: Api) -> None:
    token = lenient.token
    lenient.handle.expire_tokens()
    assert_token_refused("lenient", lenient.balance(), token)


# ---- cdn -----------------------------------------------------------------------------------


def test_cdn_server_faults_are_html_502_503_504(cdn: Api) -> None:
    cdn.handle.set_faults(error_rate=1)
    statuses = set()
    for _ in range(3):
        answer = cdn.create()
        assert answer.headers["content-type"].startswith("text/html")
        assert "<html" in answer.text
        statuses.add(answer.status_code)
    assert statuses == {502, 503, 504}
    assert configs(cdn.handle) == []


def test_cdn_throttling_is_429_with_every_retry_after_form(cdn: Api) -> None:
    cdn.handle.set_faults(rate_limit_rate=1)
    forms = set()
    for _ in range(4):
        answer = cdn.create()
        assert answer.status_code == 429
        assert answer.headers["content-type"].startswith("text/html")
        value = answer.headers.get("Retry-After")
        if value is None:
            forms.add("absent")
        elif value.isdigit():
            forms.add("seconds")
        elif value.replace(".", "", 1).isdigit():
            forms.add("decimal")
        else:
            assert parsedate_to_datetime(value).tzinfo is not None
            forms.add("date")
    assert forms == {"seconds", "decimal", "date", "absent"}
    assert configs(cdn.handle) == []


def test_cdn_challenge_is_a_403_html_page_before_anything(cdn: Api) -> None:
    cdn.handle.set_faults(challenge_rate=1)
    for answer in (cdn.create(), cdn.token_answer()):
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cf-mitigated"] == "challenge"
        assert "Just a moment..." in answer.text
    assert configs(cdn.handle) == []
    assert cdn.handle.stats()["challenged"] == 2


def test_cdn_other_answers_are_enkash_ones(cdn: Api) -> None:
    cdn.create()
    envelope(cdn.create(), 200, 409)
    envelope(cdn.call("GET", one("WCC000000")), 200, 1, "Coin configuration not found")


# ---- faults in every dialect ---------------------------------------------------------------


def test_error_fault_is_a_5xx_in_every_dialect_and_does_nothing(any_dialect: Api) -> None:
    any_dialect.handle.set_faults(error_rate=1)
    for _ in range(3):
        assert any_dialect.create().status_code >= 500
    assert configs(any_dialect.handle) == []
    assert any_dialect.handle.stats()["server_faults"] == 3


def test_drop_fault_closes_the_connection_in_every_dialect(any_dialect: Api) -> None:
    any_dialect.handle.set_faults(drop_rate=1)
    with pytest.raises(requests.ConnectionError):
        any_dialect.create()
    any_dialect.handle.clear_faults()
    assert configs(any_dialect.handle) == []


def test_token_expiry_fault_kills_the_token_in_the_dialects_style(any_dialect: Api) -> None:
    name, handle = any_dialect.handle.dialect, any_dialect.handle
    token = any_dialect.token
    handle.set_faults(token_expiry_rate=1)
    assert_token_refused(name, any_dialect.create(), token)
    handle.clear_faults()
    assert_token_refused(name, any_dialect.create(), token)  # it stays dead
    assert configs(handle) == []
    assert handle.stats()["token_expired"] == 1
    any_dialect.login()  # a new login works
    assert any_dialect.create().status_code == 200
    assert len(configs(handle)) == 1


def test_expire_tokens_kills_access_and_refresh_tokens(any_dialect: Api) -> None:
    handle = any_dialect.handle
    token, refresh = any_dialect.token, any_dialect.refresh
    assert handle.expire_tokens() >= 2
    assert_token_refused(handle.dialect, any_dialect.balance(), token)
    answer = any_dialect.token_answer(grant_type="refresh_token", refresh_token=refresh)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    any_dialect.login()
    assert any_dialect.balance().status_code == 200


def test_slow_after_commit_commits_in_every_dialect(any_dialect: Api) -> None:
    any_dialect.handle.set_faults(slow_after_commit_rate=1, slow_after_commit_ms=4000)
    with pytest.raises(requests.Timeout):
        any_dialect.create(timeout=1.5)
    assert len(configs(any_dialect.handle)) == 1


# ---- the token-bucket rate limit -----------------------------------------------------------

# A bucket that refills one token every 1,000 s: within a test, only the burst gets through.
SLOW = 0.001


def test_rate_limit_lets_the_burst_through_then_throttles_before_doing_anything(
    tmp_path: Any,
) -> None:
    with start_sandbox(
        tmp_path / "rl.sqlite3", rate_limit=SLOW, burst=3, dialect="project"
    ) as handle:
        api = Api(handle)
        api.login()
        events = ["MEAL_CARD_PAYMENT", "REFERRAL_EVENT", "INVOICE_PAYMENT", "GST_PAYMENT"]
        answers = [api.create(event=event) for event in [*events, "KYC_COMPLETED"]]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert answers[3].headers["Retry-After"] == "1"
        envelope(answers[3], 429, ResponseCode.RATE_LIMITED)
        assert [c["event"] for c in configs(handle)] == events[:3]
        # /oauth/token and /_sandbox/* are never limited
        assert api.token_answer().status_code == 200
        stats = handle.stats()
        assert stats["api_requests"] == 5
        assert stats["accepted"] == 3
        assert stats["throttled"] == 2
        assert handle.rate_limit == {"rate": SLOW, "burst": 3.0, "style": None}


@pytest.mark.parametrize(
    ("dialect", "status", "codes", "retry_after"),
    [
        ("project", 429, {ResponseCode.RATE_LIMITED}, {"1"}),
        ("enkash", 200, {36, 37}, {None}),
        ("lenient", 200, {36, 37}, {None}),
        ("spring", 429, None, {None}),
    ],
)
def test_rate_limit_answers_in_the_dialects_style(
    sandboxes: dict[str, SandboxHandle],
    dialect: str,
    status: int,
    codes: set[int] | None,
    retry_after: set[str | None],
) -> None:
    api = _fresh(sandboxes, dialect)
    api.handle.set_rate_limit(SLOW, burst=1)
    try:
        assert api.balance().status_code == 200
        seen_codes, seen_after = set(), set()
        for _ in range(4):
            answer = api.balance()
            assert answer.status_code == status
            seen_after.add(answer.headers.get("Retry-After"))
            if codes is None:
                spring_error(answer, 429)
            else:
                seen_codes.add(answer.json()["response_code"])
        assert seen_after == retry_after
        if codes is not None:
            assert seen_codes == codes
        assert api.handle.stats()["throttled"] == 4
    finally:
        api.handle.set_rate_limit(None)


def test_rate_limit_behind_the_cdn_is_html_429_with_rotating_retry_after(cdn: Api) -> None:
    cdn.handle.set_rate_limit(SLOW, burst=1)
    cdn.balance()
    answers = [cdn.balance() for _ in range(4)]
    assert {a.status_code for a in answers} == {429}
    assert all(a.headers["content-type"].startswith("text/html") for a in answers)
    assert len({a.headers.get("Retry-After", "absent")[:3] for a in answers}) == 4


@pytest.mark.parametrize(
    ("style", "status", "retry_after"),
    [
        ("retry-after", 429, "1"),
        ("retry-after-decimal", 429, "0.5"),
        ("no-retry-after", 429, None),
        ("velocity", 200, None),
    ],
)
def test_rate_limit_style_forces_the_over_limit_answer(
    sandboxes: dict[str, SandboxHandle], style: str, status: int, retry_after: str | None
) -> None:
    for dialect in ("project", "enkash", "spring"):
        api = _fresh(sandboxes, dialect)
        api.handle.set_rate_limit(SLOW, burst=1, style=style)
        try:
            api.balance()
            answer = api.balance()
            assert answer.status_code == status, (dialect, answer.text)
            assert answer.headers.get("Retry-After") == retry_after
            if style == "velocity":
                envelope(answer, 200, 36, "Velocity limit breached")
        finally:
            api.handle.set_rate_limit(None)


def test_rate_limit_off_again_and_bad_settings_refused(enkash: Api) -> None:
    handle = enkash.handle
    handle.set_rate_limit(SLOW, burst=1)
    enkash.balance()
    assert enkash.balance().json()["response_code"] in (36, 37)
    handle.set_rate_limit(None)
    assert all(enkash.balance().json()["response_code"] == 0 for _ in range(5))
    for bad in ({"rate": -1}, {"rate": 0}, {"rate": 1, "style": "polite"}, {"burst": 2}):
        with pytest.raises(ValueError):
            handle.set_rate_limit(bad.get("rate"), bad.get("burst"), bad.get("style"))
    assert handle.rate_limit["rate"] is None


def test_rate_limit_and_stats_over_the_admin_routes(enkash: Api) -> None:
    url = enkash.handle.url + "/_sandbox"
    answer = requests.put(url + "/rate-limit", json={"rate": SLOW, "burst": 2}, timeout=5)
    assert answer.json()["payload"] == {"rate": SLOW, "burst": 2.0, "style": None}
    try:
        codes = [enkash.balance().json()["response_code"] for _ in range(3)]
        assert codes[:2] == [0, 0] and codes[2] in (36, 37)
        stats = requests.get(url + "/stats", timeout=5).json()["payload"]
        assert (stats["accepted"], stats["throttled"]) == (2, 1)
        bad = requests.put(url + "/rate-limit", json={"rate": "fast"}, timeout=5)
        assert bad.status_code == 400
    finally:
        requests.put(url + "/rate-limit", json={"rate": None}, timeout=5)
    assert requests.get(url + "/rate-limit", timeout=5).json()["payload"]["rate"] is None
    expired = requests.post(url + "/expire-tokens", timeout=5).json()["payload"]["expired"]
    assert expired >= 2
    assert_token_refused("enkash", enkash.balance(), enkash.token)


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    from toolkit.sandbox.limiter import RateLimit, TokenBucket

    now = [100.0]
    bucket = TokenBucket(RateLimit(rate=10, burst=5), clock=lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.25  # 2.5 tokens flowed in
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 1000  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 5
    assert RateLimit(rate=40).capacity == 40
    assert RateLimit(rate=0.5).capacity == 1


# ---- network safety ------------------------------------------------------------------------


def _non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


async def _asgi_get(app: Any, path: str, client: tuple[str, int]) -> Any:
    import httpx

    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        return await http.get(path)


@pytest.mark.parametrize("admin_anywhere", [False, True])
def test_admin_routes_answer_only_loopback_clients_unless_told(
    tmp_path: Any, admin_anywhere: bool
) -> None:
    from toolkit.sandbox import create_app

    app = create_app(tmp_path / "asgi.sqlite3", admin_anywhere=admin_anywhere)
    try:
        for host in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
            answer = asyncio.run(_asgi_get(app, "/_sandbox/configs", (host, 5000)))
            assert answer.status_code == 200, host
        for host in ("203.0.113.5", "192.168.1.20", "2001:db8::1", "testclient"):
            answer = asyncio.run(_asgi_get(app, "/_sandbox/configs", (host, 5000)))
            if admin_anywhere:
                assert answer.status_code == 200, host
            else:
                body = envelope(answer, 403, 4030)
                assert "--admin-anywhere" in body["response_message"]
        # the API itself is not restricted by address
        answer = asyncio.run(_asgi_get(app, BALANCE + "?userId=U1", ("203.0.113.5", 5000)))
        assert answer.status_code == 401
    finally:
        app.sandbox.store.close()


def test_a_non_loopback_bind_warns_and_keeps_admin_on_loopback(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind")
    with (
        caplog.at_level("WARNING", logger="toolkit.sandbox.server"),
        start_sandbox(tmp_path / "net.sqlite3", host=address, dialect="enkash") as handle,
    ):
        assert any("no real authentication" in r.getMessage() for r in caplog.records)
        assert handle.url.startswith(f"http://{address}:")
        # a request from that address is not a loopback client
        answer = requests.get(handle.url + "/_sandbox/configs", timeout=5)
        assert answer.status_code == 403
        api = Api(handle)
        api.login()
        assert api.balance().status_code == 200


def test_a_loopback_bind_says_nothing(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level("WARNING", logger="toolkit.sandbox.server"),
        start_sandbox(tmp_path / "lo.sqlite3", host="127.0.0.1"),
    ):
        pass
    assert not caplog.records


def test_bind_warning_words() -> None:
    from toolkit.sandbox.server import bind_warning

    assert bind_warning("127.0.0.1") is None
    assert bind_warning("localhost") is None
    assert bind_warning("::1") is None
    for host in ("0.0.0.0", "::", "192.168.1.4", "sandbox.example.com"):
        text = bind_warning(host)
        assert text is not None and "no real authentication" in text and host in text
        assert "only to this machine" in text
    assert "ANY client" in (bind_warning("0.0.0.0", admin_anywhere=True) or "")
    assert "admin routes" in (bind_warning("127.0.0.1", admin_anywhere=True) or "")


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("Sandbox listening on "):
        process.kill()
        raise AssertionError(f"no listening line: {line!r} {process.stderr.read()!r}")
    return process, line.split(" on ", 1)[1].strip()


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    return err


def test_the_command_line_takes_a_dialect_and_a_rate_limit(tmp_path: Any) -> None:
    process, url = _serve(
        "--db", str(tmp_path / "cli.sqlite3"), "--dialect", "spring",
        "--rate-limit", "0.001", "--burst", "2",
    )  # fmt: skip
    try:
        handle = _UrlOnly(url)
        api = Api(handle)  # type: ignore[arg-type]
        api.login()
        assert [api.balance().status_code for _ in range(3)] == [200, 200, 429]
        assert api.balance().json()["status"] == 429  # a Spring Boot body
        assert requests.get(url + "/", timeout=5).json()["payload"]["dialect"] == "spring"
    finally:
        _stop(process)


def test_the_command_line_warns_on_a_non_loopback_host(tmp_path: Any) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind")
    process, url = _serve("--db", str(tmp_path / "net.sqlite3"), "--host", address)
    try:
        assert requests.get(url + "/_sandbox/faults", timeout=5).status_code == 403
    finally:
        err = _stop(process)
    assert "no real authentication" in err


def test_the_command_line_refuses_an_unknown_dialect() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "toolkit.sandbox", "--dialect", "soap"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid choice: 'soap'" in result.stderr


class _UrlOnly:
    """What ``Api`` needs of a handle, for a sandbox in another process."""

    def __init__(self, url: str) -> None:
        from toolkit.sandbox.app import DEFAULT_CREDENTIALS

        self.url = url
        self.credentials = dict(DEFAULT_CREDENTIALS)
