"""Coin configurations as pandas DataFrames, back to API payloads, and the summaries analysts ask.

The frame has a fixed column order and deliberate dtypes (pandas 3 semantics):

| column | dtype | notes |
| --- | --- | --- |
| coinConfigId, companyId, event | ``str`` | pandas 3's default string dtype; missing = NaN |
| configuration | ``category`` over exactly [DEFAULT, CUSTOM] | anything else becomes missing |
| amount | ``Int64`` | nullable; amounts that are not whole numbers become missing |
| created_at, updated_at, last_synced_at | ``datetime64[us, UTC]`` | registry metadata only |
| source | ``str`` | registry metadata only |

Ids are the default ``str`` dtype rather than ``pd.StringDtype()`` (``"string"``, missing =
``pd.NA``) so that frames from here merge and compare with frames from ``read_csv`` without a
cast. Missing fields (the documented update answer has no ``companyId``) become missing values,
never errors, and an empty input gives an empty frame with the same columns and dtypes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from toolkit.models import CoinConfig, Configuration, validate_config_fields

__all__ = [
    "BASE_COLUMNS",
    "CONFIGURATION_DTYPE",
    "META_COLUMNS",
    "FrameConversion",
    "RowProblem",
    "amount_per_event",
    "company_event_matrix",
    "configs_to_frame",
    "coverage",
    "empty_frame",
    "event_medians",
    "frame_dtypes",
    "frame_to_configs",
    "outliers",
]

BASE_COLUMNS: tuple[str, ...] = ("coinConfigId", "companyId", "event", "configuration", "amount")
META_COLUMNS: tuple[str, ...] = ("created_at", "updated_at", "last_synced_at", "source")
_STRING_COLUMNS = ("coinConfigId", "companyId", "event")
_TIME_COLUMNS = ("created_at", "updated_at", "last_synced_at")

STRING_DTYPE = "str"
TIME_DTYPE = "datetime64[us, UTC]"
CONFIGURATION_DTYPE = pd.CategoricalDtype([c.value for c in Configuration], ordered=False)

# Attribute name on CoinConfig for each payload key.
_ATTRS = {
    "coinConfigId": "coin_config_id",
    "companyId": "company_id",
    "event": "event",
    "configuration": "configuration",
    "amount": "amount",
}
# Column names a hand-made frame may use instead of the API's camelCase.
_ALIASES = {
    "coin_config_id": "coinConfigId",
    "company_id": "companyId",
    "companyid": "companyId",
    "coinconfigid": "coinConfigId",
}
_CONFIG_CODES: dict[Any, int] = {None: -1, "DEFAULT": 0, "CUSTOM": 1}


def frame_dtypes(*, metadata: bool = False) -> dict[str, Any]:
    """The column → dtype mapping of a configurations frame, in column order."""
    dtypes: dict[str, Any] = {
        "coinConfigId": STRING_DTYPE,
        "companyId": STRING_DTYPE,
        "event": STRING_DTYPE,
        "configuration": CONFIGURATION_DTYPE,
        "amount": "Int64",
    }
    if metadata:
        dtypes.update({name: TIME_DTYPE for name in _TIME_COLUMNS})
        dtypes["source"] = STRING_DTYPE
    return dtypes


def empty_frame(*, metadata: bool = False) -> pd.DataFrame:
    """An empty configurations frame with the documented columns and dtypes."""
    return pd.DataFrame(
        {
            name: pd.Series([], dtype=dtype)
            for name, dtype in frame_dtypes(metadata=metadata).items()
        }
    )


# --------------------------------------------------------------------------- configs → frame


def _column_values(items: list[Any], key: str, *, objects: bool) -> list[Any]:
    if objects:
        return list(map(attrgetter(_ATTRS[key]), items))
    return list(map(dict.get, items, repeat(key)))


def _strings(values: list[Any]) -> pd.api.extensions.ExtensionArray:
    try:  # pyarrow converts a list of str (and None) about twice as fast as pandas does
        return pd.array(
            pa.array(values, type=pa.large_string(), from_pandas=True), dtype=STRING_DTYPE
        )
    except (pa.ArrowException, TypeError, ValueError):  # numbers or other odd values
        return pd.array(values, dtype=STRING_DTYPE)


def _configurations(values: list[Any]) -> pd.Categorical:
    try:
        codes = np.fromiter(
            map(_CONFIG_CODES.get, values, repeat(-2)), dtype=np.int8, count=len(values)
        )
    except TypeError:  # an unhashable value: take the slow path for every row
        codes = np.full(len(values), -2, dtype=np.int8)
    for i in np.flatnonzero(codes == -2):
        value = values[i]
        text = value.strip().upper() if isinstance(value, str) else None
        codes[i] = _CONFIG_CODES.get(text, -1)
    return pd.Categorical.from_codes(codes, dtype=CONFIGURATION_DTYPE)


def _whole_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _amounts(values: list[Any]) -> pd.api.extensions.ExtensionArray:
    try:
        return pd.array(values, dtype="Int64")
    except (TypeError, ValueError):  # decimals, text or odd types: keep whole numbers only
        return pd.array([_whole_or_none(v) for v in values], dtype="Int64")


def _times(values: list[Any]) -> pd.DatetimeIndex:
    # Naive datetimes are taken as UTC (the registry stores UTC); unparsable text → NaT.
    parsed = pd.to_datetime(
        pd.Series(values, dtype=object), utc=True, format="ISO8601", errors="coerce"
    )
    return parsed.astype(TIME_DTYPE).array


def configs_to_frame(
    items: Iterable[CoinConfig | Mapping[str, Any]], *, metadata: bool | None = None
) -> pd.DataFrame:
    """Build the configurations frame from ``CoinConfig`` objects or payload / registry dicts.

    Dicts use the API's camelCase keys (``coinConfigId``, ``companyId``, …) plus, for registry
    rows, ``created_at``, ``updated_at``, ``last_synced_at`` and ``source``. The metadata
    columns appear when any item carries one of them (or when ``metadata`` is True).
    Columns are built with one list pass each, not row by row, so a million dicts take well
    under a second.
    """
    rows = items if isinstance(items, list) else list(items)
    if not rows:
        return empty_frame(metadata=bool(metadata))
    kinds = set(map(type, rows))
    if kinds == {dict}:
        objects = False
    elif kinds == {CoinConfig}:
        objects = True
    else:
        rows = [_as_dict(row) for row in rows]
        objects = False
    if metadata is None:
        # One C-level pass over the keys of every dict (a generator per row costs seconds).
        metadata = not objects and not set(META_COLUMNS).isdisjoint(set().union(*rows))

    data: dict[str, Any] = {}
    for key in _STRING_COLUMNS:
        data[key] = _strings(_column_values(rows, key, objects=objects))
    data["configuration"] = _configurations(_column_values(rows, "configuration", objects=objects))
    data["amount"] = _amounts(_column_values(rows, "amount", objects=objects))
    if metadata:
        for key in META_COLUMNS:
            values = [None] * len(rows) if objects else _column_values(rows, key, objects=False)
            data[key] = _strings(values) if key == "source" else _times(values)
    return pd.DataFrame(data, copy=False)


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, CoinConfig):
        return row.to_payload()
    if isinstance(row, Mapping):
        return dict(row)
    raise TypeError(
        f"configs_to_frame takes CoinConfig objects or payload dicts, not {type(row).__name__}"
    )


# --------------------------------------------------------------------------- frame → payloads


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One refused field of one row: the frame's index label, the field, the value and why."""

    row: Hashable
    field: str
    value: Any
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.field}={self.value!r} {self.reason}"


