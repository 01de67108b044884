"""Teams delivery: messages per second through the dispatcher and the Teams channel to the fake.

Usage:
    python bench/teams_bench.py [--messages 3000] [--items 3] [--runs 3] [--workers 8]
                                [--database sqlite|postgresql] [--postgres-url URL]

The Teams fake (tests/bot/teams_server.py: a real HTTPS server on loopback playing Entra's token
endpoint and the Bot Connector, checking the bearer token, the Adaptive Card's version and the
28 KB limit, keeping every activity) runs in its own process, so it does not share this
process's GIL. Its certificate comes from a trustme CA the child writes to a file, which this
process trusts through ``REQUESTS_CA_BUNDLE``, as a council's proxy CA would be trusted.

A fresh database gets 500 people, each with the personal conversation an install event stores
(``people.teams_conversation``); each run queues N nudges (``--items`` actions each, as the sweep
writes them) and times ``Dispatcher.run_once`` until every row is ``sent``: claiming, the
Adaptive Card, the activity POST (JSON over HTTPS to loopback; requests keeps the connections
alive, one pool for the channel) and the record. The channel's rate limits are off (the figure
is Chaser's side, not Teams' pacing); the Entra token is fetched once in a warm-up run that is
not counted. ``--workers`` is ``[scheduler] send_workers``. The target (issue 14) is over 300
messages/s with ``send_workers`` > 1. At the end the fake's count of accepted activities must
equal the messages queued: every one exactly once.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from bench.dispatch_bench import PEOPLE, people_rows  # noqa: E402
from bench.pg import fresh_schema, pg_schema  # noqa: E402
from bench.slack_bench import options, run  # noqa: E402
from bot.channels.teams import Teams, teams_settings  # noqa: E402
from storage.db import make_engine, upgrade  # noqa: E402
from storage.models import Person  # noqa: E402

DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_teams"
SERVER = """
import sys
sys.path.insert(0, {root!r})
import trustme
from tests.bot.teams_server import TeamsFake, teams_server
ca = trustme.CA()
ca.cert_pem.write_to_path({ca_file!r})
fake = TeamsFake()
with teams_server(fake, ca) as running:
    print(running.app_id, running.tenant, running.client_secret, running.token_url, running.openid_url,
          running.service_url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    posted = sum(1 for r in running.requests if r.method == "POST" and r.path.endswith("/activities"))
    print(posted, sum(len(a) for a in running.conversations.values()), flush=True)
import os; t = os.times(); print("the Teams fake used %.1f s of CPU" % (t.user + t.system), file=sys.stderr)
"""


def start_fake(ca_file: Path) -> tuple[subprocess.Popen[str], list[str]]:
    code = SERVER.format(root=str(ROOT), ca_file=str(ca_file))
    server = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    started = server.stdout.readline().split()
    if len(started) != 6 or not started[3].startswith("https://"):
        server.kill()
        raise SystemExit("the Teams fake did not start")
    return server, started


def stop_fake(server: subprocess.Popen[str]) -> tuple[int, int]:
    """Stop the fake; how many activity POSTs it answered and how many activities it keeps."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.close()
    posts, kept = (int(n) for n in server.stdout.readline().split())
    server.wait(10)
    return posts, kept


def teams_people(service_url: str, tenant: str) -> list[dict[str, Any]]:
    """dispatch_bench's 500 people, each with the chat an install event would have stored."""
    return [{**row, "slack_id": None, "teams_id": f"aad-{row['id']}",
             "teams_conversation": {"service_url": service_url, "conversation_id": f"a:bench-{row['id']}",
                                    "tenant_id": tenant, "user_id": f"29:bench-{row['id']}"}}
            for row in people_rows()]


def main() -> None:
    args = options(__doc__, DEFAULT_PG_URL)
    with tempfile.TemporaryDirectory(prefix="teams-bench-") as tmp:
        if args.database == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'chaser.db'}"
        else:
            url = args.postgres_url
            fresh_schema(pg_schema(url))
        ca_file = Path(tmp) / "ca.pem"
        server, (app_id, tenant, secret, token_url, openid_url, service_url) = start_fake(ca_file)
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca_file)
        engine = make_engine(url)
        upgrade(engine)
        settings = teams_settings({"enabled": True, "app_id": app_id, "tenant_id": tenant,
                                   "token_url": token_url, "openid_url": openid_url})
        channel = Teams(settings, credential=secret, limits=None)
        with engine.begin() as conn:
            conn.execute(insert(Person.__table__), teams_people(service_url, tenant))
        try:
            run(engine, channel, PEOPLE, args.items, args.workers)  # warm-up: the token, the connections
            rates = []
            for number in range(args.runs):
                took, cpu = run(engine, channel, args.messages, args.items, args.workers)
                rates.append(args.messages / took)
                print(f"run {number + 1}: {args.messages} messages in {took:.2f} s = {rates[-1]:.0f} messages/s "
                      f"(CPU {cpu * 1000 / args.messages:.2f} ms a message)", flush=True)
        finally:
            channel.close()
            posts, kept = stop_fake(server)
            engine.dispose()
            if args.database == "postgresql":
                fresh_schema(pg_schema(url), drop_only=True)
    expected = PEOPLE + args.runs * args.messages
    print(f"{args.database}, send_workers = {args.workers}, {args.items} actions a message: median "
          f"{statistics.median(rates):.0f} messages/s (the fake answered {posts} posts and keeps {kept} "
          f"activities, of {expected} sent)")
    if posts != expected or kept != expected:
        raise SystemExit("the fake did not receive every message exactly once")


if __name__ == "__main__":
    main()
