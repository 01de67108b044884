"""A real HTTPS server on loopback playing, in one server, the three Microsoft services Chaser's
Teams channel talks to, for the Teams tests (both directions).

1. **Entra** (the token endpoint msal uses, as in tests/bot/graph_server.py): the tenant in the
   authority (400 ``AADSTS90002``), the client id, the scope ``https://api.botframework.com/.default``
   (``AADSTS1002012`` otherwise), a client secret or a client assertion signed with the app's
   certificate (401 ``invalid_client``). It issues opaque access tokens (:attr:`TeamsFake.tokens`).
2. **The Bot Connector** under :attr:`TeamsFake.service_url` (``/teams/``): create a personal
   conversation, post an activity, update one, reply to one. Every call needs a bearer token Entra
   issued (401 ``{"message": "Authorization has been denied for this request."}``, as the real
   service answers). It checks what Teams checks of a message: a ``message`` activity with text or
   attachments, Adaptive Cards ``{"type": "AdaptiveCard", "version" <= "1.5", "body": [...]}``,
   at most 28 KB of JSON (413 ``MessageSizeTooBig``), a known conversation (404
   ``ConversationNotFound``, unless ``auto_create``), a user who has not blocked the bot (403
   ``ConversationBlockedByUser``), a known activity for an update (404 ``ActivityNotFound``).
   Errors are ``{"error": {"code": ..., "message": ...}}``; 429 comes with ``Retry-After``
   (:meth:`TeamsFake.throttle_every`, :meth:`TeamsFake.fail`).
   https://learn.microsoft.com/en-us/microsoftteams/platform/bots/build-conversational-capability#status-codes-from-bot-conversational-apis
3. **The Bot Framework OpenID metadata and signing keys** a bot verifies inbound tokens with:
   ``/v1/.well-known/openidconfiguration`` and the JWKS it names (keys endorsed for ``msteams``).
   :meth:`TeamsFake.sign` makes the token the Bot Connector puts on what it sends to a bot,
   :meth:`TeamsFake.rotate` replaces the signing key, :meth:`TeamsFake.stranger_key` is one never
   published; :func:`activity` builds the Activity Teams posts to a bot.
   https://learn.microsoft.com/en-us/azure/bot-service/rest-api/bot-framework-rest-connector-authentication

Every request is recorded (:attr:`TeamsFake.requests`), and the Bot Connector path is kept light
(one JSON parse, a lock held only to record and store): a benchmark pushes hundreds of messages a
second through it.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
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
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from tests.bot.graph_server import Request
from tests.bot.entra import grant, openid_configuration
from tests.bot.loopback import serving

SCOPE = "https://api.botframework.com/.default"
ISSUER = "https://api.botframework.com"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION_MAX = (1, 5)  # what Teams renders; a newer card shows as "unsupported"
MAX_MESSAGE_BYTES = 28 * 1024  # Teams' limit on a bot's message, the whole JSON body
DENIED = {"message": "Authorization has been denied for this request."}

__all__ = ["Request", "TeamsFake", "activity", "teams_server"]


# -- signing keys: RSA generation is the slow part (tens of ms), so one pool per test run ---------
@dataclass(frozen=True)
class _Key:
    private: rsa.RSAPrivateKey
    kid: str  # as Microsoft publishes them: the certificate's SHA-1 thumbprint, base64url
    x5c: str  # the self-signed certificate, base64 DER

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": public["n"], "e": public["e"],
                "x5c": [self.x5c], "endorsements": ["msteams"]}


_POOL: list[_Key] = []
_POOL_LOCK = threading.Lock()


def _new_key() -> _Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "login.botframework.test")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=365)).sign(private, hashes.SHA256()))
    der = certificate.public_bytes(serialization.Encoding.DER)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    return _Key(private, thumbprint, base64.b64encode(der).decode())


def _pool_key(index: int) -> _Key:
    """The ``index``-th key of the run's pool (made on first use). Fakes in different tests may
    share keys; a fake never publishes the stranger key (index -1 is kept apart)."""
    with _POOL_LOCK:
        while len(_POOL) <= index:
            _POOL.append(_new_key())
        return _POOL[index]


_STRANGER: list[_Key] = []


def _stranger() -> _Key:
    with _POOL_LOCK:
        if not _STRANGER:
            _STRANGER.append(_new_key())
        return _STRANGER[0]


@dataclass
class Rule:
    method: str
    pattern: re.Pattern[str]  # searched in the request path
    status: int
    code: str
    retry_after: str | None
    times: int


_DEFAULT_CODES = {400: "BadArgument", 401: "Unauthorized", 403: "ConversationBlockedByUser",
                  404: "ConversationNotFound", 412: "PreconditionFailed", 413: "MessageSizeTooBig",
                  429: "Throttled", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
                  504: "GatewayTimeout"}

_CONVERSATIONS = re.compile(r"/teams/v3/conversations")
_MEMBER = re.compile(r"/teams/v3/conversations/([^/]+)/members/([^/]+)")
_ACTIVITIES = re.compile(r"/teams/v3/conversations/([^/]+)/activities(?:/([^/]+))?")
_ENTRA = re.compile(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/token)")


@dataclass
class TeamsFake:
    """The state and behaviour; :func:`teams_server` serves it."""

    app_id: str = "00000000-0000-0000-0000-00000000a11d"  # the bot's Entra app (client) id
    tenant: str = "11111111-1111-1111-1111-111111111111"
    client_secret: str | None = "teams-secret"
    certificate_pem: bytes | None = None  # when set, a client assertion signed by its key is accepted
    expires_in: int = 3600
    auto_create: bool = True  # a post to an unknown conversation creates it (tests need not create it first)
    url: str = ""  # set when served: "https://127.0.0.1:PORT"
    requests: list[Request] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)  # conversations whose user blocked or removed the bot
    # Teams accounts by user id ("29:…"), as GET …/members/{id} answers them: {"id", "name",
    # "aadObjectId", "userPrincipalName", "email"}.
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _inbound: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _key_index: int = 0
    _throttle: int = 0
    _throttle_retry_after: str = "1"
    _connector_calls: int = 0

    # -- what tests use ---------------------------------------------------------------------
    def fail(self, method: str, pattern: str, status: int, *, times: int = 1, retry_after: str | None = None,
             code: str = "") -> None:
        """Answer the next ``times`` calls of ``method`` whose path matches the regex ``pattern``
        with ``status`` (the Bot Connector's error ``code`` — a default by status — and
        ``Retry-After``). On the token endpoint the body is OAuth's ``{"error", "error_description"}``."""
        self.rules.append(Rule(method, re.compile(pattern), status, code or _DEFAULT_CODES.get(status, "Error"),
                               retry_after, times))

    def throttle_every(self, n: int, *, retry_after: str = "1") -> None:
        """Every ``n``-th Bot Connector call (post, update, reply, create conversation; counted across
        all conversations from now on, after the token check) answers 429 with ``Retry-After``. 0: off."""
        with self._lock:
            self._throttle, self._throttle_retry_after, self._connector_calls = n, retry_after, 0

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in list(self.requests) if r.method == method and re.search(pattern, r.path)]

    def activities(self, conversation: str) -> list[dict[str, Any]]:
        """What the conversation shows now (an update replaces its activity in place)."""
        with self._lock:
            return list(self.conversations.get(conversation, []))

    def cards(self, conversation: str) -> list[dict[str, Any]]:
        """The Adaptive Card content of each activity shown now, in order (activities without a card
        add nothing)."""
        return [attachment["content"] for shown in self.activities(conversation)
                for attachment in shown.get("attachments") or [] if attachment.get("contentType") == ADAPTIVE]

    @property
    def openid_url(self) -> str:
        return f"{self.url}/v1/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    @property
    def service_url(self) -> str:
        return f"{self.url}/teams/"

    @property
    def token_requests(self) -> list[Request]:
        return self.calls("POST", r"/oauth2/v2\.0/token$")

    @property
    def metadata_fetches(self) -> int:
        """How many times the Bot Framework OpenID metadata was fetched."""
        return len(self.calls("GET", r"^/v1/\.well-known/openidconfiguration$"))

    @property
    def keys_fetches(self) -> int:
        """How many times the signing keys (JWKS) were fetched."""
        return len(self.calls("GET", r"^/v1/\.well-known/keys$"))

    # -- inbound: the Bot Connector's token on what it sends to a bot ---------------------------
    @property
    def kid(self) -> str:
        """The id of the signing key published now."""
        return _pool_key(self._key_index).kid

    def sign(self, claims: dict[str, Any] | None = None, *, audience: str | None = None, issuer: str = ISSUER,
             service_url: str | None = None, kid: str | None = None, expires_in: int = 3600,
             now: dt.datetime | None = None, key: Any = None) -> str:
        """An RS256 JWT as the Bot Connector signs one: ``iss``, ``aud`` (the bot's app id), ``exp``,
        ``nbf``, ``iat``, ``serviceurl`` (Bot Framework's lowercase claim), then ``claims``. Signed
        with the current key and its ``kid``; ``key`` signs with another private key (the header
        still names the current ``kid`` unless ``kid`` is given: a forgery claims a published key)."""
        moment = now or dt.datetime.now(dt.timezone.utc)
        stamp = int(moment.timestamp())
        payload: dict[str, Any] = {"iss": issuer, "aud": self.app_id if audience is None else audience,
                                   "exp": stamp + expires_in, "nbf": stamp, "iat": stamp,
                                   "serviceurl": self.service_url if service_url is None else service_url}
        payload.update(claims or {})
        current = _pool_key(self._key_index)
        return jwt.encode(payload, current.private if key is None else key, algorithm="RS256",
                          headers={"kid": current.kid if kid is None else kid, "typ": "JWT"})

    def rotate(self) -> None:
        """A new signing key becomes current and is published; the old one leaves the JWKS."""
        with self._lock:
            self._key_index += 1
        _pool_key(self._key_index)

    def stranger_key(self) -> Any:
        """A private key this fake never publishes (a token signed with it must be refused)."""
        return _stranger().private

    # -- serving ---------------------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
            for rule in self.rules:
                if rule.times > 0 and rule.method == request.method and rule.pattern.search(request.path):
                    rule.times -= 1
                    headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
                    if _ENTRA.fullmatch(request.path):
                        return _json(rule.status, {"error": rule.code, "error_description":
                                                   f"Simulated {rule.status}"}, headers)
                    if rule.status == 401:
                        return _json(401, DENIED, headers)
                    return _error(rule.status, rule.code, f"Simulated {rule.status}", headers)
        path = request.path
        if path.startswith("/teams/"):
            return self._connector(request)
        if request.method == "GET" and path == "/v1/.well-known/openidconfiguration":
            return _json(200, {"issuer": ISSUER, "authorization_endpoint": "https://invalid.botframework.com",
                               "jwks_uri": f"{self.url}/v1/.well-known/keys",
                               "id_token_signing_alg_values_supported": ["RS256"],
                               "token_endpoint_auth_methods_supported": ["private_key_jwt"]})
        if request.method == "GET" and path == "/v1/.well-known/keys":
            return _json(200, {"keys": [_pool_key(self._key_index).jwk()]})
        entra = _ENTRA.fullmatch(path)
        if entra:
            if entra.group(1) != self.tenant:
                return _json(400, {"error": "invalid_tenant", "error_description":
                                   f"AADSTS90002: Tenant '{entra.group(1)}' not found."})
            if entra.group(2).startswith("v2.0") and request.method == "GET":
                return _json(200, self._openid_configuration())
            if request.method == "POST" and entra.group(2).startswith("oauth2"):
                return self._token(request)
        return _error(404, "NotFound", f"No route for {request.method} {path}")

    # -- Entra -------------------------------------------------------------------------------
    def _openid_configuration(self) -> dict[str, Any]:
        return openid_configuration(f"{self.url}/{self.tenant}")

    def _token(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        status, body = grant(request.body, tenant=self.tenant, client_id=self.app_id, scope=SCOPE,
                             client_secret=self.client_secret, certificate_pem=self.certificate_pem,
                             token_url=f"{self.url}/{self.tenant}/oauth2/v2.0/token", expires_in=self.expires_in,
                             prefix="eyJ0.teams.")
        if status == 200:
            with self._lock:
                self.tokens.add(body["access_token"])
        return _json(status, body)

    # -- the Bot Connector ---------------------------------------------------------------------
    def _connector(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        bearer = request.headers.get("authorization", "")
        if not bearer.startswith("Bearer ") or bearer[7:] not in self.tokens:
            return _json(401, DENIED)
        method, path = request.method, request.path
        member = _MEMBER.fullmatch(path) if method == "GET" else None
        if member is not None:  # getConversationMember: the account of one member of the chat
            with self._lock:
                found = self.members.get(unquote(member.group(2)))
            if found is None:
                return _error(404, "MemberNotFoundInConversation", "The member was not found in the conversation.")
            return _json(200, found)
        one = _ACTIVITIES.fullmatch(path)
        create = method == "POST" and _CONVERSATIONS.fullmatch(path) is not None
        post = one is not None and method == "POST"  # a new activity, or a reply to one (.../activities/{id})
        update = one is not None and method == "PUT" and one.group(2) is not None
        if not (create or post or update):
            return _error(404, "NotFound", f"No route for {method} {path}")
        with self._lock:
            if self._throttle:
                self._connector_calls += 1
                if self._connector_calls % self._throttle == 0:
                    return _error(429, "Throttled", "Too many requests; retry after the given delay.",
                                  {"Retry-After": self._throttle_retry_after})
        if len(request.body) > MAX_MESSAGE_BYTES:
            return _error(413, "MessageSizeTooBig", "Message size too big.")
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            return _error(415, "UnsupportedMediaType", "The request's content type is not supported.")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, "BadArgument", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "BadArgument", "The request body must be a JSON object.")
        if create:
            return self._create_conversation(body)
        assert one is not None
        conversation, activity_id = unquote(one.group(1)), one.group(2)
        with self._lock:
            if conversation in self.blocked:
                return _blocked()
            if conversation not in self.conversations and not self.auto_create:
                return _error(404, "ConversationNotFound", "Conversation not found.")
        problem = _invalid_activity(body)
        if problem:
            return _error(400, "BadArgument", problem)
        with self._lock:
            shown = self.conversations.setdefault(conversation, [])
            if update:
                assert activity_id is not None
                aid = unquote(activity_id)
                for index, existing in enumerate(shown):
                    if existing["id"] == aid:
                        shown[index] = {**body, "id": aid}
                        return _json(200, {"id": aid})
                return _error(404, "ActivityNotFound", "Activity not found.")
            if activity_id is not None:  # a reply (replyToActivity): shown as a new message in a personal chat
                body = {**body, "replyToId": unquote(activity_id)}
            new_id = f"1:{next(self._ids)}"
            shown.append({**body, "id": new_id})
            return _json(201, {"id": new_id})

    def _create_conversation(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        bot, members = body.get("bot"), body.get("members")
        if not isinstance(bot, dict) or bot.get("id") not in (f"28:{self.app_id}", self.app_id):
            return _error(400, "BadArgument", "The bot id must be this bot's (28:<app id>).")
        if (not isinstance(members, list) or len(members) != 1 or not isinstance(members[0], dict)
                or not isinstance(members[0].get("id"), str) or not members[0]["id"]):
            return _error(400, "BadArgument", "A personal conversation takes exactly one member with an id.")
        if body.get("isGroup"):
            return _error(400, "BadArgument", "This test server creates personal conversations only.")
        channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
        tenant = body.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
        if not tenant:
            return _error(400, "BadArgument", "Tenant id is required.")
        if tenant != self.tenant:
            return _error(403, "Forbidden", f"The bot is not installed in tenant {tenant}.")
        first = body.get("activity")
        if first is not None:
            problem = _invalid_activity(first) if isinstance(first, dict) else "The activity must be an object."
            if problem:
                return _error(400, "BadArgument", problem)
        conversation = f"a:conv-{members[0]['id']}"
        with self._lock:
            if conversation in self.blocked:
                return _blocked()
            shown = self.conversations.setdefault(conversation, [])
            answer: dict[str, Any] = {"id": conversation}
            if first is not None:
                answer["activityId"] = f"1:{next(self._ids)}"
                shown.append({**first, "id": answer["activityId"]})
        return _json(201, answer)


def _invalid_activity(body: dict[str, Any]) -> str | None:
    """What Teams would refuse in an activity a bot sends (None: nothing)."""
    if body.get("type") != "message":
        return f"Unsupported activity type {body.get('type')!r}: this test server takes 'message'."
    attachments = body.get("attachments")
    if attachments is not None and not isinstance(attachments, list):
        return "attachments must be a list."
    if not body.get("text") and not attachments:
        return "A message needs text or attachments."
    for attachment in attachments or []:
        if not isinstance(attachment, dict) or not isinstance(attachment.get("contentType"), str):
            return "Each attachment needs a contentType."
        if attachment["contentType"] != ADAPTIVE:
            continue
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return "An Adaptive Card attachment's content must be {\"type\": \"AdaptiveCard\", ...}."
        version = content.get("version")
        try:
            parsed = tuple(int(part) for part in str(version).split("."))
        except ValueError:
            return f"Adaptive Card version {version!r} is not a version."
        if parsed > CARD_VERSION_MAX:
            return f"Adaptive Card version {version!r} is not supported (Teams renders up to 1.5)."
        if not isinstance(content.get("body"), list):
            return "An Adaptive Card's body must be a list."
    return None


def _blocked() -> tuple[int, dict[str, str], bytes]:
    return _error(403, "ConversationBlockedByUser", "User blocked the conversation with the bot.")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(body).encode()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"code": code, "message": message}}, headers)


