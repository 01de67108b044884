"""Why a nudge goes out, as data: what the planner decided, as the outbox stores it.

The planner (``jobs.planner``) says *what* is due and *why* as a :class:`Why`; the sweep stores
``Why.to_json()`` in each outbox payload item under ``"why"``; the dispatcher reads it back with
:func:`why_of` into ``bot.channels.base.Item.why``; and one template,
``message_templates/reasons.txt.j2`` (through ``bot.render.phrase_reason``), turns it into the
sentence people read. Nothing else writes that sentence, and nothing parses it back.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Why", "why_of"]


@dataclass(frozen=True)
class Why:
    """The facts behind one nudge; which ones are set depends on ``rule``.

    ``working_days`` counts from the day the nudge is planned to the due date, as things stand
    that day (after downtime it is today's count, not the missed occurrence's): positive while
    it is ahead (``before_due``, and ``due`` when the due date falls on a weekend), 0 on the
    day, negative when overdue (``due`` after downtime, ``overdue``, ``escalation``).
    """

    rule: str  # before_due, due, overdue, escalation, stale, review_request, review_chase, review_missing
    due: dt.date | None = None  # the due date (deadline rules)
    working_days: int | None = None  # to the due date: > 0 ahead, 0 today, < 0 overdue (deadline rules)
    days_since_update: int | None = None  # stale: calendar days since the last update, or since it was added
    never_updated: bool = False  # stale: nobody has updated it since it was added
    recurring: bool = False  # stale: a recurring action (else one with no due date)
    board: str | None = None  # review_*: the board that meets
    meeting: dt.date | None = None  # review_*: the day it meets
    owners: tuple[str, ...] = ()  # review_missing: the owners' names (none: nobody holds the roles)
    away: tuple[tuple[str, dt.date], ...] = ()  # review_missing: owners away, with the last day they are away
    # Any owner-bound rule addressed to the EDI lead because nobody in the people directory
    # holds the action's owner roles: ``roles`` names them (none: the plan names no owner).
    unowned: bool = False
    roles: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields that are set (dates as ISO text): small outbox rows."""
        out: dict[str, Any] = {"rule": self.rule}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is None or value is False or value == ():
                continue
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif name == "away":
                value = [[person, until.isoformat()] for person, until in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Why:
        """The inverse of :meth:`to_json`; keys it does not know are ignored."""
        values: dict[str, Any] = {name: data[name] for name in _NAMES if name in data}
        for name in ("due", "meeting"):
            if values.get(name):
                values[name] = dt.date.fromisoformat(values[name])
        for name in ("owners", "roles"):
            if name in values:
                values[name] = tuple(values[name])
        if "away" in values:
            values["away"] = tuple((person, dt.date.fromisoformat(until)) for person, until in values["away"])
        return cls(**values)


_NAMES = tuple(f.name for f in fields(Why))
_OPTIONAL = _NAMES[1:]


def why_of(item: Mapping[str, Any]) -> Why | str:
    """The why of one outbox payload item.

    Rows queued before reasons were stored as data (``"why"``) carry only the sentence the
    planner wrote then (``"reason"``), and such a row may be sent after the upgrade: its
    sentence is returned as it is, for the renderer to show as written (``bot.render.phrase_reason``
    passes a str through; the subject line then names the rule only, since nothing reads data
    back out of a sentence).
    """
    if "why" in item:
        return Why.from_json(item["why"])
    return str(item.get("reason") or "")
