"""Email over SMTP: the council's own mail server sends each nudge (text and HTML parts).

The message is the outbox folder's ``.eml`` (``bot.render.render`` and ``bot.mime.build_email``)
with the headers a bulk sender owes its recipients and their mail servers: ``Reply-To``,
``Auto-Submitted: auto-generated`` (RFC 3834: no auto-reply should answer it),
``X-Auto-Response-Suppress`` (Exchange's way of saying the same), ``List-Unsubscribe`` (the
preferences page, one click, and a ``mailto:``), threading headers on a confirmation, and
``X-Chaser-Outbox-Id``. Its Message-ID is the receipt, so a reply can find its message.

One connection is kept open across a batch (a TLS handshake and a login per message would
cost more than the message) and opened again when the server has dropped it. The dispatcher
sends from several threads: rendering runs in parallel, the SMTP conversation under a lock.

A server's 5xx for the recipient (no such mailbox, rejected message) is a permanent failure:
the dispatcher moves the message to the next channel or to the EDI lead's list. A 4xx, a
refused connection or a timeout is transient, retried with backoff. SMTP cannot tell whether
an earlier, interrupted send went out, so ``checks_duplicates`` is False.

``transport = "graph"`` sends the same message through Microsoft 365 instead
(:mod:`bot.channels.email_graph`): :class:`MailChannel` builds the message for both, each
transport only carries it.
"""
from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from bot.channels.base import ChannelError, Envelope, Receipt, Recipient, Secrets, check_keys, server_settings
from bot.channels.outbox_folder import check_sender
from bot.mime import BadAddress, Mailbox, build_email, thread_headers
from bot.render import render
from chaser.errors import ConfigError

INBOXES = ("folder", "imap", "graph")  # where replies are read from: bot.inbox.mail_source
SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}
USER_ENV = "CHASER_SMTP_USER"
PASSWORD_ENV = "CHASER_SMTP_PASSWORD"
# A connection idle for longer than this is checked with NOOP before use: servers drop idle
# clients (Postfix after 300 s, Exchange Online sooner), and a message half-sent into a dead
# connection could not be told apart from one the server accepted.
IDLE_CHECK_SECONDS = 10.0
TRANSPORTS = ("smtp", "graph")
KEYS = {"enabled", "transport", "smtp_host", "smtp_port", "smtp_security", "smtp_ca_file", "smtp_timeout",
        "from", "reply_to", "inbox", "inbox_folder",  # inbox, inbox_folder: where bot.inbox reads replies
        "imap_host", "imap_port", "imap_security", "imap_folder", "imap_ca_file", "imap_timeout",  # bot.imap_inbox
        # Microsoft 365 (transport or inbox "graph"), checked by bot.graph.check_settings:
        "graph_mailbox", "graph_url", "authority_url", "graph_timeout",
        "done_folder", "failed_folder"}  # where the IMAP and Microsoft 365 mailboxes move processed mail


@dataclass(frozen=True)
class Composed:
    """One nudge as mail: who it is to, its RFC 5322 bytes and their Message-ID."""

    to: Mailbox
    data: bytes
    message_id: str


class MailChannel:
    """The email channel's message, whatever carries it: rendered from the envelope, from
    ``sender``, replies to ``reply_to`` (default: the sender), with the headers every nudge has.
    Subclasses (SMTP here, Microsoft Graph in bot.channels.email_graph) send what
    :meth:`compose` builds."""

    kind = "email"
    checks_duplicates = False

    def __init__(self, *, sender: str, reply_to: str | None = None) -> None:
        self.sender = Mailbox.parse(*parseaddr(sender))
        self.reply_to = Mailbox.parse(*parseaddr(reply_to)) if reply_to else self.sender
        self.domain = self.sender.address.rpartition("@")[2]

    def address(self, recipient: Recipient) -> str | None:
        return recipient.email

    def compose(self, envelope: Envelope, message_id: str | None = None) -> Composed:
        """The message for ``envelope`` (a new random Message-ID unless ``message_id`` is given);
        a recipient without a usable address is a permanent ChannelError."""
        address = envelope.recipient.email
        if not address:
            raise ChannelError(f"{envelope.recipient_name} has no email address", permanent=True)
        try:
            to = Mailbox.parse(envelope.recipient_name, address)
        except BadAddress as exc:
            raise ChannelError(str(exc), permanent=True) from exc
        rendered = render(envelope, chat=False)
        data, message_id = build_email(
            sender=self.sender, to=to, subject=rendered.subject, text=rendered.text, html=rendered.html,
            sent_at=envelope.sent_at, domain=self.domain, extra_headers=self._headers(envelope),
            message_id=message_id, inline=envelope.inline, attachments=envelope.attachments,
        )
        return Composed(to, data, message_id)

    def _headers(self, envelope: Envelope) -> tuple[tuple[str, str], ...]:
        return (
            ("Reply-To", self.reply_to.header()),
            # RFC 3834: a confirmation answers a person's mail ("auto-replied"); a nudge is not an answer.
            ("Auto-Submitted", "auto-replied" if envelope.in_reply_to else "auto-generated"),
            ("X-Auto-Response-Suppress", "OOF, AutoReply"),
            *unsubscribe_headers(envelope, self.reply_to.address),
            ("X-Chaser-Outbox-Id", str(envelope.outbox_id)),
            *thread_headers(envelope),
        )


