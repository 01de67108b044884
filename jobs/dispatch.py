"""The dispatcher: claim outbox rows, send them through their channel, record what happened.

A claim is committed before sending, with a lease: on PostgreSQL rows are picked with
``FOR UPDATE SKIP LOCKED`` so several ``chaser run`` processes never pick the same row; on
SQLite a claim is a conditional UPDATE (writers are serialised, WAL keeps readers going). A
claimed row whose lease ran out (its process died mid-send) is claimed again and sent with
``possible_duplicate`` set; the outbox-folder channel recognises a message it already wrote.
A failure is retried with exponential backoff (or after ``Retry-After``), and parked after
``max_attempts`` or a permanent error: never dropped. One bad row never stops the loop: its
next attempt is pushed forward before the error is logged.

With ``[scheduler] send_workers`` above 1, the messages of a claimed batch are sent by that
many threads at once, for channels whose sends wait on a service (while one waits, the next is
rendered); channels are therefore thread-safe. The default, 1, sends in order in the calling
thread. On a stop request, sends in progress finish and are recorded; the rest of the batch is
handed back.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, case, func, select, text, update
from sqlalchemy.orm import Session

from bot.channels import PRESET_ONLY, load_channel
from bot.channels.base import (
    Channel, ChannelError, Envelope, Item, Receipt, Recipient, Recorded, Secrets, can_update,
)
from bot.links import answer_links, mine_link, preferences_url
from bot.routing import Route, address_on, choose, recipient_of, why_unreachable
from chaser.errors import ChaserError
from jobs.digest_send import KIND as DIGEST
from jobs.digest_send import SUMMARIES, DigestBuilder
from storage.db import receipts_engine, session_factory
from storage.models import Clock, Outbox, Person, StatusUpdate
from storage.reasons import why_of
from storage.tracker import open_counts

if TYPE_CHECKING:  # the CLI's config, passed in: nothing in jobs imports chaser.config
    from chaser.config import Config

log = logging.getLogger("chaser.dispatch")


@dataclass
class Claimed:
    id: int
    reclaimed: bool  # its lease had expired: a previous send may have happened


@dataclass(frozen=True)
class Prepared:
    """A claimed row, read and turned into the envelope a channel is handed."""

    envelope: Envelope
    kind: str  # nudge, lead_list, update
    attempts: int
    channel: str | None  # where it was routed last (None: not yet)
    recipient: str
    route: tuple[dict[str, Any], ...]  # the channels it left, and why
    payload: dict[str, Any]
    target: Receipt | None = None  # an update: the message it edits
    problem: str | None = None  # why it cannot be sent at all (a digest whose board was removed)


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    parked: int = 0
    rerouted: int = 0  # failed for good on one channel, queued for the next
    possible_duplicates: int = 0
    unrecorded: int = 0  # sent, but the record failed: back after the lease as a possible duplicate
    outbox_ids: list[int] = field(default_factory=list)


_OUTBOX_COLUMNS = (Outbox.id, Outbox.kind, Outbox.person_id, Outbox.recipient, Outbox.payload, Outbox.channel,
                   Outbox.attempts, Outbox.claimed_by, Outbox.state, Outbox.route, Outbox.target_id,
                   Outbox.created_at)
# slack_checked_at: the Slack channel's address() tells "look them up" from "looked up lately, not there".
_PERSON_COLUMNS = (Person.id, Person.name, Person.email, Person.slack_id, Person.teams_id, Person.channel,
                   Person.slack_checked_at, Person.teams_conversation, Person.teams_blocked_at)
_TABLE = Outbox.__table__
# Built once: constructing the statement for every message cost more than running it.
_RECORD_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("outbox_id"), _TABLE.c.claimed_by == bindparam("worker"),
           _TABLE.c.state == "sending")
    .values(state="sent", receipt=bindparam("receipt", type_=_TABLE.c.receipt.type), sent_at=bindparam("sent_at"),
            lease_until=None, last_error=None, possible_duplicate=bindparam("duplicate"),
            channel=bindparam("channel"), recipient=bindparam("address"), message_id=bindparam("message_id"))
)


class InlineExecutor(Executor):
    """Runs each call at once in the calling thread (``send_workers = 1``): no thread hand-off.

    On this machine a thread hand-off per message cost more than the waits it overlapped for
    the outbox folder and memory channels (bench/README.md), so one worker means no threads.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future, as a pool would
            future.set_exception(exc)
        return future


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        clock: Clock,
        secret: str,
        channels: dict[str, Channel] | None = None,
        worker: str | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.secret = secret
        self.channels = channels if channels is not None else {}
        for channel in self.channels.values():
            self._attach(channel)
        self.secrets = secrets or Secrets()
        self.worker = worker or worker_name()
        self.sessions = session_factory(engine)
        self.receipts = receipts_engine(engine)
        self.stopping = False  # set from a signal handler; checked before each message is started
        self._lock = threading.Lock()  # channels and results are shared by the send threads
        self._held = threading.local()  # .connection: the receipts connection of this thread's run
        self._halted = False  # this run_once ends: start no more sends (see run_once)
        self.digests = DigestBuilder(config)  # board digests, built when sent (jobs.digest_send)

    # -- channels -------------------------------------------------------------------------
    def channel(self, kind: str) -> Channel:
        """The channel of ``kind``, built from its ``[channels.<kind>]`` table the first time."""
        with self._lock:  # one instance per kind, even when two threads ask first at once
            if kind not in self.channels:
                self.channels[kind] = self._attach(load_channel(kind, self.config.channels.table(kind), self.secrets))
            return self.channels[kind]

    def _attach(self, channel: Channel) -> Channel:
        """Hand a channel that asks for them (``attach(engine=, clock=)``) the database and the clock:
        the Slack channel writes the Slack ids it looks up onto people, and paces itself by the clock."""
        attach = getattr(channel, "attach", None)  # optional: most channels need neither
        if callable(attach):
            attach(engine=self.engine, clock=self.clock)
        return channel

    def close(self) -> None:
        """Let go of what channels hold open (the email channel's SMTP connection): on shutdown."""
        for channel in list(self.channels.values()):
            close = getattr(channel, "close", None)  # optional: most channels hold nothing open
            if callable(close):
                close()

    def route(self, prepared: Prepared, failed: set[str]) -> Route | None:
        """Where a message goes now: where it went last if that still works, else the first channel
        (of the person's own, then ``[channels] order``) that reaches its recipient. A message
        preset to a channel of ``PRESET_ONLY`` (not in the order) goes there, or nowhere."""
        order = self.config.channels.order
        recipient = prepared.envelope.recipient
        kind = prepared.envelope.kind
        if prepared.channel in PRESET_ONLY:  # queued for it by name (a board's Teams webhook): there or nowhere
            if prepared.channel in failed:
                return None
            address = self.channel(prepared.channel).address(recipient)
            return Route(prepared.channel, address) if address else None
        if prepared.channel in order and prepared.channel not in failed:
            address = address_on(self.channel(prepared.channel), recipient, kind)
            if address:
                return Route(prepared.channel, address)
        return choose(recipient, order, self.channel, failed, kind)

    # -- claiming -------------------------------------------------------------------------
    def claim(self, limit: int) -> list[Claimed]:
        now = self.clock()
        lease = now + dt.timedelta(seconds=self.config.scheduler.lease_seconds)
        with self.sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                rows = session.execute(
                    text(
                        """
                        WITH picked AS (
                            SELECT id, state FROM outbox
                            WHERE (state IN ('queued', 'failed') AND next_attempt_at <= :now)
                               OR (state = 'sending' AND lease_until < :now)
                            ORDER BY next_attempt_at, id
                            LIMIT :limit
                            FOR UPDATE SKIP LOCKED
                        )
                        UPDATE outbox SET state = 'sending', lease_until = :lease, claimed_by = :me,
                                          attempts = outbox.attempts + 1
                        FROM picked WHERE outbox.id = picked.id
                        RETURNING outbox.id, picked.state
                        """
                    ),
                    {"now": now, "lease": lease, "me": self.worker, "limit": limit},
                ).all()
                return sorted((Claimed(r[0], r[1] == "sending") for r in rows), key=lambda c: c.id)
            # SQLite has one writer at a time: a single UPDATE picks and claims the batch
            # atomically. A row whose lease ran out is marked possible_duplicate as it is taken.
            picked = (
                select(Outbox.id)
                .where(
                    ((Outbox.state.in_(("queued", "failed"))) & (Outbox.next_attempt_at <= now))
                    | ((Outbox.state == "sending") & (Outbox.lease_until < now))
                )
                .order_by(Outbox.next_attempt_at, Outbox.id)
                .limit(limit)
            )
            rows = session.execute(
                update(Outbox)
                .where(Outbox.id.in_(picked))
                .values(
                    state="sending", lease_until=lease, claimed_by=self.worker, attempts=Outbox.attempts + 1,
                    possible_duplicate=case((Outbox.state == "sending", True), else_=Outbox.possible_duplicate),
                )
                .returning(Outbox.id, Outbox.possible_duplicate)
                .execution_options(synchronize_session=False)
            ).all()
            return sorted((Claimed(r[0], bool(r[1])) for r in rows), key=lambda c: c.id)

    # -- one unit of work -----------------------------------------------------------------
    def envelope(self, session: Session, row: Any, now: dt.datetime, person: Any = None,
                 recorded: dict[int, Recorded] | None = None, open_count: int | None = None) -> Envelope:
        """The envelope of an outbox row (an Outbox, or a row of _OUTBOX_COLUMNS) for ``person``;
        an update's row is its target's, with what was ``recorded`` since per action id. A nudge
        carries the link to the page of all the person's open actions when they have any
        (``open_count``: how many, as counted for the whole batch; None: counted here)."""
        if person is None and row.person_id is not None:
            person = session.get(Person, row.person_id)
        mine: dict[str, Any] = {}
        if row.kind == "nudge" and row.person_id is not None:
            if open_count is None:
                open_count = open_counts(session, [row.person_id])[row.person_id]
            if open_count:
                mine = {"mine_url": mine_link(self.config.web_base_url, self.secret, person_id=row.person_id,
                                              outbox_id=row.id), "mine_open": open_count}
        recorded = recorded or {}
        items = []
        for item in row.payload["items"]:
            links = answer_links(
                self.config.web_base_url, self.secret, action_id=item["action_id"],
                person_id=row.person_id or 0, outbox_id=row.id,
            ) if row.person_id is not None else ()
            items.append(Item(
                # why_of: a row queued before reasons were data has only its sentence, shown as is.
                ref=item["ref"], title=item["title"], plan=item["plan"], rule=item["rule"], why=why_of(item),
                due=dt.date.fromisoformat(item["due"]) if item.get("due") else None, due_text=item.get("due_text"),
                status=item.get("status"), owner=item.get("owner"), links=links, action_id=item["action_id"],
                recorded=recorded.get(item["action_id"]) or _recorded_in(item),
            ))
        if person is not None:
            recipient = recipient_of(person)
        else:  # the person left the directory: the address the message was planned for
            recipient = Recipient(row.recipient, {"email": row.recipient} if "@" in row.recipient else {})
        return Envelope(
            outbox_id=row.id, kind=row.kind, recipient=recipient,
            items=tuple(items), sent_at=now, notes=tuple(row.payload.get("notes", ())),
            more=int(row.payload.get("more", 0)), to_edi_lead=bool(row.payload.get("to_edi_lead")), **mine,
            in_reply_to=row.payload.get("in_reply_to"), reply_subject=row.payload.get("reply_subject"),
            preferences_url=preferences_url(self.config.web_base_url, self.secret, person_id=row.person_id)
            if row.person_id is not None else None,
            created_at=row.created_at, weekly=bool(row.payload.get("weekly")),
        )

    def prepare(self, claimed: list[Claimed]) -> dict[int, Prepared]:
        """Envelopes for a claimed batch, read in two queries (not two per message)."""
        now = self.clock()
        ids = [c.id for c in claimed]
        with self.sessions() as session:
            # Plain rows of the columns used, not ORM objects: a tenth of a message's time went
            # into loading and tracking objects nothing changes.
            rows = session.execute(select(*_OUTBOX_COLUMNS).where(Outbox.id.in_(ids))).all()
            # Not ours any more (lost the lease to another worker): it records the outcome.
            rows = [row for row in rows if row.claimed_by == self.worker and row.state == "sending"]
            targets = {t.id: t for t in session.scalars(
                select(Outbox).where(Outbox.id.in_([r.target_id for r in rows if r.target_id is not None])))}
            person_ids = {r.person_id for r in rows if r.person_id is not None}
            people = {p.id: p for p in session.execute(select(*_PERSON_COLUMNS).where(Person.id.in_(person_ids)))}
            # Every nudge's link to the page of all the person's actions says how many are open:
            # counted once for the batch (the directory and one fold of the history).
            nudged = {r.person_id for r in rows if r.person_id is not None and r.kind in ("nudge", "update")}
            counts = open_counts(session, nudged) if nudged else {}
            prepared = {}
            for row in rows:
                person = people.get(row.person_id or -1)
                common = {"attempts": row.attempts, "channel": row.channel, "recipient": row.recipient,
                          "route": tuple(row.route or ()), "payload": row.payload}
                target = targets.get(row.target_id or -1)
                if row.kind == "update" and target is not None:
                    envelope = self.envelope(session, target, now, person, recorded_since(session, target),
                                             counts.get(target.person_id or -1, 0))
                    receipt = Receipt.from_json(target.receipt) if target.receipt else None
                    prepared[row.id] = Prepared(envelope=replace(envelope, outbox_id=row.id), kind=row.kind,
                                                target=receipt, **common)
                elif row.kind == "update":  # its message was deleted: nothing left to update
                    prepared[row.id] = Prepared(envelope=Envelope(row.id, "nudge", Recipient(row.recipient), (), now),
                                                kind=row.kind, **common)
                elif row.kind == DIGEST:
                    prepared[row.id] = self.prepare_digest(session, row, now, common)
                else:
                    envelope = self.envelope(session, row, now, person, open_count=counts.get(row.person_id or -1, 0))
                    prepared[row.id] = Prepared(envelope=envelope, kind=row.kind, **common)
            return prepared

    def prepare_digest(self, session: Session, row: Any, now: dt.datetime, common: dict[str, Any]) -> Prepared:
        """A board digest to one recipient address: its report built now, from the payload's
        board and period (jobs.digest_send); a board no longer configured cannot be sent. The
        address is named as the board ("EDI Board" <clerk@…>): it gets the mail as the board's.
        The rows for the board's ``slack_channel`` and ``teams_webhook_env`` have the channel (the
        Slack channel, the variable's name) as their address there and only the headlines: the
        PDF is the slow part, and a channel post attaches nothing."""
        summary_for = SUMMARIES.get(str(row.payload.get("to") or ""))
        to_channel = summary_for is not None
        recipient = Recipient(str(row.payload.get("board") or row.recipient), {summary_for or "email": row.recipient})
        try:
            if to_channel:
                view, inline, attachments = self.digests.summary(session, row.payload), (), ()
            else:
                mail = self.digests.mail(session, row.payload)
                view, inline, attachments = mail.view, mail.inline, mail.attachments
        except ChaserError as exc:
            return Prepared(envelope=Envelope(row.id, DIGEST, recipient, (), now), kind=row.kind, problem=str(exc),
                            **common)
        envelope = Envelope(outbox_id=row.id, kind=DIGEST, recipient=recipient, items=(), sent_at=now,
                            created_at=row.created_at, digest=view, inline=inline, attachments=attachments)
        return Prepared(envelope=envelope, kind=row.kind, **common)

    def deliver(self, claimed: Claimed, result: DispatchResult, prepared: Prepared) -> None:
        """Route, send (or update in place) one prepared message and record the outcome."""
        now = self.clock()
        envelope = replace(prepared.envelope, sent_at=now, resend=claimed.reclaimed)
        failed = {step["channel"] for step in prepared.route}
        if prepared.problem is not None:
            self.record_failure(claimed.id, prepared.attempts, ChannelError(prepared.problem, permanent=True), result,
                                prepared)
            return
        if prepared.kind == "update":
            if prepared.target is None:
                self.record_failure(claimed.id, prepared.attempts, ChannelError(
                    "the message to update has no receipt (it was never sent, or was deleted)", permanent=True),
                    result, prepared)
                return
            channel_kind, address = prepared.target.channel, prepared.recipient
            channel = self.channel(channel_kind)
            if not can_update(channel):
                self.record_failure(claimed.id, prepared.attempts, ChannelError(
                    f"the {channel_kind} channel cannot update a message it sent", permanent=True), result, prepared)
                return
        else:
            chosen = self.route(prepared, failed)
            if chosen is None:
                why = why_unreachable(envelope.recipient, self.config.channels.order, failed)
                self.record_failure(claimed.id, prepared.attempts, ChannelError(why, permanent=True), result, prepared)
                return
            channel_kind, address = chosen.channel, chosen.address
            channel = self.channel(channel_kind)
        try:
            if prepared.kind == "update":
                assert prepared.target is not None
                receipt = channel.update(prepared.target, envelope)  # type: ignore[attr-defined]
            else:
                receipt = channel.send(envelope)
        except ChannelError as exc:
            self.record_failure(claimed.id, prepared.attempts, exc, result, prepared, channel_kind)
            return
        # A channel that looks for its own earlier send (the outbox folder finds the file it
        # wrote) knows; for one that cannot, any resend after a lost lease may be a duplicate.
        if channel.checks_duplicates:
            duplicate = receipt.possible_duplicate
        else:
            duplicate = receipt.possible_duplicate or claimed.reclaimed
        # One statement, committed on its own: see storage.db.receipts_engine. The claim was
        # committed durably before sending, so if a database crash loses this record the row
        # is still "sending" with its lease and comes back as a possible duplicate: the
        # message is never lost, and the fsync per message no longer halves the sending rate.
        try:
            recorded = self.record_sent({
                "outbox_id": claimed.id, "worker": self.worker, "receipt": replace(receipt, possible_duplicate=duplicate).to_json(),
                "sent_at": now, "duplicate": duplicate, "channel": channel_kind, "address": address[:320],
                "message_id": message_id_of(receipt),
            })
        except Exception:  # noqa: BLE001 - e.g. the database connection dropped
            # It went out. Marking it failed would send it again unflagged; left claimed, it
            # comes back when its lease runs out, as after a crash: checked or flagged.
            with self._lock:
                result.unrecorded += 1
            log.exception("outbox %d was sent but could not be recorded; it is kept claimed until its lease "
                          "runs out, then treated as a possible duplicate", claimed.id)
            return
        if recorded:
            with self._lock:
                result.sent += 1
                result.outbox_ids.append(claimed.id)
                result.possible_duplicates += duplicate
            if duplicate:
                log.warning("outbox %d may have been sent twice (its earlier send was interrupted)", claimed.id)

    def record_sent(self, params: dict[str, Any]) -> bool:
        """Mark one message sent, committed at once; False if it was not ours any more.

        Sending in order (one worker), run_once keeps one connection for these records in
        ``self._held``: checking a connection out of the pool and back for every message cost a
        fifth of the record's time. A record that fails drops the held connection (the next
        one checks out a fresh connection) and raises, like any other failure to deliver.
        """
        held = getattr(self._held, "connection", None)
        if held is None:
            with self.receipts.begin() as conn:
                return conn.execute(_RECORD_SENT, params).rowcount == 1  # type: ignore[attr-defined]
        try:
            done = held.execute(_RECORD_SENT, params)
            held.commit()
        except BaseException:
            self._held.connection = None
            held.invalidate()
            raise
        return done.rowcount == 1  # type: ignore[attr-defined]

    def record_failure(self, outbox_id: int, attempts: int, exc: ChannelError, result: DispatchResult,
                       prepared: Prepared | None = None, channel_kind: str | None = None) -> None:
        """Retry later; or, for a permanent failure or the last attempt, move the message to the
        next channel that reaches its recipient (recorded in ``route``), else park it — and when
        nobody could reach an owner anywhere, tell the EDI lead.

        A throttle (``exc.throttled``: HTTP 429, the service pacing us) is not an attempt: the
        row is retried after ``Retry-After`` with its attempt given back, so it is never parked
        for being throttled and its backoff does not grow. ``max_attempts`` is for failures that
        say something about the message or the service's health (5xx, timeouts, refusals); a
        throttle says only "later", and a batch of 500 nudges can be throttled many times over
        while every message in it is fine. Slack and Teams follow the same rule.
        """
        now = self.clock()
        settings = self.config.scheduler
        throttled = exc.throttled
        park = exc.permanent or (attempts >= settings.max_attempts and not throttled)
        delay = exc.retry_after if exc.retry_after is not None else min(3600, settings.retry_base_seconds * 2 ** (attempts - 1))
        route = list(prepared.route) if prepared is not None else []
        if channel_kind is not None and park:
            route.append({"channel": channel_kind, "error": str(exc)[:500], "at": now.isoformat()})
        onward = None
        if park and prepared is not None and prepared.kind != "update" and channel_kind is not None:
            onward = self.route(prepared, {step["channel"] for step in route})
        error = f"{channel_kind}: {exc}" if channel_kind else str(exc)
        if onward is not None:
            values: dict[str, Any] = {"state": "queued", "channel": onward.channel, "recipient": onward.address[:320],
                                      "attempts": 0, "next_attempt_at": now}
        elif park:
            values = {"state": "parked", "next_attempt_at": now + dt.timedelta(seconds=delay)}
        else:
            values = {"state": "failed", "next_attempt_at": now + dt.timedelta(seconds=delay)}
            if throttled:
                values["attempts"] = Outbox.attempts - 1  # counted at the claim: given back
            if channel_kind is not None:
                values["channel"] = channel_kind  # a retry goes where the failure was
        with self.sessions() as session, session.begin():
            done = session.execute(
                update(Outbox)
                .where(Outbox.id == outbox_id, Outbox.claimed_by == self.worker)
                .values(last_error=error[:2000], lease_until=None, route=route, **values)
                .execution_options(synchronize_session=False)
            ).rowcount
            # A recipient no channel can reach (not a service that is down for everyone): the lead hears.
            if done and park and onward is None and prepared is not None and exc.permanent:
                self.tell_lead(session, outbox_id, prepared, error, now)
        with self._lock:
            if onward is not None:
                result.rerouted += 1
            elif park:
                result.parked += 1
            else:
                result.failed += 1
        if onward is not None:
            log.warning("outbox %d failed on %s (%s); trying %s next", outbox_id, channel_kind, exc, onward.channel)
        elif park:
            log.error("outbox %d parked after %d attempt(s): %s", outbox_id, attempts, error)
        else:
            log.warning("outbox %d failed (attempt %d), retrying in %.0f s: %s", outbox_id, attempts, delay, error)

    def tell_lead(self, session: Session, outbox_id: int, prepared: Prepared, why: str, now: dt.datetime) -> None:
        """Queue the EDI lead a list of the actions an unreachable owner's parked message was about."""
        lead_email = self.config.edi_lead
        if prepared.kind != "nudge" or not lead_email or not prepared.payload.get("items"):
            return
        lead = session.scalar(select(Person.id).where(func.lower(Person.email) == lead_email))
        if lead is None or lead == prepared.envelope.recipient.person_id:
            return
        name = prepared.envelope.recipient.name
        items = [{**item, "owner": item.get("owner") or name} for item in prepared.payload["items"]]
        note = (f"{why}. Their message (outbox {outbox_id}) is parked: chase them another way, or add their "
                f"address to the people directory and run 'chaser outbox retry {outbox_id}'.")
        session.add(Outbox(kind="lead_list", person_id=lead, recipient=lead_email, channel=None,
                           payload={"items": items, "notes": [note], "about_outbox": outbox_id},
                           state="queued", attempts=0, created_at=now, next_attempt_at=now, route=[]))

    def run_once(self, *, batch: int = 50, limit: int | None = None) -> DispatchResult:
        """Send everything that is due now (or ``limit`` messages), then return."""
        result = DispatchResult()
        handled = 0
        # Unlike `stopping` (the process is asked to stop), a run that ends on an error halts only
        # itself: `chaser run` calls run_once again at the next tick.
        self._halted = False
        workers = self.config.scheduler.send_workers
        pool = ThreadPoolExecutor(workers, thread_name_prefix="chaser-send") if workers > 1 else InlineExecutor()
        with pool, contextlib.ExitStack() as cleanup:
            if workers == 1:
                self._held.connection = cleanup.enter_context(self.receipts.connect())
                cleanup.callback(setattr, self._held, "connection", None)
            while not self.stopping and (limit is None or handled < limit):
                claimed = self.claim(batch if limit is None else min(batch, limit - handled))
                if not claimed:
                    break
                handled += len(claimed)
                try:
                    prepared = self.prepare(claimed)
                except Exception:  # noqa: BLE001 - e.g. the database went away: leases expire, rows come back
                    log.exception("could not read %d claimed message(s); they are retried after their lease",
                                  len(claimed))
                    break
                # Rows missing from `prepared` are not ours any more (lost the lease to another worker).
                mine = [one for one in claimed if one.id in prepared]
                futures = [pool.submit(self.attempt, one, result, prepared[one.id]) for one in mine]
                try:
                    for future in futures:
                        future.result()
                except BaseException:  # Ctrl-C, or the database gone while recording a failure
                    self._halted = True  # what has not started yet returns at once
                    wait(futures)
                    self.hand_back(mine, futures)
                    raise
                if self.hand_back(mine, futures):
                    break
        return result

    def hand_back(self, claimed: list[Claimed], futures: list[Future[bool]]) -> bool:
        """Release the claimed messages whose send never started (a stop); True if any."""
        not_started = [one for one, future in zip(claimed, futures)
                       if future.exception() is None and future.result() is False]
        # Reclaimed rows keep their lease: released as plain "queued", the next worker would
        # forget that an earlier send may have gone out.
        self.release([one.id for one in not_started if not one.reclaimed])
        return bool(not_started)

    def attempt(self, one: Claimed, result: DispatchResult, prepared: Prepared) -> bool:
        """Deliver one claimed message; False if a stop was requested before it started."""
        if self.stopping or self._halted:
            return False
        try:
            try:
                self.deliver(one, result, prepared)
            except Exception as exc:  # noqa: BLE001 - a bad row must not stop the others
                # Push its next attempt forward first, then log: no crash loop on one row.
                self.record_failure(one.id, self._attempts(one.id), ChannelError(f"internal error: {exc!r}"), result)
                log.exception("outbox %d could not be delivered", one.id)
        except BaseException:  # Ctrl-C, an exit, or the failure could not be recorded: start nothing more
            self._halted = True
            raise
        return True

    def _attempts(self, outbox_id: int) -> int:
        with self.sessions() as session:
            return session.scalar(select(Outbox.attempts).where(Outbox.id == outbox_id)) or 1

    def release(self, ids: list[int]) -> None:
        """Give back claimed rows not yet sent (on shutdown), so nobody waits for their lease."""
        if not ids:
            return
        with self.sessions() as session, session.begin():
            session.execute(
                update(Outbox)
                .where(Outbox.id.in_(ids), Outbox.claimed_by == self.worker, Outbox.state == "sending")
                .values(state="queued", lease_until=None, attempts=Outbox.attempts - 1)
                .execution_options(synchronize_session=False)
            )


