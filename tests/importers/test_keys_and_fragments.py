"""Rows that are not actions: colour keys, totals, notes, and fragments of a table cut off a page."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from storage.importers.load import import_plan_file
from storage.importers.parse import is_key_row
from storage.models import Action
from tests.importers.makers import write_docx, write_xlsx


def test_a_rag_key_a_totals_row_and_notes_under_the_table_are_skipped_once(
        engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "plan.xlsx", [
        ["Ref", "Action", "Lead Officer", "Deadline", "RAG"],
        ["P1", "Publish the pay gap report", "HR Business Partner", "March 2027", "G"],
        ["P2", "Audit interview panels", "HR Business Partner", "June 2027", "A"],
        [],
        ["Key:"],
        ["G – On track"],
        ["Amber = some slippage"],
        ["R", "Off track, needs the board's help"],
        ["Total", "2 actions"],
        ["* denotes a statutory duty"],
        ["Last updated 3 May 2026"],
    ])
    result = import_plan_file(engine, path, plan_name="Plan")
    assert result.actions == 2
    assert session.scalars(select(Action.ref).order_by(Action.position)).all() == ["P1", "P2"]
    skipped = [w for w in result.warnings if "key or note" in w.message]
    assert len(skipped) == 1 and skipped[0].where == "sheet 'Sheet' row 5"
    assert skipped[0].message.startswith("skipped a key or note, not actions (7 rows): 'Key:'; 'G – On track'")
    p2 = session.scalars(select(Action).where(Action.ref == "P2")).one()
    assert p2.description is None  # the key is not glued onto the action above


def test_what_a_key_row_looks_like() -> None:
    for texts in (["Key:"], ["BRAG key"], ["G – On track"], ["Amber = some slippage"], ["Blue: complete"],
                  ["G", "On track"], ["Totals: 14"], ["As at 31 March 2026"], ["Note: figures are provisional"]):
        assert is_key_row(texts), texts
    for texts in (["Green spaces audit"], ["Review keyworker roles"], ["Total reward strategy review"],
                  ["Amber alert protocol for schools"], ["A", "Publish a plan for every school in the borough"
                                                              " with targets and an annual review of progress"]):
        assert not is_key_row(texts), texts


def test_a_table_of_cut_off_words_is_a_warning_not_an_action(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_docx(tmp_path / "report.docx", [
        ("heading", "Training"),
        ("table", [["Ref", "Action", "Owner", "Deadline"],
                   ["T1", "Mandatory EDI training for every manager", "L&D Lead", "March 2027"]]),
        ("table", [["sues /", "risks /", "amend"]]),  # the end of a cell that ran onto the next page
    ])
    result = import_plan_file(engine, path, plan_name="Plan")
    assert result.actions == 1
    (fragment,) = [w for w in result.warnings if "has no header" in w.message]
    assert fragment.where == "table 2 row 1"
    assert fragment.message == ("skipped: table 2 has no header and this row does not read as an action (no owner or "
                                "date, 7 characters of action text): 'sues / | risks / | amend'")
    assert session.scalars(select(Action.ref)).all() == ["T1"]


def test_each_sheet_finds_its_own_titles_and_header_and_is_a_workstream(
        engine: Engine, session: Session, tmp_path: Path) -> None:
    import openpyxl

    from storage.models import Workstream

    book = openpyxl.Workbook()
    sheets = [("Workforce", "Workforce Equality Action Plan", ["Ref", "Action", "Lead Officer", "Deadline", "RAG"]),
              ("Services", "Fair Services", ["No.", "Task", "Owner", "Due Date", "Status"]),
              ("More", None, None)]  # continues the sheet before: no title, no header
    for n, (name, title, header) in enumerate(sheets):
        ws = book.active if n == 0 else book.create_sheet()
        ws.title = name
        if title:
            ws.append([title])
            ws.append(["As at 31 March 2026"])
            ws.append([])
        if header:
            ws.append(header)
        ws.append([f"{name[0]}1", f"First {name.lower()} action for the board", "HR Business Partner", "May 2027", "G"])
        ws.append([f"{name[0]}2", f"Second {name.lower()} action for the board", "Policy Lead", "June 2027", "A"])
        ws.append([])
        ws.append(["Key:"])
        ws.append(["G", "On track"])
        ws.append(["A", "Some slippage"])
    book.save(tmp_path / "three.xlsx")
    result = import_plan_file(engine, tmp_path / "three.xlsx", plan_name="Plan")
    refs = session.scalars(select(Action.ref).order_by(Action.position)).all()
    assert refs == ["W1", "W2", "S1", "S2", "M1", "M2"]
    names = session.scalars(select(Workstream.name).order_by(Workstream.position)).all()
    # The first sheet's title names the plan, so that sheet is named after itself.
    assert names == ["Workforce", "Fair Services", "More"] and result.workstreams == 3
    by_ref = {a.ref: a for a in session.scalars(select(Action))}
    assert by_ref["S1"].workstream.name == "Fair Services" and by_ref["M2"].workstream.name == "More"
    assert all(a.description is None for a in by_ref.values())  # no title, subtitle or key glued on
    assert len([w for w in result.warnings if "key or note" in w.message]) == 3


def test_a_value_in_a_merged_cell_belongs_to_every_row_it_spans_in_excel(
        engine: Engine, session: Session, tmp_path: Path) -> None:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["Theme", "Ref", "Action", "Lead Officer", "Deadline"])
    ws.append(["Pay", "P1", "Publish the pay gap report", "HR Business Partner", dt.datetime(2027, 3, 1)])
    ws.append([None, "P2", "Audit interview panels", None, None])
    ws.append([None, "P3", "Review the grading of roles", None, None])
    ws.append(["Culture", "C1", "Listen to the staff networks", "Network Chair", "June 2027"])
    for ref in ("A2:A4", "D2:D4", "E2:E4"):
        ws.merge_cells(ref)
    ws["E2"].number_format = "mmm-yy"
    book.save(tmp_path / "merged.xlsx")
    import_plan_file(engine, tmp_path / "merged.xlsx", plan_name="Plan")
    rows = {a.ref: a for a in session.scalars(select(Action))}
    assert {ref: rows[ref].owners_text for ref in ("P1", "P2", "P3")} == dict.fromkeys(("P1", "P2", "P3"), "HR Business Partner")
    assert {rows[ref].due_date for ref in ("P1", "P2", "P3")} == {dt.date(2027, 3, 31)}  # a month, as formatted
    assert {rows[ref].workstream.name for ref in ("P1", "P2", "P3")} == {"Pay"}
    assert rows["C1"].owners_text == "Network Chair" and rows["C1"].workstream.name == "Culture"


def test_a_value_in_a_merged_cell_belongs_to_every_row_it_spans_in_word(
        engine: Engine, session: Session, tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    table = document.add_table(rows=4, cols=4)
    for c, text in enumerate(["Ref", "Action", "Owner", "Deadline"]):
        table.cell(0, c).text = text
    for r, (ref, action) in enumerate([("T1", "Mandatory EDI training"), ("T2", "Reverse mentoring scheme"),
                                       ("T3", "Inclusive recruitment panels")], start=1):
        table.cell(r, 0).text, table.cell(r, 1).text = ref, action
    owner = table.cell(1, 2).merge(table.cell(3, 2))
    owner.text = "L&D Lead"
    due = table.cell(1, 3).merge(table.cell(3, 3))
    due.text = "March 2027"
    document.save(str(tmp_path / "merged.docx"))
    import_plan_file(engine, tmp_path / "merged.docx", plan_name="Plan")
    rows = {a.ref: a for a in session.scalars(select(Action))}
    assert {(a.owners_text, a.due_text) for a in rows.values()} == {("L&D Lead", "March 2027")} and len(rows) == 3


def test_a_status_shown_only_as_the_cell_colour_is_read_in_excel(engine: Engine, session: Session, tmp_path: Path) -> None:
    import openpyxl
    from openpyxl.styles import PatternFill

    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["Ref", "Action", "Lead Officer", "RAG"])
    for row in (["P1", "Publish the pay gap report", "HR Lead", None], ["P2", "Audit interview panels", "HR Lead", 3],
                ["P3", "Review grading of roles", "HR Lead", "Red"], ["P4", "Policy on flexible work", "HR Lead", None],
                ["P5", "Menopause guidance", "HR Lead", None]):
        ws.append(row)
    for cell, colour in (("D2", "FF00B050"), ("D3", "FFFFC000"), ("D4", "FF00B050"), ("D5", "FF808080"), ("D6", "FF0070C0")):
        ws[cell].fill = PatternFill("solid", fgColor=colour)
    book.save(tmp_path / "colour.xlsx")
    result = import_plan_file(engine, tmp_path / "colour.xlsx", plan_name="Plan")
    statuses = {a.ref: a.file_status for a in session.scalars(select(Action))}
    # Green fill; amber behind a number; the word "Red" wins over a green fill; grey is unclear; blue is done.
    assert statuses == {"P1": "green", "P2": "amber", "P3": "red", "P4": None, "P5": "complete"}
    assert [(w.where, w.message) for w in result.warnings] == [
        ("sheet 'Sheet' row 5 (Status)", "the status cell is coloured #808080, which is not close to red, amber, "
                                         "green or blue; left unknown")]


def test_a_status_shown_only_as_the_cell_shading_is_read_in_word(engine: Engine, session: Session, tmp_path: Path) -> None:
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    for c, text in enumerate(["Ref", "Action", "Status"]):
        table.cell(0, c).text = text
    for r, (ref, action, colour) in enumerate([("T1", "Mandatory EDI training", "FF0000"),
                                                ("T2", "Reverse mentoring scheme", "92D050")], start=1):
        table.cell(r, 0).text, table.cell(r, 1).text = ref, action
        table.cell(r, 2)._tc.get_or_add_tcPr().append(parse_xml(f'<w:shd {nsdecls("w")} w:val="clear" w:fill="{colour}"/>'))
    document.save(str(tmp_path / "shaded.docx"))
    import_plan_file(engine, tmp_path / "shaded.docx", plan_name="Plan")
    assert {a.ref: a.file_status for a in session.scalars(select(Action))} == {"T1": "red", "T2": "green"}


def test_a_blank_spacer_row_inside_a_sheet_does_not_end_the_action_above(
        engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "spaced.xlsx", [
        ["Ref", "Action", "Lead Officer", "Progress"],
        ["P1", "Publish the pay gap report", "HR Business Partner", "Data collected"],
        [],
        [None, None, "Data Lead", "Analysis started"],  # continues P1 after a spacer
        ["P2", "Audit interview panels", "HR Business Partner", None],
    ])
    result = import_plan_file(engine, path, plan_name="Plan")
    rows = {a.ref: a for a in session.scalars(select(Action))}
    assert sorted(rows) == ["P1", "P2"] and not [w for w in result.warnings if "no action above" in w.message]
    assert rows["P1"].owners_text == "HR Business Partner\nData Lead"
    assert rows["P1"].file_progress == "Data collected\nAnalysis started"
