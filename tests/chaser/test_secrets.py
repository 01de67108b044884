"""The answer-link key: kept in the database, so every process and every folder signs alike."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from bot.links import answer_links, read_answer_token
from chaser.cli import main
from chaser.errors import ConfigError
from chaser.secrets import secret_key
from storage.db import head_revision, make_engine


def test_the_key_is_the_same_from_any_folder_and_no_file_is_written(engine: Engine, tmp_path: Path) -> None:
    keys = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        os.chdir(tmp_path / folder)
        keys.append(secret_key(engine, environ={}))
    assert keys[0] == keys[1] and len(keys[0]) >= 32
    assert list(tmp_path.rglob("*.key")) == []
    # A link signed by one process is read by another one on the same database.
    other = make_engine(str(engine.url.render_as_string(hide_password=False)))
    link = answer_links("http://x", keys[0], action_id=1, person_id=2, outbox_id=3)[0].url
    token = link.split("/answer/")[1].split("?")[0]
    assert read_answer_token(secret_key(other, environ={}), token, 60)["a"] == 1
    other.dispose()


def test_init_creates_the_key_and_adopts_the_file_earlier_versions_wrote(db_url: str, tmp_path: Path) -> None:
    Path("chaser-secret.key").write_text("an-old-key-from-version-0.1\n")
    runner = CliRunner()
    out = runner.invoke(main, ["init"], env={"CHASER_DATABASE_URL": db_url}, catch_exceptions=False).stdout
    assert "The answer-link key from chaser-secret.key is now kept in the database" in out
    engine = make_engine(db_url)
    assert secret_key(engine, environ={}) == "an-old-key-from-version-0.1"
    again = runner.invoke(main, ["init"], env={"CHASER_DATABASE_URL": db_url}, catch_exceptions=False).stdout
    assert again.endswith(f"is up to date (schema {head_revision(make_engine(db_url))}).\n")  # the key was created once, and kept
    engine.dispose()


def test_the_environment_wins_and_a_short_key_is_refused(engine: Engine, tmp_path: Path) -> None:
    assert secret_key(engine, environ={"CHASER_SECRET_KEY": "e" * 20}) == "e" * 20
    (tmp_path / "k").write_text("f" * 20 + "\n")
    assert secret_key(engine, environ={"CHASER_SECRET_KEY_FILE": str(tmp_path / "k")}) == "f" * 20
    with pytest.raises(ConfigError, match="CHASER_SECRET_KEY must be at least 16 characters"):
        secret_key(engine, environ={"CHASER_SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="CHASER_SECRET_KEY_FILE: cannot read"):
        secret_key(engine, environ={"CHASER_SECRET_KEY_FILE": str(tmp_path / "missing")})
