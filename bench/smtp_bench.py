"""Email over SMTP: messages per second through the email channel to a local aiosmtpd.

Usage:
    python bench/smtp_bench.py [--messages 2000] [--items 3] [--runs 3] [--workers 1]

aiosmtpd runs in its own process (``python -m aiosmtpd -n -c aiosmtpd.handlers.Sink``: it
takes each message and drops it), so the server does not share this process's GIL. Each run
sends N envelopes (``--items`` actions each, with answer links) through one ``Email`` channel
with ``smtp_security = "none"``, timed from the first send to the last server reply:
rendering, MIME framing and the SMTP conversation, over the one connection the channel keeps
open (``connections`` is printed to show it stayed one). ``--workers`` > 1 sends from that many
threads, as ``[scheduler] send_workers`` does. The target (issue 11) is over 200 messages/s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.channels.base import Envelope, Item, Link, Recipient  # noqa: E402
from bot.channels.email import Email  # noqa: E402
from storage.reasons import Why  # noqa: E402

SENT_AT = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.timezone.utc)


def envelope(n: int, items: int) -> Envelope:
    return Envelope(
        outbox_id=n, kind="nudge",
        recipient=Recipient(f"Owner {n}", {"email": f"owner{n % 500}@council.example"}),
        items=tuple(Item(
            ref=f"HW {n}.{i}", title="Publish the gender pay gap report", plan="EDI Action Plan", rule="before_due",
            why=Why("before_due", due=dt.date(2026, 12, 15), working_days=9), due=dt.date(2026, 12, 15),
            due_text="December 2026", status="amber", action_id=n * 10 + i,
            links=tuple(Link(label, f"https://chaser.council.example/answer/t{n}-{i}?s={label.lower()}", status)
                        for label, status in (("Green", "green"), ("Amber", "amber"), ("Red", "red"),
                                              ("Complete", "complete"), ("Add a note", None))),
        ) for i in range(items)),
        sent_at=SENT_AT,
    )


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                               "-c", "aiosmtpd.handlers.Sink"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit("aiosmtpd did not start")
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    server, port = start_server()
    try:
        rates = []
        for run in range(args.runs):
            envelopes = [envelope(n, args.items) for n in range(args.messages)]
            channel = Email(host="127.0.0.1", port=port, security="none", sender="Chaser <chaser@council.example>")
            start = time.perf_counter()
            if args.workers > 1:
                with ThreadPoolExecutor(args.workers) as pool:
                    list(pool.map(channel.send, envelopes))
            else:
                for one in envelopes:
                    channel.send(one)
            elapsed = time.perf_counter() - start
            channel.close()
            rates.append(args.messages / elapsed)
            print(f"run {run + 1}: {args.messages} messages in {elapsed:.2f} s = {rates[-1]:.0f} messages/s "
                  f"(connections: {channel.connections})")
        print(f"median: {statistics.median(rates):.0f} messages/s ({args.items} actions per message, "
              f"{args.workers} worker(s), one connection kept open)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
