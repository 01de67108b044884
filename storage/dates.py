"""Read the "when" cell of a council action plan into a due date.

Council plans write deadlines any way a person writes one: ``May-21``, ``Q3 21/22``,
``Summer term, 2023``, ``November 2023 March 2024``, ``On-going``, or a real Excel date
formatted to show only a month. :func:`parse_when` turns one cell into a :class:`ParsedDate`:
the period named by the first date in the cell (its last day is the due date), any further
dates as :class:`KeyDate` milestones, a recurrence keyword, and a warning whenever part of the
cell looked like a date but could not be read. It never raises and never drops the raw text.

Readings chosen where the text is ambiguous:

* Numeric dates are always UK day-first: ``03/04/2023`` is 3 April 2023.
* Two-digit years are 20YY.
* A year pair (``2022/23``, ``22-23``, ``FY22/23``) is the UK financial year, April to March.
  When a pair could also be a month (``2011/12``, ``11/12``), the financial year wins, because
  that is how plans write it; ``2023-03`` and ``03/2023`` are months (the second number cannot
  follow the first as a year).
* ``Q1``..``Q4`` with a year pair are financial quarters (Q1 = Apr-Jun ... Q4 = Jan-Mar of the
  second year); with a single year they are calendar quarters (Q3 2022 = Jul-Sep 2022).
* School terms (and a bare season before a year, ``Summer 2023``) use fixed spans: autumn =
  1 Sep-31 Dec, spring = 1 Jan-31 Mar, summer = 1 Apr-31 Jul of the year given. Real term dates
  differ by school and by year; these spans cover every English term so a deadline "by the
  end of the summer term" is never chased early. With an academic year pair
  (``Spring term 2023/24``) autumn falls in the first year, spring and summer in the second.
* A range inside one date (``20-24 March 2023``, ``28 March - 3 April 2023``,
  ``April-June 2023``) is one period running to its last day. Two complete dates
  (``Nov 2023 - Mar 2024``) are two dates: the first is due and the second is a key date.
"""

from __future__ import annotations

import calendar
import datetime
import difflib
import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Callable, Literal

__all__ = ["KeyDate", "ParsedDate", "Precision", "format_day", "parse_when"]

Precision = Literal["day", "month", "quarter", "term", "year"]


@dataclass(frozen=True)
class KeyDate:
    """A further date in the same cell, e.g. the second phase of an action."""

    date: datetime.date  # the END of the period the fragment names
    text: str  # the fragment as written, e.g. "March 2024"


@dataclass(frozen=True)
class ParsedDate:
    """What one "when" cell says.

    ``start``/``end``/``precision`` describe the period named by the first date in the cell;
    ``end`` is the due date. They are all None when no date could be read. ``warning`` is a
    short sentence for a human, set whenever part of the cell looked like a date but was not
    read (the dates that were read are still returned).
    """

    raw: str
    start: date | None
    end: date | None
    precision: Precision | None
    recurring: bool
    recurrence: str | None
    key_dates: tuple[KeyDate, ...]
    warning: str | None

    @property
    def is_empty(self) -> bool:
        """True when the cell says nothing at all: no date, no recurrence, no warning."""
        return (
            self.start is None
            and self.end is None
            and not self.recurring
            and self.warning is None
        )


def parse_when(value: object, *, number_format: str | None = None) -> ParsedDate:
    """Read a spreadsheet or table cell into a :class:`ParsedDate`. Never raises.

    ``value`` may be None, text, a ``date``/``datetime`` (Excel date cells; the time is
    ignored) or anything else, which is read as its ``str()``. ``number_format`` is the Excel
    number format of a date cell: one without a day part (``mmm-yy``) means the cell names a
    whole month, one showing only a year (``yyyy``) a whole year; anything else is a day. It is
    ignored for text cells.
    """
    raw = _raw_text(value)
    try:
        if isinstance(value, datetime.datetime):
            parsed = _from_excel_date(value.date(), raw, number_format)
        elif isinstance(value, date):
            parsed = _from_excel_date(value, raw, number_format)
        else:
            parsed = _parse_text(raw)
    except Exception:  # noqa: BLE001 - importers rely on this never raising; keep the text
        return _result(raw, warning=f"could not read a date from {_quote(raw)}")
    return _within_range(parsed)


