"""The runtime's one web app: an answer given on the form is tied to its message and updates
that message in place; ``/healthz`` says what ``chaser status`` says; ``chaser serve`` serves
the pages alone."""
from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from bot.channels.memory import Memory
from chaser.config import parse_config
from chaser.runtime import build_runtime
from storage.db import session_factory, upgrade
from storage.importers.load import import_plan_file
from storage.models import Outbox, Reply, StatusUpdate
from storage.people import import_directory
from tests.importers.makers import write_csv

ROOT = Path(__file__).resolve().parents[2]
SECRET = {"CHASER_SECRET_KEY": "k" * 32}
# Links are signed on the real clock: the runtime's clock starts there too.
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))


def test_a_form_answer_is_tied_to_its_message_and_updates_that_message_in_place(engine: Engine, tmp_path: Path) -> None:
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                      ["P1", "Publish pay gap report", "HR Business Partner", "On-going"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles"],
                                        ["Priya Shah", "priya@c.example", "HR Business Partner"]])
    with session_factory(engine)() as session, session.begin():
        import_directory(session, tmp_path / "people.csv")
    config = parse_config({"channels": {"default": "memory"}, "cadence": {"stale_after_days": 1,
                           "quiet_hours": [], "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                           "holidays": "none", "send_at": "00:00"}}, "test")
    memory = Memory()
    later = NOW + dt.timedelta(days=2)  # the undated action is stale by then: it gets an update request
    runtime = build_runtime(config, clock=lambda: later, engine=engine, environ=SECRET, channels={"memory": memory})
    runtime.run_once()
    (message,) = memory.sent
    link = message.items[0].links[1]  # Amber, exactly as the dispatcher made it
    assert link.label == "Amber" and link.status == "amber"

    with TestClient(runtime.web_app(), base_url="http://127.0.0.1:8080") as web:
        page = web.get(link.url)
        assert page.status_code == 200 and 'value="amber" checked' in page.text
        fields = {**hidden_fields(page.text), "status": "amber", "note": "Survey delayed"}
        thanks = web.post(link.url, data=fields)
        again = web.post(link.url, data=fields)  # the browser sends it twice
    assert thanks.status_code == 200 and again.status_code == 200

    with session_factory(engine)() as session:
        (update,) = session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "web"))
        assert (update.outbox_id, update.new_status, update.note) == (message.outbox_id, "amber", "Survey delayed")
        assert [r.outcome for r in session.scalars(select(Reply).order_by(Reply.id))] == ["applied", "duplicate"]
        (refresh,) = session.scalars(select(Outbox).where(Outbox.kind == "update"))
        assert (refresh.target_id, refresh.state) == (message.outbox_id, "queued")

    assert runtime.dispatcher.run_once().sent == 1
    ((receipt_id, updated),) = memory.updates
    assert memory.messages[receipt_id] is updated
    recorded = updated.items[0].recorded
    assert (recorded.status, recorded.note, recorded.by, recorded.via) == ("amber", "Survey delayed", "Priya Shah", "web")


def test_healthz_answers_as_chaser_status_does(engine: Engine) -> None:
    config = parse_config({"channels": {"default": "memory"}}, "test")
    clock = [NOW]
    runtime = build_runtime(config, clock=lambda: clock[0], engine=engine, environ=SECRET,
                            channels={"memory": Memory()})
    with TestClient(runtime.web_app()) as web:
        never = web.get("/healthz")  # no sweep has ever run: chaser status exits 1
        assert never.status_code == 503 and never.json()["healthy"] is False
        runtime.run_once()
        healthy = web.get("/healthz")
        assert (healthy.status_code, healthy.json()["healthy"], healthy.json()["problems"]) == (200, True, [])
        clock[0] = NOW + dt.timedelta(hours=1)  # the sweeps stopped an hour ago
        stale = web.get("/healthz")
        assert stale.status_code == 503 and any("sweep" in p for p in stale.json()["problems"])


def test_chaser_serve_serves_the_pages_alone(db_url: str, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    (tmp_path / "chaser.toml").write_text(f'[web]\nbase_url = "http://127.0.0.1:{port}"\n')
    env = {**os.environ, "CHASER_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT), **SECRET}
    from storage.db import make_engine
    made = make_engine(db_url)
    upgrade(made)
    made.dispose()
    server = subprocess.Popen([sys.executable, "-m", "chaser", "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        seen = []
        assert server.stdout is not None
        for line in server.stdout:  # it says when it listens
            seen.append(line.decode())
            if b"serving the web pages at" in line:
                break
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            raise AssertionError("healthy with no sweep ever run")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503, seen  # nothing has swept: unhealthy, but served
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/answer/not-a-token", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 400 and "This link does not work" in exc.read().decode()
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    assert server.returncode == 0, output
    assert "web server stopped" in output
