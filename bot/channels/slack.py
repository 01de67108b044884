"""Slack: each nudge as a direct message from the Chaser app, with buttons, updated in place.

``[channels.slack]`` (contract of issue 12): ``enabled``, ``mode`` ("socket", the default, or
"http": how the inbound side, bot.slack_app, hears clicks), ``api_url`` (default
``https://slack.com/api/``; every ``WebClient`` gets it as ``base_url``, so tests point it at
a loopback fake), ``digest_channel`` (a channel id, or a name, where EDI leads' lists are
posted instead of the lead's DM). Secrets: ``SLACK_BOT_TOKEN`` to send; ``SLACK_APP_TOKEN``
for socket mode or ``SLACK_SIGNING_SECRET`` for HTTP mode, checked here too because this
class owns the table's checks.

**Reaching a person.** Their Slack user is ``people.slack_id`` (the directory), else found by
``users.lookupByEmail``. Routing asks :meth:`Slack.address`, which must not do network I/O
(it runs for every message of a batch, under the dispatcher's claim), so the look-up happens in
:meth:`Slack.send`: ``address`` answers with the person's Slack id, or with their *email as a
look-up key* when nobody has looked them up in the last day (``people.slack_checked_at``,
carried in ``Recipient.looked_up["slack"]``), or None when a look-up in the last day found
nobody (routing moves straight on, no call to Slack). ``send`` resolves the key; a person
found gets ``people.slack_id`` and ``slack_checked_at`` written (the inbound side resolves
clicks by ``slack_id``), a person not found gets ``slack_checked_at`` and a permanent
:class:`ChannelError`: the dispatcher moves the message to the next channel in ``[channels]
order``, and if none reaches them the EDI lead's list names them with the reason. The writes
need the database: the dispatcher hands its engine and clock to :meth:`Slack.attach`.

**Sending** is ``conversations.open`` (the DM channel, cached per user) then
``chat.postMessage`` with the blocks of :func:`bot.slack_blocks.nudge_blocks`, its text as the
fallback, and ``metadata`` naming the outbox id. The receipt is ``{"channel", "ts"}`` (plus
``outbox_id``, so an update's buttons keep naming the message they are in). A resend after a
lost lease (``envelope.resend``) first looks in ``conversations.history`` for a message whose
metadata carries the outbox id, and returns it instead of posting again
(``checks_duplicates``). :meth:`Slack.update` is ``chat.update`` with re-rendered blocks.

**Limits.** :class:`SendLimits` keeps within Slack's tiers with pyrate-limiter buckets: about
one message a second per channel with short bursts, a workspace-wide rate for
``chat.postMessage``, and Tier 3 (about 50 a minute) for the other methods. It never waits:
a call that would exceed a rate raises a throttled ChannelError with ``retry_after``, so the
dispatcher reschedules the row and releases its claim instead of sleeping on it. Slack's own
429 does the same with its ``Retry-After``, and holds that method (for chat.postMessage, that
channel) back for the other sends of the batch for as long.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from pyrate_limiter import Duration, Rate
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import Engine, update

from bot.channels.limits import RateLimits, seconds as _seconds
from bot.channels.base import (
    ChannelError,
    Envelope,
    Receipt,
    Recipient,
    Secrets,
    check_keys,
)
from bot.slack_blocks import EVENT_TYPE, digest_blocks, metadata, nudge_blocks
from chaser.errors import ConfigError

KEYS = {"enabled", "mode", "api_url", "digest_channel"}
MODES = ("socket", "http")
DEFAULT_API_URL = "https://slack.com/api/"
TIMEOUT_SECONDS = 15
# A look-up that found nobody is not asked again for this long (people join Slack later).
LOOKUP_AGAIN_AFTER = dt.timedelta(days=1)
# Slack's errors that say "this person or channel cannot be reached": retrying will not help.
UNREACHABLE = {"channel_not_found", "user_not_found", "users_not_found", "cannot_dm_bot", "user_disabled",
               "not_in_channel", "is_archived", "user_not_visible", "restricted_action",
               "message_not_found", "cant_update_message", "edit_window_closed", "msg_too_long",
               "invalid_blocks", "invalid_metadata_format"}
# Slack refuses the app itself: the token or its scopes, something for whoever set Chaser up.
TOKEN_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                "not_allowed_token_type", "missing_scope", "no_permission", "team_access_not_granted"}

# Rates (pyrate-limiter keeps them "generous before tight"). Slack: chat.postMessage about one
# message per second per channel, short bursts allowed, and a workspace limit of several hundred
# a minute; conversations.open, conversations.history, users.lookupByEmail and chat.update are
# Tier 3, "50+ per minute".
PER_CHANNEL = [Rate(3, Duration.SECOND * 3)]
WORKSPACE = [Rate(10, Duration.SECOND), Rate(300, Duration.MINUTE)]
TIER_3 = [Rate(5, Duration.SECOND), Rate(50, Duration.MINUTE)]
TIER_3_METHODS = ("conversations.open", "conversations.history", "users.lookupByEmail", "chat.update")

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class SendLimits(RateLimits):
    """Slack's rate tiers (:class:`bot.channels.limits.RateLimits`): :meth:`take` admits one call
    of ``method`` (to ``channel``) or raises a throttled :class:`ChannelError` saying when to try
    again; :meth:`hold` stops a method until a 429's ``Retry-After`` has passed."""

    def __init__(self, clock: Clock = _utc_now, *, per_channel: list[Rate] | None = None,
                 workspace: list[Rate] | None = None, tier_3: list[Rate] | None = None) -> None:
        super().__init__(clock, "Slack")
        self.per_channel = per_channel or PER_CHANNEL
        self.methods = {"chat.postMessage": workspace or WORKSPACE,
                        **{name: tier_3 or TIER_3 for name in TIER_3_METHODS}}

    def take(self, method: str, channel: str | None = None) -> None:
        buckets = []
        if method == "chat.postMessage" and channel:
            buckets.append((f"channel:{channel}", self.per_channel))
        if method in self.methods:
            buckets.append((f"method:{method}", self.methods[method]))
        where = f" to {channel}" if channel else ""
        self.admit(f"{method}{where}", buckets, [method, *([f"{method} {channel}"] if channel else [])])

    def hold(self, method: str, seconds: float, channel: str | None = None) -> None:  # type: ignore[override]
        """No call of ``method`` (to ``channel``, when given) for ``seconds``: Slack answered 429
        with that ``Retry-After``. chat.postMessage's limit is per channel, so a 429 there holds
        back that channel only; the other methods' tiers are per workspace."""
        super().hold(f"{method} {channel}" if channel else method, seconds)


