"""The five ``/api`` calls: create, get, update, allocate, balance.

Each route checks the token, reads its fields, asks the store, and hands the outcome (a payload
or a ``Refusal``) to the active dialect. State rules come from the store and two dialect
attributes (``unique_pairs``, ``id_style``); everything else about the answer is the dialect's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import Response

from toolkit.models import REQUEST_ID_PATTERN, USER_ID_PATTERN
from toolkit.sandbox.auth import require_token
from toolkit.sandbox.dialects import ALLOCATED, Refusal
from toolkit.sandbox.openapi import (
    CONFIG_ANSWER,
    CONFIG_ID_PARAM,
    CONFIG_PROPERTIES,
    UPDATE_ANSWER,
    api_extra,
    string,
)
from toolkit.sandbox.parsing import (
    ALLOCATE_FIELDS,
    CONFIG_FIELDS,
    FIELD_CHECKS,
    fields,
    invalid,
    json_object,
    show,
)
from toolkit.sandbox.store import ConfigConflict, ConfigNotFound, DuplicateRequest, NoConfiguration

if TYPE_CHECKING:
    from toolkit.sandbox.state import SandboxState

__all__ = ["router"]

router = APIRouter(tags=["coins"])

_ACTION_PATHS = {"create-coins-config": "POST", "allocate-coin": "POST"}


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.sandbox
    require_token(request, state.store)
    return state


def _conflict(exc: ConfigConflict) -> Refusal:
    return Refusal(
        "conflict",
        f"Configuration {exc.existing_id} already exists for company {exc.company_id} "
        f"and event {exc.event}",
        existing_id=exc.existing_id,
        company_id=exc.company_id,
        event=exc.event,
    )


def _config_id(request: Request) -> str:
    coin_config_id = request.path_params["coinConfigId"]
    action = _ACTION_PATHS.get(coin_config_id)
    if action is not None:
        raise Refusal(
            "method_not_allowed",
            f"Method not allowed: {request.method} {request.url.path} (allowed: {action})",
            status=405,
            headers={"Allow": action},
            allow=action,
        )
    return coin_config_id


def _not_found(coin_config_id: str, call: str) -> Refusal:
    return Refusal(
        "not_found",
        f"No coin configuration with coinConfigId {show(coin_config_id, 60)}",
        coin_config_id=coin_config_id,
        call=call,
    )


@router.post(
    "/api/v0/enkash-coins/create-coins-config",
    summary="Create a coin event configuration",
    openapi_extra=api_extra(
        CONFIG_ANSWER,
        400,
        409,
        body={
            "type": "object",
            "required": list(CONFIG_FIELDS),
            "properties": CONFIG_PROPERTIES,
            "additionalProperties": False,
        },
    ),
)
async def create_config(request: Request) -> Response:
    state = _state(request)
    values = fields(await json_object(request), CONFIG_FIELDS, partial=False)
    dialect = state.dialect
    try:
        created = state.store.create_config(
            company_id=values["companyId"],
            event=values["event"],
            configuration=values["configuration"],
            amount=values["amount"],
            unique_pairs=dialect.unique_pairs,
            id_style=dialect.id_style,
        )
    except ConfigConflict as exc:
        raise _conflict(exc) from None
    return dialect.ok("create", created)


@router.get(
    "/api/v0/enkash-coins/{coinConfigId}",
    summary="Get one configuration",
    openapi_extra=api_extra(CONFIG_ANSWER, 404, parameters=[CONFIG_ID_PARAM]),
)
async def get_config(request: Request) -> Response:
    state = _state(request)
    coin_config_id = _config_id(request)
    found = state.store.get_config(coin_config_id)
    if found is None:
        raise _not_found(coin_config_id, "get")
    return state.dialect.ok("get", found)


@router.patch(
    "/api/v0/enkash-coins/{coinConfigId}",
    summary="Update a configuration (every field optional)",
    openapi_extra=api_extra(
        UPDATE_ANSWER,
        400,
        404,
        409,
        body={
            "type": "object",
            "properties": CONFIG_PROPERTIES,
            "additionalProperties": False,
            "minProperties": 1,
        },
        parameters=[CONFIG_ID_PARAM],
    ),
)
async def update_config(request: Request) -> Response:
    state = _state(request)
    coin_config_id = _config_id(request)
    changes = fields(await json_object(request), CONFIG_FIELDS, partial=True)
    if not changes:
        raise invalid([f"nothing to update: send at least one of {', '.join(CONFIG_FIELDS)}"])
    try:
        updated = state.store.update_config(
            coin_config_id, changes, unique_pairs=state.dialect.unique_pairs
        )
    except ConfigNotFound:
        raise _not_found(coin_config_id, "update") from None
    except ConfigConflict as exc:
        raise _conflict(exc) from None
    # As documented: the update answer has no companyId.
    return state.dialect.ok(
        "update",
        {
            "coinConfigId": updated["coinConfigId"],
            "configuration": updated["configuration"],
            "event": updated["event"],
            "amount": updated["amount"],
        },
    )


@router.post(
    "/api/v0/enkash-coins/allocate-coin",
    summary="Allocate the configured coins to a user (idempotent by requestId)",
    openapi_extra=api_extra(
        {"type": "string", "example": ALLOCATED},
        400,
        404,
        409,
        body={
            "type": "object",
            "required": list(ALLOCATE_FIELDS),
            "properties": {
                "companyId": CONFIG_PROPERTIES["companyId"],
                "event": CONFIG_PROPERTIES["event"],
                "requestId": string(REQUEST_ID_PATTERN, "COIN_REQ1234567"),
                "userId": string(USER_ID_PATTERN, "EKQZVMQK"),
            },
            "additionalProperties": False,
        },
    ),
)
async def allocate_coin(request: Request) -> Response:
    state = _state(request)
    values = fields(await json_object(request), ALLOCATE_FIELDS, partial=False)
    try:
        state.store.allocate(
            request_id=values["requestId"],
            user_id=values["userId"],
            company_id=values["companyId"],
            event=values["event"],
        )
    except DuplicateRequest:
        raise Refusal(
            "duplicate_request",
            f"Duplicate requestId {values['requestId']}: coins were already allocated for "
            "this request; nothing was allocated again",
            request_id=values["requestId"],
        ) from None
    except NoConfiguration:
        raise Refusal(
            "no_configuration",
            f"No coin configuration for company {values['companyId']} and event "
            f"{values['event']}: create one before allocating",
            company_id=values["companyId"],
            event=values["event"],
        ) from None
    return state.dialect.ok("allocate", ALLOCATED)


@router.get(
    "/api/v0/coins/balance",
    summary="A user's coin balance",
    openapi_extra=api_extra(
        {"type": "integer", "minimum": 0},
        400,
        parameters=[
            {
                "name": "userId",
                "in": "query",
                "required": True,
                "schema": string(USER_ID_PATTERN, "EK6CYE6K"),
            }
        ],
    ),
)
async def balance(request: Request) -> Response:
    state = _state(request)
    given = request.query_params.getlist("userId")
    if not given or not given[0]:
        raise invalid(["userId is missing: GET /api/v0/coins/balance?userId=EK6CYE6K"])
    if len(given) > 1:
        raise invalid(["userId is given more than once"])
    problem = FIELD_CHECKS["userId"](given[0])
    if problem is not None:
        raise invalid([problem])
    return state.dialect.ok("balance", state.store.balance(given[0]))
