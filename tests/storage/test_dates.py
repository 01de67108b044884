from __future__ import annotations

import calendar
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.dates import EARLIEST, LATEST, KeyDate, ParsedDate, format_day, parse_when


def last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def assert_invariants(parsed: ParsedDate) -> None:
    if parsed.end is not None:
        assert parsed.start is not None
        assert parsed.start <= parsed.end
        assert parsed.precision is not None
    else:
        assert parsed.start is None
        assert parsed.key_dates == ()
        assert parsed.precision is None
    if parsed.precision == "month":
        assert parsed.start is not None and parsed.end is not None
        assert parsed.start.day == 1
        assert parsed.end == last_day(parsed.end.year, parsed.end.month)
    assert parsed.recurring == (parsed.recurrence is not None)
    for key in parsed.key_dates:
        assert isinstance(key, KeyDate)
        assert isinstance(key.date, date)


def assert_period(text: str, start: date, end: date, precision: str) -> ParsedDate:
    parsed = parse_when(text)
    assert (parsed.start, parsed.end, parsed.precision) == (start, end, precision), text
    assert parsed.warning is None, parsed.warning
    assert parsed.raw == text
    return parsed


# --------------------------------------------------------------------------- empty cells


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "\n", "TBC", "TBA", "TBD", "N/A", "NA", "n/a", "-", "\u2013", "None", "tbc."],
)
def test_blank_and_placeholder_cells_are_empty_without_a_warning(value: object) -> None:
    parsed = parse_when(value)
    assert parsed.is_empty
    assert (parsed.start, parsed.end, parsed.precision, parsed.warning) == (None, None, None, None)
    assert parsed.raw == ("" if value is None else value)


def test_placeholder_word_with_a_reason_is_not_a_warning() -> None:
    assert parse_when("TBC - awaiting funding").is_empty


# --------------------------------------------------------------------------- months


def test_month_year_means_end_of_month() -> None:
    assert_period("May-21", date(2021, 5, 1), date(2021, 5, 31), "month")


@pytest.mark.parametrize(
    ("text", "year", "month"),
    [
        ("Jul-22", 2022, 7),
        ("March 2023", 2023, 3),
        ("December 22", 2022, 12),
        ("Sept 2023", 2023, 9),
        ("Sep 2023", 2023, 9),
        ("Sept. 2023", 2023, 9),
        ("Mar 23", 2023, 3),
        ("mar-2023", 2023, 3),
        ("MARCH 2023", 2023, 3),
        ("March, 2023", 2023, 3),
        ("03/2023", 2023, 3),
        ("2023-03", 2023, 3),
        ("Dec-23", 2023, 12),
        ("Apr-25", 2025, 4),
    ],
)
def test_month_forms_cover_the_whole_month(text: str, year: int, month: int) -> None:
    assert_period(text, date(year, month, 1), last_day(year, month), "month")


def test_february_month_ends_on_the_29th_in_a_leap_year() -> None:
    assert_period("Feb 2024", date(2024, 2, 1), date(2024, 2, 29), "month")
    assert_period("Feb-23", date(2023, 2, 1), date(2023, 2, 28), "month")


def test_month_range_runs_from_first_month_to_end_of_last() -> None:
    assert_period("Apr-Jun 2023", date(2023, 4, 1), date(2023, 6, 30), "month")
    assert_period("November - February 2024", date(2023, 11, 1), date(2024, 2, 29), "month")


# --------------------------------------------------------------------------- days


@pytest.mark.parametrize(
    "text",
    [
        "31/03/2023",
        "31/3/23",
        "31.03.2023",
        "2023-03-31",
        "31 March 2023",
        "31st March 2023",
        "March 31, 2023",
        "31-Mar-2023",
        "31 Mar 23",
    ],
)
def test_day_forms_are_day_precision(text: str) -> None:
    assert_period(text, date(2023, 3, 31), date(2023, 3, 31), "day")


def test_ordinal_with_of_is_a_day() -> None:
    assert_period("1st of April 2023", date(2023, 4, 1), date(2023, 4, 1), "day")


def test_numeric_dates_are_always_day_first() -> None:
    assert_period("03/04/2023", date(2023, 4, 3), date(2023, 4, 3), "day")
    assert_period("12/01/2024", date(2024, 1, 12), date(2024, 1, 12), "day")


def test_impossible_day_is_a_warning_not_a_crash() -> None:
    parsed = parse_when("31/02/2023")
    assert (parsed.start, parsed.end) == (None, None)
    assert parsed.warning is not None and "'31/02/2023'" in parsed.warning


