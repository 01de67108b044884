"""A channel that keeps what it is given, for tests of the dispatcher and the planner.

``Memory(fail_times=2)`` raises a transient :class:`ChannelError` on the first two sends and
then succeeds; ``Memory(permanent_failure=True)`` refuses every send permanently. Nothing is
rendered: ``sent`` holds the envelopes exactly as the dispatcher built them.
"""
from __future__ import annotations

import threading

from bot.channels.base import ChannelError, Envelope, Receipt


class Memory:
    """Records envelopes in ``sent``; fails on request."""

    kind = "memory"
    checks_duplicates = True  # finds its own earlier send of an outbox id

    def __init__(self, *, fail_times: int = 0, permanent_failure: bool = False) -> None:
        if fail_times < 0:
            raise ValueError("fail_times must be 0 or more")
        self.fail_times = fail_times
        self.permanent_failure = permanent_failure
        self.sent: list[Envelope] = []
        self._ids: set[int] = set()
        self.attempts = 0
        self._failures_left = fail_times
        self._lock = threading.Lock()  # the dispatcher sends from several threads

    def address(self, envelope: Envelope) -> str | None:
        """The email, else the Slack id, else "memory": a memory channel reaches everyone."""
        return envelope.recipient_email or envelope.recipient_slack_id or "memory"

    def send(self, envelope: Envelope) -> Receipt:
        """Keep the envelope; a second send of the same outbox id is flagged as a duplicate."""
        with self._lock:
            return self._send(envelope)

    def _send(self, envelope: Envelope) -> Receipt:
        self.attempts += 1
        if self.permanent_failure:
            raise ChannelError(
                f"memory channel refuses outbox {envelope.outbox_id} (permanent_failure=True)",
                permanent=True,
            )
        if self._failures_left > 0:
            self._failures_left -= 1
            raise ChannelError(
                f"memory channel failed outbox {envelope.outbox_id} on purpose "
                f"({self._failures_left} more failure(s) to come)",
                permanent=False,
            )
        duplicate = envelope.outbox_id in self._ids  # a set: the check must not grow with the queue
        self._ids.add(envelope.outbox_id)
        self.sent.append(envelope)
        return Receipt(
            provider_id=f"memory:{envelope.outbox_id}:{len(self.sent)}",
            possible_duplicate=duplicate,
        )

    def outbox_ids(self) -> list[int]:
        """The outbox ids sent so far, in order (a convenience for assertions)."""
        return [envelope.outbox_id for envelope in self.sent]
