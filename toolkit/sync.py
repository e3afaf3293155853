"""Keeping the registry in step with the server: refresh, import ids, revert.

Workflows beside `toolkit.bulk`: each takes the client that talks to the server and the
registry that remembers, and neither of those calls the other to do it. Surfaces reach them
through the workspace (``ws.refresh()``, ``ws.import_ids(ids)``, ``ws.revert(audit_id)``).

- `refresh` re-fetches every known id of the registry's server (``concurrency`` at a time):
  changes made outside the toolkit become ``drift`` audit entries, ids the server no longer
  knows ``gone``.
- `import_ids` fetches ids learned elsewhere (the API cannot list configurations) and
  remembers them.
- `revert` puts back the values an audited change replaced, through the API, as a new audit
  entry — refused (`RevertRefused`) whenever it could overwrite a later change.

Every fetch is recorded in the registry whether or not it is the client's recorder. Reports are
frames of `REPORT_COLUMNS` with a one-line ``attrs["summary"]`` (`report_summary`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import pandas as pd

from toolkit.changes import CONFIG_FIELDS, describe_changes
from toolkit.client import CoinsClient
from toolkit.errors import EnKashError, NotFoundError, RevertRefused, ValidationError
from toolkit.models import CoinConfig
from toolkit.registry import REVERTIBLE_ACTIONS, Registry, RevertResult, report_frame

__all__ = ["fetch_all", "import_ids", "refresh", "revert"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], Any]
Fetched = tuple[CoinConfig | None, EnKashError | None]


def _values(config: CoinConfig | None) -> dict[str, Any] | None:
    return None if config is None else config.to_payload(include_id=False)


def _check_pair(client: CoinsClient, registry: Registry) -> None:
    if client.server_key != registry.server_key:
        raise ValueError(
            f"the client talks to {client.server_key!r} but the registry keeps "
            f"{registry.server_key!r}: use one workspace's client and registry"
        )


def fetch_all(
    client: CoinsClient,
    registry: Registry,
    ids: list[str],
    *,
    concurrency: int,
    progress: Progress | None = None,
    source: str | None = None,
) -> list[Fetched]:
    """GET every id with at most ``concurrency`` in flight; (config, error) in input order.

    Each fetch is recorded in ``registry`` (by the client when the registry is its recorder,
    else here); ``progress(done, total)`` is called as fetches finish, first with ``(0, total)``.
    """
    _check_pair(client, registry)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    records_itself = getattr(client, "recorder", None) is registry
    recorded_source = source or client.source
    total = len(ids)
    results: list[Fetched] = [(None, None)] * total

    def fetch(config_id: str) -> Fetched:
        try:
            config = client.get_config(config_id, source=source)
            outcome: Fetched = (config, None)
        except EnKashError as exc:
            outcome = (None, exc)
        if not records_itself:
            registry.record_fetch(config_id, *outcome, source=recorded_source)
        return outcome

    if progress is not None:
        progress(0, total)
    if not total:
        return results
    with ThreadPoolExecutor(max_workers=min(concurrency, total)) as pool:
        futures = {pool.submit(fetch, config_id): i for i, config_id in enumerate(ids)}
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(done, total)
    return results


def import_ids(
    client: CoinsClient,
    registry: Registry,
    ids: Iterable[str],
    *,
    progress: Progress | None = None,
    concurrency: int = 8,
    source: str | None = None,
) -> pd.DataFrame:
    """Fetch ids learned elsewhere and remember them. Never stops on a bad id.

    Returns one row per distinct id (REPORT_COLUMNS) with status ``imported`` (new here),
    ``known`` (already known, unchanged), ``drift`` (known, changed outside), ``unknown``
    (the server has no such id), ``invalid`` (not an id) or ``error`` (see message).
    """
    wanted = [str(i).strip() for i in ids if i is not None and str(i).strip()]
    wanted = list(dict.fromkeys(wanted))
    before = {cid: registry.get(cid) for cid in wanted}
    fetched = fetch_all(
        client, registry, wanted, concurrency=concurrency, progress=progress, source=source
    )
    rows = []
    for config_id, (config, error) in zip(wanted, fetched, strict=True):
        known = before[config_id]
        row: dict[str, Any] = {"coinConfigId": config_id}
        if config is not None:
            merged = config.merge(known)
            row.update(merged.to_payload(include_id=False))
            if known is None:
                row["status"] = "imported"
            elif merged.same_values(known):
                row["status"] = "known"
            else:
                row["status"] = "drift"
                row["changes"] = describe_changes(_values(known), _values(merged))
        else:
            row["status"] = (
                "unknown"
                if isinstance(error, NotFoundError)
                else "invalid"
                if isinstance(error, ValidationError) and error.http_status is None
                else "error"
            )
            row["message"] = str(error)
        rows.append(row)
    return report_frame(rows)


def refresh(
    client: CoinsClient,
    registry: Registry,
    *,
    concurrency: int = 16,
    progress: Progress | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Re-fetch every known id of the registry's server (``concurrency`` at a time).

    Changes made outside the toolkit are recorded as ``drift`` audit entries, ids the
    server no longer knows become ``gone``. Returns one row per id (REPORT_COLUMNS) with
    status unchanged / drift / gone / error; ``progress(done, total)`` is called as fetches
    finish.
    """
    known = registry.known_configs()
    ids = [str(config.coin_config_id) for config in known]
    fetched = fetch_all(
        client, registry, ids, concurrency=concurrency, progress=progress, source=source
    )
    rows = []
    for config_id, before, (config, error) in zip(ids, known, fetched, strict=True):
        row: dict[str, Any] = {"coinConfigId": config_id}
        if config is not None:
            merged = config.merge(before)
            row.update(merged.to_payload(include_id=False))
            if merged.same_values(before):
                row["status"] = "unchanged"
            else:
                row["status"] = "drift"
                row["changes"] = describe_changes(_values(before), _values(merged))
        else:
            row.update(before.to_payload(include_id=False))
            row["status"] = "gone" if isinstance(error, NotFoundError) else "error"
            row["message"] = str(error)
        rows.append(row)
    return report_frame(rows)


