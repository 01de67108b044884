"""A channel that keeps what it is given, for tests of the dispatcher, routing and the planner.

``Memory(fail_times=2)`` raises a transient :class:`ChannelError` on the first two sends and
then succeeds; ``Memory(permanent_failure=True)`` refuses every send permanently. Nothing is
rendered: ``sent`` holds the envelopes exactly as the dispatcher built them, and ``messages``
each message as it stands now (an in-place ``update`` replaces it; ``updates`` lists them).

``reaches`` makes it stand in for a real channel in routing tests: ``Memory(kind="slack",
reaches="slack")`` reaches only people with a Slack id; the default ``"anyone"`` reaches
everyone. Configured as ``[channels.memory]`` with the keys ``fail_times``,
``permanent_failure`` and ``reaches``.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from bot.channels.base import ChannelError, Envelope, Receipt, Recipient, Secrets, check_keys
from chaser.errors import ConfigError

ANYONE = "anyone"


class Memory:
    """Records envelopes in ``sent`` and the current text of each message in ``messages``."""

    kind = "memory"
    checks_duplicates = True  # finds its own earlier send of an outbox id

    def __init__(self, *, fail_times: int = 0, permanent_failure: bool = False, kind: str = "memory",
                 reaches: str = ANYONE) -> None:
        if fail_times < 0:
            raise ValueError("fail_times must be 0 or more")
        self.kind = kind
        self.reaches = reaches
        self.fail_times = fail_times
        self.permanent_failure = permanent_failure
        self.sent: list[Envelope] = []
        self.messages: dict[str, Envelope] = {}  # receipt id -> the message as it reads now
        self.updates: list[tuple[str, Envelope]] = []
        self._ids: dict[int, str] = {}  # outbox id -> receipt id
        self.attempts = 0
        self._failures_left = fail_times
        self._lock = threading.Lock()  # the dispatcher sends from several threads

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> Memory:
        check_keys(table, "memory", {"enabled", "fail_times", "permanent_failure", "reaches"})
        fail_times = table.get("fail_times", 0)
        if not isinstance(fail_times, int) or isinstance(fail_times, bool) or fail_times < 0:
            raise ConfigError(f"'channels.memory.fail_times' must be a whole number, 0 or more, got {fail_times!r}")
        permanent = table.get("permanent_failure", False)
        if not isinstance(permanent, bool):
            raise ConfigError("'channels.memory.permanent_failure' must be true or false")
        reaches = table.get("reaches", ANYONE)
        if not isinstance(reaches, str):
            raise ConfigError("'channels.memory.reaches' must be \"anyone\" or an address kind such as \"email\"")
        return cls(fail_times=fail_times, permanent_failure=permanent, reaches=reaches)

    def address(self, recipient: Recipient) -> str | None:
        """Anyone (their email, else any address, else "memory"), or only those with a ``reaches`` address."""
        if self.reaches != ANYONE:
            return recipient.address(self.reaches)
        return recipient.email or next(iter(recipient.addresses.values()), None) or "memory"

    def send(self, envelope: Envelope) -> Receipt:
        """Keep the envelope; a second send of the same outbox id is flagged as a duplicate."""
        with self._lock:
            self.attempts += 1
            self._maybe_fail(envelope.outbox_id)
            first = self._ids.get(envelope.outbox_id)  # a dict: the check must not grow with the queue
            if first is not None:
                return Receipt(self.kind, {"id": first}, possible_duplicate=True)
            receipt_id = f"{self.kind}:{envelope.outbox_id}:{len(self.sent) + 1}"
            self._ids[envelope.outbox_id] = receipt_id
            self.sent.append(envelope)
            self.messages[receipt_id] = envelope
            return Receipt(self.kind, {"id": receipt_id})

    def update(self, receipt: Receipt, envelope: Envelope) -> Receipt:
        """Replace the message ``receipt`` names with ``envelope``, as Slack's chat.update does."""
        with self._lock:
            self.attempts += 1
            self._maybe_fail(envelope.outbox_id)
            receipt_id = receipt.ref.get("id", "")
            if receipt_id not in self.messages:
                raise ChannelError(f"{self.kind} channel has no message {receipt_id!r} to update", permanent=True)
            self.messages[receipt_id] = envelope
            self.updates.append((receipt_id, envelope))
            return receipt

    def _maybe_fail(self, outbox_id: int) -> None:
        if self.permanent_failure:
            raise ChannelError(f"{self.kind} channel refuses outbox {outbox_id} (permanent_failure=True)",
                               permanent=True)
        if self._failures_left > 0:
            self._failures_left -= 1
            raise ChannelError(f"{self.kind} channel failed outbox {outbox_id} on purpose "
                               f"({self._failures_left} more failure(s) to come)", permanent=False)

    def outbox_ids(self) -> list[int]:
        """The outbox ids sent so far, in order (a convenience for assertions)."""
        return [envelope.outbox_id for envelope in self.sent]
