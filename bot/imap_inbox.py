"""Replies read from an IMAP mailbox (``[channels.email] inbox = "imap"``), with the standard
library's imaplib.

At every tick :meth:`ImapSource.fetch` selects the folder (``imap_folder``, default ``INBOX``)
and reads every message in it that is not marked deleted, read or unread: a person may open
the mailbox and read a reply before Chaser does, and processed mail is moved away, so whatever
is still there is waiting. Each message is fetched with ``BODY.PEEK[]``, which leaves its
``\\Seen`` flag alone, so nothing is marked read before it is recorded; one larger than
:data:`bot.inbox.MAX_BYTES` (its ``RFC822.SIZE`` is asked first) is not downloaded at all.

:meth:`ImapSource.finish` moves a recorded message to ``done_folder`` (marked read first) and
one that cannot be read as mail to ``failed_folder`` (left unread, for a person to look at).
Both are created when missing. The move is ``UID MOVE`` (RFC 6851) when the server offers
MOVE, else ``UID COPY`` then ``\\Deleted``, and ``UID EXPUNGE`` (RFC 4315, UIDPLUS) of that
one message only: a message is marked deleted only after the server said its copy was made,
and without UIDPLUS it is left marked (hidden from the next fetch) for the server's own
expunge, since a plain EXPUNGE would also remove what others marked. A message whose
recording failed is not finished at all: it stays where it was, unread, for the next tick.

One connection is kept between ticks and checked with NOOP before use; one the server dropped
is opened again. After a failed connection or login the next attempt waits (30 s, doubling to
15 min), so a wrong password does not become a login attempt every few seconds. Anything that stops the mailbox being read now (a refused connection, a
refused login, a folder that does not exist) is a :class:`bot.inbox.MailboxError`, which
:func:`bot.inbox.collect_mail` logs and reports, and the next tick tries again.
"""
from __future__ import annotations

import base64
import imaplib
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bot.channels.base import Secrets, server_settings
from bot.inbox import MAX_BYTES, Ending, Mail, MailboxError
from chaser.errors import ConfigError

log = logging.getLogger("chaser.inbox")

SECURITY_PORTS = {"tls": 993, "starttls": 143, "none": 143}
USER_ENV = "CHASER_IMAP_USER"
PASSWORD_ENV = "CHASER_IMAP_PASSWORD"
# The same two keys and defaults as the Microsoft 365 mailbox, so switching inbox keeps the folders.
DONE_FOLDER = "Chaser done"
FAILED_FOLDER = "Chaser failed"
KEYS = {"imap_host", "imap_port", "imap_security", "imap_folder", "imap_ca_file", "imap_timeout",
        "done_folder", "failed_folder"}
# After a failed connection or login the next attempt waits, doubling from the first to the last:
# a daemon ticking every few seconds must not hammer a server that locks accounts out.
RETRY_SECONDS = (30.0, 900.0)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_ERRORS = (imaplib.IMAP4.error, OSError)  # abort and readonly are IMAP4.errors; ssl.SSLError and timeouts OSErrors


