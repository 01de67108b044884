"""Replies read from an IMAP mailbox, against a real dovecot on loopback: what is left where."""
from __future__ import annotations

import socket
import tomllib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot import imap_inbox
from bot.channels.base import Secrets
from bot.imap_inbox import ImapSource, encode_utf7
from bot.inbox import MailboxError, collect_mail, mail_source
from chaser.config import parse_config
from chaser.errors import ConfigError
from storage.db import make_engine
from tests.bot.imap_server import PASSWORD, USER, Dovecot


def reply(n: int = 1, body: str = "Green") -> bytes:
    message = EmailMessage()
    message["From"] = "Sam Ade <sam@housing.example>"
    message["To"] = "replies@council.example"
    message["Subject"] = "RE: HW 7"
    message["Message-ID"] = f"<reply-{n}@mail.housing.example>"
    message["In-Reply-To"] = "<nudge-1@council.example>"
    message.set_content(body)
    return message.as_bytes()


def source(server: Dovecot, security: str = "starttls", **changes: Any) -> ImapSource:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": server.tls_port if security == "tls" else server.port,
                              "security": security, "user": USER, "password": PASSWORD,
                              "ca_file": str(server.ca_file), "timeout": 5}
    return ImapSource(**{**values, **changes})


def test_mail_is_read_unmarked_then_moved_read_to_done_and_unread_to_failed(mailbox: Dovecot) -> None:
    mailbox.deliver(reply(1))
    mailbox.deliver(reply(2))
    inbox = source(mailbox)

    first, second = list(inbox.fetch())

    assert first.data is not None and b"<reply-1@mail.housing.example>" in first.data
    assert all("\\Seen" not in flags for _, flags in mailbox.messages())  # BODY.PEEK: nothing marked read
    assert inbox.can_move  # dovecot offers MOVE
    inbox.finish(first, "done")
    inbox.finish(second, "failed")
    assert {"Chaser done", "Chaser failed"} <= mailbox.folders()
    assert mailbox.messages() == []
    ((done, done_flags),) = mailbox.messages("Chaser done")
    ((failed, failed_flags),) = mailbox.messages("Chaser failed")
    assert b"reply-1@" in done and "\\Seen" in done_flags
    assert b"reply-2@" in failed and "\\Seen" not in failed_flags  # for a person to look at
    assert list(inbox.fetch()) == []
    inbox.close()


def test_without_move_the_mail_is_copied_before_it_is_deleted(mailbox: Dovecot) -> None:
    mailbox.deliver(reply(1))
    inbox = source(mailbox)
    (mail,) = inbox.fetch()
    inbox.can_move = False  # a server without RFC 6851: COPY, \Deleted, UID EXPUNGE (UIDPLUS)

    inbox.finish(mail, "done")

    assert mailbox.messages() == []
    assert [data for data, _ in mailbox.messages("Chaser done")] == [mail.data]
    inbox.close()


def test_a_copy_the_server_refuses_deletes_nothing(mailbox: Dovecot) -> None:
    mailbox.deliver(reply(1))
    inbox = source(mailbox)
    (mail,) = inbox.fetch()
    inbox.can_move = False
    inbox.folders["done"] = "No such folder"  # COPY answers NO [TRYCREATE]

    inbox.finish(mail, "done")

    ((kept, _),) = mailbox.messages()
    assert kept == mail.data
    assert list(inbox.fetch()) == [mail]  # read again at the next tick
    inbox.close()


def test_implicit_tls_and_folder_names_in_modified_utf7(mailbox: Dovecot) -> None:
    mailbox.deliver(reply(1))
    inbox = source(mailbox, "tls", done_folder="Réponses traitées", failed_folder='Chaser "failed"')

    (mail,) = inbox.fetch()
    inbox.finish(mail, "done")

    assert encode_utf7("Réponses traitées") == "R&AOk-ponses trait&AOk-es"
    assert {"R&AOk-ponses trait&AOk-es", 'Chaser "failed"'} <= mailbox.folders()
    assert len(mailbox.messages("R&AOk-ponses trait&AOk-es")) == 1
    inbox.close()


def test_a_message_over_the_size_limit_is_not_downloaded(mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap_inbox, "MAX_BYTES", 400)
    mailbox.deliver(reply(1, "Green"))
    mailbox.deliver(reply(2, "Green " * 200))
    inbox = source(mailbox)

    small, large = inbox.fetch()

    assert small.data is not None and large.data is None
    inbox.close()


def test_a_wrong_password_names_the_server_and_the_user_not_the_password(mailbox: Dovecot) -> None:
    inbox = source(mailbox, password="wrong-horse")

    with pytest.raises(MailboxError) as raised:
        list(inbox.fetch())

    said = str(raised.value)
    assert f"127.0.0.1:{mailbox.port}" in said and USER in said and "CHASER_IMAP_PASSWORD" in said
    assert "wrong-horse" not in said and "wrong-horse" not in repr(inbox)


