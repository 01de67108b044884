"""Read Word, Excel and CSV plan files into one stream of text lines and table rows.

Readers know file formats only; what the rows mean is decided in ``storage.importers.parse``.
Every item carries ``where`` (``table 3 row 2``, ``sheet 'Plan' row 14``, ``row 7`` (CSV)) so a
warning or error can name the place a person would look. What a reader notices but can still
read (a byte that is not UTF-8, a formula with no saved value) goes into ``Document.warnings``.

The limits below keep a small hostile or broken file from exhausting the machine (a 4.9 KB
workbook declaring ``A1:XFD1048576``, a 4 MB Word file inflating to 4 GB, 3 million empty
paragraphs): each is far above what a real plan needs, and a file over one is refused with a
one-line error naming the limit. Word and Excel files are zip archives: the sizes their zip
directory declares are checked before anything is inflated, and XML is read as a stream whose
finished paragraphs and rows are dropped as soon as they are read. openpyxl holds more than a
stream (parts it reads whole, the shared texts, elements of a sheet it does not know), so a
workbook is surveyed with lxml first (``_check_workbook_parts``, ``_survey_sheet``).
"""
from __future__ import annotations

import codecs
import csv
import io
import posixpath
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from chaser.errors import ImportFileError

MB = 1_000_000
MAX_FILE_BYTES = 200 * MB  # the file on disk; a 250,000-action CSV is about 40 MB
MAX_PART_BYTES = 200 * MB  # one part of a .docx/.xlsx inflated; a 250,000-row sheet is about 110 MB
MAX_INFLATED_BYTES = 300 * MB  # all parts together, inflated
MAX_PARTS = 10_000  # parts in the zip; a Word or Excel file has tens
# An XML part of a workbook that openpyxl reads whole into a tree (styles, the workbook, its
# relationships): 20 MB of the smallest elements is about 500 MB of tree. Sheets and shared
# strings are streamed and have the part limit; a bloated styles.xml is a few megabytes.
MAX_WHOLE_PART_BYTES = 20 * MB
# Texts of a workbook's shared-strings table, which openpyxl keeps in a list (7 µs each to
# read): a 190 MB table of one-letter texts took 74 s and 1.1 GB from a 465 KB file.
MAX_SHARED_STRINGS = 1_000_000
# Elements of a sheet that are neither rows, cells nor repeated sheet settings (merged cells,
# hyperlinks, formatting rules...): openpyxl keeps each one until the sheet ends, so 190 MB of
# them in a 190 KB file took 50 s and 4 GB. A real sheet has a few dozen.
MAX_SHEET_OTHER_ELEMENTS = 100_000
MAX_ROWS = 1_000_000  # rows of a sheet or a CSV file; table rows of a Word document
MAX_COLUMNS = 200  # cells in one row
# Paragraphs of a Word document, those in table cells included: a 10,000-action plan has about
# 75,000. Reading one costs some microseconds, so 3 million empty ones took a minute.
MAX_PARAGRAPHS = 200_000
# XML read without a paragraph or row ending in it: lxml holds such markup until one ends, so
# this bounds its memory (4 MB of the smallest elements is about 150 MB of tree). A real
# paragraph or row is a few kilobytes; pictures are separate parts.
MAX_MARKUP_GAP = 4 * MB

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
CONTENT_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
SHARED_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
OFFICE_RELS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
# lxml options for every part: no entity expansion, no network, and libxml2's own safety limits
# (no text over 10 MB in one piece, no nesting deeper than 256) left on.
SAFE_XML: dict[str, Any] = {"resolve_entities": False, "no_network": True, "huge_tree": False}


@dataclass(frozen=True)
class ImportWarning:
    where: str
    message: str


@dataclass(frozen=True, slots=True)
class Cell:
    value: object  # str, or a date/datetime/number from an Excel cell
    number_format: str | None = None
    fill: str | None = None  # solid background "RRGGBB" of an empty or numeric cell: RAG shown as colour

    @property
    def text(self) -> str:
        if self.value is None:
            return ""
        return str(self.value).strip()


@dataclass(frozen=True, slots=True)
class Item:
    """A paragraph (``cells`` empty) or a table/grid row, in document order."""

    where: str
    text: str = ""
    heading: bool = False
    cells: tuple[Cell, ...] = ()
    table: int | None = None  # Word table number; grid rows use the sheet number
    row: int | None = None  # 1-based: the row of its Word table, of its sheet, or the CSV record

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
    warnings: list[ImportWarning] = field(default_factory=list)
    sheets: dict[int, str] = field(default_factory=dict)  # workbook sheet number -> its name


def _mb(size: int) -> str:
    return f"{size / MB:,.0f} MB" if size >= 10 * MB else f"{size / MB:,.1f} MB"


