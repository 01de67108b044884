"""Notices: a short message that only tells the EDI lead something (a preference changed, a
reply could not be applied). Queued through the outbox like every message (kind ``notice``)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Outbox, Person

NOTICE = "notice"  # the outbox kind


def tell_lead(session: Session, note: str, *, now: dt.datetime, edi_lead: str | None, about: int | None = None) -> None:
    """Queue the EDI lead a ``notice`` with one note (nothing when no lead is configured, or the
    lead is the person it is about: they know)."""
    if not edi_lead:
        return
    lead = session.scalar(select(Person.id).where(func.lower(Person.email) == edi_lead.lower()))
    if lead is None or lead == about:
        return
    session.add(Outbox(kind=NOTICE, person_id=lead, recipient=edi_lead, channel=None,
                       payload={"items": [], "notes": [note]}, state="queued", attempts=0, created_at=now,
                       next_attempt_at=now, route=[]))
