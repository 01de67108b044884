"""What an EDI lead switches on and off: snooze an action, pause a plan, record leave and cover.

Each change marks the affected actions for the reminder sweep to look at again
(``next_check_at = CHECK_NOW``), so its effect shows at the next sweep, not at the next
scheduled nudge.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chaser.errors import InvalidValue
from storage.models import CHECK_NOW, Action, ActionOwner, Person, Plan
from storage.people import holders


def recheck(session: Session, action_ids: list[int]) -> None:
    for start in range(0, len(action_ids), 5000):
        session.execute(
            update(Action).where(Action.id.in_(action_ids[start:start + 5000])).values(next_check_at=CHECK_NOW)
            .execution_options(synchronize_session=False)
        )


def snooze(session: Session, action: Action, until: dt.date | None) -> None:
    """No nudges for this action up to and including ``until`` (None lifts the snooze)."""
    action.snoozed_until = until
    action.next_check_at = CHECK_NOW
    session.flush()


def set_paused(session: Session, plan: Plan, paused: bool) -> int:
    """Pause or resume every reminder for a plan; returns how many actions it has."""
    plan.paused = paused
    ids = list(session.scalars(select(Action.id).where(Action.plan_id == plan.id)))
    recheck(session, ids)
    return len(ids)


def actions_of(session: Session, person: Person) -> list[int]:
    held = holders(session)
    roles = [role_id for role_id, people in held.items() if any(p.id == person.id for p in people)]
    if not roles:
        return []
    return sorted(set(session.scalars(select(ActionOwner.action_id).where(ActionOwner.role_id.in_(roles)))))


def set_away(session: Session, person: Person, until: dt.date | None, cover: Person | None) -> int:
    """Record leave: until ``until`` (inclusive) nudges go to ``cover``, or wait for the person's return."""
    if cover is not None and cover.id == person.id:
        raise InvalidValue(f"{person.email} cannot cover for themselves")
    if cover is not None and cover.away_until is not None and until is not None and cover.away_until >= until:
        raise InvalidValue(f"{cover.email} is away too (until {cover.away_until}); choose another cover")
    person.away_until = until
    person.cover = cover if until is not None else None
    session.flush()
    ids = actions_of(session, person)
    recheck(session, ids)
    return len(ids)
