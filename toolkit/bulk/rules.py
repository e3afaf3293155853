"""The field rules of `toolkit.models`, vectorised: one whole column at a time.

Each rule is a regular expression or a comparison over a pyarrow-backed column (RE2 and
pyarrow compute, no Python loop per row), written to give exactly the verdict, normalised value
and reason of the scalar `toolkit.models.check_*` for the same cell; a property test keeps the
two in agreement. A column is factorized once: the rules run on its distinct trimmed values
only, and each row takes its verdict by its code. A sheet of a million rows has a few dozen
events, a handful of amounts and two configurations, so this is much cheaper than matching
every cell, and the codes serve the duplicate and outlier checks of `toolkit.bulk.validation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from toolkit.models import MAX_AMOUNT, REASONS

__all__ = [
    "Field",
    "Rule",
    "amount_rule",
    "company_rule",
    "configuration_rule",
    "event_rule",
    "factorized",
    "request_rule",
    "user_rule",
]

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

# A rule takes a column's distinct trimmed values and gives, for each: whether it is good, its
# normalised form (text, or an int64 array for amounts) and the reason for each refused one.
Rule = Callable[[pd.Series], tuple[np.ndarray, Any, np.ndarray]]


@dataclass(eq=False)
class Field:
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


def factorized(series: pd.Series, check: Rule) -> Field:
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
    return Field(
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


def company_rule(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _COMPANY)
    refused = _refused(text, good)
    reason = _reason_table(refused, REASONS["company_id"])
    return good, text, _suggest(reason, refused, refused.str.upper(), _COMPANY)


def event_rule(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _EVENT)
    refused = _refused(text, good)
    reason = _reason_table(refused, REASONS["event"])
    # An event written as words: `meal card payment` → MEAL_CARD_PAYMENT.
    candidate = refused.str.replace(r"[ -]+", "_", regex=True).str.upper()
    return good, text, _suggest(reason, refused, candidate, _EVENT)


def user_rule(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _USER)
    return good, text, _reason_table(_refused(text, good), REASONS["user_id"])


def request_rule(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _REQUEST)
    return good, text, _reason_table(_refused(text, good), REASONS["request_id"])


def configuration_rule(text: pd.Series) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    good = _fullmatch(text, _DEFAULT) | _fullmatch(text, _CUSTOM)
    # Only DEFAULT/CUSTOM in ASCII letters pass, so upper-casing them is plain ASCII.
    reason = _reason_table(_refused(text, good), REASONS["configuration"])
    return good, text.str.upper(), reason


def amount_rule(text: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
