"""Helpers for the hostile-input tests (no tests here): the corpus, built once, and child
processes whose peak memory is measured (``os.wait4``) under a watchdog.

The corpus (`tests/data/make_hostile.py`) is written at test time into a folder outside the
checkout, named after the generator's own hash: a second run reuses it, a changed generator
makes a new one. Nothing of it is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "data"))

import make_hostile  # noqa: E402  (tests/data is not a package)

CORPUS = make_hostile.CORPUS
ISSUE = [h for h in CORPUS if h.issue]
PEAK_MB = 300  # the issue's bound for a refused file, the child's whole peak RSS
WATCHDOG_MB = 1_500  # a child past this is killed: the test fails instead of the machine


def corpus_dir() -> Path:
    """The corpus folder, every file of it made (once per generator version)."""
    source = (ROOT / "tests" / "data" / "make_hostile.py").read_bytes()
    folder = (
        Path(tempfile.gettempdir()) / f"coins-hostile-{hashlib.sha256(source).hexdigest()[:12]}"
    )
    make_hostile.write(folder)
    return folder


@dataclass
class Measured:
    code: int
    out: str
    err: str
    peak_mb: float
    killed: bool

    def json(self) -> Any:
        return json.loads(self.out)


# Linux keeps a process's peak RSS across fork and exec: a child forked from this (large)
# pytest process would report pytest's own size as its peak. A small Python starts the measured
# command instead, reaps it with wait4 and writes that grandchild's own peak (KiB) to a file.
_REAPER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 240
) -> Measured:
    """Run ``argv`` as a grandchild (see `_REAPER`); its own peak RSS comes from the kernel."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".peak") as peak,
    ):
        reaper = [sys.executable, "-c", _REAPER, peak.name, *argv]
        child = subprocess.Popen(reaper, env=env, cwd=cwd, stdout=out, stderr=err)
        killed = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + timeout
            try:
                proc = psutil.Process(child.pid)
                while child.returncode is None and time.monotonic() < deadline:
                    family = [proc, *proc.children(recursive=True)]
                    if max(p.memory_info().rss for p in family) > WATCHDOG_MB * 2**20:
                        break
                    time.sleep(0.05)
                else:
                    if child.returncode is not None:
                        return
                killed.set()
                for p in proc.children(recursive=True):
                    p.kill()
                child.kill()
            except psutil.Error:
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        watcher.join(timeout=5)
        out.seek(0)
        err.seek(0)
        return Measured(
            code=child.returncode,
            out=out.read().decode("utf-8", "replace"),
            err=err.read().decode("utf-8", "replace"),
            peak_mb=_peak_kib(peak.name, usage) / 1024,  # KiB on Linux
            killed=killed.is_set(),
        )


def _peak_kib(path: str, reaper_usage: Any) -> float:
    """The measured command's own peak, or the reaper's when it was killed before writing."""
    try:
        return float(Path(path).read_text() or reaper_usage.ru_maxrss)
    except (OSError, ValueError):
        return float(reaper_usage.ru_maxrss)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: this one without ENKASH_/COINS_ settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENKASH_", "COINS_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(extra or {}))
    return env


READ_BOTH = """
import json, sys
from toolkit.bulk import SheetError, read_allocations, read_configs
out = {}
for reader in (read_configs, read_allocations):
    try:
        sheet = reader(sys.argv[1])
    except SheetError as exc:
        out[reader.__name__] = {"refused": str(exc)}
    else:
        out[reader.__name__] = {"rows": len(sheet), "read": sheet.describe()}
print(json.dumps(out))
"""


def read_in_child(path: Path, *, env: dict[str, str], cwd: Path) -> Measured:
    """`read_configs` and `read_allocations` of ``path`` in a fresh interpreter."""
    return run_measured([sys.executable, "-c", READ_BOTH, str(path)], env=child_env(env), cwd=cwd)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


APP_UPLOAD = """
import json, resource, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import pytest
from test_app_support import open_page, point_app_at, texts

from toolkit.settings import Settings


class Server:  # the parent's sandbox, by its address (point_app_at asks it for settings)
    def __init__(self, spec):
        self.spec = spec

    def settings(self, **overrides):
        return Settings(**self.spec)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


home = Path(sys.argv[2])
server = Server(json.loads(sys.argv[3]))
out = {}
with pytest.MonkeyPatch.context() as mp:
    point_app_at(mp, home, server)
    at = open_page("bulk_upload")
    for path in map(Path, sys.argv[4:]):
        data = path.read_bytes()
        before = peak_mb()
        at.file_uploader(key="bu_file").set_value((path.name, data, "text/csv")).run()
        out[path.name] = {
            "before_mb": before,
            "after_mb": peak_mb(),
            "size_mb": len(data) / 2**20,
            "errors": texts(at, "error"),
            "exceptions": [str(e.value) for e in at.exception],
            "kept": "bu_state" in at.session_state,
            "sections": [str(h.value) for h in at.subheader],
        }
        del data
        at.file_uploader(key="bu_file").set_value(None).run()
print(json.dumps(out))
"""


def upload_in_app(
    paths: list[Path], *, home: Path, server: dict[str, Any], env: dict[str, str]
) -> Measured:
    """Upload ``paths`` one after the other on the app's Bulk upload page (AppTest), in a
    child process; its JSON says what the page showed and its peak memory around each."""
    argv = [sys.executable, "-c", APP_UPLOAD, str(ROOT / "tests"), str(home), json.dumps(server)]
    return run_measured([*argv, *map(str, paths)], env=child_env(env), cwd=home, timeout=600)
