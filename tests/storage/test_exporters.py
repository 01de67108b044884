"""Writing the plan back into the council's own file: only the answered cells change."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl

from tests.conftest import TOWER_HAMLETS, Chaser
from tests.importers.makers import write_csv


def people(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"],
        ["Sharon Godman", "sharon@th.example", "Sharon Godman Director Strategy, Improvement and Transformation"],
    ])


def cells(path: Path) -> dict[tuple[str, str], object]:
    book = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.value for ws in book.worksheets for row in ws.iter_rows() for c in row
            if c.value is not None}


def test_an_excel_plan_comes_back_with_the_answers_in_its_own_cells_and_nothing_else_changed(
        chaser: Chaser, tmp_path: Path) -> None:
    plan = tmp_path / "th.xlsx"
    plan.write_bytes(TOWER_HAMLETS.read_bytes())
    chaser("import", str(plan), "--plan", "TH")
    chaser("people", "import", str(people(tmp_path)))
    first, second = json.loads(chaser("actions", "--format", "json").stdout)[:2]
    chaser("update", first["ref"], "--status", "A", "--note", "=SUM(A1) survey delayed", "--by", "sharon@th.example")
    chaser("update", second["ref"], "--due", "June 2023", "--by", "sharon@th.example")
    report = json.loads(chaser("export", "TH", "--out", str(tmp_path / "back.xlsx"), "--format", "json").stdout)
    assert (report["written"], report["cells"]) == (2, 3)
    before, after = cells(plan), cells(tmp_path / "back.xlsx")
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    # Row 14 is the first action, row 15 the second (see tests/importers/test_samples.py); a
    # column the sheet lacked gets its header; every other cell of every sheet is as it was.
    added = {key for key in changed if before.get(key) is None and after.get(key) in ("Status", "Progress", "Due date")}
    assert {key[1].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for key in changed - added} == {"14", "15"}
    assert {key[0] for key in changed} == {"Action Plan"} and len(changed - added) == 3
    assert after[("Action Plan", "D15")] == dt.datetime(2023, 6, 30)  # a date cell stays a date
    today = dt.datetime.now(dt.timezone.utc).strftime("%d/%m/%Y")
    row14 = {after[key] for key in changed - added if key[1].endswith("14")}
    assert row14 == {"A", f"=SUM(A1) survey delayed ({today}, sharon@th.example)"} or \
        row14 == {"Amber", f"=SUM(A1) survey delayed ({today}, sharon@th.example)"}
    book = openpyxl.load_workbook(tmp_path / "back.xlsx")
    original = openpyxl.load_workbook(plan)
    for ws in original.worksheets:
        out = book[ws.title]
        for row in ws.iter_rows():  # every cell keeps its style, the written ones too
            for cell in row:
                twin = out[cell.coordinate]
                assert [repr(x) for x in (twin.font, twin.fill, twin.border, twin.alignment, twin.number_format)] == [
                    repr(x) for x in (cell.font, cell.fill, cell.border, cell.alignment, cell.number_format)], cell.coordinate
        assert {str(r) for r in ws.merged_cells.ranges} == {str(r) for r in out.merged_cells.ranges}
        assert {k: d.width for k, d in ws.column_dimensions.items()} == {k: d.width for k, d in out.column_dimensions.items()}
    formula_cell = next(c for row in book["Action Plan"].iter_rows() for c in row
                        if isinstance(c.value, str) and c.value.startswith("=SUM(A1) survey"))
    assert formula_cell.data_type == "s"  # an owner's "=..." is text, never a formula
    # Importing the exported file again changes nothing that was recorded.
    history = len(json.loads(chaser("show", first["ref"], "--format", "json").stdout)["history"])
    again = json.loads(chaser("import", str(tmp_path / "back.xlsx"), "--plan", "TH", "--format", "json").stdout)
    assert again["created"] == 0
    shown = json.loads(chaser("show", first["ref"], "--format", "json").stdout)
    assert len(shown["history"]) == history and shown["status"] == "amber"
    assert json.loads(chaser("show", second["ref"], "--format", "json").stdout)["due"] == "2023-06-30"


def test_a_csv_plan_comes_back_with_answers_and_formulas_neutralised(chaser: Chaser, tmp_path: Path) -> None:
    plan = write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline", "RAG"],
                                             ["P1", "Publish the pay gap report", "HR Lead", "May-27", "G"],
                                             ["P2", "Audit interview panels", "HR Lead", "Jun-27", "G"]])
    chaser("import", str(plan), "--plan", "P")
    chaser("people", "import", str(write_csv(tmp_path / "p.csv", [["name", "email", "roles"], ["Hana Lee", "hana@c.example", "HR Lead"]])))
    chaser("update", "P1", "--status", "R", "--note", "@cmd|' /C calc'!A0", "--due", "30/09/2027", "--by", "hana@c.example")
    report = json.loads(chaser("export", "P", "--out", str(tmp_path / "back.csv"), "--format", "json").stdout)
    assert report["columns_added"] == ["Progress"]
    lines = (tmp_path / "back.csv").read_text(encoding="utf-8-sig").splitlines()
    today = dt.datetime.now(dt.timezone.utc).strftime("%d/%m/%Y")
    assert lines[0] == "Ref,Action,Owner,Deadline,RAG,Progress"
    assert lines[1] == f"P1,Publish the pay gap report,HR Lead,Sep-27,R,\"'@cmd|' /C calc'!A0 ({today}, hana@c.example)\""
    assert lines[2] == "P2,Audit interview panels,HR Lead,Jun-27,G"  # untouched


def test_an_export_to_another_format_or_from_a_missing_template_says_what_to_do(chaser: Chaser, tmp_path: Path) -> None:
    plan = write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner"], ["P1", "Publish the report", "HR Lead"]])
    chaser("import", str(plan), "--plan", "P")
    assert chaser("export", "P", "--out", str(tmp_path / "x.xlsx"), expect=2).stderr.startswith(
        "chaser: --out ")
    assert chaser("export", "P", "--out", str(tmp_path / "x.csv"), "--template", str(tmp_path / "gone.csv"),
                  expect=2).stderr == f"chaser: --template {tmp_path / 'gone.csv'}: file not found\n"
    assert chaser("export", "Nope", "--out", str(tmp_path / "x.csv"), expect=2).stderr == "chaser: no plan named 'Nope'\n"


def test_a_word_plan_comes_back_with_the_answers_in_its_own_cells(chaser: Chaser, tmp_path: Path) -> None:
    import docx

    from tests.conftest import LAMBETH

    plan = tmp_path / "lambeth.docx"
    plan.write_bytes(LAMBETH.read_bytes())
    chaser("import", str(plan))
    chaser("people", "import", str(write_csv(tmp_path / "p.csv", [["name", "email", "roles"],
                                                                   ["Priya Shah", "priya@l.example", "HR Business Partner"]])))
    chaser("update", "CP1", "--status", "G", "--note", "Panel training done", "--due", "July 2023",
           "--by", "priya@l.example")
    name = json.loads(chaser("actions", "--format", "json").stdout)[0]["plan"]
    report = json.loads(chaser("export", name, "--out", str(tmp_path / "back.docx"), "--format", "json").stdout)
    assert report["written"] == 1

    def texts(path: Path) -> list[list[str]]:
        return [[c.text for c in row.cells] for t in docx.Document(str(path)).tables for row in t.rows]

    paragraphs = [p.text for p in docx.Document(str(plan)).paragraphs]
    assert [p.text for p in docx.Document(str(tmp_path / "back.docx")).paragraphs] == paragraphs
    before, after = texts(plan), texts(tmp_path / "back.docx")
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    # CP1's row, and the header of its table, which had no Status or Progress column: both are added.
    assert len(before) == len(after) and len(changed) == 2
    assert report["columns_added"] == ["table 2: Status", "table 2: Progress"]
    assert changed[0][1] == changed[0][0] + ["Status", "Progress"]
    row = changed[1][1]
    assert row[:len(changed[1][0])] != changed[1][0] and row[-2] == "Green"
    assert row[0] == "CP1" and "July 2023" in row
    today = dt.datetime.now(dt.timezone.utc).strftime("%d/%m/%Y")
    assert f"Panel training done ({today}, priya@l.example)" in row
    again = json.loads(chaser("import", str(tmp_path / "back.docx"), "--format", "json").stdout)
    assert again["created"] == 0
    shown = json.loads(chaser("show", "CP1", "--format", "json").stdout)
    assert shown["status"] == "green" and len(shown["history"]) == 1


def test_without_its_file_the_plan_is_written_as_a_clean_table_one_sheet_per_workstream(
        chaser: Chaser, tmp_path: Path) -> None:
    plan = write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline", "Workstream"],
                                             ["P1", "=HYPERLINK(\"x\") report", "HR Lead", "May-27", "Pay"],
                                             ["C1", "Staff network listening", "Network Chair", "On-going", "Culture"]])
    chaser("import", str(plan), "--plan", "P")
    plan.unlink()  # the council's file is gone
    chaser("people", "import", str(write_csv(tmp_path / "p.csv", [["name", "email", "roles"], ["Hana Lee", "hana@c.example", "HR Lead"]])))
    chaser("update", "P1", "--status", "A", "--by", "hana@c.example")
    for kind in ("xlsx", "csv", "docx"):
        assert json.loads(chaser("export", "P", "--out", str(tmp_path / f"clean.{kind}"), "--format", "json").stdout)[
            "source"] == "(none: a clean table)"
    book = openpyxl.load_workbook(tmp_path / "clean.xlsx")
    assert book.sheetnames == ["Pay", "Culture"]
    assert [c.value for c in book["Pay"][2]][:7] == ["P1", '=HYPERLINK("x") report', "Pay", "HR Lead", None, "May-27", "Amber"]
    assert book["Pay"]["B2"].data_type == "s"
    lines = (tmp_path / "clean.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "Ref,Action,Workstream,Owner(s),Start,Due date,Status,Progress"
    assert lines[1].startswith("P1,\"'=HYPERLINK(\"\"x\"\") report\",Pay,HR Lead,,May-27,Amber")


def test_where_the_file_shows_status_as_colour_the_export_colours_the_cell(chaser: Chaser, tmp_path: Path) -> None:
    from openpyxl.styles import PatternFill

    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["Ref", "Action", "Lead Officer", "RAG"])
    ws.append(["P1", "Publish the pay gap report", "HR Lead", None])
    ws["D2"].fill = PatternFill("solid", fgColor="FF00B050")
    book.save(tmp_path / "colour.xlsx")
    chaser("import", str(tmp_path / "colour.xlsx"), "--plan", "C")
    chaser("people", "import", str(write_csv(tmp_path / "p.csv", [["name", "email", "roles"], ["Hana Lee", "hana@c.example", "HR Lead"]])))
    chaser("update", "P1", "--status", "R", "--by", "hana@c.example")
    chaser("export", "C", "--out", str(tmp_path / "back.xlsx"))
    cell = openpyxl.load_workbook(tmp_path / "back.xlsx").active["D2"]
    assert cell.value is None and cell.fill.fgColor.rgb == "FFFF0000"
    chaser("import", str(tmp_path / "back.xlsx"), "--plan", "C")
    shown = json.loads(chaser("show", "P1", "--format", "json").stdout)
    assert shown["status"] == "red" and len(shown["history"]) == 2  # the import and Hana's answer, nothing more


def test_where_a_word_plan_shows_status_as_shading_the_export_shades_the_cell(chaser: Chaser, tmp_path: Path) -> None:
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls, qn

    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    for c, text in enumerate(["Ref", "Action", "Status"]):
        table.cell(0, c).text = text
    table.cell(1, 0).text, table.cell(1, 1).text = "T1", "Mandatory EDI training"
    table.cell(1, 2)._tc.get_or_add_tcPr().append(parse_xml(f'<w:shd {nsdecls("w")} w:val="clear" w:fill="00B050"/>'))
    document.save(str(tmp_path / "shaded.docx"))
    chaser("import", str(tmp_path / "shaded.docx"), "--plan", "S")
    chaser("people", "import", str(write_csv(tmp_path / "p.csv", [["name", "email", "roles"], ["Hana Lee", "hana@c.example", ""]])))
    chaser("update", "T1", "--status", "A", "--by", "hana@c.example", expect=2)  # not an owner: refused
    Path("chaser.toml").write_text('edi_lead = "hana@c.example"\n')
    chaser("update", "T1", "--status", "A", "--by", "hana@c.example")
    chaser("export", "S", "--out", str(tmp_path / "back.docx"))
    cell = docx.Document(str(tmp_path / "back.docx")).tables[0].cell(1, 2)
    assert cell.text == "" and cell._tc.tcPr.find(qn("w:shd")).get(qn("w:fill")) == "FFC000"


def test_an_added_column_goes_after_every_column_the_table_uses(chaser: Chaser, tmp_path: Path) -> None:
    plan = write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Team notes"],
                                             ["P1", "Publish the pay gap report", "HR Lead", "keep this"]])
    chaser("import", str(plan), "--plan", "P")
    chaser("people", "import", str(write_csv(tmp_path / "p.csv", [["name", "email", "roles"], ["Hana Lee", "hana@c.example", "HR Lead"]])))
    chaser("update", "P1", "--status", "G", "--by", "hana@c.example")
    chaser("export", "P", "--out", str(tmp_path / "back.csv"))
    lines = (tmp_path / "back.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines == ["Ref,Action,Owner,Team notes,Status", "P1,Publish the pay gap report,HR Lead,keep this,Green"]
