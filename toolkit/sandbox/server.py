"""Running the sandbox in process: uvicorn in a daemon thread on a socket we bind ourselves."""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

import toolkit.sandbox.demo as _demo
from toolkit.sandbox.app import DEFAULT_CREDENTIALS, SandboxApp, SandboxConfig, create_app
from toolkit.sandbox.dialects import dialect_named
from toolkit.sandbox.faults import Faults
from toolkit.sandbox.limiter import RateLimit

if TYPE_CHECKING:
    from toolkit.settings import Settings

__all__ = [
    "SandboxHandle",
    "bind_socket",
    "bind_warning",
    "embedded",
    "is_loopback_host",
    "start_sandbox",
    "url_for",
    "uvicorn_config",
]

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0
_embedded: dict[Path, SandboxHandle] = {}
_embedded_lock = threading.Lock()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def is_loopback_host(host: str) -> bool:
    """True when ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False  # any other name may resolve to a public address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bind_warning(host: str, *, admin_anywhere: bool = False) -> str | None:
    """The warning to give before listening on ``host``, or None for a loopback address."""
    if is_loopback_host(host) and not admin_anywhere:
        return None
    if is_loopback_host(host):
        return (
            "WARNING: --admin-anywhere: the sandbox's admin routes (/_sandbox/reset, faults, "
            "rate limit) answer to every client that can reach it."
        )
    admin = (
        "its admin routes (/_sandbox/*: reset, faults) answer to ANY client"
        if admin_anywhere
        else "its admin routes (/_sandbox/*) still answer only to this machine "
        "(--admin-anywhere opens them)"
    )
    return (
        f"WARNING: the sandbox is listening on {host}, a non-loopback address: it has no real "
        "authentication (its credentials are public defaults) and anyone who can reach this "
        f"address can create configurations and allocate coins; {admin}. Use it only on a "
        "network you trust."
    )


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_config(app: SandboxApp, **overrides: Any) -> uvicorn.Config:
    """The uvicorn settings every sandbox uses: quiet, no access log, h11, asyncio."""
    options: dict[str, Any] = {
        "http": "h11",
        "loop": "asyncio",
        "ws": "none",
        "lifespan": "off",
        "access_log": False,
        "log_level": "warning",
        "log_config": None,  # never reconfigure the host program's logging
        "server_header": False,
        "timeout_graceful_shutdown": 2,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class SandboxHandle:
    """A running in-process sandbox. Stop it with ``.stop()`` or use it as a context manager."""

    def __init__(
        self,
        *,
        app: SandboxApp,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        db_path: Path,
        temp_dir: Path | None,
    ) -> None:
        self.app = app
        self.url = url
        self.db_path = db_path
        self._server = server
        self._thread = thread
        self._temp_dir = temp_dir
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def credentials(self) -> dict[str, str]:
        """client_id, client_secret, username and password (a fresh copy each time)."""
        cfg = self.app.sandbox.config
        return {
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "username": cfg.username,
            "password": cfg.password,
        }

    @property
    def running(self) -> bool:
        return not self._stopped and self._thread.is_alive()

    @property
    def faults(self) -> dict[str, Any]:
        """The live faults (and fault_seed) of this sandbox."""
        return self.app.sandbox.faults.as_dict()

    @property
    def dialect(self) -> str:
        """The name of the dialect this sandbox answers in (fixed for its life)."""
        return self.app.sandbox.dialect.name

    @property
    def rate_limit(self) -> dict[str, Any]:
        """The token bucket's settings: ``{"rate", "burst", "style"}`` (rate None = off)."""
        return self.app.sandbox.bucket.limit.as_dict()

    def set_rate_limit(
        self, rate: float | None, burst: float | None = None, style: str | None = None
    ) -> dict[str, Any]:
        """Limit /api/* to ``rate`` requests a second (None = off), bursts of ``burst`` (None =
        one second's worth); over-limit answers in the dialect's style, or ``style`` (one of
        ``RATE_LIMIT_STYLES``). The bucket starts full. ``ValueError`` on a bad value."""
        self.app.sandbox.bucket.set(RateLimit(rate, burst, style))
        return self.rate_limit

    def stats(self) -> dict[str, int]:
        """Counters of /api requests: api_requests, accepted, throttled (by the bucket),
        throttled_by_fault, server_faults, dropped, token_expired, challenged."""
        return self.app.sandbox.stats.snapshot()

    def clear_stats(self) -> None:
        self.app.sandbox.stats.clear()

    def expire_tokens(self, *, include_refresh: bool = True) -> int:
        """Every issued token expires now (refresh tokens too unless told otherwise): the next
        /api request is answered in the dialect's token-expired style. How many expired."""
        return self.app.sandbox.store.expire_tokens(include_refresh=include_refresh)

    def settings(self, **overrides: Any) -> Settings:
        """Toolkit ``Settings`` pointing at this sandbox with its credentials."""
        from toolkit.settings import Settings  # lazy: settings pulls in python-dotenv

        return Settings(base_url=self.url, **(self.credentials | overrides))

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Partly update the faults in process (no HTTP); ``ValueError`` on a bad name/value."""
        self.app.sandbox.faults.update(changes)
        return self.faults

    def clear_faults(self) -> None:
        self.app.sandbox.faults.clear()

    def reset(self) -> None:
        """Forget configurations, allocations, tokens and lockouts; faults back to off."""
        self.app.sandbox.reset()

    def config_ids(self) -> list[str]:
        """Every coinConfigId the sandbox holds, read in process (no admin route involved).

        The embedded sandbox is seeded with demo data that no registry has seen yet; the
        workspace imports these ids once so the demo programme is visible everywhere."""
        return [row["coinConfigId"] for row in self.app.sandbox.store.list_configs()]

    def seed_demo(self) -> bool:
        """Load the demo data if the database is empty; True when it was loaded."""
        return _demo.seed_demo(self.app.sandbox.store)

    def stop(self) -> None:
        """Stop the server and close the database; removes a temporary database. Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.should_exit = True
        self._thread.join(timeout=5)
        if self._thread.is_alive():  # pragma: no cover - a stuck connection
            self._server.force_exit = True
            self._thread.join(timeout=2)
        self.app.sandbox.store.close()
        with _embedded_lock:
            for home, handle in list(_embedded.items()):
                if handle is self:
                    del _embedded[home]
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        cfg = self.app.sandbox.config
        state = "running" if self.running else "stopped"
        return (
            f"SandboxHandle(url={self.url!r}, db_path={str(self.db_path)!r}, "
            f"dialect={self.dialect!r}, client_id={cfg.client_id!r}, "
            f"username={cfg.username!r}, {state})"
        )


