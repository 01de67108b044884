"""Configuration: read ``chaser.toml`` once into frozen, typed objects.

Where it comes from, first match wins: ``--config PATH``, ``$CHASER_CONFIG``, ``./chaser.toml``,
built-in defaults. ``$CHASER_DATABASE_URL`` overrides ``[database] url``. Unknown keys and bad
values fail at start with the key's name, so a typo never silently falls back to a default.
Secrets never live here; later channels read them from environment variables.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chaser.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///chaser.db"
DEFAULT_TIMEZONE = "Europe/London"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = DEFAULT_DATABASE_URL

    def __repr__(self) -> str:  # a URL may carry a password: never print it
        return f"DatabaseConfig(url={redact_url(self.url)!r})"


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    edi_lead: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    source: str = "built-in defaults"


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
    _check_keys(data, {"database", "edi_lead", "timezone"}, "", path)
    database = data.get("database", {})
    if not isinstance(database, dict):
        raise ConfigError(f"{path}: 'database' must be a table ([database])")
    _check_keys(database, {"url"}, "database.", path)
    url = _string(database, "url", "database.", path) or DEFAULT_DATABASE_URL

    edi_lead = _string(data, "edi_lead", "", path)
    if edi_lead is not None and not _EMAIL.match(edi_lead):
        raise ConfigError(f"{path}: 'edi_lead' must be an email address, got {edi_lead!r}")

    timezone = _string(data, "timezone", "", path) or DEFAULT_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: 'timezone' {timezone!r} is not an IANA time zone such as Europe/London") from None

    return Config(
        database=DatabaseConfig(url=url),
        edi_lead=edi_lead.lower() if edi_lead else None,
        timezone=timezone,
        source=path,
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
        config = Config(
            database=DatabaseConfig(url=override),
            edi_lead=config.edi_lead,
            timezone=config.timezone,
            source=config.source,
        )
    return config
