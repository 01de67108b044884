"""Slack delivery: messages per second through the dispatcher and the Slack channel to the fake.

Usage:
    python bench/slack_bench.py [--messages 3000] [--items 3] [--runs 3] [--workers 8]
                                [--database sqlite|postgresql] [--postgres-url URL]

The Slack fake (tests/bot/slack_server.py: a real HTTP server playing the Web API, checking
the token, the blocks' limits and the metadata, keeping every message) runs in its own
process, so it does not share this process's GIL. A fresh database gets 500 people with Slack
ids; each run queues N nudges (``--items`` actions each, as the sweep writes them) and times
``Dispatcher.run_once`` until every row is ``sent``: claiming, Block Kit rendering, the
``chat.postMessage`` round trip (JSON over HTTP to loopback, one connection per call as
slack_sdk's ``WebClient`` makes them) and the record. The channel's rate limits are off (the
figure is Chaser's side, not Slack's pacing); the DM channels are opened once (``conversations.open``
for each of the 500 people) in a warm-up run that is not counted. ``--workers`` is
``[scheduler] send_workers``: each send waits on the network, so several threads overlap the
waits. The target (issue 12) is over 300 messages/s with ``send_workers`` > 1.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataclasses import replace  # noqa: E402

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench.dispatch_bench import NOW, PEOPLE, outbox_rows, people_rows  # noqa: E402
from bench.pg import fresh_schema, pg_schema  # noqa: E402
from bot.channels.slack import Slack  # noqa: E402
from chaser.config import ChannelsConfig, parse_config  # noqa: E402
from jobs.dispatch import Dispatcher  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.models import Outbox, Person  # noqa: E402
from tests.bot.slack_server import BOT_TOKEN  # noqa: E402

DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_slack"
SERVER = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests.bot.slack_server import SlackFake, slack_server
fake = SlackFake()
for p in range(1, {PEOPLE} + 1):
    fake.add_user(f"U{{p:08d}}", f"person{{p}}@council.example")
with slack_server(fake) as running:
    print(running.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(len(running.calls("chat.postMessage", ok=True)), flush=True)
import os; t = os.times(); print("the Slack fake used %.1f s of CPU" % (t.user + t.system), file=sys.stderr)
"""


def start_fake() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url.startswith("http://"):
        server.kill()
        raise SystemExit("the Slack fake did not start")
    return server, url


def stop_fake(server: subprocess.Popen[str]) -> int:
    """Stop the fake; how many messages it accepted in all."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.close()
    posted = int(server.stdout.readline().strip() or 0)
    server.wait(10)
    return posted


def run(engine: Any, channel: Any, n: int, items: int, workers: int) -> tuple[float, float]:
    """Queue ``n`` nudges for ``channel`` (Slack's or Teams'), send them all with ``workers``
    send threads; the wall time and this process's CPU time. Every row must end ``sent``."""
    kind = channel.kind
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))
        conn.execute(insert(Outbox.__table__), outbox_rows(n, kind, items))
    config = parse_config({"scheduler": {"send_workers": workers}, "channels": {"default": "memory"}}, "bench")
    config = replace(config, channels=ChannelsConfig(order=(kind,)))
    dispatcher = Dispatcher(engine, config, clock=lambda: NOW, secret="x" * 32, channels={kind: channel},
                            worker="bench:1")
    started, cpu = time.perf_counter(), time.process_time()
    sent = 0
    while True:
        result = dispatcher.run_once(batch=50)
        sent += result.sent
        if not (result.sent or result.failed):
            break
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    with engine.connect() as conn:
        done = conn.execute(select(func.count()).select_from(Outbox).where(Outbox.state == "sent")).scalar_one()
    if done != n or sent != n:
        raise SystemExit(f"{sent} sent by the dispatcher, {done} rows marked sent, {n} queued")
    return took, cpu


def options(doc: str, postgres_url: str) -> argparse.Namespace:
    """The command line the channel delivery benchmarks share."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=postgres_url)
    return parser.parse_args()


def main() -> None:
    args = options(__doc__, DEFAULT_PG_URL)
    if args.database == "sqlite":
        folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"slack-bench-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'chaser.db'}"
    else:
        url = args.postgres_url
        fresh_schema(pg_schema(url))
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(Person.__table__), people_rows())
    server, api_url = start_fake()
    try:
        channel = Slack(token=BOT_TOKEN, api_url=api_url, limits=None)
        run(engine, channel, PEOPLE, args.items, args.workers)  # warm-up: every DM channel opened once
        rates = []
        for number in range(args.runs):
            took, _ = run(engine, channel, args.messages, args.items, args.workers)
            rates.append(args.messages / took)
            print(f"run {number + 1}: {args.messages} messages in {took:.2f} s = {rates[-1]:.0f} messages/s")
    finally:
        posted = stop_fake(server)
        engine.dispose()
    expected = PEOPLE + args.runs * args.messages
    print(f"{args.database}, send_workers = {args.workers}, {args.items} actions a message: median "
          f"{statistics.median(rates):.0f} messages/s (the fake accepted {posted} of {expected} posts)")
    if posted != expected:
        raise SystemExit("the fake did not receive every message exactly once")


if __name__ == "__main__":
    main()
