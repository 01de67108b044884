"""The people directory: who holds each role, importing the directory, leave and cover."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from chaser.cli.common import FORMAT, Context, console, day, emit_json, escape, handles_errors, pass_ctx
from chaser.errors import NotFound
from storage.controls import set_away
from storage.people import find_person, role_report
from bot.channels import CHANNELS
from storage.tracker import import_people


@click.group(invoke_without_command=True)
@FORMAT
@click.pass_context
@handles_errors
def people(click_ctx: click.Context, fmt: str) -> None:
    """Each role named in the plans, who holds it, and the roles nobody holds yet."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.session() as session:
        data = [
            {"role": r.role, "actions": r.actions, "people": [{"name": p.name, "email": p.email} for p in r.people]}
            for r in role_report(session)
        ]
    if fmt == "json":
        emit_json(data)
        return
    out = console()
    table = Table(title="roles and the people who hold them", title_justify="left")
    for name in ("role", "actions", "people"):
        table.add_column(name)
    for r in data:
        who = ", ".join(f"{p['name']} <{p['email']}>" for p in r["people"]) or "[red]nobody yet[/red]"
        table.add_row(escape(r["role"]), str(r["actions"]), who if not r["people"] else escape(who))
    out.print(table)
    unheld = [r for r in data if not r["people"] and r["actions"]]
    if unheld:
        out.print(f"{len(unheld)} role(s) own actions but nobody holds them yet: "
                  "add them to the directory CSV and run 'chaser people import FILE.csv'.")


@people.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
@handles_errors
def people_import(ctx: Context, file: Path) -> None:
    """Import the people directory: name, email, roles (separated by ;), manager, slack_id, teams_id,
    delegate, away_until, cover, channel (the person's own channel, ahead of [channels] order)."""
    with ctx.session() as session:
        result = import_people(session, file, channels=CHANNELS)
    click.echo(
        f"People from {file}: {result.created} created, {result.updated} updated, {result.unchanged} unchanged"
        + (f"; new roles: {', '.join(result.roles_created)}" if result.roles_created else "")
    )


@people.command("away")
@click.argument("email")
@click.option("--until", "until", required=True, metavar="DATE", help="last day away, or 'back' to clear")
@click.option("--cover", "cover_email", metavar="EMAIL", help="who gets their nudges meanwhile")
@pass_ctx
@handles_errors
def people_away(ctx: Context, email: str, until: str, cover_email: str | None) -> None:
    """Record leave: nudges go to the cover, or wait until the first working day back."""
    until_day = None if until.lower() in ("back", "none", "off") else day(until, "--until")
    with ctx.session() as session:
        person = find_person(session, email)
        if person is None:
            raise NotFound(f"{email}: nobody with that email in the people directory")
        cover = None
        if cover_email:
            cover = find_person(session, cover_email)
            if cover is None:
                raise NotFound(f"--cover {cover_email}: nobody with that email in the people directory")
        count = set_away(session, person, until_day, cover)
    if until_day is None:
        click.echo(f"{person.name} is back: nudges go to them again.")
    else:
        where = f"go to {cover.name}" if cover else "wait until they are back"
        click.echo(f"{person.name} is away until {until_day.isoformat()}: nudges for their {count} action(s) {where}.")


COMMANDS = (people,)