# --- Zip archives -------------------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _zip_directory(path: Path) -> tuple[int, int] | None:
    """(parts, bytes) of the zip's central directory, read from its end record.

    ``zipfile.ZipFile`` reads the whole directory into memory and makes an object per part, so
    a small file listing millions of parts is refused here first. None when there is no end
    record: zipfile then reports the file as damaged.
    """
    with path.open("rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        tail_size = min(size, _EOCD.size + 0xFFFF)  # the record ends in a comment of up to 64 KB
        fh.seek(size - tail_size)
        tail = fh.read(tail_size)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _EOCD.size:
            return None
        parts, directory = _EOCD.unpack_from(tail, at)[4:6]
        locator = at - _ZIP64_LOCATOR.size
        if (parts == 0xFFFF or directory == 0xFFFFFFFF) and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            fh.seek(_ZIP64_LOCATOR.unpack_from(tail, locator)[2])
            record = fh.read(_ZIP64_EOCD.size)
            if len(record) == _ZIP64_EOCD.size and record[:4] == b"PK\x06\x06":
                parts, directory = _ZIP64_EOCD.unpack(record)[7:9]
        return parts, directory


def _check_inflated(zf: zipfile.ZipFile, shown: str, what: str) -> None:
    """Refuse a zip bomb from the sizes its directory declares, before inflating anything.

    A declared size cannot be exceeded: zipfile never returns more of a part than its declared
    size (``ZipExtFile._read1`` cuts the data there) and then fails its CRC check, so a part
    that holds more than it declares is reported as damaged. Read in chunks, as the XML streams
    here and openpyxl's read it, it is inflated a chunk at a time, never whole. ``_Part``
    counts again while reading, for the parts parsed here.
    """
    total = 0
    for info in zf.infolist():
        if info.file_size > MAX_PART_BYTES:
            raise ImportFileError(
                shown,
                f"the {what} inflates to more than {_mb(MAX_PART_BYTES)} (limit): its part {info.filename} "
                f"alone would be {_mb(info.file_size)}; is it a real plan?",
            )
        total += info.file_size
    if total > MAX_INFLATED_BYTES:
        raise ImportFileError(
            shown, f"the {what} inflates to {_mb(total)}, more than {_mb(MAX_INFLATED_BYTES)} (limit); is it a real plan?"
        )


class _Part:
    """One zip part as a stream for lxml, counting the bytes it inflates.

    ``mark()`` is called whenever a paragraph or row has been read; markup piling up with no
    paragraph or row ending in it is refused after ``MAX_MARKUP_GAP`` (when ``unit`` is given).
    """

    def __init__(self, zf: zipfile.ZipFile, name: str, shown: str, what: str, unit: str | None) -> None:
        self.raw = zf.open(name)
        self.name, self.shown, self.what, self.unit = name, shown, what, unit
        self.inflated = 0
        self.marked = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size and size > 0 else 64 * 1024)
        self.inflated += len(data)
        if self.inflated > MAX_PART_BYTES:
            raise ImportFileError(
                self.shown,
                f"the {self.what} inflates to more than {_mb(MAX_PART_BYTES)} (limit) in its part {self.name}; "
                "is it a real plan?",
            )
        if self.unit is not None and self.inflated - self.marked > MAX_MARKUP_GAP:
            raise ImportFileError(
                self.shown,
                f"the {self.what} has more than {_mb(MAX_MARKUP_GAP)} of markup in {self.name} with no {self.unit} "
                "ending in it (limit); is it a real plan?",
            )
        return data

    def mark(self) -> None:
        self.marked = self.inflated

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> _Part:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _forget(element: etree._Element) -> int:
    """Drop a finished element and whatever is before it, so the tree stays small.

    Returns how many elements were dropped before it (one slice deletion, not a loop: a flood
    of millions of elements between two paragraphs is dropped in one step).
    """
    element.clear()
    previous = element.getprevious()
    if previous is None:
        return 0
    parent = element.getparent()
    if previous.getprevious() is None:  # the usual case: only the unit read before it
        del parent[0]
        return 1
    before = parent.index(element)  # slow (four times the rest), so only when there is more
    del parent[:before]
    return before


def _xml_failure(shown: str, what: str, exc: etree.XMLSyntaxError) -> ImportFileError:
    limit = _xml_limit(exc)
    if limit is not None:
        return ImportFileError(shown, f"the {what} has {limit} (limit); is it a real plan?")
    return ImportFileError(shown, f"the {what} is damaged and cannot be read ({exc})")


def _xml_limit(exc: etree.XMLSyntaxError) -> str | None:
    """libxml2's own safety limits, in words, when that is what stopped the parse."""
    text = str(exc)
    if "Text node too long" in text:
        return "a single text longer than 10 MB"
    if "Excessive depth" in text:
        return "markup nested more than 256 deep"
    if "XML_PARSE_HUGE" in text or "Resource limit exceeded" in text:
        return "markup beyond the XML reader's limits"
    return None


# --- Sniffing -----------------------------------------------------------------------------

BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def _bom(head: bytes) -> tuple[str, str] | None:
    for mark, codec, label in BOMS:
        if head.startswith(mark):
            return codec, label
    return None


