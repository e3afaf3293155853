"""Validating a sheet, vectorised: the rules of `toolkit.models`, applied to whole columns.

Each rule is a regular expression or a comparison over a pyarrow-backed column (RE2 and
pyarrow compute, no Python loop per row), written to give exactly the verdict, normalised value
and reason of the scalar `toolkit.models.check_*` for the same cell; a property test keeps the
two in agreement. Every problem of every row is reported, with the row number the analyst's
spreadsheet shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from toolkit.bulk.reading import Sheet, sheet_from_frame
from toolkit.models import MAX_AMOUNT, REASONS

__all__ = ["PROBLEM_COLUMNS", "Validation", "validate", "validate_allocations"]

PROBLEM_COLUMNS = ["row", "column", "value", "severity", "reason", "message"]
OUTLIER_FACTOR = 10
_DUPLICATE_COLUMN = "companyId, event"

# The models' patterns, in RE2 syntax for pandas' str.fullmatch (anchored on both ends).
_COMPANY = r"[A-Z0-9]{1,32}"
_EVENT = r"[A-Z][A-Z0-9_]{0,63}"
_USER = r"[A-Za-z0-9_.@:-]{1,64}"
_REQUEST = r"[A-Za-z0-9_.:-]{1,64}"
_ASCII = r"[\x00-\x7f]*"
# Letter by letter rather than (?i): RE2's case folding would let `ſ` stand for `s`.
_DEFAULT = r"[Dd][Ee][Ff][Aa][Uu][Ll][Tt]"
_CUSTOM = r"[Cc][Uu][Ss][Tt][Oo][Mm]"
_WHOLE = r"\+?[0-9]+"
_NEGATIVE = r"-\+?[0-9]+"
_DECIMAL = r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)"
_MAX_DIGITS = len(str(MAX_AMOUNT))


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
            f"{self.sheet.source_name}: {total:,} {self.kind} row{'s' if total != 1 else ''}, "
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


def validate(
    sheet_or_frame: Sheet | pd.DataFrame,
    *,
    known_medians: Mapping[str, float] | None = None,
) -> Validation:
    """Check every row of a configuration sheet (or a DataFrame with the same columns).

    Errors: each field against the models' rules, and a (companyId, event) seen earlier in the
    file. Warnings: amount 0, and an amount 10× above or below its event's median — the
    median of the file's valid rows, or ``known_medians[event]`` (e.g. from the registry).
    """
    sheet = _as_sheet(sheet_or_frame, "configs")
    if sheet.kind == "allocations":
        return validate_allocations(sheet)
    data = sheet.frame
    rows = data["row"].to_numpy(dtype="int64")
    checks = _Checks(rows)

    company, company_bad, company_reason = _check_code(data["companyId"], _COMPANY, "company_id")
    checks.add("companyId", data["companyId"], company_bad, company_reason)
    event, event_bad, event_reason = _check_event(data["event"])
    checks.add("event", data["event"], event_bad, event_reason)
    amount, amount_bad, amount_reason = _check_amount(data["amount"])
    checks.add("amount", data["amount"], amount_bad, amount_reason)
    configuration, config_bad, config_reason = _check_configuration(data["configuration"])
    checks.add("configuration", data["configuration"], config_bad, config_reason)

    key_ok = ~company_bad & ~event_bad
    _duplicates(checks, company, event, key_ok, amount)

    valid = ~checks.error_rows()
    zero = (~amount_bad & (amount == 0).fillna(False)).to_numpy(dtype=bool)
    checks.add(
        "amount", data["amount"], zero, "switches the event off (0 coins)", severity="warning"
    )
    _outliers(checks, data["amount"], event, amount, valid, ~event_bad & ~amount_bad, known_medians)

    frame = _result_frame(
        sheet,
        {
            "companyId": company,
            "event": event,
            "configuration": configuration,
            "amount": amount,
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

    company, company_bad, company_reason = _check_code(data["companyId"], _COMPANY, "company_id")
    checks.add("companyId", data["companyId"], company_bad, company_reason)
    event, event_bad, event_reason = _check_event(data["event"])
    checks.add("event", data["event"], event_bad, event_reason)
    user, user_bad, user_reason = _check_code(data["userId"], _USER, "user_id", suggest=False)
    checks.add("userId", data["userId"], user_bad, user_reason)
    request, request_bad, request_reason = _check_code(
        data["requestId"], _REQUEST, "request_id", suggest=False
    )
    given = (_text(data["requestId"]) != "").to_numpy(dtype=bool)
    request_reason = request_reason[given[request_bad]].reset_index(drop=True)
    request_bad = request_bad & given
    checks.add("requestId", data["requestId"], request_bad, request_reason)

    ok = given & ~request_bad
    if ok.any():
        keys = pd.DataFrame({"requestId": request[ok]})
        first, later = _first_rows(keys, rows[ok])
        if later.any():
            positions = np.flatnonzero(ok)[later]
            reason = (
                "is already used on row "
                + pd.Series(first[later]).astype("str")
                + " (a requestId allocates at most once)"
            )
            checks.add_at("requestId", data["requestId"].iloc[positions], positions, reason)

    valid = ~checks.error_rows()
    triple_ok = ~company_bad & ~event_bad & ~user_bad
    if triple_ok.any():
        keys = pd.DataFrame({"c": company[triple_ok], "e": event[triple_ok], "u": user[triple_ok]})
        first, later = _first_rows(keys, rows[triple_ok])
        if later.any():
            positions = np.flatnonzero(triple_ok)[later]
            reason = (
                "same companyId, event and userId as row "
                + pd.Series(first[later]).astype("str")
                + ": the coins are awarded again"
            )
            values = data["userId"].iloc[positions]
            checks.add_at("userId", values, positions, reason, severity="warning")

    frame = _result_frame(
        sheet,
        {
            "companyId": company,
            "event": event,
            "userId": user,
            "requestId": request.where(given),
        },
        valid,
    )
    problems = checks.frame()
    frame["message"] = _row_messages(problems, len(frame), checks)
    return Validation(frame=frame, problems=problems, sheet=sheet, kind="allocations")


# -- the rules, column at a time -----------------------------------------------------------


def _as_sheet(source: Sheet | pd.DataFrame, kind: str) -> Sheet:
    if isinstance(source, Sheet):
        return source
    if isinstance(source, pd.DataFrame):
        return sheet_from_frame(source, kind=kind)
    raise TypeError(f"validate takes a Sheet or a DataFrame, not {type(source).__name__}")


def _text(series: pd.Series) -> pd.Series:
    # Trim exactly what str.strip() trims, so a cell and check_*(cell) see the same text.
    return series.astype("str").fillna("").str.strip().reset_index(drop=True)


def _mask(series: pd.Series) -> np.ndarray:
    return series.fillna(False).to_numpy(dtype=bool)


def _check_code(
    series: pd.Series, pattern: str, reason_key: str, *, suggest: bool = True
) -> tuple[pd.Series, np.ndarray, pd.Series]:
    """A case-sensitive id: (normalised or missing, bad mask, reason per bad row)."""
    text = _text(series)
    good = _mask(text.str.fullmatch(pattern))
    bad = ~good
    reason = _reasons(text, bad, REASONS[reason_key])
    if suggest and len(reason):
        reason = _with_suggestion(reason, text[bad], pattern, upper=True)
    return text.where(good), bad, reason


def _check_event(series: pd.Series) -> tuple[pd.Series, np.ndarray, pd.Series]:
    text = _text(series)
    good = _mask(text.str.fullmatch(_EVENT))
    reason = _reasons(text, ~good, REASONS["event"])
    if len(reason):
        reason = _with_suggestion(reason, text[~good], _EVENT, upper=False)
    return text.where(good), ~good, reason


def _reasons(text: pd.Series, bad: np.ndarray, reason: str) -> pd.Series:
    """The reason for each bad cell: "is missing" for blanks, ``reason`` for the rest."""
    picked = text[bad].reset_index(drop=True)
    return pd.Series(reason, index=picked.index, dtype="str").mask(picked == "", REASONS["missing"])


def _with_suggestion(reason: pd.Series, text: pd.Series, pattern: str, *, upper: bool) -> pd.Series:
    """`cekekcards` is refused (ids are case-sensitive) with "did you mean CEKEKCARDS?"."""
    text = text.reset_index(drop=True)
    if upper:
        candidate = text.str.upper()
    else:  # an event written as words: `meal card payment` → MEAL_CARD_PAYMENT
        candidate = text.str.replace(r"[ -]+", "_", regex=True).str.upper()
    fits = (
        _mask(text != "")
        & _mask(text.str.fullmatch(_ASCII))
        & _mask(candidate.str.fullmatch(pattern))
    )
    return reason.mask(fits, reason + "; did you mean " + candidate + "?")


def _check_configuration(series: pd.Series) -> tuple[pd.Series, np.ndarray, pd.Series]:
    text = _text(series)
    good = _mask(text.str.fullmatch(_DEFAULT)) | _mask(text.str.fullmatch(_CUSTOM))
    # Only DEFAULT/CUSTOM in ASCII letters pass, so upper-casing them is plain ASCII.
    return text.str.upper().where(good), ~good, _reasons(text, ~good, REASONS["configuration"])


def _check_amount(series: pd.Series) -> tuple[pd.Series, np.ndarray, pd.Series]:
    """Whole coins 0..MAX_AMOUNT, in the same order of checks as models.check_amount."""
    text = _text(series)
    whole = _mask(text.str.fullmatch(_WHOLE))
    # Leading zeros are fine ("007" is 7); more significant digits than MAX_AMOUNT has are
    # too big, which also keeps the cast below inside int64.
    digits = text.str.lstrip("+").str.lstrip("0")
    length = digits.str.len().fillna(0).to_numpy(dtype="int64")
    small = whole & (length <= _MAX_DIGITS)
    number = digits.where(small & (length > 0), "0").astype("int64").to_numpy()
    too_big = whole & ~(small & (number <= MAX_AMOUNT))
    bad = ~whole | too_big
    amount = pd.array(number, dtype="Int64")
    amount[bad] = pd.NA
    # Reasons only for the refused cells, checked in models.check_amount's order.
    refused = text[bad].reset_index(drop=True)
    conditions = [
        _mask(refused == ""),
        _mask(refused.str.fullmatch(_NEGATIVE)),
        _mask(refused.str.fullmatch(_DECIMAL)),
        ~_mask(refused.str.fullmatch(_WHOLE)),
    ]
    keys = ["missing", "negative", "decimals", "digits"]
    code = np.select(conditions, np.arange(len(keys)), default=len(keys))
    table = np.array([REASONS[k] for k in [*keys, "too_big"]], dtype=object)
    reason = pd.Series(table[code], dtype="str")
    return pd.Series(amount), bad, reason


def _first_rows(keys: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key row: the row number where the key first appears, and "is a later repeat"."""
    # One int64 per key (factorize each column, combine the codes): hashing ints is far
    # cheaper than hashing tuples of strings.
    key = np.zeros(len(keys), dtype="int64")
    for column in keys.columns:
        codes, uniques = pd.factorize(keys[column])
        key = key * (len(uniques) + 1) + codes
        key = pd.factorize(key)[0].astype("int64")  # keep the combined codes small
    dup = pd.Series(key).duplicated(keep=False).to_numpy()
    first = rows.copy()
    later = np.zeros(len(rows), dtype=bool)
    if dup.any():
        where = np.flatnonzero(dup)
        firsts = pd.Series(where).groupby(key[dup]).transform("first").to_numpy()
        first[dup] = rows[firsts]
        later[dup] = where != firsts
    return first, later


