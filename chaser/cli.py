"""The ``chaser`` command line.

Human-readable tables by default; ``--format json`` where scripts need it. Every problem a user
can fix ends with one line on stderr starting ``chaser:`` and exit status 2; nothing is written
when a command fails.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from chaser.config import Config, load_config, redact_url
from chaser.errors import ChaserError, InvalidValue, NotFound
from storage.dates import parse_when
from storage.db import explain, make_engine, require_current_schema, session_factory, upgrade
from storage.importers.parse import read_status, ref_key
from storage.models import STATUSES, Action, ActionGroup, ActionOwner, Outbox, Person, Plan, StatusUpdate, Workstream
from storage.people import find_person, holders, import_directory, owners_of, role_report
from storage.updates import CurrentState, current_states, record_update

F = TypeVar("F", bound=Callable[..., Any])
FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="table for people, json for scripts")
PLAN = click.option("--plan", "plan_name", metavar="NAME", help="the plan, when more than one is imported")
AT = click.option("--at", "at_text", metavar="ISO_DATETIME",
                  help="act as if it were this time (no offset: the plan's local time)")


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def engine(self, *, require_schema: bool = True) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.config.database.url)
            if require_schema:
                require_current_schema(self._engine)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_factory(self.engine())() as session, session.begin():
            yield session

    @property
    def edi_leads(self) -> list[str]:
        return [self.config.edi_lead] if self.config.edi_lead else []


def handles_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ChaserError as exc:
            click.echo(f"chaser: {exc}", err=True)
            sys.exit(2)
        except OperationalError as exc:  # locked after the bounded wait, read-only, gone away
            click.echo(f"chaser: {explain(exc)}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def console() -> Console:
    # Wide enough for the tables when piped into a file or a pager.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar="CHASER_CONFIG",
              help="configuration file (default: ./chaser.toml, else built-in defaults)")
@click.version_option(package_name="chaser")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Chaser keeps action plans moving: import the plan, see who owns what, record updates."""
    ctx.obj = Context(config_path)


pass_ctx = click.make_pass_decorator(Context)


@main.command()
@pass_ctx
@handles_errors
def init(ctx: Context) -> None:
    """Create the database schema, or upgrade it to this version of Chaser."""
    from chaser.secrets import LEGACY_FILE, ensure_link_key

    engine = ctx.engine(require_schema=False)
    before, after = upgrade(engine)
    where = redact_url(ctx.config.database.url)
    if before is None:
        click.echo(f"Created the Chaser database at {where} (schema {after}).")
    elif before != after:
        click.echo(f"Upgraded {where} from schema {before} to {after}.")
    else:
        click.echo(f"{where} is up to date (schema {after}).")
    _, how = ensure_link_key(engine, legacy=LEGACY_FILE)
    if how == "adopted":
        click.echo(f"The answer-link key from {LEGACY_FILE} is now kept in the database; links already sent "
                   "keep working and the file is no longer read.")
    elif how == "generated":
        click.echo("Created the key that signs answer links; it is kept in the database "
                   "(CHASER_SECRET_KEY or CHASER_SECRET_KEY_FILE override it).")