# A plan's deadlines fall within a working life: ``31/12/9999`` is a spreadsheet's "no end
# date", ``01/01/1900`` an empty Excel date. Outside these bounds a date is not a deadline
# (and date arithmetic near year 9999 overflows), so it is read as no date, with a warning.
EARLIEST = date(1990, 1, 1)
LATEST = date(2100, 12, 31)


def _in_range(day: date | None) -> bool:
    return day is None or EARLIEST <= day <= LATEST


def _within_range(parsed: ParsedDate) -> ParsedDate:
    """``parsed`` with every date outside EARLIEST..LATEST removed and said in the warning."""
    keys = tuple(k for k in parsed.key_dates if _in_range(k.date))
    if _in_range(parsed.start) and _in_range(parsed.end) and len(keys) == len(parsed.key_dates):
        return parsed
    bounds = f"dates must fall between {EARLIEST.year} and {LATEST.year}"
    if _in_range(parsed.start) and _in_range(parsed.end):
        dropped = ", ".join(_quote(k.text) for k in parsed.key_dates if not _in_range(k.date))
        note = f"{dropped} is not kept as a key date ({bounds})"
        warning = "; ".join(w for w in (parsed.warning, note) if w)
        return replace(parsed, key_dates=keys, warning=warning)
    note = f"{_quote(parsed.raw)} is not a deadline ({bounds}); read as no due date"
    warning = "; ".join(w for w in (note, parsed.warning) if w)
    return replace(parsed, start=None, end=None, precision=None, key_dates=keys, warning=warning)


# --------------------------------------------------------------------------- cell values


def _raw_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        # Excel date cells come back as midnight datetimes; show them as the date they are.
        if value.time() == datetime.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not break an import
        return ""


def _from_excel_date(day: date, raw: str, number_format: str | None) -> ParsedDate:
    shown = _format_shows(number_format)
    if shown == "month":
        start, end = _month_span(day.year, day.month)
        return _result(raw, start=start, end=end, precision="month")
    if shown == "year":
        start, end = date(day.year, 1, 1), date(day.year, 12, 31)
        return _result(raw, start=start, end=end, precision="year")
    return _result(raw, start=day, end=day, precision="day")


def _format_shows(number_format: str | None) -> Literal["day", "month", "year"]:
    """Which period an Excel date format displays: only a ``d`` code shows the day."""
    if not isinstance(number_format, str):
        return "day"
    fmt = re.sub(r'"[^"]*"', "", number_format)  # quoted literals ("Due "mmm-yy)
    fmt = re.sub(r"\\.", "", fmt)  # escaped literal characters (\d)
    fmt = re.sub(r"\[[^\]]*\]", "", fmt)  # locale, colour and condition sections ([$-809])
    fmt = re.sub(r"[_*].", "", fmt)  # padding and fill codes take the next char literally
    fmt = fmt.split(";")[0].lower()  # dates are positive numbers: the first section applies
    if "d" in fmt:
        return "day"
    # m/mm right after an hour or right before seconds are minutes, not months.
    without_minutes = re.sub(r"h+[^a-z]*m{1,2}(?!m)|m{1,2}(?!m)[^a-z]*s", "", fmt)
    if "m" in without_minutes:
        return "month"
    if "y" in fmt:
        return "year"
    return "day"  # General, @, time-only formats: the value itself is the date


def _result(
    raw: str,
    *,
    start: date | None = None,
    end: date | None = None,
    precision: Precision | None = None,
    recurrence: str | None = None,
    key_dates: tuple[KeyDate, ...] = (),
    warning: str | None = None,
) -> ParsedDate:
    return ParsedDate(
        raw=raw,
        start=start,
        end=end,
        precision=precision,
        recurring=recurrence is not None,
        recurrence=recurrence,
        key_dates=key_dates,
        warning=warning,
    )


# --------------------------------------------------------------------------- periods

_Period = tuple[date, date, Precision]

_MONTH_NUMBERS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH_FULL_NAMES = tuple(calendar.month_name[n].lower() for n in range(1, 13))
_MONTH_WORDS = frozenset(_MONTH_FULL_NAMES) | frozenset(_MONTH_NUMBERS) | {"sept"}


