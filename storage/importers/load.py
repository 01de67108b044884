"""Write a parsed plan into the tracker: create what is new, update only what changed.

One file is one transaction: any error rolls everything back. Actions are found again by ref
(``HW 3`` and ``HW3`` are the same), or by group and title when the plan has no refs. A status,
progress note or due date that changed in the file since the last import is recorded through
``record_update`` (channel ``import``), so the history keeps both what the file said and what
owners replied; a re-import of an unchanged file records nothing and cannot undo a reply.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, selectinload

from storage.db import session_factory
from storage.importers.parse import (
    ImportWarning,
    ParsedAction,
    ParsedPlan,
    parse_document,
    ref_key,
)
from storage.importers.reading import read_document
from storage.models import CHECK_NOW, Action, ActionGroup, ActionOwner, Plan, StatusUpdate, Workstream, utcnow
from storage.people import get_or_create_roles, role_key
from storage.updates import current_states, record_update

Progress = Callable[[int, int], None]


@dataclass
class ImportResult:
    plan: str
    file: str
    workstreams: int
    groups: int
    actions: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False
    warnings: list[ImportWarning] = field(default_factory=list)
    created_refs: list[str] = field(default_factory=list)
    updated_refs: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "file": self.file,
            "workstreams": self.workstreams,
            "groups": self.groups,
            "actions": self.actions,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "dry_run": self.dry_run,
            "warnings": [{"where": w.where, "message": w.message} for w in self.warnings],
        }


def import_plan_file(
    engine: Engine,
    path: str | Path,
    *,
    plan_name: str | None = None,
    timezone: str = "Europe/London",
    dry_run: bool = False,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Read, check and store one plan file; raises ``ImportFileError`` before writing anything."""
    parsed = parse_document(read_document(path))
    name = (plan_name or parsed.title or Path(path).stem).strip()
    with session_factory(engine)() as session:
        with session.begin():
            result = apply_plan(session, parsed, name, timezone=timezone, now=now or utcnow(), progress=progress)
            result.dry_run = dry_run
            if dry_run:
                session.rollback()
    return result


def _fields(action: ParsedAction, workstream_id: int | None, group_id: int | None) -> dict[str, Any]:
    assert action.due is not None and action.start is not None
    return {
        "workstream_id": workstream_id,
        "group_id": group_id,
        "title": action.title,
        "description": action.description,
        "owners_text": action.owners_text,
        "dependencies": action.dependencies,
        "resources": action.resources,
        "success_measures": action.success_measures,
        "next_steps": action.next_steps,
        "start_date": action.start.start,
        "start_text": action.start.raw or None,
        "due_date": action.due.end,
        "due_precision": action.due.precision,
        "due_text": action.due.raw or None,
        "recurring": action.due.recurring,
        "recurrence": action.due.recurrence,
        "key_dates": [{"date": k.date.isoformat(), "text": k.text} for k in action.due.key_dates],
    }


# Bookkeeping that moves when rows are inserted above; refreshed but not counted as a change.
QUIET_FIELDS = ("position", "source")


def apply_plan(
    session: Session,
    parsed: ParsedPlan,
    name: str,
    *,
    timezone: str,
    now: dt.datetime,
    progress: Progress | None = None,
) -> ImportResult:
    by_text = f"import: {Path(parsed.path).name}"
    plan = session.scalar(select(Plan).where(Plan.name == name))
    if plan is None:
        plan = Plan(name=name, timezone=timezone, created_at=now)
        session.add(plan)
    plan.source_file = str(parsed.path)
    plan.imported_at = now
    if parsed.description and plan.description != parsed.description:
        plan.description = parsed.description
    session.flush()

    ws_ids: dict[int, int] = {}
    existing_ws = {w.key: w for w in session.scalars(select(Workstream).where(Workstream.plan_id == plan.id))}
    for pws in parsed.workstreams:
        ws = existing_ws.get(pws.key)
        if ws is None:
            ws = Workstream(plan_id=plan.id, key=pws.key)
            session.add(ws)
            existing_ws[pws.key] = ws
        for attr, value in (
            ("name", pws.name), ("label", pws.label), ("lead_sponsor", pws.lead_sponsor),
            ("objective", pws.objective), ("metrics", dict(pws.metrics)), ("risks_issues", pws.risks_issues),
            ("position", pws.position),
        ):
            if getattr(ws, attr) != value:
                setattr(ws, attr, value)
    session.flush()
    for pws in parsed.workstreams:
        ws_ids[id(pws)] = existing_ws[pws.key].id

    group_ids: dict[int, int] = {}
    existing_groups = {g.ref_key: g for g in session.scalars(select(ActionGroup).where(ActionGroup.plan_id == plan.id))}
    for pg in parsed.groups:
        group = existing_groups.get(pg.ref_key)
        if group is None:
            group = ActionGroup(plan_id=plan.id, ref_key=pg.ref_key)
            session.add(group)
            existing_groups[pg.ref_key] = group
        wanted = {
            "ref": pg.ref, "title": pg.title, "description": pg.description, "position": pg.position,
            "workstream_id": ws_ids.get(id(pg.workstream)) if pg.workstream else None,
        }
        for attr, value in wanted.items():
            if getattr(group, attr) != value:
                setattr(group, attr, value)
    session.flush()
    for pg in parsed.groups:
        group_ids[id(pg)] = existing_groups[pg.ref_key].id

    roles = get_or_create_roles(session, [o for a in parsed.actions for o in a.owners])
    existing = {
        a.match_key: a
        for a in session.scalars(
            select(Action).where(Action.plan_id == plan.id).options(selectinload(Action.owners).selectinload(ActionOwner.role))
        )
    }
    states = current_states(session, existing.values())
    used_refs = {a.ref_key for a in existing.values()}
    result = ImportResult(
        plan=plan.name, file=str(parsed.path), workstreams=len(parsed.workstreams),
        groups=len(parsed.groups), actions=len(parsed.actions), warnings=list(parsed.warnings),
    )
    total = len(parsed.actions)
    new_actions: list[tuple[dict[str, Any], ParsedAction, list[int]]] = []
    for n, pa in enumerate(parsed.actions, start=1):
        wanted = _fields(
            pa,
            ws_ids.get(id(pa.workstream)) if pa.workstream else None,
            group_ids.get(id(pa.group)) if pa.group else None,
        )
        owner_roles = [roles[role_key(o)] for o in pa.owners]
        action = existing.pop(pa.match_key, None)
        if action is None:
            ref = pa.ref or _generated_ref(pa, used_refs)
            if ref_key(ref) in used_refs:
                # A ref the file now gives to a new action was generated for another one earlier.
                ref = _generated_ref(pa, used_refs)
            used_refs.add(ref_key(ref))
            row = dict(
                plan_id=plan.id, ref=ref, ref_key=ref_key(ref), ref_generated=pa.ref is None,
                match_key=pa.match_key, position=pa.position, source=pa.where,
                created_at=now, updated_at=now, file_status=pa.status, file_progress=pa.progress,
                next_check_at=CHECK_NOW, **wanted,
            )
            new_actions.append((row, pa, [r.id for r in owner_roles]))
            result.created += 1
            result.created_refs.append(ref)
        else:
            changed = _update_action(session, action, pa, wanted, owner_roles, states[action.id].status, by_text, now)
            if changed:
                result.updated += 1
                result.updated_refs.append(action.ref)
            else:
                result.unchanged += 1
        if progress is not None and (n % 250 == 0 or n == total):
            progress(n, total)

    _insert_new(session, new_actions, by_text, now)
    for action in sorted(existing.values(), key=lambda a: a.position):
        result.warnings.append(
            ImportWarning("tracker", f"{action.ref} is in the tracker but not in this file; left as it is")
        )
    session.flush()
    return result


