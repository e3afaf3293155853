"""Shared fixtures: one real sandbox over loopback for the session, reset per test on demand.

- ``sandbox``: session-scoped ``SandboxHandle`` (uvicorn in a thread, SQLite in a tmp dir).
- ``fresh_sandbox``: the same sandbox, reset (state and faults) before the test; faults are
  switched off again after it.
- ``api``: a ``requests.Session`` on ``fresh_sandbox`` holding a valid bearer token; relative
  paths are joined to the sandbox URL (``api.get("/api/v0/coins/balance", params=...)``).
- ``make_api``: ``make_api(handle, token=True)`` gives such a session for any handle.
- ``make_client``: ``make_client(handle, **options)`` gives a `CoinsClient` on any handle, with
  the handle's credentials and ``sandbox_profile(handle)`` (``profile=None``: none), then the
  test module's ``client_options`` (a fixture a module overrides: its timeouts and backoff),
  then ``options``; every client it made is closed after the test.
- ``sandbox_profile(handle)``: the server profile `coins doctor` learns for that sandbox's
  dialect, probed once per dialect on a throwaway sandbox of the same dialect (so the probe's
  scratch configuration never shows in the tested sandbox's state).

Every test also runs isolated from the checkout and the shell it was started from: no
``ENKASH_*``/``COINS_*`` variable leaks in (only the test switches ``COINS_REQUIRE_BROWSER`` and
``COINS_CHROMIUM`` are kept), and the working directory is a fresh empty folder, so a stray
``.env`` is never read and nothing (a ``.coins/`` registry, a results CSV) lands in the repo.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

from toolkit.profiles import ServerProfile
from toolkit.sandbox import SandboxHandle, start_sandbox

if TYPE_CHECKING:
    from toolkit.client import CoinsClient

# Variables that steer the test run itself, not the toolkit.
_TEST_SWITCHES = {"COINS_REQUIRE_BROWSER", "COINS_CHROMIUM"}


@pytest.fixture(scope="session", autouse=True)
def _no_settings_from_the_outside() -> Iterator[None]:
    """Settings come from each test, never from the shell that started pytest."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("ENKASH_") or (
                name.startswith("COINS_") and name not in _TEST_SWITCHES
            ):
                mp.delenv(name)
        yield


@pytest.fixture(autouse=True)
def _cwd_outside_the_repo(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh, empty working directory: no stray `.env`, and relative defaults (`.coins/`,
    results files) land there, not in the checkout or in another test's folder."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


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


_PROFILES: dict[str, ServerProfile] = {}


def sandbox_profile(handle: SandboxHandle) -> ServerProfile:
    """What the doctor learns about ``handle``'s dialect (see the module docstring)."""
    from toolkit.client import CoinsClient
    from toolkit.doctor import SANDBOX_SCRATCH_COMPANY, run_doctor

    dialect = getattr(handle, "dialect", None) or "project"
    if dialect not in _PROFILES:
        options = {"dialect": dialect} if getattr(handle, "dialect", None) else {}
        with (
            start_sandbox(**options) as probe,
            CoinsClient(base_url=probe.url, **probe.credentials) as client,
        ):
            report = run_doctor(client, scratch_company=SANDBOX_SCRATCH_COMPANY)
        _PROFILES[dialect] = report.profile
    return _PROFILES[dialect]


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    # The project dialect: the contract tests pin its own answer scheme (codes 4090, 4091, …);
    # every promise is checked on every dialect in test_dialect_promises.py.
    handle = start_sandbox(
        tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3", dialect="project"
    )
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


@pytest.fixture
def client_options() -> dict[str, Any]:
    """The options a test module gives every client it makes (override it in the module)."""
    return {}


@pytest.fixture
def make_client(client_options: dict[str, Any]) -> Iterator[Callable[..., CoinsClient]]:
    made: list[CoinsClient] = []

    def make(handle: SandboxHandle, **options: Any) -> CoinsClient:
        from toolkit.client import CoinsClient

        chosen: dict[str, Any] = {**client_options, **options}
        if "profile" not in chosen:
            chosen["profile"] = sandbox_profile(handle)
        client = CoinsClient(**{"base_url": handle.url, **handle.credentials, **chosen})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
