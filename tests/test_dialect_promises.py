"""Every promise on every dialect, with faults on: the toolkit must be right on any server that
answers as EnKash plausibly does, not only on the sandbox we wrote.

On each dialect (project, enkash, spring, lenient, cdn), with answers lost after the server
committed, dropped connections, 5xx, throttling and tokens dying mid-run:

- rows in = rows out; no duplicate configuration; balances exactly what the server recorded;
- nothing this run made is reported failed, conflict or unchanged;
- ``unconfirmed`` only where the dialect makes it undecidable (a server that accepts repeats);
- tokens renewed; exactly one login when credentials are refused; no secret in any message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import sandbox_profile
from test_cli_support import sandbox_env

from toolkit import bulk
from toolkit.client import CoinsClient
from toolkit.errors import AuthError, EnKashError, UnconfirmedError
from toolkit.registry import Registry
from toolkit.sandbox import start_sandbox

DIALECTS = ["project", "enkash", "spring", "lenient", "cdn"]
# Dialects whose answers let a client confirm a repeat (doctor: refused_names_id / refused).
CONFIRMING = {"project", "enkash", "spring", "cdn"}

FAULTS: dict[str, float] = {
    "slow_after_commit_rate": 0.15,
    "slow_after_commit_ms": 700,
    "error_rate": 0.08,
    "drop_rate": 0.05,
    "rate_limit_rate": 0.08,
    "token_expiry_rate": 0.04,
}


def faults_for(dialect: str) -> dict[str, float]:
    return {**FAULTS, "challenge_rate": 0.04} if dialect == "cdn" else dict(FAULTS)


@pytest.fixture(scope="module", params=DIALECTS)
def dialect_sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    handle = start_sandbox(
        tmp_path_factory.mktemp(request.param) / "sandbox.sqlite3", dialect=request.param
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def sb(dialect_sandbox: Any) -> Iterator[Any]:
    dialect_sandbox.reset()
    try:
        yield dialect_sandbox
    finally:
        dialect_sandbox.clear_faults()
        dialect_sandbox.set_rate_limit(None)


@pytest.fixture
def client_options() -> dict[str, Any]:
    """Every client of this module (`make_client` in conftest.py)."""
    return {"timeout_s": 0.4, "backoff_factor": 0.02, "backoff_max": 0.1}


def secrets_of(handle: Any) -> list[str]:
    return [handle.credentials["client_secret"], handle.credentials["password"]]


def assert_no_secret(texts: list[str], handle: Any, client: CoinsClient) -> None:
    secrets = [*secrets_of(handle), *client._tokens.known()]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def server_pairs(handle: Any) -> Counter[tuple[str, str]]:
    return Counter((c["companyId"], c["event"]) for c in handle.app.sandbox.store.list_configs())


def server_allocations(handle: Any) -> list[dict[str, Any]]:
    return handle.app.sandbox.store.list_allocations()


# -- the library -----------------------------------------------------------------------------


def test_the_doctor_reads_each_dialect_as_it_is(sb: Any) -> None:
    profile = sandbox_profile(sb)
    if sb.dialect in CONFIRMING:
        assert profile.resend_create and profile.resend_allocate
    else:
        assert profile.create_repeat == "accepted"
        assert profile.allocate_repeat == "accepted"
        assert not profile.resend_create and not profile.resend_allocate
    assert profile.token_life_used_s is not None and profile.token_life_used_s <= 300


def test_creates_and_allocations_under_faults_are_never_lost_doubled_or_misreported(
    make_client: Callable[..., CoinsClient],
    sb: Any,
) -> None:
    n = 24
    with make_client(sb) as client:
        client.login()
        sb.set_faults(**faults_for(sb.dialect))
        created: dict[str, str] = {}
        unconfirmed: list[str] = []
        messages: list[str] = []
        for i in range(n):
            company = f"CEKP{i:03d}"
            try:
                config = client.create_config(
                    company_id=company, event="MEAL_CARD_PAYMENT", amount=5
                )
            except UnconfirmedError as exc:
                unconfirmed.append(company)
                messages.append(str(exc))
                continue
            created[company] = config.coin_config_id
            if i == n // 2:
                sb.expire_tokens()  # every token dies mid-run: renewed, not a failure
        allocated: list[str] = []
        alloc_unconfirmed: list[str] = []
        for company in created:
            rid = "RQ" + company
            try:
                done = client.allocate_coins(
                    company_id=company, event="MEAL_CARD_PAYMENT", user_id="EKUSER1", request_id=rid
                )
            except UnconfirmedError as exc:
                alloc_unconfirmed.append(rid)
                messages.append(str(exc))
                continue
            assert not done.already_done  # nothing this run made is "already done earlier"
            allocated.append(rid)
        sb.clear_faults()

        # Every create ended created or (only where undecidable) unconfirmed.
        assert len(created) + len(unconfirmed) == n
        if sb.dialect in CONFIRMING:
            assert unconfirmed == [] and alloc_unconfirmed == []
        # No duplicate configuration, and every id reported exists with the values sent.
        pairs = server_pairs(sb)
        assert all(count == 1 for count in pairs.values())
        for company, config_id in created.items():
            got = client.get_config(config_id)
            assert (got.company_id, got.event, got.amount) == (company, "MEAL_CARD_PAYMENT", 5)
        # Balances: exactly what the server recorded; every allocation reported is on it once.
        records = server_allocations(sb)
        on_server = Counter(r["requestId"] for r in records)
        assert all(on_server[rid] == 1 for rid in allocated)
        assert all(count == 1 for count in on_server.values())
        assert client.get_balance("EKUSER1") == 5 * len(on_server)
        assert_no_secret(messages, sb, client)


def test_a_refused_login_is_tried_exactly_once(
    make_client: Callable[..., CoinsClient], sb: Any
) -> None:
    logins: list[int] = []
    with make_client(sb, password="not-the-password") as client:
        send = client._tokens._send_login

        def counting(*args: Any) -> Any:
            logins.append(1)
            return send(*args)

        client._tokens._send_login = counting
        for _ in range(3):
            with pytest.raises(AuthError) as caught:
                client.get_balance("EKUSER1")
            assert "not-the-password" not in str(caught.value)
    assert len(logins) == 1


def test_expired_tokens_are_renewed_whatever_the_dialect_answers(
    make_client: Callable[..., CoinsClient], sb: Any
) -> None:
    logins: list[int] = []
    with make_client(sb) as client:
        send = client._tokens._send_login

        def counting(*args: Any) -> Any:
            logins.append(1)
            return send(*args)

        client._tokens._send_login = counting
        client.create_config(company_id="CEKTOK", event="MEAL_CARD_PAYMENT", amount=3)
        sb.expire_tokens()
        assert client.get_balance("EKUSER1") == 0
        client.allocate_coins(company_id="CEKTOK", event="MEAL_CARD_PAYMENT", user_id="EKUSER1")
        assert client.get_balance("EKUSER1") == 3
    assert len(logins) == 2


# -- the bulk engine ---------------------------------------------------------------------------


def write_sheet(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_bulk_run_under_faults_accounts_for_every_row_and_a_rerun_never_duplicates(
    make_client: Callable[..., CoinsClient], sb: Any, tmp_path: Path
) -> None:
    rows = [f"CEKB{i:03d},REFERRAL_EVENT,{10 + i % 7}" for i in range(40)]
    sheet = write_sheet(tmp_path / "configs.csv", "companyId,event,amount", rows)
    with make_client(sb) as client:
        registry = Registry(tmp_path / "registry.sqlite3", client=client)
        client.login()
        sb.set_faults(**faults_for(sb.dialect))
        plan = bulk.plan(bulk.validate(bulk.read_configs(sheet)), registry)
        first = bulk.run(plan, client=client, registry=registry, concurrency=4)
        sb.clear_faults()

        statuses = Counter(first.frame["status"])
        assert len(first.frame) == 40
        assert set(statuses) <= {"created", "unconfirmed"}, first.frame["message"].tolist()
        if sb.dialect in CONFIRMING:
            assert statuses["created"] == 40
        assert all(count == 1 for count in server_pairs(sb).values())
        made = first.frame.loc[first.frame["status"] == "created", "coinConfigId"]
        assert made.notna().all()
        assert set(made) <= set(registry.to_frame()["coinConfigId"])

        # The same sheet again: done rows are reused, unconfirmed ones re-checked safely.
        again = bulk.run(
            bulk.plan(bulk.validate(bulk.read_configs(sheet)), registry),
            client=client,
            registry=registry,
            concurrency=4,
        )
        assert len(again.frame) == 40
        assert all(count == 1 for count in server_pairs(sb).values())
        still = again.frame[again.frame["status"] == "unconfirmed"]
        if sb.dialect in CONFIRMING:
            assert still.empty
        for message in still["message"]:
            assert "import-ids" in message
        registry.close()


def test_a_bulk_allocation_under_faults_pays_each_row_once_and_never_says_unchanged(
    make_client: Callable[..., CoinsClient], sb: Any, tmp_path: Path
) -> None:
    with make_client(sb) as client:
        registry = Registry(tmp_path / "registry.sqlite3", client=client)
        client.create_config(company_id="CEKALLOC", event="MEAL_CARD_PAYMENT", amount=2)
        rows = [f"CEKALLOC,MEAL_CARD_PAYMENT,EKU{i:03d}" for i in range(30)]
        sheet = write_sheet(tmp_path / "awards.csv", "companyId,event,userId", rows)
        sb.set_faults(**faults_for(sb.dialect))
        validation = bulk.validate(bulk.read_allocations(sheet))
        result = bulk.run(
            bulk.plan_allocations(validation, registry),
            client=client,
            registry=registry,
            concurrency=4,
        )
        sb.clear_faults()
        statuses = Counter(result.frame["status"])
        assert len(result.frame) == 30
        assert set(statuses) <= {"allocated", "unconfirmed"}, result.frame["message"].tolist()
        if sb.dialect in CONFIRMING:
            assert statuses["allocated"] == 30
        on_server = Counter(r["requestId"] for r in server_allocations(sb))
        assert all(count == 1 for count in on_server.values())
        for rid in result.frame.loc[result.frame["status"] == "allocated", "requestId"]:
            assert on_server[rid] == 1
        for i in range(30):
            paid = sum(1 for r in server_allocations(sb) if r["userId"] == f"EKU{i:03d}")
            assert client.get_balance(f"EKU{i:03d}") == 2 * paid
        registry.close()


# -- the CLI ----------------------------------------------------------------------------------


def test_the_cli_learns_the_server_then_runs_a_sheet_without_a_traceback(
    sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit.cli import main

    for name, value in sandbox_env(sb, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENKASH_TIMEOUT_S", "0.4")
    sheet = write_sheet(
        tmp_path / "cli.csv",
        "companyId,event,amount",
        [f"CEKC{i:03d},INVOICE_PAYMENT,{i % 5}" for i in range(25)],
    )
    assert main(["doctor", "--scratch-company", "ZZCLIDOC", "--yes"]) == 0
    doctor = capsys.readouterr()
    assert "So the toolkit will" in doctor.out
    sb.set_faults(**faults_for(sb.dialect))
    code = main(["bulk-create", str(sheet), "--results", str(tmp_path / "results.csv")])
    sb.clear_faults()
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert code in (0, 1)
    if sb.dialect in CONFIRMING:
        assert code == 0, out.err
    # (On a server that accepts repeats, the doctor's own scratch pair is there twice: it says
    # so. The sheet's pairs never are.)
    pairs = {pair: n for pair, n in server_pairs(sb).items() if pair[0] != "ZZCLIDOC"}
    assert all(count == 1 for count in pairs.values())
    if sb.dialect not in CONFIRMING:
        assert "configuration" in doctor.out.split("Created on the server:")[1]
    for secret in secrets_of(sb):
        assert secret not in out.err + out.out
        assert secret not in (tmp_path / "results.csv").read_text(encoding="utf-8-sig")


def test_unconfirmed_is_explained_and_counted_by_the_cli(
    sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a server profile (never probed) the toolkit is cautious on any dialect."""
    from toolkit.cli import main

    for name, value in sandbox_env(sb, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENKASH_TIMEOUT_S", "0.3")
    sheet = write_sheet(
        tmp_path / "cli.csv", "companyId,event,amount", ["CEKU001,INVOICE_PAYMENT,4"]
    )
    sb.set_faults(slow_after_commit_rate=1.0, slow_after_commit_ms=600)
    code = main(["bulk-create", str(sheet), "--results", str(tmp_path / "r.csv")])
    sb.clear_faults()
    out = capsys.readouterr()
    assert code == 1
    assert "unconfirmed" in out.err + out.out
    assert "Traceback" not in out.err
    assert sum(server_pairs(sb).values()) == 1  # it was made once, and never sent again


def test_no_error_reaches_an_analyst_as_cannot_reach_for_a_server_that_answered(
    make_client: Callable[..., CoinsClient],
    sb: Any,
) -> None:
    with make_client(sb) as client:
        sb.set_faults(error_rate=1.0)
        with pytest.raises(EnKashError) as caught:
            client.get_config("WCC123")
        sb.clear_faults()
    assert "could not connect" not in str(caught.value)
