"""Checking a form as typed: each field is looked at as text first (length, control
characters), then by the models' rules; every problem is shown under its field, and nothing is
sent while one remains."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import streamlit as st

from toolkit.models import FieldProblem
from toolkit.ui.text import esc

__all__ = [
    "DEFAULT_FIELD_LIMIT",
    "FIELD_LIMITS",
    "check_form",
    "field_problem",
    "problems_by_field",
    "show_field_problems",
]

log = logging.getLogger(__name__)

# The longest text a form field hands to the models' checks. Longer is refused here, before any
# conversion: int() of a 10,000-digit amount raises (Python's int-size limit), and a regex over
# megabytes of text is work for nothing. Each limit is well above what a valid value can be.
FIELD_LIMITS = {"amount": 24, "configuration": 16, "companyId": 64, "event": 128}
DEFAULT_FIELD_LIMIT = 256


class _Slot(Protocol):
    """Where a field's message goes: a placeholder under the field (``st.empty()``) or ``st``."""

    def error(self, body: str, *, icon: str | None = ...) -> object: ...


def field_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot even be looked at as field ``name``; None when it can."""
    if not isinstance(value, str):
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t" for ch in value):
        return "contains a control character (such as NUL); type plain text"
    text = value.strip()
    limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
    if len(text) <= limit:
        return None
    if name == "amount":
        from toolkit.models import REASONS

        return REASONS["too_big"] if text.lstrip("+").isdigit() else REASONS["digits"]
    return f"is {len(text):,} characters long (at most {limit:,})"


def check_form(
    validate: Callable[..., tuple[dict[str, Any], Iterable[FieldProblem]]],
    fields: Mapping[str, tuple[str, object]],
    **options: object,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a form: each of ``fields`` (API name → (argument name, value as typed)) is first
    looked at as text (length, control characters), then by ``validate`` (the models' rules).
    Returns (payload, problems by API name); never raises on what a user typed."""
    early = {api: r for api, (_, v) in fields.items() if (r := field_problem(api, v)) is not None}
    arguments = {arg: (None if api in early else v) for api, (arg, v) in fields.items()}
    try:
        payload, problems = validate(**arguments, **options)
    except Exception:  # a rule that still breaks on some value: say so, never a traceback
        log.exception("checking a form failed")
        return {}, early or {api: "could not be checked" for api in fields}
    found = problems_by_field(p for p in problems if p.field not in early)
    return payload, {**early, **found}


def problems_by_field(problems: Iterable[FieldProblem]) -> dict[str, str]:
    """`FieldProblem`s keyed by field, reasons joined, for messages next to form fields."""
    out: dict[str, str] = {}
    for problem in problems:
        out[problem.field] = (
            f"{out[problem.field]}; {problem.reason}" if problem.field in out else problem.reason
        )
    return out


def show_field_problems(
    problems: Mapping[str, str], slots: Mapping[str, _Slot], labels: Mapping[str, str]
) -> None:
    """A form's refused fields: each reason in the slot under its field, named as the form
    names it, then one line saying nothing was sent."""
    for name, reason in problems.items():
        slot: _Slot = slots.get(name, st)
        slot.error(esc(f"{labels.get(name, name)} {reason}"), icon=":material/error:")
    st.error("Nothing was sent: fix the fields marked above.")
