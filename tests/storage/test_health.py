"""check_health: the rules ``chaser status`` (and the web app's health check) judge delivery by."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import insert
from sqlalchemy.orm import Session

from storage.health import LISTED, check_health
from storage.models import Outbox, Sweep

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def test_a_database_no_sweep_has_run_on_is_unhealthy(session: Session) -> None:
    health = check_health(session, NOW, sweep_every=60)
    assert not health.healthy and health.problems == ["no sweep has run yet: is 'chaser run' running?"]


def test_parked_messages_are_named_up_to_the_limit_and_the_rest_counted(session: Session) -> None:
    with session.begin():
        session.add(Sweep(at=NOW, started_at=NOW, duration_ms=5))
        session.execute(insert(Outbox), [
            {"kind": "nudge", "recipient": f"p{n}@c.example", "channel": "memory", "payload": {"items": []},
             "state": "parked", "attempts": 6, "last_error": "refused", "created_at": NOW, "next_attempt_at": NOW}
            for n in range(LISTED + 3)
        ])
    health = check_health(session, NOW + dt.timedelta(seconds=30), sweep_every=60)
    assert health.outbox["parked"] == LISTED + 3 and not health.healthy
    assert len(health.problems) == LISTED + 1
    assert health.problems[0].endswith("is parked after 6 attempt(s): refused (after fixing the cause: "
                                       f"chaser outbox retry {health.problems[0].split()[1]})")
    assert health.problems[-1] == "and 3 more parked message(s): chaser outbox --state parked"
