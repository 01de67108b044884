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
