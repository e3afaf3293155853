"""The bulk engine: read a sheet, validate it, plan it against the registry, run it.

Every surface (app, notebooks, CLI) calls these same functions; none re-implements a step.
"""

from toolkit.bulk.reading import Sheet, SheetError, read_allocations, read_configs
from toolkit.bulk.validation import Validation, validate, validate_allocations

__all__ = [
    "Sheet",
    "SheetError",
    "Validation",
    "read_allocations",
    "read_configs",
    "validate",
    "validate_allocations",
]
