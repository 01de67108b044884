"""Formula cells: their saved value is imported; a formula with none is a warning naming the cell."""
from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from storage.importers.load import import_plan_file
from storage.importers.reading import read_document
from storage.models import Action
from tests.importers.conftest import Chaser
from tests.importers.makers import rewrite_part, write_xlsx

HEADER = ["Ref", "Action", "Owner", "Due Date", "Status"]


def test_chaser_import_warns_for_each_formula_with_no_saved_value(chaser: Chaser, tmp_path: Path) -> None:
    # openpyxl, like most scripts, writes a formula without computing it: no saved value.
    path = write_xlsx(tmp_path / "scripted.xlsx", [
        HEADER,
        ["A1", '=CONCAT("Review ","panels")', "HR Lead", "Mar-25", '=IF(TRUE,"G","R")'],
        ["A2", "Publish the pay gap report", "=C2", "=DATE(2025,3,31)", "A"],
    ])
    out = json.loads(chaser("import", str(path), "--plan", "Plan", "--format", "json").stdout)
    fix = "; open and save the file in Excel"
    assert out["warnings"] == [
        {"where": "sheet 'Sheet' row 2 (B2)", "message": f'formula with no saved value (=CONCAT("Review ","panels")){fix}'},
        {"where": "sheet 'Sheet' row 2 (E2)", "message": f'formula with no saved value (=IF(TRUE,"G","R")){fix}'},
        {"where": "sheet 'Sheet' row 3 (C3)", "message": f"formula with no saved value (=C2){fix}"},
        {"where": "sheet 'Sheet' row 3 (D3)", "message": f"formula with no saved value (=DATE(2025,3,31)){fix}"},
    ]
    table = chaser("import", str(path), "--plan", "Plan").stdout
    assert "4 warning(s)" in table and "formula with no saved value" in table


def test_a_formula_with_a_saved_value_imports_that_value_quietly(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "saved.xlsx", [HEADER, ["A1", '=CONCAT("Review ","panels")', "HR Lead", "Mar-25", "G"]])

    def as_excel_saves_it(xml: bytes) -> bytes:  # Excel keeps the result beside the formula
        return re.sub(rb'<c r="B2"><f>(.*?)</f><v></v></c>', rb'<c r="B2" t="str"><f>\1</f><v>Review panels</v></c>', xml)

    rewrite_part(path, "xl/worksheets/sheet1.xml", as_excel_saves_it)
    result = import_plan_file(engine, path, plan_name="Plan")
    assert (result.created, result.warnings) == (1, [])
    assert session.scalar(select(Action.title)) == "Review panels"


def test_a_formula_whose_saved_value_is_empty_text_is_not_a_warning(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "empty.xlsx", [HEADER, ["A1", "Review panels", "HR Lead", "Mar-25", '=IF(FALSE,"G","")']])
    rewrite_part(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b'<c r="E2"><f>', b'<c r="E2" t="str"><f>'))
    assert read_document(path).warnings == []


def test_formulas_in_hidden_sheets_are_not_read(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(HEADER)
    wb.active.append(["A1", "Review panels", "HR Lead", "Mar-25", "G"])
    lookup = wb.create_sheet("Lookups")
    lookup["A1"] = "=1+1"
    lookup.sheet_state = "hidden"
    wb.save(tmp_path / "hidden.xlsx")
    assert read_document(tmp_path / "hidden.xlsx").warnings == []


def test_a_formula_cell_without_its_reference_is_named_by_its_place(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "bare.xlsx", [HEADER, ["A1", "Review panels", "=A1", "Mar-25", "G"]])
    # Cells may leave out r="..."; other writers do.
    rewrite_part(path, "xl/worksheets/sheet1.xml", lambda xml: re.sub(rb' r="[A-Z]+2"', b"", xml))
    assert [(w.where, w.message) for w in read_document(path).warnings] == [
        ("sheet 'Sheet' row 2 (C2)", "formula with no saved value (=A1); open and save the file in Excel")
    ]