def activity(fake: TeamsFake, *, type: str = "message", name: str | None = None, value: Any = None,
             text: str | None = None, from_id: str = "29:user", aad_object_id: str | None = None,
             conversation: str = "a:conv-1", tenant: str | None = None, service_url: str | None = None,
             reply_to: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Bot Framework Activity as Teams posts it to a bot (a personal chat). ``aad_object_id``
    defaults to one derived from ``from_id`` (Teams always sends a user's); ``extra`` keys are
    added at the top level and win (``**{"from": {...}}`` replaces the sender)."""
    tenant = tenant or fake.tenant
    number = next(fake._inbound)
    now = dt.datetime.now(dt.timezone.utc)
    built: dict[str, Any] = {
        "type": type, "id": f"{1733500000000 + number}", "channelId": "msteams",
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "localTimestamp": now.isoformat(timespec="milliseconds"), "locale": "en-GB",
        "serviceUrl": fake.service_url if service_url is None else service_url,
        "from": {"id": from_id, "name": "Teams User",
                 "aadObjectId": aad_object_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"teams:{from_id}"))},
        "recipient": {"id": f"28:{fake.app_id}", "name": "Chaser"},
        "conversation": {"id": conversation, "conversationType": "personal", "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
        "entities": [{"type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web"}],
    }
    if name is not None:
        built["name"] = name
    if value is not None:
        built["value"] = value
    if text is not None:
        built["text"] = text
    if reply_to is not None:
        built["replyToId"] = reply_to
    built.update(extra)
    return built


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

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fake records requests itself
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark's many workers connect at once


@contextmanager
def teams_server(fake: TeamsFake, ca: Any) -> Iterator[TeamsFake]:
    """Serve ``fake`` over HTTPS on 127.0.0.1 (a certificate from the trustme ``ca``); ``fake.url`` is set."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.fake = fake  # type: ignore[attr-defined]
    fake.url = f"https://127.0.0.1:{server.server_address[1]}"
    _pool_key(fake._key_index)  # the first key before the first request, not during it
    with serving(server, "teams-fake"):
        yield fake
