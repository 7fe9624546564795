"""Escalation policies as steps (incident.domain.escalation) and their use by decide: routing by
time of day (across midnight, in a time zone) and by level, person / schedule / team targets,
repeats, holds, skipped steps and per-person contact plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incident import domain as d
from incident.domain import escalation as esc

BERLIN_NIGHT = d.RoutingRule(
    levels=(d.Level.C,), from_time="20:00", until_time="08:00", time_zone="Europe/Berlin", hold=True
)
ALL_HANDS = d.EscalationPolicy(
    (d.EscalationStep("oncall", 300), d.EscalationStep("team", 300)), 1, "all-hands"
)
WEBHOOK = d.ContactPoint(d.ContactKind.WEBHOOK, "http://receiver.test/a")
EMAIL = d.ContactPoint(d.ContactKind.EMAIL, "a@example.test")


def member(member_id: str, *rules: d.NotificationRule) -> d.Member:
    contacts = (
        d.ContactPoint(d.ContactKind.WEBHOOK, f"http://receiver.test/{member_id}"),
        d.ContactPoint(d.ContactKind.EMAIL, f"{member_id}@example.test"),
    )
    return d.Member(member_id, contacts=contacts, notification_rules=rules)


SRE = d.Team(
    "sre",
    members=(
        member(
            "a",
            d.NotificationRule(d.ContactKind.WEBHOOK),
            d.NotificationRule(d.ContactKind.EMAIL, 120),
        ),
        member("b"),
        member("c"),
    ),
    rotation=d.Rotation(("a", "b"), "09:00", "UTC", 3650, "2026-01-01"),
    escalation=d.EscalationPolicy(
        (
            d.EscalationStep("oncall", 60),
            d.EscalationStep("next", 60),
            d.EscalationStep("manager", 60),
        ),
        2,
    ),
    manager_id="c",
    policies=(ALL_HANDS,),
    routing=(d.RoutingRule("all-hands", levels=(d.Level.A,)), BERLIN_NIGHT),
)
DBA = d.Team("dba", members=(member("x"), member("y")), rotation=d.Rotation(("y", "x")))


def berlin(hour: int, minute: int = 0, day: int = 2) -> datetime:
    """A time in Berlin in December 2026 (UTC+1), as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=1)


def test_a_night_window_applies_across_midnight_in_its_time_zone() -> None:
    assert esc.applies(BERLIN_NIGHT, d.Level.C, berlin(23, 30))
    assert esc.applies(BERLIN_NIGHT, d.Level.C, berlin(0, 15))
    assert esc.applies(BERLIN_NIGHT, d.Level.C, berlin(7, 59))
    assert not esc.applies(BERLIN_NIGHT, d.Level.C, berlin(8, 0))
    assert not esc.applies(BERLIN_NIGHT, d.Level.C, berlin(19, 59))
    # 20:30 UTC is 21:30 in Berlin: in the window; 19:30 UTC is 20:30 there: also in it.
    assert esc.applies(BERLIN_NIGHT, d.Level.C, datetime(2026, 12, 2, 19, 30, tzinfo=UTC))
    assert not esc.applies(BERLIN_NIGHT, d.Level.C, datetime(2026, 12, 2, 7, 30, tzinfo=UTC))


def test_a_day_window_and_an_all_day_rule() -> None:
    day = d.RoutingRule(from_time="08:00", until_time="20:00", time_zone="Asia/Tokyo")
    at_nine_tokyo = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert esc.applies(day, d.Level.B, at_nine_tokyo)
    assert not esc.applies(day, d.Level.B, at_nine_tokyo + timedelta(hours=12))
    assert esc.applies(d.RoutingRule(), d.Level.A, at_nine_tokyo)


def test_the_hold_of_a_night_rule_ends_at_the_next_until_time() -> None:
    assert esc.window_end(BERLIN_NIGHT, berlin(23, 0)) == berlin(8, 0, day=3)
    assert esc.window_end(BERLIN_NIGHT, berlin(2, 0)) == berlin(8, 0)


def test_level_routing_chooses_the_policy_and_the_first_matching_rule_wins() -> None:
    assert esc.route(SRE, d.Level.A, berlin(23, 0)).policy == ALL_HANDS
    night = esc.route(SRE, d.Level.C, berlin(23, 0))
    assert night.policy == SRE.escalation and night.hold_until == berlin(8, 0, day=3)
    day = esc.route(SRE, d.Level.C, berlin(12, 0))
    assert day.policy == SRE.escalation and day.hold_until is None
    assert esc.route(SRE, d.Level.B, berlin(23, 0)) == esc.Route(SRE.chain())


