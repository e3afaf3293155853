"""Reading requests strictly: bodies, JSON objects, fields and forms, refused by meaning.

Bodies are parsed by hand (not by pydantic) so that every refusal names the field, the value and
the reason, and so that the API stays strict: ``amount`` must be a JSON integer,
``configuration`` exactly DEFAULT or CUSTOM. Refusals are ``Refusal``/``OAuthRefusal``; the
active dialect decides how they sound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from toolkit.models import (
    check_amount,
    check_company_id,
    check_event,
    check_request_id,
    check_user_id,
)
from toolkit.sandbox.dialects import OAuthRefusal, Refusal

__all__ = [
    "ALLOCATE_FIELDS",
    "CONFIG_FIELDS",
    "FIELD_CHECKS",
    "MAX_BODY_BYTES",
    "fields",
    "form",
    "invalid",
    "json_object",
    "read_body",
    "show",
]

CONFIG_FIELDS = ("configuration", "companyId", "event", "amount")
ALLOCATE_FIELDS = ("companyId", "event", "requestId", "userId")
MAX_BODY_BYTES = 1_000_000


def show(value: Any, limit: int = 40) -> str:
    """A value as JSON text for a message, shortened so a huge input cannot flood it."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def invalid(problems: list[str]) -> Refusal:
    """Fields refused; each problem text starts with the field's name."""
    return Refusal("invalid", problems=problems)


def _bad_format(problem: str) -> Refusal:
    return Refusal("bad_format", problems=[problem])


def _too_large() -> Refusal:
    return Refusal(
        "too_large", f"Request body too large: at most {MAX_BODY_BYTES:,} bytes", status=413
    )


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to read an answer; this one only keeps the server's log quiet.
        raise Refusal("disconnected", "Client disconnected") from None
    return b"".join(chunks)


class _RepeatedKey(Exception):
    """A JSON object names the same key twice (json.loads would silently keep the last)."""


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen.add(key)
    return dict(pairs)


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; ``Refusal("bad_format")`` when it is not one."""
    raw = await read_body(request)
    if not raw.strip():
        raise _bad_format("the body is empty: send a JSON object")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise _bad_format(
            f"the body must be a JSON object (Content-Type: application/json), not {content_type}"
        )
    try:
        data = json.loads(raw, object_pairs_hook=_no_repeats)
    except _RepeatedKey as exc:
        raise _bad_format(f"field {show(exc.args[0])} is given more than once") from None
    except RecursionError:
        raise _bad_format("the body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, over-long integers
        if "integer string conversion" in str(exc):
            raise _bad_format("a number in the body is too long (at most 4,300 digits)") from None
        raise _bad_format(f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _bad_format(f"the body must be a JSON object, not {_json_type(data)}")
    return data


def _text_problem(name: str, value: Any, check: Callable[[Any], Any]) -> str | None:
    if not isinstance(value, str):
        return f"{name}={show(value)} must be text (a JSON string), not {_json_type(value)}"
    if value != value.strip():
        return f"{name}={show(value)} must not start or end with spaces"
    _, reason = check(value)
    return None if reason is None else f"{name}={show(value)} {reason}"


def _amount_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return (
            f"amount={show(value)} must be a JSON integer (a whole number of coins, "
            f"e.g. 6), not {_json_type(value)}"
        )
    _, reason = check_amount(value)
    return None if reason is None else f"amount={show(value)} {reason}"


def _configuration_problem(value: Any) -> str | None:
    if value in ("DEFAULT", "CUSTOM"):
        return None
    return f"configuration={show(value)} must be exactly DEFAULT or CUSTOM"


FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "configuration": _configuration_problem,
    "companyId": partial(_text_problem, "companyId", check=check_company_id),
    "event": partial(_text_problem, "event", check=check_event),
    "amount": _amount_problem,
    "requestId": partial(_text_problem, "requestId", check=check_request_id),
    "userId": partial(_text_problem, "userId", check=check_user_id),
}


def fields(body: dict[str, Any], names: tuple[str, ...], *, partial: bool) -> dict[str, Any]:
    """The named fields of ``body``, strictly checked; ``Refusal`` listing every problem.

    ``null`` counts as absent (so with ``partial`` it is simply not updated).
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name in names:
        value = body.get(name)
        if value is None:
            if not partial:
                problems.append(f"{name} is missing")
            continue
        problem = FIELD_CHECKS[name](value)
        if problem is None:
            out[name] = value
        else:
            problems.append(problem)
    for name in body:
        if name not in names:
            problems.append(f"unknown field {show(name)} (allowed: {', '.join(names)})")
    if problems:
        raise invalid(problems)
    return out


def _form_refusal(description: str) -> OAuthRefusal:
    return OAuthRefusal("request", 400, "invalid_request", description)


async def form(request: Request) -> dict[str, str]:
    """The token endpoint's form (urlencoded or multipart); each parameter at most once."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    pairs: list[tuple[str, str]]
    if content_type in ("", "application/x-www-form-urlencoded"):
        try:
            raw = await read_body(request)
        except Refusal as exc:
            raise _form_refusal(exc.message) from None
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
        except ValueError:  # bad UTF-8 or too many fields
            raise _form_refusal("The body is not a valid form (UTF-8, at most 32 fields)") from None
    elif content_type == "multipart/form-data":
        try:
            async with request.form(max_files=0, max_fields=32) as parsed:
                pairs = [(k, v) for k, v in parsed.multi_items() if isinstance(v, str)]
        except Exception:  # python-multipart refuses malformed bodies in many ways
            raise _form_refusal("The body is not a valid form") from None
    else:
        raise _form_refusal(
            f"The body must be application/x-www-form-urlencoded, not {content_type}"
        )
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise _form_refusal(f"Parameter {key!r} is given more than once")
        out[key] = value
    return out
