"""``chaser preview``: what a sweep at a given time would send, with nothing changed.

A dry-run sweep (:func:`jobs.sweep.run_sweep` with ``dry_run=True``) with each nudge's
recipient named and the channel routing would choose today (from the directory alone: a
channel that looks people up, such as Slack by email, is not asked), for the command line now
and the EDI lead's pages later.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from bot.channels import Channel, load_channel
from bot.render import phrase_reason
from bot.routing import choose, recipient_of
from jobs.sweep import run_sweep
from storage.db import session_factory
from storage.tracker import people_by_id

if TYPE_CHECKING:  # the CLI's config, passed in: nothing in jobs imports chaser.config
    from chaser.config import Config


@dataclass(frozen=True)
class PlannedNudge:
    """One nudge a sweep would plan; ``key`` is its idempotency key (rule, action, whose, occurrence)."""

    ref: str
    person: str  # the recipient's email
    name: str
    channel: str
    rule: str
    key: str
    reason: str  # the sentence, as the message says it
    why: dict[str, Any]  # the same, as data (storage.reasons.Why)
    on_behalf_of: str | None  # whose action it is, when the recipient is a cover, manager or the EDI lead

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Preview:
    at: dt.datetime
    nudges: list[PlannedNudge] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # why, per action nobody can be sent to
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (plan, ref, why) not planned


def preview(engine: Engine, config: Config, now: dt.datetime) -> Preview:
    """What a sweep at ``now`` would plan; writes nothing."""
    result = run_sweep(engine, config, now, dry_run=True)
    ids = [n.person_id for n in result.nudges] + [n.owner_id for n in result.nudges if n.owner_id is not None]
    with session_factory(engine)() as session:
        people = people_by_id(session, ids)
    channels: dict[str, Channel] = {}

    def channel(kind: str) -> Channel:  # built to answer "can it reach them?": no secrets, no network
        if kind not in channels:
            channels[kind] = load_channel(kind, config.channels.table(kind), None)
        return channels[kind]

    nudges = []
    for n in result.nudges:
        person = people[n.person_id]
        route = choose(recipient_of(person), config.channels.order, channel)
        nudges.append(PlannedNudge(
            ref=n.ref, person=person.email, name=person.name, channel=route.channel if route else "none",
            rule=n.rule, key=n.key, reason=phrase_reason(n.why), why=n.why.to_json(),
            on_behalf_of=people[n.owner_id].email if n.owner_id is not None and n.owner_id in people else None,
        ))
    return Preview(at=now, nudges=nudges, unreachable=[why for _, why in result.unreachable], problems=result.problems)
