"""Signed one-click answer links: round trip, tampering and expiry refused."""
from __future__ import annotations

import datetime as dt

import time
from unittest import mock

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from bot.links import SALT, BadAnswerLink, answer_links, chosen_status, read_answer_token
from chaser.errors import ChaserError

SECRET = "a-long-random-test-secret"
BASE = "https://chaser.lambeth.example.gov.uk/"
DAY = 86400


def token_of(url: str) -> str:
    prefix = "https://chaser.lambeth.example.gov.uk/answer/"
    assert url.startswith(prefix)
    return url[len(prefix):].split("?")[0]


def query_of(url: str) -> str:
    return url.partition("?")[2]


def test_links_round_trip() -> None:
    links = answer_links(BASE, SECRET, action_id=7, person_id=12, outbox_id=345)
    assert [link.label for link in links] == ["Green", "Amber", "Red", "Complete", "Add a note"]
    assert len({token_of(link.url) for link in links}) == 1      # one signature per action
    payload = read_answer_token(SECRET, token_of(links[0].url), 14 * DAY)
    assert payload == {"a": 7, "p": 12, "o": 345}
    statuses = [chosen_status(query_of(link.url)) for link in links]
    assert statuses == ["green", "amber", "red", "complete", None]
    assert len({link.url for link in links}) == 5


def test_an_unknown_status_in_the_link_chooses_nothing() -> None:
    assert chosen_status("s=purple") is None
    assert chosen_status("s=red&s=green") == "red"


def test_a_token_carrying_more_than_an_answer_is_refused() -> None:
    extra = URLSafeTimedSerializer(SECRET, salt=SALT).dumps({"a": 7, "p": 12, "o": 345, "s": "amber"})
    with pytest.raises(BadAnswerLink, match="does not carry an answer"):
        read_answer_token(SECRET, extra, 14 * DAY)


def test_tampered_token_is_refused() -> None:
    token = token_of(answer_links(BASE, SECRET, action_id=7, person_id=12, outbox_id=345)[0].url)
    payload, rest = token.split(".", 1)
    other = token_of(answer_links(BASE, SECRET, action_id=8, person_id=12, outbox_id=345)[0].url)
    forged = other.split(".", 1)[0] + "." + rest       # someone else's payload, this signature
    for bad in (forged, token[:-2], token + "x", "nonsense", ""):
        with pytest.raises(BadAnswerLink, match="not valid") as caught:
            read_answer_token(SECRET, bad, 14 * DAY)
        assert caught.value.expired is False
    with pytest.raises(BadAnswerLink):
        read_answer_token("another-secret", token, 14 * DAY)


def test_expired_token_is_refused() -> None:
    signed_at = int(time.time())
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=signed_at):
        token = token_of(answer_links(BASE, SECRET, action_id=1, person_id=2, outbox_id=3)[2].url)
    signed = dt.datetime.fromtimestamp(signed_at, dt.timezone.utc)
    assert read_answer_token(SECRET, token, 14 * DAY, now=signed + dt.timedelta(days=14)) == {"a": 1, "p": 2, "o": 3}
    with pytest.raises(BadAnswerLink, match="expired") as caught:
        read_answer_token(SECRET, token, 14 * DAY, now=signed + dt.timedelta(days=14, seconds=1))
    assert caught.value.expired is True
    assert isinstance(caught.value, ChaserError)


def test_a_token_dated_in_the_future_is_not_valid_rather_than_expired() -> None:
    signed_at = int(time.time()) + 3 * DAY
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=signed_at):
        token = token_of(answer_links(BASE, SECRET, action_id=1, person_id=2, outbox_id=3)[0].url)
    with pytest.raises(BadAnswerLink, match="not valid: it is dated in the future") as caught:
        read_answer_token(SECRET, token, 14 * DAY)
    assert caught.value.expired is False
    # A few minutes ahead is another instance's clock, not a forgery.
    now = dt.datetime.fromtimestamp(signed_at - 120, dt.timezone.utc)
    assert read_answer_token(SECRET, token, 14 * DAY, now=now)["a"] == 1


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ChaserError, match="secret"):
        answer_links(BASE, "", action_id=1, person_id=2, outbox_id=3)
