"""The board digest's data and files: built from the tracker as it stood at the end of the month."""
from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from chaser.config import BoardConfig
from chaser.errors import InvalidValue, NotFound
from jobs.calendar import parse_schedule
from jobs.digest import build_report, last_complete_month, month_period, parse_period
from jobs.digest_render import chart_alt, chart_png, render_html, write
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import Action, Person
from storage.tracker import find_action, import_people
from storage.updates import record_update
from tests.conftest import LAMBETH
from tests.importers.makers import write_csv

TZ = "Europe/London"
BOARD = BoardConfig(name="EDI Board", schedule=parse_schedule("monthly on the last Thursday"))
WORKSTREAMS = ["Career Progression", "Creating a Healthy Working Environment", "Healing and Resilience (Objective 3)",
               "Healing and Resilience (Objective 4)", "HR and Transparency", "Scrutiny and Accountability"]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture
def plan(engine: Engine, tmp_path: Path) -> Iterator[Session]:
    import_plan_file(engine, LAMBETH)
    with session_factory(engine)() as session:
        import_people(session, write_csv(tmp_path / "people.csv", [
            ["name", "email", "roles"],
            ["Priya Shah", "priya@lambeth.example", "HR Business Partner"],
            ["Sam Ade", "sam@lambeth.example", "Children's Services Communications Officer"],
        ]))
        session.commit()
        yield session


def update(session: Session, ref: str, when: str, **fields: object) -> None:
    action = find_action(session, ref)
    person = session.scalar(select(Person).where(Person.email == "priya@lambeth.example"))
    record_update(session, action, channel="cli", by=person, at=at(when), **fields)  # type: ignore[arg-type]
    session.commit()


def test_a_period_is_a_calendar_month_in_the_boards_time_zone() -> None:
    november = parse_period("2026-11", TZ)
    assert (november.start, november.end, november.name) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30), "2026-11")
    assert november.starts_at == at("2026-11-01T00:00")
    july = month_period(2026, 7, TZ)  # British Summer Time: midnight is 23:00 UTC
    assert july.starts_at == at("2026-06-30T23:00") and july.ends_at < at("2026-07-31T23:00")
    assert last_complete_month(at("2027-01-01T09:00"), TZ).name == "2026-12"
    for bad in ("2026-13", "Nov 2026", "2026-1"):
        with pytest.raises(InvalidValue, match="--period"):
            parse_period(bad, TZ)


def test_the_status_is_the_one_it_had_at_the_end_of_the_period(plan: Session) -> None:
    update(plan, "CP1", "2022-10-12T10:00", status="green")
    update(plan, "CP1", "2022-11-03T10:00", status="amber")
    # Loaded later, dated earlier: it takes its place in time, not after November's update.
    update(plan, "CP1", "2022-10-20T10:00", status="red")
    october, november = (build_report(plan, BOARD, parse_period(p, TZ)) for p in ("2022-10", "2022-11"))
    assert [(c.ref, c.from_, c.to) for c in october.changes] == [("CP1", None, "green"), ("CP1", "green", "red")]
    assert october.counts["red"] == 1 and october.counts["no_update"] == 29
    assert [(c.ref, c.from_, c.to) for c in november.changes] == [("CP1", "red", "amber")]
    assert november.counts["amber"] == 1 and november.by_workstream["Career Progression"]["amber"] == 1


def test_a_repeated_status_is_not_a_move_and_a_revised_date_is_listed_apart(plan: Session) -> None:
    from storage.dates import parse_when

    update(plan, "THR1", "2022-11-02T10:00", status="green")
    update(plan, "THR1", "2022-11-09T10:00", status="green", due=parse_when("March 2024"))
    report = build_report(plan, BOARD, parse_period("2022-11", TZ))
    assert [(c.ref, c.to) for c in report.changes] == [("THR1", "green")]
    assert [(r.ref, r.due) for r in report.revised_dates] == [("THR1", dt.date(2024, 3, 31))]
    assert "THR1" not in report.overdue  # due 31 March 2023 in the plan, 2024 now: not due next month either