def _duplicates(
    checks: _Checks,
    company: pd.Series,
    event: pd.Series,
    key_ok: np.ndarray,
    amount: pd.Series,
) -> None:
    """Later rows repeating an earlier (companyId, event) are errors naming the first row."""
    if not key_ok.any():
        return
    keys = pd.DataFrame({"c": company[key_ok], "e": event[key_ok]})
    first, later = _first_rows(keys, checks.rows[key_ok])
    if not later.any():
        return
    positions = np.flatnonzero(key_ok)[later]
    first_rows = first[later]
    first_positions = np.searchsorted(checks.rows, first_rows)
    if not np.array_equal(checks.rows[first_positions], first_rows):  # rows not ascending
        lookup = pd.Series(np.arange(len(checks.rows)), index=checks.rows)
        first_positions = lookup[~lookup.index.duplicated()].loc[first_rows].to_numpy()
    this_amount = amount.iloc[positions].reset_index(drop=True)
    that_amount = amount.iloc[first_positions].reset_index(drop=True)
    base = "repeats companyId and event first seen on row " + pd.Series(first_rows).astype("str")
    differs = _mask(this_amount != that_amount)
    reason = base.mask(
        differs,
        base
        + " with amount "
        + that_amount.astype("str")
        + "; this row says "
        + this_amount.astype("str"),
    )
    value = (
        company.iloc[positions].reset_index(drop=True)
        + " / "
        + event.iloc[positions].reset_index(drop=True)
    )
    checks.add_at(_DUPLICATE_COLUMN, value, positions, reason)