@dataclass(slots=True)
class FrameConversion:
    """What ``frame_to_configs`` gives back; unpacks as ``payloads, problems``.

    ``payloads[i]`` came from the row labelled ``rows[i]``; every refused row has at least one
    entry in ``problems`` and no payload.
    """

    payloads: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Hashable] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.payloads, self.problems))

    @property
    def ok(self) -> bool:
        return not self.problems

    def problems_frame(self) -> pd.DataFrame:
        """The problems as a frame: row, field, value (as text), reason."""
        return pd.DataFrame(
            {
                "row": pd.Series([p.row for p in self.problems], dtype=object),
                "field": pd.Series([p.field for p in self.problems], dtype=STRING_DTYPE),
                "value": pd.Series(
                    [None if _missing(p.value) else str(p.value) for p in self.problems],
                    dtype=STRING_DTYPE,
                ),
                "reason": pd.Series([p.reason for p in self.problems], dtype=STRING_DTYPE),
            }
        )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes
        return False


def _column(df: pd.DataFrame, name: str) -> list[Any]:
    columns = {(_ALIASES.get(str(c).lower(), str(c))): c for c in df.columns}
    if name not in columns:
        return [None] * len(df)
    values = df[columns[name]].tolist()
    # pd.NA / NaN / NaT become None so the model's checks see "missing", not a strange value.
    return [None if _missing(v) else v for v in values]


