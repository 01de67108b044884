"""The dispatcher against real databases, real processes and real signals.

Retries, parking, racing workers (threads and processes) on PostgreSQL, ``kill -9`` in the middle
of a dispatch and a clean SIGTERM. Times are injected with ``clock=``; the only waiting is for
real child processes, in bounded polling loops.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, select

from bot.channels.base import ChannelError, Envelope, Receipt, Recipient
from bot.channels.memory import Memory
from chaser.cli import main
from chaser.config import ChannelsConfig, Config, parse_config
from chaser.errors import ChaserError
from jobs.dispatch import Dispatcher
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import Outbox, Person, Sweep
from storage.people import import_directory
from tests.conftest import LAMBETH
from tests.importers.makers import write_csv
from tests.jobs.crash_helpers import SECRET, dispatch_in_process

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]  # the project: what the child processes import
EML = re.compile(r"^[^-]+-(\d{6,})-.*\.eml$")


# -- helpers ------------------------------------------------------------------------------
def make_config(*, order: tuple[str, ...] = ("memory",), **scheduler: int) -> Config:
    """A config whose ``[channels] order`` may name test channels (handed to the dispatcher)."""
    config = parse_config({"scheduler": scheduler, "channels": {"default": "memory"}}, "test")
    return replace(config, channels=ChannelsConfig(order=order))


def add_people(engine: Engine, count: int) -> list[tuple[int, str]]:
    with session_factory(engine)() as session, session.begin():
        session.execute(insert(Person), [{"name": f"Owner {n}", "email": f"owner{n}@c.example"} for n in range(count)])
        return [(p.id, p.email) for p in session.scalars(select(Person).order_by(Person.id))]


def item(n: int) -> dict[str, Any]:
    return {"action_id": n, "ref": f"X{n}", "title": "Publish the pay gap report", "plan": "Plan", "rule": "due",
            "reason": "Due today.", "key": f"k{n}", "due": None, "due_text": None, "status": None, "owner": None}


def queue(engine: Engine, people: list[tuple[int, str]], count: int, *, channel: str | None = "memory",
          at: dt.datetime = T0, channels: list[str] | None = None) -> list[int]:
    """Insert ``count`` queued messages, round-robin over ``people``; returns their ids in order."""
    rows = [
        {"kind": "nudge", "person_id": people[n % len(people)][0], "recipient": people[n % len(people)][1],
         "channel": channels[n] if channels else channel, "payload": {"items": [item(n)], "notes": []},
         "state": "queued", "attempts": 0, "created_at": at, "next_attempt_at": at}
        for n in range(count)
    ]
    with session_factory(engine)() as session, session.begin():
        before = session.scalar(select(func.coalesce(func.max(Outbox.id), 0)))
        session.execute(insert(Outbox), rows)
        return list(session.scalars(select(Outbox.id).where(Outbox.id > before).order_by(Outbox.id)))


def outbox(engine: Engine) -> dict[int, Outbox]:
    with session_factory(engine)() as session:
        return {row.id: row for row in session.scalars(select(Outbox).order_by(Outbox.id))}


def dispatcher(engine: Engine, config: Config, now: dt.datetime, **kwargs: Any) -> Dispatcher:
    return Dispatcher(engine, config, clock=lambda: now, secret=SECRET, **kwargs)


def eml_ids(folder: Path) -> list[int]:
    """The outbox id of every .eml file in the folder (one entry per file)."""
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for p in folder.iterdir() if (m := EML.match(p.name))]


class AlwaysDown:
    """A channel whose service is down: every send fails, transiently."""

    kind = "flaky"
    checks_duplicates = False

    def __init__(self) -> None:
        self.attempts = 0

    def address(self, recipient: Recipient) -> str | None:
        return recipient.email

    def send(self, envelope: Envelope) -> Receipt:
        self.attempts += 1
        raise ChannelError("down")


class Recording:
    """A thread-safe channel that records which outbox ids it was handed."""

    kind = "memory"
    checks_duplicates = False

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.lock = threading.Lock()

    def address(self, recipient: Recipient) -> str | None:
        return recipient.email

    def send(self, envelope: Envelope) -> Receipt:
        digest = hashlib.sha256(repr(envelope).encode()).hexdigest()  # a little real work, like rendering
        with self.lock:
            self.ids.append(envelope.outbox_id)
        return Receipt(self.kind, {"id": f"rec:{envelope.outbox_id}:{digest[:8]}"})


class Refuses(Memory):
    """Refuses one address for good (a mailbox that does not exist), delivers the others."""

    def __init__(self, refused: str, **options: Any) -> None:
        super().__init__(**options)
        self.refused = refused

    def send(self, envelope: Envelope) -> Receipt:
        if envelope.recipient.email == self.refused:
            self.attempts += 1
            raise ChannelError(f"{self.refused} refused: no such mailbox (permanent)", permanent=True)
        return super().send(envelope)


def require_postgresql(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: concurrent claims with FOR UPDATE SKIP LOCKED")


# -- retries and parking ------------------------------------------------------------------
def test_a_channel_that_fails_twice_then_succeeds_delivers_once(engine: Engine) -> None:
    [outbox_id] = queue(engine, add_people(engine, 1), 1)
    memory = Memory(fail_times=2)
    config = make_config()

    def run(seconds: int) -> Any:
        return dispatcher(engine, config, T0 + dt.timedelta(seconds=seconds), channels={"memory": memory}).run_once()

    first = run(0)
    assert (first.sent, first.failed, first.parked) == (0, 1, 0)
    row = outbox(engine)[outbox_id]
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", 1, T0 + dt.timedelta(seconds=30))
    assert "on purpose" in row.last_error and row.lease_until is None

    early = run(10)  # before its backoff: not claimed, not tried
    assert (early.sent, early.failed, early.parked) == (0, 0, 0)
    assert memory.attempts == 1 and outbox(engine)[outbox_id].attempts == 1

    second = run(30)
    assert (second.sent, second.failed) == (0, 1)
    row = outbox(engine)[outbox_id]
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", 2, T0 + dt.timedelta(seconds=90))

    assert run(89).failed == 0 and memory.attempts == 2
    third = run(90)
    assert (third.sent, third.failed, third.outbox_ids) == (1, 0, [outbox_id])
    assert [e.outbox_id for e in memory.sent] == [outbox_id]
    row = outbox(engine)[outbox_id]
    assert (row.state, row.attempts, row.last_error, row.possible_duplicate) == ("sent", 3, None, False)
    assert row.receipt == {"channel": "memory", "ref": {"id": f"memory:{outbox_id}:1"}, "possible_duplicate": False}
    assert (row.channel, row.recipient, row.route) == ("memory", "owner0@c.example", [])
    assert row.sent_at == T0 + dt.timedelta(seconds=90)
    assert run(3600).sent == 0 and len(memory.sent) == 1  # sent is final


def test_a_permanent_failure_on_the_only_channel_parks_the_message_and_the_loop_goes_on(engine: Engine) -> None:
    broken_id, good_id = queue(engine, add_people(engine, 2), 2)
    memory = Refuses("owner0@c.example")
    config = make_config()

    result = dispatcher(engine, config, T0, channels={"memory": memory}).run_once()

    assert (result.sent, result.failed, result.parked, result.outbox_ids) == (1, 0, 1, [good_id])
    rows = outbox(engine)
    assert rows[broken_id].state == "parked" and rows[broken_id].attempts == 1
    assert rows[broken_id].last_error == "memory: owner0@c.example refused: no such mailbox (permanent)"
    assert [step["channel"] for step in rows[broken_id].route] == ["memory"]
    assert rows[good_id].state == "sent" and rows[good_id].receipt
    assert [e.outbox_id for e in memory.sent] == [good_id]
    # Parked is parked: a day later nobody tries it again.
    later = dispatcher(engine, config, T0 + dt.timedelta(days=1), channels={"memory": memory}).run_once()
    assert (later.sent, later.parked) == (0, 0) and memory.attempts == 2


def test_repeated_transient_failures_park_after_max_attempts(engine: Engine, db_url: str) -> None:
    [outbox_id] = queue(engine, add_people(engine, 1), 1, channel="flaky")
    down = AlwaysDown()
    config = make_config(max_attempts=3, order=("flaky",))

    expected = [(0, "failed", 1, 30), (30, "failed", 2, 90), (90, "parked", 3, 90 + 120)]
    for seconds, state, attempts, next_at in expected:
        result = dispatcher(engine, config, T0 + dt.timedelta(seconds=seconds), channels={"flaky": down}).run_once()
        assert (result.failed, result.parked) == ((1, 0) if state == "failed" else (0, 1))
        row = outbox(engine)[outbox_id]
        assert (row.state, row.attempts, row.last_error) == (state, attempts, "flaky: down")
        assert row.next_attempt_at == T0 + dt.timedelta(seconds=next_at)
    assert down.attempts == 3
    assert dispatcher(engine, config, T0 + dt.timedelta(days=30), channels={"flaky": down}).run_once().parked == 0
    assert down.attempts == 3  # parked messages wait for a person

    runner, env = CliRunner(), {"CHASER_DATABASE_URL": db_url}
    listed = runner.invoke(main, ["outbox", "--state", "parked", "--format", "json"], env=env, catch_exceptions=False)
    assert [(m["id"], m["attempts"], m["last_error"]) for m in json.loads(listed.stdout)] == [(outbox_id, 3, "flaky: down")]
    retried = runner.invoke(main, ["outbox", "retry", str(outbox_id)], env=env, catch_exceptions=False)
    assert retried.exit_code == 0, retried.output
    assert f"Queued outbox message {outbox_id} again." in retried.stdout
    listed = runner.invoke(main, ["outbox", "--format", "json"], env=env, catch_exceptions=False)
    [shown] = json.loads(listed.stdout)
    assert (shown["state"], shown["attempts"], shown["last_error"]) == ("queued", 0, None)

    healthy = Memory()
    now = dt.datetime.now(UTC)  # `outbox retry` queues it for the real now
    result = dispatcher(engine, config, now, channels={"flaky": healthy}).run_once()
    assert (result.sent, result.outbox_ids) == (1, [outbox_id])
    assert [e.outbox_id for e in healthy.sent] == [outbox_id]
    row = outbox(engine)[outbox_id]
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, None)


# -- racing workers on PostgreSQL -----------------------------------------------------------
def test_two_dispatchers_racing_on_postgresql_send_each_of_1000_nudges_exactly_once(engine: Engine, db_url: str) -> None:
    require_postgresql(db_url)
    ids = queue(engine, add_people(engine, 50), 1000)
    channel = Recording()
    config = make_config()
    start = threading.Barrier(2)

    def work(name: str) -> Any:
        worker = dispatcher(engine, config, T0, channels={"memory": channel}, worker=name)
        start.wait(timeout=30)
        return worker.run_once(batch=5)

    with ThreadPoolExecutor(max_workers=2) as pool:
        one, two = pool.map(work, ["worker-1", "worker-2"])

    print(f"worker-1 sent {one.sent}, worker-2 sent {two.sent}")
    assert sorted(channel.ids) == ids  # every id, none twice
    assert len(channel.ids) == len(set(channel.ids)) == 1000
    assert one.sent > 0 and two.sent > 0 and one.sent + two.sent == 1000
    assert one.possible_duplicates == two.possible_duplicates == 0
    assert set(one.outbox_ids).isdisjoint(two.outbox_ids)
    rows = outbox(engine).values()
    assert {r.state for r in rows} == {"sent"}
    assert not any(r.possible_duplicate for r in rows)
    by_worker = collections.Counter(r.claimed_by for r in rows)
    assert by_worker == {"worker-1": one.sent, "worker-2": two.sent}


def test_two_dispatcher_processes_racing_on_postgresql_send_each_once(engine: Engine, db_url: str, tmp_path: Path) -> None:
    require_postgresql(db_url)
    ids = queue(engine, add_people(engine, 50), 600, channel="outbox_folder")
    folder = tmp_path / "outbox"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=dispatch_in_process, args=(db_url, str(folder), name, T0.isoformat(), barrier, results))
        for name in ("process-1", "process-2")
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # pragma: no cover - only when something hung
                process.kill()
    assert [p.exitcode for p in processes] == [0, 0]

    sent = {name: count for name, count, _ in reports}
    print(f"sent by each process: {sent}")
    assert sum(sent.values()) == len(ids) and all(count > 0 for count in sent.values()), sent
    assert [dupes for _, _, dupes in reports] == [0, 0]
    files = collections.Counter(eml_ids(folder))
    assert sorted(files) == ids and set(files.values()) == {1}  # one .eml per message
    rows = outbox(engine).values()
    assert {r.state for r in rows} == {"sent"}
    assert not any(r.possible_duplicate for r in rows)
    assert collections.Counter(r.claimed_by for r in rows) == sent


# -- real `chaser run` processes -------------------------------------------------------------
PEOPLE = [
    ["name", "email", "roles", "manager"],
    ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "lee@lambeth.example"],
    ["Nia Chair", "nia@lambeth.example", "CSEDIWG; CS EDI Leads", "lee@lambeth.example"],
    ["Sam Ade", "sam@lambeth.example", "Quality Assurance Lead", "lee@lambeth.example"],
    ["Lee Lead", "lee@lambeth.example", "", ""],
]


def write_chaser_toml(tmp_path: Path, folder: Path) -> Path:
    path = tmp_path / "chaser.toml"
    path.write_text(
        'edi_lead = "lee@lambeth.example"\n'
        "[scheduler]\ndispatch_every_seconds = 1\nsweep_every_seconds = 1\nlease_seconds = 60\n"
        f'[channels]\ndefault = "outbox_folder"\n[channels.outbox_folder]\nfolder = {json.dumps(str(folder))}\n'
        "[web]\nenabled = false\n",  # tests run side by side: no fixed port
        encoding="utf-8",
    )
    return path


def chaser_env(db_url: str, config_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHASER_")}
    env.update(CHASER_DATABASE_URL=db_url, CHASER_CONFIG=str(config_path), CHASER_SECRET_KEY=SECRET,
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    return env


def start_chaser_run(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    stderr_path = tmp_path / "chaser-run.stderr"
    with (tmp_path / "chaser-run.stdout").open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "chaser", "run"], cwd=tmp_path, env=env, stdout=out, stderr=err)
    return proc, stderr_path


def wait_for(condition: Any, proc: subprocess.Popen[bytes], stderr_path: Path, what: str, timeout: float = 60) -> None:
    """Poll a real child process's effects (bounded): this waits for a process, it times nothing."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"chaser run exited ({proc.returncode}) before {what}:\n{stderr_path.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"timed out waiting for {what}:\n{stderr_path.read_text()}")
        time.sleep(0.005)


