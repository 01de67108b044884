"""Configuration: read ``chaser.toml`` once into frozen, typed objects.

Where it comes from, first match wins: ``--config PATH``, ``$CHASER_CONFIG``, ``./chaser.toml``,
built-in defaults. ``$CHASER_DATABASE_URL`` overrides ``[database] url``. Unknown keys and bad
values fail at start with the key's name, so a typo never silently falls back to a default.
Secrets never live here; later channels read them from environment variables.

Config builds on the pure calendar and cadence types of ``jobs`` (and checks names against
``bot`` and ``storage``), imported here at the top: ``jobs`` modules name :class:`Config` only
for type checking, so none of them imports this module and there is no cycle to dodge.
"""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time as dt_time
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.channels import CHANNELS, PRESET_ONLY, load_channel
from chaser.errors import ConfigError
from jobs.calendar import Schedule, WorkCalendar, parse_schedule
from jobs.planner import Cadence
from storage.people import EMAIL  # the directory's rule: the lead must be someone it can hold

DEFAULT_DATABASE_URL = "sqlite:///chaser.db"
DEFAULT_TIMEZONE = "Europe/London"

# Ranges every number in the file is checked against at start, so that a slip of the keyboard
# (before_due = [1000000]) is an error naming the key, not an overflow deep in a sweep.
WORKING_DAYS_MAX = 260  # about a year of working days: further than any reminder or board cycle
STALE_DAYS_MAX = 3660  # ten years
LINK_DAYS_MAX = 3650
DAY_SECONDS = 86400
MIN_SEND_WINDOW_MINUTES = 60  # sweeps plan nudges only inside it: a late sweep must not miss the day
# Database URL schemes Chaser is built and tested for: backend -> drivers ("" = its default).
DATABASE_SCHEMES = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg")}


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = DEFAULT_DATABASE_URL

    def __repr__(self) -> str:  # a URL may carry a password: never print it
        return f"DatabaseConfig(url={redact_url(self.url)!r})"


@dataclass(frozen=True)
class SchedulerConfig:
    sweep_every_seconds: int = 60
    dispatch_every_seconds: int = 5
    lease_seconds: int = 300  # a claimed message not recorded by then may be sent again
    max_attempts: int = 6  # then the message is parked for a person to look at
    retry_base_seconds: int = 30  # backoff: 30 s, 60 s, 120 s, ... capped at one hour
    send_workers: int = 1  # messages of a claimed batch sent at once (threads of one process)


MAX_SEND_WORKERS = 32
# Inclusive ranges of the [scheduler] keys. Retries back off from retry_base_seconds up to an
# hour (jobs/dispatch.py), so a larger base would be silently cut to an hour.
SCHEDULER_RANGES = {
    "sweep_every_seconds": (1, DAY_SECONDS),
    "dispatch_every_seconds": (1, DAY_SECONDS),
    "lease_seconds": (1, DAY_SECONDS),
    "max_attempts": (1, 100),
    "retry_base_seconds": (1, 3600),
    "send_workers": (1, MAX_SEND_WORKERS),
}


FIRST_WORKING_DAY = "first working day"
DIGEST_DAY_MAX = 28  # every month has it
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BoardConfig:
    name: str
    schedule: Schedule
    plans: tuple[str, ...] = ()  # empty: every plan
    request_before: int = 10
    chase_before: int = 5
    missing_before: int = 2
    # The monthly digest (jobs.digest):
    workstreams: tuple[str, ...] = ()  # names in scope; empty: every workstream of the plans
    digest_day: str | int = FIRST_WORKING_DAY  # or a day of the month, 1 to 28
    recipients: tuple[str, ...] = ()  # emails
    slack_channel: str | None = None
    teams_webhook_env: str | None = None  # the NAME of the variable holding the webhook URL (a secret)
    spotlight: tuple[str, ...] = ()  # rotation order by month; empty: the workstreams in plan order
    spotlight_pin: str | None = None  # one workstream in focus every month


# Channels that need no account: on unless their table says ``enabled = false``. Every other
# channel is off until its table says ``enabled = true``.
NO_ACCOUNT_CHANNELS = ("outbox_folder", "memory")
# ``[channels] order`` when neither it nor ``default`` is given: chat first, email last.
DEFAULT_ORDER = ("slack", "teams", "email")
FALLBACK_CHANNEL = "outbox_folder"


