"""The one Starlette application: the answer pages, the page of all one's actions (bot.web.mine),
``/healthz``, and what the runtime mounts.

``create_app`` builds it; bot.web.server serves it with uvicorn. What every route gets:

- the security headers of bot.web.pages.SECURITY_HEADERS on every response (SecurityHeaders;
  a response that sets one of them itself keeps its own);
- a page, never a bare 500: an error Starlette knows (404, 405, 413) is an HTML page with its
  status, a database that stays busy or went away is a 503 page saying nothing was recorded,
  and anything else is logged and gets a 500 page (ErrorPages);
- bodies of at most MAX_BODY_BYTES (BodyLimit): a route reading more gets a 413 page; the
  answer form allows far less and says so in its own words (bot.web.forms.MAX_FORM_BYTES).

``GET /healthz`` is there when the runtime passes ``health``: a callable returning ``(healthy,
details)`` — the rules of ``chaser status`` — answered as JSON with 200 when healthy and 503
when not, for a load balancer or a monitoring probe. The web layer does not know the rules
(bot never imports jobs); a database that fails while they are checked is a 503 too.
"""
from __future__ import annotations

import http
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.web.answer import AnswerPages
from bot.web.mine import MinePages
from bot.web.pages import SECURITY_HEADERS, page
from bot.web.preferences import PreferencesPages
from storage.db import explain
from storage.models import Clock, utcnow

log = logging.getLogger("chaser.web")
Health = Callable[[], tuple[bool, dict[str, Any]]]
MAX_BODY_BYTES = 1_000_000  # any route: Slack and Teams events are a few KB


def create_app(engine: Engine, *, secret: str, edi_leads: Iterable[str] = (), max_age_days: int = 60,
               clock: Clock = utcnow, health: Health | None = None, routes: Sequence[BaseRoute] = (),
               updatable: Sequence[str] = (), channels: Sequence[str] = ()) -> Starlette:
    """The web app. ``secret`` signs answer links and form tokens; ``edi_leads`` may answer for
    anyone; links older than ``max_age_days`` are refused; ``clock`` is the time answers are
    recorded at; ``health`` serves ``/healthz``; ``routes`` are mounted as they are (the
    runtime's ``/slack/events``, ``/teams/messages``) and get the same headers, limits and
    error pages; ``updatable`` names the channels whose messages an answer updates in place
    (bot.inbound.updatable_channels of the configuration); ``channels`` is ``[channels] order``,
    the channels a person may choose on the preferences page."""
    edi_leads = tuple(edi_leads)
    answers = AnswerPages(engine, secret=secret, edi_leads=edi_leads, max_age_days=max_age_days, clock=clock,
                          updatable=updatable)
    preferences = PreferencesPages(engine, secret=secret, clock=clock, order=channels,
                                   edi_lead=edi_leads[0] if edi_leads else None)
    served: list[BaseRoute] = [*answers.routes(), *MinePages(answers).routes(), *preferences.routes()]
    if health is not None:
        served.append(Route("/healthz", _healthz(health), methods=["GET"], name="healthz"))
    served.extend(routes)
    return Starlette(
        routes=served,
        middleware=[Middleware(SecurityHeaders), Middleware(ErrorPages), Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)],
        exception_handlers={HTTPException: _http_error, OperationalError: _database_error},
    )


def _healthz(health: Health) -> Callable[[Request], Response]:
    def healthz(_request: Request) -> Response:  # sync: the rules query the database
        try:
            healthy, details = health()
        except OperationalError as exc:
            log.warning("healthz: database unavailable: %s", exc.orig)
            healthy, details = False, {"healthy": False, "problems": [str(explain(exc))]}
        return JSONResponse(details, status_code=200 if healthy else 503)

    return healthz


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """No route reads more than ``max_bytes`` of a body: reading past it (or reading at all,
    when the declared length is larger) raises a 413, which becomes the 413 page. A route that
    checks the length itself first (the answer form) answers in its own words. Unlike
    Starlette's RequestBodyLimitMiddleware, it never swaps a route's answer for plain text."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_long = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if too_long:
                raise HTTPException(413)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # a chunked body, which declares no length
                    raise HTTPException(413)
            return message

        await self.app(scope, limited_receive, send)


class ErrorPages:
    """A 500 page and a log line for anything a route did not expect, instead of Starlette's
    bare text (whose middleware sits outside SecurityHeaders and raises on to the server)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:  # nobody left to answer
            return
        except Exception:  # noqa: BLE001 - a page and a log line, never a bare 500
            log.exception("web: %s %s failed", scope.get("method"), scope.get("path"))
            if started:  # half a page is out: the server closes the connection
                raise
            response = page(500, "Something went wrong", [
                "Nothing was recorded. Please try again later, or reply to the reminder instead."])
            await response(scope, receive, send)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        return page(404, "Page not found", ["This address is not a Chaser page. Open the link exactly as it "
                                            "appears in the reminder."])
    if status == 413:
        return page(413, "Too large", [f"What was sent is larger than {MAX_BODY_BYTES // 1000:,} KB, so nothing "
                                       "was recorded."], headers={"Connection": "close"})
    try:
        title = http.HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    lines = ["This address cannot be used that way."] if status == 405 else ["Nothing was recorded."]
    return page(status, title, lines, headers=exc.headers)


async def _database_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationalError)
    log.warning("web: %s %s: database unavailable: %s", request.method, request.url.path, exc.orig)
    return page(503, "The tracker is busy", [f"Nothing was recorded ({explain(exc)}).", "Please try again in a minute."])
