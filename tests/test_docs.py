"""Every `coins` command documents itself: `--help` exits 0 with a description and an example."""

from __future__ import annotations

import pytest

from toolkit.cli import build_parser, command_names, main

COMMANDS = command_names()


def test_every_documented_command_exists() -> None:
    expected = {
        "validate",
        "plan",
        "bulk-create",
        "bulk-allocate",
        "create",
        "get",
        "update",
        "allocate",
        "balance",
        "configs",
        "refresh",
        "import-ids",
        "history",
        "revert",
        "sandbox",
        "doctor",
    }
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_exits_0_with_a_description_and_an_example(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: coins")
    assert "Example" in out
    assert "coins " in out.split("Example", 1)[1], "the example shows a command line"


def test_every_command_has_a_one_line_summary_in_the_overview() -> None:
    text = build_parser().format_help()
    for command in COMMANDS:
        line = next(line for line in text.splitlines() if line.strip().startswith(command + " "))
        assert len(line.split(None, 1)) == 2, f"{command} has no summary"
