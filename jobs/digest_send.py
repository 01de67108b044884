"""Sending a board its digest: queued once per board and period, rendered when it is sent.

**Queued once.** A board's report for a period claims the key ``digest:<board>:<period>`` in
``nudge_keys`` with the sweep's ON CONFLICT DO NOTHING insert (``jobs.sweep._insert_keys``):
the call that inserted it queues the messages, any other (a second ``chaser digest --send``,
the sweep in another process, a restart) finds it taken and queues nothing. One outbox row,
kind ``digest``, per recipient email, each retried on its own like any message; the channel
is preset to ``email`` and routing falls back, as for every message, to the first channel of
``[channels] order`` that reaches an email address (the outbox folder on the embedded default).
``person_id`` is NULL: a board's recipients are addresses in its configuration, not people
whose channel preferences apply (the board secretary's list, a shared mailbox).
A board with ``slack_channel`` also gets one row for that channel: recipient the channel,
channel preset to ``slack``, payload ``"to": "slack_channel"``; the Slack channel posts its
summary there (:func:`bot.slack_blocks.digest_blocks`) and names the email for the full report.
A board with ``teams_webhook_env`` gets one row for its Teams channel: recipient the NAME of the
environment variable holding the Workflows webhook URL (the URL is a secret, read only when
sending), channel preset to ``teams_workflow`` (never routed to: the row goes there or is
parked), payload ``"to": "teams_webhook"``; that channel posts the card of
:func:`bot.teams_digest.digest_card`. All of a board's rows for a month come from the one key.

**Built when sent.** The payload holds only the board and the period (``{"board", "period",
"items": []}``); the dispatcher builds the report with :func:`jobs.digest.build_report` at
send time (:func:`digest_mail`). A period's report reads the tracker as it stood at the
period's end, so a retry an hour later sends the same numbers, and the row stays small (a
10,000-action report's data is megabytes). The one thing that can differ is history dated
inside the period but loaded after the first send (``chaser update --at``): the retry then
shows it, which is the report as it now stands for that month.

**When.** The sweep (:func:`queue_due_digests`, called by ``jobs.sweep.run_sweep``) queues
each board's report for the previous month from its ``digest_day`` on (the first working day,
or a day of the month moved to the next working day), within the send window. Missed days are
caught up later in the month; the key makes the catch-up harmless.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.mime import Part
from bot.render import slug
from jobs.calendar import WorkCalendar
from jobs.digest import COUNT_LABELS, COUNTED, Period, Report, build_report, find_board, last_complete_month, parse_period
from jobs.digest_render import chart_alt, chart_png, mark, render_pdf
from storage.dates import format_day, format_month
from storage.models import NudgeKey, Outbox

if TYPE_CHECKING:  # the CLI's config, passed in: nothing in jobs imports chaser.config
    from chaser.config import BoardConfig, Config

log = logging.getLogger("chaser.digest")
KIND = "digest"
CHART_ID = "chart.{period}@digest.chaser.invalid"  # the chart's Content-ID; unique within its message
CHANGES_LISTED = 8  # status moves the email (and the Slack summary) lists; the PDF has them all
SLACK_SUMMARY = "slack_channel"  # payload "to" of the row for the board's slack_channel (module docstring)
TEAMS_SUMMARY = "teams_webhook"  # payload "to" of the row for the board's teams_webhook_env (module docstring)
TEAMS_CHANNEL = "teams_workflow"  # bot.channels.teams_workflow: never routed to, only preset
SUMMARIES = {SLACK_SUMMARY: "slack", TEAMS_SUMMARY: TEAMS_CHANNEL}  # payload "to" -> the channel it is for


def digest_key(board: BoardConfig, period: Period) -> str:
    """``digest:childrens-services-edi-board:2026-11``: the board (by its slug, case-blind) and month."""
    return f"digest:{slug(board.name, limit=150, empty='board')}:{period.name}"


@dataclass(frozen=True)
class Queued:
    """What a queueing call did: the outbox rows it made, or none (``already``: queued before)."""

    key: str
    outbox_ids: tuple[int, ...]

    @property
    def already(self) -> bool:
        return not self.outbox_ids


def queue_digest(session: Session, board: BoardConfig, period: Period, now: dt.datetime) -> Queued:
    """Queue ``board``'s report for ``period`` to each of its recipients, once (module docstring).

    The caller commits. A board without recipients is refused by the caller, not here: the
    sweep skips it and ``chaser digest --send`` says which key to add."""
    from jobs.sweep import _insert_keys  # the sweep imports this module: imported when used

    key = digest_key(board, period)
    won = _insert_keys(session, [{"key": key, "action_id": None, "person_id": None, "rule": KIND,
                                  "outbox_id": None, "created_at": now}])
    if not won:
        return Queued(key, ())
    rows = [Outbox(kind=KIND, person_id=None, recipient=email, channel="email",
                   payload={"board": board.name, "period": period.name, "items": []},
                   state="queued", attempts=0, created_at=now, next_attempt_at=now)
            for email in board.recipients]
    if board.slack_channel:  # the summary for the board's channel: the Slack channel posts it there
        rows.append(Outbox(kind=KIND, person_id=None, recipient=board.slack_channel, channel="slack",
                           payload={"board": board.name, "period": period.name, "items": [], "to": SLACK_SUMMARY},
                           state="queued", attempts=0, created_at=now, next_attempt_at=now))
    if board.teams_webhook_env:  # the card for the board's Teams channel: the variable's NAME, never its URL
        rows.append(Outbox(kind=KIND, person_id=None, recipient=board.teams_webhook_env, channel=TEAMS_CHANNEL,
                           payload={"board": board.name, "period": period.name, "items": [], "to": TEAMS_SUMMARY},
                           state="queued", attempts=0, created_at=now, next_attempt_at=now))
    session.add_all(rows)
    session.flush()
    session.execute(update(NudgeKey).where(NudgeKey.key == key).values(outbox_id=rows[0].id))
    return Queued(key, tuple(r.id for r in rows))


def has_destination(board: BoardConfig) -> bool:
    """Whether the board's digest goes anywhere: recipients, a Slack channel or a Teams webhook."""
    return bool(board.recipients or board.slack_channel or board.teams_webhook_env)


