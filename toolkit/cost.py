"""What the programme costs and what a change would cost: coins awarded, monthly projections
and what-if, in coins and rupees. Pure pandas: every function takes frames and returns frames,
no file, registry or HTTP (``toolkit.bulk.volumes`` gathers the inputs).

The frames it reads:

- **allocations** (``Registry.allocations_frame``): ``at`` (UTC), ``companyId``, ``event``,
  ``userId``, ``requestId``, ``coins`` (the amount configured when it was allocated; missing
  when the toolkit did not know the configuration), ``status`` (``allocated``, ``confirmed`` —
  an earlier send proved done — or ``unconfirmed``), ``source``, ``bulk_run``.
- **configurations** (``Registry.known_pairs`` / ``to_frame``): ``companyId``, ``event``,
  ``amount``.
- **volumes**: ``companyId``, ``event``, ``monthly_count`` — how often each event happens in a
  month (``volumes_from_history`` or a volumes sheet).

Monthly cost of a pair = monthly volume × configured amount × the value of a coin
(`CoinValue`, ``COINS_RUPEES_PER_COIN``; ₹1 assumed, and said, when it is unset). Rupee figures
are written the Indian way (`format_inr`: ₹45,000 · ₹1.2 lakh · ₹3.4 crore).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from toolkit.money import (
    Budgets,
    CoinValue,
    for_people,
    format_coins,
    format_inr,
    format_pct,
    group_indian,
)

__all__ = [
    "COUNTED_STATUSES",
    "DAYS_PER_MONTH",
    "HISTORY_DAYS",
    "PERIODS",
    "Budgets",
    "CoinValue",
    "Period",
    "WhatIf",
    "awarded",
    "changes_from_edits",
    "changes_from_plan",
    "cost_line",
    "for_people",
    "format_coins",
    "format_inr",
    "format_pct",
    "group_indian",
    "projection",
    "single_change",
    "top_movers",
    "totals",
    "volumes_from_history",
    "what_if",
]

DAYS_PER_MONTH = 365.25 / 12  # an average month: 30.4375 days
HISTORY_DAYS = 30
# Allocations that awarded coins: made now, or an earlier send of ours proved done.
COUNTED_STATUSES = ("allocated", "confirmed")
PERIODS = ("day", "week", "month")
PAIR = ["companyId", "event"]

Period = Literal["day", "week", "month"]


# --------------------------------------------------------------------------- awarded


def _utc(at: pd.Series) -> pd.Series:
    at = pd.to_datetime(at, utc=True) if not isinstance(at.dtype, pd.DatetimeTZDtype) else at
    return at.dt.tz_convert("UTC")


def _period_start(at: pd.Series, period: Period) -> np.ndarray:
    """The first day of each timestamp's day / week (Monday) / month, in UTC, as datetime64."""
    days = _utc(at).dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    if period == "day":
        start = days
    elif period == "week":
        # 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays.
        start = days - ((days.view("int64") + 3) % 7).astype("timedelta64[D]")
    elif period == "month":
        start = days.astype("datetime64[M]").astype("datetime64[D]")
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    return start.astype("datetime64[s]")


def _counted(allocations: pd.DataFrame, statuses: Iterable[str]) -> pd.DataFrame:
    if "status" not in allocations.columns:
        return allocations
    wanted = list(statuses)
    mask = allocations["status"].isin(wanted)
    return allocations if bool(mask.all()) else allocations.loc[mask]


