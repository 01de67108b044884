"""The Slack app: one ``slack_bolt.App``, built here, with the listeners of bot.slack_listeners.

Two ways in, chosen by ``[channels.slack] mode``:

- **Socket Mode** (the default): Chaser opens a websocket to Slack with the app-level token
  ``SLACK_APP_TOKEN``; nothing has to reach Chaser from outside, so it works behind a council
  firewall. :func:`socket_mode` gives the handler that ``chaser run`` starts beside the web app.
- **HTTP**: Slack posts events and clicks to ``POST /slack/events`` on the web app
  (:func:`events_route`). Bolt checks every request's signature (``v0`` HMAC-SHA256 of
  ``v0:{timestamp}:{body}`` with ``SLACK_SIGNING_SECRET``, and a timestamp within 5 minutes):
  a bad, missing or stale signature is a 401 and reaches no listener.

``process_before_response=True``: bolt answers Slack when the listener returns, not as soon as
it calls ``ack()``. The listeners acknowledge first and commit the answer (a few milliseconds)
before returning, so the 200 means the answer is in the tracker; their calls back to Slack run
after, on a thread pool (bot.slack_listeners). Without it bolt runs each listener on its own
thread and polls, every 10 ms, for the acknowledgement.

The route runs bolt's dispatch on Starlette's thread pool: bolt's Starlette adapter for a sync
App (``slack_bolt.adapter.starlette.SlackRequestHandler``) calls it on the event loop itself,
where every database commit and call to Slack would stall the answer pages of every other
request. Its request and response conversions are used as they are.
"""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.channels.slack import DEFAULT_API_URL, Slack
from bot.slack_listeners import After, Refresh, SlackAnswers
from storage.models import Clock, utcnow

log = logging.getLogger("chaser.slack")
# How often Socket Mode pings Slack and checks its connection (bolt's default): a connection that
# dropped without a close from Slack is found, and a new one opened, within this many seconds.
SOCKET_PING_SECONDS = 10.0


def slack_settings(table: dict[str, Any]) -> tuple[str, str]:
    """``mode`` and ``api_url`` of a ``[channels.slack]`` table (the Slack channel checks its keys)."""
    mode = table.get("mode", "socket")
    api_url = table.get("api_url", DEFAULT_API_URL)
    if not api_url.endswith("/"):
        api_url += "/"  # slack_sdk appends the method name to the base URL as it is
    return mode, api_url


def build_app(engine: Engine, config: Any, *, token: str, signing_secret: str | None = None,
              clock: Clock = utcnow, base_url: str = DEFAULT_API_URL, refresh: Refresh | None = None,
              after: After | None = None, channel: Slack | None = None) -> App:
    """The bolt app. ``token``: the bot token (``SLACK_BOT_TOKEN``); ``signing_secret``: checks
    requests in HTTP mode (Socket Mode has none: the websocket is authenticated by the app
    token); ``base_url``: ``[channels.slack] api_url``; ``channel``: the Slack channel that
    updates a clicked message (the dispatcher's, so both keep to one set of rate limits; default:
    one of its own); ``refresh`` and ``after``: see bot.slack_listeners.SlackAnswers."""
    app = App(
        token=token,
        # Socket Mode needs no signing secret; bolt still wants a string to build its verifier.
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=True,
        # auth.test is asked on the first request, not at start: a Slack that is briefly down
        # must not stop `chaser run` (nor the email and web parts of it).
        token_verification_enabled=False,
        logger=logging.getLogger("chaser.slack.bolt"),
    )
    # Bolt builds its own WebClient from the token (given a client of ours instead, it warns
    # whenever SLACK_BOT_TOKEN is also in the environment, as it is in production); it is pointed
    # at ``api_url`` here, before anything calls Slack.
    app.client.base_url = base_url
    channel = channel or Slack(token=token, api_url=base_url, clock=clock)
    SlackAnswers(engine, config, clock=clock, channel=channel, refresh=refresh, after=after).register(app)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Logged here with its traceback; Slack (and so the person) gets bolt's bare 500, no text.
        kind = body.get("type") or body.get("command") or "request"
        log.error("slack: %s failed: %s", kind, error, exc_info=error)

    return app


def events_route(app: App, path: str = "/slack/events") -> Route:
    """``POST /slack/events`` for the web app (``bot.web.create_app(routes=...)``)."""

    async def events(request: Request) -> Response:
        body = await request.body()
        bolt_request = to_bolt_request(request, body)
        return to_starlette_response(await run_in_threadpool(app.dispatch, bolt_request))

    return Route(path, events, methods=["POST"], name="slack_events")


def socket_mode(app: App, app_token: str, *, ping_interval: float = SOCKET_PING_SECONDS) -> Any:
    """The Socket Mode handler for ``app`` (``connect()`` starts it in its own threads,
    ``close()`` stops it); its websocket URL comes from ``apps.connections.open`` at the app's
    ``api_url``. It acknowledges each envelope with its ``envelope_id`` when the listener returns
    (so after the answer is committed), reconnects at once when Slack asks it to
    (``disconnect``), and within ``ping_interval`` seconds when the connection drops."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token, logger=logging.getLogger("chaser.slack.socket"),
                             ping_interval=ping_interval)
