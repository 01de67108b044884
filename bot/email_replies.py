"""Reading a reply email: pure functions, no I/O (STYLE.md item 6).

:func:`read_reply` turns one ``email.message.Message`` (either parsing policy) into a :class:`ParsedReply`: who
sent it, its Message-ID (the reply's external id, so a mail delivered twice is recorded once),
the ids it answers (``In-Reply-To``, then ``References``, newest first: the caller finds our
outbox row by them), the refs named in the subject, whether it is an automatic reply, and what
the new text says, as one :class:`Answer` or one per ref it names ("HW 7 is green, HW 9 done").

Only the new text is read: HTML-only mail is turned to text first (html2text), the quoted
original is cut off by mail-parser-reply (Outlook's From/Sent/To/Subject block with no ``>``,
in several languages; Gmail's "On ... wrote:" even when wrapped), then gateway banners
(``[EXTERNAL] ...``) above the reply and the signature and disclaimer below it are dropped here.

A status is read only where people write one as an answer: at the start of a line or sentence,
after "is", "now", "status" and the like, or right after a ref; "not complete yet" has no
status, and neither has "the green space survey". A letter G, A, R or C counts only alone on a
line. Two different statuses in one answer give no status (the note keeps the words). A date
counts as the new due date when it is not before the day the reply came ("we met on 3/11"
is not a deadline); "end of June" and "30 June" without a year are the next such day.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

import html2text
from mailparser_reply import EmailReplyParser

from bot.inbound import Reply
from storage.dates import parse_when  # the one date reader

# The languages whose Outlook/Gmail quote headers are recognised ("From:", "Von:", "De :" ...).
QUOTE_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl"]
_quotes = EmailReplyParser(languages=QUOTE_LANGUAGES)

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"

# A ref as plans write them: letters then a number, "HW 7", "HW7", "CS-12", "ED 3.2".
REF_RE = re.compile(r"\b([A-Z]{2,6})[ -]?(\d{1,4}(?:\.\d{1,3})?[a-z]?)\b")

# Status words as replies write them (storage.statuses holds the names they map to).
_WORDS = {"green": "green", "on track": "green", "on-track": "green",
          "amber": "amber", "at risk": "amber", "at-risk": "amber",
          "red": "red", "off track": "red", "off-track": "red",
          "complete": "complete", "completed": "complete", "done": "complete", "finished": "complete"}
_LETTERS = {"g": "green", "a": "amber", "r": "red", "c": "complete"}
STATUS_RE = re.compile(r"\b(on[ -]track|off[ -]track|at[ -]risk|green|amber|red|completed?|done|finished)\b", re.I)
# What may stand before a status word for it to be an answer (checked on the same line).
_LEAD_RE = re.compile(
    r"(?:^|[.!?;:,()\[\]\-–—=>*]|\b(?:is|are|now|status|rag|still|all|remains?|currently|as|it's|its|we're|"
    r"they're|that's|be|marked|set to|update|mark it|please mark|put it at|call it)|"
    r"\b[A-Z]{2,6}[ -]?\d{1,4}(?:\.\d{1,3})?[a-z]?)\s*$", re.I)
_NEGATED_RE = re.compile(r"(?:\bnot|n't|\bnever|\bno longer|\bnowhere near|\bnothing|\bhardly)\W+(?:\w+\W+){0,2}$", re.I)
_LETTER_LINE_RE = re.compile(r"^\s*(?:status\s*:?\s*)?([GARC])\s*[.!]?\s*$", re.I)

_DATE_RES = (
    re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b"),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?(?:,?\s+\d{{4}})?\b", re.I),
    re.compile(rf"\b(?:the\s+)?end\s+of\s+{_MONTH}(?:\s+\d{{4}})?\b", re.I),
    re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", re.I),
)
_YEAR_RE = re.compile(r"\b\d{4}\b")

_AUTO_SUBJECT_RE = re.compile(r"^\s*(?:automatic reply|auto(?:matic)?[ -]?reply|autoreply|out of (?:the )?office|"
                              r"abwesenheitsnotiz|réponse automatique)\b", re.I)
_AUTO_BODY_RE = re.compile(r"^\W*(?:thank you for your (?:e-?mail|message)\W+)?(?:i am|i'm|i will be)\s+(?:currently\s+)?"
                           r"(?:out of (?:the )?office|away from (?:the|my) (?:office|desk)|on (?:annual )?leave|"
                           r"on holiday|on parental leave)\b", re.I)
_BANNER_RE = re.compile(r"^\s*\[?(?:external|caution|warning)\b[\]:]?.*$|^\s*this (?:e-?mail|message) "
                        r"(?:came|originated) from outside\b.*$|^\s*you don't often get email from\b.*$", re.I)
_SIGN_OFF_RE = re.compile(r"^\s*(?:(?:kind|best|warm|many)\s+(?:regards|wishes|thanks)|regards|thanks(?: again)?|"
                          r"thank you|cheers|best|yours(?: sincerely| faithfully)?|sent from my \w+.*|"
                          r"get outlook for \w+.*|--\s*)[,.!]?\s*$", re.I)
_DISCLAIMER_RE = re.compile(r"^\s*(?:this (?:e-?mail|message)(?: and any (?:files|attachments))? (?:is|are|may be)\b|"
                            r"the information (?:in|contained in) this\b|confidentiality notice|disclaimer\b|"
                            r"if you have received this (?:e-?mail|message) in error)", re.I)
_GREETING_RE = re.compile(r"^\s*(?:hi|hello|dear|good (?:morning|afternoon))\b[^.!?\n]{0,40}[,!.]?\s*$", re.I)
_NAME_LINE_RE = re.compile(r"^\s*[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+){0,2}\s*$")
_COURTESY_RE = re.compile(r"^(?:many\s+)?(?:thanks|thank you|cheers|ta)\W*$", re.I)
# A date without a year is a new deadline only after one of these words ("by 30 June").
_CUE_RE = re.compile(r"\b(?:by|until|till|to|date|revised|due|expected?|before|for|slipped to|moved to|now)\W*$", re.I)
SIGNATURE_MAX_LINES = 12  # more than this after a sign-off is more reply, not a signature
MAX_TEXT = 20_000  # characters of new text read: a reply, not a report


@dataclass(frozen=True)
class Answer:
    """What a reply says about one action (``ref``), or about the message's action (None)."""

    ref: str | None
    status: str | None
    note: str | None
    due_text: str | None


