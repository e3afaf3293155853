"""The dry run: what a bulk run would do with each row, decided against the registry.

No HTTP. Each valid configuration row becomes ``create`` (pair unknown), ``update`` (known
with other values; only in mode ``upsert``), ``unchanged`` (known with the same values) or
``conflict`` (known with other values in mode ``create``, which never touches existing
pairs); invalid rows become ``invalid`` with their reasons. Allocation rows become
``allocate`` or ``invalid``, with a requestId derived from the sheet's name and the row's
values when the sheet has none.
The decisions are one merge against the registry's known pairs, not a loop over rows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ALLOCATION_PLAN_COLUMNS",
    "CONFIG_ACTIONS",
    "CONFIG_PLAN_COLUMNS",
    "MODES",
    "Plan",
    "batch_name",
    "derive_request_id",
    "derive_request_ids",
    "plan",
    "plan_allocations",
]

MODES = ("create", "upsert")
_COPY_PREFIX = re.compile(r"^(copy of\s+)+")
_COPY_SUFFIX = re.compile(r"(\s*(\(\d+\)|-?\s*copy))+$")
CONFIG_ACTIONS = ("create", "update", "unchanged", "conflict", "invalid")
ALLOCATION_ACTIONS = ("allocate", "invalid")
CONFIG_PLAN_COLUMNS = [
    "row",
    "companyId",
    "event",
    "configuration",
    "amount",
    "action",
    "coinConfigId",
    "before_amount",
    "before_configuration",
    "message",
]
ALLOCATION_PLAN_COLUMNS = [
    "row",
    "companyId",
    "event",
    "userId",
    "requestId",
    "requestId_derived",
    "amount",
    "coinConfigId",
    "action",
    "message",
]


@dataclass
class Plan:
    """What a run would do, row by row, before anything is sent.

    ``frame`` has one row per input row (see ``CONFIG_PLAN_COLUMNS`` or
    ``ALLOCATION_PLAN_COLUMNS``); ``inputs`` holds the sheet's own columns (all text, with
    ``row``) in the same order, so results can repeat exactly what the analyst gave.
    ``file_sha256``, ``kind`` and ``mode`` (with the server) make the run key that resumes.
    """

    frame: pd.DataFrame
    kind: str
    mode: str
    inputs: pd.DataFrame
    file_sha256: str
    source_name: str | None = None
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    server_key: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Rows per action, every action of this kind listed (zeros included)."""
        actions = ALLOCATION_ACTIONS if self.kind == "allocations" else CONFIG_ACTIONS
        found = self.frame["action"].value_counts()
        return {a: int(found.get(a, 0)) for a in actions}

    @property
    def to_send(self) -> int:
        """How many rows the run would send to the API."""
        return int(self.frame["action"].isin(["create", "update", "allocate"]).sum())

    def __len__(self) -> int:
        return len(self.frame)

    def summary(self) -> str:
        """One line an analyst can read: rows and what happens to them."""
        parts = [f"{n} {a}" for a, n in self.counts.items() if n]
        return f"{len(self)} rows: " + (", ".join(parts) if parts else "nothing to do")


# -- shared helpers ------------------------------------------------------------------------


def _sheet_of(validation: Any) -> Any:
    return getattr(validation, "sheet", None)


def _inputs_of(validation: Any, sheet: Any) -> pd.DataFrame:
    """The analyst's own columns, as text, one row per validated row."""
    frame = getattr(sheet, "frame", None)
    if frame is None:
        frame = getattr(validation, "inputs", None)
    if frame is None:
        # No sheet at hand: the validated frame minus the columns validation added.
        frame = validation.frame.drop(columns=["valid"], errors="ignore")
    return frame.reset_index(drop=True)