def test_a_held_step_does_not_escalate_before_the_window_ends() -> None:
    night = esc.route(SRE, d.Level.C, berlin(23, 0))
    assert esc.ack_due(night, 0, berlin(23, 0)) == berlin(8, 0, day=3)
    day = esc.route(SRE, d.Level.C, berlin(12, 0))
    assert esc.ack_due(day, 0, berlin(12, 0)) == berlin(12, 1)


def test_skipped_steps_are_passed_over_and_repeats_run_the_chain_again() -> None:
    skipping = esc.Route(SRE.chain(), frozenset({1}))
    assert esc.first(skipping) == (0, 0)
    assert esc.following(skipping, 0, 0) == (2, 0)
    assert esc.following(skipping, 2, 0) == (0, 1)
    assert esc.following(skipping, 2, 1) is None
    assert esc.first(esc.Route(SRE.chain(), frozenset({0}))) == (1, 0)
    plain = esc.Route(SRE.chain())
    walked = [(0, 0)]
    while (after := esc.following(plain, *walked[-1])) is not None:
        walked.append(after)
    assert walked == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]


def test_targets_a_person_a_schedule_and_a_whole_team() -> None:
    at = berlin(12, 0)
    teams = {"dba": DBA}
    assert [r.member_id for r in esc.recipients(SRE, "member:b", at, teams)] == ["b"]
    assert [r.member_id for r in esc.recipients(SRE, "oncall", at, teams)] == ["a"]
    assert [r.member_id for r in esc.recipients(SRE, "next", at, teams)] == ["b"]
    assert [r.member_id for r in esc.recipients(SRE, "manager", at, teams)] == ["c"]
    scheduled = esc.recipients(SRE, "schedule:dba", at, teams)
    assert [r.member_id for r in scheduled] == [DBA.on_call(at)]
    assert scheduled[0].member == DBA.member(DBA.on_call(at))
    assert [r.member_id for r in esc.recipients(SRE, "team", at, teams)] == ["a", "b", "c"]
    assert [r.member_id for r in esc.recipients(SRE, "team:dba", at, teams)] == ["x", "y"]
    # A team that is gone: the paged team's on-call.
    assert [r.member_id for r in esc.recipients(SRE, "team:gone", at, teams)] == ["a"]
    assert esc.referenced_teams(
        d.Team(
            "t",
            policies=(
                d.EscalationPolicy(
                    (d.EscalationStep("schedule:dba", 1), d.EscalationStep("team:t", 1)), 1, "p"
                ),
            ),
        )
    ) == ("dba",)


def test_a_contact_plan_follows_the_rules_in_order_and_defaults_to_everything_at_once() -> None:
    plan = esc.contact_plan(SRE.member("a"))
    assert [(p.contact.kind, p.delay_seconds) for p in plan] == [
        (d.ContactKind.WEBHOOK, 0),
        (d.ContactKind.EMAIL, 120),
    ]
    assert esc.due_now(plan, 0) == (plan[0].contact,) and esc.delays(plan) == (120,)
    everything = esc.contact_plan(SRE.member("b"))
    assert {p.delay_seconds for p in everything} == {0} and len(everything) == 2
    assert esc.contact_plan(None) == ()


# ----------------------------------------------------------------------------- through decide

MATRIX = d.Matrix(
    {"outage": d.MatrixRow("outage", "Outage", (d.MatrixCell("sre", d.Engagement.RED),))}, 1
)
RISK = d.RiskModel()


FACTORS = {
    d.Level.A: d.RiskFactors(users_affected=200_000, core_system=1.0, elapsed_minutes=60),
    d.Level.B: d.RiskFactors(users_affected=100_000),
    d.Level.C: d.RiskFactors(),
}


def context(at: datetime) -> d.Context:
    return d.Context(now=at, risk=RISK, matrix=MATRIX, teams={"sre": SRE, "dba": DBA})


def declared(level: d.Level, at: datetime) -> tuple[d.Incident, list[d.IncidentEvent]]:
    command = d.DeclareIncident("I-1", "outage", "Down", factors=FACTORS[level])
    state, events = fire(d.initial("I-1"), command, at)
    assert state.level is level
    return state, events


