"""``/_sandbox/*``: test-only admin routes, hidden from the schema so the fuzzer never resets.

They answer only to loopback clients unless the sandbox was started with ``admin_anywhere``
(``--admin-anywhere``): anyone who can reach them can wipe the database or inject faults.
Their answers are always in the ``project`` dialect's envelope.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from toolkit.sandbox.demo import seed_demo
from toolkit.sandbox.dialects import Refusal, envelope_response
from toolkit.sandbox.limiter import RateLimit
from toolkit.sandbox.parsing import invalid, json_object

if TYPE_CHECKING:
    from toolkit.sandbox.state import SandboxState

__all__ = ["is_loopback", "router"]


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else or None."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def _loopback_only(request: Request) -> None:
    state: SandboxState = request.app.sandbox
    host = request.client.host if request.client else None
    if not state.admin_anywhere and not is_loopback(host):
        raise Refusal(
            "forbidden",
            "The sandbox's admin routes answer only to loopback clients; start the sandbox "
            "with --admin-anywhere (start_sandbox(admin_anywhere=True)) to allow others",
            status=403,
        )


router = APIRouter(
    prefix="/_sandbox", include_in_schema=False, dependencies=[Depends(_loopback_only)]
)


def _state(request: Request) -> SandboxState:
    return request.app.sandbox


@router.post("/reset")
async def admin_reset(request: Request) -> Response:
    _state(request).reset()
    return envelope_response(
        "Sandbox reset: configurations, allocations, tokens, lockouts and faults"
    )


@router.get("/configs")
async def admin_configs(request: Request) -> Response:
    return envelope_response(_state(request).store.list_configs())


@router.get("/allocations")
async def admin_allocations(request: Request) -> Response:
    return envelope_response(_state(request).store.list_allocations())


@router.get("/faults")
async def admin_get_faults(request: Request) -> Response:
    return envelope_response(_state(request).faults.as_dict())


@router.put("/faults")
async def admin_put_faults(request: Request) -> Response:
    state = _state(request)
    changes = await json_object(request)
    try:
        state.faults.update(changes)
    except ValueError as exc:
        raise invalid([str(exc)]) from None
    return envelope_response(state.faults.as_dict())


@router.post("/seed-demo")
async def admin_seed_demo(request: Request) -> Response:
    store = _state(request).store
    seeded = seed_demo(store)
    return envelope_response({"seeded": seeded, "configs": store.count_configs()})


@router.post("/expire-tokens")
async def admin_expire_tokens(request: Request) -> Response:
    expired = _state(request).store.expire_tokens()
    return envelope_response({"expired": expired})


@router.get("/stats")
async def admin_stats(request: Request) -> Response:
    return envelope_response(_state(request).stats.snapshot())


@router.get("/rate-limit")
async def admin_get_rate_limit(request: Request) -> Response:
    return envelope_response(_state(request).bucket.limit.as_dict())


@router.put("/rate-limit")
async def admin_put_rate_limit(request: Request) -> Response:
    state = _state(request)
    body = await json_object(request)
    unknown = sorted(set(body) - {"rate", "burst", "style"})
    if unknown:
        raise invalid([f"unknown field {name!r} (allowed: rate, burst, style)" for name in unknown])
    try:
        limit = RateLimit(body.get("rate"), body.get("burst"), body.get("style"))
    except ValueError as exc:
        raise invalid([str(exc)]) from None
    state.bucket.set(limit)
    return envelope_response(limit.as_dict())
