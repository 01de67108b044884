"""The HTTP load harness shared by the benchmarks that answer through the web app.

bench/web_bench.py (the answer form) and bench/slack_click_bench.py (signed Slack clicks) only
differ in what one request is, what the child process serves and which channel's updates they
count. Everything else lives here, once, so that the two measure the same way: the plan and
people they answer for (``prepare``), the server in a child process so that the clients do not
share its interpreter lock (``serve_until_stdin_closes``), client threads that each keep one
HTTP/1.1 connection and share one counter, a warm-up phase that is not counted, the check
that every request got 200 and recorded one update, and the latency line (``main``).

A benchmark hands ``main`` a ``load`` function: given the database URL, its folder and the
parsed options, it prepares the database and returns a ``Load``. Its ``request(run)`` gives,
for each run, a function ``(phase, n, seq) -> send``: ``phase`` is 0 for the warm-up and 1 for
the counted requests, ``n`` the client's own index (its start, then stepping by the number of
clients), ``seq`` the request's place in the phase (1, 2, …). What it does before returning
``send`` is not timed; ``send(conn)`` is, and returns the response's status and what to name
in a failure.
"""
from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from bench.pg import fresh_database, fresh_schema, pg_schema
from storage.db import make_engine, session_factory, upgrade
from storage.importers.load import import_plan_file
from storage.models import Action, Person, StatusUpdate
from storage.people import import_directory

if TYPE_CHECKING:
    from bot.web.server import WebServer

ACTIONS = 500
PEOPLE = 50
WARMUP = 100
STATUSES = ("green", "amber", "red")

Send = Callable[[http.client.HTTPConnection], tuple[int, str]]
Request = Callable[[int, int, int], Send]


@dataclass(frozen=True)
class Load:
    """What a benchmark sends, and how its result line names it."""

    request: Callable[[int], Request]  # run number (1, 2, …) -> the requests of that run
    what: str  # the requests on the result line, e.g. "answers (POST)"
    latency: str = ""  # what the latency figures measure, printed before them


def prepare(url: str, folder: Path, slack_ids: bool = False) -> tuple[list[int], list[int]]:
    """The plan of ``ACTIONS`` actions owned by one role and ``PEOPLE`` people holding it (with
    Slack ids U0000 … when ``slack_ids``); the action ids and the person ids."""
    engine = make_engine(url)
    upgrade(engine)
    plan = folder / "plan.csv"
    plan.write_text("Ref,Action,Owner,Deadline\n" + "".join(
        f"A{i},Action number {i} of the benchmark plan,HR Business Partner,March 2027\n" for i in range(ACTIONS)))
    import_plan_file(engine, plan, plan_name="Bench")
    people = folder / "people.csv"
    if slack_ids:
        people.write_text("name,email,roles,manager,slack_id\n" + "".join(
            f"Person {p},person{p}@council.example,HR Business Partner,,U{p:04d}\n" for p in range(PEOPLE)))
    else:
        people.write_text("name,email,roles\n" + "".join(
            f"Person {p},person{p}@council.example,HR Business Partner\n" for p in range(PEOPLE)))
    with session_factory(engine)() as session, session.begin():
        import_directory(session, people)
    with session_factory(engine)() as session:
        actions = list(session.scalars(select(Action.id).order_by(Action.id)))
        persons = list(session.scalars(select(Person.id).order_by(Person.id)))
    engine.dispose()
    return actions, persons


def serve_until_stdin_closes(web: WebServer) -> None:
    """In the child process: say the port the server listens on, serve until the parent closes
    our stdin, then stop."""
    print(web.port, flush=True)
    sys.stdin.read()
    web.stop()


def count_updates(url: str, channel: str) -> int:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        n = session.scalar(select(func.count()).select_from(StatusUpdate).where(StatusUpdate.channel == channel))
    engine.dispose()
    return int(n or 0)


def client(port: int, request: Request, phase: int, start: int, step: int, total: int,
           latencies: list[float], failures: list[str], counter: list[int], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    # http.client sends a POST's headers and body in two writes; with Nagle on, the body waits
    # for the server's delayed ACK (40 ms on Linux). Browsers, httpx and Slack set TCP_NODELAY.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = start
    while True:
        with lock:
            if counter[0] >= total:
                break
            counter[0] += 1
            seq = counter[0]
        send = request(phase, n, seq)
        n += step
        began = time.perf_counter()
        status, what = send(conn)
        latencies.append(time.perf_counter() - began)
        if status != 200:
            failures.append(f"{status} for {what}")
    conn.close()


def run(port: int, request: Request, count: int, clients: int, noun: str) -> tuple[float, list[float]]:
    """``WARMUP`` requests, then ``count`` timed ones, by ``clients`` threads at once; the
    counted phase's wall time and its sorted latencies."""
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    elapsed = 0.0
    for phase, total in enumerate((WARMUP, count)):
        counter = [0]
        latencies.clear()
        threads = [threading.Thread(target=client, args=(port, request, phase, c, clients, total, latencies,
                                                         failures, counter, lock)) for c in range(clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        if failures:
            raise SystemExit(f"{len(failures)} {noun} failed, e.g. {failures[:3]}")
    return elapsed, sorted(latencies)


def main(doc: str, script: str, *, noun: str, count: int, clients: int, postgres_url: str, channel: str,
         serve: Callable[[str], None], load: Callable[[str, Path, argparse.Namespace], Load],
         options: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """A benchmark's command line: ``--<noun> N`` requests counted per run (``count`` by
    default), ``--clients``, ``--runs``, ``--database``, ``--postgres-url``, and what
    ``options`` adds; ``script --serve URL`` is the child process, which runs ``serve``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(f"--{noun}", dest="count", metavar=noun.upper(), type=int, default=count)
    parser.add_argument("--clients", type=int, default=clients)
    parser.add_argument("--runs", type=int, default=3)
    if options:
        options(parser)
    parser.add_argument("--postgres-url", default=postgres_url)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for database in databases:
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_database(database, str(Path(tmp) / "bench.db"), args.postgres_url)
            bench = load(url, Path(tmp), args)
            child = subprocess.Popen([sys.executable, script, "--serve", url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
            try:
                port = int(child.stdout.readline())  # type: ignore[union-attr]
                for r in range(args.runs):
                    before = count_updates(url, channel)
                    elapsed, lat = run(port, bench.request(r + 1), args.count, args.clients, noun)
                    recorded = count_updates(url, channel) - before
                    if recorded != args.count + WARMUP:
                        raise SystemExit(f"{recorded} updates recorded for {args.count + WARMUP} {noun}")
                    p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
                    print(f"{database:10} run {r + 1}: {args.count} {bench.what} by {args.clients} clients in "
                          f"{elapsed:.2f} s = {args.count / elapsed:,.0f}/s; {bench.latency}"
                          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms", flush=True)
            finally:
                child.stdin.close()  # type: ignore[union-attr]
                child.wait(30)
                if database == "postgresql":
                    fresh_schema(pg_schema(url), drop_only=True)