def awarded(
    allocations: pd.DataFrame,
    *,
    by: str | Sequence[str] = "companyId",
    period: Period | None = "month",
    statuses: Iterable[str] = COUNTED_STATUSES,
    value: CoinValue | None = None,
) -> pd.DataFrame:
    """Coins awarded per ``by`` (company, event, user, … or several) and per day, week or
    month (``period``; None = all time).

    Returns ``by`` columns, ``period`` (the period's first day, UTC) when asked,
    ``allocations``, ``coins`` and ``rupees``; allocations whose coins are unknown count in
    ``allocations`` and in ``unknown_coins``, not in ``coins``. Only ``statuses`` count
    (default: allocated and confirmed, not unconfirmed).
    """
    value = value or CoinValue()
    keys = [by] if isinstance(by, str) else list(by)
    data = _counted(allocations, statuses)
    coins = data["coins"]
    # Group codes per key (hash factorize, sorted labels), one mixed-radix code per row, and
    # bincount for sizes and sums: about as fast as one plain groupby over 1,000,000 records.
    codes: list[np.ndarray] = []
    labels: list[Any] = []
    for key in keys:
        code, unique = pd.factorize(data[key], sort=True, use_na_sentinel=False)
        codes.append(code.astype("int64"))
        labels.append(unique)
    if period is not None:
        code, unique = pd.factorize(_period_start(data["at"], period), sort=True)
        codes.append(code.astype("int64"))
        labels.append(pd.DatetimeIndex(unique))
    dims = tuple(max(len(u), 1) for u in labels)
    if math.prod(dims) > 50_000_000:  # too many combinations for one dense count
        return _awarded_grouped(data, keys, period, value)
    flat = np.zeros(len(data), dtype="int64")
    for code, size in zip(codes, dims, strict=True):
        flat = flat * size + code
    cells = math.prod(dims)
    sizes = np.bincount(flat, minlength=cells)
    sums = np.bincount(flat, weights=coins.to_numpy(dtype="float64", na_value=0.0), minlength=cells)
    unknown = np.bincount(flat, weights=coins.isna().to_numpy(), minlength=cells)
    present = np.flatnonzero(sizes)
    columns: dict[str, Any] = {}
    for name, index, unique in zip(
        [*keys, *(["period"] if period is not None else [])],
        np.unravel_index(present, dims) if labels else [],
        labels,
        strict=True,
    ):
        picked = unique.take(index) if hasattr(unique, "take") else np.asarray(unique)[index]
        columns[name] = picked if name == "period" else pd.array(picked, dtype="str")
    out = pd.DataFrame(
        {
            **columns,
            "allocations": sizes[present].astype("int64"),
            "coins": np.rint(sums[present]).astype("int64"),
            "unknown_coins": np.rint(unknown[present]).astype("int64"),
        }
    )
    if "period" in out.columns:
        out["period"] = pd.to_datetime(out["period"]).astype("datetime64[s]")
    out["rupees"] = out["coins"] * value.rupees_per_coin
    return out


def _awarded_grouped(
    data: pd.DataFrame, keys: list[str], period: Period | None, value: CoinValue
) -> pd.DataFrame:
    """`awarded` for key combinations too many to count densely: a pandas groupby."""
    coins = data["coins"]
    frame = pd.DataFrame(
        {
            **{k: data[k].to_numpy() for k in keys},
            "coins": coins.to_numpy(dtype="float64", na_value=0.0),
            "unknown": coins.isna().to_numpy(),
        }
    )
    group_keys = list(keys)
    if period is not None:
        frame["period"] = _period_start(data["at"], period)
        group_keys.append("period")
    grouped = frame.groupby(group_keys, sort=True, observed=True, dropna=False)
    out = pd.DataFrame(
        {
            "allocations": grouped.size().astype("int64"),
            "coins": grouped["coins"].sum().round().astype("int64"),
            "unknown_coins": grouped["unknown"].sum().astype("int64"),
        }
    ).reset_index()
    for k in keys:
        out[k] = out[k].astype("str")
    out["rupees"] = out["coins"] * value.rupees_per_coin
    return out


