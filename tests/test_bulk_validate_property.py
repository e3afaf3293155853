"""The vectorised rules agree with the scalar ones in toolkit.models, for any cell text."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.bulk import validate, validate_allocations
from toolkit.models import (
    check_amount,
    check_company_id,
    check_configuration,
    check_event,
    check_request_id,
    check_user_id,
)

TRICKY = [
    "",
    " ",
    "\u3000",
    "\x1c6\x1f",
    "6",
    " 6 ",
    "+6",
    "++6",
    "-5",
    "-0",
    "-+5",
    "6.5",
    "6.",
    ".5",
    "-5.5",
    "6,5",
    "1e3",
    "abc",
    "0",
    "007",
    "1000000",
    "1000001",
    "0001000000",
    "99999999999999999999999",
    "٣",
    "６",
    "default",
    " Custom ",
    "cuſtom",
    "cuﬆom",
    "DEFAULT\n",
    "CEKEKCARDS",
    "cekekcards",
    "CEK-EK",
    "ı",
    "MEAL_CARD_PAYMENT",
    "meal card payment",
    "meal-card payment",
    "1ST_EVENT",
    "A" * 33,
    "E" * 65,
    "user.name@corp",
    "REQ 6",
    "\ufeffX",
    "\u200bX",
]

cell = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.from_regex(r"\s{0,2}[A-Za-z0-9_ .+\-]{0,8}\s{0,2}", fullmatch=True),
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field_verdicts(result, field):
    problems = result.problems
    problems = problems[(problems["column"] == field) & (problems["severity"] == "error")]
    return dict(zip(problems["row"], problems["reason"], strict=True))


def _same(expected, got):
    if expected is None:
        return pd.isna(got)
    return not pd.isna(got) and str(expected) == str(got)


@SETTINGS
@given(st.lists(st.tuples(cell, cell, cell, cell), min_size=1, max_size=25))
def test_config_cells_get_the_scalar_verdict_value_and_reason(cells):
    frame = pd.DataFrame(cells, columns=["companyId", "event", "amount", "configuration"])
    frame["key"] = [f"k{i}" for i in range(len(frame))]  # no row is ever blank
    result = validate(frame)
    assert result.frame["row"].tolist() == list(range(2, len(cells) + 2))
    checks = {
        "companyId": check_company_id,
        "event": check_event,
        "amount": check_amount,
        "configuration": check_configuration,
    }
    for field, check in checks.items():
        reasons = _field_verdicts(result, field)
        for i, value in enumerate(frame[field]):
            row = i + 2
            expected, reason = check(value)
            assert reasons.get(row) == reason, (field, value)
            assert _same(expected, result.frame[field].iloc[i]), (field, value)


@SETTINGS
@given(st.lists(st.tuples(cell, cell), min_size=1, max_size=25))
def test_allocation_ids_get_the_scalar_verdict_value_and_reason(cells):
    frame = pd.DataFrame(cells, columns=["userId", "requestId"])
    frame["companyId"] = "CEKEKCARDS"
    frame["event"] = "MEAL_CARD_PAYMENT"
    frame["requestId"] = [f"{v}" for v in frame["requestId"]]
    frame["key"] = [f"k{i}" for i in range(len(frame))]
    result = validate_allocations(frame)
    users = _field_verdicts(result, "userId")
    requests = {
        r.row: r.reason
        for r in result.problems.itertuples()
        if r.column == "requestId" and "already used" not in r.reason
    }
    for i, (user, request) in enumerate(cells):
        row = i + 2
        expected, reason = check_user_id(user)
        assert users.get(row) == reason, user
        assert _same(expected, result.frame["userId"].iloc[i])
        if request.strip() == "":
            assert row not in requests  # blank = derived later, not an error
            continue
        expected, reason = check_request_id(request)
        assert requests.get(row) == reason, request
        assert _same(expected, result.frame["requestId"].iloc[i])


def test_models_fixes_the_property_test_relies_on():
    # `\d` used to let non-ASCII digits through as coins; str.upper() turned `cuſtom` into CUSTOM.
    assert check_amount("٣") == (None, "must be a whole number of coins (digits only, e.g. 6)")
    assert check_amount("6.5") == (None, "must be a whole number of coins (no decimals)")
    assert check_configuration("cuſtom") == (None, "must be DEFAULT or CUSTOM")
    assert check_company_id("cekekcards")[1].endswith("; did you mean CEKEKCARDS?")
    assert check_event("meal card payment")[1].endswith("; did you mean MEAL_CARD_PAYMENT?")
