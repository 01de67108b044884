"""How a command ends when something goes wrong: the user's mistake, or a service's failure."""
from __future__ import annotations

import click
from click.testing import CliRunner

from bot.channels.base import ChannelError
from chaser.cli.common import handles_errors
from chaser.errors import NotFound


def command_raising(exc: Exception) -> click.Command:
    @click.command()
    @handles_errors
    def failing() -> None:
        raise exc

    return failing


def test_a_failed_delivery_is_a_service_failure_not_the_users_mistake() -> None:
    result = CliRunner().invoke(command_raising(ChannelError("SMTP 451: try again later", retry_after=60)))
    assert result.exit_code == 1
    assert result.stderr == ("chaser: delivery failed: SMTP 451: try again later (a channel could not send; this is "
                             "not a problem with the command or its input: see 'chaser outbox' and 'chaser status')\n")


def test_a_problem_the_user_can_fix_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(command_raising(NotFound("no action with ref 'ZZ9'")))
    assert (result.exit_code, result.stderr) == (2, "chaser: no action with ref 'ZZ9'\n")
