"""Write small plan files of many shapes, the way different councils lay them out."""
from __future__ import annotations

import csv
import re
import struct
import zipfile
from collections.abc import Callable, Sequence
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


# --- Hostile files: small on disk, huge once read ------------------------------------------

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)


def write_docx_stream(path: Path, head: bytes, chunk: bytes, repeat: int, tail: bytes) -> Path:
    """A .docx whose document.xml is ``head + chunk * repeat + tail``, compressed as it is written.

    Nothing the size of the inflated part is ever held in memory, so a test can write a part
    that inflates to hundreds of megabytes in well under a second.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", DOCX_TYPES)
        zf.writestr("_rels/.rels", DOCX_RELS)
        with zf.open("word/document.xml", "w", force_zip64=True) as fh:
            fh.write(head)
            per_write = max(1, (1 << 20) // max(1, len(chunk)))  # about 1 MB per write
            whole, rest = divmod(repeat, per_write)
            block = chunk * per_write
            for _ in range(whole):
                fh.write(block)
            fh.write(chunk * rest)
            fh.write(tail)
    return path


def docx_body(inner: bytes = b"") -> tuple[bytes, bytes]:
    """The opening and closing of a document.xml around ``inner``."""
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}"><w:body>'.encode()
    return head + inner, b"</w:body></w:document>"


def write_docx_paragraphs(path: Path, paragraphs: int, paragraph: bytes = b"<w:p><w:r><w:t>.</w:t></w:r></w:p>") -> Path:
    head, tail = docx_body()
    return write_docx_stream(path, head, paragraph, paragraphs, tail)


def write_docx_text_bomb(path: Path, inflated: int) -> Path:
    """One paragraph whose text is ``inflated`` bytes of 'A': compresses about 1,000 to 1."""
    head, tail = docx_body(b"<w:p><w:r><w:t>")
    return write_docx_stream(path, head, b"A" * 1024, inflated // 1024, b"</w:t></w:r></w:p>" + tail)


def set_declared_size(path: Path, member: str, size: int) -> Path:
    """Make the zip directory declare ``size`` inflated bytes for ``member`` (a lie, either way)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = 0
    while True:
        at = data.find(b"PK\x01\x02", at)
        if at < 0:
            raise ValueError(f"{member} is not in {path}")
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46:at + 46 + name_len]) == name:
            break
        at += 4
    if struct.unpack_from("<L", data, at + 24)[0] == 0xFFFFFFFF:
        raise ValueError("zip64 sizes are not supported here")
    struct.pack_into("<L", data, at + 24, size)
    path.write_bytes(bytes(data))
    return path


def write_xlsx_far_cells(path: Path, cells: dict[str, object], dimension: str | None = None) -> Path:
    """A workbook with a few real cells anywhere (``XFD1048576``), its sheet declaring ``dimension``.

    openpyxl writes the real used range as the sheet's <dimension>; ``dimension`` replaces it,
    as files from other programs do.
    """
    wb = openpyxl.Workbook()
    ws = wb.active
    for coordinate, value in cells.items():
        ws[coordinate] = value
    wb.save(path)
    if dimension is not None:
        rewrite_part(path, "xl/worksheets/sheet1.xml",
                     lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>'.encode(), xml))
    return path


def rewrite_part(path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    with zipfile.ZipFile(path) as zf:
        parts = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in parts:
            zf.writestr(info, change(data) if info.filename == member else data, compress_type=zipfile.ZIP_DEFLATED)
    return path



def add_shared_strings(path: Path, texts: int, text: bytes = b"a") -> Path:
    """Give a workbook a shared-strings table of ``texts`` entries (openpyxl writes inline strings)."""
    with zipfile.ZipFile(path) as zf:
        parts = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in parts:
            if name == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType='
                                    b'"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            zf.writestr(name, data)
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            entry = b"<si><t>" + text + b"</t></si>"
            for _ in range(texts // 10_000):
                fh.write(entry * 10_000)
            fh.write(entry * (texts % 10_000))
            fh.write(b"</sst>")
    return path
