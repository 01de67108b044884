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

:func:`sign` signs a request body exactly as Slack signs what it sends to an app.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.bot.loopback import serving

BOT_TOKEN = "xoxb-17-2026-chaser-test"
BOT_USER = "UCHASERBOT"
TEAM = "T0LAMBETH"
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
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

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
        if token != self.token:
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
    """Serve ``fake`` (a new one by default) over HTTP on 127.0.0.1; ``fake.url`` is the api_url."""
    fake = fake or SlackFake()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake  # type: ignore[attr-defined]
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    with serving(server, "slack-fake"):
        yield fake
