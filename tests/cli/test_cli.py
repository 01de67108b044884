"""The chaser command as an EDI lead uses it: init, import, actions, show, people, update."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaser.cli import main
from tests.conftest import LAMBETH, Chaser, TOWER_HAMLETS
from tests.importers.makers import write_csv


@pytest.fixture
def run(chaser: Chaser) -> Chaser:
    return chaser


def test_import_json_summarises_the_plan(run) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(run("import", str(LAMBETH), "--format", "json").stdout)
    assert {k: out[k] for k in ("workstreams", "groups", "actions", "created", "updated", "unchanged")} == {
        "workstreams": 6, "groups": 0, "actions": 30, "created": 30, "updated": 0, "unchanged": 0,
    }
    assert out["plan"] == "Children's Services EDI Strategy and Action Plan 2022–25"
    assert all(set(w) == {"where", "message"} for w in out["warnings"])
    again = json.loads(run("import", str(LAMBETH), "--format", "json").stdout)
    assert (again["created"], again["unchanged"]) == (0, 30)


def test_actions_json_lists_every_action_with_its_dates(run) -> None:  # type: ignore[no-untyped-def]
    run("import", str(TOWER_HAMLETS))
    items = json.loads(run("actions", "--format", "json").stdout)
    assert len(items) == 79
    first = items[0]
    required = {"ref", "title", "workstream", "group", "owners", "start", "due", "due_text", "due_precision", "recurring", "status"}
    assert required <= set(first)
    assert (first["ref"], first["group"], first["workstream"]) == ("R1.A-1", "R1.A", "Anti-Racist Borough")
    assert (first["due"], first["due_precision"], first["start"], first["status"]) == ("2021-07-31", "month", "2021-05-01", None)
    assert first["owners"] == ["Sharon Godman Director Strategy, Improvement and Transformation"]
    ongoing = [i for i in items if i["due_text"] == "On-going"]
    assert ongoing and all(i["recurring"] and i["due"] is None for i in ongoing)


def test_update_records_a_status_that_actions_and_show_then_report(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("import", str(LAMBETH))
    people = write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "manager"],
        ["Priya Shah", "priya.shah@lambeth.example", "HR Business Partner", "dana.cole@lambeth.example"],
        ["Dana Cole", "Dana.Cole@lambeth.example", "Director Children's Social Care", ""],
    ])
    run("people", "import", str(people))
    out = run("update", "cp1", "--status", "A", "--note", "Guidance drafted", "--due", "June 2023",
              "--by", "priya.shah@lambeth.example").stdout
    assert "CP1" in out and "amber" in out
    shown = json.loads(run("show", "CP1", "--format", "json").stdout)
    assert (shown["status"], shown["note"], shown["due"], shown["plan_due"]) == ("amber", "Guidance drafted", "2023-06-30", "2023-04-30")
    assert shown["people"] == ["priya.shah@lambeth.example"]
    assert [(h["by"], h["channel"], h["new_status"]) for h in shown["history"]] == [("priya.shah@lambeth.example", "cli", "amber")]
    amber = json.loads(run("actions", "--status", "amber", "--format", "json").stdout)
    assert [a["ref"] for a in amber] == ["CP1"]
    # A re-import of the unchanged plan does not undo the owner's reply.
    run("import", str(LAMBETH))
    assert json.loads(run("show", "CP1", "--format", "json").stdout)["status"] == "amber"


def test_only_owners_delegates_and_the_edi_lead_may_update(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("import", str(LAMBETH))
    people = write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "manager", "delegate"],
        ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "", "sam@lambeth.example"],
        ["Sam Ade", "sam@lambeth.example", "", "", ""],
        ["Outsider", "out@lambeth.example", "Facilities", "", ""],
    ])
    run("people", "import", str(people))
    denied = run("update", "CP1", "--status", "G", "--by", "out@lambeth.example", expect=2)
    assert denied.stderr.strip() == (
        "chaser: out@lambeth.example may not update CP1: only its owners, their delegates or cover, "
        "or the EDI lead may"
    )
    run("update", "CP1", "--status", "G", "--by", "sam@lambeth.example")
    Path("chaser.toml").write_text('edi_lead = "out@lambeth.example"\n')
    run("update", "CP1", "--status", "C", "--by", "out@lambeth.example")


def test_people_shows_who_holds_each_role_and_the_roles_nobody_holds(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("import", str(TOWER_HAMLETS))
    people = write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "manager", "slack_id"],
        ["Ali Littlewood", "ali@th.example", "", "", "U123"],
        ["Hana Begum", "hana@th.example", "health  &  wellbeing board; Children & Families Executive", "", ""],
    ])
    run("people", "import", str(people))
    roles = {r["role"]: r for r in json.loads(run("people", "--format", "json").stdout)}
    ali = roles["Ali Littlewood Director, HR & Workforce Development"]
    assert [p["email"] for p in ali["people"]] == ["ali@th.example"] and ali["actions"] == 12
    assert [p["email"] for p in roles["Health & Wellbeing Board"]["people"]] == ["hana@th.example"]
    assert roles["Healthwatch"]["people"] == []
    table = run("people").stdout
    assert "nobody yet" in table and "own actions but nobody holds them yet" in table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,email\nA,not-an-email\n", "row 2 (email): 'not-an-email' is not an email address"),
        ("name,email,manager\nA,a@x.example,boss@x.example\n", "row 2 (manager): no person with email boss@x.example"),
        ("name,email\nA,a@x.example\nB,A@x.example\n", "row 3 (email): a@x.example is already on row 2"),
        ("name,mail\nA,a@x.example\n", "missing column(s) email"),
    ],
)
def test_a_bad_directory_names_the_row_and_column_and_imports_nobody(run, tmp_path: Path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "people.csv"
    path.write_text(content)
    result = run("people", "import", str(path), expect=2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(run("people", "--format", "json").stdout) == []


def test_a_bad_plan_file_exits_2_with_one_line_and_the_database_unchanged(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "plan.xlsx"
    bad.write_text("not a workbook")
    result = run("import", str(bad), expect=2)
    assert result.stderr == f"chaser: {bad}: the extension says an Excel workbook (.xlsx) but the file is a text file\n"
    assert json.loads(run("actions", "--format", "json").stdout) == []


def test_commands_before_init_say_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["actions"], env={"CHASER_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"})
    assert result.exit_code == 2
    assert result.stderr == "chaser: the database has no Chaser tables yet: run 'chaser init' first\n"


def test_show_of_an_unknown_ref_is_a_clear_error(run) -> None:  # type: ignore[no-untyped-def]
    run("import", str(LAMBETH))
    assert run("show", "ZZ9", expect=2).stderr == "chaser: no action with ref 'ZZ9'\n"


def test_the_table_view_lists_actions_for_people(run) -> None:  # type: ignore[no-untyped-def]
    run("import", str(LAMBETH))
    out = run("actions", "--plan", "Children's Services EDI Strategy and Action Plan 2022–25").stdout
    assert "30 action(s)" in out
    assert "HW 12" in out and "2023-04-30" in out
    shown = run("show", "SA1").stdout
    assert "2023-11-30" in shown and "2024-03-31 (March 2024)" in shown


def test_a_directory_name_never_grants_a_role(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A directory entry named "HR" holds no role: the name must not make them the HR Business
    # Partner, let them answer CP1, or bring them CP1's nudges.
    run("import", str(LAMBETH))
    people = write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"],
        ["HR", "hr@lambeth.example", ""],
        ["Priya Shah", "priya@lambeth.example", "HR Business Partner"],
    ])
    run("people", "import", str(people))
    roles = {r["role"]: [p["email"] for p in r["people"]] for r in json.loads(run("people", "--format", "json").stdout)}
    assert roles["HR Business Partner"] == ["priya@lambeth.example"]
    assert roles["HR Employee Relations Lead"] == []
    refused = run("update", "CP1", "--status", "G", "--by", "hr@lambeth.example", expect=2)
    assert refused.stderr.startswith("chaser: hr@lambeth.example may not update CP1")
    nudged = {i["person"] for i in json.loads(run("preview", "--at", "2023-04-17T10:00", "--format", "json").stdout)}
    assert "hr@lambeth.example" not in nudged and "priya@lambeth.example" in nudged


@pytest.mark.parametrize("sample", [LAMBETH, TOWER_HAMLETS], ids=["lambeth", "tower-hamlets"])
def test_the_import_report_counts_what_actions_then_lists(run, db_url: str, sample: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from storage.db import make_engine
    from storage.models import Action, ActionGroup, Workstream

    report = json.loads(run("import", str(sample), "--format", "json").stdout)
    listed = json.loads(run("actions", "--format", "json").stdout)
    assert report["actions"] == len(listed)
    assert report["groups"] == len({a["group"] for a in listed if a["group"]})
    engine = make_engine(db_url)
    with engine.connect() as conn:  # two objectives may share a name: count the stored rows
        stored = conn.scalar(select(func.count(Workstream.id)))
        holding = conn.scalar(select(func.count(func.distinct(Action.workstream_id))))
        groups = conn.scalar(select(func.count(ActionGroup.id)))
    engine.dispose()
    assert report["workstreams"] == stored == holding and report["groups"] == groups


def test_reimporting_an_edited_word_plan_updates_exactly_the_edited_actions(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import docx

    plan = tmp_path / "lambeth.docx"
    plan.write_bytes(LAMBETH.read_bytes())
    run("import", str(plan))
    before = {a["ref"]: a for a in json.loads(run("actions", "--format", "json").stdout)}
    document = docx.Document(str(plan))

    def set_cell(ref: str, old: str, new: str) -> None:
        for table in document.tables:
            for row in table.rows:
                if row.cells[0].text.strip() == ref:
                    cell = next(c for c in row.cells if c.text.strip() == old)
                    cell.paragraphs[0].runs[0].text = new
                    for extra in cell.paragraphs[0].runs[1:]:
                        extra.text = ""
                    return
        raise AssertionError(f"{ref} {old!r} not found")

    set_cell("CP1", "HR Business Partner", "HR Business Partner/ CS EDI Lead")  # an owner added
    set_cell("CP2", "December 2022", "March 2023")  # a new date
    cp3 = before["CP3"]["title"]
    set_cell("CP3", cp3, cp3 + " (revised)")  # a title edited
    document.save(str(plan))
    report = json.loads(run("import", str(plan), "--format", "json").stdout)
    assert (report["created"], report["updated"]) == (0, 3)
    after = {a["ref"]: a for a in json.loads(run("actions", "--format", "json").stdout)}
    assert after["CP1"]["owners"] == ["HR Business Partner", "CS EDI Lead"]
    history = json.loads(run("show", "CP1", "--format", "json").stdout)["history"]
    assert [h["owners_change"] for h in history] == ["HR Business Partner → HR Business Partner, CS EDI Lead"]
    assert history[-1]["by"] == "import: lambeth.docx" and history[-1]["note"] is None
    assert (after["CP2"]["due"], after["CP2"]["due_text"]) == ("2023-03-31", "March 2023")
    assert after["CP3"]["title"] == cp3 + " (revised)"
    assert {ref for ref in before if before[ref] != after[ref]} == {"CP1", "CP2", "CP3"}


def test_reimporting_an_edited_excel_plan_updates_exactly_the_edited_actions(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import openpyxl

    plan = tmp_path / "th.xlsx"
    plan.write_bytes(TOWER_HAMLETS.read_bytes())
    run("import", str(plan))
    before = json.loads(run("actions", "--format", "json").stdout)
    book = openpyxl.load_workbook(plan)
    sheet = book["Action Plan"]
    sheet["E14"] = "Sharon Godman Director Strategy, Improvement and Transformation/ HR Business Partner"
    sheet["D15"] = sheet["D15"].value.replace(year=2023)  # a date cell moved a year on
    book.save(plan)
    report = json.loads(run("import", str(plan), "--format", "json").stdout)
    assert (report["created"], report["updated"]) == (0, 2)
    after = json.loads(run("actions", "--format", "json").stdout)
    changed = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
    assert changed == [0, 1] and len(after) == len(before)
    assert after[0]["owners"][-1] == "HR Business Partner"
    assert (before[1]["due"], after[1]["due"]) == ("2022-07-31", "2023-07-31")