class Slack:
    """Sends through one Slack app's bot token (``WebClient`` at ``api_url``)."""

    kind = "slack"
    checks_duplicates = True  # a resend looks for its outbox id in the DM's history first

    def __init__(self, *, token: str | None, api_url: str = DEFAULT_API_URL, mode: str = "socket",
                 digest_channel: str | None = None, limits: SendLimits | None | bool = True,
                 clock: Clock | None = None, engine: Engine | None = None, timeout: int = TIMEOUT_SECONDS) -> None:
        """``limits``: True for Slack's tiers (:class:`SendLimits`), None or False for none (a
        benchmark against the fake), or a SendLimits of one's own."""
        self.api_url = api_url
        self.mode = mode
        self.digest_channel = digest_channel
        self.clock: Clock = clock or _utc_now
        self.engine = engine
        self.client = WebClient(token=token, base_url=api_url, timeout=timeout,
                                retry_handlers=[]) if token else None  # retries are the dispatcher's
        self.limits: SendLimits | None = SendLimits(self._now) if limits is True else (limits or None)
        self._dm: dict[str, str] = {}  # Slack user id -> DM channel id
        self._found: dict[str, tuple[str | None, dt.datetime]] = {}  # email -> (user id or None, when)
        self._lock = threading.Lock()

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> Slack:
        """``[channels.slack]`` checked (a ConfigError names the key); with ``secrets``, the
        tokens the mode needs read too (None: only the table is checked, nothing can be sent)."""
        check_keys(table, cls.kind, KEYS)
        enabled = table.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ConfigError(f"'channels.slack.enabled' must be true or false, got {enabled!r}")
        mode = table.get("mode", "socket")
        if mode not in MODES:
            raise ConfigError(f"'channels.slack.mode' must be \"socket\" or \"http\", got {mode!r}")
        api_url = table.get("api_url", DEFAULT_API_URL)
        parts = urlsplit(api_url) if isinstance(api_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"'channels.slack.api_url' must be a URL such as \"{DEFAULT_API_URL}\", got {api_url!r}")
        if not api_url.endswith("/"):
            api_url += "/"  # WebClient joins the method name straight on
        digest = table.get("digest_channel")
        if digest is not None and (not isinstance(digest, str) or not digest.strip() or " " in digest.strip()):
            raise ConfigError(f"'channels.slack.digest_channel' must be a channel id such as \"C0123ABCD\" "
                              f"or a name such as \"#edi-leads\", got {digest!r}")
        token = None
        if secrets is not None:
            token = secrets.require("SLACK_BOT_TOKEN", "the Slack channel sends as the app's bot user")
            if not token.startswith("xoxb-"):
                raise ConfigError("SLACK_BOT_TOKEN must be the app's bot token (it starts with xoxb-: "
                                  "OAuth & Permissions, Bot User OAuth Token)")
            if mode == "socket":
                app_token = secrets.require("SLACK_APP_TOKEN", "Socket Mode ([channels.slack] mode = \"socket\") "
                                            "connects with an app-level token")
                if not app_token.startswith("xapp-"):
                    raise ConfigError("SLACK_APP_TOKEN must be an app-level token with connections:write "
                                      "(it starts with xapp-: Basic Information, App-Level Tokens)")
            else:
                secrets.require("SLACK_SIGNING_SECRET", "HTTP mode ([channels.slack] mode = \"http\") checks "
                                "every request's signature with it")
        return cls(token=token, api_url=api_url, mode=mode, digest_channel=digest.strip() if digest else None)

    def attach(self, *, engine: Engine, clock: Clock) -> None:
        """The dispatcher's database (where look-ups are remembered) and clock (limits, look-up times)."""
        self.engine = engine
        self.clock = clock

    def _now(self) -> dt.datetime:
        return self.clock()

    # -- routing ----------------------------------------------------------------------------
    def address(self, recipient: Recipient) -> str | None:
        """The Slack user id; else the email to look up (when not looked up in the last day); else None."""
        user = recipient.address("slack")
        if user:
            return user
        email = recipient.email
        if not email:
            return None
        checked = recipient.looked_up.get("slack")
        with self._lock:
            remembered = self._found.get(email.lower())
        if remembered is not None and (checked is None or remembered[1] > checked):
            found, checked = remembered
            if found:
                return found
        if checked is not None and self._now() - checked < LOOKUP_AGAIN_AFTER:
            return None
        return email

    # -- sending ----------------------------------------------------------------------------
    def send(self, envelope: Envelope) -> Receipt:
        """Post the message (the lead's list to ``digest_channel`` when set, a board's digest to the
        board's ``slack_channel``, its recipient's Slack address); a resend first looks for it."""
        if envelope.kind == "digest":
            channel = envelope.recipient.address("slack") or ""
            if not channel:
                raise ChannelError(f"the digest for {envelope.recipient_name} names no Slack channel", permanent=True)
            text, blocks = digest_blocks(envelope)
        else:
            if envelope.kind == "lead_list" and self.digest_channel:
                channel = self.digest_channel
            else:
                channel = self._dm_channel(self._user(envelope.recipient))
            text, blocks = nudge_blocks(envelope)
        unchecked = False  # a resend that could not look for its earlier post
        if envelope.resend:
            try:
                found = self._posted_before(channel, envelope)
            except _CannotLook:
                found, unchecked = None, True
            if found is not None:
                return found
        self._take("chat.postMessage", channel)
        answer = self._call("chat.postMessage", f"sending to {envelope.recipient_name}", channel=channel,
                            text=text, blocks=blocks, metadata=metadata(envelope), unfurl_links=False,
                            unfurl_media=False)
        return replace(self._receipt(str(answer["channel"]), str(answer["ts"]), envelope.outbox_id),
                       possible_duplicate=unchecked)

    def update(self, receipt: Receipt, envelope: Envelope) -> Receipt:
        """Replace the message ``receipt`` names with ``envelope`` re-rendered (``chat.update``)."""
        channel, ts = receipt.ref.get("channel"), receipt.ref.get("ts")
        if not channel or not ts:
            raise ChannelError(f"the Slack receipt names no message to update: {dict(receipt.ref)!r}", permanent=True)
        original = receipt.ref.get("outbox_id")
        if original:  # the buttons go on naming the message they are in, not the update's outbox row
            envelope = replace(envelope, outbox_id=int(original))
        text, blocks = nudge_blocks(envelope)
        self._take("chat.update", channel)
        self._call("chat.update", f"updating the message to {envelope.recipient_name}", channel=channel, ts=ts,
                   text=text, blocks=blocks)
        return Receipt(self.kind, dict(receipt.ref))

    def _receipt(self, channel: str, ts: str, outbox_id: int) -> Receipt:
        return Receipt(self.kind, {"channel": channel, "ts": ts, "outbox_id": str(outbox_id)})

    def _user(self, recipient: Recipient) -> str:
        """The recipient's Slack user id, looked up by email when the directory has none."""
        user = recipient.address("slack")
        if user:
            return user
        email = recipient.email
        if not email:
            raise ChannelError(f"{recipient.name} has neither a Slack id nor an email to look one up by",
                               permanent=True)
        with self._lock:
            remembered = self._found.get(email.lower())
        if remembered is not None and remembered[0]:
            return remembered[0]
        self._take("users.lookupByEmail")
        now = self._now()
        try:
            answer = self._call("users.lookupByEmail", f"looking up {email}", email=email)
        except ChannelError as exc:
            if exc.permanent:  # users_not_found: not in this workspace (or the email differs)
                self._remember(recipient, email, None, now)
                raise ChannelError(f"no Slack user has the email {email} (users.lookupByEmail: users_not_found); "
                                   f"add their slack_id to the people directory", permanent=True) from None
            raise
        user_data = answer.get("user") or {}
        user = str(user_data.get("id") or "")
        if not user or user_data.get("deleted") or user_data.get("is_bot"):
            self._remember(recipient, email, None, now)
            raise ChannelError(f"the Slack user with the email {email} is deactivated or a bot", permanent=True)
        self._remember(recipient, email, user, now)
        return user

    def _remember(self, recipient: Recipient, email: str, user: str | None, now: dt.datetime) -> None:
        """Keep a look-up's answer here and on the person (``people.slack_id``, ``slack_checked_at``)."""
        with self._lock:
            self._found[email.lower()] = (user, now)
        if self.engine is None or recipient.person_id is None:
            return
        from storage.models import Person  # storage only when attached to a database

        values: dict[str, Any] = {"slack_checked_at": now}
        if user:
            values["slack_id"] = user
        with self.engine.begin() as conn:
            conn.execute(update(Person.__table__).where(Person.__table__.c.id == recipient.person_id)
                         .values(**values))

    def _dm_channel(self, user: str) -> str:
        with self._lock:
            known = self._dm.get(user)
        if known:
            return known
        self._take("conversations.open")
        answer = self._call("conversations.open", f"opening a direct message with {user}", users=user)
        channel = str((answer.get("channel") or {}).get("id") or "")
        if not channel:
            raise ChannelError(f"Slack opened no direct message with {user}")
        with self._lock:
            self._dm[user] = channel
        return channel

    def _posted_before(self, channel: str, envelope: Envelope) -> Receipt | None:
        """The receipt of an earlier post of this outbox row in ``channel``, found by its metadata."""
        oldest = (envelope.created_at.timestamp() - 60) if envelope.created_at is not None else None
        cursor = None
        for _ in range(10):  # 2,000 messages since the row was made: far more than a DM gets
            self._take("conversations.history", channel)
            args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
            if oldest is not None:
                args["oldest"] = f"{oldest:.6f}"
            if cursor:
                args["cursor"] = cursor
            try:
                answer = self._call("conversations.history", f"looking for outbox {envelope.outbox_id} in {channel}",
                                    **args)
            except ChannelError as exc:
                # No im:history scope, or a digest channel given by name (history wants its id):
                # the message is posted and marked as possibly a second copy.
                if exc.permanent or "missing_scope" in exc.text:
                    raise _CannotLook(exc.text) from None
                raise
            for message in answer.get("messages") or ():
                meta = message.get("metadata") or {}
                if meta.get("event_type") == EVENT_TYPE and \
                        (meta.get("event_payload") or {}).get("outbox_id") == envelope.outbox_id:
                    return self._receipt(channel, str(message["ts"]), envelope.outbox_id)
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return None
        return None

    def _take(self, method: str, channel: str | None = None) -> None:
        if self.limits is not None:
            self.limits.take(method, channel)

    def _call(self, method: str, what: str, **args: Any) -> Any:
        """One Web API call; Slack's answer, or a ChannelError that says what went wrong and whether
        retrying can help."""
        if self.client is None:
            raise ChannelError("the Slack channel was built without SLACK_BOT_TOKEN (only to check the config)")
        try:  # slack_sdk's own method: JSON for chat.*, form or query arguments for the rest, as Slack wants
            return getattr(self.client, method.replace(".", "_"))(**args)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error") if hasattr(response, "get") else "") or "unknown_error"
            if response.status_code == 429:
                retry_after = _seconds(response.headers.get("Retry-After") or response.headers.get("retry-after"))
                if self.limits is not None:
                    self.limits.hold(method, retry_after, args.get("channel") if method == "chat.postMessage" else None)
                raise ChannelError(f"Slack rate limit: {method} answered 429 while {what}; "
                                   f"retry after {retry_after:g} s", retry_after=retry_after, throttled=True) from None
            if error in TOKEN_ERRORS:
                needed = response.get("needed") if hasattr(response, "get") else None
                extra = f" (the app needs the scope {needed}: add it under OAuth & Permissions and reinstall)" \
                    if needed else ""
                raise ChannelError(f"Slack refused the app's token SLACK_BOT_TOKEN while {what}: {error}{extra}; "
                                   f"check the token and the app's scopes") from None
            if error in UNREACHABLE:
                raise ChannelError(f"Slack cannot deliver while {what}: {error}", permanent=True) from None
            raise ChannelError(f"Slack answered {error} (HTTP {response.status_code}) while {what}") from None
        except (SlackClientError, OSError, ValueError) as exc:  # refused, timed out, not JSON
            raise ChannelError(f"could not reach Slack at {self.api_url} while {what}: {exc}") from None

    def __repr__(self) -> str:
        return f"Slack(api_url={self.api_url!r}, mode={self.mode!r})"


class _CannotLook(Exception):
    """A resend could not search the channel's history for its earlier post."""
