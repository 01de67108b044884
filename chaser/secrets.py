"""The key that signs one-click answer links.

From ``$CHASER_SECRET_KEY``, or the file named by ``$CHASER_SECRET_KEY_FILE``; otherwise it is
kept in the database itself (the ``settings`` table, created by ``chaser init``), so every
process sharing the database signs alike and the working directory changes nothing. Links
keep working across restarts, ``cd`` and a second instance on the same PostgreSQL.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import Engine

from chaser.errors import ConfigError
from storage.settings import LINK_KEY, get_or_create_setting

# Where Chaser 0.1 kept the generated key: adopted by ``chaser init`` so links already sent keep working.
LEGACY_FILE = Path("chaser-secret.key")
MIN_LENGTH = 16


def secret_key(engine: Engine, environ: dict[str, str] | None = None) -> str:
    """The link key: from the environment when set there, else the database's (created if missing)."""
    env = os.environ if environ is None else environ
    if env.get("CHASER_SECRET_KEY"):
        value = env["CHASER_SECRET_KEY"]
        if len(value) < MIN_LENGTH:
            raise ConfigError(f"CHASER_SECRET_KEY must be at least {MIN_LENGTH} characters")
        return value
    named = env.get("CHASER_SECRET_KEY_FILE")
    if named:
        path = Path(named)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"CHASER_SECRET_KEY_FILE: cannot read {path} ({exc})") from None
        if len(value) < MIN_LENGTH:
            raise ConfigError(f"{path}: the secret key must be at least {MIN_LENGTH} characters")
        return value
    return ensure_link_key(engine)[0]


def ensure_link_key(engine: Engine, legacy: Path | None = None) -> tuple[str, str | None]:
    """The database's link key, creating it if missing; and how it was created this time
    (``"generated"``, ``"adopted"`` from the ``legacy`` file, or None when it already existed)."""
    adopted = None
    if legacy is not None and legacy.is_file():
        text = legacy.read_text(encoding="utf-8").strip()
        adopted = text if len(text) >= MIN_LENGTH else None
    value, created = get_or_create_setting(engine, LINK_KEY, lambda: adopted or secrets.token_urlsafe(32))
    if not created:
        return value, None
    return value, "adopted" if adopted and value == adopted else "generated"
