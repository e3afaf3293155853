"""Private files: what the toolkit keeps on disk is readable by its user only.

``COINS_HOME`` and every folder the toolkit creates are ``0700``; its databases (registry,
journal, sandbox), results and exports ``0600``. A file the user names (``coins … --results
out.csv``) keeps the user's umask but is never wider than ``0644``. Existing files of ours that
are wider (made by an older version) are narrowed when opened. On platforms without POSIX
modes these helpers only create.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "USER_FILE_MAX",
    "open_private",
    "private_dir",
    "private_file",
    "user_file_mode",
]

logger = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
USER_FILE_MAX = 0o644  # a file the user names: never group/world writable, at most readable

_POSIX = os.name == "posix"


def private_dir(path: str | os.PathLike[str], *, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents as ``0700``; return it.

    ``tighten`` also narrows an existing folder to ``0700`` when it is wider: only for folders
    that are the toolkit's own (``COINS_HOME``), never a folder the user merely pointed at.
    """
    folder = Path(path).expanduser()
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it just now
            candidate.mkdir(mode=PRIVATE_DIR)
            _chmod(candidate, PRIVATE_DIR)
    if tighten and not missing:
        _narrow(folder, PRIVATE_DIR)
    return folder


def private_file(path: str | os.PathLike[str]) -> Path:
    """Make sure ``path`` exists as a ``0600`` file (created empty, or narrowed if wider)."""
    target = Path(path).expanduser()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        _narrow(target, PRIVATE_FILE)
    else:
        os.close(fd)
    return target


@contextlib.contextmanager
def open_private(path: str | os.PathLike[str], *, private: bool = True) -> Iterator[IO[bytes]]:
    """A new binary file at ``path`` (replacing any), ``0600`` from its first byte.

    With ``private=False`` the file gets the user's umask, capped at ``0644`` (a path the user
    named). The file is written under a temporary name and moved into place when the block
    ends, so a reader never sees half a file and a failed write leaves the old one.
    """
    target = Path(path).expanduser()
    tmp = target.with_name(target.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE if private else 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        if private:
            _chmod(tmp, PRIVATE_FILE)
        else:
            user_file_mode(tmp)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def user_file_mode(path: str | os.PathLike[str]) -> None:
    """Give a file the user named the mode of the user's umask, never wider than ``0644``."""
    _chmod(Path(path), 0o666 & ~_umask() & USER_FILE_MAX)


def _umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)  # elsewhere: the classic swap (briefly 077, the safe side)
    os.umask(mask)
    return mask


def _chmod(path: Path, mode: int) -> None:
    if not _POSIX:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:  # not ours (a shared folder): leave it, say so in the log
        logger.warning("could not set %s to mode %04o: %s", path, mode, exc.strerror or exc)


def _narrow(path: Path, mode: int) -> None:
    """Narrow ``path`` to ``mode`` when it grants more; a file of someone else is left alone."""
    if not _POSIX:
        return
    try:
        info = path.stat()
    except OSError:
        return
    if stat.S_IMODE(info.st_mode) & ~mode and info.st_uid == os.getuid():
        _chmod(path, stat.S_IMODE(info.st_mode) & mode)
