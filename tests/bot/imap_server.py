"""A real IMAP server on loopback: Debian's dovecot, started from a configuration written into a
temporary folder, for the tests that read replies from a mailbox.

It runs as whoever runs the tests (root in CI, or a normal user): every dovecot process, the
login processes included, runs as that user, the mail user in the passwd-file is that user
too, and the maildir, sockets and logs all live in the temporary folder. It listens on two
free ports of 127.0.0.1, plain IMAP with STARTTLS and implicit TLS, with a certificate for
127.0.0.1 from a trustme CA. Test mail goes in by IMAP APPEND, as a mail server would
deliver it. Starting takes a few hundred milliseconds, so one server serves a whole session;
:meth:`Dovecot.reset` empties the mailbox between tests.
"""
from __future__ import annotations

import grp
import imaplib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.bot.smtp_server import free_port

DOVECOT = Path("/usr/sbin/dovecot")
USER = "replies@council.example"
PASSWORD = "correct horse battery staple"
_LISTED = re.compile(r'\(.*?\) (?:"."|NIL) (.*)$')  # * LIST (\HasNoChildren) "." "Chaser done"
START_SECONDS = 15.0  # dovecot answers within a second; a loaded CI machine gets more


@dataclass
class Dovecot:
    root: Path
    port: int  # plain IMAP, STARTTLS offered
    tls_port: int  # implicit TLS (imaps)
    ca_file: Path  # the trustme CA that signed the server's certificate
    user: str = USER
    password: str = PASSWORD

    def connect(self) -> imaplib.IMAP4:
        """A logged-in client of our own, to deliver and to look at the mailbox as a person would."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(self.user, self.password)
        return client

    def deliver(self, data: bytes, folder: str = "INBOX") -> None:
        """Put a message into ``folder`` (unread), as the mail server delivers one."""
        client = self.connect()
        try:
            typ, said = client.append(folder, "", imaplib.Time2Internaldate(time.time()), data)
            assert typ == "OK", said
        finally:
            client.logout()

    def messages(self, folder: str = "INBOX") -> list[tuple[bytes, set[str]]]:
        """Every message in ``folder`` (a name as the server spells it), with its flags."""
        client = self.connect()
        try:
            typ, said = client.select(quoted(folder), readonly=True)
            if typ != "OK":
                return []
            _, (numbers,) = client.search(None, "ALL")
            found = []
            for number in numbers.split():
                _, data = client.fetch(number, "(FLAGS BODY.PEEK[])")
                head, body = data[0]
                flags = head.decode().partition("FLAGS (")[2].partition(")")[0]
                found.append((body, set(flags.split())))
            return found
        finally:
            client.logout()

    def folders(self) -> set[str]:
        """The folders as the server names them (modified UTF-7, unquoted)."""
        client = self.connect()
        try:
            _, listed = client.list()
            names = set()
            for line in listed:
                name = _LISTED.match(line.decode()).group(1)  # type: ignore[union-attr]
                if name.startswith('"'):
                    name = re.sub(r'\\(.)', r"\1", name[1:-1])
                names.add(name)
            return names
        finally:
            client.logout()

    def reset(self) -> None:
        """An empty INBOX and no other folder: the next test starts as on a new mailbox."""
        client = self.connect()
        try:
            for folder in self.folders() - {"INBOX"}:
                client.delete(quoted(folder))
            _, (count,) = client.select("INBOX")
            if int(count or 0):
                client.store("1:*", "+FLAGS.SILENT", "\\Deleted")
                client.expunge()
        finally:
            client.logout()


def quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config(root: Path, port: int, tls_port: int) -> str:
    if os.getuid() == 0:
        # dovecot will not run its login and internal processes as root: it switches to the
        # users its Debian package made, which is why the folder is readable by them.
        # Nor will it open a mailbox as root: the mail belongs to its "dovecot" user.
        internal, login = "dovecot", "dovenull"
    else:
        # A normal user cannot switch: every process runs as that user.
        internal = login = pwd.getpwuid(os.getuid()).pw_name
    owner = pwd.getpwnam(internal)
    uid, gid = owner.pw_uid, owner.pw_gid
    group = grp.getgrgid(gid).gr_name
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
# A refused login is answered at once, and (anvil-auth-penalty below) does not slow the next
# one from 127.0.0.1 down: the test of a wrong password would otherwise cost seconds.
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
namespace inbox {{
  inbox = yes
  separator = .
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            return conn.recv(64).startswith(b"* OK")
    except OSError:
        return False


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """dovecot on two free ports of 127.0.0.1 for the session, with one user (:data:`USER`)."""
    if not DOVECOT.exists():
        pytest.fail(f"{DOVECOT} is missing: install dovecot-imapd (scripts/debian-packages)")
    # Not under pytest's temporary folder: that is private to its owner, and when the tests run
    # as root dovecot's own users must reach the sockets and the password file here.
    root = Path(tempfile.mkdtemp(prefix="chaser-dovecot-"))
    root.chmod(0o755)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    (root / "passwd").chmod(0o644)
    port, tls_port = free_port(), free_port()
    config = _config(root, port, tls_port)
    if os.getuid() == 0:
        for sub in ("mail", "home"):
            os.chown(root / sub, pwd.getpwnam("dovecot").pw_uid, pwd.getpwnam("dovecot").pw_gid)
    (root / "dovecot.conf").write_text(config)
    process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(root / "dovecot.conf")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (_answers(port) and _answers_tls(tls_port, root / "ca.pem")):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.poll() is not None else ""
                log = (root / "dovecot.log").read_text(errors="replace") if (root / "dovecot.log").exists() else ""
                pytest.fail(f"dovecot did not start on 127.0.0.1:{port}: {output}{log}")
            time.sleep(0.05)  # a real server starting up: poll its port until the deadline
        yield Dovecot(root=root, port=port, tls_port=tls_port, ca_file=root / "ca.pem")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - dovecot stops on SIGTERM
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


def _answers_tls(port: int, ca_file: Path) -> bool:
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                return conn.recv(64).startswith(b"* OK")
    except OSError:
        return False


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Dovecot]:
    """The session's dovecot with an empty INBOX, emptied again after the test."""
    dovecot.reset()
    yield dovecot
    dovecot.reset()
