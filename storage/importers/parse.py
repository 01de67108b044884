"""Turn a document's rows into workstreams, groups and actions: the import rules.

This is pure: no database. The rules, in the order they are tried for each row:

1. A row whose cells name at least two known columns, one of them the action, is a header row.
   Headers are matched by meaning (``HEADER_SYNONYMS``), so ``Lead Officer``, ``Owner(s)`` and
   ``Owner`` all fill the owners. A header identical to the one in force (a table repeated at a
   page break) changes nothing.
2. Two-cell rows labelled ``... Theme``/``Workstream``, ``Lead Sponsor``, ``Objective N``,
   ``Schedule``/``Scope``/``Budget``/``Impact``, ``Risks``/``Issues`` describe a workstream.
3. Text before a header (headings, a section title and its ``Outcomes:``) names the next
   workstream: the last heading in Word, else the first line of the last block of text.
4. Under a header, a row whose only text is ``R1.A. Title`` (a recommendation) starts a group;
   the text-only row right after it is the group's description.
5. A row with a ref, or with action text and something else, is an action. A row with only
   action text in a table that has a ref column, or with no ref and no action text, continues
   the action above (its text is appended to the same columns), even across a repeated header.
6. A row identical to an earlier action row (the same table pasted twice) is skipped, and so
   are its continuation rows; each skip is reported.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from chaser.errors import ImportFileError
from storage.dates import ParsedDate, parse_when
from storage.importers.reading import Cell, Document, ImportWarning, Item  # ImportWarning: readers warn too

FIELDS = (
    "ref", "title", "description", "owners", "dependencies", "resources", "success_measures",
    "start", "due", "key_dates", "status", "progress", "next_steps", "workstream", "group",
)

# Normalised header text (see ``normalise_header``) -> field. A header matches a synonym when it
# equals it or starts with it followed by a space ("dependencies other services").
HEADER_SYNONYMS: dict[str, str] = {
    "no": "ref", "no.": "ref", "ref": "ref", "reference": "ref", "ref no": "ref", "id": "ref",
    "action no": "ref", "action ref": "ref", "action number": "ref", "action id": "ref", "item": "ref",
    "action": "title", "actions": "title", "action title": "title", "title": "title", "task": "title",
    "activity": "title", "activities": "title", "what we will do": "title", "key actions": "title",
    "description": "description", "action description": "description", "detail": "description", "details": "description",
    "lead officer": "owners", "lead officers": "owners", "owner": "owners", "owners": "owners",
    "action owner": "owners", "action owners": "owners", "lead": "owners", "leads": "owners", "responsible": "owners",
    "responsible officer": "owners", "responsibility": "owners", "accountable": "owners", "who": "owners",
    "lead officer and service": "owners", "lead responsibility": "owners",
    "dependencies": "dependencies", "dependency": "dependencies", "partners": "dependencies",
    "resource": "resources", "resources": "resources", "resource implications": "resources",
    "budget": "resources", "cost": "resources", "costs": "resources", "funding": "resources",
    "success measures": "success_measures", "success measure": "success_measures",
    "success criteria": "success_measures", "measures of success": "success_measures",
    "outcome measures": "success_measures", "kpis": "success_measures", "kpi": "success_measures",
    "performance measures": "success_measures", "how will we measure success": "success_measures",
    "start": "start", "start date": "start",
    "deadline": "due", "deadlines": "due", "due": "due", "due date": "due", "target date": "due",
    "timescale": "due", "timescales": "due", "timeframe": "due", "completion date": "due",
    "end date": "due", "by when": "due", "when": "due", "date": "due",
    "key dates": "key_dates", "milestones": "key_dates", "key milestones": "key_dates",
    "status": "status", "rag": "status", "rag status": "status", "brag": "status", "brag status": "status",
    "progress": "progress", "progress update": "progress", "progress to date": "progress",
    "update": "progress", "updates": "progress", "comments": "progress", "commentary": "progress",
    "notes": "progress", "progress notes": "progress",
    "next steps": "next_steps", "next step": "next_steps",
    "workstream": "workstream", "work stream": "workstream", "theme": "workstream",
    "priority": "workstream", "objective": "workstream", "strategic objective": "workstream",
    "recommendation": "group", "recommendations": "group", "group": "group",
}

STATUS_WORDS = {
    "g": "green", "green": "green", "on track": "green", "ontrack": "green",
    "a": "amber", "amber": "amber", "at risk": "amber", "a g": "amber", "amber green": "amber",
    "r": "red", "red": "red", "off track": "red", "delayed": "red", "overdue": "red", "a r": "red",
    "c": "complete", "complete": "complete", "completed": "complete", "done": "complete",
    "closed": "complete", "achieved": "complete", "b": "complete", "blue": "complete",
    "not started": "not_started", "not yet started": "not_started", "ns": "not_started",
}

GROUP_RE = re.compile(
    r"^\s*(?P<ref>(?:Recommendation|Rec\.?)\s*\d+(?:\.[A-Z])?|R\s*\.?\s*\d+(?:\s*\.\s*[A-Z](?![a-z]))?)"
    r"\s*[.:)]?\s*(?P<rest>.*)$",
    re.S,
)
LABEL_RE = re.compile(r"^(?P<label>objective|priority|outcome|aim|goal)\s*(?P<n>\d+)?$")
METRICS = ("schedule", "scope", "budget", "impact")
NO_REF = re.compile(r"^[\s\-–—]*$")
SPACES = re.compile(r"\s+")
NOT_STATUS_CHARS = re.compile(r"[^a-z ]+")
NOT_HEADER_CHARS = re.compile(r"[^a-z0-9. ]+")
OWNER_SEPARATORS = re.compile(r"[/;\n]")


@dataclass
class ParsedWorkstream:
    name: str
    where: str
    label: str | None = None
    lead_sponsor: str | None = None
    objective: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    risks_issues: str | None = None
    position: int = 0

    @property
    def key(self) -> str:
        return norm_key(f"{self.label}: {self.name}" if self.label else self.name)


@dataclass
class ParsedGroup:
    ref: str
    title: str
    where: str
    workstream: ParsedWorkstream | None
    description: str | None = None
    position: int = 0

    @property
    def ref_key(self) -> str:
        return ref_key(self.ref)


@dataclass(slots=True)  # a plan can have hundreds of thousands
class ParsedAction:
    where: str
    fields: dict[str, list[Cell]]  # the cells read; emptied once the action is finished
    workstream: ParsedWorkstream | None
    group: ParsedGroup | None
    position: int = 0
    # Filled by ``finish``:
    ref: str | None = None
    title: str = ""
    description: str | None = None
    owners: list[str] = field(default_factory=list)
    owners_text: str | None = None
    dependencies: str | None = None
    resources: str | None = None
    success_measures: str | None = None
    next_steps: str | None = None
    progress: str | None = None
    status: str | None = None
    start: ParsedDate | None = None
    due: ParsedDate | None = None
    match_key: str = ""
    # Where it stands in the file, for writing the plan back (storage.exporters): the table or
    # sheet, the row, the header's row and each field's first column (0-based).
    table: int | None = None
    row: int | None = None
    header_row: int | None = None
    columns: dict[str, int] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        parts = [text for c in self.fields.get(name, []) if (text := c.text)]
        return "\n".join(parts) if parts else None


@dataclass
class ParsedPlan:
    path: str
    title: str | None
    description: str | None
    workstreams: list[ParsedWorkstream]
    groups: list[ParsedGroup]
    actions: list[ParsedAction]
    warnings: list[ImportWarning]


def norm_key(text: str) -> str:
    """Case- and spacing-insensitive key used to match roles, titles and workstreams."""
    return SPACES.sub(" ", text).strip().lower()[:300]


def ref_key(ref: str) -> str:
    return SPACES.sub("", ref).upper()


def normalise_header(text: str) -> str:
    text = text.lower().replace("&", " and ").replace("(s)", "s")
    text = NOT_HEADER_CHARS.sub(" ", text)
    return SPACES.sub(" ", text).strip(" .") or text.strip()


def header_field(text: str) -> str | None:
    norm = normalise_header(text)
    if not norm:
        return None
    if norm in HEADER_SYNONYMS:
        return HEADER_SYNONYMS[norm]
    words = norm.split(" ")
    for n in range(len(words) - 1, 0, -1):  # longest leading phrase first
        found = HEADER_SYNONYMS.get(" ".join(words[:n]))
        if found:
            return found
    return None


def map_header(cells: tuple[Cell, ...]) -> dict[int, str] | None:
    """Column -> field when the row is a header row, else None."""
    mapping: dict[int, str] = {}
    texts = [(i, text) for i, c in enumerate(cells) if isinstance(c.value, str) and (text := c.text)]
    if len(texts) < 2 or any(len(t) > 60 for _, t in texts):
        return None
    for i, text in texts:
        name = header_field(text)
        if name and name not in mapping.values():
            mapping[i] = name
    fields = set(mapping.values())
    if "title" not in fields and "description" in fields:
        for i, name in mapping.items():
            if name == "description":
                mapping[i] = "title"
        fields = set(mapping.values())
    if "title" not in fields or len(fields) < 2 or len(mapping) * 2 < len(texts):
        return None
    if "due" not in fields and "key_dates" in fields:
        mapping = {i: ("due" if f == "key_dates" else f) for i, f in mapping.items()}
    return mapping


def read_status(text: str) -> str | None:
    norm = NOT_STATUS_CHARS.sub(" ", text.lower()).strip()
    norm = SPACES.sub(" ", norm)
    if norm in STATUS_WORDS:
        return STATUS_WORDS[norm]
    first = norm.split(" ")[0] if norm else ""
    if first in STATUS_WORDS and len(first) > 1:
        return STATUS_WORDS[first]
    return None


# A status as keys write it: a letter or a word, alone in its cell or before its meaning.
_KEY_STATUS = r"(?:[GARBC]|green|amber|red|blue|black|grey|gray|complete[d]?|not started|on track|off track|at risk)"
_KEY_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    r"^(?:(?:b?rag|colour|color|status)\s+)?key\s*:?(?:\s|$)",  # "Key:", "BRAG key", "RAG Key: ..."
    rf"^{_KEY_STATUS}\s*(?:[-–—=:]|\bis\b|\bmeans\b)\s*\S",  # "G – On track", "Amber = some slippage"
    r"^(?:grand\s+)?totals?\s*(?::|$|\d)",  # "Total", "Totals: 42"
    r"^(?:last\s+)?updated\s*(?:on|:|\d)|^as at\b|^last reviewed\b",  # "Last updated 3 May"
    r"^\*+\s*\S|^notes?\s*:",  # "* denotes a statutory duty", "Note: ..."
)]
_KEY_WORD_ONLY = re.compile(rf"^{_KEY_STATUS}$", re.IGNORECASE)
FRAGMENT_MAX = 15  # characters: less action text than this, with no owner or date, is not an action


def is_key_row(texts: list[str]) -> bool:
    """A colour key, totals, "last updated" or footnote row, recognised by its shape.

    One cell matching a key pattern, or a status letter/word alone in the first cell next to a
    short meaning ("G" | "On track"). The caller has checked there is no owner and no date.
    """
    if not texts:
        return False
    first = texts[0].strip()
    if len(texts) <= 2 and any(p.match(first) for p in _KEY_PATTERNS):
        return True
    return len(texts) == 2 and bool(_KEY_WORD_ONLY.match(first)) and len(texts[1]) <= 80


# Hue bands (degrees) of a clear RAG fill; blue means complete, as in BRAG keys.
_HUES = (("red", 0, 15), ("amber", 20, 65), ("green", 75, 170), ("complete", 185, 255), ("red", 340, 360))


def status_from_colour(rgb: str) -> str | None:
    """The status a cell's fill shows ("C00000" -> red, "FFC000" -> amber), or None when the
    colour is not clearly one of red, amber, green or blue (grey, white, pale, dark, purple)."""
    import colorsys

    red, green, blue = (int(rgb[i:i + 2], 16) / 255 for i in (0, 2, 4))
    hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
    if saturation < 0.4 or value < 0.35:
        return None
    degrees = hue * 360
    return next((status for status, low, high in _HUES if low <= degrees <= high), None)


def split_owners(text: str | None) -> list[str]:
    if not text:
        return []
    owners = []
    keys = set()
    for part in OWNER_SEPARATORS.split(text):
        name = SPACES.sub(" ", part).strip(" ,.-–")
        if name and norm_key(name) not in keys:
            owners.append(name)
            keys.add(norm_key(name))
    return owners


def _kv_label(text: str) -> tuple[str, str | None] | None:
    """What a two-cell workstream row describes: ('name'|'sponsor'|'objective'|..., label)."""
    norm = normalise_header(text)
    if not norm or len(norm) > 60:
        return None
    if norm.endswith("theme") or norm in ("workstream", "work stream", "section", "priority area"):
        return ("name", None)
    if "sponsor" in norm:
        return ("sponsor", None)
    m = LABEL_RE.match(norm)
    if m:
        return ("objective", text.strip())
    if norm in METRICS:
        return ("metric", norm)
    if norm in ("risks", "issues", "risks and issues", "risks issues", "key risks"):
        return ("risks", None)
    return None


class _Parser:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.warnings: list[ImportWarning] = list(doc.warnings)  # what the reader noticed comes first
        self.workstreams: list[ParsedWorkstream] = []
        self.groups: list[ParsedGroup] = []
        self.actions: list[ParsedAction] = []
        self.header: dict[int, str] | None = None
        self.header_table: int | None = None
        self.header_where = ""
        self.header_row: int | None = None
        self.header_columns: dict[str, int] = {}  # shared by every action under the header
        self.spaced: ParsedAction | None = None  # the action above the last blank row of a sheet
        self.ws: ParsedWorkstream | None = None
        self.group: ParsedGroup | None = None
        # What the previous meaningful row was: an action, a group, a skipped duplicate or nothing.
        self.last: ParsedAction | ParsedGroup | str | None = None
        self.preamble: list[tuple[str, bool, str]] = []  # (text, is_heading, where)
        self.plan_lines: list[str] = []
        self.seen_rows: dict[tuple[str, ...], str] = {}
        self.kv_table: int | None = None
        self.ws_by_key: dict[str, ParsedWorkstream] = {}
        self.group_by_ref: dict[str, ParsedGroup] = {}
        # Each action is finished as soon as the next one starts (nothing can continue it then),
        # so its cells are let go of while the rest is read; its warnings keep their place after
        # the row warnings, in action order, as if all were finished at the end.
        self.finished = 0
        self.finish_warnings: list[ImportWarning] = []
        self.shared = Shared()
        self.key_rows: tuple[int | None, int, list[str]] | None = None  # (table, warning index, rows)
        # A workbook of several sheets: each sheet finds its own title rows and header, and one
        # with no section heading of its own is a workstream (named by its title row, or the sheet).
        many = doc.grid and len(doc.sheets) > 1
        self.header_sheets = {i.table for i in doc.items if many and i.is_row and map_header(i.cells) is not None}
        self.sheet: int | None = None
        self.sheet_has_ws = False
        self.sheet_title: str | None = None
        self.awaiting_header = False

    # -- workstreams ----------------------------------------------------------------------
    def new_workstream(self, name: str, where: str) -> ParsedWorkstream:
        ws = ParsedWorkstream(name=name, where=where, position=len(self.workstreams))
        self.workstreams.append(ws)
        self.ws = ws
        self.group = None
        self.sheet_has_ws = True
        return ws

    def workstream_named(self, name: str, where: str) -> ParsedWorkstream:
        key = norm_key(name)
        if key not in self.ws_by_key:
            ws = ParsedWorkstream(name=name, where=where, position=len(self.workstreams))
            self.workstreams.append(ws)
            self.ws_by_key[key] = ws
        return self.ws_by_key[key]

    def workstream_from_preamble(self) -> None:
        lines = self.preamble
        self.preamble = []
        if not lines:
            return
        headings = [i for i, (_, heading, _) in enumerate(lines) if heading]
        if headings:
            start = headings[-1]
        else:
            start = 0
            for i, (text, _, _) in enumerate(lines):
                if text == "":
                    start = i + 1
        block = [(t, w) for t, _, w in lines[start:] if t and not is_key_row([t])]  # no "As at ..." lines
        if block and self.plan_lines and block[0][0] == self.plan_lines[0] and not headings:
            block = block[1:]  # the document title is the plan, not a workstream
        if not block:
            return
        name, where = block[0]
        ws = self.new_workstream(name.rstrip(":"), where)
        rest = "\n".join(t for t, _ in block[1:]).strip()
        ws.objective = rest or None

    def key_value(self, item: Item, label: tuple[str, str | None], value: str) -> None:
        if self.kv_table != item.table or self.ws is None or not isinstance(self.last, str) or self.last != "kv":
            self.new_workstream("", item.where)
            self.preamble = []
        ws = self.ws
        assert ws is not None
        kind, extra = label
        if kind == "name":
            ws.name = value
        elif kind == "sponsor":
            ws.lead_sponsor = value
        elif kind == "objective":
            ws.label = extra
            ws.objective = value
        elif kind == "metric" and extra:
            ws.metrics[extra] = value
        elif kind == "risks":
            ws.risks_issues = value
        self.kv_table = item.table
        self.last = "kv"

    # -- rows -----------------------------------------------------------------------------
    def text_line(self, text: str, heading: bool, where: str) -> None:
        if len(self.plan_lines) < 3 and not self.actions and text:
            self.plan_lines.append(text)
        self.preamble.append((text, heading, where))
        if text:
            self.last = None

    def start_sheet(self, sheet: int | None) -> None:
        self.sheet, self.sheet_has_ws, self.sheet_title = sheet, False, None
        self.awaiting_header = sheet in self.header_sheets  # rows above it are titles, never actions
        self.last, self.group, self.preamble = None, None, []  # the sheet before has ended

    def sheet_workstream(self, where: str) -> None:
        """The workstream of a sheet with no section heading of its own."""
        title = self.sheet_title
        if not title or (self.plan_lines and title == self.plan_lines[0]):
            title = self.doc.sheets.get(self.sheet or 0) or title or f"Sheet {self.sheet}"
        self.new_workstream(title.rstrip(":"), where)

    def row(self, item: Item) -> None:
        if self.header_sheets and item.table != self.sheet:
            self.start_sheet(item.table)
        cells = item.cells
        texts = tuple(c.text for c in cells)  # ``Cell.text`` strips anew on each call: once per row
        filled = [(i, c) for i, c in enumerate(cells) if texts[i]]
        if not filled:
            if self.doc.grid:
                self.preamble.append(("", False, item.where))
                if self.last is not None:
                    self.spaced = self.last if isinstance(self.last, ParsedAction) else None
                    self.last = None
            return

        header = map_header(cells)
        if header is not None:
            if self.preamble or self.header is None:
                self.workstream_from_preamble()
                self.last = None
            if self.awaiting_header:
                self.awaiting_header = False
                if not self.sheet_has_ws:
                    self.sheet_workstream(item.where)
            self.header, self.header_table, self.header_where = header, item.table, item.where
            self.header_row = item.row
            self.header_columns = {}
            for index, name in sorted(header.items()):
                self.header_columns.setdefault(name, index)
            return
        if self.awaiting_header:
            # Above this sheet's header: its title, subtitle and "as at" rows.
            text = " ".join(texts[i] for i, _ in filled)
            if self.sheet_title is None and not is_key_row([text]):
                self.sheet_title = text
            self.text_line(text, False, item.where)
            return

        if len(filled) == 2 and filled[0][0] == 0 and filled[1][0] == 1:
            label = _kv_label(filled[0][1].text)
            if label is not None and (self.header is None or item.table != self.header_table):
                self.key_value(item, label, filled[1][1].text)
                return

        if self.header is None:
            # Before any header: a spreadsheet's title rows, or stray text in a Word table.
            self.text_line(" ".join(c.text for _, c in filled), False, item.where)
            return
        self.table_row(item, filled, texts)

    def table_row(self, item: Item, filled: list[tuple[int, Cell]], texts: tuple[str, ...]) -> None:
        assert self.header is not None
        values: dict[str, list[Cell]] = {}
        unmapped: list[str] = []
        for i, cell in filled:
            name = self.header.get(i)
            if name is None:
                unmapped.append(texts[i])
                continue
            values.setdefault(name, []).append(cell)
        if "status" not in values:  # a status shown only as the colour of an empty cell
            coloured = [item.cells[i] for i, name in self.header.items()
                        if name == "status" and i < len(item.cells) and item.cells[i].fill]
            if coloured:
                values["status"] = coloured[:1]
        has_ref_col = "ref" in self.header.values()

        if not values.get("owners") and not values.get("due") and is_key_row([texts[i] for i, _ in filled]):
            # A colour key, a totals row, a "last updated" line or a footnote under the table.
            self.skip_key_row(item, [texts[i] for i, _ in filled])
            return
        if self.table_fragment(item, values, filled, texts):
            return

        if len(filled) == 1 and not values.get("ref"):
            text = filled[0][1].text
            if filled[0][0] == min(self.header) or "title" in values or "description" in values:
                m = GROUP_RE.match(text)
                if m and "\n" not in m.group("ref"):
                    self.start_group(m.group("ref"), m.group("rest"), item.where)
                    return
            if isinstance(self.last, ParsedGroup) and self.last.description is None:
                self.last.description = text
                return
            if isinstance(self.last, ParsedAction):
                self.continue_action(values, unmapped, item)
                return
            if self.last == "dup":
                self.warn(item.where, f"skipped: continues a duplicated row ({text[:60]!r})")
                return
            # Text between tables in a spreadsheet: a section title, its outcomes.
            self.text_line(text, False, item.where)
            return

        ref_text = values.get("ref")
        has_title = bool(values.get("title"))
        others = set(values) - {"ref", "title"}
        is_new = bool(ref_text) or (has_title and (others or not has_ref_col))
        if not is_new:
            spacer = (self.last is None and self.spaced is not None and self.actions and self.spaced is self.actions[-1]
                      and len(filled) >= 2 and all(not text for text, _, _ in self.preamble))
            if spacer:  # a blank spacer row inside the table: the rows after it still continue the action
                self.last = self.spaced
            if isinstance(self.last, ParsedAction):
                self.continue_action(values, unmapped, item)
            elif self.last == "dup":
                self.warn(item.where, "skipped: continues a duplicated row")
            else:
                shown = "; ".join(c.text for _, c in filled)[:80]
                self.warn(item.where, f"row has no action text or ref and no action above it; not imported: {shown!r}")
            return

        signature = texts
        if signature in self.seen_rows:
            self.warn(item.where, f"skipped: exact duplicate of {self.seen_rows[signature]}")
            self.last = "dup"
            return
        self.seen_rows[signature] = item.where

        if self.header_sheets and not self.sheet_has_ws and not values.get("workstream"):
            self.sheet_workstream(item.where)  # a sheet continuing the one before, under its header
        ws = self.ws
        group = self.group
        if values.get("workstream"):
            ws = self.workstream_named(values["workstream"][0].text, item.where)
        if values.get("group"):
            group = self.group_for_cell(values["group"][0].text, ws, item.where)
        action = ParsedAction(where=item.where, fields=values, workstream=ws, group=group, position=len(self.actions),
                              table=item.table, row=item.row, header_row=self.header_row,
                              columns=self.header_columns)
        if unmapped:
            action.fields.setdefault("description", []).extend(Cell(t) for t in unmapped)
        self.finish_actions()
        self.actions.append(action)
        self.preamble = []
        self.last = action

    def skip_key_row(self, item: Item, texts: list[str]) -> None:
        """Skip a key/legend row; a run of them is reported once, at its first row."""
        shown = " | ".join(t.replace("\n", " ") for t in texts)[:60]
        if self.key_rows is not None and self.key_rows[0] == item.table:
            self.key_rows[2].append(shown)
            index, rows = self.key_rows[1], self.key_rows[2]
            first = self.warnings[index]
            self.warnings[index] = ImportWarning(first.where, f"skipped a key or note, not actions ({len(rows)} rows): "
                                                 + "; ".join(repr(r) for r in rows[:6]) + ("; …" if len(rows) > 6 else ""))
        else:
            self.warn(item.where, f"skipped a key or note, not an action: {shown!r}")
            self.key_rows = (item.table, len(self.warnings) - 1, [shown])
        self.last = "key"

    def table_fragment(self, item: Item, values: dict[str, list[Cell]], filled: list[tuple[int, Cell]],
                       texts: tuple[str, ...]) -> bool:
        """A row of a Word table with no header of its own that does not read as an action (no
        action text of a sensible length, no owner, no date): a fragment, reported and skipped.
        Such tables are often words cut off a page (``sues /``, ``risks /``, ``amend``)."""
        if self.doc.grid or item.table == self.header_table or values.get("due"):
            return False
        action_text = " ".join(c.text for c in values.get("title", []))
        owner_text = " ".join(c.text for c in values.get("owners", []))
        # A cut-off word may land in the owner column ("amend"): a real owner is a role or a name.
        if len(action_text) >= FRAGMENT_MAX or len(owner_text) >= FRAGMENT_MAX:
            return False
        shown = " | ".join(texts[i].replace("\n", " ") for i, _ in filled)[:80]
        self.warn(item.where, f"skipped: table {item.table} has no header and this row does not read as an action "
                              f"(no owner or date, {len(action_text)} characters of action text): {shown!r}")
        self.last = "key"
        return True

    def continue_action(self, values: dict[str, list[Cell]], unmapped: list[str], item: Item) -> None:
        action = self.last
        assert isinstance(action, ParsedAction)
        for name, cells in values.items():
            action.fields.setdefault(name, []).extend(cells)
        if unmapped:
            action.fields.setdefault("description", []).extend(Cell(t) for t in unmapped)

    def start_group(self, ref: str, rest: str, where: str) -> None:
        ref = SPACES.sub("", ref) if ref.upper().startswith("R") and len(ref) < 12 else ref.strip()
        key = ref_key(ref)
        rest = SPACES.sub(" ", rest).strip()
        if key in self.group_by_ref:  # the same recommendation pasted again
            self.group = self.group_by_ref[key]
            self.last = self.group
            return
        title, description = split_group_text(rest)
        group = ParsedGroup(ref=ref, title=title or ref, where=where, workstream=self.ws,
                            description=description, position=len(self.groups))
        self.groups.append(group)
        self.group_by_ref[key] = group
        self.group = group
        self.last = group
        self.preamble = []

    def group_for_cell(self, text: str, ws: ParsedWorkstream | None, where: str) -> ParsedGroup:
        m = GROUP_RE.match(text)
        ref = SPACES.sub("", m.group("ref")) if m else text.strip()[:50]
        key = ref_key(ref)
        if key not in self.group_by_ref:
            rest = m.group("rest") if m else ""
            title, description = split_group_text(SPACES.sub(" ", rest).strip())
            group = ParsedGroup(ref=ref, title=title or ref, where=where, workstream=ws,
                                description=description, position=len(self.groups))
            self.groups.append(group)
            self.group_by_ref[key] = group
        return self.group_by_ref[key]

    def finish_actions(self) -> None:
        """Finish every action read so far: none of them can be continued by a later row."""
        for action in self.actions[self.finished:]:
            finish_action(action, self.finish_warnings, self.shared)
        self.finished = len(self.actions)

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(ImportWarning(where, message))

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> ParsedPlan:
        for item in self.doc.items:
            if item.is_row:
                self.row(item)
            else:
                self.text_line(item.text, item.heading, item.where)
        if self.header is None:
            raise ImportFileError(
                self.doc.path,
                "no header row found: expected a row naming columns such as "
                "'Action', 'Owner' / 'Lead Officer', 'Deadline' / 'Due Date'",
            )
        if not self.actions:
            raise ImportFileError(self.doc.path, f"found the header row ({self.header_where}) but no actions under it")
        return self.finish()

    def finish(self) -> ParsedPlan:
        used_ws = {id(a.workstream) for a in self.actions} | {id(g.workstream) for g in self.groups}
        workstreams = [ws for ws in self.workstreams if id(ws) in used_ws]
        for n, ws in enumerate(workstreams):
            ws.position = n
            if not ws.name:
                ws.name = ws.label or ws.objective or f"Workstream {n + 1}"
        self.finish_actions()
        self.warnings.extend(self.finish_warnings)
        assign_match_keys(self.actions, self.doc.path)
        title = self.doc.title or (self.plan_lines[0] if self.plan_lines else None)
        description = None
        if self.doc.kind == "docx":
            paras = [t for t, heading, _ in self._intro() if not heading]
            description = "\n".join(paras) or None
        return ParsedPlan(
            path=self.doc.path, title=title, description=description, workstreams=workstreams,
            groups=self.groups, actions=self.actions, warnings=self.warnings,
        )

    def _intro(self) -> list[tuple[str, bool, str]]:
        intro = []
        for item in self.doc.items:
            if item.is_row:
                break
            intro.append((item.text, item.heading, item.where))
        return intro


def split_group_text(text: str) -> tuple[str, str | None]:
    """``Targets Organisations signing up ...`` -> (``Targets``, ``Organisations signing up ...``).

    Recommendation rows often carry a short title and then the recommendation in one cell. The
    title is the run of capitalised words (and small joining words) before the first word that
    is followed by a lower-case word, which is where a sentence starts.
    """
    if len(text) <= 80:
        return text, None
    words = text.split(" ")
    joiners = {"and", "&", "of", "the", "in", "for", "to", "-", "–"}
    starters = {"That", "The", "This", "These", "Those", "We", "Our", "All"}

    def lower(word: str) -> bool:
        return word[:1].islower()

    cut = 0
    for i, word in enumerate(words[:-1]):
        nxt = words[i + 1]
        after = words[i + 2] if i + 2 < len(words) else ""
        if not (word[:1].isupper() or word.lower() in joiners):
            break
        if i > 0 and word[:1].isupper() and (
            word in starters
            or (lower(nxt) and nxt.lower() not in joiners)
            or (nxt.lower() in joiners and lower(after))
        ):
            cut = i
            break
        cut = i + 1
    if cut <= 0 or cut > 8:
        return text[:80].rsplit(" ", 1)[0] + "…", text
    return " ".join(words[:cut]), " ".join(words[cut:])


@dataclass(slots=True)
class Shared:
    """What finished actions share instead of each holding a copy: dates read from the same
    text (``ParsedDate`` is frozen), and owners split from the same owner text."""

    dates: dict[tuple[object, ...], ParsedDate] = field(default_factory=dict)
    owners: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def split_owners(self, text: str | None) -> list[str]:
        if not text:
            return []
        found = self.owners.get(text)
        if found is None:
            found = self.owners[text] = tuple(split_owners(text))
        return list(found)


def finish_action(action: ParsedAction, warnings: list[ImportWarning], shared: Shared | None = None) -> None:
    """Fill the action's values from its cells, then let go of the cells."""
    shared = shared or Shared()
    where = action.where
    ref = action.text("ref")
    if ref is not None:
        ref = SPACES.sub(" ", ref).strip()
        if NO_REF.match(ref):
            ref = None
    action.ref = ref
    title_text = action.text("title") or ""
    lines = [line.strip() for line in title_text.split("\n") if line.strip()]
    action.title = lines[0] if lines else (action.text("description") or "").split("\n")[0][:200]
    rest = "\n".join(lines[1:])
    description = action.text("description")
    if action.text("title") is None:
        description = "\n".join(description.split("\n")[1:]) if description else None
    action.description = "\n".join(x for x in (rest, description) if x) or None
    action.owners_text = action.text("owners")
    action.owners = shared.split_owners(action.owners_text)
    action.dependencies = action.text("dependencies")
    action.resources = action.text("resources")
    action.success_measures = action.text("success_measures")
    action.next_steps = action.text("next_steps")
    action.progress = action.text("progress")
    status_text = action.text("status")
    fill = next((c.fill for c in action.fields.get("status", ()) if c.fill), None)
    if status_text:
        action.status = read_status(status_text)  # text always wins over colour
    if action.status is None and fill is not None:
        action.status = status_from_colour(fill)
        if action.status is None:
            warnings.append(ImportWarning(f"{where} (Status)", f"the status cell is coloured #{fill}, which is not "
                                          "close to red, amber, green or blue; left unknown"))
    elif action.status is None and status_text:
        warnings.append(ImportWarning(f"{where} (Status)", f"could not read status {status_text!r}; left unknown"))
    action.start = _date_field(action, "start", warnings, shared)
    due = _date_field(action, "due", warnings, shared)
    extra = _date_field(action, "key_dates", warnings, shared) if action.fields.get("key_dates") else None
    if extra is not None and extra.end is not None:
        from storage.dates import KeyDate

        more = (KeyDate(extra.end, extra.raw),) + extra.key_dates
        due = ParsedDate(
            raw=due.raw, start=due.start, end=due.end, precision=due.precision, recurring=due.recurring,
            recurrence=due.recurrence, key_dates=due.key_dates + more, warning=due.warning,
        )
    action.due = due
    action.fields.clear()


