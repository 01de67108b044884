"""Generate large, realistic plan files for the import benchmark.

The shapes copy the samples' habits: Word theme tables before each objective's action table,
header rows repeated at page breaks, `/`-separated role owners and month deadlines; an Excel
sheet with sections, recommendation group rows and month-formatted date cells; a flat CSV
export of a tracker with status and progress columns.
"""
from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import docx
import openpyxl

ROLES = [
    "HR Business Partner", "CS EDI Lead", "Head of L&D", "Quality Assurance Lead", "Director of Public Health",
    "Health & Wellbeing Board", "Children & Families Executive", "Comms Lead", "Policy and Partnership Lead",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
VERBS = ["Implement", "Develop", "Review", "Deliver", "Publish", "Audit", "Promote", "Embed", "Establish"]
THINGS = ["feedback process", "mentoring scheme", "equality data campaign", "recruitment checklist",
          "wellbeing survey", "reverse mentoring", "inclusive leadership course", "pay gap report"]


def _title(rng: random.Random, n: int) -> str:
    return f"{rng.choice(VERBS)} the {rng.choice(THINGS)} for cohort {n} and report progress to the board"


def _owners(rng: random.Random) -> str:
    return "/ ".join(rng.sample(ROLES, rng.randint(1, 3)))


def write_docx(path: Path, actions: int, per_objective: int = 500, per_table: int = 25, seed: int = 1) -> Path:
    rng = random.Random(seed)
    document = docx.Document()
    document.add_heading("Generated EDI Action Plan", level=0)
    document.add_paragraph("Reviewed quarterly by the EDI Board.")
    header = ["No.", "Action", "Lead Officer", "Dependencies", "Resource implications", "Success measures", "Deadline"]
    n = 0
    objective = 0
    while n < actions:
        objective += 1
        theme = document.add_table(rows=3, cols=2)
        for r, (label, value) in enumerate(
            [("Race and Diversity Report Theme", f"Theme {objective}"), ("Lead Sponsor", rng.choice(ROLES)),
             (f"Objective {objective}", f"Objective text {objective}")]
        ):
            theme.cell(r, 0).text, theme.cell(r, 1).text = label, value
        in_objective = 0
        while in_objective < per_objective and n < actions:
            rows = min(per_table, per_objective - in_objective, actions - n)
            table = document.add_table(rows=rows + 1, cols=len(header))
            cells = table._cells  # one pass over the grid: python-docx's cell() is quadratic
            width = len(header)
            for c, text in enumerate(header):
                cells[c].text = text
            for r in range(1, rows + 1):
                n += 1
                in_objective += 1
                values = [f"OB{objective}.{in_objective}", _title(rng, n), _owners(rng), "Corporate HR", "Officer time",
                          "Measure one\nMeasure two", f"{rng.choice(MONTHS)} {rng.randint(2023, 2027)}"]
                for c, text in enumerate(values):
                    cells[r * width + c].text = text
    document.save(path)
    return path


def write_xlsx(path: Path, actions: int, per_group: int = 5, per_section: int = 2500, seed: int = 1) -> Path:
    rng = random.Random(seed)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Action Plan")
    from openpyxl.cell import WriteOnlyCell

    def month_cell(value: dt.datetime) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = "mmm-yy"
        return cell

    ws.append(["Generated Commission Action Plan"])
    ws.append([])
    n = 0
    section = 0
    group = 0
    while n < actions:
        section += 1
        ws.append([f"Section {section}"])
        ws.append(["Outcomes:"])
        ws.append(["- Better outcomes for residents"])
        ws.append(["Action", "Resource", "Start Date", "Due Date", "Owner"])
        in_section = 0
        while in_section < per_section and n < actions:
            group += 1
            ws.append([f"R{group}.A. Recommendation {group}"])
            ws.append([f"Organisations should do more about item {group}."])
            for _ in range(min(per_group, actions - n)):
                n += 1
                in_section += 1
                start = dt.datetime(rng.randint(2021, 2024), rng.randint(1, 12), 1)
                if rng.random() < 0.15:
                    due: object = "On-going"
                elif rng.random() < 0.5:
                    due = month_cell(dt.datetime(start.year + 1, rng.randint(1, 12), 1))
                else:
                    due = f"{MONTHS[rng.randint(0, 11)][:3]}-{rng.randint(22, 27)}"
                ws.append([_title(rng, n), "Existing Resources", month_cell(start), due, rng.choice(ROLES)])
        ws.append([])
    wb.save(path)
    return path


# A big council tracker's owners: a few hundred job titles in services and directorates.
SERVICES = ["Adult Social Care", "Children's Services", "Public Health", "Housing", "Corporate HR", "Finance",
            "Legal", "Communications", "Libraries", "Planning", "Highways", "Waste", "Procurement", "ICT",
            "Revenues and Benefits", "Education", "Leisure", "Regeneration", "Community Safety", "Customer Services"]
POSTS = ["Director", "Head of Service", "Service Manager", "Team Manager", "EDI Lead", "Business Partner",
         "Policy Officer", "Programme Manager", "Project Officer", "Data Analyst", "Workforce Lead",
         "Commissioning Manager", "Quality Lead", "Engagement Officer", "Improvement Lead"]
CSV_ROLES = [f"{service} {post}" for service in SERVICES for post in POSTS]  # 300 roles
PREFIXES = ["HW", "CP", "WF", "ED", "CS", "HS", "PH", "LD"]
DONE = ["implemented", "developed", "reviewed", "delivered", "published", "audited", "promoted", "embedded"]
STATUSES = ["G", "Green", "A", "Amber", "R", "Red", "Complete", "Not started", "On track", ""]
FILLER = ("so that residents and staff from every background see fair outcomes, with the evidence "
          "reviewed by the EDI Board each quarter and shared with partners across the borough and "
          "the wider voluntary sector network")


def _csv_deadline(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.10:
        return "On-going"
    if roll < 0.15:
        return "TBC"
    if roll < 0.35:
        year = rng.randint(23, 27)
        return f"Q{rng.randint(1, 4)} {year}/{year + 1}"
    if roll < 0.55:
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2023, 2027)}"
    return f"{rng.choice(MONTHS)} {rng.randint(2023, 2027)}"


def _sized(text: str, length: int) -> str:
    """The text padded with plan-like words to about ``length`` characters, cut at a word."""
    text = f"{text} {FILLER}"
    while len(text) < length:
        text = f"{text} {FILLER}"
    return text[:length].rsplit(" ", 1)[0]


def write_csv(path: Path, actions: int, seed: int = 1) -> Path:
    """A tracker exported as CSV: one header row, then one row per action, no sections.

    Ref, a ~200-character action, one to three `/`-separated owners out of 300 roles, a deadline
    in the forms councils write (month, quarter, day, `On-going`, `TBC`), a RAG status and, on
    two thirds of the rows, a ~150-character progress note.
    """
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["Ref", "Action", "Owner", "Deadline", "Status", "Progress"])
        for n in range(1, actions + 1):
            ref = f"{PREFIXES[n % len(PREFIXES)]} {n}"
            progress = ""
            if rng.random() < 0.67:
                progress = _sized(f"Update {n}: {rng.choice(DONE)} the {rng.choice(THINGS)} with "
                                  f"{rng.randint(2, 40)} teams;", rng.randint(120, 180))
            out.writerow([
                ref, _sized(_title(rng, n), rng.randint(180, 220)), "/ ".join(rng.sample(CSV_ROLES, rng.randint(1, 3))),
                _csv_deadline(rng), rng.choice(STATUSES), progress,
            ])
    return path
