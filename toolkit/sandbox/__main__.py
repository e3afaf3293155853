"""``python -m toolkit.sandbox``: serve the sandbox until SIGINT or SIGTERM.

Prints exactly one line on stdout once the socket is bound and the server serves:
``Sandbox listening on http://HOST:PORT``. Everything else (credentials, warnings) goes to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from toolkit.sandbox.app import DEFAULT_CREDENTIALS, SandboxConfig, create_app
from toolkit.sandbox.demo import seed_demo
from toolkit.sandbox.dialects import DEFAULT_DIALECT, DIALECTS, RATE_LIMIT_STYLES
from toolkit.sandbox.faults import Faults
from toolkit.sandbox.limiter import RateLimit
from toolkit.sandbox.server import bind_socket, bind_warning, url_for, uvicorn_config

EXAMPLE = """\
example:
  python -m toolkit.sandbox --host 127.0.0.1 --port 8765 --db .coins/sandbox.sqlite3 --seed-demo
  python -m toolkit.sandbox --port 0 --error-rate 0.1 --drop-rate 0.02 --fault-seed 7
  python -m toolkit.sandbox --dialect cdn --rate-limit 40 --burst 10

Dialects (how answers look; the state rules are the same): project, enkash, spring, lenient
(no per-pair uniqueness, repeated requestIds answered as success), cdn. See docs/api.md.
Faults: --latency-ms delays every answer; the error, 429, slow-after-commit, drop and
token-expiry faults apply to /api/* only, the challenge and redirect faults to /api/* and
/oauth/token; each is answered in the dialect's style. Change them while running with
PUT /_sandbox/faults and a JSON object of the same names (e.g. {"error_rate": 0.1}); the rate
limit with
PUT /_sandbox/rate-limit ({"rate": 40, "burst": 10, "style": null}).
Test-only admin routes (loopback clients only, unless --admin-anywhere): POST /_sandbox/reset,
GET /_sandbox/configs, GET /_sandbox/allocations, GET|PUT /_sandbox/faults,
POST /_sandbox/seed-demo, POST /_sandbox/expire-tokens, GET /_sandbox/stats,
GET|PUT /_sandbox/rate-limit.
"""


def _bounded(
    kind: type[int] | type[float], low: float, high: float | None, noun: str, bounds: str
) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind(text)`` within [low, high]; messages say what is expected."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not (low <= value and (high is None or value <= high)):  # also refuses nan
            raise argparse.ArgumentTypeError(bounds.format(text=text))
        return value

    return parse


_rate = _bounded(float, 0.0, 1.0, "a number", "{text} must be between 0 and 1")
_millis = _bounded(float, 0.0, 600_000, "a number", "{text} must be between 0 and 600000 ms")
_port = _bounded(int, 0, 65535, "a port number", "{text} must be 0-65535 (0 = any free port)")
_per_second = _bounded(
    float, 0.001, 1_000_000, "a number", "{text} must be between 0.001 and 1000000 a second"
)
_burst = _bounded(float, 1, 1_000_000, "a number", "{text} must be between 1 and 1000000")
_ttl = _bounded(
    int, 1, None, "a whole number of seconds", "the token TTL must be at least 1 second"
)


def build_parser() -> argparse.ArgumentParser:
    default_db = Path(os.environ.get("COINS_HOME") or ".coins") / "sandbox.sqlite3"
    parser = argparse.ArgumentParser(
        prog="python -m toolkit.sandbox",
        description="A local EnKash coins (Point Management) API: the six calls of the "
        "contract, state in one SQLite file, and faults on demand.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other address prints a warning: "
        "the sandbox has no real authentication)",
    )
    parser.add_argument(
        "--port", type=_port, default=8765, help="port (0 = any free port; default 8765)"
    )
    parser.add_argument(
        "--db", type=Path, default=default_db, help=f"SQLite file (default {default_db})"
    )
    parser.add_argument(
        "--token-ttl", type=_ttl, default=300, help="token lifetime in seconds (default 300)"
    )
    parser.add_argument("--client-id", default=DEFAULT_CREDENTIALS["client_id"])
    parser.add_argument("--client-secret", default=DEFAULT_CREDENTIALS["client_secret"])
    parser.add_argument("--username", default=DEFAULT_CREDENTIALS["username"])
    parser.add_argument("--password", default=DEFAULT_CREDENTIALS["password"])
    parser.add_argument(
        "--dialect",
        choices=list(DIALECTS),
        default=DEFAULT_DIALECT,
        help=f"how the sandbox answers (default {DEFAULT_DIALECT})",
    )
    parser.add_argument(
        "--admin-anywhere",
        action="store_true",
        help="let non-loopback clients use the /_sandbox/* admin routes (reset, faults)",
    )
    parser.add_argument(
        "--seed-demo",
        action="store_true",
        help="load demo companies, events and balances if the database is empty",
    )
    faults = parser.add_argument_group("faults (rates are probabilities from 0 to 1)")
    faults.add_argument("--latency-ms", type=_millis, default=0.0, help="delay every answer")
    faults.add_argument(
        "--error-rate", type=_rate, default=0.0, help="answer the dialect's 5xx at once"
    )
    faults.add_argument(
        "--rate-limit-rate",
        type=_rate,
        default=0.0,
        help="answer the dialect's throttling answer (project: 429 with Retry-After: 1)",
    )
    faults.add_argument(
        "--slow-after-commit-rate",
        type=_rate,
        default=0.0,
        help="do the work and commit, then answer --slow-after-commit-ms late",
    )
    faults.add_argument("--slow-after-commit-ms", type=_millis, default=1000.0)
    faults.add_argument(
        "--drop-rate", type=_rate, default=0.0, help="close the connection without answering"
    )
    faults.add_argument(
        "--token-expiry-rate",
        type=_rate,
        default=0.0,
        help="the request's token dies now and is answered as expired",
    )
    faults.add_argument(
        "--challenge-rate", type=_rate, default=0.0, help="answer a CDN's 403 challenge page"
    )
    faults.add_argument(
        "--redirect-rate",
        type=_rate,
        default=0.0,
        help="answer 302 to a sign-in page (as a gateway may), before doing anything",
    )
    faults.add_argument("--fault-seed", type=int, default=None, help="repeatable fault draws")
    limit = parser.add_argument_group("rate limit (a token bucket on /api/*)")
    limit.add_argument(
        "--rate-limit",
        type=_per_second,
        default=None,
        metavar="R",
        help="at most R requests a second on average (default: no limit)",
    )
    limit.add_argument(
        "--burst",
        type=_burst,
        default=None,
        metavar="B",
        help="bucket size: B requests at once after a quiet spell (default: R, at least 1)",
    )
    limit.add_argument(
        "--rate-limit-style",
        choices=list(RATE_LIMIT_STYLES),
        default=None,
        help="over-limit answer (default: the dialect's own throttling answer)",
    )
    return parser


async def _serve(server: uvicorn.Server, sock: Any, url: str) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        print(f"Sandbox listening on {url}", flush=True)
    await task


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    faults = Faults(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        slow_after_commit_rate=args.slow_after_commit_rate,
        slow_after_commit_ms=args.slow_after_commit_ms,
        drop_rate=args.drop_rate,
        token_expiry_rate=args.token_expiry_rate,
        challenge_rate=args.challenge_rate,
        redirect_rate=args.redirect_rate,
    )
    if args.burst is not None and args.rate_limit is None:
        print("sandbox: --burst needs --rate-limit", file=sys.stderr)
        return 2
    limit = RateLimit(args.rate_limit, args.burst, args.rate_limit_style)
    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        username=args.username,
        password=args.password,
        token_ttl=args.token_ttl,
    )
    try:
        app = create_app(
            args.db,
            config=config,
            faults=faults,
            fault_seed=args.fault_seed,
            dialect=args.dialect,
            rate_limit=limit,
            admin_anywhere=args.admin_anywhere,
        )
    except Exception as exc:  # unreadable path, not a database, ...
        print(f"sandbox: cannot open the database {args.db}: {exc}", file=sys.stderr)
        return 1
    store = app.sandbox.store
    try:
        if args.seed_demo:
            if seed_demo(store):
                print(f"Loaded demo data into {args.db}", file=sys.stderr)
            print(
                f"Credentials: client {config.client_id} / {config.client_secret}, "
                f"user {config.username} / {config.password}",
                file=sys.stderr,
            )
        warning = bind_warning(args.host, admin_anywhere=args.admin_anywhere)
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)
        try:
            sock = bind_socket(args.host, args.port)
        except OSError as exc:
            print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        url = url_for(args.host, sock.getsockname()[1])
        server = uvicorn.Server(
            uvicorn_config(
                app, log_config=uvicorn.config.LOGGING_CONFIG, timeout_graceful_shutdown=3
            )
        )

        def stop(signum: int, frame: object) -> None:
            # Installed before uvicorn's own handlers and restored after them: uvicorn re-raises
            # the signal it caught once it has shut down, and this makes that a clean exit 0.
            server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        asyncio.run(_serve(server, sock, url))
        sock.close()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
