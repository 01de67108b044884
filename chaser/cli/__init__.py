"""The ``chaser`` command line.

Human-readable tables by default; ``--format json`` where scripts need it. Every problem a user
can fix ends with one line on stderr starting ``chaser:`` and exit status 2; nothing is written
when a command fails. A message that could not be delivered is not such a problem: it exits 1.

One module per command group, each listing its click commands in ``COMMANDS``; shared pieces
(the :class:`~chaser.cli.common.Context`, ``handles_errors``, ``emit_json``, the ``--format``,
``--plan`` and ``--at`` options) are in :mod:`chaser.cli.common`. To add a command: write
``chaser/cli/<group>.py`` with ``@click.command()`` functions decorated ``@pass_ctx`` and
``@handles_errors`` that parse their options, call one app-layer function and format its
result, end it with ``COMMANDS = (...)``, and add the module to :data:`MODULES` below.
"""
from __future__ import annotations

import click

from chaser.cli import database, digest, outbox, people, plans, replies, run, teams
from chaser.cli.common import Context

MODULES = (database, plans, people, run, outbox, replies, digest, teams)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar="CHASER_CONFIG",
              help="configuration file (default: ./chaser.toml, else built-in defaults)")
@click.version_option(package_name="chaser")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Chaser keeps action plans moving: import the plan, see who owns what, record updates."""
    # A test may hand in a Context of its own (main(obj=Context(clock=...))) to set "now".
    given = ctx.obj if isinstance(ctx.obj, Context) else Context()
    ctx.obj = Context(config_path, clock=given.clock)


for _module in MODULES:
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
