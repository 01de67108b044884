"""The outbox: what is queued, sent, failed and parked, and sending a message again."""
from __future__ import annotations

import click
from rich.table import Table

from chaser.cli.common import AT, FORMAT, Context, console, emit_json, escape, handles_errors, pass_ctx
from storage.tracker import list_outbox, retry_message

STATES = ("queued", "sending", "sent", "failed", "parked")


@click.group(invoke_without_command=True)
@click.option("--state", type=click.Choice(STATES), help="only this state")
@FORMAT
@click.pass_context
@handles_errors
def outbox(click_ctx: click.Context, state: str | None, fmt: str) -> None:
    """Messages queued, sent, failed and parked, with the nudges each one carries."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.session() as session:
        rows = list_outbox(session, state)
    if fmt == "json":
        emit_json([r.as_json() for r in rows])
        return
    if not rows:
        click.echo("The outbox is empty" + (f" of {state} messages." if state else "."))
        return
    table = Table(title=f"{len(rows)} message(s)", title_justify="left")
    for name in ("id", "to", "state", "tries", "actions", "note"):
        table.add_column(name, overflow="fold")
    for r in rows:
        note = r.last_error or (f"sent {r.sent_at.isoformat()[:16]}" if r.sent_at
                                else f"next try {r.next_attempt_at.isoformat()[:16]}")
        table.add_row(str(r.id), escape(r.person), r.state, str(r.attempts), escape(", ".join(r.refs)), escape(note))
    console().print(table)


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@AT
@pass_ctx
@handles_errors
def outbox_retry(ctx: Context, outbox_id: int, at_text: str | None) -> None:
    """Queue a parked (or failed) message again, with a fresh set of attempts."""
    now = ctx.now(at_text)
    with ctx.session() as session:
        retry_message(session, outbox_id, now)
    click.echo(f"Queued outbox message {outbox_id} again.")


COMMANDS = (outbox,)