@main.command("import")
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
    from storage.importers.load import import_plan_file

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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("storing actions"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task("import", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def find_plan(session: Session, name: str | None) -> Plan | None:
    if name is None:
        return None
    plan = session.scalar(select(Plan).where(Plan.name == name))
    if plan is None:
        names = ", ".join(repr(n) for n in session.scalars(select(Plan.name).order_by(Plan.name))) or "none yet"
        raise NotFound(f"no plan named {name!r} (plans: {names})")
    return plan


def load_actions(session: Session, plan: Plan | None) -> list[Action]:
    query = (
        select(Action)
        .options(
            selectinload(Action.owners).selectinload(ActionOwner.role),
            selectinload(Action.workstream),
            selectinload(Action.group),
            selectinload(Action.plan),
        )
        .order_by(Action.plan_id, Action.position)
    )
    if plan is not None:
        query = query.where(Action.plan_id == plan.id)
    return list(session.scalars(query))


def action_json(action: Action, state: CurrentState, people: list[str]) -> dict[str, Any]:
    return {
        "ref": action.ref,
        "title": action.title,
        "plan": action.plan.name,
        "workstream": action.workstream.name if action.workstream else None,
        "group": action.group.ref if action.group else None,
        "owners": [o.role.name for o in action.owners],
        "people": people,
        "start": action.start_date.isoformat() if action.start_date else None,
        "due": state.due.isoformat() if state.due else None,
        "due_text": state.due_text,
        "due_precision": state.due_precision,
        "recurring": action.recurring,
        "recurrence": action.recurrence,
        "key_dates": action.key_dates,
        "status": state.status,
        "note": state.note,
        "updated_at": state.updated_at.isoformat() if state.updated_at else None,
    }


def people_by_action(session: Session, actions: list[Action]) -> dict[int, list[str]]:
    held = holders(session)
    return {action.id: [p.email for p in owners_of(session, action, held)] for action in actions}


STATUS_STYLE = {"green": "green", "amber": "yellow", "red": "red", "complete": "blue", "not_started": "dim"}


@main.command()
@PLAN
@click.option("--status", "status_filter", type=click.Choice([*STATUSES, "unknown"]),
              help="only actions with this current status (unknown: never reported)")
@FORMAT
@pass_ctx
@handles_errors
def actions(ctx: Context, plan_name: str | None, status_filter: str | None, fmt: str) -> None:
    """List actions with their owners, due dates and current status."""
    with ctx.session() as session:
        plan = find_plan(session, plan_name)
        rows = load_actions(session, plan)
        states = current_states(session, rows)
        if status_filter:
            wanted = None if status_filter == "unknown" else status_filter
            rows = [a for a in rows if states[a.id].status == wanted]
        if fmt == "json":
            people = people_by_action(session, rows)
            emit_json([action_json(a, states[a.id], people[a.id]) for a in rows])
            return
    if not rows:
        click.echo("No actions" + (f" with status {status_filter}" if status_filter else "") + ".")
        return
    out = console()
    by_plan: dict[int, list[Action]] = {}
    for action in rows:
        by_plan.setdefault(action.plan_id, []).append(action)
    for plan_rows in by_plan.values():
        title = f"{plan_rows[0].plan.name}: {len(plan_rows)} action(s)"
        table = Table(title=escape(title), title_justify="left", title_style="bold")
        # Rich shrinks every column alike when a table is too wide, squeezing refs and statuses
        # out first; so give the two text columns what is left of the terminal explicitly.
        cells = [(a.ref, _due_cell(states[a.id], a)) for a in plan_rows]
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
            state = states[action.id]
            status = state.status or "unknown"
            table.add_row(
                escape(action.ref),
                escape(action.title),
                escape(", ".join(o.role.name for o in action.owners) or "-"),
                escape(_due_cell(state, action)),
                f"[{STATUS_STYLE.get(status, 'dim')}]{status}[/]",
            )
        out.print(table)


def _due_cell(state: CurrentState, action: Action) -> str:
    if state.due is None:
        return "recurring" if action.recurring else (state.due_text or "-")
    text = state.due.isoformat()
    if state.due_precision != "day" and state.due_text and len(state.due_text) <= 16:
        text += f" ({state.due_text})"
    return text


def find_action(session: Session, ref: str, plan_name: str | None) -> Action:
    plan = find_plan(session, plan_name)
    query = select(Action).where(Action.ref_key == ref_key(ref)).options(
        selectinload(Action.owners).selectinload(ActionOwner.role), selectinload(Action.plan)
    )
    if plan is not None:
        query = query.where(Action.plan_id == plan.id)
    found = list(session.scalars(query))
    if not found:
        where = f" in plan {plan.name!r}" if plan else ""
        raise NotFound(f"no action with ref {ref!r}{where}")
    if len(found) > 1:
        plans = ", ".join(repr(a.plan.name) for a in found)
        raise NotFound(f"ref {ref!r} is in several plans ({plans}): add --plan NAME")
    return found[0]


@main.command("export")
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
    from storage.exporters import export_plan

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


@main.command()
@click.argument("ref")
@PLAN
@FORMAT
@pass_ctx
@handles_errors
def show(ctx: Context, ref: str, plan_name: str | None, fmt: str) -> None:
    """Everything about one action, with its update history."""
    with ctx.session() as session:
        action = find_action(session, ref, plan_name)
        state = current_states(session, [action])[action.id]
        people = people_by_action(session, [action])[action.id]
        history = list(
            session.scalars(select(StatusUpdate).where(StatusUpdate.action_id == action.id).order_by(StatusUpdate.id))
        )
        data = action_json(action, state, people)
        workstream = session.get(Workstream, action.workstream_id) if action.workstream_id else None
        group = session.get(ActionGroup, action.group_id) if action.group_id else None
        data.update(
            {
                "description": action.description,
                "owners_text": action.owners_text,
                "dependencies": action.dependencies,
                "resources": action.resources,
                "success_measures": action.success_measures,
                "next_steps": action.next_steps,
                "start_text": action.start_text,
                "plan_due": action.due_date.isoformat() if action.due_date else None,
                "plan_due_text": action.due_text,
                "lead_sponsor": workstream.lead_sponsor if workstream else None,
                "objective": workstream.objective if workstream else None,
                "group_title": group.title if group else None,
                "source": action.source,
                "history": [
                    {
                        "at": u.created_at.isoformat(),
                        "by": u.by_text,
                        "channel": u.channel,
                        "old_status": u.old_status,
                        "new_status": u.new_status,
                        "note": u.note,
                        "revised_due": u.revised_due.isoformat() if u.revised_due else None,
                        "revised_due_text": u.revised_due_text,
                        "owners_change": u.owners_change,
                    }
                    for u in history
                ],
            }
        )
    if fmt == "json":
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{escape(action.ref)}[/bold]  {escape(action.title)}")
    rows = [
        ("plan", data["plan"]), ("workstream", data["workstream"]), ("objective", data["objective"]),
        ("lead sponsor", data["lead_sponsor"]),
        ("group", f"{data['group']} {data['group_title'] or ''}".strip() if data["group"] else None),
        ("description", data["description"]), ("owners", ", ".join(data["owners"]) or None),
        ("people", ", ".join(people) or "nobody in the directory holds these roles yet"),
        ("status", data["status"] or "unknown"), ("latest note", data["note"]),
        ("start", f"{data['start']} ({data['start_text']})" if data["start"] else data["start_text"]),
        ("due", _due_line(data, action)),
        ("key dates", ", ".join(f"{k['date']} ({k['text']})" for k in action.key_dates) or None),
        ("dependencies", data["dependencies"]), ("resources", data["resources"]),
        ("success measures", data["success_measures"]), ("next steps", data["next_steps"]),
        ("read from", data["source"]),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, value in rows:
        if value:
            grid.add_row(label, escape(str(value)))
    out.print(grid)
    if history:
        table = Table(title="history", title_justify="left")
        for name in ("when", "by", "via", "status", "note / due"):
            table.add_column(name)
        for u in history:
            change = f"{u.old_status or '-'} → {u.new_status}" if u.new_status else ""
            extra = " ".join(x for x in (u.note or "", f"due {u.revised_due_text}" if u.revised_due_text else "",
                                         f"owners {u.owners_change}" if u.owners_change else "") if x)
            table.add_row(u.created_at.strftime("%Y-%m-%d %H:%M"), escape(u.by_text), u.channel, change, escape(extra))
        out.print(table)


def _due_line(data: dict[str, Any], action: Action) -> str:
    if data["due"]:
        text = data["due"]
        if data["due_text"] and data["due_text"] != data["due"]:
            text += f" (written {data['due_text']!r}, {data['due_precision']} precision)"
    elif action.recurring:
        text = f"recurring ({action.recurrence or data['due_text']}), no deadline"
    else:
        text = f"no date ({data['due_text']!r})" if data["due_text"] else "no date"
    return text


@main.command()
@click.argument("ref")
@click.option("--status", help="G/A/R/C or green, amber, red, complete, not_started")
@click.option("--note", help="a progress note")
@click.option("--due", "due_text", metavar="DATE", help="a revised due date, written any way a plan writes one")
@click.option("--by", "by_email", required=True, metavar="EMAIL", help="who is making the update")
@PLAN
@pass_ctx
@handles_errors
def update(ctx: Context, ref: str, status: str | None, note: str | None, due_text: str | None, by_email: str,
           plan_name: str | None) -> None:
    """Record a status, note or revised due date, as an owner replying would."""
    status_value = None
    if status is not None:
        status_value = status if status in STATUSES else read_status(status)
        if status_value is None:
            raise InvalidValue(f"--status {status!r} is not one of G, A, R, C, {', '.join(STATUSES)}")
    due = parse_when(due_text) if due_text is not None else None
    with ctx.session() as session:
        action = find_action(session, ref, plan_name)
        person = find_person(session, by_email)
        if person is None:
            raise NotFound(f"--by {by_email}: nobody with that email in the people directory (chaser people import)")
        record_update(
            session, action, channel="cli", by=person, status=status_value, note=note, due=due, edi_leads=ctx.edi_leads
        )
        state = current_states(session, [action])[action.id]
    click.echo(
        f"Recorded for {action.ref}: status {state.status or 'unknown'}, due "
        f"{state.due.isoformat() if state.due else state.due_text or 'none'}."
    )


@main.group(invoke_without_command=True)
@FORMAT
@click.pass_context
@handles_errors
def people(click_ctx: click.Context, fmt: str) -> None:
    """Each role named in the plans, who holds it, and the roles nobody holds yet."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.session() as session:
        report = role_report(session)
        data = [
            {"role": r.role, "actions": r.actions, "people": [{"name": p.name, "email": p.email} for p in r.people]}
            for r in report
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
    """Import the people directory: name, email, roles (separated by ;), manager, slack_id, teams_id."""
    from storage.controls import actions_of, recheck

    with ctx.session() as session:
        result = import_directory(session, file)
        for person in result.changed_people:
            recheck(session, actions_of(session, person))
    click.echo(
        f"People from {file}: {result.created} created, {result.updated} updated, {result.unchanged} unchanged"
        + (f"; new roles: {', '.join(result.roles_created)}" if result.roles_created else "")
    )


# --- the reminder engine -------------------------------------------------------------------


def parse_at(value: str | None, timezone: str) -> dt.datetime:
    """``--at``: an ISO date-time; without an offset it is the plan's local time."""
    if value is None:
        return dt.datetime.now(dt.timezone.utc)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"--at {value!r} is not an ISO date-time such as 2026-12-01T09:30") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(dt.timezone.utc)



def local_text(moment: dt.datetime | None, timezone: str) -> str | None:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z") if moment else None


@main.command()
@AT
@FORMAT
@pass_ctx
@handles_errors
def preview(ctx: Context, at_text: str | None, fmt: str) -> None:
    """What would be sent at that time, with no side effects."""
    from jobs.sweep import run_sweep

    now = parse_at(at_text, ctx.config.timezone)
    result = run_sweep(ctx.engine(), ctx.config, now, dry_run=True)
    with ctx.session() as session:
        people = {p.id: p for p in session.scalars(select(Person))}
    rows = [
        {
            "ref": n.ref, "person": people[n.person_id].email, "name": people[n.person_id].name,
            "channel": ctx.config.channels.default, "rule": n.rule, "key": n.key, "reason": n.reason,
            "on_behalf_of": people[n.owner_id].email if n.owner_id is not None and n.owner_id in people else None,
        }
        for n in result.nudges
    ]
    if fmt == "json":
        emit_json(rows)
        return
    out = console()
    when = local_text(now, ctx.config.timezone)
    if not rows:
        out.print(f"Nothing would be sent at {when}.")
    else:
        table = Table(title=f"{len(rows)} nudge(s) would be sent at {when}", title_justify="left")
        for name in ("to", "ref", "rule", "why"):
            table.add_column(name, overflow="fold")
        for r in rows:
            who = r["person"] + (f" (for {r['on_behalf_of']})" if r["on_behalf_of"] else "")
            table.add_row(escape(who), escape(r["ref"]), r["rule"], escape(r["reason"]))
        out.print(table)
    for _, why in result.unreachable:
        out.print(f"[red]unreachable[/red]: {escape(why)}")
    _echo_problems(result.problems)


def _run_once(ctx: Context, now: dt.datetime) -> None:
    from chaser.secrets import secret_key
    from jobs.dispatch import Dispatcher
    from jobs.sweep import run_sweep

    engine = ctx.engine()
    swept = run_sweep(engine, ctx.config, now)
    dispatcher = Dispatcher(engine, ctx.config, clock=lambda: now, secret=secret_key(engine))
    sent = dispatcher.run_once()
    click.echo(
        f"Swept at {local_text(now, ctx.config.timezone)}: {swept.actions_checked} action(s) checked, "
        f"{len(swept.nudges)} nudge(s) in {swept.messages} message(s). "
        f"Sent {sent.sent}, failed {sent.failed}, parked {sent.parked}."
    )
    if ctx.config.channels.default == "outbox_folder" and sent.sent:
        click.echo(f"Messages are in {Path(ctx.config.channels.outbox_folder).resolve()}/ (.eml; .json too for chat recipients).")
    if sent.unrecorded:
        click.echo(f"{sent.unrecorded} message(s) went out but could not be recorded (the database connection "
                   "failed); they are checked again when their lease runs out.", err=True)
    for _, why in swept.unreachable:
        click.echo(f"unreachable: {why}", err=True)
    _echo_problems(swept.problems)
    if sent.failed or sent.parked:
        # For cron: a run in which a send failed is not a success (chaser outbox says why).
        click.echo(f"{sent.failed + sent.parked} message(s) could not be sent: see 'chaser outbox --state failed' "
                   "and '--state parked'.", err=True)
        sys.exit(1)


def _echo_problems(problems: list[tuple[str, str, str]]) -> None:
    for plan_name, ref, why in problems:
        click.echo(f"problem: could not plan {ref} in plan {plan_name!r} ({why}); every other action was planned, "
                   "and this one is looked at again in an hour", err=True)


@main.command()
@click.option("--once", is_flag=True, help="one sweep and dispatch, then exit (for cron and tests)")
@AT
@pass_ctx
@handles_errors
def run(ctx: Context, once: bool, at_text: str | None) -> None:
    """Run Chaser: sweep for due nudges every minute and send the outbox every few seconds."""
    configure_logging()
    if once:
        _run_once(ctx, parse_at(at_text, ctx.config.timezone))
        return
    if at_text:
        raise InvalidValue("--at only goes with --once: the daemon runs on the real clock")
    from jobs.scheduler import serve

    serve(ctx.engine(), ctx.config)


def configure_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.group(invoke_without_command=True)
@click.option("--state", type=click.Choice(["queued", "sending", "sent", "failed", "parked"]), help="only this state")
@FORMAT
@click.pass_context
@handles_errors
def outbox(click_ctx: click.Context, state: str | None, fmt: str) -> None:
    """Messages queued, sent, failed and parked, with the nudges each one carries."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.session() as session:
        query = select(Outbox).order_by(Outbox.id)
        if state:
            query = query.where(Outbox.state == state)
        rows = list(session.scalars(query))
        people = {p.id: p for p in session.scalars(select(Person))}
        data = [
            {
                "id": r.id, "person": people[r.person_id].email if r.person_id in people else r.recipient,
                "channel": r.channel, "state": r.state, "kind": r.kind,
                "keys": [i["key"] for i in r.payload["items"]], "refs": [i["ref"] for i in r.payload["items"]],
                "more": r.payload.get("more", 0),
                "attempts": r.attempts, "created_at": r.created_at.isoformat(),
                "next_attempt_at": r.next_attempt_at.isoformat(),
                "sent_at": r.sent_at.isoformat() if r.sent_at else None, "receipt": r.receipt,
                "last_error": r.last_error, "possible_duplicate": r.possible_duplicate,
            }
            for r in rows
        ]
    if fmt == "json":
        emit_json(data)
        return
    if not data:
        click.echo("The outbox is empty" + (f" of {state} messages." if state else "."))
        return
    table = Table(title=f"{len(data)} message(s)", title_justify="left")
    for name in ("id", "to", "state", "tries", "actions", "note"):
        table.add_column(name, overflow="fold")
    for r in data:
        note = r["last_error"] or (f"sent {r['sent_at'][:16]}" if r["sent_at"] else f"next try {r['next_attempt_at'][:16]}")
        table.add_row(str(r["id"]), escape(r["person"]), r["state"], str(r["attempts"]), escape(", ".join(r["refs"])),
                      escape(note or ""))
    console().print(table)


MAX_OUTBOX_ID = 2**31 - 1


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@pass_ctx
@handles_errors
def outbox_retry(ctx: Context, outbox_id: int) -> None:
    """Queue a parked (or failed) message again, with a fresh set of attempts."""
    with ctx.session() as session:
        # Ids are 32-bit integers on PostgreSQL; a larger number would overflow the database
        # driver (SQLite's at 2**63) rather than simply match nothing.
        row = session.get(Outbox, outbox_id) if 1 <= outbox_id <= MAX_OUTBOX_ID else None
        if row is None:
            raise NotFound(f"no outbox message {outbox_id}")
        if row.state not in ("parked", "failed"):
            raise InvalidValue(f"outbox message {outbox_id} is {row.state}; only parked or failed messages can be retried")
        row.state, row.attempts, row.last_error = "queued", 0, None
        row.next_attempt_at = dt.datetime.now(dt.timezone.utc)
    click.echo(f"Queued outbox message {outbox_id} again.")


def _day(value: str, option: str) -> dt.date:
    parsed = parse_when(value)
    if parsed.end is None:
        raise InvalidValue(f"{option} {value!r}: {parsed.warning or 'not a date'}")
    return parsed.end


@main.command()
@click.argument("ref")
@click.option("--until", "until", required=True, metavar="DATE", help="last day without nudges, or 'off'")
@PLAN
@pass_ctx
@handles_errors
def snooze(ctx: Context, ref: str, until: str, plan_name: str | None) -> None:
    """No nudges for one action up to and including a date."""
    from storage.controls import snooze as do_snooze

    day = None if until.lower() in ("off", "none") else _day(until, "--until")
    with ctx.session() as session:
        action = find_action(session, ref, plan_name)
        do_snooze(session, action, day)
    click.echo(f"{action.ref} snoozed until {day.isoformat()}." if day else f"{action.ref} is no longer snoozed.")


def _set_paused(ctx: Context, plan_name: str, paused: bool) -> int:
    from storage.controls import set_paused

    with ctx.session() as session:
        plan = find_plan(session, plan_name)
        assert plan is not None
        return set_paused(session, plan, paused)


@main.command()
@click.argument("plan_name", metavar="PLAN")
@pass_ctx
@handles_errors
def pause(ctx: Context, plan_name: str) -> None:
    """Stop every nudge for a plan until it is resumed."""
    count = _set_paused(ctx, plan_name, True)
    click.echo(f"Paused {plan_name!r}: its {count} action(s) get no nudges until 'chaser resume'.")


@main.command()
@click.argument("plan_name", metavar="PLAN")
@pass_ctx
@handles_errors
def resume(ctx: Context, plan_name: str) -> None:
    """Resume nudges for a paused plan (one catch-up per action, not a flood)."""
    count = _set_paused(ctx, plan_name, False)
    click.echo(f"Resumed {plan_name!r}: {count} action(s) are checked at the next sweep.")


@people.command("away")
@click.argument("email")
@click.option("--until", "until", required=True, metavar="DATE", help="last day away, or 'back' to clear")
@click.option("--cover", "cover_email", metavar="EMAIL", help="who gets their nudges meanwhile")
@pass_ctx
@handles_errors
def people_away(ctx: Context, email: str, until: str, cover_email: str | None) -> None:
    """Record leave: nudges go to the cover, or wait until the first working day back."""
    from storage.controls import set_away

    day = None if until.lower() in ("back", "none", "off") else _day(until, "--until")
    with ctx.session() as session:
        person = find_person(session, email)
        if person is None:
            raise NotFound(f"{email}: nobody with that email in the people directory")
        cover = None
        if cover_email:
            cover = find_person(session, cover_email)
            if cover is None:
                raise NotFound(f"--cover {cover_email}: nobody with that email in the people directory")
        count = set_away(session, person, day, cover)
    if day is None:
        click.echo(f"{person.name} is back: nudges go to them again.")
    else:
        where = f"go to {cover.name}" if cover else "wait until they are back"
        click.echo(f"{person.name} is away until {day.isoformat()}: nudges for their {count} action(s) {where}.")


@main.command()
@AT
@FORMAT
@pass_ctx
@handles_errors
def status(ctx: Context, at_text: str | None, fmt: str) -> None:
    """Is Chaser delivering? Exits 1 on any problem: no recent sweep, a message waiting over an
    hour, a parked message, one failing for over an hour, or an action that could not be planned."""
    from storage.health import check_health

    now = parse_at(at_text, ctx.config.timezone)
    interval = ctx.config.scheduler.sweep_every_seconds
    with ctx.session() as session:
        health = check_health(session, now, sweep_every=interval)
    data = health.as_json()
    if fmt == "json":
        emit_json(data)
    else:
        tz = ctx.config.timezone
        last = health.last_sweep
        click.echo(f"Status at {local_text(now, tz)}: {'OK' if health.healthy else 'PROBLEM'}")
        if last:
            click.echo(f"  last sweep {local_text(last.at, tz)} ({last.duration_ms} ms, {last.nudges_planned} nudge(s) planned); "
                       f"next due {local_text(last.at + dt.timedelta(seconds=interval), tz)}")
        box = data["outbox"]
        click.echo(f"  outbox: {box['queued']} queued, {box['sending']} sending, {box['failed']} failed, "
                   f"{box['parked']} parked, {box['sent']} sent")
        if health.oldest_waiting_seconds is not None:
            click.echo(f"  oldest unsent message: {health.oldest_waiting_seconds // 60} min old")
        for problem in health.problems:
            click.echo(f"  problem: {problem}")
    if not health.healthy:
        sys.exit(1)