def _month_number(name: str) -> int:
    return _MONTH_NUMBERS[name[:3].lower()]


def _full_year(digits: str) -> int:
    """Two-digit years are 20YY; plans are written this century."""
    return int(digits) if len(digits) > 2 else 2000 + int(digits)


def _month_span(year: int, month: int) -> tuple[date, date]:
    last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
    return date(year, month, 1), date(year, month, last)


def _months(year1: int, month1: int, year2: int, month2: int) -> _Period:
    start = _month_span(year1, month1)[0]
    end = _month_span(year2, month2)[1]
    if start > end:
        raise ValueError("period ends before it starts")
    return start, end, "month"


def _day(year: int, month: int, day: int) -> _Period:
    d = date(year, month, day)
    return d, d, "day"


def _days(start: date, end: date) -> _Period:
    if start > end:
        raise ValueError("period ends before it starts")
    return start, end, "day"


def _financial_year(first_year: int) -> _Period:
    return date(first_year, 4, 1), date(first_year + 1, 3, 31), "year"


def _financial_quarter(first_year: int, quarter: int) -> _Period:
    # Q1 starts in April; Q4 (Jan-Mar) falls in the second calendar year.
    month = 4 + 3 * (quarter - 1)
    year = first_year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, 1), _month_span(year, month + 2)[1], "quarter"


def _calendar_quarter(year: int, quarter: int) -> _Period:
    month = 3 * quarter - 2
    return date(year, month, 1), _month_span(year, month + 2)[1], "quarter"


_TERMS = {"autumn": (9, 12), "spring": (1, 3), "summer": (4, 7)}


def _term(name: str, year: int) -> _Period:
    first, last = _TERMS[name.lower()]
    return date(year, first, 1), _month_span(year, last)[1], "term"


def _year_pair(first: str, second: str) -> tuple[int, bool]:
    """The first year of a pair like 21/22 or 2021-2022, and whether the years follow on."""
    year = _full_year(first)
    follows = int(second) == (year + 1 if len(second) == 4 else (year + 1) % 100)
    return year, follows


def _fy_label(first_year: int) -> str:
    return f"{first_year}/{(first_year + 1) % 100:02d}"


# --------------------------------------------------------------------------- forms


@dataclass(frozen=True)
class _Reading:
    """What one recognised fragment said."""

    period: _Period | None = None
    problem: str | None = None  # looked like a date but is not one, e.g. "not a real date"
    note: str | None = None  # read, with a caveat the user should see


@dataclass(frozen=True)
class _Hit:
    span: tuple[int, int]
    text: str
    reading: _Reading


_Handler = Callable[["re.Match[str]", str], "_Reading | None"]
_FLAGS = re.IGNORECASE | re.ASCII  # ASCII: no Unicode digits or case folds sneaking in


def _month_re(name: str) -> str:
    return (
        rf"(?P<{name}>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?"
        rf"|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
        rf"(?![a-z])\.?"
    )


def _year_re(name: str) -> str:
    return rf"(?P<{name}>\d{{4}}|\d{{2}})(?![0-9a-z])"


_ORD = r"(?:st|nd|rd|th)?"
# Between a day and its month: "31 Mar", "31-Mar", "1st of April". Not " - ", so that
# "Phase 2 - Oct 2023" stays October rather than becoming 2 October.
_DAY_GAP = r"(?:[/.-]|\s*)"
_YEAR_GAP = r"[\s/.,'-]*"  # between a month and its year: "May-21", "March, 2023", "Dec '23"
_TO = r"\s*(?:-|to|until)\s*"
_PAIR = r"(?P<a>\d{4}|\d{2})(?!\d)\s*[/-]\s*(?P<b>\d{4}|\d{2})(?!\d)"
_QUARTER = r"(?:quarter|qtr\.?|q)\s*(?P<q>\d)(?!\d)"


