"""Answers per second through the web form: 8 owners answering at once, real HTTP on loopback.

Usage:
    python bench/web_bench.py [--database sqlite|postgresql|both] [--answers 4000] [--clients 8]
                              [--with-get] [--runs 3] [--postgres-url URL]

A fresh database (SQLite file, or the PostgreSQL schema named in ``--postgres-url``) gets a
plan of 500 actions owned by one role and 50 people holding it. The web app (``create_app``
served by ``start_web``: uvicorn, the Starlette app, the sync handlers in its thread pool) runs
in a child process, so the clients do not share its interpreter lock; ``--clients`` threads
each keep one HTTP/1.1 connection open and POST the answer form — status, a note, and the
hidden ``csrf``/``nonce`` fields computed as the page computes them — for a different action
each time, until ``--answers`` are recorded. ``--with-get`` makes each answer a GET of the
form (as a browser would, reading its fields) and then the POST, and counts the pair's
latency. Each run checks that every POST got 200 and that the database holds one update per
answer. The first 100 answers of each run warm up and are not counted.
"""
from __future__ import annotations

import argparse
import http.client
import re
import secrets
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
from bot.links import answer_links  # noqa: E402
from bot.web import csrf_token  # noqa: E402
from storage.db import make_engine, session_factory, upgrade  # noqa: E402
from storage.importers.load import import_plan_file  # noqa: E402
from storage.models import Action, Person, StatusUpdate  # noqa: E402
from storage.people import import_directory  # noqa: E402

SECRET = "b" * 32
ACTIONS = 500
PEOPLE = 50
WARMUP = 100
DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_web"
STATUSES = ("green", "amber", "red")


def prepare(url: str, folder: Path) -> list[str]:
    """The plan and people; one answer link per (action, person)."""
    engine = make_engine(url)
    upgrade(engine)
    plan = folder / "plan.csv"
    plan.write_text("Ref,Action,Owner,Deadline\n" + "".join(
        f"A{i},Action number {i} of the benchmark plan,HR Business Partner,March 2027\n" for i in range(ACTIONS)))
    import_plan_file(engine, plan, plan_name="Bench")
    people = folder / "people.csv"
    people.write_text("name,email,roles\n" + "".join(
        f"Person {p},person{p}@council.example,HR Business Partner\n" for p in range(PEOPLE)))
    with session_factory(engine)() as session, session.begin():
        import_directory(session, people)
    with session_factory(engine)() as session:
        actions = session.scalars(select(Action.id).order_by(Action.id)).all()
        persons = session.scalars(select(Person.id).order_by(Person.id)).all()
    engine.dispose()
    return [answer_links("http://x", SECRET, action_id=a, person_id=persons[i % len(persons)], outbox_id=i + 1)[1].url
            for i, a in enumerate(actions)]


def serve(url: str) -> None:
    """The child process: serve the app on a free port, say which, run until stdin closes."""
    from bot.web import create_app, start_web

    web = start_web(create_app(make_engine(url), secret=SECRET), "127.0.0.1", 0)
    print(web.port, flush=True)
    sys.stdin.read()
    web.stop()


def count_updates(url: str) -> int:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        n = session.scalar(select(func.count()).select_from(StatusUpdate).where(StatusUpdate.channel == "web"))
    engine.dispose()
    return int(n or 0)


HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def client(port: int, paths: list[str], start: int, step: int, total: int, with_get: bool,
           latencies: list[float], failures: list[str], counter: list[int], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    # http.client sends a POST's headers and body in two writes; with Nagle on, the body waits
    # for the server's delayed ACK (40 ms on Linux). Browsers and httpx set TCP_NODELAY.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = start
    while True:
        with lock:
            if counter[0] >= total:
                break
            counter[0] += 1
        path = paths[n % len(paths)]
        n += step
        began = time.perf_counter()
        if with_get:
            conn.request("GET", path)
            response = conn.getresponse()
            fields = dict(HIDDEN.findall(response.read().decode()))
        else:
            token = path.rsplit("/", 1)[1]
            fields = {"csrf": csrf_token(SECRET, token), "nonce": secrets.token_urlsafe(16)}
        body = urllib.parse.urlencode({**fields, "status": STATUSES[n % 3], "note": f"Answer {n}: on its way"})
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            failures.append(f"{response.status} for {path}")
    conn.close()


def run(port: int, paths: list[str], answers: int, clients: int, with_get: bool) -> tuple[float, list[float]]:
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    for total, counted in ((WARMUP, False), (answers, True)):
        counter = [0]
        latencies.clear()
        threads = [threading.Thread(target=client, args=(port, paths, c, clients, total, with_get, latencies,
                                                         failures, counter, lock)) for c in range(clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        if failures:
            raise SystemExit(f"{len(failures)} answers failed, e.g. {failures[:3]}")
    return elapsed, sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--answers", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--with-get", action="store_true")
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
            paths = [urllib.parse.urlsplit(link).path for link in prepare(url, Path(tmp))]
            child = subprocess.Popen([sys.executable, __file__, "--serve", url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
            try:
                port = int(child.stdout.readline())  # type: ignore[union-attr]
                for r in range(args.runs):
                    before = count_updates(url)
                    elapsed, lat = run(port, paths, args.answers, args.clients, args.with_get)
                    recorded = count_updates(url) - before
                    if recorded != args.answers + WARMUP:
                        raise SystemExit(f"{recorded} updates recorded for {args.answers + WARMUP} answers")
                    p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
                    what = "GET+POST" if args.with_get else "POST"
                    print(f"{database:10} run {r + 1}: {args.answers} answers ({what}) by {args.clients} clients in "
                          f"{elapsed:.2f} s = {args.answers / elapsed:,.0f}/s; p50 {p50 * 1000:.1f} ms, "
                          f"p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms", flush=True)
            finally:
                child.stdin.close()  # type: ignore[union-attr]
                child.wait(30)
                if database == "postgresql":
                    fresh_schema(pg_schema(url), drop_only=True)


if __name__ == "__main__":
    main()
