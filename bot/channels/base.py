"""What every channel is handed and gives back: the envelope, its items, the receipt.

The dispatcher builds an :class:`Envelope` per outbox row and calls ``channel.send``. A channel
either returns a :class:`Receipt` or raises :class:`ChannelError`; ``permanent=True`` means
"retrying will not help" (no address, a rejected recipient), otherwise the dispatcher retries,
no sooner than ``retry_after`` seconds when the service said so.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bot.mime import Part
from chaser.errors import ChaserError, ConfigError
from storage.reasons import Why


@dataclass(frozen=True)
class Link:
    """A one-click answer: ``label`` is "Green", "Amber", "Red", "Complete" or "Add a note"."""

    label: str
    url: str
    status: str | None = None  # the status it answers (None: "Add a note", no status)


@dataclass(frozen=True)
class Item:
    """One action in a message, with why it is in it."""

    ref: str                 # "HW 3"
    title: str
    plan: str
    rule: str                # before_due, due, overdue, escalation, stale, review_request, review_chase, review_missing
    # What is due and why, as data (bot.render.phrase_reason says it); a str is the sentence of
    # an outbox row queued before reasons were data, shown as written (storage.reasons.why_of).
    why: Why | str
    due: date | None
    due_text: str | None     # as the plan wrote it: "April 2026"
    status: str | None       # green/amber/red/complete/not_started or None
    owner: str | None = None  # whose action, when the recipient is a cover, manager or the EDI lead
    links: tuple[Link, ...] = ()  # one-click answers
    action_id: int | None = None  # which action the item is: a button's value names it
    recorded: Recorded | None = None  # set in an in-place update: what was recorded since


@dataclass(frozen=True)
class Recipient:
    """Who a message is for, with their address on each channel: ``{"email": …, "slack": …,
    "teams": …}`` (only the ones known). ``channel`` is the channel they prefer, if any."""

    name: str
    addresses: Mapping[str, str] = field(default_factory=dict)
    person_id: int | None = None
    channel: str | None = None
    # When a channel last looked this person up by email, by channel kind ({"slack": when}), so
    # its ``address`` can tell "not looked up yet" from "looked up lately and not found" without
    # asking the service (people.slack_checked_at).
    looked_up: Mapping[str, datetime] = field(default_factory=dict)
    # Where a chat service reaches them beyond an id, by channel kind: Teams' conversation
    # reference {"service_url", "conversation_id", "tenant_id", ...} (people.teams_conversation),
    # only while they have not blocked the bot.
    conversations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def address(self, kind: str) -> str | None:
        return self.addresses.get(kind) or None

    @property
    def email(self) -> str | None:
        return self.address("email")


@dataclass(frozen=True)
class Recorded:
    """What was recorded for an item since its message went out (shown by an in-place update)."""

    status: str | None
    note: str | None
    due_text: str | None
    by: str  # the person's name
    via: str  # web, email, slack, teams, cli
    at: datetime


@dataclass(frozen=True)
class Envelope:
    """One message to one person, as the dispatcher hands it to a channel."""

    outbox_id: int
    kind: str                # "nudge" (owner/cover/manager), "lead_list" (the EDI lead), "confirmation"
    recipient: Recipient
    items: tuple[Item, ...]
    sent_at: datetime        # aware; the (possibly simulated) time of sending
    notes: tuple[str, ...] = ()  # extra lines for lead lists
    more: int = 0  # further actions the message is about but does not list (jobs.sweep.MESSAGE_ITEMS_MAX)
    to_edi_lead: bool = False  # the recipient is the EDI lead (the one others ask for the full list)
    # An earlier send of this outbox row may have gone out (its claim's lease ran out, its
    # process died): a channel that can look for that send should look afresh, not in a cache.
    resend: bool = False
    # A confirmation answers the person's own email: its Message-ID (without angle brackets)
    # and "Re: <their subject>", for In-Reply-To/References and a subject that threads.
    in_reply_to: str | None = None
    reply_subject: str | None = None
    # The recipient's preferences page (bot.links.preferences_url): how and how often Chaser
    # reaches them; an email's List-Unsubscribe address. None for someone not in the directory.
    preferences_url: str | None = None
    weekly: bool = False  # the recipient's weekly summary (people.cadence "weekly"; jobs.sweep gathers it)
    # When the outbox row was made: with outbox_id, names the row across attempts and databases
    # (the Graph email channel derives its Message-ID from them, to find an earlier send).
    created_at: datetime | None = None
    # The one link to the page of all the recipient's open actions (bot.links.mine_link), and
    # how many there are now: a nudge to someone who answers for open actions of their own.
    mine_url: str | None = None
    mine_open: int = 0
    # A board digest (jobs.digest_send): the templates' view of its headlines, the images its
    # HTML shows by Content-ID and the files attached (the PDF). Empty for every other kind.
    digest: dict[str, Any] | None = None
    inline: tuple[Part, ...] = ()
    attachments: tuple[Part, ...] = ()

    @property
    def recipient_name(self) -> str:
        return self.recipient.name


@dataclass(frozen=True)
class Receipt:
    """What the service gave back, by channel: ``ref`` is {"message_id": …} for email,
    {"channel": …, "ts": …} for Slack, {"conversation": …, "activity": …} for Teams,
    {"path": …} for a file. Stored as JSON on the outbox row (``to_json``/``from_json``)."""

    channel: str
    ref: Mapping[str, str]
    possible_duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "ref": dict(self.ref), "possible_duplicate": self.possible_duplicate}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        return cls(channel=str(data["channel"]), ref=dict(data.get("ref") or {}),
                   possible_duplicate=bool(data.get("possible_duplicate", False)))


class ChannelError(ChaserError):
    """Sending failed. ``permanent`` failures are not retried; ``retry_after`` is in seconds.

    ``throttled``: the service is well and said "not so fast" (HTTP 429 with ``Retry-After``).
    Such a failure is not counted against ``[scheduler] max_attempts`` (see
    ``jobs.dispatch.Dispatcher.record_failure``): a large batch that a service paces must not
    park the messages it was merely asked to send later.
    """

    def __init__(self, text: str, *, permanent: bool = False, retry_after: float | None = None,
                 throttled: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.retry_after = retry_after
        self.throttled = throttled and not permanent

    def __repr__(self) -> str:
        throttled = ", throttled=True" if self.throttled else ""
        return f"ChannelError({self.text!r}, permanent={self.permanent}, retry_after={self.retry_after}{throttled})"


class UnknownChannel(ConfigError):
    """A channel kind that is not in ``bot.channels.CHANNELS``."""


class Secrets:
    """Where a channel reads its secrets: the environment variable ``NAME``, or the file named by
    ``NAME_FILE`` (a mounted secret). Values are never shown in ``repr`` or errors."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value:
            return value
        named = self._environ.get(f"{name}_FILE")
        if not named:
            return None
        try:
            return Path(named).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}_FILE: cannot read {named} ({exc})") from None

    def require(self, name: str, why: str) -> str:
        value = self.get(name)
        if value is None:
            raise ConfigError(f"{name} is not set (nor {name}_FILE): {why}")
        return value

    def __repr__(self) -> str:
        return "Secrets(<environment>)"


