"""A real HTTPS server on loopback playing a Teams Workflows flow's webhook trigger ("When a
Teams webhook request is received", the template "Post to a channel when a webhook request is
received"), for the board digest's Teams card.

It checks what the trigger and the flow's "post card" step check: a POST to the flow's own path
with its signature in the query (404 ``WorkflowNotFound`` for another path, 401 for a wrong
signature), a JSON body (``Content-Type: application/json``) of at most
:data:`MAX_BYTES` (413 ``RequestEntityTooLarge`` otherwise), ``type`` ``message`` and exactly
one attachment of content type ``application/vnd.microsoft.card.adaptive`` whose ``content`` is
an ``AdaptiveCard`` of version 1.5 or lower (400 ``InvalidRequestContent`` otherwise). A post it
takes is answered ``202 Accepted`` with an empty body and an ``x-ms-workflow-run-id``, and the
card is kept (:attr:`WorkflowFake.cards`), as the channel would show it. Every request is
recorded (:attr:`WorkflowFake.requests`); :meth:`WorkflowFake.fail` answers the next posts with
429 and ``Retry-After``, a 5xx or a 4xx (a deleted flow: 404), as many times as asked.
"""
from __future__ import annotations

import itertools
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.bot.loopback import serving

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_BYTES = 28 * 1024  # Teams refuses a message over about 28 KB
MAX_VERSION = (1, 5)  # what Teams renders from a flow bot's post


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the fake answered


@dataclass
class Rule:
    status: int
    retry_after: str | None
    times: int


@dataclass
class WorkflowFake:
    """The flow's state and behaviour; :func:`workflow_server` serves it and sets :attr:`url`."""

    workflow_id: str = "8c0ffee5a1b24d6f9e2d1c3b4a596877"
    signature: str = "Zm9vYmFyLXNpZ25hdHVyZS1zZWNyZXQtdmFsdWU"
    base: str = ""
    requests: list[Request] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)  # what the channel shows, in order
    rules: list[Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runs: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def path(self) -> str:
        return f"/workflows/{self.workflow_id}/triggers/manual/paths/invoke"

    @property
    def url(self) -> str:
        """The URL the Workflows app shows for the trigger (the signature is what makes it secret)."""
        return (f"{self.base}{self.path}?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
                f"&sig={self.signature}")

    def fail(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` posts with ``status`` (and ``Retry-After``), before any check."""
        self.rules.append(Rule(status, retry_after, times))

    # -- the trigger ------------------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
            answer = self._answer(request)
            request.status = answer[0]
            return answer

    def _answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.path != self.path:
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        if request.method != "POST":
            return _error(405, "InvalidMethod", f"The trigger does not accept {request.method}.")
        if request.query.get("sig") != self.signature:
            return _error(401, "DirectApiInvalidSignature", "The provided signature is not valid.")
        for rule in self.rules:
            if rule.times > 0:
                rule.times -= 1
                headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
                codes = {429: "WorkflowRequestsThrottled", 404: "WorkflowNotFound", 500: "InternalServerError",
                         502: "BadGateway", 503: "ServiceUnavailable", 400: "InvalidRequestContent"}
                return _error(rule.status, codes.get(rule.status, "Error"), "As the test asked.", headers)
        problem = check(request.headers.get("content-type", ""), request.body)
        if problem is not None:
            return problem
        self.cards.append(json.loads(request.body)["attachments"][0]["content"])
        return 202, {"x-ms-workflow-run-id": f"08584{next(self._runs):015d}"}, b""


def check(content_type: str, body: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """What the trigger and the post step refuse, as they answer it; None when the post is fine."""
    if len(body) > MAX_BYTES:
        return _error(413, "RequestEntityTooLarge", f"The request is {len(body)} bytes; the limit is {MAX_BYTES}.")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _error(400, "InvalidRequestContent", "The request content must be JSON.")
    try:
        data = json.loads(body)
    except ValueError:
        return _error(400, "InvalidRequestContent", "The request content is not valid JSON.")
    if not isinstance(data, dict) or data.get("type") != "message":
        return _error(400, "InvalidRequestContent", "The request must be a message ('type': 'message').")
    attachments = data.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1 or not isinstance(attachments[0], dict):
        return _error(400, "InvalidRequestContent", "The message must have exactly one attachment.")
    (attachment,) = attachments
    if attachment.get("contentType") != CARD_CONTENT_TYPE or "contentUrl" not in attachment:
        return _error(400, "InvalidRequestContent", f"The attachment must be {CARD_CONTENT_TYPE}.")
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard" or not isinstance(card.get("body"), list):
        return _error(400, "InvalidRequestContent", "The attachment's content must be an AdaptiveCard.")
    try:
        version = tuple(int(part) for part in str(card.get("version", "")).split("."))
    except ValueError:
        version = (99,)
    if not version or version > MAX_VERSION:
        return _error(400, "InvalidRequestContent", f"Adaptive Card version {card.get('version')!r} is not supported.")
    return None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
    return status, {"Content-Type": "application/json", **(headers or {})}, body


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                          {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length) if length else b"")
        status, headers, body = self.server.fake.handle(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fake records requests itself
        pass


@contextmanager
def workflow_server(fake: WorkflowFake, ca: Any) -> Iterator[WorkflowFake]:
    """Serve ``fake`` over HTTPS on 127.0.0.1 (a certificate from the trustme ``ca``); ``fake.url`` works."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.fake = fake  # type: ignore[attr-defined]
    fake.base = f"https://127.0.0.1:{server.server_address[1]}"
    with serving(server, "teams-workflow-fake"):
        yield fake
