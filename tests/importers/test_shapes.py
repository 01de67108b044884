"""Plans we have not seen: other column names, layouts and habits still import correctly."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from chaser.errors import ImportFileError
from storage.importers.load import import_plan_file
from storage.models import Action, ActionGroup, Plan, StatusUpdate, Workstream
from storage.updates import current_states
from tests.importers.makers import write_csv, write_docx, write_xlsx


def actions(session: Session) -> list[Action]:
    return list(session.scalars(select(Action).order_by(Action.position)))


def test_a_csv_with_owners_and_next_steps_and_no_dates(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plan.csv", [
        ["Action", "Owner(s)", "Next steps"],
        ["Publish the gender pay gap report", "HR Business Partner / Comms Lead", "Draft to CSMT"],
        ["Run staff network listening sessions", "Staff Network Chair", ""],
    ])
    result = import_plan_file(engine, path, plan_name="People Plan")
    assert (result.created, result.warnings) == (2, [])
    first, second = actions(session)
    assert first.ref == "A1" and second.ref == "A2"
    assert [o.role.name for o in first.owners] == ["HR Business Partner", "Comms Lead"]
    assert first.next_steps == "Draft to CSMT"
    assert first.due_date is None and first.due_text is None and not first.recurring
    assert first.workstream_id is None


def test_a_word_report_with_tables_under_headings_and_a_gac_status(engine: Engine, session: Session, tmp_path: Path) -> None:
    header = ["Ref", "Action", "Owner", "Due Date", "Status", "Progress"]
    path = write_docx(tmp_path / "report.docx", [
        ("title", "Workforce Equality Highlight Report"),
        ("para", "Reported to the EDI Board every quarter."),
        ("heading", "Recruitment"),
        ("para", "Fair and open recruitment at every grade."),
        ("table", [header,
                   ["REC1", "Anonymise shortlisting", "Head of HR", "31/03/2024", "G", "Live in e-recruitment"],
                   ["REC2", "Diverse interview panels", "All managers", "Q1 24/25", "A", ""]]),
        ("heading", "Wellbeing"),
        ("table", [header,
                   ["WB1", "Menopause policy", "HR Policy Lead", "March 2023", "C", "Approved by CSMT"]]),
    ])
    result = import_plan_file(engine, path)
    assert result.plan == "Workforce Equality Highlight Report"
    assert (result.created, result.workstreams) == (3, 2)
    ws = session.scalars(select(Workstream).order_by(Workstream.position)).all()
    assert [w.name for w in ws] == ["Recruitment", "Wellbeing"]
    assert ws[0].objective == "Fair and open recruitment at every grade."
    rows = actions(session)
    states = current_states(session, rows)
    assert [states[a.id].status for a in rows] == ["green", "amber", "complete"]
    assert states[rows[0].id].note == "Live in e-recruitment"
    assert rows[0].due_date == dt.date(2024, 3, 31) and rows[0].due_precision == "day"
    assert rows[1].due_date == dt.date(2024, 6, 30) and rows[1].due_precision == "quarter"


def test_the_same_table_pasted_twice_imports_once_and_says_so(engine: Engine, session: Session, tmp_path: Path) -> None:
    table = [["No.", "Action", "Lead Officer", "Deadline"],
             ["1", "Review EDI training offer", "Head of L&D", "May-24"],
             ["2", "Publish ethnicity pay gap", "HR Analytics Lead", "Sept 2024"]]
    path = write_docx(tmp_path / "twice.docx", [("heading", "Training"), ("table", table), ("table", table)])
    result = import_plan_file(engine, path)
    assert result.created == 2
    assert len([w for w in result.warnings if "duplicate" in w.message]) == 2
    assert session.scalar(select(func.count(Action.id))) == 2


def test_an_excel_sheet_with_a_workstream_column_and_status_words(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "tracker.xlsx", [
        ["EDI Tracker 2024"],
        [],
        ["Theme", "Action ID", "Description", "Responsible officer", "Target date", "RAG status"],
        ["Data", "D1", "Improve equality data", "Insight Manager", dt.datetime(2024, 9, 1), "Green"],
        ["Data", "D2", "Publish dashboards", "Insight Manager", "TBC", "Amber"],
        ["Culture", "C1", "Inclusive leadership course", "OD Lead", "Ongoing", "Completed"],
    ], number_formats={"E4": "dd/mm/yyyy"})
    result = import_plan_file(engine, path)
    assert result.plan == "EDI Tracker 2024"
    assert (result.created, result.workstreams, result.warnings) == (3, 2, [])
    rows = actions(session)
    assert rows[0].due_date == dt.date(2024, 9, 1) and rows[0].due_precision == "day"
    assert rows[1].due_date is None and rows[1].due_text == "TBC"
    assert rows[2].recurring
    states = current_states(session, rows)
    assert [states[a.id].status for a in rows] == ["green", "amber", "complete"]


def test_unreadable_cells_are_warnings_naming_the_row_and_the_text_is_kept(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plan.csv", [
        ["Ref", "Action", "Owner", "Deadline", "Status"],
        ["X1", "Fix the intranet page", "Web Lead", "December 202", "Purple"],
    ])
    result = import_plan_file(engine, path, plan_name="Plan")
    assert result.created == 1
    places = {w.where for w in result.warnings}
    assert places == {"row 2 (Due date)", "row 2 (Status)"}
    (action,) = actions(session)
    assert action.due_text == "December 202" and action.due_date is None


def test_an_edited_file_updates_only_what_changed(engine: Engine, session: Session, tmp_path: Path) -> None:
    header = ["Ref", "Action", "Owner", "Deadline", "Status"]
    rows = [header, ["A1", "Audit panels", "HR Lead", "May 2024", "G"], ["A2", "Launch network", "Chair", "June 2024", "G"]]
    path = write_csv(tmp_path / "plan.csv", rows)
    import_plan_file(engine, path, plan_name="Plan")
    rows[2] = ["A2", "Launch network", "Chair", "July 2024", "R"]
    rows.append(["A3", "Review policy", "Policy Lead", "2025", ""])
    write_csv(path, rows)
    result = import_plan_file(engine, path, plan_name="Plan")
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert result.updated_refs == ["A2"]
    a2 = session.scalars(select(Action).where(Action.ref == "A2")).one()
    state = current_states(session, [a2])[a2.id]
    assert (state.status, state.due) == ("red", dt.date(2024, 7, 31))
    history = session.scalars(select(StatusUpdate).where(StatusUpdate.action_id == a2.id).order_by(StatusUpdate.id)).all()
    assert [(h.old_status, h.new_status) for h in history] == [(None, "green"), ("green", "red")]


def test_an_action_removed_from_the_file_is_kept_and_reported(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plan.csv", [["Ref", "Action"], ["A1", "One"], ["A2", "Two"]])
    import_plan_file(engine, path, plan_name="Plan")
    write_csv(path, [["Ref", "Action"], ["A1", "One"]])
    result = import_plan_file(engine, path, plan_name="Plan")
    assert [w.message for w in result.warnings] == ["A2 is in the tracker but not in this file; left as it is"]
    assert session.scalar(select(func.count(Action.id))) == 2


def test_a_ref_used_twice_for_different_actions_rejects_the_file(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plan.csv", [["Ref", "Action"], ["A1", "One"], ["A1", "Two"]])
    with pytest.raises(ImportFileError, match=r"row 3: ref 'A1' is already used by row 2"):
        import_plan_file(engine, path, plan_name="Plan")
    assert session.scalar(select(func.count(Plan.id))) == 0


def test_dry_run_reports_without_writing(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plan.csv", [["Ref", "Action"], ["A1", "One"]])
    result = import_plan_file(engine, path, plan_name="Plan", dry_run=True)
    assert result.created == 1 and result.dry_run
    assert session.scalar(select(func.count(Action.id))) == 0
    assert session.scalar(select(func.count(Plan.id))) == 0


def test_recommendation_rows_in_a_flat_sheet_group_the_actions_below(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "recs.xlsx", [
        ["Action", "Owner", "Due Date"],
        ["R1. Leadership"],
        ["Leaders champion race equality in every directorate."],
        ["Reverse mentoring for the senior team", "Chief Executive", "Mar-25"],
        ["Annual leadership pledge", "Chief Executive", "On-going"],
        ["R2. Data"],
        ["Publish workforce data", "Head of HR", "Jan-25"],
    ])
    import_plan_file(engine, path, plan_name="Recs")
    groups = session.scalars(select(ActionGroup).order_by(ActionGroup.position)).all()
    assert [(g.ref, g.title, g.description) for g in groups] == [
        ("R1", "Leadership", "Leaders champion race equality in every directorate."), ("R2", "Data", None),
    ]
    assert [a.ref for a in actions(session)] == ["R1-1", "R1-2", "R2-1"]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("plan.xlsx", b"Action,Owner\nx,y\n", "the extension says an Excel workbook (.xlsx) but the file is a text file"),
        ("plan.docx", b"", "the file is empty"),
        ("plan.csv", b"", "the file is empty"),
        ("plan.docx", b"PK\x03\x04 this is not really a zip", "damaged"),
        ("plan.csv", b"Title\nsome words\nmore words\n", "no header row found"),
        ("plan.pdf", b"%PDF-1.4", "unsupported file type '.pdf'"),
    ],
)
def test_bad_files_are_rejected_with_one_clear_line_and_nothing_written(
    engine: Engine, session: Session, tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as caught:
        import_plan_file(engine, path)
    assert str(caught.value).startswith(str(path))
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
    assert session.scalar(select(func.count(Plan.id))) == 0


def test_a_word_file_that_is_really_a_workbook_is_named_as_such(engine: Engine, tmp_path: Path) -> None:
    real = write_xlsx(tmp_path / "real.xlsx", [["Action", "Owner"], ["x", "y"]])
    fake = tmp_path / "plan.docx"
    fake.write_bytes(real.read_bytes())
    with pytest.raises(ImportFileError, match="extension says a Word document .* but the file is an Excel workbook"):
        import_plan_file(engine, fake)


def test_a_truncated_word_document_is_reported_as_damaged(engine: Engine, tmp_path: Path) -> None:
    good = write_docx(tmp_path / "good.docx", [("table", [["Action", "Owner"], ["x", "y"]])])
    broken = tmp_path / "broken.docx"
    broken.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ImportFileError, match="damaged"):
        import_plan_file(engine, broken)
