"""The pure ASGI middleware that injects the sandbox's faults (`toolkit.sandbox.faults`) and
applies its token bucket (`toolkit.sandbox.limiter`), outermost, so ``send`` is the server's
own (a drop closes the real connection)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.sandbox.auth import bearer_token
from toolkit.sandbox.faults import ConnectionDropped

if TYPE_CHECKING:
    from toolkit.sandbox.state import SandboxState

__all__ = ["FaultMiddleware"]


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _drop(send: Send) -> None:
    """Close the client's TCP connection without a byte of answer.

    Under uvicorn ``send`` is a bound method of the request cycle, whose ``transport`` is the
    connection. Marking the cycle disconnected stops uvicorn from writing its own 500 after the
    app returns without answering.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise ConnectionDropped("sandbox drop fault: connection closed without an answer")
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True
    transport.close()


class FaultMiddleware:
    """Pure ASGI middleware; must wrap the app outermost so ``send`` is the server's own.

    Runs, in order, for ``/api/*``: the challenge and redirect faults (``/oauth/token`` too),
    the token bucket, then the drop, error, rate-limit and token-expiry faults (each answered
    before anything is done) and the slow-after-commit fault; latency applies to every answer.
    """

    def __init__(self, app: ASGIApp, sandbox: SandboxState) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        state = sandbox.faults
        faults = state.faults
        loop = asyncio.get_running_loop()
        ready_at = loop.time() + faults.latency_ms / 1000.0
        path = scope.get("path", "")
        slow_s = 0.0

        async def answer(response: Any) -> None:
            await _sleep_until(loop, ready_at)
            await response(scope, receive, send)

        is_api = _is_api(path)
        if (is_api or path == "/oauth/token") and state.draw(faults.challenge_rate):
            sandbox.stats.count("challenged")
            await answer(sandbox.dialect.challenge(path))
            return
        if (is_api or path == "/oauth/token") and state.draw(faults.redirect_rate):
            sandbox.stats.count("redirected")
            await answer(_sign_in_redirect(scope))
            return
        if is_api:
            dialect, stats = sandbox.dialect, sandbox.stats
            stats.count("api_requests")
            if not sandbox.bucket.take():
                stats.count("throttled")
                style = sandbox.bucket.limit.style
                await answer(dialect.throttle(path, "bucket", style))
                return
            if state.draw(faults.drop_rate):
                stats.count("dropped")
                await _sleep_until(loop, ready_at)
                _drop(send)
                return
            if state.draw(faults.error_rate):
                stats.count("server_faults")
                await answer(dialect.server_fault(path, state.rng))
                return
            if state.draw(faults.rate_limit_rate):
                stats.count("throttled_by_fault")
                await answer(dialect.throttle(path, "fault"))
                return
            if state.draw(faults.token_expiry_rate):
                token = bearer_token(Request(scope))
                if token is not None and sandbox.store.expire_token(token):
                    stats.count("token_expired")
                    await answer(dialect.token_expired(token, path))
                    return
            if state.draw(faults.slow_after_commit_rate):
                slow_s = faults.slow_after_commit_ms / 1000.0
            stats.count("accepted")
        if faults.latency_ms <= 0 and slow_s <= 0:
            await self.app(scope, receive, send)
            return

        async def late_send(message: Message) -> None:
            # The endpoint has finished (and committed) by the time it starts its answer.
            if message["type"] == "http.response.start":
                await _sleep_until(loop, ready_at)
                if slow_s > 0:
                    await asyncio.sleep(slow_s)
            await send(message)

        try:
            await self.app(scope, receive, late_send)
        except asyncio.CancelledError:
            # uvicorn cancels answers still waiting when its graceful shutdown runs out: close
            # the connection (as the client would see of a stopped server), no traceback.
            with suppress(ConnectionDropped):
                _drop(send)


def _sign_in_redirect(scope: Scope) -> Response:
    """What a gateway in front of an API may answer a request it wants signed in first."""
    return Response(
        status_code=302,
        headers={"Location": f"/sso/login?next={quote(str(scope.get('path', '')))}"},
    )


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
