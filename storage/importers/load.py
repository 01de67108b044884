"""Write a parsed plan into the tracker: create what is new, update only what changed.

One file is one transaction: any error rolls everything back. Actions are found again by ref
(``HW 3`` and ``HW3`` are the same), or by group and title when the plan has no refs. A status,
progress note or due date that changed in the file since the last import is appended to the
action's history (channel ``import``, the row ``record_update`` would write), so the history
keeps both what the file said and what owners replied; a re-import of an unchanged file
records nothing and cannot undo a reply.

Actions are stored a chunk at a time with Core statements, compared against plain rows
selected by match key, never as ORM objects: a 250,000-action file is matched, compared and
written in bounded memory (``bench/csv_import_bench.py``).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ARRAY, Engine, String, Table, any_, bindparam, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from storage.dates import ParsedDate
from storage.db import id_in, session_factory
from storage.importers.parse import (
    ImportWarning,
    ParsedAction,
    ParsedPlan,
    parse_document,
    ref_key,
)
from storage.importers.reading import read_document
from storage.models import CHECK_NOW, Action, ActionGroup, ActionOwner, Plan, Role, StatusUpdate, Workstream, utcnow
from storage.people import get_or_create_roles, role_key
from storage.updates import clean_note, fold_history, note_cell

Progress = Callable[[int, int], None]

CHUNK = 5000  # actions matched, compared and written per round of statements


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


_FIELD_NAMES = (
    "workstream_id", "group_id", "title", "description", "owners_text", "dependencies", "resources",
    "success_measures", "next_steps", "start_date", "start_text", "due_date", "due_precision", "due_text",
    "recurring", "recurrence", "key_dates",
)


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

ACTIONS = Action.__table__
OWNERS = ActionOwner.__table__
UPDATES = StatusUpdate.__table__
# What a re-import compares: the columns ``_fields`` fills, and the file's last status and note.
COMPARED = ("id", "match_key", "ref", *_FIELD_NAMES, "file_status", "file_progress", *QUIET_FIELDS)


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

    # Only what holds an action from this file is stored and counted: a heading with nothing
    # under it (a title, a section left empty) creates no workstream and no group.
    used = {id(a.workstream) for a in parsed.actions if a.workstream is not None}
    used |= {id(a.group.workstream) for a in parsed.actions if a.group is not None and a.group.workstream is not None}
    workstreams = [w for w in parsed.workstreams if id(w) in used]
    holding = {id(a.group) for a in parsed.actions if a.group is not None}
    groups = [g for g in parsed.groups if id(g) in holding]
    empty_groups = [g for g in parsed.groups if id(g) not in holding]

    ws_ids: dict[int, int] = {}
    existing_ws = {w.key: w for w in session.scalars(select(Workstream).where(Workstream.plan_id == plan.id))}
    for pws in workstreams:
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
    for pws in workstreams:
        ws_ids[id(pws)] = existing_ws[pws.key].id

    group_ids: dict[int, int] = {}
    existing_groups = {g.ref_key: g for g in session.scalars(select(ActionGroup).where(ActionGroup.plan_id == plan.id))}
    for pg in groups:
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
    for pg in groups:
        group_ids[id(pg)] = existing_groups[pg.ref_key].id

    role_ids = _role_ids(session, parsed)
    result = ImportResult(
        plan=plan.name, file=str(parsed.path), workstreams=len(workstreams),
        groups=len(groups), actions=len(parsed.actions), warnings=list(parsed.warnings),
    )
    result.warnings += [ImportWarning(g.where, f"{g.ref} {g.title!r} has no actions under it; not stored")
                        for g in empty_groups]
    store = _Store(session, plan.id, by_text, now, result)
    total = len(parsed.actions)
    for start in range(0, total, CHUNK):
        chunk = parsed.actions[start:start + CHUNK]
        found = store.existing(chunk)
        for n, pa in enumerate(chunk, start=start + 1):
            wanted = _fields(
                pa,
                ws_ids.get(id(pa.workstream)) if pa.workstream else None,
                group_ids.get(id(pa.group)) if pa.group else None,
            )
            owner_ids = [role_ids[o] for o in pa.owners]
            row = found.get(pa.match_key)
            if row is None:
                store.new(pa, wanted, owner_ids)
            else:
                store.compare(row, pa, wanted, owner_ids)
            if progress is not None and (n % 250 == 0 or n == total):
                progress(n, total)
        store.write()

    matched = result.updated + result.unchanged
    in_tracker = session.scalar(select(func.count()).select_from(ACTIONS).where(ACTIONS.c.plan_id == plan.id)) or 0
    if in_tracker > matched + result.created:
        # Only when some are missing: read every key once, and name the ones the file lacks.
        in_file = {pa.match_key for pa in parsed.actions}
        missing = session.execute(
            select(ACTIONS.c.ref, ACTIONS.c.match_key).where(ACTIONS.c.plan_id == plan.id).order_by(ACTIONS.c.position)
        )
        for ref, match_key in missing:
            if match_key not in in_file:
                result.warnings.append(ImportWarning("tracker", f"{ref} is in the tracker but not in this file; left as it is"))
    return result


def _role_ids(session: Session, parsed: ParsedPlan) -> dict[str, int]:
    """Owner name as the file writes it -> role id (each distinct name keyed once, not per action)."""
    # In file order: the first spelling of a new role is the name it is created with.
    names = list(dict.fromkeys(o for a in parsed.actions for o in a.owners))
    roles = get_or_create_roles(session, names)
    return {name: roles[role_key(name)].id for name in names}


class _Store:
    """One chunk of actions at a time: look up the stored ones, compare, then write in bulk.

    Everything held is for the current chunk, except the refs already used (only read when
    the file has new actions, to give the ones without a ref a free one).
    """

    def __init__(self, session: Session, plan_id: int, by_text: str, now: dt.datetime, result: ImportResult) -> None:
        self.session = session
        self.plan_id = plan_id
        self.by_text = by_text
        self.now = now
        self.result = result
        self.used_refs: set[str] | None = None
        self.next_n: dict[str, int] = {}  # per generated-ref base: no free number below it
        self._clear()

    def _clear(self) -> None:
        self.new_rows: list[dict[str, Any]] = []
        self.new_owners: list[list[int]] = []
        self.new_history: list[ParsedAction] = []
        self.changed_rows: list[dict[str, Any]] = []
        self.moved_rows: list[dict[str, Any]] = []
        self.owner_changes: dict[int, list[int]] = {}
        self.owner_history: dict[int, tuple[list[int], list[int]]] = {}  # action -> (old, new) role ids
        self.history: list[tuple[int, str | None, str | None, ParsedAction | None]] = []  # id, status, note, due

    def existing(self, chunk: list[ParsedAction]) -> dict[str, Any]:
        """match key -> the stored row (the compared columns and ``owner_ids``) for this chunk."""
        keys = [pa.match_key for pa in chunk]
        rows = self.session.execute(
            select(*(ACTIONS.c[name] for name in COMPARED))
            .where(ACTIONS.c.plan_id == self.plan_id, self._key_in(keys))
        ).all()
        found = {row.match_key: dict(zip(COMPARED, row)) for row in rows}
        if found:
            owners: dict[int, list[int]] = {}
            by_id = [row["id"] for row in found.values()]
            for action_id, role_id in self.session.execute(
                select(OWNERS.c.action_id, OWNERS.c.role_id)
                .where(id_in(self.session, OWNERS.c.action_id, by_id)).order_by(OWNERS.c.action_id, OWNERS.c.position)
            ):
                owners.setdefault(action_id, []).append(role_id)
            for row in found.values():
                row["owner_ids"] = owners.get(row["id"], [])
        return found

    def _key_in(self, keys: list[str]) -> Any:
        # One array parameter on PostgreSQL instead of thousands (see ``storage.db.id_in``).
        if self.session.get_bind().dialect.name == "postgresql":
            return ACTIONS.c.match_key == any_(literal(keys, ARRAY(String)))
        return ACTIONS.c.match_key.in_(keys)

    def new(self, pa: ParsedAction, wanted: dict[str, Any], owner_ids: list[int]) -> None:
        used = self._used_refs()
        ref = pa.ref or self._generated_ref(pa)
        key = ref_key(ref)
        if key in used:
            # A ref the file now gives to a new action was generated for another one earlier.
            ref = self._generated_ref(pa)
            key = ref_key(ref)
        used.add(key)
        self.new_rows.append(dict(
            plan_id=self.plan_id, ref=ref, ref_key=key, ref_generated=pa.ref is None,
            match_key=pa.match_key, position=pa.position, source=pa.where,
            created_at=self.now, updated_at=self.now, file_status=pa.status, file_progress=pa.progress,
            next_check_at=CHECK_NOW, snoozed_until=None, **wanted,
        ))
        self.new_owners.append(owner_ids)
        self.new_history.append(pa)
        self.result.created += 1
        self.result.created_refs.append(ref)

    def _used_refs(self) -> set[str]:
        if self.used_refs is None:
            self.used_refs = set(self.session.scalars(select(ACTIONS.c.ref_key).where(ACTIONS.c.plan_id == self.plan_id)))
        return self.used_refs

    def _generated_ref(self, pa: ParsedAction) -> str:
        """``R1.A-1``, ``R1.A-2`` under a recommendation; ``A1``, ``A2`` in a plan with no refs."""
        used = self._used_refs()
        base = f"{pa.group.ref}-" if pa.group else "A"
        # Refs are only ever added, so the first free number never goes down: start from the
        # last one found rather than from 1 (a plan of 250,000 actions without refs is linear).
        n = self.next_n.get(base, 1)
        while ref_key(f"{base}{n}") in used:
            n += 1
        self.next_n[base] = n
        return f"{base}{n}"

    def compare(self, row: dict[str, Any], pa: ParsedAction, wanted: dict[str, Any], owner_ids: list[int]) -> None:
        changed = any(row[name] != value for name, value in wanted.items())
        due_changed = (row["due_date"], row["due_text"]) != (wanted["due_date"], wanted["due_text"])
        if row["owner_ids"] != owner_ids:
            self.owner_changes[row["id"]] = owner_ids
            self.owner_history[row["id"]] = (list(row["owner_ids"]), owner_ids)
            changed = True
        assert pa.due is not None
        status = pa.status if pa.status is not None and pa.status != row["file_status"] else None
        note = pa.progress if pa.progress and pa.progress != row["file_progress"] else None
        if status is not None or note or due_changed:
            self.history.append((row["id"], status, note, pa if due_changed else None))
            changed = True
        if changed:
            self.changed_rows.append({
                "b_id": row["id"], **wanted, "position": pa.position, "source": pa.where,
                "file_status": pa.status if pa.status is not None else row["file_status"],
                "file_progress": pa.progress if pa.progress else row["file_progress"],
                "updated_at": self.now,
                "next_check_at": CHECK_NOW,  # what is due may have changed: the sweep looks again
            })
            self.result.updated += 1
            self.result.updated_refs.append(row["ref"])
        else:
            if (row["position"], row["source"]) != (pa.position, pa.where):
                self.moved_rows.append({"b_id": row["id"], "position": pa.position, "source": pa.where})
            self.result.unchanged += 1

    def write(self) -> None:
        """This chunk's statements, in the transaction of the whole file."""
        session = self.session
        if self.changed_rows:
            session.execute(update(ACTIONS).where(ACTIONS.c.id == bindparam("b_id")), self.changed_rows)
        if self.moved_rows:
            session.execute(update(ACTIONS).where(ACTIONS.c.id == bindparam("b_id")), self.moved_rows)
        if self.owner_changes:
            session.execute(delete(OWNERS).where(id_in(session, OWNERS.c.action_id, list(self.owner_changes))))
            owners = [
                {"action_id": action_id, "role_id": role_id, "position": i}
                for action_id, role_ids in self.owner_changes.items()
                for i, role_id in enumerate(role_ids)
            ]
            if owners:
                self._insert(OWNERS, owners)
        history = []
        if self.owner_history:
            history += self._owner_rows()
        if self.history:
            # The status each change moves away from, as ``record_update`` would record it.
            folded = fold_history(session, [action_id for action_id, _, _, _ in self.history])
            for action_id, status, note, due_from in self.history:
                due = due_from.due if due_from is not None else None
                now = folded.get(action_id, {})
                # The file says what the tracker already says (a plan written back by chaser
                # export, then imported again): nothing new to record.
                if status is not None and status == now.get("status"):
                    status = None
                if note is not None and note in (now.get("note"), note_cell(now)):
                    note = None
                if due is not None and "due" in now and due.end == now["due"]:
                    due = None
                if status is None and note is None and due is None:
                    continue
                history.append(self._update_row(action_id, now.get("status"), status, note, due))
        if self.new_rows:
            history.extend(self._insert_new())
        if history:
            self._insert(UPDATES, history)
        self._clear()

    def _owner_rows(self) -> list[dict[str, Any]]:
        """One history row per action whose owners the file changed, saying from what to what."""
        ids = {role for old, new in self.owner_history.values() for role in (*old, *new)}
        names = {rid: name for rid, name in self.session.execute(select(Role.id, Role.name).where(Role.id.in_(ids)))}
        folded = fold_history(self.session, list(self.owner_history))
        rows = []
        for action_id, (old, new) in self.owner_history.items():
            status = folded.get(action_id, {}).get("status")
            row = self._update_row(action_id, status, None, None, None)
            row["owners_change"] = (", ".join(names[r] for r in old) or "nobody") + " → " + (
                ", ".join(names[r] for r in new) or "nobody")
            rows.append(row)
        return rows

    def _insert_new(self) -> list[dict[str, Any]]:
        """Insert the chunk's new actions and their owners; their first history rows, returned.

        A new action has no history to fold, so its first update's old status is unknown.
        """
        session = self.session
        self._insert(ACTIONS, self.new_rows)
        # Read the new ids back by match key instead of INSERT ... RETURNING: SQLAlchemy splices
        # batched RETURNING results together in quadratic time, which dominated big imports.
        keys = [row["match_key"] for row in self.new_rows]
        found = session.execute(
            select(ACTIONS.c.match_key, ACTIONS.c.id).where(ACTIONS.c.plan_id == self.plan_id, self._key_in(keys))
        )
        id_by_key = {key: action_id for key, action_id in found}
        ids = [id_by_key[key] for key in keys]
        owners = [
            {"action_id": action_id, "role_id": role_id, "position": i}
            for action_id, role_ids in zip(ids, self.new_owners)
            for i, role_id in enumerate(role_ids)
        ]
        if owners:
            self._insert(OWNERS, owners)
        return [
            self._update_row(action_id, None, pa.status, pa.progress, None)
            for action_id, pa in zip(ids, self.new_history)
            if pa.status is not None or pa.progress
        ]

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Core executemany; on PostgreSQL ``COPY``, in the same transaction.

        psycopg's executemany is still one INSERT per row on the server: 27 s of a
        250,000-action import went there, against a few seconds for ``COPY``. The values are
        what SQLAlchemy would bind (each column type's bind processor), which psycopg adapts.
        """
        dialect = self.session.get_bind().dialect
        if dialect.name != "postgresql":
            self.session.execute(insert(table), rows)
            return
        names = list(rows[0])
        processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
        quote = dialect.identifier_preparer
        sql = f"COPY {quote.format_table(table)} ({', '.join(quote.quote(name) for name in names)}) FROM STDIN"
        driver = self.session.connection().connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row([
                    row[name] if process is None else process(row[name]) for name, process in zip(names, processors)
                ])

    def _update_row(
        self, action_id: int, old: str | None, status: str | None, note: str | None, due: ParsedDate | None
    ) -> dict[str, Any]:
        return {
            "action_id": action_id, "created_at": self.now, "channel": "import", "by_person_id": None,
            "by_text": self.by_text, "old_status": old, "new_status": status,
            "note": clean_note(note, limit=False),  # as record_update stores every note
            "revised_due": due.end if due is not None else None,
            "revised_due_precision": due.precision if due is not None else None,
            "revised_due_text": due.raw if due is not None else None,
            "owners_change": None,
        }
