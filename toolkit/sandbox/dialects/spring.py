"""``spring``: success in the envelope (integer ids, amounts and balances as text); errors as
Spring Boot's default error body, no envelope."""

from __future__ import annotations

import random
from typing import Any

from starlette.responses import Response

from toolkit.sandbox.dialects.base import NO_STORE, Refusal, json_response, spring_body
from toolkit.sandbox.dialects.enkash import EnKashDialect

__all__ = ["SpringDialect"]


class SpringDialect(EnKashDialect):
    """Success in the envelope; errors as Spring Boot's default error body, no envelope."""

    name = "spring"
    summary = "Spring Boot error bodies; integer ids, amounts and balances as text"
    id_style = "int"

    def payload(self, call: str, payload: Any) -> Any:
        if call == "balance":
            return f"{int(payload)}.0"
        if isinstance(payload, dict):
            shaped = dict(payload)
            if "coinConfigId" in shaped:
                shaped["coinConfigId"] = self.render_id(shaped["coinConfigId"])
            if "amount" in shaped:
                shaped["amount"] = str(shaped["amount"])
            return shaped
        return payload

    def render_id(self, coin_config_id: str) -> Any:
        # Ids the store made in this style are digits; older ones (demo data, other dialects
        # on the same file) stay as they are.
        return int(coin_config_id) if coin_config_id.isdigit() else coin_config_id

    def token(self, access: str, refresh: str, ttl: int) -> Response:
        body = {
            "accessToken": access,
            "tokenType": "bearer",
            "expiresIn": ttl,
            "refreshToken": refresh,
        }
        return json_response(body, headers=dict(NO_STORE))

    def spring_refusal(self, refusal: Refusal) -> tuple[int, str, dict[str, str]]:
        kind = refusal.kind
        if kind == "invalid":
            return 400, "Validation failed: " + "; ".join(refusal.problems), {}
        if kind == "bad_format":
            detail = "; ".join(refusal.problems) or "the body is not a JSON object"
            return 400, f"JSON parse error: {detail}", {}
        if kind == "too_large":
            return 413, refusal.message, {}
        if kind == "not_found":
            return 404, f"Coin configuration not found: {refusal.coin_config_id}", {}
        if kind == "no_configuration":
            return (
                404,
                f"No coin configuration for companyId {refusal.company_id} and event "
                f"{refusal.event}",
                {},
            )
        if kind == "conflict":
            return (
                409,
                f"Configuration already exists: id {self.render_id(refusal.existing_id)}",
                {},
            )
        if kind == "duplicate_request":
            return 409, f"Duplicate requestId {refusal.request_id}", {}
        if kind == "auth":
            if refusal.reason in ("missing", "malformed"):
                return 401, "Full authentication is required to access this resource", {}
            return 401, "Invalid or expired token", {}
        if kind == "busy":
            return 503, "Service unavailable", {}
        if kind == "bug":
            return 500, "Internal server error", {}
        if kind in ("route_not_found", "method_not_allowed", "http"):
            return refusal.status, refusal.message, dict(refusal.headers or {})
        return 400, refusal.message, {}

    def refuse(self, refusal: Refusal, path: str) -> Response:
        status, message, headers = self.spring_refusal(refusal)
        return json_response(spring_body(status, message, path), status, headers or None)

    def server_fault(self, path: str, rng: random.Random) -> Response:
        status = 500 if rng.random() < 0.5 else 503
        message = "Internal server error" if status == 500 else "Service unavailable"
        return json_response(spring_body(status, message, path), status)

    def default_throttle(self, path: str, source: str) -> Response:
        return self.throttle_429(path, {})

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        return json_response(spring_body(429, "Too many requests", path), 429, headers or None)
