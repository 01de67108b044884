"""Outbound channels: an explicit registry of kind -> "module:Class", imported on first use.

Add a channel by adding one line to :data:`CHANNELS`; nothing scans folders. A channel class
implements :class:`bot.channels.base.Channel` and builds itself from its ``[channels.<kind>]``
table with ``from_settings(table, secrets)``. Only the channels the config enables are imported.
A channel in :data:`PRESET_ONLY` takes only the messages queued for it by name.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from chaser.errors import ConfigError
from bot.channels.base import (
    Channel,
    ChannelError,
    Envelope,
    Item,
    Link,
    Receipt,
    Recipient,
    Secrets,
    UnknownChannel,
)

CHANNELS: dict[str, str] = {
    "email": "bot.channels.email:Email",
    "memory": "bot.channels.memory:Memory",
    "outbox_folder": "bot.channels.outbox_folder:OutboxFolder",
    "slack": "bot.channels.slack:Slack",
    "teams": "bot.channels.teams:Teams",
    "teams_workflow": "bot.channels.teams_workflow:TeamsWorkflow",
}
# Channels a message is preset to and never routed to: they are not in ``[channels] order``,
# and a message that fails there is parked, not moved on. A board's Teams digest goes to its
# Workflows webhook (jobs.digest_send); nobody else has an address there.
PRESET_ONLY: tuple[str, ...] = ("teams_workflow",)

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


def load_channel(kind: str, table: Mapping[str, Any], secrets: Secrets | None) -> Channel:
    """A ready channel of ``kind`` built from its config ``table`` (``secrets=None``: only check it)."""
    channel: Channel = channel_class(kind).from_settings(table, secrets)
    return channel


__all__ = [
    "CHANNELS",
    "PRESET_ONLY",
    "Channel",
    "ChannelError",
    "Envelope",
    "Item",
    "Link",
    "Receipt",
    "Recipient",
    "Secrets",
    "UnknownChannel",
    "channel_class",
    "load_channel",
]
