"""The page of all my actions: one link in every nudge, every open action in one form.

``GET /mine/<token>`` lists every open (not complete) action the person the signed token names
answers for as themselves: those whose owner role they hold, or hold as an owner's delegate or
cover (storage.tracker.actions_held; an EDI lead sees their own actions, not the whole plan),
grouped by plan, each with its due date, status, last note and inputs for a new status, a note
and a revised due date. Nothing is recorded on GET (mail scanners open links).

``POST`` to the same address records every row that changed — a row left at "No change" with
no note and no date is not an answer — through the one inbound path, ``handle_reply`` with
``via="web"``: one Reply per row, ``external_id`` the form's nonce and the action's id (the same
page sent twice records once), tied to the message whose link was opened (the token's ``o``),
all in one commit. Rows are recorded or refused one by one: a date that cannot be read, or an
action the person no longer answers for, is shown again with the reason next to that row and
what they typed kept, while the other rows are recorded. The form carries the same ``csrf`` and
``nonce`` as the answer form (bot.web.forms), with limits for many rows that are still bounds.

It shares the answer pages' database, secret, clock, thread limit and writer turn
(bot.web.answer.AnswerPages): both write the same tracker.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from bot.inbound import MAX_DUE_CHARS, Reply, ReplyResult, handle_reply
from bot.links import BadAnswerLink, read_mine_token
from bot.render import environment
from bot.web.answer import CHOICES, AnswerPages
from bot.web.forms import BadRequest, csrf_token, from_our_page, new_nonce, read_form
from bot.web.pages import page
from storage.dates import format_day, parse_when
from storage.db import DatabaseBusy, explain
from storage.models import Action, Person, Reply as ReplyRow
from storage.statuses import STATUS_LABELS
from storage.tracker import open_actions
from storage.updates import NOTE_MAX_CHARS, CurrentState, current_states

log = logging.getLogger("chaser.web")

MAX_ROWS = 100  # actions on one page: a person with more sees these first and is told so
MAX_FIELDS = 2 + 3 * MAX_ROWS  # csrf, nonce, and a status, note and date per row
# A bound, well under the app's body limit (bot.web.app.MAX_BODY_BYTES): many short notes fit,
# a hundred 5,000-character ones do not (the page says so; the answer form takes a long one).
MAX_FORM_BYTES = 400_000
_FIELD = re.compile(r"(status|note|due)-([0-9]{1,12})")


@dataclass(frozen=True)
class _Typed:
    """What the person put in one row of the form."""

    status: str | None
    note: str | None
    due_text: str

    @property
    def changed(self) -> bool:
        return self.status is not None or self.note is not None or bool(self.due_text)


@dataclass
class _Row:
    """One action as the page shows it, with what was typed and what became of it."""

    action: Action
    due: str
    current: str  # the status, in words
    last_note: str | None
    chosen: str = ""
    note: str = ""
    due_input: str = ""
    error: str | None = None
    recorded: str | None = None  # what was just recorded, in words


@dataclass
class _Outcome:
    recorded: dict[int, str] = field(default_factory=dict)  # action id -> what was recorded, in words
    refused: dict[int, str] = field(default_factory=dict)  # action id -> why not


class MinePages:
    """The route of the page of all one's actions, on the answer pages' database and secret."""

    def __init__(self, answers: AnswerPages) -> None:
        self.answers = answers

    def routes(self) -> list[BaseRoute]:
        return [Route("/mine/{token}", self.mine, methods=["GET", "POST"], name="mine")]

    async def mine(self, request: Request) -> Response:
        token = request.path_params["token"]
        answers = self.answers
        try:
            link = read_mine_token(answers.secret, token, answers.max_age, now=answers.clock())
        except BadAnswerLink as exc:
            return page(400, "This link does not work", [str(exc)])
        if request.method != "POST":
            return await anyio.to_thread.run_sync(self.show, token, link, limiter=answers.handlers)
        try:
            fields = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=MAX_FIELDS)
        except BadRequest as exc:
            return page(exc.status, "Your updates were not recorded", [str(exc)], headers={"Connection": "close"})
        if not from_our_page(answers.secret, token, fields):
            return page(403, "Your updates were not recorded", [
                "This form did not come from the page your link opens, so nothing was recorded.",
                "Please open the link in the reminder again and send your updates from that page.",
            ])
        return await anyio.to_thread.run_sync(self.submit, token, link, fields, limiter=answers.handlers)

    def show(self, token: str, link: dict[str, Any]) -> Response:
        with self.answers.sessions() as session:
            person = session.get(Person, link["p"])
            if person is None:
                return _gone()
            return self.form(session, token, person)

    def submit(self, token: str, link: dict[str, Any], fields: dict[str, str]) -> Response:
        typed = _rows_typed(fields)
        changed = {action_id: row for action_id, row in typed.items() if row.changed}
        with self.answers.sessions() as session:
            person = session.get(Person, link["p"])
            if person is None:
                return _gone()
            if not changed:
                return self.form(session, token, person, typed=typed, status_code=422, notice=(
                    "Nothing was recorded: every row was left at “No change” with no note and no date. "
                    "Choose a status, write a note or a new date for the actions that moved."))
            try:
                with self.answers.one_writer():
                    outcome = self.record(session, person, link["o"], fields["nonce"], changed)
                    session.commit()  # the replies are kept whatever became of them (chaser replies)
            except OperationalError as exc:
                session.rollback()
                busy = isinstance(explain(exc), DatabaseBusy)
                log.warning("web updates by %s NOT recorded: %s", person.email, exc.orig)
                notice = ("Nothing was recorded: the tracker is busy just now. Please press “Save my updates” "
                          "again in a minute; what you wrote is still below." if busy else
                          "Nothing was recorded: the tracker's database is not available. Please try again in "
                          "a minute; what you wrote is still below.")
                return self.form(session, token, person, typed=typed, status_code=503, notice=notice)
            log.info("web updates by %s (message %d): %d recorded, %d refused", person.email, link["o"],
                     len(outcome.recorded), len(outcome.refused))
            return self.form(session, token, person, typed=typed, outcome=outcome,
                             status_code=422 if outcome.refused else 200)

    def record(self, session: Session, person: Person, outbox_id: int, nonce: str,
               changed: dict[int, _Typed]) -> _Outcome:
        """Each changed row through the one inbound path, one Reply per action; the caller
        commits once, in this process's turn to write."""
        outcome = _Outcome()
        at = self.answers.clock()
        for action_id, row in changed.items():
            if session.get(Action, action_id) is None:
                outcome.refused[action_id] = "this action is no longer in the tracker"
                continue
            result = handle_reply(session, Reply(
                via="web", sender=person.email, received_at=at, person_id=person.id, action_ids=(action_id,),
                outbox_id=outbox_id, status=row.status, note=row.note, due_text=row.due_text or None,
                external_id=f"{nonce}:{action_id}"), self.answers.policy)
            result_outcome, detail = _first_outcome(session, result)
            if result_outcome == "applied":
                outcome.recorded[action_id] = _recorded_words(row)
            else:
                outcome.refused[action_id] = detail or "this update could not be recorded"
        return outcome

    def form(self, session: Session, token: str, person: Person, *, typed: dict[int, _Typed] | None = None,
             outcome: _Outcome | None = None, notice: str | None = None, status_code: int = 200) -> Response:
        """The page, as the tracker stands now. After a Save: what was recorded, and every refused
        row again (even one the person no longer answers for) with its reason and what they typed."""
        typed = typed or {}
        outcome = outcome or _Outcome()
        try:
            listed = open_actions(session, person.id)
        except OperationalError:  # the page that says the database is busy must not need it
            session.rollback()
            return page(503, "The tracker is busy", ["Nothing was recorded.", "Please try again in a minute."])
        total = len(listed)
        # A refused row stays on the page whatever its state (a no longer owned action, say);
        # a recorded one only while it is open, but it is named in the summary either way.
        # Never more than MAX_ROWS rows in all, so the page sent back fits the form's limits.
        open_ids = {action.id for action, _ in listed}
        extra = [session.get(Action, i) for i in outcome.refused if i not in open_ids]
        extra_actions = [a for a in extra if a is not None][:MAX_ROWS]
        listed = listed[:MAX_ROWS - len(extra_actions)]
        on_page = {action.id for action, _ in listed}
        states = current_states(session, extra_actions)
        rows_by_plan: dict[str, list[_Row]] = {}
        for action, state in [*listed, *((a, states[a.id]) for a in extra_actions)]:
            row = _row(action, state)
            if action.id in outcome.refused or (notice and action.id in typed):
                kept = typed.get(action.id)
                if kept is not None:
                    row.chosen, row.note, row.due_input = kept.status or "", kept.note or "", kept.due_text
                row.error = outcome.refused.get(action.id)
            row.recorded = outcome.recorded.get(action.id)
            rows_by_plan.setdefault(action.plan.name, []).append(row)
        recorded = [(session.get(Action, i), words) for i, words in outcome.recorded.items()]
        missing = [why for i, why in outcome.refused.items() if i not in on_page and session.get(Action, i) is None]
        html = environment().get_template("web/mine.html.j2").render(
            person=person.name, plans=rows_by_plan, total=total, hidden=total - len(listed),
            choices=CHOICES, recorded=[(a.ref, a.title, words) for a, words in recorded if a is not None],
            refused=len(outcome.refused), missing=missing, notice=notice, note_max=NOTE_MAX_CHARS,
            due_max=MAX_DUE_CHARS, saved=bool(outcome.recorded or outcome.refused),
            # A fresh nonce each time the form is shown: the corrected rows sent after a refusal
            # are new answers, not a double submit of the refused ones.
            csrf=csrf_token(self.answers.secret, token), nonce=new_nonce(),
        )
        return HTMLResponse(html, status_code=status_code)


