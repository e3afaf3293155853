"""`toolkit.answers`: any answer a plausible EnKash gives, read into one meaning.

Answers every dialect of the sandbox gives are tested over HTTP in test_dialect_promises.py;
these are the shapes themselves, including ones no sandbox dialect gives (a success flag, a
token inside the envelope, a date in Retry-After), built as raw status + headers + bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from toolkit.answers import (
    RETRY_AFTER_CAP_S,
    Meaning,
    config_payload,
    error_for,
    read_parts,
    whole_number,
)
from toolkit.errors import (
    AuthError,
    BadAnswerError,
    BlockedError,
    ConflictError,
    DuplicateRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)

HTML = {"Content-Type": "text/html; charset=UTF-8"}


def envelope(code: object, message: str = "", payload: object = None) -> bytes:
    return json.dumps(
        {"payload": payload, "response_code": code, "response_message": message}
    ).encode()


def spring(status: int, error: str, message: str) -> bytes:
    return json.dumps(
        {
            "timestamp": "2026-12-01T10:00:00.000+00:00",
            "status": status,
            "error": error,
            "message": message,
            "path": "/api/v0/enkash-coins/create-coins-config",
        }
    ).encode()


CASES = [
    # (name, status, headers, body, meaning)
    ("success", 200, {}, envelope(0, "Success", {"coinConfigId": "WCC1"}), Meaning.SUCCESS),
    ("success code as text", 200, {}, envelope("0", "Success", 5), Meaning.SUCCESS),
    (
        "camelCase envelope",
        200,
        {},
        json.dumps({"responseCode": 0, "responseMessage": "OK", "payload": 1}).encode(),
        Meaning.SUCCESS,
    ),
    ("bare payload", 200, {}, b'{"coinConfigId": 77, "amount": "6"}', Meaning.SUCCESS),
    ("bare number", 200, {}, b"106", Meaning.SUCCESS),
    ("html on 200", 200, HTML, b"<html><body>Welcome</body></html>", Meaning.UNREADABLE),
    ("empty 200", 200, {}, b"", Meaning.UNREADABLE),
    ("not json 200", 200, {}, b"OK done", Meaning.UNREADABLE),
    ("failure code 1", 200, {}, envelope(1, "Failure"), Meaning.FAILURE),
    ("not found code 1", 200, {}, envelope(1, "Coin configuration not found"), Meaning.NOT_FOUND),
    (
        "invalid 412",
        200,
        {},
        envelope(412, "Missing or invalid parameters: amount"),
        Meaning.INVALID,
    ),
    ("invalid 422 status", 422, {}, envelope(422, "Invalid request format"), Meaning.INVALID),
    (
        "exists 409 code",
        200,
        {},
        envelope(409, "Coin configuration already exists"),
        Meaning.EXISTS,
    ),
    (
        "exists 400 words",
        400,
        {},
        envelope(1, "Config already configured for pair"),
        Meaning.EXISTS,
    ),
    (
        "duplicate 38",
        200,
        {},
        envelope(38, "Duplicate referenceId provided"),
        Meaning.DUPLICATE_REQUEST,
    ),
    (
        "duplicate 409 words",
        409,
        {},
        spring(409, "Conflict", "Duplicate requestId COIN_REQ1"),
        Meaning.DUPLICATE_REQUEST,
    ),
    (
        "duplicate 400 words",
        400,
        {},
        envelope(1, "request id COIN_REQ1 already used"),
        Meaning.DUPLICATE_REQUEST,
    ),
    ("velocity 36", 200, {}, envelope(36, "Velocity limit breached"), Meaning.THROTTLED),
    ("velocity 37", 200, {}, envelope(37, "Velocity limit breached"), Meaning.THROTTLED),
    ("429 bare", 429, {}, b"", Meaning.THROTTLED),
    ("429 html", 429, HTML, b"<html>Too Many Requests</html>", Meaning.THROTTLED),
    ("503 retry-after", 503, {"Retry-After": "2"}, b"", Meaning.THROTTLED),
    ("503 no retry-after", 503, {}, envelope(1, "Service unavailable"), Meaning.SERVER_FAILURE),
    ("500 envelope", 500, {}, envelope(1, "Internal error"), Meaning.SERVER_FAILURE),
    (
        "502 html",
        502,
        HTML,
        b"<!DOCTYPE html><title>502 Bad gateway</title>",
        Meaning.SERVER_FAILURE,
    ),
    ("504 html", 504, HTML, b"<html>Gateway Time-out</html>", Meaning.SERVER_FAILURE),
    ("500 spring", 500, {}, spring(500, "Internal Server Error", "boom"), Meaning.SERVER_FAILURE),
    (
        "403 challenge",
        403,
        {**HTML, "cf-mitigated": "challenge"},
        b"<html><title>Just a moment...</title></html>",
        Meaning.BLOCKED,
    ),
    ("403 html block", 403, HTML, b"<html>Access denied</html>", Meaning.BLOCKED),
    ("503 challenge", 503, HTML, b"<html>Checking your browser</html>", Meaning.BLOCKED),
    ("403 not enabled", 200, {}, envelope(403, "APIs not enabled"), Meaning.FORBIDDEN),
    ("403 status json", 403, {}, envelope(403, "APIs not enabled for client"), Meaning.FORBIDDEN),
    (
        "oauth invalid_token",
        401,
        {},
        b'{"error":"invalid_token","error_description":"Access token expired: abc"}',
        Meaning.TOKEN_INVALID,
    ),
    (
        "oauth bad credentials",
        400,
        {},
        b'{"error":"invalid_grant","error_description":"Bad credentials"}',
        Meaning.CREDENTIALS_REFUSED,
    ),
    ("token on 200", 200, {}, envelope(401, "Token expired or invalid"), Meaning.TOKEN_INVALID),
    ("token words 403", 403, {}, envelope(1, "Invalid access token"), Meaning.TOKEN_INVALID),
    (
        "spring 401",
        401,
        {},
        spring(401, "Unauthorized", "Invalid or expired token"),
        Meaning.TOKEN_INVALID,
    ),
    ("spring 404", 404, {}, spring(404, "Not Found", "No configuration 1042"), Meaning.NOT_FOUND),
    ("spring 400", 400, {}, spring(400, "Bad Request", "amount must be a number"), Meaning.INVALID),
    (
        "success flag false",
        200,
        {},
        b'{"success": false, "message": "Configuration already exists"}',
        Meaning.EXISTS,
    ),
    ("sandbox 4090", 409, {}, envelope(4090, "Configuration WCC1 already exists"), Meaning.EXISTS),
    ("sandbox 4091", 200, {}, envelope(4091, "Duplicate requestId R1"), Meaning.DUPLICATE_REQUEST),
    ("sandbox 4040", 404, {}, envelope(4040, "No coin configuration"), Meaning.NOT_FOUND),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "meaning"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_every_shape_is_read_to_its_meaning(
    status: int, headers: dict[str, str], body: bytes, meaning: Meaning
) -> None:
    assert read_parts(status, headers, body).meaning is meaning


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (envelope(409, "Coin configuration already exists (coinConfigId WCC123456)"), "WCC123456"),
        (spring(409, "Conflict", "Configuration already exists: id 1042"), "1042"),
        (
            envelope(1, "exists as 5f0c8a2e-1b7d-4e0a-9c3f-2b1d6a7e8f90 already"),
            "5f0c8a2e-1b7d-4e0a-9c3f-2b1d6a7e8f90",
        ),
        (envelope(409, "already exists", {"coinConfigId": 1042}), "1042"),
        (envelope(409, "already exists", {"existingId": "X-77"}), "X-77"),
    ],
)
def test_an_existing_id_is_found_whatever_its_shape(body: bytes, expected: str) -> None:
    answer = read_parts(409, {}, body)
    assert answer.meaning is Meaning.EXISTS
    assert expected in answer.existing_ids
    error = error_for(answer, "Could not create X")
    assert isinstance(error, ConflictError) and expected in error.candidates


def test_retry_after_in_every_form_capped_and_said() -> None:
    assert read_parts(429, {"Retry-After": "3"}, b"").retry_after == 3.0
    assert read_parts(429, {"Retry-After": "0.5"}, b"").retry_after == 0.5
    later = datetime.now(UTC) + timedelta(seconds=30)
    dated = read_parts(429, {"Retry-After": format_datetime(later, usegmt=True)}, b"")
    assert dated.retry_after is not None and 20 <= dated.retry_after <= 31
    long = read_parts(429, {"Retry-After": "3600"}, b"")
    assert long.retry_after == RETRY_AFTER_CAP_S and long.retry_after_asked == 3600
    error = error_for(long, "Could not fetch X")
    assert isinstance(error, RateLimitError) and "3600" in str(error)
    assert read_parts(429, {"Retry-After": "soon"}, b"").retry_after is None


@pytest.mark.parametrize(
    ("meaning_body", "cls"),
    [
        ((200, {}, envelope(412, "Missing amount")), ValidationError),
        ((200, {}, envelope(1, "Coin configuration not found")), NotFoundError),
        ((200, {}, envelope(38, "Duplicate referenceId provided")), DuplicateRequestError),
        ((401, {}, b'{"error":"invalid_token"}'), AuthError),
        ((200, {}, envelope(403, "APIs not enabled")), ForbiddenError),
        ((403, HTML, b"<html>Just a moment...</html>"), BlockedError),
        ((200, HTML, b"<html></html>"), BadAnswerError),
        ((502, HTML, b"<html>Bad gateway</html>"), ServerError),
    ],
)
def test_each_meaning_is_its_own_error(meaning_body: tuple, cls: type) -> None:
    error = error_for(read_parts(*meaning_body), "Could not do it")
    assert type(error) is cls
    assert str(error).startswith("Could not do it: ")


def test_a_cdn_challenge_is_never_called_refused_credentials() -> None:
    error = error_for(read_parts(403, HTML, b"<html>Just a moment...</html>"), "Could not log in")
    assert not isinstance(error, AuthError)
    assert "credentials" not in str(error)


def test_secrets_echoed_in_any_shape_are_scrubbed() -> None:
    body = b'{"error":"invalid_token","error_description":"token tok-secret-1 expired"}'
    answer = read_parts(401, {}, body, secrets=("tok-secret-1",))
    assert "tok-secret-1" not in answer.message + json.dumps(answer.body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (6, 6),
        (6.0, 6),
        ("6", 6),
        (" 6 ", 6),
        ("106.0", 106),
        ("6.5", None),
        ("six", None),
        (True, None),
        (None, None),
        ("1" * 40, None),
        ("1e3", 1000),
    ],
)
def test_whole_numbers_from_any_json_type(value: object, expected: int | None) -> None:
    assert whole_number(value) == expected


def test_a_configuration_answer_is_normalised_and_unknown_fields_set_aside() -> None:
    known, extra = config_payload(
        {
            "coin_config_id": 1042,
            "company_id": "CEKEKCARDS",
            "event": "X",
            "amount": "6.0",
            "createdBy": "ops",
        }
    )
    assert known == {"coinConfigId": "1042", "companyId": "CEKEKCARDS", "event": "X", "amount": 6}
    assert extra == {"createdBy": "ops"}


@pytest.mark.parametrize(
    ("status", "body", "meaning"),
    [
        (
            200,
            b'{"status": "SUCCESS", "message": "done", "data": {"coinConfigId": 9}}',
            Meaning.SUCCESS,
        ),
        (200, b'{"status": "FAILURE", "message": "Configuration already exists"}', Meaning.EXISTS),
        (200, envelope(200, "Success", 7), Meaning.SUCCESS),
        (204, b"", Meaning.SUCCESS),
    ],
)
def test_other_success_and_failure_words(status: int, body: bytes, meaning: Meaning) -> None:
    assert read_parts(status, {}, body).meaning is meaning