def sniff(path: Path, head: bytes) -> str:
    """What the bytes are, whatever the extension says."""
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"  # old binary .doc / .xls
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        directory = _zip_directory(path)
        if directory is not None and (directory[0] > MAX_PARTS or directory[1] > MAX_PARTS * 1024):
            raise ImportFileError(
                str(path), f"the zip directory lists {directory[0]:,} parts in {_mb(directory[1])}, "
                f"more than {MAX_PARTS:,} parts (limit); is it a real plan?",
            )
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
    if _bom(head) is not None:
        return "text"  # UTF-16/32 text is full of zero bytes
    if b"\x00" in head:
        # Every other byte zero: UTF-16 saved without the byte-order mark that says so.
        return "utf16-no-bom" if head.count(b"\x00") * 3 >= len(head) else "binary"
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
    "utf16-no-bom": "UTF-16 text without a byte-order mark; save it from Excel as 'CSV UTF-8' or 'Unicode Text'",
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
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(shown, "the file is empty")
    if size > MAX_FILE_BYTES:
        raise ImportFileError(shown, f"the file is {_mb(size)}, more than {_mb(MAX_FILE_BYTES)} (limit); is it a real plan?")
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

P, T, TAB, BR, CR = f"{W}p", f"{W}t", f"{W}tab", f"{W}br", f"{W}cr"
BODY, SDT, SDT_CONTENT = f"{W}body", f"{W}sdt", f"{W}sdtContent"
TBL, TR, TC = f"{W}tbl", f"{W}tr", f"{W}tc"
TCPR, GRID_SPAN, V_MERGE, SHD = f"{W}tcPr", f"{W}gridSpan", f"{W}vMerge", f"{W}shd"
_HEX = re.compile(r"^[0-9A-Fa-f]{6}$")
PPR, PSTYLE = f"{W}pPr", f"{W}pStyle"
VAL = f"{W}val"


def _paragraph_text(p: etree._Element) -> str:
    parts = []
    for node in p.iter(T, TAB, BR, CR, P):
        tag = node.tag
        if tag == T:
            parts.append(node.text or "")
        elif tag == TAB:
            parts.append(" ")
        elif tag == P:
            if node is not p and node.text:  # a text box's paragraph, already read (see _read_body)
                parts.append(f"\n{node.text}\n")
        else:
            parts.append("\n")
    return "".join(parts)


def _in_flow(parent: etree._Element | None) -> bool:
    """Whether children of ``parent`` are the document's own paragraphs and tables.

    They are the body's children, or those of a content control (``w:sdt``) in the body, not
    paragraphs inside a table cell or a text box.
    """
    while parent is not None:
        if parent.tag == BODY:
            return True
        if parent.tag != SDT_CONTENT:
            return False
        sdt = parent.getparent()
        if sdt is None or sdt.tag != SDT:
            return False
        parent = sdt.getparent()
    return False


def _heading_styles(zf: zipfile.ZipFile, shown: str, names: set[str]) -> set[str]:
    if "word/styles.xml" not in names:
        return set()
    found = set()
    with _Part(zf, "word/styles.xml", shown, "Word document", "style") as part:
        for _, style in etree.iterparse(part, events=("end",), tag=f"{W}style", **SAFE_XML):
            part.mark()
            name = style.find(f"{W}name")
            label = (name.get(VAL) if name is not None else "") or ""
            if re.match(r"(?i)^(heading \d|title|subtitle)$", label):
                found.add(style.get(f"{W}styleId") or "")
            _forget(style)
    return found


def _core_title(zf: zipfile.ZipFile, shown: str, names: set[str]) -> str | None:
    if "docProps/core.xml" not in names:
        return None
    with _Part(zf, "docProps/core.xml", shown, "Word document", "title") as part:
        for _, node in etree.iterparse(part, events=("end",), tag=DC_TITLE, **SAFE_XML):
            return (node.text or "").strip() or None
    return None


def read_docx(path: Path) -> Document:
    shown = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            _check_inflated(zf, shown, "Word document")
            names = set(zf.namelist())
            doc = Document(path=shown, kind="docx", title=_core_title(zf, shown, names))
            _read_body(zf, doc, _heading_styles(zf, shown, names))
    except etree.XMLSyntaxError as exc:
        raise _xml_failure(shown, "Word document", exc) from None
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise ImportFileError(shown, f"the Word document is damaged and cannot be read ({exc})") from None
    return doc


