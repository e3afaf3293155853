"""`Registry`: one SQLite file of known configurations and their audit log, for one server.

It joins the recorder (`toolkit.registry.recording`) and the readers
(`toolkit.registry.queries`, `toolkit.registry.audit`) over one connection and one lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit import db
from toolkit.files import private_dir
from toolkit.registry.audit import AuditLog
from toolkit.registry.recording import Recording
from toolkit.registry.rows import _row_factory
from toolkit.registry.schema import MIGRATIONS
from toolkit.settings import Settings, sandbox_server_key

if TYPE_CHECKING:
    from toolkit.client import CoinsClient

__all__ = ["Registry"]


class Registry(Recording, AuditLog):
    """Known configurations and the audit log of one server in one SQLite file.

    ``Registry()`` uses ``Settings.from_env()`` for the file (``COINS_HOME``), the server key
    (the base URL, or the embedded sandbox's file) and the actor (``COINS_ACTOR`` or the OS
    user). With ``client`` it becomes the client's recorder (`toolkit.client.Recorder`) and
    keys rows by ``client.server_key``; it never calls the client (fetches, refreshes and
    reverts are ``toolkit.sync``'s).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        client: CoinsClient | None = None,
        server_key: str | None = None,
        actor: str | None = None,
    ) -> None:
        settings: Settings | None = None
        if path is None or actor is None or (server_key is None and client is None):
            settings = Settings.from_env()
        if client is not None:
            if server_key is not None and server_key != client.server_key:
                raise ValueError(
                    f"server_key {server_key!r} differs from the client's {client.server_key!r}"
                )
            server_key = client.server_key
        if server_key is None:
            assert settings is not None
            server_key = settings.base_url or sandbox_server_key(settings.sandbox_db_path)
        self.path = Path(path) if path is not None else settings.registry_path  # type: ignore[union-attr]
        self.server_key = server_key
        # An actor given here wins over the client's; otherwise the client's, then settings'.
        self._explicit_actor = actor
        self.actor = actor or settings.actor  # type: ignore[union-attr]
        self.client = client
        self._lock = threading.RLock()
        self._local = threading.local()
        if path is None:  # the file under COINS_HOME: that folder is the user's alone (0700)
            private_dir(self.path.parent, tighten=True)
        self._conn = db.connect(self.path)
        self._conn.row_factory = _row_factory
        db.apply_migrations(self._conn, MIGRATIONS)
        if client is not None:
            client.recorder = self

    def __repr__(self) -> str:
        return f"Registry(path={str(self.path)!r}, server_key={self.server_key!r})"

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; a client still pointing here stops recording into it."""
        if self.client is not None and getattr(self.client, "recorder", None) is self:
            self.client.recorder = None
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, db.transaction(self._conn) as conn:
            yield conn