def top_movers(
    allocations: pd.DataFrame,
    *,
    by: str = "companyId",
    period: Period = "month",
    n: int = 10,
    value: CoinValue | None = None,
) -> pd.DataFrame:
    """Who moved most between the last two periods with allocations: ``by``, ``previous``,
    ``latest``, ``change`` (coins) and ``pct``; largest change (up or down) first."""
    per = awarded(allocations, by=by, period=period, value=value)
    columns = {by: "str", "previous": "int64", "latest": "int64", "change": "int64"}
    empty = pd.DataFrame({k: pd.Series([], dtype=v) for k, v in columns.items()})
    empty["pct"] = pd.Series([], dtype="float64")
    periods = sorted(per["period"].unique()) if len(per) else []
    if len(periods) < 2:
        return empty
    last, before = periods[-1], periods[-2]
    wide = (
        per.loc[per["period"].isin([before, last])]
        .pivot_table(index=by, columns="period", values="coins", aggfunc="sum", fill_value=0)
        .reindex(columns=[before, last], fill_value=0)
    )
    out = pd.DataFrame(
        {
            by: wide.index.astype("str"),
            "previous": wide[before].astype("int64").to_numpy(),
            "latest": wide[last].astype("int64").to_numpy(),
        }
    )
    out["change"] = out["latest"] - out["previous"]
    out["pct"] = (out["change"] / out["previous"].where(out["previous"] != 0)).astype("float64")
    out = out.loc[out["change"] != 0]
    order = out["change"].abs().sort_values(ascending=False, kind="stable").index
    out = out.loc[order].head(n).reset_index(drop=True)
    # Plain text (attrs travel into Arrow/JSON): the two periods compared.
    out.attrs["periods"] = [f"{pd.Timestamp(before):%Y-%m-%d}", f"{pd.Timestamp(last):%Y-%m-%d}"]
    return out


# --------------------------------------------------------------------------- volumes


def volumes_from_history(
    allocations: pd.DataFrame,
    *,
    days: int = HISTORY_DAYS,
    now: pd.Timestamp | str | None = None,
    statuses: Iterable[str] = COUNTED_STATUSES,
) -> pd.DataFrame:
    """How often each (company, event) happens in a month, from the allocations of the last
    ``days`` days before ``now``: count × 30.44 / ``days``.

    Returns ``companyId``, ``event``, ``count`` (in the window) and ``monthly_count``; its
    ``attrs["source"]`` says where the figures come from.
    """
    if days <= 0:
        raise ValueError("days must be at least 1")
    end = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    start = end - pd.Timedelta(days=days)
    data = _counted(allocations, statuses)
    if len(data):
        at = _utc(data["at"])
        data = data.loc[((at >= start) & (at < end)).to_numpy()]
    counts = data.groupby(PAIR, sort=True, observed=True).size() if len(data) else None
    if counts is None or counts.empty:
        out = pd.DataFrame(
            {
                "companyId": pd.Series([], dtype="str"),
                "event": pd.Series([], dtype="str"),
                "count": pd.Series([], dtype="int64"),
                "monthly_count": pd.Series([], dtype="float64"),
            }
        )
    else:
        out = counts.rename("count").reset_index()
        out["companyId"] = out["companyId"].astype("str")
        out["event"] = out["event"].astype("str")
        out["count"] = out["count"].astype("int64")
        out["monthly_count"] = out["count"] * (DAYS_PER_MONTH / days)
    total = int(out["count"].sum())
    out.attrs["source"] = (
        f"{group_indian(total)} allocation{'s' if total != 1 else ''} in the {days} days to "
        f"{end:%Y-%m-%d}, scaled to a month"
    )
    return out


def _volumes(volumes: pd.DataFrame | None) -> pd.DataFrame:
    """companyId, event, monthly_count (one row per pair, summed) from any volumes frame."""
    if volumes is None or len(volumes) == 0:
        return pd.DataFrame(
            {
                "companyId": pd.Series([], dtype="str"),
                "event": pd.Series([], dtype="str"),
                "monthly_count": pd.Series([], dtype="float64"),
            }
        )
    column = "monthly_count" if "monthly_count" in volumes.columns else "count"
    data = pd.DataFrame(
        {
            "companyId": volumes["companyId"].astype("str"),
            "event": volumes["event"].astype("str"),
            "monthly_count": pd.to_numeric(volumes[column], errors="coerce").astype("float64"),
        }
    ).dropna(subset=["monthly_count"])
    return data.groupby(PAIR, as_index=False, sort=True)["monthly_count"].sum()


