"""Outbound channels: an explicit registry of kind -> "module:Class", imported on first use.

Add a channel by adding one line to :data:`CHANNELS`; nothing scans folders. A channel class
takes its options as keyword arguments and implements :class:`bot.channels.base.Channel`.
"""
from __future__ import annotations

import importlib
from typing import Any

from chaser.errors import ConfigError
from bot.channels.base import (
    Channel,
    ChannelError,
    Envelope,
    Item,
    Link,
    Receipt,
    UnknownChannel,
)

CHANNELS: dict[str, str] = {
    "memory": "bot.channels.memory:Memory",
    "outbox_folder": "bot.channels.outbox_folder:OutboxFolder",
}

_classes: dict[str, type] = {}


def channel_class(kind: str) -> type:
    """The class registered for ``kind``, importing its module the first time it is asked for."""
    if kind in _classes:
        return _classes[kind]
    target = CHANNELS.get(kind)
    if target is None:
        known = ", ".join(sorted(CHANNELS))
        raise UnknownChannel(f"unknown channel {kind!r} (known channels: {known})")
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"channel {kind!r} could not be loaded from {target}: {exc}") from exc
    _classes[kind] = cls
    return cls


def load_channel(kind: str, **options: Any) -> Channel:
    """A ready channel of ``kind``; ``options`` are passed to its constructor."""
    cls = channel_class(kind)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"channel {kind!r}: bad options ({exc})") from exc


__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelError",
    "Envelope",
    "Item",
    "Link",
    "Receipt",
    "UnknownChannel",
    "channel_class",
    "load_channel",
]
