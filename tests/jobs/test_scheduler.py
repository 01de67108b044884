"""``chaser run`` serves the answer form: a link the dispatcher wrote, opened and answered."""
from __future__ import annotations

import email
import json
import email.policy
import logging
import re
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from chaser.config import parse_config
from chaser.errors import ChaserError
from chaser.runtime import build_runtime
from storage.db import make_engine, session_factory
from storage.models import StatusUpdate
from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

SECRET = {"CHASER_SECRET_KEY": "k" * 32}  # the key the chaser fixture signs with


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_a_link_in_a_sent_message_opens_the_form_chaser_run_serves_and_records_the_answer(
        chaser: Chaser, db_url: str, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    Path("chaser.toml").write_text(f'[channels.outbox_folder]\nfolder = "out"\n[web]\nbase_url = "{base}"\n')
    chaser("import", str(LAMBETH))
    chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"], ["Priya Shah", "priya@lambeth.example", "HR Business Partner"]])))
    chaser("run", "--once", "--at", "2023-04-17T10:00")
    (sent,) = Path("out").glob("*.eml")
    text = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default).get_body(("plain",)).get_content()
    amber = re.search(rf"{re.escape(base)}/answer/\S+\?s=amber", text)
    assert amber is not None, text

    config = parse_config({"channels": {"outbox_folder": {"folder": str(tmp_path / "out")}},
                           "web": {"base_url": base}}, "test")
    engine = make_engine(db_url)
    runtime = build_runtime(config, engine=engine, environ=SECRET)
    stop, answered = threading.Event(), []

    def owner() -> None:  # runs while serve() blocks the main thread, as chaser run does
        try:
            with urllib.request.urlopen(amber.group(0), timeout=10) as page:
                html = page.read().decode()
            hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
            form = urllib.parse.urlencode({**hidden, "status": "amber", "note": "Data arrives late"}).encode()
            with urllib.request.urlopen(amber.group(0), data=form, timeout=10) as thanks:
                answered.append((thanks.status, thanks.read().decode()))
        finally:
            stop.set()

    helper = threading.Thread(target=owner)

    class StartsTheOwner(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("answer form at") and not helper.is_alive():
                helper.start()  # the form is being served now

    run_log = logging.getLogger("chaser.run")
    handler, level = StartsTheOwner(), run_log.level
    run_log.addHandler(handler)
    run_log.setLevel(logging.INFO)
    try:
        runtime.serve(stop=stop)
    finally:
        run_log.removeHandler(handler)
        run_log.setLevel(level)
        helper.join(10)
    (status, html), = answered
    assert status == 200 and "Thank you, Priya Shah" in html
    with session_factory(engine)() as session:
        (update,) = session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "web")).all()
    assert (update.by_text, update.new_status, update.note) == ("priya@lambeth.example", "amber", "Data arrives late")
    engine.dispose()


def test_chaser_run_says_which_address_it_cannot_serve_on(db_url: str) -> None:
    engine = make_engine(db_url)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = parse_config({"web": {"base_url": f"http://127.0.0.1:{port}"}}, "test")
        with pytest.raises(ChaserError, match=rf"127\.0\.0\.1:{port} \(Address already in use\); change \[web\] "
                                              r"base_url or set \[web\] enabled = false"):
            build_runtime(config, engine=engine, environ=SECRET).serve(stop=threading.Event())
    engine.dispose()


def test_chaser_run_reads_the_inbox_folder_on_its_dispatch_tick(chaser: Chaser, db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fixture = Path(__file__).parent.parent / "bot" / "fixtures" / "replies" / "ooo-with-headers.eml"
    (inbox / "ooo.eml").write_bytes(fixture.read_bytes())
    config = parse_config({"channels": {"outbox_folder": {"folder": str(tmp_path / "out")}}}, "test")
    engine = make_engine(db_url)
    runtime = build_runtime(config, engine=engine, environ=SECRET)
    stop = threading.Event()

    def watch() -> None:  # stops the daemon once the reply has been read and moved
        for _ in range(200):
            if (inbox / "done" / "ooo.eml").exists():
                break
            stop.wait(0.05)
        stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        runtime.serve(stop=stop)
    finally:
        watcher.join(15)
    assert (inbox / "done" / "ooo.eml").exists() and not (inbox / "ooo.eml").exists()
    replies = json.loads(chaser("replies", "--format", "json").stdout)
    assert [(r["via"], r["outcome"]) for r in replies] == [("email", "auto_reply")]
    engine.dispose()
