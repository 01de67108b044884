"""The local web form behind the one-click answer links in every nudge.

``GET /answer/<token>?s=<status>`` shows the action with the clicked status already chosen; ``POST`` to
the same address records it through ``record_update`` (channel ``web``), as the person the
signed token names. Nothing is recorded on GET: mail systems open links to scan them, and a
scanner following all five buttons must not answer for the owner. The token is checked with
``bot.links.read_answer_token`` (signature and age), and ``record_update`` checks that the
person may still change the action.

A small WSGI app served by the standard library's ``wsgiref`` in a thread of ``chaser run``:
it listens on the host and port of ``[web] base_url`` (127.0.0.1:8080 by default).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.links import BadAnswerLink, chosen_status, read_answer_token
from bot.render import environment
from chaser.errors import InvalidValue, NotAllowed
from storage.dates import parse_when
from storage.db import session_factory
from storage.models import Action, Person
from storage.updates import current_state, record_update

log = logging.getLogger("chaser.web")
Clock = Callable[[], dt.datetime]
StartResponse = Callable[..., Any]
CHOICES = (
    ("green", "Green", "on track"),
    ("amber", "Amber", "at risk: it may slip"),
    ("red", "Red", "off track: it will not happen as planned"),
    ("complete", "Complete", "done"),
    ("", "No change", "just add a note or a new date"),
)
STATUS_WORDS = {"green": "Green", "amber": "Amber", "red": "Red", "complete": "Complete", "not_started": "Not started"}
MAX_FORM_BYTES = 20_000


class AnswerForm:
    """The WSGI application: one page per answer link."""

    def __init__(self, engine: Engine, *, secret: str, edi_leads: Iterable[str] = (), max_age_days: int = 60,
                 clock: Clock | None = None) -> None:
        self.sessions = session_factory(engine)
        self.secret = secret
        self.edi_leads = tuple(edi_leads)
        self.max_age = max_age_days * 86400
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if not path.startswith("/answer/") or method not in ("GET", "POST"):
            return self.page(start_response, "404 Not Found", "Page not found",
                             ["This address is not a Chaser answer link."])
        try:
            token = read_answer_token(self.secret, path.removeprefix("/answer/"), self.max_age)
        except BadAnswerLink as exc:
            return self.page(start_response, "400 Bad Request", "This link does not work", [str(exc)])
        with self.sessions() as session:
            action = session.get(Action, token["a"])
            person = session.get(Person, token["p"])
            if action is None or person is None:
                return self.page(start_response, "410 Gone", "This action is no longer in the tracker",
                                 ["Ask the EDI lead if it was replaced."])
            if method == "GET":
                chosen = chosen_status(environ.get("QUERY_STRING", ""), token)
                return self.form(start_response, session, action, person, chosen=chosen or "")
            fields = self.read_form(environ)
            return self.submit(start_response, session, action, person, fields)

    @staticmethod
    def read_form(environ: dict[str, Any]) -> dict[str, str]:
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_FORM_BYTES)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length).decode("utf-8", errors="replace") if length else ""
        return {key: values[0] for key, values in parse_qs(body).items()}

    def submit(self, start_response: StartResponse, session: Session, action: Action, person: Person,
               fields: dict[str, str]) -> list[bytes]:
        status = fields.get("status") or None
        note = (fields.get("note") or "").strip() or None
        due_text = (fields.get("due") or "").strip()
        try:
            if status is not None and status not in STATUS_WORDS:
                raise InvalidValue("choose one of the statuses shown")
            record_update(session, action, channel="web", by=person, status=status, note=note,
                          due=parse_when(due_text) if due_text else None, at=self.clock(), edi_leads=self.edi_leads)
            session.commit()
        except InvalidValue as exc:
            session.rollback()
            return self.form(start_response, session, action, person, chosen=status or "", error=str(exc),
                             note=note or "", due_input=due_text, status_line="422 Unprocessable Entity")
        except NotAllowed as exc:
            session.rollback()
            return self.page(start_response, "403 Forbidden", "You cannot update this action", [str(exc)])
        state = current_state(session, action)
        lines = [f"{action.ref}: {action.title}", f"Status: {STATUS_WORDS.get(state.status or '', 'not reported')}."]
        if note:
            lines.append(f"Note: {note}")
        if due_text:
            lines.append(f"Due: {state.due.isoformat() if state.due else state.due_text}.")
        lines.append("You can close this page. The EDI lead sees your update in the tracker.")
        log.info("web answer recorded for %s by %s", action.ref, person.email)
        return self.page(start_response, "200 OK", f"Thank you, {person.name}", lines)

    def form(self, start_response: StartResponse, session: Session, action: Action, person: Person, *, chosen: str,
             error: str | None = None, note: str = "", due_input: str = "", status_line: str = "200 OK") -> list[bytes]:
        state = current_state(session, action)
        due = state.due_text or (state.due.isoformat() if state.due else "no date")
        html = environment().get_template("web/answer.html.j2").render(
            action=action, plan=action.plan.name, due=due, current=STATUS_WORDS.get(state.status or "", "not reported yet"),
            person=person.name, choices=CHOICES, chosen=chosen, error=error, note=note, due_input=due_input,
        )
        return self.respond(start_response, status_line, html)

    def page(self, start_response: StartResponse, status: str, title: str, lines: list[str]) -> list[bytes]:
        html = environment().get_template("web/message.html.j2").render(title=title, lines=lines)
        return self.respond(start_response, status, html)

    @staticmethod
    def respond(start_response: StartResponse, status: str, html: str) -> list[bytes]:
        body = html.encode("utf-8")
        start_response(status, [
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
        ])
        return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("web: " + format, *args)


def listen_address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def start_server(app: AnswerForm, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve the form in a daemon thread; ``server.shutdown()`` stops it."""
    server = make_server(host, port, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="chaser-web", daemon=True)
    thread.start()
    return server, thread
