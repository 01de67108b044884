"""Plans and their actions: import, actions, show, export, update, snooze, pause, resume."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from chaser.cli.common import (
    AT,
    FORMAT,
    PLAN,
    Context,
    console,
    day,
    emit_json,
    escape,
    handles_errors,
    parse_at,
    pass_ctx,
)
from bot.inbound import Reply, handle_reply
from chaser.errors import InvalidValue, NotAllowed, NotFound
from storage.controls import snooze as snooze_action
from storage.exporters import export_plan
from storage.importers.load import import_plan_file
from storage.importers.parse import read_status
from storage.models import STATUSES
from storage.people import find_person
from storage.tracker import (
    UNKNOWN,
    ActionDetail,
    ActionSummary,
    action_detail,
    find_action,
    find_plan,
    list_actions,
    set_plan_paused,
)
from storage.updates import current_state

STATUS_STYLE = {"green": "green", "amber": "yellow", "red": "red", "complete": "blue", "not_started": "dim"}


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@PLAN
@click.option("--dry-run", is_flag=True, help="read and check the file, report what would change, write nothing")
@FORMAT
@pass_ctx
@handles_errors
def import_cmd(ctx: Context, file: Path, plan_name: str | None, dry_run: bool, fmt: str) -> None:
    """Import a plan from a Word (.docx), Excel (.xlsx) or CSV file.

    Importing the same file again changes nothing; an edited file updates only what changed.
    """
    engine = ctx.engine()
    with progress_bar(enabled=fmt == "table" and sys.stderr.isatty()) as progress:
        result = import_plan_file(
            engine, file, plan_name=plan_name, timezone=ctx.config.timezone, dry_run=dry_run, progress=progress
        )
    if fmt == "json":
        emit_json(result.as_json())
        return
    out = console()
    verb = "Would import" if dry_run else "Imported"
    out.print(f"{verb} {result.file} into plan [bold]{escape(result.plan)}[/bold]")
    out.print(
        f"  {result.workstreams} workstreams, {result.groups} groups, {result.actions} actions: "
        f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged"
    )
    if result.warnings:
        table = Table(title=f"{len(result.warnings)} warning(s): nothing was dropped, check these cells", title_justify="left")
        table.add_column("where")
        table.add_column("problem")
        for w in result.warnings:
            table.add_row(escape(w.where), escape(w.message))
        out.print(table)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("storing actions"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task("import", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@click.command()
@PLAN
@click.option("--status", "status_filter", type=click.Choice([*STATUSES, UNKNOWN]),
              help="only actions with this current status (unknown: never reported)")
@FORMAT
@pass_ctx
@handles_errors
def actions(ctx: Context, plan_name: str | None, status_filter: str | None, fmt: str) -> None:
    """List actions with their owners, due dates and current status."""
    with ctx.session() as session:
        rows = list_actions(session, find_plan(session, plan_name), status_filter)
    if fmt == "json":
        emit_json([a.as_json() for a in rows])
        return
    if not rows:
        click.echo("No actions" + (f" with status {status_filter}" if status_filter else "") + ".")
        return
    out = console()
    by_plan: dict[str, list[ActionSummary]] = {}
    for action in rows:
        by_plan.setdefault(action.plan, []).append(action)
    for plan, plan_rows in by_plan.items():
        table = Table(title=escape(f"{plan}: {len(plan_rows)} action(s)"), title_justify="left", title_style="bold")
        # Rich shrinks every column alike when a table is too wide, squeezing refs and statuses
        # out first; so give the two text columns what is left of the terminal explicitly.
        cells = [(a.ref, _due_cell(a)) for a in plan_rows]
        ref_w = max(3, *(len(r) for r, _ in cells))
        due_w = max(3, *(len(d) for _, d in cells))
        spare = max(24, out.width - ref_w - due_w - 11 - 16)
        action_w = min(64, max(12, spare * 3 // 5))
        owners_w = min(36, max(10, spare - action_w))
        table.add_column("ref", no_wrap=True, width=ref_w)
        table.add_column("action", no_wrap=True, overflow="ellipsis", width=action_w)
        table.add_column("owners", no_wrap=True, overflow="ellipsis", width=owners_w)
        table.add_column("due", no_wrap=True, width=due_w)
        table.add_column("status", no_wrap=True, width=11)
        for action in plan_rows:
            status = action.status or UNKNOWN
            table.add_row(
                escape(action.ref),
                escape(action.title),
                escape(", ".join(action.owners) or "-"),
                escape(_due_cell(action)),
                f"[{STATUS_STYLE.get(status, 'dim')}]{status}[/]",
            )
        out.print(table)


def _due_cell(action: ActionSummary) -> str:
    if action.due is None:
        return "recurring" if action.recurring else (action.due_text or "-")
    text = action.due.isoformat()
    if action.due_precision != "day" and action.due_text and len(action.due_text) <= 16:
        text += f" ({action.due_text})"
    return text


@click.command("export")
@click.argument("plan_name", metavar="PLAN")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write: .xlsx or .csv, the format the plan was imported from")
@click.option("--template", type=click.Path(dir_okay=False, path_type=Path),
              help="a newer copy of the council's file to write into (default: the file it was imported from)")
@AT
@FORMAT
@pass_ctx
@handles_errors
def export_cmd(ctx: Context, plan_name: str, out: Path, template: Path | None, at_text: str | None, fmt: str) -> None:
    """Write the plan back into the council's own file, with every owner's answers filled in."""
    at = parse_at(at_text, ctx.config.timezone) if at_text else None
    result = export_plan(ctx.engine(), plan_name, out, template=template, at=at)
    if fmt == "json":
        emit_json(result.as_json())
        return
    click.echo(f"Wrote {out}: {result.written} of {result.actions} action(s) updated ({result.cells} cell(s)) "
               f"from {result.source}.")
    for column in result.columns_added:
        click.echo(f"  added column {column}")
    if result.not_written:
        click.echo(f"  {len(result.not_written)} cell(s) could not be written (a row shorter than its header): "
                   + ", ".join(result.not_written[:5]), err=True)
    if result.not_in_tracker:
        click.echo(f"  {len(result.not_in_tracker)} row(s) of the file are not in the tracker (left as they are): "
                   + ", ".join(result.not_in_tracker[:5]))


@click.command()
@click.argument("ref")
@PLAN
@FORMAT
@pass_ctx
@handles_errors
def show(ctx: Context, ref: str, plan_name: str | None, fmt: str) -> None:
    """Everything about one action, with its update history."""
    with ctx.session() as session:
        detail = action_detail(session, find_action(session, ref, plan_name))
    if fmt == "json":
        emit_json(detail.as_json())
        return
    out = console()
    out.print(f"[bold]{escape(detail.ref)}[/bold]  {escape(detail.title)}")
    rows = [
        ("plan", detail.plan), ("workstream", detail.workstream), ("objective", detail.objective),
        ("lead sponsor", detail.lead_sponsor),
        ("group", f"{detail.group} {detail.group_title or ''}".strip() if detail.group else None),
        ("description", detail.description), ("owners", ", ".join(detail.owners) or None),
        ("people", ", ".join(detail.people) or "nobody in the directory holds these roles yet"),
        ("status", detail.status or UNKNOWN), ("latest note", detail.note),
        ("start", f"{detail.start.isoformat()} ({detail.start_text})" if detail.start else detail.start_text),
        ("due", _due_line(detail)),
        ("key dates", ", ".join(f"{k['date']} ({k['text']})" for k in detail.key_dates) or None),
        ("dependencies", detail.dependencies), ("resources", detail.resources),
        ("success measures", detail.success_measures), ("next steps", detail.next_steps),
        ("read from", detail.source),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, value in rows:
        if value:
            grid.add_row(label, escape(str(value)))
    out.print(grid)
    if detail.history:
        table = Table(title="history", title_justify="left")
        for name in ("when", "by", "via", "status", "note / due"):
            table.add_column(name)
        for u in detail.history:
            change = f"{u.old_status or '-'} → {u.new_status}" if u.new_status else ""
            extra = " ".join(x for x in (u.note or "", f"due {u.revised_due_text}" if u.revised_due_text else "",
                                         f"owners {u.owners_change}" if u.owners_change else "") if x)
            table.add_row(u.at.strftime("%Y-%m-%d %H:%M"), escape(u.by), u.channel, change, escape(extra))
        out.print(table)


def _due_line(detail: ActionDetail) -> str:
    if detail.due:
        text = detail.due.isoformat()
        if detail.due_text and detail.due_text != text:
            text += f" (written {detail.due_text!r}, {detail.due_precision} precision)"
    elif detail.recurring:
        text = f"recurring ({detail.recurrence or detail.due_text}), no deadline"
    else:
        text = f"no date ({detail.due_text!r})" if detail.due_text else "no date"
    return text


@click.command()
@click.argument("ref")
@click.option("--status", help="G/A/R/C or green, amber, red, complete, not_started")
@click.option("--note", help="a progress note")
@click.option("--due", "due_text", metavar="DATE", help="a revised due date, written any way a plan writes one")
@click.option("--by", "by_email", required=True, metavar="EMAIL", help="who is making the update")
@PLAN
@click.option("--at", "at_text", metavar="ISO_DATETIME",
              help="record it as made at this past time, e.g. to load last year's highlight reports "
                   "(no offset: the plan's local time)")
@pass_ctx
@handles_errors
def update(ctx: Context, ref: str, status: str | None, note: str | None, due_text: str | None, by_email: str,
           plan_name: str | None, at_text: str | None) -> None:
    """Record a status, note or revised due date, as an owner replying would (through the one
    inbound path: it is listed by 'chaser replies', and open chat messages show it).

    With --at the update (and its reply) is dated then, so a board report for that month shows it.
    """
    now = ctx.clock()
    at = parse_at(at_text, ctx.config.timezone) if at_text is not None else now
    if at > now:
        # A future update would change a report before its time and silently win over every
        # real answer given until then.
        raise InvalidValue(f"--at {at_text!r} is in the future; --at records an update made in the past")
    status_value = None
    if status is not None:
        status_value = status if status in STATUSES else read_status(status)
        if status_value is None:
            raise InvalidValue(f"--status {status!r} is not one of G, A, R, C, {', '.join(STATUSES)}")
    with ctx.session() as session:
        action = find_action(session, ref, plan_name)
        person = find_person(session, by_email)
        if person is None:
            raise NotFound(f"--by {by_email}: nobody with that email in the people directory (chaser people import)")
        result = handle_reply(session, Reply(
            via="cli", sender=person.email, person_id=person.id, received_at=at, action_ids=(action.id,),
            status=status_value, note=note, due_text=due_text), ctx.config)
        state = current_state(session, action)
    # The reply is kept whatever became of it (committed above); a refusal is still an error here.
    if result.outcome == "not_allowed":
        raise NotAllowed(result.detail or "not allowed")
    if not result.applied:
        raise InvalidValue(result.detail or result.outcome)
    click.echo(
        f"Recorded for {action.ref}: status {state.status or UNKNOWN}, due "
        f"{state.due.isoformat() if state.due else state.due_text or 'none'}."
    )


@click.command()
@click.argument("ref")
@click.option("--until", "until", required=True, metavar="DATE", help="last day without nudges, or 'off'")
@PLAN
@pass_ctx
@handles_errors
def snooze(ctx: Context, ref: str, until: str, plan_name: str | None) -> None:
    """No nudges for one action up to and including a date."""
    until_day = None if until.lower() in ("off", "none") else day(until, "--until")
    with ctx.session() as session:
        action = find_action(session, ref, plan_name)
        snooze_action(session, action, until_day)
    click.echo(f"{action.ref} snoozed until {until_day.isoformat()}." if until_day else f"{action.ref} is no longer snoozed.")


@click.command()
@click.argument("plan_name", metavar="PLAN")
@pass_ctx
@handles_errors
def pause(ctx: Context, plan_name: str) -> None:
    """Stop every nudge for a plan until it is resumed."""
    with ctx.session() as session:
        count = set_plan_paused(session, plan_name, True)
    click.echo(f"Paused {plan_name!r}: its {count} action(s) get no nudges until 'chaser resume'.")


@click.command()
@click.argument("plan_name", metavar="PLAN")
@pass_ctx
@handles_errors
def resume(ctx: Context, plan_name: str) -> None:
    """Resume nudges for a paused plan (one catch-up per action, not a flood)."""
    with ctx.session() as session:
        count = set_plan_paused(session, plan_name, False)
    click.echo(f"Resumed {plan_name!r}: {count} action(s) are checked at the next sweep.")


COMMANDS = (import_cmd, actions, show, export_cmd, update, snooze, pause, resume)
