"""Answers per second through the web form: 8 owners answering at once, real HTTP on loopback.

Usage:
    python bench/web_bench.py [--database sqlite|postgresql|both] [--answers 4000] [--clients 8]
                              [--with-get] [--runs 3] [--postgres-url URL]

A fresh database (SQLite file, or the PostgreSQL schema named in ``--postgres-url``) gets a
plan of 500 actions owned by one role and 50 people holding it. The web app (``create_app``
served by ``start_web``: uvicorn, the Starlette app, the sync handlers in its thread pool) runs
in a child process, so the clients do not share its interpreter lock; ``--clients`` threads
each keep one HTTP/1.1 connection open and POST the answer form — status, a note, and the
hidden ``csrf``/``nonce`` fields computed as the page computes them — for a different action
each time, until ``--answers`` are recorded. ``--with-get`` makes each answer a GET of the
form (as a browser would, reading its fields) and then the POST, and counts the pair's
latency. Each run checks that every POST got 200 and that the database holds one update per
answer. The first 100 answers of each run warm up and are not counted.
"""
from __future__ import annotations

import argparse
import http.client
import re
import secrets
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import http_load  # noqa: E402
from bench.http_load import STATUSES, Load, Request, Send  # noqa: E402
from bot.links import answer_links  # noqa: E402
from bot.web import csrf_token  # noqa: E402
from storage.db import make_engine  # noqa: E402

SECRET = "b" * 32
DEFAULT_PG_URL = "postgresql://127.0.0.1/test?options=-csearch_path%3Dbench_web"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def load(url: str, folder: Path, args: argparse.Namespace) -> Load:
    """The plan and people; one answer link per (action, person), answered by form POSTs."""
    actions, persons = http_load.prepare(url, folder)
    links = [answer_links("http://x", SECRET, action_id=a, person_id=persons[i % len(persons)], outbox_id=i + 1)[1].url
             for i, a in enumerate(actions)]
    paths = [urllib.parse.urlsplit(link).path for link in links]
    request = answer(paths, args.clients, args.with_get)
    return Load(request=lambda run: request, what=f"answers ({'GET+POST' if args.with_get else 'POST'})")


def answer(paths: list[str], step: int, with_get: bool) -> Request:
    """Each client answers the link at its index, with the status and note of its next index
    (``step`` on); the time counted covers the form's fields (GET, or computed) and the POST."""
    def request(phase: int, n: int, seq: int) -> Send:
        path = paths[n % len(paths)]
        n += step

        def send(conn: http.client.HTTPConnection) -> tuple[int, str]:
            if with_get:
                conn.request("GET", path)
                response = conn.getresponse()
                fields = dict(HIDDEN.findall(response.read().decode()))
            else:
                token = path.rsplit("/", 1)[1]
                fields = {"csrf": csrf_token(SECRET, token), "nonce": secrets.token_urlsafe(16)}
            body = urllib.parse.urlencode({**fields, "status": STATUSES[n % 3], "note": f"Answer {n}: on its way"})
            conn.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            response.read()
            return response.status, path
        return send
    return request


def serve(url: str) -> None:
    """The child process: serve the app on a free port, say which, run until stdin closes."""
    from bot.web import create_app, start_web

    http_load.serve_until_stdin_closes(start_web(create_app(make_engine(url), secret=SECRET), "127.0.0.1", 0))


def with_get(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--with-get", action="store_true")


def main() -> None:
    http_load.main(__doc__, __file__, noun="answers", count=4000, clients=8, postgres_url=DEFAULT_PG_URL,
                   channel="web", serve=serve, load=load, options=with_get)


if __name__ == "__main__":
    main()