def _gone() -> Response:
    return page(410, "You are no longer in the people directory",
                ["This link cannot record updates any more. Ask the EDI lead if you still look after actions."])


def _rows_typed(fields: dict[str, str]) -> dict[int, _Typed]:
    """action id -> what the form says for it; fields that are not a row's are left alone."""
    ids: dict[int, None] = {}
    for name in fields:
        match = _FIELD.fullmatch(name)
        if match:
            ids[int(match.group(2))] = None
    return {
        action_id: _Typed(status=fields.get(f"status-{action_id}") or None,
                          note=(fields.get(f"note-{action_id}") or "").strip() or None,
                          due_text=(fields.get(f"due-{action_id}") or "").strip())
        for action_id in ids
    }


def _first_outcome(session: Session, result: ReplyResult) -> tuple[str, str | None]:
    """The outcome of a reply, or for a repeat of the same page the outcome it was recorded with."""
    if result.outcome != "duplicate":
        return result.outcome, result.detail
    copy = session.get(ReplyRow, result.reply_id)
    first = session.get(ReplyRow, copy.duplicate_of) if copy is not None and copy.duplicate_of else None
    if first is None:
        return "applied", None  # recorded once, by the first copy (since deleted)
    return first.outcome, first.detail


def _recorded_words(row: _Typed) -> str:
    parts = []
    if row.status:
        parts.append(f"status {STATUS_LABELS.get(row.status, row.status)}")
    if row.due_text:
        due = parse_when(row.due_text)
        parts.append(f"due {format_day(due.end) if due.end else due.raw}")
    if row.note:
        parts.append("a note")
    return ", ".join(parts)


def _row(action: Action, state: CurrentState) -> _Row:
    due = state.due_text or (state.due.isoformat() if state.due else "no date set")
    current = STATUS_LABELS.get(state.status or "", "not reported yet")
    return _Row(action=action, due=due, current=current, last_note=state.note)