def frame_to_configs(df: pd.DataFrame, *, partial: bool = False) -> FrameConversion:
    """Turn a frame back into validated API payloads, collecting every problem of every row.

    Uses the contract's checks (``toolkit.models.validate_config_fields``); never raises on a
    bad row. ``coinConfigId`` is kept when present. With ``partial`` (update bodies) missing
    fields are left out instead of refused. Columns may be camelCase or snake_case.
    """
    result = FrameConversion()
    ids = _column(df, "coinConfigId")
    columns = [_column(df, name) for name in ("companyId", "event", "configuration", "amount")]
    for label, config_id, company, event, configuration, amount in zip(
        df.index, ids, *columns, strict=True
    ):
        payload, problems = validate_config_fields(
            company_id=company,
            event=event,
            configuration=configuration,
            amount=amount,
            partial=partial,
        )
        if problems:
            result.problems.extend(RowProblem(label, p.field, p.value, p.reason) for p in problems)
            continue
        if config_id is not None:
            payload = {"coinConfigId": str(config_id), **payload}
        result.payloads.append(payload)
        result.rows.append(label)
    return result


# --------------------------------------------------------------------------- summaries


def _require(df: pd.DataFrame, *names: str) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise KeyError(f"the frame has no column(s) {', '.join(missing)}; see configs_to_frame")


def amount_per_event(df: pd.DataFrame) -> pd.DataFrame:
    """Per event: how many configurations, the amount's sum/mean/median/min/max, and more.

    One row per event (rows without an event are left out), sorted by total coins (largest
    first), then by event name. ``count`` counts configurations; the amount statistics skip
    missing amounts.
    """
    _require(df, "event", "amount")
    columns = ["event", "count", "sum", "mean", "median", "min", "max", "companies", "custom"]
    data = df.loc[df["event"].notna()]
    if data.empty:
        return pd.DataFrame(
            {
                "event": pd.Series([], dtype=STRING_DTYPE),
                "count": pd.Series([], dtype="int64"),
                "sum": pd.Series([], dtype="Int64"),
                "mean": pd.Series([], dtype="Float64"),
                "median": pd.Series([], dtype="Float64"),
                "min": pd.Series([], dtype="Int64"),
                "max": pd.Series([], dtype="Int64"),
                "companies": pd.Series([], dtype="int64"),
                "custom": pd.Series([], dtype="int64"),
            }
        )[columns]
    amount = data["amount"].astype("Int64")
    grouped = amount.groupby(data["event"], sort=True)
    out = pd.DataFrame(
        {
            "count": data.groupby("event", sort=True).size(),
            "sum": grouped.sum().astype("Int64"),
            "mean": grouped.mean().astype("Float64"),
            "median": grouped.median().astype("Float64"),
            "min": grouped.min().astype("Int64"),
            "max": grouped.max().astype("Int64"),
        }
    )
    if "companyId" in data.columns:
        out["companies"] = data.groupby("event", sort=True)["companyId"].nunique()
    else:
        out["companies"] = 0
    if "configuration" in data.columns:
        custom = (data["configuration"].astype(object) == "CUSTOM").groupby(data["event"]).sum()
        out["custom"] = custom.reindex(out.index, fill_value=0).astype("int64")
    else:
        out["custom"] = 0
    out = out.rename_axis("event").reset_index()
    out["event"] = out["event"].astype(STRING_DTYPE)
    out = out.sort_values(["sum", "event"], ascending=[False, True], na_position="last")
    return out[columns].reset_index(drop=True)


def event_medians(df: pd.DataFrame) -> pd.Series:
    """The median amount per event (``Float64``, indexed by event) — a sensible default amount."""
    _require(df, "event", "amount")
    data = df.loc[df["event"].notna()]
    medians = data["amount"].astype("Int64").groupby(data["event"], sort=True).median()
    return medians.astype("Float64").rename("median_amount").rename_axis("event")


