"""Configuration: defaults, overrides, and errors that name the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from chaser.config import load_config
from chaser.errors import ConfigError


def test_defaults_with_no_file_use_sqlite_in_the_working_directory() -> None:
    config = load_config(environ={})
    assert (config.database.url, config.edi_lead, config.timezone) == ("sqlite:///chaser.db", None, "Europe/London")


def test_chaser_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    Path("chaser.toml").write_text('edi_lead = "Lead@Council.example"\n[database]\nurl = "sqlite:///x.db"\n')
    config = load_config(environ={})
    assert (config.edi_lead, config.database.url) == ("lead@council.example", "sqlite:///x.db")


def test_the_environment_overrides_the_database_url(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "sqlite:///x.db"\n')
    config = load_config(environ={"CHASER_CONFIG": str(path), "CHASER_DATABASE_URL": "postgresql://db/chaser"})
    assert config.database.url == "postgresql://db/chaser"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('databse = 1\n', "unknown key 'databse'"),
        ('[database]\nuri = "x"\n', "unknown key 'database.uri'"),
        ('edi_lead = "not an email"\n', "'edi_lead' must be an email address"),
        ('timezone = "Mars/Olympus"\n', "'timezone' 'Mars/Olympus' is not an IANA time zone"),
        ('[database]\nurl = 5\n', "'database.url' must be a string"),
        ('edi_lead = \n', "not valid TOML"),
    ],
)
def test_bad_config_fails_naming_the_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(str(path))


def test_a_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_a_password_in_the_database_url_is_never_shown() -> None:
    from chaser.config import DatabaseConfig

    assert "s3cret" not in repr(DatabaseConfig(url="postgresql://chaser:s3cret@db/chaser"))
