"""Small conversions shared by the registry's modules: timestamps, JSON, rows → values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pandas as pd

from toolkit.errors import EnKashError, UnconfirmedError
from toolkit.models import CoinConfig, check_configuration

__all__: list[str] = []

_SECRET_HINTS = ("password", "secret", "token", "authorization", "cookie")


def _iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _iso_from(value: datetime | str | pd.Timestamp) -> str:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return _iso(stamp.to_pydatetime())


def _values(config: CoinConfig | None) -> dict[str, Any] | None:
    return None if config is None else config.to_payload(include_id=False)


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


@lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    return any(hint in key.lower() for hint in _SECRET_HINTS)


def _clean_request(request: dict[str, Any] | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (request or {}).items():
        if _is_secret_key(str(key)):
            continue
        clean[str(key)] = (
            value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        )
    return clean


def _config_from_row(row: Any) -> CoinConfig:
    configuration, _ = check_configuration(row["configuration"])
    return CoinConfig(
        coin_config_id=row["coin_config_id"],
        company_id=row["company_id"],
        event=row["event"],
        configuration=configuration,
        amount=row["amount"],
    )


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _add_filters(
    where: list[str],
    params: list[Any],
    columns: Iterable[tuple[str, str | Iterable[str] | None]],
    since: datetime | str | pd.Timestamp | None,
    until: datetime | str | pd.Timestamp | None,
) -> None:
    """The WHERE terms of a filtered read: each text column one value or several (``IN``),
    ``since`` inclusive and ``until`` exclusive on ``at``; appended to ``where``/``params``."""
    for column, value in columns:
        values = _as_list(value)
        if values is not None:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if since is not None:
        where.append("at >= ?")
        params.append(_iso_from(since))
    if until is not None:
        where.append("at < ?")
        params.append(_iso_from(until))


def _row_factory(cursor: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: value for d, value in zip(cursor.description, row, strict=True)}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _stripped(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _error_outcome(error: EnKashError | None) -> str:
    """An audit entry's outcome for a failed call: "unconfirmed" when the write may have
    happened on the server (its answer was lost), else "error"."""
    return "unconfirmed" if isinstance(error, UnconfirmedError) else "error"
