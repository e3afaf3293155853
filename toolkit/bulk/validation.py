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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.bulk.reading import Sheet, sheet_from_frame
from toolkit.models import MAX_AMOUNT, REASONS

if TYPE_CHECKING:
    from toolkit.registry import Registry

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

# The models' patterns, in RE2 syntax for pandas' str.fullmatch (anchored on both ends).
_COMPANY = r"[A-Z0-9]{1,32}"
_EVENT = r"[A-Z][A-Z0-9_]{0,63}"
_USER = r"[A-Za-z0-9_.@:-]{1,64}"
_REQUEST = r"[A-Za-z0-9_.:-]{1,64}"
_ASCII = r"[\x00-\x7f]*"
# Letter by letter rather than (?i): RE2's case folding would let `ſ` stand for `s`.
_DEFAULT = r"[Dd][Ee][Ff][Aa][Uu][Ll][Tt]"
_CUSTOM = r"[Cc][Uu][Ss][Tt][Oo][Mm]"
_WHOLE = r"\+?[0-9]+(?:\.0+)?"  # as models: "6.0" is whole
_NEGATIVE = r"-\+?[0-9]+(?:\.0+)?"
_DECIMAL = r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)"
_MAX_DIGITS = len(str(MAX_AMOUNT))
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


def registry_medians(registry: Registry) -> dict[str, float] | None:
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
    registry: Registry | None = None,
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

    company = _field(data["companyId"], _check_company)
    event = _field(data["event"], _check_event)
    amount = _field(data["amount"], _check_amount)
    configuration = _field(data["configuration"], _check_configuration)
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

    company = _field(data["companyId"], _check_company)
    event = _field(data["event"], _check_event)
    user = _field(data["userId"], _check_user)
    request = _field(data["requestId"], _check_request)
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


# -- the rules, column at a time -----------------------------------------------------------
#
# A column is factorized once: the rules run (as RE2 regexes and pyarrow string kernels) on its
# distinct trimmed values only, and each row takes its verdict by its code. A sheet of a million
# rows has a few dozen events, a handful of amounts and two configurations, so this is much
# cheaper than matching every cell, and the codes serve the duplicate and outlier checks too.


def _as_sheet(source: Sheet | pd.DataFrame, kind: str) -> Sheet:
    if isinstance(source, Sheet):
        return source
    if isinstance(source, pd.DataFrame):
        return sheet_from_frame(source, kind=kind)
    raise TypeError(f"validate takes a Sheet or a DataFrame, not {type(source).__name__}")


@dataclass(eq=False)
class _Field:
    """One column's verdicts: per distinct trimmed value, and per row through ``codes``."""

    raw: pd.Series  # the cells as given (RangeIndex)
    codes: np.ndarray  # row -> index into ``uniques``
    uniques: pd.Series  # distinct trimmed values
    good_u: np.ndarray
    normal_u: Any  # pd.Series of normalised text, or an int64 array (amounts)
    reason_bad: np.ndarray  # object: the reason for each refused value, in ``uniques`` order
    bad: np.ndarray  # per row

    def reasons(self) -> pd.Series:
        """One reason per refused row, in row order."""
        at = np.searchsorted(np.flatnonzero(~self.good_u), self.codes[self.bad])
        return pd.Series(self.reason_bad[at], dtype="str")

    def normalised(self) -> pd.Series:
        values = self.normal_u.where(self.good_u).array.take(self.codes)
        return pd.Series(values, dtype="str")

    def values(self) -> pd.Series:
        """Amounts as nullable Int64: missing where refused."""
        return pd.Series(pd.arrays.IntegerArray(self.normal_u[self.codes], self.bad.copy()))

    def present(self) -> np.ndarray:
        return (self.uniques != "").to_numpy(dtype=bool)[self.codes]


def _field(series: pd.Series, check: Any) -> _Field:
    raw = series.reset_index(drop=True).astype("str").fillna("")
    codes, uniques = pd.factorize(raw)
    codes = codes.astype("int64", copy=False)
    uniques = pd.Series(uniques, dtype="str")
    # Trim exactly what str.strip() trims (pyarrow's utf8_trim_whitespace is the same set), then
    # re-factorize: " X" and "X" are one value for the rules and for duplicate detection.
    # Cells from read_configs are trimmed already, so this is usually a no-op.
    trimmed = uniques.str.strip()
    if (trimmed != uniques).any():
        again, merged = pd.factorize(trimmed)
        codes = again[codes]
        uniques = pd.Series(merged, dtype="str")
    good, normal, reason = check(uniques)
    return _Field(
        raw=raw,
        codes=codes,
        uniques=uniques,
        good_u=good,
        normal_u=normal,
        reason_bad=reason,
        bad=~good[codes],
    )


