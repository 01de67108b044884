"""What every channel is handed and gives back: the envelope, its items, the receipt.

The dispatcher builds an :class:`Envelope` per outbox row and calls ``channel.send``. A channel
either returns a :class:`Receipt` or raises :class:`ChannelError`; ``permanent=True`` means
"retrying will not help" (no address, a rejected recipient), otherwise the dispatcher retries,
no sooner than ``retry_after`` seconds when the service said so.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from chaser.errors import ChaserError, ConfigError
from storage.reasons import Why


@dataclass(frozen=True)
class Link:
    """A one-click answer: ``label`` is "Green", "Amber", "Red", "Complete" or "Add a note"."""

    label: str
    url: str


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


@dataclass(frozen=True)
class Envelope:
    """One message to one person, as the dispatcher hands it to a channel."""

    outbox_id: int
    kind: str                # "nudge" (owner/cover/manager) or "lead_list" (the EDI lead)
    recipient_name: str
    recipient_email: str | None
    recipient_slack_id: str | None
    recipient_teams_id: str | None
    items: tuple[Item, ...]
    sent_at: datetime        # aware; the (possibly simulated) time of sending
    notes: tuple[str, ...] = ()  # extra lines for lead lists
    more: int = 0  # further actions the message is about but does not list (jobs.sweep.MESSAGE_ITEMS_MAX)
    to_edi_lead: bool = False  # the recipient is the EDI lead (the one others ask for the full list)
    # An earlier send of this outbox row may have gone out (its claim's lease ran out, its
    # process died): a channel that can look for that send should look afresh, not in a cache.
    resend: bool = False


@dataclass(frozen=True)
class Receipt:
    """What the service gave back: Message-ID, Slack ts, activity id or file path."""

    provider_id: str
    possible_duplicate: bool = False


class ChannelError(ChaserError):
    """Sending failed. ``permanent`` failures are not retried; ``retry_after`` is in seconds."""

    def __init__(self, text: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ChannelError({self.text!r}, permanent={self.permanent}, retry_after={self.retry_after})"


class UnknownChannel(ConfigError):
    """A channel kind that is not in ``bot.channels.CHANNELS``."""


@runtime_checkable
class Channel(Protocol):
    """The narrow contract every channel module implements.

    ``checks_duplicates``: the channel looks for its own earlier send of an outbox id and says
    so in ``Receipt.possible_duplicate`` (the outbox folder finds its file); when False, any
    resend after a lost lease is counted as a possible duplicate.
    """

    kind: str
    checks_duplicates: bool

    def address(self, envelope: Envelope) -> str | None:
        """Where the message would go, or None when the recipient is unreachable here."""
        ...

    def send(self, envelope: Envelope) -> Receipt:
        """Deliver the message or raise :class:`ChannelError`."""
        ...
