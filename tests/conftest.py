"""Shared fixtures: one real sandbox over loopback for the session, reset per test on demand.

- ``sandbox``: session-scoped ``SandboxHandle`` (uvicorn in a thread, SQLite in a tmp dir).
- ``fresh_sandbox``: the same sandbox, reset (state and faults) before the test; faults are
  switched off again after it.
- ``api``: a ``requests.Session`` on ``fresh_sandbox`` holding a valid bearer token; relative
  paths are joined to the sandbox URL (``api.get("/api/v0/coins/balance", params=...)``).
- ``make_api``: ``make_api(handle, token=True)`` gives such a session for any handle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from toolkit.sandbox import SandboxHandle, start_sandbox


class ApiSession(requests.Session):
    """A ``requests.Session`` bound to one sandbox: relative URLs are joined to its base URL."""

    def __init__(self, handle: SandboxHandle, *, token: bool = True, timeout: float = 10.0):
        super().__init__()
        self.handle = handle
        self.base_url = handle.url
        self.timeout = timeout
        self.access_token: str | None = None
        if token:
            self.login()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)

    def token_response(self, **form: str) -> requests.Response:
        """POST /oauth/token with the sandbox's client auth; ``form`` overrides the defaults."""
        creds = self.handle.credentials
        data = {
            "username": creds["username"],
            "password": creds["password"],
            "grant_type": "password",
            "clientId": creds["client_id"],
        } | form
        # A fresh request (not this session): its bearer header must not replace Basic auth.
        return requests.post(
            self.base_url + "/oauth/token",
            auth=(creds["client_id"], creds["client_secret"]),
            data=data,
            timeout=self.timeout,
        )

    def login(self) -> str:
        answer = self.token_response()
        answer.raise_for_status()
        self.access_token = answer.json()["access_token"]
        self.headers["Authorization"] = f"Bearer {self.access_token}"
        return self.access_token


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def fresh_sandbox(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    sandbox.reset()
    try:
        yield sandbox
    finally:
        sandbox.clear_faults()


@pytest.fixture
def make_api() -> Iterator[Callable[..., ApiSession]]:
    sessions: list[ApiSession] = []

    def make(handle: SandboxHandle, *, token: bool = True, timeout: float = 10.0) -> ApiSession:
        session = ApiSession(handle, token=token, timeout=timeout)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def api(fresh_sandbox: SandboxHandle, make_api: Callable[..., ApiSession]) -> ApiSession:
    return make_api(fresh_sandbox)
