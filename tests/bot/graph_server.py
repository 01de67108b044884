"""A real HTTPS server on loopback playing Microsoft Entra (the token endpoint msal uses) and
Microsoft Graph v1.0 for one mailbox, for the Microsoft 365 tests.

It checks what the real services check: the tenant in the authority, the client id, the
client secret (or a client assertion signed with the app's certificate), the scope
``https://graph.microsoft.com/.default``, the bearer token on every Graph call (401 otherwise),
the mailbox in the path (404 ``ErrorInvalidUser``), base64 MIME posted to ``sendMail``. It
holds a mailbox (Inbox, Sent Items, folders made by the app), records every request, and can be
told to answer a call with 429 and ``Retry-After``, a 5xx, or a 400/403/404 (:meth:`GraphFake.fail`).
It also plays the tenant's users and app catalog for installing the Teams app in a user's
personal scope (``POST /users/{id}/teamwork/installedApps``: 201, 409 when installed already,
404 for a user the tenant does not have).

Shapes follow the Graph v1.0 reference: ``sendMail`` answers 202 with no body and saves to Sent
Items; collections are ``{"value": [...], "@odata.nextLink": ...}`` paged with ``$top``/``$skip``
and newest first; ``move`` answers 201 with the moved message under a new id; errors are
``{"error": {"code": ..., "message": ...}}``.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import email
import email.policy
import itertools
import json
import re
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from tests.bot.entra import grant, openid_configuration
from tests.bot.loopback import serving

SCOPE = "https://graph.microsoft.com/.default"
WELL_KNOWN = {"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts", "deleteditems": "Deleted Items"}


@dataclass
class Request:
    method: str
    path: str  # unquoted, without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Message:
    id: str
    mime: bytes
    folder: str  # folder id
    is_read: bool
    received: str  # ISO 8601, as Graph writes receivedDateTime
    internet_message_id: str | None

    def resource(self, select: str | None = None) -> dict[str, Any]:
        parsed = email.message_from_bytes(self.mime, policy=email.policy.compat32)
        full = {"id": self.id, "internetMessageId": self.internet_message_id, "isRead": self.is_read,
                "receivedDateTime": self.received, "subject": parsed.get("Subject"), "parentFolderId": self.folder}
        if not select:
            return full
        return {key: value for key, value in full.items() if key == "id" or key in select.split(",")}


@dataclass
class Rule:
    method: str
    pattern: re.Pattern[str]  # searched in the request path
    status: int
    code: str
    retry_after: str | None
    times: int


@dataclass
class GraphFake:
    """The state and behaviour; :func:`graph_server` serves it. ``client_secret`` or
    ``certificate_pem`` (the app's certificate, for a signed client assertion) is what Entra accepts."""

    tenant: str = "5f1e0c1a-tenant"
    client_id: str = "0d6b2a33-chaser-app"
    client_secret: str | None = "s3cret-value"
    certificate_pem: bytes | None = None
    mailbox: str = "chaser@lambeth.example.gov.uk"
    expires_in: int = 3599
    reject_recipients: set[str] = field(default_factory=set)  # sendMail answers 400 ErrorInvalidRecipients
    # The tenant's users (Entra object id -> user principal name) and the apps in its catalog, for
    # POST /users/{id or upn}/teamwork/installedApps; installed holds (object id, catalog app id).
    users: dict[str, str] = field(default_factory=dict)
    catalog: set[str] = field(default_factory=set)
    installed: set[tuple[str, str]] = field(default_factory=set)
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)  # id -> displayName
    messages: dict[str, Message] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    rules: list[Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _clock: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for name, display in WELL_KNOWN.items():
            self.folders[f"AAMk-{name}"] = display

    # -- what tests use ---------------------------------------------------------------------
    def fail(self, method: str, path: str, status: int, *, code: str = "", retry_after: str | None = None,
             times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` whose path matches the regex ``path``
        with ``status`` (and Graph's error ``code``, and ``Retry-After``)."""
        default = {429: "TooManyRequests", 503: "ServiceNotAvailable", 500: "InternalServerError",
                   404: "ErrorItemNotFound", 400: "ErrorInvalidRequest", 403: "Forbidden"}
        self.rules.append(Rule(method, re.compile(path), status, code or default.get(status, "Error"), retry_after,
                               times))

    def deliver(self, mime: bytes, *, is_read: bool = False) -> str:
        """Put a message into the Inbox, as if it had just arrived; its id."""
        with self._lock:
            return self._store(mime, "AAMk-inbox", is_read)

    def folder_named(self, name: str) -> str | None:
        return next((fid for fid, display in self.folders.items() if display == name), None)

    def in_folder(self, name: str) -> list[Message]:
        fid = self.folder_named(name)
        return sorted((m for m in self.messages.values() if m.folder == fid), key=lambda m: m.received)

    @property
    def sent(self) -> list[bytes]:
        """The MIME of every message sendMail accepted, in order."""
        return [m.mime for m in self.in_folder("Sent Items")]

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    @property
    def token_requests(self) -> list[Request]:
        return self.calls("POST", r"/oauth2/v2\.0/token$")

    # -- serving ---------------------------------------------------------------------------
    def _store(self, mime: bytes, folder: str, is_read: bool) -> str:
        parsed = email.message_from_bytes(mime, policy=email.policy.compat32)
        tick = next(self._clock)
        received = (dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=tick))
        message_id = f"AAMkAD{uuid.uuid4().hex}"
        self.messages[message_id] = Message(message_id, mime, folder, is_read,
                                            received.strftime("%Y-%m-%dT%H:%M:%SZ"), parsed.get("Message-ID"))
        return message_id

    def handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
            for rule in self.rules:
                if rule.times > 0 and rule.method == request.method and rule.pattern.search(request.path):
                    rule.times -= 1
                    headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
                    return _error(rule.status, rule.code, f"Simulated {rule.status}", headers)
            return self._route(request)

    def _route(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        path = request.path
        tenant = re.fullmatch(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/token)", path)
        if tenant:
            if tenant.group(1) != self.tenant:
                return _json(400, {"error": "invalid_tenant", "error_description":
                                   f"AADSTS90002: Tenant '{tenant.group(1)}' not found."})
            if tenant.group(2).startswith("v2.0") and request.method == "GET":
                return _json(200, self._openid_configuration())
            if request.method == "POST":
                return self._token(request)
        users = re.fullmatch(r"/v1\.0/users/([^/]+)(/.*)", path)
        if not users:
            return _error(400, "BadRequest", f"Resource not found for the segment '{path}'.")
        bearer = request.headers.get("authorization", "")
        if not bearer.startswith("Bearer ") or bearer[7:] not in self.tokens:
            return _error(401, "InvalidAuthenticationToken",
                          "Access token is empty." if not bearer else "Access token validation failure.")
        if users.group(2) == "/teamwork/installedApps":
            return self._install(request, users.group(1))
        if users.group(1).lower() != self.mailbox.lower():
            return _error(404, "ErrorInvalidUser", f"The requested user '{users.group(1)}' is invalid.")
        return self._graph(request, users.group(2))

    def _openid_configuration(self) -> dict[str, Any]:
        return openid_configuration(f"{self.url}/{self.tenant}")

    def _token(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        status, body = grant(request.body, tenant=self.tenant, client_id=self.client_id, scope=SCOPE,
                             client_secret=self.client_secret, certificate_pem=self.certificate_pem,
                             token_url=f"{self.url}/{self.tenant}/oauth2/v2.0/token", expires_in=self.expires_in,
                             prefix="eyJ0.fake.")
        if status == 200:
            self.tokens.add(body["access_token"])
        return _json(status, body)

    def _folder_id(self, name: str) -> str | None:
        if name.lower() in WELL_KNOWN:
            return f"AAMk-{name.lower()}"
        return name if name in self.folders else None

    def _graph(self, request: Request, rest: str) -> tuple[int, dict[str, str], bytes]:
        method, query = request.method, request.query
        if method == "POST" and rest == "/sendMail":
            return self._send_mail(request)
        listing = re.fullmatch(r"/mailFolders/([^/]+)/messages", rest)
        if method == "GET" and listing:
            folder = self._folder_id(listing.group(1))
            if folder is None:
                return _error(404, "ErrorInvalidIdMalformed", "Id is malformed.")
            found = [m for m in self.messages.values() if m.folder == folder and _matches(m, query.get("$filter"))]
            found.sort(key=lambda m: m.received, reverse=True)  # Graph's default: newest first
            return self._page(request, [m.resource(query.get("$select")) for m in found])
        if method == "GET" and rest == "/mailFolders":
            wanted = re.fullmatch(r"displayName eq '((?:[^']|'')*)'", query.get("$filter", ""))
            folders = [{"id": fid, "displayName": name, "parentFolderId": "AAMk-root", "childFolderCount": 0}
                       for fid, name in self.folders.items()
                       if not wanted or name == wanted.group(1).replace("''", "'")]
            return self._page(request, folders)
        if method == "POST" and rest == "/mailFolders":
            name = json.loads(request.body or b"{}").get("displayName")
            if not name:
                return _error(400, "ErrorInvalidRequest", "The displayName is required.")
            if self.folder_named(name) is not None:
                return _error(409, "ErrorFolderExists", "A folder with the specified name already exists.")
            fid = f"AAMkFolder{uuid.uuid4().hex[:12]}"
            self.folders[fid] = name
            return _json(201, {"id": fid, "displayName": name, "parentFolderId": "AAMk-root", "childFolderCount": 0})
        one = re.fullmatch(r"/messages/([^/]+)(/\$value|/move)?", rest)
        if one:
            message = self.messages.get(one.group(1))
            if message is None:
                return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            if method == "GET" and one.group(2) == "/$value":
                return 200, {"Content-Type": "text/plain"}, message.mime
            if method == "PATCH" and one.group(2) is None:
                changes = json.loads(request.body or b"{}")
                if "isRead" in changes:
                    message.is_read = bool(changes["isRead"])
                return _json(200, message.resource())
            if method == "POST" and one.group(2) == "/move":
                destination = self._folder_id(str(json.loads(request.body or b"{}").get("destinationId", "")))
                if destination is None:
                    return _error(400, "ErrorInvalidIdMalformed", "Id is malformed.")
                del self.messages[message.id]
                moved = Message(f"AAMkAD{uuid.uuid4().hex}", message.mime, destination, message.is_read,
                                message.received, message.internet_message_id)
                self.messages[moved.id] = moved
                return _json(201, moved.resource())
        return _error(400, "BadRequest", f"Unsupported request: {method} {rest}")

    def _install(self, request: Request, user: str) -> tuple[int, dict[str, str], bytes]:
        """Install app for user: 201 and no body; 409 when it is installed already; 404 for a user
        the tenant does not have (by object id or, case-insensitively, user principal name)."""
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", f"{request.method} is not supported by this test server.")
        object_id = next((oid for oid, upn in self.users.items() if user in (oid, upn) or user.lower() == upn.lower()),
                         None)
        if object_id is None:
            return _error(404, "NotFound", f"User {user} not found.")
        bind = str(json.loads(request.body or b"{}").get("teamsApp@odata.bind", ""))
        app = re.fullmatch(re.escape(self.url) + r"/v1\.0/appCatalogs/teamsApps/([^/]+)", bind)
        if app is None:
            return _error(400, "BadRequest", f"teamsApp@odata.bind must name an app catalog entry, got {bind!r}.")
        if app.group(1) not in self.catalog:
            return _error(404, "NotFound", f"App {app.group(1)} was not found in the app catalog.")
        if (object_id, app.group(1)) in self.installed:
            return _error(409, "Conflict", "App is already installed.")
        self.installed.add((object_id, app.group(1)))
        return 201, {}, b""

    def _send_mail(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if not request.headers.get("content-type", "").startswith("text/plain"):
            return _error(400, "ErrorInvalidRequest", "This test server takes sendMail as MIME only (text/plain).")
        try:
            mime = base64.b64decode(request.body, validate=True)
        except binascii.Error:
            return _error(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
        parsed = email.message_from_bytes(mime, policy=email.policy.default)
        recipients = [a.addr_spec for a in parsed["To"].addresses] if parsed["To"] else []
        if not recipients:
            return _error(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        if any(r.lower() in self.reject_recipients for r in recipients):
            return _error(400, "ErrorInvalidRecipients",
                          "At least one recipient isn't valid., Recipient is not a valid SMTP address.")
        self._store(mime, "AAMk-sentitems", True)
        return 202, {}, b""

    def _page(self, request: Request, items: list[dict[str, Any]]) -> tuple[int, dict[str, str], bytes]:
        top, skip = int(request.query.get("$top", "10")), int(request.query.get("$skip", "0"))
        body: dict[str, Any] = {"@odata.context": f"{self.url}/v1.0/$metadata", "value": items[skip:skip + top]}
        if skip + top < len(items):
            query = {**request.query, "$top": str(top), "$skip": str(skip + top)}
            body["@odata.nextLink"] = f"{self.url}{request.path}?{urlencode(query)}"
        return _json(200, body)


def _matches(message: Message, expression: str | None) -> bool:
    """The two ``$filter`` forms Chaser uses (anything else is refused loudly, as a test failure)."""
    if not expression:
        return True
    if expression == "isRead eq false":
        return not message.is_read
    wanted = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", expression)
    if wanted:
        return message.internet_message_id == wanted.group(1).replace("''", "'")
    raise AssertionError(f"the Graph fake does not know the filter {expression!r}")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode("utf-8")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"code": code, "message": message,
                                    "innerError": {"request-id": str(uuid.uuid4())}}}, headers)


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait between them

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, unquote(parts.path),
                          {key: values[0] for key, values in parse_qs(parts.query).items()},
                          {key.lower(): value for key, value in self.headers.items()},
                          self.rfile.read(length) if length else b"")
        status, headers, body = self.server.fake.handle(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fake records requests itself
        pass


@contextmanager
def graph_server(fake: GraphFake, ca: Any) -> Iterator[GraphFake]:
    """Serve ``fake`` over HTTPS on 127.0.0.1 (a certificate from the trustme ``ca``); ``fake.url`` is set."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.fake = fake  # type: ignore[attr-defined]
    fake.url = f"https://127.0.0.1:{server.server_address[1]}"
    with serving(server, "graph-fake"):
        yield fake
