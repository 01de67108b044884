"""Configuration: defaults, overrides, and errors that name the key."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chaser.cli import main
from bot.channels.outbox_folder import OutboxFolder
from chaser.config import Config, load_config
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
        ('[scheduler]\nsweep_every_seconds = 0\n', "'scheduler.sweep_every_seconds' must be a whole number of seconds from 1 to 86400"),
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


# ---- values that would crash a sweep or mislead: refused at start, naming the key ----------

@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        ('[cadence]\nbefore_due = [1000000]\n', "cadence.before_due", "from 1 to 260"),
        ('[cadence]\nbefore_due = [0]\n', "cadence.before_due", "from 1 to 260"),
        ('[cadence]\noverdue_every = 100000000\n', "cadence.overdue_every", "from 0 to 260"),
        ('[cadence]\nescalate_after = 261\n', "cadence.escalate_after", "from 0 to 260"),
        ('[cadence]\nstale_after_days = 100000000000\n', "cadence.stale_after_days", "from 0 to 3660"),
        ('[[boards]]\nname = "B"\nschedule = "monthly on the last Thursday"\nrequest_before = 100000000\n',
         "boards[0].request_before", "from 0 to 260"),
        ('[scheduler]\nsweep_every_seconds = 100000000000000\n', "scheduler.sweep_every_seconds", "from 1 to 86400"),
        ('[scheduler]\ndispatch_every_seconds = 86401\n', "scheduler.dispatch_every_seconds", "from 1 to 86400"),
        ('[scheduler]\nlease_seconds = 100000000000000\n', "scheduler.lease_seconds", "from 1 to 86400"),
        ('[scheduler]\nmax_attempts = 1000\n', "scheduler.max_attempts", "from 1 to 100"),
        ('[scheduler]\nretry_base_seconds = 7200\n', "scheduler.retry_base_seconds", "from 1 to 3600"),
        ('[web]\nlink_days = 100000\n', "web.link_days", "from 1 to 3650"),
        ('[web]\nbase_url = "http://127.0.0.1:99999"\n', "web.base_url", "port must be a number from 1 to 65535"),
        ('[web]\nbase_url = "http://127.0.0.1:0"\n', "web.base_url", "port must be a number from 1 to 65535"),
        ('[web]\nbase_url = "ftp://council.example"\n', "web.base_url", "must be an http(s) URL"),
        ('[web]\nbase_url = "http://:8080"\n', "web.base_url", "is not a host name or IP address"),
        ('[web]\nbase_url = "http://chaser.example/?x=1"\n', "web.base_url", "must not have a query"),
        ('[database]\nurl = "nonsense://"\n', "database.url", "unknown scheme 'nonsense://'; known schemes: postgresql, sqlite"),
        ('[database]\nurl = "postgres://db/chaser"\n', "database.url", "known schemes: postgresql, sqlite"),
        ('[database]\nurl = "postgresql://db:99999/chaser"\n', "database.url", "port 99999 is not a port number"),
        ('[database]\nurl = "chaser.db"\n', "database.url", "is not a database URL such as sqlite:///FILE"),
        ('[channels.outbox_folder]\nsender = "not an email"\n', "channels.outbox_folder.sender", "must be one email address"),
        ('[channels.outbox_folder]\nsender = "a@council.example, b@council.example"\n', "channels.outbox_folder.sender",
         "must be one email address"),
        ('[channels.outbox_folder]\nfile_mode = 640\n', "channels.outbox_folder.file_mode", 'octal mode in quotes such as "0640"'),
        ('[channels.outbox_folder]\nfile_mode = "0999"\n', "channels.outbox_folder.file_mode", "octal mode"),
        ('[channels.outbox_folder]\nfile_mode = "0755"\n', "channels.outbox_folder.file_mode", "nobody execute"),
        ('[channels.outbox_folder]\nfile_mode = "0444"\n', "channels.outbox_folder.file_mode", "owner read and write"),
        ('[cadence]\nworking_days = ["monkey"]\n', "cadence.working_days", 'must list days such as ["mon", "tue"]'),
        ('[cadence]\nworking_days = ["mo"]\n', "cadence.working_days", "must list days"),
        ('[cadence]\nworking_days = [1]\n', "cadence.working_days", "must list days"),
        ('[cadence]\nquiet_hours = ["00:00", "23:59"]\n', "cadence.quiet_hours",
         "send_at 09:30 falls inside the quiet hours 00:00-23:59"),
        ('[cadence]\nsend_at = "23:59"\nquiet_hours = ["00:00", "23:59"]\n', "cadence.send_at' and 'cadence.quiet_hours",
         "leave 1 minute(s) a day to send in"),
        ('[cadence]\nsend_at = "07:00"\n', "cadence.send_at", "send_at 07:00 falls inside the quiet hours 18:00-08:00"),
        ('[cadence]\nsend_at = "17:30"\n', "cadence.send_at", "leave 30 minute(s) a day to send in"),
        ('[cadence]\nsend_at = "23:30"\nquiet_hours = []\n', "cadence.send_at", "leaves 30 minute(s) a day"),
        ('[plans."P".workstreams."W".cadence]\nquiet_hours = ["09:00", "10:00"]\n',
         "plans.'P'.workstreams.'W'.cadence.quiet_hours", "send_at 09:30 falls inside the quiet hours 09:00-10:00"),
    ],
)
def test_a_value_out_of_range_stops_a_command_with_one_line_naming_the_key(
    tmp_path: Path, content: str, key: str, problem: str
) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(content)
    database = f"sqlite:///{tmp_path / 'chaser.db'}"
    result = CliRunner().invoke(main, ["--config", str(path), "run", "--once", "--at", "2023-04-17T10:00"],
                                env={"CHASER_DATABASE_URL": database, "CHASER_SECRET_KEY": "k" * 32})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"chaser: {path}: '{key}'") and result.stderr.count("\n") == 1
    assert problem in result.stderr


def test_a_bad_database_url_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status"], env={"CHASER_DATABASE_URL": "nonsense://"})
    assert result.exit_code == 2
    assert result.stderr == ("chaser: CHASER_DATABASE_URL 'nonsense://': unknown scheme 'nonsense://'; known "
                             "schemes: postgresql, sqlite (such as sqlite:///FILE or postgresql://HOST/DATABASE)\n")


def test_a_password_in_a_bad_database_url_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text('[database]\nurl = "postgres://chaser:s3cret@db/chaser"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "s3cret" not in str(caught.value) and "chaser:***@db" in str(caught.value)


def test_values_at_the_edges_of_their_ranges_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(
        '[database]\nurl = "postgresql+psycopg://chaser@db.internal:65535/chaser"\n'
        '[cadence]\nbefore_due = [260, 1]\noverdue_every = 260\nescalate_after = 0\nstale_after_days = 3660\n'
        'working_days = ["Monday", "TUE", "wednesday", "sun"]\nsend_at = "07:00"\nquiet_hours = ["20:00", "07:00"]\n'
        '[plans."P".cadence]\nsend_at = "22:00"\nquiet_hours = []\n'
        '[scheduler]\nsweep_every_seconds = 86400\ndispatch_every_seconds = 1\nlease_seconds = 86400\n'
        'max_attempts = 100\nretry_base_seconds = 3600\n'
        '[channels.outbox_folder]\nsender = "Chaser <chaser@council.example>"\nfile_mode = "0640"\n'
        '[web]\nbase_url = "https://council.example:8443/chaser/"\nlink_days = 3650\n'
    )
    config = load_config(path, environ={})
    cadence = config.cadence_for("Any plan", None)
    assert (cadence.before_due, cadence.overdue_every, cadence.stale_after_days) == ((260, 1), 260, 3660)
    assert sorted(cadence.calendar.working_days) == [0, 1, 2, 6]
    assert str(config.cadence_for("P", None).calendar.send_at) == "22:00:00"
    folder = OutboxFolder.from_settings(config.channels.table("outbox_folder"), None)
    assert (folder.file_mode, folder.sender.name, folder.sender.address) == (0o640, "Chaser", "chaser@council.example")
    assert config.web_base_url == "https://council.example:8443/chaser"
    assert OutboxFolder.from_settings(Config().channels.table("outbox_folder"), None).file_mode is None  # the umask decides


# ---- a board's digest keys ---------------------------------------------------------------

BOARD = '[[boards]]\nname = "EDI Board"\nschedule = "monthly on the last Thursday"\n'


def test_a_board_reads_its_digest_keys(tmp_path: Path) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(BOARD + 'workstreams = ["Career Progression"]\ndigest_day = 3\n'
                    'recipients = ["clerk@council.example"]\nslack_channel = "#edi-board"\n'
                    'teams_webhook_env = "TEAMS_BOARD_WEBHOOK"\nspotlight = ["HR and Transparency", "Career Progression"]\n')
    board = load_config(path, environ={}).boards[0]
    assert (board.workstreams, board.digest_day, board.recipients) == (("Career Progression",), 3, ("clerk@council.example",))
    assert (board.slack_channel, board.teams_webhook_env) == ("#edi-board", "TEAMS_BOARD_WEBHOOK")
    assert (board.spotlight, board.spotlight_pin) == (("HR and Transparency", "Career Progression"), None)
    path.write_text(BOARD + 'spotlight = "Career Progression"\n')
    board = load_config(path, environ={}).boards[0]
    assert (board.spotlight, board.spotlight_pin, board.digest_day) == ((), "Career Progression", "first working day")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("digest_day = 29\n", "'boards[0].digest_day' must be \"first working day\" or a day of the month from 1 to 28"),
        ('digest_day = "last friday"\n', "'boards[0].digest_day' must be"),
        ('recipients = ["not-an-email"]\n', "'boards[0].recipients': 'not-an-email' is not an email address"),
        ('recipients = "clerk@council.example"\n', "'boards[0].recipients' must be a list of email addresses"),
        ('teams_webhook_env = "https://example.webhook.office.com/x"\n',
         "'boards[0].teams_webhook_env' must be the name of an environment variable"),
        ('slack_channel = "edi board"\n', "'boards[0].slack_channel' must be a channel"),
        ("spotlight = [1]\n", "'boards[0].spotlight' must be a workstream name (pinned) or a list of them"),
        ('workstreams = "Pay"\n', "'boards[0].workstreams' must be a list of workstream names"),
    ],
)
def test_bad_digest_keys_fail_at_start_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(BOARD + extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert message in str(caught.value)


def test_the_webhook_url_itself_is_refused_as_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "chaser.toml"
    path.write_text(BOARD + 'teams_webhook_env = "https://example.webhook.office.com/x"\n')
    with pytest.raises(ConfigError, match="the URL is a secret"):
        load_config(path, environ={})
