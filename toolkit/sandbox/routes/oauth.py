"""``POST /oauth/token``: the password and refresh_token grants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from toolkit.sandbox.auth import client_from_basic, login_refusal, same
from toolkit.sandbox.dialects import OAuthRefusal
from toolkit.sandbox.parsing import form, show

if TYPE_CHECKING:
    from toolkit.sandbox.state import SandboxState

__all__ = ["router"]

router = APIRouter(tags=["auth"])

_TOKEN_FORM = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
        "username": {"type": "string", "example": "analyst@example.com"},
        "password": {"type": "string", "format": "password"},
        "clientId": {"type": "string", "example": "SANDBOX"},
        "refresh_token": {"type": "string"},
    },
}
_TOKEN_ANSWER = {
    "type": "object",
    "required": ["access_token", "token_type", "refresh_token", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["bearer"]},
        "refresh_token": {"type": "string"},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
_OAUTH_ERROR = {
    "description": "RFC 6749 §5.2 error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "error_description": {"type": "string"},
                },
            }
        }
    },
}


def _request_refusal(description: str) -> OAuthRefusal:
    return OAuthRefusal("request", 400, "invalid_request", description)


@router.post(
    "/oauth/token",
    summary="Get a token (password or refresh_token grant)",
    openapi_extra={
        "security": [{"basicAuth": []}],
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _TOKEN_FORM}},
        },
        "responses": {
            "200": {
                "description": "Tokens (plain OAuth JSON, not the envelope)",
                "content": {"application/json": {"schema": _TOKEN_ANSWER}},
            },
            "400": _OAUTH_ERROR,
            "401": _OAUTH_ERROR,
        },
    },
)
async def oauth_token(request: Request) -> Response:
    state: SandboxState = request.app.sandbox
    cfg, store = state.config, state.store
    client_id = client_from_basic(request, cfg)
    data: dict[str, Any] = await form(request)
    for key in ("clientId", "client_id"):
        if key in data and data[key] != client_id:
            raise OAuthRefusal(
                "bad_client",
                401,
                "invalid_client",
                f"{key} in the body does not match the client in the Authorization header",
            )
    grant = data.get("grant_type")
    if not grant:
        raise _request_refusal("grant_type is missing (use grant_type=password)")
    if grant == "password":
        missing = [name for name in ("username", "password") if not data.get(name)]
        if missing:
            raise _request_refusal(f"{' and '.join(missing)} missing")
        username = data["username"]
        matches = same(username, cfg.username) & same(data["password"], cfg.password)
        result = store.login(
            username=username, password_ok=matches, client_id=client_id, ttl_s=cfg.token_ttl
        )
        if not result.ok:
            raise login_refusal(username, result)
        access, refresh = result.access_token, result.refresh_token
    elif grant == "refresh_token":
        given = data.get("refresh_token")
        if not given:
            raise _request_refusal("refresh_token is missing")
        outcome = store.refresh(given, client_id=client_id, ttl_s=cfg.token_ttl)
        if isinstance(outcome, str):
            raise OAuthRefusal("refresh", 400, "invalid_grant", f"Refresh refused: {outcome}")
        access, refresh = outcome
    else:
        raise OAuthRefusal(
            "request",
            400,
            "unsupported_grant_type",
            f"grant_type {show(grant)} is not supported: use password or refresh_token",
        )
    assert access is not None and refresh is not None
    return state.dialect.token(access, refresh, cfg.token_ttl)
