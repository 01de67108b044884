"""A real HTTP server on loopback playing the Slack Web API, for the Slack tests (both sides).

It answers the methods Chaser calls, as Slack answers them: ``auth.test``, ``chat.postMessage``,
``chat.update``, ``chat.postEphemeral``, ``users.lookupByEmail``, ``conversations.open``,
``conversations.history``, ``views.open``, ``views.publish``, ``views.update``. Like Slack it
takes arguments from the query string, a form body or a JSON body (slack_sdk's ``WebClient``
uses all three), checks the bot token (``Authorization: Bearer`` or a ``token`` argument;
``not_authed`` / ``invalid_auth``), and checks what Slack checks of a message: text or blocks
(``no_text``), at most 50 blocks and 3,000 characters a section (``invalid_blocks``), metadata
as ``{"event_type", "event_payload"}`` (``invalid_metadata_format``), a known channel
(``channel_not_found``). Errors are HTTP 200 with ``{"ok": false, "error": ...}``, except
``ratelimited``: HTTP 429 with ``Retry-After`` in seconds, as Slack sends it.

It records every request (:attr:`SlackFake.requests`, with the merged arguments and the time by
``clock``, so a test that injects its clock can check the gaps), keeps posted messages per
channel with their metadata (so ``conversations.history`` and ``chat.update`` work), and can
be told to fail chosen calls (:meth:`SlackFake.fail`, :meth:`SlackFake.ratelimit_every`).

Socket Mode, as Slack plays it: ``apps.connections.open`` takes only the app-level token
(``xapp-``; a bot token is ``not_allowed_token_type``) and answers a one-time websocket URL on a
real websocket server on loopback (the ``websockets`` library). A connection with a good ticket
gets ``hello``; :meth:`SlackFake.push` sends an envelope (``interactive``, ``slash_commands``,
``events_api``: ``{"envelope_id", "type", "payload", "accepts_response_payload"}``) and the
app's acknowledgements (``{"envelope_id", "payload"?}``) are recorded (:attr:`SlackFake.acks`,
:meth:`SlackFake.wait_ack`). :meth:`SlackFake.drop` closes the connections as a Slack server
going away does; an envelope whose acknowledgement had not come back when its connection closed
is sent again on the next connection, with the same envelope id, as Slack retries it.
:meth:`SlackFake.refresh` sends ``disconnect`` (``refresh_requested``) as Slack does a few
times a day.

:func:`sign` signs a request body exactly as Slack signs what it sends to an app.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve

from tests.bot.loopback import serving

BOT_TOKEN = "xoxb-17-2026-chaser-test"
BOT_USER = "UCHASERBOT"
TEAM = "T0LAMBETH"
APP_TOKEN = "xapp-1-A0CHASER-2026-socket"  # the app-level token Socket Mode connects with
APP_ID = "A0CHASER"
SECTION_TEXT_MAX = 3000
BLOCKS_MAX = 50

# Methods whose arguments carry a channel that must exist.
_CHANNEL_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral", "conversations.history"}


@dataclass
class Request:
    """One call as the fake saw it: ``args`` merges query, form and JSON arguments (JSON values
    keep their types; form values are strings, as Slack receives them)."""

    method: str  # the API method: "chat.postMessage"
    http_method: str  # GET or POST
    args: dict[str, Any]
    headers: dict[str, str]
    at: float  # by the fake's clock
    status: int = 200
    error: str | None = None  # what the fake answered, when not ok


@dataclass
class User:
    id: str
    email: str
    name: str
    is_bot: bool = False
    deleted: bool = False


@dataclass
class Rule:
    method: str
    error: str
    retry_after: int | None
    times: int | None  # None: every matching call
    every: int = 1  # answer every n-th matching call (counted by the rule)
    seen: int = 0


@dataclass
class Envelope:
    """One Socket Mode envelope the fake sent: ``sent_on`` lists the connections (numbered from 1
    in the order they said hello) it went out on, more than one when it was sent again."""

    envelope_id: str
    type: str  # "interactive", "slash_commands", "events_api"
    payload: dict[str, Any]
    accepts_response_payload: bool
    sent_on: list[int] = field(default_factory=list)


@dataclass
class Ack:
    """An acknowledgement the app sent back: the envelope id, the response payload if any, and
    the connection it came on."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int