def _file_sha(validation: Any, sheet: Any, inputs: pd.DataFrame) -> str:
    for owner in (sheet, validation):
        sha = getattr(owner, "sha256", None)
        if sha:
            return str(sha)
    # A frame built in a notebook: its content is its identity.
    hashed = pd.util.hash_pandas_object(inputs.astype("string"), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _source_name(validation: Any, sheet: Any) -> str | None:
    for owner in (sheet, validation):
        name = getattr(owner, "source_name", None)
        if name:
            return str(name)
    return None


def _show(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "(blank)"
    return repr(str(value))


def _problem_messages(problems: pd.DataFrame | None) -> tuple[pd.Series, pd.Series]:
    """Per row: the errors joined, and the warnings joined (both indexed by row)."""
    empty = pd.Series(dtype="str")
    if problems is None or len(problems) == 0:
        return empty, empty
    if "message" in problems.columns:
        # validation's own wording ("Row 7, amount '6.5': …"); the row is a column already.
        text = problems["message"].astype("str").str.replace(r"^Row [0-9]+, ", "", regex=True)
    else:
        text = problems["column"].astype("str") + " " + problems["value"].map(_show)
        text = text + ": " + problems["reason"].astype("str")
    severity = problems["severity"].astype("str").str.lower()
    rows = problems["row"].astype("int64")
    is_warning = severity.str.startswith("warn")
    errors = text[~is_warning].groupby(rows[~is_warning]).agg("; ".join)
    warnings = text[is_warning].groupby(rows[is_warning]).agg("; ".join)
    return errors, warnings


def _per_row(messages: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """Messages keyed by row number, aligned with ``frame`` ("" where a row has none)."""
    if messages.empty:
        return pd.Series("", index=frame.index, dtype="str")
    looked_up = messages.astype("str").reindex(frame["row"].to_numpy()).fillna("")
    return pd.Series(looked_up.array, index=frame.index, dtype="str")


def _text_where(mask: pd.Series, yes: str, no: str) -> pd.Series:
    """A text column: ``yes`` where ``mask``, else ``no`` (made in Arrow, not row by row)."""
    large = pa.large_string()
    chosen = pc.if_else(
        pa.array(mask.to_numpy(dtype=bool)), pa.scalar(yes, large), pa.scalar(no, large)
    )
    return pd.Series(pd.array(chosen, dtype="str"), index=mask.index)


def _noted(message: pd.Series, where: pd.Series, note: pd.Series) -> pd.Series:
    """``message`` with ``note`` added where ``where``: after "; " when there is a message."""
    if not where.any():
        return message
    before, added = message[where], note[where]
    out = message.copy()
    out[where] = before.where(before == "", before + "; ") + added
    return out


def _known_configs(registry: Any) -> pd.DataFrame:
    """The registry's known pairs for its server: coinConfigId, companyId, event,
    configuration, amount (one row per pair)."""
    columns = ["coinConfigId", "companyId", "event", "configuration", "amount"]
    known = pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    if registry is not None:
        for name in ("known_pairs", "known_frame", "to_frame"):
            method = getattr(registry, name, None)
            if callable(method):
                known = method()
                break
        else:  # pragma: no cover - a registry without any bulk view
            raise TypeError("the registry offers no frame of known configurations")
    known = known.rename(
        columns={
            "coin_config_id": "coinConfigId",
            "company_id": "companyId",
        }
    )
    missing = [c for c in columns if c not in known.columns]
    if missing:
        raise TypeError(f"the registry's frame lacks {missing}")
    known = known[columns].dropna(subset=["companyId", "event"])
    # At most one configuration per pair on a server; keep the last one the registry lists.
    known = known.drop_duplicates(subset=["companyId", "event"], keep="last")
    return known.assign(
        companyId=known["companyId"].astype("str"),
        event=known["event"].astype("str"),
        configuration=known["configuration"].astype("str"),
        amount=pd.to_numeric(known["amount"], errors="coerce").astype("Int64"),
    )


# -- configurations ------------------------------------------------------------------------


def plan(validation: Any, registry: Any = None, *, mode: str = "create") -> Plan:
    """Decide, without sending anything, what a run would do with each row.

    ``validation`` is what ``toolkit.bulk.validate`` returned; ``registry`` supplies the
    known (companyId, event) pairs of its server (None = nothing known). ``mode`` is
    ``create`` (existing pairs are never touched: a different value is a ``conflict``) or
    ``upsert`` (a different value becomes an ``update``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    sheet = _sheet_of(validation)
    checked = validation.frame.reset_index(drop=True)
    inputs = _inputs_of(validation, sheet)
    errors, warnings = _problem_messages(getattr(validation, "problems", None))

    rows = checked["row"].astype("int64")
    valid = checked["valid"].fillna(False).astype("bool").to_numpy()
    base = pd.DataFrame(
        {
            "row": rows,
            "companyId": checked["companyId"].astype("str"),
            "event": checked["event"].astype("str"),
            "configuration": checked["configuration"].astype("str"),
            "amount": pd.to_numeric(checked["amount"], errors="coerce").astype("Int64"),
        }
    )
    known = _known_configs(registry).rename(
        columns={
            "configuration": "before_configuration",
            "amount": "before_amount",
        }
    )
    merged = base.merge(known, on=["companyId", "event"], how="left", validate="many_to_one")
    is_known = merged["coinConfigId"].notna().to_numpy() & valid
    same = (
        merged["before_amount"].eq(merged["amount"]).fillna(False).to_numpy()
        & merged["before_configuration"].eq(merged["configuration"]).fillna(False).to_numpy()
    )
    differs_action = "update" if mode == "upsert" else "conflict"
    action = np.select(
        [~valid, ~is_known, same],
        ["invalid", "create", "unchanged"],
        default=differs_action,
    )
    merged["action"] = pd.array(action, dtype="str")

    # Messages: reasons for invalid rows, before → after for known pairs, warnings for all.
    message = pd.Series("", index=merged.index, dtype="str")
    by_row_errors = _per_row(errors, merged)
    by_row_warnings = _per_row(warnings, merged)
    before = (
        merged["before_configuration"].fillna("?")
        + " "
        + merged["before_amount"].astype("str").fillna("?")
    )
    after = merged["configuration"] + " " + merged["amount"].astype("str").fillna("?")
    change = "already configured as " + merged["coinConfigId"].fillna("") + ": "
    change = change + before + " → " + after
    act = merged["action"]
    message = message.mask(act == "invalid", by_row_errors)
    message = message.mask(
        act == "conflict",
        change + "; not changed in mode create (use mode upsert to update it)",
    )
    message = message.mask(act == "update", change.str.replace("already configured as ", "update "))
    message = message.mask(
        act == "unchanged",
        "already configured as " + merged["coinConfigId"].fillna("") + " with the same values",
    )
    has_warning = by_row_warnings != ""
    joiner = np.where(message != "", "; ", "")
    message = message.mask(has_warning, message + joiner + "warning: " + by_row_warnings)

    # Invalid rows show what they show; their known values would only confuse.
    invalid = act == "invalid"
    merged["coinConfigId"] = merged["coinConfigId"].where(~invalid)
    merged["before_amount"] = merged["before_amount"].where(~invalid)
    merged["before_configuration"] = merged["before_configuration"].where(~invalid)
    merged["message"] = message
    frame = merged[CONFIG_PLAN_COLUMNS]
    return Plan(
        frame=frame,
        kind="configs",
        mode=mode,
        inputs=inputs,
        file_sha256=_file_sha(validation, sheet, inputs),
        source_name=_source_name(validation, sheet),
        problems=getattr(validation, "problems", pd.DataFrame()),
        server_key=getattr(registry, "server_key", None),
    )


# -- allocations ---------------------------------------------------------------------------


def batch_name(source_name: str | None) -> str:
    """The name that scopes a sheet's derived requestIds: the file name without its extension,
    case and copy marks, so `Allocations.xlsx`, `allocations.csv`, `allocations (1).csv` and
    `Copy of allocations.csv` are one batch."""
    name = Path(str(source_name or "")).name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = stem.strip().casefold()
    stem = _COPY_PREFIX.sub("", stem)
    return _COPY_SUFFIX.sub("", stem).strip()


# The rule behind every derived requestId, version 2: SHA-256 of "v2", the batch name, companyId,
# event, userId and the occurrence, joined by \x1f; "BULK-" and its first 24 hex digits. Sheets
# run before keep their ids only while this stays exactly the same.
_ID_VERSION = "v2"
_ID_SEP = "\x1f"
_ID_CHUNK = 65_536


def _id_prefix(sheet_name: str | None) -> bytes:
    return (_ID_VERSION + _ID_SEP + batch_name(sheet_name) + _ID_SEP).encode("utf-8")


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ID_HEAD = np.frombuffer(b"BULK-", dtype=np.uint8)


def _ids_of(texts: pa.Array) -> pa.ChunkedArray:
    """ "BULK-" and the first 24 hex digits of each text's SHA-256 (texts: whole, prefix
    included): only the hash runs per row, in slices, the hex is written by numpy."""
    large = pa.large_string()
    width = len(_ID_HEAD) + 24
    sha256 = hashlib.sha256
    chunks = []
    for start in range(0, len(texts), _ID_CHUNK):
        part = texts.slice(start, _ID_CHUNK).to_pylist()
        digests = np.frombuffer(b"".join([sha256(t).digest() for t in part]), dtype=np.uint8)
        head = digests.reshape(-1, 32)[:, :12]
        out = np.empty((len(part), width), dtype=np.uint8)
        out[:, : len(_ID_HEAD)] = _ID_HEAD
        out[:, len(_ID_HEAD) :: 2] = _HEX[head >> 4]
        out[:, len(_ID_HEAD) + 1 :: 2] = _HEX[head & 15]
        offsets = np.arange(0, (len(part) + 1) * width, width, dtype=np.int64)
        chunks.append(
            pa.Array.from_buffers(
                large, len(part), [None, pa.py_buffer(offsets), pa.py_buffer(out.tobytes())]
            )
        )
    return pa.chunked_array(chunks, large)


def _id_texts(sheet_name: str | None, *columns: pa.Array) -> pa.Array:
    """Each row's whole text to hash: version, batch name, then ``columns``, joined."""
    large = pa.large_string()
    head = [pa.scalar(_ID_VERSION, large), pa.scalar(batch_name(sheet_name), large)]
    joined = pc.binary_join_element_wise(*head, *columns, pa.scalar(_ID_SEP, large))
    return pc.cast(joined, pa.large_binary())


def _arrow_text(values: pd.Series) -> pa.Array:
    return pc.cast(pa.array(pd.Series(values).astype("str").array), pa.large_string())


def _occurrences(key: pa.Array) -> np.ndarray:
    """For each row, the how-many-th time its ``key`` appears so far (1 for the first)."""
    encoded = pc.dictionary_encode(key)
    n = len(encoded)
    if n == 0 or len(encoded.dictionary) == n:  # every key once: the common case
        return np.ones(n, dtype=np.int64)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    first = np.ones(n, dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    at = np.arange(n)
    group_start = np.maximum.accumulate(np.where(first, at, 0))
    counts = np.empty(n, dtype=np.int64)
    counts[order] = at - group_start + 1
    return counts


def derive_request_id(
    sheet_name: str | None, company_id: str, event: str, user_id: str, occurrence: int = 1
) -> str:
    """The requestId of a sheet row without one, from what the row says and not where it sits:
    the sheet's batch name (`batch_name`), the row's companyId, event and userId, and which
    occurrence of that triple in the sheet it is (1 for the first).

    Running the sheet again — after fixing a few rows, sorting it, inserting or deleting rows,
    saving it as xlsx — gives every unchanged row its old id, so nothing is allocated twice;
    only new or edited rows allocate. A new batch of the same rows needs a new sheet name or a
    requestId column: coins cannot be taken back, so a doubt costs a repeat, never a payout.
    """
    text = _ID_SEP.join((company_id, event, user_id, str(int(occurrence))))
    digest = hashlib.sha256(_id_prefix(sheet_name) + text.encode("utf-8")).hexdigest()
    return "BULK-" + digest[:24]


def derive_request_ids(
    sheet_name: str | None,
    company_ids: pd.Series,
    events: pd.Series,
    user_ids: pd.Series,
    occurrences: pd.Series,
) -> pd.Series:
    """`derive_request_id` for many rows at once (same index as ``company_ids``): the batch
    name is worked out once and each row's text is joined in Arrow, so only the hash itself
    runs per row (a million rows in about a second)."""
    if len(company_ids) == 0:
        return pd.Series([], index=company_ids.index, dtype="str")
    large = pa.large_string()
    counts = pc.cast(pa.array(np.asarray(occurrences, dtype=np.int64)), large)
    texts = _id_texts(
        sheet_name, _arrow_text(company_ids), _arrow_text(events), _arrow_text(user_ids), counts
    )
    return pd.Series(pd.array(_ids_of(texts), dtype="str"), index=company_ids.index)


def _derived_ids(
    sheet_name: str | None, company_ids: pd.Series, events: pd.Series, user_ids: pd.Series
) -> pd.Series:
    """`derive_request_ids` with each row's occurrence counted here: the n-th time the
    sheet names the same companyId, event and userId."""
    if len(company_ids) == 0:
        return pd.Series([], index=company_ids.index, dtype="str")
    large = pa.large_string()
    fields = [_arrow_text(company_ids), _arrow_text(events), _arrow_text(user_ids)]
    key = pc.binary_join_element_wise(*fields, pa.scalar(_ID_SEP, large))
    del fields
    counts = pc.cast(pa.array(_occurrences(key)), large)
    texts = _id_texts(sheet_name, key, counts)  # the key is the three fields, joined
    return pd.Series(pd.array(_ids_of(texts), dtype="str"), index=company_ids.index)


def plan_allocations(validation: Any, registry: Any = None) -> Plan:
    """Decide what a bulk allocation would do: ``allocate`` each valid row, ``invalid`` the rest.

    Rows without a requestId get one derived from the sheet's name and the row's own values
    (``derive_request_id``), so an edited or re-sorted sheet never allocates a row twice.
    ``amount`` is the configured coins for the pair when the registry knows it (a cost
    estimate; the server decides); the message warns otherwise.
    """
    sheet = _sheet_of(validation)
    checked = validation.frame.reset_index(drop=True)
    inputs = _inputs_of(validation, sheet)
    file_sha = _file_sha(validation, sheet, inputs)
    errors, warnings = _problem_messages(getattr(validation, "problems", None))

    rows = checked["row"].astype("int64")
    valid = checked["valid"].fillna(False).astype("bool")
    given = (
        checked["requestId"].astype("str")
        if "requestId" in checked.columns
        else pd.Series(pd.NA, index=checked.index, dtype="str")
    )
    given = given.where(given.str.strip() != "")
    company = checked["companyId"].astype("str")
    event = checked["event"].astype("str")
    user = checked["userId"].astype("str")
    need = given.isna() & valid
    # The n-th time a sheet names the same companyId, event and userId without a requestId.
    name = _source_name(validation, sheet)
    if need.all():
        request_id = _derived_ids(name, company, event, user)
    else:
        derived = _derived_ids(name, company[need], event[need], user[need])
        request_id = given.copy()
        request_id[need] = derived

    base = pd.DataFrame(
        {
            "row": rows,
            "companyId": company,
            "event": event,
            "userId": user,
            "requestId": request_id,
            "requestId_derived": need.to_numpy(),
        }
    )
    known = _known_configs(registry)[["companyId", "event", "amount", "coinConfigId"]]
    merged = base.merge(known, on=["companyId", "event"], how="left", validate="many_to_one")
    valid.index = merged.index
    act = _text_where(valid, "allocate", "invalid")
    invalid = ~valid
    unknown_pair = valid & merged["coinConfigId"].isna()
    message = _text_where(
        unknown_pair,
        "warning: no configuration known locally for this company and event "
        "(the server refuses the allocation if none exists)",
        "",
    )
    if invalid.any():
        message = message.mask(invalid, _per_row(errors, merged))
    if len(warnings):
        by_row_warnings = _per_row(warnings, merged)
        message = _noted(message, by_row_warnings != "", "warning: " + by_row_warnings)
    merged["action"] = act
    merged["message"] = message
    merged["amount"] = merged["amount"].where(~invalid)
    merged["coinConfigId"] = merged["coinConfigId"].where(~invalid)
    return Plan(
        frame=merged[ALLOCATION_PLAN_COLUMNS],
        kind="allocations",
        mode="allocate",
        inputs=inputs,
        file_sha256=file_sha,
        source_name=_source_name(validation, sheet),
        problems=getattr(validation, "problems", pd.DataFrame()),
        server_key=getattr(registry, "server_key", None),
    )
