"""Why a nudge goes out, as the outbox stores it: JSON-safe, small, and read back the same."""
from __future__ import annotations

import datetime as dt
import json

from storage.reasons import Why, why_of


def test_a_why_survives_the_trip_through_json_with_every_field_set() -> None:
    why = Why("review_missing", due=dt.date(2026, 12, 18), working_days=-3, days_since_update=40, never_updated=True,
              recurring=True, board="EDI Board", meeting=dt.date(2027, 1, 5), owners=("Priya Shah", "Sam Ade"),
              away=(("Sam Ade", dt.date(2027, 1, 8)),), unowned=True, roles=("CSEDIWG",))
    stored = json.loads(json.dumps(why.to_json()))
    assert Why.from_json(stored) == why


def test_only_the_facts_that_are_set_are_stored() -> None:
    assert Why("due", due=dt.date(2026, 12, 18), working_days=0).to_json() == {
        "rule": "due", "due": "2026-12-18", "working_days": 0}  # 0 is a fact: due today
    assert Why("stale", days_since_update=43, recurring=True).to_json() == {
        "rule": "stale", "days_since_update": 43, "recurring": True}


def test_a_stored_why_with_keys_this_version_does_not_know_is_still_read() -> None:
    assert Why.from_json({"rule": "due", "due": "2026-12-18", "working_days": 0, "tone": "gentle"}) == Why(
        "due", due=dt.date(2026, 12, 18), working_days=0)


def test_an_item_queued_before_reasons_were_data_gives_back_its_sentence() -> None:
    old = {"ref": "HW 3", "rule": "due", "reason": "Due today (Fri 18 December 2026)."}
    assert why_of(old) == "Due today (Fri 18 December 2026)."
    new = {"ref": "HW 3", "rule": "due", "why": {"rule": "due", "due": "2026-12-18", "working_days": 0}}
    assert why_of(new) == Why("due", due=dt.date(2026, 12, 18), working_days=0)
