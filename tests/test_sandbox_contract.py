"""The sandbox speaks the contract: every call, every error path, exact shapes and statuses.

Raw HTTP over loopback (requests), no client code of ours in between.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
import requests

from toolkit.models import ResponseCode
from toolkit.sandbox import start_sandbox

CREATE = "/api/v0/enkash-coins/create-coins-config"
ALLOCATE = "/api/v0/enkash-coins/allocate-coin"
BALANCE = "/api/v0/coins/balance"


def one(api: Any, path: str) -> str:
    return f"/api/v0/enkash-coins/{path}"


def create(api: Any, company: str = "CEKEKCARDS", event: str = "MEAL_CARD_PAYMENT", **kw: Any):
    body = {"configuration": "DEFAULT", "companyId": company, "event": event, "amount": 6} | kw
    return api.post(CREATE, json=body)


def allocate(api: Any, request_id: str, user: str = "EKQZVMQK", **kw: Any):
    body = {
        "companyId": "CEKEKCARDS",
        "event": "MEAL_CARD_PAYMENT",
        "requestId": request_id,
        "userId": user,
    } | kw
    return api.post(ALLOCATE, json=body)


def assert_error(answer: requests.Response, status: int, code: ResponseCode, *words: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"payload", "response_code", "response_message"}
    assert body["response_code"] == code
    assert body["payload"] is None
    for word in words:
        assert word in body["response_message"], body["response_message"]
    return body["response_message"]


def ok_payload(answer: requests.Response) -> Any:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == ["payload", "response_code", "response_message"]
    assert body["response_code"] == 0
    assert body["response_message"] == "Success"
    return body["payload"]


# ---- token -----------------------------------------------------------------------------------


def test_password_grant_returns_plain_oauth_json(api: Any) -> None:
    answer = api.token_response()
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert answer.headers["Cache-Control"] == "no-store"


def test_refresh_grant_issues_new_tokens_and_spends_the_old_refresh_token(api: Any) -> None:
    first = api.token_response().json()
    refreshed = api.token_response(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != first["access_token"]
    ok_payload(api.get(BALANCE, params={"userId": "U1"}, headers=_bearer(new["access_token"])))
    again = api.token_response(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()],
)
def test_token_without_valid_basic_client_auth_is_invalid_client(api: Any, auth: Any) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    answer = requests.post(
        api.base_url + "/oauth/token",
        data={"username": "a", "password": "b", "grant_type": "password"},
        headers=headers,
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert set(answer.json()) == {"error", "error_description"}


def test_token_with_wrong_client_secret_is_invalid_client(api: Any) -> None:
    answer = requests.post(
        api.base_url + "/oauth/token",
        auth=("SANDBOX", "wrong"),
        data={"username": "a", "password": "b", "grant_type": "password"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_token_with_mismatched_client_id_in_body_is_invalid_client(api: Any) -> None:
    answer = api.token_response(clientId="SOMEONE_ELSE")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": ""}, "invalid_request"),
        ({"password": ""}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ],
)
def test_token_request_errors_follow_rfc6749(api: Any, form: dict, error: str) -> None:
    answer = api.token_response(**form)
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert answer.json()["error_description"]


def test_wrong_password_is_invalid_grant_and_counts_towards_the_lock(api: Any) -> None:
    answer = api.token_response(password="wrong")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "1 of 3" in answer.json()["error_description"]


def test_three_failed_logins_lock_the_account_until_reset(api: Any, fresh_sandbox: Any) -> None:
    for _ in range(3):
        assert api.token_response(password="wrong").status_code == 400
    locked = api.token_response()
    assert locked.status_code == 400
    description = locked.json()["error_description"]
    assert locked.json()["error"] == "invalid_grant"
    assert "locked after 3 failed" in description
    assert "reset" in description
    fresh_sandbox.reset()
    assert api.token_response().status_code == 200


def test_reset_over_http_also_unlocks(api: Any) -> None:
    for _ in range(3):
        api.token_response(password="wrong")
    assert api.token_response().status_code == 400
    ok_payload(requests.post(api.base_url + "/_sandbox/reset", timeout=10))
    assert api.token_response().status_code == 200


def test_a_successful_login_resets_the_failure_count(api: Any) -> None:
    for _ in range(2):
        api.token_response(password="wrong")
    assert api.token_response().status_code == 200
    for _ in range(2):
        api.token_response(password="wrong")
    assert api.token_response().status_code == 200


def test_lockout_is_per_username(api: Any) -> None:
    for _ in range(3):
        api.token_response(username="someone@example.com", password="wrong")
    assert api.token_response().status_code == 200


def test_token_expires_after_its_ttl(tmp_path: Any, make_api: Any) -> None:
    with start_sandbox(tmp_path / "ttl.sqlite3", token_ttl=1, dialect="project") as short:
        api = make_api(short)
        assert api.token_response().json()["expires_in"] == 1
        ok_payload(api.get(BALANCE, params={"userId": "U1"}))
        time.sleep(1.2)
        answer = api.get(BALANCE, params={"userId": "U1"})
        assert_error(answer, 401, ResponseCode.UNAUTHORIZED, "expired")
        api.login()
        ok_payload(api.get(BALANCE, params={"userId": "U1"}))


# ---- authentication on /api ------------------------------------------------------------------


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_token_is_401_saying_missing(api: Any) -> None:
    answer = requests.get(api.base_url + BALANCE, params={"userId": "U1"}, timeout=10)
    assert_error(answer, 401, ResponseCode.UNAUTHORIZED, "Missing")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401_saying_unknown(api: Any) -> None:
    answer = api.get(BALANCE, params={"userId": "U1"}, headers=_bearer("made-up"))
    assert_error(answer, 401, ResponseCode.UNAUTHORIZED, "Unknown")


def test_refresh_token_is_not_an_access_token(api: Any) -> None:
    refresh = api.token_response().json()["refresh_token"]
    answer = api.get(BALANCE, params={"userId": "U1"}, headers=_bearer(refresh))
    assert_error(answer, 401, ResponseCode.UNAUTHORIZED, "refresh token")


def test_non_bearer_scheme_is_401(api: Any) -> None:
    answer = api.get(BALANCE, params={"userId": "U1"}, headers={"Authorization": "Token x"})
    assert_error(answer, 401, ResponseCode.UNAUTHORIZED, "Bearer")


def test_lower_case_authorization_header_and_cookie_are_accepted(api: Any) -> None:
    headers = {"authorization": f"Bearer {api.access_token}", "Cookie": "_cfuvid=x; JSESSIONID=y"}
    answer = requests.get(api.base_url + BALANCE, params={"userId": "U1"}, headers=headers)
    assert ok_payload(answer) == 0


# ---- create / get / update -------------------------------------------------------------------


def test_create_returns_the_documented_payload(api: Any) -> None:
    payload = ok_payload(create(api))
    assert list(payload) == ["coinConfigId", "configuration", "companyId", "event", "amount"]
    assert payload["coinConfigId"].startswith("WCC")
    assert len(payload["coinConfigId"]) == 9 and payload["coinConfigId"][3:].isdigit()
    assert payload | {"coinConfigId": None} == {
        "coinConfigId": None,
        "configuration": "DEFAULT",
        "companyId": "CEKEKCARDS",
        "event": "MEAL_CARD_PAYMENT",
        "amount": 6,
    }


def test_second_create_for_the_same_pair_is_409_naming_the_existing_id(api: Any) -> None:
    existing = ok_payload(create(api))["coinConfigId"]
    message = assert_error(
        create(api, amount=9, configuration="CUSTOM"), 409, ResponseCode.CONFLICT
    )
    assert message == (
        f"Configuration {existing} already exists for company CEKEKCARDS "
        "and event MEAL_CARD_PAYMENT"
    )


def test_company_and_event_are_case_sensitive_keys(api: Any) -> None:
    ok_payload(create(api, event="MEAL_CARD_PAYMENT"))
    ok_payload(create(api, event="MEAL_CARD_PAYMENT2"))
    ok_payload(create(api, company="CEK0TCW2W8"))


def test_config_ids_are_unique(api: Any) -> None:
    ids = {ok_payload(create(api, event=f"EVENT_{i}"))["coinConfigId"] for i in range(30)}
    assert len(ids) == 30


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("amount", "6", ["amount", "JSON integer", "text"]),
        ("amount", 6.0, ["amount", "JSON integer"]),
        ("amount", 6.5, ["amount"]),
        ("amount", True, ["amount"]),
        ("amount", -1, ["amount", "0 or more"]),
        ("amount", 1_000_001, ["amount", "1,000,000"]),
        ("configuration", "default", ["configuration", "DEFAULT or CUSTOM"]),
        ("configuration", "OTHER", ["configuration"]),
        ("companyId", "cekekcards", ["companyId"]),
        ("companyId", "CEK-1", ["companyId"]),
        ("companyId", "C" * 33, ["companyId"]),
        ("companyId", 123, ["companyId", "text"]),
        ("companyId", " CEKEKCARDS", ["companyId", "spaces"]),
        ("event", "meal_card_payment", ["event", "upper snake case"]),
        ("event", "1EVENT", ["event"]),
        ("event", "E" * 65, ["event"]),
        ("event", ["MEAL"], ["event"]),
    ],
)
def test_create_refuses_bad_fields_naming_field_and_value(
    api: Any, field: str, value: Any, words: list[str]
) -> None:
    assert_error(create(api, **{field: value}), 400, ResponseCode.INVALID_REQUEST, *words)


def test_create_accepts_amount_bounds(api: Any) -> None:
    assert ok_payload(create(api, event="ZERO", amount=0))["amount"] == 0
    assert ok_payload(create(api, event="MAX", amount=1_000_000))["amount"] == 1_000_000


def test_create_with_missing_fields_names_each(api: Any) -> None:
    answer = api.post(CREATE, json={"companyId": "CEKEKCARDS"})
    assert_error(
        answer, 400, ResponseCode.INVALID_REQUEST, "configuration is missing", "event", "amount"
    )


def test_create_refuses_unknown_fields(api: Any) -> None:
    assert_error(create(api, ammount=6), 400, ResponseCode.INVALID_REQUEST, "ammount")


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe", b"1" * 5000]
)
def test_malformed_json_gets_the_400_envelope_not_422(api: Any, body: bytes) -> None:
    answer = api.post(CREATE, data=body, headers={"Content-Type": "application/json"})
    message = assert_error(answer, 400, ResponseCode.INVALID_REQUEST)
    assert "detail" not in answer.json()
    assert "body" in message


def test_oversized_body_is_413_envelope(api: Any) -> None:
    answer = api.post(CREATE, data=b"[" + b"1," * 600_000 + b"1]")
    assert_error(answer, 413, ResponseCode.INVALID_REQUEST, "too large")


def test_get_returns_the_configuration(api: Any) -> None:
    created = ok_payload(create(api))
    assert ok_payload(api.get(one(api, created["coinConfigId"]))) == created


def test_get_unknown_id_is_404_naming_it(api: Any) -> None:
    assert_error(api.get(one(api, "WCC000000")), 404, ResponseCode.NOT_FOUND, "WCC000000")


def test_update_answer_has_exactly_the_documented_keys(api: Any) -> None:
    created = ok_payload(create(api, company="CEK0TCW2W8", event="INVOICE_PAYMENT"))
    answer = api.patch(
        one(api, created["coinConfigId"]), json={"amount": 10, "configuration": "CUSTOM"}
    )
    payload = ok_payload(answer)
    assert list(payload) == ["coinConfigId", "configuration", "event", "amount"]
    assert payload == {
        "coinConfigId": created["coinConfigId"],
        "configuration": "CUSTOM",
        "event": "INVOICE_PAYMENT",
        "amount": 10,
    }
    stored = ok_payload(api.get(one(api, created["coinConfigId"])))
    assert stored["companyId"] == "CEK0TCW2W8" and stored["amount"] == 10


def test_update_can_move_a_config_to_a_free_pair(api: Any) -> None:
    created = ok_payload(create(api))
    ok_payload(api.patch(one(api, created["coinConfigId"]), json={"event": "REFERRAL_EVENT"}))
    ok_payload(create(api))  # the old pair is free again


def test_update_onto_a_pair_held_by_another_config_is_409_naming_it(api: Any) -> None:
    holder = ok_payload(create(api, event="REFERRAL_EVENT"))["coinConfigId"]
    mover = ok_payload(create(api))["coinConfigId"]
    answer = api.patch(one(api, mover), json={"event": "REFERRAL_EVENT"})
    assert_error(answer, 409, ResponseCode.CONFLICT, holder, "REFERRAL_EVENT", "CEKEKCARDS")


def test_update_to_its_own_values_succeeds(api: Any) -> None:
    created = ok_payload(create(api))
    body = {"companyId": "CEKEKCARDS", "event": "MEAL_CARD_PAYMENT", "amount": 6}
    assert ok_payload(api.patch(one(api, created["coinConfigId"]), json=body))["amount"] == 6


@pytest.mark.parametrize("body", [{}, {"amount": None}])
def test_update_with_nothing_to_change_is_400(api: Any, body: dict) -> None:
    created = ok_payload(create(api))
    answer = api.patch(one(api, created["coinConfigId"]), json=body)
    assert_error(answer, 400, ResponseCode.INVALID_REQUEST, "nothing to update")


def test_update_refuses_bad_values_like_create(api: Any) -> None:
    created = ok_payload(create(api))
    answer = api.patch(one(api, created["coinConfigId"]), json={"amount": "10"})
    assert_error(answer, 400, ResponseCode.INVALID_REQUEST, "amount")


def test_update_unknown_id_is_404(api: Any) -> None:
    answer = api.patch(one(api, "WCC999999"), json={"amount": 1})
    assert_error(answer, 404, ResponseCode.NOT_FOUND, "WCC999999")


# ---- allocate / balance ----------------------------------------------------------------------


def test_allocate_answers_the_documented_string_and_balance_sums(api: Any) -> None:
    ok_payload(create(api, amount=6))
    ok_payload(create(api, event="REFERRAL_EVENT", amount=100))
    assert ok_payload(allocate(api, "REQ1")) == "Successfully allocated enkash Coins"
    ok_payload(allocate(api, "REQ2"))
    ok_payload(allocate(api, "REQ3", event="REFERRAL_EVENT"))
    assert ok_payload(api.get(BALANCE, params={"userId": "EKQZVMQK"})) == 112


def test_repeated_request_id_is_409_duplicate_and_allocates_once(api: Any) -> None:
    ok_payload(create(api))
    ok_payload(allocate(api, "COIN_REQ1234567"))
    answer = allocate(api, "COIN_REQ1234567")
    assert_error(answer, 409, ResponseCode.DUPLICATE_REQUEST, "COIN_REQ1234567")
    assert ok_payload(api.get(BALANCE, params={"userId": "EKQZVMQK"})) == 6


def test_allocation_without_configuration_is_404_naming_company_and_event(api: Any) -> None:
    answer = allocate(api, "REQ1", event="UNKNOWN_EVENT")
    assert_error(answer, 404, ResponseCode.NO_CONFIGURATION, "CEKEKCARDS", "UNKNOWN_EVENT")
    ok_payload(create(api, event="UNKNOWN_EVENT"))
    ok_payload(allocate(api, "REQ1", event="UNKNOWN_EVENT"))  # the failed id was not spent


def test_allocation_with_amount_zero_succeeds_and_awards_nothing(api: Any) -> None:
    ok_payload(create(api, amount=0))
    ok_payload(allocate(api, "REQ1"))
    assert ok_payload(api.get(BALANCE, params={"userId": "EKQZVMQK"})) == 0
    assert_error(allocate(api, "REQ1"), 409, ResponseCode.DUPLICATE_REQUEST)


def test_allocation_uses_the_amount_configured_at_that_time(api: Any) -> None:
    config_id = ok_payload(create(api, amount=6))["coinConfigId"]
    ok_payload(allocate(api, "REQ1"))
    ok_payload(api.patch(one(api, config_id), json={"amount": 10}))
    ok_payload(allocate(api, "REQ2"))
    assert ok_payload(api.get(BALANCE, params={"userId": "EKQZVMQK"})) == 16


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"userId": 7}, ["userId", "text"]),
        ({"requestId": "has space"}, ["requestId"]),
        ({"companyId": None}, ["companyId is missing"]),
        ({"extra": 1}, ["extra"]),
    ],
)
def test_allocate_refuses_bad_bodies(api: Any, body: dict, words: list[str]) -> None:
    ok_payload(create(api))
    answer = allocate(api, "REQ1", **body)
    assert_error(answer, 400, ResponseCode.INVALID_REQUEST, *words)


def test_balance_of_unknown_user_is_zero(api: Any) -> None:
    assert ok_payload(api.get(BALANCE, params={"userId": "EK6CYE6K"})) == 0


def test_balance_payload_is_a_json_integer(api: Any) -> None:
    assert api.get(BALANCE, params={"userId": "EK6CYE6K"}).text.startswith('{"payload": 0,')


@pytest.mark.parametrize("params", [{}, {"userId": ""}, {"userId": "bad id"}])
def test_balance_without_a_valid_user_id_is_400(api: Any, params: dict) -> None:
    assert_error(api.get(BALANCE, params=params), 400, ResponseCode.INVALID_REQUEST, "userId")


# ---- routes and methods ----------------------------------------------------------------------


def test_unknown_route_under_api_is_404_envelope(api: Any) -> None:
    assert_error(api.get("/api/v0/nothing"), 404, ResponseCode.NOT_FOUND, "/api/v0/nothing")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", CREATE),
        ("PATCH", ALLOCATE),
        ("DELETE", "/api/v0/enkash-coins/WCC123456"),
        ("POST", BALANCE),
        ("GET", "/oauth/token"),
    ],
)
def test_wrong_method_is_405_envelope(api: Any, method: str, path: str) -> None:
    answer = api.request(method, path, json={})
    assert_error(answer, 405, ResponseCode.METHOD_NOT_ALLOWED, method)
    assert answer.headers["Allow"]


# ---- admin -----------------------------------------------------------------------------------


def test_admin_lists_configs_and_allocations(api: Any) -> None:
    created = ok_payload(create(api))
    ok_payload(allocate(api, "REQ1"))
    configs = ok_payload(requests.get(api.base_url + "/_sandbox/configs", timeout=10))
    assert configs == [created]
    allocations = ok_payload(requests.get(api.base_url + "/_sandbox/allocations", timeout=10))
    assert len(allocations) == 1
    row = allocations[0]
    assert {k: row[k] for k in ("requestId", "userId", "companyId", "event", "amount")} == {
        "requestId": "REQ1",
        "userId": "EKQZVMQK",
        "companyId": "CEKEKCARDS",
        "event": "MEAL_CARD_PAYMENT",
        "amount": 6,
    }
    assert row["created_at"].endswith("Z")


def test_seed_demo_loads_once_into_an_empty_database(api: Any) -> None:
    seeded = ok_payload(requests.post(api.base_url + "/_sandbox/seed-demo", timeout=10))
    assert seeded["seeded"] is True and seeded["configs"] >= 60
    configs = ok_payload(requests.get(api.base_url + "/_sandbox/configs", timeout=10))
    assert {c["configuration"] for c in configs} == {"DEFAULT", "CUSTOM"}
    assert len({c["event"] for c in configs}) >= 15
    assert len({c["companyId"] for c in configs}) >= 5
    assert ok_payload(api.get(one(api, "WCC817428")))["event"] == "MEAL_CARD_PAYMENT"
    assert ok_payload(api.get(BALANCE, params={"userId": "EKQZVMQK"})) > 0
    again = ok_payload(requests.post(api.base_url + "/_sandbox/seed-demo", timeout=10))
    assert again == {"seeded": False, "configs": seeded["configs"]}


def test_admin_routes_are_hidden_from_the_openapi_schema(api: Any) -> None:
    schema = requests.get(api.base_url + "/openapi.json", timeout=10).json()
    assert not [path for path in schema["paths"] if path.startswith("/_sandbox")]
    assert set(schema["paths"]) == {
        "/oauth/token",
        CREATE,
        "/api/v0/enkash-coins/{coinConfigId}",
        ALLOCATE,
        BALANCE,
    }
    assert "422" not in str(schema)


def test_handle_repr_and_credentials(fresh_sandbox: Any) -> None:
    text = repr(fresh_sandbox)
    assert "sandbox-secret" not in text and "sandbox-password" not in text
    assert fresh_sandbox.credentials == {
        "client_id": "SANDBOX",
        "client_secret": "sandbox-secret",
        "username": "analyst@example.com",
        "password": "sandbox-password",
    }
    settings = fresh_sandbox.settings(timeout_s=3.0)
    assert settings.base_url == fresh_sandbox.url and settings.timeout_s == 3.0
    assert settings.password == "sandbox-password"


def test_default_credentials_are_the_settings_sandbox_credentials(fresh_sandbox: Any) -> None:
    from toolkit.settings import SANDBOX_CREDENTIALS

    assert fresh_sandbox.credentials == SANDBOX_CREDENTIALS


def test_a_form_body_to_a_json_route_is_told_to_send_json(api: Any) -> None:
    answer = api.post(CREATE, data={"configuration": "DEFAULT", "companyId": "CEK", "amount": "6"})
    assert_error(
        answer, 400, ResponseCode.INVALID_REQUEST, "application/json", "x-www-form-urlencoded"
    )


def test_an_over_long_number_is_refused_in_plain_words(api: Any) -> None:
    body = b'{"configuration":"DEFAULT","companyId":"CEK","event":"E","amount":' + b"9" * 5000
    answer = api.post(CREATE, data=body + b"}", headers={"Content-Type": "application/json"})
    message = assert_error(answer, 400, ResponseCode.INVALID_REQUEST, "too long")
    assert "sys." not in message


def test_a_field_given_twice_is_refused_naming_it(api: Any) -> None:
    body = b'{"configuration":"DEFAULT","companyId":"CEK","event":"E","amount":1,"amount":2}'
    answer = api.post(CREATE, data=body, headers={"Content-Type": "application/json"})
    assert_error(answer, 400, ResponseCode.INVALID_REQUEST, '"amount"', "more than once")
    assert ok_payload(api.get("/_sandbox/configs")) == []


def test_a_trailing_slash_is_404_saying_to_drop_it(api: Any) -> None:
    answer = create(api).json()["payload"]
    for method, path in [("POST", CREATE + "/"), ("GET", one(api, answer["coinConfigId"]) + "/")]:
        assert_error(api.request(method, path), 404, ResponseCode.NOT_FOUND, "trailing slash")
