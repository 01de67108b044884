from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.calendar import WEEKDAYS, Schedule, WorkCalendar, parse_schedule

LONDON = ZoneInfo("Europe/London")
CAL = WorkCalendar()


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- working days -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 12, 25),  # Christmas Day
        date(2026, 12, 26),  # Boxing Day, a Saturday
        date(2026, 12, 28),  # Boxing Day observed
        date(2027, 3, 26),  # Good Friday 2027
        date(2027, 3, 29),  # Easter Monday 2027
        date(2026, 4, 3),  # Good Friday 2026
        date(2027, 5, 31),  # Spring Bank Holiday
        date(2026, 12, 27),  # a Sunday
        date(2027, 1, 2),  # a Saturday
    ],
)
def test_weekends_and_england_and_wales_bank_holidays_are_not_working_days(day: date) -> None:
    assert not CAL.is_working_day(day)


@pytest.mark.parametrize("day", [date(2027, 4, 2), date(2026, 12, 24), date(2026, 12, 29), date(2026, 11, 30)])
def test_ordinary_weekdays_are_working_days(day: date) -> None:
    # 2027-04-02 is the Friday a week after Good Friday 2027 (26 March).
    assert CAL.is_working_day(day)


def test_other_regions_have_their_own_bank_holidays() -> None:
    scotland = WorkCalendar(holidays="scotland")
    northern_ireland = WorkCalendar(holidays="Northern-Ireland ")  # case and spaces ignored
    assert not scotland.is_working_day(date(2026, 11, 30))  # St Andrew's Day
    assert not scotland.is_working_day(date(2026, 1, 2))
    assert CAL.is_working_day(date(2026, 1, 2))
    assert northern_ireland.holidays == "northern-ireland"
    assert not northern_ireland.is_working_day(date(2027, 3, 17))  # St Patrick's Day
    assert not northern_ireland.is_working_day(date(2027, 7, 12))  # Battle of the Boyne
    assert WorkCalendar(holidays="none").is_working_day(date(2026, 12, 25))


def test_add_working_days_skips_christmas_boxing_day_observed_and_the_weekend() -> None:
    assert CAL.add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    assert CAL.add_working_days(date(2026, 12, 24), 0) == date(2026, 12, 24)
    assert CAL.add_working_days(date(2026, 12, 25), 0) == date(2026, 12, 29)
    assert CAL.add_working_days(date(2026, 12, 29), -1) == date(2026, 12, 24)
    # Across the year end: 31 Dec, then 1 Jan 2027 (a Friday) is New Year's Day.
    assert CAL.add_working_days(date(2026, 12, 30), 2) == date(2027, 1, 4)


def test_ten_working_days_before_a_due_date_across_christmas() -> None:
    due = date(2027, 1, 8)
    # Back from 8 Jan: 7, 6, 5, 4 Jan; 31, 30, 29 Dec; 24, 23, 22 Dec (25, 28 Dec and 1 Jan are
    # bank holidays).
    assert CAL.add_working_days(due, -10) == date(2026, 12, 22)
    assert CAL.working_days_between(date(2026, 12, 22), due) == 10
    assert CAL.working_days_between(due, date(2026, 12, 22)) == -10
    assert CAL.working_days_between(due, due) == 0


def test_working_day_on_or_before_a_sunday_and_a_bank_holiday() -> None:
    assert CAL.working_day_on_or_before(date(2027, 1, 10)) == date(2027, 1, 8)  # Sunday -> Friday
    assert CAL.working_day_on_or_before(date(2027, 3, 29)) == date(2027, 3, 25)  # Easter Monday
    assert CAL.working_day_on_or_before(date(2027, 1, 1)) == date(2026, 12, 31)  # across the year
    assert CAL.working_day_on_or_before(date(2027, 4, 2)) == date(2027, 4, 2)
    assert CAL.working_day_on_or_after(date(2026, 12, 25)) == date(2026, 12, 29)


# -- send times and windows ---------------------------------------------------------------------


def test_send_time_is_0930_local_in_utc_in_winter_and_summer() -> None:
    assert CAL.send_time(date(2027, 1, 12)) == utc(2027, 1, 12, 9, 30)
    assert CAL.send_time(date(2027, 7, 13)) == utc(2027, 7, 13, 8, 30)
    assert CAL.send_time(date(2027, 7, 13)).tzinfo is UTC


