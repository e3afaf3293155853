"""Allocation records against the real sandbox and a real SQLite registry: each allocation the
toolkit makes or confirms is recorded once, with the user, the request id, the coins configured
at that moment, the source and the bulk run; the figures agree with the sandbox's own records."""

from __future__ import annotations

import sqlite3
import uuid

import pandas as pd
import pytest
import requests

from toolkit import bulk, cost, errors
from toolkit.bulk.reading import sheet_from_frame
from toolkit.bulk.volumes import cost_basis
from toolkit.client import ApiCall, CoinsClient
from toolkit.models import Allocation
from toolkit.registry import ALLOCATION_COLUMNS, AUDIT_COLUMNS, Registry
from toolkit.settings import Settings


def company() -> str:
    return "T" + uuid.uuid4().hex[:12].upper()


@pytest.fixture
def client(fresh_sandbox):
    with CoinsClient.from_settings(fresh_sandbox.settings(), source="tests") as c:
        yield c


@pytest.fixture
def registry(tmp_path, client):
    with Registry(tmp_path / "registry.sqlite3", client=client, actor="analyst-1") as reg:
        yield reg


def sandbox_allocations(handle) -> pd.DataFrame:
    answer = requests.get(handle.url + "/_sandbox/allocations", timeout=10)
    answer.raise_for_status()
    return pd.DataFrame(answer.json()["payload"])


def test_each_allocation_is_recorded_with_the_coins_configured_at_that_moment(registry, client):
    co = company()
    made = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    first = client.allocate_coins(company_id=co, event="MEAL_CARD_PAYMENT", user_id="EKUSER1")
    client.update_config(made.coin_config_id, amount=9)
    second = client.allocate_coins(company_id=co, event="MEAL_CARD_PAYMENT", user_id="EKUSER2")

    records = registry.allocations_frame()
    assert list(records.columns) == list(ALLOCATION_COLUMNS)
    assert records[["userId", "requestId", "coins", "status"]].values.tolist() == [
        ["EKUSER1", first.request_id, 6, "allocated"],
        ["EKUSER2", second.request_id, 9, "allocated"],
    ]
    assert (records["companyId"] == co).all() and (records["source"] == "tests").all()
    assert (records["coinConfigId"] == made.coin_config_id).all()
    assert records["at"].is_monotonic_increasing and str(records["at"].dt.tz) == "UTC"
    assert records["bulk_run"].isna().all()  # not sent by a bulk run


def test_a_repeat_of_our_request_id_awards_nothing_more_and_a_refusal_nothing_at_all(
    registry, client
):
    co = company()
    client.create_config(company_id=co, event="REFERRAL_EVENT", amount=100)
    done = client.allocate_coins(company_id=co, event="REFERRAL_EVENT", user_id="EKUSER1")
    again = client.allocate_coins(
        company_id=co,
        event="REFERRAL_EVENT",
        user_id="EKUSER1",
        request_id=done.request_id,
        duplicate_is_done=True,
    )
    assert again.already_done
    with pytest.raises(errors.NotFoundError):
        client.allocate_coins(company_id=co, event="NOT_CONFIGURED", user_id="EKUSER9")

    records = registry.allocations_frame()
    assert records["requestId"].tolist() == [done.request_id]
    assert cost.awarded(records, by="companyId", period=None)["coins"].tolist() == [100]

    # The Activity page's columns: who, under which request, and what each entry awarded.
    audit = registry.audit_frame(action="allocate")
    assert list(audit.columns) == list(AUDIT_COLUMNS)
    assert audit["userId"].tolist() == ["EKUSER1", "EKUSER1", "EKUSER9"]
    assert audit["requestId"].tolist()[:2] == [done.request_id, done.request_id]
    assert audit["coins"].tolist()[0] == 100
    assert audit["coins"].isna().tolist() == [False, True, True]
    others = registry.audit_frame(action="create")
    assert others["userId"].isna().all() and others["coins"].isna().all()


