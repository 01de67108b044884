"""``chaser run``: APScheduler as the clock, nothing more (plus the local answer form).

Two fixed jobs per process — sweep every ``sweep_every_seconds``, dispatch every
``dispatch_every_seconds`` — with ``coalesce=True``, ``max_instances=1`` and
``misfire_grace_time=None`` (a late run still runs, once). Reminder state lives in Chaser's
own tables, never as one APScheduler job per action, so nothing is lost when the process
stops. SIGTERM or Ctrl-C sets a flag the dispatcher checks between messages, then the
scheduler waits for the running job to finish.
"""
from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from chaser.errors import ChaserError
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.models import utcnow

if TYPE_CHECKING:  # the CLI's config, passed in: nothing in jobs imports chaser.config
    from chaser.config import Config

log = logging.getLogger("chaser.run")


def serve(engine: Engine, config: Config, dispatcher: Dispatcher, *, web_app: Any = None,
          stop: threading.Event | None = None, collect: Callable[[], Any] | None = None) -> None:
    """Sweep and dispatch on the scheduler's clock until SIGTERM/SIGINT or ``stop`` is set, and
    serve ``web_app`` (when ``[web] enabled``) on the host and port of ``[web] base_url``.

    ``collect`` (reading replies) runs at every dispatch tick, before the sends.
    ``dispatcher`` and ``web_app`` come built by the caller (``chaser.runtime.build_runtime``),
    with their link secret and clock: this module only schedules and serves them.
    """
    stop = stop or threading.Event()

    def sweep() -> None:
        try:
            run_sweep(engine, config, dispatcher.clock())  # one clock for planning and sending
        except Exception:  # noqa: BLE001 - log and try again at the next tick; never kill the loop
            log.exception("sweep failed; the next one runs as scheduled")

    def dispatch() -> None:
        if collect is not None:  # replies first (the inbox folder): an answer read stops its nudges
            try:
                collect()
            except Exception:  # noqa: BLE001 - log and try again at the next tick; never kill the loop
                log.exception("reading replies failed; the next tick tries again")
        try:
            result = dispatcher.run_once()
            if result.sent or result.failed or result.parked or result.unrecorded:
                log.info("dispatched: %d sent, %d failed, %d parked, %d sent but not recorded", result.sent,
                         result.failed, result.parked, result.unrecorded)
        except Exception:  # noqa: BLE001 - the database may be briefly unavailable
            log.exception("dispatch failed; the next one runs as scheduled")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the current message and stopping", signal.Signals(signum).name)
        dispatcher.stopping = True
        stop.set()

    web = None
    if config.web_enabled and web_app is not None:
        from bot.web import WebServerError, listen_address, start_web

        host, port = listen_address(config.web_base_url)
        try:
            web = start_web(web_app, host, port)
        except WebServerError as exc:
            raise ChaserError(f"{exc}; change [web] base_url or set [web] enabled = false") from None
        log.info("answer form at %s/answer/…", config.web_base_url)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    scheduler = BackgroundScheduler(
        timezone=dt.timezone.utc,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    scheduler.add_job(sweep, "interval", seconds=config.scheduler.sweep_every_seconds, id="sweep", next_run_time=utcnow())
    scheduler.add_job(dispatch, "interval", seconds=config.scheduler.dispatch_every_seconds, id="dispatch",
                      next_run_time=utcnow())
    scheduler.start()
    log.info("chaser running: sweep every %d s, dispatch every %d s, channels %s",
             config.scheduler.sweep_every_seconds, config.scheduler.dispatch_every_seconds,
             ", ".join(config.channels.order))
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        dispatcher.close()
        if web is not None:
            web.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("chaser stopped")
