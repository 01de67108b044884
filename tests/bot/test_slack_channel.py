"""The Slack channel and its blocks against the Slack fake (a real HTTP server on loopback)."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from bot.channels import CHANNELS, ChannelError, load_channel
from bot.channels.base import Channel, Receipt, Recorded, Secrets
from bot.channels.slack import SendLimits, Slack
from bot.slack_blocks import ACTION_IDS, nudge_blocks, parse_button_value
from chaser.errors import ConfigError
from tests.bot import SENT_AT, make_envelope, make_item
from tests.bot.slack_server import BOT_TOKEN, SlackFake, slack_server

PRIYA = "U024BE7LH"
SECRETS = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xapp-1-A0-chaser", "SLACK_SIGNING_SECRET": "8f74"}


@pytest.fixture
def slack():
    fake = SlackFake()
    fake.add_user(PRIYA, "priya.shah@lambeth.example.gov.uk", "Priya Shah")
    fake.add_user("U0KWAME01", "kwame.mensah@lambeth.example.gov.uk", "Kwame Mensah")
    with slack_server(fake) as running:
        yield running


def channel(slack: SlackFake, **changes: Any) -> Slack:
    values: dict[str, Any] = {"token": BOT_TOKEN, "api_url": slack.url, "limits": None}
    values.update(changes)
    return Slack(**values)


def texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")


# -- configuration -------------------------------------------------------------------------
def test_it_is_registered_and_checks_its_table() -> None:
    assert CHANNELS["slack"] == "bot.channels.slack:Slack"
    built = load_channel("slack", {"enabled": True}, None)
    assert isinstance(built, Channel) and built.kind == "slack" and built.checks_duplicates is True
    assert built.api_url == "https://slack.com/api/" and built.mode == "socket"
    with pytest.raises(ChannelError, match="without SLACK_BOT_TOKEN"):
        built.send(make_envelope())
    cases = [
        ({"colour": "red"}, "unknown key 'channels.slack.colour'"),
        ({"mode": "webhook"}, "'channels.slack.mode' must be \"socket\" or \"http\""),
        ({"api_url": "slack.com/api"}, "'channels.slack.api_url' must be a URL"),
        ({"enabled": "yes"}, "'channels.slack.enabled' must be true or false"),
        ({"digest_channel": ""}, "'channels.slack.digest_channel'"),
    ]
    for table, message in cases:
        with pytest.raises(ConfigError, match=message):
            Slack.from_settings(table, None)


def test_secrets_are_required_by_mode_and_named() -> None:
    assert Slack.from_settings({"api_url": "http://127.0.0.1:9/api"}, Secrets(SECRETS)).api_url == "http://127.0.0.1:9/api/"
    missing = [
        ({}, {}, "SLACK_BOT_TOKEN is not set"),
        ({}, {"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_APP_TOKEN is not set"),
        ({"mode": "http"}, {"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_SIGNING_SECRET is not set"),
        ({}, {**SECRETS, "SLACK_BOT_TOKEN": "xapp-oops"}, "SLACK_BOT_TOKEN must be the app's bot token"),
        ({}, {**SECRETS, "SLACK_APP_TOKEN": "xoxb-oops"}, "SLACK_APP_TOKEN must be an app-level token"),
    ]
    for table, environ, message in missing:
        with pytest.raises(ConfigError, match=message):
            Slack.from_settings(table, Secrets(environ))
    assert Slack.from_settings({"mode": "http"}, Secrets({"SLACK_BOT_TOKEN": BOT_TOKEN,
                                                          "SLACK_SIGNING_SECRET": "s"})).mode == "http"


# -- blocks ----------------------------------------------------------------------------------
def test_blocks_have_the_contracts_buttons_and_hostile_mrkdwn_is_inert() -> None:
    hostile = make_item(action_id=7, title="<!channel> see <http://evil.example|your payslip> <@U123> & more")
    envelope = make_envelope(hostile, make_item("HW 4", action_id=8))
    text, blocks = nudge_blocks(envelope)
    [actions, _] = [b for b in blocks if b["type"] == "actions"]
    assert actions["block_id"] == "item-7"
    assert [e["action_id"] for e in actions["elements"]] == list(ACTION_IDS)
    assert [e["text"]["text"] for e in actions["elements"]] == ["On track", "At risk", "Off track", "Done", "Update…",
                                                                "Snooze a week"]
    assert all("url" not in e for e in actions["elements"])
    assert [parse_button_value(e["value"]) for e in actions["elements"]] == [
        (42, 7, "green"), (42, 7, "amber"), (42, 7, "red"), (42, 7, "complete"), (42, 7, None), (42, 7, None)]
    shown = texts(blocks) + text
    assert "&lt;!channel&gt;" in shown and "&lt;@U123&gt;" in shown and "&lt;http://evil.example|your payslip&gt;" in shown
    assert "<!channel>" not in shown and "<@U123>" not in shown and "<http://evil" not in shown
    assert "press Send on the page" not in texts(blocks)  # the email's way; Slack has buttons
    with pytest.raises(ValueError):
        parse_button_value('{"o": "42"}')


def test_a_long_list_stays_within_slacks_limits_and_ends_with_the_link_to_all_my_actions() -> None:
    long_title = "Review the & <pay> policy " * 200  # over 3,000 characters escaped
    items = [make_item(f"HW {n}", action_id=n, title=long_title if n == 0 else "Publish") for n in range(40)]
    envelope = make_envelope(*items, more=5, mine_url="https://chaser.example.gov.uk/mine/abc", mine_open=45)
    text, blocks = nudge_blocks(envelope)
    assert len(blocks) <= 50 and len(text) <= 3000
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert len({b["block_id"] for b in blocks}) == len(blocks)
    shown = sum(1 for b in blocks if b["type"] == "actions")
    more = next(b for b in blocks if b["block_id"] == "more")["text"]["text"]
    assert more.startswith(f"…and {40 - shown + 5} more actions need your update")
    assert "<https://chaser.example.gov.uk/mine/abc|see and update all your actions>" in more


def test_answered_items_show_what_was_recorded_and_lose_their_buttons() -> None:
    answered = make_item(action_id=7, recorded=Recorded(status="amber", note="<b>late</b> & slow", due_text=None,
                                                        by="Priya Shah", via="slack", at=SENT_AT))
    _, blocks = nudge_blocks(make_envelope(answered, make_item("HW 4", action_id=8)))
    assert [b["block_id"] for b in blocks if b["type"] == "actions"] == ["item-8"]
    assert "Answered" in texts(blocks) and "by Priya Shah (Slack)" in texts(blocks)
    assert "&lt;b&gt;late&lt;/b&gt; &amp; slow" in texts(blocks)


@pytest.mark.parametrize("kind", ["nudge", "lead_list", "confirmation", "notice"])
def test_every_kind_renders_and_only_answerable_kinds_have_buttons(kind: str) -> None:
    envelope = make_envelope(make_item(action_id=3), kind=kind, notes=("Two owners have no address.",))
    text, blocks = nudge_blocks(envelope)
    assert text and blocks and len(blocks) <= 50
    assert any(b["type"] == "actions" for b in blocks) == (kind in ("nudge", "lead_list"))


# -- sending ---------------------------------------------------------------------------------
def test_a_nudge_is_a_dm_with_buttons_metadata_and_a_receipt(slack: SlackFake) -> None:
    sender = channel(slack)
    envelope = make_envelope(make_item(action_id=7))
    assert sender.address(envelope.recipient) == PRIYA
    receipt = sender.send(envelope)
    [message] = slack.dms(PRIYA)
    assert receipt == Receipt("slack", {"channel": slack.dm_channel(PRIYA), "ts": message["ts"], "outbox_id": "42"})
    assert message["metadata"] == {"event_type": "chaser_nudge", "event_payload": {"outbox_id": 42}}
    assert [b["block_id"] for b in message["blocks"] if b["type"] == "actions"] == ["item-7"]
    assert message["text"].startswith("Hello Priya Shah")
    [post] = slack.calls("chat.postMessage")
    assert post.headers["content-type"].startswith("application/json")  # blocks as JSON, not form-encoded
    sender.send(replace(envelope, outbox_id=43))
    assert len(slack.calls("conversations.open")) == 1  # the DM channel is remembered


def test_update_in_place_replaces_the_message_and_keeps_its_buttons_naming_it(slack: SlackFake) -> None:
    sender = channel(slack)
    receipt = sender.send(make_envelope(make_item(action_id=7), make_item("HW 4", action_id=8)))
    answered = make_item(action_id=7, recorded=Recorded("green", None, None, "Priya Shah", "email", SENT_AT))
    # The dispatcher hands an update the update row's outbox id (99): the buttons keep naming 42.
    assert sender.update(Receipt.from_json(receipt.to_json()),
                         make_envelope(answered, make_item("HW 4", action_id=8), outbox_id=99)) == receipt
    [message] = slack.dms(PRIYA)
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert actions["block_id"] == "item-8" and parse_button_value(actions["elements"][0]["value"])[0] == 42
    assert "Answered" in texts(message["blocks"]) and message["metadata"]["event_payload"] == {"outbox_id": 42}
    with pytest.raises(ChannelError) as gone:
        sender.update(Receipt("slack", {"channel": slack.dm_channel(PRIYA), "ts": "1.000001"}), make_envelope())
    assert gone.value.permanent and "message_not_found" in gone.value.text


def test_a_resend_finds_the_earlier_post_in_history_and_does_not_post_twice(slack: SlackFake) -> None:
    sender = channel(slack)
    envelope = make_envelope(created_at=SENT_AT)
    first = sender.send(envelope)
    other = channel(slack)  # another process after a lost lease: nothing cached
    again = other.send(replace(envelope, resend=True))
    assert again == first and len(slack.dms(PRIYA)) == 1
    [history] = slack.calls("conversations.history")
    assert history.args["include_all_metadata"] in ("1", 1, True)
    never = other.send(replace(envelope, outbox_id=77, resend=True))  # a resend that never went out: posted
    assert len(slack.dms(PRIYA)) == 2 and never.ref["ts"] != first.ref["ts"] and not never.possible_duplicate
    slack.fail("conversations.history", "missing_scope")  # the app lacks im:history: post, flagged
    unsure = other.send(replace(envelope, outbox_id=78, resend=True))
    assert unsure.possible_duplicate and len(slack.dms(PRIYA)) == 3


def test_people_without_a_slack_id_are_looked_up_by_email_once(slack: SlackFake) -> None:
    sender = channel(slack)
    kwame = make_envelope(recipient_name="Kwame Mensah", recipient_email="Kwame.Mensah@lambeth.example.gov.uk",
                          recipient_slack_id=None)
    assert sender.address(kwame.recipient) == "Kwame.Mensah@lambeth.example.gov.uk"  # a key to look up, no I/O
    assert slack.requests == []
    sender.send(kwame)
    sender.send(replace(kwame, outbox_id=43))
    assert len(slack.calls("users.lookupByEmail")) == 1 and len(slack.dms("U0KWAME01")) == 2
    assert sender.address(kwame.recipient) == "U0KWAME01"

    nobody = make_envelope(recipient_name="Sam Jones", recipient_email="sam@lambeth.example.gov.uk",
                           recipient_slack_id=None)
    with pytest.raises(ChannelError) as missing:
        sender.send(nobody)
    assert missing.value.permanent and "no Slack user has the email sam@lambeth.example.gov.uk" in missing.value.text
    assert sender.address(nobody.recipient) is None  # looked up today: routing moves on without asking
    assert sender.address(make_envelope(recipient_slack_id=None, recipient_email=None).recipient) is None


def test_slacks_errors_become_channel_errors_that_say_whether_to_retry(slack: SlackFake) -> None:
    slack.add_user("UBOT0001", "robot@lambeth.example.gov.uk", is_bot=True)
    cases: list[tuple[Any, dict[str, Any]]] = [
        (channel(slack, token="xoxb-revoked"), {"permanent": False, "words": "SLACK_BOT_TOKEN"}),
        (channel(slack), {"slack_id": "UGONE", "permanent": True, "words": "user_not_found"}),
        (channel(slack), {"slack_id": "UBOT0001", "permanent": True, "words": "cannot_dm_bot"}),
        (channel(slack, api_url="http://127.0.0.1:9/api/"), {"permanent": False, "words": "could not reach Slack"}),
    ]
    for sender, expect in cases:
        with pytest.raises(ChannelError) as caught:
            sender.send(make_envelope(recipient_slack_id=expect.get("slack_id", PRIYA)))
        assert caught.value.permanent is expect["permanent"] and expect["words"] in caught.value.text
    slack.fail("chat.postMessage", "ratelimited", retry_after=30)
    with pytest.raises(ChannelError) as throttled:
        channel(slack).send(make_envelope())
    assert throttled.value.throttled and throttled.value.retry_after == 30
    slack.fail("chat.postMessage", "internal_error")
    with pytest.raises(ChannelError) as transient:
        channel(slack).send(make_envelope())
    assert not transient.value.permanent and "internal_error" in transient.value.text


def test_a_lead_list_goes_to_the_digest_channel_when_one_is_set(slack: SlackFake) -> None:
    slack.add_channel("C0EDILEADS")
    receipt = channel(slack, digest_channel="C0EDILEADS").send(make_envelope(make_item(owner="Sam Jones"),
                                                                             kind="lead_list"))
    assert receipt.ref["channel"] == "C0EDILEADS" and len(slack.messages("C0EDILEADS")) == 1
    assert slack.calls("conversations.open") == []


def test_the_limiter_throttles_instead_of_waiting_and_lets_bursts_through() -> None:
    now = [dt.datetime(2026, 4, 28, 9, 0, tzinfo=dt.timezone.utc)]
    limits = SendLimits(lambda: now[0])
    for _ in range(3):  # a burst of three to one channel
        limits.take("chat.postMessage", "D1")
    with pytest.raises(ChannelError) as caught:
        limits.take("chat.postMessage", "D1")
    assert caught.value.throttled and 2.9 < caught.value.retry_after <= 3.01  # the oldest of the three leaves the window
    limits.take("chat.postMessage", "D2")  # another channel is not held up
    now[0] += dt.timedelta(seconds=caught.value.retry_after)
    limits.take("chat.postMessage", "D1")
    limits.hold("chat.postMessage", 20, "D3")  # a 429's Retry-After holds that channel back
    with pytest.raises(ChannelError) as held:
        limits.take("chat.postMessage", "D3")
    assert held.value.retry_after == pytest.approx(20)
    limits.take("chat.postMessage", "D4")
    limits.hold("conversations.open", 5)  # a workspace-wide tier: every call waits
    with pytest.raises(ChannelError):
        limits.take("conversations.open")
    now[0] += dt.timedelta(seconds=20)
    limits.take("chat.postMessage", "D3")
    limits.take("conversations.open")