@dataclass(frozen=True)
class ChannelsConfig:
    """``order``: the enabled channels, best first (never empty: the outbox folder when none
    is enabled); ``tables``: each channel's ``[channels.<kind>]`` table, checked by the channel."""

    order: tuple[str, ...] = (FALLBACK_CHANNEL,)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, kind: str) -> dict[str, Any]:
        return self.tables.get(kind, {})

    @property
    def default(self) -> str:
        """The first channel tried for someone with no channel of their own."""
        return self.order[0]


@dataclass(frozen=True, eq=False)  # hashed by identity: it is the cache key for cadences
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    edi_lead: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    source: str = "built-in defaults"
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    cadence: dict[str, Any] = field(default_factory=dict)  # validated overrides of the defaults
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # plan -> {"cadence": {...}, "workstreams": {name: {...}}}
    boards: tuple[BoardConfig, ...] = ()
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    web_base_url: str = "http://127.0.0.1:8080"
    web_enabled: bool = True  # chaser run serves the answer form on base_url's host and port
    web_link_days: int = 60  # answer links stop working after this many days

    def cadence_for(self, plan: str, workstream: str | None, timezone: str | None = None) -> Cadence:
        """The cadence for one workstream: defaults, then [cadence], then the plan's, then the workstream's."""
        return _cadence_cache(self, plan, workstream, timezone)


def redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def _check_keys(table: dict[str, Any], allowed: set[str], where: str, path: str) -> None:
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{path}: unknown key '{where}{key}' (known keys: {known})")


