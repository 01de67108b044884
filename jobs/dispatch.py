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

from sqlalchemy import Engine, bindparam, case, select, text, update
from sqlalchemy.orm import Session

from bot.channels import load_channel
from bot.channels.base import Channel, ChannelError, Envelope, Item
from bot.links import answer_links
from storage.db import receipts_engine, session_factory
from storage.models import Clock, Outbox, Person

if TYPE_CHECKING:  # the CLI's config, passed in: nothing in jobs imports chaser.config
    from chaser.config import Config

log = logging.getLogger("chaser.dispatch")


@dataclass
class Claimed:
    id: int
    reclaimed: bool  # its lease had expired: a previous send may have happened


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    parked: int = 0
    possible_duplicates: int = 0
    unrecorded: int = 0  # sent, but the record failed: back after the lease as a possible duplicate
    outbox_ids: list[int] = field(default_factory=list)


_OUTBOX_COLUMNS = (Outbox.id, Outbox.kind, Outbox.person_id, Outbox.recipient, Outbox.payload, Outbox.channel,
                   Outbox.attempts, Outbox.claimed_by, Outbox.state)
_PERSON_COLUMNS = (Person.id, Person.name, Person.email, Person.slack_id, Person.teams_id)
# Built once: constructing the statement for every message cost more than running it.
_RECORD_SENT = (
    update(Outbox.__table__)
    .where(Outbox.id == bindparam("outbox_id"), Outbox.claimed_by == bindparam("worker"), Outbox.state == "sending")
    .values(state="sent", receipt=bindparam("receipt"), sent_at=bindparam("sent_at"), lease_until=None,
            last_error=None, possible_duplicate=bindparam("duplicate"))
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
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.secret = secret
        self.channels = channels if channels is not None else {}
        self.worker = worker or worker_name()
        self.sessions = session_factory(engine)
        self.receipts = receipts_engine(engine)
        self.stopping = False  # set from a signal handler; checked before each message is started
        self._lock = threading.Lock()  # channels and results are shared by the send threads
        self._held = threading.local()  # .connection: the receipts connection of this thread's run
        self._halted = False  # this run_once ends: start no more sends (see run_once)

    # -- channels -------------------------------------------------------------------------
    def channel(self, kind: str) -> Channel:
        with self._lock:  # one instance per kind, even when two threads ask first at once
            if kind not in self.channels:
                options: dict[str, Any] = {}
                if kind == "outbox_folder":
                    channels = self.config.channels
                    options = {"folder": channels.outbox_folder, "sender": channels.sender,
                               "file_mode": channels.outbox_file_mode}
                self.channels[kind] = load_channel(kind, **options)
            return self.channels[kind]

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
    def envelope(self, session: Session, row: Any, now: dt.datetime, person: Any = None) -> Envelope:
        """The envelope of an outbox row (an Outbox, or a row of _OUTBOX_COLUMNS) for ``person``."""
        if person is None and row.person_id is not None:
            person = session.get(Person, row.person_id)
        items = []
        for item in row.payload["items"]:
            links = answer_links(
                self.config.web_base_url, self.secret, action_id=item["action_id"],
                person_id=row.person_id or 0, outbox_id=row.id,
            ) if row.person_id is not None else ()
            items.append(Item(
                ref=item["ref"], title=item["title"], plan=item["plan"], rule=item["rule"], reason=item["reason"],
                due=dt.date.fromisoformat(item["due"]) if item.get("due") else None, due_text=item.get("due_text"),
                status=item.get("status"), owner=item.get("owner"), links=links,
            ))
        return Envelope(
            outbox_id=row.id, kind=row.kind,
            recipient_name=person.name if person else row.recipient,
            recipient_email=person.email if person else (row.recipient if "@" in row.recipient else None),
            recipient_slack_id=person.slack_id if person else None,
            recipient_teams_id=person.teams_id if person else None,
            items=tuple(items), sent_at=now, notes=tuple(row.payload.get("notes", ())),
            more=int(row.payload.get("more", 0)), to_edi_lead=bool(row.payload.get("to_edi_lead")),
        )

    def prepare(self, claimed: list[Claimed]) -> dict[int, tuple[Envelope, str, int]]:
        """Envelopes for a claimed batch, read in two queries (not two per message)."""
        now = self.clock()
        ids = [c.id for c in claimed]
        with self.sessions() as session:
            # Plain rows of the columns used, not ORM objects: a tenth of a message's time went
            # into loading and tracking objects nothing changes.
            rows = session.execute(select(*_OUTBOX_COLUMNS).where(Outbox.id.in_(ids))).all()
            person_ids = {r.person_id for r in rows if r.person_id is not None}
            people = {p.id: p for p in session.execute(select(*_PERSON_COLUMNS).where(Person.id.in_(person_ids)))}
            return {
                row.id: (self.envelope(session, row, now, people.get(row.person_id or -1)), row.channel, row.attempts)
                for row in rows
                # Not ours any more (lost the lease to another worker): it records the outcome.
                if row.claimed_by == self.worker and row.state == "sending"
            }

    def deliver(self, claimed: Claimed, result: DispatchResult, prepared: tuple[Envelope, str, int]) -> None:
        """Send one prepared message and record the outcome."""
        now = self.clock()
        envelope, channel_kind, attempts = prepared
        envelope = replace(envelope, sent_at=now, resend=claimed.reclaimed)
        channel = self.channel(channel_kind)
        try:
            receipt = channel.send(envelope)
        except ChannelError as exc:
            self.record_failure(claimed.id, attempts, exc, result)
            return
        # A channel that looks for its own earlier send (the outbox folder finds the file it
        # wrote) knows; for one that cannot, any resend after a lost lease may be a duplicate.
        if getattr(channel, "checks_duplicates", False):
            duplicate = receipt.possible_duplicate
        else:
            duplicate = receipt.possible_duplicate or claimed.reclaimed
        # One statement, committed on its own: see storage.db.receipts_engine. The claim was
        # committed durably before sending, so if a database crash loses this record the row
        # is still "sending" with its lease and comes back as a possible duplicate: the
        # message is never lost, and the fsync per message no longer halves the sending rate.
        try:
            recorded = self.record_sent({
                "outbox_id": claimed.id, "worker": self.worker, "receipt": receipt.provider_id[:500],
                "sent_at": now, "duplicate": duplicate,
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

    def record_failure(self, outbox_id: int, attempts: int, exc: ChannelError, result: DispatchResult) -> None:
        now = self.clock()
        settings = self.config.scheduler
        park = exc.permanent or attempts >= settings.max_attempts
        delay = exc.retry_after if exc.retry_after is not None else min(3600, settings.retry_base_seconds * 2 ** (attempts - 1))
        with self.sessions() as session, session.begin():
            session.execute(
                update(Outbox)
                .where(Outbox.id == outbox_id, Outbox.claimed_by == self.worker)
                .values(state="parked" if park else "failed", last_error=str(exc)[:2000], lease_until=None,
                        next_attempt_at=now + dt.timedelta(seconds=delay))
                .execution_options(synchronize_session=False)
            )
        with self._lock:
            if park:
                result.parked += 1
            else:
                result.failed += 1
        if park:
            log.error("outbox %d parked after %d attempt(s): %s", outbox_id, attempts, exc)
        else:
            log.warning("outbox %d failed (attempt %d), retrying in %.0f s: %s", outbox_id, attempts, delay, exc)

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

    def attempt(self, one: Claimed, result: DispatchResult, prepared: tuple[Envelope, str, int]) -> bool:
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
