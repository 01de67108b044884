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
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import http_load  # noqa: E402
from bench.http_load import PEOPLE, STATUSES, Load, Request, Send  # noqa: E402
from storage.db import make_engine  # noqa: E402
from tests.bot.slack_server import BOT_TOKEN, TEAM, sign  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-0123456789ab"
DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_slack_click"


def load(url: str, folder: Path, args: argparse.Namespace) -> Load:
    """The plan and people (with Slack ids U0000 …), clicked on by signed ``block_actions``."""
    actions, _ = http_load.prepare(url, folder, slack_ids=True)
    return Load(request=lambda run: click(actions, run), what="clicks",
                latency="click to committed and acknowledged: ")


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
        http_load.serve_until_stdin_closes(
            start_web(create_app(engine, secret="b" * 32, routes=[events_route(app)]), "127.0.0.1", 0))


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


def click(actions: list[int], run_id: int) -> Request:
    """Each click built and signed before the clock starts, with an ``action_ts`` of its own
    in every run and phase; the time counted is the POST to its 200."""
    def request(phase: int, n: int, seq: int) -> Send:
        user = f"U{n % PEOPLE:04d}"
        body = click_body(user, actions[n % len(actions)], STATUSES[n % 3], f"{run_id * 10 + phase}{seq:07d}.{n:06d}")
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, SIGNING_SECRET, time.time())}

        def send(conn: http.client.HTTPConnection) -> tuple[int, str]:
            conn.request("POST", "/slack/events", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, user
        return send
    return request


def main() -> None:
    http_load.main(__doc__, __file__, noun="clicks", count=2000, clients=1, postgres_url=DEFAULT_PG_URL,
                   channel="slack", serve=serve, load=load)


if __name__ == "__main__":
    main()
