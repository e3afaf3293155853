"""OpenAPI pieces: the schema describes the real bodies (for the docs page and the fuzzer).

It describes the ``project`` dialect's shapes; other dialects answer the same calls.
"""

from __future__ import annotations

from typing import Any

from toolkit.models import COMPANY_ID_PATTERN, EVENT_PATTERN, MAX_AMOUNT

__all__ = [
    "CONFIG_ANSWER",
    "CONFIG_ID_PARAM",
    "CONFIG_PROPERTIES",
    "DESCRIPTION",
    "UPDATE_ANSWER",
    "api_extra",
    "string",
]


def string(pattern: str, example: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "example": example}


_CONFIGURATION_SCHEMA = {"type": "string", "enum": ["DEFAULT", "CUSTOM"]}
_AMOUNT_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT, "example": 6}
CONFIG_PROPERTIES: dict[str, Any] = {
    "configuration": _CONFIGURATION_SCHEMA,
    "companyId": string(COMPANY_ID_PATTERN, "CEKEKCARDS"),
    "event": string(EVENT_PATTERN, "MEAL_CARD_PAYMENT"),
    "amount": _AMOUNT_SCHEMA,
}


def _envelope_schema(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["payload", "response_code", "response_message"],
        "properties": {
            "payload": payload,
            "response_code": {"type": "integer"},
            "response_message": {"type": "string"},
        },
    }


_ERROR = {
    "description": "Refused: non-zero response_code, response_message says why",
    "content": {"application/json": {"schema": _envelope_schema({"nullable": True})}},
}
CONFIG_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["coinConfigId", "configuration", "companyId", "event", "amount"],
    "properties": {"coinConfigId": {"type": "string", "example": "WCC817428"}} | CONFIG_PROPERTIES,
}
UPDATE_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["coinConfigId", "configuration", "event", "amount"],
    "properties": {
        "coinConfigId": {"type": "string", "example": "WCC024845"},
        "configuration": _CONFIGURATION_SCHEMA,
        "event": CONFIG_PROPERTIES["event"],
        "amount": _AMOUNT_SCHEMA,
    },
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": "Success (response_code 0)",
        "content": {"application/json": {"schema": _envelope_schema(payload)}},
    }


def api_extra(
    ok: dict[str, Any], *statuses: int, body: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "security": [{"bearerAuth": []}],
        "responses": {"200": _ok(ok), "401": _ERROR} | {str(s): _ERROR for s in statuses},
    }
    if body is not None:
        extra["requestBody"] = _json_body(body)
    return extra | more


CONFIG_ID_PARAM: dict[str, Any] = {
    "name": "coinConfigId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "WCC817428"},
}

DESCRIPTION = """\
A local stand-in for EnKash's Point Management (coins) API: the same six calls and answers,
state in one SQLite file, and faults on demand. Default credentials: client `SANDBOX` /
`sandbox-secret`, user `analyst@example.com` / `sandbox-password`.

Faults (`PUT /_sandbox/faults`): latency applies to every answer; errors, 429s, slow answers
after commit and dropped connections apply to `/api/*` only. This schema shows the `project`
dialect's shapes; the other dialects (`enkash`, `spring`, `lenient`, `cdn`) answer the same
calls in their own style (see docs/api.md).
"""
