"""Big plans: stored a chunk at a time, with the same results as a small plan."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage.importers.load import CHUNK, import_plan_file
from storage.models import CHECK_NOW, Action, ActionOwner, StatusUpdate
from storage.updates import current_states
from tests.importers.makers import write_csv

HEADER = ["Ref", "Action", "Owner", "Deadline", "Status", "Progress"]
ROWS = CHUNK + 1500  # the last rows fall in a second chunk
STATUSES = ["G", "A", "R", "Complete", ""]


def plan_rows(n: int = ROWS) -> list[list[str]]:
    return [HEADER] + [
        [
            f"HW {i}", f"Deliver the wellbeing survey for cohort {i} and report to the board",
            "HR Business Partner / Comms Lead" if i % 3 else "Head of L&D",
            ["March 2025", "Q3 24/25", "On-going", "31/01/2026"][i % 4], STATUSES[i % 5],
            f"Cohort {i} briefed" if i % 2 else "",
        ]
        for i in range(1, n + 1)
    ]


def counts(session: Session) -> tuple[int, int, int]:
    return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Action, ActionOwner, StatusUpdate))  # type: ignore[return-value]


def by_ref(session: Session, ref: str) -> Action:
    return session.scalars(select(Action).where(Action.ref == ref)).one()


def test_a_reimport_of_an_unchanged_multi_thousand_row_csv_records_nothing(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "plan.csv", plan_rows())
    seen: list[tuple[int, int]] = []
    first = import_plan_file(engine, path, plan_name="Plan", progress=lambda done, total: seen.append((done, total)))
    assert (first.created, first.updated, first.warnings) == (ROWS, 0, [])
    assert seen[-1] == (ROWS, ROWS) and len(seen) == -(-ROWS // 250)
    before = counts(session)
    two_owners = sum(1 for i in range(1, ROWS + 1) if i % 3)
    with_history = sum(1 for row in plan_rows()[1:] if row[4] or row[5])
    assert before == (ROWS, ROWS + two_owners, with_history)
    stamp = by_ref(session, f"HW {ROWS}").updated_at

    later = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    again = import_plan_file(engine, path, plan_name="Plan", now=later)
    assert (again.created, again.updated, again.unchanged, again.warnings) == (0, 0, ROWS, [])
    session.expire_all()
    assert counts(session) == before
    assert by_ref(session, f"HW {ROWS}").updated_at == stamp


def test_edits_anywhere_in_a_big_file_update_only_those_actions(engine: Engine, session: Session, tmp_path: Path) -> None:
    rows = plan_rows()
    path = write_csv(tmp_path / "plan.csv", rows)
    import_plan_file(engine, path, plan_name="Plan")
    before = counts(session)
    edited = ROWS - 2  # in the second chunk
    assert rows[2][0] == "HW 2" and rows[2][4] == "R" and rows[edited][0] == f"HW {edited}"
    rows[2][4] = "G"                                   # status, first chunk
    rows[4][2] = "Head of L&D"                         # owners only
    rows[edited][3] = "December 2027"                  # due date, second chunk
    rows[edited][5] = "Survey moved to next year"      # and its note
    del rows[10]                                       # HW 10 is no longer in the file
    rows.append(["HW 99999", "Publish the pay gap report", "Comms Lead", "June 2026", "A", ""])
    write_csv(path, rows)

    result = import_plan_file(engine, path, plan_name="Plan")
    assert (result.created, result.updated, result.unchanged) == (1, 3, ROWS - 4)
    assert result.created_refs == ["HW 99999"]
    assert result.updated_refs == ["HW 2", "HW 4", f"HW {edited}"]
    assert [w.message for w in result.warnings] == ["HW 10 is in the tracker but not in this file; left as it is"]

    session.expire_all()
    hw2, hw4, late = by_ref(session, "HW 2"), by_ref(session, "HW 4"), by_ref(session, f"HW {edited}")
    history = session.scalars(select(StatusUpdate).where(StatusUpdate.action_id == hw2.id).order_by(StatusUpdate.id)).all()
    assert [(h.old_status, h.new_status) for h in history] == [(None, "red"), ("red", "green")]
    assert [o.role.name for o in hw4.owners] == ["Head of L&D"]
    state = current_states(session, [late])[late.id]
    assert (state.due, state.note) == (dt.date(2027, 12, 31), "Survey moved to next year")
    assert late.due_text == "December 2027" and late.file_progress == "Survey moved to next year"
    assert {a.next_check_at for a in (hw2, hw4, late)} == {CHECK_NOW}
    # One owner fewer on HW 4, the new action's owner, and four history rows: HW 2, the late
    # action's date and note in one, the new action's status, and HW 4's change of owners.
    actions, owners, updates = before
    assert counts(session) == (actions + 1, owners - 1 + 1, updates + 4)
    change = session.scalars(select(StatusUpdate.owners_change).where(StatusUpdate.action_id == hw4.id,
                                                                      StatusUpdate.owners_change.is_not(None))).one()
    assert change.endswith("→ Head of L&D")


def test_a_big_plan_without_refs_gets_numbered_refs_and_keeps_them(engine: Engine, session: Session, tmp_path: Path) -> None:
    rows = [["Action", "Owner"]] + [[f"Action number {i}", "Comms Lead"] for i in range(1, ROWS + 1)]
    path = write_csv(tmp_path / "plan.csv", rows)
    first = import_plan_file(engine, path, plan_name="Plan")
    assert first.created_refs[:2] == ["A1", "A2"] and first.created_refs[-1] == f"A{ROWS}"
    rows.insert(1, ["A brand new first action", "Comms Lead"])
    write_csv(path, rows)
    again = import_plan_file(engine, path, plan_name="Plan")
    assert (again.created, again.updated, again.unchanged) == (1, 0, ROWS)
    assert again.created_refs == [f"A{ROWS + 1}"]
    assert by_ref(session, "A1").title == "Action number 1"
