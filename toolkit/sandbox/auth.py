"""Who is asking: bearer tokens on /api, Basic client credentials on /oauth/token."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.requests import Request

from toolkit.sandbox.dialects import OAuthRefusal, Refusal, expired_token_refusal
from toolkit.sandbox.parsing import show
from toolkit.sandbox.store import LOCKOUT_AFTER, LoginResult, Store

if TYPE_CHECKING:
    from toolkit.sandbox.state import SandboxConfig

__all__ = ["bearer_token", "client_from_basic", "login_refusal", "require_token", "same"]

_REALM = 'realm="enkash-sandbox"'


def same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _auth(reason: str, message: str, token: str = "") -> Refusal:
    return Refusal(
        "auth",
        message,
        status=401,
        headers={"WWW-Authenticate": f"Bearer {_REALM}"},
        reason=reason,
        token=token,
    )


def bearer_token(request: Request) -> str | None:
    """The bearer token the request carries, if its Authorization header is one."""
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def require_token(request: Request, store: Store) -> str:
    """The username behind the request's bearer token, or a ``Refusal("auth")`` saying why."""
    header = request.headers.get("authorization")
    if not header or not header.strip():
        raise _auth(
            "missing",
            "Missing access token: send 'Authorization: Bearer <access_token>' "
            "(get one from POST /oauth/token)",
        )
    token = bearer_token(request)
    if token is None:
        raise _auth(
            "malformed",
            "The Authorization header must be 'Bearer <access_token>' "
            "(get a token from POST /oauth/token)",
        )
    info = store.token_info(token)
    if info is None:
        raise _auth("unknown", "Unknown access token: get a new one from POST /oauth/token", token)
    if info.kind != "access":
        raise _auth(
            "refresh",
            "That is a refresh token: send the access_token from POST /oauth/token",
            token,
        )
    if info.expires_at <= time.time():
        raise expired_token_refusal(token)
    return info.username


def client_from_basic(request: Request, config: SandboxConfig) -> str:
    """The client id of valid ``Authorization: Basic`` credentials, else ``invalid_client``."""
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise OAuthRefusal(
            "bad_client",
            401,
            "invalid_client",
            "Client authentication required: send 'Authorization: Basic "
            "base64(clientId:clientSecret)'",
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise OAuthRefusal(
            "bad_client",
            401,
            "invalid_client",
            "The Basic credentials are not base64 of clientId:clientSecret",
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthRefusal(
            "bad_client",
            401,
            "invalid_client",
            "The Basic credentials must be clientId:clientSecret",
        )
    # RFC 6749 §2.3.1 form-encodes both parts first; most clients do not. Accept either.
    for cid, sec in ((client_id, secret), (unquote(client_id), unquote(secret))):
        if same(cid, config.client_id) and same(sec, config.client_secret):
            return config.client_id
    raise OAuthRefusal("bad_client", 401, "invalid_client", "Unknown client or wrong client secret")


def login_refusal(username: str, result: LoginResult) -> OAuthRefusal:
    """The refusal of a failed password login (the project wording counts the strikes)."""
    who = show(username, 60)
    unlock = (
        "Unlock it by resetting the sandbox (POST /_sandbox/reset) or starting it on a fresh "
        "database."
    )
    if result.locked and result.already_locked:
        text = (
            f"Account {who} is locked after {LOCKOUT_AFTER} failed login attempts in a row; "
            f"even the right password is refused. {unlock}"
        )
    elif result.locked:
        text = (
            f"Bad credentials: wrong username or password. That was {LOCKOUT_AFTER} failed "
            f"attempts in a row, so account {who} is now locked after {LOCKOUT_AFTER} failed "
            f"attempts. {unlock}"
        )
    else:
        text = (
            f"Bad credentials: wrong username or password ({result.failures} of "
            f"{LOCKOUT_AFTER} failed attempts in a row; the account locks at {LOCKOUT_AFTER})"
        )
    kind = "locked" if result.already_locked else "bad_credentials"
    return OAuthRefusal(kind, 400, "invalid_grant", text)