@dataclass(frozen=True)
class ParsedReply:
    sender: str  # the From address, lower-cased
    message_id: str | None  # without angle brackets
    thread_ids: tuple[str, ...]  # In-Reply-To, then References newest first, without angle brackets
    subject: str
    subject_refs: tuple[str, ...]
    received_at: dt.datetime | None  # from the Date header, if it can be read
    text: str  # the new text: no quote, banner or signature
    body: str  # the whole body as text, quote and all: what is kept as received
    auto_reply: bool
    answers: tuple[Answer, ...]


def read_reply(message: Message, *, received_at: dt.datetime,
               is_ref: Callable[[str], bool] | None = None) -> ParsedReply:
    """Read ``message``; ``received_at`` dates relative dates ("end of June"). ``is_ref`` says
    which ref-shaped words are refs in the tracker (default: every one)."""
    sender = _address(_header(message, "From"))
    subject = " ".join(_header(message, "Subject").split())
    body = body_text(message)
    text = new_text(message, body)
    auto = is_auto_reply(message, subject)
    subject_refs = tuple(dict.fromkeys(r for r in _refs_in(subject) if is_ref is None or is_ref(r)))
    answers = read_answers(text, received_at.date(), is_ref=is_ref)
    if not auto and _AUTO_BODY_RE.search(text) and not any(a.status for a in answers):
        auto = True  # an out-of-office sent without any of its headers
    date = None
    try:
        date = parsedate_to_datetime(str(message["Date"])) if message.get("Date") else None
    except (TypeError, ValueError, IndexError):
        date = None
    return ParsedReply(sender=sender, message_id=_id(message.get("Message-ID")), thread_ids=thread_ids(message),
                       subject=subject, subject_refs=subject_refs, received_at=date, text=text, body=body, auto_reply=auto,
                       answers=answers)


