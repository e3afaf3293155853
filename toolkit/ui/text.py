"""Showing text on a page: what anyone typed, a file held or a server said is shown literally
(`esc` for Markdown, `clip` for table cells); tables without "None" and rows coloured by their
status; downloads Excel opens safely.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pandas as pd

__all__ = ["SHOWN_CHARS", "blank_missing", "clip", "esc", "excel_safe_csv", "highlight"]

# Every character Streamlit's Markdown gives a meaning: emphasis, links, code, HTML, math ($),
# tables (|), headings and lists at a line start: each is backslash-escaped. Two things
# escapes do not stop, checked in Chromium: icon and emoji short codes (`:material/home:`),
# matched in the raw text, so ":" becomes an entity; and links found in the decoded text
# (e-mail addresses, `https://…`, `www.…`), broken with an invisible word joiner.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&=^\"'])")
_WORD_JOINER = "\u2060"
_WWW = re.compile(r"(?i)(www)(\\\.)")
SHOWN_CHARS = 300  # a value longer than this is cut in messages (the tables hold it whole)


def clip(value: object, *, limit: int = SHOWN_CHARS) -> str:
    """``value`` as text for a table cell, cut (length said) when over ``limit`` characters."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def esc(value: object, *, limit: int | None = SHOWN_CHARS) -> str:
    """``value`` as literal text inside Markdown (alerts, captions, button labels): what a
    user typed, a file held or a server said is shown, never interpreted. Control characters
    are shown as visible marks and over-long values are cut with their length said."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"… ({len(text):,} characters)"
    text = "".join(
        ch
        if ch.isprintable()
        else " "
        if ch in "\t\r\n"
        else ("\u2400" if ch == "\x00" else "\ufffd")
        for ch in text
    )
    text = _MARKDOWN.sub(r"\\\1", text)
    text = text.replace(":", "&#58;" + _WORD_JOINER).replace("@", "@" + _WORD_JOINER)
    return _WWW.sub(r"\1" + _WORD_JOINER + r"\2", text)


def blank_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns with blanks where a value is missing: tables otherwise show "None"."""
    from toolkit.display import blank_missing as blanks

    return blanks(df, text_only=True)


def highlight(column: str, colors: Mapping[str, str]) -> Callable[[pd.Series], list[str]]:
    """A `Styler.apply(..., axis=1)` function: each row's background by its ``column`` value."""

    def style(row: pd.Series) -> list[str]:
        color = colors.get(str(row.get(column)), "")
        return [f"background-color: {color}" if color else ""] * len(row)

    return style


def excel_safe_csv(df: pd.DataFrame) -> bytes:
    """CSV bytes that open safely in Excel: the one writer's rules (`toolkit.exports`)."""
    from toolkit.exports import csv_bytes

    return csv_bytes(df)