def test_send_time_is_right_around_the_clock_changes() -> None:
    # Clocks go forward on Sunday 2026-03-29 and back on Sunday 2026-10-25.
    assert CAL.send_time(date(2026, 3, 27)) == utc(2026, 3, 27, 9, 30)
    assert CAL.send_time(date(2026, 3, 28)) == utc(2026, 3, 28, 9, 30)
    assert CAL.send_time(date(2026, 3, 29)) == utc(2026, 3, 29, 8, 30)
    assert CAL.send_time(date(2026, 3, 30)) == utc(2026, 3, 30, 8, 30)
    assert CAL.send_time(date(2026, 10, 23)) == utc(2026, 10, 23, 8, 30)
    assert CAL.send_time(date(2026, 10, 24)) == utc(2026, 10, 24, 8, 30)
    assert CAL.send_time(date(2026, 10, 25)) == utc(2026, 10, 25, 9, 30)
    assert CAL.send_time(date(2026, 10, 26)) == utc(2026, 10, 26, 9, 30)
    for day in (date(2026, 3, 30), date(2026, 10, 26)):
        assert CAL.local(CAL.send_time(day)) == london(day.year, day.month, day.day, 9, 30)


def test_a_send_time_inside_the_clock_change_hour() -> None:
    night = WorkCalendar(send_at=time(1, 30), quiet_start=time(0, 0), quiet_end=time(0, 0))
    # 01:30 never happens on 2026-03-29: the clock first reads 01:30 or later at 02:00 BST.
    assert night.send_time(date(2026, 3, 29)) == utc(2026, 3, 29, 1, 0)
    # 01:30 happens twice on 2026-10-25: the first time (BST) is meant.
    assert night.send_time(date(2026, 10, 25)) == utc(2026, 10, 25, 0, 30)


def test_local_and_today_use_the_calendar_time_zone() -> None:
    moment = utc(2026, 6, 30, 23, 30)
    assert CAL.local(moment) == london(2026, 7, 1, 0, 30)
    assert CAL.local(moment).utcoffset() == timedelta(hours=1)
    assert CAL.today(moment) == date(2026, 7, 1)
    assert CAL.today(utc(2026, 12, 31, 23, 30)) == date(2026, 12, 31)


def test_in_send_window_during_the_working_day() -> None:
    assert CAL.in_send_window(london(2027, 1, 12, 9, 30))
    assert CAL.in_send_window(london(2027, 1, 12, 17, 59))
    assert not CAL.in_send_window(london(2027, 1, 12, 9, 29))
    assert not CAL.in_send_window(london(2027, 1, 12, 18, 0))  # quiet hours start
    assert not CAL.in_send_window(london(2027, 1, 16, 11, 0))  # Saturday
    assert not CAL.in_send_window(london(2026, 12, 28, 11, 0))  # Boxing Day observed
    assert CAL.next_send_window(utc(2027, 7, 13, 10, 0)) == utc(2027, 7, 13, 10, 0)
    assert CAL.next_send_window(london(2027, 7, 13, 7, 0)) == utc(2027, 7, 13, 8, 30)


def test_quiet_hours_that_wrap_midnight() -> None:
    cal = WorkCalendar(quiet_start=time(21, 0), quiet_end=time(7, 0))
    tuesday_night = london(2027, 1, 12, 22, 0)
    assert not cal.in_send_window(tuesday_night)
    assert not cal.in_send_window(london(2027, 1, 13, 2, 0))
    assert cal.in_send_window(london(2027, 1, 12, 20, 59))
    assert cal.next_send_window(tuesday_night) == utc(2027, 1, 13, 9, 30)
    assert cal.next_send_window(london(2027, 1, 13, 2, 0)) == utc(2027, 1, 13, 9, 30)


