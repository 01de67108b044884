"""The email channel against a real SMTP server on loopback (aiosmtpd): what the server receives."""
from __future__ import annotations

from dataclasses import replace

import email
import email.policy
import socket
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from bot.channels import CHANNELS, ChannelError, load_channel
from bot.channels.base import Channel, Secrets
from bot.channels.email import Email
from chaser.config import parse_config
from chaser.errors import ConfigError
from tests.bot import make_envelope, make_item
from tests.bot.smtp_server import Recorder, accept, free_port, server_tls, smtp_server

SENDER = "Chaser <chaser@lambeth.example.gov.uk>"
REPLY_TO = "EDI team <edi@lambeth.example.gov.uk>"
PRIYA = "priya.shah@lambeth.example.gov.uk"


def channel(port: int, **changes: Any) -> Email:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none", "sender": SENDER,
                              "reply_to": REPLY_TO}
    values.update(changes)
    return Email(**values)


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_nudge_headers(message: EmailMessage) -> None:
    """The headers every nudge of make_envelope() carries, by SMTP or by Microsoft 365."""
    assert message["To"].addresses[0].addr_spec == PRIYA
    assert message["From"].addresses[0].addr_spec == "chaser@lambeth.example.gov.uk"
    assert message["Reply-To"].addresses[0].addr_spec == "edi@lambeth.example.gov.uk"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["List-Unsubscribe"] == "<mailto:edi@lambeth.example.gov.uk?subject=unsubscribe>"
    assert message["X-Chaser-Outbox-Id"] == "42"


def test_it_is_registered_and_meets_the_contract() -> None:
    assert CHANNELS["email"] == "bot.channels.email:Email"
    built = load_channel("email", {"enabled": True, "from": SENDER}, None)
    assert isinstance(built, Channel) and built.kind == "email" and built.checks_duplicates is False
    assert built.address(make_envelope().recipient) == PRIYA
    assert built.address(make_envelope(recipient_email=None).recipient) is None


def test_the_server_receives_both_parts_and_the_headers_and_the_receipt_has_the_message_id() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        sender = channel(server.port)
        receipt = sender.send(make_envelope())
        sender.close()

    [got] = recorder.received
    assert got.sender == "chaser@lambeth.example.gov.uk" and got.recipients == [PRIYA]
    message = parsed(got.data)
    assert receipt.channel == "email" and receipt.ref == {"message_id": message["Message-ID"]}
    assert message["Message-ID"].endswith("@lambeth.example.gov.uk>")
    assert_nudge_headers(message)
    assert message["List-Unsubscribe-Post"] is None  # only with a one-click URL (none for this envelope)
    assert message["Subject"] == "Update needed: HW 3 due in 2 working days"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    plain = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert plain.startswith("Hello Priya Shah,") and "HW 3" in plain
    assert "<!DOCTYPE html>" in html and "HW 3" in html


def test_without_reply_to_replies_go_to_the_sender() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        channel(server.port, reply_to=None).send(make_envelope())
    message = parsed(recorder.received[0].data)
    assert message["Reply-To"].addresses[0].addr_spec == "chaser@lambeth.example.gov.uk"
    assert message["List-Unsubscribe"] == "<mailto:chaser@lambeth.example.gov.uk?subject=unsubscribe>"