def _read_quarter(m: re.Match[str], frag: str) -> _Reading:
    quarter = int(m["q"])
    if not 1 <= quarter <= 4:
        return _Reading(problem="not a quarter (Q1 to Q4)")
    if m["b"] is None:
        if m["fy"]:
            # "Q3 FY23" could end or start in 2023; better to ask than to guess.
            return _Reading(problem="a financial year given by one year only")
        return _Reading(_calendar_quarter(_full_year(m["a"]), quarter))
    first, follows = _year_pair(m["a"], m["b"])
    period = _financial_quarter(first, quarter)
    if follows:
        return _Reading(period)
    # Seen in a real plan ("Q3 21/21"): the first year is the one that is never mistyped.
    note = (
        f"read {_quote(frag)} as Q{quarter} of financial year {_fy_label(first)}, "
        f"ending {format_day(period[1], weekday=False)}: the years in it are not consecutive"
    )
    return _Reading(period, note=note)


def _read_term(m: re.Match[str], frag: str) -> _Reading:
    name = m["t"].lower()
    if m["b"] is None:
        return _Reading(_term(name, _full_year(m["a"])))
    first, follows = _year_pair(m["a"], m["b"])
    period = _term(name, first if name == "autumn" else first + 1)
    if follows:
        return _Reading(period)
    note = (
        f"read {_quote(frag)} as the {name} term of {_fy_label(first)}: "
        "the years in it are not consecutive"
    )
    return _Reading(period, note=note)


def _read_day_range(m: re.Match[str], frag: str) -> _Reading:
    year, month = _full_year(m["y"]), _month_number(m["m"])
    return _Reading(_days(date(year, month, int(m["d1"])), date(year, month, int(m["d2"]))))


def _read_day_range_across_months(m: re.Match[str], frag: str) -> _Reading:
    year = _full_year(m["y"])
    first_month, last_month = _month_number(m["m1"]), _month_number(m["m2"])
    # "28 December - 3 January 2024" starts in the year before the one written.
    first_year = year - 1 if first_month > last_month else year
    start = date(first_year, first_month, int(m["d1"]))
    return _Reading(_days(start, date(year, last_month, int(m["d2"]))))


def _read_day_month_year(m: re.Match[str], frag: str) -> _Reading:
    return _Reading(_day(_full_year(m["y"]), _month_number(m["m"]), int(m["d"])))


def _read_month_range(m: re.Match[str], frag: str) -> _Reading:
    year = _full_year(m["y"])
    first_month, last_month = _month_number(m["m1"]), _month_number(m["m2"])
    first_year = year - 1 if first_month > last_month else year
    return _Reading(_months(first_year, first_month, year, last_month))


def _read_month_year(m: re.Match[str], frag: str) -> _Reading:
    year, month = _full_year(m["y"]), _month_number(m["m"])
    return _Reading(_months(year, month, year, month))


def _read_misspelt_month(m: re.Match[str], frag: str) -> _Reading | None:
    # Without this, "Decembr 2023" would quietly become the whole of 2023.
    if _is_misspelt_month(m["w"]):
        return _Reading(problem="not a month and year")
    return None


def _read_numeric_day(m: re.Match[str], frag: str) -> _Reading:
    return _Reading(_day(_full_year(m["y"]), int(m["m"]), int(m["d"])))


def _read_iso_day(m: re.Match[str], frag: str) -> _Reading:
    return _Reading(_day(int(m["y"]), int(m["m"]), int(m["d"])))


def _read_long_pair(m: re.Match[str], frag: str) -> _Reading:
    """``2022/23``, ``2022-2023``, ``FY 2022/23``, ``2023-03``."""
    first, follows = _year_pair(m["a"], m["b"])
    if follows:
        return _Reading(_financial_year(first))
    second = int(m["b"])
    spaced = any(ch.isspace() for ch in frag)
    if not m["fy"] and len(m["b"]) == 2 and 1 <= second <= 12 and not spaced:
        return _Reading(_months(first, second, first, second))
    return _Reading(problem="neither a month nor a financial year")


def _read_short_pair(m: re.Match[str], frag: str) -> _Reading | None:
    """``03/2023``, ``3.2023``, ``22/23``, ``22-23``, ``03/23``."""
    a, b, sep = m["a"], m["b"], m["s"]
    first = int(a)
    follows = len(a) == 2 and _year_pair(a, b)[1]
    if len(b) == 4:
        # A month before a four-digit year is the common "03/2023"; "22/2023" can only be a FY.
        if not m["fy"] and 1 <= first <= 12:
            return _Reading(_months(int(b), first, int(b), first))
        if follows:
            return _Reading(_financial_year(_full_year(a)))
        return _Reading(problem="neither a month nor a financial year")
    if sep == ".":
        return None  # "1.25" is a number or a paragraph reference, not a date
    if follows:
        return _Reading(_financial_year(_full_year(a)))
    if m["fy"]:
        return _Reading(problem="not a financial year")
    if sep == "/":
        if 1 <= first <= 12:
            year = _full_year(b)
            return _Reading(_months(year, first, year, first))
        return _Reading(problem="missing its year" if int(b) <= 12 else "not a date")
    return None  # "1-12": a count or a list of items, leave it to the leftover check


