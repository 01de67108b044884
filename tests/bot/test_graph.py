"""Email through Microsoft 365 against a loopback server playing Entra and Graph (tests/bot/graph_server.py):
what the mailbox receives, what the dispatcher does with Graph's answers, and replies read back."""
from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine

from bot.channels import ChannelError, load_channel
from bot.channels.base import Secrets
from bot.channels.email_graph import GraphEmail, message_id_for
from bot.graph import GraphClient, GraphSource
from bot.inbox import Mail, mail_source
from chaser.config import parse_config
from chaser.errors import ConfigError
from storage.db import session_factory
from storage.models import Outbox
from tests.bot import make_envelope
from tests.bot.graph_server import GraphFake, graph_server
from tests.bot.test_email_channel import assert_nudge_headers
from tests.jobs.test_dispatch import T0, add_people, dispatcher, eml_ids, outbox, queue

SENDER = "Chaser <chaser@lambeth.example.gov.uk>"
REPLY_TO = "EDI team <edi@lambeth.example.gov.uk>"
PRIYA = "priya.shah@lambeth.example.gov.uk"
CREATED = dt.datetime(2026, 4, 27, 18, 0, 0, 123456, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test CA's PEM, trusted by outbound HTTPS the way an operator would: REQUESTS_CA_BUNDLE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    return str(path)


@pytest.fixture
def fake(ca: trustme.CA, ca_file: str) -> Iterator[GraphFake]:
    with graph_server(GraphFake(), ca) as served:
        yield served


def client(fake: GraphFake, **changes: Any) -> GraphClient:
    values: dict[str, Any] = {"tenant": fake.tenant, "client_id": fake.client_id,
                              "client_credential": fake.client_secret, "mailbox": fake.mailbox,
                              "graph_url": fake.url, "authority_url": fake.url}
    values.update(changes)
    return GraphClient(**values)


def channel(fake: GraphFake, **changes: Any) -> GraphEmail:
    return GraphEmail(client(fake, **changes), sender=SENDER, reply_to=REPLY_TO)


def table(fake: GraphFake, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"enabled": True, "transport": "graph", "graph_mailbox": fake.mailbox, "from": SENDER,
                              "graph_url": fake.url, "authority_url": fake.url}
    values.update(changes)
    return values


def env(fake: GraphFake, **changes: str) -> dict[str, str]:
    return {"CHASER_GRAPH_TENANT_ID": fake.tenant, "CHASER_GRAPH_CLIENT_ID": fake.client_id,
            "CHASER_GRAPH_CLIENT_SECRET": fake.client_secret or "", **changes}


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# -- settings -------------------------------------------------------------------------------
def test_transport_graph_builds_the_microsoft_365_channel_and_checks_its_keys() -> None:
    built = load_channel("email", {"transport": "graph", "graph_mailbox": "chaser@c.example"}, None)
    assert isinstance(built, GraphEmail) and built.checks_duplicates is True
    assert built.sender.address == "chaser@c.example"  # `from` defaults to the mailbox
    assert built.address(make_envelope().recipient) == PRIYA
    bad = [
        ({"transport": "graph"}, "'channels.email.graph_mailbox' is required"),
        ({"transport": "graph", "graph_mailbox": "chaser"}, "'channels.email.graph_mailbox'"),
        ({"inbox": "graph", "from": SENDER}, "'channels.email.graph_mailbox' is required"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "graph_url": "http://graph.example"},
         "'channels.email.graph_url' must be an https URL"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "authority_url": 3}, "'channels.email.authority_url'"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "graph_timeout": 0}, "'channels.email.graph_timeout'"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "done_folder": "a/b"}, "'channels.email.done_folder'"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "failed_folder": ""}, "'channels.email.failed_folder'"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "done_folder": "X", "failed_folder": "x"},
         "must be different folders"),
        ({"transport": "pigeon", "from": SENDER}, "'channels.email.transport' must be \"smtp\" or \"graph\""),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "from": "nobody"}, "'channels.email.from'"),
        ({"transport": "graph", "graph_mailbox": "c@c.example", "smtp_port": "587"}, "'channels.email.smtp_port'"),
    ]
    for settings, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_channel("email", settings, None)


