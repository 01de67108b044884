"""The answer page behind the one-click links in every nudge.

``GET /answer/<token>?s=<status>`` shows the action with the clicked status already chosen;
``POST`` to the same address records it, as the person the signed token names. Nothing is
recorded on GET: mail systems open links to scan them, and a scanner following all five
buttons must not answer for the owner. The token is checked with
``bot.links.read_answer_token`` (signature and age); the POST must carry the form's ``csrf``
field (bot.web.forms) or nothing is recorded; the answer path checks that the person may still
change the action.

The handlers (``show``, ``submit``) are plain sync functions run in the thread pool Starlette
uses (anyio's), with the sync database code, at most as many at once as the engine's pool keeps
connections; only reading the body is async. A database that stays busy past
its bounded wait gives a 503 page saying the answer was not recorded, with the form still
filled in.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from bot.inbound import MAX_DUE_CHARS, Policy, Reply, ReplyResult, handle_reply
from bot.links import BadAnswerLink, chosen_status, read_answer_token
from bot.render import environment
from bot.web.forms import BadRequest, csrf_token, from_our_page, new_nonce, read_form
from bot.web.pages import page
from chaser.errors import InvalidValue, NotAllowed
from storage import db
from storage.dates import parse_when
from storage.db import DatabaseBusy, explain, session_factory
from storage.models import Action, Clock, Person
from storage.statuses import STATUS_LABELS
from storage.updates import NOTE_MAX_CHARS, can_change, current_state

log = logging.getLogger("chaser.web")


class _Busy(Exception):
    """The driver-level error of an answer that waited too long for its turn to write."""

_HINTS = {"green": "on track", "amber": "at risk: it may slip", "red": "off track: it will not happen as planned",
          "complete": "done"}
CHOICES = (*((status, STATUS_LABELS[status], hint) for status, hint in _HINTS.items()),
           ("", "No change", "just add a note or a new date"))
HANDLERS = 40  # at most, as Starlette's own thread pool


@dataclass(frozen=True)
class FormAnswer:
    """One press of "Send my update": everything the one inbound path needs to record it."""

    action: Action
    person: Person  # whom the signed link names
    status: str | None  # one of STATUS_LABELS, or None for "No change"
    note: str | None
    due_text: str  # as typed ("" for none); parsed where it is recorded
    outbox_id: int  # the message whose link was opened (the token's "o")
    external_id: str  # the form's one-time nonce: the same page sent twice is one answer
    at: dt.datetime  # the app's clock when the form arrived


@dataclass(frozen=True)
class _Link:
    """An answer link that passed ``read_answer_token``."""

    text: str  # the token as it appears in the address
    payload: dict[str, Any]  # {"a": action id, "p": person id, "o": outbox id}

    @property
    def action_id(self) -> int:
        return int(self.payload["a"])

    @property
    def person_id(self) -> int:
        return int(self.payload["p"])

    @property
    def outbox_id(self) -> int:
        return int(self.payload["o"])


class AnswerPages:
    """The answer form's routes, bound to one database and one link secret."""

    def __init__(self, engine: Engine, *, secret: str, edi_leads: Iterable[str], max_age_days: int,
                 clock: Clock, updatable: Iterable[str] = ()) -> None:
        self.sessions = session_factory(engine)
        # SQLite has one writer at a time. This process's answers take turns on a lock, which
        # hands over the moment a commit ends; left to SQLite's busy handler, a waiting writer
        # sleeps 1-100 ms between tries, and eight owners answering at once wait for the sleeps
        # (bench/web_bench.py: 270/s -> 375/s). Other processes still meet the busy handler.
        self._writes = threading.Lock() if engine.dialect.name == "sqlite" else None
        # As many handlers at once as the engine keeps connections: more would only wait for
        # one, or open and close an overflow connection per request (SQLAlchemy closes those
        # on return), which is what made PostgreSQL's slowest answers slow.
        size = engine.pool.size() if isinstance(engine.pool, QueuePool) else HANDLERS
        self.handlers = anyio.CapacityLimiter(max(1, min(size, HANDLERS)))
        self.secret = secret
        self.edi_leads = tuple(edi_leads)
        self.policy = Policy(edi_leads=self.edi_leads, updatable=tuple(updatable))
        self.max_age = max_age_days * 86400
        self.clock = clock

    def routes(self) -> list[BaseRoute]:
        return [Route("/answer/{token}", self.answer, methods=["GET", "POST"], name="answer")]

    async def answer(self, request: Request) -> Response:
        text = request.path_params["token"]
        try:
            link = _Link(text, read_answer_token(self.secret, text, self.max_age, now=self.clock()))
        except BadAnswerLink as exc:
            return page(400, "This link does not work", [str(exc)])
        if request.method != "POST":
            return await anyio.to_thread.run_sync(self.show, link, request.url.query, limiter=self.handlers)
        try:
            fields = await read_form(request)  # all of it, before the database is touched
        except BadRequest as exc:
            # Closed after the answer: what else this client sends is not worth reading.
            return page(exc.status, "Your update was not recorded", [str(exc)], headers={"Connection": "close"})
        if not from_our_page(self.secret, text, fields):
            return page(403, "Your update was not recorded", [
                "This form did not come from the page your link opens, so nothing was recorded.",
                "Please open the link in the reminder again and send your update from that page.",
            ])
        return await anyio.to_thread.run_sync(self.submit, link, fields, limiter=self.handlers)

    def show(self, link: _Link, query: str) -> Response:
        with self.sessions() as session:
            found = self._find(session, link)
            if isinstance(found, Response):
                return found
            action, person = found
            if not can_change(session, action, person, self.edi_leads):
                return page(403, "You are no longer an owner of this action", [
                    f"{action.ref}: {action.title}",
                    f"{person.email} does not hold an owner role for {action.ref} any more, so this link "
                    "cannot record an update. If you still look after it, ask the EDI lead to update the "
                    "people directory.",
                ])
            chosen = chosen_status(query)
            return self.form(session, link, action, person, chosen=chosen or "")

    def submit(self, link: _Link, fields: dict[str, str]) -> Response:
        with self.sessions() as session:
            found = self._find(session, link)
            if isinstance(found, Response):
                return found
            action, person = found
            status = fields.get("status") or None
            note = (fields.get("note") or "").strip() or None
            due_text = (fields.get("due") or "").strip()
            retry = {"chosen": status or "", "note": note or "", "due_input": due_text}
            try:
                with self.one_writer():
                    result = self.record(session, FormAnswer(action=action, person=person, status=status, note=note,
                                                             due_text=due_text, outbox_id=link.outbox_id,
                                                             external_id=fields["nonce"], at=self.clock()))
                    session.commit()  # the reply is kept whatever became of it (chaser replies)
                if result.outcome == "not_allowed":
                    raise NotAllowed(result.detail or "you may not update this action")
                if result.outcome not in ("applied", "duplicate"):  # a double submit was recorded once
                    raise InvalidValue(result.detail or "your update could not be read")
            except InvalidValue as exc:
                session.rollback()
                return self.form(session, link, action, person, error=str(exc), status_code=422, **retry)
            except NotAllowed as exc:
                session.rollback()
                return page(403, "You cannot update this action", [str(exc)])
            except OperationalError as exc:
                # SQLite's write lock held past busy_timeout, a PostgreSQL lock_timeout, a server gone:
                # say so, keep what they typed, and let them press the button again.
                session.rollback()
                busy = isinstance(explain(exc), DatabaseBusy)
                log.warning("web answer for %s by %s NOT recorded: %s", action.ref, person.email, exc.orig)
                message = ("Your update was not recorded: the tracker is busy just now. Please press "
                           "“Send my update” again in a minute; what you wrote is still below." if busy else
                           "Your update was not recorded: the tracker's database is not available. Please try "
                           "again in a minute; what you wrote is still below.")
                return self.form(session, link, action, person, error=message, status_code=503, **retry)
            # What was recorded, as it now stands (the history is read again only for "No change").
            shown = status or current_state(session, action).status
            lines = [f"{action.ref}: {action.title}", f"Status: {STATUS_LABELS.get(shown or '', 'not reported')}."]
            if note:
                lines.append(f"Note: {note}")
            if due_text:
                due = parse_when(due_text)
                lines.append(f"Due: {due.end.isoformat() if due.end else due.raw}.")
            lines.append("You can close this page. The EDI lead sees your update in the tracker.")
            log.info("web answer recorded for %s by %s (message %d)", action.ref, person.email, link.outbox_id)
            return page(200, f"Thank you, {person.name}", lines)

    @contextlib.contextmanager
    def one_writer(self) -> Iterator[None]:
        """This process's turn to write (SQLite; on PostgreSQL, no turn needed): the answer form's
        and the page of all one's actions (bot.web.mine) share it."""
        if self._writes is None:
            yield
            return
        # Bounded like the database's own wait: a writer stuck behind another process's lock
        # must not hold every later answer for its whole wait in turn.
        if not self._writes.acquire(timeout=db.LOCK_WAIT_SECONDS):
            raise OperationalError("waiting for this process's other answers", {}, _Busy("database is locked"))
        try:
            yield
        finally:
            self._writes.release()

    def record(self, session: Session, answer: FormAnswer) -> ReplyResult:
        """The form's answer through the one inbound path, which ties it to the message whose link
        was opened and de-duplicates on the form's nonce (the same page sent twice is one answer);
        the caller commits, taking SQLite's one-writer turn around both."""
        return handle_reply(session, Reply(
            via="web", sender=answer.person.email, received_at=answer.at, person_id=answer.person.id,
            action_ids=(answer.action.id,), outbox_id=answer.outbox_id, status=answer.status, note=answer.note,
            due_text=answer.due_text or None, external_id=answer.external_id), self.policy)

    @staticmethod
    def _find(session: Session, link: _Link) -> tuple[Action, Person] | Response:
        found = session.execute(select(Action, Person).join(Person, Person.id == link.person_id)
                                .where(Action.id == link.action_id)).first()
        if found is None:  # either is gone (one query for both: every request asks)
            return page(410, "This action is no longer in the tracker", ["Ask the EDI lead if it was replaced."])
        return found[0], found[1]

    def form(self, session: Session, link: _Link, action: Action, person: Person, *, chosen: str,
             error: str | None = None, note: str = "", due_input: str = "", status_code: int = 200) -> Response:
        try:
            state = current_state(session, action)
            due = state.due_text or (state.due.isoformat() if state.due else "no date")
            current = STATUS_LABELS.get(state.status or "", "not reported yet")
        except OperationalError:  # the page that says the database is busy must not need it
            session.rollback()
            due = action.due_text or (action.due_date.isoformat() if action.due_date else "no date")
            current = "not available just now"
        html = environment().get_template("web/answer.html.j2").render(
            action=action, plan=action.plan.name, due=due, current=current, person=person.name, choices=CHOICES,
            chosen=chosen, error=error, note=note, due_input=due_input, note_max=NOTE_MAX_CHARS,
            due_max=MAX_DUE_CHARS,
            # A fresh nonce each time the form is shown: a corrected form sent after a refusal
            # is a new answer, not a double submit of the refused one.
            csrf=csrf_token(self.secret, link.text), nonce=new_nonce(),
        )
        return HTMLResponse(html, status_code=status_code)
