"""The one home of the status vocabulary: the names stored, and the words and letters shown.

The importer reads what plans write (``storage.importers.parse.read_status``); everything that
writes a status for a person — messages, the answer form, the exported plan, the CLI — takes
its words from here (STYLE.md item 18).
"""
from __future__ import annotations

STATUSES = ("not_started", "green", "amber", "red", "complete")
# How a status is written for people: "Green", and in plans that use letters "G".
STATUS_LABELS = {"green": "Green", "amber": "Amber", "red": "Red", "complete": "Complete", "not_started": "Not started"}
STATUS_LETTERS = {"green": "G", "amber": "A", "red": "R", "complete": "C", "not_started": "Not started"}
# (background, text colour) wherever a status is shown in colour (messages, answer buttons, board
# reports); every pair passes WCAG AA, and the word is always shown too.
STATUS_COLOURS = {
    "green": ("#00703c", "#ffffff"),
    "amber": ("#ffbf47", "#0b0c0c"),
    "red": ("#d4351c", "#ffffff"),
    "complete": ("#1d70b8", "#ffffff"),
}
PLAIN_COLOURS = ("#f3f2f1", "#0b0c0c")
