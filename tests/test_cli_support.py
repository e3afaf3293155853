"""Helpers for the CLI tests (no tests here): the environment that points `coins` at a test
sandbox, running it in process (fast) or as `python -m toolkit` (exit codes, signals)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def sandbox_env(handle: Any, home: Path, **overrides: str) -> dict[str, str]:
    """The variables that make `coins` talk to ``handle`` and keep its files in ``home``."""
    settings = handle.settings()
    env = {
        "ENKASH_BASE_URL": settings.base_url,
        "ENKASH_CLIENT_ID": settings.client_id,
        "ENKASH_CLIENT_SECRET": settings.client_secret,
        "ENKASH_USERNAME": settings.username,
        "ENKASH_PASSWORD": settings.password,
        "COINS_HOME": str(home),
        "COINS_ACTOR": "cli-test",
    }
    env.update(overrides)
    return env


def process_env(env: dict[str, str]) -> dict[str, str]:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENKASH_", "COINS_")) and k != "PYTHONPATH"
    }
    full.update(env)
    full["PYTHONPATH"] = str(REPO)
    full["PYTHONUNBUFFERED"] = "1"
    return full


def coins_command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", *argv]


def run_coins(*argv: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> Outcome:
    """`python -m toolkit …` as an analyst runs it."""
    done = subprocess.run(
        coins_command(*argv),
        env=process_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def write_configs(path: Path, rows: list[tuple[str, str, Any]], *, header: str = "") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow((header or "companyId,event,amount").split(","))
        writer.writerows(rows)
    return path


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def assert_one_line_error(err: str, *, contains: str = "") -> str:
    """stderr holds exactly one line, ``coins: error: …``, and never a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("coins: error: "), err
    assert contains.lower() in lines[0].lower(), err
    return lines[0]
