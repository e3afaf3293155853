"""Hostile sheets through the `coins` command (a real child process against the test
sandbox): one line on stderr naming the row, column or part, exit 2, under 300 MB, and
nothing written — no results file, no COINS_HOME, nothing sent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_app_support import sandbox_configs
from test_cli_support import sandbox_env
from test_hostile_support import CORPUS, ISSUE, PEAK_MB, child_env, corpus_dir, run_measured


@pytest.fixture(scope="module")
def corpus() -> Path:
    return corpus_dir()


def coins(*argv: str, env: dict[str, str], cwd: Path):
    return run_measured([sys.executable, "-m", "toolkit", *argv], env=child_env(env), cwd=cwd)


def assert_refused(done, hostile) -> None:
    assert not done.killed, f"{hostile.name}: past the watchdog ({done.peak_mb:.0f} MB)"
    assert done.code == 2, (done.code, done.err[-2000:])
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coins: error: "), done.err[-2000:]
    for word in hostile.words:
        assert word in lines[0], (word, lines[0])
    assert done.peak_mb < PEAK_MB, f"{hostile.name}: peak {done.peak_mb:.0f} MB"


@pytest.mark.parametrize("hostile", CORPUS, ids=[h.name for h in CORPUS])
def test_bulk_create_refuses_a_hostile_sheet_before_anything_is_sent_or_written(
    hostile, corpus: Path, fresh_sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    results = tmp_path / "out" / "results.csv"
    env = sandbox_env(fresh_sandbox, home, **hostile.env)
    done = coins(
        "bulk-create",
        str(corpus / hostile.name),
        "--results",
        str(results),
        env=env,
        cwd=tmp_path,
    )
    assert_refused(done, hostile)
    assert not results.exists() and not results.parent.exists()
    assert not home.exists()  # not even a registry: the sheet is refused first
    assert sandbox_configs(fresh_sandbox).empty


@pytest.mark.parametrize("hostile", ISSUE, ids=[h.name for h in ISSUE])
def test_validate_and_plan_refuse_the_issues_files_the_same_way(
    hostile, corpus: Path, tmp_path: Path
) -> None:
    env = {"COINS_HOME": str(tmp_path / "home"), **hostile.env}
    for command in ("validate", "plan"):
        done = coins(command, str(corpus / hostile.name), env=env, cwd=tmp_path)
        assert_refused(done, hostile)
    assert not (tmp_path / "home").exists()
