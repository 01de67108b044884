"""Working days, send windows and board-meeting schedules.

:class:`WorkCalendar` answers "is this a working day?", "what is ten working days before the
due date?" and "when may the next nudge go out?" for one council: its time zone, its working
week, its bank holidays (from the ``holidays`` package) and the local times nudges are sent
and held back. :func:`parse_schedule` reads when a board meets ("quarterly on the first
Tuesday", or a list of dates) into a :class:`Schedule`.

Everything here is pure: no clock is read and nothing is stored outside the process. Every
function is given the date or the aware moment it works from.

Readings chosen where the calendar is ambiguous:

* A local wall time that does not exist (it falls in a spring-forward gap) is read as the
  first instant the local clock shows that time or later, i.e. the moment the clocks change.
  A wall time that occurs twice (autumn fall-back) means its first occurrence.
* Quiet hours run from ``quiet_start`` (inclusive) to ``quiet_end`` (exclusive) and wrap
  midnight when ``quiet_start > quiet_end``; equal times mean no quiet hours.
* A schedule "every N months" must repeat the same months each year, so N divides 12: the
  text names a month to start from but never a year, so nothing else would be well defined.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as pyholidays
from dateutil.rrule import FR, MO, MONTHLY, SA, SU, TH, TU, WE, rrule

__all__ = ["HOLIDAY_REGIONS", "WEEKDAYS", "Schedule", "WorkCalendar", "parse_schedule"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Config name -> subdivision of the ``holidays`` GB calendar (None: no bank holidays).
# England and Wales share their bank holidays, so either subdivision would do.
_SUBDIVISIONS: dict[str, str | None] = {
    "england-and-wales": "ENG",
    "scotland": "SCT",
    "northern-ireland": "NIR",
    "none": None,
}
HOLIDAY_REGIONS = tuple(_SUBDIVISIONS)

# The only years ``date`` can represent.
_MIN_YEAR, _MAX_YEAR = date.min.year, date.max.year


@lru_cache(maxsize=1024)
def _bank_holiday_ordinals(region: str, year: int) -> frozenset[int]:
    """Ordinals of the bank holidays (including substitute days) of ``region`` in ``year``."""
    subdivision = _SUBDIVISIONS[region]
    if subdivision is None:
        return frozenset()
    # Ask for the neighbouring years too, so a substitute day that lands in another calendar
    # year than its holiday is still found; keep only the days that fall in ``year``.
    years = range(max(_MIN_YEAR, year - 1), min(_MAX_YEAR, year + 1) + 1)
    found = pyholidays.country_holidays("GB", subdiv=subdivision, years=years)
    return frozenset(day.toordinal() for day in found if day.year == year)


@lru_cache(maxsize=4096)
def _working_ordinals(region: str, working_days: frozenset[int], year: int) -> tuple[int, ...]:
    """Sorted ordinals of every working day in ``year``: the index behind the fast lookups.

    Keyed by the only two fields that decide what a working day is, so calendars that differ
    only in time zone or send times share one index.
    """
    first = date(year, 1, 1).toordinal()
    last = date(year, 12, 31).toordinal()
    closed = _bank_holiday_ordinals(region, year)
    # Ordinal 1 (1 January of year 1) was a Monday, so (ordinal - 1) % 7 == date.weekday().
    return tuple(
        o for o in range(first, last + 1) if (o - 1) % 7 in working_days and o not in closed
    )


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant in (``before``, ``after``] with the UTC offset ``zone`` has at ``after``.

    Assumes the offset changes once in between. zoneinfo does not expose its transitions, so
    bisect on whole seconds (tz database transitions are whole seconds): ~17 steps for a day.
    """
    target = after.astimezone(zone).utcoffset()
    lo, hi = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _require_aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{what} needs an aware datetime, got {moment!r}")
    if moment.utcoffset() is None:
        raise ValueError(
            f"{what} needs an aware datetime (with a tzinfo such as UTC), got the naive {moment!r}"
        )
    return moment


def _check_local_time(name: str, value: object) -> None:
    if not isinstance(value, time):
        raise ValueError(f"{name} must be a datetime.time, got {value!r}")
    if value.tzinfo is not None:
        raise ValueError(f"{name} must be a local time without tzinfo, got {value!r}")


