"""The one place a running Chaser is put together: engine, link secret, dispatcher.

``chaser run`` (the daemon and ``--once``) and tests build what sends messages here, so the
dispatcher is constructed one way only. ``jobs`` never imports this module: the runtime hands
its parts to ``jobs.scheduler.serve``.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette

from bot.channels import load_channel
from bot.channels.base import Channel, Secrets
from bot.inbound import updatable_channels
from bot.inbox import CollectResult, MailSource, collect_mail, mail_source
from bot.web import create_app
from chaser.config import Config
from chaser.secrets import LEGACY_FILE, ensure_link_key, secret_key
from jobs.dispatch import Dispatcher, DispatchResult, recorded_since
from jobs.scheduler import serve
from jobs.sweep import SweepResult, run_sweep
from storage.db import make_engine, require_current_schema, session_factory, upgrade
from storage.health import check_health
from storage.models import Clock, Outbox, utcnow

log = logging.getLogger("chaser.runtime")
SOCKET_RETRY_SECONDS = 30  # Socket Mode could not connect at start: try again this often


@dataclass(frozen=True)
class RunOnce:
    """What one collection of replies, one sweep and one dispatch did (``chaser run --once``)."""

    at: dt.datetime
    swept: SweepResult
    sent: DispatchResult
    collected: CollectResult


@dataclass
class Runtime:
    config: Config
    engine: Engine
    clock: Clock
    secret: str  # signs and checks answer links
    dispatcher: Dispatcher
    source: MailSource  # where replies are read from ([channels.email] inbox)
    owns_engine: bool = False  # built by build_runtime, so close() disposes of it
    secrets: Secrets | None = None  # where SLACK_BOT_TOKEN and the rest are read (None: the environment)
    _slack: Any = field(default=None, repr=False)  # the bolt app, built once when Slack is enabled
    _teams: Any = field(default=None, repr=False)  # the /teams/messages answers, built once when Teams is enabled

    def run_once(self) -> RunOnce:
        """Read the replies waiting in the inbox folder (so the sweep does not chase what was
        just answered), one sweep at the clock's time, then send everything due, then return."""
        now = self.clock()
        collected = self.collect()
        swept = run_sweep(self.engine, self.config, now)
        return RunOnce(at=now, swept=swept, sent=self.dispatcher.run_once(), collected=collected)

    def collect(self) -> CollectResult:
        """Read every reply waiting in the mail source: the inbox folder (``[channels.email]
        inbox_folder``), or the IMAP or Microsoft 365 mailbox (``[channels.email] inbox``)."""
        return collect_mail(self.engine, self.config, self.source, self.clock)

    def serve(self, *, stop: threading.Event | None = None) -> None:
        """The daemon: sweep and dispatch on schedule until SIGTERM/SIGINT (or ``stop``), serving
        the web app when ``[web] enabled``."""
        stop = stop or threading.Event()
        socket = self.start_socket_mode(stop) if self.slack_mode() == "socket" else None
        try:
            serve(self.engine, self.config, self.dispatcher,
                  web_app=self.web_app() if self.config.web_enabled else None, stop=stop, collect=self.collect)
        finally:
            stop.set()  # also when serve() failed: the Socket Mode thread stops trying
            if socket is not None:
                socket.close()
            self.source.close()  # the IMAP mailbox says LOGOUT

    # -- Slack answers (bot.slack_app) -----------------------------------------------------
    def slack_mode(self) -> str | None:
        """``[channels.slack] mode`` ("socket" or "http") when Slack is enabled, else None."""
        if "slack" not in self.config.channels.order:
            return None
        from bot.slack_app import slack_settings

        return slack_settings(self.config.channels.table("slack"))[0]

    def slack_app(self) -> Any:
        """The bolt app answering clicks, the modal, /chaser and the Home tab (built once). An
        answer updates the clicked message at once with the envelope the dispatcher would send."""
        if self._slack is None:
            from bot.slack_app import build_app, slack_settings

            secrets = self.secrets or Secrets()
            mode, api_url = slack_settings(self.config.channels.table("slack"))
            token = secrets.require("SLACK_BOT_TOKEN", "the Slack app answers with the bot token")
            signing = secrets.require("SLACK_SIGNING_SECRET", "[channels.slack] mode = \"http\" checks every "
                                      "request Slack sends with it") if mode == "http" else None
            self._slack = build_app(self.engine, self.config, token=token, signing_secret=signing, clock=self.clock,
                                    base_url=api_url, refresh=self.refreshed, channel=self.dispatcher.channel("slack"))
        return self._slack

    def refreshed(self, session: Any, message: Outbox) -> Any:
        """What an in-place update of ``message`` shows now: the dispatcher's envelope of it."""
        return self.dispatcher.envelope(session, message, self.clock(), None, recorded_since(session, message))

    def start_socket_mode(self, stop: threading.Event) -> Any:
        """Socket Mode's handler, connecting in a thread beside the web app (and trying again
        every SOCKET_RETRY_SECONDS while Slack cannot be reached); ``close()`` stops it."""
        from bot.slack_app import socket_mode

        secrets = self.secrets or Secrets()
        app_token = secrets.require("SLACK_APP_TOKEN", "[channels.slack] mode = \"socket\" connects to Slack "
                                    "with the app-level token (xapp-…)")
        handler = socket_mode(self.slack_app(), app_token)

        def connect() -> None:
            while not stop.is_set():
                try:
                    handler.connect()
                    log.info("Slack Socket Mode connected")
                    return
                except Exception as exc:  # noqa: BLE001 - Slack may be unreachable for a while
                    log.warning("Slack Socket Mode could not connect (%s); trying again in %d s", exc,
                                SOCKET_RETRY_SECONDS)
                    stop.wait(SOCKET_RETRY_SECONDS)

        threading.Thread(target=connect, name="chaser-slack-socket", daemon=True).start()
        return handler

    # -- Teams answers (bot.teams_app) -----------------------------------------------------
    def teams_answers(self) -> Any:
        """What answers ``POST /teams/messages`` (built once): the Bot Connector's tokens checked
        against ``[channels.teams] openid_url``, answers recorded, cards replaced in place."""
        if self._teams is None:
            from bot.channels.teams import teams_settings
            from bot.inbound import after_pool
            from bot.teams_app import TeamsAnswers
            from bot.teams_auth import TokenCheck

            settings = teams_settings(self.config.channels.table("teams"))
            check = TokenCheck(settings.app_id, settings.openid_url, clock=self.clock, timeout=settings.timeout)
            self._teams = TeamsAnswers(self.engine, self.config, clock=self.clock,
                                       channel=self.dispatcher.channel("teams"), check=check,
                                       tenant_id=settings.tenant_id, refresh=self.refreshed,
                                       after=after_pool("chaser-teams"))
        return self._teams

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``chaser status``'s verdict now, for ``GET /healthz``."""
        with session_factory(self.engine)() as session:
            verdict = check_health(session, self.clock(), sweep_every=self.config.scheduler.sweep_every_seconds)
        return verdict.healthy, verdict.as_json()

    def web_app(self) -> Starlette:
        """The one web app: the answer pages, ``/healthz``, ``POST /slack/events`` when
        ``[channels.slack] mode = "http"`` and ``POST /teams/messages`` when Teams is enabled."""
        config = self.config
        routes = []
        if self.slack_mode() == "http":
            from bot.slack_app import events_route

            routes.append(events_route(self.slack_app()))
        if "teams" in config.channels.order:
            routes.append(self.teams_answers().route())
        return create_app(self.engine, secret=self.secret, edi_leads=[config.edi_lead] if config.edi_lead else [],
                          max_age_days=config.web_link_days, clock=self.clock, health=self.health,
                          updatable=updatable_channels(config), channels=config.channels.order, routes=routes)

    def close(self) -> None:
        self.dispatcher.close()
        self.source.close()
        if self.owns_engine:
            self.engine.dispose()


