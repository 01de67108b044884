"""Setting up: ``chaser init`` creates or upgrades the database and the answer-link key."""
from __future__ import annotations

import click

from chaser.cli.common import Context, handles_errors, pass_ctx
from chaser.config import redact_url
from chaser.runtime import set_up_database
from chaser.secrets import LEGACY_FILE


@click.command()
@pass_ctx
@handles_errors
def init(ctx: Context) -> None:
    """Create the database schema, or upgrade it to this version of Chaser."""
    done = set_up_database(ctx.engine(require_schema=False), legacy=LEGACY_FILE)
    before, after = done.schema_before, done.schema_after
    where = redact_url(ctx.config.database.url)
    if before is None:
        click.echo(f"Created the Chaser database at {where} (schema {after}).")
    elif before != after:
        click.echo(f"Upgraded {where} from schema {before} to {after}.")
    else:
        click.echo(f"{where} is up to date (schema {after}).")
    if done.link_key == "adopted":
        click.echo(f"The answer-link key from {LEGACY_FILE} is now kept in the database; links already sent "
                   "keep working and the file is no longer read.")
    elif done.link_key == "generated":
        click.echo("Created the key that signs answer links; it is kept in the database "
                   "(CHASER_SECRET_KEY or CHASER_SECRET_KEY_FILE override it).")


COMMANDS = (init,)
