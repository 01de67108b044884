"""Write the plan back into the council's own file, with every owner's answers filled in.

``export_plan`` reads the plan's source file (or a newer copy of it) with the importer's own
reader and parser, so it finds each action where the import found it: its sheet or table, its
row and the columns its header named. It then writes a copy of that file in which only each
action's Status, Progress and Due cells change, and only where the tracker knows more than the
file said: every other cell, merged region, style, column width and sheet is left as it was.

- **Status** in the file's own style: letters (``G``/``A``/``R``/``C``) where that column used
  letters, words (``Green``…) otherwise; ``Not started`` either way.
- **Progress**: the latest note with the date and who gave it (``storage.updates.note_cell``),
  which a re-import recognises as the note already recorded.
- **Due**: a revised date in the cell's style: an Excel date cell stays a date with its number
  format (``mmm-yy`` stays month-year), text like ``Jun-24``, ``June 2024`` or ``30/06/2024``
  keeps its shape; anything else gets the date as the owner wrote it.
- A column the table did not have is added after its last header column.
- Text from owners starting with ``=``, ``+``, ``-`` or ``@`` is never a formula: a string cell
  in ``.xlsx``, a leading apostrophe in ``.csv`` (the OWASP advice for CSV injection).

Formats: ``.xlsx``, ``.docx`` and ``.csv``, each into a copy of its source (in Word, a cell's
first run keeps its formatting). When the source file is not at hand (and no ``--template``),
a clean table is written instead in the format of ``--out``: one sheet per workstream in
``.xlsx``, a heading and a table per workstream in ``.docx``, one table in ``.csv``.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from chaser.errors import ChaserError, NotFound
from storage.db import session_factory
from storage.importers.parse import ParsedAction, parse_document
from storage.importers.reading import read_document
from storage.models import Action, Plan
from storage.statuses import STATUS_LABELS, STATUS_LETTERS
from storage.updates import fold_history, note_cell

ADDED_HEADERS = {"status": "Status", "progress": "Progress", "due": "Due date"}
# A status written as colour, where the file showed it only as the cell's fill (the usual Excel RAG fills).
FILLS = {"green": "00B050", "amber": "FFC000", "red": "FF0000", "complete": "0070C0"}
_FORMULA_START = ("=", "+", "-", "@")
# Shapes of a due cell written as text, and how a revised date is written in each.
_DUE_SHAPES = (
    (re.compile(r"^[A-Za-z]{3}-\d{2}$"), "%b-%y"),        # Jun-24
    (re.compile(r"^[A-Za-z]{3,9} \d{4}$"), "%B %Y"),      # June 2024
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%d/%m/%Y"),  # 30/06/2024
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),      # 2024-06-30
)


class ExportError(ChaserError):
    """The plan cannot be written back as asked; nothing was written."""


@dataclass
class ExportResult:
    plan: str
    source: str
    out: str
    actions: int = 0  # actions found in the file
    written: int = 0  # of which got a cell changed
    cells: int = 0
    columns_added: list[str] = field(default_factory=list)
    not_in_tracker: list[str] = field(default_factory=list)  # rows of the file the tracker does not know
    not_written: list[str] = field(default_factory=list)  # "table 3 row 4 (progress)": no cell there to write

    def as_json(self) -> dict[str, Any]:
        return {"plan": self.plan, "source": self.source, "out": self.out, "actions": self.actions,
                "written": self.written, "cells": self.cells, "columns_added": self.columns_added,
                "not_in_tracker": self.not_in_tracker, "not_written": self.not_written}


@dataclass(frozen=True)
class _Change:
    """What to write for one action: the new text (or date) per field."""

    action: ParsedAction
    status: str | None
    note: str | None
    due: tuple[dt.date, str] | None  # revised date and its text as the owner wrote it


def export_plan(engine: Engine, plan_name: str, out: Path, *, template: Path | None = None,
                at: dt.datetime | None = None) -> ExportResult:
    """Write ``plan_name`` as it stands (or stood ``at``) into a copy of its source file at ``out``."""
    with session_factory(engine)() as session:
        plan = session.scalar(select(Plan).where(Plan.name == plan_name))
        if plan is None:
            raise NotFound(f"no plan named {plan_name!r}")
        source = template or (Path(plan.source_file) if plan.source_file else None)
        if template is not None and not template.is_file():
            raise ExportError(f"--template {template}: file not found")
        if source is None or not source.is_file():
            return _write_clean(session, plan, out, at)
        kind = source.suffix.lower()
        if kind not in (".xlsx", ".xlsm", ".csv", ".docx") or out.suffix.lower() != kind.replace(".xlsm", ".xlsx"):
            raise ExportError(f"--out {out}: write the plan back in its own format ({kind}), e.g. --out plan{kind}")
        parsed = parse_document(read_document(source))
        ids = {key: action_id for key, action_id in session.execute(
            select(Action.match_key, Action.id).where(Action.plan_id == plan.id))}
        plans_rows = {row.id: row for row in session.execute(
            select(Action.id, Action.file_status, Action.file_progress, Action.due_text).where(Action.plan_id == plan.id))}
        folded = fold_history(session, list(ids.values()), at)
    result = ExportResult(plan=plan_name, source=str(source), out=str(out), actions=len(parsed.actions))
    changes: list[_Change] = []
    for pa in parsed.actions:
        action_id = ids.get(pa.match_key)
        if action_id is None:
            result.not_in_tracker.append(pa.where)
            continue
        state, row = folded.get(action_id, {}), plans_rows[action_id]
        status = state.get("status") if state.get("status") not in (None, row.file_status) else None
        note = note_cell(state) if state.get("note") and state.get("note") != row.file_progress else None
        due = (state["due"], state["due_text"]) if state.get("due_text") and state["due_text"] != row.due_text \
            and state.get("due") else None
        if status or note or due:
            changes.append(_Change(pa, status, note, due))
    if kind == ".csv":
        _write_csv(source, out, changes, result)
    elif kind == ".docx":
        _write_docx(source, out, changes, result)
    else:
        _write_xlsx(source, out, changes, result)
    result.written = len(changes)
    return result


def _status_text(status: str, column: list[str]) -> str:
    """``status`` as the file's status column writes it: letters if most of it is letters."""
    letters = sum(1 for text in column if len(text.strip()) == 1)
    return (STATUS_LETTERS if letters * 2 > len(column) and column else STATUS_LABELS)[status]


