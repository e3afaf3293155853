"""Before/after diffs of a coin configuration: the one rule every surface uses.

A configuration is a flat mapping of payload fields (``companyId``, ``event``,
``configuration``, ``amount``, sometimes ``coinConfigId``). Two questions come up everywhere:

- *which fields differ, field by field?* — :func:`field_changes` (the CLI's before/after table,
  the app's diff of an update, the registry's "what moved" checks);
- *what does the audit log say about it?* — :func:`describe_changes` (one line of text, the
  audit entry's ``changes`` column and a revert's summary).

A field counts as changed when its before value and its after value differ (``!=``); a field
missing on one side reads as ``None`` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CONFIG_FIELDS", "FieldChange", "changed_fields", "describe_changes", "field_changes"]

CONFIG_FIELDS: tuple[str, ...] = ("companyId", "event", "configuration", "amount")
"""The fields of a configuration that can change (its id never does), in display order."""


@dataclass(frozen=True)
class FieldChange:
    """One field of a before/after pair: its name, both values, and whether they differ."""

    field: str
    before: Any
    after: Any

    @property
    def changed(self) -> bool:
        """True when the value moved (a missing side reads as ``None``)."""
        return bool(self.before != self.after)

    def as_row(self) -> dict[str, Any]:
        """``{"field", "before", "after"}``: a row for a table or a CSV."""
        return {"field": self.field, "before": self.before, "after": self.after}


def field_changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    fields: Iterable[str] | None = None,
) -> list[FieldChange]:
    """Every field of ``before`` and ``after``, each once, with both values.

    ``fields`` picks (and orders) the fields; by default those of ``before`` then the new ones of
    ``after``, in the mappings' order. Unchanged fields are included (``changed`` is False): a
    caller that only wants the differences uses :func:`changed_fields`.
    """
    old: Mapping[str, Any] = before or {}
    new: Mapping[str, Any] = after or {}
    names = list(fields) if fields is not None else list(dict.fromkeys([*old, *new]))
    return [FieldChange(name, old.get(name), new.get(name)) for name in names]


def changed_fields(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    fields: Iterable[str] | None = None,
) -> list[FieldChange]:
    """Only the fields whose value differs, in the order of :func:`field_changes`."""
    return [change for change in field_changes(before, after, fields=fields) if change.changed]


def describe_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """The audit log's one-line text for a change of a configuration.

    - nothing before (created, imported, first fetched): what it is, ``"new: companyId C1,
      event E, amount 5"`` (fields that are set, in :data:`CONFIG_FIELDS` order), or ``""``;
    - otherwise each :data:`CONFIG_FIELDS` field present in ``after`` whose value moved, as
      ``"amount 5 → 7"`` (an unset before value shows ``—``), joined by ``"; "``; when ``after``
      is empty (the configuration is gone) each field of ``before`` shows ``"amount 5 → —"``;
    - ``""`` when nothing moved.
    """
    if not before and after:
        known = [f"{name} {after[name]}" for name in CONFIG_FIELDS if after.get(name) is not None]
        return "new: " + ", ".join(known) if known else ""
    old: Mapping[str, Any] = before or {}
    new: Mapping[str, Any] = after or {}
    parts = []
    for change in field_changes(old, new, fields=CONFIG_FIELDS):
        if change.field in new and change.changed:
            parts.append(
                f"{change.field} {'—' if change.before is None else change.before} → {change.after}"
            )
        elif change.field in old and change.field not in new and not new:
            parts.append(f"{change.field} {change.before} → —")
    return "; ".join(parts)