def test_the_app_credentials_come_from_the_environment_and_missing_ones_are_named(fake: GraphFake) -> None:
    for missing, name in (("CHASER_GRAPH_TENANT_ID", "CHASER_GRAPH_TENANT_ID"),
                          ("CHASER_GRAPH_CLIENT_ID", "CHASER_GRAPH_CLIENT_ID"),
                          ("CHASER_GRAPH_CLIENT_SECRET", "CHASER_GRAPH_CLIENT_SECRET")):
        with pytest.raises(ConfigError, match=name):
            load_channel("email", table(fake), Secrets({k: v for k, v in env(fake).items() if k != missing}))
    with pytest.raises(ConfigError, match="use one of them"):
        load_channel("email", table(fake), Secrets(env(fake, CHASER_GRAPH_CERTIFICATE="-----BEGIN X-----")))
    built = load_channel("email", table(fake), Secrets(env(fake)))
    assert "s3cret" not in repr(built)


# -- sending --------------------------------------------------------------------------------
def test_the_mailbox_sends_our_mime_with_both_parts_and_the_headers_and_the_receipt_is_its_message_id(
        fake: GraphFake) -> None:
    sender = channel(fake)
    receipt = sender.send(make_envelope(created_at=CREATED))

    [post] = fake.calls("POST", r"/sendMail$")
    assert post.path == f"/v1.0/users/{fake.mailbox}/sendMail" and post.headers["content-type"] == "text/plain"
    assert post.headers["authorization"].startswith("Bearer ")
    [data] = fake.sent
    assert base64.b64decode(post.body) == data
    message = parsed(data)
    assert receipt.channel == "email" and receipt.ref == {"message_id": message["Message-ID"]}
    assert message["Message-ID"].startswith("<chaser.42.") and message["Message-ID"].endswith("@lambeth.example.gov.uk>")
    assert_nudge_headers(message)
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert "HW 3" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<!DOCTYPE html>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_the_message_id_is_the_same_for_every_attempt_of_a_row_and_differs_across_rows_and_databases() -> None:
    envelope = make_envelope(created_at=CREATED)
    again = replace(envelope, sent_at=envelope.sent_at + dt.timedelta(hours=1), resend=True)
    first = message_id_for(envelope, "chaser@c.example", "c.example")
    assert message_id_for(again, "chaser@c.example", "c.example") == first
    # Row 42 of another database (made at another moment), or of another mailbox, is another message.
    assert message_id_for(replace(envelope, created_at=CREATED + dt.timedelta(microseconds=1)),
                          "chaser@c.example", "c.example") != first
    assert message_id_for(envelope, "chaser@other.example", "c.example") != first
    assert message_id_for(replace(envelope, outbox_id=43), "chaser@c.example", "c.example") != first


def test_many_sends_ask_entra_for_one_token(fake: GraphFake) -> None:
    sender = channel(fake)
    receipts = [sender.send(make_envelope(outbox_id=n, created_at=CREATED)) for n in range(1, 6)]
    assert len(fake.sent) == 5 and len({r.ref["message_id"] for r in receipts}) == 5
    assert len(fake.token_requests) == 1
    assert len(fake.calls("GET", r"/openid-configuration$")) == 1


