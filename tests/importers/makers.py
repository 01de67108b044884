"""Write small plan files of many shapes, the way different councils lay them out."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import docx
import openpyxl

Row = Sequence[object]


def write_csv(path: Path, rows: Sequence[Row], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


def write_xlsx(path: Path, rows: Sequence[Row], number_formats: dict[str, str] | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(list(row))
    for coordinate, fmt in (number_formats or {}).items():
        ws[coordinate].number_format = fmt
    wb.save(path)
    return path


def write_docx(path: Path, blocks: Sequence[tuple[str, object]]) -> Path:
    """blocks: ("title", text), ("heading", text), ("heading2", text), ("para", text), ("table", rows)."""
    document = docx.Document()
    for kind, content in blocks:
        if kind == "title":
            document.add_heading(str(content), level=0)
        elif kind == "heading":
            document.add_heading(str(content), level=1)
        elif kind == "heading2":
            document.add_heading(str(content), level=2)
        elif kind == "para":
            document.add_paragraph(str(content))
        elif kind == "table":
            rows = list(content)  # type: ignore[call-overload]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    table.cell(r, c).text = str(value)
        else:  # pragma: no cover - a mistake in a test
            raise ValueError(kind)
    document.save(path)
    return path
