"""The tracker's schema: SQLAlchemy 2.0 typed models.

Plan -> Workstream -> (ActionGroup) -> Action, owned through roles by people. A status is
never stored on the action: ``StatusUpdate`` is an append-only history and the current status,
note and revised due date are derived from it (see ``storage.updates``). The action row holds
what the plan file says; ``file_status``/``file_progress`` remember what the file said at the
last import so a re-import only records what changed in the file.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    false,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.statuses import STATUSES  # noqa: F401 - re-exported: the names stored

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite (which stores naive text) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# What every part that needs the time is given (the real one is ``utcnow``): tests inject their own.
Clock = Callable[[], dt.datetime]


# ``next_check_at`` for "look at this at the next sweep, whatever time it sweeps": a moment
# before any plan, so a sweep simulated in the past (``chaser run --once --at``) sees it too.
CHECK_NOW = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    organisation: Mapped[str | None] = mapped_column(String(300))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    description: Mapped[str | None] = mapped_column(Text)
    source_file: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    workstreams: Mapped[list[Workstream]] = relationship(
        back_populates="plan", order_by="Workstream.position", cascade="all, delete-orphan"
    )


class Workstream(Base):
    """A theme/objective/section of the plan, with its sponsor and what it aims for."""

    __tablename__ = "workstreams"
    __table_args__ = (UniqueConstraint("plan_id", "key", name="uq_workstreams_plan_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(500))
    label: Mapped[str | None] = mapped_column(String(100))  # e.g. "Objective 3"
    lead_sponsor: Mapped[str | None] = mapped_column(Text)
    objective: Mapped[str | None] = mapped_column(Text)
    # Project metrics as boards report them: {"schedule": "G", "scope": "A", ...}
    metrics: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    risks_issues: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)

    plan: Mapped[Plan] = relationship(back_populates="workstreams")


class ActionGroup(Base):
    """A group row above actions, such as a recommendation (``R1.A``)."""

    __tablename__ = "action_groups"
    __table_args__ = (UniqueConstraint("plan_id", "ref_key", name="uq_action_groups_plan_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    workstream_id: Mapped[int | None] = mapped_column(ForeignKey("workstreams.id", ondelete="SET NULL"))
    ref: Mapped[str] = mapped_column(String(50))
    ref_key: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Role(Base):
    """An owner as the plan names it: a role ("HR Business Partner"), a board or a person."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(300), unique=True)