def _insert_new(
    session: Session, new_actions: list[tuple[dict[str, Any], ParsedAction, list[int]]], by_text: str, now: dt.datetime
) -> None:
    """Bulk-insert new actions, their owners and the statuses the file gives them.

    Core inserts rather than ORM objects: a 10,000-action plan is stored in a fraction of the
    time. A new action has no history to fold, so its first update's old status is unknown.
    """
    if not new_actions:
        return
    session.execute(insert(Action), [row for row, _, _ in new_actions])
    # Read the new ids back by match key instead of INSERT ... RETURNING: SQLAlchemy splices
    # batched RETURNING results together in quadratic time, which dominated big imports.
    plan_id = new_actions[0][0]["plan_id"]
    found = session.execute(select(Action.match_key, Action.id).where(Action.plan_id == plan_id))
    id_by_key = {key: action_id for key, action_id in found}
    ids = [id_by_key[row["match_key"]] for row, _, _ in new_actions]
    owners = [
        {"action_id": action_id, "role_id": role_id, "position": i}
        for action_id, (_, _, role_ids) in zip(ids, new_actions)
        for i, role_id in enumerate(role_ids)
    ]
    if owners:
        session.execute(insert(ActionOwner), owners)
    updates = [
        {
            "action_id": action_id, "created_at": now, "channel": "import", "by_person_id": None, "by_text": by_text,
            "old_status": None, "new_status": pa.status, "note": pa.progress, "revised_due": None,
            "revised_due_precision": None, "revised_due_text": None,
        }
        for action_id, (_, pa, _) in zip(ids, new_actions)
        if pa.status is not None or pa.progress
    ]
    if updates:
        session.execute(insert(StatusUpdate), updates)


def _generated_ref(pa: ParsedAction, used: set[str]) -> str:
    """``R1.A-1``, ``R1.A-2`` under a recommendation; ``A1``, ``A2`` in a plan with no refs."""
    base = f"{pa.group.ref}-" if pa.group else "A"
    n = 1
    while ref_key(f"{base}{n}") in used:
        n += 1
    return f"{base}{n}"


def _update_action(
    session: Session,
    action: Action,
    pa: ParsedAction,
    wanted: dict[str, Any],
    owner_roles: list[Any],
    status_now: str | None,
    by_text: str,
    now: dt.datetime,
) -> bool:
    changed = False
    due_changed = (action.due_date, action.due_text) != (wanted["due_date"], wanted["due_text"])
    for attr, value in wanted.items():
        if getattr(action, attr) != value:
            setattr(action, attr, value)
            changed = True
    if (action.position, action.source) != (pa.position, pa.where):
        action.position, action.source = pa.position, pa.where
    if [o.role_id for o in action.owners] != [r.id for r in owner_roles]:
        action.owners = [ActionOwner(role=r, position=i) for i, r in enumerate(owner_roles)]
        session.flush()
        changed = True
    assert pa.due is not None
    status = pa.status if pa.status is not None and pa.status != action.file_status else None
    note = pa.progress if pa.progress and pa.progress != action.file_progress else None
    if status is not None or note or due_changed:
        record_update(
            session, action, channel="import", by_text=by_text, status=status, note=note,
            due=pa.due if due_changed else None, at=now, previous_status=status_now,
        )
        changed = True
    if pa.status is not None:
        action.file_status = pa.status
    if pa.progress:
        action.file_progress = pa.progress
    if changed:
        action.updated_at = now
        action.next_check_at = CHECK_NOW  # what is due may have changed: the sweep looks again
    return changed
