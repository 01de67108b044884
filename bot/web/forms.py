"""Reading a form POST whole or not at all, and proving it came from our own page.

A body must declare its length (``Content-Length``, no chunked encoding), at most
MAX_FORM_BYTES, and arrive whole: else BadRequest (411, 413, 400 "cut short", 415), and nothing
is recorded. A body that stops arriving — the client half-closed, or the server's request
deadline passed (bot.web.server) — ends where it stopped, so it is "cut short", never used as
far as it got. A refused body is read and dropped (up to DRAIN_BYTES) before answering, so the
client reads our page instead of a connection reset.

Every form a page renders carries two hidden fields: ``csrf``, an HMAC of the page's answer
token under the link secret (another site cannot post a form it has not seen), and ``nonce``,
a random one-time value that the answer path uses as the request's external id, so the same
page sent twice is one answer.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from storage.updates import NOTE_MAX_CHARS

MAX_FORM_BYTES = 20_000  # a 5,000-character note, percent-encoded, fits with room to spare
FORM_FIELDS = 10  # status, note, due, csrf, nonce: anything with many more fields is not our form
DRAIN_BYTES = 1_000_000  # of a refused body, read and dropped before answering
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class BadRequest(Exception):
    """A request the form refuses before reading anything else: ``status`` and a sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def csrf_token(secret: str, answer_token: str) -> str:
    """The hidden ``csrf`` field of the form for ``answer_token``: HMAC-SHA256(secret, "csrf:" + token)."""
    return hmac.new(secret.encode(), b"csrf:" + answer_token.encode(), hashlib.sha256).hexdigest()


def from_our_page(secret: str, answer_token: str, fields: dict[str, str]) -> bool:
    """Did the form carry the ``csrf`` our page put there (compared in constant time) and a nonce?"""
    sent = fields.get("csrf", "")
    expected = csrf_token(secret, answer_token)
    return (hmac.compare_digest(sent.encode(), expected.encode())
            and _NONCE.fullmatch(fields.get("nonce", "")) is not None)


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


async def read_form(request: Request, *, max_bytes: int = MAX_FORM_BYTES, max_fields: int = FORM_FIELDS,
                    multipart: bool = False) -> dict[str, str]:
    """The fields of a form POST, read whole or not at all (BadRequest). The limits are the
    answer form's unless a page with more rows (bot.web.mine) sets its own, still bounded.
    ``multipart`` also accepts ``multipart/form-data`` (text fields only), which RFC 8058 lets a
    mail program use for its one-click unsubscribe."""
    headers = request.headers
    if "transfer-encoding" in headers:
        await drain(request, DRAIN_BYTES)
        raise BadRequest(411, "The form must be sent with its length; please use the form's button.")
    declared = headers.get("content-length", "").strip()
    if not declared:
        await drain(request, DRAIN_BYTES)
        raise BadRequest(411, "The form arrived without its length; please use the form's button.")
    if not declared.isdigit():  # "-1", "1e9", " 12 34"... (uvicorn refuses these first; other servers may not)
        await drain(request, DRAIN_BYTES)
        raise BadRequest(400, f"The form's length {declared[:20]!r} is not a number of bytes.")
    length = int(declared)
    if length > max_bytes:
        await drain(request, min(length, DRAIN_BYTES))
        raise BadRequest(413, f"The update is larger than {max_bytes // 1000:,} KB; a note can be at most "
                         f"{NOTE_MAX_CHARS:,} characters. Nothing was recorded.")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
    except ClientDisconnect:  # gone: nobody will read the answer, but nothing is recorded either
        pass
    if len(body) != length:
        raise BadRequest(400, "The form arrived cut short, so nothing was recorded; please send it again.")
    content_type = headers.get("content-type", "application/x-www-form-urlencoded").split(";")[0].strip().lower()
    if content_type == "multipart/form-data" and multipart:
        return _multipart(headers.get("content-type", ""), bytes(body))
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest(415, "This is not the answer form's data.")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "The form's data could not be read, so nothing was recorded.") from None
    return {key: values[0] for key, values in parsed.items()}


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a small ``multipart/form-data`` body, read by the stdlib MIME parser."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {' '.join(content_type.split())}\r\n\r\n".encode("latin-1", "replace") + body)
    if not message.is_multipart():
        raise BadRequest(400, "The form's data could not be read, so nothing was recorded.")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or len(fields) >= FORM_FIELDS:
            continue
        payload = part.get_payload(decode=True) or b""
        fields.setdefault(name, payload.decode("utf-8", "replace"))
    return fields


async def drain(request: Request, limit: int) -> None:
    """Read and drop up to ``limit`` bytes of a body we will not use, until the client stops
    sending: closing on unread data makes TCP reset the connection, and the client would see a
    reset instead of our page. A client that waits for ``100 Continue`` has sent nothing yet:
    reading would invite the body, so it is left alone."""
    if request.headers.get("expect", "").lower() == "100-continue":
        return
    try:
        async for chunk in request.stream():
            limit -= len(chunk)
            if limit <= 0:
                return
    except ClientDisconnect:
        return
    except HTTPException as exc:  # the app-wide body limit (bot.web.app.MAX_BODY_BYTES) was reached
        if exc.status_code != 413:
            raise
