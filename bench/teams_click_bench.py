"""Teams clicks: the time from a card's invoke reaching ``/teams/messages`` to its answer
committed and the updated card returned, real HTTP on loopback.

Usage:
    python bench/teams_click_bench.py [--database sqlite|postgresql|both] [--clicks 2000]
                                      [--clients 1] [--runs 3] [--postgres-url URL]

A fresh database (SQLite file, or the PostgreSQL schema named in ``--postgres-url``) gets the
plan of 500 actions owned by one role and 50 people holding it (bench/http_load.py), each with a
Teams id and the personal chat an install stores. Each person's nudge of ten actions is sent as
an Adaptive Card by the real dispatcher to the Teams fake (tests/bot/teams_server.py, HTTPS
with a trustme CA, in this process: it also publishes the OpenID metadata and signing keys).
The web app of ``chaser run`` (``Runtime.web_app``, with ``[channels.teams]`` enabled) runs in a
child process. ``--clients`` threads each keep one HTTP/1.1 connection and post ``invoke``
activities (``adaptiveCard/action``, ``Action.Execute`` with a card's status data), each with a
fresh Bot Connector JWT signed by the fake's key, a different action and status each time, until
``--clicks`` are answered. What is timed is the POST to its 200: the token verified (RS256, the
keys cached), the tenant checked, the answer recorded and committed, the message's envelope
refreshed and its card rebuilt with the answered item, returned as the invoke response. Each
run checks every click got 200 with a card and that the database holds one update per click.
The first 100 clicks of each run warm up and are not counted. Target (issue 14): p99 under 50 ms.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402
from sqlalchemy import insert, select, update  # noqa: E402

from bench import http_load  # noqa: E402
from bench.http_load import PEOPLE, STATUSES, Load, Request, Send  # noqa: E402
from chaser.config import load_config  # noqa: E402
from chaser.runtime import build_runtime  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.models import Action, Outbox, Person  # noqa: E402
from tests.bot.teams_server import TeamsFake, activity, teams_server  # noqa: E402

DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_teams_click"
PER_MESSAGE = 10  # the actions in each person's card
SECRET = "teams-secret"
# The cards are sent at a fixed moment in working hours (the dispatcher keeps nudges for the
# send window); they are made now, so that the answers (at the real time) may update them.
SENT_AT = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.timezone.utc)
_FAKE = contextlib.ExitStack()  # the fake lives as long as the benchmark


def runtime_env(url: str) -> dict[str, str]:
    return {"CHASER_DATABASE_URL": url, "CHASER_SECRET_KEY": "k" * 32, "CHASER_TEAMS_CLIENT_SECRET": SECRET,
            "REQUESTS_CA_BUNDLE": os.environ["REQUESTS_CA_BUNDLE"]}


def load(url: str, folder: Path, args: argparse.Namespace) -> Load:
    """The plan and people; the Teams fake started here; every person's card sent through it."""
    actions, persons = http_load.prepare(url, folder)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    os.environ["REQUESTS_CA_BUNDLE"] = str(folder / "ca.pem")  # the child inherits it
    _FAKE.close()
    fake = _FAKE.enter_context(teams_server(TeamsFake(), ca))
    config = folder / "chaser.toml"
    config.write_text(
        'edi_lead = "lead@council.example"\n[channels]\norder = ["teams"]\n'
        f'[channels.teams]\nenabled = true\napp_id = "{fake.app_id}"\ntenant_id = "{fake.tenant}"\n'
        f'token_url = "{fake.token_url}"\nopenid_url = "{fake.openid_url}"\n')
    os.environ["CHASER_BENCH_CONFIG"] = str(config)
    now = dt.datetime.now(dt.timezone.utc)
    engine = make_engine(url)
    with engine.begin() as conn:
        for index, person in enumerate(persons):
            conn.execute(update(Person).where(Person.id == person).values(
                teams_id=f"aad-{index}", teams_conversation={
                    "service_url": fake.service_url, "conversation_id": f"a:bench-{index}",
                    "tenant_id": fake.tenant, "user_id": f"29:bench-{index}"}))
        refs = dict(conn.execute(select(Action.id, Action.ref)).all())
        conn.execute(insert(Outbox.__table__), [nudge(index, person, actions, refs, now)
                                                for index, person in enumerate(persons)])
    engine.dispose()
    runtime = build_runtime(load_config(str(config), runtime_env(url)), environ=runtime_env(url),
                            clock=lambda: SENT_AT)
    try:
        sent = runtime.dispatcher.run_once().sent
    finally:
        runtime.close()
    if sent != len(persons) or len(fake.requests) == 0:
        raise SystemExit(f"{sent} of {len(persons)} cards sent to the Teams fake")
    engine = make_engine(url)
    with engine.connect() as conn:
        messages = [row.id for row in conn.execute(select(Outbox.id).where(Outbox.kind == "nudge")
                                                   .order_by(Outbox.person_id))]
    engine.dispose()
    return Load(request=lambda run: click(fake, actions, messages), what="clicks",
                latency="invoke to committed and the card returned: ")