def revert(
    client: CoinsClient, registry: Registry, audit_id: int, *, source: str | None = None
) -> RevertResult:
    """Put back the values an audited change replaced, through the API, as a new audit
    entry (action ``revert``, ``reverts_audit_id`` = ``audit_id``).

    Refused (`RevertRefused`) when the entry is not a successful update, revert or drift
    of this server, or when the configuration changed since that entry (a fresh GET is
    compared with the entry's after-values): never a silent overwrite.
    """
    _check_pair(client, registry)
    entry = registry.audit_entry(int(audit_id))
    if entry is None:
        raise RevertRefused(f"There is no audit entry {audit_id}.", audit_id=audit_id)
    config_id = entry["coin_config_id"]
    if entry["server_key"] != registry.server_key:
        raise RevertRefused(
            f"Audit entry {audit_id} belongs to another server ({entry['server_key']}).",
            audit_id=audit_id,
        )
    if entry["action"] not in REVERTIBLE_ACTIONS or entry["outcome"] != "ok":
        raise RevertRefused(
            f"Audit entry {audit_id} is a {entry['outcome']} {entry['action']}; only "
            "successful updates, reverts and drift can be reverted.",
            audit_id=audit_id,
        )
    before = json.loads(entry["before_json"] or "null")
    after = json.loads(entry["after_json"] or "null")
    if not before or not after or not config_id:
        raise RevertRefused(
            f"Audit entry {audit_id} has no before-values to put back.", audit_id=audit_id
        )
    changed_fields = [n for n in CONFIG_FIELDS if n in before and before.get(n) != after.get(n)]
    if not changed_fields:
        raise RevertRefused(
            f"Audit entry {audit_id} changed nothing; there is nothing to revert.",
            audit_id=audit_id,
        )
    try:
        fetched = client.get_config(config_id, source=source)
    except NotFoundError as exc:
        raise RevertRefused(
            f"{config_id} no longer exists on the server; nothing to revert.",
            audit_id=audit_id,
        ) from exc
    current = fetched.merge(registry.get(config_id))
    now = current.to_payload(include_id=False)
    moved = {n: now.get(n) for n in CONFIG_FIELDS if n in after and now.get(n) != after[n]}
    if moved:
        what = "; ".join(
            f"{n} is now {v} (was {after[n]} after that change)" for n, v in moved.items()
        )
        raise RevertRefused(
            f"{config_id} changed since audit entry {audit_id}: {what}. Not reverting, "
            "so as not to overwrite that change; look at its history first.",
            audit_id=audit_id,
        )
    names = {"companyId": "company_id", "event": "event", "configuration": "configuration"}
    changes = {names.get(n, n): before[n] for n in changed_fields}
    with registry.reverting(config_id, int(audit_id)) as mark:
        result = client.update_config(config_id, known=current, source=source, **changes)
    new_audit = mark.audit_id
    if new_audit is None:  # the client records elsewhere: record the revert here
        new_audit = registry.record_revert(
            int(audit_id), current, result, source=source or client.source
        )
    return RevertResult(
        audit_id=int(new_audit),
        reverted_audit_id=int(audit_id),
        coin_config_id=config_id,
        before=current,
        after=result.merge(current),
    )