@pytest.mark.parametrize(
    "text", ["20-24 March 2023", "20\u201324 March 2023", "20th - 24th March 2023"]
)
def test_day_range_runs_from_first_to_last_day(text: str) -> None:
    assert_period(text, date(2023, 3, 20), date(2023, 3, 24), "day")


def test_day_range_across_months() -> None:
    assert_period("28 March - 3 April 2023", date(2023, 3, 28), date(2023, 4, 3), "day")


# --------------------------------------------------------------------------- quarters


def test_financial_quarter_q3_is_october_to_december() -> None:
    assert_period("Q3 21/22", date(2021, 10, 1), date(2021, 12, 31), "quarter")


@pytest.mark.parametrize(
    "text", ["Q3 2021/22", "Q3 (21/22)", "Q3 2021-22", "q3 21-22", "Q3 FY21/22"]
)
def test_financial_quarter_year_pair_spellings(text: str) -> None:
    assert_period(text, date(2021, 10, 1), date(2021, 12, 31), "quarter")


def test_financial_quarter_q1_is_april_to_june() -> None:
    assert_period("Q1 22/23", date(2022, 4, 1), date(2022, 6, 30), "quarter")


def test_financial_quarter_q4_falls_in_the_second_year() -> None:
    assert_period("Q4 21/22", date(2022, 1, 1), date(2022, 3, 31), "quarter")


def test_year_pair_before_the_quarter_is_read_too() -> None:
    assert_period("2021/22 Q2", date(2021, 7, 1), date(2021, 9, 30), "quarter")


def test_typo_year_pair_is_read_with_a_warning() -> None:
    parsed = parse_when("Q3 21/21")
    assert (parsed.start, parsed.end, parsed.precision) == (
        date(2021, 10, 1),
        date(2021, 12, 31),
        "quarter",
    )
    assert parsed.warning is not None
    assert "'Q3 21/21'" in parsed.warning
    assert "2021/22" in parsed.warning
    assert "ending 31 December 2021: the years in it are not consecutive" in parsed.warning


def test_quarter_with_a_single_year_is_a_calendar_quarter() -> None:
    assert_period("Q3 2022", date(2022, 7, 1), date(2022, 9, 30), "quarter")
    assert_period("Q1 2023", date(2023, 1, 1), date(2023, 3, 31), "quarter")


def test_quarter_five_is_a_warning() -> None:
    parsed = parse_when("Q5 2023")
    assert parsed.end is None
    assert parsed.warning is not None


# --------------------------------------------------------------------------- years


@pytest.mark.parametrize("text", ["2022/23", "2022-23", "22/23", "FY 2022/23", "2022/2023"])
def test_financial_year_runs_april_to_march(text: str) -> None:
    assert_period(text, date(2022, 4, 1), date(2023, 3, 31), "year")


def test_month_slash_year_is_not_a_financial_year() -> None:
    assert_period("03/2023", date(2023, 3, 1), date(2023, 3, 31), "month")
    assert_period("12/2023", date(2023, 12, 1), date(2023, 12, 31), "month")


def test_plain_year_is_the_calendar_year() -> None:
    assert_period("2023", date(2023, 1, 1), date(2023, 12, 31), "year")


def test_non_consecutive_year_pair_alone_is_a_warning() -> None:
    parsed = parse_when("2022-25")
    assert parsed.end is None
    assert parsed.warning is not None and "'2022-25'" in parsed.warning


@pytest.mark.parametrize(
    ("text", "start", "end", "precision"),
    [
        ("End of 2023", date(2023, 1, 1), date(2023, 12, 31), "year"),
        ("by March 2023", date(2023, 3, 1), date(2023, 3, 31), "month"),
        ("Sept 2023: launch", date(2023, 9, 1), date(2023, 9, 30), "month"),
        ("Deadline: April 2023", date(2023, 4, 1), date(2023, 4, 30), "month"),
    ],
)
def test_words_around_a_date_are_ignored(text: str, start: date, end: date, precision: str) -> None:
    assert_period(text, start, end, precision)


# --------------------------------------------------------------------------- school terms


def test_summer_term_is_april_to_july() -> None:
    assert_period("Summer term, 2023", date(2023, 4, 1), date(2023, 7, 31), "term")


def test_spring_term_is_january_to_march() -> None:
    assert_period("Spring term 2024", date(2024, 1, 1), date(2024, 3, 31), "term")