def test_a_lost_answer_is_unconfirmed_until_a_repeat_proves_it_done(registry):
    request = {"companyId": "CEKLOST", "event": "MEAL_CARD_PAYMENT", "userId": "EKU1"}
    request["requestId"] = "COIN_REQ_LOST_1"
    lost = errors.UnconfirmedError("no answer after sending", sent=request, action="allocate")

    def call(result=None, error=None) -> ApiCall:
        return ApiCall(
            action="allocate",
            server_key=registry.server_key,
            coin_config_id=None,
            request=request,
            result=result,
            error=error,
            source="tests",
            actor="t",
        )

    registry.record_call(call(error=lost))
    (status,) = registry.allocations_frame()["status"].tolist()
    assert status == "unconfirmed"
    assert cost.awarded(registry.allocations_frame(), by=[], period=None).empty

    proved = Allocation(
        company_id="CEKLOST",
        event="MEAL_CARD_PAYMENT",
        user_id="EKU1",
        request_id="COIN_REQ_LOST_1",
        already_done=True,
    )
    registry.record_call(call(result=proved))
    registry.record_call(call(result=proved))  # and again: still one record
    records = registry.allocations_frame()
    assert records["status"].tolist() == ["confirmed"]


def test_a_bulk_run_is_named_on_its_records_and_the_figures_match_the_sandbox(
    tmp_path, client, registry, fresh_sandbox
):
    co, other = company(), company()
    client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    client.create_config(company_id=co, event="REFERRAL_EVENT", amount=100)
    client.create_config(company_id=other, event="MEAL_CARD_PAYMENT", amount=11)
    rows = [(co, "MEAL_CARD_PAYMENT", f"EKU{i}") for i in range(7)]
    rows += [(co, "REFERRAL_EVENT", f"EKR{i}") for i in range(3)]
    rows += [(other, "MEAL_CARD_PAYMENT", f"EKO{i}") for i in range(4)]
    sheet = sheet_from_frame(
        pd.DataFrame(rows, columns=["companyId", "event", "userId"]),
        kind="allocations",
        name="march-allocations.csv",
    )
    plan = bulk.plan_allocations(bulk.validate(sheet), registry)
    result = bulk.run(plan, client=client, registry=registry, concurrency=4)
    assert result.counts["allocated"] == 14
    client.allocate_coins(company_id=other, event="MEAL_CARD_PAYMENT", user_id="EKSINGLE")

    records = registry.allocations_frame()
    in_run = records.loc[records["bulk_run"].notna()]
    assert len(in_run) == 14 and set(in_run["bulk_run"]) == {result.run_id}
    assert set(in_run["bulk_sheet"]) == {"march-allocations.csv"}
    assert records.loc[records["userId"] == "EKSINGLE", "bulk_run"].isna().all()
    audit = registry.audit_frame(action="allocate")
    assert (audit["bulk_run"] == result.run_id).sum() == 14

    # Recomputed from the sandbox's own allocation records: the same coins per company.
    theirs = sandbox_allocations(fresh_sandbox).groupby("companyId")["amount"].sum()
    ours = cost.awarded(records, by="companyId", period=None).set_index("companyId")["coins"]
    assert ours.to_dict() == {co: 7 * 6 + 3 * 100, other: 5 * 11}
    assert ours.to_dict() == {k: int(v) for k, v in theirs.items() if k in ours.index}

    # And the volumes of that history project next month's cost of the programme.
    basis = cost_basis(registry, Settings(rupees_per_coin=0.5), days=30)
    assert basis.known and basis.value.rupees_per_coin == 0.5
    projected = basis.projection().set_index(["companyId", "event"])
    month = 30.4375 / 30
    assert projected.loc[(co, "REFERRAL_EVENT"), "monthly_coins"] == pytest.approx(300 * month)
    assert projected.loc[(other, "MEAL_CARD_PAYMENT"), "monthly_rupees"] == pytest.approx(
        5 * 11 * month * 0.5
    )


def test_a_registry_from_before_allocation_records_fills_them_in_from_its_audit_log(
    tmp_path, client
):
    path = tmp_path / "old.sqlite3"
    co = company()
    with Registry(path, client=client, actor="t") as registry:
        made = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
        first = client.allocate_coins(company_id=co, event="MEAL_CARD_PAYMENT", user_id="EKU1")
        client.update_config(made.coin_config_id, amount=8)
        second = client.allocate_coins(company_id=co, event="MEAL_CARD_PAYMENT", user_id="EKU2")
        expected = registry.allocations_frame()
    # The file as an older toolkit left it: no allocations table, its migration not applied.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE allocations")
        conn.execute("DELETE FROM _migrations WHERE name = 'registry_0002_allocations'")
    with Registry(path, server_key=client.server_key, actor="t") as reopened:
        filled = reopened.allocations_frame()
    assert filled[["requestId", "userId", "coins", "status"]].values.tolist() == [
        [first.request_id, "EKU1", 6, "allocated"],  # the amount configured then, not now
        [second.request_id, "EKU2", 8, "allocated"],
    ]
    assert filled["at"].tolist() == expected["at"].tolist()
