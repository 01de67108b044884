"""The planner on worked examples: pure, so every case is a list of times and what goes out."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from jobs.calendar import WorkCalendar
from jobs.planner import ActionView, Cadence, PersonView, ReviewMilestone, plan
from storage.reasons import Why

UTC = dt.timezone.utc
LONDON = WorkCalendar()
OWNER, MANAGER, COVER, LEAD, SPONSOR = 1, 2, 3, 9, 7
PEOPLE = {
    OWNER: PersonView(OWNER, "Priya Shah", "priya@c.example", manager_id=MANAGER),
    MANAGER: PersonView(MANAGER, "Dana Cole", "dana@c.example"),
    COVER: PersonView(COVER, "Sam Ade", "sam@c.example"),
    SPONSOR: PersonView(SPONSOR, "Director", "dir@c.example"),
    LEAD: PersonView(LEAD, "EDI Lead", "lead@c.example"),
}


def at(text: str) -> dt.datetime:
    """Local London wall time, as a person reads it, as an aware UTC moment."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)


def action(**changes: object) -> ActionView:
    base = ActionView(
        id=10, ref="HW 3", plan_id=1, due=dt.date(2026, 12, 18), recurring=False, status="green",
        created_at=dt.datetime(2026, 9, 1, tzinfo=UTC), cadence=Cadence(), owner_ids=(OWNER,),
        owner_roles=("HR Business Partner",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def simulate(times: Iterable[str], actions: list[ActionView], people: dict[int, PersonView] = PEOPLE,
             **kwargs: object) -> list[tuple[str, str, int, str]]:
    """Run the planner at each local time, remembering what was sent and when, like successive sweeps."""
    sent: set[str] = set()
    last_sent: dict[tuple[int, int], dt.datetime] = {}
    out = []
    for text in times:
        result = plan(at(text), actions, people, sent, last_sent=last_sent, **kwargs)  # type: ignore[arg-type]
        for n in result.nudges:
            out.append((text, n.rule, n.person_id, n.ref))
            last_sent[n.action_id, n.person_id] = at(text)
        sent |= {n.key for n in result.nudges} | {n.key for n in result.superseded}
    return out


def test_the_default_cadence_on_a_worked_example() -> None:
    # Due Friday 18 December 2026. Ten working days before is Fri 4 Dec, two is Wed 16 Dec;
    # overdue every 5 working days skips Christmas, Boxing Day (observed Mon 28) and New Year:
    # Tue 29 Dec, then Wed 6 Jan 2027, which is also 10 working days overdue: the manager hears.
    times = ["2026-12-04 09:29", "2026-12-04 09:30", "2026-12-04 15:00", "2026-12-16 09:30", "2026-12-18 09:30",
             "2026-12-21 09:30", "2026-12-29 09:30", "2027-01-05 09:30", "2027-01-06 09:30", "2027-01-13 09:30"]
    assert simulate(times, [action()]) == [
        ("2026-12-04 09:30", "before_due", OWNER, "HW 3"),
        ("2026-12-16 09:30", "before_due", OWNER, "HW 3"),
        ("2026-12-18 09:30", "due", OWNER, "HW 3"),
        ("2026-12-29 09:30", "overdue", OWNER, "HW 3"),
        ("2027-01-06 09:30", "overdue", OWNER, "HW 3"),
        ("2027-01-06 09:30", "escalation", MANAGER, "HW 3"),
        ("2027-01-13 09:30", "overdue", OWNER, "HW 3"),
    ]


def test_next_check_is_the_next_occurrence_in_utc() -> None:
    result = plan(at("2026-12-04 10:00"), [action()], PEOPLE, set())
    assert result.next_check[10] == dt.datetime(2026, 12, 16, 9, 30, tzinfo=UTC)


def test_nothing_goes_out_on_weekends_bank_holidays_or_in_quiet_hours() -> None:
    overdue = action(due=dt.date(2026, 12, 1))
    for text in ("2026-12-25 10:00", "2026-12-26 10:00", "2026-12-28 10:00", "2027-03-26 10:00",
                 "2026-12-27 12:00", "2026-12-22 07:00", "2026-12-22 19:30"):
        assert plan(at(text), [overdue], PEOPLE, set()).nudges == [], text
    # ...and the catch-up comes at the next window: 09:30 on the next working day.
    result = plan(at("2026-12-24 19:30"), [overdue], PEOPLE, set())
    assert result.nudges == [] and result.next_check[10] == at("2026-12-29 09:30")
    assert [n.rule for n in plan(at("2026-12-29 09:30"), [overdue], PEOPLE, set()).nudges] == ["overdue", "escalation"]


@pytest.mark.parametrize(("due", "local", "utc"), [
    (dt.date(2026, 3, 30), "2026-03-30 09:30", dt.datetime(2026, 3, 30, 8, 30, tzinfo=UTC)),  # first day of BST
    (dt.date(2026, 3, 27), "2026-03-27 09:30", dt.datetime(2026, 3, 27, 9, 30, tzinfo=UTC)),  # last Friday of GMT
    (dt.date(2026, 10, 26), "2026-10-26 09:30", dt.datetime(2026, 10, 26, 9, 30, tzinfo=UTC)),  # first day of GMT
    (dt.date(2026, 10, 23), "2026-10-23 09:30", dt.datetime(2026, 10, 23, 8, 30, tzinfo=UTC)),  # last Friday of BST
])
def test_local_send_times_are_right_across_both_clock_changes(due: dt.date, local: str, utc: dt.datetime) -> None:
    one = action(due=due, cadence=Cadence(before_due=()))
    just_before = plan(utc - dt.timedelta(minutes=1), [one], PEOPLE, set())
    assert just_before.nudges == [] and just_before.next_check[10] == utc
    assert [n.rule for n in plan(utc, [one], PEOPLE, set()).nudges] == ["due"]
    assert at(local) == utc


def test_after_a_month_of_downtime_one_catch_up_per_action_not_one_per_missed_nudge() -> None:
    actions = [action(id=1, due=dt.date(2026, 11, 20)), action(id=2, due=dt.date(2026, 12, 31), ref="CP1"),
               action(id=3, due=None, recurring=True, ref="R1", created_at=dt.datetime(2026, 9, 1, tzinfo=UTC))]
    sent = simulate(["2026-12-29 11:00", "2026-12-29 11:01", "2026-12-29 16:00"], actions)
    owner_nudges = [(rule, ref) for _, rule, person, ref in sent if person == OWNER]
    assert owner_nudges == [("overdue", "HW 3"), ("before_due", "CP1"), ("stale", "R1")]


def test_completing_an_action_stops_its_nudges() -> None:
    result = plan(at("2027-01-06 09:30"), [action(status="complete")], PEOPLE, set())
    assert result.nudges == [] and result.next_check[10] is None


def test_a_snoozed_action_and_a_paused_plan_get_nothing() -> None:
    snoozed = plan(at("2026-12-18 09:30"), [action(snoozed_until=dt.date(2026, 12, 31))], PEOPLE, set())
    assert snoozed.nudges == [] and snoozed.next_check[10] == at("2027-01-04 09:30")
    assert plan(at("2026-12-18 09:30"), [action(paused=True)], PEOPLE, set()).nudges == []


def test_the_most_urgent_of_several_rules_for_one_person_goes_out_and_the_rest_are_superseded() -> None:
    # The owner is their own manager's... no: the owner has no manager, so the escalation goes
    # to the workstream sponsor; make the owner the sponsor too so both rules meet one person.
    people = {OWNER: replace(PEOPLE[OWNER], manager_id=None), LEAD: PEOPLE[LEAD]}
    one = action(sponsor_ids=(OWNER,))
    result = plan(at("2027-01-06 09:30"), [one], people, set())
    assert [(n.rule, n.person_id) for n in result.nudges] == [("escalation", OWNER)]
    assert [n.rule for n in result.superseded] == ["overdue"]


def test_escalation_goes_to_the_manager_then_the_sponsor_then_the_edi_lead() -> None:
    late = "2027-01-06 09:30"
    no_manager = {k: replace(v, manager_id=None) for k, v in PEOPLE.items()}
    assert [n.person_id for n in plan(at(late), [action()], PEOPLE, set()).nudges if n.rule == "escalation"] == [MANAGER]
    assert [n.person_id for n in plan(at(late), [action(sponsor_ids=(SPONSOR,))], no_manager, set()).nudges
            if n.rule == "escalation"] == [SPONSOR]
    assert [n.person_id for n in plan(at(late), [action()], no_manager, set(), edi_lead_id=LEAD).nudges
            if n.rule == "escalation"] == [LEAD]


def test_an_action_nobody_owns_goes_to_the_edi_lead_and_without_one_is_reported() -> None:
    orphan = action(owner_ids=(), owner_roles=("CSEDIWG",))
    result = plan(at("2026-12-18 09:30"), [orphan], PEOPLE, set(), edi_lead_id=LEAD)
    assert [(n.rule, n.person_id) for n in result.nudges] == [("due", LEAD)]
    assert result.nudges[0].why == Why("due", due=dt.date(2026, 12, 18), working_days=0, unowned=True, roles=("CSEDIWG",))
    lost = plan(at("2026-12-18 09:30"), [orphan], PEOPLE, set())
    assert lost.nudges == [] and [why for _, why in lost.unreachable] == ["due for HW 3: nobody can be reached"]


def test_while_someone_is_away_their_nudges_go_to_cover_saying_whose_action_it_is() -> None:
    people = {**PEOPLE, OWNER: replace(PEOPLE[OWNER], away_until=dt.date(2026, 12, 31), cover_id=COVER)}
    result = plan(at("2026-12-18 09:30"), [action()], people, set())
    assert [(n.rule, n.person_id, n.owner_id) for n in result.nudges] == [("due", COVER, OWNER)]


def test_without_cover_nudges_wait_until_the_first_working_day_back() -> None:
    people = {**PEOPLE, OWNER: replace(PEOPLE[OWNER], away_until=dt.date(2026, 12, 24))}
    sent = simulate(["2026-12-18 09:30", "2026-12-24 12:00", "2026-12-29 09:30", "2026-12-29 09:31"], [action()], people)
    assert sent == [("2026-12-29 09:30", "overdue", OWNER, "HW 3")]
    result = plan(at("2026-12-18 09:30"), [action()], people, set())
    assert result.waiting == {OWNER: dt.date(2026, 12, 29)} and result.next_check[10] <= at("2026-12-29 09:30")


def test_a_recurring_action_gets_an_update_request_after_30_days_without_one() -> None:
    ongoing = action(due=None, recurring=True, created_at=at("2026-10-01 12:00"),
                     last_update_at=at("2026-11-02 10:00"))
    times = ["2026-12-01 09:30", "2026-12-02 09:30", "2026-12-02 10:00", "2026-12-03 09:30", "2027-01-01 10:00",
             "2027-01-04 09:30"]
    # 30 days after the update at 10:00 on 2 November; 60 days falls on New Year's Day.
    assert simulate(times, [ongoing]) == [("2026-12-02 10:00", "stale", OWNER, "HW 3"),
                                          ("2027-01-04 09:30", "stale", OWNER, "HW 3")]
    result = plan(at("2026-12-02 09:30"), [ongoing], PEOPLE, set())
    assert result.next_check[10] == at("2026-12-02 10:00")


def test_per_workstream_cadence_overrides_apply() -> None:
    quick = action(cadence=Cadence(before_due=(3,), on_due=False, overdue_every=0, escalate_after=0))
    sent = simulate(["2026-12-15 09:30", "2026-12-18 09:30", "2027-01-06 09:30"], [quick])
    assert sent == [("2026-12-15 09:30", "before_due", OWNER, "HW 3")]


def test_review_cycle_requests_chases_and_tells_the_lead_who_has_not_answered() -> None:
    meeting = dt.date(2027, 1, 5)  # first Tuesday of the quarter
    request, chase, missing = (at(f"{d} 09:30") for d in ("2026-12-17", "2026-12-24", "2026-12-31"))
    steps = [ReviewMilestone("EDI Board", meeting, "review_request", request, request),
             ReviewMilestone("EDI Board", meeting, "review_chase", chase, request),
             ReviewMilestone("EDI Board", meeting, "review_missing", missing, request)]
    quiet = action(id=1, due=dt.date(2027, 6, 30))
    answered = action(id=2, ref="CP1", due=dt.date(2027, 6, 30), last_update_at=at("2026-12-18 11:00"))
    sent: set[str] = set()
    seen = []
    for when, milestone in (("2026-12-17 09:30", steps[0]), ("2026-12-24 09:30", steps[1]), ("2026-12-31 09:30", steps[2])):
        result = plan(at(when), [], PEOPLE, sent, edi_lead_id=LEAD, reviews=[milestone], review_actions=[quiet, answered])
        seen += [(n.rule, n.person_id, n.ref) for n in result.nudges]
        sent |= {n.key for n in result.nudges}
    assert seen == [
        ("review_request", OWNER, "HW 3"), ("review_request", OWNER, "CP1"),
        ("review_chase", OWNER, "HW 3"),
        ("review_missing", LEAD, "HW 3"),
    ]


def test_review_nudges_name_the_board_its_meeting_and_for_the_lead_the_owners_and_who_is_away() -> None:
    meeting = dt.date(2027, 1, 5)
    request, missing = at("2026-12-17 09:30"), at("2026-12-31 09:30")
    two_owners = action(id=1, due=dt.date(2027, 6, 30), owner_ids=(OWNER, COVER))
    people = {**PEOPLE, COVER: replace(PEOPLE[COVER], away_until=dt.date(2027, 1, 8))}
    asked = plan(request, [], people, set(), edi_lead_id=LEAD,
                 reviews=[ReviewMilestone("EDI Board", meeting, "review_request", request, request)],
                 review_actions=[two_owners])
    assert [(n.person_id, n.why) for n in asked.nudges] == [
        (OWNER, Why("review_request", board="EDI Board", meeting=meeting))]  # Sam is away with no cover: waits
    told = plan(missing, [], people, set(), edi_lead_id=LEAD,
                reviews=[ReviewMilestone("EDI Board", meeting, "review_missing", missing, request)],
                review_actions=[two_owners])
    assert [(n.person_id, n.why) for n in told.nudges] == [(LEAD, Why(
        "review_missing", board="EDI Board", meeting=meeting, owners=("Priya Shah", "Sam Ade"),
        away=(("Sam Ade", dt.date(2027, 1, 8)),)))]


def test_a_late_import_says_how_many_working_days_are_really_left() -> None:
    # Added three working days before the deadline: the 10-day reminder goes once, telling the truth.
    result = plan(at("2026-12-15 11:00"), [action()], PEOPLE, set())
    assert [n.why for n in result.nudges] == [Why("before_due", due=dt.date(2026, 12, 18), working_days=3)]


def test_each_deadline_nudge_says_how_things_stand_on_the_day_it_goes() -> None:
    due = dt.date(2026, 12, 18)
    whys = {when: [(n.person_id, n.why) for n in plan(at(when), [action()], PEOPLE, set()).nudges]
            for when in ("2026-12-04 09:30", "2026-12-18 09:30", "2026-12-29 09:30", "2027-01-06 09:30")}
    assert whys == {
        "2026-12-04 09:30": [(OWNER, Why("before_due", due=due, working_days=10))],
        "2026-12-18 09:30": [(OWNER, Why("due", due=due, working_days=0))],
        # Christmas, Boxing Day (observed Mon 28) are not working days: 5 working days late.
        "2026-12-29 09:30": [(OWNER, Why("overdue", due=due, working_days=-5))],
        "2027-01-06 09:30": [(OWNER, Why("overdue", due=due, working_days=-10)),
                             (MANAGER, Why("escalation", due=due, working_days=-10))],
    }


def test_a_catch_up_after_downtime_counts_todays_working_days_not_the_missed_days() -> None:
    # The sweep was down from the due date on: the one catch-up on 3 February says 30 days late.
    late = plan(at("2027-02-03 09:30"), [action(cadence=Cadence(escalate_after=0))], PEOPLE, set())
    assert [n.why for n in late.nudges] == [Why("overdue", due=dt.date(2026, 12, 18), working_days=-30)]
    # A due date on a Saturday: the due nudge goes on the Friday before, and says "due today".
    weekend = plan(at("2026-12-18 09:30"), [action(due=dt.date(2026, 12, 19))], PEOPLE, set())
    assert [n.why for n in weekend.nudges] == [Why("due", due=dt.date(2026, 12, 19), working_days=0)]


def test_an_update_request_says_how_long_the_action_has_been_quiet_and_what_kind_it_is() -> None:
    recurring = action(due=None, recurring=True, last_update_at=dt.datetime(2026, 10, 20, tzinfo=UTC))
    undated = action(id=11, ref="CP1", due=None)  # added on 1 September, never updated
    result = plan(at("2026-12-02 10:00"), [recurring, undated], PEOPLE, set())
    assert {n.ref: n.why for n in result.nudges} == {
        "HW 3": Why("stale", days_since_update=43, recurring=True),
        "CP1": Why("stale", days_since_update=92, never_updated=True),
    }


def test_the_lead_is_told_when_the_plan_names_no_owner_at_all() -> None:
    result = plan(at("2026-12-04 09:30"), [action(owner_ids=(), owner_roles=())], PEOPLE, set(), edi_lead_id=LEAD)
    assert [(n.person_id, n.why.unowned, n.why.roles) for n in result.nudges] == [(LEAD, True, ())]


def test_an_action_that_cannot_be_planned_stays_a_problem_of_its_own() -> None:
    # A due date no calendar can reach (an old import, a bug): planning it overflows. Every other
    # action is still planned; the bad one is looked at again in an hour, and says why.
    now = at("2026-12-04 09:30")
    broken = action(id=11, ref="S1", due=dt.date(9999, 12, 31))
    result = plan(now, [broken, action()], PEOPLE, set())
    assert [(n.ref, n.rule) for n in result.nudges] == [("HW 3", "before_due")]
    assert list(result.problems) == [11] and result.problems[11].startswith("OverflowError")
    assert result.next_check[11] == now + dt.timedelta(hours=1)
    assert result.unreachable == []


def test_after_downtime_the_next_overdue_nudge_is_a_full_interval_after_the_catch_up() -> None:
    # Due Mon 2 Nov 2026; Chaser was down for all of November. The catch-up goes on Tue 1 Dec;
    # the fixed series (every 5 working days from the due date) would say Wed 2 Dec next.
    late = action(due=dt.date(2026, 11, 2), cadence=Cadence(escalate_after=0))
    days = ["2026-12-01 09:30", "2026-12-02 09:30", "2026-12-03 09:30", "2026-12-07 09:30", "2026-12-08 09:30"]
    assert simulate(days, [late]) == [("2026-12-01 09:30", "overdue", OWNER, "HW 3"),
                                      ("2026-12-08 09:30", "overdue", OWNER, "HW 3")]


def test_a_nudge_held_back_by_leave_restarts_the_interval() -> None:
    # Back on Tue 29 Dec after leave: the overdue nudge held back goes then, and the next one is
    # five working days later (Wed 6 Jan 2027, Christmas and New Year skipped), not the series' next day.
    people = {**PEOPLE, OWNER: replace(PEOPLE[OWNER], away_until=dt.date(2026, 12, 24))}
    one = action(due=dt.date(2026, 12, 11), cadence=Cadence(escalate_after=0))
    days = ["2026-12-18 09:30", "2026-12-29 09:30", "2026-12-30 09:30", "2027-01-05 09:30", "2027-01-06 09:30"]
    assert simulate(days, [one], people) == [("2026-12-29 09:30", "overdue", OWNER, "HW 3"),
                                             ("2027-01-06 09:30", "overdue", OWNER, "HW 3")]


def test_a_stale_request_is_repeated_a_full_period_after_the_last_one() -> None:
    ongoing = action(due=None, recurring=True, created_at=at("2026-06-01 12:00"))
    days = ["2026-12-01 09:30", "2026-12-02 09:30", "2026-12-31 09:30", "2027-01-04 09:30"]
    # Months of silence: one request on 1 Dec, the next 30 days later (the 31st), not every day.
    assert simulate(days, [ongoing]) == [("2026-12-01 09:30", "stale", OWNER, "HW 3"),
                                         ("2026-12-31 09:30", "stale", OWNER, "HW 3")]