def test_actions_that_start_after_the_period_are_left_out(plan: Session) -> None:
    action = find_action(plan, "SA1")
    action.start_date = dt.date(2022, 12, 1)
    plan.commit()
    november = build_report(plan, BOARD, parse_period("2022-11", TZ))
    december = build_report(plan, BOARD, parse_period("2022-12", TZ))
    assert "SA1" not in [r.ref for r in november.actions] and november.total == 29
    assert "SA1" in [r.ref for r in december.actions] and december.new_actions == ("SA1",)


def test_overdue_and_due_next_use_the_period_end(plan: Session) -> None:
    update(plan, "HW 10", "2022-11-20T14:00", status="complete")
    report = build_report(plan, BOARD, parse_period("2022-11", TZ))
    assert report.overdue == ("HW 2", "HW 5", "RH 2")
    # Due in December 2022; HW 10 too, but it is complete.
    assert report.due_next == ("CP2", "HW 4", "HW 6", "SA3")


def test_the_spotlight_rotates_by_month_and_a_pin_wins(plan: Session) -> None:
    months = [build_report(plan, BOARD, parse_period(p, TZ)).spotlight for p in ("2022-10", "2022-11", "2022-12")]
    first = WORKSTREAMS.index(months[0])
    assert months == [WORKSTREAMS[(first + n) % len(WORKSTREAMS)] for n in range(3)]
    rotation = replace(BOARD, spotlight=("HR and Transparency", "career progression"))
    picked = [build_report(plan, rotation, parse_period(p, TZ)).spotlight for p in ("2022-10", "2022-11", "2022-12")]
    assert sorted(set(picked)) == ["Career Progression", "HR and Transparency"] and picked[0] == picked[2] != picked[1]
    pinned = replace(BOARD, spotlight_pin="Scrutiny and Accountability")
    assert {build_report(plan, pinned, parse_period(p, TZ)).spotlight for p in ("2022-10", "2022-11")} == {
        "Scrutiny and Accountability"}
    detail = build_report(plan, pinned, parse_period("2022-11", TZ)).spotlight_detail
    assert detail is not None and detail.lead_sponsor and detail.objective
    assert [m for m, _ in detail.metrics] == ["Schedule", "Scope", "Budget", "Impact"]
    with pytest.raises(NotFound, match="the spotlight names 'Pay', not one of its workstreams"):
        build_report(plan, replace(BOARD, spotlight=("Pay", "HR and Transparency")), parse_period("2022-11", TZ))


def test_a_board_covers_its_workstreams_only(plan: Session) -> None:
    board = replace(BOARD, workstreams=("Career Progression",))
    report = build_report(plan, board, parse_period("2022-11", TZ))
    assert list(report.by_workstream) == ["Career Progression"] and report.total == 4
    with pytest.raises(NotFound, match="no workstream named 'Pay'"):
        build_report(plan, replace(BOARD, workstreams=("Pay",)), parse_period("2022-11", TZ))
    with pytest.raises(NotFound, match="no plan named 'Other'"):
        build_report(plan, replace(BOARD, plans=("Other",)), parse_period("2022-11", TZ))