def test_list_unsubscribe_offers_the_preferences_page_in_one_click_over_https_only() -> None:
    recorder = Recorder()
    page = "https://chaser.lambeth.example.gov.uk/preferences/" + "x" * 120
    with smtp_server(recorder) as server:
        sender = channel(server.port)
        sender.send(replace(make_envelope(), preferences_url=page))
        sender.send(replace(make_envelope(), preferences_url="http://127.0.0.1:8080/preferences/abc"))
        sender.close()
    over_https, over_http = (parsed(got.data) for got in recorder.received)
    assert over_https["List-Unsubscribe"] == f"<{page}>, <mailto:edi@lambeth.example.gov.uk?subject=unsubscribe>"
    assert over_https["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # RFC 8058
    assert over_http["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/preferences/abc>, <mailto:")
    assert over_http["List-Unsubscribe-Post"] is None  # RFC 8058: only with an https address


def test_a_hostile_name_or_title_stays_inert_in_headers_and_html() -> None:
    recorder = Recorder()
    envelope = make_envelope(make_item(title="<script>alert(1)</script>"),
                             recipient_name='Eve <script>x</script>\r\nBcc: victim@evil.example')
    with smtp_server(recorder) as server:
        channel(server.port).send(envelope)
    [got] = recorder.received
    assert got.recipients == [PRIYA]  # no Bcc smuggled in through the name
    message = parsed(got.data)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == PRIYA
    assert [name for name in message.keys() if name.lower() == "bcc"] == []
    assert "script" in message["To"].addresses[0].display_name  # kept, as a name, not as markup
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_one_connection_carries_a_batch_of_messages() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        sender = channel(server.port)
        receipts = [sender.send(make_envelope(outbox_id=n)) for n in range(1, 6)]
        sender.close()
    assert len(recorder.received) == 5 and sender.connections == 1
    assert len({got.peer for got in recorder.received}) == 1
    assert len({receipt.ref["message_id"] for receipt in receipts}) == 5


def test_a_connection_the_server_dropped_is_opened_again_and_the_message_goes_out() -> None:
    recorder = Recorder()
    port = free_port()
    with smtp_server(recorder, port=port):
        sender = channel(port)
        sender.send(make_envelope(outbox_id=1))
    with smtp_server(recorder, port=port):  # a restarted server: the old connection is gone
        sender.send(make_envelope(outbox_id=2))
    assert [parsed(got.data)["X-Chaser-Outbox-Id"] for got in recorder.received] == ["1", "2"]
    assert sender.connections == 2


def test_a_5xx_for_the_recipient_is_permanent_and_names_the_address_and_the_reply() -> None:
    recorder = Recorder(refuse={"gone@lambeth.example.gov.uk": "550 5.1.1 No such user here"})
    with smtp_server(recorder) as server:
        sender = channel(server.port)
        with pytest.raises(ChannelError) as refused:
            sender.send(make_envelope(recipient_email="gone@lambeth.example.gov.uk"))
        sender.send(make_envelope())  # the same connection carries on after the refusal
    assert refused.value.permanent is True
    assert "gone@lambeth.example.gov.uk" in str(refused.value) and "550 5.1.1 No such user here" in str(refused.value)
    assert [got.recipients for got in recorder.received] == [[PRIYA]] and sender.connections == 1


def test_a_4xx_for_the_recipient_is_transient() -> None:
    recorder = Recorder(refuse={PRIYA: "451 4.7.1 Greylisted, try again later"})
    with smtp_server(recorder) as server:
        with pytest.raises(ChannelError) as refused:
            channel(server.port).send(make_envelope())
    assert refused.value.permanent is False and "451 4.7.1 Greylisted" in str(refused.value)


def test_a_5xx_for_the_message_is_permanent_and_a_4xx_transient() -> None:
    for reply, permanent in (("554 5.6.0 Message rejected as spam", True), ("452 4.3.1 Out of storage", False)):
        with smtp_server(Recorder(refuse_data=reply)) as server:
            with pytest.raises(ChannelError) as refused:
                channel(server.port).send(make_envelope())
        assert refused.value.permanent is permanent and reply in str(refused.value) and PRIYA in str(refused.value)


def test_no_server_listening_is_transient() -> None:
    with pytest.raises(ChannelError) as refused:
        channel(free_port()).send(make_envelope())
    assert refused.value.permanent is False and "ConnectionRefusedError" in str(refused.value)


def test_a_recipient_without_an_email_address_is_a_permanent_failure() -> None:
    with pytest.raises(ChannelError) as refused:
        channel(free_port()).send(make_envelope(recipient_email=None))
    assert refused.value.permanent is True and "no email address" in str(refused.value)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_starttls_with_a_login_from_the_environment(ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    recorder = Recorder()
    secrets = Secrets({"CHASER_SMTP_USER": "chaser", "CHASER_SMTP_PASSWORD": "s3cret"})
    with smtp_server(recorder, tls_context=server_tls(ca), require_starttls=True,
                     authenticator=accept("chaser", "s3cret"), auth_required=True) as server:
        table = {"enabled": True, "from": SENDER, "smtp_host": "127.0.0.1", "smtp_port": server.port,
                 "smtp_security": "starttls", "smtp_ca_file": str(bundle)}
        sender = Email.from_settings(table, secrets)
        assert "s3cret" not in repr(sender)
        sender.send(make_envelope())
        sender.send(make_envelope(outbox_id=43))
        sender.close()
    assert [got.login for got in recorder.received] == ["chaser", "chaser"] and sender.connections == 1


def test_implicit_tls_on_its_own_port(ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    recorder = Recorder()
    with smtp_server(recorder, ssl_context=server_tls(ca)) as server:
        sender = channel(server.port, security="tls", ca_file=str(bundle))
        sender.send(make_envelope())
        sender.close()
    assert [got.recipients for got in recorder.received] == [[PRIYA]]


def test_starttls_refuses_a_certificate_it_cannot_verify(ca: trustme.CA) -> None:
    with smtp_server(Recorder(), tls_context=server_tls(ca), require_starttls=True) as server:
        with pytest.raises(ChannelError) as refused:
            channel(server.port, security="starttls").send(make_envelope())  # the system CAs only
    assert refused.value.permanent is False and "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_a_wrong_password_is_a_transient_failure_that_names_the_login() -> None:
    recorder = Recorder()
    # Login over a plain connection is allowed here only: a test server on loopback.
    with smtp_server(recorder, authenticator=accept("chaser", "s3cret"), auth_require_tls=False) as server:
        good = channel(server.port, user="chaser", password="s3cret")
        good.send(make_envelope())
        with pytest.raises(ChannelError) as refused:
            channel(server.port, user="chaser", password="wrong").send(make_envelope())
    assert [got.login for got in recorder.received] == ["chaser"]
    assert refused.value.permanent is False and "login of chaser" in str(refused.value)
    assert "wrong" not in str(refused.value)


@pytest.mark.parametrize(("table", "named"), [
    ({"smtp_port": "587"}, "'channels.email.smtp_port' must be a port number"),
    ({"smtp_port": 70000}, "'channels.email.smtp_port' must be a port number"),
    ({"smtp_security": "ssl"}, "'channels.email.smtp_security' must be"),
    ({"smtp_host": ""}, "'channels.email.smtp_host' must be a host name"),
    ({"transport": "graph"}, "'channels.email.graph_mailbox' is required"),
    ({"transport": "sendmail"}, "'channels.email.transport' must be"),
    ({"from": "not an address"}, "'channels.email.from' must be one email address"),
    ({"reply_to": "a@b.example, c@d.example"}, "'channels.email.reply_to' must be one email address"),
    ({"smtp_timeout": 0}, "'channels.email.smtp_timeout' must be"),
    ({"colour": "blue"}, "unknown key 'channels.email.colour'"),
])
def test_a_bad_setting_names_its_key(table: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as bad:
        Email.from_settings({"enabled": True, "from": SENDER, **table}, None)
    assert named in str(bad.value)


def test_from_is_required_and_ports_follow_the_security() -> None:
    with pytest.raises(ConfigError, match="'channels.email.from' is required"):
        Email.from_settings({"enabled": True}, None)
    ports = {security: Email.from_settings({"from": SENDER, "smtp_security": security}, None).port
             for security in ("starttls", "tls", "none")}
    assert ports == {"starttls": 587, "tls": 465, "none": 25}


def test_a_user_without_a_password_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="CHASER_SMTP_PASSWORD is not set"):
        Email.from_settings({"from": SENDER}, Secrets({"CHASER_SMTP_USER": "chaser"}))
    assert Email.from_settings({"from": SENDER}, Secrets({})).user is None  # no login at all


def test_after_a_long_idle_the_connection_is_checked_and_opened_again_if_dead() -> None:
    recorder = Recorder()
    port = free_port()
    now = [0.0]
    sender = channel(port, clock=lambda: now[0])
    with smtp_server(recorder, port=port):
        sender.send(make_envelope(outbox_id=1))
        now[0] += 5  # within a batch: no NOOP
        sender.send(make_envelope(outbox_id=2))
    assert sender.connections == 1
    with smtp_server(recorder, port=port):
        now[0] += 60  # idle: NOOP finds the connection dead before any of the message is sent
        sender.send(make_envelope(outbox_id=3))
    assert len(recorder.received) == 3 and sender.connections == 2


def test_sends_from_several_threads_share_the_one_connection() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        sender = channel(server.port)
        with ThreadPoolExecutor(8) as pool:
            receipts = list(pool.map(lambda n: sender.send(make_envelope(outbox_id=n)), range(40)))
        sender.close()
    assert sorted(int(parsed(got.data)["X-Chaser-Outbox-Id"]) for got in recorder.received) == list(range(40))
    assert len({r.ref["message_id"] for r in receipts}) == 40 and sender.connections == 1


def test_the_config_file_names_a_bad_email_key_at_start_and_leaves_a_disabled_table_alone() -> None:
    with pytest.raises(ConfigError, match="chaser.toml: 'channels.email.smtp_port' must be a port number"):
        parse_config({"channels": {"order": ["email"], "email": {"enabled": True, "from": SENDER,
                                                                 "smtp_port": "587"}}}, "chaser.toml")
    config = parse_config({"channels": {"order": ["email", "outbox_folder"], "email": {"smtp_port": "587"}}},
                          "chaser.toml")
    assert config.channels.order == ("outbox_folder",)  # email needs an account: off until enabled


def test_starttls_trusts_the_bundle_named_by_ssl_cert_file(ca: trustme.CA, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    recorder = Recorder()
    with smtp_server(recorder, tls_context=server_tls(ca), require_starttls=True) as server:
        channel(server.port, security="starttls").send(make_envelope())
    assert len(recorder.received) == 1


def test_a_server_that_never_answers_times_out_as_a_transient_failure() -> None:
    with socket.socket() as silent:  # listens, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(ChannelError) as refused:
            channel(silent.getsockname()[1], timeout=0.2).send(make_envelope())
    assert refused.value.permanent is False and "timed out" in str(refused.value)
