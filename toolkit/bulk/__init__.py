"""The bulk engine: read a sheet, validate it, plan it against the registry, run it.

Every surface (app, notebooks, CLI) calls these same functions; none re-implements a step.
"""

from toolkit.bulk.journal import Journal
from toolkit.bulk.locking import sheet_lock
from toolkit.bulk.planning import Plan, derive_request_id, plan, plan_allocations
from toolkit.bulk.progress import ProgressBar, progress_bar
from toolkit.bulk.reading import Sheet, SheetError, read_allocations, read_configs
from toolkit.bulk.results import RunResult, write_results
from toolkit.bulk.runlocks import RunLocked
from toolkit.bulk.running import RateLimiter, run
from toolkit.bulk.validation import Validation, validate, validate_allocations

__all__ = [
    "Journal",
    "Plan",
    "ProgressBar",
    "RateLimiter",
    "RunLocked",
    "RunResult",
    "Sheet",
    "SheetError",
    "Validation",
    "derive_request_id",
    "plan",
    "plan_allocations",
    "progress_bar",
    "read_allocations",
    "read_configs",
    "run",
    "sheet_lock",
    "validate",
    "validate_allocations",
    "write_results",
]