def fire(
    state: d.Incident, command: d.Command, at: datetime
) -> tuple[d.Incident, list[d.IncidentEvent]]:
    events = d.decide(state, command, context(at))
    for event in events:
        state = d.evolve(state, event, at)
    return state, events


def pages(events: list[d.IncidentEvent]) -> list[d.PageRequested]:
    return [e for e in events if isinstance(e, d.PageRequested)]


def test_level_a_pages_the_whole_team_after_the_wait() -> None:
    at = berlin(12, 0)
    state, events = declared(d.Level.A, at)
    (first,) = pages(events)
    assert (first.member_id, first.policy_id) == ("a", "all-hands")
    assert first.ack_due_at == at + timedelta(seconds=300)
    assert fire(state, d.FirePageTimer(first.page_id), at + timedelta(seconds=299))[1] == []
    state, escalated = fire(state, d.FirePageTimer(first.page_id), at + timedelta(seconds=300))
    team_pages = pages(escalated)
    assert [p.member_id for p in team_pages] == ["a", "b", "c"]
    assert {(p.step, p.escalated_from) for p in team_pages} == {(1, first.page_id)}
    # One of the whole team's pages firing escalates all of them: the chain ends once.
    later = at + timedelta(seconds=600)
    state, exhausted = fire(state, d.FirePageTimer(team_pages[1].page_id), later)
    assert [type(e).__name__ for e in exhausted] == [
        "PageEscalated",
        "PageEscalated",
        "PageEscalated",
        "EscalationExhausted",
    ]
    assert fire(state, d.FirePageTimer(team_pages[0].page_id), later)[1] == []


def test_level_c_at_night_pages_only_the_oncall_and_escalates_at_eight() -> None:
    at = berlin(23, 0)
    state, events = declared(d.Level.C, at)
    (first,) = pages(events)
    assert first.member_id == "a" and first.ack_due_at == berlin(8, 0, day=3)
    assert fire(state, d.FirePageTimer(first.page_id), berlin(7, 59, day=3))[1] == []
    _, escalated = fire(state, d.FirePageTimer(first.page_id), berlin(8, 0, day=3))
    (second,) = pages(escalated)
    # At 08:00 the night rule no longer applies: the next step waits its own minute.
    assert (second.member_id, second.step) == ("b", 1)
    assert second.ack_due_at == berlin(8, 1, day=3)


def test_a_schedule_step_pages_the_other_teams_oncall() -> None:
    team = d.Team(
        "sre",
        members=(member("a"),),
        escalation=d.EscalationPolicy(
            (d.EscalationStep("oncall", 60), d.EscalationStep("schedule:dba", 60)), 1
        ),
    )
    at = berlin(12, 0)
    ctx = d.Context(now=at, risk=RISK, matrix=MATRIX, teams={"sre": team, "dba": DBA})
    state = d.initial("I-1")
    for event in d.decide(state, d.DeclareIncident("I-1", "outage", "Down"), ctx):
        state = d.evolve(state, event, at)
    later = at + timedelta(seconds=60)
    ctx = d.Context(now=later, risk=RISK, matrix=MATRIX, teams={"sre": team, "dba": DBA})
    (page,) = pages(d.decide(state, d.FirePageTimer("I-1-p0"), ctx))
    oncall = DBA.on_call(later)
    assert (page.team_id, page.member_id) == ("sre", oncall)
    assert page.contacts == DBA.contacts_of(oncall)


def test_a_delayed_contact_goes_out_only_while_the_page_is_unacknowledged() -> None:
    at = berlin(12, 0)
    state, events = declared(d.Level.B, at)
    (page,) = pages(events)
    alice = SRE.member("a")
    assert alice is not None
    assert page.contacts == (alice.contacts[0],)  # the webhook at once
    assert [(p.contact.kind, p.delay_seconds) for p in page.plan] == [
        (d.ContactKind.WEBHOOK, 0),
        (d.ContactKind.EMAIL, 120),
    ]
    due = d.FireContactTimer(page.page_id, 120)
    assert fire(state, due, at + timedelta(seconds=119))[1] == []  # not due yet
    after, sent = fire(state, due, at + timedelta(seconds=120))
    assert sent == [d.PageContactsDue(page.page_id, 120, (alice.contacts[1],))]
    assert fire(after, due, at + timedelta(seconds=121))[1] == []  # once
    acked, _ = fire(state, d.AcknowledgePage(page.page_id, "a"), at + timedelta(seconds=30))
    assert fire(acked, due, at + timedelta(seconds=120))[1] == []


