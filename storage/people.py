"""People, roles and who holds them.

Council plans name roles ("HR Business Partner"), boards, or people with their job title
("Ali Littlewood Director, HR & Workforce Development"). A role resolves to the people who
hold it in the directory (matched case- and spacing-insensitively), and to any person whose
full name the owner text starts with.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from chaser.errors import ImportFileError
from storage.importers.parse import norm_key
from storage.models import Action, ActionOwner, Person, PersonRole, Role

EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
DIRECTORY_COLUMNS = ("name", "email", "roles", "manager", "slack_id", "teams_id", "delegate", "away_until", "cover",
                     "channel")
REQUIRED_COLUMNS = ("name", "email")


def role_key(name: str) -> str:
    """``Children & Families Executive`` and ``children and families  executive`` are one role."""
    return norm_key(re.sub(r"\s*&\s*", " and ", name))


def get_or_create_roles(session: Session, names: Iterable[str]) -> dict[str, Role]:
    """Role by key, creating the missing ones (one query, whatever the number of names)."""
    wanted: dict[str, str] = {}
    for name in names:
        wanted.setdefault(role_key(name), name)
    found = {r.key: r for r in session.scalars(select(Role).where(Role.key.in_(list(wanted))))} if wanted else {}
    for key, name in wanted.items():
        if key not in found:
            role = Role(name=name, key=key)
            session.add(role)
            found[key] = role
    session.flush()
    return found


class NameIndex:
    """Who an owner cell names by name: ``Ali Littlewood`` or ``Ali Littlewood Director, HR``.

    A person is found by name only when their directory name looks like a person's full name
    (two words or more) and is not itself the name of a role: a directory entry named ``HR``
    must never hold "HR Business Partner" or "HR Employee Relations Lead". Roles are held only
    through the directory's ``roles`` column; this is for owner cells that name someone.
    """

    def __init__(self, people: Iterable[Person], role_keys: Iterable[str]) -> None:
        roles = set(role_keys)
        self.by_name: dict[str, list[Person]] = {}
        for person in people:
            key = role_key(person.name)
            if len(key.split()) >= 2 and key not in roles:
                self.by_name.setdefault(key, []).append(person)

    def named(self, key: str) -> list[Person]:
        """People whose full name the owner text ``key`` (a role_key) is, or starts with."""
        # Look up each leading run of words (cut at a space or comma) instead of trying every person.
        found: list[Person] = []
        for cut in [i for i, char in enumerate(key) if char in " ,"] + [len(key)]:
            found += [p for p in self.by_name.get(key[:cut], ()) if p not in found]
        return found


def holders(session: Session) -> dict[int, list[Person]]:
    """role id -> people who hold it: by the directory's roles, else because the owner text names them."""
    people = list(session.scalars(select(Person).order_by(Person.name)))
    by_id = {p.id: p for p in people}
    result: dict[int, list[Person]] = {}
    for person_id, role_id in session.execute(select(PersonRole.person_id, PersonRole.role_id)):
        result.setdefault(role_id, []).append(by_id[person_id])
    roles = list(session.execute(select(Role.id, Role.key)))
    names = NameIndex(people, (key for _, key in roles))
    for role_id, key in roles:
        if role_id not in result:  # a role someone holds is theirs alone
            named = names.named(key)
            if named:
                result[role_id] = named
    return result


def owners_of(session: Session, action: Action, held: dict[int, list[Person]] | None = None) -> list[Person]:
    held = holders(session) if held is None else held
    seen: list[Person] = []
    for owner in action.owners:
        for person in held.get(owner.role_id, []):
            if person not in seen:
                seen.append(person)
    return seen


def find_person(session: Session, email: str) -> Person | None:
    return session.scalar(select(Person).where(Person.email == email.strip().lower()))


@dataclass
class DirectoryResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    roles_created: list[str] = field(default_factory=list)
    changed_people: list[Person] = field(default_factory=list)