def _due_text(day: dt.date, written: str, original: str) -> str:
    for shape, fmt in _DUE_SHAPES:
        if shape.match(original.strip()):
            return day.strftime(fmt)
    return written


def neutralise_formula(text: str) -> str:
    """Text a spreadsheet will show as written, not run: a CSV cell starting ``=``, ``+``, ``-``
    or ``@`` gets a leading apostrophe (OWASP "CSV injection"), e.g. ``=HYPERLINK(...)``."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _status_columns(changes: list[_Change], cell_text: Any) -> dict[int | None, list[str]]:
    """Per table, the texts its status column holds (for choosing letters or words)."""
    columns: dict[int | None, list[str]] = {}
    for change in changes:
        pa = change.action
        if "status" in pa.columns and pa.row is not None:
            text = cell_text(pa.table, pa.row, pa.columns["status"])
            if text:
                columns.setdefault(pa.table, []).append(text)
    return columns


def _write_xlsx(source: Path, out: Path, changes: list[_Change], result: ExportResult) -> None:
    from openpyxl import load_workbook

    try:
        book = load_workbook(source)  # not read-only: styles, merges and widths are kept
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{source}: cannot be opened for writing ({exc})") from None
    sheets = book.worksheets

    def text_at(table: int | None, row: int, column: int) -> str:
        value = sheets[(table or 1) - 1].cell(row=row, column=column + 1).value
        return "" if value is None else str(value)

    styles = _status_columns(changes, text_at)
    added: dict[tuple[int | None, str], int] = {}  # (sheet, field) -> column index added

    def column_of(pa: ParsedAction, name: str) -> int:
        if name in pa.columns:
            return pa.columns[name]
        key = (pa.table, name)
        if key not in added:
            sheet = sheets[(pa.table or 1) - 1]
            # After the last column the header row uses, named or not (never over a cell of its own).
            used = [c.column - 1 for c in sheet[pa.header_row] if c.value is not None] if pa.header_row else []
            index = _after(pa, used, [c for (t, _), c in added.items() if t == pa.table])
            if pa.header_row is not None:
                sheet.cell(row=pa.header_row, column=index + 1, value=ADDED_HEADERS[name])
            added[key] = index
            result.columns_added.append(f"sheet '{sheet.title}': {ADDED_HEADERS[name]}")
        return added[key]

    for change in changes:
        pa = change.action
        if pa.row is None:
            continue
        sheet = sheets[(pa.table or 1) - 1]
        if change.status:
            cell = sheet.cell(row=pa.row, column=column_of(pa, "status") + 1)
            if _colour_only_xlsx(cell) and change.status in FILLS:  # the file shows RAG as colour: so do we
                from openpyxl.styles import PatternFill

                cell.fill = PatternFill("solid", fgColor="FF" + FILLS[change.status])
            else:
                cell.value = _status_text(change.status, styles.get(pa.table, []))
                cell.data_type = "s"
            result.cells += 1
        if change.note:
            cell = sheet.cell(row=pa.row, column=column_of(pa, "progress") + 1)
            cell.value = change.note
            cell.data_type = "s"  # a note starting with "=" stays text
            result.cells += 1
        if change.due:
            day, written = change.due
            cell = sheet.cell(row=pa.row, column=column_of(pa, "due") + 1)
            if isinstance(cell.value, (dt.date, dt.datetime)):
                cell.value = dt.datetime(day.year, day.month, day.day)  # its number format stays
            else:
                cell.value = _due_text(day, written, "" if cell.value is None else str(cell.value))
                cell.data_type = "s"
            result.cells += 1
    try:
        book.save(out)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot be written ({exc.strerror})") from None


def _after(pa: ParsedAction, used: list[int], added: list[int]) -> int:
    """The column a field the table lacked goes in: after every column in use or added."""
    return max([*pa.columns.values(), *used, *added]) + 1


def _colour_only_xlsx(cell: Any) -> bool:
    return (cell.value is None or isinstance(cell.value, (int, float))) and cell.fill is not None \
        and cell.fill.fill_type == "solid"


def _write_csv(source: Path, out: Path, changes: list[_Change], result: ExportResult) -> None:
    document = read_document(source)  # the same decoding and records the import read
    rows = [[c.text if isinstance(c.value, str) else ("" if c.value is None else str(c.value)) for c in item.cells]
            for item in document.items]
    by_row = {item.row: index for index, item in enumerate(document.items)}

    def text_at(_table: int | None, row: int, column: int) -> str:
        cells = rows[by_row[row]]
        return cells[column] if column < len(cells) else ""

    styles = _status_columns(changes, text_at)
    added: dict[str, int] = {}

    def put(pa: ParsedAction, name: str, text: str) -> None:
        if name in pa.columns:
            column = pa.columns[name]
        else:
            if name not in added:
                header_cells = rows[by_row[pa.header_row]] if pa.header_row is not None else []
                added[name] = _after(pa, [i for i, text in enumerate(header_cells) if text], list(added.values()))
                if pa.header_row is not None:
                    header = rows[by_row[pa.header_row]]
                    header += [""] * (added[name] + 1 - len(header))
                    header[added[name]] = ADDED_HEADERS[name]
                result.columns_added.append(ADDED_HEADERS[name])
            column = added[name]
        cells = rows[by_row[pa.row]]
        cells += [""] * (column + 1 - len(cells))
        cells[column] = neutralise_formula(text)
        result.cells += 1

    for change in changes:
        pa = change.action
        if pa.row is None:
            continue
        if change.status:
            put(pa, "status", _status_text(change.status, styles.get(pa.table, [])))
        if change.note:
            put(pa, "progress", change.note)
        if change.due:
            day, written = change.due
            put(pa, "due", _due_text(day, written, text_at(pa.table, pa.row, pa.columns.get("due", 10**6))))
    try:
        with out.open("w", encoding="utf-8-sig", newline="") as handle:
            csv.writer(handle).writerows(rows)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot be written ({exc.strerror})") from None


def _write_docx(source: Path, out: Path, changes: list[_Change], result: ExportResult) -> None:
    import copy

    import docx
    from docx.oxml.ns import qn

    from storage.importers.reading import _in_flow

    try:
        document = docx.Document(str(source))
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{source}: cannot be opened for writing ({exc})") from None
    # Tables numbered as the reader numbers them: in the document's flow (not inside a cell),
    # in order, counting only tables with rows.
    tables = [tbl for tbl in document.element.body.iter(qn("w:tbl"))
              if _in_flow(tbl.getparent()) and tbl.find(qn("w:tr")) is not None]

    def rows_of(table: int | None) -> list[Any]:
        return tables[(table or 1) - 1].findall(qn("w:tr"))

    def tc_at(table: int | None, row: int, column: int) -> Any:
        """The w:tc covering grid column ``column`` (a gridSpan covers several)."""
        at = 0
        for tc in rows_of(table)[row - 1].findall(qn("w:tc")):
            span_el = tc.find(f"{qn('w:tcPr')}/{qn('w:gridSpan')}")
            span = int(span_el.get(qn("w:val"), "1")) if span_el is not None else 1
            if at <= column < at + span:
                return tc
            at += span
        return None

    def text_of(tc: Any) -> str:
        return "\n".join("".join(t.text or "" for t in p.iter(qn("w:t"))) for p in tc.iter(qn("w:p"))).strip()

    def cell_text(table: int | None, row: int, column: int) -> str:
        tc = tc_at(table, row, column)
        return text_of(tc) if tc is not None else ""

    styles = _status_columns(changes, cell_text)
    added: dict[tuple[int | None, str], int] = {}

    def add_column(pa: ParsedAction, name: str) -> int:
        key = (pa.table, name)
        if key not in added:
            tbl = tables[(pa.table or 1) - 1]
            grid = tbl.find(qn("w:tblGrid"))
            if grid is not None and len(grid):
                grid.append(copy.deepcopy(grid[-1]))
            header = tbl.findall(qn("w:tr"))[(pa.header_row or 1) - 1]
            spans = [tc.find(f"{qn('w:tcPr')}/{qn('w:gridSpan')}") for tc in header.findall(qn("w:tc"))]
            grid_width = sum(int(sp.get(qn("w:val"), "1")) if sp is not None else 1 for sp in spans)
            # A new cell goes after each row's last cell: the new grid column is the header's width.
            width = max(grid_width, _after(pa, [], [c for (t, _), c in added.items() if t == pa.table]))
            for tr in tbl.findall(qn("w:tr")):
                last = tr.findall(qn("w:tc"))[-1]
                tc = copy.deepcopy(last)
                for merge in tc.iter(qn("w:vMerge"), qn("w:gridSpan")):
                    merge.getparent().remove(merge)
                _set_text(tc, "")
                last.addnext(tc)
            added[key] = width
            if pa.header_row is not None:
                _set_text(tc_at(pa.table, pa.header_row, width), ADDED_HEADERS[name])
            result.columns_added.append(f"table {pa.table}: {ADDED_HEADERS[name]}")
        return added[key]

    for change in changes:
        pa = change.action
        if pa.row is None:
            continue
        for name, value in (("status", change.status), ("progress", change.note), ("due", change.due)):
            if not value:
                continue
            column = pa.columns[name] if name in pa.columns else add_column(pa, name)
            tc = tc_at(pa.table, pa.row, column)
            if tc is None:  # a row shorter than its header: said, not skipped in silence
                result.not_written.append(f"{pa.where} ({name})")
                continue
            if name == "status" and str(value) in FILLS and _colour_only_docx(tc, text_of(tc)):
                shade = tc.find(f"{qn('w:tcPr')}/{qn('w:shd')}")
                shade.set(qn("w:fill"), FILLS[str(value)])  # the file shows RAG as shading: so do we
                result.cells += 1
                continue
            if name == "status":
                text = _status_text(str(value), styles.get(pa.table, []))
            elif name == "due":
                day, written = value  # type: ignore[misc]
                text = _due_text(day, written, text_of(tc))
            else:
                text = str(value)
            _set_text(tc, text)
            result.cells += 1
    try:
        document.save(str(out))
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot be written ({exc.strerror})") from None


def _colour_only_docx(tc: Any, text: str) -> bool:
    import re as _re

    from docx.oxml.ns import qn

    shade = tc.find(f"{qn('w:tcPr')}/{qn('w:shd')}")
    fill = shade.get(qn("w:fill")) if shade is not None else None
    return bool(fill) and fill != "auto" and not _re.search(r"[^\d.,%\s-]", text)


def _set_text(tc: Any, text: str) -> None:
    """Put ``text`` in a Word cell: the first paragraph's first run keeps its formatting."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    paragraphs = tc.findall(qn("w:p"))
    if not paragraphs:
        paragraphs = [OxmlElement("w:p")]
        tc.append(paragraphs[0])
    for extra in paragraphs[1:]:
        tc.remove(extra)
    first = paragraphs[0]
    runs = first.findall(qn("w:r"))
    run = runs[0] if runs else OxmlElement("w:r")
    if not runs:
        first.append(run)
    for extra in runs[1:]:
        first.remove(extra)
    for child in list(run):
        if child.tag != qn("w:rPr"):
            run.remove(child)
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if n:
            run.append(OxmlElement("w:br"))
        t = OxmlElement("w:t")
        t.set(qn("xml:space"), "preserve")
        t.text = line
        run.append(t)