def _pairs(configs: pd.DataFrame) -> pd.DataFrame:
    """companyId, event, amount: one row per configured pair (the last one listed wins)."""
    data = configs.loc[configs["companyId"].notna() & configs["event"].notna()]
    out = pd.DataFrame(
        {
            "companyId": data["companyId"].astype("str").to_numpy(),
            "event": data["event"].astype("str").to_numpy(),
            "amount": pd.to_numeric(data["amount"], errors="coerce").astype("Int64").to_numpy(),
        }
    )
    return out.drop_duplicates(PAIR, keep="last").reset_index(drop=True)


# --------------------------------------------------------------------------- projection


def projection(
    configs: pd.DataFrame, volumes: pd.DataFrame | None, *, value: CoinValue | None = None
) -> pd.DataFrame:
    """Monthly coins and rupees of every configured pair: volume × amount × value.

    Returns ``companyId``, ``event``, ``amount``, ``monthly_count`` (0 when no volume is
    known), ``has_volume``, ``monthly_coins`` and ``monthly_rupees``.
    """
    value = value or CoinValue()
    pairs = _pairs(configs)
    merged = pairs.merge(_volumes(volumes), on=PAIR, how="left", validate="one_to_one")
    merged["has_volume"] = merged["monthly_count"].notna()
    merged["monthly_count"] = merged["monthly_count"].fillna(0.0)
    amount = merged["amount"].to_numpy(dtype="float64", na_value=0.0)
    merged["monthly_coins"] = amount * merged["monthly_count"].to_numpy()
    merged["monthly_rupees"] = merged["monthly_coins"] * value.rupees_per_coin
    # Plain values (attrs travel into Arrow/JSON): `CoinValue.from_attrs` reads them back.
    merged.attrs["rupees_per_coin"] = value.rupees_per_coin
    merged.attrs["value_assumed"] = value.assumed
    return merged