def test_a_certificate_signs_the_token_request(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    rsa = trustme.KeyType.RSA  # Entra takes RSA keys (PS256/RS256 assertions)
    app = ca.issue_cert("chaser-app.lambeth.example.gov.uk", key_type=rsa)
    pem = tmp_path / "app.pem"
    pem.write_bytes(app.private_key_pem.bytes() + app.cert_chain_pems[0].bytes())
    with graph_server(GraphFake(client_secret=None, certificate_pem=app.cert_chain_pems[0].bytes()), ca) as fake:
        secrets = Secrets({"CHASER_GRAPH_TENANT_ID": fake.tenant, "CHASER_GRAPH_CLIENT_ID": fake.client_id,
                           "CHASER_GRAPH_CERTIFICATE_FILE": str(pem)})
        built = load_channel("email", table(fake), secrets)
        built.send(make_envelope(created_at=CREATED))
        assert len(fake.sent) == 1 and "client_secret" not in fake.token_requests[0].body.decode()
        # Another app's certificate is refused by Entra, and the error says where to look.
        other = ca.issue_cert("someone-else.example", key_type=rsa)
        pem.write_bytes(other.private_key_pem.bytes() + other.cert_chain_pems[0].bytes())
        with pytest.raises(ChannelError, match="invalid_client.*client secret or certificate"):
            load_channel("email", table(fake), secrets).send(make_envelope(created_at=CREATED))
    pem.write_bytes(app.private_key_pem.bytes())
    with pytest.raises(ConfigError, match="both the private key and the certificate"):
        load_channel("email", table(fake), secrets)


def test_graphs_answers_become_the_right_failures(fake: GraphFake) -> None:
    sender = channel(fake)
    envelope = make_envelope(created_at=CREATED)

    fake.fail("POST", "/sendMail$", 429, retry_after="7")
    with pytest.raises(ChannelError) as throttled:
        sender.send(envelope)
    assert (throttled.value.permanent, throttled.value.retry_after, throttled.value.throttled) == (False, 7.0, True)

    # Retry-After may also be an HTTP date (RFC 9110): the seconds from now until then.
    fake.fail("POST", "/sendMail$", 429, retry_after=format_datetime(
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90), usegmt=True))
    with pytest.raises(ChannelError) as dated:
        sender.send(envelope)
    assert dated.value.retry_after == pytest.approx(90, abs=5)

    fake.fail("POST", "/sendMail$", 503, retry_after="30")
    with pytest.raises(ChannelError) as down:
        sender.send(envelope)
    assert (down.value.permanent, down.value.retry_after, down.value.throttled) == (False, 30.0, False)

    fake.fail("POST", "/sendMail$", 500)
    with pytest.raises(ChannelError) as broken:
        sender.send(envelope)
    assert (broken.value.permanent, broken.value.retry_after) == (False, None)

    fake.fail("POST", "/sendMail$", 403, code="ErrorAccessDenied")
    with pytest.raises(ChannelError, match="needs the Mail.Send application permission") as denied:
        sender.send(envelope)
    assert denied.value.permanent is False  # the same for every message: retried, then parked, not rerouted

    fake.reject_recipients.add(PRIYA)
    with pytest.raises(ChannelError, match=f"will not send to {PRIYA}.*ErrorInvalidRecipients") as rejected:
        sender.send(envelope)
    assert rejected.value.permanent is True

    with pytest.raises(ChannelError, match="graph_mailbox' = 'nobody@lambeth") as unknown:
        channel(fake, mailbox="nobody@lambeth.example.gov.uk").send(envelope)
    assert unknown.value.permanent is False

    with pytest.raises(ChannelError, match="invalid_client.*AADSTS7000215"):
        channel(fake, client_credential="wrong").send(envelope)
    with pytest.raises(ChannelError, match="no-such-tenant.*CHASER_GRAPH_TENANT_ID"):
        channel(fake, tenant="no-such-tenant").send(envelope)
    assert fake.sent == []  # nothing got through


def test_a_token_not_issued_by_entra_is_refused_by_graph(fake: GraphFake) -> None:
    sender = channel(fake)
    sender.send(make_envelope(created_at=CREATED))
    fake.tokens.clear()  # revoked, as when the client secret is rotated
    with pytest.raises(ChannelError, match="401 InvalidAuthenticationToken.*Mail.Send"):
        sender.send(make_envelope(created_at=CREATED))


