"""Validating a sheet, vectorised: every field against the rules of `toolkit.models`
(`toolkit.bulk.rules`, whole columns at a time), then the checks across rows — a pair or a
requestId seen earlier in the file, an amount far from its event's median.

Every problem of every row is reported, with the row number the analyst's spreadsheet shows;
a property test keeps the verdicts equal to the scalar `toolkit.models.check_*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.bulk.reading import Sheet, sheet_from_frame
from toolkit.bulk.rules import (
    Field,
    amount_rule,
    company_rule,
    configuration_rule,
    event_rule,
    factorized,
    request_rule,
    user_rule,
)
from toolkit.bulk.seams import KnownPairs

__all__ = [
    "PROBLEM_COLUMNS",
    "Validation",
    "registry_medians",
    "validate",
    "validate_allocations",
]

PROBLEM_COLUMNS = ["row", "column", "value", "severity", "reason", "message"]
OUTLIER_FACTOR = 10
_DUPLICATE_COLUMN = "companyId, event"
_NOUN = {"configs": "configuration", "allocations": "allocation"}

# A message quotes at most this many characters of a cell.
SHOWN_CHARS = 40
_CONTROL = r"[\x00-\x1f\x7f]"
_VISIBLE = {"\x00": "\\0", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(eq=False)
class Validation:
    """What `validate` found.

    ``frame``: one row per sheet row, same order and index as ``sheet.frame``: ``row`` (int64),
    the normalised fields (``str``, missing where the cell is invalid; ``amount`` is ``Int64``),
    the extra columns as read, ``valid`` (bool: no errors; warnings do not count) and ``message``
    (``str``: the row's problems joined with "; ", "" when none).
    ``problems``: one row per problem, sorted by row: ``row`` (int64), ``column``, ``value``
    (the cell as written), ``severity`` ("error" | "warning"), ``reason`` (the models' text)
    and ``message`` ("Row 7, amount '6.5': must be a whole number of coins (no decimals)").
    """

    frame: pd.DataFrame
    problems: pd.DataFrame
    sheet: Sheet
    kind: str

    @property
    def errors(self) -> int:
        return int((self.problems["severity"] == "error").sum())

    @property
    def warnings(self) -> int:
        return int((self.problems["severity"] == "warning").sum())

    @property
    def ok(self) -> bool:
        """True when no row has an error (warnings allowed)."""
        return self.errors == 0

    @property
    def inputs(self) -> pd.DataFrame:
        """The cells as read (text), aligned with ``frame``."""
        return self.sheet.frame

    @property
    def valid_rows(self) -> pd.DataFrame:
        return self.frame[self.frame["valid"]]

    @property
    def invalid_rows(self) -> pd.DataFrame:
        return self.frame[~self.frame["valid"]]

    def messages(self, severity: str | None = None) -> list[str]:
        """The problems as sentences, in row order (optionally only errors or warnings)."""
        problems = self.problems
        if severity is not None:
            problems = problems[problems["severity"] == severity]
        return problems["message"].tolist()

    def summary(self, limit: int = 10) -> str:
        """A few lines for a terminal or a page: counts, then the first problems."""
        total = len(self.frame)
        valid = int(self.frame["valid"].sum())
        lines = [
            f"{self.sheet.source_name}: {total:,} {_NOUN[self.kind]} "
            f"row{'s' if total != 1 else ''}, "
            f"{valid:,} valid, {total - valid:,} with errors "
            f"({self.errors:,} error{'s' if self.errors != 1 else ''}, "
            f"{self.warnings:,} warning{'s' if self.warnings != 1 else ''})."
        ]
        shown = self.problems["message"].head(limit)
        lines += [
            f"  {'error  ' if sev == 'error' else 'warning'} {msg}"
            for sev, msg in zip(self.problems["severity"].head(limit), shown, strict=True)
        ]
        if len(self.problems) > limit:
            lines.append(f"  … and {len(self.problems) - limit:,} more.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Validation({self.sheet.source_name!r}, rows={len(self.frame)}, "
            f"errors={self.errors}, warnings={self.warnings})"
        )


def registry_medians(registry: KnownPairs) -> dict[str, float] | None:
    """Each event's median amount among the configurations the registry knows (None if none)."""
    from toolkit.frames import event_medians

    known = registry.known_pairs()
    if not len(known):
        return None
    return {str(event): float(value) for event, value in event_medians(known).dropna().items()}


def validate(
    sheet_or_frame: Sheet | pd.DataFrame,
    *,
    known_medians: Mapping[str, float] | None = None,
    registry: KnownPairs | None = None,
) -> Validation:
    """Check every row of a configuration sheet (or a DataFrame with the same columns).

    Errors: each field against the models' rules, and a (companyId, event) seen earlier in the
    file. Warnings: amount 0, and an amount 10× above or below its event's median — the
    median of the file's valid rows, or ``known_medians[event]``; with a ``registry`` (and no
    ``known_medians``) the medians of the configurations it knows.
    """
    sheet = _as_sheet(sheet_or_frame, "configs")
    if sheet.kind == "allocations":
        return validate_allocations(sheet)
    if known_medians is None and registry is not None:
        known_medians = registry_medians(registry)
    data = sheet.frame
    checks = _Checks(data["row"].to_numpy(dtype="int64"))

    company = factorized(data["companyId"], company_rule)
    event = factorized(data["event"], event_rule)
    amount = factorized(data["amount"], amount_rule)
    configuration = factorized(data["configuration"], configuration_rule)
    for name, column in (
        ("companyId", company),
        ("event", event),
        ("amount", amount),
        ("configuration", configuration),
    ):
        checks.add(name, column.raw, column.bad, column.reasons())

    amounts = amount.values()
    _duplicates(checks, company, event, amounts)
    valid = ~checks.errors
    zero = ~amount.bad & (amounts.to_numpy(dtype="int64", na_value=-1) == 0)
    checks.add("amount", amount.raw, zero, "switches the event off (0 coins)", severity="warning")
    _outliers(checks, amount, event, amounts, valid, known_medians)

    frame = _result_frame(
        sheet,
        {
            "companyId": company.normalised(),
            "event": event.normalised(),
            "amount": amounts,
            "configuration": configuration.normalised(),
        },
        valid,
    )
    problems = checks.frame()
    frame["message"] = _row_messages(problems, len(frame), checks)
    return Validation(frame=frame, problems=problems, sheet=sheet, kind="configs")


def validate_allocations(sheet_or_frame: Sheet | pd.DataFrame) -> Validation:
    """Check every row of an allocation sheet (companyId, event, userId[, requestId]).

    A blank requestId is not an error (the run derives one); a given one must be well formed
    and used once in the file. The same (companyId, event, userId) twice is a warning: it
    awards the coins again.
    """
    sheet = _as_sheet(sheet_or_frame, "allocations")
    if sheet.kind != "allocations":
        raise ValueError("validate_allocations needs an allocation sheet (read_allocations)")
    data = sheet.frame
    rows = data["row"].to_numpy(dtype="int64")
    checks = _Checks(rows)

    company = factorized(data["companyId"], company_rule)
    event = factorized(data["event"], event_rule)
    user = factorized(data["userId"], user_rule)
    request = factorized(data["requestId"], request_rule)
    given = request.present()
    request.bad &= given  # a blank requestId is derived by the run, not an error
    for name, column in (
        ("companyId", company),
        ("event", event),
        ("userId", user),
        ("requestId", request),
    ):
        checks.add(name, column.raw, column.bad, column.reasons())

    ok = given & ~request.bad
    if ok.any():
        first, later = _first_rows(request.codes[ok], rows[ok], len(request.uniques))
        if later.any():
            positions = np.flatnonzero(ok)[later]
            reason = (
                "is already used on row "
                + pd.Series(first[later]).astype("str")
                + " (a requestId allocates at most once)"
            )
            checks.add_at("requestId", request.raw.iloc[positions], positions, reason)

    valid = ~checks.errors
    triple_ok = ~company.bad & ~event.bad & ~user.bad
    if triple_ok.any():
        key, size = _combine(company, event, triple_ok)
        key, size = _combine_codes(key, size, user.codes[triple_ok], len(user.uniques))
        first, later = _first_rows(key, rows[triple_ok], size)
        if later.any():
            positions = np.flatnonzero(triple_ok)[later]
            reason = (
                "same companyId, event and userId as row "
                + pd.Series(first[later]).astype("str")
                + ": the coins are awarded again"
            )
            values = user.raw.iloc[positions]
            checks.add_at("userId", values, positions, reason, severity="warning")

    requests = request.normalised()
    frame = _result_frame(
        sheet,
        {
            "companyId": company.normalised(),
            "event": event.normalised(),
            "userId": user.normalised(),
            "requestId": requests.where(given),
        },
        valid,
    )
    problems = checks.frame()
    frame["message"] = _row_messages(problems, len(frame), checks)
    return Validation(frame=frame, problems=problems, sheet=sheet, kind="allocations")


# -- across rows: duplicates and outliers, on the columns' codes (`toolkit.bulk.rules`) -----


def _as_sheet(source: Sheet | pd.DataFrame, kind: str) -> Sheet:
    if isinstance(source, Sheet):
        return source
    if isinstance(source, pd.DataFrame):
        return sheet_from_frame(source, kind=kind)
    raise TypeError(f"validate takes a Sheet or a DataFrame, not {type(source).__name__}")


def _combine_codes(
    key: np.ndarray, size: int, codes: np.ndarray, count: int
) -> tuple[np.ndarray, int]:
    """Two code arrays as one; re-factorized when the product would grow too large."""
    if size * max(count, 1) < 2**62:
        return key.astype("int64") * max(count, 1) + codes, size * max(count, 1)
    key = pd.factorize(key)[0].astype("int64")
    size = int(key.max()) + 1 if len(key) else 1
    return key * max(count, 1) + codes, size * max(count, 1)


def _combine(a: Field, b: Field, where: np.ndarray) -> tuple[np.ndarray, int]:
    return _combine_codes(
        a.codes[where].astype("int64"), max(len(a.uniques), 1), b.codes[where], len(b.uniques)
    )


def _first_rows(key: np.ndarray, rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each key: the row number where it first appears, and "is a later repeat"."""
    if size <= 4 * len(key) + 1024:  # a small key space: counting beats hashing
        dup = np.bincount(key, minlength=size)[key] > 1
    else:
        dup = pd.Series(key).duplicated(keep=False).to_numpy()
    first = rows.copy()
    later = np.zeros(len(rows), dtype=bool)
    if dup.any():
        where = np.flatnonzero(dup)
        firsts = pd.Series(where).groupby(key[dup]).transform("first").to_numpy()
        first[dup] = rows[firsts]
        later[dup] = where != firsts
    return first, later


def _duplicates(checks: _Checks, company: Field, event: Field, amount: pd.Series) -> None:
    """Later rows repeating an earlier (companyId, event) are errors naming the first row."""
    key_ok = ~company.bad & ~event.bad
    if not key_ok.any():
        return
    key, size = _combine(company, event, key_ok)
    first, later = _first_rows(key, checks.rows[key_ok], size)
    if not later.any():
        return
    positions = np.flatnonzero(key_ok)[later]
    first_rows = first[later]
    lookup = pd.Series(np.arange(len(checks.rows)), index=checks.rows)
    first_positions = lookup[~lookup.index.duplicated()].loc[first_rows].to_numpy()
    this_amount = amount.iloc[positions].reset_index(drop=True)
    that_amount = amount.iloc[first_positions].reset_index(drop=True)
    base = "repeats companyId and event first seen on row " + pd.Series(first_rows).astype("str")
    differs = (this_amount != that_amount).fillna(False).to_numpy(dtype=bool)
    reason = base.mask(
        differs,
        base
        + " with amount "
        + that_amount.astype("str")
        + "; this row says "
        + this_amount.astype("str"),
    )
    names = company.uniques.to_numpy()[company.codes[positions]]
    events = event.uniques.to_numpy()[event.codes[positions]]
    value = pd.Series(names, dtype="str") + " / " + pd.Series(events, dtype="str")
    checks.add_at(_DUPLICATE_COLUMN, value, positions, reason)


def _outliers(
    checks: _Checks,
    amount: Field,
    event: Field,
    amounts: pd.Series,
    valid: np.ndarray,
    known_medians: Mapping[str, float] | None,
) -> None:
    """Amounts 10× above or below their event's usual amount are flagged, not refused."""
    judged = ~event.bad & ~amount.bad
    if not judged.any():
        return
    codes, names = event.codes, pd.Index(event.uniques)
    value = amounts.to_numpy(dtype="float64", na_value=np.nan)
    counted = valid & judged
    basis = pd.Series(value[counted]).groupby(codes[counted]).median()
    median = np.full(len(names), np.nan)
    median[basis.index.to_numpy()] = basis.to_numpy()
    registry = np.zeros(len(names), dtype=bool)
    if known_medians:
        known = pd.Series(dict(known_medians), dtype="float64").dropna()
        at = names.get_indexer(known.index)
        median[at[at >= 0]] = known.to_numpy()[at >= 0]
        registry[at[at >= 0]] = True
    median[~(median > 0)] = np.nan
    row_median = median[codes]
    with np.errstate(invalid="ignore"):
        high = judged & (value >= OUTLIER_FACTOR * row_median)
        low = judged & (value > 0) & (value * OUTLIER_FACTOR <= row_median)
    for mask, how in ((high, "10 or more times"), (low, "a tenth or less of")):
        if not mask.any():
            continue
        positions = np.flatnonzero(mask)
        # One text per event (a few dozen at most), then taken per flagged row.
        texts = np.array(
            [
                f"is {how} the usual amount for {name} (median {_number(m)} "
                f"{'in the registry' if r else 'in this file'}); check for a typo"
                for name, m, r in zip(names, median, registry, strict=True)
            ],
            dtype=object,
        )
        reason = pd.Series(texts[codes[positions]], dtype="str")
        checks.add_at("amount", amount.raw.iloc[positions], positions, reason, severity="warning")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- collecting problems ---------------------------------------------------------------------


class _Checks:
    """Problems as column-wise parts, concatenated and sorted once at the end."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.parts: list[pd.DataFrame] = []
        self.errors = np.zeros(len(rows), dtype=bool)
        self._order = 0
        # Set by frame(): each problem's position in the sheet, and its text without "Row N, ".
        self.positions = np.zeros(0, dtype="int64")
        self.details = pa.array([], pa.large_string())

    def add(
        self,
        column: str,
        raw: pd.Series,
        mask: np.ndarray,
        reason: str | pd.Series,
        *,
        severity: str = "error",
    ) -> None:
        if not mask.any():
            return
        positions = np.flatnonzero(mask)
        # A Series ``reason`` holds one reason per flagged cell, in row order.
        self.add_at(column, raw.iloc[positions], positions, reason, severity=severity)

    def add_at(
        self,
        column: str,
        values: pd.Series,
        positions: np.ndarray,
        reason: str | pd.Series,
        *,
        severity: str = "error",
    ) -> None:
        """Problems at ``positions``; ``values`` (and a Series ``reason``) hold those rows."""
        part = pd.DataFrame(
            {
                "_pos": positions,
                "_order": self._order,
                "row": self.rows[positions],
                "column": column,
                "value": values.reset_index(drop=True).astype("str"),
                "severity": severity,
                "reason": reason,
            }
        )
        self._order += 1
        self.parts.append(part)
        if severity == "error":
            self.errors[positions] = True

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            empty = {c: pd.Series(dtype="str") for c in PROBLEM_COLUMNS}
            empty["row"] = pd.Series(dtype="int64")
            return pd.DataFrame(empty)
        out = pd.concat(self.parts, ignore_index=True)
        out = out.sort_values(["_pos", "_order"], kind="stable", ignore_index=True)
        self.positions = out["_pos"].to_numpy(dtype="int64")
        for column in ("column", "value", "severity", "reason"):
            out[column] = out[column].astype("str")
        value = out["value"]
        shown = _shown(value)
        # "amount '6.5': must be …" — the row's own line reuses it without the row number.
        detail = out["column"] + (" '" + shown + "': ").where(value != "", ": ") + out["reason"]
        details = pa.array(detail.astype("str").array)  # may come back chunked
        if isinstance(details, pa.ChunkedArray):
            details = details.combine_chunks()
        self.details = details.cast(pa.large_string())
        out["message"] = "Row " + out["row"].astype("str") + ", " + detail
        out["row"] = out["row"].astype("int64")
        return out[PROBLEM_COLUMNS]


def _shown(value: pd.Series) -> pd.Series:
    """Cells as a message quotes them: control characters visible, long cells shortened, so
    that the reason after the value is never lost (the problems' ``value`` keeps the cell)."""
    if value.str.contains(_CONTROL, regex=True).any():
        for char, visible in _VISIBLE.items():
            value = value.str.replace(char, visible, regex=False)
        value = value.str.replace(_CONTROL, "?", regex=True)
    length = value.str.len()
    long = length > SHOWN_CHARS
    if long.any():
        size = length[long].map("{:,}".format)
        cut = value[long].str.slice(0, SHOWN_CHARS - 1) + "… (" + size + " chars)"
        value = value.mask(long, cut)
    return value


def _row_messages(problems: pd.DataFrame, n: int, checks: _Checks) -> pd.Series:
    """Each row's problems in one line ("" for clean rows), aligned with the frame."""
    if not len(problems):
        return pd.Series("", index=pd.RangeIndex(n), dtype="str")
    # Problems are sorted by position, so each row's problems are one slice: a list array with
    # an (often empty) list per row, joined by pyarrow — no Python join per row.
    offsets = np.searchsorted(checks.positions, np.arange(n + 1)).astype("int64")
    lists = pa.LargeListArray.from_arrays(offsets, checks.details)
    joined = pc.binary_join(lists, pa.scalar("; ", pa.large_string()))
    return pd.Series(joined.to_pandas(types_mapper=lambda _: pd.StringDtype()), dtype="str")


def _result_frame(sheet: Sheet, fields: dict[str, pd.Series], valid: np.ndarray) -> pd.DataFrame:
    data = sheet.frame
    columns: dict[str, Any] = {"row": data["row"].to_numpy(dtype="int64")}
    for name, values in fields.items():
        columns[name] = values.reset_index(drop=True)
    for name in sheet.extra_columns:
        columns[name] = data[name].reset_index(drop=True)
    columns["valid"] = valid
    frame = pd.DataFrame(columns)
    frame.index = data.index
    return frame
