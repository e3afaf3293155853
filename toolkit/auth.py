"""Bearer tokens for the client: fetched lazily, renewed before expiry, never hammered.

EnKash locks an account after three failed logins in a row, so a refused login (an RFC 6749
error such as ``invalid_grant`` or ``invalid_client``) raises `AuthError` at once, is never
retried, and is remembered: no thread of the same client tries again. Only failures that are
not refusals (no connection, 5xx, 429) are retried, by the transport's retry policy.

Tokens, passwords and the client secret never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from toolkit.errors import AuthError, EnKashError, LoginUnavailableError, redact

__all__ = ["BearerAuth", "TokenManager"]

logger = logging.getLogger(__name__)

# Renew when less than this share of a token's life is left, and never later than 30 s before.
_RENEW_SHARE = 0.10
_RENEW_MAX_S = 30.0


class BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer …`` on one request (and keeps netrc from replacing it)."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(•••)"


class TokenManager:
    """One client's token: a login at a time, renewal before expiry, refusals remembered.

    ``send_login`` performs the token call and returns the `requests.Response` (the client
    supplies it so the login goes through the same retrying session); ``clock`` is injectable
    so tests can move time.
    """

    def __init__(
        self,
        *,
        send_login: Callable[[dict[str, str], tuple[str, str]], requests.Response],
        client_id: str | None,
        client_secret: str | None,
        username: str | None,
        password: str | None,
        access_token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_login = send_login
        self._client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = access_token or None
        self._given = bool(access_token)
        self._expires_at: float | None = None  # None: unknown (a given token)
        self._lifetime: float | None = None
        self._refused: AuthError | None = None

    def __repr__(self) -> str:
        return f"TokenManager(username={self._username!r}, state={self.state()['state']!r})"

    @property
    def has_credentials(self) -> bool:
        return bool(self._client_id and self._client_secret and self._username and self._password)

    def token(self) -> str:
        """A usable token, logging in first when there is none or it is about to expire."""
        with self._lock:
            if self._token is not None and not self._needs_renewal():
                return self._token
            return self._login_locked()

    def renew_after_rejection(self, rejected: str) -> bool:
        """The server refused ``rejected`` (expired or unknown): forget it if it is current.

        Returns True when another token may be tried (credentials exist and were never
        refused). The next `token()` logs in; threads that saw the same rejection share one
        login because only the first one finds ``rejected`` still current.
        """
        with self._lock:
            if self._token == rejected:
                logger.info("The API rejected the current token; a new login will be made")
                self._token = None
                self._expires_at = None
                self._given = False
            return self._refused is None and (self._token is not None or self.has_credentials)

    def known(self) -> tuple[str, ...]:
        """Tokens to scrub from any text shown to people (the current one, if any)."""
        token = self._token
        return (token,) if token else ()

    def state(self) -> dict[str, Any]:
        """For display: ``state`` (valid/none/expired/refused), ``expires_in_s``, ``source``."""
        with self._lock:
            if self._refused is not None:
                return {"state": "refused", "expires_in_s": None, "source": None}
            if self._token is None:
                return {"state": "none", "expires_in_s": None, "source": None}
            source = "given" if self._given else "login"
            if self._expires_at is None:
                return {"state": "valid", "expires_in_s": None, "source": source}
            left = self._expires_at - self._clock()
            state = "valid" if left > 0 else "expired"
            return {"state": state, "expires_in_s": round(max(left, 0.0), 1), "source": source}

    # -- internals ---------------------------------------------------------------------------

    def _needs_renewal(self) -> bool:
        if self._expires_at is None or self._lifetime is None:
            return False
        margin = min(_RENEW_MAX_S, _RENEW_SHARE * self._lifetime)
        return self._expires_at - self._clock() < margin

    def _refuse(self, error: AuthError) -> AuthError:
        self._refused = error
        self._token = None
        self._expires_at = None
        return error

    def _login_locked(self) -> str:
        if self._refused is not None:
            # A copy per caller: one exception object raised from many threads shares tracebacks.
            raise AuthError(
                self._refused.message,
                http_status=self._refused.http_status,
                response_code=self._refused.response_code,
            )
        if not self.has_credentials:
            raise AuthError(
                "No usable access token and no credentials to log in with: set "
                "ENKASH_CLIENT_ID, ENKASH_CLIENT_SECRET, ENKASH_USERNAME and ENKASH_PASSWORD "
                "(or a fresh ENKASH_ACCESS_TOKEN)"
            )
        form = {
            "username": str(self._username),
            "password": str(self._password),
            "grant_type": "password",
            "clientId": str(self._client_id),
        }
        logger.debug("Logging in to EnKash as %s", self._username)
        started = self._clock()
        try:
            response = self._send_login(form, (str(self._client_id), str(self._client_secret)))
        except EnKashError:
            raise  # transport trouble after the retry budget: not a refusal, not remembered
        status = response.status_code
        body = _json_or_none(response)
        if 200 <= status < 300:
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise AuthError(
                    "The login answer had no access token; is ENKASH_BASE_URL the EnKash API "
                    f"root? (HTTP {status})",
                    http_status=status,
                )
            lifetime = _as_seconds(body.get("expires_in"))
            self._token = token
            self._given = False
            self._lifetime = lifetime
            self._expires_at = started + lifetime if lifetime is not None else None
            logger.info(
                "Logged in to EnKash as %s (token valid for %s s)",
                self._username,
                "?" if lifetime is None else round(lifetime),
            )
            return token
        # A server that echoes what it was sent must not put the password into our message.
        body = redact(body, (self._password, self._client_secret))
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        if status == 429 or status >= 500:
            from toolkit.client import error_from_response  # shared mapping, no import cycle

            raise error_from_response(
                response,
                f"Could not log in as {self._username}",
                secrets=(self._password, self._client_secret),
            )
        if status in (404, 405):
            # No login at that address: a wrong ENKASH_BASE_URL, not a refused password (and
            # not counted towards a lockout, so it is not remembered either).
            raise LoginUnavailableError(
                f"There is no EnKash login at this server (HTTP {status} from /oauth/token): "
                "check that ENKASH_BASE_URL is the EnKash API root",
                http_status=status,
            )
        # Any other answer is a refusal: never retried, remembered (three tries lock the account).
        reason = str(error or f"HTTP {status}")
        if description:
            reason += f" — {description}"
        logger.warning("EnKash refused the login for %s: %s", self._username, error or status)
        raise self._refuse(
            AuthError(
                f"EnKash refused the login for {self._username} ({reason}). Check "
                "ENKASH_CLIENT_ID/ENKASH_CLIENT_SECRET and ENKASH_USERNAME/ENKASH_PASSWORD. "
                "The toolkit will not try again: the account locks after 3 failed logins",
                http_status=status,
                response_code=error,
                body=body,
            )
        )


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _as_seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None
