"""Properties of what-if, for any programme, volumes and proposal: proposing what is configured
changes nothing, and the deltas per pair, per company and per event add up to the total."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import cost

COMPANIES = ["CEKA", "CEKB", "CEKC", "CEKD"]
EVENTS = ["MEAL_CARD_PAYMENT", "REFERRAL_EVENT", "INVOICE_PAYMENT"]
pairs = st.tuples(st.sampled_from(COMPANIES), st.sampled_from(EVENTS))
amounts = st.integers(0, 1_000_000)
counts = st.floats(0, 100_000, allow_nan=False, allow_infinity=False)


def frame(items: dict, column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "companyId": [c for c, _ in items],
            "event": [e for _, e in items],
            column: list(items.values()),
        }
    )


programmes = st.dictionaries(pairs, amounts, max_size=12).map(lambda d: frame(d, "amount"))
volumes = st.dictionaries(pairs, counts, max_size=12).map(lambda d: frame(d, "monthly_count"))
proposals = st.dictionaries(pairs, amounts, max_size=12).map(lambda d: frame(d, "amount"))
values = st.sampled_from([None, 0.25, 1.0, 3.0]).map(cost.CoinValue.of)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=50, deadline=None)
@given(programme=programmes, volume=volumes, value=values)
def test_proposing_what_is_configured_changes_nothing(programme, volume, value):
    for unchanged in (programme, programme.iloc[0:0]):
        result = cost.what_if(programme, volume, unchanged, value=value)
        assert not result.pairs["changed"].any()
        assert (result.pairs["coins_delta"] == 0).all()
        assert result.total["coins_delta"] == 0 and result.total["rupees_delta"] == 0
        assert (result.by_company["rupees_delta"] == 0).all()
        assert (result.by_event["rupees_delta"] == 0).all()
        assert result.summary().startswith("changes no amount")
        # "before" is the projection of the programme as configured.
        projected = cost.projection(programme, volume, value=value)
        assert close(result.total["rupees_before"], float(projected["monthly_rupees"].sum()))


@settings(max_examples=80, deadline=None)
@given(programme=programmes, volume=volumes, proposal=proposals, value=values)
def test_deltas_add_up_to_the_total(programme, volume, proposal, value):
    result = cost.what_if(programme, volume, proposal, value=value)
    total = result.total
    for unit in ("coins", "rupees"):
        delta = f"{unit}_delta"
        assert close(float(result.pairs[delta].sum()), total[delta])
        assert close(float(result.by_company[delta].sum()), total[delta])
        assert close(float(result.by_event[delta].sum()), total[delta])
        assert close(total[f"{unit}_before"] + total[delta], total[f"{unit}_after"])
        by = result.by_company
        assert all(
            close(b + d, a)
            for b, d, a in zip(by[f"{unit}_before"], by[delta], by[f"{unit}_after"], strict=True)
        )
    # Only changed pairs move; rupees are coins at the coin's value.
    unchanged = result.pairs.loc[~result.pairs["changed"]]
    assert (unchanged["coins_delta"] == 0).all()
    assert close(total["rupees_delta"], total["coins_delta"] * value.rupees_per_coin)
