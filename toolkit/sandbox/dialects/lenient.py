"""``lenient``: ``enkash`` answers with looser rules (no per-pair uniqueness, silently
idempotent requestIds, UUID ids, auth failures on HTTP 200, null for an unknown id)."""

from __future__ import annotations

from starlette.responses import Response

from toolkit.sandbox.dialects.base import ALLOCATED, Refusal, envelope_response
from toolkit.sandbox.dialects.enkash import EnKashDialect

__all__ = ["LenientDialect"]


class LenientDialect(EnKashDialect):
    """``enkash`` answers with looser rules: no per-pair uniqueness, silent duplicates."""

    name = "lenient"
    summary = "no per-pair uniqueness, repeated requestIds answered as success, UUID ids"
    unique_pairs = False
    id_style = "uuid"

    def refuse(self, refusal: Refusal, path: str) -> Response:
        if refusal.kind == "duplicate_request":
            return self.ok("allocate", ALLOCATED)  # silently idempotent: nothing allocated
        if refusal.kind == "not_found" and refusal.call == "get":
            return envelope_response(None)
        return super().refuse(refusal, path)

    def auth_refusal(self, refusal: Refusal, path: str) -> Response:
        return envelope_response(None, code=401, message="Token expired or invalid")
