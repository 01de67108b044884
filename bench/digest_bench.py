"""Build and render a board digest for a 10,000-action plan (targets: data under 0.5 s, HTML
under 2 s, PDF under 15 s; a 500-action plan's PDF under 3 s).

Usage: python bench/digest_bench.py [--actions N] [--keep DIR]

Generate a CSV plan (bench/generate.py) and import it into a fresh SQLite database, then give
the history a year's shape: every action two status updates in earlier months and a third of
them a move within the period, plus nudges for a tenth (none of this is counted). Timed, best
of three: ``jobs.digest.build_report`` for the period (the tracker as it stood at its end) and
``jobs.digest_render.render_html`` of that report; then ``render_pdf`` (WeasyPrint, the chart
included), best of ``--pdf-runs`` (default 3 up to 1,000 actions, else 1).
"""
from __future__ import annotations

import argparse
import os
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from bench.generate import write_xlsx  # noqa: E402
from chaser.config import BoardConfig  # noqa: E402
from jobs.calendar import parse_schedule  # noqa: E402
from jobs.digest import build_report, parse_period  # noqa: E402
from jobs.digest_render import render_html, render_pdf  # noqa: E402
from storage.db import make_engine, session_factory, upgrade  # noqa: E402
from storage.importers.load import import_plan_file  # noqa: E402
from storage.models import Action, NudgeKey, Outbox, Person, StatusUpdate  # noqa: E402


def best(runs: int, work):  # type: ignore[no-untyped-def]
    """The best wall-clock time of ``runs``, and the CPU time of that run (a busy machine shows
    as wall time well above CPU time)."""
    times, result = [], None
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = work()
        times.append((time.perf_counter() - started, time.process_time() - cpu))
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--pdf-runs", type=int, help="PDF renders to take the best of")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="chaser-digest-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("digest.db*"):
        stale.unlink()
    print(f"python {platform.python_version()} on {platform.machine()}; {args.actions:,} actions")
    plan = write_xlsx(folder / f"plan-{args.actions}.xlsx", args.actions)
    engine = make_engine(f"sqlite:///{folder / 'digest.db'}")
    upgrade(engine)
    import_plan_file(engine, plan, plan_name="bench")
    period = parse_period("2026-11", "Europe/London")
    with session_factory(engine)() as session, session.begin():
        person = Person(name="Bench Owner", email="owner@bench.example")
        session.add(person)
        session.flush()
        ids = list(session.scalars(select(Action.id).order_by(Action.position)))
        rows = []
        for n, action_id in enumerate(ids):
            for month, status in ((9, "green"), (10, ("green", "amber", "red")[n % 3])):
                rows.append({"action_id": action_id, "created_at": dt.datetime(2026, month, 10, tzinfo=dt.UTC),
                             "channel": "cli", "by_text": person.email, "new_status": status,
                             "note": f"Progress note {n} for month {month}: on course, report to follow"})
            if n % 3 == 0:
                rows.append({"action_id": action_id, "created_at": dt.datetime(2026, 11, 12, tzinfo=dt.UTC),
                             "channel": "cli", "by_text": person.email, "new_status": ("amber", "complete")[n % 2]})
        session.execute(insert(StatusUpdate), rows)
        for n, action_id in enumerate(ids[::10]):
            at = dt.datetime(2026, 11, 5, 9, tzinfo=dt.UTC)
            outbox = Outbox(kind="nudge", person_id=person.id, recipient=person.email, payload={"items": []},
                            state="sent", created_at=at, next_attempt_at=at)
            session.add(outbox)
            session.flush()
            session.add(NudgeKey(key=f"overdue:{action_id}:{person.id}:2026-11-05", action_id=action_id,
                                 person_id=person.id, rule="overdue", outbox_id=outbox.id, created_at=at))
    board = BoardConfig(name="Bench Board", schedule=parse_schedule("monthly on the last Thursday"))
    with session_factory(engine)() as session:
        build_s, report = best(3, lambda: build_report(session, board, period))
        html_s, html = best(3, lambda: render_html(report))
        render_pdf(report) if args.actions <= 1000 else None  # warm: fonts and matplotlib load once per process
        pdf_s, pdf = best(args.pdf_runs or (3 if args.actions <= 1000 else 1), lambda: render_pdf(report))
    (folder / "digest.html").write_text(html, encoding="utf-8")
    (folder / "digest.pdf").write_bytes(pdf)
    pdf_target = 3 if args.actions <= 500 else 15
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)")
    print(f"data:  build_report  {build_s[0]:6.3f} s  (CPU {build_s[1]:.3f} s; {report.total:,} actions, {len(report.changes):,} changes, "
          f"{len(report.workstreams)} workstreams; target < 0.5 s)")
    print(f"html:  render_html   {html_s[0]:6.3f} s  (CPU {html_s[1]:.3f} s; {len(html) / 1e6:.1f} MB; target < 2 s)")
    print(f"pdf:   render_pdf    {pdf_s[0]:6.3f} s  (CPU {pdf_s[1]:.3f} s; {len(pdf) / 1e6:.1f} MB; target < {pdf_target} s)")
    print(f"files in {folder}")


if __name__ == "__main__":
    main()
