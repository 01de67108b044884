"""Read Word, Excel and CSV plan files into one stream of text lines and table rows.

Readers know file formats only; what the rows mean is decided in ``storage.importers.parse``.
Every item carries ``where`` (``table 3 row 2``, ``sheet 'Plan' row 14``, ``row 7`` (CSV)) so a
warning or error can name the place a person would look.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from chaser.errors import ImportFileError

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"


@dataclass(frozen=True)
class Cell:
    value: object  # str, or a date/datetime/number from an Excel cell
    number_format: str | None = None

    @property
    def text(self) -> str:
        if self.value is None:
            return ""
        return str(self.value).strip()


@dataclass(frozen=True)
class Item:
    """A paragraph (``cells`` empty) or a table/grid row, in document order."""

    where: str
    text: str = ""
    heading: bool = False
    cells: tuple[Cell, ...] = ()
    table: int | None = None  # Word table number; grid rows use the sheet number

    @property
    def is_row(self) -> bool:
        return bool(self.cells)


@dataclass
class Document:
    path: str
    kind: str
    title: str | None = None
    items: list[Item] = field(default_factory=list)
    grid: bool = False  # spreadsheet rows: text lines are single-cell rows, blank rows matter


def sniff(path: Path, head: bytes) -> str:
    """What the bytes are, whatever the extension says."""
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"  # old binary .doc / .xls
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile:
            return "broken-zip"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        return "zip"
    if b"\x00" in head:
        return "binary"
    return "text"


KIND_NAMES = {
    "docx": "a Word document (.docx)",
    "xlsx": "an Excel workbook (.xlsx)",
    "text": "a text file",
    "ole": "an old binary Office file (.doc/.xls); save it as .docx or .xlsx",
    "pdf": "a PDF",
    "zip": "a zip archive that is not a Word or Excel file",
    "broken-zip": "a damaged zip/Office file",
    "binary": "a binary file",
}
EXTENSIONS = {".docx": "docx", ".xlsx": "xlsx", ".xlsm": "xlsx", ".csv": "text", ".txt": "text", ".tsv": "text"}


def read_document(path: str | Path) -> Document:
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise ImportFileError(shown, "file not found")
    expected = EXTENSIONS.get(path.suffix.lower())
    if expected is None:
        raise ImportFileError(shown, f"unsupported file type '{path.suffix}': use .docx, .xlsx or .csv")
    if path.stat().st_size == 0:
        raise ImportFileError(shown, "the file is empty")
    with path.open("rb") as fh:
        head = fh.read(4096)
    actual = sniff(path, head)
    if actual != expected:
        wanted = KIND_NAMES[expected]
        if actual == "broken-zip" and expected != "text":
            raise ImportFileError(shown, f"the file is damaged: it is not a readable {wanted.split(' (')[0][2:].strip()}")
        raise ImportFileError(shown, f"the extension says {wanted} but the file is {KIND_NAMES[actual]}")
    if expected == "docx":
        return read_docx(path)
    if expected == "xlsx":
        return read_xlsx(path)
    return read_csv(path)


# --- Word ---------------------------------------------------------------------------------


def _cell_text(tc: etree._Element) -> str:
    paragraphs = []
    for p in tc.iter(f"{W}p"):
        parts = []
        for node in p.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}cr"):
            if node.tag == f"{W}t":
                parts.append(node.text or "")
            elif node.tag == f"{W}tab":
                parts.append(" ")
            else:
                parts.append("\n")
        paragraphs.append("".join(parts))
    return "\n".join(paragraphs).strip()


def _heading_styles(zf: zipfile.ZipFile) -> set[str]:
    try:
        root = etree.fromstring(zf.read("word/styles.xml"))
    except KeyError:
        return set()
    found = set()
    for style in root.iter(f"{W}style"):
        name = style.find(f"{W}name")
        label = (name.get(f"{W}val") if name is not None else "") or ""
        if re.match(r"(?i)^(heading \d|title|subtitle)$", label):
            found.add(style.get(f"{W}styleId") or "")
    return found


def read_docx(path: Path) -> Document:
    shown = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            body_xml = zf.read("word/document.xml")
            headings = _heading_styles(zf)
            title = None
            if "docProps/core.xml" in zf.namelist():
                node = etree.fromstring(zf.read("docProps/core.xml")).find(DC_TITLE)
                title = (node.text or "").strip() or None if node is not None else None
            root = etree.fromstring(body_xml, parser=etree.XMLParser(huge_tree=True))
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, OSError, EOFError) as exc:
        raise ImportFileError(shown, f"the Word document is damaged and cannot be read ({exc})") from None

    doc = Document(path=shown, kind="docx", title=title)
    body = root.find(f"{W}body")
    if body is None:
        raise ImportFileError(shown, "the Word document has no body")
    table_no = 0
    paragraph_no = 0

    def walk(parent: etree._Element) -> Iterator[etree._Element]:
        for child in parent:
            if child.tag == f"{W}sdt":  # content controls wrap ordinary paragraphs and tables
                content = child.find(f"{W}sdtContent")
                if content is not None:
                    yield from walk(content)
            elif child.tag in (f"{W}p", f"{W}tbl"):
                yield child

    for node in walk(body):
        if node.tag == f"{W}p":
            paragraph_no += 1
            text = _cell_text(node)
            if not text:
                continue
            style = node.find(f"{W}pPr/{W}pStyle")
            heading = style is not None and style.get(f"{W}val") in headings
            if heading and doc.title is None and style.get(f"{W}val", "").lower().startswith("title"):
                doc.title = text
            doc.items.append(Item(where=f"paragraph {paragraph_no}", text=text, heading=heading))
            continue
        table_no += 1
        merged: dict[int, str] = {}  # column -> text of the cell a vertical merge continues
        for row_no, tr in enumerate(node.iterfind(f"{W}tr"), start=1):
            cells: list[Cell] = []
            for tc in tr.iterfind(f"{W}tc"):
                props = tc.find(f"{W}tcPr")
                span, vmerge = 1, None
                if props is not None:
                    grid = props.find(f"{W}gridSpan")
                    if grid is not None:
                        span = max(1, int(grid.get(f"{W}val", "1") or 1))
                    vm = props.find(f"{W}vMerge")
                    if vm is not None:
                        vmerge = vm.get(f"{W}val", "continue")
                col = len(cells)
                text = _cell_text(tc)
                if vmerge == "restart":
                    merged[col] = text
                elif vmerge == "continue":
                    text = merged.get(col, text)
                else:
                    merged.pop(col, None)
                cells.append(Cell(text))
                cells.extend(Cell("") for _ in range(span - 1))
            if cells:
                doc.items.append(Item(where=f"table {table_no} row {row_no}", cells=tuple(cells), table=table_no))
    return doc


# --- Excel --------------------------------------------------------------------------------


def read_xlsx(path: Path) -> Document:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    shown = str(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ImportFileError(shown, f"the Excel workbook is damaged and cannot be read ({exc})") from None
    doc = Document(path=shown, kind="xlsx", grid=True)
    try:
        title = wb.properties.title if wb.properties is not None else None
        doc.title = title.strip() if title else None
        for sheet_no, ws in enumerate(wb.worksheets, start=1):
            if getattr(ws, "sheet_state", "visible") != "visible":
                continue  # hidden sheets hold lookups and old versions, not the plan
            for row_no, row in enumerate(ws.iter_rows(), start=1):
                cells = tuple(
                    Cell(c.value, getattr(c, "number_format", None) if c.value is not None else None) for c in row
                )
                doc.items.append(Item(where=f"sheet '{ws.title}' row {row_no}", cells=cells or (Cell(None),), table=sheet_no))
    finally:
        wb.close()
    return doc


# --- CSV ----------------------------------------------------------------------------------


def read_csv(path: Path) -> Document:
    shown = str(path)
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes almost anything
        raise ImportFileError(shown, "the file is not readable text (tried UTF-8 and Windows-1252)")
    if not text.strip():
        raise ImportFileError(shown, "the file is empty")
    sample = text[:20000]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    del text  # decoded again line by line below: a StringIO of it would take 4 bytes a character
    doc = Document(path=shown, kind="csv", grid=True, title=None)
    lines = io.TextIOWrapper(io.BytesIO(raw), encoding=encoding, newline="")
    try:
        for line_no, row in enumerate(csv.reader(lines, dialect), start=1):
            doc.items.append(Item(where=f"row {line_no}", cells=tuple(Cell(v) for v in row) or (Cell(None),), table=1))
    except csv.Error as exc:
        raise ImportFileError(shown, f"not a readable CSV file ({exc})") from None
    return doc
