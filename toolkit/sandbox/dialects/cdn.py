"""``cdn``: ``enkash`` behind a CDN: HTML 502/503/504 pages, HTML 429s with every form of
``Retry-After``, and (with ``challenge_rate``) 403 challenge pages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from starlette.responses import Response

from toolkit.sandbox.dialects.base import Rotation, cloudflare_page, html_response
from toolkit.sandbox.dialects.enkash import EnKashDialect

__all__ = ["CdnDialect"]


class CdnDialect(EnKashDialect):
    """``enkash`` behind a CDN: the CDN answers faults and throttling with HTML pages."""

    name = "cdn"
    summary = "enkash behind a CDN: HTML 502/503/504, 429 with every Retry-After form"

    def __init__(self) -> None:
        super().__init__()
        self._gateway = Rotation((502, 503, 504))
        self._retry_after = Rotation(("1", "0.5", "date", None))

    def server_fault(self, path: str, rng: random.Random) -> Response:
        status = self._gateway.next()
        title, detail = {
            502: ("Bad gateway", "The web server reported a bad gateway error."),
            503: ("Service unavailable", "The server is temporarily unable to serve you."),
            504: ("Gateway time-out", "The web server reported a gateway time-out error."),
        }[status]
        return html_response(cloudflare_page(status, title, detail), status)

    def default_throttle(self, path: str, source: str) -> Response:
        form = self._retry_after.next()
        headers: dict[str, str] = {}
        if form == "date":
            later = datetime.now(UTC) + timedelta(seconds=2)
            headers["Retry-After"] = format_datetime(later, usegmt=True)
        elif form is not None:
            headers["Retry-After"] = form
        return self.throttle_429(path, headers)

    def throttle_429(self, path: str, headers: dict[str, str]) -> Response:
        page = cloudflare_page(429, "Too many requests", "You are being rate limited.")
        return html_response(page, 429, headers or None)