def company_event_matrix(df: pd.DataFrame, *, value: str = "amount") -> pd.DataFrame:
    """Companies (rows) × events (columns) of amounts; missing where a pair has no configuration.

    When a pair appears more than once (a frame concatenated from several sources) the last
    row wins, as it would in the registry.
    """
    _require(df, "companyId", "event", value)
    data = df.loc[df["companyId"].notna() & df["event"].notna(), ["companyId", "event", value]]
    data = data.drop_duplicates(["companyId", "event"], keep="last")
    matrix = data.pivot(index="companyId", columns="event", values=value)
    matrix = matrix.sort_index().sort_index(axis=1)
    if value == "amount":
        matrix = matrix.astype("Int64")
    matrix.index.name = "companyId"
    matrix.columns.name = "event"
    return matrix


def coverage(df: pd.DataFrame, *, min_share: float = 0.0) -> pd.DataFrame:
    """Which companies lack which events that other companies have configured.

    One row per (company, missing event) with how many companies (and what share of them) do
    configure that event, most common events first. ``min_share`` keeps only gaps in events
    at least that share of companies configure (e.g. 0.5: "most companies have it").
    Columns: companyId, event, companies_with_event, share.
    """
    _require(df, "companyId", "event")
    data = df.loc[df["companyId"].notna() & df["event"].notna(), ["companyId", "event"]]
    data = data.drop_duplicates()
    companies = pd.Index(sorted(data["companyId"].unique()), dtype=STRING_DTYPE)
    have = data.groupby("event").size()
    total = len(companies)
    present = pd.MultiIndex.from_frame(data)
    every = pd.MultiIndex.from_product([companies, have.index], names=["companyId", "event"])
    gaps = every.difference(present, sort=False).to_frame(index=False)
    gaps["companyId"] = gaps["companyId"].astype(STRING_DTYPE)
    gaps["event"] = gaps["event"].astype(STRING_DTYPE)
    gaps["companies_with_event"] = gaps["event"].map(have).astype("int64")
    gaps["share"] = (gaps["companies_with_event"] / max(total, 1)).astype("float64")
    gaps = gaps.loc[gaps["share"] >= min_share]
    gaps = gaps.sort_values(
        ["companyId", "companies_with_event", "event"], ascending=[True, False, True]
    )
    return gaps.reset_index(drop=True)


def outliers(df: pd.DataFrame, factor: float = 10.0, *, include_zero: bool = False) -> pd.DataFrame:
    """Configurations whose amount is at least ``factor`` times above or below the event's median.

    Adds ``event_median``, ``ratio`` (amount / median), ``direction`` (high/low) and ``factor``
    columns, farthest first. Amount 0 switches an event off — a decision, not a typo — so zero
    amounts are not reported unless ``include_zero``.
    """
    if factor <= 1:
        raise ValueError("factor must be more than 1 (e.g. 10: ten times the event's median)")
    _require(df, "event", "amount")
    medians = event_medians(df)
    amount = df["amount"].astype("Float64")
    median = df["event"].map(medians).astype("Float64")
    high = amount > median * factor
    low = amount * factor < median
    mask = (high | low).fillna(False).astype(bool)
    if not include_zero:
        mask &= (amount != 0).fillna(False).astype(bool)
    out = df.loc[mask].copy()
    out["event_median"] = median[mask]
    # A zero median makes any positive amount infinitely far above it.
    ratio = amount[mask] / median[mask]
    out["ratio"] = ratio.where(median[mask] != 0, np.inf).astype("Float64")
    out["direction"] = pd.Series(
        np.where(high[mask].fillna(False).astype(bool), "high", "low"),
        index=out.index,
        dtype=STRING_DTYPE,
    )
    out["factor"] = float(factor)
    distance = np.maximum(ratio.astype(float).to_numpy(na_value=np.inf), 0)
    with np.errstate(divide="ignore"):
        spread = np.maximum(distance, np.where(distance > 0, 1 / distance, np.inf))
    out = out.iloc[np.argsort(-spread, kind="stable")]
    return out.reset_index(drop=True)