def test_a_failed_channel_tries_the_next_channel_of_the_plan_at_once() -> None:
    at = berlin(12, 0)
    state, events = declared(d.Level.B, at)
    (page,) = pages(events)
    failed = d.RecordDelivery(page.page_id, d.ContactKind.WEBHOOK, 3, "503")
    after, recorded = fire(state, failed, at + timedelta(seconds=5))
    assert recorded[1:] == [d.PageContactsDue(page.page_id, 120, (alice_contacts()[1],))]
    # Its timer later finds the delay issued; an e-mail failing has nothing left to try.
    assert fire(after, d.FireContactTimer(page.page_id, 120), at + timedelta(seconds=120))[1] == []
    email_failed = d.RecordDelivery(page.page_id, d.ContactKind.EMAIL, 3, "550")
    assert [type(e).__name__ for e in fire(after, email_failed, at)[1]] == ["NotificationFailed"]
    assert esc.next_after_failure((), d.ContactKind.WEBHOOK, frozenset()) is None


def alice_contacts() -> tuple[d.ContactPoint, ...]:
    alice = SRE.member("a")
    assert alice is not None
    return alice.contacts


def test_whoever_a_whole_team_step_pages_next_may_acknowledge_before_it() -> None:
    at = berlin(12, 0)
    state, events = declared(d.Level.A, at)
    (first,) = pages(events)
    page = state.pages[first.page_id]
    assert d.escalation_targets(page, SRE, at) == ("a", "b", "c")
    assert d.entitled_to_acknowledge(page, SRE, at) == {"a", "b", "c"}
    plain, plain_events = declared(d.Level.B, at)
    (other,) = pages(plain_events)
    assert d.escalation_targets(plain.pages[other.page_id], SRE, at) == ("b",)


def test_old_team_definitions_keep_their_behaviour() -> None:
    old = d.Team(
        "sre",
        members=(d.Member("a", contacts=(WEBHOOK, EMAIL)), d.Member("b")),
        rotation=d.Rotation(("a", "b"), "09:00", "UTC", 3650, "2026-01-01"),
    )
    at = berlin(12, 0)
    ctx = d.Context(now=at, risk=RISK, matrix=MATRIX, teams={"sre": old})
    events = d.decide(d.initial("I-1"), d.DeclareIncident("I-1", "outage", "Down"), ctx)
    (page,) = pages(events)
    assert page == d.PageRequested(
        page_id="I-1-p0",
        team_id="sre",
        member_id="a",
        step=0,
        round=0,
        contacts=(WEBHOOK, EMAIL),
        ack_due_at=at + timedelta(seconds=300),
        engagement=page.engagement,
    )


def test_validation_locates_every_error() -> None:
    bad = d.Team(
        "sre",
        members=(
            d.Member(
                "a",
                contacts=(WEBHOOK,),
                notification_rules=(
                    d.NotificationRule(d.ContactKind.EMAIL, 0),
                    d.NotificationRule(d.ContactKind.WEBHOOK, -1),
                ),
            ),
        ),
        policies=(
            d.EscalationPolicy((d.EscalationStep("schedule:Bad!", 0),), 0, "p"),
            d.EscalationPolicy((), 1, "p"),
        ),
        routing=(
            d.RoutingRule("nope", from_time="25:00", until_time="08:00", time_zone="Mars/Base"),
            d.RoutingRule("p", skip_steps=(0,), hold=True),
        ),
    )
    assert sorted(d.validate_team(bad)) == sorted(
        [
            ("team.members[0].notification_rules[0].kind", "the member has no such contact point"),
            ("team.members[0].notification_rules[1].delay_seconds", "must be 0..86400"),
            ("team.policies[0].repeat", "must be at least 1"),
            ("team.policies[0].steps[0].target", d.oncall.TARGETS),
            ("team.policies[0].steps[0].wait_seconds", "must be >= 1"),
            ("team.policies[1].policy_id", "policy ids must be unique"),
            ("team.policies[1].steps", "a policy needs at least one step"),
            ("team.routing[0].policy_id", "not one of the team's policies"),
            ("team.routing[0].from_time", "must be HH:MM"),
            ("team.routing[0].time_zone", "unknown time zone 'Mars/Base'"),
            ("team.routing[1].hold", "hold needs a time window (until_time)"),
            ("team.routing[1].skip_steps", "a rule must leave at least one step"),
        ]
    )
    assert d.validate_team(SRE) == []