# -- through the dispatcher -----------------------------------------------------------------
def graph_config(fake: GraphFake, folder: Path, order: list[str], **scheduler: int) -> Any:
    return parse_config({"scheduler": scheduler, "channels": {
        "order": order, "email": table(fake), "outbox_folder": {"folder": str(folder)}}}, "test")


def test_a_throttled_message_is_rescheduled_after_retry_after_and_never_parked_for_it(
        engine: Engine, fake: GraphFake, tmp_path: Path) -> None:
    [outbox_id] = queue(engine, add_people(engine, 1), 1, channel=None)
    config = graph_config(fake, tmp_path / "out", ["email"], max_attempts=2)
    fake.fail("POST", "/sendMail$", 429, retry_after="120", times=3)

    at = T0
    for _ in range(3):  # three throttles, more than max_attempts: each waits, none parks
        result = dispatcher(engine, config, at, secrets=Secrets(env(fake))).run_once()
        assert (result.sent, result.failed, result.parked) == (0, 1, 0)
        row = outbox(engine)[outbox_id]
        assert (row.state, row.attempts, row.next_attempt_at) == ("failed", 0, at + dt.timedelta(seconds=120))
        assert "throttled" in row.last_error
        assert dispatcher(engine, config, at + dt.timedelta(seconds=119), secrets=Secrets(env(fake))).run_once().failed == 0
        at += dt.timedelta(seconds=120)
    result = dispatcher(engine, config, at, secrets=Secrets(env(fake))).run_once()
    assert result.sent == 1 and outbox(engine)[outbox_id].state == "sent" and len(fake.sent) == 1


def test_an_address_microsoft_365_rejects_moves_to_the_next_channel(engine: Engine, fake: GraphFake,
                                                                    tmp_path: Path) -> None:
    ids = queue(engine, add_people(engine, 2), 2, channel=None)
    fake.reject_recipients.add("owner1@c.example")
    folder = tmp_path / "out"
    result = dispatcher(engine, graph_config(fake, folder, ["email", "outbox_folder"]), T0,
                        secrets=Secrets(env(fake))).run_once()
    assert (result.sent, result.rerouted, result.parked) == (2, 1, 0)
    assert [parsed(m)["To"].addresses[0].addr_spec for m in fake.sent] == ["owner0@c.example"]
    rows = outbox(engine)
    assert rows[ids[0]].receipt["ref"]["message_id"] == parsed(fake.sent[0])["Message-ID"]
    moved = rows[ids[1]]
    assert (moved.state, moved.channel) == ("sent", "outbox_folder") and eml_ids(folder) == [ids[1]]
    assert "ErrorInvalidRecipients" in moved.route[0]["error"]


def test_a_resend_after_a_lost_lease_finds_the_message_in_sent_items_and_does_not_send_it_twice(
        engine: Engine, fake: GraphFake, tmp_path: Path) -> None:
    sent_id, unsent_id = queue(engine, add_people(engine, 2), 2, channel=None)
    config = graph_config(fake, tmp_path / "out", ["email"], lease_seconds=60)
    dead = dispatcher(engine, config, T0, worker="dead", secrets=Secrets(env(fake)))
    assert [c.id for c in dead.claim(2)] == [sent_id, unsent_id]
    with session_factory(engine)() as session:  # it sent the first message, then died before recording it
        dead.channel("email").send(dead.envelope(session, session.get(Outbox, sent_id), T0))
    assert len(fake.sent) == 1

    restarted = dispatcher(engine, config, T0 + dt.timedelta(seconds=61), worker="restarted",
                           secrets=Secrets(env(fake)))
    assert restarted.run_once().sent == 2

    assert sorted(int(parsed(m)["X-Chaser-Outbox-Id"]) for m in fake.sent) == [sent_id, unsent_id]  # once each
    assert len(fake.calls("GET", "/mailFolders/sentitems/messages$")) == 2  # both were looked for
    rows = outbox(engine)
    by_id = {int(parsed(m)["X-Chaser-Outbox-Id"]): parsed(m)["Message-ID"] for m in fake.sent}
    for outbox_id in (sent_id, unsent_id):
        assert rows[outbox_id].state == "sent" and rows[outbox_id].possible_duplicate is False
        assert rows[outbox_id].receipt["ref"] == {"message_id": by_id[outbox_id]}