def to_replies(parsed: ParsedReply, *, received_at: dt.datetime, outbox_id: int | None, raw: str | None,
               via: str = "email") -> list[Reply]:
    """The :class:`~bot.inbound.Reply` (one per ref answered) for the one inbound path.

    With no ref in the text, a reply to our message answers that message's action (the inbound
    path says ``unclear`` if it covered several); with no message found, the subject's refs
    name the actions. Each of several answers gets its own external id (``<id>#<ref>``), so
    every one is de-duplicated on its own.
    """
    replies = []
    several = len(parsed.answers) > 1
    for answer in parsed.answers:
        refs: tuple[str, ...] = (answer.ref,) if answer.ref else ()
        if not refs and outbox_id is None:
            refs = parsed.subject_refs
        external = parsed.message_id
        if external and several:
            external = f"{external}#{answer.ref}"
        replies.append(Reply(via=via, sender=parsed.sender, received_at=received_at, refs=refs, outbox_id=outbox_id,
                             status=answer.status, note=answer.note, due_text=answer.due_text, raw=raw,
                             external_id=external, auto_reply=parsed.auto_reply))
    return replies


# --- headers -------------------------------------------------------------------------------


def is_auto_reply(message: Message, subject: str | None = None) -> bool:
    """An out-of-office or other robot, by its headers (RFC 3834 and what Exchange sends) or subject."""
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if message.get("X-Autoreply") is not None or message.get("X-Autorespond") is not None:
        return True
    if str(message.get("Precedence", "")).strip().lower() in ("bulk", "auto_reply", "junk"):
        return True
    subject = subject if subject is not None else str(message.get("Subject", ""))
    return bool(_AUTO_SUBJECT_RE.match(subject))


def thread_ids(message: Message) -> tuple[str, ...]:
    """The message ids this one answers: In-Reply-To first, then References from the newest."""
    found = [_id(part) for part in re.findall(r"<[^<>\s]+>", str(message.get("In-Reply-To", "")))]
    found += [_id(part) for part in reversed(re.findall(r"<[^<>\s]+>", str(message.get("References", ""))))]
    return tuple(dict.fromkeys(i for i in found if i))


def _id(value: object) -> str | None:
    text = str(value or "").strip()
    return text.strip("<>").strip() or None


def _address(value: object) -> str:
    found = getaddresses([str(value)])
    return found[0][1].strip().lower() if found and found[0][1] else str(value).strip().lower()


# --- the body -------------------------------------------------------------------------------


def body_text(message: Message) -> str:
    """The text part, else the HTML part turned to text; decoded from base64, quoted-printable
    and the charset it names (Windows-1252 too). Works on a message parsed with either policy;
    ``policy.compat32`` is four times faster (no header objects built), and is what the inbox uses."""
    plain = html = None
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.get_filename() or \
                str(part.get("Content-Disposition", "")).lower().startswith("attachment"):
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain" and plain is None:
            plain = part
        elif subtype == "html" and html is None:
            html = part
    part = plain or html
    if part is None:
        return ""
    text = _decoded(part)
    if part is html:
        text = html_to_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decoded(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):  # an unknown or wrong charset: read what we can
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("windows-1252", "replace")


def _header(message: Message, name: str) -> str:
    """A header as text, encoded words decoded, whatever policy parsed the message."""
    value = message.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or "=?" not in value:
        return str(value)
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return str(value)


