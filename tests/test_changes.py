"""The one rule for before/after diffs of a configuration (toolkit.changes)."""

from __future__ import annotations

from toolkit.changes import CONFIG_FIELDS, changed_fields, describe_changes, field_changes


def test_field_changes_lists_every_field_once_in_order_and_marks_what_moved() -> None:
    before = {"companyId": "C1", "event": "E", "amount": 5}
    after = {"companyId": "C1", "amount": 7, "configuration": "CUSTOM"}
    changes = field_changes(before, after)
    assert [(c.field, c.before, c.after, c.changed) for c in changes] == [
        ("companyId", "C1", "C1", False),
        ("event", "E", None, True),
        ("amount", 5, 7, True),
        ("configuration", None, "CUSTOM", True),
    ]
    assert changes[2].as_row() == {"field": "amount", "before": 5, "after": 7}
    moved = changed_fields(before, after, fields=CONFIG_FIELDS)
    assert [c.field for c in moved] == ["event", "configuration", "amount"]
    assert field_changes(None, None) == []


def test_describe_changes_is_the_audit_logs_text() -> None:
    full = {"companyId": "C1", "event": "E", "configuration": "DEFAULT", "amount": 5}
    assert describe_changes(None, full) == (
        "new: companyId C1, event E, configuration DEFAULT, amount 5"
    )
    assert describe_changes({}, {"amount": None}) == ""
    assert describe_changes({"amount": 5, "event": "E"}, {"amount": 7, "event": "E"}) == (
        "amount 5 → 7"
    )
    assert describe_changes({"amount": None}, {"amount": 7, "configuration": "CUSTOM"}) == (
        "configuration — → CUSTOM; amount — → 7"
    )
    assert describe_changes({"amount": 5, "event": "E"}, {}) == "event E → —; amount 5 → —"
    assert describe_changes(full, dict(full)) == ""
    assert describe_changes(None, None) == ""
