"""build_runtime: the one place the engine, link secret and dispatcher of a running Chaser are made."""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.channels.base import Envelope, Receipt
from bot.channels.memory import Memory
from chaser.config import Config, DatabaseConfig, parse_config
from chaser.errors import ChaserError
from chaser.runtime import build_runtime
from chaser.secrets import secret_key
from storage.importers.load import import_plan_file
from storage.people import import_directory
from tests.importers.makers import write_csv

NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)  # a Tuesday, 09:30 in London
KEY = {"CHASER_SECRET_KEY": "r" * 32}


@pytest.fixture
def config() -> Config:
    return parse_config({"channels": {"default": "memory"}, "web": {"enabled": False}}, "test")


@pytest.fixture
def due_today(engine: Engine, session: Session, tmp_path: Path) -> Engine:
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"], ["P1", "Publish", "Chair", "01/12/2026"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles"], ["Nia Chair", "nia@c.example", "Chair"]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")
    return engine


def test_run_once_sweeps_and_sends_at_the_runtimes_clock(due_today: Engine, config: Config) -> None:
    memory = Memory()
    runtime = build_runtime(config, clock=lambda: NOW, environ=KEY, engine=due_today, channels={"memory": memory})
    done = runtime.run_once()
    assert (done.at, done.swept.messages, done.sent.sent) == (NOW, 1, 1)
    (envelope,) = memory.sent
    assert (envelope.recipient.email, envelope.sent_at, [i.rule for i in envelope.items]) == ("nia@c.example", NOW, ["due"])
    # The answer links are signed with the runtime's secret, the one the answer form checks.
    assert runtime.secret == runtime.dispatcher.secret == "r" * 32
    assert build_runtime(config, clock=lambda: NOW, environ=KEY, engine=due_today).run_once().sent.sent == 0


def test_without_a_key_in_the_environment_the_databases_key_signs(engine: Engine, config: Config) -> None:
    assert build_runtime(config, environ={}, engine=engine).secret == secret_key(engine, environ={})


def test_a_runtime_on_a_database_without_the_schema_says_to_run_init(db_url: str, config: Config) -> None:
    with pytest.raises(ChaserError, match="run 'chaser init' first"):
        build_runtime(replace(config, database=DatabaseConfig(url=db_url)), environ=KEY)


class StopsAfterSending(Memory):
    """Sets ``stop`` once it has sent a message, so the daemon's loop ends without waiting on a timer."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def send(self, envelope: Envelope) -> Receipt:
        receipt = super().send(envelope)
        self.stop.set()
        return receipt


def test_the_daemon_sends_through_the_runtimes_dispatcher(due_today: Engine) -> None:
    # Dispatch every second: the first dispatch may run before the first sweep has queued anything.
    config = parse_config({"channels": {"default": "memory"}, "web": {"enabled": False},
                           "scheduler": {"dispatch_every_seconds": 1}}, "test")
    stop = threading.Event()
    channel = StopsAfterSending(stop)
    runtime = build_runtime(config, clock=lambda: NOW, environ=KEY, engine=due_today, channels={"memory": channel})
    guard = threading.Timer(60, stop.set)  # a safety net only: the send sets stop long before
    guard.start()
    try:
        runtime.serve(stop=stop)
    finally:
        guard.cancel()
    assert [(e.recipient.email, e.sent_at) for e in channel.sent] == [("nia@c.example", NOW)]