class Person(Base):
    __tablename__ = "people"
    __table_args__ = (CheckConstraint("cadence IN ('each', 'weekly')", name="cadence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    slack_id: Mapped[str | None] = mapped_column(String(50))
    # When the Slack channel last looked this person up by email (users.lookupByEmail): a person
    # not found is not asked about again for a day; set with slack_id when they were found.
    slack_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    teams_id: Mapped[str | None] = mapped_column(String(200))  # the Entra object id (Teams' aadObjectId)
    # Where the Teams bot reaches them (bot.teams_app stores it when the app is installed for them
    # or they write to it): {"service_url", "conversation_id", "tenant_id", "user_id", "stored_at"}.
    teams_conversation: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # When Teams said they blocked or removed the bot (403): Teams is skipped until it is installed again.
    teams_blocked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    delegate_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    # Leave: until this date (inclusive) nudges go to ``cover``, or wait when there is none.
    away_until: Mapped[dt.date | None] = mapped_column(Date)
    cover_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    # The channel this person prefers ("email", "slack", ...), ahead of [channels] order; NULL: the order.
    channel: Mapped[str | None] = mapped_column(String(30))
    # How often they hear from Chaser: "each" reminder as it falls due, or one "weekly" summary
    # (chosen on the preferences page; jobs.sweep gathers a weekly person's nudges).
    cadence: Mapped[str] = mapped_column(String(10), default="each", server_default="each")

    roles: Mapped[list[Role]] = relationship(secondary="person_roles", order_by="Role.name")
    manager: Mapped[Person | None] = relationship(foreign_keys=[manager_id], remote_side=[id])
    delegate: Mapped[Person | None] = relationship(foreign_keys=[delegate_id], remote_side=[id])
    cover: Mapped[Person | None] = relationship(foreign_keys=[cover_id], remote_side=[id])


class PersonRole(Base):
    __tablename__ = "person_roles"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class Action(Base):
    __tablename__ = "actions"
    __table_args__ = (
        UniqueConstraint("plan_id", "ref_key", name="uq_actions_plan_ref"),
        UniqueConstraint("plan_id", "match_key", name="uq_actions_plan_match"),
        CheckConstraint(
            "due_precision IS NULL OR due_precision IN ('day','month','quarter','term','year')",
            name="due_precision",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    workstream_id: Mapped[int | None] = mapped_column(
        ForeignKey("workstreams.id", ondelete="SET NULL"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(ForeignKey("action_groups.id", ondelete="SET NULL"))
    ref: Mapped[str] = mapped_column(String(50))
    ref_key: Mapped[str] = mapped_column(String(50))  # upper case, no spaces: "HW 3" == "HW3"
    ref_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    # How a re-import finds this action again: "ref:HW3", or "title:<group>:<title>" without a ref.
    match_key: Mapped[str] = mapped_column(String(400))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    owners_text: Mapped[str | None] = mapped_column(Text)
    dependencies: Mapped[str | None] = mapped_column(Text)
    resources: Mapped[str | None] = mapped_column(Text)
    success_measures: Mapped[str | None] = mapped_column(Text)
    next_steps: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    start_text: Mapped[str | None] = mapped_column(Text)
    due_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    due_precision: Mapped[str | None] = mapped_column(String(10))
    due_text: Mapped[str | None] = mapped_column(Text)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    recurrence: Mapped[str | None] = mapped_column(String(30))
    # Milestones: [{"date": "2024-03-31", "text": "March 2024"}, ...]
    key_dates: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    file_status: Mapped[str | None] = mapped_column(String(20))
    file_progress: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str | None] = mapped_column(String(200))  # where in the file it was read
    snoozed_until: Mapped[dt.date | None] = mapped_column(Date)
    # When the reminder sweep must look at this action again (NULL: never, e.g. complete).
    # Anything that changes what is due sets it to "now"; the sweep sets the next real time.
    # The sweep reads only rows whose time has come, so its cost follows the due items.
    next_check_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Why the last sweep could not plan this action (NULL when it could): ``chaser status``
    # lists these; the sweep looks again after jobs.planner.PROBLEM_RETRY.
    check_problem: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    plan: Mapped[Plan] = relationship()
    workstream: Mapped[Workstream | None] = relationship()
    group: Mapped[ActionGroup | None] = relationship()
    owners: Mapped[list[ActionOwner]] = relationship(
        order_by="ActionOwner.position", cascade="all, delete-orphan", back_populates="action"
    )


class ActionOwner(Base):
    __tablename__ = "action_owners"
    __table_args__ = (UniqueConstraint("action_id", "position", name="uq_action_owners_action_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int] = mapped_column(Integer)

    action: Mapped[Action] = relationship(back_populates="owners")
    role: Mapped[Role] = relationship()


class StatusUpdate(Base):
    """One reply or change, never edited or deleted: the action's history."""

    __tablename__ = "status_updates"
    __table_args__ = (
        Index("ix_status_updates_action_id_id", "action_id", "id"),
        CheckConstraint(
            "new_status IS NULL OR new_status IN ('not_started','green','amber','red','complete')",
            name="new_status",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    channel: Mapped[str] = mapped_column(String(30))  # cli, import, slack, teams, email, web
    by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    by_text: Mapped[str] = mapped_column(String(320))  # email, or "import: file.xlsx"
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    revised_due: Mapped[dt.date | None] = mapped_column(Date)
    revised_due_precision: Mapped[str | None] = mapped_column(String(10))
    revised_due_text: Mapped[str | None] = mapped_column(Text)
    # Owners the plan file changed, as "HR Business Partner → HR Business Partner, CS EDI Lead".
    owners_change: Mapped[str | None] = mapped_column(Text)
    # The message the answer was prompted by, and the reply it came in (bot.inbound).
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))

    by_person: Mapped[Person | None] = relationship()


class Outbox(Base):
    """One message to one person: the unit the dispatcher claims, sends and records.

    A message covers one or more nudges (``NudgeKey`` rows): an owner with several actions
    needing attention in one sweep gets one message. ``kind`` "update" is an in-place edit of
    an earlier chat message (``target_id``) to show what was recorded: claimed, retried and
    parked like a send. ``channel`` is NULL until the dispatcher routes the message; ``route``
    lists the channels it left, and why (a permanent failure moves it to the next one).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        CheckConstraint("state IN ('queued','sending','sent','failed','parked')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # nudge, lead_list, update
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(320))  # the address it went to (email or chat id)
    channel: Mapped[str | None] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the items and notes, as planned
    state: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    # bot.channels.base.Receipt as JSON: {"channel": "slack", "ref": {"channel": "D1", "ts": "1.2"}, ...}
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # [{"channel": "slack", "error": "...", "at": "2026-12-01T09:30:00+00:00"}, ...]
    route: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    # The email Message-ID it went out with, without angle brackets (also in the receipt):
    # indexed, so a reply's In-Reply-To finds its message at once (storage.tracker).
    message_id: Mapped[str | None] = mapped_column(String(250), index=True)


class NudgeKey(Base):
    """What has been planned, once: the idempotency key (action, person, rule, occurrence).

    Inserted with ON CONFLICT DO NOTHING; only the keys a sweep actually inserted go into its
    messages, so two sweeps cannot plan the same nudge twice. ``outbox_id`` is NULL for a
    nudge that was superseded by a more urgent one for the same action and person.
    """

    __tablename__ = "nudge_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    rule: Mapped[str] = mapped_column(String(20))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Sweep(Base):
    """One run of the reminder sweep, for ``chaser status``."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)  # the (possibly simulated) time swept
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    actions_checked: Mapped[int] = mapped_column(Integer, default=0)
    nudges_planned: Mapped[int] = mapped_column(Integer, default=0)
    messages_queued: Mapped[int] = mapped_column(Integer, default=0)


REPLY_OUTCOMES = ("applied", "not_allowed", "unclear", "auto_reply", "duplicate")


class Reply(Base):
    """Every answer that came in, on any channel, and what became of it (bot.inbound).

    ``(via, external_id)`` is unique: a Slack retry or a mail delivered twice is stored again
    with outcome ``duplicate`` (``duplicate_of`` the first, ``external_id`` NULL) and changes nothing.
    """

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("via", "external_id", name="uq_replies_via_external_id"),
        CheckConstraint(f"outcome IN ({', '.join(repr(o) for o in REPLY_OUTCOMES)})", name="outcome"),
        Index("ix_replies_outcome_id", "outcome", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    via: Mapped[str] = mapped_column(String(30))  # web, cli, email, slack, teams
    external_id: Mapped[str | None] = mapped_column(String(300))
    sender: Mapped[str] = mapped_column(String(320))  # as the channel named them: email, Slack user id...
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    due_text: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))


class Setting(Base):
    """A value every process sharing the database must agree on, e.g. the answer-link key."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
