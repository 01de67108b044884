"""Serving a test's fake service (a ``socketserver`` HTTP server) on loopback in a thread."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import BaseServer


@contextmanager
def serving(server: BaseServer, name: str) -> Iterator[BaseServer]:
    """Run ``server.serve_forever`` in a daemon thread until the block ends, then shut it down
    and close its socket (the poll interval is short, so a test's teardown does not wait)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