def test_autumn_term_is_september_to_december() -> None:
    assert_period("Autumn Term 2023", date(2023, 9, 1), date(2023, 12, 31), "term")


def test_term_with_academic_year_puts_spring_in_the_second_year() -> None:
    assert_period("Spring term 2023/24", date(2024, 1, 1), date(2024, 3, 31), "term")
    assert_period("Autumn term 2023/24", date(2023, 9, 1), date(2023, 12, 31), "term")


# --------------------------------------------------------------------------- recurring


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("On-going", "ongoing"),
        ("Ongoing", "ongoing"),
        ("on going", "ongoing"),
        ("Continuous", "ongoing"),
        ("Rolling", "ongoing"),
        ("BAU", "ongoing"),
        ("Bi-monthly", "bi-monthly"),
        ("Monthly", "monthly"),
        ("Quarterly", "quarterly"),
        ("Annually", "annually"),
        ("Annual", "annually"),
        ("Yearly", "annually"),
        ("Weekly", "weekly"),
        ("Fortnightly", "fortnightly"),
        ("Bi-annually", "bi-annually"),
        ("Biannual", "bi-annually"),
        ("Six-monthly", "six-monthly"),
        ("6 monthly", "six-monthly"),
        ("Termly", "termly"),
    ],
)
def test_recurring_keywords_without_a_date(text: str, keyword: str) -> None:
    parsed = parse_when(text)
    assert parsed.recurring is True
    assert parsed.recurrence == keyword
    assert (parsed.start, parsed.end, parsed.precision) == (None, None, None)
    assert parsed.warning is None
    assert not parsed.is_empty


def test_date_then_recurrence_gives_both() -> None:
    parsed = assert_period(
        "June 2023 and then quarterly", date(2023, 6, 1), date(2023, 6, 30), "month"
    )
    assert parsed.recurring is True
    assert parsed.recurrence == "quarterly"


def test_stated_frequency_beats_ongoing() -> None:
    assert parse_when("Ongoing, reviewed quarterly").recurrence == "quarterly"


def test_rolling_out_is_not_a_recurrence() -> None:
    parsed = assert_period(
        "Rolling out by March 2024", date(2024, 3, 1), date(2024, 3, 31), "month"
    )
    assert parsed.recurring is False


def test_recurring_cell_with_a_broken_date_warns() -> None:
    parsed = parse_when("Ongoing - review Decembr")
    assert parsed.recurrence == "ongoing"
    assert parsed.warning is not None


# --------------------------------------------------------------------------- several dates


@pytest.mark.parametrize(
    ("text", "due", "keys"),
    [
        ("November 2023 March 2024", date(2023, 11, 30), [(date(2024, 3, 31), "March 2024")]),
        ("Nov 2023 / March 2024", date(2023, 11, 30), [(date(2024, 3, 31), "March 2024")]),
        ("June 2023; Dec 2023", date(2023, 6, 30), [(date(2023, 12, 31), "Dec 2023")]),
        (
            "Phase 1: May 2023, Phase 2: Oct 2023",
            date(2023, 5, 31),
            [(date(2023, 10, 31), "Oct 2023")],
        ),
        (
            "31/03/2023, Q1 23/24 and 2024/25",
            date(2023, 3, 31),
            [(date(2023, 6, 30), "Q1 23/24"), (date(2025, 3, 31), "2024/25")],
        ),
    ],
)
def test_first_date_is_due_and_later_ones_are_key_dates(
    text: str, due: date, keys: list[tuple[date, str]]
) -> None:
    parsed = parse_when(text)
    assert parsed.end == due
    assert parsed.warning is None
    assert parsed.key_dates == tuple(KeyDate(date=d, text=t) for d, t in keys)


# --------------------------------------------------------------------------- unreadable


def test_short_year_is_unreadable_with_a_warning_quoting_it() -> None:
    parsed = parse_when("December 202")
    assert (parsed.start, parsed.end, parsed.precision) == (None, None, None)
    assert parsed.warning == "could not read a date from 'December 202'"
    assert parsed.raw == "December 202"
    assert not parsed.is_empty


@pytest.mark.parametrize(
    "text", ["Decembr 2023", "soon", "asap", "next year", "32/13/2023", "Febuary 2024"]
)
def test_unreadable_text_warns_and_keeps_raw(text: str) -> None:
    parsed = parse_when(text)
    assert (parsed.start, parsed.end, parsed.precision) == (None, None, None)
    assert parsed.warning is not None
    assert f"'{text}'" in parsed.warning
    assert parsed.raw == text