def _read_body(zf: zipfile.ZipFile, doc: Document, headings: set[str]) -> None:
    """Paragraphs and table rows of ``word/document.xml``, streamed.

    Each body paragraph and each table row is turned into an ``Item`` when it ends and then
    dropped from the tree. A paragraph inside a table cell is reduced to its text when it
    ends, so a row holds only its cells' text until it is read.
    """
    shown = doc.path
    paragraphs = 0  # every paragraph, in cells too: what MAX_PARAGRAPHS counts
    paragraph_no = 0  # body paragraphs, as ``paragraph N`` names them
    rows = 0
    table_no = 0
    table: etree._Element | None = None
    merged: dict[int, str] = {}  # column -> text of the cell a vertical merge continues
    row_no = 0
    with _Part(zf, "word/document.xml", shown, "Word document", "paragraph or table row") as part:
        events = etree.iterparse(part, events=("end",), tag=(P, TR, TBL), **SAFE_XML)
        for _, node in events:
            part.mark()
            tag = node.tag
            if tag == P:
                paragraphs += 1
                if paragraphs > MAX_PARAGRAPHS:
                    raise ImportFileError(
                        shown, f"the Word document has more than {MAX_PARAGRAPHS:,} paragraphs (limit); is it a real plan?"
                    )
                text = _paragraph_text(node)
                if not _in_flow(node.getparent()):
                    # In a table cell or a text box: keep only the text, for the row or paragraph around it.
                    node.clear()
                    node.text = text
                    continue
                paragraph_no += 1
                text = text.strip()
                if text:
                    style = next((s for ppr in node.iterchildren(PPR) for s in ppr.iterchildren(PSTYLE)), None)
                    heading = style is not None and style.get(VAL) in headings
                    if heading and doc.title is None and (style.get(VAL) or "").lower().startswith("title"):
                        doc.title = text
                    doc.items.append(Item(where=f"paragraph {paragraph_no}", text=text, heading=heading))
                _forget(node)
            elif tag == TR:
                tbl = node.getparent()
                if tbl is None or tbl.tag != TBL or not _in_flow(tbl.getparent()):
                    continue  # a table inside a cell: read as part of that cell's text
                if tbl is not table:
                    table, merged, row_no = tbl, {}, 0
                    table_no += 1
                row_no += 1
                rows += 1
                if rows > MAX_ROWS:
                    raise ImportFileError(
                        shown, f"the Word document has more than {MAX_ROWS:,} table rows (limit); is it a real plan?"
                    )
                where = f"table {table_no} row {row_no}"
                cells = _row_cells(node, merged, shown, where)
                if cells:
                    doc.items.append(Item(where=where, cells=tuple(cells), table=table_no, row=row_no))
                _forget(node)
            elif _in_flow(node.getparent()):  # the end of a table
                if node is not table:
                    table_no += 1  # a table without rows still takes its number
                table = None
                _forget(node)
        root = events.root
    if root is None or root.find(BODY) is None:
        raise ImportFileError(shown, "the Word document has no body")


def _row_cells(tr: etree._Element, merged: dict[int, str], shown: str, where: str) -> list[Cell]:
    cells: list[Cell] = []
    for tc in tr.iterchildren(TC):
        span, vmerge, fill = 1, None, None
        props = tc[0] if len(tc) else None  # the schema puts w:tcPr first; looking there is twice as fast as find()
        if props is not None and props.tag != TCPR:
            props = tc.find(TCPR)
        if props is not None:
            for prop in props.iterchildren(GRID_SPAN, V_MERGE, SHD):
                if prop.tag == SHD:
                    shade = prop.get(f"{W}fill") or ""
                    fill = shade.upper() if _HEX.match(shade) else None  # "auto": no colour
                elif prop.tag == GRID_SPAN:
                    try:
                        span = max(1, int(prop.get(VAL, "1") or 1))
                    except ValueError:
                        span = 1
                else:
                    vmerge = prop.get(VAL, "continue")
        if len(cells) + span > MAX_COLUMNS:
            raise ImportFileError(shown, f"{where} is more than {MAX_COLUMNS} cells wide (limit); is it a real plan?")
        col = len(cells)
        # Its paragraphs were reduced to their text as they ended (see _read_body).
        text = "\n".join([p.text or "" for p in tc.iter(P)]).strip()
        if vmerge == "restart":
            merged[col] = text
        elif vmerge == "continue":
            text = merged.get(col, text)
        else:
            merged.pop(col, None)
        cells.append(Cell(text, None, fill if fill is not None and not _words(text) else None))
        if span > 1:
            cells.extend(Cell("") for _ in range(span - 1))
    return cells


# --- Excel --------------------------------------------------------------------------------

# What a sheet repeats, and the elements holding them: the survey marks progress at each and
# drops each with what is before it. Not cells: an event per cell cost a quarter more, and a
# row over 4 MB is no plan's.
_SHEET_LISTS = frozenset(f"{S}{tag}" for tag in (
    "sheetData", "cols", "mergeCells", "hyperlinks", "conditionalFormatting", "dataValidations", "rowBreaks", "colBreaks",
))
_SHEET_UNITS = tuple(_SHEET_LISTS) + tuple(
    f"{S}{tag}" for tag in ("row", "col", "mergeCell", "hyperlink", "cfRule", "dataValidation", "brk")
)
# A formula cell with no saved value: no <v>, or an empty one unless the saved value is empty text.
_UNSAVED_FORMULAS = etree.XPath(
    "s:c[s:f and (not(s:v) or (string(s:v) = '' and not(@t = 'str')))]", namespaces={"s": S[1:-1]}
)


