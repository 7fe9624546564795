"""Escalation policies and notification rules over real gRPC, NATS, timers and local receivers:
a team defined through PutTeam with routing rules (level A: everybody after 5 min; level C at
night in Berlin: only the on-call, no escalation until 08:00) and a member whose e-mail follows
their webhook after 2 minutes unless the page was acknowledged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.nats_embedded import EmbeddedNats
from careops_eventstore.sqlstate import timers
from prometheus_client import REGISTRY
from sqlalchemy import select

from incident.main import IncidentService
from incident.projections import CONTACT_TIMER, IncidentTimerProjection
from incident.tests.conftest import CS_SLACK, incident_service_on, write_config
from incident.tests.test_paging import SEVERE, acknowledge, event_types, key, posts_for
from tests.receivers import HttpReceiver, MailReceiver
from tests.support import (
    FakeClock,
    channel_to,
    eventually,
    field_violations,
    fire_due_timers,
    projected,
)

Stub = incident_pb2_grpc.IncidentServiceStub
BERLIN = ZoneInfo("Europe/Berlin")
TEAM = "technical_support"
ESCALATED = "careops.incident.v1.PageEscalated"


def team(http: HttpReceiver) -> t.Team:
    """Technical support with named policies, routing rules and ts-alice's notification rules."""

    def webhook(path: str) -> t.ContactPoint:
        return t.ContactPoint(kind=t.CONTACT_KIND_WEBHOOK, address=http.url(path))

    return t.Team(
        team_id=TEAM,
        name="Technical support",
        members=[
            t.Member(
                member_id="ts-alice",
                contacts=[
                    webhook("/esc-alice"),
                    t.ContactPoint(kind=t.CONTACT_KIND_EMAIL, address="alice@example.test"),
                ],
                notification_rules=[
                    t.NotificationRule(kind=t.CONTACT_KIND_WEBHOOK),
                    t.NotificationRule(kind=t.CONTACT_KIND_EMAIL, delay_seconds=120),
                ],
            ),
            t.Member(member_id="ts-bob", contacts=[webhook("/esc-bob")]),
            t.Member(member_id="ts-lead", contacts=[webhook("/esc-lead")]),
        ],
        rotation=t.Rotation(
            member_ids=["ts-alice", "ts-bob"],
            handoff_time="09:00",
            time_zone="UTC",
            shift_days=3650,
            start_date="2026-01-01",
        ),
        escalation=t.EscalationPolicy(
            steps=[
                t.EscalationStep(target="oncall", wait_seconds=60),
                t.EscalationStep(target="next", wait_seconds=60),
            ],
            repeat=1,
        ),
        manager_id="ts-lead",
        policies=[
            t.EscalationPolicy(
                policy_id="all-hands",
                steps=[
                    t.EscalationStep(target="oncall", wait_seconds=300),
                    t.EscalationStep(target="team", wait_seconds=300),
                ],
                repeat=1,
            )
        ],
        routing=[
            t.RoutingRule(policy_id="all-hands", levels=[t.INCIDENT_LEVEL_A]),
            t.RoutingRule(
                levels=[t.INCIDENT_LEVEL_C],
                from_time="20:00",
                until_time="08:00",
                time_zone="Europe/Berlin",
                hold=True,
            ),
        ],
    )


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
async def service(
    tmp_path_factory: pytest.TempPathFactory,
    incident_nats: EmbeddedNats,
    receivers: tuple[HttpReceiver, MailReceiver],
    clock: FakeClock,
) -> AsyncIterator[IncidentService]:
    http, mail = receivers
    directory = tmp_path_factory.mktemp("escalation")
    config = write_config(directory, http, mail.port)
    async with incident_service_on(clock, directory / "data", incident_nats.url, **config) as svc:
        async with channel_to(svc) as channel:
            stub = Stub(channel)
            put = await stub.PutTeam(pb.PutTeamRequest(team=team(http)), metadata=key())
            assert [p.policy_id for p in put.team.policies] == ["all-hands"]
            assert put.team.members[0].notification_rules[1].delay_seconds == 120
        yield svc


@pytest.fixture
async def stub(service: IncidentService) -> AsyncIterator[Stub]:
    async with channel_to(service) as channel:
        yield Stub(channel)


