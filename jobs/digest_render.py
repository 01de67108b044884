"""The board digest's formats: one renderer per format over one :class:`~jobs.digest.Report`.

``RENDERERS`` maps a file suffix to a function ``(report, path) -> None``; ``chaser digest
--out`` picks by suffix and :func:`write` refuses, naming the option, a suffix with no renderer.
The HTML is ``message_templates/digest/report.html.j2`` in the one Jinja environment (autoescape:
every plan's and owner's text is escaped). The PDF is the same page laid out for A4 by
WeasyPrint, with a text layer and tagged headings (``pdf_tags``: a screen reader finds the
structure). The chart (:func:`chart_png`) is drawn by matplotlib's Agg backend, never a
display: the page carries it as a ``data:`` URI (the report is a file, outside the web pages'
CSP), the email by Content-ID. The CSV and XLSX are the report's action table, as a
spreadsheet cannot run them: text starting ``=``, ``+``, ``-`` or ``@`` is neutralised as
``chaser export`` does (storage.exporters).
"""
from __future__ import annotations

import base64
import csv
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.render import environment
from chaser.errors import ChaserError, InvalidValue
from jobs.digest import COUNT_LABELS, COUNTED, ActionRow, Report
from storage.dates import format_day, format_month
from storage.exporters import neutralise_formula
from storage.statuses import PLAIN_COLOURS, STATUS_COLOURS

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


# --- the chart ------------------------------------------------------------------------------

# (fill, hatch, text colour on the fill) per status: fills far apart in lightness, and a hatch
# for the three RAG colours, so the bars still read printed in black and white or by someone
# who cannot tell red from green. Each segment also carries its count, and the legend the words.
CHART_STYLE = {
    "complete": ("#1d3f66", "", "#ffffff"),
    "green": ("#2e7d4f", "//", "#ffffff"),
    "amber": ("#ffbf47", "..", "#0b0c0c"),
    "red": ("#b3261e", "xx", "#ffffff"),
    "not_started": ("#d9d9d9", "", "#0b0c0c"),
    "no_update": ("#ffffff", "", "#0b0c0c"),
}
# matplotlib's pyplot state is global; Figure objects are not, but font caches are built on
# first use: one chart at a time keeps two dispatcher threads from racing on them.
_CHART_LOCK = threading.Lock()
_LABEL_MAX = 38  # characters of a workstream name beside its bar
# Rows of one action table in the PDF: the pack a board reads, not the whole plan. WeasyPrint
# lays out a page of table in about 0.1 s, so a 10,000-action plan listed in full would be
# thousands of pages and minutes; past this the PDF says how many more there are and where
# they are (the HTML report and the CSV/XLSX list every action).
PDF_ROWS_MAX = 50


def chart_alt(report: Report) -> str:
    """The chart in words (its ``alt`` text): every workstream's counts by status."""
    parts = []
    for name, counts in report.by_workstream.items():
        shown = [f"{COUNT_LABELS[s]} {counts[s]}" for s in COUNTED if counts[s]]
        parts.append(f"{name}: {', '.join(shown) if shown else 'no actions'}")
    return ("Actions by status for each workstream. " + "; ".join(parts) + ".") if parts else "No workstreams."


def chart_png(report: Report) -> bytes:
    """A stacked bar per workstream of its actions by status, as PNG (about 900 pixels wide)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report.by_workstream)
    with _CHART_LOCK:
        figure = Figure(figsize=(9, 1.2 + 0.45 * max(len(names), 1)), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        widest = max([sum(c.values()) for c in report.by_workstream.values()] or [0]) or 1
        left = [0] * len(names)
        rows = range(len(names))
        for status in COUNTED:
            fill, hatch, ink = CHART_STYLE[status]
            values = [report.by_workstream[n][status] for n in names]
            bars = axes.barh(rows, values, left=left, color=fill, hatch=hatch, edgecolor="#0b0c0c", linewidth=0.6,
                             label=COUNT_LABELS[status], height=0.65)
            for bar, value, start in zip(bars, values, left):
                if value and value / widest > 0.035:  # room for the number inside its segment
                    axes.text(start + value / 2, bar.get_y() + bar.get_height() / 2, str(value), ha="center",
                              va="center", fontsize=8, color=ink,
                              bbox={"boxstyle": "square,pad=0.1", "facecolor": fill, "edgecolor": "none"})
            left = [a + b for a, b in zip(left, values)]
        axes.set_yticks(list(rows), [n if len(n) <= _LABEL_MAX else n[:_LABEL_MAX - 1] + "…" for n in names],
                        fontsize=9)
        axes.invert_yaxis()  # the first workstream at the top, as in the table
        axes.set_xlabel("Actions", fontsize=9)
        axes.tick_params(axis="x", labelsize=8)
        axes.spines[["top", "right"]].set_visible(False)
        axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(COUNTED), fontsize=8, frameon=False,
                    handlelength=1.6)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png", facecolor="#ffffff")
        return out.getvalue()


def render_html(report: Report, *, chart_src: str | None = None, pdf: bool = False) -> str:
    """The standalone report page: summary (with the chart), what changed, overdue, not
    answered, spotlight and a section per workstream. ``chart_src``: where the chart is (the
    email's ``cid:``), else it is inlined as a ``data:`` URI; ``pdf``: the A4 print layout."""
    refs = {r.ref: r for r in report.actions}
    if chart_src is None:
        chart_src = "data:image/png;base64," + base64.b64encode(chart_png(report)).decode("ascii")
    return environment().get_template("digest/report.html.j2").render(
        report=report, counted=COUNTED, labels=COUNT_LABELS, mark=mark, due=_due, key_dates=_key_dates,
        action=refs.get, month=format_month(report.period.start), chart_src=chart_src, chart_alt=chart_alt(report),
        pdf=pdf, rows_max=PDF_ROWS_MAX if pdf else None,
    )


def render_pdf(report: Report) -> bytes:
    """The report as an A4 PDF: a real text layer, tagged headings and tables (``pdf_tags``),
    page numbers, the language and title in its metadata."""
    from weasyprint import HTML

    return HTML(string=render_html(report, pdf=True)).write_pdf(pdf_tags=True)


def write_html(report: Report, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")


def write_pdf(report: Report, path: Path) -> None:
    path.write_bytes(render_pdf(report))


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


RENDERERS: dict[str, Callable[[Report, Path], None]] = {
    ".html": write_html, ".pdf": write_pdf, ".csv": write_csv, ".xlsx": write_xlsx,
}


def renderer_for(path: Path) -> Callable[[Report, Path], None]:
    """The renderer ``path``'s suffix names (``--out``), checked before any report is built."""
    renderer = RENDERERS.get(path.suffix.lower())
    if renderer is None:
        raise InvalidValue(f"--out {path}: write a .html, .pdf, .csv or .xlsx file")
    return renderer


def write(report: Report, path: Path) -> None:
    """Write ``report`` in the format ``path``'s suffix names (``--out``)."""
    renderer = renderer_for(path)
    try:
        renderer(report, path)
    except OSError as exc:
        raise DigestError(f"--out {path}: cannot be written ({exc.strerror})") from None