def test_kill_9_mid_dispatch_loses_nothing(db_url: str, engine: Engine, tmp_path: Path) -> None:
    import_plan_file(engine, LAMBETH)
    write_csv(tmp_path / "people.csv", PEOPLE)
    with session_factory(engine)() as session, session.begin():
        import_directory(session, tmp_path / "people.csv")
    with session_factory(engine)() as session:
        people = [(p.id, p.email) for p in session.scalars(select(Person).order_by(Person.id))]
    folder = tmp_path / "outbox"
    config_path = write_chaser_toml(tmp_path, folder)
    queue(engine, people, 300, channel="outbox_folder", at=dt.datetime.now(UTC) - dt.timedelta(minutes=1))

    proc, stderr_path = start_chaser_run(tmp_path, chaser_env(db_url, config_path))
    try:
        wait_for(lambda: len(eml_ids(folder)) >= 20, proc, stderr_path, "20 messages in the outbox folder")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    at_kill = {i: r.state for i, r in outbox(engine).items()}
    written_at_kill = set(eml_ids(folder))
    interrupted = {i for i, state in at_kill.items() if state == "sending"}
    print(f"at the kill: {collections.Counter(at_kill.values())}, {len(written_at_kill)} .eml files, "
          f"{len(interrupted & written_at_kill)} interrupted after writing its file")
    assert len(written_at_kill) < len(at_kill), "the whole outbox went out before the kill; queue more messages"

    # Restart after the lease ran out, as cron would with `chaser run --once`.
    env = chaser_env(db_url, config_path)
    for _ in range(4):
        at = (dt.datetime.now(UTC) + dt.timedelta(seconds=60 + 30)).isoformat()
        done = subprocess.run([sys.executable, "-m", "chaser", "run", "--once", "--at", at], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        if not any(r.state in ("queued", "sending", "failed") for r in outbox(engine).values()):
            break

    rows = outbox(engine)
    assert collections.Counter(r.state for r in rows.values()) == {"sent": len(rows)}
    files = collections.Counter(eml_ids(folder))
    assert sorted(files) == sorted(rows), "a message has no .eml file"
    assert {i: n for i, n in files.items() if n != 1} == {}, "a message was written twice"
    flagged = {i for i, r in rows.items() if r.possible_duplicate}
    assert flagged <= interrupted, "only a message whose send was interrupted may be a possible duplicate"
    assert interrupted & written_at_kill <= flagged, "the folder channel must recognise a file it already wrote"
    assert sorted(flagged - written_at_kill) == [], "the folder checked: a message it never wrote is no duplicate"


def test_a_reclaimed_message_the_folder_never_wrote_is_not_a_possible_duplicate(engine: Engine, tmp_path: Path) -> None:
    written_id, unwritten_id = queue(engine, add_people(engine, 2), 2, channel="outbox_folder")
    folder = tmp_path / "outbox"
    config = parse_config({"scheduler": {"lease_seconds": 60},
                           "channels": {"default": "outbox_folder", "outbox_folder": {"folder": str(folder)}}}, "test")
    dead = dispatcher(engine, config, T0, worker="dead")
    assert [c.id for c in dead.claim(2)] == [written_id, unwritten_id]
    with session_factory(engine)() as session:  # it wrote the first message's files, then died
        dead.channel("outbox_folder").send(dead.envelope(session, session.get(Outbox, written_id), T0))

    restarted = dispatcher(engine, config, T0 + dt.timedelta(seconds=61), worker="restarted")
    result = restarted.run_once()

    assert result.sent == 2 and sorted(eml_ids(folder)) == [written_id, unwritten_id]  # nothing written twice
    rows = outbox(engine)
    assert rows[written_id].possible_duplicate is True  # its file was there: it did go out before the crash
    assert rows[unwritten_id].possible_duplicate is False  # the folder checked: it never went out


def test_a_channel_that_cannot_check_flags_every_resend_after_a_lost_lease_even_across_a_shutdown(engine: Engine) -> None:
    first, second = queue(engine, add_people(engine, 2), 2)
    config = make_config(lease_seconds=60, send_workers=1)  # in order: the second waits for the first
    dead = dispatcher(engine, config, T0, worker="dead", channels={"memory": Recording()})
    assert [c.id for c in dead.claim(2)] == [first, second]  # ...and died before recording anything

    class StopsAfterOne(Recording):
        def send(self, envelope: Envelope) -> Receipt:
            receipt = super().send(envelope)
            stopping.stopping = True  # SIGTERM arrives while the first message is being sent
            return receipt

    stopping = dispatcher(engine, config, T0 + dt.timedelta(seconds=61), worker="b", channels={"memory": StopsAfterOne()})
    assert stopping.run_once(batch=2).sent == 1
    assert outbox(engine)[second].state == "sending"  # kept, not released as plain queued
    later = dispatcher(engine, config, T0 + dt.timedelta(seconds=200), worker="c", channels={"memory": Recording()})
    assert later.run_once().sent == 1
    rows = outbox(engine)
    assert (rows[first].possible_duplicate, rows[second].possible_duplicate) == (True, True)


class Overlapping(Recording):
    """Proves sends overlap: the first ``together`` sends wait for each other at a barrier."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(together, timeout=10)
        self.met = 0

    def send(self, envelope: Envelope) -> Receipt:
        if self.met < self.barrier.parties:
            with self.lock:
                self.met += 1
            self.barrier.wait()  # raises BrokenBarrierError if they were sent one at a time
        return super().send(envelope)


def test_several_messages_are_sent_at_once_each_exactly_once(engine: Engine) -> None:
    ids = queue(engine, add_people(engine, 7), 120)
    channel = Overlapping(together=4)
    result = dispatcher(engine, make_config(send_workers=4), T0, channels={"memory": channel}).run_once(batch=50)
    assert channel.barrier.broken is False and channel.met == 4  # four sends were in flight together
    assert (result.sent, result.failed, result.possible_duplicates) == (120, 0, 0)
    assert sorted(channel.ids) == ids and sorted(result.outbox_ids) == ids
    assert {row.state for row in outbox(engine).values()} == {"sent"}


def test_a_stop_lets_sends_in_flight_finish_and_hands_back_the_rest(engine: Engine) -> None:
    ids = queue(engine, add_people(engine, 3), 10)

    class StopsTogether(Overlapping):
        def send(self, envelope: Envelope) -> Receipt:
            receipt = super().send(envelope)
            stopper.stopping = True  # SIGTERM while the first two are being sent
            return receipt

    channel = StopsTogether(together=2)
    stopper = dispatcher(engine, make_config(send_workers=2), T0, channels={"memory": channel})
    result = stopper.run_once(batch=10)
    assert result.sent == 2 and sorted(channel.ids) == ids[:2]  # both in flight finished and were recorded
    rows = outbox(engine)
    assert [rows[i].state for i in ids] == ["sent"] * 2 + ["queued"] * 8  # the rest handed back at once
    assert [rows[i].attempts for i in ids[2:]] == [0] * 8
    later = dispatcher(engine, make_config(), T0, channels={"memory": Recording()}).run_once()
    assert later.sent == 8


def test_ctrl_c_while_sending_hands_back_what_had_not_started(engine: Engine) -> None:
    ids = queue(engine, add_people(engine, 3), 6)

    class Interrupted(Recording):
        def send(self, envelope: Envelope) -> Receipt:
            if envelope.outbox_id == ids[1]:
                raise KeyboardInterrupt  # Ctrl-C lands while this one is being sent
            return super().send(envelope)

    channel = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        dispatcher(engine, make_config(send_workers=1), T0, channels={"memory": channel}).run_once(batch=6)
    rows = outbox(engine)
    assert channel.ids == ids[:1] and rows[ids[0]].state == "sent"
    assert rows[ids[1]].state == "sending"  # it may have gone out: its lease decides, as after a crash
    assert [rows[i].state for i in ids[2:]] == ["queued"] * 4  # never started: handed back at once
    assert dispatcher(engine, make_config(), T0, channels={"memory": Recording()}).run_once().sent == 4


def test_a_dropped_database_connection_between_send_and_record_loses_nothing(engine: Engine, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: a server can end the connection that records receipts")
    ids = queue(engine, add_people(engine, 3), 5)
    config = make_config(lease_seconds=60)

    class ConnectionDrops(Recording):
        def send(self, envelope: Envelope) -> Receipt:
            if envelope.outbox_id == ids[2] and not envelope.resend:  # the server ends the receipts connection
                held = first._held.connection
                pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                with engine.connect() as admin:
                    admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            return super().send(envelope)

    channel = ConnectionDrops()
    first = dispatcher(engine, config, T0, channels={"memory": channel})
    result = first.run_once()
    assert sorted(channel.ids) == ids
    assert (result.sent, result.unrecorded, result.failed) == (4, 1, 0)  # the rest went through a new connection
    rows = outbox(engine)
    assert rows[ids[2]].state == "sending"  # it went out: kept claimed, not retried as if it had failed
    later = dispatcher(engine, config, T0 + dt.timedelta(seconds=61), worker="later", channels={"memory": channel})
    assert later.run_once().possible_duplicates == 1
    assert outbox(engine)[ids[2]].state == "sent" and outbox(engine)[ids[2]].possible_duplicate is True


def test_a_run_that_ends_on_an_error_does_not_stop_the_next(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = queue(engine, add_people(engine, 2), 4)

    class BadRow(Recording):
        def send(self, envelope: Envelope) -> Receipt:
            if envelope.outbox_id == ids[1]:
                raise RuntimeError("a bug in rendering this row")
            return super().send(envelope)

    looping = dispatcher(engine, make_config(), T0, channels={"memory": BadRow()})
    with monkeypatch.context() as patch:  # ...and the database goes away as its failure is recorded
        patch.setattr(looping, "record_failure", lambda *args: (_ for _ in ()).throw(RuntimeError("database gone")))
        with pytest.raises(RuntimeError, match="database gone"):
            looping.run_once(batch=4)
    rows = outbox(engine)
    assert [rows[i].state for i in ids] == ["sent", "sending", "queued", "queued"]
    assert looping.run_once().sent == 2  # the next tick of chaser run carries on
    assert [outbox(engine)[i].state for i in ids] == ["sent", "sending", "sent", "sent"]


def test_send_workers_is_checked() -> None:
    with pytest.raises(ChaserError, match="'scheduler.send_workers' must be a whole number from 1 to 32, got 33"):
        make_config(send_workers=33)
    with pytest.raises(ChaserError, match="'scheduler.send_workers' must be a whole number from 1 to 32, got 0"):
        make_config(send_workers=0)


def test_sigterm_stops_chaser_run_cleanly(db_url: str, engine: Engine, tmp_path: Path) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("one database is enough for signal handling")
    people = add_people(engine, 5)
    ids = queue(engine, people, 300, channel="outbox_folder", at=dt.datetime.now(UTC) - dt.timedelta(minutes=1))
    folder = tmp_path / "outbox"
    config_path = write_chaser_toml(tmp_path, folder)

    def swept() -> bool:
        with session_factory(engine)() as session:
            return bool(session.scalar(select(func.count(Sweep.id))))

    proc, stderr_path = start_chaser_run(tmp_path, chaser_env(db_url, config_path))
    try:
        wait_for(swept, proc, stderr_path, "the first sweep")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:  # pragma: no cover - only when it did not stop
            proc.kill()
            proc.wait()
    stderr = stderr_path.read_text()
    assert "received SIGTERM" in stderr and "stopping" in stderr and "chaser stopped" in stderr, stderr
    assert "Traceback" not in stderr, stderr

    rows = outbox(engine)
    print(f"after SIGTERM: {collections.Counter(r.state for r in rows.values())}")
    assert sorted(rows) == ids
    assert [i for i, r in rows.items() if r.state not in ("sent", "queued")] == []  # nothing left in sending
    unsent = [r for r in rows.values() if r.state == "queued"]
    assert all(r.attempts == 0 and r.lease_until is None for r in unsent)  # given back, as if never claimed
    assert sorted(eml_ids(folder)) == sorted(i for i, r in rows.items() if r.state == "sent")


def test_closing_the_dispatcher_lets_its_channels_go(engine: Engine) -> None:
    class HoldsAConnection(Memory):
        closed = 0

        def close(self) -> None:
            self.closed += 1

    held = HoldsAConnection()
    dispatcher(engine, make_config(), T0, channels={"memory": held, "other": Recording()}).close()
    assert held.closed == 1
