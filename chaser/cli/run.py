"""The reminder engine: preview what would be sent, run the loop (or once), check its health."""
from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

import click
from rich.table import Table

from chaser.cli.common import AT, FORMAT, Context, console, emit_json, escape, handles_errors, local_text, pass_ctx
from chaser.errors import InvalidValue
from jobs.preview import preview as plan_preview
from storage.health import check_health


@click.command()
@AT
@FORMAT
@pass_ctx
@handles_errors
def preview(ctx: Context, at_text: str | None, fmt: str) -> None:
    """What would be sent at that time, with no side effects."""
    result = plan_preview(ctx.engine(), ctx.config, ctx.now(at_text))
    if fmt == "json":
        emit_json([n.as_json() for n in result.nudges])
        return
    out = console()
    when = local_text(result.at, ctx.config.timezone)
    if not result.nudges:
        out.print(f"Nothing would be sent at {when}.")
    else:
        table = Table(title=f"{len(result.nudges)} nudge(s) would be sent at {when}", title_justify="left")
        for name in ("to", "ref", "rule", "why"):
            table.add_column(name, overflow="fold")
        for n in result.nudges:
            who = n.person + (f" (for {n.on_behalf_of})" if n.on_behalf_of else "")
            table.add_row(escape(who), escape(n.ref), n.rule, escape(n.reason))
        out.print(table)
    for why in result.unreachable:
        out.print(f"[red]unreachable[/red]: {escape(why)}")
    _echo_problems(result.problems)


def _run_once(ctx: Context, now: dt.datetime) -> None:
    runtime = ctx.runtime(clock=lambda: now)
    try:
        done = runtime.run_once()
    finally:
        runtime.close()  # the SMTP connection says QUIT, the IMAP mailbox LOGOUT
    swept, sent, collected = done.swept, done.sent, done.collected
    if collected.files:
        outcomes = ", ".join(f"{count} {outcome}" for outcome, count in sorted(collected.outcomes.items()))
        folder = collected.source.startswith("inbox folder")
        mails = "file(s) in the inbox folder" if folder else f"mail(s) in {collected.source}"
        click.echo(f"Read {collected.replies} reply(ies) from {collected.files} {mails}"
                   + (f": {outcomes}" if outcomes else "") + ". See 'chaser replies'.")
        if collected.failed:
            click.echo(f"{collected.failed} {'file(s)' if folder else 'mail(s)'} could not be read as mail: moved to "
                       f"{'failed/' if folder else 'the failed folder'}.", err=True)
        if collected.kept:
            click.echo(f"{collected.kept} {'file(s)' if folder else 'mail(s)'} could not be recorded now: they are "
                       "read again next time.",
                       err=True)
    if collected.error:
        click.echo(f"Replies could not be read: {collected.error}", err=True)
    click.echo(
        f"Swept at {local_text(done.at, ctx.config.timezone)}: {swept.actions_checked} action(s) checked, "
        f"{len(swept.nudges)} nudge(s) in {swept.messages} message(s). "
        f"Sent {sent.sent}, failed {sent.failed}, parked {sent.parked}."
    )
    folder = getattr(runtime.dispatcher.channels.get("outbox_folder"), "folder", None)
    if folder is not None and sent.sent:
        click.echo(f"Messages are in {Path(folder).resolve()}/ (.eml; .json too for chat recipients).")
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
    if collected.error:  # for cron too: the nudges went out, but the replies waiting were not read
        sys.exit(1)


def _echo_problems(problems: list[tuple[str, str, str]]) -> None:
    for plan_name, ref, why in problems:
        click.echo(f"problem: could not plan {ref} in plan {plan_name!r} ({why}); every other action was planned, "
                   "and this one is looked at again in an hour", err=True)


@click.command()
@click.option("--once", is_flag=True, help="one sweep and dispatch, then exit (for cron and tests)")
@AT
@pass_ctx
@handles_errors
def run(ctx: Context, once: bool, at_text: str | None) -> None:
    """Run Chaser: sweep for due nudges every minute and send the outbox every few seconds."""
    configure_logging()
    if once:
        _run_once(ctx, ctx.now(at_text))
        return
    if at_text:
        raise InvalidValue("--at only goes with --once: the daemon runs on the real clock")
    ctx.runtime().serve()


@click.command()
@pass_ctx
@handles_errors
def serve(ctx: Context) -> None:
    """Serve only the web pages (the answer form, /healthz) on [web] base_url's host and port, for a
    deployment that runs the web front apart from 'chaser run' (set [web] enabled = false there)."""
    from bot.web import listen_address, serve_forever

    configure_logging()
    host, port = listen_address(ctx.config.web_base_url)
    serve_forever(ctx.runtime().web_app(), host, port)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@click.command()
@AT
@FORMAT
@pass_ctx
@handles_errors
def status(ctx: Context, at_text: str | None, fmt: str) -> None:
    """Is Chaser delivering? Exits 1 on any problem: no recent sweep, a message waiting over an
    hour, a parked message, one failing for over an hour, or an action that could not be planned."""
    now = ctx.now(at_text)
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


COMMANDS = (preview, run, status, serve)