def _fullmatch(text: pd.Series, pattern: str) -> np.ndarray:
    return text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)


def _refused(text: pd.Series, good: np.ndarray) -> pd.Series:
    return text[~good].reset_index(drop=True)


def _reason_table(refused: pd.Series, reason: str) -> np.ndarray:
    """For each refused value: "is missing" when blank, else ``reason``."""
    out = np.full(len(refused), reason, dtype=object)
    out[(refused == "").to_numpy(dtype=bool)] = REASONS["missing"]
    return out


def _suggest(reason: np.ndarray, refused: pd.Series, candidate: pd.Series, pattern: str) -> Any:
    """`cekekcards` is refused (ids are case-sensitive) with "did you mean CEKEKCARDS?"."""
    fits = (
        (refused != "").to_numpy(dtype=bool)
        & _fullmatch(refused, _ASCII)
        & _fullmatch(candidate, pattern)
    )
    if fits.any():
        reason[fits] = (reason[fits] + "; did you mean " + candidate[fits] + "?").to_numpy()
    return reason


def _check_company(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _COMPANY)
    refused = _refused(text, good)
    reason = _reason_table(refused, REASONS["company_id"])
    return good, text, _suggest(reason, refused, refused.str.upper(), _COMPANY)


def _check_event(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _EVENT)
    refused = _refused(text, good)
    reason = _reason_table(refused, REASONS["event"])
    # An event written as words: `meal card payment` → MEAL_CARD_PAYMENT.
    candidate = refused.str.replace(r"[ -]+", "_", regex=True).str.upper()
    return good, text, _suggest(reason, refused, candidate, _EVENT)


def _check_user(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _USER)
    return good, text, _reason_table(_refused(text, good), REASONS["user_id"])


def _check_request(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _REQUEST)
    return good, text, _reason_table(_refused(text, good), REASONS["request_id"])


def _check_configuration(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _DEFAULT) | _fullmatch(text, _CUSTOM)
    # Only DEFAULT/CUSTOM in ASCII letters pass, so upper-casing them is plain ASCII.
    reason = _reason_table(_refused(text, good), REASONS["configuration"])
    return good, text.str.upper(), reason


def _check_amount(text: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole coins 0..MAX_AMOUNT, with models.check_amount's reasons in its order."""
    whole = _fullmatch(text, _WHOLE)
    # Leading zeros are fine ("007" is 7); more significant digits than MAX_AMOUNT has are
    # too big, which also keeps the cast below inside int64.
    digits = text.str.replace(r"\.0+$", "", regex=True).str.lstrip("+").str.lstrip("0")
    length = digits.str.len().fillna(0).to_numpy(dtype="int64")
    small = whole & (length <= _MAX_DIGITS)
    number = digits.where(small & (length > 0), "0").astype("int64").to_numpy()
    good = small & (number <= MAX_AMOUNT)
    refused = _refused(text, good)
    conditions = [
        (refused == "").to_numpy(dtype=bool),
        _fullmatch(refused, _NEGATIVE),
        _fullmatch(refused, _DECIMAL),
        ~whole[~good],
    ]
    keys = ["missing", "negative", "decimals", "digits", "too_big"]
    table = np.array([REASONS[k] for k in keys], dtype=object)
    reason = table[np.select(conditions, np.arange(len(keys) - 1), default=len(keys) - 1)]
    return good, np.where(good, number, 0).astype("int64"), reason


def _combine_codes(
    key: np.ndarray, size: int, codes: np.ndarray, count: int
) -> tuple[np.ndarray, int]:
    """Two code arrays as one; re-factorized when the product would grow too large."""
    if size * max(count, 1) < 2**62:
        return key.astype("int64") * max(count, 1) + codes, size * max(count, 1)
    key = pd.factorize(key)[0].astype("int64")
    size = int(key.max()) + 1 if len(key) else 1
    return key * max(count, 1) + codes, size * max(count, 1)


def _combine(a: _Field, b: _Field, where: np.ndarray) -> tuple[np.ndarray, int]:
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


def _duplicates(checks: _Checks, company: _Field, event: _Field, amount: pd.Series) -> None:
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
    amount: _Field,
    event: _Field,
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
