"""Signed one-click answer links: Green / Amber / Red / Complete / Add a note.

Each link is ``{base_url}/answer/{token}?s={status}`` (no ``s`` for "Add a note"); the token is
an ``itsdangerous`` URL-safe, timed signature (salt ``chaser-answer``) over ``{"a": action_id,
"p": person_id, "o": outbox_id}``. Nobody can change which action a link answers, or for whom,
without the secret; the web handler checks the age with ``read_answer_token``.

The status is not signed: it only chooses which answer the form shows ticked, the person
confirms it with the form's button (POST), and every link of the item already offers every
status. One token per item instead of one per button made a message's links five times
cheaper to sign (15 HMACs per three-action message were a tenth of its sending time).

Every nudge also carries one link to the person's page of all their open actions,
``{base_url}/mine/{token}`` (bot.web.mine): its own salt (``chaser-mine``, so an answer token
never opens it, nor it an answer), over ``{"p": person_id, "o": outbox_id}``, read with
``read_mine_token`` under the same age and clock-skew rules.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from itsdangerous import BadData, URLSafeTimedSerializer

from bot.channels.base import Link
from chaser.errors import ChaserError, ConfigError
from storage.statuses import STATUS_LABELS

SALT = "chaser-answer"
MINE_SALT = "chaser-mine"
NOTE_LABEL = "Add a note"
ANSWERS: tuple[tuple[str, str | None], ...] = (
    *((STATUS_LABELS[status], status) for status in ("green", "amber", "red", "complete")),
    (NOTE_LABEL, None),
)
_STATUSES = {status for _, status in ANSWERS}


class BadAnswerLink(ChaserError):
    """An answer link that was altered, cut short or is too old; ``expired`` tells which."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


PREFERENCES_SALT = "chaser-preferences"
# An unsubscribe link must go on working in an old email: a year, not the answer links' weeks.
PREFERENCES_MAX_AGE_SECONDS = 366 * 86400


@lru_cache(maxsize=8)
def _serializer(secret: str, salt: str = SALT) -> URLSafeTimedSerializer:
    if not secret:
        raise ConfigError("the answer-link secret is empty; set one so links cannot be forged")
    return URLSafeTimedSerializer(secret, salt=salt)


def answer_links(
    base_url: str, secret: str, *, action_id: int, person_id: int, outbox_id: int
) -> tuple[Link, ...]:
    """The five one-click links for one action in one message to one person (one token)."""
    token = _serializer(secret).dumps({"a": action_id, "p": person_id, "o": outbox_id})
    address = f"{base_url.rstrip('/')}/answer/{token}"
    return tuple(Link(label=label, url=f"{address}?s={status}" if status else address, status=status)
                 for label, status in ANSWERS)


def chosen_status(query_string: str) -> str | None:
    """The answer a link pre-selects: ``?s=`` if it is one of ours, else none."""
    status = parse_qs(query_string).get("s", [None])[0]
    return status if status is not None and status in _STATUSES else None


# Links signed by another instance whose clock runs a little ahead are still fine.
CLOCK_SKEW_SECONDS = 300


def read_answer_token(secret: str, token: str, max_age_seconds: int,
                      now: dt.datetime | None = None) -> dict[str, Any]:
    """The payload ``{"a", "p", "o"}`` (action, person, outbox ids) of a genuine, unexpired
    token, else BadAnswerLink. A token dated in the future (beyond a few minutes of clock
    skew) was not made by us as it claims: it is "not valid", never "expired"."""
    return _read_token(secret, SALT, token, max_age_seconds, now, keys="apo", link="answer link",
                       carries="an answer")


def mine_link(base_url: str, secret: str, *, person_id: int, outbox_id: int) -> str:
    """The address of the page of all ``person_id``'s open actions, as message ``outbox_id`` carries it."""
    token = _serializer(secret, MINE_SALT).dumps({"p": person_id, "o": outbox_id})
    return f"{base_url.rstrip('/')}/mine/{token}"


def read_mine_token(secret: str, token: str, max_age_seconds: int,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """The payload ``{"p", "o"}`` (person, outbox ids) of a genuine, unexpired link to the page
    of someone's actions, else BadAnswerLink, by the rules of ``read_answer_token``."""
    return _read_token(secret, MINE_SALT, token, max_age_seconds, now, keys="po", link="link to your actions",
                       carries="a person")


def _read_token(secret: str, salt: str, token: str, max_age_seconds: int, now: dt.datetime | None, *,
                keys: str, link: str, carries: str) -> dict[str, Any]:
    """The payload of a genuine, unexpired token of ``salt`` whose keys are exactly ``keys``
    (one letter each, every value an int); the errors name the ``link`` as its reader knows it."""
    serializer = _serializer(secret, salt)
    try:
        payload, signed_at = serializer.loads(token, return_timestamp=True)
    except BadData:
        raise BadAnswerLink(
            f"this {link} is not valid: it was changed or cut short; "
            "open the link exactly as it appears in the reminder"
        ) from None
    age = ((now or dt.datetime.now(dt.timezone.utc)) - signed_at).total_seconds()
    if age < -CLOCK_SKEW_SECONDS:
        raise BadAnswerLink(f"this {link} is not valid: it is dated in the future; "
                            "open the link exactly as it appears in the reminder")
    if age > max_age_seconds:
        days = max_age_seconds / 86400
        shown = f"{days:g} days" if days >= 1 else f"{max_age_seconds} seconds"
        raise BadAnswerLink(
            f"this {link} has expired (links work for {shown}); "
            "use the link in the latest reminder, or reply to it",
            expired=True,
        )
    if (
        not isinstance(payload, dict)
        or set(payload) != set(keys)
        or not all(isinstance(payload[key], int) and not isinstance(payload[key], bool) for key in keys)
    ):
        raise BadAnswerLink(f"this {link} is not valid: it does not carry {carries}")
    return dict(payload)


def preferences_url(base_url: str, secret: str, *, person_id: int) -> str:
    """``{base_url}/preferences/{token}``: the page where a person chooses how and how often
    Chaser reaches them (and the one-click ``List-Unsubscribe`` address of RFC 8058)."""
    return f"{base_url.rstrip('/')}/preferences/{_serializer(secret, PREFERENCES_SALT).dumps({'p': person_id})}"


def read_preferences_token(secret: str, token: str, now: dt.datetime | None = None) -> int:
    """The person id of a genuine preferences token, at most a year old; else BadAnswerLink."""
    payload = _read_token(secret, PREFERENCES_SALT, token, PREFERENCES_MAX_AGE_SECONDS, now, keys="p",
                          link="link", carries="a person")
    return int(payload["p"])
