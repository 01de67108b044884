"""Rate limits kept with pyrate-limiter buckets, asked without ever blocking.

A chat service publishes its limits (Slack's tiers, Teams' per-conversation and per-app rates)
and answers 429 with ``Retry-After`` past them. :class:`RateLimits` keeps a channel inside them:
:meth:`RateLimits.admit` puts one call into each bucket it names or raises a throttled
:class:`ChannelError` saying when to try again, and :meth:`RateLimits.hold` stops a key until a
429's ``Retry-After`` has passed. Nothing sleeps: the dispatcher reschedules the outbox row and
releases its claim. Thread-safe: the dispatcher sends from several threads. Time is the
channel's clock (an injected one in tests).
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence

from pyrate_limiter import AbstractClock, InMemoryBucket, Rate, RateItem

from bot.channels.base import ChannelError

Clock = Callable[[], dt.datetime]


class _Millis(AbstractClock):
    """pyrate-limiter's clock, read from Chaser's."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> int:
        return int(self.clock().timestamp() * 1000)


class RateLimits:
    """Buckets by key (``rates`` "generous before tight", as pyrate-limiter wants them) and holds
    by key; ``service`` names the service in the errors ("Slack", "Teams")."""

    def __init__(self, clock: Clock, service: str) -> None:
        self.clock = _Millis(clock)
        self.service = service
        self._buckets: dict[str, InMemoryBucket] = {}
        self._held: dict[str, int] = {}  # key -> until (ms)
        self._lock = threading.Lock()

    def _bucket(self, key: str, rates: list[Rate]) -> InMemoryBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = InMemoryBucket(rates)
            bucket._clock = self.clock  # for its own use of now(); items carry our timestamps anyway
        return bucket

    def admit(self, what: str, buckets: Sequence[tuple[str, list[Rate]]], held: Sequence[str] = ()) -> None:
        """One call (``what``, for the error) into every bucket of ``buckets``, unless a key of
        ``held`` is held or a bucket is full: then a throttled ChannelError with ``retry_after``."""
        with self._lock:
            now = self.clock.now()
            until = max((self._held.get(key, 0) for key in held), default=0)
            if now < until:
                raise self._throttled(what, until - now)
            for key, rates in buckets:
                bucket = self._bucket(key, rates)
                bucket.leak(now)  # drop what has left every window: the list stays short
                item = RateItem(what, now)
                if not bucket.put(item):
                    raise self._throttled(what, max(bucket.waiting(item), 1))

    def hold(self, key: str, seconds: float) -> None:
        """Nothing held by ``key`` for ``seconds`` (the service answered 429 with that Retry-After)."""
        with self._lock:
            until = self.clock.now() + int(seconds * 1000)
            self._held[key] = max(self._held.get(key, 0), until)

    def _throttled(self, what: str, wait_ms: int) -> ChannelError:
        return ChannelError(f"{self.service} rate limit: {what} must wait {wait_ms / 1000:.1f} s",
                            retry_after=wait_ms / 1000, throttled=True)


def seconds(value: object, default: float = 1.0) -> float:
    """A ``Retry-After`` in seconds (``default`` when it is missing or not a number)."""
    try:
        return max(float(value), 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