def test_friday_evening_waits_for_monday_or_tuesday_after_a_bank_holiday() -> None:
    assert CAL.next_send_window(london(2027, 1, 15, 22, 0)) == utc(2027, 1, 18, 9, 30)
    # 2027-05-31 is the Spring Bank Holiday Monday (BST, so 09:30 local is 08:30 UTC).
    assert CAL.next_send_window(london(2027, 5, 28, 19, 0)) == utc(2027, 6, 1, 8, 30)
    # Friday 2026-03-27 in GMT, Monday 2026-03-30 in BST.
    assert CAL.next_send_window(london(2026, 3, 27, 20, 0)) == utc(2026, 3, 30, 8, 30)


def test_the_window_opens_when_quiet_hours_end_after_send_at() -> None:
    cal = WorkCalendar(send_at=time(7, 0), quiet_start=time(22, 0), quiet_end=time(8, 0))
    assert not cal.in_send_window(london(2027, 1, 12, 7, 30))
    assert cal.next_send_window(london(2027, 1, 12, 7, 30)) == utc(2027, 1, 12, 8, 0)
    assert cal.next_send_window(london(2027, 1, 12, 23, 0)) == utc(2027, 1, 13, 8, 0)


def test_a_custom_calendar() -> None:
    cal = WorkCalendar(send_at=time(14, 0), working_days={0, 2}, holidays="none")  # type: ignore[arg-type]
    assert cal.working_days == frozenset({0, 2})
    hash(cal)  # a set was passed, but the calendar stays hashable
    assert cal.is_working_day(date(2026, 12, 28))  # a Monday; no bank holidays
    assert not cal.is_working_day(date(2026, 12, 29))  # a Tuesday
    assert cal.add_working_days(date(2026, 12, 28), 1) == date(2026, 12, 30)
    assert cal.add_working_days(date(2026, 12, 28), 2) == date(2027, 1, 4)
    assert cal.working_days_between(date(2026, 12, 27), date(2027, 1, 4)) == 3
    assert cal.send_time(date(2026, 12, 30)) == utc(2026, 12, 30, 14, 0)
    assert not cal.in_send_window(london(2026, 12, 30, 13, 0))
    assert cal.in_send_window(london(2026, 12, 30, 14, 0))
    assert cal.next_send_window(london(2026, 12, 30, 19, 0)) == utc(2027, 1, 4, 14, 0)
    assert [WEEKDAYS[d] for d in sorted(cal.working_days)] == ["mon", "wed"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Europe/Londn"}, "unknown timezone 'Europe/Londn'"),
        ({"timezone": ""}, "unknown timezone"),
        ({"holidays": "wales-only"}, "unknown holidays region 'wales-only'"),
        ({"working_days": frozenset()}, "working_days is empty"),
        ({"working_days": frozenset({0, 7})}, "working_days must hold"),
        ({"send_at": "09:30"}, "send_at must be a datetime.time"),
        ({"send_at": time(19, 0)}, "falls inside the quiet hours"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_problem(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkCalendar(**kwargs)  # type: ignore[arg-type]


def test_naive_datetimes_are_an_error() -> None:
    naive = datetime(2027, 1, 12, 10, 0)
    for method in (CAL.local, CAL.in_send_window, CAL.next_send_window, CAL.today):
        with pytest.raises(ValueError, match="aware"):
            method(naive)


# -- schedules ----------------------------------------------------------------------------------

YEAR_2027 = (date(2027, 1, 1), date(2027, 12, 31))


def test_first_tuesday_quarterly() -> None:
    schedule = parse_schedule("quarterly on the first Tuesday")
    assert schedule.text == "quarterly on the first Tuesday"
    assert schedule.occurrences(*YEAR_2027) == [
        date(2027, 1, 5),
        date(2027, 4, 6),
        date(2027, 7, 6),
        date(2027, 10, 5),
    ]
    # Bounds are inclusive, and a window that starts mid-cycle still finds the right months.
    assert schedule.occurrences(date(2027, 4, 6), date(2027, 7, 6)) == [date(2027, 4, 6), date(2027, 7, 6)]
    assert schedule.occurrences(date(2027, 4, 7), date(2027, 7, 5)) == []
    assert schedule.occurrences(date(2027, 2, 1), date(2027, 1, 1)) == []


def test_quarterly_from_a_named_month() -> None:
    schedule = parse_schedule("  QUARTERLY on the  first tue FROM february ")
    assert schedule.occurrences(*YEAR_2027) == [
        date(2027, 2, 2),
        date(2027, 5, 4),
        date(2027, 8, 3),
        date(2027, 11, 2),
    ]
    assert schedule == parse_schedule("quarterly on the first Tuesday from November")


def test_last_thursday_monthly() -> None:
    found = parse_schedule("monthly on the last Thursday").occurrences(date(2026, 11, 1), date(2027, 2, 28))
    assert found == [date(2026, 11, 26), date(2026, 12, 31), date(2027, 1, 28), date(2027, 2, 25)]


def test_second_wednesday_monthly_and_every_two_months() -> None:
    assert parse_schedule("monthly on the second Wed").occurrences(date(2027, 1, 1), date(2027, 3, 31)) == [
        date(2027, 1, 13),
        date(2027, 2, 10),
        date(2027, 3, 10),
    ]
    assert parse_schedule("every 2 months on the first Monday").occurrences(*YEAR_2027) == [
        date(2027, 1, 4),
        date(2027, 3, 1),
        date(2027, 5, 3),
        date(2027, 7, 5),
        date(2027, 9, 6),
        date(2027, 11, 1),
    ]
    assert parse_schedule("every 6 months on the fourth Friday from March").occurrences(*YEAR_2027) == [
        date(2027, 3, 26),
        date(2027, 9, 24),
    ]


def test_a_list_of_dates() -> None:
    schedule = parse_schedule(["2027-03-09", "2026-12-08", "2027-03-09"])
    assert schedule.occurrences(date(2026, 1, 1), date(2027, 12, 31)) == [date(2026, 12, 8), date(2027, 3, 9)]
    assert schedule.occurrences(date(2026, 12, 9), date(2027, 3, 9)) == [date(2027, 3, 9)]
    assert "2026-12-08" in schedule.text
    assert isinstance(schedule, Schedule)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("fortnightly on Tuesdays", "fortnightly on Tuesdays"),
        ("monthly on the fifth Tuesday", "'fifth' is not one of"),
        ("quarterly on the first Tusday", "'tusday' is not a day"),
        ("quarterly on the first Tuesday from Febuary", "'febuary' is not a month"),
        ("every 5 months on the first Monday", "every 5 months"),
        ("", "''"),
        (["2026-12-08", "8 March 2027"], "'8 March 2027' is not an ISO date"),
        (["2026-02-30"], "'2026-02-30' is not an ISO date"),
        ([], "empty"),
    ],
)
def test_bad_schedules_raise_quoting_the_text_and_the_accepted_forms(value: str | list[str], problem: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_schedule(value)
    message = str(raised.value)
    assert problem in message
    assert "quarterly on the first Tuesday" in message  # the accepted forms are shown


# -- properties ---------------------------------------------------------------------------------

days_2020s = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))


