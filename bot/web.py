"""The local web form behind the one-click answer links in every nudge.

``GET /answer/<token>?s=<status>`` shows the action with the clicked status already chosen; ``POST`` to
the same address records it through ``record_update`` (channel ``web``), as the person the
signed token names. Nothing is recorded on GET: mail systems open links to scan them, and a
scanner following all five buttons must not answer for the owner. The token is checked with
``bot.links.read_answer_token`` (signature and age), and ``record_update`` checks that the
person may still change the action.

A small WSGI app served by the standard library's WSGI server in a thread of ``chaser run``: it
listens on the host and port of ``[web] base_url`` (127.0.0.1:8080 by default). Nothing in a
request is trusted: a body must declare its length, at most MAX_FORM_BYTES, and arrive whole
(else 400/411/413, nothing recorded, never cut); each connection has REQUEST_TIMEOUT_SECONDS
to send its request and each request is handled in its own thread (at most MAX_WORKERS at
once, the rest wait in the listen backlog), so a slow or idle client never blocks the others.
A database that stays busy past its bounded wait gives a 503 page saying the answer was not
recorded, with the form still filled in; any other failure gives a page, never a bare 500.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.links import BadAnswerLink, chosen_status, read_answer_token
from bot.render import environment
from chaser.errors import InvalidValue, NotAllowed
from storage.dates import parse_when
from storage.db import DatabaseBusy, explain, session_factory
from storage.models import Action, Clock, Person
from storage.statuses import STATUS_LABELS
from storage.updates import NOTE_MAX_CHARS, can_change, current_state, record_update

log = logging.getLogger("chaser.web")
StartResponse = Callable[..., Any]
_HINTS = {"green": "on track", "amber": "at risk: it may slip", "red": "off track: it will not happen as planned",
          "complete": "done"}
CHOICES = (*((status, STATUS_LABELS[status], hint) for status, hint in _HINTS.items()),
           ("", "No change", "just add a note or a new date"))
MAX_FORM_BYTES = 20_000  # a 5,000-character note, percent-encoded, fits with room to spare
MAX_DUE_CHARS = 100
FORM_FIELDS = 10  # status, note, due: anything with many more fields is not our form
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_WORKERS = 32
LISTEN_BACKLOG = 256
DRAIN_BYTES = 1_000_000  # of a too-large body, read and dropped before answering 413


class BadRequest(Exception):
    """A request the form refuses before reading anything else: ``status`` and a sentence."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


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
        try:
            return self.handle(environ, start_response)
        except OperationalError as exc:  # the database went away or stayed locked while reading
            log.warning("web: database unavailable: %s", exc.orig)
            return self.page(start_response, "503 Service Unavailable", "The tracker is busy",
                             [f"Nothing was recorded ({explain(exc)}).", "Please try again in a minute."])
        except Exception:  # noqa: BLE001 - a page and a log line, never a bare 500 or a dead thread
            log.exception("web: %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return self.page(start_response, "500 Internal Server Error", "Something went wrong",
                             ["Nothing was recorded. Please try again later, or reply to the reminder instead."])

    def handle(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if not path.startswith("/answer/") or method not in ("GET", "POST"):
            return self.page(start_response, "404 Not Found", "Page not found",
                             ["This address is not a Chaser answer link."])
        try:
            token = read_answer_token(self.secret, path.removeprefix("/answer/"), self.max_age, now=self.clock())
        except BadAnswerLink as exc:
            return self.page(start_response, "400 Bad Request", "This link does not work", [str(exc)])
        fields: dict[str, str] = {}
        if method == "POST":
            try:
                fields = read_form(environ)  # all of it, before the database is touched
            except BadRequest as exc:
                return self.page(start_response, exc.status, "Your update was not recorded", [str(exc)])
        with self.sessions() as session:
            action = session.get(Action, token["a"])
            person = session.get(Person, token["p"])
            if action is None or person is None:
                return self.page(start_response, "410 Gone", "This action is no longer in the tracker",
                                 ["Ask the EDI lead if it was replaced."])
            if method == "GET":
                if not can_change(session, action, person, self.edi_leads):
                    return self.page(start_response, "403 Forbidden", "You are no longer an owner of this action", [
                        f"{action.ref}: {action.title}",
                        f"{person.email} does not hold an owner role for {action.ref} any more, so this link "
                        "cannot record an update. If you still look after it, ask the EDI lead to update the "
                        "people directory.",
                    ])
                chosen = chosen_status(environ.get("QUERY_STRING", ""))
                return self.form(start_response, session, action, person, chosen=chosen or "")
            return self.submit(start_response, session, action, person, fields)

    def submit(self, start_response: StartResponse, session: Session, action: Action, person: Person,
               fields: dict[str, str]) -> list[bytes]:
        status = fields.get("status") or None
        note = (fields.get("note") or "").strip() or None
        due_text = (fields.get("due") or "").strip()
        retry = {"chosen": status or "", "note": note or "", "due_input": due_text}
        try:
            if status is not None and status not in STATUS_LABELS:
                raise InvalidValue("choose one of the statuses shown")
            if len(due_text) > MAX_DUE_CHARS:
                raise InvalidValue(f"the new due date is longer than {MAX_DUE_CHARS} characters: write just the date")
            record_update(session, action, channel="web", by=person, status=status, note=note,
                          due=parse_when(due_text) if due_text else None, at=self.clock(), edi_leads=self.edi_leads)
            session.commit()
        except InvalidValue as exc:
            session.rollback()
            return self.form(start_response, session, action, person, error=str(exc),
                             status_line="422 Unprocessable Entity", **retry)
        except NotAllowed as exc:
            session.rollback()
            return self.page(start_response, "403 Forbidden", "You cannot update this action", [str(exc)])
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
            return self.form(start_response, session, action, person, error=message,
                             status_line="503 Service Unavailable", **retry)
        state = current_state(session, action)
        lines = [f"{action.ref}: {action.title}", f"Status: {STATUS_LABELS.get(state.status or '', 'not reported')}."]
        if note:
            lines.append(f"Note: {note}")
        if due_text:
            lines.append(f"Due: {state.due.isoformat() if state.due else state.due_text}.")
        lines.append("You can close this page. The EDI lead sees your update in the tracker.")
        log.info("web answer recorded for %s by %s", action.ref, person.email)
        return self.page(start_response, "200 OK", f"Thank you, {person.name}", lines)

    def form(self, start_response: StartResponse, session: Session, action: Action, person: Person, *, chosen: str,
             error: str | None = None, note: str = "", due_input: str = "", status_line: str = "200 OK") -> list[bytes]:
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


def read_form(environ: dict[str, Any]) -> dict[str, str]:
    """The fields of a form POST, read whole or not at all (BadRequest)."""
    if environ.get("HTTP_TRANSFER_ENCODING"):
        _drain(environ["wsgi.input"], DRAIN_BYTES)
        raise BadRequest("411 Length Required", "The form must be sent with its length; please use the form's button.")
    declared = (environ.get("CONTENT_LENGTH") or "").strip()
    if not declared:
        _drain(environ["wsgi.input"], DRAIN_BYTES)
        raise BadRequest("411 Length Required", "The form arrived without its length; please use the form's button.")
    if not declared.isdigit():  # "-1", "1e9", " 12 34"...
        _drain(environ["wsgi.input"], DRAIN_BYTES)  # so the client reads our page, not a reset
        raise BadRequest("400 Bad Request", f"The form's length {declared[:20]!r} is not a number of bytes.")
    length = int(declared)
    if length > MAX_FORM_BYTES:
        _drain(environ["wsgi.input"], min(length, DRAIN_BYTES))  # so the client reads our page, not a reset
        raise BadRequest("413 Content Too Large", f"The update is larger than {MAX_FORM_BYTES // 1000} KB; a note "
                         f"can be at most {NOTE_MAX_CHARS:,} characters. Nothing was recorded.")
    try:
        body = environ["wsgi.input"].read(length) if length else b""
    except OSError:  # the client stopped sending (REQUEST_TIMEOUT_SECONDS) or went away
        body = b""
    if len(body) != length:
        raise BadRequest("400 Bad Request", "The form arrived cut short, so nothing was recorded; please send it again.")
    content_type = (environ.get("CONTENT_TYPE") or "application/x-www-form-urlencoded").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("415 Unsupported Media Type", "This is not the answer form's data.")
    try:
        text = body.decode("utf-8")
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=FORM_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("400 Bad Request", "The form's data could not be read, so nothing was recorded.") from None
    return {key: values[0] for key, values in parsed.items()}


def _drain(stream: Any, limit: int) -> None:
    """Read and drop up to ``limit`` bytes of a body we will not use, until the client stops
    sending (end of data, or the connection's timeout): closing on unread data makes TCP reset
    the connection, and the client would see a reset instead of our page."""
    try:
        while limit > 0:
            chunk = stream.read(min(limit, 65536))
            if not chunk:
                return
            limit -= len(chunk)
    except OSError:
        return


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS  # per connection: an idle or trickling client is dropped

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("web: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, at most MAX_WORKERS at once; the rest wait in the backlog."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG
    max_workers = MAX_WORKERS

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_workers)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # a free worker first: the accept loop waits, connections queue
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up mid-request: its problem, logged quietly.
        log.debug("web: connection from %s ended with an error", client_address[0], exc_info=True)


def listen_address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def start_server(app: AnswerForm, host: str, port: int, *, timeout: float | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve the form in a daemon thread; ``server.shutdown()`` stops it. ``timeout`` overrides
    REQUEST_TIMEOUT_SECONDS (tests)."""
    handler = _Handler if timeout is None else type("_Handler", (_Handler,), {"timeout": timeout})
    server = make_server(host, port, app, server_class=_Server, handler_class=handler)
    # A short poll so that shutdown() returns promptly (chaser run stopping, tests).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="chaser-web",
                              daemon=True)
    thread.start()
    return server, thread