# -- reading replies ------------------------------------------------------------------------
def reply(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = PRIYA, "chaser@lambeth.example.gov.uk", f"RE: {n}"
    message["Message-ID"] = f"<reply-{n}@lambeth.example.gov.uk>"
    message.set_content(f"Reply {n}")
    return message.as_bytes()


def test_the_unread_inbox_is_read_oldest_first_across_pages_then_marked_read_and_moved(fake: GraphFake) -> None:
    ids = [fake.deliver(reply(n)) for n in range(5)]
    fake.deliver(reply(99), is_read=True)  # read by someone already: not Chaser's
    source = GraphSource(client(fake), page_size=2)

    mails = list(source.fetch())
    assert [m.key for m in mails] == ids and [m.data for m in mails] == [reply(n) for n in range(5)]
    assert len(fake.calls("GET", "/mailFolders/inbox/messages$")) == 3  # pages of 2, 2 and 1
    for mail in mails[:3]:
        source.finish(mail, "done")
    source.finish(mails[3], "failed")  # the fifth is left: its recording failed

    assert [m.mime for m in fake.in_folder("Chaser done")] == [reply(0), reply(1), reply(2)]
    assert [m.mime for m in fake.in_folder("Chaser failed")] == [reply(3)]
    assert all(m.is_read for m in fake.in_folder("Chaser done") + fake.in_folder("Chaser failed"))
    assert [(m.mime, m.is_read) for m in fake.in_folder("Inbox")] == [(reply(4), False), (reply(99), True)]
    assert len(fake.calls("POST", "/mailFolders$")) == 2  # each folder made once
    # The next tick reads only what is left, and a new source finds the folders made before.
    again = GraphSource(client(fake))
    [left] = list(again.fetch())
    again.finish(left, "done")
    assert len(fake.calls("POST", "/mailFolders$")) == 2 and len(fake.in_folder("Chaser done")) == 4


def test_a_mail_that_cannot_be_fetched_or_moved_is_left_for_the_next_tick(fake: GraphFake) -> None:
    first, second = fake.deliver(reply(1)), fake.deliver(reply(2))
    source = GraphSource(client(fake))
    fake.fail("GET", f"/messages/{first}/\\$value$", 503)
    assert [m.key for m in source.fetch()] == [second]
    fake.fail("POST", "/move$", 500)
    source.finish(Mail(second, reply(2)), "done")  # logged, not raised: the reply was recorded
    assert {m.mime for m in fake.in_folder("Inbox")} == {reply(1), reply(2)}
    # Throttled or down: nothing this tick (the sweep goes on); refused: the operator must act.
    fake.fail("GET", "/mailFolders/inbox/messages$", 429, retry_after="5")
    assert list(source.fetch()) == []
    fake.fail("GET", "/mailFolders/inbox/messages$", 403, code="ErrorAccessDenied")
    with pytest.raises(ChannelError, match="Mail.ReadWrite application permission"):
        list(source.fetch())
    assert len(list(source.fetch())) == 2


def test_inbox_graph_is_the_mail_source_the_config_names(fake: GraphFake, monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({"channels": {"order": ["email"], "email": table(
        fake, transport="smtp", inbox="graph", done_folder="Processed")}}, "test")
    source = mail_source(config, Secrets(env(fake)))
    assert isinstance(source, GraphSource) and source.folders == {"done": "Processed", "failed": "Chaser failed"}
    assert source.name == f"Microsoft 365 mailbox {fake.mailbox}"
    with pytest.raises(ConfigError, match="CHASER_GRAPH_TENANT_ID"):
        mail_source(config, Secrets({}))
