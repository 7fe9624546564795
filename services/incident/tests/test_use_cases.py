"""The alert stream use case on the in-memory event store and a stand-in JetStream: checks
before the watch, waiting pages replayed, then live alerts of the team only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from careops.events.v1.envelope_pb2 import EventBatch
from careops_eventstore.codec import EnvelopeContext
from careops_eventstore.memory import InMemoryEventStore
from careops_platform.errors import InvalidArgument, NotFound

from incident import domain as d
from incident.alerts import Alert, AlertKind, AlertWatch, alert_kind, waiting_alert
from incident.application import CODEC, INCIDENT_SUBJECTS, STREAM, IncidentApp, incident_of_page

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class FakeJetStream:
    """Delivers the given (sequence, batch) messages to a subscriber from its start sequence."""

    def __init__(self, messages: Sequence[tuple[int, EventBatch]]) -> None:
        self.messages = list(messages)
        self.subscribed: list[dict[str, Any]] = []
        self.unsubscribed = 0

    def jetstream(self) -> FakeJetStream:
        return self

    async def subscribe(
        self, subject: str, *, cb: Callable[[Any], Awaitable[None]], config: Any, **options: Any
    ) -> Any:
        self.subscribed.append({"subject": subject, "start": config.opt_start_seq, **options})
        for sequence, batch in self.messages:
            if sequence >= config.opt_start_seq:
                metadata = SimpleNamespace(sequence=SimpleNamespace(stream=sequence))
                await cb(SimpleNamespace(data=batch.SerializeToString(), metadata=metadata))
        return SimpleNamespace(unsubscribe=self._unsubscribe)

    async def _unsubscribe(self) -> None:
        self.unsubscribed += 1


class Waiting:
    def __init__(self, position: int, rows: Sequence[Any]) -> None:
        self.position = position
        self.rows = rows

    async def read(self, team_id: str) -> tuple[int, Sequence[Any]]:
        return self.position, [row for row in self.rows if row.team_id == team_id]


def declared() -> d.IncidentDeclared:
    return d.IncidentDeclared(
        incident_id="I1",
        type="server_crash",
        title="Core cluster down",
        description="",
        source=d.Source.MONITORING,
        factors=None,
        risk_index=0.9,
        level=d.Level.A,
        drill=False,
        response_due_at=AT + timedelta(minutes=15),
        matrix_version=1,
    )


def paged(page_id: str, team_id: str) -> d.PageRequested:
    return d.PageRequested(
        page_id=page_id,
        team_id=team_id,
        member_id=f"{team_id}-lead",
        step=0,
        round=0,
        contacts=(),
        ack_due_at=AT + timedelta(minutes=5),
        engagement=d.Engagement.RED,
    )


async def app_with_incident() -> tuple[IncidentApp, list[tuple[int, EventBatch]]]:
    """Returns an app whose log holds teams ops and db and incident I1 paging both."""
    store = InMemoryEventStore()
    app = IncidentApp(store=store, clock=lambda: AT)
    await app.provision()
    for team_id in ("ops", "db"):
        team = d.Team(team_id, members=(d.Member(f"{team_id}-lead"),))
        await app.put_team(team, command_id=f"team-{team_id}", actor="t")
    events = [declared(), paged("I1-p1", "ops"), paged("I1-p2", "db")]
    context = EnvelopeContext("I1", "incident", "declare-I1", AT)
    batch = CODEC.encode(events, context)
    subject = f"{INCIDENT_SUBJECTS}.I1"
    appended = await store.append(
        stream=STREAM.name, subject=subject, batch=batch, expected_sequence=0, message_id="m1"
    )
    return app, [(appended.sequence, batch)]


async def first(alerts: Any, count: int) -> list[Alert]:
    taken: list[Alert] = []
    async for alert in alerts:
        taken.append(alert)
        if len(taken) == count:
            break
    await alerts.aclose()
    return taken


async def test_an_unknown_team_is_not_found_before_the_watch_starts() -> None:
    app, _ = await app_with_incident()
    watch = AlertWatch(app, nc=FakeJetStream([]), waiting=Waiting(0, []))  # type: ignore[arg-type]
    with pytest.raises(d.NotFound):
        await watch.watch("nobody")


async def test_a_position_beyond_the_log_is_invalid() -> None:
    app, messages = await app_with_incident()
    watch = AlertWatch(app, nc=FakeJetStream(messages), waiting=Waiting(0, []))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as raised:
        await watch.watch("ops", after_sequence=999)
    assert [v.field for v in raised.value.violations] == ["after_sequence"]


async def test_live_alerts_are_the_teams_only_and_start_after_the_position() -> None:
    app, messages = await app_with_incident()
    nc = FakeJetStream(messages)
    watch = AlertWatch(app, nc=nc, waiting=Waiting(0, []))  # type: ignore[arg-type]
    sequence = messages[0][0]
    [alert] = await asyncio.wait_for(first(await watch.watch("db", sequence - 1), 1), 5)
    assert (alert.kind, alert.page_id, alert.team_id) == (AlertKind.PAGE, "I1-p2", "db")
    assert (alert.level, alert.title, alert.engagement) == (
        d.Level.A,
        "Core cluster down",
        d.Engagement.RED,
    )
    assert alert.ack_due_at == AT + timedelta(minutes=5) and alert.at == AT
    assert alert.sequence == sequence and not alert.replayed
    assert nc.subscribed[0]["start"] == sequence
    assert nc.unsubscribed == 1


async def test_without_a_position_waiting_pages_come_first_then_the_log_after_them() -> None:
    app, messages = await app_with_incident()
    row = SimpleNamespace(
        incident_id="I0",
        page_id="I0-p1",
        team_id="ops",
        member_id="ops-lead",
        level="b",
        type="outage",
        title="Earlier",
        engagement="yellow",
        drill=True,
        sequence=1,
        requested_at=datetime(2026, 3, 1, 9, 0),  # SQLite hands back naive UTC
        ack_due_at=None,
    )
    nc = FakeJetStream(messages)
    watch = AlertWatch(app, nc=nc, waiting=Waiting(messages[0][0] - 1, [row]))  # type: ignore[arg-type]
    replayed, live = await asyncio.wait_for(first(await watch.watch("ops"), 2), 5)
    assert replayed == waiting_alert(row)
    assert replayed.replayed and replayed.at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert live.page_id == "I1-p1"
    assert nc.subscribed[0]["start"] == messages[0][0]


def test_only_pages_acknowledgements_and_notices_are_alerts() -> None:
    assert alert_kind(paged("I1-p1", "ops")) is AlertKind.PAGE
    assert alert_kind(d.PageAcknowledged("I1-p1", "m")) is AlertKind.ACKNOWLEDGED
    assert alert_kind(d.TeamInformed("ops", "m", (), "n1")) is AlertKind.INFORMED
    assert alert_kind(declared()) is None


def test_a_page_id_names_its_incident_and_a_malformed_one_is_not_found() -> None:
    assert incident_of_page("I-20260301-ab12-p3") == "I-20260301-ab12"
    for page_id in ("I1", "I1-p", "I1-px", "-p1", "I1-p1 "):
        with pytest.raises(NotFound, match="does not exist"):
            incident_of_page(page_id)
