"""Hostile sheets through the app's Bulk upload page (Streamlit AppTest, in a child process):
the page says why in one message, keeps nothing of the file, sends nothing, and adds no more
than 300 MB to the process beyond the upload itself (which Streamlit holds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_app_support import sandbox_configs
from test_hostile_support import CORPUS, ISSUE, PEAK_MB, corpus_dir, upload_in_app

from toolkit.bulk import Journal


@pytest.fixture(scope="module")
def corpus() -> Path:
    return corpus_dir()


def server_of(handle) -> dict[str, str]:
    return {"base_url": handle.url, **handle.credentials}


def assert_refused_on_the_page(name: str, shown: dict, words: tuple[str, ...]) -> None:
    assert not shown["exceptions"], (name, shown["exceptions"])
    errors = [e for e in shown["errors"] if name in e]
    assert len(errors) == 1, (name, shown["errors"])
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert not shown["kept"], f"{name}: the page kept the sheet in the session"
    assert not any("Plan" in s for s in shown["sections"]), shown["sections"]


def assert_nothing_written(home: Path, handle) -> None:
    assert sandbox_configs(handle).empty
    journal = home / "registry.sqlite3"
    if journal.exists():  # the app opened its registry on connecting: no run in its journal
        with Journal(journal) as runs:
            assert runs.runs().empty
    assert not list(home.rglob("*.results.csv"))


@pytest.mark.parametrize("hostile", ISSUE, ids=[h.name for h in ISSUE])
def test_the_issues_files_are_refused_on_the_page_in_bounded_memory(
    hostile, corpus: Path, fresh_sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = upload_in_app(
        [corpus / hostile.name], home=home, server=server_of(fresh_sandbox), env=hostile.env
    )
    assert not done.killed and done.code == 0, done.err[-3000:]
    shown = done.json()[hostile.name]
    assert_refused_on_the_page(hostile.name, shown, hostile.words)
    added = shown["after_mb"] - shown["before_mb"] - shown["size_mb"]
    assert added < PEAK_MB, f"{hostile.name}: the page added {added:.0f} MB"
    assert_nothing_written(home, fresh_sandbox)


def test_every_other_hostile_file_is_refused_on_the_page(
    corpus: Path, fresh_sandbox, tmp_path: Path
) -> None:
    others = [h for h in CORPUS if not h.issue and not h.env]
    home = tmp_path / "home"
    home.mkdir()
    done = upload_in_app(
        [corpus / h.name for h in others], home=home, server=server_of(fresh_sandbox), env={}
    )
    assert not done.killed and done.code == 0, done.err[-3000:]
    pages = done.json()
    for hostile in others:
        assert_refused_on_the_page(hostile.name, pages[hostile.name], hostile.words)
    assert (
        max(p["after_mb"] for p in pages.values())
        < min(p["before_mb"] for p in pages.values())
        + max(p["size_mb"] for p in pages.values())
        + PEAK_MB
    )
    assert_nothing_written(home, fresh_sandbox)