def _read_plain_year(m: re.Match[str], frag: str) -> _Reading | None:
    year = int(m["y"])
    # A bare four-digit number is only a year if it is a plausible one (not "£5000").
    if 1900 <= year <= 2199:
        return _Reading((date(year, 1, 1), date(year, 12, 31), "year"))
    return None


# Tried in order at each word start; the first form that reads the text there wins, so the
# longer and more specific forms come first ("31/03/2023" before "31/03", "20-24 March 2023"
# before "24 March 2023", "March 31, 2023" before "March 31").
_FORMS: tuple[tuple[re.Pattern[str], _Handler], ...] = tuple(
    (re.compile(pattern, _FLAGS), handler)
    for pattern, handler in (
        (
            _QUARTER + r"[\s,:(]*(?P<fy>fy\s*)?(?P<a>\d{4}|\d{2})(?!\d)"
            r"(?:\s*[/-]\s*(?P<b>\d{4}|\d{2}))?(?![0-9a-z])(?:\s*\))?",
            _read_quarter,
        ),
        (r"(?P<fy>fy\s*)?" + _PAIR + r"[\s,:(]*" + _QUARTER + r"(?![0-9a-z])(?:\s*\))?",
         _read_quarter),
        (
            r"(?P<t>autumn|spring|summer)(?:\s*term)?[\s,.:-]*(?P<a>\d{4}|\d{2})(?!\d)"
            r"(?:\s*[/-]\s*(?P<b>\d{4}|\d{2}))?(?![0-9a-z])",
            _read_term,
        ),
        (
            r"(?P<d1>\d{1,2})(?!\d)" + _ORD + _TO + r"(?P<d2>\d{1,2})(?!\d)" + _ORD + _DAY_GAP
            + r"(?:of\s+)?" + _month_re("m") + _YEAR_GAP + _year_re("y"),
            _read_day_range,
        ),
        (
            r"(?P<d1>\d{1,2})(?!\d)" + _ORD + _DAY_GAP + r"(?:of\s+)?" + _month_re("m1") + _TO
            + r"(?P<d2>\d{1,2})(?!\d)" + _ORD + _DAY_GAP + r"(?:of\s+)?" + _month_re("m2")
            + _YEAR_GAP + _year_re("y"),
            _read_day_range_across_months,
        ),
        (
            r"(?P<d>\d{1,2})(?!\d)" + _ORD + _DAY_GAP + r"(?:of\s+)?" + _month_re("m")
            + _YEAR_GAP + _year_re("y"),
            _read_day_month_year,
        ),
        (
            _month_re("m") + r"\s*(?P<d>\d{1,2})(?!\d)" + _ORD + r",?\s*(?P<y>\d{4})(?![0-9a-z])",
            _read_day_month_year,
        ),
        (_month_re("m1") + r"\s*(?:-|/|to|until)\s*" + _month_re("m2") + _YEAR_GAP + _year_re("y"),
         _read_month_range),
        (_month_re("m") + _YEAR_GAP + _year_re("y"), _read_month_year),
        (r"(?P<w>[a-z]{3,})(?![a-z])\.?" + _YEAR_GAP + _year_re("y"), _read_misspelt_month),
        (r"(?P<d>\d{1,2})(?P<s>[/-])(?P<m>\d{1,2})(?P=s)" + _year_re("y"), _read_numeric_day),
        (r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})(?![0-9a-z])", _read_numeric_day),
        (r"(?P<y>\d{4})(?P<s>[/.-])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?!\d)", _read_iso_day),
        (r"(?P<fy>fy\s*)?(?P<a>\d{4})\s*[/-]\s*(?P<b>\d{4}|\d{2})(?![0-9a-z])", _read_long_pair),
        (r"(?P<fy>fy\s*)?(?P<a>\d{1,2})(?P<s>[/.-])(?P<b>\d{4}|\d{2})(?![0-9a-z])",
         _read_short_pair),
        (r"(?P<y>\d{4})(?![0-9a-z])", _read_plain_year),
    )
)

