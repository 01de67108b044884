"""Write a generated 10,000-action .xlsx and .docx plan back with chaser export (target: under 5 s each).

Usage: python bench/export_bench.py [--actions N] [--answered FRACTION] [--keep DIR]

Per format: generate the plan (bench/generate.py, not counted), import it into a fresh SQLite
database (not counted), record an update (status, note and a revised date) for ``--answered``
of the actions as owners replying would (the import channel's bulk path is not used: one
``record_update`` each, not counted), then time ``export_plan`` — read and parse the source
again, fold the history, open the file for writing, change the answered cells, save — and the
re-import of the exported file, which must record nothing new.
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench.generate import write_docx, write_xlsx  # noqa: E402
from storage.dates import parse_when  # noqa: E402
from storage.db import make_engine, session_factory, upgrade  # noqa: E402
from storage.exporters import export_plan  # noqa: E402
from storage.importers.load import import_plan_file  # noqa: E402
from storage.models import Action, StatusUpdate  # noqa: E402
from storage.updates import record_update  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--answered", type=float, default=0.2)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="chaser-export-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"python {platform.python_version()} on {platform.machine()}; {args.actions:,} actions, "
          f"{args.answered:.0%} answered")
    at = dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone.utc)
    for kind, writer in (("xlsx", write_xlsx), ("docx", write_docx)):
        path = folder / f"plan-{args.actions}.{kind}"
        writer(path, args.actions)
        for stale in folder.glob(f"export-{kind}.db*"):
            stale.unlink()
        engine = make_engine(f"sqlite:///{folder / f'export-{kind}.db'}")
        upgrade(engine)
        name = f"bench {kind}"
        import_plan_file(engine, path, plan_name=name)
        with session_factory(engine)() as session, session.begin():
            actions = list(session.scalars(select(Action).order_by(Action.position)))
            step = max(1, round(1 / args.answered)) if args.answered else len(actions) + 1
            for n, action in enumerate(actions[::step]):
                record_update(session, action, channel="import", by_text="bench owner", status=("green", "amber", "red")[n % 3],
                              note=f"Progress on {action.ref}: on course, report due next month", at=at,
                              due=parse_when("June 2027"), previous_status=None)
        out = folder / f"back.{kind}"
        started = time.perf_counter()
        result = export_plan(engine, name, out)
        took = time.perf_counter() - started
        with session_factory(engine)() as session:
            before = session.scalar(select(func.count(StatusUpdate.id)))
        started = time.perf_counter()
        again = import_plan_file(engine, out, plan_name=name)
        reimport = time.perf_counter() - started
        with session_factory(engine)() as session:
            after = session.scalar(select(func.count(StatusUpdate.id)))
        engine.dispose()
        print(f"{kind}: export {took:.2f} s ({result.written:,} of {result.actions:,} actions written, {result.cells:,} "
              f"cells, {len(result.columns_added)} columns added, {len(result.not_written)} cells not found); re-import "
              f"of the export "
              f"{reimport:.2f} s ({again.created} created, {after - before} new updates)")


if __name__ == "__main__":
    main()
