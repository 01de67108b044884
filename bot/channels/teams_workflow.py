"""Teams Workflows webhooks: a board digest's summary card posted to a channel through a flow.

Office 365 connectors (Incoming Webhooks) are retired; their replacement is a flow made in the
Teams **Workflows** app from the template "Post to a channel when a webhook request is
received" (trigger "When a Teams webhook request is received"). The flow's URL takes a POST of
``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}`` and
answers ``202 Accepted``; the flow then posts the card to the channel it was made in.

Only board digests come here: a board's ``[[boards]] teams_webhook_env`` names the
environment variable holding its flow's URL, and ``jobs.digest_send`` queues one row per board
and month with that NAME as its recipient and this channel preset (``kind`` is
``teams_workflow``; it is never in ``[channels] order`` and nothing is routed to it). The URL
is a secret (anyone holding it can post to the channel): it is read through
:class:`bot.channels.base.Secrets` when the message is sent (``NAME`` or the file in
``NAME_FILE``), and never written into an error, a receipt or a log line — errors name the
board and the variable. ``[channels.teams_workflow]`` needs no table; it may set ``timeout``
(seconds, default 30).

Answers: 200 or 202 is sent; 429 is throttled (``Retry-After``, else a minute); 408 and 5xx,
timeouts and refused connections are retried; 401/403 (the flow's "Who can trigger the flow"
is not "Anyone"), 404 (the flow was deleted or turned off, or the URL was cut), 413 (too large)
and any other 4xx will not change on a retry: permanent, and the row is parked with the reason
(``chaser outbox retry N`` once it is fixed). HTTPS trusts ``REQUESTS_CA_BUNDLE`` or
``SSL_CERT_FILE`` when set (:func:`bot.graph.trusted_cas`). A flow cannot be asked what it
posted, so a resend after a lost lease is counted as a possible duplicate.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from bot.channels.base import ChannelError, Envelope, Receipt, Recipient, Secrets, check_keys
from bot.graph import trusted_cas
from chaser.errors import ConfigError

KIND = "teams_workflow"
KEYS = {"timeout"}  # no "enabled": a board with teams_webhook_env is what turns it on
THROTTLED_SECONDS = 60.0  # a 429 without Retry-After
SAID_MAX = 200  # how much of the flow's error message goes into the row's last_error


class _HideWebhooks(logging.Filter):
    """urllib3 logs each request line at DEBUG (``"POST /workflows/…?…&sig=… HTTP/1.1" 202``):
    a flow's path and signature are its URL, so they are replaced before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, str) and "sig=" in arg for arg in record.args):
            record.args = tuple("<a webhook URL>" if isinstance(arg, str) and "sig=" in arg else arg
                                for arg in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_HideWebhooks())


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