def read_xlsx(path: Path) -> Document:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    shown = str(path)
    damaged = (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, TypeError, SyntaxError)
    try:
        with zipfile.ZipFile(path) as zf:
            _check_inflated(zf, shown, "Excel workbook")
            surveys = _check_workbook_parts(zf, shown)
        wb = load_workbook(path, read_only=True, data_only=True)
    except etree.XMLSyntaxError as exc:
        raise _xml_failure(shown, "Excel workbook", exc) from None
    except damaged as exc:  # xml.etree's ParseError is a SyntaxError
        raise ImportFileError(shown, f"the Excel workbook is damaged and cannot be read ({exc})") from None
    doc = Document(path=shown, kind="xlsx", grid=True)
    try:
        title = wb.properties.title if wb.properties is not None else None
        doc.title = title.strip() if title else None
        for sheet_no, ws in enumerate(wb.worksheets, start=1):
            if getattr(ws, "sheet_state", "visible") != "visible":
                continue  # hidden sheets hold lookups and old versions, not the plan
            # openpyxl's read-only sheet knows its part (``rel.target``); it has no public name.
            formulas, merges = surveys.get(ws._worksheet_path, ([], []))
            for row_no, ref, formula in formulas:
                shown_formula = f" (={formula[:60]}{'…' if len(formula) > 60 else ''})" if formula else ""
                doc.warnings.append(ImportWarning(
                    f"sheet '{ws.title}' row {row_no} ({ref})",
                    f"formula with no saved value{shown_formula}; open and save the file in Excel",
                ))
            doc.sheets[sheet_no] = ws.title
            _read_sheet(ws, sheet_no, doc, merges)
    except etree.XMLSyntaxError as exc:
        raise _xml_failure(shown, "Excel workbook", exc) from None
    except damaged as exc:
        raise ImportFileError(shown, f"the Excel workbook is damaged and cannot be read ({exc})") from None
    finally:
        wb.close()
    return doc


Unsaved = list[tuple[int, str, str]]  # formula cells with no saved value: row, cell, formula
Survey = tuple[Unsaved, list[str]]  # and the merged ranges ("A2:A4") of the sheet


def _check_workbook_parts(zf: zipfile.ZipFile, shown: str) -> dict[str, Survey]:
    """Bound what openpyxl would hold, before it opens the workbook; the unsaved formulas per sheet part.

    openpyxl reads most XML parts whole into a tree, keeps the shared texts in a list, and
    starts reading every sheet (for its size) as soon as it opens the workbook. So: parts read
    whole are limited in size, the shared texts are counted, and every sheet is surveyed here
    (``_survey_sheet``). Part types come from ``[Content_Types].xml``, as openpyxl finds them.
    """
    what = "Excel workbook"
    types: dict[str, str] = {}
    listing = "[Content_Types].xml"
    if listing in zf.namelist() and zf.getinfo(listing).file_size <= MAX_WHOLE_PART_BYTES:
        with _Part(zf, listing, shown, what, "part") as part:
            for _, node in etree.iterparse(part, events=("end",), tag=f"{CONTENT_TYPES}Override", **SAFE_XML):
                part.mark()
                types[(node.get("PartName") or "").lstrip("/")] = node.get("ContentType") or ""
                _forget(node)
    for info in zf.infolist():
        kind = types.get(info.filename)
        whole = kind not in (SHEET_TYPE, SHARED_STRINGS_TYPE) and info.filename.lower().endswith((".xml", ".rels"))
        if whole and info.file_size > MAX_WHOLE_PART_BYTES:
            raise ImportFileError(
                shown, f"the {what}'s part {info.filename} inflates to {_mb(info.file_size)}, more than "
                f"{_mb(MAX_WHOLE_PART_BYTES)} (limit for a part read whole); is it a real plan?",
            )
        if kind == SHARED_STRINGS_TYPE:
            texts = 0
            with _Part(zf, info.filename, shown, what, "shared text") as part:
                for _, si in etree.iterparse(part, events=("end",), tag=f"{S}si", **SAFE_XML):
                    part.mark()
                    texts += 1
                    if texts > MAX_SHARED_STRINGS:
                        raise ImportFileError(
                            shown, f"the {what} has more than {MAX_SHARED_STRINGS:,} shared texts (limit); is it a real plan?"
                        )
                    _forget(si)
    titles = _sheet_titles(zf, shown)
    present = set(zf.namelist())
    sheets = [name for name, kind in types.items() if kind == SHEET_TYPE and name in present]
    sheets += [name for name in titles if name in present and name not in sheets]
    return {name: _survey_sheet(zf, name, titles.get(name, name), shown) for name in sheets}


def _sheet_titles(zf: zipfile.ZipFile, shown: str) -> dict[str, str]:
    """Sheet part -> sheet name, from xl/workbook.xml and its relationships (both small parts)."""
    rels_name, workbook_name = "xl/_rels/workbook.xml.rels", "xl/workbook.xml"
    present = set(zf.namelist())
    if rels_name not in present or workbook_name not in present:
        return {}
    targets: dict[str, str] = {}
    with _Part(zf, rels_name, shown, "Excel workbook", "relationship") as part:
        for _, rel in etree.iterparse(part, events=("end",), tag=f"{PACKAGE_RELS}Relationship", **SAFE_XML):
            part.mark()
            target = rel.get("Target") or ""
            targets[rel.get("Id") or ""] = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
            _forget(rel)
    titles: dict[str, str] = {}
    with _Part(zf, workbook_name, shown, "Excel workbook", "sheet") as part:
        for _, sheet in etree.iterparse(part, events=("end",), tag=f"{S}sheet", **SAFE_XML):
            part.mark()
            target = targets.get(sheet.get(f"{OFFICE_RELS}id") or "")
            if target:
                titles[target] = sheet.get("name") or target
            _forget(sheet)
    return titles


