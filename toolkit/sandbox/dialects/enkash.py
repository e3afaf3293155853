"""``enkash``: EnKash's documented conventions of its sibling APIs (codes 0/1/409/412/422,
velocity codes 36/37, duplicate 38; Spring Security OAuth2 token answers)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from starlette.responses import Response

from toolkit.sandbox.dialects.base import (
    NO_STORE,
    REALM,
    Dialect,
    OAuthRefusal,
    Refusal,
    Rotation,
    envelope_response,
    json_response,
)

__all__ = ["EnKashDialect"]


def _first8(token: str) -> str:
    return token[:8] + "…"


class EnKashDialect(Dialect):
    """EnKash's documented conventions (Payouts, Bill Payment, Authentication pages)."""

    name = "enkash"
    summary = "EnKash's documented codes: 0/1/409/412/422, velocity 36/37, duplicate 38"
    token_life_shown: ClassVar[int] = 86399  # what the portal's example says; the real life is ttl

    def __init__(self) -> None:
        super().__init__()
        self._velocity = Rotation((36, 37))

    def token(self, access: str, refresh: str, ttl: int) -> Response:
        body = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": self.token_life_shown,
            "scope": "read write trust",
        }
        return json_response(body, headers=dict(NO_STORE))

    def oauth_refuse(self, refusal: OAuthRefusal) -> Response:
        description = {
            "bad_credentials": "Bad credentials",
            "locked": "User account is locked",
            "bad_client": "Bad client credentials",
        }.get(refusal.kind, refusal.description)
        headers = dict(NO_STORE)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = f"Basic {REALM}"
        body = {"error": refusal.error, "error_description": description}
        return json_response(body, refusal.status, headers)

    def envelope_refusal(self, refusal: Refusal) -> tuple[int, int, str, Any, dict[str, str]]:
        """(HTTP status, response_code, message, payload, headers) of an envelope refusal."""
        kind = refusal.kind
        if kind == "invalid":
            return (
                200,
                412,
                "Missing or invalid parameters: " + "; ".join(refusal.problems),
                None,
                {},
            )
        if kind == "bad_format":
            return 422, 422, "Invalid request format", None, {}
        if kind == "too_large":
            return 413, 422, "Invalid request format: the body is too large", None, {}
        if kind == "conflict":
            rendered = self.render_id(refusal.existing_id)
            message = (
                f"Coin configuration already exists for company {refusal.company_id} and "
                f"event {refusal.event} (coinConfigId {rendered})"
            )
            return 200, 409, message, {"coinConfigId": rendered}, {}
        if kind == "not_found":
            return 200, 1, "Coin configuration not found", None, {}
        if kind == "no_configuration":
            message = (
                "Missing or invalid parameters: no coin configuration for companyId "
                f"{refusal.company_id} and event {refusal.event}"
            )
            return 200, 412, message, None, {}
        if kind == "duplicate_request":
            return 200, 38, "Duplicate referenceId provided", None, {}
        if kind == "busy":
            return 503, 1, "Service unavailable", None, {"Retry-After": "1"}
        if kind == "bug":
            return 500, 1, "Internal server error", None, {}
        if kind in ("route_not_found", "method_not_allowed", "http"):
            headers = dict(refusal.headers or {})
            return refusal.status, 1, refusal.message, None, headers
        if kind == "forbidden":
            return 403, 403, refusal.message, None, {}
        return 400, 1, refusal.message or "Failure", None, {}

    def refuse(self, refusal: Refusal, path: str) -> Response:
        if refusal.kind == "auth":
            return self.auth_refusal(refusal, path)
        status, code, message, payload, headers = self.envelope_refusal(refusal)
        return envelope_response(
            payload, status=status, code=code, message=message, headers=headers or None
        )

    def auth_refusal(self, refusal: Refusal, path: str) -> Response:
        if refusal.reason in ("missing", "malformed"):
            body = {
                "error": "unauthorized",
                "error_description": "Full authentication is required to access this resource",
            }
            headers = {"WWW-Authenticate": f"Bearer {REALM}"}
        else:
            body = {
                "error": "invalid_token",
                "error_description": f"Access token expired: {_first8(refusal.token)}",
            }
            headers = {
                "WWW-Authenticate": f'Bearer {REALM}, error="invalid_token"',
            }
        return json_response(body, 401, headers | NO_STORE)

    def server_fault(self, path: str, rng: random.Random) -> Response:
        if rng.random() < 0.5:
            return envelope_response(None, status=500, code=1, message="Internal server error")
        return envelope_response(None, status=503, code=1, message="Service unavailable")

    def default_throttle(self, path: str, source: str) -> Response:
        return envelope_response(
            None, code=self._velocity.next(), message="Velocity limit breached"
        )

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        return envelope_response(
            None, status=429, code=36, message="Velocity limit breached", headers=headers
        )