def digest_date(board: BoardConfig, calendar: WorkCalendar, year: int, month: int) -> dt.date:
    """The day ``board``'s digest goes out in that month: its first working day, or its
    ``digest_day`` (a number), on the next working day when that is a weekend or bank holiday."""
    day = board.digest_day if isinstance(board.digest_day, int) else 1
    return calendar.working_day_on_or_after(dt.date(year, month, day))


def queue_due_digests(session: Session, config: Config, now: dt.datetime) -> list[int]:
    """The sweep's part: every board with recipients whose digest day has come this month gets
    last month's report queued, once; outside the send window nothing is queued."""
    calendar = config.cadence_for("", None).calendar
    if not calendar.in_send_window(now):
        return []
    today = calendar.today(now)
    queued: list[int] = []
    for board in config.boards:
        if not has_destination(board) or today < digest_date(board, calendar, today.year, today.month):
            continue
        done = queue_digest(session, board, last_complete_month(now, config.timezone), now)
        if not done.already:
            log.info("queued %s's digest for %s to %d recipient(s)", board.name, done.key.rpartition(":")[2],
                     len(done.outbox_ids))
        queued.extend(done.outbox_ids)
    return queued


# --- at send time ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestMail:
    """What a digest email carries: the templates' view (plain values), the chart shown inline
    by Content-ID, and the PDF attached."""

    view: dict[str, Any]
    inline: tuple[Part, ...]
    attachments: tuple[Part, ...]


def mail_view(report: Report, chart_id: str, pdf_name: str) -> dict[str, Any]:
    """The headlines as the email's templates show them: every status as a word and a colour."""
    refs = {r.ref: r for r in report.actions}

    def word(status: str | None) -> str:
        return COUNT_LABELS[status or "no_update"]

    return {
        "board": report.board,
        "month": format_month(report.period.start),
        "period_end": format_day(report.period.end, weekday=False),
        "plans": list(report.plans),
        "total": report.total,
        "counts": [{"word": COUNT_LABELS[s], "count": report.counts[s], "background": mark(s).background,
                    "colour": mark(s).colour} for s in COUNTED],
        "changes": [{"ref": c.ref, "title": refs[c.ref].title if c.ref in refs else "", "from": word(c.from_),
                     "to": word(c.to)} for c in report.changes[:CHANGES_LISTED]],
        "changes_count": len(report.changes),
        "overdue": len(report.overdue),
        "due_next": len(report.due_next),
        "not_answered": len(report.not_answered),
        "spotlight": report.spotlight,
        "chart_id": chart_id,
        "chart_alt": chart_alt(report),
        "pdf_name": pdf_name,
    }


class DigestBuilder:
    """Builds (and keeps a few of) the digest emails the dispatcher sends: the rows of one board
    and period (one per recipient) are usually claimed together, and the PDF is the slow part."""

    def __init__(self, config: Config, keep: int = 4) -> None:
        self.config = config
        self.keep = keep
        self._made: OrderedDict[tuple[str, str], DigestMail] = OrderedDict()
        self._lock = threading.Lock()

    def summary(self, session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        """The headlines for the board's Slack or Teams channel: the email's view, without building the
        chart and the PDF when the email has not been built (same errors as :meth:`mail`)."""
        board = find_board(self.config.boards, str(payload.get("board", "")))
        period = parse_period(str(payload.get("period", "")), self.config.timezone)
        with self._lock:
            made = self._made.get((board.name, period.name))
        if made is not None:
            view = made.view
        else:
            edi_leads: Collection[str] = [self.config.edi_lead] if self.config.edi_lead else []
            view = mail_view(build_report(session, board, period, edi_leads), CHART_ID.format(period=period.name), "")
        return {**view, "emailed": bool(board.recipients)}  # the post says where the full report went

    def mail(self, session: Session, payload: dict[str, Any]) -> DigestMail:
        """The email for an outbox row's payload; NotFound/InvalidValue (ChaserError) when the
        board is no longer configured or the payload's period is not a month."""
        board = find_board(self.config.boards, str(payload.get("board", "")))
        period = parse_period(str(payload.get("period", "")), self.config.timezone)
        key = (board.name, period.name)
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
        edi_leads: Collection[str] = [self.config.edi_lead] if self.config.edi_lead else []
        made = digest_mail(build_report(session, board, period, edi_leads))
        with self._lock:
            self._made[key] = made
            while len(self._made) > self.keep:
                self._made.popitem(last=False)
        return made


def digest_mail(report: Report) -> DigestMail:
    """The email's content for ``report``: headlines, the chart inline, the PDF attached."""
    chart_id = CHART_ID.format(period=report.period.name)
    pdf_name = f"{slug(report.board, limit=60, empty='board')}-{report.period.name}.pdf"
    return DigestMail(
        view=mail_view(report, chart_id, pdf_name),
        inline=(Part("chart.png", "image/png", chart_png(report), content_id=chart_id),),
        attachments=(Part(pdf_name, "application/pdf", render_pdf(report)),),
    )
