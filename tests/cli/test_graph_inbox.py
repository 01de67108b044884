"""Microsoft 365 end to end: ``chaser run --once`` sends a nudge through Graph (a loopback server
playing Entra and Graph), the owner's reply arrives in the mailbox, and the next ``chaser run
--once`` reads it into the tracker, marks it read and moves it to "Chaser done"."""
from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.bot.graph_server import GraphFake, graph_server
from tests.cli.test_inbox import reply_to
from tests.conftest import Chaser
from tests.importers.makers import write_csv


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphFake]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    with graph_server(GraphFake(mailbox="chaser@housing.example"), ca) as served:
        monkeypatch.setenv("CHASER_GRAPH_TENANT_ID", served.tenant)
        monkeypatch.setenv("CHASER_GRAPH_CLIENT_ID", served.client_id)
        monkeypatch.setenv("CHASER_GRAPH_CLIENT_SECRET", served.client_secret or "")
        yield served


@pytest.fixture
def run(chaser: Chaser, fake: GraphFake, tmp_path: Path) -> Chaser:
    """Sam owns one action; email goes out and comes back through the Microsoft 365 mailbox."""
    Path("chaser.toml").write_text(
        'edi_lead = "lead@housing.example"\n'
        '[channels]\norder = ["email"]\n'
        '[channels.email]\nenabled = true\ntransport = "graph"\ninbox = "graph"\ngraph_mailbox = "chaser@housing.example"\n'
        f'from = "Chaser <chaser@housing.example>"\ngraph_url = "{fake.url}"\nauthority_url = "{fake.url}"\n')
    chaser("import", str(write_csv(tmp_path / "plan.csv", [
        ["Ref", "Action", "Owner", "Deadline"],
        ["HW 7", "Survey the temporary accommodation", "Head of Housing", "10/12/2026"],
    ])))
    chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"],
        ["Sam Ade", "sam@housing.example", "Head of Housing"],
        ["Lee Lead", "lead@housing.example", ""],
    ])))
    return chaser


def test_a_reply_in_the_microsoft_365_mailbox_is_read_into_the_tracker(run: Chaser, fake: GraphFake,
                                                                      tmp_path: Path) -> None:
    run("run", "--once", "--at", "2026-12-01T10:00")
    [nudge] = [m for m in fake.sent if "sam@housing.example" in str(email.message_from_bytes(m)["To"])]
    (box,) = json.loads(run("outbox", "--format", "json").stdout)
    sent = email.message_from_bytes(nudge, policy=email.policy.default)
    assert (box["state"], box["channel"]) == ("sent", "email")
    saved = tmp_path / "nudge.eml"
    saved.write_bytes(nudge)
    fake.deliver(reply_to(saved, "Amber \u2014 survey delayed, new date 30/06/2027"))

    out = run("run", "--once", "--at", "2026-12-02T10:00").stdout

    assert "Read 1 reply(ies) from 1 mail(s) in Microsoft 365 mailbox chaser@housing.example: 1 applied" in out
    shown = json.loads(run("show", "HW 7", "--format", "json").stdout)
    (latest,) = shown["history"]
    assert (latest["new_status"], latest["channel"]) == ("amber", "email")
    assert latest["note"] == "survey delayed, new date 30/06/2027"
    assert "2027-06-30" in json.dumps(shown)
    (listed,) = json.loads(run("replies", "--format", "json").stdout)
    assert (listed["via"], listed["outcome"], listed["refs"]) == ("email", "applied", ["HW 7"])
    assert listed["message_id"] == box["id"] and box["receipt"]["ref"]["message_id"] == str(sent["Message-ID"])
    [done] = fake.in_folder("Chaser done")
    assert done.is_read and b"survey delayed" in done.mime
    assert fake.in_folder("Inbox") == []
    # Read and moved: the next run finds nothing new. Sending and reading shared one token.
    assert "Read " not in run("run", "--once", "--at", "2026-12-02T11:00").stdout
    assert len(fake.token_requests) == 1