class TeamsWorkflow:
    """Posts board digests to the Workflows webhook whose URL is in the variable the row names."""

    kind = KIND
    checks_duplicates = False

    def __init__(self, secrets: Secrets | None = None, *, timeout: float = 30.0) -> None:
        self.secrets = secrets
        self.timeout = timeout
        self.session = requests.Session()  # its connection pool is shared by the send threads

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> TeamsWorkflow:
        """``[channels.teams_workflow]`` (optional) checked; the URLs are read per message, when sent."""
        check_keys(table, KIND, KEYS)
        timeout = table.get("timeout", 30)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"'channels.{KIND}.timeout' must be a number of seconds above 0, got {timeout!r}")
        return cls(secrets, timeout=float(timeout))

    def address(self, recipient: Recipient) -> str | None:
        """The NAME of the variable holding the board's webhook URL (never the URL)."""
        return recipient.address(KIND)

    def webhook_url(self, name: str, board: str, outbox_id: int) -> str:
        """The URL in the variable ``name``; a permanent ChannelError naming the variable (never
        showing its value) when it is not set or not an https:// URL."""
        again = f"set it and run 'chaser outbox retry {outbox_id}'"
        try:
            url = (self.secrets or Secrets({})).get(name)
        except ConfigError as exc:
            raise ChannelError(f"board {board!r}'s Teams webhook: {exc}", permanent=True) from None
        if not url:
            raise ChannelError(f"board {board!r}'s Teams webhook: the environment variable {name} (named by "
                               f"teams_webhook_env) is not set, nor {name}_FILE; it must hold the URL of the "
                               f"channel's Workflows flow: {again}", permanent=True)
        parts = urlsplit(url.strip())
        if parts.scheme != "https" or not parts.netloc:
            raise ChannelError(f"board {board!r}'s Teams webhook: {name} does not hold an https:// URL (copy the "
                               f"URL of the flow's trigger into it): {again}", permanent=True)
        return url.strip()

    def send(self, envelope: Envelope) -> Receipt:
        """POST the digest's card to the board's flow (module docstring for what each answer means)."""
        from bot.teams_digest import digest_card, message  # the card needs the templates: imported when sending

        board = envelope.recipient_name
        name = self.address(envelope.recipient)
        if envelope.kind != "digest" or envelope.digest is None:
            raise ChannelError(f"the {KIND} channel posts only board digests, not a {envelope.kind}", permanent=True)
        if not name:
            raise ChannelError(f"the digest for board {board!r} names no teams_webhook_env variable", permanent=True)
        url = self.webhook_url(name, board, envelope.outbox_id)
        body = json.dumps(message(digest_card(envelope)), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        where = f"posting board {board!r}'s digest to the Teams webhook in {name}"
        try:
            response = self.session.post(url, data=body, timeout=self.timeout, verify=trusted_cas(),
                                            allow_redirects=False,
                                            headers={"Content-Type": "application/json; charset=utf-8"})
        except requests.exceptions.SSLError:
            raise ChannelError(f"{where}: the server's certificate is not trusted (behind a TLS-inspecting proxy, "
                               "name its CA in REQUESTS_CA_BUNDLE)") from None
        except requests.exceptions.Timeout:
            raise ChannelError(f"{where}: no answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:  # its text holds the URL: only its kind is said
            raise ChannelError(f"{where}: {exc.__class__.__name__} (could not connect)") from None
        try:
            status = response.status_code
            if status in (200, 202):
                ref = {"webhook_env": name, "status": str(status), "outbox_id": str(envelope.outbox_id)}
                run = response.headers.get("x-ms-workflow-run-id")
                if run:
                    ref["run"] = run[:200]
                return Receipt(self.kind, ref)
            raise self._error(response, where, name, url, envelope.outbox_id)
        finally:
            response.close()

    @staticmethod
    def _error(response: requests.Response, where: str, name: str, url: str, outbox_id: int) -> ChannelError:
        status = response.status_code
        said = _said(response, url)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return ChannelError(f"{where}: throttled (429{said})", throttled=True,
                                retry_after=retry_after if retry_after is not None else THROTTLED_SECONDS)
        if status == 408 or status >= 500:
            return ChannelError(f"{where}: HTTP {status}{said}", retry_after=retry_after)
        if status in (401, 403):
            why = ("the flow refused the post: in its trigger, 'Who can trigger the flow' must be 'Anyone' "
                   "(Chaser posts without signing in)")
        elif status == 404:
            why = (f"no flow answers at the URL in {name}: the workflow was deleted or turned off, or the URL "
                   f"was cut when copied. Make it again in the channel (Workflows, 'Post to a channel when a "
                   f"webhook request is received') and put its URL in {name}")
        elif status == 413:
            why = "the card is too large for Teams"
        elif 300 <= status < 400:
            why = f"the URL in {name} redirects elsewhere; put the flow trigger's own URL in {name}"
        else:
            why = ("the flow refused the card (a flow made from another template than 'Post to a channel when a "
                   "webhook request is received' may expect another message)")
        return ChannelError(f"{where}: HTTP {status}{said}. {why[0].upper()}{why[1:]}; then run "
                            f"'chaser outbox retry {outbox_id}'", permanent=True)

    def close(self) -> None:
        """Close the pooled connections (at shutdown); a later send opens new ones."""
        self.session.close()

    def __repr__(self) -> str:  # never a URL
        return f"TeamsWorkflow(timeout={self.timeout:g})"


def _said(response: requests.Response, url: str) -> str:
    """``, ErrorCode: message`` from a Power Automate error body (cut, with the URL hidden), or ''."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    code, text = str(error.get("code") or ""), " ".join(str(error.get("message") or "").split())
    said = ": ".join(part for part in (code, text.rstrip(".")) if part)
    for secret in (url, url.split("?", 1)[0]):  # the whole URL first, then its path
        said = said.replace(secret, "<the webhook URL>")
    said = re.sub(r"sig=[^&\s\"']+", "sig=<hidden>", said)
    return f", {said[:SAID_MAX]}" if said else ""
