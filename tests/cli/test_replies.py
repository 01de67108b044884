"""``chaser replies``: what came in and what became of it, for the EDI lead and for scripts."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

FIELDS = ["id", "received_at", "via", "from", "outcome", "refs", "status", "note", "due", "message_id", "detail"]


def test_every_update_is_listed_with_its_outcome_and_a_refusal_is_kept(chaser: Chaser, tmp_path: Path) -> None:
    chaser("import", str(LAMBETH))
    chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"],
        ["Priya Shah", "priya.shah@lambeth.example", "HR Business Partner"],
        ["Sam Other", "sam@lambeth.example", ""],
    ])))
    assert "No replies yet." in chaser("replies").stdout
    chaser("update", "CP1", "--status", "A", "--note", "Guidance drafted", "--due", "June 2023",
           "--by", "priya.shah@lambeth.example")
    chaser("update", "CP1", "--status", "G", "--by", "sam@lambeth.example", expect=2)
    chaser("update", "CP1", "--due", "31/12/9999", "--by", "priya.shah@lambeth.example", expect=2)

    listed = json.loads(chaser("replies", "--format", "json").stdout)

    assert [list(r) for r in listed] == [FIELDS] * 3
    applied, refused, unclear = listed
    assert {k: applied[k] for k in ("via", "from", "outcome", "refs", "status", "note", "due", "message_id", "detail")} \
        == {"via": "cli", "from": "priya.shah@lambeth.example", "outcome": "applied", "refs": ["CP1"],
            "status": "amber", "note": "Guidance drafted", "due": "June 2023", "message_id": None, "detail": None}
    assert (refused["outcome"], refused["from"]) == ("not_allowed", "sam@lambeth.example")
    assert "may not update CP1" in refused["detail"]
    assert unclear["outcome"] == "unclear" and "not a deadline" in unclear["detail"]
    only = json.loads(chaser("replies", "--outcome", "not_allowed", "--format", "json").stdout)
    assert [r["id"] for r in only] == [refused["id"]]
    table = chaser("replies").stdout
    assert "3 replies" in table and "not_allowed" in table and "Amber" in table
    shown = json.loads(chaser("show", "CP1", "--format", "json").stdout)
    assert [h["new_status"] for h in shown["history"]] == ["amber"]  # only the applied one changed anything