def test_misspelt_month_does_not_fall_back_to_the_bare_year() -> None:
    assert parse_when("Decembr 2023").end is None


def test_leftover_broken_date_keeps_the_dates_read_and_warns() -> None:
    parsed = parse_when("May 2023 and 202")
    assert (parsed.start, parsed.end) == (date(2023, 5, 1), date(2023, 5, 31))
    assert parsed.warning is not None and "'202'" in parsed.warning


def test_leftover_impossible_date_keeps_the_dates_read_and_warns() -> None:
    parsed = parse_when("May 2023, then 31/02/2024")
    assert parsed.end == date(2023, 5, 31)
    assert parsed.key_dates == ()
    assert parsed.warning is not None and "'31/02/2024'" in parsed.warning


def test_numbers_are_read_as_text() -> None:
    assert parse_when(2023).end == date(2023, 12, 31)
    parsed = parse_when(45000.0)
    assert parsed.raw == "45000.0"
    assert parsed.end is None and parsed.warning is not None


# --------------------------------------------------------------------------- Excel cells


@pytest.mark.parametrize(
    "number_format", ["mmm-yy", "mmmm yyyy", "mmm yy", "[$-809]mmm-yy;@", '"Due "mmm-yy']
)
def test_excel_date_with_month_format_is_the_whole_month(number_format: str) -> None:
    parsed = parse_when(datetime(2021, 7, 1), number_format=number_format)
    assert (parsed.start, parsed.end, parsed.precision) == (
        date(2021, 7, 1),
        date(2021, 7, 31),
        "month",
    )
    assert parsed.raw == "2021-07-01"
    assert parsed.warning is None


@pytest.mark.parametrize(
    "number_format",
    [
        None,
        "General",
        "d",
        "dd",
        "dd/mm/yyyy",
        "yyyy-mm-dd",
        "d-mmm-yy",
        "[$-F800]dddd, mmmm dd, yyyy",
        "h:mm",
    ],
)
def test_excel_date_with_day_format_is_that_day(number_format: str | None) -> None:
    parsed = parse_when(datetime(2023, 3, 31), number_format=number_format)
    assert (parsed.start, parsed.end, parsed.precision) == (
        date(2023, 3, 31),
        date(2023, 3, 31),
        "day",
    )


def test_plain_date_without_format_is_a_day() -> None:
    parsed = parse_when(date(2023, 3, 31))
    assert (parsed.start, parsed.end, parsed.precision) == (
        date(2023, 3, 31),
        date(2023, 3, 31),
        "day",
    )
    assert parsed.raw == "2023-03-31"


def test_minutes_after_hours_are_not_a_month() -> None:
    assert parse_when(datetime(2023, 3, 31, 9, 30), number_format="dd hh:mm").precision == "day"


def test_excel_date_with_year_only_format_is_the_year() -> None:
    parsed = parse_when(datetime(2023, 7, 1), number_format="yyyy")
    assert (parsed.start, parsed.end, parsed.precision) == (
        date(2023, 1, 1),
        date(2023, 12, 31),
        "year",
    )


# --------------------------------------------------------------------------- properties

# Deadlines fall between 1990 and 2100; outside that a date is read as no deadline (below).
four_digit_year_dates = st.dates(min_value=EARLIEST, max_value=LATEST)


@settings(max_examples=150, deadline=None)
@given(d=four_digit_year_dates, fmt=st.sampled_from(["%b-%y", "%B %Y", "%B %y", "%b %Y"]))
def test_property_any_month_written_any_way_ends_on_its_last_day(d: date, fmt: str) -> None:
    # Two-digit years are 20YY by contract, so the expected year follows the text.
    year = 2000 + d.year % 100 if "%y" in fmt else d.year
    parsed = parse_when(d.strftime(fmt))
    assert parsed.precision == "month"
    assert parsed.start == date(year, d.month, 1)
    assert parsed.end == last_day(year, d.month)
    assert parsed.warning is None


@settings(max_examples=150, deadline=None)
@given(d=four_digit_year_dates, fmt=st.sampled_from(["%d/%m/%Y", "%Y-%m-%d", "%d %B %Y"]))
def test_property_any_day_written_any_way_is_that_day(d: date, fmt: str) -> None:
    parsed = parse_when(d.strftime(fmt))
    assert (parsed.start, parsed.end, parsed.precision) == (d, d, "day")
    assert parsed.warning is None


