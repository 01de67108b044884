"""CSV and text files are read in the encoding they are in, and a broken quote is an error."""
from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from chaser.errors import ImportFileError
from storage.importers.load import import_plan_file
from storage.importers.reading import read_document
from storage.models import Action
from tests.importers.conftest import Chaser, assert_refused

PLAN = "Ref,Action,Owner\nA1,Café review,Zoë Adams\nA2,Publish the “pay gap” report,Head of HR\n"


def titles(session: Session) -> list[str]:
    return list(session.scalars(select(Action.title).order_by(Action.position)))


def cells(path: Path) -> list[list[str]]:
    return [[c.text for c in item.cells] for item in read_document(path).items]


def test_chaser_import_keeps_utf8_with_one_stray_byte_and_names_its_row(chaser: Chaser, tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    # Real UTF-8 throughout, and one Latin-1 "é" pasted into the fourth row.
    path.write_bytes(PLAN.encode() + "A3,Plan the caf".encode() + b"\xe9 day,Comms Lead\n")
    out = json.loads(chaser("import", str(path), "--plan", "Plan", "--format", "json").stdout)
    assert out["warnings"] == [{"where": "row 4", "message": "a byte that is not UTF-8 (0xE9) was read as Windows-1252 'é'"}]
    shown = [a["title"] for a in json.loads(chaser("actions", "--format", "json").stdout)]
    assert shown == ["Café review", "Publish the “pay gap” report", "Plan the café day"]


def test_a_stray_byte_in_a_cell_over_several_lines_names_the_row_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes('Ref,Action\nA1,"Café\nreview of the caf'.encode() + b'\x92s menu"\n')
    doc = read_document(path)
    assert [(w.where, w.message) for w in doc.warnings] == [
        ("row 2 (line 3)", "a byte that is not UTF-8 (0x92) was read as Windows-1252 '’'")
    ]
    assert doc.items[1].cells[1].text == "Café\nreview of the caf’s menu"


def test_excel_unicode_text_utf16_with_tabs_imports(engine: Engine, session: Session, tmp_path: Path) -> None:
    # What Excel's "Save as: Unicode Text" writes: UTF-16 LE with a byte-order mark, tab-separated.
    path = tmp_path / "plan.txt"
    text = PLAN.replace(",", "\t").replace("Café review", "Café review, then report").replace("\n", "\r\n")
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    result = import_plan_file(engine, path, plan_name="Plan")
    assert (result.created, result.warnings) == (2, [])
    assert titles(session) == ["Café review, then report", "Publish the “pay gap” report"]


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
     (codecs.BOM_UTF8, "utf-8")],
)
def test_text_with_a_byte_order_mark_is_read_in_that_encoding(tmp_path: Path, bom: bytes, codec: str) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes(bom + PLAN.encode(codec))
    assert cells(path)[1] == ["A1", "Café review", "Zoë Adams"]


def test_a_windows_1252_file_is_read_as_such_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes((PLAN + "A3,Señor café,Chloé\n").encode("cp1252"))
    doc = read_document(path)
    assert doc.warnings == []
    assert [row[1] for row in cells(path)] == ["Action", "Café review", "Publish the “pay gap” report", "Señor café"]


def test_a_file_in_another_code_page_is_read_and_the_guess_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes("Ref,Action,Owner\nA1,Провести обучение сотрудников по вопросам равенства,Иван Петров\n".encode("cp1251"))
    doc = read_document(path)
    assert doc.items[1].cells[1].text == "Провести обучение сотрудников по вопросам равенства"
    assert [(w.where, w.message.split(",")[0]) for w in doc.warnings] == [
        ("whole file", "the file is not UTF-8; read as Windows-1251 (Cyrillic)")
    ]


def test_utf16_without_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_bytes(PLAN.encode("utf-16-le"))
    with pytest.raises(ImportFileError, match="UTF-16 text without a byte-order mark; save it from Excel as 'CSV UTF-8'"):
        read_document(path)


def test_chaser_import_refuses_a_quote_that_is_never_closed_naming_its_line(tracker: Chaser, tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text('Ref,Action,Owner\nA1,One,HR Lead\nA2,"Two, and a quote left open,Comms\nA3,Three,Ann\nA4,Four,Sue\n')
    assert_refused(tracker, path, "row 3 (line 3): a quote opened here is never closed, so the rest of the file (lines 3–5)")


def test_a_quote_swallowing_more_than_a_cell_can_hold_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text('Ref,Action,Owner\nA1,"Open,HR\n' + "A2,Two,Ann\n" * 20_000)
    with pytest.raises(ImportFileError, match=r"row 2 \(line 2\): a cell is longer than 131,072 characters; "
                                              "probably a quote opened here is never closed"):
        read_document(path)


def test_a_closed_quote_over_several_lines_at_the_end_still_imports(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text('Ref,Action,Owner\nA1,One,HR\nA2,"Two\nlines, with a comma",Ann')
    assert cells(path)[2] == ["A2", "Two\nlines, with a comma", "Ann"]


def test_a_nul_deep_in_a_csv_is_removed_with_a_warning_and_the_row_stored(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from storage.importers.load import import_plan_file
    from storage.models import Action

    rows = "".join(f"P{n},Action {n},HR Business Partner,May 2027\r\n" for n in range(1, 200))
    path = tmp_path / "nul.csv"
    path.write_bytes(b"Ref,Action,Owner,Deadline\r\n" + rows.encode() + b"P200,Sur\x00vey,HR Business Partner,May 2027\r\n")
    result = import_plan_file(engine, path, plan_name="N")
    assert [(w.where, w.message) for w in result.warnings] == [("row 201", "NUL characters removed from this row")]
    with Session(engine) as session:
        assert session.scalar(select(Action.title).where(Action.ref == "P200")) == "Survey"
