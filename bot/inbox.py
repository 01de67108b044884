"""The inbox folder: replies for the embedded default, read from ``.eml`` files.

Every ``.eml`` dropped into the folder (``[channels.email] inbox_folder``, default ``inbox``,
relative to where Chaser runs) is read by :mod:`bot.email_replies`, matched to the message it
answers (``In-Reply-To`` / ``References`` against the Message-ID kept in the outbox row's
receipt), given to the one inbound path (:func:`bot.inbound.handle_reply`, ``via="email"``)
and committed; then the file is moved, never deleted, to ``done/`` (an unclear reply too: it
is kept in the replies table for the EDI lead) or to ``failed/`` (not a mail that can be read:
no sender address). A reply whose database work fails stays where it is for the next tick;
if the move fails after the commit, the next read is a ``duplicate`` of the first.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.errors import MessageError
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.email_replies import read_reply, to_replies
from bot.inbound import handle_reply
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
    files: int = 0  # .eml files read
    failed: int = 0  # moved to failed/
    kept: int = 0  # left in place for the next tick (the database failed)
    outcomes: Counter[str] = field(default_factory=Counter)  # applied, unclear, auto_reply ... per Reply

    @property
    def replies(self) -> int:
        return sum(self.outcomes.values())


def collect_inbox(engine: Engine, config: Any, folder: Path | None = None, clock: Clock | None = None) -> CollectResult:
    """Read, record and move every ``.eml`` in ``folder`` (oldest name first)."""
    folder = Path(folder) if folder is not None else inbox_folder(config)
    result = CollectResult()
    if not folder.is_dir():
        return result
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".eml" and p.is_file())
    if not paths:
        return result
    now = clock or utcnow
    make_session = session_factory(engine)
    for path in paths:
        result.files += 1
        try:
            data = path.read_bytes() if path.stat().st_size <= MAX_BYTES else None
        except OSError as exc:
            log.warning("inbox: cannot read %s (%s): left for the next tick", path.name, exc)
            result.kept += 1
            continue
        try:
            outcomes = _record(make_session, data, config, now) if data is not None else None
        except SQLAlchemyError:
            log.exception("inbox: recording %s failed; it is read again at the next tick", path.name)
            result.kept += 1
            continue
        if outcomes is not None:
            result.outcomes.update(outcomes)
        else:
            result.failed += 1
            log.warning("inbox: %s is not a reply that can be read: moved to failed/", path.name)
        try:
            _move(path, folder / ("done" if outcomes is not None else "failed"))
        except OSError as exc:  # recorded: read again, it is a duplicate of itself
            log.warning("inbox: could not move %s (%s): it is read again next time", path.name, exc)
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
