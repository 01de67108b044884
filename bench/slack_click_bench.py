"""Slack clicks: the time from a click reaching ``/slack/events`` to its answer committed and
acknowledged, real HTTP on loopback.

Usage:
    python bench/slack_click_bench.py [--database sqlite|postgresql|both] [--clicks 2000]
                                      [--clients 1] [--runs 3] [--postgres-url URL]

A fresh database (SQLite file, or the PostgreSQL schema named in ``--postgres-url``) gets a
plan of 500 actions owned by one role and 50 people holding it, each with a Slack id. The web
app with the bolt app mounted at ``/slack/events`` (bot.slack_app: HTTP mode, signatures
checked, ``process_before_response``, so the 200 goes out after the answer is committed) runs
in a child process, with its calls back to Slack going to the loopback fake
(tests/bot/slack_server.py). ``--clients`` threads each keep one HTTP/1.1 connection and post
``block_actions`` payloads for status buttons, signed as Slack signs them, a different action
and ``action_ts`` each time, until ``--clicks`` are acknowledged. The latency counted is from
just before the request is written to its 200 read: every click answered, every answer in the
tracker. Each run checks that every click got 200 and that the database holds one update per
click. The first 100 clicks of each run warm up and are not counted. Target: p99 under 50 ms.
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.pg import fresh_database, fresh_schema, pg_schema  # noqa: E402
from storage.db import make_engine, session_factory, upgrade  # noqa: E402
from storage.importers.load import import_plan_file  # noqa: E402
from storage.models import Action, StatusUpdate  # noqa: E402
from storage.people import import_directory  # noqa: E402
from tests.bot.slack_server import BOT_TOKEN, TEAM, sign  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-0123456789ab"
ACTIONS = 500
PEOPLE = 50
WARMUP = 100
DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_slack_click"
STATUSES = ("green", "amber", "red")


def prepare(url: str, folder: Path) -> list[int]:
    """The plan and people (with Slack ids U0000 …); the action ids."""
    engine = make_engine(url)
    upgrade(engine)
    plan = folder / "plan.csv"
    plan.write_text("Ref,Action,Owner,Deadline\n" + "".join(
        f"A{i},Action number {i} of the benchmark plan,HR Business Partner,March 2027\n" for i in range(ACTIONS)))
    import_plan_file(engine, plan, plan_name="Bench")
    people = folder / "people.csv"
    people.write_text("name,email,roles,manager,slack_id\n" + "".join(
        f"Person {p},person{p}@council.example,HR Business Partner,,U{p:04d}\n" for p in range(PEOPLE)))
    with session_factory(engine)() as session, session.begin():
        import_directory(session, people)
    with session_factory(engine)() as session:
        actions = list(session.scalars(select(Action.id).order_by(Action.id)))
    engine.dispose()
    return actions


def serve(url: str) -> None:
    """The child process: the Slack fake and the web app, on free ports; says which; runs until
    stdin closes."""
    from bot.inbound import Policy
    from bot.slack_app import build_app, events_route
    from bot.web import create_app, start_web
    from tests.bot.slack_server import slack_server

    with slack_server() as fake:
        for p in range(PEOPLE):
            fake.add_user(f"U{p:04d}", f"person{p}@council.example")
            fake.add_channel(fake.dm_channel(f"U{p:04d}"))
        engine = make_engine(url)
        app = build_app(engine, Policy(updatable=("slack",)), token=BOT_TOKEN, signing_secret=SIGNING_SECRET,
                        base_url=fake.url)
        web = start_web(create_app(engine, secret="b" * 32, routes=[events_route(app)]), "127.0.0.1", 0)
        print(web.port, flush=True)
        sys.stdin.read()
        web.stop()


def count_updates(url: str) -> int:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        n = session.scalar(select(func.count()).select_from(StatusUpdate).where(StatusUpdate.channel == "slack"))
    engine.dispose()
    return int(n or 0)


def click_body(user: str, action_id: int, status: str, action_ts: str) -> str:
    payload = {
        "type": "block_actions", "api_app_id": "ACHASER", "user": {"id": user, "team_id": TEAM},
        "team": {"id": TEAM}, "container": {"type": "message", "channel_id": f"D{user[1:]}",
                                            "message_ts": "1.000001"},
        "channel": {"id": f"D{user[1:]}"}, "trigger_id": f"{action_ts}.t",
        "actions": [{"type": "button", "action_id": f"chaser_status_{status}", "block_id": f"item-{action_id}",
                     "action_ts": action_ts, "value": json.dumps({"o": None, "a": action_id, "s": status})}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def client(port: int, actions: list[int], start: int, step: int, total: int, run_id: int,
           latencies: list[float], failures: list[str], counter: list[int], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Slack's client would
    n = start
    while True:
        with lock:
            if counter[0] >= total:
                break
            counter[0] += 1
            seq = counter[0]
        user = f"U{n % PEOPLE:04d}"
        body = click_body(user, actions[n % len(actions)], STATUSES[n % 3], f"{run_id}{seq:07d}.{n:06d}")
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SIGNING_SECRET, time.time())}
        n += step
        began = time.perf_counter()
        conn.request("POST", "/slack/events", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            failures.append(f"{response.status} for {user}")
    conn.close()


def run(port: int, actions: list[int], clicks: int, clients: int, run_id: int) -> tuple[float, list[float]]:
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    elapsed = 0.0
    for phase, total in enumerate((WARMUP, clicks)):
        counter = [0]
        latencies.clear()
        threads = [threading.Thread(target=client, args=(port, actions, c, clients, total, run_id * 10 + phase,
                                                         latencies, failures, counter, lock)) for c in range(clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        if failures:
            raise SystemExit(f"{len(failures)} clicks failed, e.g. {failures[:3]}")
    return elapsed, sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clicks", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_PG_URL)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for database in databases:
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_database(database, str(Path(tmp) / "bench.db"), args.postgres_url)
            actions = prepare(url, Path(tmp))
            child = subprocess.Popen([sys.executable, __file__, "--serve", url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
            try:
                port = int(child.stdout.readline())  # type: ignore[union-attr]
                for r in range(args.runs):
                    before = count_updates(url)
                    elapsed, lat = run(port, actions, args.clicks, args.clients, r + 1)
                    recorded = count_updates(url) - before
                    if recorded != args.clicks + WARMUP:
                        raise SystemExit(f"{recorded} updates recorded for {args.clicks + WARMUP} clicks")
                    p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
                    print(f"{database:10} run {r + 1}: {args.clicks} clicks by {args.clients} clients in "
                          f"{elapsed:.2f} s = {args.clicks / elapsed:,.0f}/s; click to committed and acknowledged: "
                          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms", flush=True)
            finally:
                child.stdin.close()  # type: ignore[union-attr]
                child.wait(30)
                if database == "postgresql":
                    fresh_schema(pg_schema(url), drop_only=True)


if __name__ == "__main__":
    main()
