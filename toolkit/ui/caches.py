"""Cached frames the pages share, and when they are rebuilt.

What cached data depends on is named by `data_key`: the registry file (any process writing it:
the CLI, a notebook, another tab), the server and the app's own writes (`invalidate`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from toolkit.ui.connection import Connection, connection, workspace

__all__ = ["FRAME_TTL_S", "column_options", "configs_frame", "data_key", "invalidate"]

FRAME_TTL_S = 60  # other processes (CLI, notebooks) write the same registry; see their work soon


def data_key() -> str:
    """What cached data depends on: the registry file, the server and the app's writes."""
    conn = connection()
    ws = workspace()
    path = ws.registry.path.resolve()
    return f"{path}|{ws.client.server_key}|{conn.version}|{_file_stamp(path)}"


def _file_stamp(path: Path) -> str:
    """Changes whenever anyone (the CLI, a notebook, another tab) writes the SQLite file: its
    WAL grows or is checkpointed into the main file. Two stats per rerun."""
    stamps = []
    for name in (str(path), f"{path}-wal"):
        try:
            info = os.stat(name)
        except OSError:
            stamps.append("-")
            continue
        stamps.append(f"{info.st_mtime_ns}:{info.st_size}")
    return "/".join(stamps)


# cache_resource, not cache_data: one shared frame instead of unpickling a copy per rerun
# (100,000 rows). Pages only read it; filtering makes new frames.
@st.cache_resource(ttl=FRAME_TTL_S, show_spinner="Reading the registry…", max_entries=4)
def _configs_frame(key: str) -> pd.DataFrame:
    return workspace().registry.to_frame()


def configs_frame() -> pd.DataFrame:
    """Every known configuration on this server, cached until the app writes (or a minute).
    Shared between sessions: read it, never change it in place."""
    return _configs_frame(data_key())


def _options(df: pd.DataFrame, column: str) -> list[str]:
    if column not in df.columns or df.empty:
        return []
    return sorted(str(v) for v in df[column].dropna().unique())


@st.cache_resource(ttl=FRAME_TTL_S, show_spinner=False, max_entries=32)
def _column_options(key: str, column: str, _df: pd.DataFrame) -> list[str]:
    return _options(_df, column)


def column_options(df: pd.DataFrame, column: str, *, cache_key: str | None = None) -> list[str]:
    """The distinct values of ``column``, sorted, for a picker. ``cache_key`` (e.g.
    `data_key()`) names ``df`` so they are computed once, not on every rerun."""
    return _column_options(cache_key, column, df) if cache_key else _options(df, column)


def invalidate(conn: Connection | None = None) -> None:
    """The app changed something: rebuild cached frames on the next read. A worker thread
    passes the connection it took when it started."""
    conn = conn or connection()
    with conn.lock:
        conn.version += 1
    st.cache_data.clear()
    _configs_frame.clear()
    _column_options.clear()
