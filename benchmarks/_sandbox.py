"""A sandbox in its own process, for the benchmarks that measure the toolkit against one: the
toolkit's threads and the server's event loop then do not share one interpreter's lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["sandbox_process"]


@contextmanager
def sandbox_process(db: Path, *options: str) -> Iterator[str]:
    """``python -m toolkit.sandbox --port 0 --db <db> <options>``: yields its URL, and stops it
    (terminate, then kill after 10 s) on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit.sandbox", "--port", "0", "--db", str(db), *options],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        found = re.search(r"https?://\S+", line)
        if not found:
            raise RuntimeError(f"the sandbox did not print its URL (got {line!r})")
        yield found.group(0).rstrip("/")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