CLEAN_COLUMNS = ("Ref", "Action", "Workstream", "Owner(s)", "Start", "Due date", "Status", "Progress")


def _write_clean(session: Any, plan: Plan, out: Path, at: dt.datetime | None) -> ExportResult:
    """The plan as a plain table, for a plan whose own file is not at hand."""
    from sqlalchemy.orm import selectinload

    from storage.models import ActionOwner

    kind = out.suffix.lower()
    if kind not in (".xlsx", ".docx", ".csv"):
        raise ExportError(f"--out {out}: write .xlsx, .docx or .csv")
    actions = list(session.scalars(
        select(Action).where(Action.plan_id == plan.id).order_by(Action.position)
        .options(selectinload(Action.owners).selectinload(ActionOwner.role), selectinload(Action.workstream))
    ))
    folded = fold_history(session, [a.id for a in actions], at)
    by_ws: dict[str, list[list[str]]] = {}
    for a in actions:
        state = folded.get(a.id, {})
        due = state.get("due_text") or a.due_text or (a.due_date.isoformat() if a.due_date else "")
        status = STATUS_LABELS.get(state.get("status") or "", "")
        ws_name = a.workstream.name if a.workstream else plan.name
        by_ws.setdefault(ws_name, []).append([
            a.ref, a.title, ws_name, ", ".join(o.role.name for o in a.owners), a.start_text or "", due, status,
            note_cell(state) or a.file_progress or "",
        ])
    result = ExportResult(plan=plan.name, source="(none: a clean table)", out=str(out), actions=len(actions),
                          written=len(actions), cells=len(actions) * len(CLEAN_COLUMNS))
    try:
        if kind == ".csv":
            with out.open("w", encoding="utf-8-sig", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(CLEAN_COLUMNS)
                writer.writerows([[neutralise_formula(v) for v in row] for rows in by_ws.values() for row in rows])
        elif kind == ".xlsx":
            _clean_xlsx(out, by_ws)
        else:
            _clean_docx(out, plan.name, by_ws)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot be written ({exc.strerror})") from None
    return result


def _clean_xlsx(out: Path, by_ws: dict[str, list[list[str]]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    used: set[str] = set()
    for name, rows in by_ws.items():
        title = re.sub(r"[\[\]:*?/\\]", " ", name).strip()[:31] or "Plan"
        base, n = title, 2
        while title.lower() in used:  # sheet names are unique, ignoring case, and at most 31 characters
            title = f"{base[:27]} ({n})"
            n += 1
        used.add(title.lower())
        sheet = book.create_sheet(title)
        sheet.append(CLEAN_COLUMNS)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(row)
            for cell in sheet[sheet.max_row]:
                cell.data_type = "s"  # owners' text is never a formula
        for letter, width in zip("ABCDEFGH", (10, 60, 24, 30, 14, 16, 12, 60)):
            sheet.column_dimensions[letter].width = width
        sheet.freeze_panes = "A2"
    book.save(out)


def _clean_docx(out: Path, plan_name: str, by_ws: dict[str, list[list[str]]]) -> None:
    import docx

    document = docx.Document()
    document.add_heading(plan_name, level=0)
    for name, rows in by_ws.items():
        document.add_heading(name, level=1)
        table = document.add_table(rows=1, cols=len(CLEAN_COLUMNS))
        table.style = "Table Grid"
        for cell, text in zip(table.rows[0].cells, CLEAN_COLUMNS):
            cell.text = text
            for run in cell.paragraphs[0].runs:
                run.bold = True
        for row in rows:
            for cell, text in zip(table.add_row().cells, row):
                cell.text = text
    document.save(str(out))