def _read_sheet(ws: Any, sheet_no: int, doc: Document, merges: list[str] = ()) -> None:  # type: ignore[assignment]
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.cell import range_boundaries

    # A merged cell written once for several rows (an owner, a theme, a date) belongs to every
    # row it spans: its value is repeated down its first column. Across columns nothing is
    # repeated, as in the row that holds the value (one value, one column).
    starts: dict[int, list[tuple[int, int]]] = {}  # first row -> (column index, last row)
    for ref in merges:
        try:
            min_col, min_row, _, max_row = range_boundaries(ref)
        except (TypeError, ValueError):
            continue  # a damaged range: the cells are read as they are
        if min_col and min_row and max_row and max_row > min_row:
            starts.setdefault(min_row, []).append((min_col - 1, max_row))
    carried: dict[int, tuple[int, Cell]] = {}  # column index -> (last row, the cell repeated)

    # A read-only sheet pads every row to the size the file declares in <dimension>: a 4.9 KB
    # file declaring A1:XFD1048576 asked for 17 billion empty cells. Read the real cells only.
    ws.reset_dimensions()
    blank = False
    for row_no, row in enumerate(ws.iter_rows(), start=1):
        if row_no > MAX_ROWS:
            raise ImportFileError(
                doc.path, f"sheet '{ws.title}' goes on past row {MAX_ROWS:,} (limit); delete the rows below the plan"
            )
        # Rows end at their last cell with text: openpyxl pads a row only as far as its last
        # cell in the file, which may be an empty formatted one.
        values = [Cell(c.value, getattr(c, "number_format", None) if c.value is not None else None, _excel_fill(c))
                  for c in row]
        if starts or carried:
            values = _merged_down(values, row_no, starts, carried)
        width = len(values)
        while width and _empty(values[width - 1].value) and values[width - 1].fill is None:
            width -= 1
        if width > MAX_COLUMNS:
            raise ImportFileError(
                doc.path,
                f"sheet '{ws.title}' has a cell at {get_column_letter(width)}{row_no}, past column "
                f"{get_column_letter(MAX_COLUMNS)} ({MAX_COLUMNS} columns, the limit); delete the cells beyond it",
            )
        if width == 0:
            # One blank row stands for a run of them: blank rows separate sections, their number
            # means nothing, and a sheet formatted far down would otherwise fill memory.
            if not blank:
                blank = True
                doc.items.append(Item(where=f"sheet '{ws.title}' row {row_no}", cells=(Cell(None),), table=sheet_no,
                                      row=row_no))
            continue
        blank = False
        doc.items.append(Item(where=f"sheet '{ws.title}' row {row_no}", cells=tuple(values[:width]), table=sheet_no,
                              row=row_no))


def _merged_down(values: list[Cell], row_no: int, starts: dict[int, list[tuple[int, int]]],
                 carried: dict[int, tuple[int, Cell]]) -> list[Cell]:
    """``values`` with the cells of vertical merges that started above filled in."""
    for column, (last, cell) in list(carried.items()):
        if row_no > last:
            del carried[column]
            continue
        if column >= len(values):
            values += [Cell(None)] * (column + 1 - len(values))
        if _empty(values[column].value):
            values[column] = cell
    for column, last in starts.get(row_no, ()):
        if column < len(values) and not _empty(values[column].value):
            carried[column] = (last, values[column])
    return values


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _words(text: str) -> bool:
    """Text that is more than a number: a colour behind it is decoration, not the status."""
    return bool(text) and not re.fullmatch(r"[\d.,%\s-]*", text)


def _excel_fill(cell: Any) -> str | None:
    """The solid RGB fill of an empty or numeric cell, else None (theme and pattern colours too)."""
    if not getattr(cell, "has_style", False):
        return None
    value = cell.value
    if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None
    fill = cell.fill
    if fill.fill_type != "solid" or fill.fgColor.type != "rgb" or not isinstance(fill.fgColor.rgb, str):
        return None
    rgb = fill.fgColor.rgb[-6:].upper()
    return rgb if _HEX.match(rgb) else None


