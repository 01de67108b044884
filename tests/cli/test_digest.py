"""``chaser digest`` and ``chaser update --at`` as an EDI lead loading a year of highlight reports uses them."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

BOARD = "Children's Services EDI Board"
PRIYA, SAM, LEAD, DANA = "priya@lambeth.example", "sam@lambeth.example", "lead@lambeth.example", "dana@lambeth.example"
FIELDS = ["board", "period", "counts", "by_workstream", "changes", "overdue", "due_next", "not_answered", "spotlight"]


@pytest.fixture
def run(chaser: Chaser, tmp_path: Path) -> Chaser:
    Path("chaser.toml").write_text(
        f'edi_lead = "{LEAD}"\n[channels.outbox_folder]\nfolder = "out"\n'
        f'[[boards]]\nname = "{BOARD}"\nschedule = "monthly on the last Thursday"\n'
    )
    chaser("import", str(LAMBETH))
    chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"],
        ["Priya Shah", PRIYA, "HR Business Partner"],
        ["Sam Ade", SAM, "Children's Services Communications Officer"],
        ["Lee Lead", LEAD, "CS EDI Leads"],
        ["Dana Cole", DANA, "Director Children's Social Care"],  # the lead sponsor: escalations go to her
    ])))
    return chaser


def digest(run: Chaser, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(run("digest", "--board", BOARD, "--format", "json", *args).stdout)


def test_update_at_records_the_update_as_of_that_time(run) -> None:  # type: ignore[no-untyped-def]
    run("update", "CP1", "--status", "G", "--at", "2022-10-12T10:00", "--by", PRIYA)
    shown = json.loads(run("show", "CP1", "--format", "json").stdout)
    assert [(h["at"], h["new_status"]) for h in shown["history"]] == [("2022-10-12T09:00:00+00:00", "green")]
    replies = json.loads(run("replies", "--format", "json").stdout)
    assert [r["received_at"] for r in replies] == ["2022-10-12T09:00:00+00:00"]  # BST: 10:00 in London
    # Loaded after it, dated before it: its history shows the status it moved from at the time.
    run("update", "CP1", "--status", "R", "--at", "2022-09-01T10:00", "--by", PRIYA)
    run("update", "CP1", "--status", "A", "--at", "2022-11-01T10:00", "--by", PRIYA)
    history = json.loads(run("show", "CP1", "--format", "json").stdout)["history"]
    assert [(h["old_status"], h["new_status"]) for h in history] == [(None, "green"), (None, "red"), ("green", "amber")]


def test_update_at_refuses_a_time_in_the_future(run) -> None:  # type: ignore[no-untyped-def]
    refused = run("update", "CP1", "--status", "G", "--at", "2999-01-01T09:00", "--by", PRIYA, expect=2)
    assert refused.stderr.strip() == ("chaser: --at '2999-01-01T09:00' is in the future; --at records an update "
                                      "made in the past")
    assert run("update", "CP1", "--status", "G", "--at", "yesterday", "--by", PRIYA, expect=2).stderr.startswith(
        "chaser: --at 'yesterday' is not an ISO date-time")
    assert json.loads(run("show", "CP1", "--format", "json").stdout)["history"] == []


def test_a_scripted_month_gives_its_report(run) -> None:  # type: ignore[no-untyped-def]
    run("update", "CP1", "--status", "G", "--note", "Feedback process agreed", "--at", "2022-10-12T10:00", "--by", PRIYA)
    october = digest(run, "--at", "2022-11-01T09:00")  # the last complete month: October
    assert list(october) == FIELDS and october["period"] == {"start": "2022-10-01", "end": "2022-10-31"}

    # November: nudges go out (Sam's HW 2 is overdue), three owners' answers, one of them recorded today.
    run("run", "--once", "--at", "2022-11-07T10:00")
    run("update", "CP1", "--status", "A", "--at", "2022-11-03T10:00", "--by", PRIYA)
    run("update", "HW 10", "--status", "C", "--note", "Policy published", "--at", "2022-11-20T14:00", "--by", PRIYA)
    run("update", "HW 5", "--status", "R", "--at", "2022-11-25T09:00", "--by", LEAD)
    run("update", "THR1", "--note", "Draft with HR", "--at", "2022-11-26T09:00", "--by", PRIYA)  # a note: no move
    before = [run(*cmd, "--format", "json").stdout for cmd in (("outbox",), ("replies",), ("actions",))]

    report = digest(run, "--period", "2022-11")
    assert report["changes"] == [
        {"ref": "CP1", "from": "green", "to": "amber", "at": "2022-11-03T10:00:00+00:00", "by": PRIYA},
        {"ref": "HW 10", "from": None, "to": "complete", "at": "2022-11-20T14:00:00+00:00", "by": PRIYA},
        {"ref": "HW 5", "from": None, "to": "red", "at": "2022-11-25T09:00:00+00:00", "by": LEAD},
    ]
    # The counts are those 'chaser actions' shows (nothing was recorded after November).
    actions = json.loads(run("actions", "--format", "json").stdout)
    shown = Counter(a["status"] or "no_update" for a in actions)
    assert report["counts"] == {s: shown[s] for s in ("complete", "green", "amber", "red", "not_started", "no_update")}
    assert sum(sum(c.values()) for c in report["by_workstream"].values()) == len(actions) == 30
    assert report["overdue"] == ["HW 2", "HW 5", "RH 2"]  # red is not complete: HW 5 is still overdue
    assert report["due_next"] == ["CP2", "HW 4", "HW 6", "SA3"]  # HW 10 is due in December, but complete
    outbox = json.loads(run("outbox", "--format", "json").stdout)
    assert any(m["person"] == DANA for m in outbox)  # an escalation copy: told, not asked
    # Sam owns HW 2; RH 2's owners are in nobody's roles, so the EDI lead is asked for it.
    assert report["not_answered"] == [
        {"person": LEAD, "refs": ["RH 2"], "chased": sum(1 for m in outbox if m["person"] == LEAD and "RH 2" in m["refs"])},
        {"person": SAM, "refs": ["HW 2"], "chased": sum(1 for m in outbox if m["person"] == SAM)},
    ]

    # Nothing in the database changed.
    assert before == [run(*cmd, "--format", "json").stdout for cmd in (("outbox",), ("replies",), ("actions",))]
    # October rebuilt after November's updates is the October built at the end of October.
    assert digest(run, "--period", "2022-10") == october


def test_the_spotlight_rotates_across_three_months(run) -> None:  # type: ignore[no-untyped-def]
    names = list(digest(run, "--period", "2022-10")["by_workstream"])
    spotlights = [digest(run, "--period", p)["spotlight"] for p in ("2022-10", "2022-11", "2022-12")]
    first = names.index(spotlights[0])
    assert spotlights == [names[(first + n) % len(names)] for n in range(3)]


def test_digest_writes_html_csv_and_xlsx(run) -> None:  # type: ignore[no-untyped-def]
    run("update", "CP1", "--status", "A", "--at", "2022-11-03T10:00", "--by", PRIYA)
    out = run("digest", "--board", BOARD, "--period", "2022-11", "--out", "report.html").stdout
    assert "highlight report for November 2022, 30 action(s)" in out and "Wrote report.html." in out
    html = Path("report.html").read_text()
    assert "Highlight report · November 2022" in html and "Career Progression" in html and "Amber" in html
    for name in ("report.csv", "report.xlsx", "report.pdf"):
        run("digest", "--board", BOARD, "--period", "2022-11", "--out", name)
        assert Path(name).stat().st_size > 0


def test_send_queues_last_months_report_once_and_a_second_send_queues_nothing(run) -> None:  # type: ignore[no-untyped-def]
    assert run("digest", "--board", BOARD, "--send", expect=2).stderr.strip() == (
        f"chaser: --send: board {BOARD!r} has no recipients; add recipients = [\"…\"] (or slack_channel = "
        "\"#…\", or teams_webhook_env = \"…\") to its [[boards]] table in chaser.toml")
    Path("chaser.toml").write_text(Path("chaser.toml").read_text() + 'recipients = ["clerk@lambeth.example"]\n')
    first = run("digest", "--board", BOARD, "--send", "--format", "json")
    assert len(json.loads(first.stdout)["queued"]) == 1
    assert "already queued" in run("digest", "--board", BOARD, "--send").stdout  # last month's, again
    november = " ".join(run("digest", "--board", BOARD, "--period", "2022-11", "--send").stdout.split())
    assert "Queued the November 2022 report for 1 recipient(s): clerk@lambeth.example." in november
    assert "nothing queued" in run("digest", "--board", BOARD, "--period", "2022-11", "--send").stdout
    outbox = json.loads(run("outbox", "--format", "json").stdout)
    assert [(m["kind"], m["person"], m["state"]) for m in outbox] == [("digest", "clerk@lambeth.example", "queued")] * 2


def test_send_to_a_board_with_only_a_teams_webhook_names_the_variable(run) -> None:  # type: ignore[no-untyped-def]
    Path("chaser.toml").write_text(Path("chaser.toml").read_text() + 'teams_webhook_env = "TEAMS_EDI_BOARD_WEBHOOK"\n')
    said = " ".join(run("digest", "--board", BOARD, "--period", "2022-11", "--send").stdout.split())
    assert "Queued the November 2022 report for 1 recipient(s): the Teams webhook in TEAMS_EDI_BOARD_WEBHOOK." in said
    outbox = json.loads(run("outbox", "--format", "json").stdout)
    assert [(m["kind"], m["person"], m["state"]) for m in outbox] == [("digest", "TEAMS_EDI_BOARD_WEBHOOK", "queued")]


def test_pdf_and_unknown_boards_are_clear_errors(run) -> None:  # type: ignore[no-untyped-def]
    assert run("digest", "--board", BOARD, "--out", "r.doc", expect=2).stderr.strip() == (
        "chaser: --out r.doc: write a .html, .pdf, .csv or .xlsx file")
    assert not Path("r.doc").exists()
    assert "no board of that name" in run("digest", "--board", "Cabinet", expect=2).stderr
    assert "--period '2022-13'" in run("digest", "--board", BOARD, "--period", "2022-13", expect=2).stderr
