"""`toolkit.bulk.sheet_lock`: a notebook or a script holds the sheet's run lock the app and the
CLI take, so nobody sends the same sheet twice at once. Real sandbox, real SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit import bulk
from toolkit.bulk.runlocks import acquire_run_lock, make_lock_key, run_lock_holder
from toolkit.sandbox import SandboxHandle
from toolkit.workspace import Workspace, connect


@pytest.fixture
def ws(fresh_sandbox: SandboxHandle, tmp_path: Path) -> Iterator[Workspace]:
    with connect(fresh_sandbox.settings(home=tmp_path / "home"), source="notebook") as opened:
        yield opened


def _plan(ws: Workspace, tmp_path: Path) -> bulk.Plan:
    sheet = tmp_path / "locked.csv"
    sheet.write_text(
        "companyId,event,amount\nCEKLOCKA,MEAL_CARD_PAYMENT,6\nCEKLOCKB,REFERRAL_EVENT,3\n"
    )
    return bulk.plan(bulk.validate(bulk.read_configs(sheet), registry=ws.registry), ws.registry)


def _outcomes(path: Path) -> list[tuple[str | None, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT actor, outcome FROM bulk_run_starts ORDER BY start_id")
        return [(actor, outcome) for actor, outcome in rows]


def test_a_held_sheet_is_refused_before_anything_is_sent_and_a_free_one_runs_and_is_released(
    ws: Workspace, fresh_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    plan = _plan(ws, tmp_path)
    lock_key = make_lock_key(plan.file_sha256, plan.kind, ws.client.server_key)
    other = acquire_run_lock(  # the app, parked for an approver
        ws.registry.path,
        lock_key=lock_key,
        run_key=bulk.resuming.run_key(plan, ws.client.server_key),
        actor="approver-ana",
    )
    refused = pytest.raises(bulk.RunLocked, match="started by approver-ana")
    with refused, bulk.sheet_lock(ws, plan, actor="analyst-nb"):
        pytest.fail("the body must not run while someone else holds the sheet")
    assert fresh_sandbox.app.sandbox.store.list_configs() == []
    other.release("rejected")

    with bulk.sheet_lock(ws, plan, actor="analyst-nb") as held:
        holder = run_lock_holder(ws.registry.path, lock_key)
        assert holder is not None and holder.actor == "analyst-nb"
        result = bulk.run(plan, ws, run_key=held.run_key)
        held.ended(result)
    assert {s: n for s, n in result.counts.items() if n} == {"created": 2}
    assert result.run_key == held.run_key
    assert run_lock_holder(ws.registry.path, lock_key) is None
    assert _outcomes(ws.registry.path) == [("approver-ana", "rejected"), ("analyst-nb", "finished")]


def test_a_run_that_raises_gives_the_lock_back_as_stopped(ws: Workspace, tmp_path: Path) -> None:
    plan = _plan(ws, tmp_path)
    lock_key = make_lock_key(plan.file_sha256, plan.kind, ws.client.server_key)
    with pytest.raises(RuntimeError), bulk.sheet_lock(ws, plan, actor="analyst-nb"):
        raise RuntimeError("the kernel's cell failed")
    assert run_lock_holder(ws.registry.path, lock_key) is None
    assert _outcomes(ws.registry.path) == [("analyst-nb", "stopped")]
