"""The page of all my actions in a real headless Chromium (Debian's, driven by Playwright),
against the real web server: from the link in a nudge the outbox folder wrote to the tracker."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.web import create_app, start_web
from chaser.config import parse_config
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.models import Action, StatusUpdate
from tests.bot.test_mine import NOW, SECRET, tracker  # noqa: F401 - the fixture, with its two plans

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = Path("/work/notes/mine.png")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite alone: the page's database work is tested on both databases in test_mine.py."""
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        pytest.fail(f"{CHROMIUM} is missing: this test needs Debian's chromium package; install it with "
                    "scripts/debian-packages (as root), which `make test` runs")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_an_owner_updates_two_actions_from_the_link_in_their_email(
        tracker: Engine, browser: object, session: Session, tmp_path: Path) -> None:  # noqa: F811
    web = start_web(create_app(tracker, secret=SECRET, edi_leads=["lead@c.example"], clock=lambda: NOW),
                    "127.0.0.1", 0)
    try:
        outbox = tmp_path / "outbox"
        config = parse_config({"edi_lead": "lead@c.example", "web": {"base_url": web.url},
                               "channels": {"default": "outbox_folder", "outbox_folder": {"folder": str(outbox)}}},
                              "test")
        run_sweep(tracker, config, NOW)
        Dispatcher(tracker, config, clock=lambda: NOW, secret=SECRET).run_once()
        (written,) = outbox.glob("*priya-shah.eml")
        message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        (url,) = re.findall(r"See and update all your actions \(4 open\): (\S+)", text)
        assert url.startswith(f"{web.url}/mine/")
        ids = {a.ref: a.id for a in session.scalars(select(Action))}

        page = browser.new_page(viewport={"width": 900, "height": 800})  # type: ignore[attr-defined]
        page.set_default_timeout(5000)
        page.goto(url)
        assert page.get_by_role("heading", level=1).inner_text() == "Your actions, Priya Shah"
        p1 = page.locator(f"#action-{ids['P1']}")
        p1.get_by_label("Amber").check()
        p1.get_by_label("Progress note").fill("Data from payroll arrives late")
        p5 = page.locator(f"#action-{ids['P5']}")
        p5.get_by_label("Green").check()
        p5.get_by_label("New due date").fill("30/06/2028")
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.get_by_role("button", name="Save my updates").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", level=1).inner_text() == "Thank you, Priya Shah"
        assert "2 updates recorded" in page.get_by_role("status").first.inner_text()
        page.screenshot(path=str(SCREENSHOT.with_name("mine-saved.png")), full_page=True)
    finally:
        web.stop()
    session.expire_all()
    recorded = session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "web").order_by(StatusUpdate.id))
    assert [(u.action_id, u.new_status, u.note, u.revised_due, u.by_text) for u in recorded] == [
        (ids["P1"], "amber", "Data from payroll arrives late", None, "priya@c.example"),
        (ids["P5"], "green", None, dt.date(2028, 6, 30), "priya@c.example")]