def _recorded_in(item: dict[str, Any]) -> Recorded | None:
    """What a confirmation's item says was recorded (bot.confirm writes it into the payload)."""
    found = item.get("recorded")
    if not found:
        return None
    return Recorded(status=found.get("status"), note=found.get("note"), due_text=found.get("due_text"),
                    by=str(found.get("by") or ""), via=str(found.get("via") or "email"),
                    at=dt.datetime.fromisoformat(found["at"]))


def message_id_of(receipt: Receipt) -> str | None:
    """The email Message-ID a receipt names, without angle brackets (the indexed ``outbox.message_id``)."""
    value = receipt.ref.get("message_id")
    return str(value).strip().strip("<>")[:250] or None if value else None


def recorded_since(session: Session, message: Outbox) -> dict[int, Recorded]:
    """Per action of ``message``: the latest answer recorded since it was sent (what an in-place
    update shows), by a person on any channel."""
    action_ids = [item["action_id"] for item in message.payload.get("items", ())]
    since = message.sent_at or message.created_at
    rows = session.execute(
        select(StatusUpdate.action_id, StatusUpdate.new_status, StatusUpdate.note, StatusUpdate.revised_due_text,
               StatusUpdate.channel, StatusUpdate.created_at, func.coalesce(Person.name, StatusUpdate.by_text))
        .outerjoin(Person, Person.id == StatusUpdate.by_person_id)
        .where(StatusUpdate.action_id.in_(action_ids), StatusUpdate.created_at >= since,
               StatusUpdate.channel != "import")
        .order_by(StatusUpdate.id)
    )
    found: dict[int, Recorded] = {}
    for action_id, status, note, due_text, via, at, by in rows:
        found[action_id] = Recorded(status=status, note=note, due_text=due_text, by=by, via=via, at=at)
    return found
