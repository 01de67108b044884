"""``chaser replies``: every answer that came in, on any channel, and what became of it."""
from __future__ import annotations

import click
from rich.table import Table

from chaser.cli.common import FORMAT, Context, console, emit_json, escape, handles_errors, local_text, pass_ctx
from storage.models import REPLY_OUTCOMES
from storage.statuses import STATUS_LABELS
from storage.tracker import list_replies


@click.command()
@click.option("--outcome", type=click.Choice(REPLY_OUTCOMES),
              help="only replies with this outcome (unclear and not_allowed need the EDI lead)")
@FORMAT
@pass_ctx
@handles_errors
def replies(ctx: Context, outcome: str | None, fmt: str) -> None:
    """Answers received (web form, email, Slack, Teams, chaser update), oldest first, with what
    was recorded or why nothing was."""
    with ctx.session() as session:
        rows = list_replies(session, outcome)
    if fmt == "json":
        emit_json([r.as_json() for r in rows])
        return
    if not rows:
        click.echo("No replies" + (f" with outcome {outcome}." if outcome else " yet."))
        return
    table = Table(title=f"{len(rows)} repl{'y' if len(rows) == 1 else 'ies'}", title_justify="left")
    for name in ("id", "received", "via", "from", "actions", "outcome", "what"):
        table.add_column(name, overflow="fold")
    for r in rows:
        said = [STATUS_LABELS.get(r.status, r.status)] if r.status else []
        said += [f"note: {r.note}"] if r.note else []
        said += [f"due: {r.due}"] if r.due else []
        what = "; ".join(said)
        if r.detail:
            what = f"{what} ({r.detail})" if what else r.detail
        table.add_row(str(r.id), local_text(r.received_at, ctx.config.timezone) or "", r.via, escape(r.sender),
                      escape(", ".join(r.refs)), r.outcome, escape(what))
    console().print(table)


COMMANDS = (replies,)
