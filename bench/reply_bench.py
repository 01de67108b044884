"""Replies parsed per second: every fixture in tests/bot/fixtures/replies/, read from bytes.

Usage:
    python bench/reply_bench.py [--seconds 3] [--runs 3]

Each parse is what the inbox does per file before the database: ``BytesParser`` (policy
default), then :func:`bot.email_replies.read_reply` (body decoded, HTML to text, the quote and
signature cut, status, date and refs read). The fixtures are 30 shapes of real mail (Outlook,
Gmail, Apple Mail, HTML-only, base64, quoted-printable, Windows-1252, out-of-office ...),
parsed round-robin for ``--seconds``; the best of ``--runs`` is reported. Target: over 1,000/s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.email_replies import read_reply  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "bot" / "fixtures" / "replies"
RECEIVED = dt.datetime(2026, 12, 2, 10, 15, tzinfo=dt.timezone.utc)


def run(mails: list[bytes], seconds: float) -> float:
    parser = BytesParser(policy=policy.compat32)
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for data in mails:
            read_reply(parser.parsebytes(data), received_at=RECEIVED)
        done += len(mails)
    return done / elapsed


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--seconds", type=float, default=3.0)
    args.add_argument("--runs", type=int, default=3)
    options = args.parse_args()
    mails = [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]
    run(mails, 0.3)  # warm up: imports, regex compilation
    rates = [run(mails, options.seconds) for _ in range(options.runs)]
    print(f"{len(mails)} fixtures; replies parsed per second: best {max(rates):,.0f}, "
          f"runs {', '.join(f'{r:,.0f}' for r in rates)} (target over 1,000/s)")


if __name__ == "__main__":
    main()
