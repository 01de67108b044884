"""RFC 5322 bytes for a nudge: ``multipart/alternative`` with a plain-text and an HTML part.

A board digest carries more (``inline`` and ``attachments``, :class:`Part`): the alternative
goes inside ``multipart/related`` with the images its HTML shows by ``cid:`` (RFC 2387), and
that inside ``multipart/mixed`` with the files attached (the PDF). Binary parts are base64 in
76-column lines. A message with neither is laid out exactly as before.

Every piece that needs encoding is encoded by the standard library: addresses by
``email.utils.formataddr`` (RFC 2047 for non-ASCII names), the subject by ``email.header.Header``
(encoded words, folded at 78 columns), the date by ``format_datetime``, the Message-ID by
``make_msgid`` and both bodies by ``quopri`` (quoted-printable, in C through ``binascii``).
Only the fixed frame around them is laid out here, because ``email.generator`` spent most of
a message's sending time re-folding headers it had just been given, searching each body for a
boundary and encoding quoted-printable in pure Python (a third of the outbox folder's time per
message; see bench/README.md). ``tests/bot/test_mime.py`` reads the result back with the
standard library's parser.

The boundary starts with ``=_``, which a quoted-printable body can never contain (there ``=``
is always followed by two hex digits or a line break), so it cannot collide with the text.
"""
from __future__ import annotations

import base64
import datetime as dt
import quopri
import re
import uuid
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

CRLF = b"\r\n"
MAX_HEADER_LINE = 78


class BadAddress(ValueError):
    """An address the email cannot carry."""


@dataclass(frozen=True)
class Mailbox:
    name: str
    address: str

    @classmethod
    def parse(cls, name: str, address: str) -> Mailbox:
        """A display name on one line and an address the header registry accepts, else BadAddress."""
        try:
            checked = Address(display_name=" ".join(name.split()), addr_spec=address.strip())
        except (ValueError, HeaderParseError, IndexError) as exc:
            raise BadAddress(f"{address!r} is not a usable email address ({exc})") from exc
        if not checked.username or not checked.domain:
            raise BadAddress(f"{address!r} is not a usable email address (it needs a name and a domain)")
        return cls(checked.display_name, checked.addr_spec)

    def header(self) -> str:
        return formataddr((self.name, self.address), charset="utf-8")


@dataclass(frozen=True)
class Part:
    """A binary part: an image the HTML shows (``content_id`` set: referenced as ``cid:<id>``)
    or a file attached. ``filename`` is ASCII (the sender names it, such as a slug)."""

    filename: str
    content_type: str  # "image/png", "application/pdf"
    data: bytes
    content_id: str | None = None  # without angle brackets: "chart.1f3a@council.example"

    def __post_init__(self) -> None:
        if not self.filename.isascii() or any(c in self.filename for c in '"\\\r\n'):
            raise ValueError(f"attachment file name {self.filename!r}: ASCII without quotes or line breaks")
        if self.content_id is not None and not _MSG_ID.fullmatch(self.content_id):
            raise ValueError(f"Content-ID {self.content_id!r}: write it as local@domain in printable ASCII")


def _binary(part: Part, boundary: str) -> bytes:
    disposition = "inline" if part.content_id else "attachment"
    head = (f"--{boundary}\r\nContent-Type: {part.content_type}; name=\"{part.filename}\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: {disposition}; filename=\"{part.filename}\"\r\n")
    if part.content_id:
        head += f"Content-ID: <{part.content_id}>\r\n"
    # encodebytes: 76-column lines (RFC 2045 6.8), each ending in a newline made CRLF here.
    return (head + "\r\n").encode("ascii") + base64.encodebytes(part.data).replace(b"\n", CRLF)


def _header(name: str, value: str) -> bytes:
    """``Name: value`` with CRLF, folded (and RFC 2047-encoded if not ASCII) when it must be."""
    if not value.isascii():
        value = Header(value, "utf-8", header_name=name).encode(linesep="\r\n", maxlinelen=MAX_HEADER_LINE)
    elif len(name) + 2 + len(value) > MAX_HEADER_LINE:
        value = _fold(len(name) + 2, value)
    return f"{name}: {value}".encode("ascii") + CRLF