_RECURRENCE = re.compile(
    r"""\b(?:
        (?P<fortnightly>fortnightly|bi-?weekly|every\s+(?:two|2)\s+weeks)
      | (?P<weekly>weekly|(?:every|each)\s+week)
      | (?P<bi_monthly>bi-?monthly|every\s+(?:two|2)\s+months)
      | (?P<quarterly>quarterly|(?:three|3)[\s-]*monthly|every\s+(?:three|3)\s+months
                     |(?:every|each)\s+quarter)
      | (?P<six_monthly>(?:six|6)[\s-]*monthly|half[\s-]*yearly|every\s+(?:six|6)\s+months)
      | (?P<bi_annually>bi-?annual(?:ly)?|twice\s+(?:a\s+)?year(?:ly)?|twice\s+annually)
      | (?P<monthly>monthly|(?:every|each)\s+month)
      | (?P<termly>termly|(?:every|each)\s+term)
      | (?P<annually>annual(?:ly)?|yearly|(?:every|each)\s+year|per\s+annum)
      | (?P<ongoing>on[\s-]*going|continuous(?:ly)?|continual(?:ly)?
                   |rolling(?!\s+out)|bau|business\s+as\s+usual)
    )\b""",
    _FLAGS | re.VERBOSE,
)

_PLACEHOLDERS = frozenset(
    {
        "tbc", "tba", "tbd", "n/a", "na", "n.a", "none", "nil", "not applicable",
        "to be confirmed", "to be agreed", "to be determined",
    }
)  # fmt: skip
_PLACEHOLDER_WORD = re.compile(
    r"\b(?:tbc|tba|tbd|n/a|to\s+be\s+(?:confirmed|agreed|determined))\b", _FLAGS
)

# Same-width replacements only, so positions in the cleaned text are positions in raw.
_SAME_WIDTH = str.maketrans(
    {
        "\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
        "\u2018": "'", "\u2019": "'",
    }
)  # fmt: skip


# --------------------------------------------------------------------------- text cells


def _parse_text(raw: str) -> ParsedDate:
    text = raw.translate(_SAME_WIDTH)
    if _is_placeholder(text):
        return _result(raw)

    recurrence, recurrence_spans = _find_recurrence(text)
    # Blank the recurrence words so "6 monthly" is not left over as a stray digit.
    scanned = _blank(text, recurrence_spans)
    hits = _scan(scanned, raw)
    leftover = _blank(scanned, [hit.span for hit in hits])

    readings = [(hit.reading.period, hit.text) for hit in hits if hit.reading.period]
    problems = [hit for hit in hits if hit.reading.problem is not None]
    notes = [hit.reading.note for hit in hits if hit.reading.note]
    digits = re.findall(r"[0-9]+", leftover)
    month_words = _month_like_words(leftover)

    warnings: list[str] = []
    if readings:
        # Short numbers are usually labels ("Phase 1: May 2023"); three or more digits
        # ("May 2023 and 202") or a stray month name mean a date we failed to read.
        unread = [_describe(hit, raw) for hit in problems]
        unread += [f"{_quote(t)} is not a date" for t in digits if len(t) >= 3]
        unread += [f"{_quote(w)} has no year" if w.lower() in _MONTH_WORDS
                   else f"{_quote(w)} is not a month" for w in month_words]
        if unread:
            warnings.append(f"could not read all of {_quote(raw)}: " + "; ".join(unread))
    else:
        looks_like_date = bool(problems or digits or month_words)
        says_not_known = _PLACEHOLDER_WORD.search(text) is not None
        if looks_like_date or (recurrence is None and not says_not_known):
            message = f"could not read a date from {_quote(raw)}"
            if problems:
                message += ": " + "; ".join(_describe(hit, raw) for hit in problems)
            warnings.append(message)
    warnings.extend(notes)

    if not readings:
        return _result(raw, recurrence=recurrence, warning="; ".join(warnings) or None)
    (start, end, precision), _ = readings[0]
    key_dates = tuple(KeyDate(date=period[1], text=text) for period, text in readings[1:])
    return _result(
        raw,
        start=start,
        end=end,
        precision=precision,
        recurrence=recurrence,
        key_dates=key_dates,
        warning="; ".join(warnings) or None,
    )


