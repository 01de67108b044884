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

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.errors import MessageError
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal, Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.email_replies import read_reply, to_replies
from bot.inbound import handle_reply
from chaser.errors import ConfigError
from storage.db import session_factory
from storage.models import Clock, utcnow
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


class MailSource(Protocol):
    """Where replies wait: ``fetch`` yields what is waiting now, ``finish`` moves one away."""

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
        outbox_id = outbox_for_message_ids(session, parsed.thread_ids)
        outcomes = []
        for reply in to_replies(parsed, received_at=received_at, outbox_id=outbox_id, raw=parsed.body):
            outcomes.append(handle_reply(session, reply, config).outcome)
        session.commit()
    return outcomes


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
