"""A channel that writes each message to a folder instead of sending it.

For trial runs and for councils that collect mail from a pickup folder. Each message becomes
``{sent_at:%Y%m%dT%H%M%S}-{outbox_id:06d}-{recipient slug}`` with two files:

- ``.eml``: an RFC 5322 message (plain text with an HTML alternative), when the recipient
  has an email address;
- ``.json``: the chat-shaped message, as it would be posted to Slack (``text``, Block Kit
  ``blocks`` and message ``metadata``), when the recipient has a Slack or Teams id.

Files are written atomically (a temporary name in the same folder, then ``os.replace``). A
file already in the folder for the same outbox id means the message went out before a crash
or a retry: nothing is written again and the receipt says ``possible_duplicate=True``.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path

from bot.channels.base import ChannelError, Envelope, Receipt
from bot.mime import BadAddress, Mailbox, build_email
from bot.render import Rendered, chat_blocks, render

EVENT_TYPE = "chaser_nudge"


class OutboxFolder:
    """Writes ``.eml`` and ``.json`` files to ``folder`` (created if missing)."""

    kind = "outbox_folder"
    checks_duplicates = True  # finds its own earlier send of an outbox id

    def __init__(self, *, folder: str | Path, sender: str = "chaser@localhost") -> None:
        self.folder = Path(folder)
        name, addr = parseaddr(sender)
        if "@" not in addr:
            raise ValueError(f"sender {sender!r} is not an email address")
        self.sender = Mailbox.parse(name, addr)
        self.domain = self.sender.address.rpartition("@")[2]
        self._index: dict[int, list[str]] | None = None  # outbox id -> file names in the folder
        self._index_mtime = 0

    def address(self, envelope: Envelope) -> str | None:
        """The email address, else the Slack id (only the .json is written), else None."""
        return envelope.recipient_email or envelope.recipient_slack_id or None

    def send(self, envelope: Envelope) -> Receipt:
        """Write the message's files, or find them already written (a possible duplicate)."""
        if self.address(envelope) is None:
            raise ChannelError(
                f"{envelope.recipient_name} has no address (no email and no Slack id)", permanent=True
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            existing = self._existing(envelope.outbox_id)
            if existing:
                return self._receipt_for(existing)
            chat_shaped = bool(envelope.recipient_slack_id or envelope.recipient_teams_id)
            rendered = render(envelope, chat=chat_shaped)
            stem = self.folder / file_stem(envelope)
            message_id = None
            written = []
            if envelope.recipient_email:
                data, message_id = self._email(envelope, rendered)
                eml_path = stem.with_name(stem.name + ".eml")
                _write_atomically(eml_path, data)
                written.append(eml_path.name)
            json_path = stem.with_name(stem.name + ".json")
            if chat_shaped:
                _write_atomically(json_path, self._chat_json(envelope, rendered))
                written.append(json_path.name)
            for name in written:
                self._remember(name)
            self._index_mtime = os.stat(self.folder).st_mtime_ns
        except OSError as exc:
            raise ChannelError(str(exc), permanent=False) from exc
        return Receipt(provider_id=message_id or str(json_path))

    def _existing(self, outbox_id: int) -> list[Path]:
        """Files already written for this outbox id (never a temporary file).

        Globbing the folder for every message made sending quadratic in the folder's size, so
        the ids on disk are indexed once and the index trusted while the folder's mtime is the
        one seen after our own last write; any other change (another process, a person) makes
        it read the folder again.
        """
        mtime = os.stat(self.folder).st_mtime_ns
        if self._index is None or mtime != self._index_mtime:
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
                    return Receipt(provider_id=str(headers["Message-ID"]), possible_duplicate=True)
        return Receipt(provider_id=str(existing[0]), possible_duplicate=True)

    def _email(self, envelope: Envelope, rendered: Rendered) -> tuple[bytes, str]:
        assert envelope.recipient_email is not None
        try:
            to = Mailbox.parse(envelope.recipient_name, envelope.recipient_email)
        except BadAddress as exc:
            raise ChannelError(str(exc), permanent=True) from exc
        return build_email(
            sender=self.sender, to=to, subject=rendered.subject, text=rendered.text, html=rendered.html,
            sent_at=envelope.sent_at, domain=self.domain,
            extra_headers=(("X-Chaser-Outbox-Id", str(envelope.outbox_id)),),
        )

    def _chat_json(self, envelope: Envelope, rendered: Rendered) -> bytes:
        document = {
            "channel": envelope.recipient_slack_id or envelope.recipient_email,
            "text": rendered.chat,
            "blocks": chat_blocks(envelope, rendered),
            "metadata": {
                "event_type": EVENT_TYPE,
                "event_payload": {"outbox_id": envelope.outbox_id, "kind": envelope.kind},
            },
        }
        # Compact: indent= switches json to its pure-Python encoder, a tenth of the send time.
        return (json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8")


def slug(text: str, limit: int = 40) -> str:
    """``Priya Shah`` -> ``priya-shah``: ASCII letters and digits joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-") or "recipient"


def file_stem(envelope: Envelope) -> str:
    """``20260428T090000-000042-priya-shah``: when, which outbox row, to whom."""
    return f"{envelope.sent_at:%Y%m%dT%H%M%S}-{envelope.outbox_id:06d}-{slug(envelope.recipient_name)}"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        # Atomic against a crash of the process (the data is in the page cache, the rename
        # publishes it whole). Not fsynced, like SQLite's synchronous=NORMAL: a power cut may
        # lose the last files, and an fsync per file halved the sending rate.
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