def _date_field(action: ParsedAction, name: str, warnings: list[ImportWarning], shared: Shared) -> ParsedDate:
    cells = action.fields.get(name, [])
    real = [(c, text) for c in cells if c.value is not None and (text := c.text)]
    if len(real) == 1 and isinstance(real[0][0].value, (dt.date, dt.datetime)):
        value, number_format = real[0][0].value, real[0][0].number_format
        key: tuple[object, ...] = ("cell", type(value), value, number_format)
        parsed = shared.dates.get(key)
        if parsed is None:
            parsed = shared.dates[key] = parse_when(value, number_format=number_format)
    else:
        text = " ".join(t for _, t in real) if real else None
        parsed = shared.dates.get(("text", text))
        if parsed is None:
            parsed = shared.dates[("text", text)] = parse_when(text)
    if parsed.warning:
        column = {"start": "Start Date", "due": "Due date", "key_dates": "Key dates"}[name]
        warnings.append(ImportWarning(f"{action.where} ({column})", parsed.warning))
    return parsed


def assign_match_keys(actions: list[ParsedAction], path: str) -> None:
    """How each action is found again on the next import; a repeated ref is an error."""
    by_key: dict[str, ParsedAction] = {}
    for action in actions:
        if action.ref:
            key = "ref:" + ref_key(action.ref)
            if key in by_key:
                first = by_key[key]
                raise ImportFileError(
                    path,
                    f"{action.where}: ref {action.ref!r} is already used by {first.where} "
                    "for a different action; give each action its own ref",
                )
        else:
            group = action.group.ref_key if action.group else ""
            base = f"title:{group}:{norm_key(action.title)}"[:380]
            key, n = base, 1
            while key in by_key:
                n += 1
                key = f"{base}#{n}"
        by_key[key] = action
        action.match_key = key


def parse_document(doc: Document) -> ParsedPlan:
    return _Parser(doc).run()
