"""Choices that follow the analyst from page to page: the company / event / configuration
filters and the configuration picked last (both kept in the session)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import streamlit as st

from toolkit.ui.caches import column_options

__all__ = ["FILTER_COLUMNS", "SELECTED_KEY", "filter_signature", "shared_filters"]

SELECTED_KEY = "selected_config_id"  # session_state: the configuration picked on any page
FILTERS_KEY = "filters"  # session_state: {"company": [...], "event": [...], "configuration": [...]}
FILTER_COLUMNS = {"company": "companyId", "event": "event", "configuration": "configuration"}


def _filter_state() -> dict[str, list[str]]:
    state: dict[str, list[str]] = st.session_state.setdefault(FILTERS_KEY, {})
    for name in FILTER_COLUMNS:
        state.setdefault(name, [])
    return state


def filter_signature(
    columns: Iterable[str] = tuple(FILTER_COLUMNS),
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The shared filter choice as a hashable key (for caching what depends on it)."""
    state = _filter_state()
    return tuple((name, tuple(state[name])) for name in columns)


def shared_filters(
    df: pd.DataFrame,
    *,
    prefix: str,
    columns: Iterable[str] = ("company", "event", "configuration"),
    disabled: bool = False,
    cache_key: str | None = None,
) -> pd.DataFrame:
    """Company / event / configuration pickers whose choice follows the analyst across pages.

    ``cache_key`` (e.g. `data_key()`) names ``df`` so its option lists are computed once."""
    state = _filter_state()
    chosen: dict[str, list[str]] = {}
    names = list(columns)
    cols = st.columns(len(names))
    for col, name in zip(cols, names, strict=True):
        column = FILTER_COLUMNS[name]
        options = column_options(df, column, cache_key=cache_key)
        key = f"{prefix}_filter_{name}"
        if key not in st.session_state:
            st.session_state[key] = [v for v in state[name] if v in set(options)]

        def _remember(name: str = name, key: str = key) -> None:
            _filter_state()[name] = list(st.session_state[key])

        with col:
            chosen[name] = st.multiselect(
                name.capitalize(),
                options,
                key=key,
                on_change=_remember,
                disabled=disabled,
                placeholder=f"All {name}s" if name != "company" else "All companies",
            )
    out = df
    for name, values in chosen.items():
        column = FILTER_COLUMNS[name]
        if values and column in out.columns:
            out = out[out[column].astype("string").isin(values)]
    return out