def _survey_sheet(zf: zipfile.ZipFile, name: str, title: str, shown: str) -> Survey:
    """Read a sheet's XML once with lxml, before openpyxl does: bound it, and find unsaved formulas.

    openpyxl keeps every element of a sheet it does not know until the sheet ends, so a sheet
    with more than ``MAX_SHEET_OTHER_ELEMENTS`` of them, or ``MAX_MARKUP_GAP`` of markup with no
    row ending in it, is refused here. Here each row is dropped once read.

    A formula cell with no saved value is returned (and becomes a warning): openpyxl reads a
    formula's value from what Excel saved with it (``data_only``), and a file written by a
    script has the formula alone, so its cell would be read as empty in silence.
    """
    from openpyxl.utils.cell import get_column_letter

    unsaved: Unsaved = []
    merges: list[str] = []  # read here because a read-only openpyxl sheet has no merged_cells
    row_tag = f"{S}row"
    merge_tag = f"{S}mergeCell"
    row_no = 0
    other = 0
    with _Part(zf, name, shown, "Excel workbook", "row") as part:
        events = etree.iterparse(part, events=("end",), tag=_SHEET_UNITS, **SAFE_XML)
        for _, node in events:
            part.mark()
            if node.tag == row_tag:
                row_no = int(node.get("r") or row_no + 1)
                for c in _UNSAVED_FORMULAS(node):  # in libxml2: cells with a saved value cost nothing here
                    ref = c.get("r")
                    if not ref:  # cells may leave out their reference; count the cells before it
                        ref = f"{get_column_letter(int(c.xpath('count(preceding-sibling::*)')) + 1)}{row_no}"
                    unsaved.append((row_no, ref, (c.findtext(f"{S}f") or "").strip()))
            elif node.tag == merge_tag and node.get("ref"):
                merges.append(node.get("ref") or "")
            elif node.tag in _SHEET_LISTS:
                other += max(0, len(node) - 1)  # what follows the last unit it holds
            # What is dropped before it, but the unit before it, is something openpyxl would keep.
            other += max(0, _forget(node) - 1)
            _check_other(other, title, shown)
        if events.root is not None:
            _check_other(other + len(events.root), title, shown)  # what follows the last list of units
    return unsaved, merges


def _check_other(other: int, title: str, shown: str) -> None:
    if other > MAX_SHEET_OTHER_ELEMENTS:
        raise ImportFileError(
            shown, f"sheet '{title}' has more than {MAX_SHEET_OTHER_ELEMENTS:,} XML elements that are "
            "neither cells nor sheet settings (limit); is it a real plan?",
        )


# --- CSV ----------------------------------------------------------------------------------

MAX_STRAY_BYTES = 1_000  # bytes that are not UTF-8 in a file still read as UTF-8
ENCODING_NAMES = {
    "cp1252": "Windows-1252", "cp1250": "Windows-1250 (Central European)", "cp1251": "Windows-1251 (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)", "cp1254": "Windows-1254 (Turkish)", "cp1257": "Windows-1257 (Baltic)",
    "mac_roman": "Mac Roman", "latin_1": "ISO-8859-1", "cp437": "DOS (code page 437)", "cp850": "DOS (code page 850)",
}


@dataclass(frozen=True)
class _Stray:
    offset: int  # in the decoded text
    byte: int
    char: str


def _utf8_with_strays(raw: bytes) -> tuple[str, list[_Stray]] | None:
    """UTF-8 text with each byte that is not UTF-8 read as Windows-1252, or None.

    None when the file is not UTF-8 but for a few bytes: more stray bytes than bytes of real
    multi-byte UTF-8 characters (then it is a legacy encoding throughout), or too many.
    """
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    # Decode in slices: a failed decode costs the length of what it was given.
    view = memoryview(raw)
    parts: list[str] = []
    strays: list[_Stray] = []
    length = 0  # of the text so far
    extra = 0  # continuation bytes of real UTF-8 characters
    pos = 0
    while pos < len(raw):
        end = pos + 65536
        try:
            text, used = codecs.utf_8_decode(view[pos:end], "strict", end >= len(raw))
        except UnicodeDecodeError as exc:
            good = codecs.utf_8_decode(view[pos:pos + exc.start], "strict", True)[0]
            parts.append(good)
            extra += exc.start - len(good)
            length += len(good)
            bad = raw[pos + exc.start]
            char = bytes([bad]).decode("cp1252", errors="replace")
            strays.append(_Stray(length, bad, char))
            if len(strays) > MAX_STRAY_BYTES:
                return None
            parts.append(char)
            length += 1
            pos += exc.start + 1
            continue
        parts.append(text)
        extra += used - len(text)
        length += len(text)
        pos += used
    if extra < len(strays):
        return None
    return "".join(parts), strays


