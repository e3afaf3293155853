"""Bulk runs belong to the server: one run per sheet at a time (the journal's lock), a lock
whose holder died is taken over, and the runs list says who started what, and when."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from toolkit.bulk.journal import (
    RunLocked,
    acquire_run_lock,
    list_runs,
    make_lock_key,
    run_lock_holder,
)


def test_the_same_sheet_cannot_be_locked_twice_until_released(tmp_path):
    path = tmp_path / "registry.sqlite3"
    key = make_lock_key("sha-of-file", "configs", "sandbox:x")
    first = acquire_run_lock(path, lock_key=key, run_key="rk", actor="ana@example.com")
    with pytest.raises(RunLocked) as refused:
        acquire_run_lock(path, lock_key=key, run_key="rk", actor="bo@example.com")
    assert "ana@example.com" in str(refused.value)
    assert refused.value.holder.alive
    # Another sheet, or the same sheet on another server, is not blocked.
    other = acquire_run_lock(
        path,
        lock_key=make_lock_key("sha-of-file", "configs", "https://x"),
        run_key="rk2",
        actor="bo@example.com",
    )
    assert first.beat()
    first.release("finished")
    assert not first.beat()  # released: no longer ours
    again = acquire_run_lock(path, lock_key=key, run_key="rk", actor="bo@example.com")
    assert run_lock_holder(path, key).actor == "bo@example.com"
    again.release("finished")
    other.release("finished")
    assert run_lock_holder(path, key) is None


def test_a_lock_whose_process_died_is_taken_over_and_its_attempt_marked_died(tmp_path):
    path = tmp_path / "registry.sqlite3"
    key = make_lock_key("sha", "allocations", "sandbox:y")
    # A real other process takes the lock and exits without releasing it (as kill -9 would).
    script = textwrap.dedent(
        f"""
        from toolkit.bulk.journal import acquire_run_lock
        acquire_run_lock({str(path)!r}, lock_key={key!r}, run_key="rk", actor="gone@example.com")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    holder = run_lock_holder(path, key)
    assert holder is not None and holder.actor == "gone@example.com" and not holder.alive
    taken = acquire_run_lock(path, lock_key=key, run_key="rk", actor="next@example.com")
    import sqlite3

    with sqlite3.connect(path) as conn:
        outcomes = conn.execute(
            "SELECT actor, outcome FROM bulk_run_starts ORDER BY start_id"
        ).fetchall()
    assert outcomes == [("gone@example.com", "died"), ("next@example.com", None)]
    taken.release("finished")


def test_runs_list_is_empty_for_a_new_file(tmp_path):
    runs = list_runs(tmp_path / "registry.sqlite3")
    assert runs.empty and "started_by" in runs.columns
