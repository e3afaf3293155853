"""The contract: value objects, enums and the validation rules every layer shares.

The rules here are the scalar form of the contract's semantics (reference/point-management-api.md,
"Semantics [our reading]"). The sandbox enforces them, the client checks before sending, and
`toolkit.bulk.validate` applies a vectorised form that a property test keeps in agreement.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "COMPANY_ID_PATTERN",
    "EVENT_PATTERN",
    "MAX_AMOUNT",
    "REASONS",
    "REQUEST_ID_PATTERN",
    "USER_ID_PATTERN",
    "Allocation",
    "CoinConfig",
    "Configuration",
    "FieldProblem",
    "ResponseCode",
    "check_amount",
    "check_company_id",
    "check_configuration",
    "check_event",
    "check_request_id",
    "check_user_id",
    "new_request_id",
    "validate_allocation_fields",
    "validate_config_fields",
]

MAX_AMOUNT = 1_000_000
EVENT_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"
COMPANY_ID_PATTERN = r"^[A-Z0-9]{1,32}$"
# [our reading] The portal shows ids like EKQZVMQK and COIN_REQ1234567 and sets no limits; we
# accept letters, digits, `_`, `-`, `.`, `:` and `@`, 1-64 long (enough for derived ids).
USER_ID_PATTERN = r"^[A-Za-z0-9_.@:-]{1,64}$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

_EVENT_RE = re.compile(EVENT_PATTERN)
_COMPANY_RE = re.compile(COMPANY_ID_PATTERN)
_USER_RE = re.compile(USER_ID_PATTERN)
_REQUEST_RE = re.compile(REQUEST_ID_PATTERN)
# ASCII digits only: `\d` would also accept e.g. Arabic-Indic or full-width digits, which the
# vectorised rules (RE2) and the API's JSON integers do not.
# Whole coins; "6.0" and "6.00" (a spreadsheet column formatted with decimals) are whole too.
_WHOLE_RE = re.compile(r"^[+]?[0-9]+(?:\.0+)?$")
_DECIMAL_RE = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+)$")
_SUGGEST_EVENT_RE = re.compile(r"[ -]+")

# Every reason a check can give, in one place, so that the bulk validator (vectorised), the
# client, the sandbox, the app and the CLI all say the same thing.
REASONS = {
    "missing": "is missing",
    "text": "must be text",
    "company_id": "must be 1-32 upper-case letters or digits (e.g. CEKEKCARDS)",
    "event": (
        "must be upper snake case: a capital letter, then capitals, digits or _ "
        "(at most 64 characters, e.g. MEAL_CARD_PAYMENT)"
    ),
    "configuration": "must be DEFAULT or CUSTOM",
    "whole": "must be a whole number of coins",
    "decimals": "must be a whole number of coins (no decimals)",
    "digits": "must be a whole number of coins (digits only, e.g. 6)",
    "negative": "must be 0 or more",
    "too_big": f"must be at most {MAX_AMOUNT:,}",
    "user_id": "must be 1-64 characters: letters, digits, _ . @ : -",
    "request_id": "must be 1-64 characters: letters, digits, _ . : -",
}


def _did_you_mean(reason: str, suggestion: str | None) -> str:
    return reason if suggestion is None else f"{reason}; did you mean {suggestion}?"


class Configuration(StrEnum):
    """`DEFAULT` is the standard amount for an event; `CUSTOM` a company-specific override."""

    DEFAULT = "DEFAULT"
    CUSTOM = "CUSTOM"


class ResponseCode(IntEnum):
    """``response_code`` values in the envelope. [our reading] The portal documents only 0.

    The sandbox answers with these; the client maps by HTTP status first and falls back to
    these codes when an error arrives with HTTP 200.
    """

    SUCCESS = 0
    INVALID_REQUEST = 4000
    UNAUTHORIZED = 4010
    NOT_FOUND = 4040
    NO_CONFIGURATION = 4041
    METHOD_NOT_ALLOWED = 4050
    CONFLICT = 4090
    DUPLICATE_REQUEST = 4091
    RATE_LIMITED = 4290
    SERVER_ERROR = 5000
    UNAVAILABLE = 5030


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem with one field: which field, the value as given, and why it is refused."""

    field: str
    value: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: {self.reason}"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def check_company_id(value: Any) -> tuple[str | None, str | None]:
    """Return (normalised company id, None) or (None, reason). Ids are case-sensitive."""
    if _is_missing(value):
        return None, REASONS["missing"]
    if not isinstance(value, str):
        return None, REASONS["text"]
    text = value.strip()
    if not _COMPANY_RE.match(text):
        # Ids are case-sensitive, so `cekekcards` is refused, but the reason names the fix.
        upper = text.upper() if text.isascii() else ""
        suggestion = upper if _COMPANY_RE.match(upper) else None
        return None, _did_you_mean(REASONS["company_id"], suggestion)
    return text, None