@settings(deadline=None, max_examples=300)
@given(day=days_2020s, n=st.integers(min_value=1, max_value=60))
def test_adding_and_counting_working_days_agree(day: date, n: int) -> None:
    d = CAL.working_day_on_or_after(day)
    later = CAL.add_working_days(d, n)
    assert CAL.working_days_between(d, later) == n
    assert CAL.add_working_days(later, -n) == d
    assert CAL.is_working_day(later)


@settings(deadline=None, max_examples=200)
@given(day=days_2020s, n=st.integers(min_value=-400, max_value=400))
def test_add_working_days_matches_a_day_by_day_walk(day: date, n: int) -> None:
    step = timedelta(days=1 if n >= 0 else -1)
    expected, left = day, abs(n)
    if n == 0:
        while not CAL.is_working_day(expected):
            expected += step
    while left:
        expected += step
        if CAL.is_working_day(expected):
            left -= 1
    assert CAL.add_working_days(day, n) == expected


@settings(deadline=None, max_examples=200)
@given(moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)))
def test_next_send_window_is_in_the_window_and_nothing_earlier_is(moment: datetime) -> None:
    found = CAL.next_send_window(moment)
    assert found >= moment
    assert CAL.in_send_window(found)
    if found > moment:
        assert not CAL.in_send_window(found - timedelta(microseconds=1))
