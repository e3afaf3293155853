"""What the bulk engine needs from the parts it is handed: the registry, the client and the
workspace, each as a small `Protocol`.

The engine never probes for method names: `toolkit.registry.Registry`,
`toolkit.client.CoinsClient` and `toolkit.workspace.Workspace` satisfy these structurally (mypy
checks it: the first two below, the workspace where the surfaces pass it to `toolkit.bulk.run`),
and so does anything else that offers the same few members — a registry of another kind in a
notebook, a client wrapper in a test.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # types only: the engine imports neither the client nor the registry
    import pandas as pd

    from toolkit.client import ApiCall, Recorder
    from toolkit.models import Allocation, CoinConfig
    from toolkit.pacing import Pacer

__all__ = [
    "BatchRecorder",
    "BulkClient",
    "BulkWorkspace",
    "CostRegistry",
    "KnownPairs",
    "RunRegistry",
]


class KnownPairs(Protocol):
    """What validation and the planner read from a registry: no HTTP, no writes."""

    @property
    def server_key(self) -> str | None:
        """The server whose configurations these are (a plan remembers it)."""
        ...

    def known_pairs(self) -> pd.DataFrame:
        """One row per known (companyId, event): coinConfigId, companyId, event,
        configuration, amount."""
        ...


class CostRegistry(KnownPairs, Protocol):
    """What the cost basis (`toolkit.bulk.volumes.cost_basis`) reads from a registry: its
    known pairs and the allocations it recorded (the volumes when no sheet gives them)."""

    def allocations_frame(
        self,
        *,
        since: datetime | str | None = ...,
        until: datetime | str | None = ...,
        bulk_runs: bool = ...,
    ) -> pd.DataFrame: ...


class RunRegistry(KnownPairs, Protocol):
    """What a run needs from a registry besides its known pairs: the SQLite file the run's
    journal lives in (the journal shares it, so audit rows and journal rows commit together)."""

    @property
    def path(self) -> Path: ...


@runtime_checkable
class BatchRecorder(Protocol):
    """A recorder that also takes many calls in one transaction (the registry does). A run
    gathers its workers' calls and hands them over in batches; a recorder with only
    ``record_call`` gets them one by one."""

    def record_call(self, call: ApiCall) -> None: ...

    def record_calls(self, calls: Iterable[ApiCall]) -> None: ...


class BulkClient(Protocol):
    """What a run asks of the API client: the four calls a row can need, the server it talks
    to, its recorder (a run buffers it) and a twin sharing its connections with the run's
    pacer (one rate spans every worker)."""

    @property
    def server_key(self) -> str:
        """What the journal and the registry key this server's rows by."""
        ...

    recorder: Recorder | None

    def paced(self, pacer: Pacer, *, throttle_budget_s: float | None = None) -> BulkClient: ...

    def create_config(
        self,
        *,
        company_id: str,
        event: str,
        amount: int,
        configuration: str = ...,
        may_exist: bool = ...,
    ) -> CoinConfig: ...

    def get_config(self, coin_config_id: str) -> CoinConfig: ...

    def update_config(
        self,
        coin_config_id: str,
        *,
        amount: int | None = ...,
        configuration: str | None = ...,
        known: CoinConfig | None = ...,
    ) -> CoinConfig: ...

    def allocate_coins(
        self,
        *,
        company_id: str,
        event: str,
        user_id: str,
        request_id: str | None = ...,
        duplicate_is_done: bool = ...,
        sent_before: bool = ...,
    ) -> Allocation: ...


class BulkWorkspace(Protocol):
    """What a run takes from a workspace (`toolkit.workspace.connect()`): its client and its
    registry."""

    @property
    def client(self) -> BulkClient: ...

    @property
    def registry(self) -> RunRegistry: ...


if TYPE_CHECKING:
    from toolkit.client import CoinsClient
    from toolkit.registry import Registry

    def _the_toolkit_fits(client: CoinsClient, registry: Registry) -> None:
        """Never called: mypy checks here that the toolkit's own parts fit these seams (the
        workspace is checked where the surfaces hand it to `toolkit.bulk.run`: the workspace
        sits above the bulk engine, which never imports it)."""
        fits_client: BulkClient = client
        fits_registry: RunRegistry = registry
        costs: CostRegistry = registry
        batches: BatchRecorder = registry
        del fits_client, fits_registry, costs, batches
