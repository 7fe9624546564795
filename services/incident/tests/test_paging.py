"""Declaring, paging, escalating and acknowledging over real gRPC, NATS and local receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
from careops.incident.v1 import incident_pb2 as pb
from careops.incident.v1 import incident_pb2_grpc
from careops.incident.v1 import types_pb2 as t
from careops_eventstore.model import EVENT_TYPE_HEADER
from careops_platform import requests
from careops_platform.errors import PermissionDenied
from careops_platform.identity import Principal, run_as
from prometheus_client import REGISTRY

from incident import domain as d
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM
from incident.main import IncidentService
from incident.projections import IncidentProjection, IncidentTimerProjection
from incident.reactions import deliveries_command_id
from incident.tests.conftest import CS_SLACK, SIGNING_KEY
from tests.receivers import HttpReceiver, MailReceiver
from tests.support import (
    FakeClock,
    appended_by,
    channel_to,
    command_ids,
    eventually,
    fire_due_timers,
    on_call,
    projected,
)

Stub = incident_pb2_grpc.IncidentServiceStub
SEVERE = t.RiskFactors(
    users_affected=200_000,
    core_system=1.0,
    elapsed_minutes=30,
    average_handling_minutes=30,
    exposure=0.6,
)


async def acknowledge(
    service: IncidentService, page_id: str, member_id: str
) -> pb.AcknowledgePageResponse:
    """Acknowledges `page_id` as its on-call member `member_id` would, through the service port."""
    async with channel_to(service, on_call(member_id)) as channel:
        stub = incident_pb2_grpc.IncidentServiceStub(channel)
        request = pb.AcknowledgePageRequest(page_id=page_id, member_id=member_id)
        reply: pb.AcknowledgePageResponse = await stub.AcknowledgePage(request, metadata=key())
        return reply


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


async def declare(stub: Stub, *, drill: bool = False) -> pb.DeclareIncidentResponse:
    return await stub.DeclareIncident(
        pb.DeclareIncidentRequest(
            type="server_crash",
            title=f"Core cluster down {uuid.uuid4().hex[:6]}",
            source=t.INCIDENT_SOURCE_MONITORING,
            factors=SEVERE,
            drill=drill,
        ),
        metadata=key(),
    )


async def event_types(service: IncidentService, incident_id: str) -> list[str]:
    assert service.store is not None
    messages = await service.store.read_subject(
        stream=STREAM.name, subject=f"{INCIDENT_SUBJECTS}.{incident_id}"
    )
    return [kind for m in messages for kind in m.headers[EVENT_TYPE_HEADER].split(",")]


def posts_for(http: HttpReceiver, path: str, incident_id: str) -> list[object]:
    return [p for p in http.posts(path) if p.json().get("incident_id") == incident_id]


async def test_level_a_server_crash_pages_as_the_matrix_says(
    incident_stub: Stub,
    incident_service: IncidentService,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, mail = receivers
    mails_before = len(mail.messages)
    # Customer service's Slack hangs for as long as this block runs: whatever else arrives
    # meanwhile was not held up by it (a down channel must not delay another).
    with http.hold(CS_SLACK):
        # How fast is measured by bench/incident (docs/benchmarks.md §6), not asserted here.
        declared = await declare(incident_stub)
        incident = declared.incident
        assert incident.level == t.INCIDENT_LEVEL_A
        assert {(team.team_id, team.engagement, team.paged) for team in incident.teams} == {
            ("technical_support", t.ENGAGEMENT_RED, True),
            ("customer_service", t.ENGAGEMENT_YELLOW, True),
            ("brand_pr", t.ENGAGEMENT_GREY, False),
        }
        await asyncio.to_thread(http.wait_for, "/ts-alice", 1)
        page = next(
            p for p in http.posts("/ts-alice") if p.json()["incident_id"] == incident.incident_id
        )
        body = page.json()
        assert (
            body["action"] == "trigger"
            and body["level"] == "A"
            and body["team_id"] == "technical_support"
        )
        timestamp = page.headers["x-careops-timestamp"]
        expected = hmac.new(
            SIGNING_KEY.encode(), timestamp.encode() + b"." + page.body, hashlib.sha256
        )
        assert page.headers["x-careops-signature"] == "sha256=" + expected.hexdigest()

        def pagerduty_triggers() -> list[Any]:
            posts = [p.json() for p in http.posts("/pagerduty")]
            return [p for p in posts if incident.incident_id in p["dedup_key"]]

        await eventually(pagerduty_triggers)
        trigger = pagerduty_triggers()[0]
        assert trigger["routing_key"] == "rk-technical-support"
        assert trigger["event_action"] == "trigger"
        assert trigger["payload"]["severity"] == "critical"

        # customer service is paged (its Slack hangs, its e-mail does not), brand PR informed.
        await asyncio.to_thread(http.wait_for, CS_SLACK, 1)  # the Slack post is hanging now
        messages = await asyncio.to_thread(mail.wait_for, mails_before + 1)
        assert messages[-1][1] == ["carol@example.test"]
        informed = await asyncio.to_thread(http.wait_for, "/slack-pr", 1)
        assert any(
            incident.incident_id in p.json()["blocks"][1]["elements"][0]["text"] for p in informed
        )

    async def failure_recorded() -> bool:
        got = (
            await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident.incident_id))
        ).incident
        cs = next(p for p in got.pages if p.team_id == "customer_service")
        kinds = {d.kind: d for d in cs.deliveries}
        return t.CONTACT_KIND_SLACK in kinds and t.CONTACT_KIND_EMAIL in kinds

    await eventually(failure_recorded)
    got = (
        await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident.incident_id))
    ).incident
    cs_page = next(p for p in got.pages if p.team_id == "customer_service")
    deliveries = {d.kind: d for d in cs_page.deliveries}
    assert (
        deliveries[t.CONTACT_KIND_SLACK].failed and deliveries[t.CONTACT_KIND_SLACK].attempts == 4
    )
    assert deliveries[t.CONTACT_KIND_EMAIL].delivered

    # On-call staff who start watching now get the page that waits for them, replayed.
    call = incident_stub.WatchAlerts(pb.WatchAlertsRequest(team_id="technical_support"))
    async for alert in call:
        if alert.incident_id == incident.incident_id:
            break
    call.cancel()
    assert alert.kind == t.ALERT_KIND_PAGE and alert.replayed
    assert alert.member_id in {"ts-alice", "ts-bob"} and alert.level == t.INCIDENT_LEVEL_A


async def test_watch_alerts_streams_new_pages_and_acknowledgements(
    incident_stub: Stub, incident_service: IncidentService
) -> None:
    # A page waiting before the watch starts is replayed first: once it arrives, the watch has
    # taken its snapshot, so everything declared from now on must come live.
    marker = (await declare(incident_stub)).incident.incident_id
    await projected(incident_service, IncidentProjection.name)
    call = incident_stub.WatchAlerts(pb.WatchAlertsRequest(team_id="technical_support"))
    seen: list[pb.WatchAlertsResponse] = []

    async def collect() -> None:
        async for alert in call:
            seen.append(alert)

    collector = asyncio.create_task(collect())
    await eventually(lambda: any(a.incident_id == marker and a.replayed for a in seen))
    declared = await declare(incident_stub)
    incident_id = declared.incident.incident_id
    page_id = next(p.page_id for p in declared.incident.pages if p.team_id == "technical_support")
    await acknowledge(incident_service, page_id, "ts-alice")

    def both() -> bool:
        kinds = {(a.kind, a.replayed) for a in seen if a.incident_id == incident_id}
        return {(t.ALERT_KIND_PAGE, False), (t.ALERT_KIND_ACKNOWLEDGED, False)} <= kinds

    await eventually(both)
    call.cancel()
    collector.cancel()
    assert all(a.team_id == "technical_support" for a in seen)


async def test_a_declarations_notices_are_recorded_in_one_append(
    incident_stub: Stub, incident_service: IncidentService
) -> None:
    # Three notices (ts-alice's page, cs-carol's page, brand PR's FYI), two channels each;
    # cs-carol's Slack fails after four attempts, within the dispatcher's record window.
    passed = {"reaction": "incident-pager", "outcome": "passed"}
    passed_before = REGISTRY.get_sample_value("careops_reaction_messages_total", passed) or 0
    declared = await declare(incident_stub)
    incident_id = declared.incident.incident_id
    assert incident_service.store is not None
    store = incident_service.store

    async def recorded() -> list[list[Any]]:
        messages = await store.read_subject(
            stream=STREAM.name, subject=f"{INCIDENT_SUBJECTS}.{incident_id}"
        )
        outcomes = [
            [e.event for e in CODEC.decode_batch(m.batch)]
            for m in messages[1:]
            if "NotificationDelivered" in m.headers[EVENT_TYPE_HEADER]
        ]
        count = sum(len(batch) for batch in outcomes)
        return outcomes if count == 6 else []

    (batch,) = await eventually(recorded)
    assert len({event.notice_id for event in batch}) == 3
    failed = [e for e in batch if isinstance(e, d.NotificationFailed)]
    assert [(e.kind, e.attempts) for e in failed] == [(d.ContactKind.SLACK, 4)]

    # The pager's own record holds nothing it acts on: acked unparsed.
    def record_passed() -> bool:
        now = REGISTRY.get_sample_value("careops_reaction_messages_total", passed) or 0
        return now > passed_before

    await eventually(record_passed)


def test_a_batch_of_outcomes_has_one_command_id_whatever_its_order() -> None:
    webhook = d.DeliveryOutcome(d.ContactKind.WEBHOOK, 1)
    slack = d.DeliveryOutcome(d.ContactKind.SLACK, 4, "HTTP 503")
    one = d.RecordDeliveries("I-1-p0", (webhook,))
    two = d.RecordDeliveries("I-1-n0", (slack, webhook))
    assert deliveries_command_id([one]) == "deliveries-I-1-p0-webhook"
    assert deliveries_command_id([one, two]) == deliveries_command_id(
        [two, d.RecordDeliveries("I-1-p0", (webhook,))]
    )
    assert deliveries_command_id([one, two]) != deliveries_command_id([one])


async def test_retries_until_the_receiver_accepts_and_records_the_attempts(
    incident_stub: Stub, receivers: tuple[HttpReceiver, MailReceiver]
) -> None:
    http, _ = receivers
    http.fail_first["/ts-alice"] = 2
    declared = await declare(incident_stub)
    incident_id = declared.incident.incident_id

    async def delivered() -> bool:
        got = (
            await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
        ).incident
        page = next(p for p in got.pages if p.member_id == "ts-alice")
        return any(d.kind == t.CONTACT_KIND_WEBHOOK and d.delivered for d in page.deliveries)

    await eventually(delivered)
    posts = posts_for(http, "/ts-alice", incident_id)
    assert len(posts) == 3  # 500, 500, 200: one page delivered, two retries
    got = (await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))).incident
    page = next(p for p in got.pages if p.member_id == "ts-alice")
    webhook = next(d for d in page.deliveries if d.kind == t.CONTACT_KIND_WEBHOOK)
    assert webhook.attempts == 3


async def test_no_acknowledgement_escalates_and_acknowledgement_stops_the_chain(
    incident_stub: Stub,
    incident_service: IncidentService,
    incident_clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    declared = await declare(incident_stub)
    incident_id = declared.incident.incident_id
    alice = next(p for p in declared.incident.pages if p.member_id == "ts-alice")
    deadline = alice.ack_due_at.ToDatetime(tzinfo=UTC)
    # Just before ts-alice's 1 s step times out nothing happens ...
    incident_clock.set(deadline - timedelta(milliseconds=1))
    await fire_due_timers(incident_service, IncidentTimerProjection.name)
    assert "careops.incident.v1.PageEscalated" not in await event_types(
        incident_service, incident_id
    )
    # ... at the deadline, nobody having acknowledged, ts-bob is paged.
    incident_clock.set(deadline)
    await fire_due_timers(incident_service, IncidentTimerProjection.name)
    await eventually(lambda: posts_for(http, "/ts-bob", incident_id))
    got = (await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))).incident
    bob = next(p for p in got.pages if p.member_id == "ts-bob")
    acked = await acknowledge(incident_service, bob.page_id, "ts-bob")
    assert acked.incident.status == t.INCIDENT_STATUS_ACKNOWLEDGED
    # Past the next step's timeout, the acknowledgement having reached the timer table: nothing.
    await projected(incident_service, IncidentTimerProjection.name)
    incident_clock.advance(2.5)
    await fire_due_timers(incident_service, IncidentTimerProjection.name)
    types = await event_types(incident_service, incident_id)
    ts_pages = [p for p in acked.incident.pages if p.team_id == "technical_support"]
    assert len(ts_pages) == 2
    assert types.count("careops.incident.v1.PageEscalated") == 1
    assert "careops.incident.v1.EscalationExhausted" not in types
    assert "careops.incident.v1.PageAcknowledged" in types
    assert posts_for(http, "/ts-lead", incident_id) == []
    ack_sum = REGISTRY.get_sample_value(
        "careops_incident_time_to_acknowledge_seconds_count",
        {"level": "A", "team": "technical_support"},
    )
    assert ack_sum and ack_sum >= 1


async def test_an_acknowledgement_by_someone_not_entitled_is_refused_and_the_page_escalates(
    incident_stub: Stub,
    incident_service: IncidentService,
    incident_clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    assert incident_service.store is not None and incident_service.app is not None
    declared = await declare(incident_stub)
    incident_id = declared.incident.incident_id
    alice = next(p for p in declared.incident.pages if p.member_id == "ts-alice")
    # The servicer in-process, as the server runs it for a call carrying this principal:
    # customer service's on-call member, not entitled to technical support's page.
    servicer = incident_service.servicer(incident_service.app)
    idempotency_key = uuid.uuid4().hex
    before = {STREAM.name: await incident_service.store.last_sequence(STREAM.name)}
    restore = run_as(Principal("cs-carol", frozenset({"oncall"})))
    method = f"/{pb.DESCRIPTOR.services_by_name['IncidentService'].full_name}/AcknowledgePage"
    keyed = requests.IDEMPOTENCY_KEY.set(f"{method}:{idempotency_key}")
    try:
        with pytest.raises(PermissionDenied) as denied:
            await servicer.AcknowledgePage(pb.AcknowledgePageRequest(page_id=alice.page_id), None)
    finally:
        requests.IDEMPOTENCY_KEY.reset(keyed)
        restore()
    assert denied.value.permission == "incident.acknowledge_page"
    commands = command_ids(pb.DESCRIPTOR.services_by_name["IncidentService"], idempotency_key)
    assert await appended_by(incident_service.store, before, commands) == []
    # The escalation goes on: at ts-alice's deadline the timer pages ts-bob.
    incident_clock.set(max(incident_clock.now, alice.ack_due_at.ToDatetime(tzinfo=UTC)))
    await fire_due_timers(incident_service, IncidentTimerProjection.name)
    await eventually(lambda: posts_for(http, "/ts-bob", incident_id))
    types = await event_types(incident_service, incident_id)
    assert "careops.incident.v1.PageEscalated" in types
    assert "careops.incident.v1.PageAcknowledged" not in types


async def test_drills_run_the_whole_paging_path_and_are_labelled(
    incident_stub: Stub, receivers: tuple[HttpReceiver, MailReceiver]
) -> None:
    http, _ = receivers
    before = (
        REGISTRY.get_sample_value(
            "careops_incidents_declared_total",
            {"level": "A", "type": "server_crash", "drill": "true"},
        )
        or 0.0
    )
    declared = await declare(incident_stub, drill=True)
    incident_id = declared.incident.incident_id
    await eventually(lambda: posts_for(http, "/ts-alice", incident_id))
    assert posts_for(http, "/ts-alice", incident_id)[0].json()["drill"] is True  # type: ignore[attr-defined]
    after = REGISTRY.get_sample_value(
        "careops_incidents_declared_total", {"level": "A", "type": "server_crash", "drill": "true"}
    )
    assert after == before + 1
    listed = await incident_stub.ListIncidents(
        pb.ListIncidentsRequest(min_sequence=declared.sequence)
    )
    assert incident_id not in {i.incident_id for i in listed.incidents}
    with_drills = await incident_stub.ListIncidents(pb.ListIncidentsRequest(include_drills=True))
    assert incident_id in {i.incident_id for i in with_drills.incidents}


@pytest.mark.parametrize(
    ("call", "code", "words"),
    [
        (
            lambda s, md: s.DeclareIncident(
                pb.DeclareIncidentRequest(type="alien_invasion", title="x"), metadata=md
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown incident type",
        ),
        (
            lambda s, md: s.DeclareIncident(
                pb.DeclareIncidentRequest(
                    type="server_crash", title="x", factors=t.RiskFactors(users_affected=-3)
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "users_affected",
        ),
        (
            lambda s, md: s.AcknowledgePage(
                pb.AcknowledgePageRequest(page_id="I-nope-p0"), metadata=md
            ),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (
            lambda s, md: s.PutResponseMatrix(
                pb.PutResponseMatrixRequest(
                    rows=[
                        t.MatrixRow(
                            incident_type="server_crash",
                            cells=[
                                t.MatrixCell(team_id="ghost_busters", engagement=t.ENGAGEMENT_RED)
                            ],
                        )
                    ]
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ghost_busters",
        ),
        (
            lambda s, md: s.GetTeam(pb.GetTeamRequest(team_id="nobody")),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
    ],
)
async def test_bad_input_is_rejected_and_appends_nothing(
    incident_stub: Stub,
    incident_service: IncidentService,
    call: object,
    code: grpc.StatusCode,
    words: str,
) -> None:
    assert incident_service.store is not None
    idempotency_key = uuid.uuid4().hex
    before = {STREAM.name: await incident_service.store.last_sequence(STREAM.name)}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(incident_stub, (("idempotency-key", idempotency_key),))  # type: ignore[operator]
    assert caught.value.code() == code
    assert words in (caught.value.details() or "")
    # The handler answered after deciding: a rejected command has appended nothing by now.
    commands = command_ids(pb.DESCRIPTOR.services_by_name["IncidentService"], idempotency_key)
    assert await appended_by(incident_service.store, before, commands) == []


async def test_matrix_changes_are_versioned_and_recorded_on_incidents(incident_stub: Stub) -> None:
    current = (await incident_stub.GetResponseMatrix(pb.GetResponseMatrixRequest())).matrix
    rows = list(current.rows) + [
        t.MatrixRow(
            incident_type="payment_failure",
            title="Payments failing",
            cells=[t.MatrixCell(team_id="technical_support", engagement=t.ENGAGEMENT_RED)],
        )
    ]
    changed = await incident_stub.PutResponseMatrix(
        pb.PutResponseMatrixRequest(rows=rows), metadata=key()
    )
    assert changed.matrix.version > current.version
    declared = await incident_stub.DeclareIncident(
        pb.DeclareIncidentRequest(type="payment_failure", title="Card payments fail"),
        metadata=key(),
    )
    assert declared.incident.matrix_version == changed.matrix.version


async def test_lifecycle_reassess_roles_updates_resolve_close(incident_stub: Stub) -> None:
    declared = await incident_stub.DeclareIncident(
        pb.DeclareIncidentRequest(
            type="server_crash",
            title="Checkout slow",
            factors=t.RiskFactors(users_affected=20, core_system=0.2),
        ),
        metadata=key(),
    )
    incident_id = declared.incident.incident_id
    assert declared.incident.level == t.INCIDENT_LEVEL_C
    raised = await incident_stub.ReassessIncident(
        pb.ReassessIncidentRequest(
            incident_id=incident_id, factors=SEVERE, reason="it is the whole cluster"
        ),
        metadata=key(),
    )
    assert raised.incident.level == t.INCIDENT_LEVEL_A
    assert any("it is the whole cluster" in e.text for e in raised.incident.timeline)
    # customer service was only informed at level C; at level A it is paged.
    assert any(p.team_id == "customer_service" for p in raised.incident.pages)
    await incident_stub.AssignRole(
        pb.AssignRoleRequest(
            incident_id=incident_id, role="incident_commander", member_id="ts-lead"
        ),
        metadata=key(),
    )
    updated = await incident_stub.AddUpdate(
        pb.AddUpdateRequest(
            incident_id=incident_id,
            message="Failover started",
            public_statement_draft="We are restoring checkout.",
        ),
        metadata=key(),
    )
    assert updated.incident.roles["incident_commander"] == "ts-lead"
    assert updated.incident.public_statement_draft == "We are restoring checkout."
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await incident_stub.CloseIncident(
            pb.CloseIncidentRequest(incident_id=incident_id), metadata=key()
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await incident_stub.ResolveIncident(
        pb.ResolveIncidentRequest(incident_id=incident_id, summary="failover done"), metadata=key()
    )
    closed = await incident_stub.CloseIncident(
        pb.CloseIncidentRequest(
            incident_id=incident_id,
            review=t.PostIncidentReview(
                root_cause="disk full on primary",
                prevention_actions=["alert at 80% disk"],
                knowledge_base_entry="KB-42",
            ),
        ),
        metadata=key(),
    )
    assert closed.incident.status == t.INCIDENT_STATUS_CLOSED
    assert closed.incident.review.knowledge_base_entry == "KB-42"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await incident_stub.ResolveIncident(
            pb.ResolveIncidentRequest(incident_id=incident_id), metadata=key()
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_open_incidents_gauge_counts_by_level_leaving_drills_out(
    incident_stub: Stub, incident_service: IncidentService
) -> None:
    def open_by_level() -> dict[str, float]:
        [family] = incident_service.collector.collect()
        return {sample.labels["level"]: sample.value for sample in family.samples}

    # Earlier tests' incidents must be in the read model before counting, or their late
    # projection lands between `before` and `after` (min_sequence=0 waited for nothing).
    await projected(incident_service, IncidentProjection.name)
    before = open_by_level()
    real = await declare(incident_stub)
    drill = await declare(incident_stub, drill=True)
    await incident_stub.ListIncidents(
        pb.ListIncidentsRequest(min_sequence=max(real.sequence, drill.sequence))
    )
    after = open_by_level()
    assert set(after) == {"A", "B", "C"}
    assert after["A"] == before["A"] + 1  # the level-A real incident, not the drill
    assert (after["B"], after["C"]) == (before["B"], before["C"])


async def test_watch_alerts_resumes_after_a_sequence_from_the_log(
    incident_stub: Stub, incident_service: IncidentService
) -> None:
    declared = await declare(incident_stub)
    call = incident_stub.WatchAlerts(
        pb.WatchAlertsRequest(team_id="technical_support", after_sequence=declared.sequence - 1)
    )
    first = await anext(aiter(call))
    call.cancel()
    # Nothing from before the sequence is replayed: the first alert is the declared page.
    assert (first.incident_id, first.kind) == (declared.incident.incident_id, t.ALERT_KIND_PAGE)
    assert first.sequence == declared.sequence and not first.replayed

    # A waiting page replayed by a fresh watch carries the sequence of its request too.
    assert await incident_service.wait_for(IncidentProjection.name, declared.sequence, 10)
    fresh = incident_stub.WatchAlerts(pb.WatchAlertsRequest(team_id="technical_support"))
    async for alert in fresh:
        if alert.incident_id == declared.incident.incident_id:
            break
    fresh.cancel()
    assert alert.replayed and alert.sequence == declared.sequence

    beyond = incident_stub.WatchAlerts(
        pb.WatchAlertsRequest(team_id="technical_support", after_sequence=10**12)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await anext(aiter(beyond))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "after_sequence" in (caught.value.details() or "")


# The PagerDuty tests come last: their incidents' other channels (a Slack that is down, with
# retries) still append outcomes for a while, which the tests above would see on the stream.


def pagerduty_alerts(http: HttpReceiver, dedup_key: str, action: str) -> list[Any]:
    """Returns the Events API v2 alert events (trigger / acknowledge / resolve) of one key."""
    posts = [p.json() for p in http.posts("/pagerduty")]
    return [p for p in posts if p["dedup_key"] == dedup_key and p["event_action"] == action]


async def test_an_informed_team_gets_a_pagerduty_change_event_never_an_alert(
    incident_stub: Stub, receivers: tuple[HttpReceiver, MailReceiver]
) -> None:
    http, _ = receivers
    incident_id = (await declare(incident_stub)).incident.incident_id

    def changes() -> list[Any]:
        posts = [p.json() for p in http.posts("/pagerduty-change")]
        return [p for p in posts if p["payload"]["custom_details"]["incident_id"] == incident_id]

    await eventually(lambda: changes())
    change = changes()[0]
    assert change["routing_key"] == "rk-brand-pr"
    assert "event_action" not in change and "dedup_key" not in change
    assert change["payload"]["custom_details"]["action"] == "inform"
    # That change event was the notice's one PagerDuty delivery: no alert opens for brand PR.
    assert pagerduty_alerts(http, f"careops-{incident_id}-brand_pr", "trigger") == []


async def test_acknowledging_any_page_of_a_team_acknowledges_its_pagerduty_alert(
    incident_stub: Stub,
    incident_service: IncidentService,
    incident_clock: FakeClock,
    receivers: tuple[HttpReceiver, MailReceiver],
) -> None:
    http, _ = receivers
    declared = await declare(incident_stub)
    incident_id = declared.incident.incident_id
    dedup_key = f"careops-{incident_id}-technical_support"
    await eventually(lambda: pagerduty_alerts(http, dedup_key, "trigger"))
    # ts-alice's page (with PagerDuty) escalates to ts-bob (without), and ts-bob acknowledges.
    alice = next(p for p in declared.incident.pages if p.member_id == "ts-alice")
    incident_clock.set(max(incident_clock.now, alice.ack_due_at.ToDatetime(tzinfo=UTC)))
    await fire_due_timers(incident_service, IncidentTimerProjection.name)
    await eventually(lambda: posts_for(http, "/ts-bob", incident_id))
    got = (await incident_stub.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))).incident
    bob = next(p for p in got.pages if p.member_id == "ts-bob")
    await acknowledge(incident_service, bob.page_id, "ts-bob")
    await eventually(lambda: pagerduty_alerts(http, dedup_key, "acknowledge"))
    sent = pagerduty_alerts(http, dedup_key, "acknowledge")[0]
    assert sent["routing_key"] == "rk-technical-support" and "payload" not in sent
    await incident_stub.ResolveIncident(
        pb.ResolveIncidentRequest(incident_id=incident_id, summary="failover done"), metadata=key()
    )
    await eventually(lambda: pagerduty_alerts(http, dedup_key, "resolve"))
    assert pagerduty_alerts(http, dedup_key, "resolve")[0]["routing_key"] == "rk-technical-support"