async def declare(stub: Stub, factors: t.RiskFactors) -> pb.Incident:
    reply = await stub.DeclareIncident(
        pb.DeclareIncidentRequest(
            type="server_crash", title=f"Escalation {uuid.uuid4().hex[:6]}", factors=factors
        ),
        metadata=key(),
    )
    return reply.incident


async def pages_of(stub: Stub, incident_id: str) -> list[pb.Page]:
    got = await stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    return [p for p in got.incident.pages if p.team_id == TEAM]


async def fire(service: IncidentService) -> None:
    await fire_due_timers(service, IncidentTimerProjection.name)


def contact_timers(service: IncidentService, page_id: str) -> list[str]:
    """The page's pending delayed-contact timers (kind page_contact) in the timers table."""
    query = select(timers.c.timer_id).where(
        timers.c.kind == CONTACT_TIMER,
        timers.c.timer_id.startswith(f"inc.{page_id}.contact.", autoescape=True),
    )
    with service.engine.connect() as connection:
        return sorted(connection.execute(query).scalars())


def mails_to(mail: MailReceiver, address: str, incident_id: str) -> list[object]:
    return [m for m in mail.messages if address in m[1] and incident_id.encode() in m[2]]


async def test_a_level_c_incident_at_night_pages_only_the_oncall_until_eight(
    stub: Stub,
    service: IncidentService,
    clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    local = clock.now.astimezone(BERLIN)
    night = datetime.combine(local.date() + timedelta(days=1), time(23, 0), BERLIN)
    clock.set(night.astimezone(UTC))
    incident = await declare(stub, t.RiskFactors())
    assert incident.level == t.INCIDENT_LEVEL_C
    (page,) = [p for p in incident.pages if p.team_id == TEAM]
    morning = datetime.combine(night.date() + timedelta(days=1), time(8, 0), BERLIN)
    assert page.member_id == "ts-alice"
    assert page.ack_due_at.ToDatetime(tzinfo=UTC) == morning.astimezone(UTC)
    await eventually(lambda: posts_for(http, "/esc-alice", incident.incident_id))
    # Hours pass in the night: nobody else is paged.
    clock.set((morning - timedelta(minutes=1)).astimezone(UTC))
    await fire(service)
    assert ESCALATED not in await event_types(service, incident.incident_id)
    assert posts_for(http, "/esc-bob", incident.incident_id) == []
    # At 08:00 the chain goes on: the next in the rotation, with the step's own wait.
    clock.set(morning.astimezone(UTC))
    await fire(service)
    await eventually(lambda: posts_for(http, "/esc-bob", incident.incident_id))
    bob = next(p for p in await pages_of(stub, incident.incident_id) if p.member_id == "ts-bob")
    assert bob.step == 1
    assert bob.ack_due_at.ToDatetime(tzinfo=UTC) == morning.astimezone(UTC) + timedelta(seconds=60)


async def test_level_a_pages_the_whole_team_after_the_wait(
    stub: Stub,
    service: IncidentService,
    clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    incident = await declare(stub, SEVERE)
    assert incident.level == t.INCIDENT_LEVEL_A
    (first,) = [p for p in incident.pages if p.team_id == TEAM]
    assert (first.member_id, first.policy_id) == ("ts-alice", "all-hands")
    assert [(c.contact.kind, c.delay_seconds) for c in first.plan] == [
        (t.CONTACT_KIND_WEBHOOK, 0),
        (t.CONTACT_KIND_EMAIL, 120),
    ]
    due = first.ack_due_at.ToDatetime(tzinfo=UTC)
    assert due == clock.now + timedelta(seconds=300)
    clock.set(due - timedelta(milliseconds=1))
    await fire(service)
    assert len(await pages_of(stub, incident.incident_id)) == 1
    clock.set(due)
    await fire(service)
    for path in ("/esc-bob", "/esc-lead"):
        await eventually(partial(posts_for, http, path, incident.incident_id))
    step_one = [p for p in await pages_of(stub, incident.incident_id) if p.step == 1]
    assert sorted(p.member_id for p in step_one) == ["ts-alice", "ts-bob", "ts-lead"]
    assert len(posts_for(http, "/esc-alice", incident.incident_id)) == 2
    # Anyone of the team acknowledging stops the chain for all of them.
    await acknowledge(service, step_one[1].page_id, step_one[1].member_id)
    clock.advance(301)
    await fire(service)
    after = await pages_of(stub, incident.incident_id)
    assert len(after) == 4 and not any(p.escalated for p in after if p.step == 1)


async def test_a_delayed_email_is_not_sent_when_the_page_is_acknowledged_before_its_delay(
    stub: Stub,
    service: IncidentService,
    clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, mail = receivers
    acked = await declare(stub, SEVERE)
    ignored = await declare(stub, SEVERE)
    for incident in (acked, ignored):
        await eventually(partial(posts_for, http, "/esc-alice", incident.incident_id))
    assert mails_to(mail, "alice@example.test", acked.incident_id) == []
    (page,) = [p for p in acked.pages if p.team_id == TEAM]
    (other,) = [p for p in ignored.pages if p.team_id == TEAM]
    await projected(service, IncidentTimerProjection.name)
    assert contact_timers(service, page.page_id) == [f"inc.{page.page_id}.contact.120"]
    clock.advance(60)
    await acknowledge(service, page.page_id, "ts-alice")
    # The acknowledged page's delayed e-mail is cancelled in the timers table, not left to
    # fire and do nothing; the unacknowledged page's stays.
    await projected(service, IncidentTimerProjection.name)
    assert contact_timers(service, page.page_id) == []
    assert contact_timers(service, other.page_id) == [f"inc.{other.page_id}.contact.120"]
    clock.advance(60)
    await fire(service)
    # The unacknowledged page's e-mail goes out at 2 minutes; the acknowledged one's never.
    await eventually(lambda: mails_to(mail, "alice@example.test", ignored.incident_id))
    types = await event_types(service, acked.incident_id)
    assert "careops.incident.v1.PageContactsDue" not in types
    assert mails_to(mail, "alice@example.test", acked.incident_id) == []
    assert "careops.incident.v1.PageContactsDue" in await event_types(service, ignored.incident_id)
    sent = REGISTRY.get_sample_value("careops_page_delayed_contacts_total", {"team": TEAM})
    assert sent and sent >= 1


async def test_a_bad_policy_is_refused_with_located_violations(
    stub: Stub, receivers: tuple[HttpReceiver, MailReceiver]
) -> None:
    http, _ = receivers
    bad = team(http)
    bad.routing.add(policy_id="nope", from_time="25:00", until_time="08:00")
    bad.members[1].notification_rules.add(kind=t.CONTACT_KIND_EMAIL, delay_seconds=60)
    bad.policies.add(policy_id="empty", repeat=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PutTeam(pb.PutTeamRequest(team=bad), metadata=key())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(field_violations(caught.value)) == [
        "team.members[1].notification_rules[0].kind",
        "team.policies[1].steps",
        "team.routing[2].from_time",
        "team.routing[2].policy_id",
    ]


async def test_a_failing_channel_tries_the_members_next_channel_at_once(
    stub: Stub,
    service: IncidentService,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, mail = receivers
    # Customer service's Slack always answers 503; cs-carol's e-mail is planned 10 min later.
    carol = t.Member(
        member_id="cs-carol",
        contacts=[
            t.ContactPoint(kind=t.CONTACT_KIND_SLACK, address=http.url(CS_SLACK)),
            t.ContactPoint(kind=t.CONTACT_KIND_EMAIL, address="carol@example.test"),
        ],
        notification_rules=[
            t.NotificationRule(kind=t.CONTACT_KIND_SLACK),
            t.NotificationRule(kind=t.CONTACT_KIND_EMAIL, delay_seconds=600),
        ],
    )
    service_team = t.Team(
        team_id="customer_service",
        members=[carol],
        escalation=t.EscalationPolicy(
            steps=[t.EscalationStep(target="oncall", wait_seconds=900)], repeat=1
        ),
    )
    await stub.PutTeam(pb.PutTeamRequest(team=service_team), metadata=key())
    incident = await declare(stub, SEVERE)
    (page,) = [p for p in incident.pages if p.team_id == "customer_service"]
    # The clock stands still: the e-mail goes out because Slack failed, not because 10 min passed.
    await eventually(partial(mails_to, mail, "carol@example.test", incident.incident_id))
    got = await stub.GetIncident(pb.GetIncidentRequest(incident_id=incident.incident_id))
    (after,) = [p for p in got.incident.pages if p.page_id == page.page_id]
    outcomes = {d.kind: d.delivered for d in after.deliveries}
    assert outcomes.get(t.CONTACT_KIND_SLACK) is False
    types = await event_types(service, incident.incident_id)
    assert "careops.incident.v1.PageContactsDue" in types
