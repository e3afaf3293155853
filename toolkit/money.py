"""Money as analysts read it: rupees the Indian way (₹45,000 · ₹1.2 lakh · ₹3.4 crore), coins,
percentages, a frame made readable for people (`for_people`), what a coin is worth
(`CoinValue`, ``COINS_RUPEES_PER_COIN``) and monthly budgets (`Budgets`,
``COINS_MONTHLY_BUDGET``). No pandas computation beyond formatting: `toolkit.cost` computes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "Budgets",
    "CoinValue",
    "for_people",
    "format_coins",
    "format_inr",
    "format_pct",
    "group_indian",
]

_LAKH = 100_000
_CRORE = 10_000_000


# --------------------------------------------------------------------------- money


def group_indian(number: int) -> str:
    """Digits grouped the Indian way: 1234567 → "12,34,567" (3, then 2 at a time)."""
    sign = "-" if number < 0 else ""
    digits = str(abs(int(number)))
    if len(digits) <= 3:
        return sign + digits
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    if head:
        pairs.insert(0, head)
    return sign + ",".join([*pairs, tail])


def _exact(value: float) -> str:
    whole = round(value)
    if abs(value - whole) < 0.005:
        return group_indian(int(whole))
    rupees, paise = divmod(round(abs(value) * 100), 100)
    return ("-" if value < 0 else "") + f"{group_indian(int(rupees))}.{int(paise):02d}"


def _short(value: float, unit: int) -> str:
    whole, _, decimals = f"{value / unit:.2f}".partition(".")
    decimals = decimals.rstrip("0")
    return group_indian(int(whole)) + (f".{decimals}" if decimals else "")


def format_inr(value: float | None, *, exact: bool = False, signed: bool = False) -> str:
    """Rupees as an Indian reader writes them: ₹45,000 · ₹1.2 lakh · ₹3.45 crore.

    Below a lakh the figure is exact (paise only when there are some); from a lakh up it is
    rounded to two decimals of lakh or crore — ``exact=True`` gives every digit (for tooltips
    and hover text). ``signed`` puts + or - in front (deltas). Missing values read "—".
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "—"
    value = float(value)
    sign = ("+" if value > 0 else "-" if value < 0 else "") if signed else ""
    if not signed and value < 0:
        sign = "-"
    size = abs(value)
    if exact or size < _LAKH:
        return f"{sign}₹{_exact(size)}"
    if round(size / _LAKH, 2) < 100:
        return f"{sign}₹{_short(size, _LAKH)} lakh"
    return f"{sign}₹{_short(size, _CRORE)} crore"


def format_coins(value: float | None, *, signed: bool = False) -> str:
    """Coins with Indian digit grouping: "1,20,000 coins" (whole coins; "—" when missing)."""
    if value is None or pd.isna(value):
        return "—"
    number = round(float(value))
    sign = "+" if signed and number > 0 else ""
    return f"{sign}{group_indian(number)} coin{'s' if abs(number) != 1 else ''}"


def format_pct(fraction: float | None) -> str:
    """A signed percentage: +18%, -2%, +0.4% (one decimal below 1%); "" when unknown."""
    if fraction is None or pd.isna(fraction) or math.isinf(fraction):
        return ""
    if fraction == 0:
        return "0%"
    return f"{fraction:+.1%}" if abs(fraction) < 0.01 else f"{fraction:+.0%}"


def _is_rupees(column: str) -> bool:
    return "rupees" in column or column == "budget"


def _is_coins(column: str) -> bool:
    return "coins" in column or column in ("monthly_count", "count")


