"""What a sheet of each kind looks like, and why one is refused.

A `Layout` names a kind's required and optional columns, the header spellings read as each
(`header_key`: `Company ID`, `company_id` and `companyId` are one), and what fills an absent
optional column. `find_header` picks the header row among the first rows of a file. The CSV
reader (`toolkit.bulk.delimited`), the workbook reader (`toolkit.bulk.workbook`) and the sheet
builder (`toolkit.bulk.reading`) share these; so do the volumes and budget sheets
(`toolkit.bulk.volumes`). `SheetError` is the one refusal of all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit.errors import SheetError  # the error tree's; re-exported here for the readers

__all__ = [
    "ALLOCATION_HEADER",
    "COMMON_ALIASES",
    "CONFIG_HEADER",
    "DELIMITER_NAMES",
    "HEADER_SEARCH_ROWS",
    "LAYOUTS",
    "NOUN",
    "RESERVED",
    "TRIM",
    "WHITESPACE",
    "Layout",
    "SheetError",
    "aliases",
    "expected",
    "find_header",
    "header_key",
    "how_read",
    "shown_names",
]

CONFIG_HEADER = "companyId,event,amount,configuration"
ALLOCATION_HEADER = "companyId,event,userId,requestId"

# Exactly the characters Python's str.isspace()/str.strip() treat as whitespace. pyarrow's
# utf8_trim_whitespace (pandas' str.strip() without arguments) trims the same set, so trimming
# cells here agrees with the scalar rules in models.py; a test keeps both facts honest.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
TRIM = WHITESPACE + "\ufeff"  # a stray BOM (files concatenated by hand) is never content

DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", "": "none (xlsx)"}
HEADER_SEARCH_ROWS = 20  # rows looked at for the header
RESERVED = ("row", "valid", "message")  # column names a sheet's extra columns never take
NOUN = {"configs": "configuration", "allocations": "allocation"}


@dataclass(frozen=True)
class Layout:
    kind: str
    label: str
    header: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    aliases: dict[str, str]  # normalised header text -> canonical column
    default_note: dict[str, tuple[str, str]]  # optional column -> (fill value, note)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


def aliases(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {header_key(alias): canonical for canonical, names in table.items() for alias in names}


def header_key(text: str) -> str:
    """`Company ID`, `company_id`, `companyId` and ` COMPANY-ID ` all compare equal."""
    return re.sub(r"[\s_\-.]+", "", text.strip(TRIM)).casefold()


COMMON_ALIASES = {
    "companyId": ("companyId", "company_id", "Company ID", "company"),
    "event": ("event", "Event Name", "event_name"),
}
LAYOUTS = {
    "configs": Layout(
        kind="configs",
        label="a configuration",
        header=CONFIG_HEADER,
        required=("companyId", "event", "amount"),
        optional=("configuration",),
        aliases=aliases(
            {
                **COMMON_ALIASES,
                "amount": ("amount", "coins", "coin"),
                "configuration": ("configuration", "config", "type", "configuration type"),
            }
        ),
        default_note={
            "configuration": (
                "DEFAULT",
                "No configuration column: every row is read as DEFAULT.",
            )
        },
    ),
    "allocations": Layout(
        kind="allocations",
        label="an allocation",
        header=ALLOCATION_HEADER,
        required=("companyId", "event", "userId"),
        optional=("requestId",),
        aliases=aliases(
            {
                **COMMON_ALIASES,
                "userId": ("userId", "user_id", "User ID", "user"),
                "requestId": ("requestId", "request_id", "Request ID"),
            }
        ),
        default_note={
            "requestId": (
                "",
                "No requestId column: request ids will be derived from the file and row, "
                "so running the file again never allocates twice.",
            )
        },
    ),
}


def expected(layout: Layout) -> str:
    """ "Expected a header like: …": the end of every message about a wrong header."""
    optional = ", ".join(layout.optional)
    return f"Expected a header like: {layout.header} ({optional} optional)"


def find_header(records: Sequence[Sequence[str]], layout: Layout) -> tuple[int | None, int]:
    """The first record naming every required column, else the best-scoring non-blank one."""
    best_index, best_score = None, -1
    for index, record in enumerate(records):
        if not any(cell.strip(TRIM) for cell in record):
            continue
        found = {layout.aliases.get(header_key(cell)) for cell in record} - {None}
        if set(layout.required) <= found:
            return index, len(found)
        if len(found) > best_score:
            best_index, best_score = index, len(found)
    return best_index, max(best_score, 0)


def shown_names(names: list[str], most: int = 8, total: int | None = None) -> str:
    """A few names (each cut to 40 characters), then how many more: a 100,000-column header
    is counted, not listed."""
    total = len(names) if total is None else total
    shown = ", ".join(repr(n if len(n) <= 40 else n[:39] + "…") for n in names[:most])
    return shown + (f" and {total - most:,} more" if total > most else "")


def how_read(encoding: str, delimiter: str) -> str:
    """How a sheet was read, in words: "Excel workbook" or "utf-8, delimiter comma"."""
    if encoding == "xlsx":
        return "Excel workbook"
    return f"{encoding}, delimiter {DELIMITER_NAMES.get(delimiter, repr(delimiter))}"
