"""Email through Microsoft 365: the nudge the SMTP channel would send, posted to Microsoft Graph
``POST /users/{graph_mailbox}/sendMail`` as MIME (``[channels.email] transport = "graph"``).

The message is built by :class:`bot.channels.email.MailChannel`, byte for byte the one SMTP
carries: posted as base64 MIME (``Content-Type: text/plain``), Exchange keeps our headers and
our Message-ID, so a reply finds its message the same way whichever transport sent it. Graph
answers 202 and saves the message to Sent Items.

**Finding an earlier send.** When the dispatcher hands over a row whose earlier send may have
gone out (``envelope.resend``: a lease ran out mid-send), the channel looks in Sent Items for
the message's Message-ID (``$filter=internetMessageId eq '…'``) and does not send again if it
is there: ``checks_duplicates`` is True. That needs the same Message-ID on every attempt of an
outbox row, so here it is derived from the row rather than random (:func:`message_id_for`).

The token, the HTTP session and the reading of Graph's errors are :class:`bot.graph.GraphClient`'s
(see there: what is permanent, what is retried, what is a throttle).
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from bot.channels.base import ChannelError, Envelope, Receipt, Secrets
from bot.channels.email import MailChannel
from bot.graph import GraphClient, GraphError, odata_string

# Graph's codes for a recipient it will not send to: the dispatcher moves the message on.
RECIPIENT_CODES = {"ErrorInvalidRecipients", "ErrorRecipientNotFound", "ErrorInvalidRecipientsRecipientType"}


def message_id_for(envelope: Envelope, mailbox: str, domain: str) -> str:
    """The Message-ID of an outbox row, the same on every attempt: ``<chaser.{id}.{hash}@{domain}>``.

    The outbox id alone repeats across databases (a test install and the live one, or a
    database rebuilt after a restore both have a row 17), and a reply matched to the wrong
    one would be recorded against the wrong action; so the hash also covers the row's
    ``created_at`` (to the microsecond) and the sending mailbox. Two rows collide only if two
    databases made a row with the same id at the same microsecond and send from the same
    mailbox. A row without ``created_at`` (an envelope not built by the dispatcher) gets a
    random Message-ID, and so no search in Sent Items.
    """
    assert envelope.created_at is not None
    seed = f"{envelope.outbox_id}|{envelope.created_at.isoformat()}|{mailbox.lower()}"
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:24]
    return f"<chaser.{envelope.outbox_id}.{digest}@{domain}>"


class GraphEmail(MailChannel):
    """Sends from one Microsoft 365 mailbox through Graph."""

    checks_duplicates = True  # a resend looks for its Message-ID in Sent Items first

    def __init__(self, client: GraphClient | None, *, sender: str, reply_to: str | None = None) -> None:
        super().__init__(sender=sender, reply_to=reply_to)
        self.client = client  # None: built by from_settings(table, None), only to check the table

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None, *, sender: str,
                      reply_to: str | None) -> GraphEmail:
        """Built by ``bot.channels.email.Email.from_settings`` (which has checked ``from`` and
        ``reply_to``), with the app's credentials from ``secrets`` (None: only the table is checked)."""
        client = GraphClient.from_settings(table, secrets) if secrets is not None else None
        return cls(client, sender=sender, reply_to=reply_to)

    def send(self, envelope: Envelope) -> Receipt:
        """Send one message (unless a resend finds it already sent); its Message-ID is the receipt."""
        if self.client is None:
            raise ChannelError("the Microsoft 365 channel was built without its credentials (only to check the config)")
        message_id = (message_id_for(envelope, self.client.mailbox, self.domain)
                      if envelope.created_at is not None else None)
        message = self.compose(envelope, message_id)
        if envelope.resend and message_id is not None and self._sent_before(message_id):
            return Receipt(self.kind, {"message_id": message_id})
        try:
            self.client.request(
                "POST", "/sendMail", data=base64.b64encode(message.data), headers={"Content-Type": "text/plain"},
                what=f"sending to {message.to.address}", permission="Mail.Send")
        except GraphError as exc:
            if exc.code in RECIPIENT_CODES:
                raise ChannelError(f"Microsoft 365 will not send to {message.to.address}: {exc}",
                                   permanent=True) from exc
            raise
        return Receipt(self.kind, {"message_id": message.message_id})

    def _sent_before(self, message_id: str) -> bool:
        """Whether Sent Items holds a message with ``message_id`` (an earlier attempt went out)."""
        assert self.client is not None
        found = self.client.request(
            "GET", "/mailFolders/sentitems/messages", what=f"looking for {message_id} in Sent Items",
            permission="Mail.ReadWrite",
            params={"$filter": f"internetMessageId eq {odata_string(message_id)}", "$select": "id", "$top": "1"})
        return bool(found.json().get("value"))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def __repr__(self) -> str:
        return f"GraphEmail({self.client!r})"