def start_sandbox(
    db_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token_ttl: int = 300,
    client_id: str = DEFAULT_CREDENTIALS["client_id"],
    client_secret: str = DEFAULT_CREDENTIALS["client_secret"],
    username: str = DEFAULT_CREDENTIALS["username"],
    password: str = DEFAULT_CREDENTIALS["password"],
    seed_demo: bool = False,
    fault_seed: int | None = None,
    dialect: str | None = None,
    rate_limit: float | None = None,
    burst: float | None = None,
    rate_limit_style: str | None = None,
    admin_anywhere: bool = False,
    **faults: Any,
) -> SandboxHandle:
    """Run a sandbox under uvicorn in a daemon thread and return its handle once it serves.

    ``db_path`` None uses a temporary file removed at ``stop()``. ``dialect`` names how it
    answers (``dialects.DIALECTS``; None = ``DEFAULT_DIALECT``). ``rate_limit`` (requests a
    second on /api/*, None = off), ``burst`` and ``rate_limit_style`` set the token bucket.
    ``admin_anywhere`` opens /_sandbox/* to non-loopback clients. ``faults`` are the fault
    names (``latency_ms``, ``error_rate``, ...). A bad name or value raises ``ValueError``.
    A non-loopback ``host`` logs a warning: the sandbox has no real authentication.
    """
    initial = Faults().updated(faults)
    dialect_named(dialect)  # a bad name fails before anything is created
    limit = RateLimit(rate_limit, burst, rate_limit_style)
    warning = bind_warning(host, admin_anywhere=admin_anywhere)
    if warning is not None:
        logger.warning("%s", warning)
    temp_dir: Path | None = None
    if db_path is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="coins-sandbox-"))
        db_path = temp_dir / "sandbox.sqlite3"
    db_path = Path(db_path)
    config = SandboxConfig(
        client_id=client_id,
        client_secret=client_secret,
        username=username,
        password=password,
        token_ttl=int(token_ttl),
    )
    app = create_app(
        db_path,
        config=config,
        faults=initial,
        fault_seed=fault_seed,
        dialect=dialect,
        rate_limit=limit,
        admin_anywhere=admin_anywhere,
    )
    if seed_demo:
        _demo.seed_demo(app.sandbox.store)
    try:
        sock = bind_socket(host, port)
    except OSError:
        app.sandbox.store.close()
        raise
    server = uvicorn.Server(uvicorn_config(app))
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # pragma: no cover - reported to the starter below
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, name=f"coins-sandbox-{db_path.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            app.sandbox.store.close()
            raise RuntimeError(f"the sandbox did not start: {failure[0] if failure else 'timeout'}")
        time.sleep(0.005)
    handle = SandboxHandle(
        app=app,
        server=server,
        thread=thread,
        url=url_for(host, sock.getsockname()[1]),
        db_path=db_path,
        temp_dir=temp_dir,
    )
    atexit.register(_stop_at_exit, weakref.ref(handle))
    return handle


def _stop_at_exit(ref: weakref.ref[SandboxHandle]) -> None:
    handle = ref()
    if handle is not None:
        handle.stop()


def embedded(
    home: str | Path, *, seed_demo: bool = True, dialect: str | None = None
) -> SandboxHandle:
    """The one sandbox of this process for ``home`` (on ``home/sandbox.sqlite3``).

    Started on first use, in ``dialect`` (None = ``DEFAULT_DIALECT``); demo data is loaded only
    when that database file is new. Later calls return the same running handle, whatever its
    dialect when ``dialect`` is None; naming a different dialect than the running one's is a
    ``ValueError`` (stop that handle first).
    """
    from toolkit.files import private_dir  # COINS_HOME is the user's alone: 0700

    home = private_dir(Path(home).expanduser(), tighten=True)
    key = home.resolve()
    with _embedded_lock:
        handle = _embedded.get(key)
        if handle is not None and handle.running:
            if dialect is not None and dialect != handle.dialect:
                raise ValueError(
                    f"the embedded sandbox for {key} already runs the {handle.dialect!r} "
                    f"dialect, not {dialect!r}: stop it first"
                )
            return handle
        db_path = key / "sandbox.sqlite3"
        is_new = not db_path.exists() or db_path.stat().st_size == 0
        handle = start_sandbox(db_path, seed_demo=seed_demo and is_new, dialect=dialect)
        _embedded[key] = handle
        return handle
