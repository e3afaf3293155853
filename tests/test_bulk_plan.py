"""The dry run: every row gets an action, decided against the registry, nothing is sent."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import bulk
from toolkit.bulk.planning import (
    CONFIG_PLAN_COLUMNS,
    derive_request_id,
    derive_request_ids,
    plan,
    plan_allocations,
)
from toolkit.bulk.request_ids import sheet_request_ids
from toolkit.client import CoinsClient
from toolkit.registry import Registry


def _client(sandbox: Any) -> CoinsClient:
    return CoinsClient(base_url=sandbox.url, **sandbox.credentials, timeout_s=5)


def _server_configs(url: str) -> list[dict[str, Any]]:
    body = requests.get(url + "/_sandbox/configs", timeout=10).json()
    return body.get("payload", body) if isinstance(body, dict) else body


def _sheet(tmp_path: Path, text: str, name: str = "configs.csv") -> Any:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return bulk.read_configs(path)


SHEET = (
    "companyId,event,amount,configuration,note\n"
    "CEKSAME,MEAL_CARD_PAYMENT,6,DEFAULT,same as known\n"
    "CEKDIFF,MEAL_CARD_PAYMENT,10,CUSTOM,differs from known\n"
    "CEKNEW,MEAL_CARD_PAYMENT,4,DEFAULT,new pair\n"
    "CEKBAD,MEAL_CARD_PAYMENT,6.5,DEFAULT,bad amount\n"
    "lower,MEAL_CARD_PAYMENT,3,DEFAULT,bad company\n"
)


@pytest.fixture
def known(fresh_sandbox: Any, tmp_path: Path) -> Registry:
    """A registry that knows CEKSAME (DEFAULT 6) and CEKDIFF (DEFAULT 6) on the sandbox."""
    client = _client(fresh_sandbox)
    registry = Registry(tmp_path / "registry.sqlite3", client=client)
    client.create_config(company_id="CEKSAME", event="MEAL_CARD_PAYMENT", amount=6)
    client.create_config(company_id="CEKDIFF", event="MEAL_CARD_PAYMENT", amount=6)
    yield registry
    client.close()


def _by_company(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["note"]: r for r in frame.to_dict("records")}


def test_create_mode_leaves_known_pairs_alone_and_names_the_existing_id(
    known: Registry, tmp_path: Path
) -> None:
    result = plan(bulk.validate(_sheet(tmp_path, SHEET)), known, mode="create")

    assert list(result.frame.columns) == CONFIG_PLAN_COLUMNS
    assert result.frame["action"].tolist() == [
        "unchanged",
        "conflict",
        "create",
        "invalid",
        "invalid",
    ]
    conflict = result.frame.iloc[1]
    assert conflict["coinConfigId"].startswith("WCC")
    assert conflict["before_amount"] == 6 and conflict["before_configuration"] == "DEFAULT"
    assert conflict["coinConfigId"] in conflict["message"]
    assert "DEFAULT 6 → CUSTOM 10" in conflict["message"]
    assert result.counts == {
        "create": 1,
        "update": 0,
        "unchanged": 1,
        "conflict": 1,
        "invalid": 2,
    }


def test_upsert_mode_updates_pairs_known_with_other_values(known: Registry, tmp_path: Path) -> None:
    result = plan(bulk.validate(_sheet(tmp_path, SHEET)), known, mode="upsert")

    assert result.frame["action"].tolist()[:3] == ["unchanged", "update", "create"]
    assert result.counts["update"] == 1 and result.counts["conflict"] == 0


def test_invalid_rows_carry_their_reasons_and_no_known_values(
    known: Registry, tmp_path: Path
) -> None:
    frame = plan(bulk.validate(_sheet(tmp_path, SHEET)), known).frame
    bad_amount, bad_company = frame.iloc[3], frame.iloc[4]

    assert "amount" in bad_amount["message"] and "whole number" in bad_amount["message"]
    assert "companyId" in bad_company["message"]
    assert pd.isna(bad_amount["coinConfigId"]) and pd.isna(bad_company["coinConfigId"])
    assert bad_amount["row"] == 5 and bad_company["row"] == 6


def test_plan_sends_nothing(known: Registry, fresh_sandbox: Any, tmp_path: Path) -> None:
    before = len(_server_configs(fresh_sandbox.url))
    plan(bulk.validate(_sheet(tmp_path, SHEET)), known, mode="upsert")
    assert len(_server_configs(fresh_sandbox.url)) == before


def test_every_row_is_planned_with_an_empty_registry(tmp_path: Path) -> None:
    lines = ["companyId,event,amount"] + [f"CEK{i},EVENT_{i % 3},{i}" for i in range(50)]
    lines += ["", "CEKX,bad event,1", ",,", "CEKY,EVENT_1,"]  # blank lines are not rows
    result = plan(bulk.validate(_sheet(tmp_path, "\n".join(lines) + "\n")), None)

    assert len(result.frame) == len(result.inputs) == 52
    assert result.counts["create"] == 50 and result.counts["invalid"] == 2
    assert result.frame["row"].is_unique


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        plan(bulk.validate(_sheet(tmp_path, SHEET)), None, mode="replace")


def test_allocation_request_ids_are_derived_from_the_sheet_name_and_row_values(
    tmp_path: Path,
) -> None:
    text = (
        "companyId,event,userId,requestId\n"
        "CEKA,MEAL_CARD_PAYMENT,EKUSER1,\n"
        "CEKA,MEAL_CARD_PAYMENT,EKUSER2,MYREQ-1\n"
        "CEKA,MEAL_CARD_PAYMENT,,\n"
    )
    path = tmp_path / "alloc.csv"
    path.write_text(text, encoding="utf-8")
    sheet = bulk.read_allocations(path)
    first = plan_allocations(bulk.validate_allocations(sheet))
    again = plan_allocations(bulk.validate_allocations(bulk.read_allocations(path)))

    frame = first.frame
    assert frame["action"].tolist() == ["allocate", "allocate", "invalid"]
    assert frame["requestId"].iloc[0] == derive_request_id(
        "alloc.csv", "CEKA", "MEAL_CARD_PAYMENT", "EKUSER1", 1
    )
    assert frame["requestId"].iloc[0].startswith("BULK-")
    assert frame["requestId"].iloc[1] == "MYREQ-1"
    assert frame["requestId_derived"].tolist()[:2] == [True, False]
    assert frame["requestId"].tolist()[:2] == again.frame["requestId"].tolist()[:2]
    assert "no configuration known locally" in frame["message"].iloc[0]


def test_editing_sorting_or_resaving_an_allocation_sheet_keeps_the_untouched_rows_ids(
    tmp_path: Path,
) -> None:
    rows = [f"CEKA,MEAL_CARD_PAYMENT,EKUSER{i}" for i in range(5)] + [
        "CEKA,MEAL_CARD_PAYMENT,EKUSER1"
    ]

    def ids(name: str, lines: list[str]) -> dict[tuple[str, int], str]:
        path = tmp_path / name
        path.write_text("companyId,event,userId\n" + "\n".join(lines) + "\n", encoding="utf-8")
        frame = plan_allocations(bulk.validate_allocations(bulk.read_allocations(path))).frame
        seen: dict[str, int] = {}
        out = {}
        for user, request_id in zip(frame["userId"], frame["requestId"], strict=True):
            seen[user] = seen.get(user, 0) + 1
            out[(user, seen[user])] = request_id
        return out

    first = ids("alloc.csv", rows)
    assert len(set(first.values())) == 6  # a repeated row is a second allocation, its own id
    # Sorted, a row edited, a row inserted, saved under a copy's name: untouched rows keep ids.
    edited = ["CEKA,MEAL_CARD_PAYMENT,EKUSER9", *reversed(rows[1:]), rows[0]]
    edited[1] = "CEKA,MEAL_CARD_PAYMENT,EKUSER7"  # was the second EKUSER1
    again = ids("Alloc (1).csv", edited)
    kept = {k: v for k, v in again.items() if k in first}
    assert kept == {k: v for k, v in first.items() if k in again}
    assert len(kept) == 5
    assert again[("EKUSER9", 1)] not in first.values()
    # Another sheet name is another batch.
    assert set(ids("july.csv", rows).values()).isdisjoint(first.values())


@given(
    rows=st.lists(
        st.tuples(
            st.text(alphabet="ABCZ019_-é", min_size=1, max_size=12),
            st.sampled_from(["MEAL_CARD_PAYMENT", "FUEL", "E"]),
            st.text(alphabet="uU0-9.:", min_size=1, max_size=10),
            st.integers(min_value=1, max_value=10_000),
        ),
        max_size=40,
    ),
    name=st.sampled_from([None, "alloc.csv", "Copy of July (2).xlsx", "ünïcode.csv"]),
)
@settings(max_examples=60, deadline=None)
def test_request_ids_derived_for_a_whole_sheet_are_the_ones_derived_row_by_row(
    rows: list[tuple[str, str, str, int]], name: str | None
) -> None:
    frame = pd.DataFrame(rows, columns=["c", "e", "u", "n"]).astype({"c": "str", "e": "str"})
    frame.index = frame.index * 3 + 7  # any index: the answer keeps it
    many = derive_request_ids(name, frame["c"], frame["e"], frame["u"], frame["n"])
    assert many.index.equals(frame.index)
    assert many.tolist() == [derive_request_id(name, *row) for row in rows]


def test_a_derived_request_id_is_still_the_v2_rule_earlier_runs_sent() -> None:
    # A change here would give rows allocated by earlier runs new ids: allocated twice.
    text = "\x1f".join(("v2", "july", "CEKA", "MEAL_CARD_PAYMENT", "EKUSER1", "2"))
    expected = "BULK-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    assert derive_request_id("Copy of July (1).csv", "CEKA", "MEAL_CARD_PAYMENT", "EKUSER1", 2) == (
        expected
    )


# A sheet mixing given and blank requestIds, triples repeated (occurrences 2 and 3) and an
# invalid row (no userId: it needs no id).
MIXED = (
    "companyId,event,userId,requestId\n"
    "CEKA,MEAL_CARD_PAYMENT,EKUSER1,\n"
    "CEKA,MEAL_CARD_PAYMENT,EKUSER2,MYREQ-1\n"
    "CEKA,MEAL_CARD_PAYMENT,EKUSER1,\n"
    "CEKB,MEAL_CARD_PAYMENT,EKUSER1,\n"
    "CEKA,MEAL_CARD_PAYMENT,,\n"
    "CEKA,MEAL_CARD_PAYMENT,EKUSER1,MYREQ-2\n"
    "CEKA,MEAL_CARD_PAYMENT,EKUSER1,\n"
    "CEKA,MEAL_CARD_PAYMENT,EKUSER2,\n"
)


def _allocation_plan(tmp_path: Path, text: str = MIXED, name: str = "July (2).csv") -> Any:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return plan_allocations(bulk.validate_allocations(bulk.read_allocations(path)))


def test_allocation_ids_read_through_the_frame_are_the_v2_rule_counting_repeats(
    tmp_path: Path,
) -> None:
    frame = _allocation_plan(tmp_path).frame

    def v2(company: str, user: str, occurrence: int) -> str:
        return derive_request_id("July (2).csv", company, "MEAL_CARD_PAYMENT", user, occurrence)

    assert frame["requestId"].tolist()[:4] == [
        v2("CEKA", "EKUSER1", 1),
        "MYREQ-1",
        v2("CEKA", "EKUSER1", 2),
        v2("CEKB", "EKUSER1", 1),
    ]
    assert pd.isna(frame["requestId"].iloc[4])  # invalid: no id
    # A given requestId is not an occurrence: the next blank EKUSER1 row is the third.
    assert frame["requestId"].tolist()[5:] == [
        "MYREQ-2",
        v2("CEKA", "EKUSER1", 3),
        v2("CEKA", "EKUSER2", 1),
    ]
    derived_flags = [True, False, True, True, False, False, True, True]
    assert frame["requestId_derived"].tolist() == derived_flags
    derived = frame[frame["requestId_derived"]]
    column = sheet_request_ids(
        "July (2).csv", derived["companyId"], derived["event"], derived["userId"]
    )
    assert derived["requestId"].tolist() == column.tolist()


def test_a_sheet_with_no_requestid_column_gets_every_valid_rows_id_through_the_frame(
    tmp_path: Path,
) -> None:
    rows = [f"CEKA,MEAL_CARD_PAYMENT,EKUSER{i % 3}" for i in range(7)]
    text = "companyId,event,userId\n" + "\n".join(rows) + "\n"
    frame = _allocation_plan(tmp_path, text, "alloc.csv").frame

    expected = [
        derive_request_id("alloc.csv", "CEKA", "MEAL_CARD_PAYMENT", f"EKUSER{i % 3}", i // 3 + 1)
        for i in range(7)
    ]
    assert frame["requestId"].tolist() == expected
    assert frame["requestId_derived"].all()


def test_counts_to_send_len_and_summary_derive_no_request_id(tmp_path: Path) -> None:
    result = _allocation_plan(tmp_path)
    assert result.request_ids_pending

    assert result.counts == {"allocate": 7, "invalid": 1}
    assert result.to_send == 7
    assert len(result) == 8
    assert result.summary() == "8 rows: 7 allocate, 1 invalid"
    # The decisions (what the coins-to-send totals read) hold no derived id yet.
    kept = result.decided["requestId"]
    assert kept.dropna().tolist() == ["MYREQ-1", "MYREQ-2"]
    assert result.decided["action"].tolist() == result.frame["action"].tolist()
    assert result.request_ids_pending is False  # reading ``frame`` derived them
    result = _allocation_plan(tmp_path)
    assert result.decided["action"].value_counts()["allocate"] == 7
    assert result.request_ids_pending

    first = result.frame
    assert not result.request_ids_pending
    assert first["requestId"].notna().sum() == 7
    assert result.frame is first  # derived once, then kept


def test_head_derives_only_its_rows_and_gives_what_the_frame_would(tmp_path: Path) -> None:
    lazy, full = _allocation_plan(tmp_path), _allocation_plan(tmp_path).frame

    for n in (0, 1, 3, 5, 8, 50, -2):
        pd.testing.assert_frame_equal(lazy.head(n), full.head(n))
    for actions in (["allocate"], ["invalid"], ["allocate", "invalid"], []):
        picked = full[full["action"].isin(actions)]
        pd.testing.assert_frame_equal(lazy.head(3, actions=actions), picked.head(3))
    assert lazy.request_ids_pending
    pd.testing.assert_frame_equal(lazy.frame, full)
    pd.testing.assert_frame_equal(lazy.head(4), full.head(4))  # and once derived


def test_replace_with_a_frame_keeps_that_frame(tmp_path: Path) -> None:
    lazy = _allocation_plan(tmp_path)
    own = _allocation_plan(tmp_path).frame.assign(requestId="JOURNALED")

    replaced = replace(lazy, frame=own)
    assert replaced.frame["requestId"].eq("JOURNALED").all()
    assert not replaced.request_ids_pending
    assert lazy.request_ids_pending  # the plan it came from is untouched

    renamed = replace(lazy, source_name="other.csv")
    pd.testing.assert_frame_equal(renamed.frame, _allocation_plan(tmp_path).frame)

    lazy.frame = own
    assert lazy.frame is own and not lazy.request_ids_pending


def test_configuration_plans_have_nothing_to_derive(tmp_path: Path) -> None:
    result = plan(bulk.validate(_sheet(tmp_path, SHEET)), None)
    assert not result.request_ids_pending
    pd.testing.assert_frame_equal(result.head(2), result.frame.head(2))
