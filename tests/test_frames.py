"""configs_to_frame / frame_to_configs and the summaries: columns, dtypes, round trips."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.frames import (
    BASE_COLUMNS,
    CONFIGURATION_DTYPE,
    META_COLUMNS,
    amount_per_event,
    company_event_matrix,
    configs_to_frame,
    coverage,
    empty_frame,
    event_medians,
    frame_dtypes,
    frame_to_configs,
    outliers,
)
from toolkit.models import MAX_AMOUNT, CoinConfig, Configuration

EXPECTED_DTYPES = {
    "coinConfigId": "str",
    "companyId": "str",
    "event": "str",
    "configuration": "category",
    "amount": "Int64",
    "created_at": "datetime64[us, UTC]",
    "updated_at": "datetime64[us, UTC]",
    "last_synced_at": "datetime64[us, UTC]",
    "source": "str",
}

company_ids = st.from_regex(r"\A[A-Z0-9]{1,32}\Z")
events = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,63}\Z")
payloads = st.fixed_dictionaries(
    {
        "coinConfigId": st.from_regex(r"\AWCC[0-9]{1,9}\Z"),
        "companyId": company_ids,
        "event": events,
        "configuration": st.sampled_from(["DEFAULT", "CUSTOM"]),
        "amount": st.integers(0, MAX_AMOUNT),
    }
)


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def _assert_schema(frame: pd.DataFrame, *, metadata: bool) -> None:
    columns = list(BASE_COLUMNS) + (list(META_COLUMNS) if metadata else [])
    assert list(frame.columns) == columns
    assert _dtypes(frame) == {c: EXPECTED_DTYPES[c] for c in columns}
    assert list(frame["configuration"].cat.categories) == ["DEFAULT", "CUSTOM"]


def test_payload_dicts_give_fixed_columns_and_deliberate_dtypes():
    frame = configs_to_frame(
        [
            {"amount": 6, "event": "MEAL_CARD_PAYMENT", "configuration": "DEFAULT",
             "companyId": "CEKEKCARDS", "coinConfigId": "WCC817428"},
        ]
    )  # fmt: skip
    _assert_schema(frame, metadata=False)
    assert frame.iloc[0].to_dict() == {
        "coinConfigId": "WCC817428",
        "companyId": "CEKEKCARDS",
        "event": "MEAL_CARD_PAYMENT",
        "configuration": "DEFAULT",
        "amount": 6,
    }


def test_update_answer_without_company_id_becomes_a_missing_value_not_an_error():
    update_answer = {
        "coinConfigId": "WCC024845",
        "configuration": "DEFAULT",
        "event": "INVOICE_PAYMENT",
        "amount": 10,
    }
    frame = configs_to_frame([update_answer, {"coinConfigId": "WCC1"}])
    _assert_schema(frame, metadata=False)
    assert pd.isna(frame.loc[0, "companyId"])
    assert frame.loc[1, ["companyId", "event", "configuration", "amount"]].isna().all()


def test_empty_input_gives_an_empty_frame_with_the_same_columns_and_dtypes():
    _assert_schema(configs_to_frame([]), metadata=False)
    _assert_schema(configs_to_frame(iter([]), metadata=True), metadata=True)
    assert _dtypes(empty_frame(metadata=True)) == {
        k: str(v) for k, v in frame_dtypes(metadata=True).items()
    }


def test_registry_rows_add_utc_metadata_columns():
    frame = configs_to_frame(
        [
            {
                "coinConfigId": "WCC1",
                "companyId": "A",
                "event": "E",
                "configuration": "CUSTOM",
                "amount": 1,
                "created_at": "2025-01-02T03:04:05.123456+05:30",
                "source": "notebook",
            }
        ]
    )
    _assert_schema(frame, metadata=True)
    assert frame.loc[0, "created_at"] == pd.Timestamp("2025-01-01T21:34:05.123456Z")
    assert pd.isna(frame.loc[0, "updated_at"])
    assert frame.loc[0, "source"] == "notebook"


def test_odd_values_become_missing_or_are_normalised():
    frame = configs_to_frame(
        [
            {"coinConfigId": "WCC1", "configuration": "custom", "amount": "7"},
            {"coinConfigId": "WCC2", "configuration": "SPECIAL", "amount": 6.5},
            {"coinConfigId": "WCC3", "configuration": Configuration.DEFAULT, "amount": 8.0},
        ]
    )
    assert frame["configuration"].tolist()[:1] == ["CUSTOM"]
    assert pd.isna(frame.loc[1, "configuration"])
    assert frame.loc[2, "configuration"] == "DEFAULT"
    assert frame["amount"].tolist() == [7, pd.NA, 8]


@settings(max_examples=40, deadline=None)
@given(st.lists(payloads, max_size=20))
def test_round_trip_payloads_to_frame_and_back(items):
    frame = configs_to_frame(items)
    _assert_schema(frame, metadata=False)
    result = frame_to_configs(frame)
    assert result.problems == []
    assert result.payloads == items
    assert result.rows == list(range(len(items)))


@settings(max_examples=30, deadline=None)
@given(st.lists(payloads, max_size=15))
def test_coinconfig_objects_and_dicts_give_the_same_frame(items):
    objects = [CoinConfig.from_payload(p) for p in items]
    pd.testing.assert_frame_equal(configs_to_frame(objects), configs_to_frame(items))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            payloads, st.sets(st.sampled_from(["companyId", "event", "configuration", "amount"]))
        ),
        min_size=1,
        max_size=15,
    )
)
def test_missing_fields_are_missing_exactly_where_absent(rows):
    items = [{k: v for k, v in p.items() if k not in drop} for p, drop in rows]
    frame = configs_to_frame(items)
    _assert_schema(frame, metadata=False)
    for i, (_, drop) in enumerate(rows):
        for name in ("companyId", "event", "configuration", "amount"):
            assert pd.isna(frame.loc[i, name]) == (name in drop)
    result = frame_to_configs(frame)
    bad = {p.row for p in result.problems}
    assert bad == {i for i, (_, drop) in enumerate(rows) if drop}
    assert len(result.payloads) + len(bad) == len(items)


def test_frame_to_configs_reports_every_problem_of_every_row_by_index_label():
    frame = pd.DataFrame(
        {
            "coinConfigId": [None, "WCC2", None],
            "companyId": ["cekA", "CEKB", None],
            "event": ["MEAL", "meal card", "REFERRAL_EVENT"],
            "configuration": ["DEFAULT", "CUSTOM", "NOPE"],
            "amount": [5, -1, 2_000_000],
        },
        index=[10, 11, 12],
    )
    result = frame_to_configs(frame)
    assert result.payloads == []
    found = {(p.row, p.field) for p in result.problems}
    assert found == {
        (10, "companyId"),
        (11, "event"),
        (11, "amount"),
        (12, "companyId"),
        (12, "configuration"),
        (12, "amount"),
    }
    problems = result.problems_frame()
    assert list(problems.columns) == ["row", "field", "value", "reason"]
    assert all(problems["reason"].str.len() > 0)
    payloads, problems_list = result  # unpacks as (payloads, problems)
    assert payloads == [] and len(problems_list) == 6


def test_frame_to_configs_accepts_snake_case_and_partial_updates():
    frame = pd.DataFrame({"coin_config_id": ["WCC9"], "amount": [12]})
    result = frame_to_configs(frame, partial=True)
    assert result.payloads == [{"coinConfigId": "WCC9", "amount": 12}]
    assert not frame_to_configs(frame).ok


@pytest.fixture
def programme() -> pd.DataFrame:
    rows = [
        ("WCC1", "CEKA", "MEAL_CARD_PAYMENT", "DEFAULT", 6),
        ("WCC2", "CEKB", "MEAL_CARD_PAYMENT", "DEFAULT", 6),
        ("WCC3", "CEKC", "MEAL_CARD_PAYMENT", "CUSTOM", 600),
        ("WCC4", "CEKD", "MEAL_CARD_PAYMENT", "DEFAULT", 5),
        ("WCC5", "CEKA", "REFERRAL_EVENT", "DEFAULT", 50),
        ("WCC6", "CEKB", "REFERRAL_EVENT", "CUSTOM", 0),
        ("WCC7", "CEKA", "INVOICE_PAYMENT", "DEFAULT", 10),
    ]
    keys = ["coinConfigId", "companyId", "event", "configuration", "amount"]
    return configs_to_frame([dict(zip(keys, r, strict=True)) for r in rows])


def test_amount_per_event_counts_and_sorts_by_total_coins(programme):
    summary = amount_per_event(programme)
    assert summary["event"].tolist() == ["MEAL_CARD_PAYMENT", "REFERRAL_EVENT", "INVOICE_PAYMENT"]
    meal = summary.iloc[0]
    assert (meal["count"], meal["sum"], meal["min"], meal["max"]) == (4, 617, 5, 600)
    assert meal["mean"] == pytest.approx(154.25)
    assert meal["median"] == 6
    assert meal["companies"] == 4 and meal["custom"] == 1
    assert str(summary["sum"].dtype) == "Int64" and str(summary["mean"].dtype) == "Float64"


def test_company_event_matrix_has_missing_cells_where_not_configured(programme):
    matrix = company_event_matrix(programme)
    assert matrix.shape == (4, 3)
    assert matrix.loc["CEKA", "INVOICE_PAYMENT"] == 10
    assert pd.isna(matrix.loc["CEKD", "REFERRAL_EVENT"])
    assert (matrix.dtypes == "Int64").all()


def test_coverage_lists_events_others_have_that_a_company_lacks(programme):
    gaps = coverage(programme)
    pairs = set(zip(gaps["companyId"], gaps["event"], strict=True))
    assert pairs == {
        ("CEKB", "INVOICE_PAYMENT"),
        ("CEKC", "REFERRAL_EVENT"),
        ("CEKC", "INVOICE_PAYMENT"),
        ("CEKD", "REFERRAL_EVENT"),
        ("CEKD", "INVOICE_PAYMENT"),
    }
    assert gaps.loc[gaps["event"] == "REFERRAL_EVENT", "companies_with_event"].eq(2).all()
    assert set(coverage(programme, min_share=0.5)["event"]) == {"REFERRAL_EVENT"}


def test_outliers_report_amounts_far_from_the_event_median_with_the_factor(programme):
    found = outliers(programme, factor=10)
    assert found["coinConfigId"].tolist() == ["WCC3"]
    row = found.iloc[0]
    assert row["direction"] == "high" and row["factor"] == 10
    assert row["event_median"] == 6 and row["ratio"] == pytest.approx(100)
    # Amount 0 switches an event off: not an outlier unless asked.
    assert "WCC6" in outliers(programme, factor=10, include_zero=True)["coinConfigId"].tolist()
    assert outliers(programme, factor=200).empty
    with pytest.raises(ValueError):
        outliers(programme, factor=1)


def test_event_medians(programme):
    medians = event_medians(programme)
    assert medians.to_dict() == {
        "INVOICE_PAYMENT": 10.0,
        "MEAL_CARD_PAYMENT": 6.0,
        "REFERRAL_EVENT": 25.0,
    }


def test_summaries_of_an_empty_frame_are_empty_not_errors():
    empty = configs_to_frame([])
    assert amount_per_event(empty).empty
    assert list(amount_per_event(empty).columns)[:6] == [
        "event",
        "count",
        "sum",
        "mean",
        "median",
        "min",
    ]
    assert company_event_matrix(empty).empty
    assert coverage(empty).empty
    assert outliers(empty).empty
    assert event_medians(empty).empty
    assert frame_to_configs(empty).payloads == []


def test_configuration_dtype_is_exactly_default_and_custom():
    assert list(CONFIGURATION_DTYPE.categories) == ["DEFAULT", "CUSTOM"]