def _outliers(
    checks: _Checks,
    raw: pd.Series,
    event: pd.Series,
    amount: pd.Series,
    valid: np.ndarray,
    judged: np.ndarray,
    known_medians: Mapping[str, float] | None,
) -> None:
    """Amounts 10× above or below their event's usual amount are flagged, not refused."""
    if not judged.any():
        return
    # Work on integer codes of the events: a median per code, then one take per row.
    codes, names = pd.factorize(event, use_na_sentinel=True)
    names = pd.Index(names).astype("str")
    value = amount.astype("float64").to_numpy(na_value=np.nan)
    counted = valid & (codes >= 0)
    basis = pd.Series(value[counted]).groupby(codes[counted]).median()
    median = np.full(len(names) + 1, np.nan)  # the last slot serves code -1 (no event)
    median[basis.index.to_numpy()] = basis.to_numpy()
    registry = np.zeros(len(names) + 1, dtype=bool)
    if known_medians:
        known = pd.Series(dict(known_medians), dtype="float64").dropna()
        at = names.get_indexer(known.index)
        median[at[at >= 0]] = known.to_numpy()[at >= 0]
        registry[at[at >= 0]] = True
    median[median <= 0] = np.nan
    row_median = median[codes]
    with np.errstate(invalid="ignore"):
        high = judged & (value >= OUTLIER_FACTOR * row_median)
        low = judged & (value > 0) & (value * OUTLIER_FACTOR <= row_median)
    for mask, how in ((high, "10 or more times"), (low, "a tenth or less of")):
        if not mask.any():
            continue
        positions = np.flatnonzero(mask)
        code = codes[positions]
        reason = pd.Series(
            [
                f"is {how} the usual amount for {names[c]} (median {_number(median[c])} "
                f"{'in the registry' if registry[c] else 'in this file'}); check for a typo"
                for c in code.tolist()
            ],
            dtype="str",
        )
        checks.add_at("amount", raw.iloc[positions], positions, reason, severity="warning")


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

    def error_rows(self) -> np.ndarray:
        return self.errors.copy()

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            empty = {c: pd.Series(dtype="str") for c in PROBLEM_COLUMNS}
            empty["row"] = pd.Series(dtype="int64")
            self.positions = np.zeros(0, dtype="int64")
            return pd.DataFrame(empty)
        out = pd.concat(self.parts, ignore_index=True)
        out = out.sort_values(["_pos", "_order"], kind="stable", ignore_index=True)
        self.positions = out["_pos"].to_numpy(dtype="int64")
        value = out["value"].astype("str")
        shown = (" '" + value + "': ").where(value != "", ": ")
        out["message"] = "Row " + out["row"].astype("str") + ", " + out["column"] + shown
        out["message"] = out["message"] + out["reason"]
        out["row"] = out["row"].astype("int64")
        for column in ("column", "value", "severity", "reason", "message"):
            out[column] = out[column].astype("str")
        return out[PROBLEM_COLUMNS]


def _row_messages(problems: pd.DataFrame, n: int, checks: _Checks) -> pd.Series:
    """Each row's problems in one line ("" for clean rows), aligned with the frame."""
    message = np.full(n, "", dtype=object)
    if len(problems):
        positions = checks.positions
        text = problems["message"].str.replace(r"^Row [0-9]+, ", "", regex=True)
        repeated = pd.Series(positions).duplicated(keep=False).to_numpy()
        # Most problem rows have one problem: no join needed for those.
        message[positions[~repeated]] = text[~repeated].to_numpy()
        if repeated.any():
            joined = text[repeated].groupby(positions[repeated], sort=False).agg("; ".join)
            message[joined.index.to_numpy()] = joined.to_numpy()
    return pd.Series(message, dtype="str")


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
