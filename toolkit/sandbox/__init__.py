"""A faithful local EnKash coins API: FastAPI + uvicorn, state in one SQLite file, faults.

    from toolkit.sandbox import start_sandbox
    with start_sandbox() as sandbox:          # temp database, free port
        settings = sandbox.settings()         # toolkit Settings pointing at it
        sandbox.set_faults(error_rate=0.1)    # in process, no HTTP

or from a shell: ``python -m toolkit.sandbox --port 8765 --seed-demo``.

Modules: ``app`` (the routes), ``store`` (SQLite state), ``faults`` (fault injection),
``demo`` (demo data), ``server`` (in-process runner). Uses only the standard library,
FastAPI/Starlette/uvicorn and ``toolkit.models``.
"""

from __future__ import annotations

from toolkit.sandbox.app import SandboxApp, SandboxConfig, create_app
from toolkit.sandbox.faults import FAULT_NAMES, ConnectionDropped, Faults
from toolkit.sandbox.server import SandboxHandle, embedded, start_sandbox

__all__ = [
    "FAULT_NAMES",
    "ConnectionDropped",
    "Faults",
    "SandboxApp",
    "SandboxConfig",
    "SandboxHandle",
    "create_app",
    "embedded",
    "start_sandbox",
]
