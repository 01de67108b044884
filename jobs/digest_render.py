"""The board digest's formats: one renderer per format over one :class:`~jobs.digest.Report`.

``RENDERERS`` maps a file suffix to a function ``(report, path) -> None``; ``chaser digest
--out`` picks by suffix and :func:`write` refuses, naming the option, a suffix with no renderer.
The HTML is ``message_templates/digest/report.html.j2`` in the one Jinja environment (autoescape:
every plan's and owner's text is escaped). The CSV and XLSX are the report's action table, as
a spreadsheet cannot run them: text starting ``=``, ``+``, ``-`` or ``@`` is neutralised as
``chaser export`` does (storage.exporters).
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.render import environment
from chaser.errors import ChaserError, InvalidValue
from jobs.digest import COUNT_LABELS, COUNTED, ActionRow, Report
from storage.dates import format_day, format_month
from storage.exporters import neutralise_formula
from storage.statuses import PLAIN_COLOURS, STATUS_COLOURS

# Formats the issue lists that are built later (PDF with WeasyPrint): a clear refusal until then.
NOT_YET = {".pdf": "PDF"}
TABLE_COLUMNS = ("Ref", "Action", "Workstream", "Owner(s)", "Status", "Latest note", "Start", "Due", "Key dates",
                 "Last update")
_COLUMN_WIDTHS = (10, 60, 30, 30, 12, 60, 12, 18, 30, 24)


class DigestError(ChaserError):
    """The report could not be written where asked (the path names the option)."""


@dataclass(frozen=True)
class _Mark:
    """A status as the page shows it: its word, always, and its colours."""

    word: str
    background: str
    colour: str


def mark(status: str) -> _Mark:
    background, colour = STATUS_COLOURS.get(status, PLAIN_COLOURS)
    return _Mark(word=COUNT_LABELS[status], background=background, colour=colour)


def _due(row: ActionRow) -> str:
    if row.due is None:
        return row.due_text or ""
    return format_day(row.due, weekday=False)


def _key_dates(row: ActionRow) -> str:
    return "; ".join(text or day for day, text in row.key_dates)


def table_rows(report: Report) -> list[list[str]]:
    """The action table as text cells (what CSV and XLSX hold), before neutralising."""
    return [[
        r.ref, r.title, r.workstream, ", ".join(r.owners), r.status_label, r.note or "",
        format_day(r.start, weekday=False) if r.start else "", _due(r), _key_dates(r),
        f"{format_day(r.updated_at.date(), weekday=False)}, {r.updated_by}" if r.updated_at else "",
    ] for r in report.actions]


def render_html(report: Report) -> str:
    """The standalone report page: summary, what changed, overdue, not answered, spotlight and
    a section per workstream."""
    refs = {r.ref: r for r in report.actions}
    return environment().get_template("digest/report.html.j2").render(
        report=report, counted=COUNTED, labels=COUNT_LABELS, mark=mark, due=_due, key_dates=_key_dates,
        action=refs.get, month=format_month(report.period.start),
    )


def write_html(report: Report, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")


def write_csv(report: Report, path: Path) -> None:
    # utf-8-sig: Excel opens it as UTF-8 (names with accents, en dashes) rather than guessing.
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS)
        writer.writerows([[neutralise_formula(cell) for cell in row] for row in table_rows(report)])


def write_xlsx(report: Report, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = f"Actions {report.period.name}"
    sheet.append(TABLE_COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in table_rows(report):
        sheet.append(row)
        for cell in sheet[sheet.max_row]:
            cell.data_type = "s"  # as chaser export writes: owners' text is never a formula
    for n, width in enumerate(_COLUMN_WIDTHS, 1):
        sheet.column_dimensions[get_column_letter(n)].width = width
    sheet.freeze_panes = "A2"
    book.save(path)


RENDERERS: dict[str, Callable[[Report, Path], None]] = {".html": write_html, ".csv": write_csv, ".xlsx": write_xlsx}


def renderer_for(path: Path) -> Callable[[Report, Path], None]:
    """The renderer ``path``'s suffix names (``--out``), checked before any report is built."""
    suffix = path.suffix.lower()
    if suffix in NOT_YET:
        raise InvalidValue(f"--out {path}: {NOT_YET[suffix]} reports are not available yet; write .html, .csv "
                           "or .xlsx")
    renderer = RENDERERS.get(suffix)
    if renderer is None:
        raise InvalidValue(f"--out {path}: write a .html, .csv or .xlsx file")
    return renderer


def write(report: Report, path: Path) -> None:
    """Write ``report`` in the format ``path``'s suffix names (``--out``)."""
    renderer = renderer_for(path)
    try:
        renderer(report, path)
    except OSError as exc:
        raise DigestError(f"--out {path}: cannot be written ({exc.strerror})") from None
