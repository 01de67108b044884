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


def test_cadence_defaults_match_what_councils_expect() -> None:
    cadence = load_config(environ={}).cadence_for("Any plan", None)
    assert (cadence.before_due, cadence.on_due, cadence.overdue_every, cadence.escalate_after, cadence.stale_after_days) == (
        (10, 2), True, 5, 10, 30)
    cal = cadence.calendar
    assert (cal.timezone, str(cal.send_at), cal.holidays, sorted(cal.working_days)) == (
        "Europe/London", "09:30:00", "england-and-wales", [0, 1, 2, 3, 4])


def test_cadence_is_overridden_per_plan_and_per_workstream(tmp_path: Path) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(
        '[cadence]\nsend_at = "10:00"\n'
        '[plans."EDI Plan".cadence]\nbefore_due = [5]\n'
        '[plans."EDI Plan".workstreams."Pay".cadence]\noverdue_every = 2\nworking_days = ["mon", "wed"]\n'
    )
    config = load_config(path, environ={})
    other, plan, pay = (config.cadence_for(p, w) for p, w in (("Other", None), ("EDI Plan", "Culture"), ("EDI Plan", "Pay")))
    assert (other.before_due, str(other.calendar.send_at)) == ((10, 2), "10:00:00")
    assert (plan.before_due, plan.overdue_every) == ((5,), 5)
    assert (pay.before_due, pay.overdue_every, sorted(pay.calendar.working_days)) == ((5,), 2, [0, 2])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[cadence]\nbefore_due = "10"\n', "'cadence.before_due' must be a list of working days"),
        ('[cadence]\nsend_at = "9.30"\n', "'cadence.send_at' must be a time written HH:MM"),
        ('[cadence]\nholidays = "wales"\n', "'cadence.holidays' must be one of"),
        ('[cadence]\noverdue_every = -1\n', "'cadence.overdue_every' must be a whole number"),
        ('[cadence]\nescalate = 3\n', "unknown key 'cadence.escalate'"),
        ('[plans."P".cadence]\nstale_days = 3\n', "unknown key 'plans.'P'.cadence.stale_days'"),
        ('[plans."P".workstreams."W".cadence]\nworking_days = ["funday"]\n', "working_days' must list days"),
        ('[[boards]]\nname = "EDI Board"\nschedule = "whenever"\n', "'boards[0].schedule'"),
        ('[[boards]]\nschedule = "monthly on the last Thursday"\n', "'boards[0].name' is required"),
        ('[scheduler]\nsweep_every_seconds = 0\n', "'scheduler.sweep_every_seconds' must be a whole number of at least 1"),
        ('[channels]\ndefault = "pigeon"\n', "'channels.default' 'pigeon' is not one of"),
        ('[web]\nbase_url = "localhost"\n', "'web.base_url' must be an http(s) URL"),
    ],
)
def test_bad_reminder_settings_fail_at_start_naming_the_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert message in str(caught.value)


def test_the_shipped_example_and_demo_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    example = load_config(root / "config.example.toml", environ={})
    assert example.edi_lead == "edi.lead@council.example.gov.uk"
    demo = load_config(root / "samples" / "chaser.toml", environ={})
    assert [b.name for b in demo.boards] == ["EDI Board"]
