"""Reminder sweep over 10,000 / 100,000 / 1,000,000 actions of which 1% are due.

Usage:
    python bench/sweep_bench.py [--actions N ...] [--database sqlite|postgresql|both]
                                [--due-fraction 0.01] [--runs 3] [--profile]

For each (database, size) a fresh database is built with bulk inserts (Core ``executemany`` in
chunks of 10,000 rows; ``COPY`` for the two big tables on PostgreSQL): one plan, 50
workstreams, N actions with a ref, title, description and a due date spread over 2026-2027
(5% "On-going", recurring with no date), one owner role each (500 roles, 500 people holding
one role each, 25 of them managers of the others), 3,000 status updates (one on each of a fifth of
the due actions, the rest anywhere), and ``next_check_at`` in the past for ``--due-fraction`` of the actions (the due
ones) and in the future for the rest. Build time is printed but not counted.

Each measurement runs in a fresh process (``sweep_bench.py --measure URL``), so the build's
memory does not count: it sweeps once at 2026-12-02 10:00 Europe/London (inside the send
window), then sweeps again at the same moment (which must find next to nothing due: the cost
follows the due items). Between runs the database is put back as built (outbox, nudge keys
and sweeps emptied, the due actions' ``next_check_at`` restored). Peak memory is the
measuring process's ``ru_maxrss`` after the first sweep, minus its RSS just before it.
``--warm`` adds, for the largest size, sweeps in a process that has swept once already (as a
long-running ``chaser run`` would have), the database put back in between.
``--profile`` adds, for the largest size per database, one sweep timed step by step (wrappers
around the sweep's functions and SQLAlchemy cursor events, no code changed) and one under
cProfile (top functions printed); neither is counted in the figures.
"""
from __future__ import annotations

import argparse
import calendar
import cProfile
import datetime as dt
import gc
import io
import json
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, bindparam, insert, text, update  # noqa: E402

from bench.pg import fresh_database, fresh_schema, pg_schema  # noqa: E402
from bench.phases import Phases  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.models import (  # noqa: E402
    Action,
    ActionOwner,
    Person,
    PersonRole,
    Plan,
    Role,
    StatusUpdate,
    Workstream,
)
from storage.people import role_key  # noqa: E402

UTC = dt.timezone.utc
# 2026-12-02 is a Wednesday; 10:00 in London in December is 10:00 UTC: inside the send window.
NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
CREATED = dt.datetime(2025, 11, 3, 9, 0, tzinfo=UTC)
CHUNK = 10_000
WORKSTREAMS = 50
ROLES = 500
PEOPLE = 500
MANAGERS = 25
STATUS_UPDATES = 3_000
EDI_LEAD = "edi.lead@council.example"
CONFIG = {"edi_lead": EDI_LEAD, "channels": {"default": "memory"}}
DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_sweep"

AREAS = [
    "Adult Social Care", "Children's Services", "Housing", "Public Health", "Human Resources",
    "Finance", "Legal", "Communications", "Procurement", "Digital", "Education", "Planning",
    "Highways", "Libraries", "Leisure", "Youth Services", "Community Safety", "Parks",
    "Waste", "Revenues", "Benefits", "Customer Services", "Regeneration", "Licensing", "Audit",
]
TITLES = [
    "Director", "Head of Service", "Service Manager", "Team Leader", "Business Partner",
    "EDI Lead", "Policy Officer", "Project Manager", "Programme Lead", "Commissioning Manager",
    "Workforce Lead", "Data Analyst", "Engagement Officer", "Practice Lead", "Operations Manager",
    "Strategy Lead", "Training Lead", "Quality Lead", "Principal Officer", "Board",
]
FIRST = ["Priya", "Ali", "Sam", "Grace", "Tomasz", "Amina", "Oliver", "Chloe", "Kwame", "Fatima",
         "James", "Sofia", "Daniel", "Ngozi", "Liam", "Hannah", "Yusuf", "Ella", "Marek", "Aisha"]
