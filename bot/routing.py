"""Which channel a message goes to: the person's own choice, then ``[channels] order``.

DESIGN.md, "Routing": a message goes to the first enabled channel where its recipient is
reachable; a permanent failure there moves it to the next one; nobody reachable anywhere
lands on the EDI lead's list. A channel only answers "can I reach this person?"
(``Channel.address``); the dispatcher asks here which one to use, when it sends (not when the
sweep planned the message, so a Slack id added to the directory in between is used).
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from bot.channels.base import Channel, Recipient


@dataclass(frozen=True)
class Route:
    channel: str
    address: str


def recipient_of(person: Any) -> Recipient:
    """A directory person (a ``Person`` or a row with its columns) as channels see them."""
    addresses = {"email": person.email, "slack": person.slack_id, "teams": person.teams_id}
    checked = getattr(person, "slack_checked_at", None)  # a row read without the column: never looked up
    conversation = getattr(person, "teams_conversation", None)
    reachable = conversation and conversation.get("conversation_id") and getattr(person, "teams_blocked_at", None) is None
    return Recipient(person.name, {k: v for k, v in addresses.items() if v}, person.id, person.channel,
                     {"slack": checked} if checked is not None else {},
                     {"teams": dict(conversation)} if reachable else {})


def candidates(recipient: Recipient, order: Sequence[str]) -> list[str]:
    """The channels to try, best first: the recipient's own channel when it is enabled, then the order."""
    first = [recipient.channel] if recipient.channel in order else []
    return first + [kind for kind in order if kind not in first]


def choose(recipient: Recipient, order: Sequence[str], channel: Callable[[str], Channel],
           skip: Collection[str] = (), kind: str | None = None) -> Route | None:
    """The first channel (not in ``skip``: it failed for good) that can reach ``recipient`` with a
    message of ``kind``."""
    for name in candidates(recipient, order):
        if name in skip:
            continue
        address = address_on(channel(name), recipient, kind)
        if address:
            return Route(name, address)
    return None


def address_on(channel: Channel, recipient: Recipient, kind: str | None) -> str | None:
    """``channel.address(recipient)``, else, for a message that goes to a shared place rather than
    to the person (the EDI lead's list in Teams' ``digest_channel``), the channel's
    ``shared_address(kind)`` when it has one."""
    address = channel.address(recipient)
    if not address and kind is not None:
        shared = getattr(channel, "shared_address", None)
        address = shared(kind) if callable(shared) else None
    return address


def why_unreachable(recipient: Recipient, order: Sequence[str], failed: Collection[str]) -> str:
    """A sentence for the EDI lead: where we looked, and why each channel could not be used."""
    parts = []
    for kind in candidates(recipient, order):
        parts.append(f"{kind}: {'failed' if kind in failed else 'no address'}")
    return f"{recipient.name} could not be reached on any channel ({'; '.join(parts)})"
