"""Hostile sheets through the library: each refused whole with a message naming the row,
column or part and the variable that sets the limit, in a child process that stays under
300 MB and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hostile_support import CORPUS, PEAK_MB, corpus_dir, files_under, read_in_child

from toolkit.bulk import SheetError, read_configs
from toolkit.settings import Limits


@pytest.fixture(scope="module")
def corpus() -> Path:
    return corpus_dir()


@pytest.mark.parametrize("hostile", CORPUS, ids=[h.name for h in CORPUS])
def test_a_hostile_sheet_is_refused_in_bounded_memory_and_nothing_is_written(
    hostile, corpus: Path, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = read_in_child(corpus / hostile.name, env=hostile.env, cwd=cwd)
    assert not done.killed, f"{hostile.name}: past the watchdog ({done.peak_mb:.0f} MB)"
    assert done.code == 0, done.err[-2000:]
    for reader, answer in done.json().items():
        message = answer.get("refused")
        assert message, f"{hostile.name} was read by {reader}: {answer}"
        assert message.startswith(hostile.name), message
        for word in hostile.words:
            assert word in message, (word, message)
        assert "Traceback" not in message and len(message) < 1_000, message
    assert done.peak_mb < PEAK_MB, f"{hostile.name}: child peak {done.peak_mb:.0f} MB"
    assert files_under(cwd) == []


def test_a_declared_huge_sheet_with_one_far_row_reads_cheaply(corpus: Path, tmp_path: Path):
    """A1:XFD200000 declared, one value at A200000: read as one row, no padding."""
    done = read_in_child(corpus / "padding_dimension_a.xlsx", env={}, cwd=tmp_path)
    assert done.code == 0, done.err[-2000:]
    answer = done.json()["read_configs"]
    assert answer["rows"] == 1, answer
    assert done.peak_mb < PEAK_MB


def test_every_limit_is_set_by_its_variable(corpus: Path, monkeypatch) -> None:
    """The analyst with a bigger sheet raises the limit: the same file then reads (here a
    40,000-character cell with COINS_MAX_CELL_CHARS=50000)."""
    with pytest.raises(SheetError, match="COINS_MAX_CELL_CHARS"):
        read_configs(corpus / "long_cell.csv")
    monkeypatch.setenv("COINS_MAX_CELL_CHARS", "50000")
    sheet = read_configs(corpus / "long_cell.csv")
    assert len(sheet.frame["event"][1]) == 40_000
    with pytest.raises(SheetError, match="COINS_MAX_CELL_CHARS"):  # limits given win
        read_configs(corpus / "long_cell.csv", limits=Limits())