def import_directory(session: Session, path: str | Path, channels: Collection[str] | None = None) -> DirectoryResult:
    """Read a people CSV (name, email, roles, manager[, slack_id, teams_id, delegate, away_until,
    cover, channel]). ``channel`` is the person's preferred channel, checked against ``channels``
    (the registry's names, given by the caller: storage does not know the channels).

    All-or-nothing: the first bad row raises ``ImportFileError`` naming the row and column, and
    the caller's transaction is rolled back. A person's roles become exactly those in the file.
    """
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise ImportFileError(shown, "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise ImportFileError(shown, "the file is empty")
    if b"\x00" in raw[:4096] or raw.startswith(b"PK\x03\x04"):
        raise ImportFileError(shown, "not a CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [normalise_column(c) for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ImportFileError(shown, f"missing column(s) {', '.join(missing)}; expected {', '.join(DIRECTORY_COLUMNS)}")
    unknown = [c for c in columns if c not in DIRECTORY_COLUMNS]
    if unknown:
        raise ImportFileError(shown, f"unknown column(s) {', '.join(unknown)}; expected {', '.join(DIRECTORY_COLUMNS)}")

    rows: list[tuple[int, dict[str, str]]] = []
    seen: dict[str, int] = {}
    for row_no, raw_row in enumerate(reader, start=2):
        if None in raw_row:
            raise ImportFileError(shown, f"row {row_no}: more cells than columns")
        row = {normalise_column(k): (v or "").strip() for k, v in raw_row.items()}
        if not any(row.values()):
            continue
        email = row.get("email", "").lower()
        if not EMAIL.match(email):
            raise ImportFileError(shown, f"row {row_no} (email): {row.get('email', '')!r} is not an email address")
        if email in seen:
            raise ImportFileError(shown, f"row {row_no} (email): {email} is already on row {seen[email]}")
        if not row.get("name"):
            raise ImportFileError(shown, f"row {row_no} (name): the name is empty")
        if row.get("away_until"):
            try:
                row["away_until_date"] = dt.date.fromisoformat(row["away_until"])  # type: ignore[assignment]
            except ValueError:
                raise ImportFileError(
                    shown, f"row {row_no} (away_until): {row['away_until']!r} is not a date written YYYY-MM-DD"
                ) from None
        channel = row.get("channel", "").lower()
        if channel and channels is not None and channel not in channels:
            raise ImportFileError(shown, f"row {row_no} (channel): {row['channel']!r} is not one of "
                                  f"{', '.join(sorted(channels))} (or leave it empty for [channels] order)")
        row["channel"] = channel
        seen[email] = row_no
        row["email"] = email
        rows.append((row_no, row))

    result = DirectoryResult()
    existing = {p.email: p for p in session.scalars(select(Person).where(Person.email.in_(list(seen))))}
    all_roles = [r.strip() for _, row in rows for r in row.get("roles", "").split(";") if r.strip()]
    before = set(session.scalars(select(Role.key)))
    roles = get_or_create_roles(session, all_roles)
    result.roles_created = sorted(r.name for k, r in roles.items() if k not in before)
    people: dict[str, Person] = {}
    changed: dict[str, bool] = {}
    for _, row in rows:
        person = existing.get(row["email"])
        fresh = person is None
        if person is None:
            person = Person(name=row["name"], email=row["email"])
            session.add(person)
        wanted = {
            "name": row["name"],
            # A Slack id the Slack channel looked up by email (slack_checked_at set) stays when the
            # file has none: the next import must not undo the look-up; one in the file wins.
            "slack_id": row.get("slack_id") or (person.slack_id if person.slack_checked_at else None),
            "teams_id": row.get("teams_id") or None,
            "channel": row.get("channel") or None,
        }
        dirty = fresh
        for attr, value in wanted.items():
            if getattr(person, attr) != value:
                setattr(person, attr, value)
                dirty = True
        new_roles = []
        for name in row.get("roles", "").split(";"):
            if name.strip() and roles[role_key(name)] not in new_roles:
                new_roles.append(roles[role_key(name)])
        if fresh or {r.key for r in person.roles} != {r.key for r in new_roles}:
            person.roles = new_roles
            dirty = True
        people[row["email"]] = person
        changed[row["email"]] = dirty
    session.flush()

    for row_no, row in rows:
        person = people[row["email"]]
        away = row.get("away_until_date")
        if person.away_until != away:
            person.away_until = away  # type: ignore[assignment]
            changed[row["email"]] = True
        if row.get("cover") and not away:
            raise ImportFileError(shown, f"row {row_no} (cover): a cover needs an away_until date")
        for column, attr in (("manager", "manager"), ("delegate", "delegate"), ("cover", "cover")):
            ref = row.get(column, "").lower()
            target = None
            if ref:
                target = people.get(ref) or find_person(session, ref)
                if target is None:
                    raise ImportFileError(
                        shown, f"row {row_no} ({column}): no person with email {ref} in this file or the directory"
                    )
                if target is person:
                    raise ImportFileError(shown, f"row {row_no} ({column}): a person cannot be their own {column}")
            if getattr(person, attr) is not target:
                setattr(person, attr, target)
                changed[row["email"]] = True
    for _, row in rows:
        if row["email"] not in existing:
            result.created += 1
        elif changed[row["email"]]:
            result.updated += 1
        if changed[row["email"]]:
            result.changed_people.append(people[row["email"]])
        else:
            result.unchanged += 1
    session.flush()
    return result


def normalise_column(name: str | None) -> str:
    return re.sub(r"[\s\-]+", "_", (name or "").strip().lower())


@dataclass
class RoleHolders:
    role: str
    people: list[Person]
    actions: int


def role_report(session: Session) -> list[RoleHolders]:
    """Every role named in a plan or the directory, with who holds it and how many actions it owns."""
    held = holders(session)
    counts: dict[int, int] = {}
    for role_id, in session.execute(select(ActionOwner.role_id)):
        counts[role_id] = counts.get(role_id, 0) + 1
    return [
        RoleHolders(role=r.name, people=held.get(r.id, []), actions=counts.get(r.id, 0))
        for r in session.scalars(select(Role).order_by(Role.key))
    ]


@dataclass(frozen=True)
class TeamsReach:
    """Whether the Teams bot can reach one person who answers for open actions."""

    person: Person
    open_actions: int
    reachable: bool
    reason: str  # "chat stored 2026-12-07", "the app is not installed for them yet", "blocked or removed the app on …"


def teams_reach(session: Session) -> list[TeamsReach]:
    """Everyone who answers for an open action, and whether the Teams bot can reach them: the
    people ``chaser teams status`` lists (those it cannot reach first)."""
    from storage.tracker import open_counts  # tracker imports this module

    people = list(session.scalars(select(Person).order_by(Person.name)))
    counts = open_counts(session, [p.id for p in people])
    found = []
    for person in people:
        count = counts.get(person.id, 0)
        if not count:
            continue
        conversation = person.teams_conversation or {}
        if person.teams_blocked_at is not None:
            reason = f"blocked or removed the app on {person.teams_blocked_at:%d/%m/%Y}"
        elif conversation.get("conversation_id"):
            stored = str(conversation.get("stored_at") or "")[:10]
            found.append(TeamsReach(person, count, True, f"chat stored {stored}".strip()))
            continue
        elif person.teams_id:
            reason = "the app is not installed for them yet (their Teams id is known)"
        else:
            reason = "the app is not installed for them yet"
        found.append(TeamsReach(person, count, False, reason))
    found.sort(key=lambda r: (r.reachable, r.person.name.casefold()))
    return found