def _string(table: dict[str, Any], key: str, where: str, path: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: '{where}{key}' must be a string, not {type(value).__name__}")
    return value


def parse_config(data: dict[str, Any], path: str) -> Config:
    """Validate a parsed TOML document; ``path`` is only used in error messages."""
    _check_keys(
        data, {"database", "edi_lead", "timezone", "scheduler", "cadence", "plans", "boards", "channels", "web"}, "", path
    )
    database = data.get("database", {})
    if not isinstance(database, dict):
        raise ConfigError(f"{path}: 'database' must be a table ([database])")
    _check_keys(database, {"url"}, "database.", path)
    url = _string(database, "url", "database.", path) or DEFAULT_DATABASE_URL
    check_database_url(url, f"{path}: 'database.url'")

    edi_lead = _string(data, "edi_lead", "", path)
    if edi_lead is not None and not EMAIL.match(edi_lead):
        raise ConfigError(f"{path}: 'edi_lead' must be an email address, got {edi_lead!r}")

    timezone = _string(data, "timezone", "", path) or DEFAULT_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: 'timezone' {timezone!r} is not an IANA time zone such as Europe/London") from None

    scheduler = _scheduler(_table(data, "scheduler", "", path), path)
    cadence = parse_cadence(_table(data, "cadence", "", path), "cadence.", path)
    plans: dict[str, dict[str, Any]] = {}
    for name, table in _table(data, "plans", "", path).items():
        where = f"plans.{name!r}."
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: '{where[:-1]}' must be a table")
        _check_keys(table, {"cadence", "workstreams"}, where, path)
        workstreams = {}
        for ws_name, ws_table in _table(table, "workstreams", where, path).items():
            ws_where = f"{where}workstreams.{ws_name!r}."
            if not isinstance(ws_table, dict):
                raise ConfigError(f"{path}: '{ws_where[:-1]}' must be a table")
            _check_keys(ws_table, {"cadence"}, ws_where, path)
            workstreams[ws_name] = parse_cadence(_table(ws_table, "cadence", ws_where, path), f"{ws_where}cadence.", path)
        plans[name] = {"cadence": parse_cadence(_table(table, "cadence", where, path), f"{where}cadence.", path),
                       "workstreams": workstreams}
    boards = _boards(data.get("boards", []), path)
    channels = _channels(_table(data, "channels", "", path), path)
    web = _table(data, "web", "", path)
    _check_keys(web, {"base_url", "enabled", "link_days"}, "web.", path)
    base_url = _string(web, "base_url", "web.", path) or "http://127.0.0.1:8080"
    web_enabled = web.get("enabled", True)
    if not isinstance(web_enabled, bool):
        raise ConfigError(f"{path}: 'web.enabled' must be true or false")
    link_days = _int(web, "link_days", "web.", path, 60, 1, LINK_DAYS_MAX, "days")
    _check_base_url(base_url, f"{path}: 'web.base_url'")

    config = Config(
        database=DatabaseConfig(url=url),
        edi_lead=edi_lead.lower() if edi_lead else None,
        timezone=timezone,
        source=path,
        scheduler=scheduler,
        cadence=cadence,
        plans=plans,
        boards=boards,
        channels=channels,
        web_base_url=base_url.rstrip("/"),
        web_enabled=web_enabled,
        web_link_days=link_days,
    )
    # Build every cadence once, so that a bad combination (a plan's quiet hours with the
    # [cadence] send_at) fails at start rather than at the first sweep that meets the plan.
    config.cadence_for("", None)
    for plan_name, plan_tables in plans.items():
        config.cadence_for(plan_name, None)
        for ws_name in plan_tables["workstreams"]:
            config.cadence_for(plan_name, ws_name)
    return config


def check_database_url(url: str, named: str) -> None:
    """Refuse, naming ``named`` (the key or variable), a URL no engine of Chaser's can open."""
    shown = redact_url(url)
    known = "sqlite:///FILE or postgresql://HOST/DATABASE"
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(f"{named} {shown!r} is not a database URL such as {known}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if driver not in DATABASE_SCHEMES.get(backend, ()):
        raise ConfigError(
            f"{named} {shown!r}: unknown scheme '{parsed.drivername}://'; known schemes: "
            + ", ".join(sorted(DATABASE_SCHEMES)) + f" (such as {known})"
        )
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{named} {shown!r}: port {port} is not a port number (1 to 65535)")


_HOST = re.compile(r"^[\w-]+(\.[\w-]+)*\.?$")


def _check_base_url(url: str, named: str) -> None:
    """http(s), a host name or IP address, a real port; a path (behind a proxy) is fine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{named} must be an http(s) URL such as http://127.0.0.1:8080, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{named} {url!r}: the port must be a number from 1 to 65535")
    host = parts.hostname or ""
    if not _valid_host(host) or "@" in parts.netloc:
        raise ConfigError(f"{named} {url!r}: {host!r} is not a host name or IP address")
    if parts.query or parts.fragment:
        # Answer links are built as {base_url}/answer/...: a query would end up in the middle.
        raise ConfigError(f"{named} {url!r} must not have a query (?...) or fragment (#...)")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return len(host) <= 253 and bool(_HOST.match(host))


def _table(data: dict[str, Any], key: str, where: str, path: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{where}{key}' must be a table ([{where}{key}])")
    return value


def _int(table: dict[str, Any], key: str, where: str, path: str, default: int, minimum: int, maximum: int,
         unit: str = "") -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        of = f" of {unit}" if unit else ""
        raise ConfigError(f"{path}: '{where}{key}' must be a whole number{of} from {minimum} to {maximum}, got {value!r}")
    return value


def _scheduler(table: dict[str, Any], path: str) -> SchedulerConfig:
    defaults = SchedulerConfig()
    _check_keys(table, set(SchedulerConfig.__dataclass_fields__), "scheduler.", path)
    return SchedulerConfig(**{
        name: _int(table, name, "scheduler.", path, getattr(defaults, name), *SCHEDULER_RANGES[name],
                   "seconds" if name.endswith("_seconds") else "")
        for name in SchedulerConfig.__dataclass_fields__
    })


CADENCE_KEYS = {
    "before_due", "on_due", "overdue_every", "escalate_after", "stale_after_days", "send_at", "quiet_hours",
    "working_days", "holidays",
}
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _clock(value: Any, name: str, path: str) -> dt_time:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ConfigError(f"{path}: '{name}' must be a time written HH:MM, got {value!r}")
    hours, minutes = value.split(":")
    return dt_time(int(hours), int(minutes))


# Day names as written in working_days, any case: the short and the full English names, nothing else.
_DAY_NAMES = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))} | {
    name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}


def parse_cadence(table: dict[str, Any], where: str, path: str) -> dict[str, Any]:
    """Validate cadence overrides; returns only the keys given, converted to their types."""
    _check_keys(table, CADENCE_KEYS, where, path)
    out: dict[str, Any] = {}
    if "before_due" in table:
        value = table["before_due"]
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= WORKING_DAYS_MAX for v in value
        ):
            raise ConfigError(f"{path}: '{where}before_due' must be a list of working days from 1 to "
                              f"{WORKING_DAYS_MAX}, such as [10, 2], got {value!r}")
        out["before_due"] = tuple(value)
    if "on_due" in table:
        if not isinstance(table["on_due"], bool):
            raise ConfigError(f"{path}: '{where}on_due' must be true or false")
        out["on_due"] = table["on_due"]
    for name in ("overdue_every", "escalate_after"):
        if name in table:
            out[name] = _int(table, name, where, path, 0, 0, WORKING_DAYS_MAX, "working days")
    if "stale_after_days" in table:
        out["stale_after_days"] = _int(table, "stale_after_days", where, path, 0, 0, STALE_DAYS_MAX, "days")
    if "send_at" in table:
        out["send_at"] = _clock(table["send_at"], f"{where}send_at", path)
    if "quiet_hours" in table:
        value = table["quiet_hours"]
        if not isinstance(value, list) or len(value) not in (0, 2):
            raise ConfigError(f"{path}: '{where}quiet_hours' must be [start, end] such as [\"18:00\", \"08:00\"], or []")
        out["quiet_hours"] = tuple(_clock(v, f"{where}quiet_hours", path) for v in value)
    if "working_days" in table:
        value = table["working_days"]
        if not isinstance(value, list) or not value or any(
            not isinstance(v, str) or v.strip().lower() not in _DAY_NAMES for v in value
        ):
            raise ConfigError(f"{path}: '{where}working_days' must list days such as [\"mon\", \"tue\"] "
                              f"or [\"Monday\", \"Tuesday\"], got {value!r}")
        out["working_days"] = frozenset(_DAY_NAMES[v.strip().lower()] for v in value)
    if "holidays" in table:
        value = table["holidays"]
        regions = ("england-and-wales", "scotland", "northern-ireland", "none")
        if value not in regions:
            raise ConfigError(f"{path}: '{where}holidays' must be one of {', '.join(regions)}, got {value!r}")
        out["holidays"] = value
    return out


def _boards(value: Any, path: str) -> tuple[BoardConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: 'boards' must be a list of tables ([[boards]])")
    boards = []
    for n, table in enumerate(value):
        where = f"boards[{n}]."
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: '{where[:-1]}' must be a table")
        _check_keys(table, {"name", "schedule", "plans", "request_before", "chase_before", "missing_before",
                            "workstreams", "digest_day", "recipients", "slack_channel", "teams_webhook_env",
                            "spotlight"}, where, path)
        name = _string(table, "name", where, path)
        if not name:
            raise ConfigError(f"{path}: '{where}name' is required")
        if "schedule" not in table:
            raise ConfigError(f"{path}: '{where}schedule' is required, e.g. \"quarterly on the first Tuesday\"")
        try:
            schedule = parse_schedule(table["schedule"])
        except ValueError as exc:
            raise ConfigError(f"{path}: '{where}schedule': {exc}") from None
        plans = table.get("plans", [])
        if not isinstance(plans, list) or not all(isinstance(p, str) for p in plans):
            raise ConfigError(f"{path}: '{where}plans' must be a list of plan names")
        board = BoardConfig(
            name=name, schedule=schedule, plans=tuple(plans),
            request_before=_int(table, "request_before", where, path, 10, 0, WORKING_DAYS_MAX, "working days"),
            chase_before=_int(table, "chase_before", where, path, 5, 0, WORKING_DAYS_MAX, "working days"),
            missing_before=_int(table, "missing_before", where, path, 2, 0, WORKING_DAYS_MAX, "working days"),
            **_digest_keys(table, where, path),
        )
        if not board.request_before > board.chase_before > board.missing_before:
            raise ConfigError(f"{path}: '{where}' needs request_before > chase_before > missing_before")
        boards.append(board)
    return tuple(boards)


def _names(table: dict[str, Any], key: str, where: str, path: str, what: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{path}: '{where}{key}' must be a list of {what}, got {value!r}")
    return tuple(v.strip() for v in value)


def _digest_keys(table: dict[str, Any], where: str, path: str) -> dict[str, Any]:
    """A board's digest keys: what it covers, when and to whom it goes, and its spotlight."""
    out: dict[str, Any] = {"workstreams": _names(table, "workstreams", where, path, "workstream names")}
    day = table.get("digest_day", FIRST_WORKING_DAY)
    if isinstance(day, str) and " ".join(day.lower().split()) == FIRST_WORKING_DAY:
        out["digest_day"] = FIRST_WORKING_DAY
    elif isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= DIGEST_DAY_MAX:
        out["digest_day"] = day
    else:
        raise ConfigError(f"{path}: '{where}digest_day' must be \"{FIRST_WORKING_DAY}\" or a day of the month "
                          f"from 1 to {DIGEST_DAY_MAX}, got {day!r}")
    recipients = _names(table, "recipients", where, path, "email addresses")
    for email in recipients:
        if not EMAIL.match(email):
            raise ConfigError(f"{path}: '{where}recipients': {email!r} is not an email address")
    out["recipients"] = recipients
    channel = _string(table, "slack_channel", where, path)
    if channel is not None and (not channel.strip() or any(c.isspace() for c in channel.strip())):
        raise ConfigError(f"{path}: '{where}slack_channel' must be a channel such as \"#edi-board\" or its id "
                          f"(C0123ABCD), got {channel!r}")
    out["slack_channel"] = channel.strip() if channel else None
    env = _string(table, "teams_webhook_env", where, path)
    if env is not None and not _ENV_NAME.match(env):
        hint = " (the URL is a secret: put it in that variable, not in this file)" if "://" in env else ""
        raise ConfigError(f"{path}: '{where}teams_webhook_env' must be the name of an environment variable such as "
                          f"TEAMS_BOARD_WEBHOOK, got {env!r}{hint}")
    out["teams_webhook_env"] = env
    spotlight = table.get("spotlight", [])
    if isinstance(spotlight, str) and spotlight.strip():
        out["spotlight_pin"] = spotlight.strip()
    else:
        if isinstance(spotlight, str):
            spotlight = [spotlight]  # an empty name: the message below
        try:
            out["spotlight"] = _names({"spotlight": spotlight}, "spotlight", where, path, "workstream names")
        except ConfigError:
            raise ConfigError(f"{path}: '{where}spotlight' must be a workstream name (pinned) or a list of them "
                              f"(the rotation order), got {spotlight!r}") from None
    return out


def _channels(table: dict[str, Any], path: str) -> ChannelsConfig:
    """``[channels]``: ``order`` (or the older ``default``, one channel) and a table per channel."""
    tables: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key in ("order", "default"):
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: unknown key 'channels.{key}' (known keys: default, order, and a "
                              f"[channels.<name>] table per channel: {', '.join(sorted(CHANNELS))})")
        if key not in CHANNELS:
            raise ConfigError(f"{path}: '[channels.{key}]' is not a channel (known channels: "
                              f"{', '.join(sorted(CHANNELS))})")
        tables[key] = value
    if "order" in table and "default" in table:
        raise ConfigError(f"{path}: give 'channels.order' or 'channels.default', not both")
    if "order" in table:
        order = table["order"]
        if not isinstance(order, list) or not order or not all(isinstance(k, str) for k in order):
            raise ConfigError(f"{path}: 'channels.order' must be a list of channel names such as "
                              "[\"slack\", \"email\"]")
        named = "'channels.order'"
    elif "default" in table:
        order = [_string(table, "default", "channels.", path)]
        named = "'channels.default'"
    else:
        order, named = [k for k in DEFAULT_ORDER if k in CHANNELS], ""
    for kind in order:
        if kind not in CHANNELS:
            raise ConfigError(f"{path}: {named} {kind!r} is not one of {', '.join(sorted(CHANNELS))}")
    if len(set(order)) != len(order):
        raise ConfigError(f"{path}: {named} names a channel twice")
    for kind in order:
        if kind in PRESET_ONLY:
            raise ConfigError(f"{path}: {named} {kind!r} is not a channel messages are routed to: it posts "
                              "board digests to the webhook a [[boards]] teams_webhook_env names")

    def enabled(kind: str) -> bool:
        value = tables.get(kind, {}).get("enabled", kind in NO_ACCOUNT_CHANNELS)
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: 'channels.{kind}.enabled' must be true or false")
        return value

    for kind in tables:
        enabled(kind)
    chosen = tuple(kind for kind in order if enabled(kind)) or (FALLBACK_CHANNEL,)
    # Each channel checks its own table now (no secrets read: commands that send nothing must
    # not need them), so a bad value stops Chaser at start with the key's name.
    for kind in dict.fromkeys((*chosen, *(k for k in tables if k in NO_ACCOUNT_CHANNELS or k in PRESET_ONLY))):
        try:
            load_channel(kind, tables.get(kind, {}), None)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return ChannelsConfig(order=chosen, tables=tables)


@lru_cache(maxsize=4096)
def _cadence_cache(config: Config, plan: str, workstream: str | None, timezone: str | None) -> Cadence:
    plan_table = config.plans.get(plan, {})
    levels = [("cadence.", config.cadence), (f"plans.{plan!r}.cadence.", plan_table.get("cadence", {}))]
    if workstream is not None:
        levels.append((f"plans.{plan!r}.workstreams.{workstream!r}.cadence.",
                       plan_table.get("workstreams", {}).get(workstream, {})))
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # key -> where its value was set, for the error message
    for where, table in levels:
        merged.update(table)
        origin.update(dict.fromkeys(table, where))
    _check_send_window(merged, origin, config.source)
    calendar_args: dict[str, Any] = {"timezone": timezone or config.timezone}
    for name in ("send_at", "working_days", "holidays"):
        if name in merged:
            calendar_args[name] = merged.pop(name)
    quiet = merged.pop("quiet_hours", None)
    if quiet is not None:
        # [] means no quiet hours: an empty interval.
        calendar_args["quiet_start"], calendar_args["quiet_end"] = quiet or (dt_time(0, 0), dt_time(0, 0))
    try:
        return Cadence(calendar=WorkCalendar(**calendar_args), **merged)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: cadence for plan {plan!r}: {exc}") from None


def _check_send_window(merged: dict[str, Any], origin: dict[str, str], path: str) -> None:
    """send_at outside the quiet hours, and at least an hour a day from send_at to midnight to send in.

    The calendar's send window runs from ``send_at`` until midnight, less the quiet hours
    (jobs/calendar.py). A send_at inside them would only take effect when they end; and sweeps
    plan nudges only inside the window, so in a window of minutes a sweep that runs late or a
    restart would leave the day's nudges waiting for the next working day.
    """
    default = WorkCalendar()
    send_at = merged.get("send_at", default.send_at)
    quiet = merged.get("quiet_hours", (default.quiet_start, default.quiet_end)) or ()
    named = " and ".join(f"'{origin[key]}{key}'" for key in ("send_at", "quiet_hours") if key in origin)
    if not named:
        return  # the defaults
    start_min = send_at.hour * 60 + send_at.minute
    window = 24 * 60 - start_min
    shown, verb = f"send_at {send_at:%H:%M}", "leaves"
    if quiet and quiet[0] != quiet[1]:
        q_start, q_end = (t.hour * 60 + t.minute for t in quiet)
        intervals = [(q_start, q_end)] if q_start < q_end else [(q_start, 24 * 60), (0, q_end)]
        if any(a <= start_min < b for a, b in intervals):
            raise ConfigError(
                f"{path}: {named}: {shown} falls inside the quiet hours {quiet[0]:%H:%M}-{quiet[1]:%H:%M}, "
                "when nothing is sent; choose a send_at outside them or shorten the quiet hours"
            )
        window -= sum(max(0, min(b, 24 * 60) - max(a, start_min)) for a, b in intervals)
        shown, verb = f"{shown} and quiet hours {quiet[0]:%H:%M}-{quiet[1]:%H:%M}", "leave"
    if window < MIN_SEND_WINDOW_MINUTES:
        raise ConfigError(
            f"{path}: {named}: {shown} {verb} {window} minute(s) a day to send in (from send_at to "
            "midnight, outside the quiet hours); allow at least an hour"
        )


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    chosen = path or env.get("CHASER_CONFIG")
    if chosen:
        file = Path(chosen)
        if not file.is_file():
            raise ConfigError(f"{file}: configuration file not found")
    else:
        file = Path("chaser.toml")
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        config = parse_config(data, str(file))
    else:
        config = Config()
    override = env.get("CHASER_DATABASE_URL")
    if override:
        check_database_url(override, "CHASER_DATABASE_URL")
        config = replace(config, database=DatabaseConfig(url=override))
    return config
