"""Small files that would eat the machine are refused in one line naming the limit.

The files are made here, small and fast: a zip directory that declares a huge part, a part
streamed through the compressor, a sheet with cells at its far corner. The full-size files
of the issue (4 GB inflated, 3 million paragraphs), with time and memory, are in
bench/hostile_bench.py.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from chaser.errors import ImportFileError
from storage.importers import reading
from storage.importers.load import import_plan_file
from storage.importers.reading import read_document
from storage.models import Action
from tests.importers.conftest import Chaser, assert_refused
from tests.importers.makers import (
    add_shared_strings,
    docx_body,
    rewrite_part,
    set_declared_size,
    write_csv,
    write_docx,
    write_docx_paragraphs,
    write_docx_stream,
    write_docx_text_bomb,
    write_xlsx,
    write_xlsx_far_cells,
)


def refused(path: Path) -> str:
    with pytest.raises(ImportFileError) as caught:
        read_document(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


# --- What the user sees -------------------------------------------------------------------


def test_chaser_import_refuses_a_word_file_declaring_a_4_gb_part(tracker: Chaser, tmp_path: Path) -> None:
    path = write_docx_paragraphs(tmp_path / "bomb.docx", 10)
    set_declared_size(path, "word/document.xml", 4_000_000_000)
    assert_refused(tracker, path, "the Word document inflates to more than 200 MB (limit)", "word/document.xml", "4,000 MB")


def test_chaser_import_refuses_a_word_file_of_endless_paragraphs(tracker: Chaser, tmp_path: Path) -> None:
    path = write_docx_paragraphs(tmp_path / "paragraphs.docx", reading.MAX_PARAGRAPHS + 1, b"<w:p/>")
    assert path.stat().st_size < 100_000
    assert_refused(tracker, path, "the Word document has more than 200,000 paragraphs (limit)")


def test_chaser_import_refuses_a_sheet_declaring_a_huge_dimension_with_a_cell_at_its_corner(
    tracker: Chaser, tmp_path: Path
) -> None:
    path = write_xlsx_far_cells(tmp_path / "corner.xlsx", {"A1": "Action", "B1": "Owner", "XFD1048576": "x"})
    assert path.stat().st_size < 10_000
    assert_refused(tracker, path, "sheet 'Sheet' goes on past row 1,000,000 (limit)")


# --- Excel --------------------------------------------------------------------------------


def test_a_sheet_declaring_a_huge_dimension_is_read_by_its_real_cells(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_xlsx_far_cells(
        tmp_path / "declared.xlsx",
        {"A1": "Action", "B1": "Owner", "A2": "Publish the pay gap report", "B2": "HR Lead"},
        dimension="A1:XFD1048576",
    )
    result = import_plan_file(engine, path, plan_name="Plan")
    assert (result.created, result.warnings) == (1, [])
    assert session.scalar(select(Action.title)) == "Publish the pay gap report"


def test_rows_past_a_declared_dimension_that_is_too_small_are_read_too(tmp_path: Path) -> None:
    path = write_xlsx_far_cells(
        tmp_path / "small.xlsx", {"A1": "Action", "B1": "Owner", "A2": "Review panels", "B2": "HR Lead"}, dimension="A1:B1"
    )
    assert [[c.text for c in item.cells] for item in read_document(path).items] == [["Action", "Owner"], ["Review panels", "HR Lead"]]


def test_a_cell_past_column_200_is_refused_naming_the_cell(tmp_path: Path) -> None:
    path = write_xlsx_far_cells(tmp_path / "wide.xlsx", {"A1": "Action", "B1": "Owner", "XFD3": "stray"})
    assert "sheet 'Sheet' has a cell at XFD3, past column GR (200 columns, the limit)" in refused(path)


def test_blank_rows_far_down_a_sheet_read_as_one(tmp_path: Path) -> None:
    path = write_xlsx_far_cells(tmp_path / "gaps.xlsx", {"A1": "Action", "B1": "Owner", "A900000": "Last", "B900000": "x"})
    doc = read_document(path)
    assert [item.where for item in doc.items] == ["sheet 'Sheet' row 1", "sheet 'Sheet' row 2", "sheet 'Sheet' row 900000"]


# --- Zip archives -------------------------------------------------------------------------


def test_a_part_that_really_inflates_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write_docx_text_bomb(tmp_path / "bomb.docx", reading.MAX_PART_BYTES + 1_000_000)
    assert path.stat().st_size < 1_000_000
    assert "its part word/document.xml alone would be 201 MB" in refused(path)


def test_all_parts_together_are_limited_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_docx(tmp_path / "plan.docx", [("table", [["Action", "Owner"], ["x", "y"]])])
    monkeypatch.setattr(reading, "MAX_INFLATED_BYTES", 10_000)
    assert "the Word document inflates to" in refused(path) and "more than 0.0 MB (limit)" in refused(path)


def test_a_part_that_declares_less_than_it_holds_is_damaged_and_not_inflated(tmp_path: Path) -> None:
    path = write_docx_text_bomb(tmp_path / "liar.docx", 20_000_000)
    set_declared_size(path, "word/document.xml", 5_000)
    assert "the Word document is damaged" in refused(path)


def test_what_is_inflated_is_counted_while_reading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The directory check is the first guard; counting the bytes as they come is the second.
    path = write_docx_text_bomb(tmp_path / "bomb.docx", 3_000_000)
    monkeypatch.setattr(reading, "_check_inflated", lambda *args: None)
    monkeypatch.setattr(reading, "MAX_PART_BYTES", 1_000_000)
    assert "inflates to more than 1.0 MB (limit) in its part word/document.xml" in refused(path)


def test_a_zip_listing_too_many_parts_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "parts.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("word/document.xml", "")
        for n in range(reading.MAX_PARTS):
            zf.writestr(f"p{n}", "")
    assert "the zip directory lists 10,001 parts" in refused(path) and "more than 10,000 parts (limit)" in refused(path)


# --- Word ---------------------------------------------------------------------------------


def test_markup_with_no_paragraph_ending_is_refused(tmp_path: Path) -> None:
    head, tail = docx_body()
    path = write_docx_stream(tmp_path / "junk.docx", head, b'<w:bookmarkEnd w:id="1"/>', 1_000_000, tail)
    assert "more than 4.0 MB of markup in word/document.xml with no paragraph or table row ending in it (limit)" in refused(path)


def test_markup_nested_too_deep_is_refused(tmp_path: Path) -> None:
    head, tail = docx_body(b"<w:p>" + b"<w:r>" * 300)
    path = write_docx_stream(tmp_path / "deep.docx", head, b"", 0, b"</w:r>" * 300 + b"</w:p>" + tail)
    assert "the Word document has markup nested more than 256 deep (limit)" in refused(path)


def test_a_table_cell_spanning_millions_of_columns_is_refused(tmp_path: Path) -> None:
    head, tail = docx_body(
        b'<w:tbl><w:tr><w:tc><w:tcPr><w:gridSpan w:val="100000000"/></w:tcPr><w:p/></w:tc></w:tr></w:tbl>'
    )
    path = write_docx_stream(tmp_path / "span.docx", head, b"", 0, tail)
    assert "table 1 row 1 is more than 200 cells wide (limit)" in refused(path)


def test_word_table_rows_are_limited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    head, tail = docx_body(b"<w:tbl>")
    path = write_docx_stream(tmp_path / "rows.docx", head, b"<w:tr><w:tc><w:p/></w:tc></w:tr>", 11, b"</w:tbl>" + tail)
    monkeypatch.setattr(reading, "MAX_ROWS", 10)
    assert "the Word document has more than 10 table rows (limit)" in refused(path)


def test_a_table_inside_a_cell_is_read_as_that_cells_text(tmp_path: Path) -> None:
    # The streaming reader drops each row once read; a nested table must still reach its cell.
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Action", "Owner"
    table.cell(1, 0).text = "Review panels"
    inner = table.cell(1, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "HR Lead", "Comms Lead"
    document.add_paragraph("After the table")
    document.save(tmp_path / "nested.docx")
    doc = read_document(tmp_path / "nested.docx")
    rows = [(item.where, [c.text for c in item.cells]) for item in doc.items if item.is_row]
    assert rows == [("table 1 row 1", ["Action", "Owner"]), ("table 1 row 2", ["Review panels", "HR Lead\nComms Lead"])]
    assert [item.text for item in doc.items if not item.is_row] == ["After the table"]


# --- Any file -----------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_unread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plan.csv", [["Action", "Owner"], ["x", "y"]])
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 10)
    assert "the file is 0.0 MB, more than 0.0 MB (limit)" in refused(path)


def test_csv_rows_and_columns_are_limited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(reading, "MAX_ROWS", 10)
    long = write_csv(tmp_path / "long.csv", [["Action", "Owner"]] + [[f"a{n}", "o"] for n in range(10)])
    assert "the file has more than 10 rows (limit)" in refused(long)
    wide = write_csv(tmp_path / "wide.csv", [["Action", "Owner"], ["x"] * 201])
    assert "row 2 has more than 200 columns (limit)" in refused(wide)
    trailing = write_csv(tmp_path / "trailing.csv", [["Action", "Owner"], ["x", "y"] + [""] * 300])
    assert len(read_document(trailing).items) == 2


def test_refusals_write_nothing(engine: Engine, session: Session, tmp_path: Path) -> None:
    path = write_docx_paragraphs(tmp_path / "bomb.docx", 10)
    set_declared_size(path, "word/document.xml", 4_000_000_000)
    with pytest.raises(ImportFileError):
        import_plan_file(engine, path)
    assert session.scalar(select(func.count(Action.id))) == 0


def test_a_workbook_with_endless_shared_texts_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = add_shared_strings(write_xlsx(tmp_path / "texts.xlsx", [["Action", "Owner"], ["x", "y"]]), 1_001)
    monkeypatch.setattr(reading, "MAX_SHARED_STRINGS", 1_000)
    assert "the Excel workbook has more than 1,000 shared texts (limit)" in refused(path)
    monkeypatch.setattr(reading, "MAX_SHARED_STRINGS", 1_001)
    assert len(read_document(path).items) == 2


def test_a_workbook_part_read_whole_is_limited_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "styles.xlsx", [["Action", "Owner"], ["x", "y"]])
    rewrite_part(path, "xl/styles.xml", lambda xml: xml.replace(b"</styleSheet>", b"<x/>" * 300_000 + b"</styleSheet>"))
    assert len(read_document(path).items) == 2
    monkeypatch.setattr(reading, "MAX_WHOLE_PART_BYTES", 1_000_000)
    assert "the Excel workbook's part xl/styles.xml inflates to 1.2 MB, more than 1.0 MB (limit for a part read whole)" in refused(path)


def test_a_sheet_full_of_unknown_elements_is_refused(tmp_path: Path) -> None:
    # openpyxl would keep each of them until the sheet ends.
    # Between rows, after the last one, after the rows, before them all (which openpyxl reads on opening).
    for where in (b"<row ", b"</sheetData>", b"<pageMargins", b"<sheetPr"):
        path = write_xlsx(tmp_path / "junk.xlsx", [["Action", "Owner"], ["x", "y"]])
        rewrite_part(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(where, b"<x/>" * 100_001 + where))
        assert "sheet 'Sheet' has more than 100,000 XML elements that are neither cells nor sheet settings (limit)" in refused(path)


def test_a_sheet_with_markup_and_no_row_ending_is_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "tail.xlsx", [["Action", "Owner"], ["x", "y"]])
    rewrite_part(path, "xl/worksheets/sheet1.xml",
                 lambda xml: xml.replace(b"</sheetData>", b"</sheetData>" + b"<x/>" * 1_100_000))
    assert "more than 4.0 MB of markup in xl/worksheets/sheet1.xml with no row ending in it (limit)" in refused(path)


def test_hidden_sheets_are_bounded_too_and_named(tmp_path: Path) -> None:
    # openpyxl starts reading every sheet when it opens the workbook, hidden ones included.
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["Action", "Owner"])
    wb.create_sheet("Old lookups").sheet_state = "hidden"
    wb.save(tmp_path / "hidden.xlsx")
    rewrite_part(tmp_path / "hidden.xlsx", "xl/worksheets/sheet2.xml",
                 lambda xml: xml.replace(b"<sheetPr", b"<x/>" * 100_001 + b"<sheetPr"))
    assert "sheet 'Old lookups' has more than 100,000 XML elements" in refused(tmp_path / "hidden.xlsx")
