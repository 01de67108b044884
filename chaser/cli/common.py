"""What every command module shares: the context, error handling, options and output helpers.

A command parses its options, calls one function of the app layer (``storage.tracker``,
``storage.health``, ``jobs.preview``, ``chaser.runtime``, …) and formats what comes back, as a
table or, with ``--format json``, for scripts. No SQL and no business rule here.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.markup import escape as rich_escape
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.channels.base import ChannelError
from chaser.config import Config, load_config
from chaser.errors import ChaserError, InvalidValue
from chaser.runtime import Runtime, build_runtime
from storage.dates import parse_when
from storage.db import explain, make_engine, require_current_schema, session_factory
from storage.models import Clock, utcnow

F = TypeVar("F", bound=Callable[..., Any])
FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="table for people, json for scripts")
PLAN = click.option("--plan", "plan_name", metavar="NAME", help="the plan, when more than one is imported")
AT = click.option("--at", "at_text", metavar="ISO_DATETIME",
                  help="act as if it were this time (no offset: the plan's local time)")


class Context:
    """One invocation's configuration and database, opened on first use; ``clock`` is "now"
    for a command given no ``--at`` (a test hands in its own through ``main(obj=Context(...))``)."""

    def __init__(self, config_path: str | None = None, *, clock: Clock = utcnow) -> None:
        self.config_path = config_path
        self.clock = clock
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
        """One transaction: committed when the block ends, rolled back (nothing written) on any error."""
        with session_factory(self.engine())() as session, session.begin():
            yield session

    def now(self, at_text: str | None) -> dt.datetime:
        """``--at`` when given (see :func:`parse_at`), else the context's clock."""
        return parse_at(at_text, self.config.timezone) if at_text is not None else self.clock()

    def runtime(self, clock: Clock | None = None) -> Runtime:
        return build_runtime(self.config, clock=clock or self.clock, engine=self.engine())

    @property
    def edi_leads(self) -> list[str]:
        return [self.config.edi_lead] if self.config.edi_lead else []


pass_ctx = click.make_pass_decorator(Context)


def handles_errors(func: F) -> F:
    """Problems the user can fix: one ``chaser:`` line, exit 2. A failed delivery is not one of
    them (the service or the network failed, not the command): it says so and exits 1."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ChannelError as exc:  # a ChaserError too, so caught first
            click.echo(f"chaser: delivery failed: {exc} (a channel could not send; this is not a problem with "
                       "the command or its input: see 'chaser outbox' and 'chaser status')", err=True)
            sys.exit(1)
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


def escape(text: str) -> str:
    """Text shown in a rich table as written, not read as markup (``[red]`` in a title stays)."""
    return rich_escape(text)


def parse_at(value: str, timezone: str) -> dt.datetime:
    """``--at``: an ISO date-time; without an offset it is the plan's local time."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"--at {value!r} is not an ISO date-time such as 2026-12-01T09:30") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(dt.UTC)


def local_text(moment: dt.datetime | None, timezone: str) -> str | None:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z") if moment else None


def day(value: str, option: str) -> dt.date:
    """A date option (``--until``), written any way a plan writes one."""
    parsed = parse_when(value)
    if parsed.end is None:
        raise InvalidValue(f"{option} {value!r}: {parsed.warning or 'not a date'}")
    return parsed.end
