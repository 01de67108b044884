"""Serving the web app: uvicorn in a thread of ``chaser run`` (start_web), or alone (serve_forever).

uvicorn runs the event loop and speaks HTTP/1.1 through h11 (plain ``uvicorn``, no extras);
Starlette's thread pool runs the sync handlers. The socket is bound here, before the thread
starts, so a port that is taken is a ChaserError naming host:port at once.

Nothing in a request is trusted, and a slow or idle client never blocks the others:

- each request has REQUEST_TIMEOUT_SECONDS from its first byte (or from the connection's
  opening) to arrive whole. uvicorn's h11 protocol has no such deadline: a client that sends
  half a request line and then nothing, or whose headers trickle in a byte at a time, holds
  its connection for ever (its keep-alive timer only starts after a response). Here the
  connection is closed at the deadline, and a body still arriving ends there, so the form
  answers "cut short" and records nothing;
- a client that half-closes its side after sending (``shutdown(SHUT_WR)``, as some scripts
  and proxies do) still gets its answer: uvicorn would close the connection on that EOF and
  drop the response. A body cut short by that EOF ends there too;
- a request h11 cannot parse (a ``Content-Length`` of ``-1``, a broken request line, headers
  over 16 KB) gets an HTML page with the security headers instead of uvicorn's bare text;
- a connection closed while the client may still be sending (a refused or cut-off body,
  half a request) is closed lingering: the answer, then our FIN, then what the client still
  sends is read and dropped (up to DRAIN_BYTES, for at most LINGER_SECONDS), so the client
  reads the page instead of a reset;
- at most MAX_CONNECTIONS connections at once (uvicorn's ``limit_concurrency``; past it a
  request gets uvicorn's plain 503 at once), LISTEN_BACKLOG waiting to be accepted, an idle
  kept-alive connection closed after KEEP_ALIVE_SECONDS.

These rely on uvicorn's H11Protocol internals (its ``cycle``, ``conn`` and ``flow``), hence the
pinned uvicorn range in pyproject.toml; tests/bot/test_web.py exercises each over real sockets.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Callable
from functools import cache
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.web.forms import DRAIN_BYTES
from bot.web.pages import SECURITY_HEADERS, render_page
from chaser.errors import ChaserError

log = logging.getLogger("chaser.web")
REQUEST_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5.0
MAX_CONNECTIONS = 256
LISTEN_BACKLOG = 256
LINGER_SECONDS = 2.0  # a closing connection reads and drops what the client still sends, this long
STOP_SECONDS = 10.0  # stop(): requests still running get this long to finish


class WebServerError(ChaserError):
    """The web server could not start: the message names the host and port."""


@cache
def _unreadable_request() -> bytes:
    """The whole HTTP response for a request h11 could not parse."""
    body = render_page("This request could not be read", [
        "Nothing was recorded. Open the link exactly as it appears in the reminder."]).encode()
    head = [b"HTTP/1.1 400 Bad Request", b"Content-Type: text/html; charset=utf-8",
            b"Content-Length: " + str(len(body)).encode(), b"Connection: close",
            *(f"{name}: {value}".encode() for name, value in SECURITY_HEADERS.items())]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _LingeringClose:
    """A connection's transport, closed as Apache closes one: when the client may still be
    sending, our answer goes out, then our side shuts (FIN), and what the client still sends
    is read and dropped until it closes too (or LINGER_SECONDS pass). Closing outright with
    unread data makes TCP reset the connection, and a reset can make the client lose the
    answer it was about to read."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing or self._transport.is_closing():
            return
        self._closing = True
        if not self._protocol.client_may_be_sending():
            self._transport.close()
            return
        self._protocol.discard_the_rest()
        self._transport.write_eof()  # after what is buffered: the answer is sent whole
        self._protocol.loop.call_later(self._protocol.linger, self._transport.close)

    def close_now(self) -> None:
        self._closing = True
        self._transport.close()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline, half-close manners and lingering closes."""

    request_timeout: float = REQUEST_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._discarding = False  # after a refused or cut-off request: read and drop, then close
        self._discarded = 0

    @property
    def linger(self) -> float:
        return min(LINGER_SECONDS, self.request_timeout)

    def client_may_be_sending(self) -> bool:
        """Is part of a request on its way: a body, the rest of one we refused, headers?"""
        state = self.conn.their_state
        return (self._discarding or state is h11.SEND_BODY or state is h11.ERROR
                or bool(self.conn.trailing_data[0]))

    def discard_the_rest(self) -> None:
        self._discarding = True
        self.flow.resume_reading()

    # The deadline: from a request's first byte (or the connection's opening) to its end.

    def _start_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._deadline_passed)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self.conn.their_state is h11.SEND_BODY:
            self._end_body()  # the app answers what it got (the form: "cut short"), then it closes
        else:
            self.transport.close()  # the request never got past its headers: nothing to answer

    def _end_body(self) -> None:
        """The request's body ends here, as far as it got: the app reads no more of it."""
        cycle = self.cycle
        cycle.more_body = False
        cycle.keep_alive = False
        cycle.message_event.set()
        self.discard_the_rest()

    # uvicorn's protocol interface.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringClose(transport, self))  # type: ignore[arg-type]
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            self._discarded += len(data)
            if self._discarded > DRAIN_BYTES:
                self.transport.close_now()  # type: ignore[attr-defined]
            return
        if self.conn.their_state is h11.IDLE:
            self._start_deadline()  # the next request on a kept-alive connection begins
        super().data_received(data)
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            self._stop_deadline()  # the request is whole; the handler may take its time

    def eof_received(self) -> bool | None:
        cycle = self.cycle
        if self._discarding or cycle is None or cycle.response_complete:
            return None  # nothing waits for an answer: close, as uvicorn does
        if self.conn.their_state is h11.SEND_BODY:
            self._end_body()
        cycle.keep_alive = False
        return True  # keep our side open to write the answer; uvicorn closes it after that

    def send_400_response(self, msg: str) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close_now()  # type: ignore[attr-defined]  # a pipelined request broke mid-answer
            return
        log.debug("web: refused a request that could not be read: %s", msg)
        self.transport.write(_unreadable_request())
        self.transport.close()  # lingering: the rest of what it sends is read and dropped


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class WebServer:
    """uvicorn serving one app in a daemon thread of this process; ``stop()`` ends it."""

    def __init__(self, server: _Server, thread: threading.Thread, host: str, port: int) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop accepting, let running requests finish (up to ``timeout``), close, and join."""
        self._server.should_exit = True
        self._thread.join(timeout + 2)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(2)
            log.warning("web server did not stop within %g s", timeout)


def listen_address(base_url: str) -> tuple[str, int]:
    """The host and port of ``[web] base_url`` that the web app listens on."""
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def start_web(app: Any, host: str, port: int, *, timeout: float | None = None,
              max_connections: int = MAX_CONNECTIONS) -> WebServer:
    """Serve ``app`` on host:port (0: any free port, see ``.port``) in a thread; returns once
    it accepts connections. ``timeout`` overrides REQUEST_TIMEOUT_SECONDS (tests)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:  # in use, not an address of this machine, a name that does not resolve
        sock.close()
        raise WebServerError(f"cannot serve the web pages on {host}:{port} ({exc.strerror or exc})") from None
    request_timeout = REQUEST_TIMEOUT_SECONDS if timeout is None else timeout
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"request_timeout": request_timeout})
    config = uvicorn.Config(
        app, http=protocol, ws="none", loop="asyncio", lifespan="on",
        log_config=None, log_level="warning", access_log=False, server_header=False,
        limit_concurrency=max_connections, backlog=LISTEN_BACKLOG,
        timeout_keep_alive=min(KEEP_ALIVE_SECONDS, request_timeout),  # type: ignore[arg-type] - a float works
        timeout_graceful_shutdown=int(STOP_SECONDS),
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="chaser-web", daemon=True)
    thread.start()
    while not server.ready.wait(0.05):
        if not thread.is_alive():
            sock.close()
            raise WebServerError(f"the web server on {host}:{port} stopped while starting; see the log above")
    bound = sock.getsockname()
    return WebServer(server, thread, host, bound[1])


def serve_forever(app: Any, host: str, port: int, *, stop: threading.Event | None = None,
                  on_serving: Callable[[WebServer], None] | None = None) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C (or ``stop`` is set), then stop cleanly: for a
    process that runs only the web front (``chaser serve``). ``on_serving`` is called once it
    accepts connections."""
    stop = stop or threading.Event()
    web = start_web(app, host, port)
    log.info("serving the web pages at %s", web.url)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the web server", signal.Signals(signum).name)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_serving is not None:
            on_serving(web)
        stop.wait()
    finally:
        web.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("web server stopped")
