"""Generate large, realistic plan files for the import benchmark.

The shapes copy the samples' habits: Word theme tables before each objective's action table,
header rows repeated at page breaks, `/`-separated role owners and month deadlines; an Excel
sheet with sections, recommendation group rows and month-formatted date cells.
"""
from __future__ import annotations

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
