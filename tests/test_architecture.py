"""The tree drawn from its own imports: layers, arrows pointing down only, no circles.

Every import counts — at the top of a module, inside a function (a lazy import is still an
arrow) and under ``if TYPE_CHECKING:`` (a type-only import still couples the modules). The
layers are those of docs/ARCHITECTURE.md; a module may import its own layer (no circle) or any
layer below, never one above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "toolkit"

# Highest first. The analysis modules are pure pandas over the contract's types, so the state
# layer may shape its frames with them. A module belongs to the first pattern that matches its
# dotted name (a pattern ending in ".*" matches the package and everything in it).
LAYERS: list[tuple[str, list[str]]] = [
    ("surfaces", ["toolkit.ui.*", "toolkit.cli.*", "toolkit.notebook_helpers", "toolkit.__main__"]),
    ("facade", ["toolkit"]),
    ("composition root", ["toolkit.workspace"]),
    ("workflows", ["toolkit.sync", "toolkit.doctor", "toolkit.bulk", "toolkit.bulk.*"]),
    ("sandbox", ["toolkit.sandbox.*"]),
    ("state", ["toolkit.registry.*", "toolkit.db"]),
    (
        "analysis",
        ["toolkit.frames", "toolkit.charts", "toolkit.cost", "toolkit.money", "toolkit.display"],
    ),
    (
        "transport",
        [
            "toolkit.client",
            "toolkit.transport",
            "toolkit.session",
            "toolkit.auth",
            "toolkit.pacing",
        ],
    ),
    (
        "contract",
        [
            "toolkit.answers",
            "toolkit.errors",
            "toolkit.models",
            "toolkit.changes",
            "toolkit.profiles",
        ],
    ),
    ("settings", ["toolkit.settings", "toolkit.files", "toolkit.exports"]),
]
# Parts of a higher package that sit lower: the bulk journal and its run locks are state (the
# registry's SQLite file), read by the surfaces' run lists without the bulk engine.
LOWER_PARTS = {"toolkit.bulk.journal": "state", "toolkit.bulk.runlocks": "state"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _matches(name: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return name == base or name.startswith(base + ".")
    return name == pattern


def layer_of(name: str) -> int:
    """The rank of ``name``'s layer: 0 the highest."""
    names = [layer for layer, _ in LAYERS]
    if name in LOWER_PARTS:
        return names.index(LOWER_PARTS[name])
    for rank, (_, patterns) in enumerate(LAYERS):
        if any(_matches(name, p) for p in patterns):
            return rank
    raise LookupError(name)


def _target(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(name: str) -> Iterator[tuple[str, int]]:
    """Every toolkit module ``name`` imports (with the line), however it imports it."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from toolkit import db` imports the module toolkit.db, not what toolkit's
            # __init__ defines; names that are not modules come from the package itself.
            submodules = [
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES
            ]
            targets = submodules if len(submodules) == len(node.names) else [module, *submodules]
        for target in targets:
            if target == "toolkit" or target.startswith("toolkit."):
                resolved = _target(target)
                if resolved != name:
                    yield resolved, node.lineno


def test_every_module_has_a_layer() -> None:
    missing = []
    for name in MODULES:
        try:
            layer_of(name)
        except LookupError:
            missing.append(name)
    assert missing == [], "add these modules to a layer (and to docs/ARCHITECTURE.md)"


def test_imports_point_down_only() -> None:
    upward = [
        f"{name}:{line} imports {target} ({LAYERS[layer_of(target)][0]} is above "
        f"{LAYERS[layer_of(name)][0]})"
        for name in MODULES
        for target, line in imports_of(name)
        if layer_of(target) < layer_of(name)
    ]
    assert upward == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_not_even_lazy_or_type_only_ones() -> None:
    graph = {name: {target for target, _ in imports_of(name)} for name in MODULES}
    # A package importing its own modules (to re-export them) is not a circle back to it.
    for name in graph:
        graph[name] = {
            t for t in graph[name] if not (name == "toolkit" or t.startswith(name + "."))
        }
    assert _cycles(graph) == []


def test_the_client_never_reaches_up_to_the_state_or_the_workflows() -> None:
    for name in ("toolkit.client", "toolkit.transport", "toolkit.session", "toolkit.auth"):
        if name in MODULES:
            reached = {target for target, _ in imports_of(name)}
            assert not reached & {"toolkit.registry", "toolkit.doctor", "toolkit.sandbox"}, name


@pytest.mark.parametrize("name", ["toolkit.client", "toolkit.workspace"])
def test_only_the_composition_root_starts_the_embedded_sandbox(name: str) -> None:
    reached = {target for target, _ in imports_of(name)}
    if name == "toolkit.workspace":
        assert "toolkit.sandbox" in reached
    else:
        assert "toolkit.sandbox" not in reached


# Modules past LONG lines, each with the one concept it holds (anything else that long is two
# concepts waiting to be split).
LONG = 650
ONE_CONCEPT = {
    "toolkit.bulk.workbook": "the streaming .xlsx reader: one zip, its parts and their XML",
    "toolkit.client": "the API calls and what their answers make (results, recording)",
    "toolkit.answers": "any answer of any dialect read into one meaning (status, body, headers)",
}


def test_a_long_module_holds_one_named_concept() -> None:
    long = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in MODULES.items()
        if len(path.read_text(encoding="utf-8").splitlines()) > LONG
    }
    assert set(long) <= set(ONE_CONCEPT), {n: long[n] for n in set(long) - set(ONE_CONCEPT)}
