"""`python -m toolkit.ui.serve [streamlit options]`: start the app, or refuse before listening.

The same rule as the app's own gate (`toolkit.ui.access.exposure_problem`), checked with
Streamlit's own reading of the settings (`.streamlit/config.toml`, ``STREAMLIT_*`` variables,
these options) and of the secrets: bound beyond loopback, the app needs ``[auth]`` and a list
of host names. Refused, it prints one line and exits with status 2; otherwise it becomes
``streamlit run app.py`` with the same options. (Started with ``streamlit run`` directly, the
app refuses the same way when the first page is asked for, and stops the server.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["APP", "exposure_problem_for", "main"]

APP = Path(__file__).resolve().parents[2] / "app.py"
_CHECKED = ("server.address", "server.allowedHosts", "secrets.files")
_MULTIPLE = ("server.allowedHosts", "secrets.files")


def _flags(args: Sequence[str]) -> dict[str, Any]:
    """The options among ``args`` that decide exposure (``--server.address X``, ``=X``; the
    lists also as ``a,b``)."""
    found: dict[str, Any] = {}
    items = list(args)
    for i, item in enumerate(items):
        name, eq, value = item.partition("=")
        option = name.removeprefix("--")
        if option not in _CHECKED:
            continue
        if not eq:
            value = items[i + 1] if i + 1 < len(items) else ""
        if option in _MULTIPLE:
            found.setdefault(option, []).extend(v for v in value.split(",") if v)
        else:
            found[option] = value
    return found


def exposure_problem_for(args: Sequence[str] = ()) -> str | None:
    """Why the app must not start with ``args`` here, in one line; None when it may."""
    from streamlit import config
    from streamlit.runtime.secrets import secrets_singleton

    from toolkit.ui.access import auth_configured, exposure_problem

    config.get_config_options(force_reparse=True, options_from_flags=_flags(args))
    secrets = secrets_singleton if secrets_singleton.load_if_toml_exists() else None
    return exposure_problem(
        config.get_option("server.address"),
        has_auth=auth_configured(secrets),
        allowed_hosts=config.get_option("server.allowedHosts"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    problem = exposure_problem_for(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(APP), *args])
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    raise SystemExit(main())
