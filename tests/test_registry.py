"""The registry against the real sandbox and real SQLite: known configs, audit, drift, revert."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_frames import EXPECTED_DTYPES  # the registry's frame is configs_to_frame's

import toolkit
from toolkit import db, sync
from toolkit.client import ApiCall, CoinsClient
from toolkit.errors import ConflictError
from toolkit.frames import configs_to_frame
from toolkit.models import CoinConfig, Configuration
from toolkit.registry import (
    AUDIT_COLUMNS,
    MIGRATIONS,
    REPORT_COLUMNS,
    Registry,
    RevertRefused,
)

ROOT = Path(__file__).resolve().parents[1]


payloads = st.fixed_dictionaries(
    {
        "coinConfigId": st.from_regex(r"\AWCC[0-9]{1,9}\Z"),
        "companyId": st.from_regex(r"\A[A-Z0-9]{1,32}\Z"),
        "event": st.from_regex(r"\A[A-Z][A-Z0-9_]{0,63}\Z"),
        "configuration": st.sampled_from(["DEFAULT", "CUSTOM"]),
        "amount": st.integers(0, 1_000_000),
    }
)


def company() -> str:
    """A company id no other test uses."""
    return "T" + uuid.uuid4().hex[:12].upper()


@pytest.fixture
def client(fresh_sandbox):
    with CoinsClient.from_settings(fresh_sandbox.settings(), source="tests") as c:
        yield c


@pytest.fixture
def registry(tmp_path, client):
    with Registry(tmp_path / "registry.sqlite3", client=client, actor="analyst-1") as reg:
        yield reg


class Outside:
    """Someone changing configurations with raw HTTP, not through the toolkit."""

    def __init__(self, api) -> None:
        self.api = api

    def patch(self, coin_config_id: str, **body) -> dict:
        answer = self.api.patch(f"/api/v0/enkash-coins/{coin_config_id}", json=body).json()
        assert answer["response_code"] == 0, answer
        return answer["payload"]

    def get(self, coin_config_id: str) -> dict:
        answer = self.api.get(f"/api/v0/enkash-coins/{coin_config_id}").json()
        assert answer["response_code"] == 0, answer
        return answer["payload"]


@pytest.fixture
def outside(api) -> Outside:
    return Outside(api)


def call(action: str, config: CoinConfig | None = None, **kwargs) -> ApiCall:
    """A synthetic client call, for tests that need no server."""
    return ApiCall(
        action=action,
        server_key=kwargs.pop("server_key", "https://example.test"),
        coin_config_id=kwargs.pop("coin_config_id", config.coin_config_id if config else None),
        request=kwargs.pop("request", config.to_payload() if config else {}),
        result=config,
        **kwargs,
    )


# --------------------------------------------------------------------------- migrations


def test_migrations_are_applied_once_when_the_file_is_opened_twice(tmp_path):
    path = tmp_path / "sub" / "registry.sqlite3"
    Registry(path, server_key="https://example.test").close()
    Registry(path, server_key="https://example.test").close()
    conn = db.connect(path)
    assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)
    assert db.apply_migrations(conn, MIGRATIONS) == []
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_apply_migrations_takes_sql_scripts_and_callables_each_once(tmp_path):
    conn = db.connect(tmp_path / "x.sqlite3")
    steps = [
        ("0001", "CREATE TABLE t (x INTEGER); CREATE INDEX t_x ON t (x);"),
        ("0002", lambda c: c.execute("INSERT INTO t (x) VALUES (1)")),
    ]
    assert db.apply_migrations(conn, steps) == ["0001", "0002"]
    assert db.apply_migrations(conn, [*steps, ("0003", "INSERT INTO t (x) VALUES (2)")]) == ["0003"]
    assert conn.execute("SELECT sum(x) FROM t").fetchone()[0] == 3
    assert db.applied_migrations(conn) == ["0001", "0002", "0003"]


def test_a_failing_migration_is_not_recorded_and_leaves_nothing_behind(tmp_path):
    conn = db.connect(tmp_path / "x.sqlite3")
    with pytest.raises(Exception, match="no such table"):
        db.apply_migrations(conn, [("bad", "CREATE TABLE a (x); INSERT INTO nope VALUES (1);")])
    assert db.applied_migrations(conn) == []
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'a'").fetchone()[0] == 0


def test_two_processes_opening_a_new_file_at_once_apply_each_migration_once(tmp_path):
    path = tmp_path / "new" / "registry.sqlite3"
    script = textwrap.dedent(
        f"""
        import time
        from toolkit.registry import Registry
        time.sleep(max(0.0, {_start_at()} - time.time()))
        Registry({str(path)!r}, server_key="k").close()
        """
    )
    procs = [_python(script) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    conn = db.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations").fetchall()]
    assert names == [name for name, _ in MIGRATIONS]


def _start_at() -> float:
    import time

    return time.time() + 1.5


def _python(script: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --------------------------------------------------------------------------- recording


def test_created_configs_show_in_to_frame_with_the_documented_columns_and_dtypes(registry, client):
    co = company()
    first = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    second = client.create_config(
        company_id=co, event="REFERRAL_EVENT", amount=50, configuration="CUSTOM"
    )
    frame = registry.to_frame()
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
    assert frame["coinConfigId"].tolist() == [first.coin_config_id, second.coin_config_id]
    assert frame["amount"].tolist() == [6, 50]
    assert frame["configuration"].tolist() == ["DEFAULT", "CUSTOM"]
    assert frame["source"].eq("tests").all()
    assert frame["created_at"].notna().all()
    assert (frame["last_synced_at"] >= frame["created_at"]).all()
    assert registry.get(first.coin_config_id) == first
    assert registry.find(co, "REFERRAL_EVENT") == second
    pairs = registry.known_pairs()
    assert list(pairs.columns) == ["coinConfigId", "companyId", "event", "configuration", "amount"]
    assert len(pairs) == 2


def test_update_answer_without_company_id_keeps_the_known_company(registry, client):
    co = company()
    created = client.create_config(company_id=co, event="INVOICE_PAYMENT", amount=4)
    client.update_config(created.coin_config_id, amount=10)  # the answer has no companyId
    row = registry.to_frame().set_index("coinConfigId").loc[created.coin_config_id]
    assert row["companyId"] == co and row["amount"] == 10
    history = registry.history(created.coin_config_id)
    assert history["action"].tolist() == ["create", "update"]
    update = history.iloc[1]
    assert (update["before_amount"], update["after_amount"]) == (4, 10)
    assert update["actor"] == "analyst-1" and update["outcome"] == "ok"
    assert update["changes"] == "amount 4 → 10"


def test_an_update_of_an_unknown_id_without_company_id_records_a_missing_value(tmp_path):
    with Registry(tmp_path / "r.sqlite3", server_key="https://example.test") as reg:
        answer = CoinConfig("WCC024845", None, "INVOICE_PAYMENT", Configuration.DEFAULT, 10)
        reg.record_call(call("update", answer))
        frame = reg.to_frame()
    assert pd.isna(frame.loc[0, "companyId"])
    assert frame.loc[0, "amount"] == 10


def test_failures_are_audited_with_their_message_and_never_with_secrets(
    registry, client, fresh_sandbox
):
    co = company()
    client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    with pytest.raises(ConflictError):
        client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=7)
    registry.record_call(
        call(
            "create",
            coin_config_id=None,
            request={"companyId": co, "event": "X", "password": "hunter2", "token": "t"},
            error=ConflictError("refused"),
            server_key=registry.server_key,
        )
    )
    failed = registry.audit_frame(outcome="error", company_id=co)
    assert len(failed) == 2
    assert "already exists" in failed.iloc[0]["message"]
    assert "hunter2" not in failed.iloc[1]["request"] and "token" not in failed.iloc[1]["request"]
    raw = b"".join(p.read_bytes() for p in registry.path.parent.glob("registry.sqlite3*"))
    assert fresh_sandbox.credentials["password"].encode() not in raw
    assert b"hunter2" not in raw


def test_allocations_are_audited_against_the_known_configuration(registry, client):
    co = company()
    created = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=3)
    client.allocate_coins(company_id=co, event="MEAL_CARD_PAYMENT", user_id="EKUSER1")
    entry = registry.audit_frame(action="allocate").iloc[-1]
    assert entry["coinConfigId"] == created.coin_config_id
    assert entry["outcome"] == "ok" and "EKUSER1" in entry["request"]


def test_audit_frame_filters_by_action_actor_and_time(tmp_path):
    with Registry(tmp_path / "r.sqlite3", server_key="https://example.test") as reg:
        t0 = datetime(2025, 1, 1, tzinfo=UTC)
        for i in range(4):
            config = CoinConfig(f"WCC{i}", "CEKA", f"E{i}", Configuration.DEFAULT, i)
            reg.record_call(
                call("create", config, actor=f"user{i % 2}", at=t0 + timedelta(hours=i))
            )
        reg.record_call(call("update", CoinConfig("WCC0", amount=9), at=t0 + timedelta(hours=5)))
        everything = reg.audit_frame()
        assert list(everything.columns) == list(AUDIT_COLUMNS)
        assert str(everything["at"].dtype) == "datetime64[us, UTC]"
        assert len(reg.audit_frame(action="create")) == 4
        assert len(reg.audit_frame(action=["create", "update"], coin_config_id="WCC0")) == 2
        assert reg.audit_frame(actor="user1")["coinConfigId"].tolist() == ["WCC1", "WCC3"]
        window = reg.audit_frame(since=t0 + timedelta(hours=1), until="2025-01-01T03:00:00")
        assert window["coinConfigId"].tolist() == ["WCC1", "WCC2"]


def test_rows_are_kept_per_server_and_never_mix(tmp_path):
    path = tmp_path / "r.sqlite3"
    config = CoinConfig("WCC1", "CEKA", "E", Configuration.DEFAULT, 1)
    with (
        Registry(path, server_key="sandbox:/x") as sandbox_reg,
        Registry(path, server_key="https://api.enkash.example") as real_reg,
    ):
        sandbox_reg.record_call(call("create", config, server_key="sandbox:/x"))
        real_reg.record_call(
            call("create", CoinConfig("WCC2", "CEKB", "E", Configuration.CUSTOM, 2),
                 server_key="https://api.enkash.example")
        )  # fmt: skip
        assert sandbox_reg.to_frame()["coinConfigId"].tolist() == ["WCC1"]
        assert real_reg.to_frame()["coinConfigId"].tolist() == ["WCC2"]
        assert real_reg.get("WCC1") is None and real_reg.find("CEKA", "E") is None
        assert real_reg.audit_frame()["coinConfigId"].tolist() == ["WCC2"]
        assert len(real_reg.audit_frame(all_servers=True)) == 2


def test_a_registry_with_a_client_records_under_the_clients_server_key(tmp_path, sandbox):
    with CoinsClient.from_settings(sandbox.settings(), server_key="sandbox:one") as c:
        reg = Registry(tmp_path / "r.sqlite3", client=c)
        assert c.recorder is reg and reg.server_key == "sandbox:one"
        with pytest.raises(ValueError):
            Registry(tmp_path / "r.sqlite3", client=c, server_key="other")
        reg.close()
        assert c.recorder is None


def test_registry_defaults_to_coins_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COINS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COINS_ACTOR", "ops-lead")
    monkeypatch.delenv("ENKASH_BASE_URL", raising=False)
    with Registry() as reg:
        assert reg.path == tmp_path / "home" / "registry.sqlite3"
        assert reg.actor == "ops-lead"
        assert reg.server_key.startswith("sandbox:")
    assert (tmp_path / "home" / "registry.sqlite3").exists()


def test_many_threads_recording_at_once_lose_nothing(tmp_path):
    with Registry(tmp_path / "r.sqlite3", server_key="https://example.test") as reg:

        def work(t: int) -> None:
            for i in range(25):
                reg.record_call(call("create", CoinConfig(f"WCC{t}X{i}", f"C{t}", f"E{i}")))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(reg.to_frame()) == 400
        assert len(reg.audit_frame()) == 400


def test_two_processes_writing_to_one_registry_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite3"
    Registry(path, server_key="k").close()
    script = textwrap.dedent(
        """
        import sys, time
        from toolkit.client import ApiCall
        from toolkit.models import CoinConfig
        from toolkit.registry import Registry
        name, path, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
        reg = Registry(path, server_key="k", actor=name)
        time.sleep(max(0.0, start - time.time()))
        for i in range(150):
            config = CoinConfig(f"WCC{name}{i}", name, "MEAL_CARD_PAYMENT", amount=i)
            reg.record_call(ApiCall("create", "k", config.coin_config_id, {}, result=config))
            reg.record_call(ApiCall("update", "k", config.coin_config_id, {},
                                    result=CoinConfig(config.coin_config_id, amount=i + 1)))
        reg.close()
        """
    )
    start = str(_start_at())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, name, str(path), start],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("A", "B")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    with Registry(path, server_key="k") as reg:
        frame = reg.to_frame()
        audit = reg.audit_frame()
    assert len(frame) == 300
    assert frame["amount"].sum() == 2 * sum(range(1, 151))
    assert audit.groupby(["actor", "action"]).size().to_dict() == {
        ("A", "create"): 150,
        ("A", "update"): 150,
        ("B", "create"): 150,
        ("B", "update"): 150,
    }


# --------------------------------------------------------------------------- import / refresh


def test_import_ids_records_known_ids_and_reports_unknown_ones(tmp_path, client):
    co = company()
    elsewhere = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=8)
    with Registry(tmp_path / "r.sqlite3", client=client) as reg:  # knows nothing yet
        report = sync.import_ids(
            client, reg, [elsewhere.coin_config_id, "WCC000000001", "not an id", ""]
        )
        assert list(report.columns) == list(REPORT_COLUMNS)
        assert report["status"].tolist() == ["imported", "unknown", "invalid"]
        assert reg.get(elsewhere.coin_config_id) == elsewhere
        assert reg.history(elsewhere.coin_config_id)["action"].tolist() == ["import"]
        again = sync.import_ids(client, reg, [elsewhere.coin_config_id])
        assert again["status"].tolist() == ["known"]


def test_refresh_sees_drift_made_outside_the_toolkit(registry, client, outside):
    co = company()
    steady = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    moved = client.create_config(company_id=co, event="REFERRAL_EVENT", amount=50)
    outside.patch(moved.coin_config_id, amount=75, configuration="CUSTOM")
    seen: list[tuple[int, int]] = []
    report = sync.refresh(
        client, registry, concurrency=4, progress=lambda d, t: seen.append((d, t))
    )
    status = dict(zip(report["coinConfigId"], report["status"], strict=True))
    assert status == {steady.coin_config_id: "unchanged", moved.coin_config_id: "drift"}
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)
    drift = registry.history(moved.coin_config_id).iloc[-1]
    assert drift["action"] == "drift"
    assert (drift["before_amount"], drift["after_amount"]) == (50, 75)
    assert (drift["before_configuration"], drift["after_configuration"]) == ("DEFAULT", "CUSTOM")
    assert registry.get(moved.coin_config_id).amount == 75
    assert sync.refresh(client, registry)["status"].tolist() == ["unchanged", "unchanged"]


def test_refresh_marks_ids_the_server_no_longer_knows_as_gone(registry, client, fresh_sandbox):
    kept = client.create_config(company_id=company(), event="MEAL_CARD_PAYMENT", amount=1)
    fresh_sandbox.reset()  # the server forgets everything
    report = sync.refresh(client, registry)
    assert report["status"].tolist() == ["gone"]
    assert registry.to_frame().empty
    everything = registry.to_frame(include_gone=True)
    assert everything["status"].tolist() == ["gone"]
    assert registry.history(kept.coin_config_id)["action"].tolist() == ["create", "gone"]


# --------------------------------------------------------------------------- revert


def test_revert_restores_the_old_amount_on_the_sandbox(registry, client, outside):
    co = company()
    created = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    client.update_config(created.coin_config_id, amount=10, configuration="CUSTOM")
    update_id = int(registry.history(created.coin_config_id)["audit_id"].iloc[-1])
    result = sync.revert(client, registry, update_id)
    on_server = outside.get(created.coin_config_id)
    assert (on_server["amount"], on_server["configuration"]) == (6, "DEFAULT")
    entry = registry.history(created.coin_config_id).iloc[-1]
    assert entry["action"] == "revert" and entry["reverts_audit_id"] == update_id
    assert int(entry["audit_id"]) == result.audit_id
    assert (entry["before_amount"], entry["after_amount"]) == (10, 6)
    assert registry.get(created.coin_config_id).amount == 6
    assert "10 → 6" in str(result)


def test_revert_is_refused_after_an_outside_change(registry, client, outside):
    co = company()
    created = client.create_config(company_id=co, event="MEAL_CARD_PAYMENT", amount=6)
    client.update_config(created.coin_config_id, amount=10)
    update_id = int(registry.history(created.coin_config_id)["audit_id"].iloc[-1])
    outside.patch(created.coin_config_id, amount=12)
    with pytest.raises(RevertRefused, match="changed since"):
        sync.revert(client, registry, update_id)
    assert outside.get(created.coin_config_id)["amount"] == 12
    assert "revert" not in registry.history(created.coin_config_id)["action"].tolist()


def test_revert_is_refused_for_a_create_a_second_time_and_for_unknown_entries(registry, client):
    created = client.create_config(company_id=company(), event="MEAL_CARD_PAYMENT", amount=6)
    client.update_config(created.coin_config_id, amount=7)
    create_id, update_id = registry.history(created.coin_config_id)["audit_id"].tolist()
    with pytest.raises(RevertRefused, match="only"):
        sync.revert(client, registry, create_id)
    sync.revert(client, registry, update_id)
    with pytest.raises(RevertRefused, match="changed since"):
        sync.revert(client, registry, update_id)  # already undone: the values moved on
    with pytest.raises(RevertRefused, match="no audit entry"):
        sync.revert(client, registry, 10**9)


def test_a_fetch_asked_with_spaces_around_the_id_updates_the_same_row(tmp_path):
    with Registry(tmp_path / "r.sqlite3", server_key="https://example.test") as reg:
        config = CoinConfig("WCC1", "CEKA", "E", Configuration.DEFAULT, 1)
        reg.record_call(call("get", config))
        reg.record_call(call("get", CoinConfig("WCC1", "CEKA", "E", Configuration.DEFAULT, 2),
                             coin_config_id=" WCC1 "))  # fmt: skip
        assert reg.to_frame()["amount"].tolist() == [2]
        assert reg.history("WCC1")["action"].tolist() == ["import", "drift"]


def test_with_connection_blocks_are_atomic_write_transactions(tmp_path):
    conn = db.connect(tmp_path / "x.sqlite3")
    conn.execute("CREATE TABLE t (x INTEGER NOT NULL)")
    with pytest.raises(Exception, match="NOT NULL"), conn:
        conn.execute("INSERT INTO t (x) VALUES (1)")
        conn.execute("INSERT INTO t (x) VALUES (NULL)")
    with db.transaction(conn):
        conn.execute("INSERT INTO t (x) VALUES (2)")
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
    assert not conn.in_transaction


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads, max_size=12, unique_by=lambda p: p["coinConfigId"]))
def test_what_the_registry_records_comes_back_as_the_same_frame(items):
    with (
        tempfile.TemporaryDirectory() as tmp,
        Registry(Path(tmp) / "r.sqlite3", server_key="https://example.test", actor="prop") as reg,
    ):
        for item in items:
            reg.record_call(call("create", CoinConfig.from_payload(item)))
        frame = reg.to_frame()
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
    expected = configs_to_frame(items)
    got = frame[list(expected.columns)].sort_values("coinConfigId").reset_index(drop=True)
    expected = expected.sort_values("coinConfigId").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)


def test_a_client_from_the_environment_records_into_the_registry_by_default(
    fresh_sandbox, tmp_path, monkeypatch
):
    """The checker's path: create through `toolkit.connect().client`, read `Registry()`.

    (`CoinsClient.from_env()` alone records nothing: `toolkit.connect()` attaches the registry.)
    """
    for name, value in {
        "ENKASH_BASE_URL": fresh_sandbox.url,
        **{f"ENKASH_{k.upper()}": v for k, v in fresh_sandbox.credentials.items()},
        "COINS_HOME": str(tmp_path / "home"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env

    with toolkit.connect() as ws:
        made = ws.client.create_config(company_id="CEKFROMENV", event="MEAL_CARD_PAYMENT", amount=6)
        ws.client.update_config(made.coin_config_id, amount=9)

    registry = Registry()
    frame = registry.to_frame()
    row = frame.set_index("coinConfigId").loc[made.coin_config_id]
    assert (row["companyId"], row["event"], row["amount"]) == ("CEKFROMENV", "MEAL_CARD_PAYMENT", 9)
    assert sorted(registry.history(made.coin_config_id)["action"]) == ["create", "update"]
    with CoinsClient.from_env() as quiet:
        assert quiet.recorder is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("WCC817428\nWCC024845\n", ["WCC817428", "WCC024845"]),
        ("WCC817428, WCC024845; WCC817428", ["WCC817428", "WCC024845"]),
        ("# exported from Postman\n\n  WCC817428  \n", ["WCC817428"]),
        ("Name;Coin Config ID\nfirst;WCC817428\nsecond;\n", ["WCC817428"]),
        ("name,coin_config_id\nx,WCC1\n".encode("utf-16"), ["WCC1"]),
        ("", []),
    ],
)
def test_read_ids_takes_pasted_lists_and_csv_exports(given, expected):
    from toolkit.registry import read_ids

    assert read_ids(given) == expected


def test_read_ids_refuses_binary_data():
    from toolkit.registry import read_ids

    with pytest.raises(ValueError, match="not text"):
        read_ids(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
