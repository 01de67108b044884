"""Tests of the outbound message layer; ``make_item``/``make_envelope`` build test data."""
from __future__ import annotations

import datetime as dt
from typing import Any

from bot.channels.base import Envelope, Item, Link, Recipient
from storage.reasons import Why

SENT_AT = dt.datetime(2026, 4, 28, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def make_links(action: int = 1) -> tuple[Link, ...]:
    return tuple(
        Link(label, f"https://chaser.example.gov.uk/answer/a{action}-{label.lower().replace(' ', '-')}", status)
        for label, status in (("Green", "green"), ("Amber", "amber"), ("Red", "red"), ("Complete", "complete"),
                              ("Add a note", None))
    )


def make_item(ref: str = "HW 3", **changes: Any) -> Item:
    values: dict[str, Any] = {
        "ref": ref,
        "title": "Publish the gender pay gap report",
        "plan": "Lambeth Children's Services EDI Action Plan",
        "rule": "before_due",
        "why": Why("before_due", due=dt.date(2026, 4, 30), working_days=2),  # "Due in 2 working days (Thu 30 April 2026)."
        "due": dt.date(2026, 4, 30),
        "due_text": "April 2026",
        "status": "amber",
        "links": make_links(),
    }
    values.update(changes)
    return Item(**values)


def make_envelope(*items: Item, **changes: Any) -> Envelope:
    values: dict[str, Any] = {
        "outbox_id": 42,
        "kind": "nudge",
        "recipient_name": "Priya Shah",
        "recipient_email": "priya.shah@lambeth.example.gov.uk",
        "recipient_slack_id": "U024BE7LH",
        "recipient_teams_id": None,
        "items": items or (make_item(),),
        "sent_at": SENT_AT,
    }
    values.update(changes)
    # The recipient as the dispatcher builds it: only the addresses the person has.
    addresses = {kind: values.pop(f"recipient_{key}") for kind, key in
                 (("email", "email"), ("slack", "slack_id"), ("teams", "teams_id"))}
    values["recipient"] = Recipient(values.pop("recipient_name"), {k: v for k, v in addresses.items() if v})
    return Envelope(**values)
