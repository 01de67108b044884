"""``chaser teams``: who the Teams bot can reach (``status``)."""
from __future__ import annotations

import click
from rich.table import Table

from chaser.cli.common import FORMAT, Context, console, emit_json, escape, handles_errors, pass_ctx
from storage.people import teams_reach


@click.group()
def teams() -> None:
    """Microsoft Teams: who the Chaser bot can reach."""


@teams.command("status")
@FORMAT
@pass_ctx
@handles_errors
def status(ctx: Context, fmt: str) -> None:
    """Owners of open actions the Teams bot cannot reach yet (the app is not installed for them,
    or they blocked or removed it), then those it can. Until the bot can reach someone, their
    messages go to the next channel in [channels] order."""
    with ctx.session() as session:
        rows = [{"name": r.person.name, "email": r.person.email, "open_actions": r.open_actions,
                 "reachable": r.reachable, "reason": r.reason} for r in teams_reach(session)]
    if fmt == "json":
        emit_json(rows)
        return
    out = console()
    waiting = [r for r in rows if not r["reachable"]]
    if not rows:
        out.print("Nobody answers for an open action yet.")
        return
    table = Table(title=f"Teams: {len(waiting)} of {len(rows)} owners cannot be reached by the bot yet",
                  title_justify="left")
    for name in ("name", "email", "open actions", "teams"):
        table.add_column(name)
    for r in rows:
        where = escape(r["reason"]) if r["reachable"] else f"[red]{escape(r['reason'])}[/red]"
        table.add_row(escape(r["name"]), escape(r["email"]), str(r["open_actions"]), where)
    out.print(table)
    if waiting:
        out.print("Install the Chaser app for them (Teams admin centre, or `chaser teams install`); "
                  "meanwhile their reminders go to the next channel.")


COMMANDS = [teams]