def build_runtime(
    config: Config,
    *,
    clock: Clock = utcnow,
    environ: Mapping[str, str] | None = None,
    engine: Engine | None = None,
    channels: dict[str, Channel] | None = None,
    worker: str | None = None,
) -> Runtime:
    """Everything ``chaser run`` needs, from the configuration.

    ``environ`` is where ``CHASER_SECRET_KEY``/``CHASER_SECRET_KEY_FILE`` are looked for (default:
    the process's environment; without them the key lives in the database). ``engine`` is an
    engine already open on the configured database (else one is made, its schema checked, and
    disposed of by :meth:`Runtime.close`); ``channels`` hands in ready channel instances by kind
    (tests pass a ``Memory``); ``worker`` names this process in claims.
    """
    owns = engine is None
    if engine is None:
        engine = make_engine(config.database.url)
    try:
        if owns:
            require_current_schema(engine)
        secret = secret_key(engine, dict(environ) if environ is not None else None)
    except BaseException:
        if owns:
            engine.dispose()
        raise
    # Every enabled channel is built now, with its secrets: a missing token stops `chaser run` at
    # start with the variable's name, not at the first message.
    secrets = Secrets(environ)
    built = dict(channels or {})
    try:
        for kind in config.channels.order:
            if kind not in built:
                built[kind] = load_channel(kind, config.channels.table(kind), secrets)
        source = mail_source(config, secrets)
    except BaseException:
        if owns:
            engine.dispose()
        raise
    dispatcher = Dispatcher(engine, config, clock=clock, secret=secret, channels=built, worker=worker,
                            secrets=secrets)
    return Runtime(config=config, engine=engine, clock=clock, secret=secret, dispatcher=dispatcher, source=source,
                   owns_engine=owns, secrets=secrets)


@dataclass(frozen=True)
class Setup:
    """What ``chaser init`` did: the schema before and after, and how the link key came to be."""

    schema_before: str | None  # None: the database was empty
    schema_after: str
    link_key: str | None  # "generated", "adopted" from the 0.1 key file, or None: it was already there


def set_up_database(engine: Engine, *, legacy: Path | None = LEGACY_FILE) -> Setup:
    """Create or upgrade the schema, then make sure the link key every process signs with exists."""
    before, after = upgrade(engine)
    _, how = ensure_link_key(engine, legacy=legacy)
    return Setup(schema_before=before, schema_after=after, link_key=how)