def test_after_a_refused_login_it_waits_before_trying_again(mailbox: Dovecot) -> None:
    now = [1000.0]
    inbox = source(mailbox, password="wrong-horse", clock=lambda: now[0])
    with pytest.raises(MailboxError, match=r"tried again in 30 s"):
        list(inbox.fetch())

    assert list(inbox.fetch()) == []  # the next tick: no new attempt, no new error
    now[0] += 30
    with pytest.raises(MailboxError, match=r"tried again in 60 s"):
        list(inbox.fetch())
    inbox.password = PASSWORD
    now[0] += 60
    mailbox.deliver(reply(1))
    assert len(list(inbox.fetch())) == 1
    inbox.close()


def test_a_certificate_it_cannot_verify_is_refused(mailbox: Dovecot) -> None:
    with pytest.raises(MailboxError, match="SSL"):
        list(source(mailbox, ca_file=None).fetch())


def test_a_dropped_connection_is_opened_again_at_the_next_tick(mailbox: Dovecot) -> None:
    inbox = source(mailbox)
    assert list(inbox.fetch()) == []
    assert inbox._client is not None
    inbox._client.sock.shutdown(socket.SHUT_RDWR)  # as when the server drops an idle client
    mailbox.deliver(reply(1))

    (mail,) = inbox.fetch()

    assert inbox.connections == 2 and mail.data is not None
    inbox.close()


def test_a_mailbox_it_cannot_reach_is_reported_and_collecting_goes_on(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here
        engine = make_engine(f"sqlite:///{tmp_path / 'chaser.db'}")
        result = collect_mail(engine, config(port), ImapSource(host="127.0.0.1", port=port, security="none",
                                                               user=USER, password=PASSWORD, timeout=2))
    assert result.files == 0 and result.error is not None
    assert f"cannot connect to the IMAP server 127.0.0.1:{port}" in result.error
    engine.dispose()


def test_a_database_failure_leaves_the_mail_in_the_inbox_unread(mailbox: Dovecot, tmp_path: Path) -> None:
    mailbox.deliver(reply(1))
    engine = make_engine(f"sqlite:///{tmp_path / 'never-initialised.db'}")  # no tables: every query fails
    inbox = source(mailbox)

    result = collect_mail(engine, config(mailbox.port), inbox)

    assert (result.files, result.kept, result.error) == (1, 1, None)
    ((kept, flags),) = mailbox.messages()
    assert b"reply-1@" in kept and "\\Seen" not in flags
    assert mailbox.folders() >= {"Chaser done"} and mailbox.messages("Chaser done") == []
    inbox.close()
    engine.dispose()


def config(port: int, **keys: str) -> Any:
    lines = "".join(f'{k} = {v}\n' for k, v in {"imap_port": str(port), **keys}.items())
    return load(f"""
[channels]
order = ["email"]
[channels.email]
enabled = true
from = "chaser@council.example"
inbox = "imap"
imap_host = "127.0.0.1"
{lines}""")


def load(text: str) -> Any:
    return parse_config(tomllib.loads(text), "chaser.toml")


def test_the_source_is_built_from_the_config_with_its_login_from_the_environment() -> None:
    built = mail_source(config(1143, imap_security='"starttls"', imap_folder='"Replies"', done_folder='"Done"'),
                        Secrets({"CHASER_IMAP_USER": USER, "CHASER_IMAP_PASSWORD": PASSWORD}))
    assert isinstance(built, ImapSource)
    assert (built.name, built.user, built.folders["done"], built.folders["failed"]) == (
        "IMAP 127.0.0.1:1143 Replies", USER, "Done", "Chaser failed")
    assert PASSWORD not in repr(built)
    with pytest.raises(ConfigError, match="CHASER_IMAP_PASSWORD is not set"):
        mail_source(config(1143), Secrets({"CHASER_IMAP_USER": USER}))


@pytest.mark.parametrize(("keys", "named"), [
    ({"imap_security": '"ssl"'}, "'channels.email.imap_security' must be"),
    ({"imap_port": '"993"'}, "'channels.email.imap_port' must be"),
    ({"imap_timeout": "0"}, "'channels.email.imap_timeout' must be"),
    ({"imap_ca_file": '""'}, "'channels.email.imap_ca_file' must be"),
    ({"done_folder": '""'}, "'channels.email.done_folder' must be"),
    ({"failed_folder": '"inbox"'}, "'channels.email.failed_folder' must differ from 'channels.email.imap_folder'"),
    ({"imap_folders": '"INBOX"'}, "unknown key 'channels.email.imap_folders'"),
])
def test_a_bad_key_fails_at_config_load_with_its_name(keys: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        config(993, **keys)


def test_imap_host_is_required_for_an_imap_inbox() -> None:
    with pytest.raises(ConfigError, match="'channels.email.imap_host' is required"):
        load('[channels]\norder = ["email"]\n[channels.email]\nenabled = true\nfrom = "c@council.example"\ninbox = "imap"\n')
