"""The notebooks in ``notebooks/``: committed clean, and executed end to end against a sandbox.

Each notebook runs under papermill in a kernel of this very interpreter (a kernelspec written
to a temp dir), with its working directory in a temp copy of ``notebooks/`` (the sample sheets
included) and the environment pointing at a fresh in-process sandbox. The tests then read what
the notebook produced — the results CSV, the exports, the sandbox, the registry — as an analyst
or an auditor would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import papermill as pm
import pytest
import requests

from toolkit.client import CoinsClient
from toolkit.notebook_helpers import notebook_settings
from toolkit.registry import Registry
from toolkit.sandbox import SandboxHandle, start_sandbox
from toolkit.sandbox.demo import demo_rows

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL_NAME = "coins-toolkit-tests"

# The deliberate mistakes in notebooks/data/configs_sample.csv (spreadsheet row → column).
SAMPLE_MISTAKES = {
    22: "companyId, event",  # the same pair again, with a different amount
    27: "companyId",  # lower-case company id
    108: "configuration",  # DEFUALT
    122: "amount",  # 7.5 coins
    156: "event",  # missing
}
SAMPLE_ROWS = 197
# notebooks/data/allocations_sample.csv: a pair nobody configured, and a malformed user id.
ALLOCATION_ROWS = 63
ALLOCATION_NOT_CONFIGURED_ROW = 7
ALLOCATION_INVALID_ROW = 19


def test_there_are_four_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_bulk_create_from_csv.ipynb",
        "02_explore_configs.ipynb",
        "03_allocate_and_balances.ipynb",
        "04_cost_and_what_if.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_one_parameters_cell_first_among_code(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0]


# --------------------------------------------------------------------------- execution


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec that runs this interpreter (the venv the tests run in), found first."""
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "coins toolkit (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter_dir))
        yield KERNEL_NAME


@dataclass
class Lab:
    """A temp copy of notebooks/ wired to one sandbox and one COINS_HOME."""

    sandbox: SandboxHandle | None  # None: the kernel starts the embedded one under home
    workdir: Path
    home: Path
    kernel: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {
            "COINS_HOME": str(self.home),
            "COINS_ACTOR": "notebook-tests",
            # The kernel imports the toolkit from this checkout, installed or not.
            "PYTHONPATH": python_path,
        }
        if self.sandbox is not None:
            settings = self.sandbox.settings()
            env |= {
                "ENKASH_BASE_URL": str(settings.base_url),
                "ENKASH_CLIENT_ID": settings.client_id,
                "ENKASH_CLIENT_SECRET": settings.client_secret,
                "ENKASH_USERNAME": settings.username,
                "ENKASH_PASSWORD": settings.password,
            }
        return env | self.extra_env

    def execute(self, name: str, **parameters: Any) -> nbformat.NotebookNode:
        """Run a notebook here (its working directory is the copy's folder) and return it."""
        out = self.workdir / f"executed-{len(list(self.workdir.glob('executed-*')))}-{name}"
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.environment().items():
                mp.setenv(key, value)
            for key in list(os.environ):
                if key.startswith("ENKASH_") and key not in self.environment():
                    mp.delenv(key)
            pm.execute_notebook(
                str(self.workdir / name),
                str(out),
                parameters=parameters,
                kernel_name=self.kernel,
                cwd=str(self.workdir),
                progress_bar=False,
                log_output=False,
                execution_timeout=120,
            )
        return nbformat.read(out, as_version=4)

    def _admin(self, what: str) -> pd.DataFrame:
        assert self.sandbox is not None
        answer = requests.get(f"{self.sandbox.url}/_sandbox/{what}", timeout=10)
        answer.raise_for_status()
        return pd.DataFrame(answer.json()["payload"])

    def sandbox_configs(self) -> pd.DataFrame:
        return self._admin("configs")

    def sandbox_allocations(self) -> pd.DataFrame:
        return self._admin("allocations")

    def registry(self) -> Registry:
        assert self.sandbox is not None
        return Registry(
            self.home / "registry.sqlite3", server_key=self.sandbox.url, actor="notebook-tests"
        )


def _copy_notebooks(tmp: Path) -> Path:
    workdir = tmp / "notebooks"
    shutil.copytree(
        NOTEBOOKS_DIR,
        workdir,
        ignore=shutil.ignore_patterns("*.results.csv", ".ipynb_checkpoints", "exports", "*.py"),
    )
    return workdir