def nudge(index: int, person: int, actions: list[int], refs: dict[int, str], now: dt.datetime) -> dict[str, Any]:
    """Person ``index``'s nudge of their ten actions, queued as the sweep writes one."""
    mine = actions[index * PER_MESSAGE:(index + 1) * PER_MESSAGE]
    items = [{"ref": refs[a], "title": f"Action number {refs[a][1:]} of the benchmark plan", "plan": "Bench",
              "due": "2027-03-31", "due_text": "March 2027", "status": None, "action_id": a, "rule": "before_due",
              "why": {"rule": "before_due", "due": "2027-03-31", "working_days": 60},
              "key": f"before_due:{a}:{person}:{now.date()}", "owner": None} for a in mine]
    return {"kind": "nudge", "person_id": person, "recipient": f"person{index}@council.example", "channel": "teams",
            "payload": {"items": items, "notes": []}, "state": "queued", "attempts": 0, "created_at": now,
            "next_attempt_at": SENT_AT, "possible_duplicate": False}


def serve(url: str) -> None:
    """The child process: ``chaser run``'s web app on a free port; says which; runs until stdin closes."""
    from bot.web import start_web

    runtime = build_runtime(load_config(os.environ["CHASER_BENCH_CONFIG"], runtime_env(url)),
                            environ=runtime_env(url))
    http_load.serve_until_stdin_closes(start_web(runtime.web_app(), "127.0.0.1", 0))


def click(fake: TeamsFake, actions: list[int], messages: list[int]) -> Request:
    """Person ``n % 50`` clicks a status on one of the ten actions of their card. The activity
    and its token are made before the clock starts; the time counted is the POST to its 200."""
    def request(phase: int, n: int, seq: int) -> Send:
        index = n % PEOPLE
        action = actions[index * PER_MESSAGE + (n // PEOPLE) % PER_MESSAGE]
        data = {"chaser": "chaser_status", "o": messages[index], "a": action, "s": STATUSES[n % 3]}
        body = json.dumps(activity(fake, type="invoke", name="adaptiveCard/action", conversation=f"a:bench-{index}",
                                   value={"action": {"type": "Action.Execute", "verb": "chaser_status", "data": data}},
                                   **{"from": {"id": f"29:bench-{index}", "aadObjectId": f"aad-{index}"}}))
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {fake.sign()}"}

        def send(conn: http.client.HTTPConnection) -> tuple[int, str]:
            conn.request("POST", "/teams/messages", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            status = response.status
            if status == 200 and b'"application/vnd.microsoft.card.adaptive"' not in answer:
                status = 599  # answered, but not with the updated card
            return status, f"person {index}, action {action}: {answer[:200]!r}"
        return send
    return request


def main() -> None:
    try:
        http_load.main(__doc__, __file__, noun="clicks", count=2000, clients=1, postgres_url=DEFAULT_PG_URL,
                       channel="teams", serve=serve, load=load)
    finally:
        _FAKE.close()


if __name__ == "__main__":
    main()
