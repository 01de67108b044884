"""Import a generated 10,000-action .xlsx and .docx into a fresh SQLite database.

Usage: python bench/import_bench.py [--actions N] [--database-url URL] [--keep DIR]
Prints, per file: generate time (not counted), import time (read + parse + store, in one
transaction, as `chaser import` does) and a re-import of the same file (0 created).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import write_docx, write_xlsx  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.importers.load import import_plan_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="chaser-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu n/a'}")
    for kind, writer in (("xlsx", write_xlsx), ("docx", write_docx)):
        path = folder / f"plan-{args.actions}.{kind}"
        started = time.perf_counter()
        writer(path, args.actions)
        generated = time.perf_counter() - started
        db_file = folder / f"bench-{kind}.db"
        for stale in folder.glob(f"bench-{kind}.db*"):
            stale.unlink()
        url = args.database_url or f"sqlite:///{db_file}"
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        first = import_plan_file(engine, path, plan_name=f"bench {kind}")
        took = time.perf_counter() - started
        started = time.perf_counter()
        second = import_plan_file(engine, path, plan_name=f"bench {kind}")
        again = time.perf_counter() - started
        engine.dispose()
        size = path.stat().st_size / 1e6
        print(
            f"{kind}: {first.actions} actions ({size:.1f} MB, generated in {generated:.1f} s): "
            f"import {took:.2f} s ({first.created} created, {len(first.warnings)} warnings); "
            f"re-import {again:.2f} s ({second.created} created, {second.unchanged} unchanged)"
        )


if __name__ == "__main__":
    main()