def _new_lab(tmp: Path, kernel: str) -> Iterator[Lab]:
    sandbox = start_sandbox(tmp / "sandbox.sqlite3")
    try:
        yield Lab(sandbox=sandbox, workdir=_copy_notebooks(tmp), home=tmp / "home", kernel=kernel)
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, kernel: str) -> Iterator[Lab]:
    """One sandbox shared by the defaults run of 01, then 02 and 03 on what 01 created."""
    yield from _new_lab(tmp_path_factory.mktemp("lab"), kernel)


@pytest.fixture
def fresh_lab(tmp_path: Path, kernel: str) -> Iterator[Lab]:
    yield from _new_lab(tmp_path, kernel)


@pytest.fixture(scope="module")
def created(lab: Lab) -> nbformat.NotebookNode:
    """Notebook 01 with its defaults: the sample sheet, mode create, no dry run."""
    return lab.execute("01_bulk_create_from_csv.ipynb")


def _read_results(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _text(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook showed, as text (what an analyst reads)."""
    parts: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type == "error":
                parts.append("\n".join(output.traceback))
            else:
                data = output.get("data", {})
                parts.append(data.get("text/markdown") or data.get("text/plain") or "")
    return "\n".join(parts)


def _tables(notebook: nbformat.NotebookNode) -> list[str]:
    """The plain-text form of every table the notebook showed."""
    return [
        output.data["text/plain"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {}) and "<table" in output.data["text/html"]
    ]


def _outputs_of(notebook: nbformat.NotebookNode, fragment: str) -> list[Any]:
    """The outputs of the one code cell whose source contains ``fragment``."""
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and fragment in c.source]
    return cell.outputs


def _assert_reads_well(notebook: nbformat.NotebookNode) -> None:
    """Blank cells, not NaN/<NA>/None; no "Empty DataFrame"; every chart keeps its vega-lite
    spec; progress bars are one line each, not a stream of redraws."""
    for table in _tables(notebook):
        assert not re.search(r"(?<![\w'])(NaN|<NA>|None|NaT)(?![\w'])", table), table
    text = _text(notebook)
    assert "Empty DataFrame" not in text
    assert "alt.Chart(...)" not in text
    for cell in notebook.cells:
        streams = [o.text for o in cell.get("outputs", []) if o.output_type == "stream"]
        assert not any("\r" in t or "%|" in t for t in streams), streams[:3]


def _charts(notebook: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [
        output.data["application/vnd.vegalite.v6+json"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "application/vnd.vegalite.v6+json" in output.get("data", {})
    ]


# --------------------------------------------------------------------------- 01 bulk create


def test_bulk_create_accounts_for_every_row_and_marks_the_mistakes_invalid(
    lab: Lab, created: nbformat.NotebookNode
) -> None:
    results = _read_results(lab.workdir / "data" / "configs_sample.results.csv")
    assert len(results) == SAMPLE_ROWS  # rows in = rows out
    assert results["row"].astype(int).tolist() == sorted(results["row"].astype(int))
    invalid = results[results["status"] == "invalid"]
    assert sorted(invalid["row"].astype(int)) == sorted(SAMPLE_MISTAKES)
    assert set(results["status"]) == {"created", "invalid"}
    # Every invalid row says which field is wrong; the notes column came through untouched.
    for row, column in SAMPLE_MISTAKES.items():
        message = invalid.loc[invalid["row"] == str(row), "message"].item()
        assert column.split(",")[0] in message, (row, message)
    assert "festive offer, approved by finance" in results["notes"].tolist()
    created_rows = results[results["status"] == "created"]
    assert created_rows["coinConfigId"].str.match(r"^WCC\w+$").all()

    text = _text(created)
    assert "197 rows in, 197 rows out" in text
    assert "DEFUALT" in text and "did you mean CEK9QWN4TX?" in text  # the validation table


def test_bulk_create_outputs_read_well(created: nbformat.NotebookNode) -> None:
    _assert_reads_well(created)
    # The plan lists the invalid rows with what the sheet says, by spreadsheet row.
    (plan_table,) = [t for t in _tables(created) if "before_amount" in t]
    assert "cek9qwn4tx" in plan_table and "7.5" in plan_table
    assert re.search(r"^122\s", plan_table, re.M)
    # One progress line, at its end.
    (bar,) = [
        o.data["text/plain"]
        for o in _outputs_of(created, "bulk.run(")
        if o.output_type == "display_data" and "Sending rows" in o.data.get("text/plain", "")
    ]
    assert "100%" in bar and "197/197" in bar and "created=192" in bar
    # The chart of coins per event carries the sheet's 20 events.
    (chart,) = _charts(created)
    (data,) = chart["datasets"].values()
    assert len({d["event"] for d in data}) == 20


def test_bulk_create_run_again_sends_nothing_and_says_why(
    lab: Lab, created: nbformat.NotebookNode
) -> None:
    before = lab.sandbox_configs()
    again = lab.execute("01_bulk_create_from_csv.ipynb")
    assert len(lab.sandbox_configs()) == len(before)  # nothing created twice
    results = _read_results(lab.workdir / "data" / "configs_sample.results.csv")
    assert len(results) == SAMPLE_ROWS
    text = _text(again)
    assert "192 unchanged, 5 invalid" in text  # the plan
    assert "**This sheet was run before**" in text and "0 row(s) were sent now" in text
    assert "Sent 0 request(s)" in text and "197 rows in, 197 rows out" in text


def test_bulk_create_leaves_exactly_the_valid_rows_on_the_sandbox_and_in_the_registry(
    lab: Lab, created: nbformat.NotebookNode
) -> None:
    results = _read_results(lab.workdir / "data" / "configs_sample.results.csv")
    wanted = results[results["status"] == "created"]
    on_server = lab.sandbox_configs()
    assert len(on_server) == len(wanted) == SAMPLE_ROWS - len(SAMPLE_MISTAKES)
    merged = wanted.merge(on_server, on="coinConfigId", suffixes=("", "_server"), validate="1:1")
    assert (merged["companyId"] == merged["companyId_server"]).all()
    assert (merged["event"] == merged["event_server"]).all()
    assert (merged["amount"].astype(int) == merged["amount_server"].astype(int)).all()
    assert (merged["configuration"] == merged["configuration_server"]).all()

    with lab.registry() as registry:
        known = registry.to_frame()
    assert sorted(known["coinConfigId"]) == sorted(wanted["coinConfigId"])
    assert set(known["source"]) == {"notebook"}


# --------------------------------------------------------------------------- 02 explore


def test_explore_exports_what_the_registry_holds(lab: Lab, created: nbformat.NotebookNode) -> None:
    executed = lab.execute("02_explore_configs.ipynb", output_dir="my_exports")
    out = lab.workdir / "my_exports"
    configs = _read_results(out / "configurations.csv")
    assert len(configs) == SAMPLE_ROWS - len(SAMPLE_MISTAKES)
    assert set(configs["coinConfigId"]) == set(lab.sandbox_configs()["coinConfigId"])

    gaps = _read_results(out / "coverage_gaps.csv")
    gap_pairs = set(zip(gaps["companyId"], gaps["event"], strict=True))
    # Left out of the sheet on purpose, and the pair whose row had a configuration typo.
    assert {("CEKW5TB2NJ", "TRAVEL_BOOKING"), ("CEKZ62LMQA", "VENDOR_PAYMENT")} <= gap_pairs
    outliers = _read_results(out / "outliers.csv")
    assert outliers[["companyId", "event"]].values.tolist() == [["CEKB19XR3D", "MEAL_CARD_PAYMENT"]]
    per_event = _read_results(out / "per_event.csv")
    assert len(per_event) == 20

    assert (out / "configurations.xlsx").stat().st_mode & 0o777 == 0o600  # private, as the CSVs
    sheets = pd.read_excel(out / "configurations.xlsx", sheet_name=None)
    assert len(sheets["configurations"]) == len(configs)
    assert set(sheets) >= {"per_event", "company_event_matrix", "coverage_gaps", "outliers"}
    text = _text(executed)
    assert "Nothing drifted and nothing is gone" in text  # the refresh report
    assert "outliers.csv` — 1 row\n" in text
    _assert_reads_well(executed)
    assert len(_charts(executed)) == 2
    (matrix,) = [t for t in _tables(executed) if t.startswith("event ")]
    assert "CEKHYDMART" in matrix and "CEKW5TB2NJ" in matrix


# --------------------------------------------------------------------------- 03 allocate


def test_allocation_awards_each_row_once_even_when_run_again(
    lab: Lab, created: nbformat.NotebookNode
) -> None:
    executed = lab.execute("03_allocate_and_balances.ipynb")
    results = _read_results(lab.workdir / "data" / "allocations_sample.results.csv")
    assert len(results) == ALLOCATION_ROWS
    status = dict(zip(results["row"].astype(int), results["status"], strict=True))
    assert status.pop(ALLOCATION_INVALID_ROW) == "invalid"
    assert status.pop(ALLOCATION_NOT_CONFIGURED_ROW) == "failed"
    assert set(status.values()) == {"allocated"}

    # The notebook ran the sheet three times; the sandbox holds each allocation once.
    allocations = lab.sandbox_allocations()
    assert len(allocations) == ALLOCATION_ROWS - 2
    assert allocations["requestId"].is_unique
    sheet = pd.read_csv(lab.workdir / "data" / "allocations_sample.csv", dtype=str)
    allocated = sheet.iloc[[r - 2 for r, s in status.items()]]
    assert set(allocations["requestId"]) == set(allocated["requestId"])

    # Balances: what the configurations award, summed per user.
    configs = lab.sandbox_configs()[["companyId", "event", "amount"]]
    expected = allocated.merge(configs, on=["companyId", "event"]).groupby("userId")["amount"].sum()
    with CoinsClient.from_settings(lab.sandbox.settings()) as client:
        balances = {user: client.get_balance(user) for user in expected.index}
    assert balances == expected.astype(int).to_dict()
    assert sum(balances.values()) > 0

    text = _text(executed)
    assert "Balances unchanged: nothing was allocated twice." in text
    assert f"{sum(balances.values()):,} coins awarded to {len(balances)} user(s)" in text
    _assert_reads_well(executed)
    assert "EK 6CYE" in "".join(_tables(executed))  # the invalid user id, as the sheet says
    assert _charts(executed)


def test_dry_run_creates_nothing_and_writes_no_results(fresh_lab: Lab) -> None:
    executed = fresh_lab.execute("01_bulk_create_from_csv.ipynb", dry_run=True)
    assert len(fresh_lab.sandbox_configs()) == 0
    assert not (fresh_lab.workdir / "data" / "configs_sample.results.csv").exists()
    with fresh_lab.registry() as registry:
        assert registry.to_frame().empty
    text = _text(executed)
    assert "Dry run" in text and "192 create" in text


def test_upsert_on_a_second_run_updates_changed_amounts_only(fresh_lab: Lab) -> None:
    # A sheet that is not in the repo: Excel's cp1252, semicolons, other header spellings, a
    # bad row; run with one request at a time.
    sheet = fresh_lab.workdir / "data" / "march.csv"
    sheet.write_bytes(
        "Company ID;Event Name;coins;configuration;Remarks\r\n"
        "CEKPUNE001;MEAL_CARD_PAYMENT;6;DEFAULT;Café offer – approved\r\n"
        "CEKPUNE001;REFERRAL_EVENT;100;DEFAULT;\r\n"
        "CEKPUNE002;MEAL_CARD_PAYMENT;9;custom;\r\n"
        "cekpune 3;MEAL_CARD_PAYMENT;six;DEFAULT;two mistakes\r\n".encode("cp1252")
    )
    first_run = fresh_lab.execute(
        "01_bulk_create_from_csv.ipynb", csv_path="data/march.csv", concurrency=1
    )
    first = _read_results(sheet.with_name("march.results.csv"))
    assert first["status"].tolist() == ["created"] * 3 + ["invalid"]
    assert first["Remarks"][0] == "Café offer – approved"
    _assert_reads_well(first_run)
    (problems,) = [t for t in _tables(first_run) if "reason" in t]
    assert re.search(r"^5\s+error\s+companyId\s+cekpune 3", problems, re.M)
    assert re.search(r"^5\s+error\s+amount\s+six", problems, re.M)

    sheet.write_text(
        "Company ID;Event Name;coins;configuration\n"
        "CEKPUNE001;MEAL_CARD_PAYMENT;8;CUSTOM\n"
        "CEKPUNE001;REFERRAL_EVENT;100;DEFAULT\n"
        "CEKPUNE002;MEAL_CARD_PAYMENT;9;CUSTOM\n"
        "CEKPUNE002;INVOICE_PAYMENT;10;DEFAULT\n",
        encoding="utf-8",
    )
    fresh_lab.execute("01_bulk_create_from_csv.ipynb", csv_path="data/march.csv", mode="upsert")
    second = _read_results(sheet.with_name("march.results.csv"))
    assert second["status"].tolist() == ["updated", "unchanged", "unchanged", "created"]

    on_server = fresh_lab.sandbox_configs().set_index(["companyId", "event"])
    assert len(on_server) == 4
    assert on_server.loc[("CEKPUNE001", "MEAL_CARD_PAYMENT"), "amount"] == 8
    assert on_server.loc[("CEKPUNE001", "MEAL_CARD_PAYMENT"), "configuration"] == "CUSTOM"
    with fresh_lab.registry() as registry:
        updates = registry.audit_frame(action="update", outcome="ok")
    assert updates[["companyId", "event", "before_amount", "after_amount"]].values.tolist() == [
        ["CEKPUNE001", "MEAL_CARD_PAYMENT", 6, 8]
    ]


def test_a_header_only_sheet_says_there_is_nothing_to_do(fresh_lab: Lab) -> None:
    (fresh_lab.workdir / "data" / "empty.csv").write_text(
        "companyId,event,amount\n", encoding="utf-8"
    )
    executed = fresh_lab.execute("01_bulk_create_from_csv.ipynb", csv_path="data/empty.csv")
    text = _text(executed)
    assert "has a header but no rows below it" in text and "0 rows in, 0 rows out" in text
    _assert_reads_well(executed)
    assert len(fresh_lab.sandbox_configs()) == 0


def test_refused_credentials_stop_the_run_with_one_sentence_and_every_row_accounted_for(
    fresh_lab: Lab,
) -> None:
    fresh_lab.extra_env = {"ENKASH_PASSWORD": "not-the-password"}
    executed = fresh_lab.execute("01_bulk_create_from_csv.ipynb")
    results = _read_results(fresh_lab.workdir / "data" / "configs_sample.results.csv")
    assert len(results) == SAMPLE_ROWS
    assert set(results["status"]) <= {"failed", "skipped", "invalid"}
    text = _text(executed)
    assert "**Stopped early:**" in text and "refused the login" in text
    assert "not-the-password" not in json.dumps(executed)
    assert len(fresh_lab.sandbox_configs()) == 0


def test_a_sheet_that_is_not_there_stops_with_one_clear_sentence(fresh_lab: Lab) -> None:
    with pytest.raises(pm.PapermillExecutionError) as failed:
        fresh_lab.execute("01_bulk_create_from_csv.ipynb", csv_path="data/typo.csv")
    assert failed.value.ename == "SheetError"
    assert failed.value.traceback == ["SheetError: data/typo.csv: no such file"]
    assert len(fresh_lab.sandbox_configs()) == 0


def test_allocation_notebook_alone_on_a_fresh_embedded_sandbox(tmp_path: Path, kernel: str) -> None:
    """No ENKASH_BASE_URL, nothing run before: the sandbox (seeded with demo data) is started
    in the kernel, the sample configurations are created first, then the sheet is allocated."""
    lab = Lab(
        sandbox=None, workdir=_copy_notebooks(tmp_path), home=tmp_path / "home", kernel=kernel
    )
    lab.execute("03_allocate_and_balances.ipynb")
    results = _read_results(lab.workdir / "data" / "allocations_sample.results.csv")
    assert results["status"].value_counts().to_dict() == {
        "allocated": ALLOCATION_ROWS - 2,
        "invalid": 1,
        "failed": 1,
    }
    # The kernel and its sandbox are gone; the sandbox's file holds the demo data and ours.
    with start_sandbox(lab.home / "sandbox.sqlite3") as sandbox:
        lab.sandbox = sandbox
        configs, allocations = lab.sandbox_configs(), lab.sandbox_allocations()
    demo_configs, demo_allocations = demo_rows()
    assert len(configs) == len(demo_configs) + SAMPLE_ROWS - len(SAMPLE_MISTAKES)
    assert len(allocations) == len(demo_allocations) + ALLOCATION_ROWS - 2
    assert allocations["requestId"].is_unique


def test_notebook_settings_read_the_project_env_and_home_from_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "checkout"
    (project / "toolkit").mkdir(parents=True)
    (project / "notebooks").mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    (project / ".env").write_text("ENKASH_USERNAME=ops@example.com\n", encoding="utf-8")
    for key in ("COINS_HOME", "ENKASH_USERNAME", "ENKASH_BASE_URL"):
        monkeypatch.delenv(key, raising=False)

    settings = notebook_settings(project / "notebooks")
    assert settings.username == "ops@example.com"
    assert settings.home == (project / ".coins").resolve()

    monkeypatch.setenv("COINS_HOME", str(tmp_path / "elsewhere"))
    assert notebook_settings(project / "notebooks").home == tmp_path / "elsewhere"


def test_sample_sheets_are_what_make_samples_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_samples", NOTEBOOKS_DIR / "data" / "make_samples.py"
    )
    assert spec is not None and spec.loader is not None
    make_samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_samples)
    make_samples.HERE = tmp_path
    make_samples.main()
    for name in ("configs_sample.csv", "allocations_sample.csv"):
        committed = (NOTEBOOKS_DIR / "data" / name).read_bytes()
        assert (tmp_path / name).read_bytes() == committed, f"{name}: run make_samples.py"


# --------------------------------------------------------------------------- 04 cost

MONTH = 30.4375 / 30  # the last 30 days, scaled to an average month
COST_SHEETS = {
    "awarded_by_month",
    "awarded_by_company",
    "projection_by_company",
    "projection_by_event",
    "what_if_by_company",
    "what_if_by_event",
    "what_if_pairs",
}


def _what_if_delta(lab: Lab, volume: pd.Series) -> float:
    """The sample what-if sheet's monthly coins delta, from the sandbox's configurations."""
    amounts = lab.sandbox_configs().set_index(["companyId", "event"])["amount"]
    sheet = pd.read_csv(lab.workdir / "data" / "whatif_sample.csv", dtype=str)
    return sum(
        (int(row.amount) - int(amounts[(row.companyId, row.event)]))
        * float(volume.get((row.companyId, row.event), 0))
        for row in sheet.itertuples()
    )


def test_cost_notebook_agrees_with_the_sandboxs_own_allocation_records(
    lab: Lab, created: nbformat.NotebookNode
) -> None:
    from toolkit import cost

    assert "Monthly cost: unknown until volumes are known" in _text(created)  # 01, no history
    lab.execute("03_allocate_and_balances.ipynb", rerun=False)  # 01 then 03: the history
    executed = lab.execute("04_cost_and_what_if.ipynb")
    text = _text(executed)
    allocations = lab.sandbox_allocations()
    awarded = int(allocations["amount"].sum())
    assert f"{cost.group_indian(awarded)} coins awarded in {len(allocations)} allocations" in text
    assert "Rupee figures assume ₹1 per coin" in text
    assert f"**Projected monthly cost: {cost.format_inr(awarded * MONTH)}**" in text
    # The sheet's travel bookings have a history; its referrals have none (counted as 0).
    history = allocations.groupby(["companyId", "event"]).size() * MONTH
    delta = _what_if_delta(lab, history)
    assert delta > 0
    assert f"**This sheet raises monthly cost by {cost.format_inr(delta)}" in text
    assert "16 changed pairs have no known volume (counted as 0)" in text

    workbook = lab.workdir / "exports" / "cost_and_what_if.xlsx"
    assert workbook.stat().st_mode & 0o777 == 0o600
    book = pd.read_excel(workbook, sheet_name=None)
    assert set(book) == COST_SHEETS
    assert int(book["awarded_by_company"]["coins"].sum()) == awarded
    assert book["what_if_by_company"]["rupees_delta"].sum() == pytest.approx(delta)
    assert book["projection_by_event"]["monthly_rupees"].sum() == pytest.approx(awarded * MONTH)
    _assert_reads_well(executed)
    assert len(_charts(executed)) == 3


def test_cost_notebook_with_a_volumes_sheet_a_coin_value_and_budgets(
    lab: Lab, created: nbformat.NotebookNode
) -> None:
    from toolkit import cost

    lab.extra_env = {"COINS_RUPEES_PER_COIN": "1"}
    try:
        executed = lab.execute(
            "04_cost_and_what_if.ipynb", volumes_csv="data/volumes_sample.csv", output_dir="x"
        )
    finally:
        lab.extra_env = {}
    text = _text(executed)
    assert "Rupee figures are at ₹1 per coin (COINS_RUPEES_PER_COIN)" in text
    assert "assumes ₹1" not in text
    sheet = pd.read_csv(lab.workdir / "data" / "volumes_sample.csv", dtype=str)
    volume = sheet.assign(count=sheet["count"].astype(int)).set_index(["companyId", "event"])
    delta = _what_if_delta(lab, volume["count"])
    assert f"**This sheet raises monthly cost by {cost.format_inr(delta)}" in text
    assert "no known volume" not in text  # the sheet covers every pair it changes
    # data/budgets_sample.csv: the sheet takes two companies over; one was over already.
    assert "Taken over budget by the sheet: CEK7HQ2M4P, CEKHYDMART" in text
    assert "Over budget already: CEKB19XR3D" in text
    assert "CEK7HQ2M4P, CEKHYDMART over budget" in text
    _assert_reads_well(executed)
