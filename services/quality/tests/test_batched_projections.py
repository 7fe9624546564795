"""The quality projections write through careops_eventstore.rows (one executemany per kind, a
ticket's row remembered between its events): the KPI scenario's ticket and incident events, and
surveys, applied in one batch give exactly the rows that applying them one at a time gives."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from careops_eventstore.batches import apply_batch, reset
from careops_eventstore.codec import DecodedEvent, EventCodec
from careops_eventstore.memory import InMemoryEventStore
from careops_eventstore.model import RecordedBatch
from careops_platform.db import migrate
from sqlalchemy import Connection, Engine, event

from quality import domain as qd
from quality.application import (
    CODEC,
    INCIDENT_CODEC,
    INCIDENT_STREAM,
    STREAM,
    TICKETING_CODEC,
    TICKETING_STREAM,
    QualityApp,
)
from quality.projections import IncidentFactsProjection, SurveyProjection, TicketFactsProjection
from tests.quality_scenario import Clock, write_incidents, write_tickets
from tests.support import apply_one_at_a_time, tables_content

from .test_migrations import MIGRATIONS


async def scenario_log(stream: str) -> list[RecordedBatch]:
    """The messages of `stream` in the KPI scenario: its tickets (holds, a complaint, breaches,
    reopenings), its incidents, and a survey for four of the tickets."""
    memory = InMemoryEventStore()
    clock = Clock()
    await write_tickets(memory, clock)
    await write_incidents(memory, clock)
    quality = QualityApp(store=memory, clock=clock)
    await quality.provision()
    for index, ticket_id in enumerate(("T-A", "T-B", "T-C", "T-D")):
        facts = qd.TicketFacts(ticket_id, "C-1", "agent-li", "chat", "fault", "normal", True)
        await quality.submit_survey(
            facts,
            ticket_id,
            csat=1 + index,
            nps=index * 3,
            comment="ok",
            command_id=uuid.uuid4().hex,
            actor="test",
        )
    return await memory.read_stream(stream=stream, after_sequence=0, limit=10_000)


PROJECTIONS: tuple[tuple[type[Any], EventCodec, str], ...] = (
    (TicketFactsProjection, TICKETING_CODEC, TICKETING_STREAM),
    (IncidentFactsProjection, INCIDENT_CODEC, INCIDENT_STREAM),
    (SurveyProjection, CODEC, STREAM.name),
)


def statements(engine: Engine) -> list[int]:
    """Counts the statements sent to the database from now on."""
    sent: list[int] = []

    def count(*_args: Any) -> None:
        sent.append(1)

    event.listen(engine, "before_cursor_execute", count)
    return sent


@pytest.mark.parametrize(
    ("kind", "codec", "stream"), PROJECTIONS, ids=[kind.name for kind, _, _ in PROJECTIONS]
)
async def test_one_batch_writes_what_one_event_at_a_time_writes(
    read_model_engine: Engine, kind: type[Any], codec: EventCodec, stream: str
) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = await scenario_log(stream)
    sent = statements(engine)
    apply_one_at_a_time(engine, kind(), codec, log)
    one_by_one = len(sent)
    expected = tables_content(engine, kind())
    assert any(expected.values())
    reset(engine, kind())

    sent.clear()
    outcome = apply_batch(engine, kind(), codec, "S", log, [m.sequence for m in log])
    assert outcome.parked == [] and outcome.applied > 0
    assert tables_content(engine, kind()) == expected
    # Fewer statements, the checkpoint's included (one executemany per kind of row).
    assert len(sent) < one_by_one


async def test_a_ticket_read_back_in_a_later_batch_comes_from_the_database(
    read_model_engine: Engine,
) -> None:
    """Pages of three messages: a ticket's later events meet its row in the database, written
    by an earlier batch (nothing is remembered across batches)."""
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = await scenario_log(TICKETING_STREAM)
    apply_one_at_a_time(engine, TicketFactsProjection(), TICKETING_CODEC, log)
    expected = tables_content(engine, TicketFactsProjection())
    reset(engine, TicketFactsProjection())
    projection = TicketFactsProjection()
    for start in range(0, len(log), 3):
        page = log[start : start + 3]
        apply_batch(engine, projection, TICKETING_CODEC, "S", page, [m.sequence for m in page])
    assert tables_content(engine, projection) == expected


class _Refuses:
    """Wraps the KPI facts: raises on one ticket's resolution (after that event's first writes
    and remembered row), so that message is rolled back and parked."""

    name = "quality_tickets"
    batched_writes = True

    def __init__(self, ticket_id: str) -> None:
        self._inner = TicketFactsProjection()
        self._ticket_id = ticket_id
        self.tables = self._inner.tables

    def apply(self, connection: Connection, event: DecodedEvent, position: int) -> None:
        self._inner.apply(connection, event, position)
        envelope = event.envelope
        if envelope.aggregate_id == self._ticket_id and envelope.type.endswith("TicketResolved"):
            raise ValueError("refused")


async def test_a_rolled_back_message_leaves_nothing_buffered_or_remembered(
    read_model_engine: Engine,
) -> None:
    engine = read_model_engine
    migrate(engine, MIGRATIONS)
    log = await scenario_log(TICKETING_STREAM)
    refused = [
        m.sequence
        for m in log
        if m.batch.events[0].aggregate_id == "T-D"
        and any(e.type.endswith("TicketResolved") for e in m.batch.events)
    ]
    assert len(refused) == 1
    # The reference: every message but the refused one, one event at a time.
    kept = [m for m in log if m.sequence not in refused]
    apply_one_at_a_time(engine, TicketFactsProjection(), TICKETING_CODEC, kept)
    expected = tables_content(engine, TicketFactsProjection())
    reset(engine, TicketFactsProjection())

    outcome = apply_batch(
        engine, _Refuses("T-D"), TICKETING_CODEC, "S", log, [m.sequence for m in log]
    )
    assert outcome.parked == refused
    assert tables_content(engine, TicketFactsProjection()) == expected
