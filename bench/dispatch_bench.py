"""Outbox dispatch throughput: messages per second to the memory and outbox_folder channels.

Usage:
    python bench/dispatch_bench.py [--messages 5000] [--database sqlite|postgresql|both]
                                   [--channel memory|outbox_folder|both] [--items 3]
                                   [--runs 3] [--workers 1|1,4] [--email-only] [--profile]

A fresh database (SQLite file, or the PostgreSQL schema named in ``--postgres-url``) gets 500
people; for each run N outbox rows are queued directly with Core bulk inserts (state
``queued``, due a minute before the fixed clock, each carrying ``--items`` action items shaped
as the sweep writes them), then ``Dispatcher.run_once(batch=50)`` is timed until the outbox is
drained (every row ``sent``). Queuing is not counted. The outbox_folder channel writes into a
new temporary folder per run (``.eml`` + ``.json`` per message, as in service), kept until the
end so that no run is timed while the disk deals with the previous run's deleted files.
``--profile`` adds, per (database, channel), one run timed step by step (wrappers around the
dispatcher's and channels' functions and SQLAlchemy cursor events; no code changed) and one
under cProfile (top functions printed); neither is counted in the figures.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, func, insert, select, text  # noqa: E402

from bot.channels.memory import Memory  # noqa: E402
from bot.channels.outbox_folder import OutboxFolder  # noqa: E402
from chaser.config import parse_config  # noqa: E402
from jobs.dispatch import Dispatcher  # noqa: E402
from bench.pg import fresh_database, fresh_schema, pg_schema  # noqa: E402
from bench.phases import Phases  # noqa: E402
from storage.db import make_engine, receipts_engine, upgrade  # noqa: E402
from storage.models import Outbox, Person  # noqa: E402

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
PEOPLE = 500
CHUNK = 10_000
DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_dispatch"
# Each item's why, as the sweep stores it (storage.reasons.Why.to_json), phrased when sent.
RULES = [
    ("overdue", {"rule": "overdue", "due": "2026-10-30", "working_days": -5}),
    ("before_due", {"rule": "before_due", "due": "2026-12-15", "working_days": 10}),
    ("due", {"rule": "due", "due": "2026-12-02", "working_days": 0}),
    ("escalation", {"rule": "escalation", "due": "2026-10-30", "working_days": -10}),
]


EMAIL_ONLY = False  # --email-only: people without a Slack id, as on the embedded default


def people_rows() -> list[dict[str, Any]]:
    return [{
        "id": p, "name": f"Person {p} Example", "email": f"person{p}@council.example",
        "slack_id": None if EMAIL_ONLY else f"U{p:08d}",
        "teams_id": None, "manager_id": None, "delegate_id": None, "away_until": None, "cover_id": None,
    } for p in range(1, PEOPLE + 1)]


def outbox_rows(n: int, channel: str, items: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(1, n + 1):
        person = 1 + i % PEOPLE
        payload_items = []
        for k in range(items):
            action_id = i * items + k
            rule, why = RULES[action_id % len(RULES)]
            payload_items.append({
                "ref": f"HW {action_id}", "title": f"Review the pay gap report and publish what changes (action {action_id})",
                "plan": "Bench EDI action plan", "due": "2026-10-31", "due_text": "October 2026",
                "status": "amber" if k % 2 else None, "action_id": action_id, "rule": rule, "why": why,
                "key": f"{rule}:{action_id}:{person}:2026-12-02", "owner": None,
            })
        rows.append({
            "kind": "nudge", "person_id": person, "recipient": f"person{person}@council.example", "channel": channel,
            "payload": {"items": payload_items, "notes": []}, "state": "queued", "attempts": 0,
            "created_at": NOW - dt.timedelta(minutes=1), "next_attempt_at": NOW - dt.timedelta(minutes=1),
            "possible_duplicate": False,
        })
    return rows


def settle(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE outbox"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.commit()


def queue(engine: Engine, n: int, channel: str, items: int) -> None:
    rows = outbox_rows(n, channel, items)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(Outbox.__table__), rows[start:start + CHUNK])
    settle(engine)


def dispatch_phases(engine: Engine) -> Phases:
    """Wall time per step of the dispatcher and channels (bench.phases)."""
    import bot.channels.outbox_folder as folder_module
    import jobs.dispatch as dispatch

    # The "sent" records go through their own engine on PostgreSQL (storage.db.receipts_engine).
    timer = Phases(engine, receipts_engine(engine))
    timer.wrap(Dispatcher, "claim", "Dispatcher.claim (batch of 50)")
    timer.wrap(Dispatcher, "envelope", "Dispatcher.envelope (get Person, build items and links)")
    timer.wrap(dispatch, "answer_links", "answer_links (5 links, one signed token, per item)")
    timer.wrap(Memory, "send", "Memory.send")
    timer.wrap(OutboxFolder, "send", "OutboxFolder.send")
    timer.wrap(OutboxFolder, "_existing", "OutboxFolder._existing (glob for a previous send)")
    timer.wrap(OutboxFolder, "_email", "OutboxFolder._email (bot.mime.build_email)")
    timer.wrap(OutboxFolder, "_chat_json", "OutboxFolder._chat_json")
    timer.wrap(folder_module, "chat_blocks", "chat_blocks")
    timer.wrap(folder_module, "render", "bot.render.render (Jinja2)")
    timer.wrap(folder_module, "_write_temporary", "_write_temporary (mkstemp, write)")
    timer.wrap(OutboxFolder, "_publish", "OutboxFolder._publish (rename into the folder)")
    timer.wrap(engine.dialect, "do_commit", "COMMIT")
    return timer


def one_run(url: str, n: int, channel: str, items: int, folder: Path, profile: str | None = None,
            phases: bool = False, workers: int = 1) -> float:
    engine = make_engine(url)
    queue(engine, n, channel, items)
    timer = dispatch_phases(engine) if phases else None
    config = parse_config({"edi_lead": "person1@council.example", "scheduler": {"send_workers": workers},
                           "channels": {"default": channel}}, "bench")
    # A new folder per run, kept until the whole benchmark ends: on this machine's disk,
    # creating files runs ten times slower for some seconds after many files were deleted
    # (0.05 ms -> 0.7 ms each), so deleting the previous run's folder timed that, not Chaser.
    target = Path(tempfile.mkdtemp(prefix="out-", dir=folder))
    channels: dict[str, Any] = (
        {"memory": Memory()} if channel == "memory"
        else {"outbox_folder": OutboxFolder(folder=target, sender="Chaser <chaser@council.example>")}
    )
    dispatcher = Dispatcher(engine, config, clock=lambda: NOW, secret="x" * 32, channels=channels,
                            worker="bench:1")
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    os.sync()  # setup's writes reach the disk now, not during the timed part
    profiler = cProfile.Profile() if profile else None
    sent = 0
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    while True:
        result = dispatcher.run_once(batch=50)
        sent += result.sent
        if not (result.sent or result.failed):
            break
    if profiler:
        profiler.disable()
    took = time.perf_counter() - started
    if profiler and profile:
        profiler.dump_stats(profile)
    if timer:
        timer.restore()
        print(f"--- where the time goes: {took:.2f} s in all (steps nest; SQL is time in the driver)")
        timer.print(took)
    with engine.connect() as conn:
        done = conn.execute(select(func.count()).select_from(Outbox).where(Outbox.state == "sent")).scalar_one()
    engine.dispose()
    if done != n or sent != n:
        raise SystemExit(f"{channel}: {sent} sent by the dispatcher, {done} rows marked sent, {n} queued")
    if channel == "outbox_folder":
        written = sum(1 for path in target.iterdir() if path.is_file())
        if written != (1 if EMAIL_ONLY else 2) * n:
            raise SystemExit(f"outbox_folder: {written} files written for {n} messages")
    return took


def disk_probe(folder: Path, files: int = 300) -> float:
    """Milliseconds to create one 12 kB file (temporary name, write, rename) here, now.

    Printed beside the figures because it is not constant: on this machine's ext4 (no
    journal) creating a file scans past every inode deleted in the last 1-6 minutes
    (``recently_deleted()`` in the kernel), so after a test run or a benchmark deleted its
    files, creation costs 0.5-0.9 ms instead of 0.05 ms. The files are kept until the end.
    """
    target = Path(tempfile.mkdtemp(prefix="probe-", dir=folder))
    started = time.perf_counter()
    for n in range(files):
        handle, temporary = tempfile.mkstemp(dir=target, prefix=f".probe-{n:06d}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(b"x" * 12_000)
        os.replace(temporary, target / f"probe-{n:06d}.eml")
    return (time.perf_counter() - started) / files * 1000


def top_functions(path: str, count: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("tottime").print_stats(count)
    stats.sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--channel", choices=("memory", "outbox_folder", "both"), default="both")
    parser.add_argument("--items", type=int, default=3, help="action items per message")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_PG_URL)
    parser.add_argument("--profile", action="store_true", help="also profile one run per database and channel")
    parser.add_argument("--email-only", action="store_true",
                        help="people have no Slack id: the outbox folder writes only the .eml")
    parser.add_argument("--workers", default="1",
                        help="[scheduler] send_workers, or several to compare: 1,4 (default 1, its default)")
    args = parser.parse_args()
    global EMAIL_ONLY
    EMAIL_ONLY = args.email_only
    worker_counts = [int(w) for w in args.workers.split(",")]
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    channels = ["memory", "outbox_folder"] if args.channel == "both" else [args.channel]
    print(f"python {sys.version.split()[0]}, {args.messages:,} messages of {args.items} item(s), batch 50, "
          f"send_workers {args.workers}, "
          f"{args.runs} run(s) (median; range in brackets)", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="chaser-dispatch-bench-"))
    try:
        for database in databases:
            url = fresh_database(database, str(folder / "dispatch.db"), args.postgres_url)
            engine = make_engine(url)
            upgrade(engine)
            with engine.begin() as conn:
                conn.execute(insert(Person.__table__), people_rows())
            engine.dispose()
            for channel, workers in ((c, w) for c in channels for w in worker_counts):
                if channel == "outbox_folder":
                    print(f"disk: creating a 12 kB file takes {disk_probe(folder):.3f} ms now", flush=True)
                times = [one_run(url, args.messages, channel, args.items, folder, workers=workers)
                         for _ in range(args.runs)]
                rates = sorted(args.messages / t for t in times)
                print(f"{database:10s} {channel:13s} workers {workers:2d}, {args.messages:,} messages: "
                      f"{statistics.median(times):6.2f} s, {statistics.median(rates):6.0f} messages/s "
                      f"[{rates[0]:.0f}-{rates[-1]:.0f}]", flush=True)
                if args.profile:
                    one_run(url, args.messages, channel, args.items, folder, phases=True, workers=workers)
                    path = str(folder / f"dispatch-{database}-{channel}.prof")
                    took = one_run(url, args.messages, channel, args.items, folder, profile=path, workers=workers)
                    print(f"--- cProfile, {database}, {channel} ({took:.2f} s under the profiler)")
                    print(top_functions(path), flush=True)
            if database == "postgresql":
                fresh_schema(pg_schema(url), drop_only=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
