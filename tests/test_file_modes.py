"""Private files: after a session, COINS_HOME is 0700 and what the toolkit wrote in it (and its
results) is 0600; a results path the user names keeps their umask, never wider than 0644."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_cli_support import coins_command, process_env, write_configs

from toolkit import db, files
from toolkit.bulk import Journal
from toolkit.exports import write_csv, write_excel

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def coins(*argv: str, home: Path, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess:
    return subprocess.run(
        coins_command(*argv),
        env=process_env({"COINS_HOME": str(home), "COINS_ACTOR": "modes-test"}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        umask=umask,
    )


ROWS = [("CEKMODES1", "MEAL_CARD_PAYMENT", 5), ("CEKMODES2", "REFERRAL_EVENT", 7)]


def test_a_cli_session_leaves_only_private_files_in_coins_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sheet = write_configs(tmp_path / "rollout.csv", ROWS)
    done = coins("bulk-create", str(sheet), home=home, cwd=tmp_path, umask=0o022)
    assert done.returncode == 0, done.stderr
    assert mode(home) == 0o700
    written = [p for p in home.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"registry.sqlite3", "sandbox.sqlite3"}
    assert {p.name: mode(p) for p in written} == {p.name: 0o600 for p in written}
    results = tmp_path / "rollout.results.csv"
    assert results.exists() and mode(results) == 0o600


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o000, 0o644), (0o077, 0o600)])
def test_a_results_path_the_user_names_keeps_their_umask_but_never_wider_than_0644(
    tmp_path: Path, umask: int, expected: int
) -> None:
    sheet = write_configs(tmp_path / "rollout.csv", ROWS)
    named = tmp_path / "out" / "named.csv"
    done = coins(
        "bulk-create",
        str(sheet),
        "--results",
        str(named),
        home=tmp_path / "h",
        cwd=tmp_path,
        umask=umask,
    )
    assert done.returncode == 0, done.stderr
    assert mode(named) == expected


def test_an_older_wider_home_and_registry_are_narrowed_when_opened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    old = home / "registry.sqlite3"
    db.connect(old).close()
    old.chmod(0o644)
    done = coins("configs", home=home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert mode(home) == 0o700
    assert mode(old) == 0o600


def test_databases_journals_and_exports_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        conn = db.connect(tmp_path / "new" / "deep" / "r.sqlite3")
        conn.execute("CREATE TABLE t (a)")
        conn.commit()
        conn.close()
        Journal(tmp_path / "journal.sqlite3").close()
        frame = pd.DataFrame({"a": ["=1", "x"]})
        csv_path = write_csv(frame, tmp_path / "exports" / "e.csv")
        xlsx_path = write_excel({"t": frame}, tmp_path / "exports" / "e.xlsx")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "deep") == 0o700
    for path in (tmp_path / "new" / "deep").iterdir():
        assert mode(path) == 0o600, path
    assert mode(tmp_path / "journal.sqlite3") == 0o600
    assert mode(csv_path) == 0o600 and mode(xlsx_path) == 0o600
    assert mode(tmp_path / "exports") == 0o700


def test_a_folder_the_user_points_at_is_never_narrowed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    db.connect(shared / "registry.sqlite3").close()
    files.private_dir(shared)
    assert mode(shared) == 0o755  # only COINS_HOME itself is narrowed
    assert mode(shared / "registry.sqlite3") == 0o600


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    with pytest.raises(RuntimeError), files.open_private(target) as handle:
        handle.write(b"half")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
