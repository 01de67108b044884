"""How a person hears from Chaser: which channel, and how often. Changed by the person
themselves (the preferences page behind every email's ``List-Unsubscribe``, or a mail with the
subject "unsubscribe"), never silently: the EDI lead is told every change in a ``notice``.

An unsubscribe never stops the chasing of an action someone owns — the plan still needs their
answers — it makes it quieter: the one-click unsubscribe of RFC 8058 (which a mail program
sends without asking the person anything) and the ``mailto:`` unsubscribe switch the person to
one weekly summary (``people.cadence = "weekly"``, gathered by jobs.sweep), and the page lets
them choose another channel or go back to every reminder. The EDI lead, told, can reassign an
action whose owner should not be chased at all.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.notices import tell_lead
from storage.models import Person

CADENCES = {"each": "every reminder, as each action falls due", "weekly": "one summary a week, on Monday morning"}
CHANNEL_WORDS = {"email": "email", "slack": "Slack", "teams": "Microsoft Teams"}
PERSON_CHANNELS = ("email", "slack", "teams")  # what a person can choose (the outbox folder is for trying Chaser)
UNCHANGED = "unchanged"  # change_preferences(channel=UNCHANGED): leave the channel as it is


@dataclass(frozen=True)
class Change:
    """What a person changed: (before, after) of each setting that moved."""

    person: Person
    channel: tuple[str | None, str | None] | None = None
    cadence: tuple[str, str] | None = None

    @property
    def changed(self) -> bool:
        return self.channel is not None or self.cadence is not None

    def describe(self) -> str:
        """"Sam Ade (sam@c.example) changed how Chaser reaches them: ... ", for the EDI lead."""
        parts = []
        if self.cadence is not None:
            parts.append(f"from {CADENCES[self.cadence[0]]} to {CADENCES[self.cadence[1]]}")
        if self.channel is not None:
            before, after = (channel_words(c) for c in self.channel)
            parts.append(f"channel from {before} to {after}")
        return f"{self.person.name} ({self.person.email}) changed how Chaser reaches them: {'; '.join(parts)}."


def channel_words(kind: str | None) -> str:
    return CHANNEL_WORDS.get(kind, kind) if kind else "the council's usual order"


def change_preferences(session: Session, person: Person, *, channel: str | None = UNCHANGED,
                       cadence: str | None = None, how: str, now: dt.datetime, edi_lead: str | None) -> Change:
    """Set ``channel`` (None: the usual order; UNCHANGED: as it is) and ``cadence`` (None:
    unchanged) for ``person``, and queue the EDI lead a notice saying so and ``how`` (``"on the
    preferences page"``, ``"by one-click unsubscribe"``). The caller commits."""
    if cadence is not None and cadence not in CADENCES:
        raise ValueError(f"cadence must be one of {', '.join(CADENCES)}, got {cadence!r}")
    moved_channel = moved_cadence = None
    if channel != UNCHANGED and channel != person.channel:
        moved_channel = (person.channel, channel)
        person.channel = channel
    if cadence is not None and cadence != person.cadence:
        moved_cadence = (person.cadence, cadence)
        person.cadence = cadence
    change = Change(person, moved_channel, moved_cadence)
    if change.changed:
        tell_lead(session, f"{change.describe()[:-1]} ({how}). Nothing else changed: Chaser goes on chasing their "
                  "actions this way. If one of them should not be chased at all, change its owner in the plan or in "
                  "the people directory.", now=now, edi_lead=edi_lead, about=person.id)
    return change


def reachable_channels(person: Person, order: Sequence[str]) -> list[str]:
    """The enabled channels a person can choose (in the usual order) that have their address."""
    addresses = {"email": person.email, "slack": person.slack_id, "teams": person.teams_id}
    return [kind for kind in order if kind in PERSON_CHANNELS and addresses.get(kind)]
