"""`python -m benchmarks [name ...]`: run every `bench_*.py` (or the named ones), print ratios.

Each module exposes ``run() -> list[Ratio]``. Exit status 1 when any ratio misses its target.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = 0
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        for ratio in module.run():
            print(ratio.line(), flush=True)
            failed += not ratio.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