def totals(frame: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """A projection or what-if frame summed per ``by`` (its numeric cost columns), largest
    monthly cost first."""
    keys = [by] if isinstance(by, str) else list(by)
    numeric = [
        c
        for c in frame.columns
        if c not in keys
        and (c.startswith(("coins_", "rupees_", "monthly_")) or c == "monthly_count")
    ]
    out = frame.groupby(keys, as_index=False, sort=True)[numeric].sum()
    order = next((c for c in ("monthly_rupees", "rupees_after") if c in out.columns), None)
    if order:
        out = out.sort_values([order, *keys], ascending=[False, *[True] * len(keys)])
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- changes


def _changes(changes: pd.DataFrame) -> pd.DataFrame:
    """companyId, event, amount (Int64): one proposed amount per pair, the last one wins."""
    if changes is None or len(changes) == 0:
        return pd.DataFrame(
            {
                "companyId": pd.Series([], dtype="str"),
                "event": pd.Series([], dtype="str"),
                "amount": pd.Series([], dtype="Int64"),
            }
        )
    out = pd.DataFrame(
        {
            "companyId": changes["companyId"].astype("str").to_numpy(),
            "event": changes["event"].astype("str").to_numpy(),
            "amount": pd.to_numeric(changes["amount"], errors="coerce").astype("Int64").to_numpy(),
        }
    ).dropna(subset=["amount"])
    return out.drop_duplicates(PAIR, keep="last").reset_index(drop=True)


def changes_from_plan(plan: Any) -> pd.DataFrame:
    """The amounts a configuration plan would put live (rows it would create or update; not
    conflicts, unchanged or invalid rows). Takes a ``Plan`` or its ``frame``."""
    frame = getattr(plan, "frame", plan)
    if "action" not in frame.columns or "amount" not in frame.columns:
        raise ValueError("a configuration plan (toolkit.bulk.plan) is needed for a cost delta")
    sending = frame.loc[frame["action"].isin(["create", "update"])]
    return _changes(sending[["companyId", "event", "amount"]])


def changes_from_edits(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The pairs whose amount differs between two frames of configurations (e.g. a table
    before and after the analyst edited it)."""
    old = _pairs(before).rename(columns={"amount": "before"})
    new = _pairs(after)
    merged = new.merge(old, on=PAIR, how="left")
    differs = merged["amount"].ne(merged["before"]).fillna(True).astype("bool")
    return _changes(merged.loc[differs, ["companyId", "event", "amount"]])


def single_change(company_id: str, event: str, amount: int) -> pd.DataFrame:
    """One proposed amount (the single update form)."""
    return _changes(pd.DataFrame({"companyId": [company_id], "event": [event], "amount": [amount]}))


# --------------------------------------------------------------------------- what-if


@dataclass
class WhatIf:
    """Monthly cost before and after a set of proposed amounts.

    ``pairs``: one row per configured or proposed (company, event) — ``amount_before``,
    ``amount_after``, ``changed``, ``monthly_count``, ``has_volume`` and
    ``coins_/rupees_before|after|delta``. ``by_company`` (with ``budget`` and
    ``over_budget_before|after``) and ``by_event`` sum it; ``total`` is the whole programme.
    Every delta adds up: pairs → companies → total, pairs → events → total.
    """

    pairs: pd.DataFrame
    by_company: pd.DataFrame
    by_event: pd.DataFrame
    total: dict[str, float]
    value: CoinValue
    volumes_known: bool

    @property
    def changed(self) -> pd.DataFrame:
        """Only the pairs whose amount the change sets to something new."""
        return self.pairs.loc[self.pairs["changed"]].reset_index(drop=True)

    @property
    def without_volume(self) -> int:
        """Changed pairs with no known volume: their cost cannot be told (counted as 0)."""
        changed = self.pairs["changed"] & ~self.pairs["has_volume"]
        return int(changed.sum())

    @property
    def newly_over_budget(self) -> list[str]:
        """Companies this change takes over their monthly budget."""
        frame = self.by_company
        mask = frame["over_budget_after"] & ~frame["over_budget_before"]
        return frame.loc[mask, "companyId"].astype("str").tolist()

    @property
    def over_budget(self) -> list[str]:
        """Companies over budget after the change (newly or already)."""
        frame = self.by_company
        return frame.loc[frame["over_budget_after"], "companyId"].astype("str").tolist()

    def summary(self) -> str:
        """One line: "raises monthly cost by ₹1.2 lakh, +18%; CEKEKCARDS over budget"."""
        return cost_line(self)


def what_if(
    configs: pd.DataFrame,
    volumes: pd.DataFrame | None,
    changes: pd.DataFrame,
    *,
    value: CoinValue | None = None,
    budgets: Budgets | None = None,
) -> WhatIf:
    """The monthly cost of the programme as configured and with ``changes`` (companyId,
    event, amount: proposed amounts; new pairs count from nothing), per pair, company and
    event, and in total; ``budgets`` flags companies over their monthly budget."""
    value = value or CoinValue()
    budgets = budgets or Budgets()
    before = _pairs(configs).rename(columns={"amount": "amount_before"})
    proposed = _changes(changes).rename(columns={"amount": "proposed"})
    pairs = before.merge(proposed, on=PAIR, how="outer", sort=True)
    vol = _volumes(volumes)
    pairs = pairs.merge(vol, on=PAIR, how="left", validate="one_to_one")
    has_proposal = pairs["proposed"].notna()
    pairs["amount_after"] = pairs["proposed"].where(has_proposal, pairs["amount_before"])
    pairs["amount_after"] = pairs["amount_after"].astype("Int64")
    pairs["amount_before"] = pairs["amount_before"].astype("Int64")
    pairs["changed"] = (
        has_proposal & pairs["amount_after"].ne(pairs["amount_before"]).fillna(True)
    ).astype("bool")
    pairs["has_volume"] = pairs["monthly_count"].notna()
    count = pairs["monthly_count"].fillna(0.0).to_numpy(dtype="float64")
    pairs["monthly_count"] = count
    a_before = pairs["amount_before"].to_numpy(dtype="float64", na_value=0.0)
    a_after = pairs["amount_after"].to_numpy(dtype="float64", na_value=0.0)
    pairs["coins_before"] = a_before * count
    pairs["coins_after"] = a_after * count
    pairs["coins_delta"] = (a_after - a_before) * count
    rate = value.rupees_per_coin
    for name in ("before", "after", "delta"):
        pairs[f"rupees_{name}"] = pairs[f"coins_{name}"] * rate
    pairs = pairs.drop(columns=["proposed"])
    pairs = pairs[
        [
            "companyId",
            "event",
            "amount_before",
            "amount_after",
            "changed",
            "monthly_count",
            "has_volume",
            "coins_before",
            "coins_after",
            "coins_delta",
            "rupees_before",
            "rupees_after",
            "rupees_delta",
        ]
    ]
    sums = ["coins_before", "coins_after", "coins_delta", "rupees_before", "rupees_after"]
    sums.append("rupees_delta")
    by_company = _grouped(pairs, "companyId", sums)
    budget = budgets.for_companies(by_company["companyId"])
    by_company["budget"] = budget.to_numpy()
    has_budget = budget.notna().to_numpy()
    by_company["over_budget_before"] = has_budget & (
        by_company["rupees_before"].to_numpy() > budget.fillna(np.inf).to_numpy()
    )
    by_company["over_budget_after"] = has_budget & (
        by_company["rupees_after"].to_numpy() > budget.fillna(np.inf).to_numpy()
    )
    by_event = _grouped(pairs, "event", sums)
    total = {name: float(pairs[name].sum()) for name in sums}
    total["pct"] = (
        total["rupees_delta"] / total["rupees_before"] if total["rupees_before"] else math.nan
    )
    return WhatIf(
        pairs=pairs,
        by_company=by_company,
        by_event=by_event,
        total=total,
        value=value,
        volumes_known=bool(len(vol)),
    )


def _grouped(pairs: pd.DataFrame, key: str, sums: list[str]) -> pd.DataFrame:
    out = pairs.groupby(key, as_index=False, sort=True)[sums].sum()
    out["changed"] = pairs.groupby(key, sort=True)["changed"].sum().astype("int64").to_numpy()
    before = out["rupees_before"]
    out["pct"] = (out["rupees_delta"] / before.where(before != 0)).astype("float64")
    out[key] = out[key].astype("str")
    return out


def _names(companies: list[str], limit: int = 3) -> str:
    if len(companies) <= limit:
        return ", ".join(companies)
    return ", ".join(companies[:limit]) + f" and {len(companies) - limit} more"


def cost_line(result: WhatIf) -> str:
    """The one line a plan or a form shows beside its counts, e.g. "raises monthly cost by
    ₹1.2 lakh, +18%; CEKEKCARDS over budget (assumes ₹1 per coin)"."""
    total = result.total
    delta, before = total["rupees_delta"], total["rupees_before"]
    changed = int(result.pairs["changed"].sum())
    if not changed:
        text = f"changes no amount: monthly cost stays {format_inr(before)}"
    elif abs(delta) < 0.005:
        text = f"leaves monthly cost at {format_inr(before)}"
    else:
        verb = "raises" if delta > 0 else "lowers"
        text = f"{verb} monthly cost by {format_inr(abs(delta))}"
        text += f", {format_pct(total['pct'])}" if before else " (from nothing)"
    newly = result.newly_over_budget
    if newly:
        text += f"; {_names(newly)} over budget"
    missing = result.without_volume
    if missing:
        text += (
            f"; {missing} changed pair{'s have' if missing != 1 else ' has'} no known volume "
            "(counted as 0)"
        )
    return f"{text} ({result.value.short_note})"