LAST = ["Shah", "Littlewood", "Okafor", "Brown", "Nowak", "Hussain", "Evans", "Patel", "Mensah",
        "Begum", "Taylor", "Rossi", "Clarke", "Adeyemi", "Murphy", "Green", "Khan", "Walsh", "Kowalski",
        "Ahmed", "Wilson", "Lewis", "Hughes", "Reid", "Campbell"]
TOPICS = ["recruitment panels", "pay gap report", "staff network charter", "accessible website",
          "interpreting contract", "training programme", "mentoring scheme", "equality impact assessments",
          "complaints data", "tenant survey", "school exclusions review", "supplier diversity clause"]
CODES = ["WF", "CP", "HW", "SD", "LE", "CO", "RE", "DG", "TR", "PA"]
TABLES = ("plans", "roles", "people", "person_roles", "workstreams", "actions", "action_owners",
          "status_updates", "outbox", "nudge_keys", "sweeps")
STATUSES = ["green", "green", "amber", "amber", "red", "not_started", "complete"]


# -- building ---------------------------------------------------------------------------------

def chunked(rows: Iterator[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


class Shape:
    """The generated plan: which actions are due and everything needed to put them back."""

    def __init__(self, n: int, due_fraction: float, seed: int = 2026) -> None:
        self.n = n
        self.rng = random.Random(seed)
        k = round(n * due_fraction)
        self.due_ids = sorted(self.rng.sample(range(1, n + 1), k))
        self.due_set = set(self.due_ids)
        self.due_next_check = {
            i: NOW - dt.timedelta(minutes=self.rng.randint(1, 3 * 24 * 60)) for i in self.due_ids
        }

    def role_name(self, r: int) -> str:  # r = 1..ROLES
        return f"{AREAS[(r - 1) % len(AREAS)]} {TITLES[(r - 1) // len(AREAS)]}"

    def person_name(self, p: int) -> str:  # p = 1..PEOPLE
        return f"{FIRST[(p - 1) % len(FIRST)]} {LAST[(p - 1) // len(FIRST)]}"

    def roles(self) -> list[dict[str, Any]]:
        return [{"id": r, "name": self.role_name(r), "key": role_key(self.role_name(r))} for r in range(1, ROLES + 1)]

    def people(self) -> list[dict[str, Any]]:
        rows = []
        for p in range(1, PEOPLE + 1):
            email = EDI_LEAD if p == 1 else f"person{p}@council.example"
            rows.append({
                "id": p, "name": self.person_name(p), "email": email, "slack_id": f"U{p:08d}", "teams_id": None,
                "manager_id": None if p <= MANAGERS else 1 + p % MANAGERS, "delegate_id": None,
                "away_until": None, "cover_id": None,
            })
        return rows

    def workstreams(self) -> list[dict[str, Any]]:
        return [{
            "id": w, "plan_id": 1, "key": f"theme {w}", "name": f"Theme {w}: {TOPICS[w % len(TOPICS)]}",
            "label": f"Objective {w}", "lead_sponsor": self.role_name(1 + (w * 7) % ROLES),
            "objective": f"Make {TOPICS[w % len(TOPICS)]} fair and accessible for every resident.",
            "metrics": {"schedule": "G", "scope": "A"}, "risks_issues": None, "position": w,
        } for w in range(1, WORKSTREAMS + 1)]

    def actions(self) -> Iterator[dict[str, Any]]:
        rng = random.Random(self.n)  # independent of the due sample, same for both databases
        per_ws = -(-self.n // WORKSTREAMS)
        start = dt.date(2026, 1, 1)
        for i in range(1, self.n + 1):
            ws = 1 + (i - 1) // per_ws
            code = CODES[ws % len(CODES)]
            ref = f"{code} {i}"
            kind = rng.random()
            if kind < 0.05:
                due, precision, due_text, recurring, recurrence = None, None, "On-going", True, "ongoing"
            elif kind < 0.75:
                due = month_end(start + dt.timedelta(days=rng.randrange(730)))
                precision, due_text, recurring, recurrence = "month", f"{due:%B %Y}", False, None
            else:
                due = start + dt.timedelta(days=rng.randrange(730))
                precision, due_text, recurring, recurrence = "day", f"{due:%d/%m/%Y}", False, None
            if i in self.due_set:
                next_check = self.due_next_check[i]
            else:
                next_check = NOW + dt.timedelta(minutes=rng.randint(60, 60 * 24 * 60))
            topic = TOPICS[i % len(TOPICS)]
            yield {
                "id": i, "plan_id": 1, "workstream_id": ws, "group_id": None, "ref": ref,
                "ref_key": ref.replace(" ", ""), "ref_generated": False, "match_key": f"ref:{code}{i}",
                "title": f"Review the {topic} and publish what changes (action {i})",
                "description": f"Working with staff networks, review the {topic}, agree the changes with "
                               f"the board and report progress each quarter.",
                "owners_text": self.role_name(1 + (i * 31) % ROLES), "dependencies": None,
                "resources": "Within existing budget", "success_measures": "Published and reviewed",
                "next_steps": None, "start_date": None, "start_text": None, "due_date": due,
                "due_precision": precision, "due_text": due_text, "recurring": recurring,
                "recurrence": recurrence, "key_dates": [], "file_status": None, "file_progress": None,
                "position": i, "source": f"Action plan!A{i + 3}", "snoozed_until": None,
                "next_check_at": next_check, "created_at": CREATED, "updated_at": CREATED,
            }

    def owners(self) -> Iterator[dict[str, Any]]:
        for i in range(1, self.n + 1):
            yield {"id": i, "action_id": i, "role_id": 1 + (i * 31) % ROLES, "position": 0}

    def status_updates(self) -> list[dict[str, Any]]:
        rng = random.Random(7)
        # One update each on a fifth of the due actions (at most half the updates), the rest anywhere.
        on_due = rng.sample(self.due_ids, min(len(self.due_ids) // 5, STATUS_UPDATES // 2))
        targets = on_due + [rng.randint(1, self.n) for _ in range(STATUS_UPDATES - len(on_due))]
        rows = []
        for u, action_id in enumerate(sorted(targets), start=1):
            person = rng.randint(2, PEOPLE)
            channel = rng.choice(["import", "cli", "slack", "email"])
            revised = rng.random() < 0.1
            rows.append({
                "id": u, "action_id": action_id,
                "created_at": dt.datetime(2026, 1, 5, 9, tzinfo=UTC) + dt.timedelta(hours=rng.randrange(7000)),
                "channel": channel, "by_person_id": None if channel == "import" else person,
                "by_text": "import: plan.xlsx" if channel == "import" else f"person{person}@council.example",
                "old_status": None, "new_status": rng.choice(STATUSES), "note": "Progress as planned; see minutes.",
                "revised_due": dt.date(2027, 3, 31) if revised else None,
                "revised_due_precision": "month" if revised else None,
                "revised_due_text": "March 2027" if revised else None,
            })
        return rows


def _core_insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for chunk in chunked(iter(rows)):
            conn.execute(insert(table), chunk)


def _copy(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> None:
    """PostgreSQL ``COPY ... FROM STDIN`` through psycopg's ``cursor.copy()``."""
    columns = [c.name for c in table.columns]
    json_columns = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                # A column the generator does not fill (added by a later migration) is NULL.
                copy.write_row([json.dumps(row[c]) if c in json_columns else row.get(c) for c in columns])
        raw.commit()
    finally:
        raw.close()


def build(url: str, n: int, due_fraction: float) -> tuple[Shape, float]:
    started = time.perf_counter()
    engine = make_engine(url)
    upgrade(engine)
    shape = Shape(n, due_fraction)
    pg = engine.dialect.name == "postgresql"
    _core_insert(engine, Plan.__table__, [{
        "id": 1, "name": "Bench EDI action plan", "organisation": "Bench Borough Council",
        "timezone": "Europe/London", "created_at": CREATED, "imported_at": CREATED, "paused": False,
    }])
    _core_insert(engine, Role.__table__, shape.roles())
    _core_insert(engine, Person.__table__, shape.people())
    _core_insert(engine, PersonRole.__table__, [{"person_id": p, "role_id": p} for p in range(1, PEOPLE + 1)])
    _core_insert(engine, Workstream.__table__, shape.workstreams())
    if pg:
        _copy(engine, Action.__table__, shape.actions())
        _copy(engine, ActionOwner.__table__, shape.owners())
    else:
        _core_insert(engine, Action.__table__, shape.actions())
        _core_insert(engine, ActionOwner.__table__, shape.owners())
    _core_insert(engine, StatusUpdate.__table__, shape.status_updates())
    with engine.begin() as conn:
        if pg:
            for table in ("plans", "roles", "people", "workstreams", "actions", "action_owners", "status_updates"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    settle(engine)
    engine.dispose()
    return shape, time.perf_counter() - started


def settle(engine: Engine) -> None:
    """What a database left alone would have: statistics (autovacuum), a checkpointed WAL."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in TABLES:  # only this schema's tables, never the whole database
                conn.execute(text(f"VACUUM ANALYZE {table}"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.commit()


def reset(url: str, shape: Shape) -> None:
    """Put the database back as built: nothing planned, the due actions due again."""
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in ("nudge_keys", "outbox", "sweeps"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(
            update(Action.__table__).where(Action.__table__.c.id == bindparam("action_id"))
            .values(next_check_at=bindparam("next")),
            [{"action_id": i, "next": moment} for i, moment in shape.due_next_check.items()],
        )
    settle(engine)
    engine.dispose()


# -- measuring (in a fresh process) ------------------------------------------------------------

def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sweep_phases(engine: Engine) -> Phases:
    """Wall time per step of the sweep (bench.phases); this process only measures, no restore."""
    from sqlalchemy.orm import Session

    import jobs.sweep as sweep

    timer = Phases(engine)
    timer.wrap(sweep._Loader, "__init__", "_Loader.__init__")
    timer.wrap(sweep._Loader, "views", "_Loader.views")
    for name in ("fold_history", "milestones", "plan", "_store", "_insert_keys", "_action_info"):
        timer.wrap(sweep, name, name)
    timer.wrap(Session, "flush", "Session.flush (outbox rows; autoflush)")
    timer.wrap(engine.dialect, "do_commit", "COMMIT")
    return timer


def measure(url: str, profile: str | None, phases: bool = False, warm: tuple[int, float] | None = None) -> None:
    from chaser.config import parse_config
    from jobs.sweep import run_sweep

    config = parse_config(CONFIG, "bench")
    engine = make_engine(url)
    timer = sweep_phases(engine) if phases else None
    with engine.connect() as conn:  # the connection is open before the sweep, as in `chaser run`
        conn.exec_driver_sql("SELECT 1")
    if warm:  # a long-running process: one full sweep first, then the database put back as built
        run_sweep(engine, config, NOW)
        reset(url, Shape(*warm))
    gc.collect()
    before = rss_kb()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    first = run_sweep(engine, config, NOW)
    if profiler:
        profiler.disable()
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps = timer.report() if timer else {}
    started = time.perf_counter()
    second = run_sweep(engine, config, NOW)
    again = time.perf_counter() - started
    if profiler and profile:
        profiler.dump_stats(profile)
    print(json.dumps({
        "sweep_s": took, "checked": first.actions_checked, "nudges": len(first.nudges),
        "messages": first.messages, "superseded": first.superseded, "rss_before_kb": before,
        "peak_kb": peak, "second_s": again, "second_checked": second.actions_checked,
        "second_nudges": len(second.nudges), "phases": steps,
    }))


def spawn(url: str, profile: str | None = None, phases: bool = False,
          warm: tuple[int, float] | None = None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", url]
    if warm:
        command += ["--warm-shape", str(warm[0]), str(warm[1])]
    if profile:
        command += ["--profile-to", profile]
    if phases:
        command += ["--phases"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"measuring process failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def top_functions(path: str, count: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("tottime").print_stats(count)
    stats.sort_stats("cumulative").print_stats(count)
    return out.getvalue()


# -- the command line --------------------------------------------------------------------------

def mb(kb: float) -> str:
    return f"{kb / 1024:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, nargs="+", action="extend",
                        help="sizes (repeatable or a list); default 10000 100000 1000000")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--due-fraction", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=3, help="measurements per size (median reported)")
    parser.add_argument("--postgres-url", default=DEFAULT_PG_URL)
    parser.add_argument("--profile", action="store_true",
                        help="also profile one sweep of the largest size per database (not counted)")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--phases", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm-shape", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true",
                        help="also measure, for the largest size, a sweep in a process that has already swept once")
    args = parser.parse_args()
    if args.measure:
        warm = (int(args.warm_shape[0]), float(args.warm_shape[1])) if args.warm_shape else None
        measure(args.measure, args.profile_to, args.phases, warm)
        return
    sizes = args.actions or [10_000, 100_000, 1_000_000]
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    print(f"python {sys.version.split()[0]}, now={NOW.isoformat()}, due fraction {args.due_fraction}, "
          f"{args.runs} run(s) per size (median; range in brackets)", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="chaser-sweep-bench-"))
    try:
        for database in databases:
            for n in sizes:
                url = fresh_database(database, str(folder / f"sweep-{n}.db"), args.postgres_url)
                shape, built = build(url, n, args.due_fraction)
                results = []
                for run in range(args.runs):
                    if run:
                        reset(url, shape)
                    results.append(spawn(url))
                times = [r["sweep_s"] for r in results]
                seconds = [r["second_s"] for r in results]
                deltas = [r["peak_kb"] - r["rss_before_kb"] for r in results]
                r0 = results[0]
                print(
                    f"{database:10s} {n:>9,} actions ({len(shape.due_ids):,} due): build {built:6.1f} s | "
                    f"sweep {statistics.median(times):6.3f} s [{min(times):.3f}-{max(times):.3f}] "
                    f"checked {r0['checked']:,}, {r0['nudges']:,} nudges, {r0['messages']:,} messages | "
                    f"peak +{mb(statistics.median(deltas))} (absolute {mb(statistics.median(r['peak_kb'] for r in results))}) | "
                    f"2nd sweep {statistics.median(seconds):.3f} s ({r0['second_checked']} checked, "
                    f"{r0['second_nudges']} nudges)",
                    flush=True,
                )
                if args.warm and n == max(sizes):
                    warm = []
                    for _ in range(args.runs):
                        reset(url, shape)
                        warm.append(spawn(url, warm=(n, args.due_fraction)))
                    times = [r["sweep_s"] for r in warm]
                    deltas = [r["peak_kb"] - r["rss_before_kb"] for r in warm]
                    print(f"{database:10s} {n:>9,} actions, warm process (it swept once before; compiled-statement "
                          f"cache and calendars warm): sweep {statistics.median(times):6.3f} s "
                          f"[{min(times):.3f}-{max(times):.3f}] checked {warm[0]['checked']:,}, "
                          f"{warm[0]['nudges']:,} nudges | peak +{mb(statistics.median(deltas))} "
                          f"(absolute {mb(statistics.median(r['peak_kb'] for r in warm))})", flush=True)
                if args.profile and n == max(sizes):
                    reset(url, shape)
                    timed = spawn(url, phases=True)
                    print(f"--- where the time goes, {database}, {n:,} actions: wall time per step of the first sweep "
                          f"({timed['sweep_s']:.3f} s in all; steps nest, SQL is time in the driver)")
                    for name, (seconds, calls) in sorted(timed["phases"].items(), key=lambda kv: -kv[1][0]):
                        print(f"    {seconds:7.3f} s  {int(calls):6d} call(s)  {name}")
                    reset(url, shape)
                    path = str(folder / f"sweep-{database}-{n}.prof")
                    profiled = spawn(url, profile=path)
                    print(f"--- cProfile, {database}, {n:,} actions (sweep {profiled['sweep_s']:.3f} s under the profiler)")
                    print(top_functions(path), flush=True)
                if database == "sqlite":
                    for stale in folder.glob(f"sweep-{n}.db*"):
                        stale.unlink()
        if "postgresql" in databases:
            fresh_schema(pg_schema(args.postgres_url), drop_only=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
