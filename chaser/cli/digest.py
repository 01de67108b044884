"""The board digest: one board's monthly highlight report, as a summary, JSON or a file."""
from __future__ import annotations

from pathlib import Path

import click

from chaser.cli.common import AT, Context, console, emit_json, escape, handles_errors, pass_ctx
from chaser.errors import InvalidValue
from jobs.digest import COUNT_LABELS, COUNTED, build_report, find_board, last_complete_month, parse_period
from jobs.digest_render import renderer_for, write
from jobs.digest_send import has_destination, queue_digest
from storage.dates import format_month


@click.command()
@click.option("--board", "board_name", required=True, metavar="NAME", help="the [[boards]] name in chaser.toml")
@click.option("--period", metavar="YYYY-MM", help="the month reported (default: the last complete month)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="write the report to FILE.html, FILE.pdf (A4), FILE.csv or FILE.xlsx (the action table)")
@click.option("--send", is_flag=True,
              help="queue it for the board's recipients (once per board and month; chaser run sends it)")
@AT
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table for people, json for scripts (the report's data)")
@pass_ctx
@handles_errors
def digest(ctx: Context, board_name: str, period: str | None, out: Path | None, send: bool, at_text: str | None,
           fmt: str) -> None:
    """A board's highlight report for one month: counts, what changed, overdue, who did not answer.

    Reads the tracker as it stood at the end of the month; changes nothing, unless --send
    queues it for the board's recipients, slack_channel and teams_webhook_env (the sweep does
    that itself on the board's digest_day).
    """
    if out is not None:
        renderer_for(out)  # a format that cannot be written is refused before anything is read
    board = find_board(ctx.config.boards, board_name)
    timezone = ctx.config.timezone
    month = parse_period(period, timezone) if period else last_complete_month(ctx.now(at_text), timezone)
    if send and not has_destination(board):
        raise InvalidValue(f"--send: board {board.name!r} has no recipients; add recipients = [\"…\"] "
                           "(or slack_channel = \"#…\", or teams_webhook_env = \"…\") to its [[boards]] table in chaser.toml")
    with ctx.session() as session:
        report = build_report(session, board, month, ctx.edi_leads)
    queued = None
    if send:
        with ctx.session() as session:
            queued = queue_digest(session, board, month, ctx.now(None))
    if out is not None:
        write(report, out)
    if fmt == "json":
        emit_json(report.as_json() if queued is None else {**report.as_json(), "queued": list(queued.outbox_ids)})
        return
    text = console()
    text.print(f"[bold]{escape(report.board)}[/bold]: highlight report for {format_month(month.start)}, "
               f"{report.total} action(s)")
    text.print("  " + ", ".join(f"{COUNT_LABELS[s]} {report.counts[s]}" for s in COUNTED))
    text.print(f"  {len(report.changes)} status change(s), {len(report.overdue)} overdue, "
               f"{len(report.due_next)} due next month, {len(report.not_answered)} owner(s) did not answer")
    if report.spotlight:
        text.print(f"  spotlight: {escape(report.spotlight)}")
    if out is not None:
        text.print(f"Wrote {escape(str(out))}.")
    if queued is not None and queued.already:
        text.print(f"The {format_month(month.start)} report was already queued for {escape(report.board)}; "
                   "nothing queued.")
    elif queued is not None:
        to = [*board.recipients, *([f"Slack {board.slack_channel}"] if board.slack_channel else []),
              *([f"the Teams webhook in {board.teams_webhook_env}"] if board.teams_webhook_env else [])]
        text.print(f"Queued the {format_month(month.start)} report for {len(queued.outbox_ids)} recipient(s): "
                   f"{escape(', '.join(to))}.")


COMMANDS = (digest,)