def _one_decimal(value: float) -> str:
    whole, tenth = divmod(round(abs(value) * 10), 10)
    text = group_indian(int(whole)) + (f".{int(tenth)}" if tenth else "")
    return ("-" if value < 0 else "") + text


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """A cost frame to read (tables in the app, the CLI, notebooks): rupee columns written
    out the Indian way (₹1,20,000), coins and counts rounded and grouped (1,20,000), ``pct``
    as a signed percentage, yes/no columns as "yes" or blank, nothing shown as None."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if _is_rupees(column):
            out[column] = [format_inr(v, exact=True) if pd.notna(v) else "" for v in values]
        elif column == "monthly_count" and pd.api.types.is_numeric_dtype(values.dtype):
            out[column] = ["" if pd.isna(v) else _one_decimal(float(v)) for v in values]
        elif _is_coins(column) and pd.api.types.is_numeric_dtype(values.dtype):
            out[column] = ["" if pd.isna(v) else group_indian(round(float(v))) for v in values]
        elif column == "pct":
            out[column] = [format_pct(v) for v in values]
        elif pd.api.types.is_bool_dtype(values.dtype):
            out[column] = ["yes" if v else "" for v in values]
        else:
            out[column] = values.astype(object).where(values.notna(), "")
    return out


@dataclass(frozen=True, slots=True)
class CoinValue:
    """What one coin is worth in rupees. ``assumed`` is True when nobody said
    (``COINS_RUPEES_PER_COIN`` unset): figures then say they assume ₹1 per coin."""

    rupees_per_coin: float = 1.0
    assumed: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.rupees_per_coin) or self.rupees_per_coin < 0:
            raise ValueError("the value of a coin must be a number of rupees, 0 or more")

    @classmethod
    def of(cls, rupees_per_coin: float | None) -> CoinValue:
        """The value set (e.g. ``Settings.rupees_per_coin``), or ₹1 assumed when None."""
        if rupees_per_coin is None:
            return cls()
        return cls(float(rupees_per_coin), assumed=False)

    @classmethod
    def from_settings(cls, settings: Any) -> CoinValue:
        return cls.of(getattr(settings, "rupees_per_coin", None))

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> CoinValue | None:
        """The value a `projection` frame was made with (its ``attrs``), if it says."""
        if "rupees_per_coin" not in attrs:
            return None
        return cls(float(attrs["rupees_per_coin"]), assumed=bool(attrs.get("value_assumed")))

    @property
    def note(self) -> str:
        """Said beside every rupee figure."""
        if self.assumed:
            return "assumes ₹1 per coin (set COINS_RUPEES_PER_COIN for your programme's value)"
        return f"at ₹{self.rupees_per_coin:g} per coin"

    @property
    def sentence(self) -> str:
        """The same as a sentence, for the top of a page or notebook."""
        if self.assumed:
            return "Rupee figures assume ₹1 per coin: COINS_RUPEES_PER_COIN is not set."
        return f"Rupee figures are at ₹{self.rupees_per_coin:g} per coin (COINS_RUPEES_PER_COIN)."

    @property
    def short_note(self) -> str:
        return "assumes ₹1 per coin" if self.assumed else f"₹{self.rupees_per_coin:g} per coin"


# --------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class Budgets:
    """Monthly budgets in rupees: per company, and optionally one for every other company."""

    per_company: Mapping[str, float] = field(default_factory=dict)
    default: float | None = None

    def __bool__(self) -> bool:
        return bool(self.per_company) or self.default is not None

    @classmethod
    def parse(cls, text: str | None) -> Budgets:
        """``COINS_MONTHLY_BUDGET``: one number for every company (``150000``), or
        ``CEKEKCARDS=150000, CEK0TCW2W8=50000`` with ``*=…`` for every other company.
        ``ValueError`` names the part that is not a budget."""
        if text is None or not str(text).strip():
            return cls()
        per_company: dict[str, float] = {}
        default: float | None = None
        text = str(text).strip()
        # Amounts may be grouped with commas (1,50,000): split only before the next "NAME=".
        parts = re.split(r"[,;]\s*(?=[^,;=]+=)", text) if "=" in text else [text]
        for part in parts:
            part = part.strip().rstrip(",;").strip()
            if not part:
                continue
            name, sep, amount = part.rpartition("=")
            if not sep:
                name, amount = "*", part
            name = name.strip() or "*"
            value = _budget_value(amount, part)
            if name == "*":
                default = value
            else:
                per_company[name] = value
        return cls(per_company=per_company, default=default)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Budgets:
        """From a frame of ``companyId, budget`` (₹ a month); ``*`` as companyId = default."""
        per_company = {
            str(c): float(b)
            for c, b in zip(frame["companyId"], frame["budget"], strict=True)
            if pd.notna(b)
        }
        default = per_company.pop("*", None)
        return cls(per_company=per_company, default=default)

    def for_companies(self, companies: pd.Series) -> pd.Series:
        """The budget of each company in ``companies`` (NaN where none applies)."""
        mapped = companies.astype("str").map(dict(self.per_company)).astype("float64")
        if self.default is not None:
            mapped = mapped.fillna(self.default)
        return mapped


def _budget_value(text: str, part: str) -> float:
    cleaned = text.strip().replace(",", "").replace("₹", "").replace("_", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(
            f"COINS_MONTHLY_BUDGET: {part!r} is not a budget; write rupees a month, e.g. "
            "150000 or CEKEKCARDS=150000,*=50000"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"COINS_MONTHLY_BUDGET: {part!r} must be 0 or more rupees")
    return value