# Fragments of real date forms glued together at random, to reach the odd corners.
dateish_text = st.lists(
    st.sampled_from(
        list("0123456789/-.,:;() ")
        + ["Q", "FY", "May", "Sept", "March", "Dec", "term", "Summer", "st", "of", "\u2013"]
        + ["ongoing"]
    ),
    max_size=20,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), dateish_text))
def test_property_never_raises_and_keeps_invariants(text: str) -> None:
    parsed = parse_when(text)
    assert parsed.raw == text
    assert_invariants(parsed)


@settings(max_examples=50, deadline=None)
@given(
    value=st.one_of(st.none(), st.integers(), st.floats(), st.dates(), st.datetimes()),
    number_format=st.one_of(st.none(), st.text(max_size=12)),
)
def test_property_never_raises_on_other_cell_values(
    value: object, number_format: str | None
) -> None:
    assert_invariants(parse_when(value, number_format=number_format))


@settings(max_examples=100, deadline=None)
@given(
    year=st.integers(min_value=2000, max_value=2098),
    quarter=st.integers(min_value=1, max_value=4),
)
def test_property_financial_quarter_ends_on_the_right_day(year: int, quarter: int) -> None:
    parsed = parse_when(f"Q{quarter} {year % 100:02d}/{(year + 1) % 100:02d}")
    end_month = {1: 6, 2: 9, 3: 12, 4: 3}[quarter]
    end_year = year + 1 if quarter == 4 else year
    assert parsed.precision == "quarter"
    assert parsed.end == last_day(end_year, end_month)
    assert parsed.start == date(end_year, end_month - 2, 1)
    assert parsed.warning is None


@settings(max_examples=100, deadline=None)
@given(a=four_digit_year_dates, b=four_digit_year_dates)
def test_property_two_months_first_is_due_second_is_key_date(a: date, b: date) -> None:
    text = f"{a:%B %Y} {b:%B %Y}"
    parsed = parse_when(text)
    assert parsed.end == last_day(a.year, a.month)
    assert parsed.key_dates == (KeyDate(date=last_day(b.year, b.month), text=f"{b:%B %Y}"),)
    assert parsed.warning is None


@settings(max_examples=150, deadline=None)
@given(d=st.one_of(st.dates(min_value=date(1000, 1, 1), max_value=date(1989, 12, 31)),
                   st.dates(min_value=date(2101, 1, 1), max_value=date(9999, 12, 31))),
       fmt=st.sampled_from(["%d/%m/%Y", "%Y-%m-%d", "%B %Y", "%d %B %Y"]))
def test_property_a_date_outside_1990_to_2100_is_no_deadline_and_says_why(d: date, fmt: str) -> None:
    for value in (d.strftime(fmt), d, datetime(d.year, d.month, d.day)):
        parsed = parse_when(value)
        assert (parsed.start, parsed.end, parsed.precision) == (None, None, None)
        assert parsed.warning is not None and "is not a deadline (dates must fall between 1990 and 2100)" in parsed.warning


def test_the_spreadsheet_placeholder_for_no_end_date_is_no_deadline() -> None:
    parsed = parse_when("31/12/9999")
    assert parsed.end is None and parsed.raw == "31/12/9999"
    assert parsed.warning == "'31/12/9999' is not a deadline (dates must fall between 1990 and 2100); read as no due date"


def test_a_far_key_date_is_dropped_with_a_warning_and_the_deadline_kept() -> None:
    parsed = parse_when("May 2023 and 31/12/9999")
    assert (parsed.end, parsed.key_dates) == (date(2023, 5, 31), ())
    assert parsed.warning == "'31/12/9999' is not kept as a key date (dates must fall between 1990 and 2100)"


def test_a_day_is_written_uk_style_without_a_leading_zero_whatever_the_locale() -> None:
    assert format_day(date(2026, 4, 30)) == "Thu 30 April 2026"
    assert format_day(date(2026, 4, 3), weekday=False) == "3 April 2026"
    assert format_day(date(2026, 12, 3), year=False) == "Thu 3 December"
    assert format_day(date(2027, 1, 4), weekday=False, year=False) == "4 January"


@given(d=four_digit_year_dates)
def test_a_written_day_reads_back_as_the_same_day(d: date) -> None:
    assert parse_when(format_day(d, weekday=False)).end == d
