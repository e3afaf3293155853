"""The sandbox's routes, one router per concern: ``oauth`` (tokens), ``coins`` (the five /api
calls) and ``admin`` (``/_sandbox/*``, test-only, loopback only unless allowed)."""

from __future__ import annotations

from toolkit.sandbox.routes import admin, coins, oauth

__all__ = ["admin", "coins", "oauth"]
