"""A faithful local EnKash coins API: FastAPI + uvicorn, state in one SQLite file, faults.

    from toolkit.sandbox import start_sandbox
    with start_sandbox() as sandbox:          # temp database, free port
        settings = sandbox.settings()         # toolkit Settings pointing at it
        sandbox.set_faults(error_rate=0.1)    # in process, no HTTP

or from a shell: ``python -m toolkit.sandbox --port 8765 --seed-demo``.

Dialects (``start_sandbox(dialect="enkash")``, ``--dialect enkash``) change how it answers,
not what it stores: ``project``, ``enkash``, ``spring``, ``lenient``, ``cdn`` (see
``docs/api.md``). ``DEFAULT_DIALECT`` is the one used when none is named.

Modules: ``app`` (wiring and error handlers), ``routes/`` (``oauth``, ``coins``, ``admin``),
``dialects`` (every answer's rendering), ``parsing`` and ``auth`` (reading requests),
``store`` (SQLite state), ``faults`` (fault injection), ``limiter`` (token bucket, counters),
``demo`` (demo data), ``server`` (in-process runner). Uses only the standard library,
FastAPI/Starlette/uvicorn and ``toolkit.models``.
"""

from __future__ import annotations

from toolkit.sandbox.app import SandboxApp, SandboxConfig, create_app
from toolkit.sandbox.dialects import DEFAULT_DIALECT, DIALECTS, RATE_LIMIT_STYLES
from toolkit.sandbox.faults import FAULT_NAMES, ConnectionDropped, Faults
from toolkit.sandbox.limiter import RateLimit
from toolkit.sandbox.server import SandboxHandle, embedded, start_sandbox

__all__ = [
    "DEFAULT_DIALECT",
    "DIALECTS",
    "FAULT_NAMES",
    "RATE_LIMIT_STYLES",
    "ConnectionDropped",
    "Faults",
    "RateLimit",
    "SandboxApp",
    "SandboxConfig",
    "SandboxHandle",
    "create_app",
    "embedded",
    "start_sandbox",
]