@runtime_checkable
class Channel(Protocol):
    """The narrow contract every channel module implements.

    ``from_settings(table, secrets)`` builds the channel from its ``[channels.<kind>]`` table
    (a ConfigError names the key); called with ``secrets=None`` it only checks the table
    (``chaser`` commands that send nothing must not need Slack's token). ``address`` answers
    "can I reach this person?" (None: not here, the dispatcher routes on). ``checks_duplicates``:
    the channel looks for its own earlier send of an outbox id and says so in
    ``Receipt.possible_duplicate``; when False, any resend after a lost lease is counted as a
    possible duplicate. A channel that can edit what it sent also has ``update(receipt,
    envelope) -> Receipt`` (see :func:`can_update`).
    """

    kind: str
    checks_duplicates: bool

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> Channel:
        ...

    def address(self, recipient: Recipient) -> str | None:
        """Where the message would go, or None when the recipient is unreachable here."""
        ...

    def send(self, envelope: Envelope) -> Receipt:
        """Deliver the message or raise :class:`ChannelError`."""
        ...


def can_update(channel: Any) -> bool:
    """Whether a channel (or its class) edits messages it sent: it has ``update(receipt, envelope)``."""
    return callable(getattr(channel, "update", None))


def check_keys(table: Mapping[str, Any], kind: str, allowed: set[str]) -> None:
    """A ConfigError naming the first key of ``[channels.<kind>]`` the channel does not know."""
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown key 'channels.{kind}.{key}' (known keys: {known})")


@dataclass(frozen=True)
class Server:
    """Where a mail server is and how to talk to it: ``[channels.email] <prefix>_host`` and the rest."""

    host: str
    port: int
    security: str
    ca_file: str | None
    timeout: float


def server_settings(table: Mapping[str, Any], prefix: str, ports: Mapping[str, int], *, security: str,
                    host: str | None, example: str, why_host: str = "") -> Server:
    """``{prefix}_host``, ``_port`` (default by security), ``_security`` (one of ``ports``),
    ``_ca_file`` and ``_timeout`` of ``[channels.email]``, checked; errors name the key. ``host``
    None: the host is required (``why_host`` says when)."""
    key = f"'channels.email.{prefix}"
    value = table.get(f"{prefix}_host", host)
    if value is None:
        raise ConfigError(f"{key}_host' is required{why_host}: the server, such as \"{example}\"")
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ConfigError(f"{key}_host' must be a host name such as \"{example}\", got {value!r}")
    chosen = table.get(f"{prefix}_security", security)
    if chosen not in ports:
        names = ", ".join(f'"{name}"' for name in ports)
        raise ConfigError(f"{key}_security' must be one of {names}, got {chosen!r}")
    port = table.get(f"{prefix}_port", ports[chosen])
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"{key}_port' must be a port number from 1 to 65535, got {port!r}")
    ca_file = table.get(f"{prefix}_ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        raise ConfigError(f"{key}_ca_file' must be the path of a PEM file, got {ca_file!r}")
    timeout = table.get(f"{prefix}_timeout", 30)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"{key}_timeout' must be a number of seconds above 0, got {timeout!r}")
    return Server(value, port, chosen, ca_file, float(timeout))
