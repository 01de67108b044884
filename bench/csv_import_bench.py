"""Import a generated 250,000-action CSV into a fresh database, then import it again unchanged.

Usage:
    python bench/csv_import_bench.py [--actions 250000] [--database sqlite|postgresql|both]
                                     [--runs 1] [--keep DIR] [--postgres-url URL]

``bench/generate.py:write_csv`` writes the file once (not counted): ref, a ~200-character
action, one to three owners out of 300 roles, a deadline, a RAG status and, on two thirds of
the rows, a ~150-character progress note (95 MB for 250,000 actions). Per database and run, a
fresh database (SQLite file in the folder; the PostgreSQL URL's schema recreated), then two
measurements, each in a fresh child process (``--measure URL FILE``) running what
``chaser import`` runs, ``import_plan_file`` (read, parse, check, store, one transaction):

1. the import into the empty database (every action created);
2. the re-import of the same file, which must change nothing: 0 created, 0 updated, every
   action unchanged and not one status update added (checked here, the run fails otherwise).

Peak memory is the child's maximum resident set size as the kernel reports it to this process
(``os.wait4`` → ``ru_maxrss``, the per-child value of ``getrusage(RUSAGE_CHILDREN)``): the
whole process, Python and its imports included (about 60 MB of it before the import starts,
printed as "before"). Time is the wall time of ``import_plan_file`` inside the child, and the
child also reports the share taken by reading, parsing and storing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.generate import write_csv  # noqa: E402
from bench.pg import fresh_database, fresh_schema, pg_schema  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.models import Action, ActionOwner, StatusUpdate  # noqa: E402

DEFAULT_PG = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_csv"


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(url: str, path: str) -> None:
    """In the child: one ``import_plan_file``, its time and steps printed as JSON."""
    from bench.phases import Phases
    from storage.importers import load

    engine = make_engine(url)
    phases = Phases()
    for name, label in (("read_document", "read"), ("parse_document", "parse"), ("apply_plan", "store")):
        if hasattr(load, name):
            phases.wrap(load, name, label)
    calls = []
    before = _rss_kb()
    started = time.perf_counter()
    result = load.import_plan_file(engine, path, plan_name="bench csv", progress=lambda done, total: calls.append(done))
    took = time.perf_counter() - started
    engine.dispose()
    print(json.dumps({
        "seconds": took, "before_kb": before, "created": result.created, "updated": result.updated,
        "unchanged": result.unchanged, "actions": result.actions, "warnings": len(result.warnings),
        "progress_calls": len(calls), "progress_last": calls[-1] if calls else None,
        "steps": {name: seconds for name, (seconds, _) in phases.report().items()},
    }))


def run_child(url: str, path: Path) -> dict[str, Any]:
    """A fresh process for one import, and its own peak RSS as the kernel accounts it to us.

    ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the largest of all children reaped so far, so
    the re-import's figure would hide under the import's; ``wait4`` on this child's pid gives
    the same accounting for this child alone.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", url, str(path)]
    read_end, write_end = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.posix_spawn(
        sys.executable, command,
        os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_DUP2, err_write, 2),
                                  (os.POSIX_SPAWN_CLOSE, read_end), (os.POSIX_SPAWN_CLOSE, err_read)],
    )
    os.close(write_end)
    os.close(err_write)
    with os.fdopen(read_end) as out, os.fdopen(err_read) as err:
        output = out.read()
        errors = err.read()
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"measurement failed:\n{errors}")
    found = json.loads(output.strip().splitlines()[-1])
    found["peak_kb"] = usage.ru_maxrss  # kilobytes on Linux
    return found


def counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = tuple(conn.scalar(select(func.count()).select_from(t)) or 0 for t in (Action, ActionOwner, StatusUpdate))
    engine.dispose()
    return found  # type: ignore[return-value]


def show(label: str, m: dict[str, Any]) -> str:
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in m["steps"].items())
    return (
        f"  {label:10s} {m['seconds']:7.1f} s  peak {m['peak_kb'] / 1024:6.0f} MB (before {m['before_kb'] / 1024:.0f} MB)"
        f"  {m['created']} created, {m['updated']} updated, {m['unchanged']} unchanged, {m['warnings']} warnings"
        f"  [{steps}; progress calls {m['progress_calls']}, last {m['progress_last']}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=250_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the CSV and SQLite files here and keep them")
    parser.add_argument("--measure", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="chaser-csv-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    path = folder / f"plan-{args.actions}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_csv(path, args.actions)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    failed = False
    for database in databases:
        for run in range(1, args.runs + 1):
            db_file = folder / "bench-csv.db"
            for stale in folder.glob("bench-csv.db*"):
                stale.unlink()
            url = fresh_database(database, str(db_file), args.postgres_url)
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            print(f"{database}, run {run}:")
            first = run_child(url, path)
            print(show("import", first))
            after_first = counts(url)
            second = run_child(url, path)
            print(show("re-import", second))
            after_second = counts(url)
            print(f"  actions, owners, status updates: {after_first} after the import, {after_second} after the re-import")
            if (second["created"], second["updated"], second["unchanged"]) != (0, 0, second["actions"]) \
                    or after_first != after_second:
                print("  FAILED: the re-import of the unchanged file changed something")
                failed = True
        if database == "postgresql":
            fresh_schema(pg_schema(args.postgres_url), drop_only=True)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