def check_event(value: Any) -> tuple[str | None, str | None]:
    """Return (normalised event, None) or (None, reason). Events are UPPER_SNAKE_CASE."""
    if _is_missing(value):
        return None, REASONS["missing"]
    if not isinstance(value, str):
        return None, REASONS["text"]
    text = value.strip()
    if not _EVENT_RE.match(text):
        upper = _SUGGEST_EVENT_RE.sub("_", text).upper() if text.isascii() else ""
        suggestion = upper if _EVENT_RE.match(upper) else None
        return None, _did_you_mean(REASONS["event"], suggestion)
    return text, None


def check_configuration(value: Any) -> tuple[Configuration | None, str | None]:
    """Return (Configuration, None) or (None, reason). Accepted case-insensitively."""
    if _is_missing(value):
        return None, REASONS["missing"]
    if isinstance(value, Configuration):
        return value, None
    if not isinstance(value, str):
        return None, REASONS["configuration"]
    # ASCII only: str.upper() would turn `cuſtom` (long s) or the `ﬆ` ligature into CUSTOM.
    text = value.strip()
    if not text.isascii() or text.upper() not in Configuration.__members__:
        return None, REASONS["configuration"]
    return Configuration(text.upper()), None


def check_amount(value: Any) -> tuple[int | None, str | None]:
    """Return (amount, None) or (None, reason).

    A whole number of coins from 0 to MAX_AMOUNT. Text is accepted when it is plainly a whole
    number ("6", " 6 ", "+6"); "6.5", "1e3", "abc" and "-5" are refused with the reason.
    """
    if _is_missing(value):
        return None, REASONS["missing"]
    if isinstance(value, bool):
        return None, REASONS["whole"]
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            return None, REASONS["decimals"]
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-") and _WHOLE_RE.match(text[1:]):
            return None, REASONS["negative"]
        if not _WHOLE_RE.match(text):
            return None, REASONS["decimals"] if _DECIMAL_RE.match(text) else REASONS["digits"]
        digits = text.split(".", 1)[0].lstrip("+").lstrip("0")
        if len(digits) > len(str(MAX_AMOUNT)):
            # Too many digits to be an amount (and more than Python turns into an int): say so.
            return None, REASONS["too_big"]
        number = int(text.split(".", 1)[0])
    else:
        return None, REASONS["whole"]
    if number < 0:
        return None, REASONS["negative"]
    if number > MAX_AMOUNT:
        return None, REASONS["too_big"]
    return number, None


def _check_token(
    value: Any, pattern: re.Pattern[str], reason: str
) -> tuple[str | None, str | None]:
    if _is_missing(value):
        return None, REASONS["missing"]
    text = str(value).strip()
    if not pattern.match(text):
        return None, reason
    return text, None


def check_user_id(value: Any) -> tuple[str | None, str | None]:
    """Return (user id, None) or (None, reason)."""
    return _check_token(value, _USER_RE, REASONS["user_id"])


def new_request_id() -> str:
    """A fresh allocation request id, for a single allocation with none given (the app's form,
    `CoinsClient.allocate_coins`): ``COIN_REQ`` and 16 random hex digits, upper case — the
    portal's own example's shape, well inside `REQUEST_ID_PATTERN`."""
    return "COIN_REQ" + uuid.uuid4().hex[:16].upper()


def check_request_id(value: Any) -> tuple[str | None, str | None]:
    """Return (request id, None) or (None, reason)."""
    return _check_token(value, _REQUEST_RE, REASONS["request_id"])