class ImapSource:
    """One folder of one IMAP mailbox, logged in as ``user``."""

    def __init__(self, *, host: str, user: str, password: str, port: int | None = None, security: str = "tls",
                 folder: str = "INBOX", done_folder: str = DONE_FOLDER, failed_folder: str = FAILED_FOLDER,
                 ca_file: str | None = None, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if security not in SECURITY_PORTS:
            raise ValueError(f"security must be one of {', '.join(SECURITY_PORTS)}, got {security!r}")
        self.host = host
        self.port = port or SECURITY_PORTS[security]
        self.security = security
        self.folder = folder
        self.folders: dict[Ending, str] = {"done": done_folder, "failed": failed_folder}
        self.user = user
        self.password = password
        self.ca_file = ca_file
        self.timeout = timeout
        self.name = f"IMAP {host}:{self.port} {folder}"
        self.connections = 0  # opened so far: one, unless the server drops it
        self.can_move = False  # the server offers MOVE (RFC 6851); read from CAPABILITY after login
        self.can_expunge_uid = False  # UIDPLUS (RFC 4315): UID EXPUNGE of one message
        self.clock = clock
        self._client: imaplib.IMAP4 | None = None
        self._failures = 0  # connections or logins failed in a row
        self._retry_at = 0.0  # clock() before which no new connection is tried

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> ImapSource | None:
        """The ``imap_*`` keys of ``[channels.email]`` and the login from ``CHASER_IMAP_USER`` /
        ``CHASER_IMAP_PASSWORD``. With ``secrets`` None the keys are only checked (None returned)."""
        server = server_settings(table, "imap", SECURITY_PORTS, security="tls", host=None,
                                 example="imap.council.example", why_host=' with inbox = "imap"')
        names = {}
        for key, default in (("imap_folder", "INBOX"), ("done_folder", DONE_FOLDER), ("failed_folder", FAILED_FOLDER)):
            value = table.get(key, default)
            if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n\0"):
                raise ConfigError(f"'channels.email.{key}' must be the name of a mail folder, such as "
                                  f"{default!r}, got {value!r}")
            for other, name in names.items():
                if name.casefold() == value.casefold():
                    raise ConfigError(f"'channels.email.{key}' must differ from '{other}' ({value!r}): "
                                      "processed mail is moved out of the folder replies are read from")
            names[f"channels.email.{key}"] = value
        if secrets is None:
            return None
        why = f"the login to the IMAP mailbox replies are read from ({server.host})"
        folder, done, failed = names.values()
        return cls(host=server.host, port=server.port, security=server.security, folder=folder, done_folder=done,
                   failed_folder=failed, user=secrets.require(USER_ENV, why), password=secrets.require(PASSWORD_ENV, why),
                   ca_file=server.ca_file, timeout=server.timeout)

    def fetch(self) -> Iterator[Mail]:
        """Every message in the folder now, oldest UID first, none of them marked read; nothing
        while waiting to try again after a failed connection or login (the failure was reported)."""
        if self._client is None and self.clock() < self._retry_at:
            return
        client = self._connected()
        try:
            typ, said = client.uid("SEARCH", "UNDELETED")
            if typ != "OK":
                raise MailboxError(f"{self.name}: the server refused SEARCH: {_said(said)}")
            uids = [uid.decode() for uid in (said[0] or b"").split()]
        except _ERRORS as exc:
            raise self._lost(exc) from exc
        for uid in uids:
            try:
                size = self._size(client, uid)
                if size is None:  # gone since the search (another client moved it)
                    continue
                yield Mail(uid, self._body(client, uid) if size <= MAX_BYTES else None)
            except _ERRORS as exc:
                raise self._lost(exc) from exc

    def finish(self, mail: Mail, ending: Ending) -> None:
        """Move the message to the done or failed folder; never deletes one that was not copied."""
        client = self._client
        if client is None:  # the connection was lost after the fetch: read again next tick, a duplicate
            return
        target = _mailbox_name(self.folders[ending])
        try:
            if ending == "done":
                client.uid("STORE", mail.key, "+FLAGS.SILENT", "(\\Seen)")
            if self.can_move:
                typ, said = client.uid("MOVE", mail.key, target)
                if typ != "OK":
                    log.warning("inbox: %s could not move UID %s to %r (%s): it is read again next time",
                                self.name, mail.key, self.folders[ending], _said(said))
                return
            typ, said = client.uid("COPY", mail.key, target)
            if typ != "OK":
                log.warning("inbox: %s could not copy UID %s to %r (%s): it stays and is read again next time",
                            self.name, mail.key, self.folders[ending], _said(said))
                return
            client.uid("STORE", mail.key, "+FLAGS.SILENT", "(\\Deleted)")
            if self.can_expunge_uid:
                client.uid("EXPUNGE", mail.key)
        except _ERRORS as exc:
            raise self._lost(exc) from exc

    def close(self) -> None:
        """LOGOUT (at shutdown); the next fetch opens a new connection."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except _ERRORS:
            _shut(client)

    def _size(self, client: imaplib.IMAP4, uid: str) -> int | None:
        typ, said = client.uid("FETCH", uid, "(RFC822.SIZE)")
        for line in said if typ == "OK" else ():
            found = _SIZE.search(line[0] if isinstance(line, tuple) else line or b"")
            if found:
                return int(found.group(1))
        return None

    def _body(self, client: imaplib.IMAP4, uid: str) -> bytes | None:
        typ, said = client.uid("FETCH", uid, "(BODY.PEEK[])")
        for part in said if typ == "OK" else ():
            if isinstance(part, tuple) and b"BODY[]" in part[0]:
                return bytes(part[1])
        return None

    def _connected(self) -> imaplib.IMAP4:
        """The open connection with the folder selected afresh; a new one if the server dropped it."""
        if self._client is not None:
            try:
                alive = self._client.noop()[0] == "OK"
            except _ERRORS:
                alive = False
            if not alive:
                log.info("inbox: the connection to %s was lost; opening it again", self.name)
                self._drop()
        if self._client is None:
            try:
                self._client = self._open()
            except MailboxError as exc:
                self._failures += 1
                wait = min(RETRY_SECONDS[0] * 2 ** (self._failures - 1), RETRY_SECONDS[1])
                self._retry_at = self.clock() + wait
                raise MailboxError(f"{exc} (tried again in {wait:.0f} s)") from exc
            self._failures = 0
            self.connections += 1
        try:
            typ, said = self._client.select(_mailbox_name(self.folder))
        except _ERRORS as exc:
            raise self._lost(exc) from exc
        if typ != "OK":
            raise MailboxError(f"{self.name}: cannot open the folder {self.folder!r} of {self.user}: {_said(said)}")
        return self._client

    def _open(self) -> imaplib.IMAP4:
        where = f"the IMAP server {self.host}:{self.port}"
        context = ssl.create_default_context(cafile=self.ca_file)  # None: the system's CAs (or SSL_CERT_FILE)
        try:
            if self.security == "tls":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context,
                                                          timeout=self.timeout)
            else:
                client = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        except _ERRORS as exc:
            raise MailboxError(f"cannot connect to {where} ({self.security}): {exc.__class__.__name__}: {exc}") from exc
        try:
            if self.security == "starttls":
                client.starttls(ssl_context=context)
            try:
                client.login(self.user, self.password)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise MailboxError(f"{where} refused the login of {self.user}: {exc}; check {USER_ENV} and "
                                   f"{PASSWORD_ENV}") from exc
            typ, said = client.capability()  # asked again: a server may offer more once logged in
            offered = set((said[0] or b"").upper().split()) if typ == "OK" else set()
            self.can_move = b"MOVE" in offered
            self.can_expunge_uid = b"UIDPLUS" in offered
            for name in self.folders.values():
                self._ensure(client, name)
        except MailboxError:
            _shut(client)
            raise
        except _ERRORS as exc:
            _shut(client)
            raise MailboxError(f"{where} ({self.security}, user {self.user}): {exc.__class__.__name__}: {exc}") from exc
        return client

    def _ensure(self, client: imaplib.IMAP4, name: str) -> None:
        """Create the folder ``name`` when the server does not list it, and subscribe to it so
        mail clients that show only subscribed folders (Outlook, Thunderbird) show it."""
        typ, said = client.list('""', _mailbox_name(name))
        if typ == "OK" and any(said):
            return
        typ, said = client.create(_mailbox_name(name))
        if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(s for s in said if isinstance(s, bytes)):
            raise MailboxError(f"the IMAP server {self.host}:{self.port} would not create the folder {name!r} "
                               f"for {self.user}: {_said(said)}")
        client.subscribe(_mailbox_name(name))

    def _lost(self, exc: BaseException) -> MailboxError:
        self._drop()
        return MailboxError(f"{self.name}: the connection failed ({exc.__class__.__name__}: {exc}); "
                            "it is opened again at the next tick")

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _shut(client)

    def __repr__(self) -> str:  # never the password
        return f"ImapSource({self.security}://{self.user}@{self.host}:{self.port}/{self.folder})"


def _shut(client: imaplib.IMAP4) -> None:
    """Close the socket without a word to the server (it is gone, or the handshake failed)."""
    try:
        client.shutdown()
    except OSError:
        pass


def _mailbox_name(name: str) -> str:
    """A folder name as IMAP writes it: modified UTF-7 (RFC 3501 5.1.3), then quoted."""
    encoded = encode_utf7(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_utf7(name: str) -> str:
    """Modified UTF-7: printable ASCII as itself ("&" as "&-"), every other run as "&", the
    base64 of its UTF-16BE with "," for "/" and no padding, then "-". "Réponses" is "R&AOk-ponses"."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
            run.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return "".join(out)


def _said(said: Any) -> str:
    """The server's words in a response: "[NONEXISTENT] Mailbox doesn't exist: Replies"."""
    parts = [s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in (said or []) if s]
    return " ".join(" ".join(parts).split()) or "no reason given"