def html_to_text(html: str) -> str:
    """HTML as plain text: blockquotes become ``>`` lines (a quote is still a quote), links
    and images dropped, no wrapping (it would split a status from its ref)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    return converter.handle(html)


def new_text(message: Message, body: str | None = None) -> str:
    """Only what the sender wrote in this message (``body``: its :func:`body_text`, if read)."""
    text = (body if body is not None else body_text(message))[:MAX_TEXT * 5]
    reply = _quotes.parse_reply(text=text) or ""
    lines = [line.rstrip() for line in reply.split("\n")]
    lines = [line for line in lines if not re.fullmatch(r"\s*(?:\*\s*){3,}|\s*_{5,}|\s*-{5,}.*", line)]
    # What is still quoted ("> ..."): a bottom-posted or interleaved reply keeps only its own lines.
    lines = [line for line in lines if not line.lstrip().startswith(">")]
    lines = _drop_banner(lines)
    lines = _drop_signature(lines)
    # A name alone on the last line, after a blank line ("Jo", "Priya Shah"), signs the reply.
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > 2 and not lines[-2].strip() and _NAME_LINE_RE.match(lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines).strip()[:MAX_TEXT]


def _drop_banner(lines: list[str]) -> list[str]:
    """Gateway banners above the reply ("[EXTERNAL] This email came from outside ...")."""
    while lines and (not lines[0].strip() or _BANNER_RE.match(lines[0])):
        lines = lines[1:]
    return lines


def _drop_signature(lines: list[str]) -> list[str]:
    """From the first sign-off ("Kind regards", "Sent from my iPhone", "-- ") with a short tail,
    or the first disclaimer paragraph, to the end."""
    for i, line in enumerate(lines):
        if _DISCLAIMER_RE.match(line):
            return lines[:i]
        if i > 0 and _SIGN_OFF_RE.match(line) and len([x for x in lines[i:] if x.strip()]) <= SIGNATURE_MAX_LINES:
            return lines[:i]
        if i == 0 and re.match(r"^\s*(?:sent from my|get outlook for)\b", line, re.I):
            return []
    return lines


# --- what the text says ---------------------------------------------------------------------


def read_answers(text: str, today: dt.date, *, is_ref: Callable[[str], bool] | None = None) -> tuple[Answer, ...]:
    """One answer for the whole text, or one per ref when it names refs."""
    lines = text.split("\n")
    if lines and _GREETING_RE.match(lines[0]):
        text = "\n".join(lines[1:]).strip()
    named = [m for m in REF_RE.finditer(text) if is_ref is None or is_ref(_ref(m))]
    if not named:
        return (_answer(None, text, today),)
    refs = list(dict.fromkeys(_ref(m) for m in named))
    if len(refs) == 1:
        return (_answer(refs[0], text, today),)
    # Each ref answers with the text from it to the next ref named ("HW 7 is green, HW 9 done").
    answers: dict[str, Answer] = {}
    starts = [m.start() for m in named] + [len(text)]
    for match, end in zip(named, starts[1:]):
        ref = _ref(match)
        if ref in answers:
            continue
        answers[ref] = _answer(ref, text[match.start():end].strip(" ,;\n"), today, ref_first=True)
    return tuple(answers.values())


def _ref(match: re.Match[str]) -> str:
    return f"{match.group(1)} {match.group(2)}"


def _refs_in(text: str) -> list[str]:
    return [_ref(m) for m in REF_RE.finditer(text)]


def _answer(ref: str | None, text: str, today: dt.date, *, ref_first: bool = False) -> Answer:
    status, spans = read_status(text)
    due = read_due(text, today)
    note = text
    if ref_first and ref is not None:  # "HW 9 done": the ref is said by the answer, not the note
        note = REF_RE.sub("", note, count=1)
    if status is not None and spans:
        start, end = spans[0]
        head = note[:start] if not ref_first else ""
        if not ref_first and re.fullmatch(r"[\s\-–—:*>]*(?:(?:status|rag)\b[\s:=\-–—]*)?", head, re.I):
            note = note[end:]  # "Amber — survey delayed": the status word leads, the rest is the note
        elif ref_first:
            note = _strip_status_lead(note)
    note = note.strip(" \t\n,.;:-–—!")
    note = re.sub(r"^(?:is|now|status|rag)\b\s*", "", note, flags=re.I).strip(" \t\n,.;:-–—!") if ref_first else note
    if _COURTESY_RE.match(note):
        note = ""
    return Answer(ref=ref, status=status, note=note or None, due_text=due)


def _strip_status_lead(note: str) -> str:
    cut = re.match(r"^\s*[:\-–—]?\s*(?:is\s+)?(?:now\s+)?(?:status\s*:?\s*)?", note, re.I)
    rest = note[cut.end():] if cut else note
    word = STATUS_RE.match(rest)
    return rest[word.end():] if word else note


def read_status(text: str) -> tuple[str | None, list[tuple[int, int]]]:
    """The status the text gives as an answer, and where it is written; None if none or two differ."""
    found: list[tuple[str, tuple[int, int]]] = []
    offset = 0
    for line in text.split("\n"):
        letter = _LETTER_LINE_RE.match(line)
        if letter:
            found.append((_LETTERS[letter.group(1).lower()], (offset + letter.start(1), offset + letter.end(1))))
        else:
            for match in STATUS_RE.finditer(line):
                before = line[:match.start()]
                if _NEGATED_RE.search(before):
                    continue
                if not _LEAD_RE.search(before) and not re.search(r"\b(?:or|and|then)\s+$", before, re.I):
                    # "or red if the bid fails" counts, to make "Green, or red ..." no answer.
                    continue
                if re.match(r"\s*(?:yet|soon|by|in time|later)\b", line[match.end():], re.I) and \
                        _words(match.group(1)) in ("complete", "completed", "done", "finished"):
                    # "done by Friday", "complete soon": a plan, not a status.
                    continue
                found.append((_WORDS[_words(match.group(1))], (offset + match.start(), offset + match.end())))
        offset += len(line) + 1
    statuses = {s for s, _ in found}
    if len(statuses) != 1:
        return None, []
    return statuses.pop(), [span for _, span in found]


def _words(word: str) -> str:
    return " ".join(word.lower().replace("-", " ").split())


def read_due(text: str, today: dt.date) -> str | None:
    """The new due date as written (a year added when it has none), if one is given; dates
    before ``today`` are when something happened, not a deadline."""
    candidates: list[tuple[int, str]] = []
    for pattern in _DATE_RES:
        for match in pattern.finditer(text):
            candidates.append((match.start(), match.group(0)))
    for start, written in sorted(candidates):
        yearless = not _YEAR_RE.search(written) and not re.search(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2}\b", written)
        if yearless and not written.lower().lstrip().startswith(("end", "the end")) and \
                not _CUE_RE.search(text[max(0, start - 20):start]):
            continue  # "went to cabinet on 24 November": when it happened
        day, text_with_year = _day_of(written, today)
        if day is not None and day >= today:
            return text_with_year
    return None


def _day_of(written: str, today: dt.date) -> tuple[dt.date | None, str]:
    """The last day ``written`` can mean, and the text to record (with the year if it had none)."""
    text = " ".join(written.split())
    if not _YEAR_RE.search(text) and not re.search(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2}\b", text):
        for year in (today.year, today.year + 1):
            parsed = parse_when(f"{text} {year}")
            if parsed.end is not None and parsed.end >= today:
                return parsed.end, f"{text} {year}"
        return None, text
    parsed = parse_when(text)
    return parsed.end, text


__all__ = ["Answer", "ParsedReply", "body_text", "html_to_text", "is_auto_reply", "new_text", "read_answers",
           "read_due", "read_reply", "read_status", "thread_ids", "to_replies"]