@dataclass(frozen=True)
class WorkCalendar:
    """One council's working week, bank holidays, time zone and sending hours.

    ``working_days`` holds ``date.weekday()`` numbers (0 = Monday); any iterable of them is
    accepted and stored as a frozenset. ``holidays`` is one of :data:`HOLIDAY_REGIONS`
    (case and surrounding spaces are ignored). ``send_at``, ``quiet_start`` and ``quiet_end``
    are local wall times without tzinfo.
    """

    timezone: str = "Europe/London"
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    holidays: str = "england-and-wales"
    send_at: time = time(9, 30)
    quiet_start: time = time(18, 0)
    quiet_end: time = time(8, 0)

    def __post_init__(self) -> None:
        try:
            _zone(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(
                f"unknown timezone {self.timezone!r}: use an IANA time zone such as 'Europe/London'"
            ) from None

        region = self.holidays.strip().lower() if isinstance(self.holidays, str) else None
        if region not in _SUBDIVISIONS:
            raise ValueError(
                f"unknown holidays region {self.holidays!r}: use one of "
                + ", ".join(repr(name) for name in HOLIDAY_REGIONS)
            )
        object.__setattr__(self, "holidays", region)

        raw_days = self.working_days
        if isinstance(raw_days, (str, bytes)) or not isinstance(raw_days, Iterable):
            raise ValueError(f"working_days must be a set of weekday numbers 0-6, got {raw_days!r}")
        try:
            days = frozenset(raw_days)
        except TypeError:
            raise ValueError(f"working_days must hold weekday numbers 0-6, got {raw_days!r}") from None
        if not days:
            raise ValueError("working_days is empty: at least one day of the week must be a working day")
        bad = [d for d in days if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6]
        if bad:
            raise ValueError(
                "working_days must hold date.weekday() numbers 0 (Monday) to 6 (Sunday), "
                f"got {', '.join(sorted(map(repr, bad)))}"
            )
        # Stored as a frozenset even when a set was passed, so the calendar stays hashable.
        object.__setattr__(self, "working_days", days)

        for name in ("send_at", "quiet_start", "quiet_end"):
            _check_local_time(name, getattr(self, name))
        if self.quiet_start > self.quiet_end and self.send_at >= self.quiet_start:
            # Quiet hours run on to midnight from before send_at: no nudge could ever go out.
            raise ValueError(
                f"send_at {self.send_at:%H:%M} falls inside the quiet hours "
                f"{self.quiet_start:%H:%M}-{self.quiet_end:%H:%M}, so nothing could ever be sent"
            )

    # -- working days ------------------------------------------------------------------------

    def _year(self, year: int) -> tuple[int, ...]:
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise OverflowError("date value out of range")
        return _working_ordinals(self.holidays, self.working_days, year)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.working_days and day.toordinal() not in _bank_holiday_ordinals(
            self.holidays, day.year
        )

    def working_day_on_or_before(self, day: date) -> date:
        year = day.year
        days = self._year(year)
        i = bisect_right(days, day.toordinal()) - 1
        while i < 0:
            year -= 1
            days = self._year(year)
            i = len(days) - 1
        return date.fromordinal(days[i])

    def working_day_on_or_after(self, day: date) -> date:
        year = day.year
        days = self._year(year)
        i = bisect_left(days, day.toordinal())
        while i >= len(days):
            year += 1
            days = self._year(year)
            i = 0
        return date.fromordinal(days[i])

    def add_working_days(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (``n`` < 0: before); ``day`` is not counted.

        ``n == 0`` gives :meth:`working_day_on_or_after`.
        """
        if n == 0:
            return self.working_day_on_or_after(day)
        ordinal = day.toordinal()
        year = day.year
        days = self._year(year)
        if n > 0:
            i = bisect_right(days, ordinal) + n - 1
            while i >= len(days):
                i -= len(days)
                year += 1
                days = self._year(year)
        else:
            i = bisect_left(days, ordinal) + n
            while i < 0:
                year -= 1
                days = self._year(year)
                i += len(days)
        return date.fromordinal(days[i])

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days ``d`` have ``start < d <= end``; negative when ``end < start``."""
        if end < start:
            return -self.working_days_between(end, start)
        first = self._year(start.year)
        before = bisect_right(first, start.toordinal())
        if start.year == end.year:
            return bisect_right(first, end.toordinal()) - before
        total = len(first) - before
        for year in range(start.year + 1, end.year):
            total += len(self._year(year))
        return total + bisect_right(self._year(end.year), end.toordinal())

    # -- local time and send windows ---------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        return _require_aware(moment, "local()").astimezone(_zone(self.timezone))

    def today(self, moment: datetime) -> date:
        """The local date of an aware moment."""
        return self.local(moment).date()

    def _wall_to_utc(self, day: date, at: time) -> datetime:
        """The first instant the local clock reads ``at`` on ``day``, or later (see module doc)."""
        zone = _zone(self.timezone)
        wall = datetime.combine(day, at)
        first = wall.replace(tzinfo=zone).astimezone(UTC)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if first <= second:
            # One instant, or an autumn wall time seen twice: its first occurrence.
            return first
        # A spring-forward gap: fold=1 reads the wall time with the new offset (an instant
        # before the change) and fold=0 with the old one (after it); the clock first reads
        # ``at`` or later at the change itself.
        return _transition(zone, second, first)

    def send_time(self, day: date) -> datetime:
        """When ``send_at`` local falls on ``day``, as an aware UTC datetime."""
        return self._wall_to_utc(day, self.send_at)

    def _quiet(self, at: time) -> bool:
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return False
        if start < end:
            return start <= at < end
        return at >= start or at < end

    def in_send_window(self, moment: datetime) -> bool:
        """True when the local date is a working day, at or after ``send_at``, outside quiet hours."""
        wall = self.local(moment)
        at = wall.time()
        return at >= self.send_at and not self._quiet(at) and self.is_working_day(wall.date())

    def _openings(self, day: date) -> list[datetime]:
        """Instants on local ``day`` at which the send window may open.

        The window opens when the clock passes ``send_at`` or ``quiet_end`` (at either
        occurrence of a wall time repeated in autumn), or when the clocks change and jump into
        it. Callers keep the candidates that really are inside the window.
        """
        zone = _zone(self.timezone)
        walls = [self.send_at]
        if self.quiet_start != self.quiet_end and self.quiet_end > self.send_at:
            walls.append(self.quiet_end)
        found = []
        for at in walls:
            found.append(self._wall_to_utc(day, at))
            found.append(datetime.combine(day, at, tzinfo=zone).replace(fold=1).astimezone(UTC))
        day_start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
        day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
        if day_start.astimezone(zone).utcoffset() != day_end.astimezone(zone).utcoffset():
            found.append(_transition(zone, day_start, day_end))
        return found

    def next_send_window(self, moment: datetime) -> datetime:
        """``moment`` (as aware UTC) if it is in the send window, else the next instant that is.

        Usually the next working day's ``send_at``, or the end of quiet hours when that comes
        later than ``send_at`` on a working day.
        """
        now = _require_aware(moment, "next_send_window()").astimezone(UTC)
        if self.in_send_window(now):
            return now
        # Start a day early: a clock change at midnight can take local time back into
        # yesterday. Once a day has an answer, the next day is checked too for the same reason.
        day = self.today(now) - timedelta(days=1)
        best: datetime | None = None
        found_on: date | None = None
        for _ in range(800):  # far more than any run of non-working days
            if self.is_working_day(day):
                for candidate in self._openings(day):
                    earlier = best is None or candidate < best
                    if candidate > now and earlier and self.in_send_window(candidate):
                        best = candidate
                if best is not None and found_on is None:
                    found_on = day
            if best is not None and found_on is not None and day > found_on:
                return best
            day += timedelta(days=1)
        raise RuntimeError(f"no send window within 800 days of {moment.isoformat()}")  # pragma: no cover


# -- board-meeting schedules -------------------------------------------------------------------

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_NUMBERS = {name: i for i, name in enumerate(_FULL_WEEKDAYS)} | {
    name: i for i, name in enumerate(WEEKDAYS)
}
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
# English names on purpose: ``calendar.month_name`` follows the process locale.
_MONTH_NUMBERS = {name: i for i, name in enumerate(_MONTHS, 1)} | {
    name[:3]: i for i, name in enumerate(_MONTHS, 1)
}
_RRULE_WEEKDAYS = (MO, TU, WE, TH, FR, SA, SU)

_RECURRENCE = re.compile(
    r"(?:(?P<named>quarterly|monthly)|every (?:(?P<count>\d+) months?|month))"
    r" on (?:the )?(?P<ordinal>[a-z]+) (?P<weekday>[a-z]+)"
    r"(?: from (?P<month>[a-z]+))?"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FORMS = (
    "accepted forms: 'quarterly on the first Tuesday', "
    "'quarterly on the first Tuesday from February', 'monthly on the last Thursday', "
    "'every 2 months on the second Wednesday from March' "
    "(ordinals first, second, third, fourth, last; intervals 1, 2, 3, 4, 6 or 12 months), "
    "or a list of ISO dates such as ['2026-12-08', '2027-03-09']"
)


@dataclass(frozen=True)
class Schedule:
    """When a board meets: a recurrence or a list of dates.

    Build one with :func:`parse_schedule`. Schedules compare by their meetings, not by
    ``text``. A list of dates has ``dates`` set and
    ``interval == 0``; a recurrence meets on the ``ordinal``-th (``-1``: last) ``weekday``
    (``date.weekday()`` number) of every ``interval``-th month counted from ``first_month``.
    """

    # What the config said, for messages. Not compared: two spellings of one schedule are equal.
    text: str = field(compare=False)
    dates: tuple[date, ...] = ()
    interval: int = 0  # months between meetings; 0 for a list of dates
    first_month: int = 1  # normalised to the earliest month of the cycle (1..interval)
    weekday: int = 0
    ordinal: int = 1

    def __post_init__(self) -> None:
        if self.interval == 0:
            if not self.dates:
                raise ValueError(f"schedule {self.text!r} has neither dates nor a recurrence")
            object.__setattr__(self, "dates", tuple(sorted(set(self.dates))))
            return
        if self.dates:
            raise ValueError(f"schedule {self.text!r} has both dates and a recurrence")
        if self.interval < 0 or 12 % self.interval:
            raise ValueError(
                f"schedule {self.text!r}: every {self.interval} months would not meet in the same "
                "months each year; use 1, 2, 3, 4, 6 or 12"
            )
        if not 1 <= self.first_month <= 12 or not 0 <= self.weekday <= 6:
            raise ValueError(f"schedule {self.text!r}: month or weekday out of range")
        if self.ordinal not in _ORDINALS.values():
            raise ValueError(f"schedule {self.text!r}: ordinal must be 1-4 or -1 (last)")
        # "quarterly from April" is "quarterly from January": one spelling, so they compare equal.
        object.__setattr__(self, "first_month", (self.first_month - 1) % self.interval + 1)

    def occurrences(self, start: date, end: date) -> list[date]:
        """Meeting dates ``d`` with ``start <= d <= end``, sorted."""
        if end < start:
            return []
        if self.interval == 0:
            return [d for d in self.dates if start <= d <= end]
        # dtstart: the first day of the last meeting month on or before start's month, so the
        # rrule's interval counts from the schedule's own months.
        months = start.year * 12 + start.month - 1
        months -= (months - (self.first_month - 1)) % self.interval
        while months < 12:  # no year 0
            months += self.interval
        year, month0 = divmod(months, 12)
        rule = rrule(
            MONTHLY,
            interval=self.interval,
            byweekday=_RRULE_WEEKDAYS[self.weekday](self.ordinal),
            dtstart=datetime(year, month0 + 1, 1),
            until=datetime.combine(end, time()),
        )
        return [moment.date() for moment in rule if moment.date() >= start]


def _parse_recurrence(text: str) -> Schedule:
    words = " ".join(text.split()).lower()
    match = _RECURRENCE.fullmatch(words)
    if match is None:
        raise ValueError(f"cannot read the meeting schedule {text!r}; {_FORMS}")
    if match["named"] == "quarterly":
        interval = 3
    elif match["named"] == "monthly":
        interval = 1
    else:
        interval = int(match["count"]) if match["count"] else 1
    if interval == 0 or 12 % interval:
        raise ValueError(
            f"cannot read the meeting schedule {text!r}: every {interval} months would not meet "
            f"in the same months each year; {_FORMS}"
        )
    ordinal = _ORDINALS.get(match["ordinal"])
    if ordinal is None:
        raise ValueError(
            f"cannot read the meeting schedule {text!r}: {match['ordinal']!r} is not one of "
            f"first, second, third, fourth, last; {_FORMS}"
        )
    weekday = _WEEKDAY_NUMBERS.get(match["weekday"])
    if weekday is None:
        raise ValueError(
            f"cannot read the meeting schedule {text!r}: {match['weekday']!r} is not a day of "
            f"the week; {_FORMS}"
        )
    first_month = 1
    if match["month"] is not None:
        found = _MONTH_NUMBERS.get(match["month"])
        if found is None:
            raise ValueError(
                f"cannot read the meeting schedule {text!r}: {match['month']!r} is not a month; {_FORMS}"
            )
        first_month = found
    return Schedule(
        text=text.strip(), interval=interval, first_month=first_month, weekday=weekday, ordinal=ordinal
    )


def _parse_dates(values: list[str]) -> Schedule:
    shown = repr(values)
    if not values:
        raise ValueError(f"cannot read the meeting schedule {shown}: the list of dates is empty; {_FORMS}")
    dates = []
    for value in values:
        # TOML gives bare dates (2026-12-08 without quotes) as date objects: take those too.
        if isinstance(value, date) and not isinstance(value, datetime):
            dates.append(value)
            continue
        cleaned = value.strip() if isinstance(value, str) else None
        try:
            if cleaned is None or not _ISO_DATE.fullmatch(cleaned):
                raise ValueError
            dates.append(date.fromisoformat(cleaned))
        except ValueError:
            raise ValueError(
                f"cannot read the meeting schedule {shown}: {value!r} is not an ISO date "
                f"(YYYY-MM-DD); {_FORMS}"
            ) from None
    return Schedule(text=", ".join(d.isoformat() for d in dates), dates=tuple(dates))


def parse_schedule(value: str | list[str]) -> Schedule:
    """Read a board's meeting schedule from config; ``ValueError`` names the accepted forms."""
    if isinstance(value, str):
        return _parse_recurrence(value)
    if isinstance(value, (list, tuple)):
        return _parse_dates(list(value))
    raise ValueError(f"cannot read the meeting schedule {value!r}; {_FORMS}")
