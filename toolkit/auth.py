"""Bearer tokens for the client: fetched lazily, renewed before expiry, never hammered.

EnKash locks an account after three failed logins in a row, so a refused login (an RFC 6749
error such as ``invalid_grant`` or ``invalid_client``) raises `AuthError` at once, is never
retried, and is remembered: no thread of the same client tries again. Only failures that are
not refusals (no connection, 5xx, 429) are retried, by the session's login retry policy
(`toolkit.session`).

Token answers are read in snake_case (``access_token``, ``expires_in``: Spring Security OAuth2)
and camelCase (``accessToken``, ``expiresIn``: EnKash Payouts). EnKash's portal shows
``"expires_in": 86399`` while documenting a 5-minute life: a token is renewed ahead of the
shorter of the two, less a margin. Refusals are told from trouble by `toolkit.answers`: a CDN's
challenge page or a 5xx is not a refused password and is never remembered as one.

Tokens, passwords and the client secret never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from toolkit.answers import Meaning, error_for, read
from toolkit.errors import AuthError, EnKashError, LoginUnavailableError, redact

__all__ = ["TokenManager"]

logger = logging.getLogger(__name__)

# Renew when less than this share of a token's life is left, and never later than 30 s before.
_RENEW_SHARE = 0.10
_RENEW_MAX_S = 30.0
# Answers to a login that are a verdict on the credentials (remembered: 3 strikes lock).
_REFUSALS = frozenset(
    {
        Meaning.CREDENTIALS_REFUSED,
        Meaning.INVALID,
        Meaning.TOKEN_INVALID,
        Meaning.FORBIDDEN,
        Meaning.FAILURE,
        Meaning.NOT_FOUND,
        Meaning.EXISTS,
    }
)
# EnKash documents bearer tokens living 5 minutes whatever ``expires_in`` says.
DOCUMENTED_TOKEN_LIFE_S = 300.0


class TokenManager:
    """One client's token: a login at a time, renewal before expiry, refusals remembered.

    ``send_login`` performs the token call and returns the `requests.Response` (the client's
    `toolkit.transport.Transport` supplies it, so the login goes through the same session and
    its login retry policy, `toolkit.session`); ``clock`` is injectable so tests can move time.
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
        self._last_login: dict[str, Any] = {}

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

    def last_login(self) -> dict[str, Any]:
        """What the last login answered: ``expires_in`` (as answered), ``life_s`` (what is
        used), ``style`` (snake_case/camelCase). Never the token."""
        return dict(self._last_login)

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
        secrets = (self._password, self._client_secret)
        answer = read(response, secrets=secrets)
        body = answer.body if isinstance(answer.body, dict) else None
        refused = not answer.ok and answer.meaning in _REFUSALS
        if 200 <= status < 300 and body is not None and not refused:
            holder = body
            if not _pick(body, "access_token", "accessToken")[0] and isinstance(
                answer.payload, dict
            ):
                holder = answer.payload  # a token inside EnKash's envelope
            token, style = _pick(holder, "access_token", "accessToken")
            if not isinstance(token, str) or not token:
                raise LoginUnavailableError(
                    "The login answer had no access token; is ENKASH_BASE_URL the EnKash API "
                    f"root? (HTTP {status})",
                    http_status=status,
                )
            answered = _as_seconds(_pick(holder, "expires_in", "expiresIn")[0])
            lifetime = min(answered or DOCUMENTED_TOKEN_LIFE_S, DOCUMENTED_TOKEN_LIFE_S)
            self._token = token
            self._given = False
            self._lifetime = lifetime
            self._expires_at = started + lifetime
            self._last_login = {"expires_in": answered, "life_s": lifetime, "style": style}
            logger.info(
                "Logged in to EnKash as %s (token renewed within %s s; expires_in answered: %s)",
                self._username,
                round(lifetime),
                "none" if answered is None else round(answered),
            )
            return token
        if answer.meaning in (Meaning.SERVER_FAILURE, Meaning.THROTTLED, Meaning.BLOCKED) or (
            200 <= status < 300 and not refused
        ):
            # Trouble on the way, not a verdict on the credentials: not remembered.
            error = error_for(answer, f"Could not log in as {self._username}")
            if 200 <= status < 300:
                raise LoginUnavailableError(
                    f"{error.message} — is ENKASH_BASE_URL the EnKash API root?",
                    http_status=status,
                )
            raise error
        if answer.meaning is Meaning.UNREADABLE:
            # No usable answer (a redirect, a proxy's page, a status no API answers): not a
            # verdict on the credentials, so not remembered.
            raise LoginUnavailableError(
                f"Could not log in as {self._username}: {answer.message}", http_status=status
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
        oauth_error = body.get("error") if body else None
        description = body.get("error_description") if body else None
        reason = str(oauth_error or answer.code or f"HTTP {status}")
        detail = description or (answer.message if answer.message != reason else "")
        if detail and detail not in reason:
            reason += f" — {detail}"
        logger.warning("EnKash refused the login for %s: %s", self._username, oauth_error or status)
        raise self._refuse(
            AuthError(
                f"EnKash refused the login for {self._username} ({reason}). Check "
                "ENKASH_CLIENT_ID/ENKASH_CLIENT_SECRET and ENKASH_USERNAME/ENKASH_PASSWORD. "
                "The toolkit will not try again: the account locks after 3 failed logins",
                http_status=status,
                response_code=str(oauth_error) if oauth_error else answer.code,
                body=redact(answer.body, secrets),
            )
        )


def _pick(body: dict[str, Any], snake: str, camel: str) -> tuple[Any, str | None]:
    if body.get(snake) is not None:
        return body[snake], "snake_case"
    if body.get(camel) is not None:
        return body[camel], "camelCase"
    return None, None


def _as_seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None