def _legacy_text(raw: bytes, shown: str) -> tuple[str, str]:
    """Text in the 8-bit encoding charset-normalizer finds, preferring Windows code pages.

    On a few accented words charset-normalizer ranks several code pages alike, and often names
    a less likely one first (Central European cp1250 turns 'Señor' into 'Seńor'; Mac Cyrillic
    beats Windows-1251 on Russian). Files reach Chaser from Excel on Windows, so among the
    encodings that read the bytes with no more mess than the best one, Windows-1252 wins, then
    another Windows code page, then charset-normalizer's order.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw))
    if not matches:
        raise ImportFileError(shown, "the file is not readable text: it is not UTF-8 and no known encoding fits")
    fitting = [name for m in matches if m.chaos <= matches[0].chaos for name in m.could_be_from_charset]
    windows = [name for name in fitting if re.fullmatch(r"cp125\d", name)]
    candidates = (["cp1252"] if "cp1252" in windows else []) + windows + [m.encoding for m in matches]
    for encoding in dict.fromkeys(candidates):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ImportFileError(shown, "the file is not readable text: it is not UTF-8 and no known encoding fits")


def _decode(raw: bytes, shown: str, doc: Document) -> tuple[str, list[_Stray], bool]:
    """The file's text, its stray bytes, and whether a byte-order mark said UTF-16/32."""
    bom = _bom(raw)
    if bom is not None and bom[1] != "UTF-8":
        codec, label = bom
        try:
            return raw.decode(codec), [], True
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                shown, f"the file starts with the {label} byte-order mark but byte {exc.start:,} is not {label}; save it again"
            ) from None
    marked = bom is not None  # Excel's "CSV UTF-8" starts with the UTF-8 byte-order mark
    found = _utf8_with_strays(raw[len(codecs.BOM_UTF8):] if marked else raw)
    if found is not None:
        return found[0], found[1], False
    if marked:
        raise ImportFileError(shown, "the file starts with the UTF-8 byte-order mark but much of it is not UTF-8; save it again")
    text, encoding = _legacy_text(raw, shown)
    if encoding != "cp1252":  # what Windows Excel writes; anything else is worth a look
        name = ENCODING_NAMES.get(encoding, encoding)
        doc.warnings.append(ImportWarning(
            "whole file", f"the file is not UTF-8; read as {name}, the encoding that fits it best: check letters "
            "beyond A-Z, or save the file as 'CSV UTF-8'",
        ))
    return text, [], False


def read_csv(path: Path) -> Document:
    shown = str(path)
    doc = Document(path=shown, kind="csv", grid=True, title=None)
    text, strays, unicode_text = _decode(path.read_bytes(), shown, doc)
    nul = "\x00" in text  # never meant, and PostgreSQL cannot store one (the first 4 KB had none)
    if not text.strip():
        raise ImportFileError(shown, "the file is empty")
    end = text.find("\n")
    first_line = text if end < 0 else text[:end]
    if unicode_text and "\t" in first_line:
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab  # Excel's "Unicode Text"
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:20000], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel

    consumed = [0]  # characters of the text the csv reader has taken

    def lines() -> Iterator[str]:
        if text.count("\r") != text.count("\r\n"):  # old Mac line ends: let io split them as csv expects
            for line in io.StringIO(text, newline=""):
                consumed[0] += len(line)
                yield line
            return
        # Slices of the text itself: a StringIO copy of it takes up to 4 bytes a character,
        # a quarter of a gigabyte for a 250,000-action file.
        pos = 0
        while pos < len(text):
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end + 1
            consumed[0] = end
            yield text[pos:end]
            pos = end

    reader = csv.reader(lines(), dialect)
    start_line = 1  # where the row being read begins
    start = 0  # its offset in the text
    pending = iter(strays)
    stray = next(pending, None)
    row_no = 0
    try:
        for row_no, row in enumerate(reader, start=1):
            if row_no > MAX_ROWS:
                raise ImportFileError(shown, f"the file has more than {MAX_ROWS:,} rows (limit); is it a real plan?")
            if len(row) > MAX_COLUMNS:
                while len(row) > MAX_COLUMNS and not row[-1].strip():
                    row.pop()
                if len(row) > MAX_COLUMNS:
                    raise ImportFileError(shown, f"row {row_no} has more than {MAX_COLUMNS} columns (limit); is it a real plan?")
            where = f"row {row_no}"
            while stray is not None and stray.offset < consumed[0]:
                line = start_line + text.count("\n", start, stray.offset)
                doc.warnings.append(ImportWarning(
                    where if line == row_no else f"{where} (line {line})",
                    f"a byte that is not UTF-8 (0x{stray.byte:02X}) was read as Windows-1252 {stray.char!r}",
                ))
                stray = next(pending, None)
            if nul and any("\x00" in v for v in row):
                doc.warnings.append(ImportWarning(where, "NUL characters removed from this row"))
                row = [v.replace("\x00", "") for v in row]
            doc.items.append(Item(where=where, cells=tuple(Cell(v) for v in row) or (Cell(None),), table=1, row=row_no))
            if reader.line_num > start_line and consumed[0] == len(text):
                _check_last_row(text[start:], dialect, shown, row_no, start_line, reader.line_num)
            start_line, start = reader.line_num + 1, consumed[0]
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise ImportFileError(
                shown, f"row {row_no + 1} (line {start_line}): a cell is longer than {csv.field_size_limit():,} "
                "characters; probably a quote opened here is never closed",
            ) from None
        raise ImportFileError(shown, f"not a readable CSV file ({exc})") from None
    return doc


def _check_last_row(fragment: str, dialect: Any, shown: str, row_no: int, line: int, last_line: int) -> None:
    """A last row running over several lines: is it a quote that is never closed?

    Python's csv reader, not strict, reads an unclosed quote to the end of the file as one
    cell, in silence. Read the row again strictly, which stops at the end of the data.
    """
    try:
        for _ in csv.reader(io.StringIO(fragment, newline=""), dialect, strict=True):
            pass
    except csv.Error:
        raise ImportFileError(
            shown,
            f"row {row_no} (line {line}): a quote opened here is never closed, so the rest of the file "
            f"(lines {line:,}–{last_line:,}) would be read as one cell; close or remove the quote",
        ) from None
