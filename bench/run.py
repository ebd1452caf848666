"""
Run the benchmarks (`make bench`): every `bench/*.py` module with a `main()`,
in name order, each with its default options.

    .venv/bin/python bench/run.py                 # all of them
    .venv/bin/python bench/run.py events          # only bench/events.py
    .venv/bin/python bench/run.py checkout events

Each benchmark prints its own figures; bench/README.md records one run of each
with the command that produced it.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> dict[str, Path]:
    return {
        path.stem: path
        for path in sorted(HERE.glob("*.py"))
        if path.stem not in {"run", "__init__"} and not path.stem.startswith("_")
    }


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    found = benchmarks()
    unknown = sorted(set(argv) - set(found))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {sorted(found)}", file=sys.stderr)
        return 2
    failed = []
    for name in argv or list(found):
        module = load(name, found[name])
        if not callable(getattr(module, "main", None)):
            continue
        print(f"\n=== bench/{name}.py", flush=True)
        started = time.monotonic()
        try:
            module.main([])
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"bench/{name}.py failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
        print(f"=== bench/{name}.py took {time.monotonic() - started:.0f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
