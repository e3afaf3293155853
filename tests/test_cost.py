"""toolkit.cost against figures worked out by hand on small frames: coins awarded per period,
volumes from history, the monthly projection, what-if deltas, budgets and Indian rupees."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from toolkit import bulk, cost
from toolkit.bulk.reading import sheet_from_frame
from toolkit.client import ApiCall
from toolkit.models import CoinConfig, Configuration
from toolkit.registry import Registry

CONFIGS = pd.DataFrame(
    {
        "companyId": ["CEKA", "CEKA", "CEKB"],
        "event": ["MEAL_CARD_PAYMENT", "REFERRAL_EVENT", "MEAL_CARD_PAYMENT"],
        "amount": [6, 100, 10],
    }
)
VOLUMES = pd.DataFrame(
    {
        "companyId": ["CEKA", "CEKA", "CEKB", "CEKB"],
        "event": ["MEAL_CARD_PAYMENT", "REFERRAL_EVENT", "MEAL_CARD_PAYMENT", "REFERRAL_EVENT"],
        "monthly_count": [1000.0, 50.0, 200.0, 30.0],
    }
)
HALF_RUPEE = cost.CoinValue.of(0.5)


def allocations(rows: list[tuple[str, str, str, int | None, str]]) -> pd.DataFrame:
    """Allocation records as Registry.allocations_frame gives them."""
    return pd.DataFrame(
        {
            "at": pd.to_datetime([r[0] for r in rows], utc=True),
            "companyId": pd.array([r[1] for r in rows], dtype="str"),
            "event": pd.array([r[2] for r in rows], dtype="str"),
            "coins": pd.array([r[3] for r in rows], dtype="Int64"),
            "status": pd.array([r[4] for r in rows], dtype="str"),
            "userId": pd.array([f"EKU{i}" for i in range(len(rows))], dtype="str"),
        }
    )


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("rupees", "short", "exact"),
    [
        (0, "₹0", "₹0"),
        (999, "₹999", "₹999"),
        (45_000, "₹45,000", "₹45,000"),
        (99_999.5, "₹99,999.50", "₹99,999.50"),
        (1_00_000, "₹1 lakh", "₹1,00,000"),
        (1_20_000, "₹1.2 lakh", "₹1,20,000"),
        (12_34_567, "₹12.35 lakh", "₹12,34,567"),
        (99_99_999, "₹1 crore", "₹99,99,999"),
        (3_45_00_000, "₹3.45 crore", "₹3,45,00,000"),
        (15_00_00_00_000, "₹1,500 crore", "₹15,00,00,00,000"),
    ],
)
def test_rupees_are_written_in_lakh_and_crore_with_the_exact_figure_on_request(
    rupees, short, exact
):
    assert cost.format_inr(rupees) == short
    assert cost.format_inr(rupees, exact=True) == exact


def test_deltas_carry_their_sign_and_missing_figures_read_as_a_dash():
    assert cost.format_inr(1_20_000, signed=True) == "+₹1.2 lakh"
    assert cost.format_inr(-1_20_000, signed=True) == "-₹1.2 lakh"
    assert cost.format_inr(-500) == "-₹500"
    assert cost.format_inr(None) == "—" and cost.format_inr(float("nan")) == "—"
    assert cost.format_coins(1_20_000) == "1,20,000 coins"
    assert cost.format_coins(1) == "1 coin"
    assert [cost.format_pct(p) for p in (0.18, -0.02, 0.004, 0, math.nan)] == [
        "+18%",
        "-2%",
        "+0.4%",
        "0%",
        "",
    ]


def test_a_coin_is_worth_one_rupee_only_when_nobody_said_otherwise_and_that_is_said():
    assumed = cost.CoinValue.of(None)
    assert assumed.assumed and assumed.rupees_per_coin == 1.0
    assert "assumes ₹1 per coin" in assumed.note and "COINS_RUPEES_PER_COIN" in assumed.note
    set_ = cost.CoinValue.of(0.25)
    assert not set_.assumed and set_.note == "at ₹0.25 per coin"
    with pytest.raises(ValueError):
        cost.CoinValue.of(-1)


def test_budgets_from_the_setting_one_for_all_or_per_company_with_a_default():
    assert cost.Budgets.parse("150000").default == 150_000
    both = cost.Budgets.parse("CEKA=1,50,000; CEKB=20000, *=5000")
    assert both.per_company == {"CEKA": 150_000, "CEKB": 20_000} and both.default == 5_000
    companies = pd.Series(["CEKA", "CEKB", "CEKC"])
    assert both.for_companies(companies).tolist() == [150_000, 20_000, 5_000]
    assert cost.Budgets.parse("CEKA=10").for_companies(companies).isna().tolist() == [
        False,
        True,
        True,
    ]
    assert not cost.Budgets.parse(None) and not cost.Budgets.parse("  ")
    with pytest.raises(ValueError, match="'CEKA=lots' is not a budget"):
        cost.Budgets.parse("CEKA=lots")


# --------------------------------------------------------------------------- awarded


def test_coins_awarded_per_company_and_month_count_only_what_was_awarded():
    frame = allocations(
        [
            ("2025-01-05T10:00Z", "CEKA", "MEAL_CARD_PAYMENT", 6, "allocated"),
            ("2025-01-31T23:59Z", "CEKA", "REFERRAL_EVENT", 100, "confirmed"),
            ("2025-02-01T00:00Z", "CEKA", "MEAL_CARD_PAYMENT", 6, "allocated"),
            ("2025-01-10T00:00Z", "CEKB", "MEAL_CARD_PAYMENT", 10, "allocated"),
            ("2025-01-11T00:00Z", "CEKB", "MEAL_CARD_PAYMENT", None, "allocated"),
            ("2025-01-12T00:00Z", "CEKB", "MEAL_CARD_PAYMENT", 10, "unconfirmed"),
        ]
    )
    per = cost.awarded(frame, by="companyId", period="month", value=HALF_RUPEE)
    got = {
        (r.companyId, r.period.strftime("%Y-%m")): (r.allocations, r.coins, r.unknown_coins)
        for r in per.itertuples()
    }
    assert got == {
        ("CEKA", "2025-01"): (2, 106, 0),
        ("CEKA", "2025-02"): (1, 6, 0),
        ("CEKB", "2025-01"): (2, 10, 1),  # the unconfirmed one is not counted
    }
    assert per.loc[per["companyId"] == "CEKA", "rupees"].tolist() == [53.0, 3.0]
    overall = cost.awarded(frame, by=[], period=None)
    assert overall[["allocations", "coins"]].values.tolist() == [[5, 122]]
    by_user = cost.awarded(frame, by="userId", period=None)
    assert dict(zip(by_user["userId"], by_user["coins"], strict=True))["EKU1"] == 100


def test_weeks_start_on_monday_and_days_are_utc_days():
    frame = allocations(
        [
            ("2025-01-01T12:00Z", "CEKA", "E", 1, "allocated"),  # a Wednesday
            ("2025-01-05T23:00Z", "CEKA", "E", 2, "allocated"),  # the Sunday after
            ("2025-01-06T00:00Z", "CEKA", "E", 4, "allocated"),  # the next Monday
        ]
    )
    weeks = cost.awarded(frame, by="companyId", period="week")
    assert [p.strftime("%Y-%m-%d") for p in weeks["period"]] == ["2024-12-30", "2025-01-06"]
    assert weeks["coins"].tolist() == [3, 4]
    days = cost.awarded(frame, by="event", period="day")
    assert len(days) == 3
    with pytest.raises(ValueError, match="period"):
        cost.awarded(frame, period="year")


def test_top_movers_compare_the_last_two_months_largest_change_first():
    frame = allocations(
        [
            ("2025-01-10T00:00Z", "CEKA", "E", 100, "allocated"),
            ("2025-02-10T00:00Z", "CEKA", "E", 40, "allocated"),
            ("2025-01-10T00:00Z", "CEKB", "E", 10, "allocated"),
            ("2025-02-10T00:00Z", "CEKB", "E", 20, "allocated"),
            ("2025-02-11T00:00Z", "CEKC", "E", 5, "allocated"),
            ("2025-01-11T00:00Z", "CEKD", "E", 7, "allocated"),
            ("2025-02-11T00:00Z", "CEKD", "E", 7, "allocated"),
        ]
    )
    movers = cost.top_movers(frame, by="companyId", period="month")
    assert movers[["companyId", "previous", "latest", "change"]].values.tolist() == [
        ["CEKA", 100, 40, -60],
        ["CEKB", 10, 20, 10],
        ["CEKC", 0, 5, 5],
    ]  # CEKD did not move
    assert movers["pct"].tolist()[:2] == [-0.6, 1.0] and math.isnan(movers["pct"][2])
    assert cost.top_movers(frame.iloc[:1]).empty  # one month: nothing to compare


def test_volumes_from_history_scale_the_last_n_days_to_an_average_month():
    frame = allocations(
        [
            ("2025-02-28T23:59Z", "CEKA", "MEAL_CARD_PAYMENT", 6, "allocated"),  # before
            ("2025-03-01T00:00Z", "CEKA", "MEAL_CARD_PAYMENT", 6, "allocated"),
            ("2025-03-15T00:00Z", "CEKA", "MEAL_CARD_PAYMENT", 6, "confirmed"),
            ("2025-03-30T23:00Z", "CEKA", "MEAL_CARD_PAYMENT", 6, "allocated"),
            ("2025-03-20T00:00Z", "CEKB", "REFERRAL_EVENT", 100, "allocated"),
            ("2025-03-21T00:00Z", "CEKB", "REFERRAL_EVENT", 100, "unconfirmed"),
            ("2025-03-31T00:00Z", "CEKB", "REFERRAL_EVENT", 100, "allocated"),  # = now: after
        ]
    )
    volumes = cost.volumes_from_history(frame, days=30, now="2025-03-31T00:00Z")
    assert volumes[["companyId", "event", "count"]].values.tolist() == [
        ["CEKA", "MEAL_CARD_PAYMENT", 3],
        ["CEKB", "REFERRAL_EVENT", 1],
    ]
    assert volumes["monthly_count"].tolist() == pytest.approx([3 * 30.4375 / 30, 30.4375 / 30])
    assert (
        volumes.attrs["source"] == "4 allocations in the 30 days to 2025-03-31, scaled to a month"
    )
    empty = cost.volumes_from_history(frame.iloc[0:0], days=7, now="2025-03-31")
    assert empty.empty and list(empty.columns) == ["companyId", "event", "count", "monthly_count"]


# --------------------------------------------------------------------------- projection


def test_projection_is_volume_times_amount_times_value():
    projected = cost.projection(CONFIGS, VOLUMES, value=HALF_RUPEE)
    rows = {
        (r.companyId, r.event): (r.monthly_coins, r.monthly_rupees) for r in projected.itertuples()
    }
    assert rows == {
        ("CEKA", "MEAL_CARD_PAYMENT"): (6_000, 3_000),
        ("CEKA", "REFERRAL_EVENT"): (5_000, 2_500),
        ("CEKB", "MEAL_CARD_PAYMENT"): (2_000, 1_000),
    }  # CEKB's referrals have a volume but no configuration: they cost nothing yet
    per_company = cost.totals(projected, "companyId")
    assert per_company[["companyId", "monthly_rupees"]].values.tolist() == [
        ["CEKA", 5_500],
        ["CEKB", 1_000],
    ]


def test_a_pair_without_a_volume_costs_nothing_and_says_so():
    projected = cost.projection(CONFIGS, VOLUMES.iloc[:1])
    assert projected["has_volume"].tolist() == [True, False, False]
    assert projected["monthly_coins"].tolist() == [6_000, 0, 0]


# --------------------------------------------------------------------------- what-if


def test_what_if_before_after_and_delta_per_pair_company_event_and_total():
    changes = pd.DataFrame(
        {
            "companyId": ["CEKA", "CEKB"],
            "event": ["REFERRAL_EVENT", "REFERRAL_EVENT"],
            "amount": [150, 150],  # raise one, create the other
        }
    )
    budgets = cost.Budgets(per_company={"CEKB": 3_000}, default=10_000)
    result = cost.what_if(CONFIGS, VOLUMES, changes, value=HALF_RUPEE, budgets=budgets)

    changed = result.changed.set_index(["companyId", "event"])
    assert changed.loc[("CEKA", "REFERRAL_EVENT"), "coins_delta"] == 50 * 50
    assert changed.loc[("CEKB", "REFERRAL_EVENT"), "coins_before"] == 0
    assert changed.loc[("CEKB", "REFERRAL_EVENT"), "coins_after"] == 150 * 30
    assert len(changed) == 2

    companies = result.by_company.set_index("companyId")
    assert companies.loc["CEKA", ["rupees_before", "rupees_after", "rupees_delta"]].tolist() == [
        5_500,
        6_750,
        1_250,
    ]
    assert companies.loc["CEKB", ["rupees_before", "rupees_after", "rupees_delta"]].tolist() == [
        1_000,
        3_250,
        2_250,
    ]
    events = result.by_event.set_index("event")
    assert events.loc["REFERRAL_EVENT", "coins_delta"] == 7_000
    assert events.loc["MEAL_CARD_PAYMENT", "coins_delta"] == 0

    assert result.total["coins_before"] == 13_000 and result.total["rupees_before"] == 6_500
    assert result.total["rupees_delta"] == 3_500
    assert result.total["pct"] == pytest.approx(3_500 / 6_500)
    assert result.newly_over_budget == ["CEKB"] and result.over_budget == ["CEKB"]
    assert result.summary() == (
        "raises monthly cost by ₹3,500, +54%; CEKB over budget (₹0.5 per coin)"
    )


def test_a_lower_amount_lowers_the_cost_and_unset_value_is_said():
    result = cost.what_if(
        CONFIGS, VOLUMES, cost.single_change("CEKA", "MEAL_CARD_PAYMENT", 5), value=None
    )
    assert result.total["coins_delta"] == -1_000
    assert result.summary() == "lowers monthly cost by ₹1,000, -8% (assumes ₹1 per coin)"


def test_no_change_and_changes_without_volume_are_told_apart():
    same = cost.what_if(CONFIGS, VOLUMES, CONFIGS)
    assert not same.pairs["changed"].any()
    assert same.summary() == "changes no amount: monthly cost stays ₹13,000 (assumes ₹1 per coin)"
    unknown = cost.what_if(CONFIGS, VOLUMES, cost.single_change("CEKZ", "NEW_EVENT", 50))
    assert unknown.without_volume == 1
    assert unknown.summary() == (
        "leaves monthly cost at ₹13,000; 1 changed pair has no known volume (counted as 0) "
        "(assumes ₹1 per coin)"
    )


def test_changes_from_edits_keep_only_the_amounts_that_differ():
    after = CONFIGS.assign(amount=[6, 120, 10])
    changes = cost.changes_from_edits(CONFIGS, after)
    assert changes.values.tolist() == [["CEKA", "REFERRAL_EVENT", 120]]


def _registry_with(tmp_path, configs: pd.DataFrame) -> Registry:
    registry = Registry(tmp_path / "registry.sqlite3", server_key="https://cost.test", actor="t")
    for i, row in enumerate(configs.itertuples()):
        config = CoinConfig(
            coin_config_id=f"WCC{i:04d}",
            company_id=row.companyId,
            event=row.event,
            configuration=Configuration.DEFAULT,
            amount=int(row.amount),
        )
        registry.record_call(
            ApiCall(
                action="get",
                server_key=registry.server_key,
                coin_config_id=config.coin_config_id,
                request={"coinConfigId": config.coin_config_id},
                result=config,
                source="test",
                actor="t",
                at=datetime.now(UTC),
            )
        )
    return registry


@pytest.mark.parametrize(("mode", "delta"), [("create", 4_500), ("upsert", 4_500 + 2_500)])
def test_a_plans_cost_counts_the_rows_it_would_create_or_update_only(tmp_path, mode, delta):
    sheet = sheet_from_frame(
        pd.DataFrame(
            {
                "companyId": ["CEKA", "CEKB", "CEKA", "bad id"],
                "event": ["REFERRAL_EVENT", "REFERRAL_EVENT", "MEAL_CARD_PAYMENT", "E"],
                "amount": ["150", "150", "6", "9"],
            }
        ),
        kind="configs",
    )
    with _registry_with(tmp_path, CONFIGS) as registry:
        plan = bulk.plan(bulk.validate(sheet, registry=registry), registry, mode=mode)
        changes = cost.changes_from_plan(plan)
        # create: CEKA's referral is a conflict (left alone); upsert: it is updated.
        assert len(changes) == (1 if mode == "create" else 2)
        result = cost.what_if(registry.known_pairs(), VOLUMES, changes)
    assert result.total["coins_delta"] == delta
