"""Incident's application layer through its composition root, on the in-memory store (no NATS)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from careops_eventstore.application import OffsetClock
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.timers import DueTimer
from prometheus_client import REGISTRY

from incident import domain as d
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM, IncidentApp, utc_now
from incident.main import IncidentService, IncidentSettings
from tests.in_memory import Logged, logged
from tests.support import FakeClock

CRASH = d.DeclareIncident(
    incident_id="i-1",
    type="server_crash",
    title="Checkout down",
    factors=d.RiskFactors(users_affected=50_000, core_system=1.0, exposure=1.0),
)


async def bootstrapped(tmp_path: Path, clock: FakeClock) -> tuple[IncidentApp, InMemoryEventStore]:
    """Returns the application the service would run, with the default teams and matrix."""
    service = IncidentService(IncidentSettings(data_dir=str(tmp_path)), clock=clock)
    store = InMemoryEventStore()
    return await service.bootstrap(store), store


async def incident_events(store: InMemoryEventStore, incident_id: str) -> list[Logged]:
    subject = f"{INCIDENT_SUBJECTS}.{incident_id}"
    return [item for item in await logged(store, STREAM.name, CODEC) if item.subject == subject]


def test_the_clock_is_the_real_time_unless_an_offset_file_is_set(tmp_path: Path) -> None:
    """CAREOPS_CLOCK_OFFSET_FILE (tests running the service as a process): an OffsetClock on
    that file; unset, the real time; a clock passed in wins over both."""
    assert IncidentService(IncidentSettings(data_dir=str(tmp_path / "real"))).clock is utc_now
    offset = tmp_path / "offset"
    moved = IncidentService(
        IncidentSettings(data_dir=str(tmp_path / "moved"), clock_offset_file=str(offset))
    ).clock
    assert isinstance(moved, OffsetClock) and moved.path == offset
    clock = FakeClock()
    injected = IncidentService(
        IncidentSettings(data_dir=str(tmp_path / "fake"), clock_offset_file=str(offset)),
        clock=clock,
    )
    assert injected.clock is clock


async def test_the_composition_root_loads_the_default_teams_and_matrix(tmp_path: Path) -> None:
    app, _store = await bootstrapped(tmp_path, FakeClock())
    matrix = await app.matrix(fresh=True)
    assert matrix.version > 0 and "server_crash" in matrix.rows
    team, _ = await app.team("technical_support")
    assert team.team_id == "technical_support"


async def test_declaring_an_incident_pages_its_red_and_yellow_teams(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    declared = await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    events = await incident_events(store, "i-1")
    assert {item.sequence for item in events} == {declared.sequence}  # one message
    assert isinstance(events[0].event, d.IncidentDeclared)
    assert events[0].envelope.policy_versions["risk_model"] == app.risk.version
    pages = [item.event for item in events if isinstance(item.event, d.PageRequested)]
    assert {page.team_id for page in pages} == {"technical_support", "customer_service"}
    assert all(page.ack_due_at > clock.now for page in pages)
    informed = [item.event for item in events if isinstance(item.event, d.TeamInformed)]
    assert [notice.team_id for notice in informed] == ["brand_pr"]


async def test_an_unacknowledged_page_escalates_when_its_timer_fires(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    declared = await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    [page] = [
        event
        for event in declared.events
        if isinstance(event, d.PageRequested) and event.team_id == "technical_support"
    ]
    clock.set(page.ack_due_at + timedelta(seconds=1))
    timer = DueTimer("ack-1", "i-1", "page_ack", clock.now, {"page_id": page.page_id})
    await app.fire_timer(timer)
    await app.fire_timer(timer)  # the same timer again: appended once
    events = await incident_events(store, "i-1")
    fired = [item for item in events if item.sequence > declared.sequence]
    assert {item.envelope.command_id for item in fired} == {"ack-1"}
    assert any(isinstance(item.event, d.PageEscalated) for item in fired)


async def test_an_acknowledged_page_does_not_escalate(tmp_path: Path) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    declared = await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    [page] = [
        event
        for event in declared.events
        if isinstance(event, d.PageRequested) and event.team_id == "technical_support"
    ]
    acked = await app.execute(
        "i-1", d.AcknowledgePage(page.page_id, page.member_id), command_id="ack", actor="m"
    )
    assert [type(event) for event in acked.events] == [d.PageAcknowledged]
    head = await store.last_sequence(STREAM.name)
    clock.set(page.ack_due_at + timedelta(seconds=1))
    await app.fire_timer(DueTimer("ack-1", "i-1", "page_ack", clock.now, {"page_id": page.page_id}))
    after = await incident_events(store, "i-1")
    assert not any(isinstance(item.event, d.PageEscalated) for item in after)
    assert all(item.sequence <= head for item in after)


async def test_get_at_least_a_sequence_reads_the_log_only_when_the_cache_is_older(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    declared = await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    page_id = next(iter(declared.state.pages))
    # Another replica (another app on the same log) records a delivery this one has not seen.
    other = IncidentApp(store=store, risk=app.risk, clock=clock)
    recorded = await other.execute(
        "i-1",
        d.RecordDeliveries(page_id, (d.DeliveryOutcome(d.ContactKind.WEBHOOK, 1),)),
        command_id="deliveries-1",
        actor="dispatcher",
    )
    cached, version = await app.get("i-1", at_least=declared.sequence)
    assert version == declared.sequence and not cached.deliveries_of(page_id)
    fresh, version = await app.get("i-1", at_least=recorded.sequence)
    assert version == recorded.sequence and d.ContactKind.WEBHOOK in fresh.deliveries_of(page_id)
    latest, _ = await other.get("i-1")
    assert latest.deliveries_of(page_id) == fresh.deliveries_of(page_id)


async def test_an_extra_team_must_exist_and_is_paged_with_the_row(tmp_path: Path) -> None:
    app, store = await bootstrapped(tmp_path, FakeClock())
    unknown = replace(CRASH, extra_teams=(d.MatrixCell("no_such_team", d.Engagement.RED),))
    with pytest.raises(d.InvalidCommand) as refused:
        await app.execute("i-1", unknown, command_id="declare-x", actor="noc")
    assert [name for name, _ in refused.value.violations] == ["extra_teams[0].team_id"]
    assert await incident_events(store, "i-1") == []  # nothing appended
    # security is in no server_crash cell: engaged (red, paged) because the command says so.
    extra = replace(CRASH, extra_teams=(d.MatrixCell("security", d.Engagement.RED),))
    declared = await app.execute("i-1", extra, command_id="declare-1", actor="noc")
    assert declared.state.teams["security"] == d.TeamEngagement(d.Engagement.RED, True)
    pages = [e for e in declared.events if isinstance(e, d.PageRequested)]
    assert "security" in {page.team_id for page in pages}


def loads(source: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "careops_eventstore_aggregate_loads_total", {"stream": STREAM.name, "source": source}
        )
        or 0.0
    )


@pytest.mark.parametrize("decoded", [False, True], ids=["raw", "decoded"])
async def test_a_replica_that_receives_a_new_incident_reads_nothing_back_from_the_log(
    tmp_path: Path, decoded: bool
) -> None:
    """The pager's replica (a worker) did not append the declaration: the message it received
    is the incident's first, so its state comes from the message, not a read of the log (also
    when the pager hands over the events it decoded already)."""
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    worker = await IncidentService(  # the same log, another process's cache
        IncidentSettings(data_dir=str(tmp_path / "worker")), clock=clock
    ).bootstrap(store)
    declared = await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    [message] = await store.read_subject(stream=STREAM.name, subject=f"{INCIDENT_SUBJECTS}.i-1")
    full, delivered = loads("full"), loads("delivered")
    worker.observe("i-1", message, CODEC.decode_batch(message.batch) if decoded else None)
    incident, version = await worker.get("i-1", at_least=message.sequence)
    assert version == declared.sequence
    assert incident == (await app.get("i-1"))[0]
    assert (loads("full"), loads("delivered")) == (full, delivered + 1)


async def test_a_message_that_is_not_the_next_one_leaves_the_cache_to_the_log(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    app, store = await bootstrapped(tmp_path, clock)
    await app.execute("i-1", CRASH, command_id="declare-1", actor="noc")
    later = await app.execute("i-1", d.AddUpdate("still down"), command_id="update-1", actor="noc")
    messages = await store.read_subject(stream=STREAM.name, subject=f"{INCIDENT_SUBJECTS}.i-1")
    worker = await IncidentService(
        IncidentSettings(data_dir=str(tmp_path / "worker")), clock=clock
    ).bootstrap(store)
    delivered = loads("delivered")
    worker.observe("i-1", messages[-1])  # the second message, with nothing cached: unknown
    assert loads("delivered") == delivered
    incident, version = await worker.get("i-1", at_least=later.sequence)
    assert version == later.sequence and incident == (await app.get("i-1"))[0]
