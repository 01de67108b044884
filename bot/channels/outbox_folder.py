"""A channel that writes each message to a folder instead of sending it.

For trial runs and for councils that collect mail from a pickup folder. Each message becomes
``{sent_at:%Y%m%dT%H%M%S}-{outbox_id:06d}-{recipient slug}`` with two files:

- ``.eml``: an RFC 5322 message (plain text with an HTML alternative), when the recipient
  has an email address;
- ``.json``: the chat-shaped message, as it would be posted to Slack (``text``, Block Kit
  ``blocks`` and message ``metadata``), when the recipient has a Slack or Teams id.

Files are written atomically: to a temporary file in the folder's ``.tmp`` subfolder, then
moved in with ``os.replace``, so a program collecting from the folder never sees half a file.
Their permissions are what the process's umask allows (0644 under the usual umask 022, as any
program's new files), or ``file_mode`` when it is given, so that a pickup service running as
another user can read them.
A file already in the folder for the same outbox id means the message went out before a crash
or a retry: nothing is written again and the receipt says ``possible_duplicate=True``.

Thread-safe: the dispatcher sends several messages at once. Rendering and writing happen in
parallel; looking for an earlier send and moving files in are done under a lock.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
from collections.abc import Mapping
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

from bot.channels.base import ChannelError, Envelope, Receipt, Recipient, Secrets, check_keys
from bot.mime import BadAddress, Mailbox, build_email, thread_headers
from bot.render import Rendered, chat_blocks, render, slug
from chaser.errors import ConfigError

EVENT_TYPE = "chaser_nudge"


class OutboxFolder:
    """Writes ``.eml`` and ``.json`` files to ``folder`` (created if missing)."""

    kind = "outbox_folder"
    checks_duplicates = True  # finds its own earlier send of an outbox id

    def __init__(self, *, folder: str | Path, sender: str = "chaser@localhost", file_mode: int | None = None) -> None:
        self.folder = Path(folder)
        self.file_mode = file_mode  # None: 0666 less the umask, as the kernel applies it
        name, addr = parseaddr(sender)
        if "@" not in addr:
            raise ValueError(f"sender {sender!r} is not an email address")
        self.sender = Mailbox.parse(name, addr)
        self.domain = self.sender.address.rpartition("@")[2]
        self.temporary = self.folder / ".tmp"
        self._index: dict[int, list[str]] | None = None  # outbox id -> file names in the folder
        self._index_mtime = 0
        self._lock = threading.Lock()  # guards the index and the moves into the folder

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> OutboxFolder:
        """``[channels.outbox_folder]``: ``folder`` (default "outbox"), ``sender``, ``file_mode``."""
        check_keys(table, cls.kind, {"enabled", "folder", "sender", "file_mode"})
        folder = table.get("folder", "outbox")
        if not isinstance(folder, str) or not folder:
            raise ConfigError(f"'channels.outbox_folder.folder' must be a folder name, got {folder!r}")
        sender = table.get("sender", "chaser@localhost")
        check_sender(sender, "'channels.outbox_folder.sender'")
        return cls(folder=folder, sender=sender, file_mode=file_mode(table.get("file_mode"),
                                                                    "'channels.outbox_folder.file_mode'"))

    def address(self, recipient: Recipient) -> str | None:
        """The email address, else the Slack or Teams id (only the .json is written), else None."""
        return recipient.email or recipient.address("slack") or recipient.address("teams")

    def send(self, envelope: Envelope) -> Receipt:
        """Write the message's files, or find them already written (a possible duplicate)."""
        if self.address(envelope.recipient) is None:
            raise ChannelError(
                f"{envelope.recipient_name} has no address (no email, Slack or Teams id)", permanent=True
            )
        written: list[tuple[str, Path]] = []  # (temporary file, final path)
        try:
            self.temporary.mkdir(parents=True, exist_ok=True)  # and the folder itself
            with self._lock:
                existing = self._existing(envelope.outbox_id, fresh=envelope.resend)
            if existing:
                return self._receipt_for(existing)
            recipient = envelope.recipient
            chat_shaped = bool(recipient.address("slack") or recipient.address("teams"))
            rendered = render(envelope, chat=chat_shaped)
            stem = file_stem(envelope)
            message_id = None
            if recipient.email:
                data, message_id = self._email(envelope, rendered)
                written.append((_write_temporary(self.temporary, data, self.file_mode), self.folder / f"{stem}.eml"))
            if chat_shaped:
                written.append((_write_temporary(self.temporary, self._chat_json(envelope, rendered), self.file_mode),
                                self.folder / f"{stem}.json"))
            self._publish(written)
        except OSError as exc:
            for temporary, _ in written:
                _remove(temporary)
            raise ChannelError(str(exc), permanent=False) from exc
        ref = {"path": str(written[-1][1])}
        if message_id:
            ref["message_id"] = message_id
        return Receipt(self.kind, ref)

    def _publish(self, written: list[tuple[str, Path]]) -> None:
        """Move the message's files into the folder and into the index."""
        with self._lock:
            # If the folder changed since the index was complete (another process, a person),
            # leave the index stale so that the next look reads the folder again.
            complete = self._index is not None and os.stat(self.folder).st_mtime_ns == self._index_mtime
            for temporary, path in written:
                os.replace(temporary, path)
                self._remember(path.name)
            if complete:
                self._index_mtime = os.stat(self.folder).st_mtime_ns

    def _existing(self, outbox_id: int, *, fresh: bool = False) -> list[Path]:
        """Files already written for this outbox id (never a temporary file).

        Globbing the folder for every message made sending quadratic in the folder's size, so
        the ids on disk are indexed once and the index trusted while the folder's mtime is the
        one seen after our own last write; any other change (another process, a person) makes
        it read the folder again. A message that may have been sent before (``fresh``: its
        lease ran out, perhaps in another process) always reads the folder: an mtime is only as
        fine as the kernel's clock tick, so a change in the same tick as ours could hide.
        Called with the lock held.
        """
        mtime = os.stat(self.folder).st_mtime_ns
        if fresh or self._index is None or mtime != self._index_mtime:
            self._index = {}
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    self._remember(entry.name)
            self._index_mtime = mtime
        return sorted(self.folder / name for name in self._index.get(outbox_id, ()))

    def _remember(self, name: str) -> None:
        parts = name.split("-", 2)
        if name.endswith((".eml", ".json")) and len(parts) == 3 and parts[1].isdigit() and self._index is not None:
            self._index.setdefault(int(parts[1]), []).append(name)

    def _receipt_for(self, existing: list[Path]) -> Receipt:
        for path in existing:
            if path.suffix == ".eml":
                with path.open("rb") as handle:
                    headers = BytesHeaderParser(policy=policy.default).parse(handle)
                if headers["Message-ID"]:
                    return Receipt(self.kind, {"path": str(existing[-1]), "message_id": str(headers["Message-ID"])},
                                   possible_duplicate=True)
        return Receipt(self.kind, {"path": str(existing[-1])}, possible_duplicate=True)

    def _email(self, envelope: Envelope, rendered: Rendered) -> tuple[bytes, str]:
        assert envelope.recipient.email is not None
        try:
            to = Mailbox.parse(envelope.recipient_name, envelope.recipient.email)
        except BadAddress as exc:
            raise ChannelError(str(exc), permanent=True) from exc
        return build_email(
            sender=self.sender, to=to, subject=rendered.subject, text=rendered.text, html=rendered.html,
            sent_at=envelope.sent_at, domain=self.domain,
            extra_headers=(("X-Chaser-Outbox-Id", str(envelope.outbox_id)), *thread_headers(envelope)),
            inline=envelope.inline, attachments=envelope.attachments,
        )

    def _chat_json(self, envelope: Envelope, rendered: Rendered) -> bytes:
        document = {
            "channel": envelope.recipient.address("slack") or envelope.recipient.address("teams")
            or envelope.recipient.email,
            "text": rendered.chat,
            "blocks": chat_blocks(envelope, rendered),
            "metadata": {
                "event_type": EVENT_TYPE,
                "event_payload": {"outbox_id": envelope.outbox_id, "kind": envelope.kind},
            },
        }
        # Compact: indent= switches json to its pure-Python encoder, a tenth of the send time.
        return (json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8")


def check_sender(sender: Any, named: str) -> None:
    """One address, as the outbox folder reads it ("Name <a@b>" or "a@b"), that an email can carry."""
    try:
        if not isinstance(sender, str):
            raise BadAddress(str(sender))
        found = getaddresses([sender])
        # getaddresses drops what it cannot read ("a@b.org junk" -> "a@b.orgjunk"): the address
        # it found must be written as such in the text, and be the only one.
        if len(found) != 1 or not found[0][1] or found[0][1] not in sender:
            raise BadAddress(sender)
        Mailbox.parse(*found[0])
    except BadAddress:
        raise ConfigError(
            f"{named} must be one email address such as \"chaser@council.example\" or "
            f"\"Chaser <chaser@council.example>\", got {sender!r}"
        ) from None


_FILE_MODE = re.compile(r"^0?[0-7]{3}$")


def file_mode(value: Any, named: str) -> int | None:
    """``"0640"`` -> 0o640. A string, because a TOML number 640 would be read as decimal."""
    if value is None:
        return None
    if not isinstance(value, str) or not _FILE_MODE.match(value):
        raise ConfigError(f"{named} must be an octal mode in quotes such as \"0640\", got {value!r}")
    mode = int(value, 8)
    if mode & 0o600 != 0o600 or mode & 0o111:
        # Chaser reads its own files back (to spot a duplicate send); they are not programs.
        raise ConfigError(f"{named} {value!r} must give the owner read and write "
                          "permission and nobody execute permission, such as \"0640\" or \"0644\"")
    return mode


def file_stem(envelope: Envelope) -> str:
    """``20260428T090000-000042-priya-shah``: when, which outbox row, to whom."""
    who = slug(envelope.recipient_name, empty="recipient")
    return f"{envelope.sent_at:%Y%m%dT%H%M%S}-{envelope.outbox_id:06d}-{who}"


# As tempfile.mkstemp opens its files: new, never through a symlink, not inherited by children.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_names = random.Random()  # temporary file names; seeded from os.urandom once, no syscall per name
if hasattr(os, "register_at_fork"):  # a forked child would otherwise try the parent's names in step
    os.register_at_fork(after_in_child=_names.seed)


def _write_temporary(folder: Path, data: bytes, file_mode: int | None = None) -> str:
    """Write ``data`` to a new file in ``folder``; its path, to be moved into place.

    Not ``tempfile.mkstemp``, which always creates files 0600: a pickup service running as
    another user could not read them. Opened with mode 0666, the file gets what the umask (or
    a default ACL on the folder, which a umask read by hand would miss) allows, as any
    program's new files do; a configured ``file_mode`` is set with one ``fchmod``. ``O_EXCL``
    keeps a random name safe against another process writing to the same folder.

    Not fsynced, like SQLite's synchronous=NORMAL: the move publishes a whole file even if the
    process crashes (the data is in the page cache), a power cut may lose the last files, and
    an fsync per file halved the sending rate.
    """
    while True:
        temporary = f"{folder}/{_names.getrandbits(64):016x}.tmp"
        try:
            handle = os.open(temporary, _CREATE, 0o666)
            break
        except FileExistsError:  # pragma: no cover - one chance in 2**64 per file
            continue
    try:
        if file_mode is not None:
            os.fchmod(handle, file_mode)
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
    except BaseException:
        os.close(handle)
        _remove(temporary)
        raise
    os.close(handle)
    return temporary


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