@dataclass
class SlackFake:
    """The workspace's state and the behaviour; :func:`slack_server` serves it."""

    token: str = BOT_TOKEN
    team: str = TEAM
    bot_user: str = BOT_USER
    users: dict[str, User] = field(default_factory=dict)  # by id
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> messages, oldest first
    requests: list[Request] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)  # every view opened, published or updated
    clock: Callable[[], float] = time.monotonic
    url: str = ""  # the api_url to hand to WebClient(base_url=...), ends with "/api/"
    rules: list[Rule] = field(default_factory=list)
    app_token: str = APP_TOKEN
    socket_url: str = ""  # ws://127.0.0.1:PORT, where apps.connections.open sends the app
    envelopes: dict[str, Envelope] = field(default_factory=dict)  # by envelope id, in the order sent
    acks: list[Ack] = field(default_factory=list)
    hellos: int = 0  # connections that got hello
    lose_acks: int = 0  # the next n acknowledgements are lost on the way (the fake never sees them)
    lost: list[str] = field(default_factory=list)  # envelope ids whose acknowledgement was lost
    _tickets: set[str] = field(default_factory=set)  # issued by apps.connections.open, not yet used
    _pending: list[str] = field(default_factory=list)  # envelope ids to send again on the next connection
    _retiring: set[int] = field(default_factory=set)  # told to go: closed when the next one says hello
    _open: dict[int, ServerConnection] = field(default_factory=dict)  # connection number -> connection
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _changed: threading.Condition = field(init=False)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    # -- what tests use ---------------------------------------------------------------------
    def add_user(self, user_id: str, email: str, name: str = "", *, is_bot: bool = False) -> User:
        """A member of the workspace (``users.lookupByEmail`` finds them, ``conversations.open`` DMs them)."""
        user = User(user_id, email, name or email.split("@")[0], is_bot=is_bot)
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str) -> None:
        """A public channel the bot is in (for lead lists and digests)."""
        self.channels.setdefault(channel_id, [])

    def fail(self, method: str, error: str, *, times: int | None = 1, retry_after: int | None = None,
             every: int = 1) -> None:
        """Answer calls of ``method`` ("*" for any) with Slack's ``error``: the next ``times``
        (None: all), or every ``every``-th call. ``error="ratelimited"`` answers HTTP 429 with
        ``Retry-After: retry_after`` (default 1), as Slack does."""
        if error == "ratelimited" and retry_after is None:
            retry_after = 1
        self.rules.append(Rule(method, error, retry_after, times, every))

    def ratelimit_every(self, n: int, method: str = "*", retry_after: int = 1) -> None:
        """Answer every ``n``-th call of ``method`` with 429 and ``Retry-After``, forever."""
        self.fail(method, "ratelimited", times=None, retry_after=retry_after, every=n)

    def calls(self, method: str, *, ok: bool | None = None) -> list[Request]:
        """The recorded calls of ``method``; ``ok=True`` only those answered ok, False only failures."""
        with self._lock:
            return [r for r in self.requests if r.method == method and (ok is None or (r.error is None) == ok)]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The messages in ``channel``, oldest first (each as Slack holds it: ts, text, blocks, metadata)."""
        with self._lock:
            return list(self.channels.get(channel, []))

    def dm_channel(self, user_id: str) -> str:
        """The id of the direct-message channel between the bot and ``user_id``."""
        return f"D{user_id[1:]}"

    def dms(self, user_id: str) -> list[dict[str, Any]]:
        return self.messages(self.dm_channel(user_id))

    @property
    def posted(self) -> list[dict[str, Any]]:
        """Every message posted, in order, each with its ``channel``."""
        with self._lock:
            found = [dict(m, channel=c) for c, messages in self.channels.items() for m in messages]
        return sorted(found, key=lambda m: float(m["ts"]))

    # -- Socket Mode -----------------------------------------------------------------------
    def push(self, type: str, payload: dict[str, Any], *, accepts_response_payload: bool | None = None,
             envelope_id: str | None = None) -> str:
        """Send an envelope on the newest open connection, as Slack sends a click (``interactive``),
        a ``/command`` (``slash_commands``) or an event (``events_api``); returns its envelope id.
        ``accepts_response_payload`` defaults as Slack sets it: true for slash commands and view
        submissions. ``envelope_id`` of an envelope sent before sends it again (a retry)."""
        with self._lock:
            if not self._open:
                raise AssertionError("no Socket Mode connection is open to push to")
            if envelope_id in self.envelopes:
                envelope = self.envelopes[envelope_id]
            else:
                if accepts_response_payload is None:
                    accepts_response_payload = type == "slash_commands" or payload.get("type") == "view_submission"
                envelope = Envelope(envelope_id or str(uuid.uuid4()), type, payload, accepts_response_payload)
                self.envelopes[envelope.envelope_id] = envelope
            number = max(self._open)
            self._send(number, envelope)
            return envelope.envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5) -> Ack:
        """The first acknowledgement of ``envelope_id``, waiting up to ``timeout`` seconds for it
        (the app answers on its own threads)."""
        with self._changed:
            if not self._changed.wait_for(lambda: any(a.envelope_id == envelope_id for a in self.acks), timeout):
                raise AssertionError(f"no acknowledgement of envelope {envelope_id} within {timeout} s")
            return next(a for a in self.acks if a.envelope_id == envelope_id)

    def wait_lost(self, envelope_id: str, timeout: float = 5) -> None:
        """Wait until the app's acknowledgement of ``envelope_id`` was sent and lost (``lose_acks``)."""
        with self._changed:
            if not self._changed.wait_for(lambda: envelope_id in self.lost, timeout):
                raise AssertionError(f"the app did not acknowledge envelope {envelope_id} within {timeout} s")

    def wait_connected(self, hellos: int = 1, timeout: float = 5) -> None:
        """Wait until ``hellos`` connections in all have said hello (the app connects on its own thread)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.hellos >= hellos and bool(self._open), timeout):
                raise AssertionError(f"{self.hellos} Socket Mode connection(s) within {timeout} s, wanted {hellos}")

    def refresh(self) -> None:
        """Tell every open connection to go, as Slack does a few times a day (``disconnect``,
        ``refresh_requested``): the app opens a new connection, and the old ones are closed once
        it has said hello."""
        with self._lock:
            for number, connection in self._open.items():
                self._retiring.add(number)
                connection.send(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                            "debug_info": {"host": "applink-fake"}}))

    def drop(self) -> None:
        """Close every open connection without warning (close code 1001, going away), as a Slack
        server restarting does; the app finds it closed and reconnects."""
        with self._lock:
            connections = list(self._open.values())
        for connection in connections:
            connection.close(1001, "server going away")

    def unacked(self) -> list[Envelope]:
        """Envelopes sent and never acknowledged."""
        with self._lock:
            acked = {a.envelope_id for a in self.acks}
            return [e for e in self.envelopes.values() if e.envelope_id not in acked]

    def _send(self, number: int, envelope: Envelope) -> None:
        message: dict[str, Any] = {"envelope_id": envelope.envelope_id, "type": envelope.type,
                                   "payload": envelope.payload,
                                   "accepts_response_payload": envelope.accepts_response_payload}
        if envelope.type == "events_api":
            message["retry_attempt"] = len(envelope.sent_on)
            message["retry_reason"] = "timeout" if envelope.sent_on else ""
        envelope.sent_on.append(number)
        self._open[number].send(json.dumps(message))

    def _check_ticket(self, connection: ServerConnection, request: WsRequest) -> WsResponse | None:
        parts = urlsplit(request.path)
        ticket = parse_qs(parts.query).get("ticket", [""])[0]
        with self._lock:
            if parts.path != "/link/" or ticket not in self._tickets:
                return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or used ticket\n")
            self._tickets.discard(ticket)  # a URL from apps.connections.open connects once
        return None

    def _connected(self, connection: ServerConnection) -> None:
        with self._changed:
            self.hellos += 1
            number = self.hellos
            self._open[number] = connection
            connection.send(json.dumps({
                "type": "hello", "num_connections": len(self._open),
                "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID}}))
            for envelope_id in self._pending:  # unacknowledged when their connection closed
                self._send(number, self.envelopes[envelope_id])
            self._pending.clear()
            retiring = [self._open[n] for n in self._retiring if n in self._open]
            self._retiring.clear()
            self._changed.notify_all()
        for old in retiring:  # outside the lock: closing waits for the app's close frame
            old.close(1000, "refreshed")
        try:
            for raw in connection:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue  # Slack ignores what it cannot read
                if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
                    with self._changed:
                        if self.lose_acks > 0:
                            self.lose_acks -= 1
                            self.lost.append(message["envelope_id"])
                        else:
                            self.acks.append(Ack(message["envelope_id"], message.get("payload"), number))
                        self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                self._open.pop(number, None)
                acked = {a.envelope_id for a in self.acks}
                lost = [e.envelope_id for e in self.envelopes.values()
                        if e.envelope_id not in acked and e.sent_on[-1:] == [number]]
                if self._open:  # Slack retries on a connection still open, else on the next one
                    for envelope_id in lost:
                        self._send(max(self._open), self.envelopes[envelope_id])
                else:
                    self._pending.extend(lost)
                self._changed.notify_all()

    # -- serving ---------------------------------------------------------------------------
    def handle(self, http_method: str, method: str, args: dict[str, Any], headers: dict[str, str]
               ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            request = Request(method, http_method, args, headers, self.clock())
            self.requests.append(request)
            status, extra, body = self._answer(method, args, headers)
            request.status = status
            if not body.get("ok"):
                request.error = str(body.get("error"))
            return status, extra, body

    def _answer(self, method: str, args: dict[str, Any], headers: dict[str, str]
                ) -> tuple[int, dict[str, str], dict[str, Any]]:
        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else args.get("token")
        if not token:
            return _error("not_authed")
        if method == "apps.connections.open":  # the one method that takes the app-level token
            if not str(token).startswith("xapp-"):
                return _error("not_allowed_token_type")
            if token != self.app_token:
                return _error("invalid_auth")
        elif token != self.token:
            return _error("invalid_auth")
        for rule in self.rules:
            if rule.method not in ("*", method) or rule.times == 0:
                continue
            rule.seen += 1
            if rule.seen % rule.every:
                continue
            if rule.times is not None:
                rule.times -= 1
            if rule.error == "ratelimited":
                return 429, {"Retry-After": str(rule.retry_after)}, {"ok": False, "error": "ratelimited"}
            return _error(rule.error)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        if method in _CHANNEL_METHODS:
            channel = args.get("channel")
            if not channel or channel not in self.channels:
                return _error("channel_not_found")
        return handler(args)

    def _apps_connections_open(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if not self.socket_url:
            return _error("internal_error")
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return _ok(url=f"{self.socket_url}/link/?ticket={ticket}&app_id={APP_ID}")

    def _auth_test(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        return _ok(url="https://lambeth-edi.slack.com/", team="Lambeth EDI", user="chaser", team_id=self.team,
                   user_id=self.bot_user, bot_id="BCHASER")

    def _users_lookupByEmail(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        email = str(args.get("email") or "").lower()
        for user in self.users.values():
            if user.email.lower() == email and not user.deleted:
                return _ok(user={"id": user.id, "team_id": self.team, "name": user.name, "deleted": False,
                                 "is_bot": user.is_bot, "profile": {"email": user.email, "real_name": user.name}})
        return _error("users_not_found")

    def _conversations_open(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            return _error("users_list_not_supplied")
        if len(users) > 1:
            return _error("not_enough_users")  # the fake only plays one-to-one DMs
        user = self.users.get(users[0])
        if user is None or user.deleted:
            return _error("user_not_found")
        if user.is_bot:
            return _error("cannot_dm_bot")
        channel = self.dm_channel(user.id)
        self.channels.setdefault(channel, [])
        return _ok(channel={"id": channel})

    def _message(self, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The message's text, blocks and metadata as Slack checks them, or Slack's error."""
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return None, "invalid_blocks_format"
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                return None, "invalid_metadata_format"
        text = args.get("text")
        if not text and not blocks:
            return None, "no_text"
        if text and len(str(text)) > 40000:
            return None, "msg_too_long"
        if blocks is not None and not _blocks_valid(blocks):
            return None, "invalid_blocks"
        if metadata is not None and not (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
                                         and isinstance(metadata.get("event_payload"), dict)):
            return None, "invalid_metadata_format"
        message: dict[str, Any] = {"type": "message", "user": self.bot_user, "bot_id": "BCHASER",
                                   "text": str(text or "")}
        if blocks is not None:
            message["blocks"] = blocks
        if metadata is not None:
            message["metadata"] = metadata
        return message, None

    def _new_ts(self) -> str:
        return f"{1777370000 + next(self._ts)}.{next(self._ts):06d}"

    def _chat_postMessage(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        message, error = self._message(args)
        if error or message is None:
            return _error(error or "no_text")
        message["ts"] = self._new_ts()
        self.channels[args["channel"]].append(message)
        shown = {k: v for k, v in message.items() if k != "metadata"}  # Slack echoes it without metadata
        return _ok(channel=args["channel"], ts=message["ts"], message=shown)

    def _chat_update(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        ts = args.get("ts")
        target = next((m for m in self.channels[args["channel"]] if m["ts"] == ts), None)
        if target is None:
            return _error("message_not_found")
        if target.get("user") != self.bot_user:
            return _error("cant_update_message")
        changes, error = self._message(args)
        if error or changes is None:
            return _error(error or "no_text")
        for key in ("text", "blocks", "metadata"):
            if key in changes:
                target[key] = changes[key]
        target["edited"] = {"user": self.bot_user, "ts": self._new_ts()}
        return _ok(channel=args["channel"], ts=ts, text=target["text"],
                   message={k: v for k, v in target.items() if k != "metadata"})

    def _chat_postEphemeral(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if str(args.get("user") or "") not in self.users:
            return _error("user_not_in_channel")
        message, error = self._message(args)
        if error or message is None:
            return _error(error or "no_text")
        return _ok(message_ts=self._new_ts())  # ephemeral: shown to the one user, not kept in history

    def _conversations_history(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        messages = list(reversed(self.channels[args["channel"]]))  # newest first, as Slack pages them
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
        messages = [m for m in messages if oldest < float(m["ts"]) <= latest]
        limit = min(int(args.get("limit") or 100), 999)
        start = int(args.get("cursor") or 0)
        page = messages[start:start + limit]
        include = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = [m if include else {k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(messages)
        return _ok(messages=shown, has_more=more, response_metadata={"next_cursor": str(start + limit) if more else ""})

    def _view(self, args: dict[str, Any], **extra: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                return _error("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            return _error("invalid_arguments")
        stored = dict(view, id=f"V{len(self.views) + 1:08d}", **extra)
        self.views.append(stored)
        return _ok(view=stored)

    def _views_open(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if not args.get("trigger_id") and not args.get("interactivity_pointer"):
            return _error("invalid_arguments")
        return self._view(args, trigger_id=args.get("trigger_id"))

    def _views_publish(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if str(args.get("user_id") or "") not in self.users:
            return _error("user_not_found")
        return self._view(args, user_id=args.get("user_id"))

    def _views_update(self, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if not args.get("view_id") and not args.get("external_id"):
            return _error("invalid_arguments")
        return self._view(args, updated=args.get("view_id") or args.get("external_id"))


def _blocks_valid(blocks: Any) -> bool:
    """Slack's limits on a message's blocks: a list of at most 50, each with a type, section text at
    most 3,000 characters, at most 25 elements in an actions block, button text at most 75."""
    if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
        return False
    seen_ids: set[str] = set()
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return False
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen_ids or len(block_id) > 255:
                return False
            seen_ids.add(block_id)
        if block["type"] in ("section", "context", "header"):
            texts = [block.get("text")] if block["type"] != "context" else block.get("elements") or []
            for text in texts:
                if text is not None and (not isinstance(text, dict) or len(str(text.get("text", ""))) > SECTION_TEXT_MAX):
                    return False
        if block["type"] == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > 25:
                return False
            for element in elements:
                if element.get("type") == "button":
                    label = element.get("text") or {}
                    if len(str(label.get("text", ""))) > 75 or len(str(element.get("value", ""))) > 2000:
                        return False
    return True


def _ok(**body: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    return 200, {}, {"ok": True, **body}


def _error(error: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return 200, {}, {"ok": False, "error": error}


def sign(body: bytes | str, secret: str, timestamp: int | float | str) -> dict[str, str]:
    """The headers Slack adds to a request it sends an app: ``X-Slack-Request-Timestamp`` and
    ``X-Slack-Signature`` = ``v0=`` + hex HMAC-SHA256 (key: the signing secret) of
    ``v0:{timestamp}:{body}``."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    stamp = str(int(float(timestamp)))
    digest = hmac.new(secret.encode("utf-8"), b"v0:" + stamp.encode("ascii") + b":" + raw, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + digest.hexdigest()}


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        if not parts.path.startswith("/api/"):
            self._reply(404, {}, b"not found")
            return
        method = parts.path[len("/api/"):]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        args: dict[str, Any] = {key: values[0] for key, values in parse_qs(parts.query).items()}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw and content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                self._reply(200, {"Content-Type": "application/json"},
                            json.dumps({"ok": False, "error": "invalid_json"}).encode())
                return
            args.update(body if isinstance(body, dict) else {})
        elif raw:
            args.update({key: values[0] for key, values in parse_qs(raw.decode("utf-8")).items()})
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, extra, answer = self.server.fake.handle(self.command, method, args, headers)
        self._reply(status, {"Content-Type": "application/json; charset=utf-8", **extra},
                    json.dumps(answer).encode("utf-8"))

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the fake records requests itself
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark's many workers connect at once


@contextmanager
def slack_server(fake: SlackFake | None = None) -> Iterator[SlackFake]:
    """Serve ``fake`` (a new one by default) over HTTP on 127.0.0.1, and its Socket Mode websocket
    endpoint beside it; ``fake.url`` is the api_url."""
    fake = fake or SlackFake()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake  # type: ignore[attr-defined]
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    # No compression: Slack's Socket Mode does not offer it, and slack_sdk's client asks for none.
    sockets = ws_serve(fake._connected, "127.0.0.1", 0, process_request=fake._check_ticket, compression=None)
    fake.socket_url = f"ws://127.0.0.1:{sockets.socket.getsockname()[1]}"
    # websockets' server is not a socketserver one (no server_close): its own thread.
    socket_thread = threading.Thread(target=sockets.serve_forever, name="slack-fake-socket", daemon=True)
    socket_thread.start()
    try:
        with serving(server, "slack-fake"):
            yield fake
    finally:
        fake.drop()
        sockets.shutdown()
        socket_thread.join()