def _fold(start: int, value: str) -> str:
    """ASCII folded at spaces into lines of at most MAX_HEADER_LINE where a word allows: a word
    longer than that (a link with its token) has a line to itself, and the first word stays on
    the header's own line, so nothing reads the value with a leading space."""
    lines: list[str] = []
    line, indent = "", start  # indent: the columns before the line's text (the name, or the fold's space)
    for word in value.split(" "):
        if line and indent + len(line) + 1 + len(word) > MAX_HEADER_LINE:
            lines.append(line)
            line, indent = word, 1
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


def _quoted_printable(text: str) -> bytes:
    """UTF-8 text as quoted-printable lines ending in CRLF (soft breaks at 76 columns)."""
    encoded = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8"))
    return encoded.replace(b"\n", CRLF)


# A Message-ID as RFC 5322 writes it, in printable ASCII: anything else a reply claims as its
# id is not repeated into our headers.
_MSG_ID = re.compile(r"[!-;=?-~]{1,200}@[!-;=?-~]{1,200}")


def thread_headers(envelope: Any) -> tuple[tuple[str, str], ...]:
    """``In-Reply-To`` and ``References`` for a message that answers someone's email (a
    confirmation), so their mail program shows it under their reply; none otherwise."""
    message_id = (getattr(envelope, "in_reply_to", None) or "").strip().strip("<>")
    if not _MSG_ID.fullmatch(message_id):
        return ()
    return (("In-Reply-To", f"<{message_id}>"), ("References", f"<{message_id}>"))


def build_email(
    *,
    sender: Mailbox,
    to: Mailbox,
    subject: str,
    text: str,
    html: str,
    sent_at: dt.datetime,
    domain: str,
    extra_headers: tuple[tuple[str, str], ...] = (),
    message_id: str | None = None,
    inline: tuple[Part, ...] = (),
    attachments: tuple[Part, ...] = (),
) -> tuple[bytes, str]:
    """The message's bytes (CRLF line ends) and its Message-ID (``message_id`` if given, such
    as ``<chaser.42.1f3a…@council.example>``, else a new random one in ``domain``). ``inline``:
    images the HTML shows by ``cid:`` (each needs a ``content_id``); ``attachments``: files."""
    if any(part.content_id is None for part in inline):
        raise ValueError("an inline part needs a content_id for the HTML to show it by")
    message_id = message_id or make_msgid(domain=domain)
    token = uuid.uuid4().hex
    boundary = f"=_chaser_{token}"
    subject = " ".join(subject.split())  # one line, whatever the templates produced
    parts = [
        _header("From", sender.header()),
        _header("To", to.header()),
        _header("Subject", subject),
        _header("Date", format_datetime(sent_at)),
        _header("Message-ID", message_id),
        *(_header(name, " ".join(value.split())) for name, value in extra_headers),
        b"MIME-Version: 1.0\r\n",
    ]
    # Outermost first: mixed (the attachments) holds related (the inline images) holds the
    # alternative; each level's boundary opens the next level's headers.
    mixed, related = f"=_chaser_m_{token}", f"=_chaser_r_{token}"
    if attachments:
        parts.append(f'Content-Type: multipart/mixed;\r\n boundary="{mixed}"\r\n\r\n--{mixed}\r\n'.encode("ascii"))
    if inline:
        parts.append(f'Content-Type: multipart/related; type="multipart/alternative";\r\n boundary="{related}"'
                     f'\r\n\r\n--{related}\r\n'.encode("ascii"))
    parts.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"))
    for subtype, body in (("plain", text), ("html", html)):
        parts.append(
            f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii")
        )
        # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1), not to the text.
        parts.append(_quoted_printable(body) + CRLF)
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    if inline:
        parts.extend(CRLF + _binary(part, related) for part in inline)
        parts.append(f"\r\n--{related}--\r\n".encode("ascii"))
    if attachments:
        parts.extend(CRLF + _binary(part, mixed) for part in attachments)
        parts.append(f"\r\n--{mixed}--\r\n".encode("ascii"))
    return b"".join(parts), message_id
