"""Refresh, import and revert (toolkit.sync) against the real sandbox and real SQLite, whether or
not the registry is the client's recorder, and through the workspace."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import toolkit
from toolkit import sync
from toolkit.registry import Registry


def company() -> str:
    return "T" + uuid.uuid4().hex[:12].upper()


def test_a_registry_that_is_not_the_clients_recorder_still_records_fetches_and_reverts(
    tmp_path: Path, fresh_sandbox: Any, make_client: Callable[..., Any]
) -> None:
    client = make_client(fresh_sandbox, source="tests")
    made = client.create_config(company_id=company(), event="MEAL_CARD_PAYMENT", amount=6)
    config_id = made.coin_config_id
    client.update_config(config_id, amount=9)
    with Registry(tmp_path / "r.sqlite3", server_key=client.server_key, actor="analyst-1") as reg:
        assert client.recorder is None
        assert sync.import_ids(client, reg, [config_id])["status"].tolist() == ["imported"]
        assert reg.get(config_id).amount == 9
        client.update_config(config_id, amount=12)  # not recorded here: a change from outside
        report = sync.refresh(client, reg)
        assert report["status"].tolist() == ["drift"]
        history = reg.history(config_id)
        assert history["action"].tolist() == ["import", "drift"]
        drift_id = int(history["audit_id"].iloc[-1])

        result = sync.revert(client, reg, drift_id)

        assert client.get_config(config_id).amount == 9
        entry = reg.history(config_id).iloc[-1]
        assert entry["action"] == "revert" and entry["reverts_audit_id"] == drift_id
        assert int(entry["audit_id"]) == result.audit_id
        assert (entry["before_amount"], entry["after_amount"]) == (12, 9)
        assert entry["source"] == "tests" and entry["actor"] == "analyst-1"
        assert reg.get(config_id).amount == 9


def test_a_client_and_a_registry_of_different_servers_are_refused(
    tmp_path: Path, fresh_sandbox: Any, make_client: Callable[..., Any]
) -> None:
    client = make_client(fresh_sandbox)
    made = client.create_config(company_id=company(), event="MEAL_CARD_PAYMENT", amount=6)
    with Registry(tmp_path / "r.sqlite3", server_key="https://elsewhere.example") as reg:
        with pytest.raises(ValueError, match="registry keeps"):
            sync.import_ids(client, reg, [made.coin_config_id])
        with pytest.raises(ValueError, match="registry keeps"):
            sync.refresh(client, reg)
        with pytest.raises(ValueError, match="registry keeps"):
            sync.revert(client, reg, 1)
        assert reg.to_frame().empty and reg.audit_frame().empty


def test_the_workspace_refreshes_imports_and_reverts(tmp_path: Path, fresh_sandbox: Any) -> None:
    settings = fresh_sandbox.settings(home=tmp_path / "home")
    with toolkit.connect(settings, source="tests") as ws:
        made = ws.client.create_config(company_id=company(), event="MEAL_CARD_PAYMENT", amount=6)
        config_id = made.coin_config_id
        ws.client.update_config(config_id, amount=7)
        seen: list[tuple[int, int]] = []
        report = ws.refresh(progress=lambda done, total: seen.append((done, total)))
        assert report["status"].tolist() == ["unchanged"] and seen[-1] == (1, 1)
        assert ws.import_ids([config_id, "WCC000000001"])["status"].tolist() == [
            "known",
            "unknown",
        ]
        update_id = int(ws.registry.history(config_id)["audit_id"].iloc[-1])
        result = ws.revert(update_id)
        assert (result.before.amount, result.after.amount) == (7, 6)
        assert ws.client.get_config(config_id).amount == 6
        entry = ws.registry.history(config_id).iloc[-1]
        assert entry["action"] == "revert" and entry["source"] == "tests"
