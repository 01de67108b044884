"""The Slack fake itself: it answers as Slack does, through slack_sdk's own WebClient."""
from __future__ import annotations

import json

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.bot.slack_server import (
    APP_ID,
    APP_TOKEN,
    BOT_TOKEN,
    SlackFake,
    sign,
    slack_server,
)


@pytest.fixture
def slack():
    fake = SlackFake()
    fake.add_user("U024BE7LH", "priya.shah@lambeth.example.gov.uk", "Priya Shah")
    fake.add_user("UBOT0001", "robot@lambeth.example.gov.uk", is_bot=True)
    with slack_server(fake) as running:
        yield running


def client(slack: SlackFake, token: str = BOT_TOKEN) -> WebClient:
    return WebClient(token=token, base_url=slack.url, retry_handlers=[])


def test_a_dm_with_blocks_and_metadata_is_kept_and_found_in_history(slack):
    web = client(slack)
    user = web.users_lookupByEmail(email="Priya.Shah@lambeth.example.gov.uk")["user"]["id"]
    channel = web.conversations_open(users=user)["channel"]["id"]
    sent = web.chat_postMessage(channel=channel, text="Your actions", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": "*HW 3*"}}],
        metadata={"event_type": "chaser_nudge", "event_payload": {"outbox_id": 42}})
    assert sent["channel"] == channel == slack.dm_channel(user)

    history = web.conversations_history(channel=channel, include_all_metadata=True)
    assert [m["metadata"]["event_payload"] for m in history["messages"]] == [{"outbox_id": 42}]
    assert "metadata" not in web.conversations_history(channel=channel)["messages"][0]

    web.chat_update(channel=channel, ts=sent["ts"], text="Answered", blocks=[])
    assert slack.dms(user)[0]["text"] == "Answered"
    assert slack.dms(user)[0]["metadata"]["event_payload"] == {"outbox_id": 42}  # an update keeps it
    posted = slack.calls("chat.postMessage")[0]
    assert posted.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert posted.args["metadata"]["event_type"] == "chaser_nudge"


def test_errors_are_slacks(slack):
    web = client(slack)
    cases = [
        (lambda: client(slack, "xoxb-wrong").auth_test(), "invalid_auth"),
        (lambda: web.users_lookupByEmail(email="nobody@lambeth.example.gov.uk"), "users_not_found"),
        (lambda: web.conversations_open(users="UNOBODY"), "user_not_found"),
        (lambda: web.conversations_open(users="UBOT0001"), "cannot_dm_bot"),
        (lambda: web.chat_postMessage(channel="C404", text="x"), "channel_not_found"),
        (lambda: web.chat_postMessage(channel=web.conversations_open(users="U024BE7LH")["channel"]["id"],
                                      text="x", blocks=[{"type": "divider"}] * 51), "invalid_blocks"),
        (lambda: web.chat_update(channel="DCHASERX", ts="1.2", text="x"), "channel_not_found"),
    ]
    for call, error in cases:
        with pytest.raises(SlackApiError) as caught:
            call()
        assert caught.value.response["error"] == error


def test_it_rate_limits_chosen_calls_with_retry_after(slack):
    web = client(slack)
    channel = web.conversations_open(users="U024BE7LH")["channel"]["id"]
    slack.ratelimit_every(3, "chat.postMessage", retry_after=7)
    answers = []
    for n in range(6):
        try:
            web.chat_postMessage(channel=channel, text=f"message {n}")
            answers.append("ok")
        except SlackApiError as exc:
            assert exc.response.status_code == 429
            answers.append(exc.response.headers["Retry-After"])
    assert answers == ["ok", "ok", "7", "ok", "ok", "7"]
    assert len(slack.dms("U024BE7LH")) == 4
    slack.fail("auth.test", "ratelimited", times=1)
    with pytest.raises(SlackApiError):
        web.auth_test()
    assert web.auth_test()["user_id"] == slack.bot_user


def test_form_encoded_calls_and_views(slack):
    web = client(slack)
    web.api_call("chat.postEphemeral", data={"channel": web.conversations_open(users="U024BE7LH")["channel"]["id"],
                                             "user": "U024BE7LH", "text": "you are not an owner of HW 3"})
    assert slack.calls("chat.postEphemeral")[0].args["text"] == "you are not an owner of HW 3"
    opened = web.views_open(trigger_id="13345224609.738474920.8088930838d88f008e0",
                            view={"type": "modal", "title": {"type": "plain_text", "text": "Update"}, "blocks": []})
    web.views_update(view_id=opened["view"]["id"], view={"type": "modal", "blocks": []})
    web.views_publish(user_id="U024BE7LH", view={"type": "home", "blocks": []})
    assert [v["type"] for v in slack.views] == ["modal", "modal", "home"]


def test_sign_matches_slacks_documented_example():
    # The example in Slack's "Verifying requests from Slack" page.
    body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    headers = sign(body, "8f742231b10e8888abcd99yyyzzz85a5", 1531420618)
    assert headers == {"X-Slack-Request-Timestamp": "1531420618",
                       "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}


def test_socket_mode_urls_take_the_app_token_and_connect_once(slack):
    with pytest.raises(SlackApiError) as bot_token:
        client(slack).apps_connections_open(app_token=BOT_TOKEN)
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as wrong:
        client(slack).apps_connections_open(app_token="xapp-1-A0OTHER-1-nope")
    assert wrong.value.response["error"] == "invalid_auth"

    url = client(slack).apps_connections_open(app_token=APP_TOKEN)["url"]
    assert url.startswith(slack.socket_url + "/link/?ticket=")
    with connect(url) as socket:
        hello = json.loads(socket.recv(timeout=5))
        assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": APP_ID}
        envelope = slack.push("slash_commands", {"command": "/chaser", "user_id": "U024BE7LH"})
        sent = json.loads(socket.recv(timeout=5))
        assert sent == {"envelope_id": envelope, "type": "slash_commands", "accepts_response_payload": True,
                        "payload": {"command": "/chaser", "user_id": "U024BE7LH"}}
        socket.send(json.dumps({"envelope_id": envelope, "payload": {"text": "Your actions"}}))
        assert slack.wait_ack(envelope).payload == {"text": "Your actions"}
    with pytest.raises(InvalidStatus) as reused:  # a ticket connects once
        connect(url)
    assert reused.value.response.status_code == 401
