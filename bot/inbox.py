"""Replies read back from mail: one loop over a source of raw messages.

A **source** hands over raw RFC 5322 messages (:class:`Mail`) and is told, per message, how it
ended: ``finish(mail, "done")`` (read and recorded, an unclear reply too: it is kept in the
replies table for the EDI lead), ``finish(mail, "failed")`` (not a mail that can be read: no
sender address, too large), or no call at all when the database failed, so the mail stays where
it is and is read again at the next tick. Processed mail is moved, never deleted. Sources:

- :class:`FolderSource`, the embedded default: every ``.eml`` dropped into the inbox folder
  (``[channels.email] inbox_folder``, default ``inbox``, relative to where Chaser runs), moved
  to ``done/`` or ``failed/`` beside it;
- the IMAP and Microsoft Graph mailboxes (:func:`mail_source` chooses by ``[channels.email]
  inbox``).

Each mail is read by :mod:`bot.email_replies`, matched to the message it answers
(``In-Reply-To`` / ``References`` against the Message-ID kept in the outbox row's receipt),
given to the one inbound path (:func:`bot.inbound.handle_reply`, ``via="email"``) and committed
before its source moves it; if the move fails after the commit, the next read is a
``duplicate`` of the first.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.errors import MessageError
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.base import Secrets
from bot.confirm import queue_confirmation
from bot.email_replies import read_reply, to_replies
from bot.inbound import handle_reply
from bot.notices import tell_lead
from bot.preferences import change_preferences
from chaser.errors import ChaserError, ConfigError
from storage.db import session_factory
from storage.models import Clock, Person, utcnow
from storage.tracker import actions_with_ref, outbox_for_message_ids

log = logging.getLogger("chaser.inbox")

DEFAULT_FOLDER = "inbox"
MAX_BYTES = 10 * 1024 * 1024  # a reply, not a mailbox export: larger files go to failed/


def inbox_folder(config: Any) -> Path:
    """``[channels.email] inbox_folder`` (default ``inbox``). Read from the email channel's
    table as it stands; the email channel checks the key's type when it is configured."""
    value = config.channels.table("email").get("inbox_folder", DEFAULT_FOLDER)
    return Path(str(value))


@dataclass
class CollectResult:
    source: str = ""  # the source's name: "inbox folder inbox", "IMAP imap.council.example:993 INBOX"
    files: int = 0  # mails read (.eml files in the inbox folder)
    failed: int = 0  # moved to failed/
    kept: int = 0  # left in place for the next tick (the database failed)
    error: str | None = None  # why the source could not be read (all) now: MailboxError's text
    outcomes: Counter[str] = field(default_factory=Counter)  # applied, unclear, auto_reply ... per Reply

    @property
    def replies(self) -> int:
        return sum(self.outcomes.values())


Ending = Literal["done", "failed"]


@dataclass(frozen=True)
class Mail:
    """One raw message from a source: ``key`` is the source's own name for it (file name, IMAP
    UID, Graph id) and ``data`` its bytes, or None when it cannot be had (too large)."""

    key: str
    data: bytes | None


class MailboxError(ChaserError):
    """The source cannot be read now (a refused connection or login, a dropped connection):
    logged and reported by :func:`collect_mail`, and the next tick tries again."""


class MailSource(Protocol):
    """Where replies wait: ``fetch`` yields what is waiting now, ``finish`` moves one away.
    Either may raise :class:`MailboxError`; what was read before it is kept."""

    name: str  # for log lines and errors: "inbox folder inbox", "IMAP imap.council.example:993 INBOX"

    def fetch(self) -> Iterator[Mail]: ...

    def finish(self, mail: Mail, ending: Ending) -> None: ...

    def close(self) -> None: ...


class FolderSource:
    """The inbox folder: ``.eml`` files, oldest name first, moved to ``done/`` or ``failed/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = f"inbox folder {self.folder}"

    def fetch(self) -> Iterator[Mail]:
        if not self.folder.is_dir():
            return
        paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() == ".eml" and p.is_file())
        for path in paths:
            try:
                data = path.read_bytes() if path.stat().st_size <= MAX_BYTES else None
            except OSError as exc:
                log.warning("inbox: cannot read %s (%s): left for the next tick", path.name, exc)
                continue
            yield Mail(path.name, data)

    def finish(self, mail: Mail, ending: Ending) -> None:
        path = self.folder / mail.key
        try:
            _move(path, self.folder / ending)
        except OSError as exc:  # recorded: read again, it is a duplicate of itself
            log.warning("inbox: could not move %s (%s): it is read again next time", path.name, exc)

    def close(self) -> None:
        pass


def mail_source(config: Any, secrets: Any = None) -> MailSource:
    """The source ``[channels.email] inbox`` names: ``"folder"`` (the default), ``"imap"`` or
    ``"graph"``, built with its login from ``secrets`` (a bot.channels.base.Secrets). The email
    channel's ``from_settings`` has checked the keys; with email disabled, the folder is read."""
    table = config.channels.table("email")
    kind = table.get("inbox", "folder") if "email" in config.channels.order else "folder"
    return FolderSource(inbox_folder(config)) if kind == "folder" else _mailbox(kind, table, secrets)


def _mailbox(kind: str, table: Any, secrets: Any) -> MailSource:
    if kind == "imap":
        # imported here: imaplib and ssl only when the IMAP mailbox is used
        from bot.imap_inbox import ImapSource

        source = ImapSource.from_settings(table, secrets if secrets is not None else Secrets())
        assert source is not None  # built, not only checked: secrets were given
        return source
    if kind == "graph":
        from bot.graph import GraphSource  # msal and requests only when Microsoft 365 is used

        return GraphSource.from_settings(table, secrets)
    raise ConfigError(f"'channels.email.inbox' must be \"folder\", \"imap\" or \"graph\", got {kind!r}")