def _is_placeholder(text: str) -> bool:
    squeezed = " ".join(text.lower().split()).rstrip(".").strip()
    return squeezed in _PLACEHOLDERS or set(squeezed) <= set("-_.?* ")


def _find_recurrence(text: str) -> tuple[str | None, list[tuple[int, int]]]:
    """The cell's recurrence keyword and where its words are.

    A stated frequency beats a bare "ongoing" ("Ongoing, reviewed quarterly" is quarterly);
    otherwise the first keyword in the cell wins.
    """
    found = [(m.lastgroup, m.span()) for m in _RECURRENCE.finditer(text) if m.lastgroup]
    if not found:
        return None, []
    kinds = [kind for kind, _ in found]
    kind = next((k for k in kinds if k != "ongoing"), kinds[0])
    return kind.replace("_", "-"), [span for _, span in found]


def _scan(text: str, raw: str) -> list[_Hit]:
    """Read every date form in ``text``, left to right, starting only at word starts."""
    hits: list[_Hit] = []
    pos = 0
    while pos < len(text):
        if not _is_word_start(text, pos):
            pos += 1
            continue
        for pattern, handler in _FORMS:
            m = pattern.match(text, pos)
            if m is None:
                continue
            frag = raw[m.start() : m.end()].strip()
            try:
                reading = handler(m, frag)
            except (ValueError, OverflowError, KeyError):
                # The shape of a date with impossible numbers ("31/02/2023", "32/13/2023"):
                # swallow the whole fragment so "13/2023" or "2023" are not read out of it.
                reading = _Reading(problem="not a real date")
            if reading is None:
                continue
            hits.append(_Hit(span=m.span(), text=frag, reading=reading))
            pos = m.end()
            break
        else:
            pos += 1
    return hits


def _is_word_start(text: str, pos: int) -> bool:
    here = text[pos]
    if not (here.isascii() and here.isalnum()):
        return False
    return pos == 0 or not (text[pos - 1].isascii() and text[pos - 1].isalnum())


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _month_like_words(text: str) -> list[str]:
    """Month names, and near-misses like "Decembr", that no date form used."""
    words = []
    for word in re.findall(r"[A-Za-z]+", text):
        lower = word.lower()
        if lower in _MONTH_WORDS:
            # "may" and "march" are also verbs: only count them when written as names.
            if word in ("may", "march"):
                continue
            words.append(word)
        elif _is_misspelt_month(word):
            words.append(word)
    return words


def _is_misspelt_month(word: str) -> bool:
    lower = word.lower()
    if len(lower) < 4 or lower in _MONTH_WORDS:
        return False
    # 0.8 catches "Decembr", "Febuary", "Septmber" but not "number", "member", "mayor".
    return bool(difflib.get_close_matches(lower, _MONTH_FULL_NAMES, n=1, cutoff=0.8))


def _describe(hit: _Hit, raw: str) -> str:
    """Why a fragment was not read, naming it unless it is the whole cell."""
    if hit.text == raw.strip():
        return str(hit.reading.problem)
    return f"{_quote(hit.text)} is {hit.reading.problem}"


def _quote(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "\u2026"
    return f"'{flat}'"


# ---- Writing a day for people ------------------------------------------------------------

_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")


def format_day(day: date, *, weekday: bool = True, year: bool = True) -> str:
    """``Thu 30 April 2026``: how every message, page and warning writes a day.

    UK order, no leading zero, English names whatever the machine's locale (``%a``/``%B``
    follow it). ``weekday=False`` gives ``30 April 2026``, ``year=False`` ``Thu 30 April``.
    """
    text = f"{day.day} {_MONTH_NAMES[day.month - 1]}"
    if weekday:
        text = f"{_WEEKDAY_NAMES[day.weekday()]} {text}"
    return f"{text} {day.year}" if year else text


def format_month(day: date) -> str:
    """``November 2026``: how a report names its month."""
    return f"{_MONTH_NAMES[day.month - 1]} {day.year}"
