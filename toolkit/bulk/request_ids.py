"""Allocation request ids derived from a sheet: one rule (version 2), for one row and for a
whole column.

A sheet without a requestId column still never allocates a row twice: each row's id comes
from what the row says and not where it sits — the sheet's batch name (`batch_name`), the
row's companyId, event and userId, and which occurrence of that triple it is. The column form
joins the texts in Arrow and writes the hex with numpy, so only SHA-256 itself runs per row.
A row's occurrence depends only on the rows above it (`sheet_occurrences`), so the ids of a
sheet's first rows can be derived without hashing the rest.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "batch_name",
    "derive_request_id",
    "derive_request_ids",
    "sheet_occurrences",
    "sheet_request_ids",
]

_COPY_PREFIX = re.compile(r"^(copy of\s+)+")
_COPY_SUFFIX = re.compile(r"(\s*(\(\d+\)|-?\s*copy))+$")


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


def _sheet_key(company_ids: pd.Series, events: pd.Series, user_ids: pd.Series) -> pa.Array:
    """Each row's companyId, event and userId joined: what its occurrence counts."""
    large = pa.large_string()
    fields = [_arrow_text(company_ids), _arrow_text(events), _arrow_text(user_ids)]
    return pc.binary_join_element_wise(*fields, pa.scalar(_ID_SEP, large))


def sheet_occurrences(company_ids: pd.Series, events: pd.Series, user_ids: pd.Series) -> np.ndarray:
    """For each row, which occurrence of its companyId, event and userId it is (1 for the
    first), as `sheet_request_ids` counts it. A row's count depends only on the rows above
    it: the first n rows of a sheet give the first n counts of the whole sheet."""
    if len(company_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    return _occurrences(_sheet_key(company_ids, events, user_ids))


def sheet_request_ids(
    sheet_name: str | None, company_ids: pd.Series, events: pd.Series, user_ids: pd.Series
) -> pd.Series:
    """`derive_request_ids` with each row's occurrence counted here: the n-th time the
    sheet names the same companyId, event and userId (`sheet_occurrences`)."""
    if len(company_ids) == 0:
        return pd.Series([], index=company_ids.index, dtype="str")
    large = pa.large_string()
    key = _sheet_key(company_ids, events, user_ids)
    counts = pc.cast(pa.array(_occurrences(key)), large)
    texts = _id_texts(sheet_name, key, counts)  # the key is the three fields, joined
    return pd.Series(pd.array(_ids_of(texts), dtype="str"), index=company_ids.index)
