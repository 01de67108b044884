"""Code run in child processes by ``tests/jobs/test_dispatch.py``.

Kept out of the test module so a "spawn" child imports only this (and Chaser), never pytest's
fixtures. Everything a child needs comes in as plain, picklable arguments.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

SECRET = "test-secret-" + "x" * 24


def dispatch_in_process(url: str, folder: str, worker: str, now_iso: str, barrier: Any, results: Any) -> None:
    """One dispatcher process: its own engine, an outbox-folder channel, one ``run_once``.

    Waits on ``barrier`` so both processes start claiming together, then puts
    ``(worker, sent, possible_duplicates)`` on ``results``.
    """
    from chaser.config import parse_config
    from jobs.dispatch import Dispatcher
    from storage.db import make_engine

    now = dt.datetime.fromisoformat(now_iso)
    config = parse_config({"channels": {"default": "outbox_folder", "outbox_folder": {"folder": folder}}}, "test")
    engine = make_engine(url)
    try:
        dispatcher = Dispatcher(engine, config, clock=lambda: now, secret=SECRET, worker=worker)
        dispatcher.channel("outbox_folder")  # load the channel before the race starts
        with engine.connect():  # open a connection up front too
            pass
        barrier.wait(timeout=60)
        result = dispatcher.run_once(batch=5)
        results.put((worker, result.sent, result.possible_duplicates))
    finally:
        engine.dispose()
