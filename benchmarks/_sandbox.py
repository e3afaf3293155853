"""A sandbox in its own process, for the benchmarks that measure the toolkit against one: the
toolkit's threads and the server's event loop then do not share one interpreter's lock.

Its database lives on a RAM disk (``/dev/shm``) when the machine has one: the sandbox stands
in for EnKash, and its own disk's stalls (a WAL checkpoint's fsync on a virtual disk held
every answer back 10 ms and more, moving the 50 ms benchmarks by ±10%) are the server's, not
the client's. The toolkit's registry and journal stay on the ordinary disk, as an analyst's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["sandbox_process"]


_RAM_DISK = Path("/dev/shm")


@contextmanager
def sandbox_process(*options: str) -> Iterator[str]:
    """``python -m toolkit.sandbox --port 0 --db <a fresh file> <options>``: yields its URL,
    and stops it (terminate, then kill after 10 s) and removes its files on the way out."""
    ram = _RAM_DISK if _RAM_DISK.is_dir() and os.access(_RAM_DISK, os.W_OK) else None
    with (
        tempfile.TemporaryDirectory(prefix="bench-sandbox-", dir=ram) as home,
        _running(Path(home) / "sandbox.sqlite3", options) as url,
    ):
        yield url


@contextmanager
def _running(db: Path, options: tuple[str, ...]) -> Iterator[str]:
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
