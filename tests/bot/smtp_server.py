"""A real SMTP server on loopback (aiosmtpd) that records what it accepts, for the email tests."""
from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    peer: tuple[str, int]  # the client's end of the connection: one per connection
    sender: str
    recipients: list[str]
    data: bytes
    login: str | None


@dataclass
class Recorder:
    """Accepts every message, except that ``refuse`` maps an address to the reply its RCPT gets
    ("550 5.1.1 No such user") and ``refuse_data`` is the reply to DATA, when set."""

    refuse: dict[str, str] = field(default_factory=dict)
    refuse_data: str | None = None
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data
        login = session.auth_data if session.authenticated else None  # set by accept() below
        self.received.append(Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content, login))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accept(user: str, password: str) -> Any:
    """An authenticator that lets in only ``user`` with ``password``."""
    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)
    return authenticator


@contextmanager
def smtp_server(recorder: Recorder, *, port: int | None = None, **kwargs: Any) -> Iterator[Controller]:
    """aiosmtpd on 127.0.0.1 (``tls_context``/``require_starttls``, ``authenticator``, … as kwargs)."""
    controller = Controller(recorder, hostname="127.0.0.1", port=port or free_port(), **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def server_tls(ca: Any) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 signed by the test CA (trustme)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context
