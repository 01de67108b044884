"""The email frame: what a mail client reads back from build_email's bytes."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import re

import pytest

from bot.mime import BadAddress, Mailbox, Part, build_email

SENT_AT = dt.datetime(2026, 4, 28, 9, 30, tzinfo=dt.timezone.utc)
SENDER = Mailbox.parse("Chaser", "chaser@lambeth.example.gov.uk")


def build(**overrides: object) -> tuple[bytes, str]:
    fields: dict[str, object] = dict(
        sender=SENDER, to=Mailbox.parse("Priya Shah", "priya.shah@lambeth.example.gov.uk"),
        subject="Update needed: HW 3", text="Hello Priya,\n\nPlease reply.\n", html="<p>Hello Priya</p>\n",
        sent_at=SENT_AT, domain="lambeth.example.gov.uk",
    )
    fields.update(overrides)
    return build_email(**fields)  # type: ignore[arg-type]


def body(message: email.message.EmailMessage, subtype: str) -> str:
    """A part's text as a mail client shows it (line ends in the canonical CRLF, read as LF)."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def read(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert not message.defects
    for part in message.walk():
        assert not part.defects, part.defects
    return message


def test_round_trip_through_the_standard_parser() -> None:
    data, message_id = build(extra_headers=(("X-Chaser-Outbox-Id", "42"),))
    message = read(data)
    assert message["Message-ID"] == message_id
    assert message["From"].addresses[0].addr_spec == "chaser@lambeth.example.gov.uk"
    assert message["To"].addresses[0].display_name == "Priya Shah"
    assert message["Subject"] == "Update needed: HW 3"
    assert message["Date"].datetime == SENT_AT
    assert message["X-Chaser-Outbox-Id"] == "42"
    assert message["MIME-Version"] == "1.0"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert body(message, "plain") == "Hello Priya,\n\nPlease reply.\n"
    assert body(message, "html") == "<p>Hello Priya</p>\n"


def test_every_line_ends_in_crlf_and_stays_short() -> None:
    long_line = "word " * 60 + "x" * 200 + "\n"
    data, _ = build(subject="Update needed: " + "a long action title " * 10, text=long_line, html=long_line)
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    message = read(data)
    assert message["Subject"] == "Update needed: " + ("a long action title " * 10).strip()
    assert body(message, "plain") == long_line


def test_non_ascii_names_subject_and_text_survive() -> None:
    to = Mailbox.parse("Zoë Ó Súilleabháin", "zoe@lambeth.example.gov.uk")
    text = "Café rota — due “soon” 🙂\nÉquipe = 100%\n"
    data, _ = build(to=to, subject="Mise à jour — Zoë", text=text, html=f"<p>{text}</p>")
    assert data.isascii()
    message = read(data)
    assert message["To"].addresses[0].display_name == "Zoë Ó Súilleabháin"
    assert message["Subject"] == "Mise à jour — Zoë"
    assert body(message, "plain") == text


def test_body_text_cannot_break_the_frame() -> None:
    # Text that looks like MIME structure, including our own boundary prefix, stays text.
    hostile = "--=_chaser_0\r\n--=_chaser_0--\nContent-Type: text/html\n\n=_chaser_ trailing space \n.\n\rlone CR\n"
    data, _ = build(text=hostile, html=hostile)
    message = read(data)
    assert len(list(message.iter_parts())) == 2
    assert body(message, "plain") == hostile.replace("\r\n", "\n")  # a lone CR is kept, as =0D


def test_headers_cannot_be_injected() -> None:
    to = Mailbox.parse('Eve "<b>"\nBcc: x@evil.example', "priya.shah@lambeth.example.gov.uk")
    data, _ = build(to=to, subject="Hi\r\nBcc: y@evil.example", extra_headers=(("X-Note", "a\nBcc: z@evil.example"),))
    message = read(data)
    assert message["Bcc"] is None
    assert [address.addr_spec for address in message["To"].addresses] == ["priya.shah@lambeth.example.gov.uk"]
    assert message["Subject"] == "Hi Bcc: y@evil.example"


@pytest.mark.parametrize("address", ["not an address", "priya@", "@lambeth.example.gov.uk", "a@b@c", ""])
def test_unusable_addresses_are_refused(address: str) -> None:
    with pytest.raises(BadAddress, match="not a usable email address"):
        Mailbox.parse("Priya", address)


def test_each_message_has_its_own_id_and_boundary() -> None:
    first, first_id = build()
    second, second_id = build()
    assert first_id != second_id
    boundaries = {re.search(rb'boundary="([^"]+)"', data).group(1) for data in (first, second)}  # type: ignore[union-attr]
    assert len(boundaries) == 2


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # binary, with CR, LF and "--" inside
PDF = b"%PDF-1.7\n" + bytes(range(255, -1, -1)) * 40 + b"\n--=_chaser_\r\n%%EOF\n"


def test_a_digest_has_its_chart_inline_by_content_id_and_its_pdf_attached() -> None:
    chart = Part("chart.png", "image/png", PNG, content_id="chart.42@lambeth.example.gov.uk")
    data, _ = build(html='<p>Summary</p><img src="cid:chart.42@lambeth.example.gov.uk" alt="Counts">',
                    inline=(chart,), attachments=(Part("edi-board-2026-11.pdf", "application/pdf", PDF),))
    message = read(data)
    assert message.get_content_type() == "multipart/mixed"
    related, attached = message.get_payload()
    assert related.get_content_type() == "multipart/related" and related.get_param("type") == "multipart/alternative"
    alternative, image = related.get_payload()
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    assert image["Content-ID"] == "<chart.42@lambeth.example.gov.uk>" and image.get_content() == PNG
    assert image.get_content_disposition() == "inline"
    assert 'src="cid:chart.42@lambeth.example.gov.uk"' in body(message, "html")
    assert body(message, "plain") == "Hello Priya,\n\nPlease reply.\n"
    assert attached.get_content_disposition() == "attachment" and attached.get_filename() == "edi-board-2026-11.pdf"
    assert attached.get_content() == PDF
    assert [p.get_filename() for p in message.iter_attachments()] == ["edi-board-2026-11.pdf"]
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))


def test_an_attachment_without_an_inline_image_is_mixed_around_the_alternative() -> None:
    data, _ = build(attachments=(Part("r.pdf", "application/pdf", PDF),))
    message = read(data)
    alternative, attached = message.get_payload()
    assert (message.get_content_type(), alternative.get_content_type()) == ("multipart/mixed", "multipart/alternative")
    assert attached.get_content() == PDF
    assert read(build()[0]).get_content_type() == "multipart/alternative"  # a nudge: as it always was


def test_parts_refuse_what_would_break_their_headers() -> None:
    with pytest.raises(ValueError, match="file name"):
        Part('a".pdf', "application/pdf", b"")
    with pytest.raises(ValueError, match="Content-ID"):
        Part("c.png", "image/png", b"", content_id="no at sign")
    with pytest.raises(ValueError, match="content_id"):
        build(inline=(Part("c.png", "image/png", b""),))