def collect_inbox(engine: Engine, config: Any, folder: Path | None = None, clock: Clock | None = None) -> CollectResult:
    """Read, record and move every ``.eml`` in ``folder`` (default: the configured inbox folder)."""
    return collect_mail(engine, config, FolderSource(Path(folder) if folder is not None else inbox_folder(config)),
                        clock)


def collect_mail(engine: Engine, config: Any, source: MailSource, clock: Clock | None = None) -> CollectResult:
    """Read, record and finish every mail ``source`` has waiting now."""
    result = CollectResult(source=source.name)
    now = clock or utcnow
    make_session = session_factory(engine)
    try:
        for mail in source.fetch():
            result.files += 1
            try:
                outcomes = _record(make_session, mail.data, config, now) if mail.data is not None else None
            except SQLAlchemyError:
                log.exception("inbox: recording %s from %s failed; it is read again at the next tick",
                              mail.key, source.name)
                result.kept += 1
                continue
            if outcomes is not None:
                result.outcomes.update(outcomes)
            else:
                result.failed += 1
                log.warning("inbox: %s from %s is not a reply that can be read: moved to failed",
                            mail.key, source.name)
            source.finish(mail, "done" if outcomes is not None else "failed")
    except MailboxError as exc:  # what was recorded stays recorded; the rest waits for the next tick
        result.error = str(exc)
        log.error("inbox: reading replies from %s failed: %s", source.name, exc)
    return result


def _record(make_session: Callable[[], Any], data: bytes, config: Any, now: Clock) -> list[str] | None:
    """The outcomes of the replies in one mail, committed; None if it cannot be read as a mail."""
    try:
        message = BytesParser(policy=policy.compat32).parsebytes(data)
    except (MessageError, ValueError, LookupError):  # pragma: no cover - the parser is lenient
        return None
    received_at = now()
    with make_session() as session:
        parsed = read_reply(message, received_at=received_at, is_ref=lambda ref: bool(actions_with_ref(session, ref)))
        if "@" not in parsed.sender:
            return None
        if parsed.subject.strip().lower() == "unsubscribe" and not parsed.auto_reply:
            return [_unsubscribe(session, parsed.sender, config, received_at)]
        outbox_id = outbox_for_message_ids(session, parsed.thread_ids)
        results = [handle_reply(session, reply, config)
                   for reply in to_replies(parsed, received_at=received_at, outbox_id=outbox_id, raw=parsed.body)]
        if not parsed.auto_reply:  # never an answer to a robot
            queue_confirmation(session, results, outbox_id=outbox_id, message_id=parsed.message_id,
                               subject=parsed.subject, sender=parsed.sender, own_addresses=own_addresses(config),
                               now=received_at)
        _tell_lead_of_refused(session, results, parsed.sender, config, received_at)
        session.commit()
    return [result.outcome for result in results]


def _unsubscribe(session: Any, sender: str, config: Any, now: dt.datetime) -> str:
    """The ``mailto:`` of List-Unsubscribe: like the one-click POST, the sender (if in the
    directory) gets one weekly summary instead of each reminder, and the EDI lead is told."""
    person = session.scalar(select(Person).where(func.lower(Person.email) == sender.lower()))
    if person is not None:
        change_preferences(session, person, cadence="weekly", how="by an unsubscribe email", now=now,
                           edi_lead=config.edi_lead)
        session.commit()
        log.info("inbox: %s unsubscribed: one weekly summary from now on", sender)
    return "unsubscribe"


def _tell_lead_of_refused(session: Any, results: list[Any], sender: str, config: Any, now: dt.datetime) -> None:
    """A reply that could not be applied (``unclear``, ``not_allowed``) goes to the EDI lead as
    well as into ``chaser replies``: never into a void."""
    refused = [r for r in results if r.outcome in ("unclear", "not_allowed")]
    if not refused:
        return
    reasons = "; ".join(dict.fromkeys(r.detail or r.outcome for r in refused))
    tell_lead(session, f"A reply by email from {sender} could not be recorded: {reasons}. The sender was told "
              f"(if they are in the people directory); 'chaser replies --outcome {refused[0].outcome}' shows it "
              "in full.", now=now, edi_lead=config.edi_lead, about=refused[0].person.id if refused[0].person else None)


def own_addresses(config: Any) -> set[str]:
    """Chaser's own addresses (``from``, ``reply_to``): mail from them is never answered."""
    table = config.channels.table("email")
    found = {parseaddr(str(table[key]))[1].lower() for key in ("from", "reply_to") if table.get(key)}
    folder = config.channels.table("outbox_folder")
    if folder.get("sender"):
        found.add(parseaddr(str(folder["sender"]))[1].lower())
    return {address for address in found if address}


def _move(path: Path, into: Path) -> None:
    """Into ``into`` under the same name (``-1``, ``-2`` ... if taken), atomically, never over a file."""
    into.mkdir(exist_ok=True)
    for n in range(1000):
        target = into / (path.name if n == 0 else f"{path.stem}-{n}{path.suffix}")
        try:
            os.link(path, target)  # fails if the name is taken: never replaces a file
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: a rename, checked first
            if target.exists():
                continue
            os.replace(path, target)
            return
        os.unlink(path)  # the file is now in ``into``: only its old name goes
        return
    raise OSError(f"no free name for {path.name} in {into}")