def test_user_text_is_inert_in_html_csv_and_xlsx(plan: Session, tmp_path: Path) -> None:
    action = find_action(plan, "CP1")
    action.title = '<script>alert("title")</script> Feedback'
    plan.commit()
    update(plan, "CP1", "2022-11-03T10:00", status="amber", note='=HYPERLINK("http://evil.example","click")')
    report = build_report(plan, BOARD, parse_period("2022-11", TZ))
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; Feedback" in html
    for workstream in WORKSTREAMS:
        assert workstream in html
    assert "Amber" in html and "No update" in html and "Implement pilot shadowing and mentoring" in html

    write(report, tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = {row[0]: row for row in csv.reader(handle)}
    assert rows["CP1"][5] == "'=HYPERLINK(\"http://evil.example\",\"click\")" and rows["CP1"][4] == "Amber"
    write(report, tmp_path / "r.xlsx")
    sheet = load_workbook(tmp_path / "r.xlsx").active
    cp1 = next(row for row in sheet.iter_rows(min_row=2) if row[0].value == "CP1")
    assert cp1[5].data_type == "s" and cp1[5].value.startswith("=HYPERLINK")  # text, never a formula
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    assert len(list(sheet.iter_rows(min_row=2))) == plan.query(Action).count()


def test_the_pdf_has_a_text_layer_with_the_workstreams_statuses_and_actions(plan: Session, tmp_path: Path,
                                                                            db_url: str) -> None:
    import pdfplumber

    if not db_url.startswith("sqlite"):
        pytest.skip("one database is enough: the PDF renders the Report, whatever database it was built from")

    update(plan, "CP1", "2022-11-03T10:00", status="amber",
           note='<script>alert("x")</script> =HYPERLINK("http://evil.example","click")')
    report = build_report(plan, BOARD, parse_period("2022-11", TZ))
    write(report, tmp_path / "r.pdf")
    with pdfplumber.open(tmp_path / "r.pdf") as pdf:
        pages = [page.extract_text() or "" for page in pdf.pages]
        width, height = float(pdf.pages[0].width), float(pdf.pages[0].height)
        catalog = pdf.doc.catalog
        tags: set[str] = set()
        todo = list(pdf.structure_tree)
        while todo:
            element = todo.pop()
            tags.add(element["type"])
            todo.extend(element.get("children", ()))
    text = "\n".join(pages)
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    assert "Highlight report · November 2022".upper() in pages[0] and "EDI Board" in pages[0]
    for name in ("Career Progression", "Scrutiny and Accountability", "HR and Transparency"):
        assert name in text
    for word in ("Complete", "Green", "Amber", "Red", "Not started", "No update"):
        assert word in pages[0]
    assert "CP1" in text and "30 November 2022" in text  # UK dates
    assert '<script>alert("x")</script>' in text  # shown as text, never run
    assert f"Page 1 of {len(pages)}" in pages[0]
    # Tagged: a screen reader finds the headings, tables and the chart's figure, in British English.
    assert {"H1", "H2", "H3", "Table", "TH", "Figure"} <= tags and catalog["Lang"] == b"en-GB"
    assert "Names" not in catalog and "OpenAction" not in catalog  # no document JavaScript to run


def test_the_chart_has_a_text_alternative_and_is_in_the_page(plan: Session) -> None:
    update(plan, "CP1", "2022-11-03T10:00", status="red")
    report = build_report(plan, BOARD, parse_period("2022-11", TZ))
    alt = chart_alt(report)
    assert "Career Progression: Red 1, No update 3" in alt and "Scrutiny and Accountability: No update 4" in alt
    png = chart_png(report)
    assert png.startswith(b"\x89PNG")
    html = render_html(report)
    assert 'src="data:image/png;base64,' in html and f'alt="{alt}"' in html
    assert 'src="cid:chart"' in render_html(report, chart_src="cid:chart")

def test_the_pdf_lists_a_long_table_in_part_and_says_where_the_rest_is(plan: Session,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.digest_render

    monkeypatch.setattr(jobs.digest_render, "PDF_ROWS_MAX", 2)
    report = build_report(plan, BOARD, parse_period("2022-11", TZ))
    live = len(next(w for w in report.workstreams if w.title == "Creating a Healthy Working Environment").live)
    pack = render_html(report, pdf=True, chart_src="cid:chart")
    assert f"…and {live - 2} more actions, not listed here" in pack and "chaser digest --out FILE.xlsx" in pack
    assert "not listed here" not in render_html(report, chart_src="cid:chart")  # the page lists every action