class Email(MailChannel):
    """Sends through one SMTP server, as ``sender``, replies going to ``reply_to``."""

    checks_duplicates = False  # SMTP has no way to ask whether a message was delivered before

    def __init__(self, *, host: str, port: int | None = None, security: str = "starttls",
                 sender: str, reply_to: str | None = None, user: str | None = None,
                 password: str | None = None, ca_file: str | None = None, timeout: float = 30.0,
                 clock: Any = time.monotonic) -> None:
        if security not in SECURITY_PORTS:
            raise ValueError(f"security must be one of {', '.join(SECURITY_PORTS)}, got {security!r}")
        super().__init__(sender=sender, reply_to=reply_to)
        self.host = host
        self.port = port or SECURITY_PORTS[security]
        self.security = security
        self.user = user
        self.password = password
        self.ca_file = ca_file
        self.timeout = timeout
        self.clock = clock
        self.connections = 0  # opened so far: one per batch, unless the server drops it
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = threading.Lock()  # one SMTP conversation at a time on the one connection

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> MailChannel:
        """``[channels.email]``: SMTP, the login from ``CHASER_SMTP_USER``/``CHASER_SMTP_PASSWORD``
        (none if unset); or, with ``transport = "graph"``, the Microsoft 365 mailbox."""
        check_keys(table, cls.kind, KEYS)
        inbox = table.get("inbox", "folder")
        if inbox not in INBOXES:
            raise ConfigError(f"'channels.email.inbox' must be \"folder\", \"imap\" or \"graph\", got {inbox!r}")
        if inbox == "imap":  # its keys checked now, so a bad one stops every command at config load
            from bot.imap_inbox import ImapSource
            ImapSource.from_settings(table, None)
        folder = table.get("inbox_folder", "inbox")
        if not isinstance(folder, str) or not folder:
            raise ConfigError(f"'channels.email.inbox_folder' must be a folder name, got {folder!r}")
        transport = table.get("transport", "smtp")
        if transport not in TRANSPORTS:
            raise ConfigError(f"'channels.email.transport' must be \"smtp\" or \"graph\", got {transport!r}")
        mailbox = None
        if transport == "graph" or inbox == "graph":
            from bot.graph import check_settings  # msal and requests only when Microsoft 365 is used

            mailbox = check_settings(table)["mailbox"]
        server = server_settings(table, "smtp", SECURITY_PORTS, security="starttls", host="localhost",
                                 example="smtp.council.example")
        if "from" not in table and transport != "graph":  # with Graph: the mailbox's own address
            raise ConfigError("'channels.email.from' is required: the address nudges are sent from, such as "
                              "\"Chaser <chaser@council.example>\"")
        sender = table.get("from", mailbox)
        check_sender(sender, "'channels.email.from'")
        reply_to = table.get("reply_to")
        if reply_to is not None:
            check_sender(reply_to, "'channels.email.reply_to'")
        if transport == "graph":
            from bot.channels.email_graph import GraphEmail

            return GraphEmail.from_settings(table, secrets, sender=sender, reply_to=reply_to)
        user = password = None
        if secrets is not None:
            user = secrets.get(USER_ENV)
            if user is not None:
                password = secrets.require(PASSWORD_ENV, f"{USER_ENV} is set, so the SMTP login needs its password")
        return cls(host=server.host, port=server.port, security=server.security, sender=sender, reply_to=reply_to,
                   user=user, password=password, ca_file=server.ca_file, timeout=server.timeout)

    def send(self, envelope: Envelope) -> Receipt:
        """Send one message; its Message-ID is the receipt."""
        message = self.compose(envelope)  # rendered outside the lock: other threads render meanwhile
        with self._lock:
            self._transmit(message.to.address, message.data)
        return Receipt(self.kind, {"message_id": message.message_id})

    def _transmit(self, to: str, data: bytes) -> None:
        """MAIL, RCPT and DATA on the open connection (opened, or opened again, as needed)."""
        fresh = self._connection is None
        try:
            connection = self._connected()
            try:
                code, reply = connection.mail(self.sender.address)
            except smtplib.SMTPServerDisconnected:
                if fresh:
                    raise
                # Dropped while idle: nothing of this message was sent, so open again and retry.
                self._drop()
                connection = self._connected()
                code, reply = connection.mail(self.sender.address)
            if code != 250:
                self._reset()
                raise ChannelError(f"the SMTP server refused the sender {self.sender.address}: {_said(code, reply)}",
                                   permanent=False)
            code, reply = connection.rcpt(to)
            if code not in (250, 251):
                self._reset()
                raise ChannelError(f"the SMTP server refused {to}: {_said(code, reply)}", permanent=code >= 500)
            code, reply = connection.data(data)
            if code != 250:  # smtplib.data raises SMTPDataError for a reply other than 354 to DATA
                raise smtplib.SMTPDataError(code, reply)
            self._last_used = self.clock()
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise ChannelError(f"the SMTP server refused the message to {to}: {_said(exc.smtp_code, exc.smtp_error)}",
                               permanent=exc.smtp_code >= 500) from exc
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise ChannelError(f"the SMTP server refused the login of {self.user}: "
                               f"{_said(exc.smtp_code, exc.smtp_error)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            self._drop()
            raise ChannelError(f"the SMTP server {self.host}:{self.port} does not support what "
                               f"smtp_security = {self.security!r} needs: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts are OSErrors
            self._drop()
            raise ChannelError(f"SMTP {self.host}:{self.port}: {exc.__class__.__name__}: {exc}") from exc

    def _connected(self) -> smtplib.SMTP:
        """The open connection, checked with NOOP after a long idle; else a new one, logged in."""
        if self._connection is not None and self.clock() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                alive = self._connection.noop()[0] == 250
            except (smtplib.SMTPException, OSError):
                alive = False
            if not alive:
                self._drop()
        if self._connection is None:
            self._connection = self._open()
            self.connections += 1
        self._last_used = self.clock()
        return self._connection

    def _open(self) -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=self.ca_file)  # None: the system's CAs (or SSL_CERT_FILE)
        connection: smtplib.SMTP
        if self.security == "tls":
            connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            connection.ehlo()
            if self.security == "starttls":
                connection.starttls(context=context)
                connection.ehlo()
            if self.user is not None:
                connection.login(self.user, self.password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def _reset(self) -> None:
        """RSET after a refusal, so the connection can carry the next message; dropped if that fails."""
        if self._connection is None:
            return
        try:
            self._connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Say QUIT and close the connection (at shutdown); the next send opens a new one."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is None:
                return
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()

    def __repr__(self) -> str:  # never the password
        login = f", user={self.user!r}" if self.user else ""
        return f"Email({self.security}://{self.host}:{self.port}{login})"


def unsubscribe_headers(envelope: Envelope, mailbox: str) -> tuple[tuple[str, str], ...]:
    """``List-Unsubscribe``: the preferences page (one click, RFC 8058) and a ``mailto:`` (a
    mail with the subject "unsubscribe", read by bot.inbox). ``List-Unsubscribe-Post`` only with
    an https page, as RFC 8058 requires: mail programs then POST to it without opening it."""
    mailto = f"<mailto:{mailbox}?subject=unsubscribe>"
    url = envelope.preferences_url
    if not url:
        return (("List-Unsubscribe", mailto),)
    headers = [("List-Unsubscribe", f"<{url}>, {mailto}")]
    if url.startswith("https://"):
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return tuple(headers)


def _said(code: int, reply: bytes | str) -> str:
    """The server's reply as it wrote it: "550 5.1.1 No such user"."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"
