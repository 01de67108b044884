"""The key that signs one-click answer links.

From ``$CHASER_SECRET_KEY``, or the file named by ``$CHASER_SECRET_KEY_FILE``; on the embedded
default (neither set) a random key is created once in ``chaser-secret.key`` in the working
directory, readable only by its owner, so links keep working across restarts.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from chaser.errors import ConfigError

DEFAULT_FILE = Path("chaser-secret.key")


def secret_key(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("CHASER_SECRET_KEY"):
        return env["CHASER_SECRET_KEY"]
    named = env.get("CHASER_SECRET_KEY_FILE")
    path = Path(named) if named else DEFAULT_FILE
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) < 16:
            raise ConfigError(f"{path}: the secret key must be at least 16 characters")
        return value
    if named:
        raise ConfigError(f"CHASER_SECRET_KEY_FILE: {path} does not exist")
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value