def validate_config_fields(
    *,
    company_id: Any,
    event: Any,
    configuration: Any,
    amount: Any,
    partial: bool = False,
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Check the fields of a create (or, with ``partial``, an update) body.

    Returns the normalised API payload (camelCase keys) and every problem found, so a caller
    can report all of them at once. With ``partial`` a missing (None) field is simply absent.
    """
    checks = (
        ("companyId", company_id, check_company_id),
        ("event", event, check_event),
        ("configuration", configuration, check_configuration),
        ("amount", amount, check_amount),
    )
    payload: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    for name, value, check in checks:
        if partial and value is None:
            continue
        normalised, reason = check(value)
        if reason is None:
            payload[name] = str(normalised) if name == "configuration" else normalised
        else:
            problems.append(FieldProblem(name, value, reason))
    return payload, problems


def validate_allocation_fields(
    *, company_id: Any, event: Any, user_id: Any, request_id: Any
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Check an allocate body; returns the normalised payload and every problem found."""
    checks = (
        ("companyId", company_id, check_company_id),
        ("event", event, check_event),
        ("userId", user_id, check_user_id),
        ("requestId", request_id, check_request_id),
    )
    payload: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    for name, value, check in checks:
        normalised, reason = check(value)
        if reason is None:
            payload[name] = normalised
        else:
            problems.append(FieldProblem(name, value, reason))
    return payload, problems


@dataclass(frozen=True, slots=True)
class CoinConfig:
    """A coin event configuration as the API knows it.

    Every field may be None: the documented update answer has no ``companyId``, and code must
    not invent values it was not given. ``merge`` fills gaps from a known earlier value.
    """

    coin_config_id: str | None = None
    company_id: str | None = None
    event: str | None = None
    configuration: Configuration | None = None
    amount: int | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CoinConfig:
        """Build from an API payload (camelCase keys); unknown keys are ignored."""
        configuration = payload.get("configuration")
        if configuration is not None:
            parsed, _ = check_configuration(configuration)
            configuration = parsed if parsed is not None else configuration
        amount = payload.get("amount")
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        return cls(
            coin_config_id=payload.get("coinConfigId"),
            company_id=payload.get("companyId"),
            event=payload.get("event"),
            configuration=configuration,
            amount=amount,
        )

    def to_payload(self, *, include_id: bool = True) -> dict[str, Any]:
        """The API's camelCase form, leaving out fields that are not known."""
        out: dict[str, Any] = {}
        if include_id and self.coin_config_id is not None:
            out["coinConfigId"] = self.coin_config_id
        for key, value in (
            ("companyId", self.company_id),
            ("event", self.event),
            ("configuration", self.configuration),
            ("amount", self.amount),
        ):
            if value is not None:
                out[key] = str(value) if key == "configuration" else value
        return out

    def merge(self, known: CoinConfig | None) -> CoinConfig:
        """Fill this answer's missing fields from ``known``; never turn values into blanks."""
        if known is None:
            return self
        return replace(
            self,
            coin_config_id=self.coin_config_id or known.coin_config_id,
            company_id=self.company_id if self.company_id is not None else known.company_id,
            event=self.event if self.event is not None else known.event,
            configuration=(
                self.configuration if self.configuration is not None else known.configuration
            ),
            amount=self.amount if self.amount is not None else known.amount,
        )

    def same_values(self, other: CoinConfig) -> bool:
        """True when company, event, configuration and amount all match (ids aside)."""
        return (
            self.company_id == other.company_id
            and self.event == other.event
            and self.configuration == other.configuration
            and self.amount == other.amount
        )


@dataclass(frozen=True, slots=True)
class Allocation:
    """The result of an allocate call: what was asked, and the API's answer message."""

    company_id: str
    event: str
    user_id: str
    request_id: str
    message: str = ""
    # Made before this call (an earlier run of the caller's own): nothing was allocated now.
    already_done: bool = field(default=False)
    # Made by this call, confirmed after its answer was lost (the server refused our repeat
    # as a duplicate of the attempt that had reached it).
    confirmed: bool = field(default=False)
